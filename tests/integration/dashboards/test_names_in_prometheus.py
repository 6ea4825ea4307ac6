"""The names the rules and dashboards query are the names the real pipeline produces.

* Every registry metric, recorded with the OTel SDK and sent through our Collector's
  ``prometheus_remote_write`` exporter, appears in the real Prometheus under
  :func:`prometheus_name` (with every attribute as :func:`prometheus_label`).
* Every Collector self-metric family in :mod:`selfmetrics` exists on the Collector's own
  telemetry endpoint once all three signals flowed (v0.161.0 names, no ``_total``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from caret_otel.dashboards import promql as q
from caret_otel.dashboards import selfmetrics as sm
from caret_otel.dashboards.promnames import prometheus_label, prometheus_name
from caret_otel.registry.model import load_registry
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics
from caret_otel.semconv.policy import load_policy
from caret_otel.stack.prometheus import PrometheusServer

pytestmark = pytest.mark.integration

SERVICE = f"dashboards-names-{uuid.uuid4().hex[:8]}"


def _label_value(attribute: str) -> str | int | bool:
    """A value of the attribute's registry type that its shape accepts (else the
    Collector's privacy pass would drop it or fold it into ``other``): the registry's own
    example (``v`` for an attribute without one); 7 for an int, True for a boolean."""
    rule = load_policy().rule(attribute)
    if rule is not None and rule.type == "int":
        return 7
    if rule is not None and rule.type == "boolean":
        return True
    shape = rule.shape if rule is not None else None
    examples = [e for e in load_registry().attributes[attribute].examples if isinstance(e, str)]
    # a coarse value (a country code) has no shape here but one in the Collector's pass
    return next((e for e in examples if shape is None or shape.matches(e)), "v")


def _as_label(value: str | int | bool) -> str:
    """How Prometheus shows an attribute value as a label."""
    return str(value).lower() if isinstance(value, bool) else str(value)


LABEL_VALUES = {name: _label_value(name) for spec in metrics.ALL for name in spec.attributes}


@pytest.fixture(scope="module")
def recorded(collector: object) -> Iterator[None]:
    """One data point of every registry metric, every attribute set, sent once."""
    base = collector.http_url  # type: ignore[attr-defined]
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics"), export_interval_millis=60_000
    )
    provider = MeterProvider(
        resource=Resource.create({attrs.SERVICE_NAME: SERVICE}), metric_readers=[reader]
    )
    meter = provider.get_meter("dashboards-names-test")
    for spec in metrics.ALL:
        labels = {name: LABEL_VALUES[name] for name in spec.attributes}
        if spec.instrument == "counter":
            meter.create_counter(spec.name, unit=spec.unit).add(1, labels)
        elif spec.instrument == "updowncounter":
            meter.create_up_down_counter(spec.name, unit=spec.unit).add(1, labels)
        elif spec.instrument == "histogram":
            meter.create_histogram(spec.name, unit=spec.unit).record(1.0, labels)
        else:
            pytest.fail(f"{spec.name}: instrument {spec.instrument} not covered by this test")
    assert provider.force_flush(30_000)
    yield
    provider.shutdown()


@pytest.mark.parametrize("spec", metrics.ALL, ids=lambda s: s.name)
def test_registry_metric_reaches_prometheus_under_the_computed_name(
    recorded: None, prometheus: PrometheusServer, spec: metrics.MetricSpec
) -> None:
    series = ("bucket", "sum", "count") if spec.instrument == "histogram" else (None,)
    for part in series:
        name = prometheus_name(spec, part)
        found = prometheus.wait_for(q.selector(name, q.match("job", f".*{SERVICE}")), timeout=60)
        labels = found[0]["metric"]
        for attribute in spec.attributes:
            expected = _as_label(LABEL_VALUES[attribute])
            assert labels.get(prometheus_label(attribute)) == expected, (name, attribute, labels)


def test_collector_self_metrics_exist(collector: object, prometheus: PrometheusServer) -> None:
    """After logs, metrics and spans flowed, every family we query is exposed."""
    base = collector.http_url  # type: ignore[attr-defined]
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    resource = {"attributes": [{"key": attrs.SERVICE_NAME, "value": {"stringValue": SERVICE}}]}
    bodies = {
        "traces": {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [
            {"traceId": trace_id, "spanId": span_id, "name": "s", "kind": 1,
             "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]},
        "logs": {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [
            {"body": {"stringValue": "hello"}}]}]}]},
        "metrics": {"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": [
            {"name": "dashboards.names.probe", "gauge": {"dataPoints": [{"asInt": "1", "timeUnixNano": "1"}]}}]}]}]},
    }  # fmt: skip
    for signal, body in bodies.items():
        assert httpx.post(f"{base}/v1/{signal}", json=body, timeout=10).status_code == 200

    wanted = [
        *(prefix + word for prefix in (sm.COLLECTOR_RECEIVER_ACCEPTED, sm.COLLECTOR_RECEIVER_REFUSED)
          for word in sm.COLLECTOR_ITEM_WORDS),
        *(sm.COLLECTOR_EXPORTER_SENT + word for word in sm.COLLECTOR_ITEM_WORDS),
        sm.COLLECTOR_QUEUE_SIZE,
        sm.COLLECTOR_QUEUE_CAPACITY,
    ]  # fmt: skip
    url = collector.telemetry_url  # type: ignore[attr-defined]
    missing: list[str] = []
    for _ in range(60):
        text = httpx.get(url, timeout=10).text
        names = {
            line.split("{")[0].split(" ")[0]
            for line in text.splitlines()
            if not line.startswith("#")
        }
        missing = [name for name in wanted if name not in names]
        if not missing:
            break
        time.sleep(0.5)
    assert missing == [], f"not exposed by the Collector: {missing}"
