"""Body limits, gzip, content types and the client-event envelope."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from caret_otel.otlp import body
from caret_otel.receivers.gateway import client_batch
from caret_otel.receivers.gateway.client_batch import EventRejection
from caret_otel.receivers.gateway.errors import RequestError


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read(data: bytes, *, encoding: str | None = None, length: str | None = None,
         max_body: int = 1000, max_inflated: int = 10_000) -> bytes:  # fmt: skip
    return asyncio.run(
        body.read_body(
            chunks_of(data, 7),
            content_length=length,
            content_encoding=encoding,
            max_body_bytes=max_body,
            max_decompressed_bytes=max_inflated,
        )
    )


def error_of(call: object) -> RequestError:
    assert callable(call)
    with pytest.raises(RequestError) as caught:
        call()
    return caught.value


def test_plain_and_gzip_bodies() -> None:
    assert read(b"hello") == b"hello"
    assert read(gzip.compress(b"hello"), encoding="gzip") == b"hello"
    assert read(gzip.compress(b"a") + gzip.compress(b"b"), encoding="x-gzip") == b"ab"


def test_size_limits() -> None:
    assert error_of(lambda: read(b"x" * 1001)).status == 413
    assert error_of(lambda: read(b"x", length="5000")).status == 413
    bomb = gzip.compress(b"\0" * 200_000)
    assert len(bomb) < 1000
    err = error_of(lambda: read(bomb, encoding="gzip"))
    assert (err.status, err.field) == (413, "body")


def test_bad_gzip_and_encodings() -> None:
    assert error_of(lambda: read(b"not gzip", encoding="gzip")).status == 400
    assert error_of(lambda: read(gzip.compress(b"abc")[:-6], encoding="gzip")).status == 400
    err = error_of(lambda: read(b"x", encoding="br"))
    assert (err.status, err.field) == (415, "Content-Encoding")
    assert error_of(lambda: read(b"x", length="ten")).status == 400


def test_media_types() -> None:
    assert body.media_type("application/json; charset=utf-8", [body.JSON]) == body.JSON
    assert body.media_type("Application/X-Protobuf", [body.JSON, body.PROTOBUF]) == body.PROTOBUF
    err = error_of(lambda: body.media_type("text/plain", [body.JSON]))
    assert (err.status, err.field) == (415, "Content-Type")
    assert error_of(lambda: body.media_type(None, [body.JSON])).status == 415


def test_envelope_shapes() -> None:
    event = b'{"event_type": "task.created"}'
    assert client_batch.parse_envelope(event, 10) == ([{"event_type": "task.created"}], False)
    assert client_batch.parse_envelope(b"[" + event + b", 1]", 10) == (
        [{"event_type": "task.created"}, 1],
        True,
    )
    assert client_batch.parse_envelope(b'{"events": [' + event + b"]}", 10)[1] is True


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        (b"", 400, "body"),
        (b"{nope", 400, "body"),
        (b"42", 422, "body"),
        (b'"text"', 422, "body"),
        (b"[]", 422, "events"),
        (b'{"events": {}}', 422, "events"),
        (b"[" + b",".join([b"{}"] * 11) + b"]", 413, "events"),
    ],
)
def test_envelope_errors(payload: bytes, status: int, field: str) -> None:
    err = error_of(lambda: client_batch.parse_envelope(payload, 10))
    assert (err.status, err.field) == (status, field)


def test_per_event_limits() -> None:
    with pytest.raises(EventRejection) as caught:
        client_batch.check_limits(["not", "an", "object"], 5)
    assert caught.value.code == client_batch.NOT_AN_OBJECT
    with pytest.raises(EventRejection) as caught:
        client_batch.check_limits({"properties": {str(i): i for i in range(6)}}, 5)
    assert (caught.value.field, caught.value.code) == (
        "properties",
        client_batch.TOO_MANY_PROPERTIES,
    )
    event = {"properties": {str(i): i for i in range(5)}}
    assert client_batch.check_limits(event, 5) is event


@pytest.mark.parametrize("code", range(0x80))
def test_the_serialised_scan_never_misses_a_control_character(code: int) -> None:
    """The cheap scan over the event's JSON may send a clean event to the exact walk,
    but never lets one with a control character (in a key or a nested value) past it."""
    char = chr(code)
    refused = char in "\x7f" or (code < 0x20 and char not in "\t\n\r")
    for event in (
        {"properties": {"model": f"a{char}b"}},
        {"properties": {f"k{char}": 1}},
        {"client_info": {"list": ["x", {"deep": [f"{char}"]}]}},
    ):
        scan = client_batch.may_hold_control_characters(event)
        walk = client_batch.control_character_field(event, "")
        assert (walk is not None) == refused
        if refused:
            assert scan
    # an escaped backslash before b/f/u00.. only costs the exact walk, never a rejection
    tricky = {"properties": {"path": "\\b \\f \\u0000"}}
    assert client_batch.may_hold_control_characters(tricky)
    assert client_batch.control_character_field(tricky, "") is None
    assert not client_batch.may_hold_control_characters({"properties": {"model": "gpt-4o"}})


@pytest.mark.parametrize("code", range(0x80))
def test_the_body_scan_never_misses_a_control_character(code: int) -> None:
    """Whatever encoder the client uses (orjson, Python's ensure_ascii, upper-case hex
    escapes), a body whose events hold a control character is always sent to the
    per-event check; a clean body skips it."""
    char = chr(code)
    refused = char in "\x7f" or (code < 0x20 and char not in "\t\n\r")
    event = {"event_type": "task.created", "properties": {f"k{char}": [f"a{char}b"]}}
    ascii_text = json.dumps([event])
    upper_hex = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), ascii_text)
    bodies = [orjson.dumps([event]), ascii_text.encode(), upper_hex.encode()]
    bodies.append(json.dumps([event], ensure_ascii=False).encode())
    for payload in bodies:
        if refused:
            assert client_batch.body_may_hold_control_characters(payload), payload
            (parsed,), _ = client_batch.parse_envelope(payload, 10)
            with pytest.raises(EventRejection):
                client_batch.check_limits(parsed, 5)
    clean = orjson.dumps([{"properties": {"model": "gpt-4o", "path": "a/b"}}])
    assert not client_batch.body_may_hold_control_characters(clean)


def test_unix_nanos_is_exact() -> None:
    moment = datetime(2025, 1, 11, 10, 0, 0, 123456, tzinfo=UTC)
    assert client_batch.unix_nanos(moment) == 1736589600_123456000
    shifted = moment.astimezone(timezone(timedelta(hours=9)))
    assert client_batch.unix_nanos(shifted) == 1736589600_123456000


def test_time_window() -> None:
    now = 1_700_000_000 * 10**9
    client_batch.check_time_window(now + 299 * 10**9, now, 300, 30)
    client_batch.check_time_window(now - 29 * 86400 * 10**9, now, 300, 30)
    with pytest.raises(EventRejection) as caught:
        client_batch.check_time_window(now + 301 * 10**9, now, 300, 30)
    assert caught.value.code == client_batch.TIMESTAMP_IN_FUTURE
    with pytest.raises(EventRejection) as caught:
        client_batch.check_time_window(now - 31 * 86400 * 10**9, now, 300, 30)
    assert caught.value.code == client_batch.TIMESTAMP_TOO_OLD


@pytest.mark.parametrize("value", [-1, -0.5, float("inf"), float("nan"), 1 << 63])
def test_bad_numbers(value: float) -> None:
    with pytest.raises(EventRejection) as caught:
        client_batch.check_numbers({"n": value})
    assert (caught.value.field, caught.value.code) == ("n", client_batch.BAD_NUMBER)


def test_good_numbers() -> None:
    client_batch.check_numbers({"a": 0, "b": 1.5, "c": True, "d": "-1", "e": (1 << 63) - 1})
