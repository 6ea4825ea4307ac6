"""The gateway's own histogram aggregation equals the OTel SDK's on the same values, and
its points reach the SDK pipeline's exports."""

from __future__ import annotations

import random

import pytest
from metric_capture import MetricCapture
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from caret_otel.receivers.gateway import client_metrics
from caret_otel.receivers.gateway.client_histograms import ClientHistograms
from caret_otel.receivers.gateway.config import OtlpTarget
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events, metrics
from caret_otel.semconv.policy import load_policy

HISTOGRAMS = [spec for spec in client_metrics.CLIENT_METRICS if spec.instrument == "histogram"]


@pytest.mark.parametrize("spec", HISTOGRAMS, ids=lambda spec: spec.name)
def test_same_points_as_the_sdk(spec: metrics.MetricSpec) -> None:
    rng = random.Random(spec.name)
    bounds = list(spec.buckets)
    # Values on every bound (upper bounds are inclusive), between them, beyond the last.
    values = [*bounds, 0.0, *(rng.uniform(0, bounds[-1] * 1.5) for _ in range(500))]
    values += [float(rng.randint(0, int(bounds[-1]))) for _ in range(200)]
    labels_a = ((attrs.GEN_AI_REQUEST_MODEL, "a"),)
    labels_b = ((attrs.GEN_AI_REQUEST_MODEL, "b"),)
    ours = ClientHistograms([spec])
    ours.record((spec.name, labels_a if i % 3 else labels_b, v) for i, v in enumerate(values))

    reader = InMemoryMetricReader()
    view = View(instrument_name=spec.name, aggregation=ExplicitBucketHistogramAggregation(bounds))
    sdk = MeterProvider(metric_readers=[reader], views=[view])
    instrument = sdk.get_meter("test").create_histogram(spec.name)
    for i, value in enumerate(values):
        instrument.record(value, dict(labels_a if i % 3 else labels_b))
    data = reader.get_metrics_data()
    assert data is not None
    (sdk_metric,) = data.resource_metrics[0].scope_metrics[0].metrics
    (our_metric,) = ours.metrics()

    def points(found: list[HistogramDataPoint]) -> dict[object, tuple[object, ...]]:
        return {
            tuple(sorted((p.attributes or {}).items())): (
                p.count, round(p.sum, 6), tuple(p.bucket_counts), tuple(p.explicit_bounds),
                p.min, p.max,
            )
            for p in found
        }  # fmt: skip

    assert points(our_metric.data.data_points) == points(sdk_metric.data.data_points)  # type: ignore[arg-type]
    assert our_metric.unit == spec.unit
    sdk.shutdown()


def test_histograms_reach_the_export_with_the_counters() -> None:
    capture = MetricCapture()
    provider, recorder = client_metrics.pipeline(
        OtlpTarget(endpoints={}), load_policy(), exporter=capture
    )
    batch = client_metrics.MetricBatch()
    recorder.observe(
        batch,
        events.CARET_TASK_COMPLETED.name,
        {attrs.CARET_TASK_DURATION: 42.0, attrs.CARET_TASK_OUTCOME: "success"},
    )
    recorder.flush(batch)
    data = capture.collect(provider)
    (resource_metrics,) = data.resource_metrics
    (scope_metrics,) = resource_metrics.scope_metrics
    assert scope_metrics.scope.name == client_metrics.METER_NAME
    by_name = {metric.name: metric for metric in scope_metrics.metrics}
    assert {metrics.CARET_TASK_COMPLETIONS.name, metrics.CARET_TASK_DURATION.name} <= set(by_name)
    (point,) = by_name[metrics.CARET_TASK_DURATION.name].data.data_points
    assert (point.count, point.sum) == (1, 42.0)  # type: ignore[union-attr]
    provider.shutdown()


def test_every_event_with_a_histogram_value_also_counts() -> None:
    """The SDK exports only when it collected something of its own: an event feeding a
    histogram also feeds a counter, so its histogram point is never held back."""
    provider, recorder = client_metrics.pipeline(
        OtlpTarget(endpoints={}), load_policy(), exporter=MetricCapture()
    )
    histograms = {spec.name for spec in HISTOGRAMS}
    for spec in events.ALL:
        batch = client_metrics.MetricBatch()
        recorder.observe(batch, spec.name, {key: 3 for key in spec.attributes})
        fed = {name for name, _ in batch.sums} | {name for name, _, _ in batch.samples}
        if fed & histograms:
            assert fed - histograms, spec.name
    provider.shutdown()
