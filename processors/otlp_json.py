"""OTLP/JSON <-> protobuf export requests.

OTLP/JSON is protobuf's JSON mapping with two differences that ``json_format`` alone
gets wrong: trace and span ids are hex strings (not base64), and enums are integers.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final, Literal

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SignalKind = Literal["traces", "logs", "metrics"]
ExportRequest = ExportTraceServiceRequest | ExportLogsServiceRequest | ExportMetricsServiceRequest

_ID_FIELDS: Final = frozenset(
    {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
)
_ID_BYTES: Final = {"traceId": 16, "trace_id": 16}  # every other id field is 8 bytes
_KIND_BY_KEY: Final[dict[str, SignalKind]] = {
    "resourceSpans": "traces",
    "resource_spans": "traces",
    "resourceLogs": "logs",
    "resource_logs": "logs",
    "resourceMetrics": "metrics",
    "resource_metrics": "metrics",
}


class OtlpJsonError(ValueError):
    """The document is not a valid OTLP/JSON export request; the message says where."""


def _ids_hex_to_base64(node: Any, path: str) -> Any:
    if isinstance(node, list):
        return [_ids_hex_to_base64(item, f"{path}[{i}]") for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        where = f"{path}.{key}" if path else key
        if key in _ID_FIELDS and isinstance(value, str):
            if not value:
                out[key] = value
                continue
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raise OtlpJsonError(f"{where}: must be a hex string") from None
            expected = _ID_BYTES.get(key, 8)
            if len(raw) != expected:
                raise OtlpJsonError(f"{where}: must be {expected * 2} hex digits")
            out[key] = base64.b64encode(raw).decode("ascii")
        else:
            out[key] = _ids_hex_to_base64(value, where)
    return out


def _ids_base64_to_hex(node: Any) -> Any:
    if isinstance(node, list):
        return [_ids_base64_to_hex(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _ID_FIELDS and isinstance(value, str):
            try:
                out[key] = base64.b64decode(value).hex()
            except binascii.Error:  # not produced by MessageToDict; keep as is
                out[key] = value
        else:
            out[key] = _ids_base64_to_hex(value)
    return out


def signal_kind(document: Mapping[str, Any]) -> SignalKind:
    """Which export request a parsed OTLP/JSON document is."""
    kinds = {_KIND_BY_KEY[k] for k in document if k in _KIND_BY_KEY}
    if len(kinds) != 1:
        raise OtlpJsonError(
            "document: must have exactly one of resourceSpans, resourceLogs, resourceMetrics"
        )
    return kinds.pop()


_REQUEST_TYPES: Final[dict[SignalKind, type[Message]]] = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}


def parse_request(document: Mapping[str, Any]) -> tuple[SignalKind, ExportRequest]:
    """Parse an OTLP/JSON document (already decoded from JSON) into its export request."""
    if not isinstance(document, Mapping):
        raise OtlpJsonError("document: must be a JSON object")
    kind = signal_kind(document)
    message = _REQUEST_TYPES[kind]()
    try:
        json_format.ParseDict(_ids_hex_to_base64(dict(document), ""), message)
    except json_format.ParseError as exc:
        raise OtlpJsonError(f"document: {exc}") from None
    assert isinstance(
        message, ExportTraceServiceRequest | ExportLogsServiceRequest | ExportMetricsServiceRequest
    )
    return kind, message


def request_to_dict(message: ExportRequest) -> dict[str, Any]:
    """An export request as an OTLP/JSON document (hex ids, integer enums)."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    converted: dict[str, Any] = _ids_base64_to_hex(document)
    return converted
