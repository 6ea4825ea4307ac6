"""Value shapes and types in the Collector's pass, through the real Collector: string[]
elements are checked one by one (via the list's JSON text), numbers and booleans by type,
coarse values by their shape, and a pseudonymous value that does not hash to one
pseudonym is dropped; well-formed values come through."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from fixtures.services import otlp_attributes, otlp_value, wait_until
from integration.pipeline.pipeline_support import (
    any_value,
    collector_pseudonym,
    key_values,
    resource,
)
from integration.privacy.collector_pass import PrivacyPassCollector

from caret_otel.semconv import attributes as attrs

pytestmark = pytest.mark.integration

REASONS = attrs.GEN_AI_RESPONSE_FINISH_REASONS
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # label: (sent, expected among what comes out; None = the key is gone)
    "good": (
        {
            REASONS: ["stop", "length"],
            attrs.HTTP_RESPONSE_STATUS_CODE: 200,
            attrs.GEO_COUNTRY_ISO_CODE: "KR",
            attrs.GEO_CONTINENT_CODE: "AS",
            attrs.ENDUSER_ID: "alice",
        },
        {
            REASONS: ["stop", "length"],
            attrs.HTTP_RESPONSE_STATUS_CODE: 200,
            attrs.GEO_COUNTRY_ISO_CODE: "KR",
            attrs.GEO_CONTINENT_CODE: "AS",
            attrs.ENDUSER_ID: collector_pseudonym("alice"),
        },
    ),
    "element off shape": ({REASONS: ["stop", "Jane Doe"]}, {REASONS: None}),
    "element too long": ({REASONS: ["stop", "x" * 65]}, {REASONS: None}),
    "element with a quote": ({REASONS: ["stop", 'a","b']}, {REASONS: None}),
    "element with a path": ({REASONS: ["/home/alice/x.py"]}, {REASONS: None}),
    "a string, not a list": ({REASONS: "stop"}, {REASONS: None}),
    "number as text": (
        {attrs.HTTP_RESPONSE_STATUS_CODE: "김민준", attrs.GEN_AI_USAGE_INPUT_TOKENS: "12"},
        {attrs.HTTP_RESPONSE_STATUS_CODE: None, attrs.GEN_AI_USAGE_INPUT_TOKENS: None},
    ),
    "coarse off shape": (
        {attrs.GEO_COUNTRY_ISO_CODE: "Seoul, Gangnam-gu", attrs.GEO_CONTINENT_CODE: "Asia"},
        {attrs.GEO_COUNTRY_ISO_CODE: None, attrs.GEO_CONTINENT_CODE: None},
    ),
    "pseudonym over lines": ({attrs.ENDUSER_ID: "alice\nbob"}, {attrs.ENDUSER_ID: None}),
}


def _eid(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()[:32]


@pytest.fixture(scope="module")
def landed(privacy_pass: PrivacyPassCollector) -> dict[str, dict[str, Any]]:
    now = time.time_ns()
    records = [
        {
            "timeUnixNano": str(now),
            "eventName": "caret.test.shapes",
            "attributes": key_values({attrs.CARET_EVENT_ID: _eid(label), **sent}),
            "body": any_value({attrs.ENDUSER_ID: "carol"}),
        }
        for label, (sent, _) in CASES.items()
    ]
    body = {
        "resourceLogs": [{"resource": resource("shapes"), "scopeLogs": [{"logRecords": records}]}]
    }
    privacy_pass.post("logs", body)
    by_id = {_eid(label): label for label in CASES}

    def collected() -> dict[str, dict[str, Any]] | None:
        out = {}
        for request in privacy_pass.requests("logs"):
            for block in request.get("resourceLogs", []):
                for scope in block.get("scopeLogs", []):
                    for record in scope.get("logRecords", []):
                        attributes = otlp_attributes(record.get("attributes"))
                        label = by_id.get(attributes.get(attrs.CARET_EVENT_ID, ""))
                        if label is not None:
                            out[label] = {**attributes, "body": otlp_value(record["body"])}
        return out if len(out) == len(CASES) else None

    return wait_until(collected, timeout=20, what="every shape probe")


@pytest.mark.parametrize("label", list(CASES))
def test_values_keep_their_shape_and_type(landed: dict[str, dict[str, Any]], label: str) -> None:
    attributes = landed[label]
    for key, expected in CASES[label][1].items():
        assert attributes.get(key) == expected, (key, attributes.get(key))


def test_pseudonyms_in_a_map_body_are_formatted(landed: dict[str, dict[str, Any]]) -> None:
    assert landed["good"]["body"] == {attrs.ENDUSER_ID: collector_pseudonym("carol")}


def test_hex_and_uuid_event_ids_pass_unmasked(privacy_pass: PrivacyPassCollector) -> None:
    """An event id is an id, not text: a card-like or phone-like digit run in a hex
    digest or a UUID is not masked (the exporter would store the event under another id,
    which breaks deduplication)."""
    ids = ["4111111111111111abcdef0123456789", "01012345-6789-4abc-8def-0123456789ab"]
    now = time.time_ns()
    records = [
        {
            "timeUnixNano": str(now),
            "eventName": "caret.test.ids",
            "attributes": key_values({attrs.CARET_EVENT_ID: event_id}),
        }
        for event_id in ids
    ]
    body = {"resourceLogs": [{"resource": resource("ids"), "scopeLogs": [{"logRecords": records}]}]}
    privacy_pass.post("logs", body)

    def seen() -> set[str] | None:
        found = {
            otlp_attributes(record.get("attributes")).get(attrs.CARET_EVENT_ID)
            for request in privacy_pass.requests("logs")
            for block in request.get("resourceLogs", [])
            for scope in block.get("scopeLogs", [])
            for record in scope.get("logRecords", [])
        }
        return found if set(ids) <= found else None

    wait_until(seen, timeout=20, what="both event ids unmasked")
