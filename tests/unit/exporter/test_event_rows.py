"""Log records -> raw.events rows: columns, the privacy pass, refusals and event ids."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from caret_otel.exporters.postgres.event_rows import (
    EVENT_COLUMNS,
    INVALID_VALUE,
    NO_TIMESTAMP,
    NOT_PSEUDONYMIZED,
    OUTSIDE_WINDOW,
    UNKNOWN_EVENT,
    AcceptWindow,
    DecodedEvents,
    EventRowBuilder,
)
from caret_otel.otlp import body as otlp_body
from caret_otel.otlp.build import event_record, logs_request
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, parse_keys
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
PSEUDONYMS = Pseudonymizer(parse_keys("1:" + base64.b64encode(b"k" * 32).decode(), source="test"))
USER = PSEUDONYMS.pseudonymize("user-a")
SESSION = PSEUDONYMS.pseudonymize("session-1")


def decode(*records: Any, now: datetime = NOW) -> DecodedEvents:
    """Rows of a request, read both ways the exporter reads one: as a parsed message
    (OTLP/JSON) and from its protobuf bytes (the compiled scanner). They must agree."""
    builder = EventRowBuilder(AcceptWindow.at(now, 30))
    request = logs_request(records)
    parsed = builder.decode(request)
    scanned = builder.decode_serialized(request.SerializeToString())
    assert scanned == parsed
    return scanned


def as_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(EVENT_COLUMNS, row, strict=True))


def tokens_event(**extra: Any) -> Any:
    attributes: dict[str, Any] = {
        attrs.CARET_EVENT_ID: "ev-1",
        attrs.CARET_EVENT_CLIENT_TYPE: "task.tokens",
        attrs.ENDUSER_PSEUDO_ID: USER,
        attrs.SESSION_ID: SESSION,
        attrs.CARET_PLAN_NAME: "pro",
        attrs.GEO_COUNTRY_ISO_CODE: "KR",
        attrs.GEO_CONTINENT_CODE: "AS",
        attrs.GEN_AI_PROVIDER_NAME: "anthropic",
        attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
        attrs.CARET_CLIENT_LANGUAGE: "ko",
        attrs.CARET_CLIENT_VERSION: "1.0.0",
        attrs.CARET_CLIENT_PLATFORM: "vscode",
        attrs.GEN_AI_USAGE_INPUT_TOKENS: 1200,
        attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
        attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 800,
        attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 50,
        attrs.CARET_CREDITS_AMOUNT: 2.5,
        attrs.CARET_API_DURATION: 1.25,
        attrs.CARET_API_COST: 0.013,
        attrs.OS_TYPE: "linux",
    }
    attributes.update(extra)
    return event_record(events.CARET_TASK_TOKENS.name, NOW - timedelta(hours=1), attributes)


def test_every_column_is_filled_from_its_registry_attribute() -> None:
    decoded = decode(tokens_event())
    assert decoded.refusals.total == 0
    row = as_dict(decoded.rows[0])
    assert row == {
        "event_id": "ev-1",
        "event_ts": NOW - timedelta(hours=1),
        "event_name": events.CARET_TASK_TOKENS.name,
        "user_pseudonym": USER,
        "session_id": SESSION,
        "plan": "pro",
        "country": "KR",
        "continent": "AS",
        "provider": "anthropic",
        "model": "claude-sonnet-4",
        "feature": None,
        "feature_action": None,
        "language": "ko",
        "client_version": "1.0.0",
        "platform": "vscode",
        "tokens_in": 1200,
        "tokens_out": 300,
        "tokens_cache_read": 800,
        "tokens_cache_write": 50,
        "credits": 2.5,
        "latency_s": 1.25,
        "error_type": None,
        "attrs": row["attrs"],
    }
    # every other registry attribute is kept in attrs, nothing else
    assert orjson.loads(row["attrs"]) == {
        attrs.CARET_EVENT_CLIENT_TYPE: "task.tokens",
        attrs.CARET_API_COST: 0.013,
        attrs.OS_TYPE: "linux",
    }


def test_unknown_and_forbidden_attributes_are_dropped_and_counted() -> None:
    decoded = decode(tokens_event(**{attrs.CARET_PROMPT_TEXT: "fix my code", "my.custom.key": "x"}))
    row = as_dict(decoded.rows[0])
    assert "fix my code" not in row["attrs"]
    assert "my.custom.key" not in row["attrs"]
    assert decoded.dropped_attributes == {"forbidden": 1, "unknown": 1}


def test_a_coarse_value_that_is_not_coarse_is_dropped() -> None:
    decoded = decode(tokens_event(**{attrs.GEO_COUNTRY_ISO_CODE: "Seoul"}))
    assert as_dict(decoded.rows[0])["country"] is None
    assert decoded.dropped_attributes == {"not_coarse": 1}


def signed_up(**geo: Any) -> Any:
    """A server-side sign-up as the SDK sends it: a country, no continent."""
    attributes: dict[str, Any] = {attrs.CARET_EVENT_ID: "ev-2", attrs.ENDUSER_PSEUDO_ID: USER}
    attributes.update(geo)
    return event_record(events.CARET_USER_SIGNED_UP.name, NOW - timedelta(hours=1), attributes)


def test_a_missing_continent_is_derived_from_a_valid_country() -> None:
    decoded = decode(signed_up(**{attrs.GEO_COUNTRY_ISO_CODE: "KR"}))
    row = as_dict(decoded.rows[0])
    assert (row["country"], row["continent"]) == ("KR", "AS")
    assert orjson.loads(row["attrs"]) == {}


@pytest.mark.parametrize(
    ("geo", "country"),
    [
        ({}, None),  # no country: nothing to derive from
        ({attrs.GEO_COUNTRY_ISO_CODE: "ZZ"}, "ZZ"),  # coarse, but not an assigned code
        ({attrs.GEO_COUNTRY_ISO_CODE: "Seoul"}, None),  # not coarse: dropped
    ],
)
def test_no_continent_is_guessed_without_a_valid_country(
    geo: dict[str, Any], country: str | None
) -> None:
    row = as_dict(decode(signed_up(**geo)).rows[0])
    assert (row["country"], row["continent"]) == (country, None)


def test_a_continent_that_was_sent_is_kept_as_sent() -> None:
    geo = {attrs.GEO_COUNTRY_ISO_CODE: "TR", attrs.GEO_CONTINENT_CODE: "EU"}
    row = as_dict(decode(signed_up(**geo)).rows[0])
    assert (row["country"], row["continent"]) == ("TR", "EU")


def test_a_raw_identifier_in_a_pseudonymous_attribute_refuses_the_record() -> None:
    decoded = decode(tokens_event(**{attrs.ENDUSER_PSEUDO_ID: "alice@example.com"}))
    assert decoded.rows == []
    assert decoded.refusals.counts == {NOT_PSEUDONYMIZED: 1}
    assert attrs.ENDUSER_PSEUDO_ID in decoded.refusals.summary()
    assert "alice" not in decoded.refusals.summary()


@pytest.mark.parametrize(
    ("event_name", "reason"),
    [("caret.not.registered", UNKNOWN_EVENT), ("", UNKNOWN_EVENT)],
)
def test_records_that_are_not_business_events_are_refused(event_name: str, reason: str) -> None:
    record = tokens_event()
    record.event_name = event_name
    decoded = decode(record, tokens_event(**{attrs.CARET_EVENT_ID: "ev-2"}))
    assert [as_dict(r)["event_id"] for r in decoded.rows] == ["ev-2"]
    assert decoded.refusals.counts == {reason: 1}


def test_a_record_without_any_time_is_refused() -> None:
    record = tokens_event()
    record.time_unix_nano = 0
    record.observed_time_unix_nano = 0
    assert decode(record).refusals.counts == {NO_TIMESTAMP: 1}


def test_observed_time_stands_in_for_a_missing_event_time() -> None:
    record = tokens_event()
    record.time_unix_nano = 0
    assert as_dict(decode(record).rows[0])["event_ts"] == NOW - timedelta(hours=1)


@pytest.mark.parametrize(
    ("age", "kept"),
    [
        (timedelta(days=30), True),  # 2026-02-18 12:00: within the oldest retained day
        (timedelta(days=30, hours=12), True),  # 2026-02-18 00:00: first instant kept
        (timedelta(days=30, hours=12, microseconds=1), False),
        (-timedelta(hours=23), True),  # client clock ahead
        (-timedelta(days=1), False),
    ],
)
def test_only_times_the_raw_tier_can_hold_are_accepted(age: timedelta, kept: bool) -> None:
    record = event_record(
        events.CARET_SESSION_STARTED.name,
        NOW - age,
        {attrs.CARET_EVENT_ID: "s", attrs.ENDUSER_PSEUDO_ID: USER},
    )
    decoded = decode(record)
    assert (len(decoded.rows) == 1) is kept
    assert decoded.refusals.counts == ({} if kept else {OUTSIDE_WINDOW: 1})


def test_nul_characters_and_non_finite_numbers_are_refused_with_the_attribute_named() -> None:
    decoded = decode(
        tokens_event(**{attrs.CARET_CLIENT_VERSION: "1.0\x00"}),
        tokens_event(**{attrs.CARET_CREDITS_AMOUNT: float("nan")}),
    )
    assert decoded.rows == []
    assert decoded.refusals.counts == {INVALID_VALUE: 2}
    assert attrs.CARET_CLIENT_VERSION in decoded.refusals.messages[0]
    assert attrs.CARET_CREDITS_AMOUNT in decoded.refusals.messages[1]


def test_a_value_of_the_wrong_type_stays_in_attrs_instead_of_being_lost() -> None:
    decoded = decode(tokens_event(**{attrs.GEN_AI_USAGE_INPUT_TOKENS: "1200"}))
    row = as_dict(decoded.rows[0])
    assert row["tokens_in"] is None
    assert orjson.loads(row["attrs"])[attrs.GEN_AI_USAGE_INPUT_TOKENS] == "1200"


def test_latency_prefers_the_api_duration_and_keeps_the_task_duration() -> None:
    record = tokens_event(**{attrs.CARET_TASK_DURATION: 40.0})
    row = as_dict(decode(record).rows[0])
    assert row["latency_s"] == 1.25
    assert orjson.loads(row["attrs"])[attrs.CARET_TASK_DURATION] == 40.0
    completed = event_record(
        events.CARET_TASK_COMPLETED.name,
        NOW,
        {attrs.CARET_EVENT_ID: "c", attrs.ENDUSER_PSEUDO_ID: USER, attrs.CARET_TASK_DURATION: 40},
    )
    assert as_dict(decode(completed).rows[0])["latency_s"] == 40.0


def test_the_feature_comes_from_the_event_when_the_record_does_not_name_it() -> None:
    record = event_record(
        events.CARET_TASK_BROWSER_TOOL_END.name,
        NOW,
        {attrs.CARET_EVENT_ID: "b", attrs.ENDUSER_PSEUDO_ID: USER},
    )
    row = as_dict(decode(record).rows[0])
    assert (row["feature"], row["feature_action"]) == (
        events.CARET_TASK_BROWSER_TOOL_END.feature,
        events.CARET_TASK_BROWSER_TOOL_END.action,
    )


def test_the_fallback_event_id_is_a_hash_of_the_record_stable_across_encodings() -> None:
    without_id = tokens_event()
    del without_id.attributes[0]  # caret.event.id
    other = tokens_event()
    del other.attributes[0]
    other.time_unix_nano += 1_000
    first = as_dict(decode(without_id).rows[0])["event_id"]
    again = as_dict(decode(without_id).rows[0])["event_id"]
    different = as_dict(decode(other).rows[0])["event_id"]
    assert first.startswith("sha256:")
    assert first == again
    assert first != different

    # the same record sent as OTLP/JSON hashes to the same id
    request = logs_request([without_id])
    as_json = orjson.dumps(json_format.MessageToDict(request))
    parsed = otlp_body.decode_request(as_json, otlp_body.JSON, ExportLogsServiceRequest)
    builder = EventRowBuilder(AcceptWindow.at(NOW, 30))
    assert as_dict(builder.decode(parsed).rows[0])["event_id"] == first
