"""The simulated traffic: deterministic, inside the raw window, valid for the real privacy
processor, with the sessions, consent and shares it promises."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from caret_otel.processors.privacy import report as reasons
from caret_otel.processors.privacy.client_events import ClientEventError, ClientEventScrubber
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, generate_key_entry, parse_keys
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.semconv.policy import load_policy
from caret_otel.simulator import catalog
from caret_otel.simulator.fields import UnknownClientFieldError, property_key
from caret_otel.simulator.population import build_population, build_user
from caret_otel.simulator.scenario import (
    MAX_DAYS,
    Scenario,
    ScenarioError,
    ScenarioSettings,
    build_scenario,
)
from caret_otel.simulator.traffic import ClientEvent

END = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
SESSION_RULE = timedelta(minutes=30)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario(ScenarioSettings(users=120, days=10, seed=5), end=END)


def scrubber(consent: InMemoryConsentStore | None = None) -> ClientEventScrubber:
    keys = parse_keys(generate_key_entry("1"), source="test")
    engine = PrivacyEngine(load_policy(), Pseudonymizer(keys))
    return ClientEventScrubber(engine, consent or InMemoryConsentStore())


def test_same_settings_give_the_same_traffic_and_another_seed_does_not() -> None:
    settings = ScenarioSettings(users=30, days=4, seed=9)
    first = build_scenario(settings, end=END)
    again = build_scenario(settings, end=END)
    other = build_scenario(ScenarioSettings(users=30, days=4, seed=10), end=END)
    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint() != other.fingerprint()
    assert [r.body() for r in first.requests()] == [r.body() for r in again.requests()]


def test_a_user_does_not_depend_on_the_population_size() -> None:
    start = END - timedelta(days=7)
    small = build_population(3, 10, start, 7)
    large = build_population(3, 50, start, 7)
    assert [u.user_id_hash for u in small] == [u.user_id_hash for u in large[:10]]
    assert build_user(3, 4, start, 7) == small[4]


def test_history_is_back_dated_inside_the_raw_retention(scenario: Scenario) -> None:
    assert scenario.window_end == END
    assert scenario.window_start == END - timedelta(days=10)
    for user in scenario.traffic:
        for event in user.events:
            assert scenario.window_start - timedelta(seconds=1) <= event.at < END
        for billing in user.billing:
            assert scenario.window_start <= billing.at < END
    with pytest.raises(ScenarioError, match="days: must be between 1 and 29"):
        build_scenario(ScenarioSettings(days=MAX_DAYS + 1))
    with pytest.raises(ScenarioError, match="users"):
        build_scenario(ScenarioSettings(users=0))


def test_sessions_are_more_than_30_minutes_apart_and_have_no_30_minute_gap(
    scenario: Scenario,
) -> None:
    started, ended = (
        events.CARET_SESSION_STARTED.client_event,
        events.CARET_SESSION_ENDED.client_event,
    )
    checked = 0
    for user in scenario.traffic:
        by_session: dict[str, list[ClientEvent]] = {}
        for event in user.events:
            by_session.setdefault(event.session_id, []).append(event)
        sessions = sorted(by_session.values(), key=lambda s: s[0].at)
        for previous, current in itertools.pairwise(sessions):
            assert current[0].at - previous[-1].at > SESSION_RULE
        for session in sessions:
            times = [e.at for e in session]
            assert all(b - a < SESSION_RULE for a, b in itertools.pairwise(times))
            # A consent change is reported with the first event after it.
            consent = (
                events.CARET_USER_OPT_OUT.client_event,
                events.CARET_USER_OPT_IN.client_event,
            )
            assert session[0].event_type in (started, *consent)
            checked += session[-1].event_type == ended
    assert checked > 100


def test_every_event_passes_the_real_privacy_processor_without_drops(scenario: Scenario) -> None:
    processor = scrubber()
    report = ScrubReport()
    seen: Counter[str] = Counter()
    for user in scenario.traffic:
        for event in user.events:
            scrubbed = processor.scrub(event.to_json(), report, country=user.user.country.code)
            assert scrubbed is not None
            seen[scrubbed.spec.name] += 1
    # Only what the registry declares as not collected (full OS version strings).
    assert set(report.dropped) == {("os_version", reasons.NOT_COLLECTED)}, report.dropped
    # Every client event of the registry is exercised, except the account and billing
    # events (the simulated server records those) and consent (see the consent test).
    server_side_or_consent = {
        events.CARET_USER_SIGNED_UP,
        events.CARET_PLAN_CHANGED,
        events.CARET_CREDITS_PURCHASED,
        events.CARET_CREDITS_CONSUMED,
        events.CARET_USER_OPT_IN,
        events.CARET_USER_OPT_OUT,
    }
    assert set(seen) >= {spec.name for spec in events.ALL if spec not in server_side_or_consent}


def test_the_gateway_drops_exactly_the_events_marked_as_sent_after_an_opt_out() -> None:
    scenario = build_scenario(ScenarioSettings(users=150, days=14, seed=13), end=END)
    consent = InMemoryConsentStore()
    processor = scrubber(consent)
    dropped = marked = 0
    for user in scenario.traffic:
        for event in user.events:
            scrubbed = processor.scrub(event.to_json(), ScrubReport())
            marked += event.expect_opted_out
            if scrubbed is None:
                dropped += 1
                assert event.expect_opted_out
                continue
            assert not event.expect_opted_out
            if scrubbed.consent_change is not None:  # what the gateway records
                pseudonym = scrubbed.attributes[attrs.ENDUSER_PSEUDO_ID]
                consent.set_consent([str(pseudonym)], scrubbed.consent_change)
    assert dropped == marked > 0
    opt_ins = sum(
        e.event_type == events.CARET_USER_OPT_IN.client_event
        for u in scenario.traffic
        for e in u.events
    )
    assert opt_ins > 0


def test_billing_respects_the_reported_opt_out() -> None:
    scenario = build_scenario(ScenarioSettings(users=150, days=14, seed=13), end=END)
    for user in scenario.traffic:
        outs = [e.at for e in user.events if e.event_type == events.CARET_USER_OPT_OUT.client_event]
        ins = [e.at for e in user.events if e.event_type == events.CARET_USER_OPT_IN.client_event]
        for billing in user.billing:
            if outs and billing.at >= outs[0]:
                assert ins
                assert billing.at >= ins[0]


def test_shares_are_plausible() -> None:
    scenario = build_scenario(ScenarioSettings(users=600, days=7, seed=1), end=END)
    users = [t.user for t in scenario.traffic]
    countries = Counter(u.country.code for u in users)
    languages = Counter(u.language for u in users)
    assert 0.38 < countries["KR"] / len(users) < 0.54
    assert languages.most_common(1)[0][0] == "ko"
    assert {"en", "ja", "zh"} <= set(languages)
    requests: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for traffic in scenario.traffic:
        for call in traffic.provider_calls:
            requests[call.provider] += 1
            errors[call.provider] += call.status is not None
    assert requests.most_common(1)[0][0] == "anthropic"
    rate = {p: errors[p] / requests[p] for p in requests if requests[p] > 300}
    assert max(rate, key=rate.__getitem__) == "deepseek"
    assert all(0.005 < r < 0.12 for r in rate.values())
    plans = Counter(b.plan for t in scenario.traffic for b in t.billing)
    assert plans[catalog.FREE_PLAN] > 0
    assert plans["pro"] > 0


def test_requests_hold_one_users_session_in_order(scenario: Scenario) -> None:
    requests = scenario.requests()
    assert sum(r.size for r in requests) == scenario.event_count
    last_seen: dict[int, datetime] = {}
    for request in requests:
        assert 1 <= request.size <= scenario.settings.batch_size
        assert len({e.session_id for e in request.events}) == 1
        assert len({e.user_id_hash for e in request.events}) == 1
        first = request.events[0].at
        assert last_seen.get(request.user_index, first) <= first
        last_seen[request.user_index] = request.events[-1].at


def test_client_keys_come_from_the_registry() -> None:
    # The real client's names (Cline v3.38.2 = Caret 0.4.x), else the plan's.
    assert property_key(attrs.GEN_AI_PROVIDER_NAME) == "apiProvider"
    assert property_key(attrs.CARET_TASK_ID) == "ulid"
    assert property_key(attrs.GEN_AI_USAGE_INPUT_TOKENS) == "tokensIn"
    assert property_key(attrs.CARET_API_COST) == "totalCost"
    assert property_key(attrs.CARET_CONTEXT_WINDOW_SIZE) == "contextSize"
    assert property_key(attrs.CARET_TASK_OUTCOME) == "status_outcome"
    with pytest.raises(UnknownClientFieldError, match=attrs.CARET_TOKEN_TYPE):
        property_key(attrs.CARET_TOKEN_TYPE)


def test_a_failed_model_call_is_reported_with_a_status_its_provider_produces(
    scenario: Scenario,
) -> None:
    error_type = property_key(attrs.ERROR_TYPE)
    failures = [
        e for t in scenario.traffic for e in t.events
        if e.event_type == events.CARET_TASK_PROVIDER_API_ERROR.client_event
    ]  # fmt: skip
    assert failures
    for event in failures:
        provider = str(event.properties[property_key(attrs.GEN_AI_PROVIDER_NAME)])
        statuses = {str(s) for s, _ in catalog.RELIABILITY[provider].statuses}
        assert event.properties[error_type] in statuses


def test_a_malformed_event_is_reported_by_field_not_by_value() -> None:
    processor = scrubber()
    scenario = build_scenario(ScenarioSettings(users=10, days=2, seed=2), end=END)
    event = next(e for t in scenario.traffic for e in t.events)
    broken = {**event.to_json(), "timestamp": "yesterday"}
    with pytest.raises(ClientEventError) as raised:
        processor.scrub(broken, ScrubReport())
    assert raised.value.field == "timestamp"
