"""HTTP request bodies, the one implementation for every server of caret-otel.

Reading: the body is read from the ASGI stream chunk by chunk and refused (413) as soon
as it passes the limit, so a client cannot make a server buffer more than it allows.
A gzip or zstd body is inflated with a hard output cap, which defuses compression
bombs. OTLP bodies (protobuf or OTLP/JSON) are then decoded into the request message.

Every refusal is a :class:`~caret_otel.core.errors.RequestError` naming the field
(``Content-Type``, ``Content-Encoding``, ``Content-Length``, ``body`` or a JSON path);
each server renders it in its own format (the gateway as its JSON error document, the
OTLP endpoints as a ``google.rpc.Status``). Messages describe the input's shape, never
echo its content.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator, Iterable
from typing import Any, Final, TypeVar

import orjson
import zstandard
from google.protobuf import json_format as protobuf_json
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

from caret_otel.core.errors import RequestError
from caret_otel.otlp.json_format import DOCUMENT, OtlpJsonError, parse_message

JSON: Final = "application/json"
PROTOBUF: Final = "application/x-protobuf"
OTLP_MEDIA_TYPES: Final = (PROTOBUF, JSON)
"""The two encodings of OTLP/HTTP."""

IDENTITY: Final = "identity"
GZIP: Final = "gzip"
ZSTD: Final = "zstd"
CODINGS: Final = (IDENTITY, GZIP, ZSTD)
"""Every Content-Encoding we inflate (the OTLP exporters of the Collector and the SDKs
send gzip or zstd)."""
_ALIASES: Final = {"": IDENTITY, IDENTITY: IDENTITY, GZIP: GZIP, "x-gzip": GZIP, ZSTD: ZSTD}

MAX_INFLATED_BYTES: Final = 128 << 20
"""Default cap of a body once inflated (defuses compression bombs)."""

_ZSTD_STEP: Final = 1 << 10
"""zstd input fed per step: a zstd block expands at most ~32,000 times, so the output
is checked against the limit every 32 MiB at worst (zstandard's streaming decompressor
has no output cap of its own)."""
_MAX_ERROR_CHARS: Final = 300

_RPC_CODES: Final = {400: 3, 401: 16, 403: 7, 408: 4, 413: 8, 415: 3, 422: 3, 429: 8, 503: 14}
"""HTTP status -> ``google.rpc.Code`` of the OTLP/HTTP error body (INVALID_ARGUMENT,
UNAUTHENTICATED, PERMISSION_DENIED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE)."""
_RPC_UNKNOWN: Final = 2

M = TypeVar("M", bound=Message)


def media_type(content_type: str | None, accepted: Iterable[str] = OTLP_MEDIA_TYPES) -> str:
    """The request's media type (without parameters) if it is one of ``accepted``; else 415."""
    accepted = tuple(accepted)
    value = (content_type or "").split(";", 1)[0].strip().lower()
    if value not in accepted:
        # The sent value is not echoed back (messages never quote input).
        raise RequestError.unsupported_media_type(
            f"Content-Type {'is missing' if not value else 'is not accepted here'}; "
            f"send {' or '.join(accepted)}",
            field="Content-Type",
        )
    return value


def content_coding(content_encoding: str | None, accepted: Iterable[str] = CODINGS) -> str:
    """``identity``, ``gzip`` or ``zstd``; anything else (or a coding not in ``accepted``)
    is a 415 (RFC 9110 §15.5.16)."""
    accepted = tuple(accepted)
    coding = _ALIASES.get((content_encoding or "").strip().lower())
    if coding is None or coding not in accepted:
        names = " or ".join(c for c in accepted if c != IDENTITY)
        raise RequestError.unsupported_media_type(
            f"Content-Encoding must be {names} or absent", field="Content-Encoding"
        )
    return coding


def check_declared_length(content_length: str | None, max_bytes: int) -> None:
    """Refuse early when ``Content-Length`` already announces too much."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise RequestError.bad_request(
            "bad_content_length", "Content-Length is not an integer", field="Content-Length"
        ) from None
    if declared > max_bytes:
        raise RequestError.too_large(
            f"body of {declared} bytes exceeds the limit of {max_bytes} bytes", field="body"
        )


async def read_limited(chunks: AsyncIterator[bytes], max_bytes: int) -> bytes:
    """Join the body's chunks, refusing (413) once more than ``max_bytes`` arrived."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise RequestError.too_large(
                f"body exceeds the limit of {max_bytes} bytes", field="body"
            )
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def gunzip_limited(data: bytes, max_bytes: int) -> bytes:
    """Inflate a (possibly multi-member) gzip body to at most ``max_bytes``."""
    out: list[bytes] = []
    produced = 0
    remaining = data
    while True:  # several members may follow each other; an empty body is truncated
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(remaining, max_bytes - produced + 1)
        except zlib.error as exc:
            raise RequestError.bad_request(
                "bad_gzip", f"body is not valid gzip ({exc})", field="body"
            ) from None
        produced += len(chunk)
        if produced > max_bytes or inflater.unconsumed_tail:
            raise RequestError.too_large(
                f"gzip body inflates beyond the limit of {max_bytes} bytes", field="body"
            )
        if not inflater.eof:
            raise RequestError.bad_request("bad_gzip", "gzip body is truncated", field="body")
        out.append(chunk)
        remaining = inflater.unused_data
        if not remaining:
            return b"".join(out)


def unzstd_limited(data: bytes, max_bytes: int) -> bytes:
    """Inflate a (possibly multi-frame) zstd body to at most ``max_bytes``."""
    out = bytearray()
    remaining = memoryview(data)
    while True:  # several frames may follow each other; an empty body is truncated
        frame = zstandard.ZstdDecompressor().decompressobj()
        offset = 0
        while not frame.eof:
            if offset >= len(remaining):
                raise RequestError.bad_request("bad_zstd", "zstd body is truncated", field="body")
            step = remaining[offset : offset + _ZSTD_STEP]
            offset += len(step)
            try:
                out += frame.decompress(step)
            except zstandard.ZstdError as exc:
                raise RequestError.bad_request(
                    "bad_zstd", f"body is not valid zstd ({exc})", field="body"
                ) from None
            if len(out) > max_bytes:
                raise RequestError.too_large(
                    f"zstd body inflates beyond the limit of {max_bytes} bytes", field="body"
                )
        remaining = memoryview(frame.unused_data + remaining[offset:].tobytes())
        if not remaining:
            return bytes(out)


def inflate(
    data: bytes, content_encoding: str | None, *, max_bytes: int = MAX_INFLATED_BYTES
) -> bytes:
    """``data`` without its Content-Encoding (gzip, zstd or none), at most ``max_bytes``."""
    coding = content_coding(content_encoding)
    if coding == GZIP:
        return gunzip_limited(data, max_bytes)
    if coding == ZSTD:
        return unzstd_limited(data, max_bytes)
    return data


async def read_body(
    chunks: AsyncIterator[bytes],
    *,
    content_length: str | None,
    content_encoding: str | None,
    max_body_bytes: int,
    max_decompressed_bytes: int,
) -> bytes:
    """The request body, read within ``max_body_bytes`` and inflated within
    ``max_decompressed_bytes``, or a :class:`RequestError` (400/413/415)."""
    coding = content_coding(content_encoding)
    check_declared_length(content_length, max_body_bytes)
    raw = await read_limited(chunks, max_body_bytes)
    return inflate(raw, coding, max_bytes=max_decompressed_bytes)


_MAGIC_NUMBERS = ((b"\x1f\x8b", GZIP), (b"\x28\xb5\x2f\xfd", ZSTD))


def undeclared_coding(body: bytes) -> RequestError | None:
    """A 400 saying which Content-Encoding to add when ``body`` is compressed without one."""
    for magic, coding in _MAGIC_NUMBERS:
        if body.startswith(magic):
            return RequestError.bad_request(
                "undeclared_encoding",
                f"body is {coding}-compressed but the request has no Content-Encoding: "
                f"add 'Content-Encoding: {coding}'",
                field="Content-Encoding",
            )
    return None


def parse_json(body: bytes) -> Any:
    """The JSON document of a request body, or a 400 (``bad_json``) naming the body."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise undeclared_coding(body) or RequestError.bad_request(
            "bad_json",
            f"body is not valid JSON (line {exc.lineno}, column {exc.colno})",
            field="body",
        ) from None


_PARSE_FIELD = re.compile(r"Failed to parse (\w+) field")


def _bad_otlp_json(error: OtlpJsonError, name: str) -> RequestError:
    if error.field == DOCUMENT:
        # protobuf's ParseError quotes the offending value: name the field only.
        found = _PARSE_FIELD.findall(error.reason)
        if found:
            return RequestError.bad_request(
                "bad_otlp_json",
                f"body is not a valid OTLP/JSON {name}: field {found[-1]} has the wrong "
                "type or value (see the OTLP/JSON encoding of its protobuf type)",
                field=found[-1],
            )
        return RequestError.bad_request(
            "bad_otlp_json",
            f"body is not a valid OTLP/JSON {name}: a field has the wrong type or value",
            field="body",
        )
    return RequestError.bad_request("bad_otlp_json", f"{error.key} {error.reason}", field=error.key)


def decode_request(body: bytes, media: str, message_type: type[M]) -> M:
    """Parse an (inflated) OTLP export request, or raise a 400 naming what is wrong.

    An empty body is an empty request, as the OTLP specification allows. OTLP/JSON goes
    through :mod:`caret_otel.otlp.json_format` (hex ids, unknown fields ignored as the
    specification asks of receivers, no recursion on deep bodies).
    """
    message = message_type()
    name = message_type.DESCRIPTOR.name
    if media == PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RecursionError, RuntimeError, ValueError) as exc:
            raise undeclared_coding(body) or RequestError.bad_request(
                "bad_protobuf", f"body is not a valid protobuf {name} ({exc})", field="body"
            ) from None
        return message
    if not body.strip():
        return message
    document = parse_json(body)
    if not isinstance(document, dict):
        raise RequestError.bad_request(
            "bad_otlp_json", f"body must be a JSON object ({name})", field="body"
        )
    try:
        return parse_message(document, message, ignore_unknown_fields=True)
    except OtlpJsonError as exc:
        raise _bad_otlp_json(exc, name) from None


def encode_response(message: Message, media: str) -> bytes:
    """An OTLP response in the request's encoding."""
    if media == JSON:
        return orjson.dumps(protobuf_json.MessageToDict(message))
    return message.SerializeToString()


def rpc_code(status: int) -> int:
    """The ``google.rpc.Code`` of an HTTP error status."""
    return _RPC_CODES.get(status, _RPC_UNKNOWN)


def rpc_status_body(error: RequestError, media: str) -> bytes:
    """``error`` as a ``google.rpc.Status`` (the OTLP/HTTP error payload) in ``media``."""
    return encode_response(Status(code=rpc_code(error.status), message=error.message), media)
