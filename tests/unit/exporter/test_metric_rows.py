"""OTLP metrics -> raw.metric_points rows: registry metrics only, labels that may label a
metric only, one row per point identified by its series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric

from caret_otel.exporters.postgres.event_rows import OUTSIDE_WINDOW, AcceptWindow
from caret_otel.exporters.postgres.metric_rows import (
    METRIC_COLUMNS,
    NOT_A_METRIC_LABEL,
    UNKNOWN_METRIC,
    DecodedPoints,
    MetricRowBuilder,
)
from caret_otel.otlp.build import any_value
from caret_otel.otlp.values import unix_nano
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


def request(*items: Metric, resource: dict[str, Any] | None = None) -> ExportMetricsServiceRequest:
    out = ExportMetricsServiceRequest()
    block = out.resource_metrics.add()
    for key, value in (resource or {attrs.SERVICE_NAME: "gateway"}).items():
        block.resource.attributes.append(KeyValue(key=key, value=any_value(value)))
    block.scope_metrics.add().metrics.extend(items)
    return out


def counter(name: str, labels: dict[str, Any], value: float, when: datetime = NOW) -> Metric:
    metric = Metric(name=name, unit="{credit}")
    metric.sum.aggregation_temporality = CUMULATIVE
    metric.sum.is_monotonic = True
    point = metric.sum.data_points.add(
        start_time_unix_nano=unix_nano(when - timedelta(hours=1)),
        time_unix_nano=unix_nano(when),
        as_double=value,
    )
    point.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in labels.items())
    return metric


def decode(req: ExportMetricsServiceRequest) -> DecodedPoints:
    return MetricRowBuilder(AcceptWindow.at(NOW, 30)).decode(req)


def rows(decoded: DecodedPoints) -> list[dict[str, Any]]:
    return [dict(zip(METRIC_COLUMNS, r, strict=True)) for r in decoded.rows]


def test_a_counter_point_becomes_one_row() -> None:
    name = metrics.CARET_CREDITS_CONSUMED.name
    decoded = decode(request(counter(name, {attrs.CARET_PLAN_NAME: "pro"}, 12.5)))
    [row] = rows(decoded)
    assert row["metric_name"] == name
    assert row["kind"] == "sum"
    assert row["value"] == 12.5
    assert (row["temporality"], row["monotonic"]) == ("cumulative", True)
    assert (row["start_ts"], row["point_ts"]) == (NOW - timedelta(hours=1), NOW)
    assert orjson.loads(row["attrs"]) == {attrs.CARET_PLAN_NAME: "pro"}
    assert orjson.loads(row["resource"]) == {attrs.SERVICE_NAME: "gateway"}


def test_the_series_hash_follows_labels_and_resource() -> None:
    name = metrics.CARET_CREDITS_CONSUMED.name
    pro = rows(decode(request(counter(name, {attrs.CARET_PLAN_NAME: "pro"}, 1.0))))[0]
    again = rows(decode(request(counter(name, {attrs.CARET_PLAN_NAME: "pro"}, 2.0))))[0]
    free = rows(decode(request(counter(name, {attrs.CARET_PLAN_NAME: "free"}, 1.0))))[0]
    other_instance = rows(
        decode(request(counter(name, {attrs.CARET_PLAN_NAME: "pro"}, 1.0),
                       resource={attrs.SERVICE_NAME: "gateway", attrs.SERVICE_INSTANCE_ID: "b"}))
    )[0]  # fmt: skip
    assert pro["series_hash"] == again["series_hash"]
    assert len({pro["series_hash"], free["series_hash"], other_instance["series_hash"]}) == 3


def test_metrics_outside_the_registry_and_pseudonym_labels_are_refused() -> None:
    name = metrics.CARET_SIGNUPS.name
    decoded = decode(
        request(
            counter("process.cpu.time", {}, 1.0),
            counter(name, {attrs.ENDUSER_PSEUDO_ID: "v1:" + "a" * 64}, 1.0),
            counter(name, {"my.label": "x"}, 1.0),
            counter(name, {attrs.CARET_PLAN_NAME: "free"}, 1.0, when=NOW - timedelta(days=40)),
            counter(name, {attrs.CARET_PLAN_NAME: "free"}, 1.0),
        )
    )
    assert len(decoded.rows) == 1
    assert decoded.refusals.counts == {UNKNOWN_METRIC: 1, NOT_A_METRIC_LABEL: 2, OUTSIDE_WINDOW: 1}


def test_forbidden_and_pseudonymous_resource_attributes_are_not_kept() -> None:
    name = metrics.CARET_SIGNUPS.name
    decoded = decode(
        request(
            counter(name, {}, 1.0),
            resource={
                attrs.SERVICE_NAME: "g",
                attrs.HOST_NAME: "alices-laptop",
                attrs.USER_ID: "v1:x",
            },
        )
    )
    assert orjson.loads(rows(decoded)[0]["resource"]) == {attrs.SERVICE_NAME: "g"}
    assert decoded.dropped_attributes == {"forbidden": 1, "pseudonymous": 1}


def test_histograms_keep_count_sum_and_buckets() -> None:
    metric = Metric(name=metrics.GEN_AI_CLIENT_OPERATION_DURATION.name, unit="s")
    metric.histogram.aggregation_temporality = CUMULATIVE
    metric.histogram.data_points.add(
        time_unix_nano=unix_nano(NOW), count=4, sum=6.0, min=0.5, max=3.0,
        explicit_bounds=[1.0, 2.0], bucket_counts=[1, 2, 1],
    )  # fmt: skip
    [row] = rows(decode(request(metric)))
    assert (row["kind"], row["count"], row["sum"], row["min"], row["max"]) == (
        "histogram",
        4,
        6.0,
        0.5,
        3.0,
    )
    assert orjson.loads(row["buckets"]) == {"bounds": [1.0, 2.0], "counts": [1, 2, 1]}
    assert row["start_ts"] == datetime(1970, 1, 1, tzinfo=UTC)  # no start time sent
