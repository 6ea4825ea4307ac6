"""Response readers on provider payload variants the stub does not produce, and the
content decoding of the observer's copy of a streamed body."""

from __future__ import annotations

import zlib

import pytest

from caret_otel.sdk.genai.body import JsonObserver, SseObserver, observer_for
from caret_otel.sdk.genai.decoding import UnsupportedEncodingError, decoder_for
from caret_otel.sdk.genai.providers import ApiShape
from caret_otel.sdk.genai.request import facts_from_body
from caret_otel.sdk.genai.response import (
    AnthropicMessagesReader,
    OpenAIChatCompletionsReader,
    OpenAIResponsesReader,
    error_code,
)


def test_anthropic_message_delta_with_cumulative_input_counts_replaces_the_start_counts() -> None:
    reader = AnthropicMessagesReader()
    reader.read_event(
        "message_start",
        {
            "message": {
                "id": "msg_1",
                "model": "m",
                "usage": {"input_tokens": 10, "output_tokens": 1},
            }
        },
    )
    reader.read_event(
        "message_delta",
        {
            "delta": {"stop_reason": "tool_use"},
            "usage": {"input_tokens": 12, "cache_read_input_tokens": 100, "output_tokens": 40},
        },
    )
    reader.read_event("message_stop", {})
    facts = reader.facts
    assert (facts.input_tokens, facts.output_tokens, facts.cache_read_tokens) == (112, 40, 100)
    assert facts.cache_creation_tokens is None
    assert facts.finish_reasons == ["tool_use"]
    assert facts.complete


def test_anthropic_error_body() -> None:
    reader = AnthropicMessagesReader()
    reader.read_json({"type": "error", "error": {"type": "overloaded_error", "message": "x"}})
    assert reader.facts.provider_error == "overloaded_error"
    assert not reader.facts.complete


def test_deepseek_cache_hits_count_as_cache_reads() -> None:
    reader = OpenAIChatCompletionsReader()
    reader.read_json(
        {
            "id": "c1",
            "model": "deepseek-chat",
            "choices": [{"index": 0, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 50,
                "completion_tokens": 9,
                "prompt_cache_hit_tokens": 32,
                "prompt_cache_miss_tokens": 18,
            },
        }
    )
    assert (reader.facts.input_tokens, reader.facts.cache_read_tokens) == (50, 32)


def test_chat_finish_reasons_follow_choice_index_order() -> None:
    reader = OpenAIChatCompletionsReader()
    reader.read_event(None, {"choices": [{"index": 1, "finish_reason": "length"}]})
    reader.read_event(None, {"choices": [{"index": 0, "finish_reason": "stop"}]})
    assert reader.facts.finish_reasons == ["stop", "length"]


def test_chat_body_with_null_error_is_not_an_error() -> None:
    reader = OpenAIChatCompletionsReader()
    reader.read_json({"id": "c", "model": "m", "error": None, "choices": []})
    assert reader.facts.provider_error is None
    assert reader.facts.complete


def test_responses_incomplete_maps_to_its_reason() -> None:
    reader = OpenAIResponsesReader()
    reader.read_json(
        {
            "object": "response",
            "id": "r",
            "model": "m",
            "status": "incomplete",
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"},
            "usage": {"input_tokens": 3, "output_tokens": 4},
        }
    )
    assert reader.facts.finish_reasons == ["max_output_tokens"]
    assert (reader.facts.input_tokens, reader.facts.output_tokens) == (3, 4)


def test_responses_error_event() -> None:
    reader = OpenAIResponsesReader()
    reader.read_event("error", {"type": "error", "code": "rate_limit_exceeded", "message": "m"})
    assert reader.facts.provider_error == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("overloaded_error", "overloaded_error"),
        ("has spaces", "_OTHER"),
        (None, "_OTHER"),
        ("x" * 65, "_OTHER"),
    ],
)
def test_error_codes_stay_low_cardinality(value: object, expected: str) -> None:
    assert error_code(value) == expected


@pytest.mark.parametrize(
    ("shape", "body", "model", "max_tokens"),
    [
        (ApiShape.ANTHROPIC_MESSAGES, b'{"model":"c","max_tokens":5}', "c", 5),
        (ApiShape.OPENAI_CHAT_COMPLETIONS, b'{"model":"g","max_tokens":7}', "g", 7),
        (
            ApiShape.OPENAI_CHAT_COMPLETIONS,
            b'{"model":"g","max_completion_tokens":8,"max_tokens":7}',
            "g",
            8,
        ),
        (ApiShape.OPENAI_RESPONSES, b'{"model":"r","max_output_tokens":true}', "r", None),
        (ApiShape.OPENAI_RESPONSES, b'{"model":42}', None, None),
        (ApiShape.OPENAI_RESPONSES, b"not json", None, None),
        (ApiShape.OPENAI_RESPONSES, b"[1, 2]", None, None),
    ],
)
def test_request_facts(
    shape: ApiShape, body: bytes, model: str | None, max_tokens: int | None
) -> None:
    facts = facts_from_body(shape, body)
    assert (facts.model, facts.max_tokens) == (model, max_tokens)


def test_observer_choice_follows_content_type() -> None:
    reader = OpenAIResponsesReader()
    assert isinstance(observer_for(reader, "text/event-stream; charset=utf-8"), SseObserver)
    assert isinstance(observer_for(reader, "application/json"), JsonObserver)
    assert isinstance(observer_for(reader, None), JsonObserver)


def test_json_observer_gives_up_on_oversized_bodies() -> None:
    observer = JsonObserver(OpenAIResponsesReader(), max_bytes=10)
    observer.feed(b'{"id": "r", ')
    observer.feed(b'"model": "m"}')
    facts = observer.finish()
    assert observer.too_large
    assert facts.response_id is None


@pytest.mark.parametrize("wbits", [31, 15, -15], ids=["gzip", "zlib-deflate", "raw-deflate"])
def test_decoders_undo_gzip_and_both_deflate_forms(wbits: int) -> None:
    compressor = zlib.compressobj(wbits=wbits)
    payload = b"data: {}\n\n" * 50
    compressed = compressor.compress(payload) + compressor.flush()
    decoder = decoder_for("gzip" if wbits == 31 else "deflate")
    parts = [decoder.decode(compressed[i : i + 7]) for i in range(0, len(compressed), 7)]
    assert b"".join(parts) + decoder.flush() == payload


def test_unsupported_encodings_are_refused() -> None:
    assert decoder_for("identity").decode(b"x") == b"x"
    with pytest.raises(UnsupportedEncodingError):
        decoder_for("br")
    with pytest.raises(UnsupportedEncodingError):
        decoder_for("gzip, gzip")


@pytest.mark.parametrize(
    ("data", "parsed"),
    [
        (
            b'{"id":"c","model":"m","choices":[{"delta":{"content":"x"},"finish_reason":null}]}',
            False,
        ),
        (
            b'{"choices":[{"delta":{"content":"\\"finish_reason\\":\\"stop\\""},"finish_reason":null}]}',
            False,
        ),
        (b'{"choices":[{"delta":{},"finish_reason" : "length"}]}', True),
        (b'{"choices":[],"usage":{"prompt_tokens":1}}', True),
        (b'{"error":{"code":"server_error"}}', True),
    ],
)
def test_chat_chunks_without_facts_are_not_parsed(data: bytes, parsed: bool) -> None:
    reader = OpenAIChatCompletionsReader()
    reader.read_event(None, {"id": "c", "model": "m", "choices": []})  # id and model known
    assert reader.may_carry_facts(None, data) is parsed


def test_first_chat_chunks_are_parsed_until_id_and_model_are_known() -> None:
    reader = OpenAIChatCompletionsReader()
    assert reader.may_carry_facts(None, b'{"choices":[{"finish_reason":null}]}')
