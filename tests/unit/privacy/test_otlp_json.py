"""OTLP/JSON parsing and rendering: hex ids, integer enums, clear errors."""

from __future__ import annotations

import pytest
from unit.privacy import otlp_docs as doc

from caret_otel.otlp.json_format import OtlpJsonError, parse_request, request_to_dict


def test_round_trip_keeps_hex_ids_and_values() -> None:
    document = doc.traces([doc.span("chat gpt-4o", {"n": 1, "ok": True, "tags": ["a"]})])
    kind, request = parse_request(document)
    assert kind == "traces"
    rendered = request_to_dict(request)
    span = rendered["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] == doc.TRACE_ID
    assert span["spanId"] == doc.SPAN_ID
    assert span["kind"] == 3
    assert (
        span["attributes"]
        == document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    )


def test_kinds_are_recognised() -> None:
    assert parse_request(doc.logs([doc.log_record("x")]))[0] == "logs"
    assert (
        parse_request(doc.metrics([doc.metric("m", "gauge", [doc.number_point(1, {})])]))[0]
        == "metrics"
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "exactly one of"),
        ({"resourceSpans": [], "resourceLogs": []}, "exactly one of"),
        (
            {
                "resourceSpans": [
                    {"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": doc.SPAN_ID}]}]}
                ]
            },
            "resourceSpans[0].scopeSpans[0].spans[0].traceId: must be a hex string",
        ),
        (
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "abcd"}]}]}]},
            "traceId: must be 32 hex digits",
        ),
        ({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}, "document:"),
        ({"resourceSpans": [{"nope": 1}]}, "document:"),
    ],
)
def test_invalid_documents_say_where(document: dict[str, object], message: str) -> None:
    with pytest.raises(OtlpJsonError) as caught:
        parse_request(document)
    assert message in str(caught.value)


def test_deeply_nested_document_is_an_error_not_a_crash() -> None:
    value: dict[str, object] = {"stringValue": "x"}
    for _ in range(50_000):
        value = {"arrayValue": {"values": [value]}}
    span = {"traceId": doc.TRACE_ID, "attributes": [{"key": "k", "value": value}]}
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    with pytest.raises(OtlpJsonError) as caught:
        parse_request(document)
    assert caught.value.field == "document"


def test_unknown_fields_can_be_ignored_as_receivers_do() -> None:
    kind, _ = parse_request({"resourceSpans": [{"nope": 1}]}, ignore_unknown_fields=True)
    assert kind == "traces"
