"""The gateway's client-event metrics keep a bounded number of series per metric:
label sets beyond the cap are folded into one series whose labels are all ``other``,
counted, for counters and histograms alike; the count is on the gateway's /metrics."""

from __future__ import annotations

import pytest
from metric_capture import MetricCapture
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricsData
from prometheus_client.parser import text_string_to_metric_families

from caret_otel.receivers.gateway import client_metrics
from caret_otel.receivers.gateway.config import OtlpTarget
from caret_otel.receivers.gateway.self_metrics import GatewayMetrics
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics
from caret_otel.semconv.policy import OTHER_VALUE, load_policy

CAP = 5


def _series(
    provider: MeterProvider, exporter: MetricCapture, name: str
) -> dict[tuple[tuple[str, object], ...], int]:
    data = exporter.collect(provider)
    assert isinstance(data, MetricsData)
    out: dict[tuple[tuple[str, object], ...], int] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    count = point.count if value is None else value  # type: ignore[union-attr]
                    out[tuple(sorted((point.attributes or {}).items()))] = int(count)
    return out


def test_label_sets_beyond_the_cap_fold_into_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_metrics, "MAX_SERIES_PER_METRIC", CAP)
    exporter = MetricCapture()
    provider, recorder = client_metrics.pipeline(
        OtlpTarget(endpoints={}), load_policy(), exporter=exporter
    )
    gateway_metrics = GatewayMetrics()
    gateway_metrics.watch_folded_series(recorder.folded_counts)
    counter = metrics.CARET_TASK_STARTS
    histogram = metrics.CARET_TASK_DURATION
    total = CAP + 7
    for index in range(total):
        labels = {attrs.GEN_AI_REQUEST_MODEL: f"model-{index}"}
        batch = client_metrics.MetricBatch()
        batch.add(counter.name, recorder.labels(counter, labels), 1)
        batch.record(histogram.name, recorder.labels(histogram, labels), 0.5)
        recorder.flush(batch)
    for name in (counter.name, histogram.name):
        series = _series(provider, exporter, name)
        other = tuple(sorted((key, OTHER_VALUE) for key, _ in next(iter(series))))
        assert (attrs.GEN_AI_REQUEST_MODEL, OTHER_VALUE) in other
        assert len(series) == CAP + 1, name
        assert series[other] == total - CAP, name
        assert sum(series.values()) == total, name  # nothing is lost, only folded
        assert recorder.folded[name] == total - CAP
    served = _folded_on_metrics_page(gateway_metrics)
    assert served[counter.name] == served[histogram.name] == total - CAP
    assert served[metrics.CARET_API_ERRORS.name] == 0  # every client metric is listed
    assert set(served) == {spec.name for spec in client_metrics.CLIENT_METRICS}
    provider.shutdown()


def _folded_on_metrics_page(gateway_metrics: GatewayMetrics) -> dict[str, float]:
    """caret_gateway_metric_series_folded_total per metric, parsed from /metrics' text."""
    text = gateway_metrics.exposition().decode()
    return {
        sample.labels["metric"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "caret_gateway_metric_series_folded"
        for sample in family.samples
        if sample.name == "caret_gateway_metric_series_folded_total"
    }
