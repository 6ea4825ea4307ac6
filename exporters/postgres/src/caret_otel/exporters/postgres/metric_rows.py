"""OTLP metrics (business metrics of the registry) to ``raw.metric_points`` rows.

One row per data point, identified by (metric, series, start time, time): a redelivered
point is the same row. A series is the metric plus its resource and point attributes,
hashed. Only metrics of the registry are stored; a point labelled with an attribute
that may not label a metric (a pseudonym, anything outside the registry) is refused -
dropping the label instead would silently merge two series.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import orjson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric

from caret_otel.otlp.values import EPOCH, JsonValue, contains_nul, key_values, time_from_unix_nano
from caret_otel.semconv import metrics
from caret_otel.semconv.policy import Policy, load_policy

from .event_rows import INVALID_VALUE, OUTSIDE_WINDOW, AcceptWindow, Refusals

METRIC_COLUMNS: Final = (
    "metric_name",
    "series_hash",
    "start_ts",
    "point_ts",
    "kind",
    "unit",
    "temporality",
    "monotonic",
    "value",
    "count",
    "sum",
    "min",
    "max",
    "buckets",
    "resource",
    "attrs",
)
REGISTRY_METRICS: Final = frozenset(spec.name for spec in metrics.ALL)
UNKNOWN_METRIC: Final = "unknown_metric"
NOT_A_METRIC_LABEL: Final = "not_a_metric_label"
_TEMPORALITY: Final = {
    AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA: "delta",
    AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE: "cumulative",
}


@dataclass
class DecodedPoints:
    rows: list[tuple[Any, ...]]
    refusals: Refusals
    dropped_attributes: Counter[str]


class MetricRowBuilder:
    def __init__(self, window: AcceptWindow, policy: Policy | None = None) -> None:
        self.window = window
        self.policy = policy or load_policy()

    def decode(self, request: ExportMetricsServiceRequest) -> DecodedPoints:
        result = DecodedPoints([], Refusals(), Counter())
        for resource_metrics in request.resource_metrics:
            resource = self._resource(
                key_values(resource_metrics.resource.attributes), result.dropped_attributes
            )
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    self._metric(metric, resource, result)
        return result

    def _resource(self, values: dict[str, JsonValue], dropped: Counter[str]) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for key, value in values.items():
            rule = self.policy.attributes.get(key)
            if rule is None or rule.privacy in ("forbidden", "pseudonymous"):
                dropped["unknown" if rule is None else rule.privacy] += 1
            elif not contains_nul(value):
                kept[key] = value
        return kept

    def _metric(self, metric: Metric, resource: dict[str, Any], out: DecodedPoints) -> None:
        kind = metric.WhichOneof("data")
        if metric.name not in REGISTRY_METRICS:
            points = len(getattr(metric, kind).data_points) if kind else 0
            out.refusals.add(
                UNKNOWN_METRIC,
                f"metric {metric.name!r} is not a business metric of the registry",
                count=max(points, 1),
            )
            return
        if kind is None:
            return  # a metric without data carries no point to store
        data = getattr(metric, kind)
        temporality = (
            _TEMPORALITY.get(data.aggregation_temporality)
            if kind in ("sum", "histogram", "exponential_histogram")
            else None
        )
        monotonic = data.is_monotonic if kind == "sum" else None
        resource_json = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS).decode()
        for point in data.data_points:
            labels = key_values(point.attributes)
            refused = self._check_labels(metric.name, labels)
            if refused is not None:
                out.refusals.add(NOT_A_METRIC_LABEL, refused)
                continue
            if contains_nul(labels):
                out.refusals.add(INVALID_VALUE, f"{metric.name}: a label contains a NUL character")
                continue
            point_ts = time_from_unix_nano(point.time_unix_nano)
            if point_ts not in self.window:
                out.refusals.add(
                    OUTSIDE_WINDOW,
                    f"{metric.name}: point time {point_ts.isoformat()} is outside the accepted "
                    f"window [{self.window.earliest.isoformat()}, {self.window.latest.isoformat()})",
                )
                continue
            start_ts = (
                time_from_unix_nano(point.start_time_unix_nano)
                if point.start_time_unix_nano
                else EPOCH
            )
            attrs_json = orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode()
            series = hashlib.sha256(
                f"{resource_json}\x1f{attrs_json}".encode(), usedforsecurity=False
            ).hexdigest()
            value, count, total, low, high, buckets = _measures(kind, point)
            out.rows.append(
                (
                    metric.name,
                    series,
                    start_ts,
                    point_ts,
                    kind,
                    metric.unit,
                    temporality,
                    monotonic,
                    value,
                    count,
                    total,
                    low,
                    high,
                    buckets,
                    resource_json,
                    attrs_json,
                )
            )

    def _check_labels(self, metric: str, labels: dict[str, JsonValue]) -> str | None:
        for key in labels:
            rule = self.policy.attributes.get(key)
            if rule is None or not rule.metric:
                return f"{metric}: attribute {key} may not label a metric (a pseudonym, high cardinality, or not in the registry)"
        return None


def _measures(
    kind: str, point: Any
) -> tuple[float | None, int | None, float | None, float | None, float | None, str | None]:
    """(value, count, sum, min, max, buckets JSON) of one data point."""
    if kind in ("sum", "gauge"):
        which = point.WhichOneof("value")
        value = float(point.as_int) if which == "as_int" else point.as_double if which else None
        return value, None, None, None, None, None
    low = point.min if kind != "summary" and point.HasField("min") else None
    high = point.max if kind != "summary" and point.HasField("max") else None
    total = point.sum if kind == "summary" or point.HasField("sum") else None
    buckets: dict[str, Any]
    if kind == "histogram":
        buckets = {"bounds": list(point.explicit_bounds), "counts": list(point.bucket_counts)}
    elif kind == "exponential_histogram":
        buckets = {
            "scale": point.scale,
            "zero_count": point.zero_count,
            "positive": {
                "offset": point.positive.offset,
                "counts": list(point.positive.bucket_counts),
            },
            "negative": {
                "offset": point.negative.offset,
                "counts": list(point.negative.bucket_counts),
            },
        }
    else:
        buckets = {"quantiles": [[q.quantile, q.value] for q in point.quantile_values]}
    return None, point.count, total, low, high, orjson.dumps(buckets).decode()
