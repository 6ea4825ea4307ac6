"""The privacy engine over OTLP export requests (what the gateway receives from services).

Each ``scrub_*_request`` mutates the request in place and returns how many records
(spans, log records, metric data points) it removed because their user opted out;
the gateway reports them as rejected in the OTLP partial-success answer.

Every string field of the three export requests is covered; :data:`OTLP_FIELDS` says
how, field by field (a test walks the protobuf descriptors and fails on a field it does
not list, so a new OTLP release cannot open a hole). Fields protobuf does not know
(from a newer sender) are discarded before anything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, MutableSequence, Sequence
from typing import Any, Final, TypeVar

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from caret_otel.otlp.values import (
    UNSUPPORTED,
    any_to_python,
    attributes_to_dict,
    python_to_any,
    replace_attributes,
)
from caret_otel.processors.privacy import report as reasons
from caret_otel.processors.privacy.consent import USER_ATTRIBUTES, ConsentStore, opted_out_user
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.report import ScrubReport, reportable_key
from caret_otel.semconv.policy import ValueShape

DATA_POINT: Final = "data_point"
"""Report key for metric data points merged or dropped after scrubbing."""
METRIC_KEY_PREFIX: Final = "metric:"
"""Report keys of metrics that are not in the registry (dropped whole)."""
SCHEMA_URL_RE: Final = re.compile(
    r"https://opentelemetry\.io/schemas/[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"
)
"""The only schema URL kept: upstream's (the Collector's pass uses the same expression)."""
VERSION_SHAPE: Final = "semver"
_ENTITY_TYPE_RE: Final = re.compile(r"[a-z][a-z0-9._]{0,63}")

_SCRUBBED = "free text: redacted (secrets and personal data), cut to the length limit"
_SCHEMA = "kept only when it is https://opentelemetry.io/schemas/<version>, else cleared"
_IDS = "kept: random trace/span ids identify nothing outside the trace"
OTLP_FIELDS: Final[dict[str, str]] = {
    "opentelemetry.proto.common.v1.KeyValue.key": (
        "registry attribute names only (attributes and log-body maps); any other key is "
        "dropped, counted `unknown`"
    ),
    "opentelemetry.proto.common.v1.AnyValue.string_value": (
        "an attribute value obeys its key's registry rule (value shape, free-text redaction, "
        "pseudonym, coarse form); a string log body is free text"
    ),
    "opentelemetry.proto.common.v1.AnyValue.bytes_value": "dropped (cannot be inspected)",
    "opentelemetry.proto.common.v1.InstrumentationScope.name": _SCRUBBED,
    "opentelemetry.proto.common.v1.InstrumentationScope.version": (
        "kept only when it matches the `semver` shape, else cleared"
    ),
    "opentelemetry.proto.common.v1.EntityRef.type": (
        "the entity ref is kept only with a lower-case type and its id keys among the kept "
        "resource attributes; else dropped"
    ),
    "opentelemetry.proto.common.v1.EntityRef.schema_url": _SCHEMA,
    "opentelemetry.proto.common.v1.EntityRef.id_keys": "only keys of kept resource attributes",
    "opentelemetry.proto.common.v1.EntityRef.description_keys": (
        "only keys of kept resource attributes"
    ),
    "opentelemetry.proto.trace.v1.ResourceSpans.schema_url": _SCHEMA,
    "opentelemetry.proto.trace.v1.ScopeSpans.schema_url": _SCHEMA,
    "opentelemetry.proto.trace.v1.Span.name": _SCRUBBED,
    "opentelemetry.proto.trace.v1.Span.trace_state": "cleared (vendor free text)",
    "opentelemetry.proto.trace.v1.Span.trace_id": _IDS,
    "opentelemetry.proto.trace.v1.Span.span_id": _IDS,
    "opentelemetry.proto.trace.v1.Span.parent_span_id": _IDS,
    "opentelemetry.proto.trace.v1.Span.Event.name": _SCRUBBED,
    "opentelemetry.proto.trace.v1.Span.Link.trace_state": "cleared (vendor free text)",
    "opentelemetry.proto.trace.v1.Span.Link.trace_id": _IDS,
    "opentelemetry.proto.trace.v1.Span.Link.span_id": _IDS,
    "opentelemetry.proto.trace.v1.Status.message": _SCRUBBED,
    "opentelemetry.proto.logs.v1.ResourceLogs.schema_url": _SCHEMA,
    "opentelemetry.proto.logs.v1.ScopeLogs.schema_url": _SCHEMA,
    "opentelemetry.proto.logs.v1.LogRecord.event_name": (
        "a registry event name is kept; any other is free text (redacted)"
    ),
    "opentelemetry.proto.logs.v1.LogRecord.severity_text": _SCRUBBED,
    "opentelemetry.proto.logs.v1.LogRecord.trace_id": _IDS,
    "opentelemetry.proto.logs.v1.LogRecord.span_id": _IDS,
    "opentelemetry.proto.metrics.v1.ResourceMetrics.schema_url": _SCHEMA,
    "opentelemetry.proto.metrics.v1.ScopeMetrics.schema_url": _SCHEMA,
    "opentelemetry.proto.metrics.v1.Metric.name": (
        "registry metric names only; any other metric is dropped whole, counted"
    ),
    "opentelemetry.proto.metrics.v1.Metric.unit": "replaced by the registry's unit",
    "opentelemetry.proto.metrics.v1.Metric.description": "replaced by the registry's brief",
    "opentelemetry.proto.metrics.v1.Exemplar.trace_id": _IDS,
    "opentelemetry.proto.metrics.v1.Exemplar.span_id": _IDS,
}
"""Every string and bytes field of the OTLP export requests, and what happens to it."""


def clean_schema_url(url: str, report: ScrubReport) -> str:
    """``url`` when it is upstream's schema URL (or empty), else "" (counted)."""
    if url and SCHEMA_URL_RE.fullmatch(url) is None:
        report.drop("schema_url", reasons.SHAPE)
        return ""
    return url


def clean_scope_version(version: str, engine: PrivacyEngine, report: ScrubReport) -> str:
    """``version`` when it is a version number (the ``semver`` shape), else ""."""
    if not version:
        return version
    shape: ValueShape | None = engine.policy.shapes.get(VERSION_SHAPE)
    if shape is None or not engine.shape_ok("scope.version", shape, version):
        report.drop("scope.version", reasons.SHAPE)
        return ""
    return version


def _schema_url(holder: Any, report: ScrubReport) -> None:
    if holder.schema_url and SCHEMA_URL_RE.fullmatch(holder.schema_url) is None:
        holder.schema_url = ""
        report.drop("schema_url", reasons.SHAPE)


def _scrub_kvs(
    kvs: MutableSequence[KeyValue],
    engine: PrivacyEngine,
    report: ScrubReport,
    *,
    metric: bool = False,
    raw: Mapping[str, object] | None = None,
) -> int:
    """Scrub a KeyValue list in place; returns how many attributes were removed."""
    if not kvs:
        return 0
    values = attributes_to_dict(kvs) if raw is None else raw
    scrubbed = engine.scrub_attributes(values, report, metric=metric)
    replace_attributes(kvs, scrubbed)
    return len(values) - len(scrubbed)


def _scrub_resource(resource: Resource, engine: PrivacyEngine, report: ScrubReport) -> None:
    resource.dropped_attributes_count += _scrub_kvs(resource.attributes, engine, report)
    if resource.entity_refs:
        kept = {kv.key for kv in resource.attributes}
        drop: list[int] = []
        for index, ref in enumerate(resource.entity_refs):
            for keys in (ref.id_keys, ref.description_keys):
                remaining = [k for k in keys if k in kept]
                del keys[:]
                keys.extend(remaining)
            _schema_url(ref, report)
            if not ref.id_keys or _ENTITY_TYPE_RE.fullmatch(ref.type) is None:
                report.drop("entity_ref", reasons.SHAPE)
                drop.append(index)
        _delete_indexes(resource.entity_refs, drop)


def _scrub_scope(scope: InstrumentationScope, engine: PrivacyEngine, report: ScrubReport) -> None:
    if scope.name:
        scope.name = engine.scrub_name(scope.name, report)
    if scope.version:
        scope.version = clean_scope_version(scope.version, engine, report)
    scope.dropped_attributes_count += _scrub_kvs(scope.attributes, engine, report)


def _delete_indexes(container: MutableSequence[Any], indexes: Sequence[int]) -> None:
    for index in reversed(indexes):
        del container[index]


def _user_attributes_present(kvs: Sequence[KeyValue]) -> bool:
    return any(kv.key in _USER_KEYS for kv in kvs)


_USER_KEYS: Final = frozenset(USER_ATTRIBUTES)


def _opted_out(engine: PrivacyEngine, consent: ConsentStore, *kv_lists: Sequence[KeyValue]) -> bool:
    # Converting attributes is the expensive part; most records carry no user id.
    present = [attributes_to_dict(kvs) for kvs in kv_lists if _user_attributes_present(kvs)]
    return bool(present) and opted_out_user(engine, consent, *present)


_ResourceBlock = TypeVar("_ResourceBlock", ResourceSpans, ResourceLogs)
_ScopeBlock = TypeVar("_ScopeBlock", ScopeSpans, ScopeLogs)
_Record = TypeVar("_Record", Span, LogRecord)


def _scrub_records(
    resource_blocks: MutableSequence[_ResourceBlock],
    scope_blocks: Callable[[_ResourceBlock], Sequence[_ScopeBlock]],
    records: Callable[[_ScopeBlock], MutableSequence[_Record]],
    scrub_record: Callable[[_Record, PrivacyEngine, ConsentStore, ScrubReport], bool],
    engine: PrivacyEngine,
    consent: ConsentStore,
    report: ScrubReport,
) -> int:
    """Scrub the resources, scopes and records of a trace or logs request in place;
    returns the number of records removed for opt-out (``scrub_record`` returns False)."""
    rejected = 0
    drop_resources: list[int] = []
    for r_index, resource_block in enumerate(resource_blocks):
        if _opted_out(engine, consent, resource_block.resource.attributes):
            rejected += sum(len(records(sb)) for sb in scope_blocks(resource_block))
            drop_resources.append(r_index)
            continue
        _scrub_resource(resource_block.resource, engine, report)
        _schema_url(resource_block, report)
        for scope_block in scope_blocks(resource_block):
            _scrub_scope(scope_block.scope, engine, report)
            _schema_url(scope_block, report)
            block_records = records(scope_block)
            drop_records = [
                index
                for index, record in enumerate(block_records)
                if not scrub_record(record, engine, consent, report)
            ]
            rejected += len(drop_records)
            _delete_indexes(block_records, drop_records)
    _delete_indexes(resource_blocks, drop_resources)
    return rejected


# --- traces ---------------------------------------------------------------------------------


def scrub_trace_request(
    req: ExportTraceServiceRequest,
    engine: PrivacyEngine,
    consent: ConsentStore,
    report: ScrubReport,
) -> int:
    """Scrub every span in place; returns the number of spans removed for opt-out."""
    req.DiscardUnknownFields()
    return _scrub_records(
        req.resource_spans,
        lambda resource_spans: resource_spans.scope_spans,
        lambda scope_spans: scope_spans.spans,
        _scrub_span,
        engine,
        consent,
        report,
    )


def _scrub_span(
    span: Span, engine: PrivacyEngine, consent: ConsentStore, report: ScrubReport
) -> bool:
    """Scrub one span in place; False when it must be removed (its user opted out)."""
    lists = [span.attributes, *(e.attributes for e in span.events)]
    lists.extend(link.attributes for link in span.links)
    if _opted_out(engine, consent, *lists):
        return False
    span.name = engine.scrub_name(span.name, report)
    span.dropped_attributes_count += _scrub_kvs(span.attributes, engine, report)
    for event in span.events:
        event.name = engine.scrub_name(event.name, report)
        event.dropped_attributes_count += _scrub_kvs(event.attributes, engine, report)
    for link in span.links:
        link.dropped_attributes_count += _scrub_kvs(link.attributes, engine, report)
        link.trace_state = ""
    span.trace_state = ""
    if span.status.message:
        span.status.message = engine.scrub_description(span.status.message, report)
    return True


# --- logs -----------------------------------------------------------------------------------


def scrub_logs_request(
    req: ExportLogsServiceRequest,
    engine: PrivacyEngine,
    consent: ConsentStore,
    report: ScrubReport,
) -> int:
    """Scrub every log record in place; returns the number removed for opt-out."""
    req.DiscardUnknownFields()
    return _scrub_records(
        req.resource_logs,
        lambda resource_logs: resource_logs.scope_logs,
        lambda scope_logs: scope_logs.log_records,
        _scrub_log_record,
        engine,
        consent,
        report,
    )


def _scrub_log_record(
    record: LogRecord, engine: PrivacyEngine, consent: ConsentStore, report: ScrubReport
) -> bool:
    """Scrub one log record in place; False when it must be removed (opt-out)."""
    body: object = None
    if record.HasField("body"):
        body = any_to_python(record.body)
    body_map = body if isinstance(body, Mapping) else None
    if _opted_out(engine, consent, record.attributes) or (
        body_map is not None and opted_out_user(engine, consent, body_map)
    ):
        return False
    record.dropped_attributes_count += _scrub_kvs(record.attributes, engine, report)
    if record.HasField("body"):
        if isinstance(body, str):
            record.body.string_value = engine.scrub_text(body, report, key="body")
        else:
            scrubbed = None if body is UNSUPPORTED else engine.scrub_body(body, report)
            if body is UNSUPPORTED:
                report.drop("body", reasons.TYPE)
            record.ClearField("body")
            python_to_any(scrubbed, record.body)
    if record.event_name and record.event_name not in engine.policy.events:
        record.event_name = engine.scrub_name(record.event_name, report)
    if record.severity_text:
        record.severity_text = engine.scrub_name(record.severity_text, report)
    return True


# --- metrics --------------------------------------------------------------------------------


def scrub_metrics_request(
    req: ExportMetricsServiceRequest,
    engine: PrivacyEngine,
    consent: ConsentStore,
    report: ScrubReport,
) -> int:
    """Scrub every metric in place; returns the number of data points removed for opt-out.

    Data-point attributes keep only metric-safe keys; points whose attributes become
    equal after that are merged (sums and histograms add up, a gauge keeps its latest
    value) so that no two points of a metric describe the same series.
    """
    req.DiscardUnknownFields()
    rejected = 0
    drop_resources: list[int] = []
    for r_index, resource_metrics in enumerate(req.resource_metrics):
        if _opted_out(engine, consent, resource_metrics.resource.attributes):
            rejected += sum(
                _point_count(m) for sm in resource_metrics.scope_metrics for m in sm.metrics
            )
            drop_resources.append(r_index)
            continue
        _scrub_resource(resource_metrics.resource, engine, report)
        _schema_url(resource_metrics, report)
        for scope_metrics in resource_metrics.scope_metrics:
            _scrub_scope(scope_metrics.scope, engine, report)
            _schema_url(scope_metrics, report)
            drop_metrics: list[int] = []
            for m_index, metric in enumerate(scope_metrics.metrics):
                if metric.name not in engine.policy.metrics:
                    # Only registry metrics go on: a name is not a label the registry
                    # could judge, and every series costs Prometheus a year of storage.
                    report.drop(reportable_key(METRIC_KEY_PREFIX + metric.name), reasons.UNKNOWN)
                    drop_metrics.append(m_index)
                    continue
                removed, empty = _scrub_metric(metric, engine, consent, report)
                rejected += removed
                if empty:
                    drop_metrics.append(m_index)
            _delete_indexes(scope_metrics.metrics, drop_metrics)
    _delete_indexes(req.resource_metrics, drop_resources)
    return rejected


def _data_points(metric: Metric) -> MutableSequence[Any] | None:
    kind = metric.WhichOneof("data")
    if kind is None:
        return None
    points: MutableSequence[Any] = getattr(metric, kind).data_points
    return points


def _point_count(metric: Metric) -> int:
    points = _data_points(metric)
    return 0 if points is None else len(points)


def _scrub_metric(
    metric: Metric, engine: PrivacyEngine, consent: ConsentStore, report: ScrubReport
) -> tuple[int, bool]:
    """Scrub one registry metric in place; returns (points removed for opt-out, now empty).
    Unit and description come from the registry, whatever the sender wrote."""
    spec = engine.policy.metrics[metric.name]
    metric.unit = str(spec.get("unit", ""))
    metric.description = str(spec.get("description", ""))
    _scrub_kvs(metric.metadata, engine, report)
    points = _data_points(metric)
    if points is None:
        return 0, False
    had_points = len(points) > 0
    opted_out: list[int] = []
    for index, point in enumerate(points):
        exemplar_lists = [e.filtered_attributes for e in point.exemplars]
        if _opted_out(engine, consent, point.attributes, *exemplar_lists):
            opted_out.append(index)
            continue
        _scrub_kvs(point.attributes, engine, report, metric=True)
        for exemplar in point.exemplars:
            _scrub_kvs(exemplar.filtered_attributes, engine, report, metric=True)
    _delete_indexes(points, opted_out)
    _merge_equal_series(metric, points, report)
    return len(opted_out), had_points and len(points) == 0


def _series_key(point: Any) -> tuple[tuple[str, bytes], ...]:
    return tuple(sorted((kv.key, kv.value.SerializeToString()) for kv in point.attributes))


def _merge_equal_series(metric: Metric, points: MutableSequence[Any], report: ScrubReport) -> None:
    if len(points) < 2:
        return
    first_of: dict[tuple[tuple[str, bytes], ...], int] = {}
    merged_away: list[int] = []
    merge = _MERGERS.get(metric.WhichOneof("data") or "", _keep_latest)
    for index, point in enumerate(points):
        key = _series_key(point)
        if key not in first_of:
            first_of[key] = index
            continue
        if not merge(points[first_of[key]], point):
            report.drop(DATA_POINT, reasons.DUPLICATE)
        merged_away.append(index)
    _delete_indexes(points, merged_away)


def _merge_times(into: Any, other: Any) -> None:
    if other.start_time_unix_nano and (
        not into.start_time_unix_nano or other.start_time_unix_nano < into.start_time_unix_nano
    ):
        into.start_time_unix_nano = other.start_time_unix_nano
    into.time_unix_nano = max(into.time_unix_nano, other.time_unix_nano)
    into.exemplars.extend(other.exemplars)


def _merge_sum(into: Any, other: Any) -> bool:
    """Add ``other`` into ``into`` (points of one Sum share temporality and monotonicity)."""
    if into.WhichOneof("value") == "as_int" and other.WhichOneof("value") == "as_int":
        into.as_int += other.as_int
    else:
        into.as_double = _number(into) + _number(other)
    _merge_times(into, other)
    return True


def _number(point: Any) -> float:
    return float(point.as_int) if point.WhichOneof("value") == "as_int" else float(point.as_double)


def _merge_histogram(into: Any, other: Any) -> bool:
    if list(into.explicit_bounds) != list(other.explicit_bounds) or len(into.bucket_counts) != len(
        other.bucket_counts
    ):
        return _keep_latest(into, other)
    into.count += other.count
    if other.HasField("sum"):
        into.sum = (into.sum if into.HasField("sum") else 0.0) + other.sum
    counts = [a + b for a, b in zip(into.bucket_counts, other.bucket_counts, strict=True)]
    del into.bucket_counts[:]
    into.bucket_counts.extend(counts)
    if other.HasField("min"):
        into.min = min(into.min, other.min) if into.HasField("min") else other.min
    if other.HasField("max"):
        into.max = max(into.max, other.max) if into.HasField("max") else other.max
    _merge_times(into, other)
    return True


def _keep_latest(into: Any, other: Any) -> bool:
    """Points that cannot be added (gauges, summaries, exponential histograms): the
    later one wins. Returns False: one value was not kept."""
    if other.time_unix_nano > into.time_unix_nano:
        into.CopyFrom(other)
    return False


_MERGERS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "sum": _merge_sum,
    "histogram": _merge_histogram,
}
