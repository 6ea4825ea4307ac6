"""OTLP/HTTP request and response bodies: protobuf and OTLP/JSON.

OTLP/JSON is the protobuf JSON mapping with one deviation: trace and span ids are hex
strings, not base64. Before handing a JSON body to ``json_format`` we rewrite those
ids to base64 (iteratively, so a deeply nested body cannot exhaust the stack); unknown
fields are ignored as the spec asks of receivers. Responses use the request's
encoding.
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from caret_otel.gateway.body import JSON, PROTOBUF
from caret_otel.gateway.errors import RequestError

M = TypeVar("M", bound=Message)

# Ids are the only bytes fields OTLP/JSON writes as hex (spans, links, log records,
# exemplars). Attribute keys never collide: they are values of "key", not JSON keys.
_HEX_ID_KEYS = frozenset(
    {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
)
_ID_BYTES = {"traceId": 16, "trace_id": 16}  # span ids are 8 bytes
_MAX_ERROR_CHARS = 300


def _hex_ids_to_base64(document: Any) -> None:
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _HEX_ID_KEYS and isinstance(value, str):
                    try:
                        raw = bytes.fromhex(value)
                    except ValueError:
                        raise RequestError.bad_request(
                            "bad_otlp_json", f"{key} must be a hex string", field=key
                        ) from None
                    expected = _ID_BYTES.get(key, 8)
                    if raw and len(raw) != expected:
                        raise RequestError.bad_request(
                            "bad_otlp_json", f"{key} must be {expected * 2} hex digits", field=key
                        )
                    node[key] = base64.b64encode(raw).decode("ascii")
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))


def decode_request(body: bytes, media: str, message_type: type[M]) -> M:
    """Parse an OTLP export request, or raise a 400 naming what is wrong."""
    message = message_type()
    name = message_type.DESCRIPTOR.name
    if media == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise RequestError.bad_request(
                "bad_protobuf", f"body is not a valid protobuf {name} ({exc})", field="body"
            ) from None
        return message
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError.bad_request(
            "bad_json", f"body is not valid JSON ({exc})", field="body"
        ) from None
    if not isinstance(document, dict):
        raise RequestError.bad_request(
            "bad_otlp_json", f"body must be a JSON object ({name})", field="body"
        )
    _hex_ids_to_base64(document)
    try:
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise RequestError.bad_request(
            "bad_otlp_json",
            f"body is not a valid OTLP/JSON {name}: {str(exc)[:_MAX_ERROR_CHARS]}",
            field="body",
        ) from None
    return message


def encode_response(message: Message, media: str) -> bytes:
    if media == JSON:
        text: str = json_format.MessageToJson(message, indent=None)
        return text.encode("utf-8")
    return message.SerializeToString()
