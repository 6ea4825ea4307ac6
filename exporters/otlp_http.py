"""OTLP/HTTP request bodies in, OTLP responses out (protobuf or JSON; gzip or zstd).

Follows the OTLP/HTTP specification: the response uses the request's encoding; a
request that cannot be decoded is answered 400 with a ``google.rpc.Status``; records
refused one by one are reported in ``partial_success`` of a 200 answer.
"""

from __future__ import annotations

import zlib
from typing import Final, TypeVar

import orjson
import zstandard
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

from caret_otel.processors.otlp_json import OtlpJsonError, parse_message

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
MAX_BODY_BYTES: Final = 32 << 20
"""Largest request body accepted as sent (a Collector batch is far smaller)."""
MAX_INFLATED_BYTES: Final = 128 << 20
"""Largest body once inflated (defuses compression bombs)."""
_ZSTD_STEP: Final = 1 << 10
"""zstd input fed per step: a zstd block expands at most ~32,000 times, so the output
is checked against the limit every 32 MiB at worst (zstandard's streaming decompressor
has no output cap of its own)."""

M = TypeVar("M", bound=Message)


class PayloadError(Exception):
    """The request cannot be taken as sent: answer ``status`` with ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(content_type: str | None) -> str:
    """The OTLP encoding named by a Content-Type header (415 for anything else)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in (PROTOBUF, JSON):
        return media
    raise PayloadError(
        415,
        f"Content-Type {content_type or '(none)'!r} is not supported; send {PROTOBUF} or {JSON}",
    )


def inflate(
    body: bytes, content_encoding: str | None, *, max_bytes: int = MAX_INFLATED_BYTES
) -> bytes:
    """The body without its Content-Encoding (gzip, zstd or none), at most ``max_bytes``.

    The Collector's business leg sends zstd: it inflates about four times faster than
    gzip, on the exporter's busiest thread (see docs/benchmarks.md)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return _gunzip(body, max_bytes)
    if encoding == "zstd":
        return _unzstd(body, max_bytes)
    raise PayloadError(
        415, f"Content-Encoding {content_encoding!r} is not supported; use gzip or zstd"
    )


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    out = bytearray()
    remaining = body
    while True:  # a gzip stream may hold several members
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(remaining, max_bytes + 1 - len(out))
        except zlib.error as exc:
            raise PayloadError(400, f"body is not valid gzip ({exc})") from None
        if len(out) > max_bytes or inflater.unconsumed_tail:
            raise PayloadError(413, f"gzip body inflates beyond {max_bytes} bytes")
        if not inflater.eof:
            raise PayloadError(400, "gzip body is truncated")
        remaining = inflater.unused_data
        if not remaining:
            return bytes(out)


def _unzstd(body: bytes, max_bytes: int) -> bytes:
    out = bytearray()
    remaining = memoryview(body)
    while True:  # a zstd body may hold several frames
        frame = zstandard.ZstdDecompressor().decompressobj()
        offset = 0
        while not frame.eof:
            if offset >= len(remaining):
                raise PayloadError(400, "zstd body is truncated")
            step = remaining[offset : offset + _ZSTD_STEP]
            offset += len(step)
            try:
                out += frame.decompress(step)
            except zstandard.ZstdError as exc:
                raise PayloadError(400, f"body is not valid zstd ({exc})") from None
            if len(out) > max_bytes:
                raise PayloadError(413, f"zstd body inflates beyond {max_bytes} bytes")
        remaining = memoryview(frame.unused_data + remaining[offset:].tobytes())
        if not remaining:
            return bytes(out)


def decode(body: bytes, media: str, message_type: type[M]) -> M:
    """Parse an (inflated) OTLP request body; 400 when it is not a valid message."""
    message = message_type()
    if media == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise PayloadError(400, not_a_message(message_type.__name__, exc)) from None
        return message
    try:
        document = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise PayloadError(400, f"body is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise PayloadError(400, f"body must be a JSON object ({message_type.__name__})")
    try:
        # One OTLP/JSON decoder for the whole project (hex ids, unknown fields ignored as
        # the spec asks of receivers, no recursion on deep bodies).
        return parse_message(document, message, ignore_unknown_fields=True)
    except OtlpJsonError as exc:
        raise PayloadError(400, not_a_message(message_type.__name__, exc)) from None


def not_a_message(what: str, exc: Exception) -> str:
    """The 400 message for a body that does not parse as ``what``."""
    return f"body is not a valid {what} ({exc})"


def encode(message: Message, media: str) -> bytes:
    if media == PROTOBUF:
        return message.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(message))


def error_body(code: int, message: str, media: str) -> bytes:
    """A ``google.rpc.Status`` body (the OTLP/HTTP error payload)."""
    return encode(Status(code=code, message=message), media)
