"""Build OTLP/JSON export requests for tests from plain Python values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def any_json(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_json(v) for v in value]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": kvs(value)}}
    raise TypeError(type(value))


def kvs(values: Mapping[str, object]) -> list[dict[str, Any]]:
    return [{"key": k, "value": any_json(v)} for k, v in values.items()]


def scope(
    name: str = "caret.test", attributes: Mapping[str, object] | None = None
) -> dict[str, Any]:
    return {"name": name, "version": "1.0", "attributes": kvs(attributes or {})}


def span(
    name: str,
    attributes: Mapping[str, object] | None = None,
    *,
    events: list[tuple[str, Mapping[str, object]]] = (),  # type: ignore[assignment]
    links: list[Mapping[str, object]] = (),  # type: ignore[assignment]
    status_message: str = "",
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "traceId": TRACE_ID,
        "spanId": SPAN_ID,
        "name": name,
        "kind": 3,
        "startTimeUnixNano": "1736589600000000000",
        "endTimeUnixNano": "1736589601000000000",
        "attributes": kvs(attributes or {}),
        "events": [
            {"timeUnixNano": "1736589600500000000", "name": n, "attributes": kvs(a)}
            for n, a in events
        ],
        "links": [{"traceId": TRACE_ID, "spanId": SPAN_ID, "attributes": kvs(a)} for a in links],
    }
    if status_message:
        doc["status"] = {"code": 2, "message": status_message}
    return doc


def traces(
    spans: list[dict[str, Any]],
    resource: Mapping[str, object] | None = None,
    scope_doc: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": kvs(resource or {})},
                "scopeSpans": [{"scope": scope_doc or scope(), "spans": spans}],
            }
        ]
    }


def log_record(
    body: object = None,
    attributes: Mapping[str, object] | None = None,
    *,
    event_name: str = "",
    severity_text: str = "INFO",
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "timeUnixNano": "1736589600000000000",
        "severityNumber": 9,
        "severityText": severity_text,
        "attributes": kvs(attributes or {}),
        "traceId": TRACE_ID,
        "spanId": SPAN_ID,
    }
    if body is not None:
        doc["body"] = any_json(body)
    if event_name:
        doc["eventName"] = event_name
    return doc


def logs(
    records: list[dict[str, Any]],
    resource: Mapping[str, object] | None = None,
    scope_doc: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": kvs(resource or {})},
                "scopeLogs": [{"scope": scope_doc or scope(), "logRecords": records}],
            }
        ]
    }


def number_point(
    value: int | float,
    attributes: Mapping[str, object],
    *,
    time: int = 1736589600000000000,
    exemplar: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    point: dict[str, Any] = {
        "attributes": kvs(attributes),
        "startTimeUnixNano": "1736589500000000000",
        "timeUnixNano": str(time),
    }
    if isinstance(value, int):
        point["asInt"] = str(value)
    else:
        point["asDouble"] = value
    if exemplar is not None:
        point["exemplars"] = [
            {
                "filteredAttributes": kvs(exemplar),
                "timeUnixNano": str(time),
                "asDouble": 1.0,
                "traceId": TRACE_ID,
                "spanId": SPAN_ID,
            }
        ]
    return point


def histogram_point(
    counts: list[int], bounds: list[float], attributes: Mapping[str, object]
) -> dict[str, Any]:
    return {
        "attributes": kvs(attributes),
        "startTimeUnixNano": "1736589500000000000",
        "timeUnixNano": "1736589600000000000",
        "count": str(sum(counts)),
        "sum": float(sum(counts)),
        "bucketCounts": [str(c) for c in counts],
        "explicitBounds": bounds,
        "min": 0.5,
        "max": 9.0,
    }


def metric(name: str, kind: str, points: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"dataPoints": points}
    if kind in ("sum", "histogram"):
        data["aggregationTemporality"] = 2
    if kind == "sum":
        data["isMonotonic"] = True
    return {"name": name, "unit": "1", kind: data, **extra}


def metrics(
    metric_docs: list[dict[str, Any]],
    resource: Mapping[str, object] | None = None,
    scope_doc: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "resourceMetrics": [
            {
                "resource": {"attributes": kvs(resource or {})},
                "scopeMetrics": [{"scope": scope_doc or scope(), "metrics": metric_docs}],
            }
        ]
    }
