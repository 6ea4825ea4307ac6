"""Free-text redaction: every kind is found, ordinary text and look-alikes survive."""

from __future__ import annotations

import re
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unit.privacy.planted import any_secret, secret_in_text

from caret_otel.processors.privacy.redaction import (
    DETECTORS,
    EMAIL,
    FRAGMENTS,
    KINDS,
    OPAQUE_ID_PATTERN,
    PATH,
    is_opaque_id,
    placeholder,
    python_form,
    re2_form,
    redact_text,
)


@pytest.mark.parametrize(
    ("text", "kind", "gone"),
    [
        ("mail Alice.Smith@Example.COM now", "email", "Alice.Smith"),
        (unicodedata.normalize("NFD", "write to José@exämple.com"), "email", "Jos"),
        (unicodedata.normalize("NFC", "write to JOSÉ@EXÄMPLE.COM"), "email", "JOS"),
        ("peer 192.168.1.20 refused", "ipv4", "192.168.1.20"),
        ("connect 10.0.0.1:8080", "ipv4", "10.0.0.1"),
        ("link-local fe80::1%eth0 down", "ipv6", "fe80::1"),
        ("mapped ::ffff:1.2.3.4 seen", "ipv6", "1.2.3.4"),
        ("host 2001:db8::8a2e:370:7334 up", "ipv6", "2001:db8"),
        ('File "/home/alice/project/main.py", line 3', "path", "alice"),
        ("open /Users/bob/notes.txt failed", "path", "bob"),
        (r"at C:\Users\jane\repo\index.ts:10:5", "path", "jane"),
        (r"at C:\Users\Jane Doe\repo\index.ts", "path", "Doe"),
        ("see ~/projects/secret-plan.md", "path", "secret-plan"),
        ("file:///home/carol/x.txt", "path", "carol"),
        (r"share \\fileserver\alice\docs", "path", "alice"),
        ("pg://user:pass@db.internal/app", "url_credentials", "user:pass"),
        ("https://ghp_token123@github.com/org/repo", "url_credentials", "ghp_token123"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "bearer_token", "eyJhbGci"),
        ("Basic dXNlcjpwYXNzd29yZA==", "bearer_token", "dXNlcjpw"),
        ("key sk-ant-api03-abcdefghijklmnopqrstuvwx", "api_key", "abcdefghijklmnop"),
        ("key sk-proj-ABCDEFGHIJKLMNOPQRSTUV", "api_key", "ABCDEFGHIJKLMNOP"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "api_key", "abcdefghijklmnop"),
        ("aws AKIAIOSFODNN7EXAMPLE in env", "api_key", "IOSFODNN7"),
        ("password=hunter2", "api_key", "hunter2"),
        ('{"api_key": "Zx81kQ0pLm3nT7"}', "api_key", "Zx81kQ0pLm3nT7"),
        ("token=abcDEF123456xyz", "api_key", "abcDEF123456xyz"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
            "pem_key",
            "MIIEowIBAAKCAQEA",
        ),
        ("cut -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0", "pem_key", "MIIEvQ"),
        ("card 4111111111111111 charged", "card_number", "4111111111111111"),
        ("amex 378282246310005", "card_number", "378282246310005"),
        ("discover 6011111111111117", "card_number", "6011111111111117"),
        ("spaced 4111 1111 1111 1111 then 2024", "card_number", "4111 1111"),
        ("dashed 5555-5555-5555-4444", "card_number", "5555-5555"),
    ],
)
def test_each_kind_is_redacted(text: str, kind: str, gone: str) -> None:
    redacted, kinds = redact_text(text)
    assert kind in kinds
    assert gone not in redacted
    assert placeholder(kind) in redacted


@pytest.mark.parametrize(
    "text",
    [
        "compact timestamps 20250111100000 and 1736589600000 stay",
        "Luhn-invalid 4111111111111112 and 1234567890123 stay",
        "nanoseconds 1736589600000000000 stay",
        "https://api.anthropic.com/v1/messages returned 429",
        "model claude-3-5-sonnet@20240620 and gpt-4o-2024-08-06",
        "version 1.2.3 of anthropic/claude-3.5 at 10:00:00 on 2025-01-11",
        "ratio 1/2, and/or, the route /users/{id}",
        "invalid token provided; key: enabled; token=expired",
        "max_tokens=4096 tokens_in=12",
        "a lone /tmp is no one's home",
        "MAC 00:1a:2b:3c:4d:5e is not an IPv6 address",
    ],
)
def test_ordinary_text_and_look_alikes_survive(text: str) -> None:
    assert redact_text(text) == (text, [])


def test_kinds_are_reported_once_per_finding() -> None:
    _, kinds = redact_text("a@b.io c@d.io 10.0.0.1")
    assert sorted(kinds) == ["email", "email", "ipv4"]
    assert set(kinds) <= set(KINDS)


@given(planted=secret_in_text())
@settings(max_examples=400, deadline=None)
def test_planted_secret_never_survives(planted: tuple[object, str]) -> None:
    secret, text = planted
    redacted, kinds = redact_text(text)
    assert secret.found_in(redacted) is None, (secret, redacted)  # type: ignore[attr-defined]
    assert kinds


@given(secret=any_secret, noise=st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_redaction_is_idempotent(secret: object, noise: str) -> None:
    once, _ = redact_text(f"{noise} {secret.text} {noise}")  # type: ignore[attr-defined]
    assert redact_text(once) == (once, [])


@pytest.mark.parametrize(
    "hostile",
    [
        "a" * 50_000 + " @",
        "x@" + "1." * 20_000,
        "/" + "a/" * 20_000,
        "C:\\" + "a b\\" * 10_000,
        "1 " * 30_000,
        ":" * 30_000 + "1",
        "token=" + "A" * 50_000,
        "-----BEGIN PRIVATE KEY-----" + "A" * 50_000,
    ],
)
def test_hostile_input_stays_linear(hostile: str) -> None:
    started = time.perf_counter()
    redact_text(hostile)
    assert time.perf_counter() - started < 1.0


# --- one definition for Python and RE2 (the Collector) ---------------------------------------


@pytest.mark.parametrize(
    ("kind", "text", "core"),
    [(d.kind, text, core) for d in DETECTORS for text, core in d.redacts],
)
def test_every_detector_redacts_its_cases(kind: str, text: str, core: str) -> None:
    """The Python side of each detector's cases (the RE2 side runs through our Collector
    in tests/integration/privacy/test_collector_detectors.py)."""
    redacted, kinds = redact_text(text)
    assert kind in kinds
    assert core not in redacted


@pytest.mark.parametrize("text", [t for d in DETECTORS for t in (*d.keeps, *d.python_keeps)])
def test_every_detector_keeps_its_cases(text: str) -> None:
    assert redact_text(text) == (text, [])


def test_every_kind_has_a_detector_and_every_detector_cases() -> None:
    assert {d.kind for d in DETECTORS} == set(KINDS)
    for detector in DETECTORS:
        assert detector.redacts, detector.kind
        assert detector.keeps or detector.python_keeps, detector.kind


def test_both_forms_come_from_the_one_pattern() -> None:
    """Fragments become look-arounds in Python and consuming or empty groups in RE2;
    nothing RE2 lacks (look-around, named groups, \\uXXXX) is left in the RE2 form, and
    nothing Python lacks (\\p{..}, \\x{..}) in the Python form."""
    for detector in DETECTORS:
        python, re2 = python_form(detector.pattern), re2_form(detector.pattern)
        assert "<<" not in python
        assert "<<" not in re2
        assert not re.search(r"\(\?<?[=!]|\(\?P<|\\u[0-9A-Fa-f]{4}", re2), (detector.kind, re2)
        assert "\\p{" not in python, detector.kind
        assert "\\x{" not in python, detector.kind
        re.compile(python)  # valid for Python
    assert set(FRAGMENTS) >= {
        m for d in DETECTORS for m in re.findall(r"<<([a-z0-9_]+)>>", d.pattern)
    }


def test_refined_detectors_say_how_the_collector_is_broader() -> None:
    """Where Python refines a match in code, the RE2 form is the broader detector; each
    says so, and docs/privacy.md lists it in its table."""
    docs = (Path(__file__).parents[3] / "docs" / "privacy.md").read_text()
    for detector in DETECTORS:
        if detector.refine is not None or detector.python_keeps:
            assert detector.broader, detector.kind
        if detector.broader:
            assert detector.broader in docs, detector.broader


def test_the_collector_forms_take_encoded_and_full_width_separators() -> None:
    email = next(d for d in DETECTORS if d.kind == EMAIL)
    assert "%40" in email.re2
    assert "\\x{FF20}" in email.re2
    assert "%40" not in email.python  # Python matches the percent-decoded copy
    home = [d for d in DETECTORS if d.kind == PATH and "home" in d.pattern]
    assert home
    assert all("%2[Ff]" in d.re2 and "\\x{FF0F}" in d.re2 for d in home)


@settings(max_examples=3000, deadline=None)
@given(
    st.text(alphabet="0123456789abcdefABCDEF-gZ", max_size=140)
    | st.uuids().map(str)
    | st.binary(min_size=1, max_size=64).map(bytes.hex)
)
def test_is_opaque_id_is_the_pattern_matched_whole(value: str) -> None:
    assert is_opaque_id(value) == (re.fullmatch(OPAQUE_ID_PATTERN, value) is not None)
