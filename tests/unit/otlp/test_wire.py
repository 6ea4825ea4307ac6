"""Our hand-written OTLP encoder produces exactly what opentelemetry-proto decodes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from caret_otel.otlp import wire as protowire

scalars = st.one_of(
    st.text(max_size=40),
    st.booleans(),
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    st.floats(allow_nan=False),
)
attribute_maps = st.dictionaries(st.text(min_size=1, max_size=20), scalars, max_size=12)


def decoded_value(value: common_pb2.AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [decoded_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def logs_request(
    records: list[tuple[int, int, str, dict[str, object]]],
) -> ExportLogsServiceRequest:
    fields = protowire.AttributeFields(protowire.LOG_ATTRIBUTE_FIELD)
    payload = protowire.export_request(
        protowire.resource({"service.name": "caret-client"}),
        protowire.instrumentation_scope("scope", "1.0"),
        [
            protowire.log_record(t, o, protowire.event_name_field(n), fields.encode(a))  # type: ignore[arg-type]
            for t, o, n, a in records
        ],
    )
    request = ExportLogsServiceRequest()
    request.ParseFromString(payload)
    return request


@given(
    st.lists(
        st.tuples(
            st.integers(0, (1 << 64) - 1),
            st.integers(0, (1 << 64) - 1),
            st.text(max_size=30),
            attribute_maps,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_log_records_round_trip(records: list[tuple[int, int, str, dict[str, object]]]) -> None:
    request = logs_request(records)
    assert len(request.resource_logs) == 1
    resource_logs = request.resource_logs[0]
    assert {kv.key: kv.value.string_value for kv in resource_logs.resource.attributes} == {
        "service.name": "caret-client"
    }
    scope_logs = resource_logs.scope_logs[0]
    assert (scope_logs.scope.name, scope_logs.scope.version) == ("scope", "1.0")
    assert len(scope_logs.log_records) == len(records)
    for record, (time_ns, observed_ns, name, attributes) in zip(
        scope_logs.log_records, records, strict=True
    ):
        assert record.time_unix_nano == time_ns
        assert record.observed_time_unix_nano == observed_ns
        assert record.event_name == name
        assert not record.HasField("body")
        assert {kv.key: decoded_value(kv.value) for kv in record.attributes} == attributes


def test_arrays_and_cache_reuse_give_identical_bytes() -> None:
    fields = protowire.AttributeFields(protowire.LOG_ATTRIBUTE_FIELD, max_entries=2)
    first = fields.encode({"a": "x", "b": 1, "c": ["p", "q"]})
    # The cache is cleared when full: encoding again must not change the bytes.
    again = fields.encode({"a": "x", "b": 1, "c": ["p", "q"]})
    assert first == again
    request = logs_request([(1, 2, "n", {"c": ["p", "q"], "d": [1, 2]})])
    attrs = {
        kv.key: decoded_value(kv.value)
        for kv in request.resource_logs[0].scope_logs[0].log_records[0].attributes
    }
    assert attrs == {"c": ["p", "q"], "d": [1, 2]}


def test_bool_and_int_are_distinct_cache_entries() -> None:
    fields = protowire.AttributeFields(protowire.LOG_ATTRIBUTE_FIELD)
    request = logs_request([(1, 2, "n", {"k": True}), (1, 2, "n", {"k": 1})])
    records = request.resource_logs[0].scope_logs[0].log_records
    assert records[0].attributes[0].value.WhichOneof("value") == "bool_value"
    assert records[1].attributes[0].value.WhichOneof("value") == "int_value"
    assert fields.field("k", True) != fields.field("k", 1)


def test_concatenated_requests_merge_into_one() -> None:
    one = logs_request([(1, 2, "a", {})]).SerializeToString()
    two = logs_request([(3, 4, "b", {})]).SerializeToString()
    merged = ExportLogsServiceRequest()
    merged.ParseFromString(one + two)
    assert [rl.scope_logs[0].log_records[0].event_name for rl in merged.resource_logs] == ["a", "b"]


def test_span_round_trip() -> None:
    fields = protowire.AttributeFields(protowire.SPAN_ATTRIBUTE_FIELD)
    payload = protowire.export_request(
        protowire.resource({"service.name": "caret-client"}),
        protowire.instrumentation_scope("scope", "1.0"),
        [
            protowire.span(
                trace_id=bytes(range(16)),
                span_id=bytes(range(8)),
                name="caret.task",
                kind=protowire.SPAN_KIND_INTERNAL,
                start_ns=10,
                end_ns=20,
                attributes=fields.encode({"x": 1.5}),
                status_code=protowire.STATUS_CODE_ERROR,
            ),
            protowire.span(
                trace_id=b"\x01" * 16,
                span_id=b"\x02" * 8,
                name="n",
                kind=1,
                start_ns=0,
                end_ns=0,
                attributes=b"",
            ),
        ],
    )
    request = ExportTraceServiceRequest()
    request.ParseFromString(payload)
    first, second = request.resource_spans[0].scope_spans[0].spans
    assert first.trace_id == bytes(range(16))
    assert first.span_id == bytes(range(8))
    assert first.name == "caret.task"
    assert first.kind == trace_pb2.Span.SPAN_KIND_INTERNAL
    assert (first.start_time_unix_nano, first.end_time_unix_nano) == (10, 20)
    assert first.attributes[0].value.double_value == 1.5
    assert first.status.code == trace_pb2.Status.STATUS_CODE_ERROR
    assert not second.HasField("status")


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1))
def test_varint_matches_protobuf(value: int) -> None:
    expected = common_pb2.AnyValue(int_value=value if value < (1 << 63) else value - (1 << 64))
    assert protowire.any_value(value) == expected.SerializeToString()
