"""Planted secrets reach every kind of client field, and only where the plan says."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from caret_otel.processors.privacy.client_events import ClientEventError, ClientEventScrubber
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, generate_key_entry, parse_keys
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.semconv.policy import load_policy
from caret_otel.simulator import planting
from caret_otel.simulator.fields import forbidden_property_keys
from caret_otel.simulator.scenario import Scenario, ScenarioSettings, build_scenario

END = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def planted() -> Scenario:
    return build_scenario(ScenarioSettings(users=28, days=3, seed=23, plant_secrets=True), end=END)


def test_needles_are_distinct_parts_of_their_secrets() -> None:
    assert len(set(planting.NEEDLES)) == len(planting.NEEDLES)
    for secret in planting.PLANTED_SECRETS:
        assert secret.needle in secret.value
        assert not any(c in secret.needle for c in '\\"\n')  # survives JSON and SQL escaping
    kinds = {secret.kind for secret in planting.PLANTED_SECRETS}
    assert kinds >= {
        "email",
        "path",
        "bearer_token",
        "api_key",
        "card_number",
        "pem_key",
        "ipv4",
        "ipv6",
    }


def test_every_kind_of_client_field_carries_secrets(planted: Scenario) -> None:
    events = [e for t in planted.traffic for e in t.events]
    text = [orjson.dumps(e.to_json()).decode().lower() for e in events]
    carrying = [t for t in text if any(n.lower() in t for n in planting.NEEDLES)]
    assert len(carrying) > len(events) / 4
    users = {e.user_id_hash for e in events}
    assert any("@" in user for user in users)  # a raw e-mail as the user id
    assert any(any(n in e.session_id for n in planting.NEEDLES) for e in events)
    assert any(set(forbidden_property_keys()) <= set(e.properties) for e in events)
    assert any(planting.UNKNOWN_PROPERTY in e.properties for e in events)
    assert any(planting.UNKNOWN_CLIENT_INFO in e.client_info for e in events)
    assert any(isinstance(v, list) for e in events for v in e.properties.values())
    assert any(e.expect_rejected and "task." in e.event_type for e in events)
    countries = {r.country for r in planted.requests()}
    assert planting.PLANTED_SECRETS[11].value in countries


def test_consent_events_are_never_planted(planted: Scenario) -> None:
    consent_types = {"user.opt_out", "user.opt_in"}
    for traffic in planted.traffic:
        for event in traffic.events:
            if event.event_type in consent_types:
                assert planting.UNKNOWN_PROPERTY not in event.properties
                assert not any(n in event.session_id for n in planting.NEEDLES)


def test_only_the_marked_events_are_rejected_by_the_real_processor(planted: Scenario) -> None:
    keys = parse_keys(generate_key_entry("1"), source="test")
    processor = ClientEventScrubber(
        PrivacyEngine(load_policy(), Pseudonymizer(keys)), InMemoryConsentStore()
    )
    refusals: list[tuple[bool, str]] = []
    marked = 0
    for traffic in planted.traffic:
        for event in traffic.events:
            marked += event.expect_rejected
            try:
                processor.scrub(event.to_json(), ScrubReport())
            except ClientEventError as error:
                refusals.append((event.expect_rejected, str(error).lower()))
    assert len(refusals) == marked > 0
    assert all(expected for expected, _ in refusals)
    # The reason names the field, never the planted value.
    assert not [m for _, m in refusals if any(n.lower() in m for n in planting.NEEDLES)]
