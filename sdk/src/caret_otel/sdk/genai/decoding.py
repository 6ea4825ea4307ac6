"""Undo ``Content-Encoding`` for the observer's copy of a streamed body.

A streamed httpx response hands its *raw* bytes to the byte stream we wrap; the
caller's ``iter_bytes``/``iter_lines`` decode them later. httpx asks for gzip and
deflate by default, so the observer decodes those itself (stdlib ``zlib``). Any other
encoding (br, zstd) makes the observer give up on the body: the caller still gets every
byte, only the response facts stay unknown.
"""

from __future__ import annotations

import zlib
from typing import Protocol

from caret_otel.core.errors import InputError


class ChunkDecoder(Protocol):
    def decode(self, chunk: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class IdentityDecoder:
    def decode(self, chunk: bytes) -> bytes:
        return chunk

    def flush(self) -> bytes:
        return b""


class ZlibDecoder:
    """gzip or zlib-wrapped deflate (auto-detected), or raw deflate as some servers send."""

    def __init__(self, encoding: str) -> None:
        # 32 + MAX_WBITS: accept both gzip and zlib headers.
        self._raw_fallback = encoding == "deflate"
        self._decompressor = zlib.decompressobj(32 + zlib.MAX_WBITS)
        self._first = True

    def decode(self, chunk: bytes) -> bytes:
        if self._first and chunk:
            self._first = False
            try:
                return self._decompressor.decompress(chunk)
            except zlib.error:
                if not self._raw_fallback:
                    raise
                self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._decompressor.decompress(chunk)

    def flush(self) -> bytes:
        return self._decompressor.flush()


class UnsupportedEncodingError(InputError):
    pass


def decoder_for(content_encoding: str | None) -> ChunkDecoder:
    """A decoder for the header value; raises :class:`UnsupportedEncodingError` otherwise."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return IdentityDecoder()
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return ZlibDecoder(codings[0])
    raise UnsupportedEncodingError(content_encoding or "")
