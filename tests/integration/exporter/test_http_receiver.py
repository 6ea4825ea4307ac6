"""The exporter's HTTP interface against a real PostgreSQL: OTLP answers, status codes,
partial success, business metrics, health and self-metrics."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import zstandard
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from integration.exporter.exporter_helpers import event, pseudonym, query, running_exporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from caret_otel.otlp.build import any_value, logs_request
from caret_otel.otlp.values import unix_nano
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as ev
from caret_otel.semconv import metrics

pytestmark = pytest.mark.integration


def test_logs_answer_partial_success_for_refused_records_only(database: str) -> None:
    now = datetime.now(UTC)
    good = event("u1", now - timedelta(minutes=5), ev.CARET_TASK_CREATED)
    unknown = event("u1", now, ev.CARET_TASK_CREATED)
    unknown.event_name = "app.something"
    raw_id = event("u1", now, ev.CARET_TASK_CREATED)
    raw_id.attributes[1].value.string_value = "alice@example.com"  # not pseudonymized
    with running_exporter(database) as exporter:
        body = logs_request([good, unknown, raw_id]).SerializeToString()
        answer = exporter.post("/v1/logs", body)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/x-protobuf"
        partial = ExportLogsServiceResponse.FromString(answer.content).partial_success
        assert partial.rejected_log_records == 2
        assert "unknown_event: 1" in partial.error_message
        assert "not_pseudonymized: 1" in partial.error_message
        assert "alice" not in partial.error_message

        as_json = exporter.post("/v1/logs", orjson.dumps({"resourceLogs": []}), "application/json")
        assert as_json.status_code == 200
        assert as_json.json() == {}
        metrics_text = exporter.get("/metrics").text
    assert query(database, "SELECT user_pseudonym FROM raw.events") == [(pseudonym("u1"),)]
    assert (
        'caret_exporter_refused_records_total{reason="unknown_event",signal="logs"} 1.0'
        in metrics_text
    )
    assert 'caret_exporter_batches_total{outcome="partial",signal="logs"} 1.0' in metrics_text


def test_zstd_protobuf_bodies_as_the_collector_sends_them_are_stored(database: str) -> None:
    now = datetime.now(UTC)
    records = [event(f"u{n}", now - timedelta(minutes=n), ev.CARET_TASK_CREATED) for n in range(3)]
    body = zstandard.ZstdCompressor().compress(logs_request(records).SerializeToString())
    with running_exporter(database) as exporter:
        answer = exporter.post("/v1/logs", body, **{"Content-Encoding": "zstd"})
        assert answer.status_code == 200
        assert not ExportLogsServiceResponse.FromString(answer.content).HasField("partial_success")
    assert query(database, "SELECT count(*) FROM raw.events") == [(3,)]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"\x0a\xff", {"Content-Type": "application/x-protobuf"}, 400),
        (b"{oops", {"Content-Type": "application/json"}, 400),
        (b"xx", {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, 400),
        (b"xx", {"Content-Type": "application/x-protobuf", "Content-Encoding": "zstd"}, 400),
        (b"{}", {"Content-Type": "text/plain"}, 415),
        (b"{}", {"Content-Type": "application/json", "Content-Encoding": "br"}, 415),
    ],
)
def test_undecodable_requests_get_4xx_with_a_status_body(
    database: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    with running_exporter(database) as exporter:
        answer = exporter.post("/v1/logs", body, **headers)
    assert answer.status_code == status
    if headers["Content-Type"] == "application/x-protobuf":
        assert Status.FromString(answer.content).message
    else:
        assert answer.json()["message"]


def _metrics_request(now: datetime) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    resource.resource.attributes.append(
        KeyValue(key=attrs.SERVICE_NAME, value=any_value("gateway"))
    )
    scope = resource.scope_metrics.add()
    credits = scope.metrics.add(name=metrics.CARET_CREDITS_CONSUMED.name, unit="{credit}")
    credits.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    credits.sum.is_monotonic = True
    for plan, value in (("free", 12.5), ("pro", 40.0)):
        point = credits.sum.data_points.add(
            start_time_unix_nano=unix_nano(now - timedelta(hours=1)),
            time_unix_nano=unix_nano(now),
            as_double=value,
        )
        point.attributes.append(KeyValue(key=attrs.CARET_PLAN_NAME, value=any_value(plan)))
    duration = scope.metrics.add(name=metrics.GEN_AI_CLIENT_OPERATION_DURATION.name, unit="s")
    duration.histogram.aggregation_temporality = (
        AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    )
    duration.histogram.data_points.add(
        start_time_unix_nano=unix_nano(now - timedelta(hours=1)),
        time_unix_nano=unix_nano(now),
        count=3,
        sum=4.5,
        explicit_bounds=[1.0, 2.0],
        bucket_counts=[1, 1, 1],
    )
    other = scope.metrics.add(name="process.cpu.time", unit="s")
    other.gauge.data_points.add(time_unix_nano=unix_nano(now), as_double=1.0)
    labelled = scope.metrics.add(name=metrics.CARET_SIGNUPS.name, unit="{signup}")
    bad = labelled.sum.data_points.add(time_unix_nano=unix_nano(now), as_int=1)
    bad.attributes.append(KeyValue(key=attrs.ENDUSER_PSEUDO_ID, value=any_value(pseudonym("u"))))
    return request


def test_business_metrics_are_stored_once_and_bad_points_reported(database: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    body = gzip.compress(_metrics_request(now).SerializeToString())
    with running_exporter(database) as exporter:
        for _ in range(3):
            answer = exporter.post("/v1/metrics", body, **{"Content-Encoding": "gzip"})
            assert answer.status_code == 200
            partial = ExportMetricsServiceResponse.FromString(answer.content).partial_success
            assert partial.rejected_data_points == 2
            assert "unknown_metric: 1" in partial.error_message
            assert f"{attrs.ENDUSER_PSEUDO_ID} may not label a metric" in partial.error_message
    rows = query(
        database,
        "SELECT metric_name, kind, temporality, monotonic, value, count, sum, buckets, attrs, resource"
        " FROM raw.metric_points ORDER BY metric_name, value",
    )
    assert rows == [
        (metrics.CARET_CREDITS_CONSUMED.name, "sum", "cumulative", True, 12.5, None, None, None,
         {attrs.CARET_PLAN_NAME: "free"}, {attrs.SERVICE_NAME: "gateway"}),
        (metrics.CARET_CREDITS_CONSUMED.name, "sum", "cumulative", True, 40.0, None, None, None,
         {attrs.CARET_PLAN_NAME: "pro"}, {attrs.SERVICE_NAME: "gateway"}),
        (metrics.GEN_AI_CLIENT_OPERATION_DURATION.name, "histogram", "cumulative", None, None, 3,
         4.5, {"bounds": [1.0, 2.0], "counts": [1, 1, 1]}, {}, {attrs.SERVICE_NAME: "gateway"}),
    ]  # fmt: skip


def test_health_readiness_and_self_metrics(database: str) -> None:
    with running_exporter(database) as exporter:
        assert exporter.get("/healthz").json() == {"status": "ok"}
        assert exporter.get("/readyz").json() == {"status": "ready"}
        text = exporter.get("/metrics").text
    for name in (
        "caret_exporter_rows_written",
        "caret_exporter_batches",
        "caret_exporter_dedup_hits",
        "caret_exporter_write_duration_seconds",
        "caret_exporter_failures",
        "caret_exporter_rollup_lag_seconds",
        "caret_exporter_ready 1.0",
    ):
        assert name in text
