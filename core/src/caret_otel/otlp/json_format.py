"""OTLP/JSON <-> protobuf export requests: the one OTLP/JSON decoder of the package.

OTLP/JSON is protobuf's JSON mapping with two differences that ``json_format`` alone
gets wrong: trace and span ids are hex strings (not base64), and enums are integers.
Ids are rewritten with an explicit stack, so a deeply nested body cannot exhaust the
Python stack. Used by the gateway's OTLP/HTTP receiver (which ignores unknown fields, as
the spec asks of receivers) and by ``caret-otel privacy scrub --format otlp-json``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from caret_otel.core.errors import InputError

SignalKind = Literal["traces", "logs", "metrics"]
ExportRequest = ExportTraceServiceRequest | ExportLogsServiceRequest | ExportMetricsServiceRequest
M = TypeVar("M", bound=Message)

# Ids are the only bytes fields OTLP/JSON writes as hex (spans, links, log records,
# exemplars). Attribute keys never collide: they are values of "key", not JSON keys.
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
DOCUMENT: Final = "document"  # the field named when the document as a whole is wrong


class OtlpJsonError(InputError):
    """The document is not a valid OTLP/JSON export request; the message says where.

    ``field`` is the path of the offending value (``resourceSpans[0]...traceId``) or
    ``"document"``, ``key`` its last JSON key, ``reason`` what is wrong with it.
    """

    def __init__(self, field: str, reason: str, *, key: str = DOCUMENT) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.key = key
        self.reason = reason


# A path built only as far as needed: (parent path, key or list index), None at the root.
_Path = tuple["_Path", str | int] | None


def _render(path: _Path) -> str:
    parts: list[str] = []
    while path is not None:
        path, segment = path
        parts.append(f"[{segment}]" if isinstance(segment, int) else f".{segment}")
    return "".join(reversed(parts)).removeprefix(".")


def _rewrite_ids(document: Mapping[str, Any], convert: Callable[[str, str], str]) -> dict[str, Any]:
    """A copy of ``document`` with every id string passed through ``convert``.

    Iterative; ``convert`` raises ``ValueError(reason)`` for an id it refuses.
    """
    root: dict[str, Any] = {}
    stack: list[tuple[Any, Any, _Path]] = [(document, root, None)]
    while stack:
        source, copy, path = stack.pop()
        items = source.items() if isinstance(source, Mapping) else enumerate(source)
        for key, value in items:
            if isinstance(value, str) and key in _ID_FIELDS:
                try:
                    value = convert(key, value)
                except ValueError as exc:
                    raise OtlpJsonError(_render((path, key)), str(exc), key=key) from None
            elif isinstance(value, dict):
                child: Any = {}
                stack.append((value, child, (path, key)))
                value = child
            elif isinstance(value, list):
                child = [None] * len(value)
                stack.append((value, child, (path, key)))
                value = child
            copy[key] = value
    return root


def _hex_to_base64(key: str, value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError("must be a hex string") from None
    expected = _ID_BYTES.get(key, 8)
    if raw and len(raw) != expected:
        raise ValueError(f"must be {expected * 2} hex digits")
    return base64.b64encode(raw).decode("ascii")


def _base64_to_hex(key: str, value: str) -> str:
    try:
        return base64.b64decode(value).hex()
    except binascii.Error:  # not produced by MessageToDict; keep as is
        return value


def parse_message(
    document: Mapping[str, Any], message: M, *, ignore_unknown_fields: bool = True
) -> M:
    """Fill ``message`` from an OTLP/JSON document (already decoded from JSON).

    Raises :class:`OtlpJsonError` naming the offending field.
    """
    converted = _rewrite_ids(document, _hex_to_base64)
    try:
        json_format.ParseDict(converted, message, ignore_unknown_fields=ignore_unknown_fields)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise OtlpJsonError(DOCUMENT, str(exc)) from None
    return message


def signal_kind(document: Mapping[str, Any]) -> SignalKind:
    """Which export request a parsed OTLP/JSON document is."""
    kinds = {_KIND_BY_KEY[k] for k in document if k in _KIND_BY_KEY}
    if len(kinds) != 1:
        raise OtlpJsonError(
            DOCUMENT, "must have exactly one of resourceSpans, resourceLogs, resourceMetrics"
        )
    return kinds.pop()


_REQUEST_TYPES: Final[dict[SignalKind, type[ExportRequest]]] = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}


def parse_request(
    document: Mapping[str, Any], *, ignore_unknown_fields: bool = False
) -> tuple[SignalKind, ExportRequest]:
    """Parse an OTLP/JSON document (already decoded from JSON) into its export request.

    Stricter than a receiver: the document must hold exactly one signal and, unless
    ``ignore_unknown_fields``, no unknown fields.
    """
    if not isinstance(document, Mapping):
        raise OtlpJsonError(DOCUMENT, "must be a JSON object")
    kind = signal_kind(document)
    message = parse_message(
        document, _REQUEST_TYPES[kind](), ignore_unknown_fields=ignore_unknown_fields
    )
    return kind, message


def request_to_dict(message: ExportRequest) -> dict[str, Any]:
    """An export request as an OTLP/JSON document (hex ids, integer enums)."""
    document = json_format.MessageToDict(message, use_integers_for_enums=True)
    return _rewrite_ids(document, _base64_to_hex)
