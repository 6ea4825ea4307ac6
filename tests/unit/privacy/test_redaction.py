"""Free-text redaction: every kind is found, ordinary text and look-alikes survive."""

from __future__ import annotations

import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unit.privacy.planted import any_secret, secret_in_text

from caret_otel.processors.privacy.redaction import KINDS, placeholder, redact_text


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
