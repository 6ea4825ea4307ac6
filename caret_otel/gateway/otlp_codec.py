"""OTLP/HTTP request and response bodies: protobuf and OTLP/JSON.

OTLP/JSON bodies are decoded by :mod:`caret_otel.processors.otlp_json` (hex ids,
iterative, unknown fields ignored as the spec asks of receivers); its
:class:`OtlpJsonError` becomes a 400 here. Responses use the request's encoding.
"""

from __future__ import annotations

from typing import TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from caret_otel.gateway.body import JSON, PROTOBUF
from caret_otel.gateway.errors import RequestError
from caret_otel.processors.otlp_json import DOCUMENT, OtlpJsonError, parse_message

M = TypeVar("M", bound=Message)

_MAX_ERROR_CHARS = 300


def _bad_otlp_json(error: OtlpJsonError, name: str) -> RequestError:
    if error.field == DOCUMENT:
        return RequestError.bad_request(
            "bad_otlp_json",
            f"body is not a valid OTLP/JSON {name}: {error.reason[:_MAX_ERROR_CHARS]}",
            field="body",
        )
    return RequestError.bad_request("bad_otlp_json", f"{error.key} {error.reason}", field=error.key)


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
    try:
        return parse_message(document, message, ignore_unknown_fields=True)
    except OtlpJsonError as exc:
        raise _bad_otlp_json(exc, name) from None


def encode_response(message: Message, media: str) -> bytes:
    if media == JSON:
        text: str = json_format.MessageToJson(message, indent=None)
        return text.encode("utf-8")
    return message.SerializeToString()
