"""The scanner (compiled, or its pure-Python twin) gives exactly the rows protobuf (upb)
decoding gives.

``EventRowBuilder.decode_serialized`` reads protobuf bodies with the scanner of
``_log_records_scan.pyx`` (or ``_log_records_scan_pure.py``); ``EventRowBuilder.decode`` reads a message parsed
by upb. For any request, valid or not, the two must agree: the same rows, refusals and
dropped-attribute counts, or both refusing the body.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from caret_otel.exporters.postgres.event_rows import AcceptWindow, DecodedEvents, EventRowBuilder
from caret_otel.exporters.postgres.fast_paths import scan_log_records
from caret_otel.otlp.values import python_to_any, unix_nano
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, parse_keys
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.semconv.policy import load_policy

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
BUILDER = EventRowBuilder(AcceptWindow.at(NOW, 30))
PSEUDONYMS = Pseudonymizer(parse_keys("1:" + base64.b64encode(b"s" * 32).decode(), source="test"))
BUSINESS = sorted(spec.name for spec in events.ALL if spec.business)
REGISTRY_KEYS = sorted(load_policy().attributes)


def outcome(decode: Callable[[], DecodedEvents]) -> object:
    try:
        decoded = decode()
    except DecodeError:
        return "refused"
    return (
        decoded.rows,
        decoded.refusals.counts,
        decoded.refusals.messages,
        decoded.dropped_attributes,
    )


def by_protobuf(body: bytes) -> object:
    return outcome(lambda: BUILDER.decode(ExportLogsServiceRequest.FromString(body)))


def by_scanner(body: bytes) -> object:
    return outcome(lambda: BUILDER.decode_serialized(body))


# --- strategies ---------------------------------------------------------------------------
texts = st.text(max_size=12)
scalars = st.one_of(
    texts,
    st.sampled_from(["", "\x00", "KR", "AS", "zz", PSEUDONYMS.pseudonymize("u")]),
    st.booleans(),
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    st.floats(),  # NaN and infinities included: the builder refuses them
    st.binary(max_size=6),
)
values = st.one_of(
    st.none(),
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(texts, scalars, max_size=2),
)
keys = st.one_of(st.sampled_from(REGISTRY_KEYS), texts)


def any_value(value: object) -> AnyValue:
    out = AnyValue()
    python_to_any(value, out)
    return out


@st.composite
def log_records(draw: st.DrawFn) -> LogRecord:
    record = LogRecord(
        event_name=draw(st.one_of(st.sampled_from(BUSINESS), texts)),
        severity_text=draw(texts),
        flags=draw(st.integers(min_value=0, max_value=(1 << 32) - 1)),
        dropped_attributes_count=draw(st.integers(min_value=0, max_value=3)),
    )
    when = NOW - timedelta(seconds=draw(st.integers(min_value=-86_400 * 2, max_value=86_400 * 40)))
    if draw(st.booleans()):
        record.time_unix_nano = unix_nano(when)
    if draw(st.booleans()):
        record.observed_time_unix_nano = unix_nano(when) + draw(st.integers(0, 10**9))
    if draw(st.booleans()):
        record.body.string_value = draw(texts)
    if draw(st.booleans()):
        record.trace_id = draw(st.binary(min_size=16, max_size=16))
    for key, value in draw(st.lists(st.tuples(keys, values), max_size=8)):
        record.attributes.append(KeyValue(key=key, value=any_value(value)))
    return record


@st.composite
def requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        resource_logs = request.resource_logs.add(schema_url=draw(texts))
        resource_logs.resource.attributes.append(
            KeyValue(key="service.name", value=any_value(draw(texts)))
        )
        for _ in range(draw(st.integers(0, 2))):
            scope_logs = resource_logs.scope_logs.add()
            scope_logs.scope.name = draw(texts)
            scope_logs.log_records.extend(draw(st.lists(log_records(), max_size=4)))
    return request


# --- properties ---------------------------------------------------------------------------
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_any_request_gives_the_rows_protobuf_gives(request: ExportLogsServiceRequest) -> None:
    body = request.SerializeToString()
    assert by_scanner(body) == by_protobuf(body)


@settings(max_examples=200, deadline=None)
@given(requests(), st.data())
def test_a_truncated_body_is_refused_or_read_as_protobuf_reads_it(
    request: ExportLogsServiceRequest, data: st.DataObject
) -> None:
    body = request.SerializeToString()
    cut = data.draw(st.integers(min_value=0, max_value=len(body)))
    assert by_scanner(body[:cut]) == by_protobuf(body[:cut])


@settings(max_examples=300, deadline=None)
@given(requests(), st.data())
def test_corrupted_bytes_never_crash_and_agree_when_protobuf_accepts_them(
    request: ExportLogsServiceRequest, data: st.DataObject
) -> None:
    body = bytearray(request.SerializeToString())
    if body:
        for _ in range(data.draw(st.integers(1, 3))):
            body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    expected = by_protobuf(bytes(body))
    got = by_scanner(bytes(body))  # never anything but rows or DecodeError
    if expected != "refused":
        assert got == expected
    # Where protobuf refuses, the scanner may still accept: it does not check the UTF-8
    # of fields the exporter does not read (a record's body, say); see its docstring.


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(body: bytes) -> None:
    expected = by_protobuf(body)
    got = by_scanner(body)
    if expected != "refused":
        assert got == expected


# --- the scanner itself -------------------------------------------------------------------
def test_scalar_attributes_are_read_in_order_as_plain_values() -> None:
    record = LogRecord(event_name="e", time_unix_nano=7, observed_time_unix_nano=9)
    for key, value in [("s", "x"), ("b", True), ("i", -5), ("d", 0.5), ("s", "")]:
        record.attributes.append(KeyValue(key=key, value=any_value(value)))
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.append(record)
    body = request.SerializeToString()
    [(name, time_unix_nano, observed, attributes, start, end)] = scan_log_records(body)
    assert (name, time_unix_nano, observed) == ("e", 7, 9)
    assert attributes == ["s", "x", "b", True, "i", -5, "d", 0.5, "s", ""]
    assert LogRecord.FromString(body[start:end]) == record


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (["a", 1], "an array"),
        ({"k": "v"}, "a map"),
        (b"\x01", "bytes"),
        (None, "an empty value"),
    ],
)
def test_a_record_with_a_value_that_is_not_a_scalar_is_left_to_protobuf(
    value: object, why: str
) -> None:
    record = LogRecord(event_name="e")
    record.attributes.append(KeyValue(key="plain", value=any_value("x")))
    record.attributes.append(KeyValue(key="odd", value=any_value(value)))
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.append(record)
    [scanned] = scan_log_records(request.SerializeToString())
    assert scanned[3] is None, why


def test_a_value_sent_twice_is_left_to_protobuf_which_merges_it() -> None:
    # KeyValue{key: "k", value: {string_value: "a"}, value: {int_value: 3}} - protobuf
    # merges the two values (the last oneof member wins)
    kv = b"\x0a\x01k" + b"\x12\x03\x0a\x01a" + b"\x12\x02\x18\x03"
    record = b"\x32" + bytes([len(kv)]) + kv
    scope = b"\x12" + bytes([len(record)]) + record
    resource = b"\x12" + bytes([len(scope)]) + scope
    body = b"\x0a" + bytes([len(resource)]) + resource
    [scanned] = scan_log_records(body)
    assert scanned[3] is None
    assert (
        ExportLogsServiceRequest.FromString(body)
        .resource_logs[0]
        .scope_logs[0]
        .log_records[0]
        .attributes[0]
        .value.int_value
        == 3
    )


def test_a_known_field_with_another_wire_type_is_refused_by_the_scanner() -> None:
    # time_unix_nano (field 1, fixed64) sent as a varint
    record = b"\x08\x05"
    scope = b"\x12" + bytes([len(record)]) + record
    resource = b"\x12" + bytes([len(scope)]) + scope
    with pytest.raises(ValueError, match="wire type"):
        scan_log_records(b"\x0a" + bytes([len(resource)]) + resource)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x0a", "truncated varint"),
        (b"\x0a\x05\x12", "runs past"),
        (b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "longer than 10 bytes"),
        (b"\x13", "unsupported wire type"),  # a group (field 2), unused by OTLP
    ],
)
def test_malformed_bytes_raise_value_error(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        scan_log_records(body)


def test_invalid_utf8_in_a_field_it_reads_is_refused_as_protobuf_refuses_it() -> None:
    record = b"\x62\x02\xc3\x28"  # event_name (field 12) = invalid UTF-8
    scope = b"\x12" + bytes([len(record)]) + record
    resource = b"\x12" + bytes([len(scope)]) + scope
    body = b"\x0a" + bytes([len(resource)]) + resource
    with pytest.raises(UnicodeDecodeError):
        scan_log_records(body)
    assert by_scanner(body) == by_protobuf(body) == "refused"


def test_a_business_event_reads_the_same_both_ways() -> None:
    record = LogRecord(event_name=events.CARET_TASK_TOKENS.name, time_unix_nano=unix_nano(NOW))
    for key, value in {
        attrs.ENDUSER_PSEUDO_ID: PSEUDONYMS.pseudonymize("user"),
        attrs.GEN_AI_USAGE_INPUT_TOKENS: 12,
        attrs.CARET_CREDITS_AMOUNT: 0.1 + 0.2,
        attrs.CARET_API_DURATION: math.pi,
    }.items():
        record.attributes.append(KeyValue(key=key, value=any_value(value)))
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.append(record)
    body = request.SerializeToString()
    scanned: Any = by_scanner(body)
    assert scanned == by_protobuf(body)
    assert len(scanned[0]) == 1  # stored, not refused


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@pytest.mark.parametrize("field", [0, 1 << 29, (1 << 32) + 1], ids=["zero", "2^29", "aliases-1"])
def test_an_invalid_field_number_is_refused_as_protobuf_refuses_it(field: int) -> None:
    # (2^32 + 1) would read as field 1 if the number were truncated to 32 bits
    body = _varint(field << 3 | 2) + b"\x00"
    with pytest.raises(ValueError, match="invalid field number"):
        scan_log_records(body)
    assert by_scanner(body) == by_protobuf(body) == "refused"
