"""Byte streams that pass a streamed response through to the caller while observing it.

The caller's ``iter_*``/``read`` calls pull chunks through these wrappers unchanged and
without delay; each chunk is also handed to a :class:`BodyWatch`. When the body ends,
fails or is closed, the GenAI operation is ended with what the watch found:

- read to the end: the facts of the response (usage, finish reasons, ...);
- an exception while reading (timeout, dropped connection): ``error.type`` from it;
- closed early by the caller: the facts seen so far, without token metrics.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx

from caret_otel.sdk.genai.body import BodyObserver
from caret_otel.sdk.genai.decoding import ChunkDecoder
from caret_otel.sdk.genai.operation import GenAIOperation, error_type_of, failure_site
from caret_otel.sdk.genai.response import ResponseFacts

_log = logging.getLogger(__name__)

DECODING_ERROR = httpx.DecodingError.__name__


class BodyWatch:
    """Decoder + observer of one response body; never raises into the caller's path."""

    def __init__(
        self,
        operation: GenAIOperation,
        observer: BodyObserver | None,
        decoder: ChunkDecoder | None,
        *,
        error_type: str | None = None,
    ) -> None:
        self.operation = operation
        self._observer = observer
        self._decoder = decoder
        self._error_type = error_type

    def _give_up(self, stage: str, exc: Exception) -> None:
        # The route and the failure's site only: the body may hold prompt or answer text.
        _log.warning(
            "GenAI response %s failed: %s; its facts stay unknown (provider=%s, api=%s)",
            stage,
            failure_site(exc),
            self.operation.route.provider,
            self.operation.route.shape.value,
        )
        self._observer = None

    def feed(self, chunk: bytes) -> None:
        if self._observer is None or self._decoder is None:
            return
        try:
            self._observer.feed(self._decoder.decode(chunk))
        except Exception as exc:
            # The caller's own decoder fails on the same bytes (httpx.DecodingError),
            # outside the stream we wrap: the body is broken, so the operation failed.
            self._error_type = self._error_type or DECODING_ERROR
            self._give_up("decoding", exc)

    def facts(self) -> ResponseFacts | None:
        if self._observer is None or self._decoder is None:
            return None
        try:
            self._observer.feed(self._decoder.flush())
            return self._observer.finish()
        except Exception as exc:
            self._give_up("parsing", exc)
            return None

    def end(self) -> None:
        self.operation.end(self.facts(), self._error_type)

    def fail(self, exc: BaseException) -> None:
        self.operation.end(self.facts(), self._error_type or error_type_of(exc))


class ObservedSyncStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, watch: BodyWatch) -> None:
        self._inner = inner
        self._watch = watch

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._inner:
                self._watch.feed(chunk)
                yield chunk
        except GeneratorExit:
            raise  # the caller stopped iterating; close() ends the operation
        except BaseException as exc:  # errors and cancellation end the operation
            self._watch.fail(exc)
            raise

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._watch.end()


class ObservedAsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, watch: BodyWatch) -> None:
        self._inner = inner
        self._watch = watch

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                self._watch.feed(chunk)
                yield chunk
        except GeneratorExit:
            raise  # the caller stopped iterating; close() ends the operation
        except BaseException as exc:  # errors and cancellation end the operation
            self._watch.fail(exc)
            raise

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._watch.end()
