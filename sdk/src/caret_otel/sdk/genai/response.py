"""What a GenAI response tells us: id, model, finish reasons and token usage.

One reader per API shape understands both the plain JSON body and the server-sent
events of a streamed response. Readers keep only the scalar facts below; message text,
tool arguments and every other content field are skipped, never stored.

Token counts follow the upstream GenAI conventions: ``input`` includes every input
token, cached ones too. Anthropic reports ``input_tokens`` without the cache reads and
writes, so those are added; OpenAI's ``prompt_tokens``/``input_tokens`` already include
cached tokens.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from typing import Any

from caret_otel.sdk.genai.providers import ApiShape

_ERROR_CODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Keys of chat chunks that carry facts (a finish reason only when it is not null).
_CHAT_FACT_KEYS = re.compile(rb'"usage"|"error"|"finish_reason"\s*:\s*(?!null)')
# ... and what else makes a chunk of chat events worth decoding.
_CHAT_CHUNK_WITH_FACTS = re.compile(_CHAT_FACT_KEYS.pattern + rb"|event:|\[DONE\]")
OTHER_ERROR = "_OTHER"
"""Upstream's fallback error type, used when a provider's error code is not a short token."""


@dataclass
class ResponseFacts:
    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    """All input tokens, cached ones included (the upstream definition)."""
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    provider_error: str | None = None
    """Error code the provider reported inside a response body (e.g. an SSE error event)."""
    complete: bool = False
    """The provider signalled the end of the response (final event or whole JSON body)."""


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def error_code(value: Any) -> str:
    """A provider error code, if it is a short identifier; otherwise ``_OTHER``."""
    text = _text(value)
    return text if text is not None and _ERROR_CODE_RE.match(text) else OTHER_ERROR


class ResponseReader(abc.ABC):
    """Accumulates :class:`ResponseFacts` from a JSON body or from SSE events."""

    def __init__(self) -> None:
        self.facts = ResponseFacts()

    @abc.abstractmethod
    def read_json(self, document: Any) -> None:
        """A complete, non-streamed response body."""

    @abc.abstractmethod
    def wants_event(self, event: str | None) -> bool:
        """Whether an SSE event carries facts; the data of other events is never kept."""

    @abc.abstractmethod
    def read_event(self, event: str | None, data: Any) -> None:
        """One SSE event whose ``data`` was JSON."""

    def may_carry_facts(self, event: str | None, data: bytes) -> bool:
        """Cheap pre-check on a wanted event's raw data before it is parsed as JSON."""
        return True

    def skippable(self, chunk: bytes) -> bool:
        """Whether a chunk of whole SSE events surely holds nothing this reader wants
        (see ``SseDecoder``); False when unsure."""
        return False

    def read_done(self) -> None:
        """The ``data: [DONE]`` sentinel some providers send last."""
        self.facts.complete = True


class _NamedEventsReader(ResponseReader):
    """A reader of APIs whose SSE events are named; only the names in ``_EVENTS`` count."""

    _EVENTS: frozenset[str] = frozenset()
    _MARKERS: re.Pattern[bytes] = re.compile(b"(?!)")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A chunk that does not even contain a wanted name cannot hold a wanted event.
        cls._MARKERS = re.compile(b"|".join(re.escape(name.encode()) for name in cls._EVENTS))

    def wants_event(self, event: str | None) -> bool:
        return event in self._EVENTS

    def skippable(self, chunk: bytes) -> bool:
        return self._MARKERS.search(chunk) is None


class AnthropicMessagesReader(_NamedEventsReader):
    """Anthropic Messages API: ``message_start`` / ``message_delta`` / ``error`` events."""

    _EVENTS = frozenset({"message_start", "message_delta", "message_stop", "error"})

    def __init__(self) -> None:
        super().__init__()
        self._usage: dict[str, int] = {}

    def _merge_usage(self, usage: dict[str, Any]) -> None:
        # message_delta repeats the counts cumulatively, so the latest value of each wins.
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ):
            count = _count(usage.get(key))
            if count is not None:
                self._usage[key] = count
        uncached = self._usage.get("input_tokens")
        cache_read = self._usage.get("cache_read_input_tokens")
        cache_creation = self._usage.get("cache_creation_input_tokens")
        facts = self.facts
        facts.cache_read_tokens = cache_read
        facts.cache_creation_tokens = cache_creation
        facts.output_tokens = self._usage.get("output_tokens")
        if uncached is not None:
            facts.input_tokens = uncached + (cache_read or 0) + (cache_creation or 0)

    def _read_message(self, message: dict[str, Any]) -> None:
        self.facts.response_id = _text(message.get("id")) or self.facts.response_id
        self.facts.response_model = _text(message.get("model")) or self.facts.response_model
        stop_reason = _text(message.get("stop_reason"))
        if stop_reason is not None:
            self.facts.finish_reasons = [stop_reason]
        self._merge_usage(_dict(message.get("usage")))

    def read_json(self, document: Any) -> None:
        body = _dict(document)
        if body.get("type") == "error":
            self.facts.provider_error = error_code(_dict(body.get("error")).get("type"))
            return
        self._read_message(body)
        self.facts.complete = True

    def read_event(self, event: str | None, data: Any) -> None:
        body = _dict(data)
        if event == "message_start":
            self._read_message(_dict(body.get("message")))
        elif event == "message_delta":
            stop_reason = _text(_dict(body.get("delta")).get("stop_reason"))
            if stop_reason is not None:
                self.facts.finish_reasons = [stop_reason]
            self._merge_usage(_dict(body.get("usage")))
        elif event == "message_stop":
            self.facts.complete = True
        elif event == "error":
            self.facts.provider_error = error_code(_dict(body.get("error")).get("type"))


class OpenAIChatCompletionsReader(ResponseReader):
    """OpenAI Chat Completions (and OpenAI-compatible servers): chunks without event names."""

    def __init__(self) -> None:
        super().__init__()
        self._finish_by_choice: dict[int, str] = {}

    def _read_usage(self, usage: dict[str, Any]) -> None:
        if not usage:
            return
        facts = self.facts
        facts.input_tokens = _count(usage.get("prompt_tokens"))
        facts.output_tokens = _count(usage.get("completion_tokens"))
        cached = _count(_dict(usage.get("prompt_tokens_details")).get("cached_tokens"))
        # DeepSeek reports its context cache as prompt_cache_hit_tokens instead.
        facts.cache_read_tokens = (
            cached if cached is not None else _count(usage.get("prompt_cache_hit_tokens"))
        )

    def _read_choices(self, choices: Any) -> None:
        if not isinstance(choices, list):
            return
        for position, choice in enumerate(choices):
            body = _dict(choice)
            reason = _text(body.get("finish_reason"))
            if reason is None:
                continue
            index = _count(body.get("index"))
            self._finish_by_choice[position if index is None else index] = reason
        self.facts.finish_reasons = [
            self._finish_by_choice[i] for i in sorted(self._finish_by_choice)
        ]

    def _read_chunk(self, body: dict[str, Any]) -> None:
        error = body.get("error")
        if isinstance(error, dict):
            self.facts.provider_error = error_code(error.get("code") or error.get("type"))
            return
        self.facts.response_id = self.facts.response_id or _text(body.get("id"))
        self.facts.response_model = self.facts.response_model or _text(body.get("model"))
        self._read_choices(body.get("choices"))
        self._read_usage(_dict(body.get("usage")))

    def read_json(self, document: Any) -> None:
        body = _dict(document)
        self._read_chunk(body)
        self.facts.complete = self.facts.provider_error is None

    def wants_event(self, event: str | None) -> bool:
        # Chunks carry no event name; the id, model, finish reason and usage can be in any.
        return event is None or event == "error"

    def may_carry_facts(self, event: str | None, data: bytes) -> bool:
        # Most chunks are content deltas with a null finish reason; skipping their JSON
        # parse is most of the streaming cost. Keys cannot be faked by content: quotes
        # inside JSON strings are escaped, so an unescaped "usage" is a key (or a value
        # that is exactly that word - then the chunk is merely parsed for nothing).
        if self.facts.response_id is None or self.facts.response_model is None:
            return True
        return _CHAT_FACT_KEYS.search(data) is not None

    def skippable(self, chunk: bytes) -> bool:
        if self.facts.response_id is None or self.facts.response_model is None:
            return False
        return _CHAT_CHUNK_WITH_FACTS.search(chunk) is None

    def read_event(self, event: str | None, data: Any) -> None:
        self._read_chunk(_dict(data))


class OpenAIResponsesReader(_NamedEventsReader):
    """OpenAI Responses API: the ``response`` object of lifecycle events holds the facts.

    Responses has no finish reason; ``completed`` maps to ``stop`` and ``incomplete``
    to its reason (e.g. ``max_output_tokens``), a ``failed`` response to its error code.
    """

    _EVENTS = frozenset(
        {
            "response.created",
            "response.in_progress",
            "response.completed",
            "response.incomplete",
            "response.failed",
            "error",
        }
    )
    _FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})

    def _read_response(self, response: dict[str, Any]) -> None:
        facts = self.facts
        facts.response_id = _text(response.get("id")) or facts.response_id
        facts.response_model = _text(response.get("model")) or facts.response_model
        status = response.get("status")
        if status == "completed":
            facts.finish_reasons = ["stop"]
        elif status == "incomplete":
            reason = _text(_dict(response.get("incomplete_details")).get("reason"))
            facts.finish_reasons = [reason or "incomplete"]
        elif status == "failed":
            facts.provider_error = error_code(_dict(response.get("error")).get("code"))
        usage = _dict(response.get("usage"))
        if usage:
            facts.input_tokens = _count(usage.get("input_tokens"))
            facts.output_tokens = _count(usage.get("output_tokens"))
            facts.cache_read_tokens = _count(
                _dict(usage.get("input_tokens_details")).get("cached_tokens")
            )

    def read_json(self, document: Any) -> None:
        body = _dict(document)
        error = body.get("error")
        if isinstance(error, dict) and body.get("object") != "response":
            self.facts.provider_error = error_code(error.get("code") or error.get("type"))
            return
        self._read_response(body)
        self.facts.complete = True

    def read_event(self, event: str | None, data: Any) -> None:
        body = _dict(data)
        if event == "error":
            self.facts.provider_error = error_code(body.get("code"))
            return
        self._read_response(_dict(body.get("response")))
        if event in self._FINAL:
            self.facts.complete = True


def reader_for(shape: ApiShape) -> ResponseReader:
    if shape is ApiShape.ANTHROPIC_MESSAGES:
        return AnthropicMessagesReader()
    if shape is ApiShape.OPENAI_CHAT_COMPLETIONS:
        return OpenAIChatCompletionsReader()
    return OpenAIResponsesReader()
