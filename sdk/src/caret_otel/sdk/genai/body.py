"""Observers that read a response body as it passes to the caller.

:class:`SseObserver` decodes server-sent events incrementally (see :mod:`.sse`);
:class:`JsonObserver` collects a JSON body to parse it once complete (usage comes last
in a JSON document, so it cannot be read earlier). Either hands what it finds to a
:class:`~caret_otel.sdk.genai.response.ResponseReader`; neither keeps content after
``finish()``.
"""

from __future__ import annotations

import abc

import orjson

from caret_otel.sdk.genai.response import ResponseFacts, ResponseReader
from caret_otel.sdk.genai.sse import SseDecoder

MAX_JSON_BODY_BYTES = 16 << 20
"""A JSON body larger than this is passed through unread (its facts stay unknown)."""

_DONE = b"[DONE]"


class BodyObserver(abc.ABC):
    def __init__(self, reader: ResponseReader) -> None:
        self.reader = reader

    @abc.abstractmethod
    def feed(self, chunk: bytes) -> None: ...

    @abc.abstractmethod
    def finish(self) -> ResponseFacts: ...


class SseObserver(BodyObserver):
    def __init__(self, reader: ResponseReader) -> None:
        super().__init__(reader)
        self._decoder = SseDecoder(reader.wants_event, self._on_event, skippable=reader.skippable)

    def _on_event(self, event: str | None, data: bytes) -> None:
        if data.strip() == _DONE:
            self.reader.read_done()
            return
        if not self.reader.may_carry_facts(event, data):
            return
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        self.reader.read_event(event, document)

    def feed(self, chunk: bytes) -> None:
        self._decoder.feed(chunk)

    def finish(self) -> ResponseFacts:
        self._decoder.close()
        return self.reader.facts


class JsonObserver(BodyObserver):
    def __init__(self, reader: ResponseReader, *, max_bytes: int = MAX_JSON_BODY_BYTES) -> None:
        super().__init__(reader)
        self._chunks: list[bytes] = []
        self._size = 0
        self._max = max_bytes
        self.too_large = False

    def feed(self, chunk: bytes) -> None:
        if self.too_large or not chunk:
            return
        self._size += len(chunk)
        if self._size > self._max:
            self.too_large = True
            self._chunks.clear()
            return
        self._chunks.append(chunk)

    def finish(self) -> ResponseFacts:
        chunks, self._chunks = self._chunks, []
        if chunks and not self.too_large:
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            try:
                document = orjson.loads(body)
            except orjson.JSONDecodeError:
                return self.reader.facts
            self.reader.read_json(document)
        return self.reader.facts


def observer_for(reader: ResponseReader, content_type: str | None) -> BodyObserver:
    """SSE for ``text/event-stream`` bodies, JSON for everything else."""
    if content_type and content_type.lower().startswith("text/event-stream"):
        return SseObserver(reader)
    return JsonObserver(reader)
