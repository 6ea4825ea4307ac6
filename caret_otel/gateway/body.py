"""Reading a request body within limits: size, content type, gzip.

The body is read from the ASGI stream chunk by chunk and refused (413) as soon as it
passes the limit, so a client cannot make the gateway buffer more than it allows. A
gzip body is inflated with a hard output cap, which defuses zip bombs.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterable

from caret_otel.gateway.errors import RequestError

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
_IDENTITY = ("", "identity")
_GZIP = ("gzip", "x-gzip")


def media_type(content_type: str | None, accepted: Iterable[str]) -> str:
    """The request's media type (without parameters) if it is one of ``accepted``; else 415."""
    accepted = tuple(accepted)
    value = (content_type or "").split(";", 1)[0].strip().lower()
    if value not in accepted:
        shown = value or "none"
        raise RequestError.unsupported_media_type(
            f"Content-Type {shown!r} is not accepted here; send {' or '.join(accepted)}",
            field="Content-Type",
        )
    return value


def content_coding(content_encoding: str | None) -> str:
    """``gzip`` or ``identity``; anything else is a 415 (RFC 9110 §15.5.16)."""
    value = (content_encoding or "").strip().lower()
    if value in _IDENTITY:
        return "identity"
    if value in _GZIP:
        return "gzip"
    raise RequestError.unsupported_media_type(
        "Content-Encoding must be gzip or absent", field="Content-Encoding"
    )


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
    while remaining:
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
    return b"".join(out)


async def read_body(
    chunks: AsyncIterator[bytes],
    *,
    content_length: str | None,
    content_encoding: str | None,
    max_body_bytes: int,
    max_decompressed_bytes: int,
) -> bytes:
    """The request body, decoded, or a :class:`RequestError` (400/413/415)."""
    coding = content_coding(content_encoding)
    check_declared_length(content_length, max_body_bytes)
    raw = await read_limited(chunks, max_body_bytes)
    if coding == "gzip":
        return gunzip_limited(raw, max_decompressed_bytes)
    return raw
