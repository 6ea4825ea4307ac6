"""The policy engine: fail closed, pseudonymise, coarsen, type-check, bound, report."""

from __future__ import annotations

import hashlib

import pytest

from caret_otel.processors.privacy import report as reasons
from caret_otel.processors.privacy.engine import Limits, PrivacyEngine, is_secret_key_name
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, is_pseudonym
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv.policy import load_policy


def test_unknown_and_forbidden_keys_are_dropped(engine: PrivacyEngine, report: ScrubReport) -> None:
    out = engine.scrub_attributes(
        {
            "my.custom.key": "x",
            attrs.CARET_PROMPT_TEXT: "fix my code",
            attrs.HOST_NAME: "alice-mbp",
        },
        report,
    )
    assert out == {}
    assert report.dropped == {
        ("my.custom.key", reasons.UNKNOWN): 1,
        (attrs.CARET_PROMPT_TEXT, reasons.FORBIDDEN): 1,
        (attrs.HOST_NAME, reasons.FORBIDDEN): 1,
    }


def test_every_forbidden_registry_attribute_is_dropped(
    engine: PrivacyEngine, report: ScrubReport
) -> None:
    forbidden = {
        name for name, rule in load_policy().attributes.items() if rule.privacy == "forbidden"
    }
    assert len(forbidden) >= 20
    assert engine.scrub_attributes(dict.fromkeys(forbidden, "value"), report) == {}
    assert report.total_dropped == len(forbidden)


def test_public_values_of_the_right_type_pass_unchanged(
    engine: PrivacyEngine, report: ScrubReport
) -> None:
    values = {
        attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
        attrs.GEN_AI_PROVIDER_NAME: "anthropic",
        attrs.GEN_AI_USAGE_INPUT_TOKENS: 1234,
        attrs.CARET_API_COST: 0.25,
        attrs.CARET_TOOL_SUCCESS: True,
        attrs.CARET_CLIENT_VERSION: "1.0.0",
        attrs.GEN_AI_RESPONSE_FINISH_REASONS: ["stop", "length"],
    }
    out = engine.scrub_attributes(values, report)
    assert out == {**values, attrs.GEN_AI_RESPONSE_FINISH_REASONS: ("stop", "length")}
    assert report.total_dropped == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (attrs.GEN_AI_USAGE_INPUT_TOKENS, "12"),  # string for int
        (attrs.GEN_AI_USAGE_INPUT_TOKENS, True),  # bool is not an int here
        (attrs.GEN_AI_USAGE_INPUT_TOKENS, 1.5),
        (attrs.CARET_API_COST, "0.1"),
        (attrs.CARET_API_COST, float("nan")),
        (attrs.CARET_API_COST, False),
        (attrs.CARET_TOOL_SUCCESS, 1),  # int for boolean
        (attrs.GEN_AI_REQUEST_MODEL, 42),
        (attrs.GEN_AI_REQUEST_MODEL, {"nested": "map"}),
        (attrs.GEN_AI_RESPONSE_FINISH_REASONS, "stop"),
        (attrs.GEN_AI_RESPONSE_FINISH_REASONS, ["stop", 1]),
        (attrs.ENDUSER_ID, True),
        (attrs.ENDUSER_ID, 1.5),
    ],
)
def test_type_mismatch_is_dropped(
    engine: PrivacyEngine, report: ScrubReport, key: str, value: object
) -> None:
    assert engine.scrub_attributes({key: value}, report) == {}
    assert report.dropped == {(key, reasons.TYPE): 1}


def test_int_is_accepted_for_double(engine: PrivacyEngine, report: ScrubReport) -> None:
    out = engine.scrub_attributes({attrs.CARET_API_COST: 3}, report)
    assert out == {attrs.CARET_API_COST: 3.0}
    assert isinstance(out[attrs.CARET_API_COST], float)


def test_identifiers_become_keyed_pseudonyms(
    engine: PrivacyEngine, pseudonymizer: Pseudonymizer, report: ScrubReport
) -> None:
    out = engine.scrub_attributes(
        {attrs.USER_ID: "alice@example.com", attrs.SESSION_ID: "s-1", attrs.ENDUSER_ID: 42}, report
    )
    assert out[attrs.USER_ID] == pseudonymizer.pseudonymize("alice@example.com")
    assert out[attrs.ENDUSER_ID] == pseudonymizer.pseudonymize("42")
    assert all(is_pseudonym(str(v)) for v in out.values())
    assert report.pseudonymised == {attrs.USER_ID: 1, attrs.SESSION_ID: 1, attrs.ENDUSER_ID: 1}


def test_empty_identifiers_are_dropped(engine: PrivacyEngine, report: ScrubReport) -> None:
    assert engine.scrub_attributes({attrs.USER_ID: "  ", attrs.SESSION_ID: None}, report) == {}
    assert report.dropped == {
        (attrs.USER_ID, reasons.EMPTY): 1,
        (attrs.SESSION_ID, reasons.EMPTY): 1,
    }


def test_pseudonyms_are_rehashed_unless_accepted(pseudonymizer: Pseudonymizer) -> None:
    existing = pseudonymizer.pseudonymize("alice")
    strict = PrivacyEngine(load_policy(), pseudonymizer)
    trusting = PrivacyEngine(load_policy(), pseudonymizer, accept_pseudonyms=True)
    report = ScrubReport()
    assert strict.scrub_attributes({attrs.USER_ID: existing}, report)[attrs.USER_ID] != existing
    assert trusting.scrub_attributes({attrs.USER_ID: existing}, report)[attrs.USER_ID] == existing
    forged = "v9:" + "0" * 64  # a pseudonym shape under a key we do not have
    # A look-alike whose keyed tag does not verify is dropped, never kept or re-keyed.
    assert attrs.USER_ID not in trusting.scrub_attributes({attrs.USER_ID: forged}, report)
    unkeyed = f"v{pseudonymizer.key_ids[-1]}:" + hashlib.sha256(b"alice@example.com").hexdigest()
    assert attrs.USER_ID not in trusting.scrub_attributes({attrs.USER_ID: unkeyed}, report)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("kr", "KR"),
        (" DE ", "DE"),
        ("XK", "XK"),
        ("Germany", None),
        ("XX", None),
        ("T1", None),
        (1, None),
    ],
)
def test_country_codes_are_validated(
    engine: PrivacyEngine, report: ScrubReport, value: object, expected: str | None
) -> None:
    out = engine.scrub_attributes({attrs.GEO_COUNTRY_ISO_CODE: value}, report)
    assert out.get(attrs.GEO_COUNTRY_ISO_CODE) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("eu", "EU"), ("AN", "AN"), ("Europe", None), ("XY", None)]
)
def test_continent_codes_are_validated(
    engine: PrivacyEngine, report: ScrubReport, value: str, expected: str | None
) -> None:
    out = engine.scrub_attributes({attrs.GEO_CONTINENT_CODE: value}, report)
    assert out.get(attrs.GEO_CONTINENT_CODE) == expected


def test_free_text_is_redacted_and_counted(engine: PrivacyEngine, report: ScrubReport) -> None:
    out = engine.scrub_attributes(
        {attrs.EXCEPTION_MESSAGE: "no access for bob@corp.com from 10.1.2.3"}, report
    )
    assert out[attrs.EXCEPTION_MESSAGE] == "no access for <redacted:email> from <redacted:ipv4>"
    assert report.redacted == {"email": 1, "ipv4": 1}


def test_metric_mode_keeps_only_metric_labels(engine: PrivacyEngine, report: ScrubReport) -> None:
    out = engine.scrub_attributes(
        {
            attrs.GEN_AI_REQUEST_MODEL: "gpt-4o",
            attrs.ENDUSER_PSEUDO_ID: "u1",
            attrs.SESSION_ID: "s1",
            attrs.CARET_API_COST: 1.0,
        },
        report,
        metric=True,
    )
    assert out == {attrs.GEN_AI_REQUEST_MODEL: "gpt-4o"}
    assert report.dropped_by_reason() == {reasons.NOT_METRIC: 3}


def test_limits_bound_count_and_length(pseudonymizer: Pseudonymizer) -> None:
    engine = PrivacyEngine(
        load_policy(), pseudonymizer, Limits(max_attributes=2, max_value_length=10)
    )
    report = ScrubReport()
    out = engine.scrub_attributes(
        {
            attrs.EXCEPTION_MESSAGE: "a-very-long-message",
            attrs.GEN_AI_PROVIDER_NAME: "anthropic",
            attrs.CARET_CLIENT_VERSION: "1.0.0",
        },
        report,
    )
    assert out == {
        attrs.EXCEPTION_MESSAGE: "a-very-lon",
        attrs.GEN_AI_PROVIDER_NAME: "anthropic",
    }
    assert report.dropped == {(attrs.CARET_CLIENT_VERSION, reasons.LIMIT): 1}
    assert report.truncated == {attrs.EXCEPTION_MESSAGE: 1}


def test_shaped_value_longer_than_the_limit_is_dropped_not_cut(
    pseudonymizer: Pseudonymizer,
) -> None:
    engine = PrivacyEngine(load_policy(), pseudonymizer, Limits(max_value_length=10))
    report = ScrubReport()
    out = engine.scrub_attributes({attrs.GEN_AI_REQUEST_MODEL: "a-very-long-model-name"}, report)
    assert out == {}
    assert report.dropped == {(attrs.GEN_AI_REQUEST_MODEL, reasons.SHAPE): 1}


def test_secret_straddling_the_length_limit_is_still_redacted(pseudonymizer: Pseudonymizer) -> None:
    engine = PrivacyEngine(load_policy(), pseudonymizer, Limits(max_value_length=20))
    text = "x" * 15 + " sk-ant-api03-abcdefghijklmnopqrstuvwx"
    out = engine.scrub_text(text, ScrubReport())
    assert "abcde" not in out
    assert len(out) == 20


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attributes"):
        Limits(max_attributes=0)


def test_body_is_scrubbed_recursively(
    engine: PrivacyEngine, pseudonymizer: Pseudonymizer, report: ScrubReport
) -> None:
    body = {
        "message": "login from 10.0.0.7",
        "user.id": "alice",
        "prompt": "my secret prompt",
        "access_token": "abc",
        "token_count": 5,
        "nested": [{"path": "/home/alice/x"}, {"note": "ok", "apiKey": "x"}, b"raw"],
        "bob@example.com": "key is an email",
    }
    out = engine.scrub_body(body, report)
    # A structured body fails closed like attributes: only registry keys (and client
    # aliases) stay, under their attribute's rule.
    assert out == {
        "message": "login from <redacted:ipv4>",
        "user.id": pseudonymizer.pseudonymize("alice"),
    }
    assert report.dropped[("body:prompt", reasons.FORBIDDEN)] == 1
    assert report.dropped[("body:access_token", reasons.SECRET_KEY)] == 1
    assert report.dropped[("body:token_count", reasons.UNKNOWN)] == 1
    assert report.dropped[("body:nested", reasons.UNKNOWN)] == 1
    assert report.dropped[("body:<redacted:email>", reasons.UNKNOWN)] == 1
    assert engine.scrub_body([{"path": "/home/alice/x"}, b"raw"], report) == [{}]
    assert report.dropped[("body:path", reasons.FORBIDDEN)] == 1
    assert report.dropped[("body", reasons.TYPE)] == 1


def test_body_depth_is_bounded(pseudonymizer: Pseudonymizer) -> None:
    engine = PrivacyEngine(load_policy(), pseudonymizer, Limits(max_body_depth=3))
    report = ScrubReport()
    deep: object = "leaf"
    for _ in range(6):
        deep = [deep]
    assert engine.scrub_body(deep, report) == [[[]]]
    assert report.dropped == {("body", reasons.DEPTH): 1}


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("db_password", True),
        ("accessToken", True),
        ("refresh_token", True),
        ("api_key", True),
        ("x-api-key", True),
        ("clientSecret", True),
        ("Authorization", True),
        ("token_count", False),
        ("tokens_in", False),
        ("keyboard", False),
        ("message", False),
    ],
)
def test_secret_key_names(key: str, secret: bool) -> None:
    assert is_secret_key_name(key) is secret


def test_report_holds_no_values(engine: PrivacyEngine, report: ScrubReport) -> None:
    engine.scrub_attributes(
        {
            "user-note": "carol@example.com",
            attrs.USER_ID: "carol",
            "k-sk-ant-api03-abcdefghijklmnopqrstuv": 1,
            attrs.EXCEPTION_MESSAGE: "carol@example.com",
        },
        report,
    )
    shown = str(report.as_dict())
    assert "carol" not in shown
    assert "abcdefghijklmnop" not in shown
    assert report.redacted["email"] == 1
