"""What a GenAI request body tells us: the requested model and the output-token limit.

Only these two scalar fields are read; the messages, system prompt and tools in the same
body are parsed (JSON has to be) but never kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from caret_otel.sdk.genai.providers import ApiShape

# Output-token limit field per API shape, in order of preference (OpenAI renamed
# max_tokens to max_completion_tokens; both are still accepted).
_MAX_TOKEN_FIELDS: dict[ApiShape, tuple[str, ...]] = {
    ApiShape.ANTHROPIC_MESSAGES: ("max_tokens",),
    ApiShape.OPENAI_CHAT_COMPLETIONS: ("max_completion_tokens", "max_tokens"),
    ApiShape.OPENAI_RESPONSES: ("max_output_tokens",),
}


@dataclass(frozen=True)
class RequestFacts:
    model: str | None = None
    max_tokens: int | None = None


def _positive_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def facts_from_body(shape: ApiShape, body: bytes) -> RequestFacts:
    """Model and token limit from a JSON request body; empty facts when it is not JSON."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return RequestFacts()
    if not isinstance(document, dict):
        return RequestFacts()
    model = document.get("model")
    max_tokens = None
    for field in _MAX_TOKEN_FIELDS[shape]:
        max_tokens = _positive_int(document.get(field))
        if max_tokens is not None:
            break
    return RequestFacts(
        model=model if isinstance(model, str) and model else None,
        max_tokens=max_tokens,
    )


def facts_from_request(shape: ApiShape, request: httpx.Request) -> RequestFacts:
    """Facts from an httpx request whose body is in memory (``json=``/``content=`` bytes).

    A streamed request body (a generator) cannot be read without consuming it, so its
    model stays unknown rather than the upload being disturbed.
    """
    try:
        body = request.content
    except httpx.RequestNotRead:
        return RequestFacts()
    return facts_from_body(shape, body)
