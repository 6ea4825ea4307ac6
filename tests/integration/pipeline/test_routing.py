"""Routing: one OTLP export per signal - spans, metrics, log lines and business events -
and each lands where it belongs and nowhere else.

* spans -> Tempo (the sink); GenAI client spans also -> span metrics in Prometheus,
  dimensioned by provider, model and error type only;
* metrics -> Prometheus (names with units, dashboard labels on the points, the rest of
  the resource on ``target_info``); ``caret.*`` metrics also -> PostgreSQL;
* logs and events -> Loki (the sink, index-label resource tidied); ``caret.*`` business
  events also -> PostgreSQL (``raw.events``) through the real ``caret-otel exporter``.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fixtures.services import RunningCollector, SinkCollector, otlp_attributes, wait_until
from integration.pipeline.pipeline_support import (
    business_event_records,
    exporter_url,
    key_values,
    post,
    resource,
    resource_blocks,
    start_collector,
    start_exporter,
    stored_events,
    unique_service,
)

from caret_otel.dashboards.promnames import prometheus_label, prometheus_name
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics
from caret_otel.stack import PostgresServer, PrometheusServer
from caret_otel.stack.process import ManagedProcess

pytestmark = pytest.mark.integration

ENVIRONMENT = "routing-test"
NAMESPACE = "caret"


@dataclass(frozen=True)
class Run:
    service: str
    model: str
    business_event_id: str
    noise_event_id: str
    genai_span: str
    plain_span: str


@dataclass(frozen=True)
class Wiring:
    collector: RunningCollector
    exporter: ManagedProcess
    database: str


@pytest.fixture(scope="module")
def wiring(
    services_dir: Path,
    postgres: PostgresServer,
    collector_binary: Path,
    prometheus: PrometheusServer,
    sink_collector: SinkCollector,
) -> Iterator[Wiring]:
    directory = Path(tempfile.mkdtemp(prefix="routing-", dir=services_dir))
    database = postgres.create_database(f"pipeline_routing_{uuid.uuid4().hex[:8]}")
    exporter = start_exporter(database, directory)
    collector = start_collector(
        collector_binary, directory, "routing-collector",
        prometheus=prometheus, sink=sink_collector, business_endpoint=exporter_url(exporter),
    )  # fmt: skip
    try:
        yield Wiring(collector, exporter, database)
    finally:
        collector.process.stop()
        exporter.stop()


def _resource(run: Run) -> dict[str, Any]:
    return resource(
        run.service,
        {
            attrs.SERVICE_NAMESPACE: NAMESPACE,
            attrs.SERVICE_VERSION: "1.2.3",
            attrs.SERVICE_INSTANCE_ID: run.service + "-1",
            attrs.DEPLOYMENT_ENVIRONMENT_NAME: ENVIRONMENT,
            attrs.TELEMETRY_SDK_LANGUAGE: "python",
        },
    )


def _span(name: str, attributes: dict[str, Any], now: int) -> dict[str, Any]:
    return {
        "traceId": uuid.uuid4().hex,
        "spanId": uuid.uuid4().hex[:16],
        "name": name,
        "kind": 3,
        "startTimeUnixNano": str(now - 1_500_000_000),
        "endTimeUnixNano": str(now),
        "attributes": key_values(attributes),
    }


def _send(collector: RunningCollector, run: Run) -> None:
    now = time.time_ns()
    genai = {
        attrs.GEN_AI_OPERATION_NAME: "chat",
        attrs.GEN_AI_PROVIDER_NAME: "anthropic",
        attrs.GEN_AI_REQUEST_MODEL: run.model,
        attrs.ERROR_TYPE: "timeout",
        attrs.SESSION_ID: "session-1",  # user-level: must not become a dimension
    }
    spans = [_span(run.genai_span, genai, now), _span(run.plain_span, {}, now)]
    post(collector, "traces", {"resourceSpans": [{"resource": _resource(run), "scopeSpans": [{"spans": spans}]}]})  # fmt: skip

    point = {
        "startTimeUnixNano": str(now - 10**9),
        "timeUnixNano": str(now),
        "attributes": key_values({attrs.GEN_AI_REQUEST_MODEL: run.model, attrs.GEN_AI_PROVIDER_NAME: "anthropic"}),
    }  # fmt: skip
    business_metric = {
        "name": metrics.CARET_TASK_STARTS.name,
        "unit": metrics.CARET_TASK_STARTS.unit,
        "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [{**point, "asInt": "2"}]},
    }  # fmt: skip
    sre_metric = {
        "name": metrics.GEN_AI_CLIENT_OPERATION_DURATION.name,
        "unit": metrics.GEN_AI_CLIENT_OPERATION_DURATION.unit,
        "histogram": {"aggregationTemporality": 2, "dataPoints": [
            {**point, "count": "1", "sum": 1.5, "bucketCounts": ["0", "1"], "explicitBounds": [1.0]}]},
    }  # fmt: skip
    post(collector, "metrics", {"resourceMetrics": [{"resource": _resource(run), "scopeMetrics": [{"metrics": [business_metric, sre_metric]}]}]})  # fmt: skip

    (business,) = business_event_records([run.business_event_id], user="routing-user")
    noise = {
        "timeUnixNano": str(now),
        "eventName": "test.noise",
        "attributes": key_values({attrs.CARET_EVENT_ID: run.noise_event_id}),
    }
    plain = {"timeUnixNano": str(now), "body": {"stringValue": f"plain line {run.model}"}}
    post(collector, "logs", {"resourceLogs": [{"resource": _resource(run), "scopeLogs": [{"logRecords": [business, noise, plain]}]}]})  # fmt: skip


@pytest.fixture(scope="module")
def run(wiring: Wiring, sink_collector: SinkCollector, prometheus: PrometheusServer) -> Run:
    tag = uuid.uuid4().hex[:8]
    sent = Run(
        service=unique_service("routing"),
        model=f"model-{tag}",
        business_event_id=f"business-{tag}",
        noise_event_id=f"noise-{tag}",
        genai_span=f"chat model-{tag}",
        plain_span=f"plain-{tag}",
    )
    _send(wiring.collector, sent)
    wait_until(
        lambda: stored_events(wiring.database, [sent.business_event_id]) == (1, 1),
        timeout=30,
        what="the business event in raw.events",
    )
    wait_until(
        lambda: (
            len(resource_blocks(sink_collector, "logs", sent.service)) > 0
            and len(resource_blocks(sink_collector, "traces", sent.service)) > 0
        ),
        timeout=30,
        what="logs and spans in the Tempo/Loki sink",
    )
    return sent


def _items(blocks: list[dict[str, Any]], middle: str, inner: str) -> list[dict[str, Any]]:
    return [i for b in blocks for s in b.get(middle, []) for i in s.get(inner, [])]


def test_spans_go_to_tempo_only(run: Run, sink_collector: SinkCollector, wiring: Wiring) -> None:
    spans = _items(resource_blocks(sink_collector, "traces", run.service), "scopeSpans", "spans")
    assert sorted(s["name"] for s in spans) == sorted([run.genai_span, run.plain_span])
    # The exporter has no trace endpoint and the sink's other files hold no span of ours.
    assert not resource_blocks(sink_collector, "metrics", run.service)
    exporter_metrics = httpx.get(f"{exporter_url(wiring.exporter)}/metrics").text
    assert 'signal="traces"' not in exporter_metrics


def test_logs_and_events_go_to_loki_with_tidy_index_labels(
    run: Run, sink_collector: SinkCollector
) -> None:
    blocks = resource_blocks(sink_collector, "logs", run.service)
    records = _items(blocks, "scopeLogs", "logRecords")
    assert len(records) == 3  # business event, other event, plain line: all of them
    labels = otlp_attributes(blocks[0]["resource"]["attributes"])
    # Loki's index label `deployment_environment` comes from the current attribute name.
    assert labels[attrs.DEPLOYMENT_ENVIRONMENT] == ENVIRONMENT
    assert labels[attrs.SERVICE_NAME] == run.service
    assert labels[attrs.SERVICE_NAMESPACE] == NAMESPACE


def _exporter_counter(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def test_only_business_events_and_caret_metrics_reach_postgresql(run: Run, wiring: Wiring) -> None:
    assert stored_events(wiring.database, [run.business_event_id]) == (1, 1)
    assert stored_events(wiring.database, [run.noise_event_id]) == (0, 0)
    # The other records never reached the exporter at all (it refuses and counts unknown
    # events; nothing was refused).
    text = httpx.get(f"{exporter_url(wiring.exporter)}/metrics").text
    assert _exporter_counter(text, "caret_exporter_refused_records_total") == 0

    def metric_names() -> set[str]:
        with psycopg.connect(wiring.database, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT DISTINCT metric_name FROM raw.metric_points WHERE attrs->>%s = %s",
                (attrs.GEN_AI_REQUEST_MODEL, run.model),
            ).fetchall()
        return {str(r[0]) for r in rows}

    names = wait_until(metric_names, timeout=30, what="the business metric in PostgreSQL")
    assert names == {metrics.CARET_TASK_STARTS.name}


def test_metrics_reach_prometheus_with_dashboard_labels(
    run: Run, prometheus: PrometheusServer
) -> None:
    selector = f'{{job="{NAMESPACE}/{run.service}"}}'
    for spec, part in (
        (metrics.CARET_TASK_STARTS, None),
        (metrics.GEN_AI_CLIENT_OPERATION_DURATION, "count"),
    ):
        (series,) = prometheus.wait_for(prometheus_name(spec, part) + selector, timeout=30)
        labels = series["metric"]
        assert labels[prometheus_label(attrs.DEPLOYMENT_ENVIRONMENT_NAME)] == ENVIRONMENT
        assert labels[prometheus_label(attrs.SERVICE_NAME)] == run.service
        assert labels[prometheus_label(attrs.SERVICE_NAMESPACE)] == NAMESPACE
        assert labels[prometheus_label(attrs.GEN_AI_REQUEST_MODEL)] == run.model
        assert labels["instance"] == run.service + "-1"
        # Other resource attributes are not copied to the series ...
        assert prometheus_label(attrs.SERVICE_VERSION) not in labels
    # ... they are on target_info.
    (info,) = prometheus.wait_for("target_info" + selector, timeout=30)
    assert info["metric"][prometheus_label(attrs.SERVICE_VERSION)] == "1.2.3"
    assert info["metric"][prometheus_label(attrs.TELEMETRY_SDK_LANGUAGE)] == "python"


def test_genai_spans_become_span_metrics_by_provider_model_and_error(
    run: Run, prometheus: PrometheusServer
) -> None:
    selector = f'{{job="{NAMESPACE}/{run.service}"}}'
    query = prometheus_name(metrics.CARET_GEN_AI_SPAN_CALLS) + selector
    # The connector flushes every second; the first sample may precede the span.
    calls = wait_until(
        lambda: [c for c in prometheus.query(query) if float(c["value"][1]) > 0],
        timeout=30,
        what="a non-zero span-metrics call count",
    )
    # Only the GenAI span is counted; the plain span is not.
    assert len(calls) == 1
    assert float(calls[0]["value"][1]) == 1
    labels = calls[0]["metric"]
    expected_dimensions = {prometheus_label(a) for a in metrics.CARET_GEN_AI_SPAN_CALLS.attributes}
    dashboard = {
        prometheus_label(a)
        for a in (attrs.DEPLOYMENT_ENVIRONMENT_NAME, attrs.SERVICE_NAME, attrs.SERVICE_NAMESPACE)
    }
    own = {"__name__", "job", "instance", "otel_scope_name", "otel_scope_version"}
    assert set(labels) - own == expected_dimensions | dashboard
    assert labels[prometheus_label(attrs.GEN_AI_REQUEST_MODEL)] == run.model
    assert labels[prometheus_label(attrs.ERROR_TYPE)] == "timeout"
    duration_query = prometheus_name(metrics.CARET_GEN_AI_SPAN_DURATION, "sum") + selector
    duration = wait_until(
        lambda: [d for d in prometheus.query(duration_query) if float(d["value"][1]) > 0],
        timeout=30,
        what="the span duration in Prometheus",
    )
    assert float(duration[0]["value"][1]) == pytest.approx(1.5)
