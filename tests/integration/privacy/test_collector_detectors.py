"""Every detector's cases through the real Collector: the RE2 form of each detector
(``redaction.DETECTORS``, rendered into ``collector/privacy-pass.yaml``) on exactly the
cases its Python form is tested on, in a free-text attribute, a log body (top level and
nested in a map), a span name and a status message. The Collector cannot NFKC or
percent-decode: zero-width and control characters are stripped by ``transform/normalise``
and the patterns take full-width and percent-encoded separators."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import pytest
from fixtures.services import otlp_attributes, otlp_value, wait_until
from integration.pipeline.pipeline_support import any_value, key_values, resource
from integration.privacy.collector_pass import PrivacyPassCollector

from caret_otel.processors.privacy import redaction as py
from caret_otel.registry.collector_privacy import MASK
from caret_otel.semconv import attributes as attrs

pytestmark = pytest.mark.integration

REDACTS = [(d.kind, text, core) for d in py.DETECTORS for text, core in d.redacts]
KEEPS = [text for d in py.DETECTORS for text in d.keeps]
BROADER = [text for d in py.DETECTORS for text in d.python_keeps]
CONTROLS = "bell\x07 nul\x00 esc\x1b del\x7f zero\u200bwidth rtl\u202e end"
CONTROLS_CLEAN = "bell nul esc del zerowidth rtl end"


def _eid(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()[:32]


def _log(label: str, text: str, now: int) -> dict[str, Any]:
    return {
        "timeUnixNano": str(now),
        "eventName": "caret.test.probe",
        "body": any_value(text),
        "attributes": key_values(
            {attrs.CARET_EVENT_ID: _eid(label), attrs.CARET_ERROR_MESSAGE: text}
        ),
    }


def _nested(label: str, text: str, now: int) -> dict[str, Any]:
    body = {attrs.EXCEPTION_STACKTRACE: {attrs.EXCEPTION_MESSAGE: text}}
    return {
        "timeUnixNano": str(now),
        "eventName": "caret.test.nested",
        "body": any_value(body),
        "attributes": key_values({attrs.CARET_EVENT_ID: _eid(label)}),
    }


def _span(label: str, text: str, now: int) -> dict[str, Any]:
    return {
        "traceId": uuid.uuid4().hex,
        "spanId": uuid.uuid4().hex[:16],
        "name": text,
        "kind": 1,
        "startTimeUnixNano": str(now - 10**9),
        "endTimeUnixNano": str(now),
        "attributes": key_values({attrs.CARET_EVENT_ID: _eid(label)}),
        "status": {"code": 2, "message": text},
    }


CASES: dict[str, str] = {
    **{f"redacts-{i}": text for i, (_, text, _) in enumerate(REDACTS)},
    **{f"keeps-{i}": text for i, text in enumerate(KEEPS)},
    **{f"broader-{i}": text for i, text in enumerate(BROADER)},
    "controls": CONTROLS,
}


@pytest.fixture(scope="module")
def landed(privacy_pass: PrivacyPassCollector) -> dict[str, dict[str, Any]]:
    """label -> what came out: {"attribute", "body", "nested", "span", "status"}."""
    now = time.time_ns()
    service = f"detectors-{uuid.uuid4().hex[:8]}"
    logs = [_log(label, text, now) for label, text in CASES.items()]
    logs += [_nested(f"nested-{label}", text, now) for label, text in CASES.items()]
    spans = [_span(label, text, now) for label, text in CASES.items()]
    privacy_pass.post(
        "logs",
        {"resourceLogs": [{"resource": resource(service), "scopeLogs": [{"logRecords": logs}]}]},
    )
    privacy_pass.post(
        "traces",
        {"resourceSpans": [{"resource": resource(service), "scopeSpans": [{"spans": spans}]}]},
    )

    def collected() -> dict[str, dict[str, Any]] | None:
        out: dict[str, dict[str, Any]] = {label: {} for label in CASES}
        by_id = {_eid(label): label for label in CASES}
        by_id |= {_eid(f"nested-{label}"): label for label in CASES}
        for request in privacy_pass.requests("logs"):
            for block in request.get("resourceLogs", []):
                for scope in block.get("scopeLogs", []):
                    for record in scope.get("logRecords", []):
                        attributes = otlp_attributes(record.get("attributes"))
                        label = by_id.get(attributes.get(attrs.CARET_EVENT_ID, ""))
                        if label is None:
                            continue
                        body = otlp_value(record.get("body", {}))
                        if isinstance(body, dict):
                            out[label]["nested"] = body[attrs.EXCEPTION_STACKTRACE][
                                attrs.EXCEPTION_MESSAGE
                            ]
                        else:
                            out[label]["body"] = body
                            out[label]["attribute"] = attributes[attrs.CARET_ERROR_MESSAGE]
        for request in privacy_pass.requests("traces"):
            for block in request.get("resourceSpans", []):
                for scope in block.get("scopeSpans", []):
                    for span in scope.get("spans", []):
                        label = by_id.get(
                            otlp_attributes(span.get("attributes")).get(attrs.CARET_EVENT_ID, "")
                        )
                        if label is not None:
                            out[label]["span"] = span["name"]
                            out[label]["status"] = span.get("status", {}).get("message", "")
        complete = all(len(places) == 5 for places in out.values())
        return out if complete else None

    return wait_until(collected, timeout=30, what="every probe through the privacy pass")


def test_python_forms_hold_on_the_cases() -> None:
    """The same cases, Python side (the RE2 side is below)."""
    for kind, text, core in REDACTS:
        redacted, kinds = py.redact_text(text)
        assert kind in kinds, (kind, text, kinds)
        assert core not in redacted, (kind, text, redacted)
    for text in KEEPS + BROADER:
        assert py.redact_text(text) == (text, []), text
    assert {kind for kind, _, _ in REDACTS} == set(py.KINDS)


@pytest.mark.parametrize(
    ("kind", "text", "core"), REDACTS, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(REDACTS)]
)
def test_every_detector_case_is_masked_by_the_collector(
    landed: dict[str, dict[str, Any]], kind: str, text: str, core: str
) -> None:
    label = f"redacts-{REDACTS.index((kind, text, core))}"
    for place, value in landed[label].items():
        assert core not in value, (kind, place, value)
        assert MASK in value, (kind, place, value)


def test_what_python_keeps_the_collector_keeps(landed: dict[str, dict[str, Any]]) -> None:
    for index, text in enumerate(KEEPS):
        for place, value in landed[f"keeps-{index}"].items():
            assert value == text, (place, text, value)


def test_the_collector_is_broader_where_documented(landed: dict[str, dict[str, Any]]) -> None:
    """Where Python refines a match (Luhn, how random a value looks, a longer dotted
    number), the Collector masks the broader match (docs/privacy.md)."""
    for index, text in enumerate(BROADER):
        for place, value in landed[f"broader-{index}"].items():
            assert MASK in value, (place, text, value)


def test_format_and_control_characters_are_stripped(landed: dict[str, dict[str, Any]]) -> None:
    places = landed["controls"]
    for place in ("attribute", "body", "span", "status"):
        assert places[place] == CONTROLS_CLEAN, (place, places[place])
    # Nested log-body maps are out of the normalising pass (OTTL reaches the top level):
    # the redaction processor still scans them, its e-mail pattern allows format
    # characters inside an address.
    assert "zero" in places["nested"]
