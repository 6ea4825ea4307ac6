"""The incremental SSE decoder: any split of the byte stream yields the same events, only
wanted events are delivered, and an over-long line is skipped instead of held."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from caret_otel.sdk.genai.body import SseObserver
from caret_otel.sdk.genai.response import AnthropicMessagesReader, OpenAIChatCompletionsReader
from caret_otel.sdk.genai.sse import SseDecoder

STREAM = (
    b": keep-alive comment\n"
    b"event: message_start\n"
    b'data: {"a": 1}\n'
    b"\n"
    b"event: content_block_delta\r\n"
    b'data: {"text": "secret words"}\r\n'
    b"\r\n"
    b'data: {"no": "name"}\n'
    b"data: second line\n"
    b"\n"
    b"event: message_stop\n"
    b"data:no-space\n"
    b"\n"
    b"event: ping\n"
    b"\n"
)
EXPECTED = [
    ("message_start", b'{"a": 1}'),
    (None, b'{"no": "name"}\nsecond line'),
    ("message_stop", b"no-space"),
]


def decode(chunks: list[bytes], *, max_line_bytes: int = 1 << 20) -> tuple[list, SseDecoder]:
    events: list[tuple[str | None, bytes]] = []
    decoder = SseDecoder(
        lambda name: name != "content_block_delta",
        lambda name, data: events.append((name, data)),
        max_line_bytes=max_line_bytes,
    )
    for chunk in chunks:
        decoder.feed(chunk)
    decoder.close()
    return events, decoder


def test_whole_stream() -> None:
    assert decode([STREAM])[0] == EXPECTED


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert decode(chunks)[0] == EXPECTED


def test_unwanted_event_data_is_not_kept() -> None:
    kept: list[bytes] = []
    decoder = SseDecoder(lambda name: name == "wanted", lambda _n, d: kept.append(d))
    decoder.feed(b"event: unwanted\ndata: secret\n")
    assert decoder._data == []  # dropped as soon as the name said it is unwanted
    decoder.feed(b"\nevent: wanted\ndata: fact\n\n")
    assert kept == [b"fact"]


def test_final_event_without_blank_line_is_delivered_at_close() -> None:
    assert decode([b"event: message_stop\ndata: {}"])[0] == [("message_stop", b"{}")]


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=80))
def test_over_long_line_is_skipped_however_it_is_split(chunk_size: int) -> None:
    stream = b"data: " + b"x" * 200 + b"\n\nevent: message_stop\ndata: ok\n\n"
    chunks = [stream[i : i + chunk_size] for i in range(0, len(stream), chunk_size)]
    events, decoder = decode(chunks, max_line_bytes=64)
    assert events == [("message_stop", b"ok")]
    assert decoder.skipped_lines == 1
    assert len(decoder._partial) == 0


# --- whole readers: facts do not depend on how the stream is cut ----------------------------
def _event(name: str | None, data: dict[str, object] | bytes) -> bytes:
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    return (f"event: {name}\n".encode() if name else b"") + b"data: " + payload + b"\n\n"


ANTHROPIC_STREAM = b"".join(
    [
        _event(
            "message_start",
            {
                "type": "message_start",
                "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 4}},
            },
        ),
        *(
            _event("content_block_delta", {"delta": {"type": "text_delta", "text": f"w{i} error"}})
            for i in range(20)
        ),
        _event(
            "message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}
        ),
        _event("message_stop", {"type": "message_stop"}),
    ]
)
CHAT_STREAM = b"".join(
    [
        *(
            _event(
                None,
                {
                    "id": "c1",
                    "model": "gpt-x",
                    "choices": [
                        {"index": 0, "delta": {"content": f'w{i} "usage"'}, "finish_reason": None}
                    ],
                },
            )
            for i in range(20)
        ),
        _event(
            None,
            {
                "id": "c1",
                "model": "gpt-x",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            },
        ),
        _event(
            None, {"id": "c1", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 9}}
        ),
        _event(None, b"[DONE]"),
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["anthropic", "chat"]),
    st.lists(st.integers(min_value=0, max_value=len(CHAT_STREAM)), max_size=40),
)
def test_reader_facts_are_the_same_for_any_split(api: str, cuts: list[int]) -> None:
    stream = ANTHROPIC_STREAM if api == "anthropic" else CHAT_STREAM
    reader = AnthropicMessagesReader() if api == "anthropic" else OpenAIChatCompletionsReader()
    points = sorted({c for c in cuts if c <= len(stream)})
    observer = SseObserver(reader)
    for a, b in zip([0, *points], [*points, len(stream)], strict=True):
        observer.feed(stream[a:b])
    facts = observer.finish()
    assert facts.complete
    assert (facts.input_tokens, facts.output_tokens) == (4, 9)
    assert facts.finish_reasons == (["end_turn"] if api == "anthropic" else ["stop"])
    assert facts.response_model == ("claude-x" if api == "anthropic" else "gpt-x")


def test_skippable_chunks_are_not_decoded_but_split_ones_are() -> None:
    # A decoder that wants everything shows what was decoded at all.
    def decoded(chunks: list[bytes]) -> list[str | None]:
        seen: list[str | None] = []
        decoder = SseDecoder(
            lambda _name: True,
            lambda name, _data: seen.append(name),
            skippable=AnthropicMessagesReader().skippable,
        )
        for chunk in chunks:
            decoder.feed(chunk)
        decoder.close()
        return seen

    content = _event("content_block_delta", {"delta": {"text": "secret"}})
    stop = _event("message_stop", {})
    assert decoded([content, stop]) == ["message_stop"]  # whole content chunk: skipped
    # A chunk that does not end at an event boundary is decoded the slow, exact way.
    assert decoded([content + stop[:5], stop[5:]]) == ["content_block_delta", "message_stop"]
