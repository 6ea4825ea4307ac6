"""Business-event helpers: one OTel event (log record with the registry's event name)
plus the registry's metric per call, deterministic keyed event ids, clear errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, generate_key_entry, parse_keys
from caret_otel.sdk.events import BusinessEventError, BusinessEvents
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as event_specs
from caret_otel.semconv import metrics as metric_specs
from caret_otel.semconv.events import EventSpec

AT = datetime(2025, 1, 11, 10, 0, 0, 123456, tzinfo=UTC)
AT_NS = 1_736_589_600_123_456_000
USER = "user-hash-42"


def pseudonymizer() -> Pseudonymizer:
    return Pseudonymizer(parse_keys(generate_key_entry("t1"), source="test"))


@dataclass
class Bench:
    events: BusinessEvents
    logs: InMemoryLogRecordExporter
    reader: InMemoryMetricReader

    def records(self) -> list[ReadableLogRecord]:
        return list(self.logs.get_finished_logs())

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def bench() -> Bench:
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    reader = InMemoryMetricReader()
    events = BusinessEvents(
        pseudonymizer(), logger_provider, MeterProvider(metric_readers=[reader])
    )
    return Bench(events, logs, reader)


@dataclass(frozen=True)
class HelperCase:
    name: str
    spec: EventSpec
    call: Callable[[BusinessEvents], str]
    values: dict[str, Any]
    metric: str
    metric_attributes: dict[str, Any]
    metric_value: float


CASES = [
    HelperCase(
        "signup",
        event_specs.CARET_USER_SIGNED_UP,
        lambda e: e.signup(USER, "free", "organic", "KR", at=AT),
        {
            attrs.CARET_PLAN_NAME: "free",
            attrs.CARET_SIGNUP_CHANNEL: "organic",
            attrs.GEO_COUNTRY_ISO_CODE: "KR",
        },
        metric_specs.CARET_SIGNUPS.name,
        {
            attrs.CARET_PLAN_NAME: "free",
            attrs.CARET_SIGNUP_CHANNEL: "organic",
            attrs.GEO_COUNTRY_ISO_CODE: "KR",
        },
        1,
    ),
    HelperCase(
        "plan_change",
        event_specs.CARET_PLAN_CHANGED,
        lambda e: e.plan_change(USER, "free", "pro", at=AT),
        {attrs.CARET_PLAN_PREVIOUS: "free", attrs.CARET_PLAN_NAME: "pro"},
        metric_specs.CARET_PLAN_CHANGES.name,
        {attrs.CARET_PLAN_PREVIOUS: "free", attrs.CARET_PLAN_NAME: "pro"},
        1,
    ),
    HelperCase(
        "credits_purchased",
        event_specs.CARET_CREDITS_PURCHASED,
        lambda e: e.credits_purchased(USER, 500, "pro", at=AT),
        {attrs.CARET_CREDITS_AMOUNT: 500.0, attrs.CARET_PLAN_NAME: "pro"},
        metric_specs.CARET_CREDITS_PURCHASED.name,
        {attrs.CARET_PLAN_NAME: "pro"},
        500,
    ),
    HelperCase(
        "credits_consumed",
        event_specs.CARET_CREDITS_CONSUMED,
        lambda e: e.credits_consumed(USER, 2.5, "anthropic", "claude-sonnet-4", "pro", at=AT),
        {
            attrs.CARET_CREDITS_AMOUNT: 2.5,
            attrs.GEN_AI_PROVIDER_NAME: "anthropic",
            attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
            attrs.CARET_PLAN_NAME: "pro",
        },
        metric_specs.CARET_CREDITS_CONSUMED.name,
        {
            attrs.CARET_PLAN_NAME: "pro",
            attrs.GEN_AI_PROVIDER_NAME: "anthropic",
            attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
        },
        2.5,
    ),
    HelperCase(
        "session_started",
        event_specs.CARET_SESSION_STARTED,
        lambda e: e.session_started(USER, "s-1", "vscode", "free", at=AT),
        {
            attrs.SESSION_ID: "s-1",
            attrs.CARET_CLIENT_PLATFORM: "vscode",
            attrs.CARET_PLAN_NAME: "free",
        },
        metric_specs.CARET_SESSION_ACTIVE.name,
        {attrs.CARET_CLIENT_PLATFORM: "vscode"},
        1,
    ),
    HelperCase(
        "session_ended",
        event_specs.CARET_SESSION_ENDED,
        lambda e: e.session_ended(USER, "s-1", 1800.0, "vscode", at=AT),
        {
            attrs.SESSION_ID: "s-1",
            attrs.CARET_CLIENT_PLATFORM: "vscode",
            attrs.CARET_SESSION_DURATION: 1800.0,
        },
        metric_specs.CARET_SESSION_ACTIVE.name,
        {attrs.CARET_CLIENT_PLATFORM: "vscode"},
        -1,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_helper_emits_the_registry_event_and_metric(bench: Bench, case: HelperCase) -> None:
    event_id = case.call(bench.events)
    [record] = bench.records()
    assert record.log_record.event_name == case.spec.name
    assert record.log_record.timestamp == AT_NS
    attributes = dict(record.log_record.attributes or {})
    assert attributes == {
        attrs.CARET_EVENT_ID: event_id,
        attrs.CARET_EVENT_CLIENT_TYPE: case.spec.client_event,
        attrs.ENDUSER_PSEUDO_ID: USER,  # in clear here: the privacy processor hashes it
        **case.values,
    }
    assert set(attributes) <= set(case.spec.attributes)
    assert set(case.spec.required) <= set(attributes)
    assert len(event_id) == 32
    int(event_id, 16)
    [point] = bench.points(case.metric)
    assert dict(point.attributes) == case.metric_attributes
    assert point.value == case.metric_value


def test_session_end_records_the_session_length(bench: Bench) -> None:
    bench.events.session_started(USER, "s-1", "vscode", at=AT)
    bench.events.session_ended(USER, "s-1", 1800.0, "vscode", at=AT + timedelta(minutes=30))
    [active] = bench.points(metric_specs.CARET_SESSION_ACTIVE.name)
    assert active.value == 0
    [duration] = bench.points(metric_specs.CARET_SESSION_DURATION.name)
    assert (duration.count, duration.sum) == (1, 1800.0)
    assert list(duration.explicit_bounds) == list(metric_specs.CARET_SESSION_DURATION.buckets or ())


def test_event_ids_are_deterministic_and_identity_sensitive(bench: Bench) -> None:
    events = bench.events
    first = events.credits_purchased(USER, 500, "pro", at=AT)
    assert events.credits_purchased(USER, 500, "pro", at=AT) == first  # a retry
    different = {
        events.credits_purchased(USER, 501, "pro", at=AT),
        events.credits_purchased("someone-else", 500, "pro", at=AT),
        events.credits_purchased(USER, 500, "pro", at=AT + timedelta(microseconds=1)),
        events.credits_purchased(USER, 500, "pro", at=AT, idempotency_key="pay_1"),
        events.credits_consumed(USER, 500, "anthropic", "m", "pro", at=AT),
    }
    assert first not in different
    assert len(different) == 5
    # An idempotency key identifies the event by itself: a retry later is the same event.
    keyed = events.credits_purchased(USER, 500, "pro", at=AT, idempotency_key="pay_9")
    later = AT + timedelta(seconds=30)
    assert events.credits_purchased(USER, 500, "pro", at=later, idempotency_key="pay_9") == keyed
    assert events.credits_purchased(USER, 500, "pro", at=AT, idempotency_key="pay_10") != keyed
    # Same time in another zone is the same instant, hence the same event.
    kst = timezone(timedelta(hours=9))
    assert events.credits_purchased(USER, 500, "pro", at=AT.astimezone(kst)) == first


def test_event_ids_depend_on_the_key(bench: Bench) -> None:
    other = BusinessEvents(pseudonymizer(), LoggerProvider(), MeterProvider())  # another key
    assert other.plan_change(USER, "free", "pro", at=AT) != bench.events.plan_change(
        USER, "free", "pro", at=AT
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: e.signup("", "free", "organic"), "user_id: must be a non-empty string"),
        (lambda e: e.signup(USER, " ", "organic"), "plan: must be a non-empty string"),
        (lambda e: e.credits_purchased(USER, -1, "pro"), "amount: must not be negative"),
        (
            lambda e: e.credits_purchased(USER, float("nan"), "pro"),
            "amount: must be a finite number",
        ),
        (
            lambda e: e.credits_consumed(USER, True, "p", "m", "pro"),
            "amount: must be a finite number",
        ),
        (lambda e: e.session_ended(USER, "s", -5), "duration_s: must not be negative"),
        (
            lambda e: e.plan_change(USER, "a", "b", at=datetime(2025, 1, 1)),
            "at: must be timezone-aware",
        ),
        (lambda e: e.plan_change(USER, "a", "b", idempotency_key=""), "idempotency_key"),
    ],
)
def test_bad_arguments_are_named(
    bench: Bench, call: Callable[[BusinessEvents], str], message: str
) -> None:
    with pytest.raises(BusinessEventError, match=message):
        call(bench.events)
    assert bench.records() == []
