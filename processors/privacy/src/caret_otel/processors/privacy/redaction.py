"""Find and redact secrets and personal data in free text.

``redact_text`` runs on the gateway's hot path for every free-text value, span name,
status description and log body, so each detector is one precompiled regex guarded
by a cheap substring test: text that cannot hold a kind (no ``@`` means no e-mail)
never reaches its regex. Detectors run in a fixed order, most specific first, so a
credential URL is reported as ``url_credentials`` rather than as an e-mail, and the
placeholders written by one detector (``<redacted:kind>``) never match a later one:
redacting twice gives the same text as redacting once.

Text is also looked at normalised: after the detectors ran on the text as sent, a copy
of the result is normalised (NFKC: the full-width at sign U+FF20 becomes ``@``; Unicode
format characters stripped: a zero-width space inside an e-mail; percent-decoded:
``alice%40example.com``, ``%2Fhome%2Falice``) and searched again. When that finds
anything, the redacted copy is what leaves; otherwise the text redacted as sent.

:data:`SHARED_DETECTORS` are written once in the syntax Python's ``re`` (ASCII classes)
and Go's RE2 both read the same way: the Collector's privacy pass
(``caret_otel.registry.collector_privacy``) renders its patterns from them, and each
carries the cases both forms are tested on.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

EMAIL: Final = "email"
IPV4: Final = "ipv4"
IPV6: Final = "ipv6"
PATH: Final = "path"
URL_CREDENTIALS: Final = "url_credentials"
BEARER_TOKEN: Final = "bearer_token"  # noqa: S105 - a kind name, not a token
API_KEY: Final = "api_key"
PEM_KEY: Final = "pem_key"
CARD_NUMBER: Final = "card_number"
JWT: Final = "jwt"
NATIONAL_ID: Final = "national_id"
PHONE: Final = "phone"
CLOUD_ACCOUNT: Final = "cloud_account"
KINDS: Final[tuple[str, ...]] = (
    PEM_KEY,
    JWT,
    CLOUD_ACCOUNT,
    NATIONAL_ID,
    PHONE,
    URL_CREDENTIALS,
    BEARER_TOKEN,
    API_KEY,
    EMAIL,
    PATH,
    IPV6,
    IPV4,
    CARD_NUMBER,
)


def placeholder(kind: str) -> str:
    return f"<redacted:{kind}>"


CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""NUL and the other C0 control characters (tab, newline and carriage return excepted)
and DEL: PostgreSQL refuses NUL in text, and none of them belongs in telemetry."""


def strip_controls(text: str) -> tuple[str, int]:
    """``text`` without :data:`CONTROL_RE` characters, and how many were removed."""
    if CONTROL_RE.search(text) is None:
        return text, 0
    stripped = CONTROL_RE.sub("", text)
    return stripped, len(text) - len(stripped)


# Combining marks, so that e-mail addresses in NFD form (e + U+0301) match as a whole.
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"

_PEM_RE = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----"
    # A key cut short (a truncated log line) is still a key: without an END marker
    # everything that looks like base64 after the header goes too.
    r"(?:.*?-----END[A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s]*)",
    re.DOTALL,
)
# scheme://userinfo@host: the userinfo (user, or user:password, or a token) goes.
# No word boundary before the scheme: text glued to it (`%20pg://user:pw@host`, `x_https://`)
# must not hide the credentials; the match then starts at the scheme's first letter.
_URL_CREDENTIALS_RE = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^\s/?#<>\"']*@")
# Authorization schemes. After `Bearer`/`Basic` any credential-shaped word goes; after
# the looser `token` only values that look random, so "invalid token provided" stays.
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic|token)(\s+)([A-Za-z0-9._~+/=-]{8,})")
_KNOWN_KEY_RE = re.compile(
    r"\b(?:"
    r"sk-[A-Za-z0-9_-]{16,}"  # OpenAI sk-..., sk-proj-..., Anthropic sk-ant-...
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab tokens
    r")"
)
# key=value / "key": "value" where the key names a secret. Password values go
# whatever they look like; for other names only values that look random go, so
# that `token=expired` or `key: enabled` stay readable.
_ASSIGNED_SECRET_RE = re.compile(
    r"(?i)\b((?:[a-z0-9]+[_-])*"
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|key)"
    r")([\"']?\s*[=:]\s*[\"']?)([^\s\"'&,;}<>]+)"
)
_PASSWORD_NAME_RE = re.compile(r"(?i)(pass(word|wd|phrase)?|pwd)$")
# Bounded by the RFC 5321 limits (64-character local part, 63-character labels) so
# that long runs of word characters cannot make the regex backtrack quadratically.
_EMAIL_RE = re.compile(
    rf"[\w.!#$%&'*+=?^`{{|}}~{_MARKS}-]{{1,64}}@"
    rf"(?:[\w{_MARKS}-]{{1,63}}\.){{1,8}}[^\W\d_][\w{_MARKS}-]{{0,62}}"
)
# Paths: file:// URIs; Windows drive and UNC paths; ~ home paths; POSIX absolute paths
# with at least two components (a lone `/tmp` names nobody). A component in the middle
# of a path may hold single spaces (`C:\Users\Jane Doe\...`), so a name with a space
# does not leak its second half. POSIX paths must not follow a word character or `/`,
# so that URL paths (`https://host/v1/messages`, where `//` never starts a component)
# and ratios (`1/2`, `and/or`) stay.
_SEG = r"[^\\/\s\"'<>|:*?,;()\[\]{}]"
# A middle component is only taken when a separator follows it (the lookahead), which
# keeps the match unique and the regex linear.
_MID = rf"{_SEG}+(?: {_SEG}+)*(?=[\\/])"
_PATH_RE = re.compile(
    r"(?i:file://)[^\s\"'<>]+"
    # A drive letter may be glued to digits or `_` (`v4C:\\Users\\...`), never to a letter
    # (`https://` stays a URL).
    rf"|(?<![A-Za-z])[A-Za-z]:[\\/](?:{_MID}[\\/])*{_SEG}*"
    rf"|\\\\{_SEG}+(?:\\{_MID})*\\{_SEG}*"
    rf"|(?<![\w~])~[\\/](?:{_MID}[\\/])*{_SEG}*"
    # An underscore may glue a path to a word (`ENOENT_/home/alice/x`).
    rf"|(?<![^\W_])(?<![/~])/{_SEG}+(?:/{_MID})*/{_SEG}+/?"
)
# IPv6 candidates are validated with the ipaddress module, so clock times (10:00:00)
# and other colon-separated runs stay.
_IPV6_RE = re.compile(
    r"(?<![\w:])(?<!\d\.)"
    r"(?:[0-9A-Fa-f]{0,4}:){2,7}"
    r"(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})"
    r"(?:%[\w.-]+)?"
    r"(?![\w:])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Digit runs (addresses, cards) must not continue a word or a dotted number on either
# side ("v1.2.3.4", "1.2.3.4.5" stay); an underscore or a lone dot before them is fine
# ("ip_10.0.0.1", "peer.10.0.0.1" go).
_NOT_AFTER = r"(?<![^\W_])(?<!\d\.)"
_NOT_BEFORE = r"(?![^\W_]|\.\d)"
_IPV4_RE = re.compile(rf"{_NOT_AFTER}(?:{_OCTET}\.){{3}}{_OCTET}{_NOT_BEFORE}")
# Runs of digit groups separated by single spaces or dashes; cards are looked for
# inside a run group by group (see _redact_cards).
_DIGIT_GROUPS_RE = re.compile(rf"{_NOT_AFTER}\d+(?:[ -]\d+)*{_NOT_BEFORE}")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_network_ok(digits: str) -> bool:
    """Whether the digits start like a payment card of a length that network issues.

    Luhn alone passes one in ten digit runs, timestamps included; real card numbers
    also carry an issuer prefix (IIN), which epoch timestamps (1…) and compact
    date-times (20…) do not.
    """
    n = len(digits)
    two = int(digits[:2])
    four = int(digits[:4])
    six = int(digits[:6])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:  # Diners Club
        return 14 <= n <= 19
    if four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649 or 622126 <= six <= 622925:
        return 16 <= n <= 19  # Discover
    if 3528 <= four <= 3589:  # JCB
        return 16 <= n <= 19
    if two == 62 or two == 81:  # UnionPay
        return 16 <= n <= 19
    if two in (50, 56, 57, 58, 63, 67) or digits[:2] == "60":  # Maestro
        return 12 <= n <= 19
    return two == 22 and n == 16  # Mir (2200-2204)


def _looks_random(value: str) -> bool:
    """A value long enough and mixed enough to be a generated secret."""
    if len(value) < 12:
        return False
    classes = (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )
    return classes >= 2


Finding = list[str]


def _sub(pattern: re.Pattern[str], kind: str, text: str, found: Finding) -> str:
    def replace(_: re.Match[str]) -> str:
        found.append(kind)
        return placeholder(kind)

    return pattern.sub(replace, text)


def _redact_pem(text: str, found: Finding) -> str:
    return _sub(_PEM_RE, PEM_KEY, text, found) if "PRIVATE KEY" in text else text


def _redact_url_credentials(text: str, found: Finding) -> str:
    if "://" not in text or "@" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        found.append(URL_CREDENTIALS)
        return f"{match.group(1)}{placeholder(URL_CREDENTIALS)}@"

    return _URL_CREDENTIALS_RE.sub(replace, text)


def _redact_bearer(text: str, found: Finding) -> str:
    lowered = text.lower()
    if "bearer" not in lowered and "basic" not in lowered and "token" not in lowered:
        return text

    def replace(match: re.Match[str]) -> str:
        scheme, space, credential = match.group(1), match.group(2), match.group(3)
        if scheme.lower() == "token" and not _looks_random(credential):
            return match.group(0)
        found.append(BEARER_TOKEN)
        return f"{scheme}{space}{placeholder(BEARER_TOKEN)}"

    return _BEARER_RE.sub(replace, text)


def _redact_api_keys(text: str, found: Finding) -> str:
    text = _sub(_KNOWN_KEY_RE, API_KEY, text, found)
    if "=" not in text and ":" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        name, sep, value = match.group(1), match.group(2), match.group(3)
        if value.startswith("<redacted:"):
            return match.group(0)
        if _PASSWORD_NAME_RE.search(name) or _looks_random(value):
            found.append(API_KEY)
            return f"{name}{sep}{placeholder(API_KEY)}"
        return match.group(0)

    return _ASSIGNED_SECRET_RE.sub(replace, text)


def _redact_email(text: str, found: Finding) -> str:
    return _sub(_EMAIL_RE, EMAIL, text, found) if "@" in text else text


def _redact_paths(text: str, found: Finding) -> str:
    if "/" not in text and "\\" not in text:
        return text
    return _sub(_PATH_RE, PATH, text, found)


def _redact_ipv6(text: str, found: Finding) -> str:
    if text.count(":") < 2:
        return text

    def replace(match: re.Match[str]) -> str:
        candidate = match.group(0)
        address = candidate.split("%", 1)[0]
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return candidate
        found.append(IPV6)
        return placeholder(IPV6)

    return _IPV6_RE.sub(replace, text)


def _redact_ipv4(text: str, found: Finding) -> str:
    return _sub(_IPV4_RE, IPV4, text, found) if text.count(".") >= 3 else text


def _is_card(digits: str) -> bool:
    return 12 <= len(digits) <= 19 and _card_network_ok(digits) and _luhn_ok(digits)


def _redact_card_run(run: str, found: Finding) -> str:
    """Redact the card numbers in one run of digit groups ("4111 1111 1111 1111 2024").

    A card starts at a group boundary and spans whole groups; the longest valid span
    wins. Cards are not searched at every digit offset: any long digit string holds a
    Luhn-valid substring by chance, and ids and hashes must survive.
    """
    groups = re.split(r"([ -])", run)  # digits, sep, digits, sep, ...
    digit_groups = groups[0::2]
    separators = groups[1::2]
    out: list[str] = []
    start = 0
    while start < len(digit_groups):
        best_end = -1
        digits = ""
        for end in range(start, len(digit_groups)):
            digits += digit_groups[end]
            if len(digits) > 19:
                break
            if _is_card(digits):
                best_end = end
        if best_end < 0:
            out.append(digit_groups[start])
            if start < len(separators):
                out.append(separators[start])
            start += 1
            continue
        found.append(CARD_NUMBER)
        out.append(placeholder(CARD_NUMBER))
        if best_end < len(separators):
            out.append(separators[best_end])
        start = best_end + 1
    return "".join(out)


def _redact_cards(text: str, found: Finding) -> str:
    def replace(match: re.Match[str]) -> str:
        run = match.group(0)
        return _redact_card_run(run, found) if len(run) >= 12 else run

    return _DIGIT_GROUPS_RE.sub(replace, text)


@dataclass(frozen=True)
class SharedDetector:
    """One detector written once for Python (``re`` with ASCII classes) and RE2 (the
    Collector): the same ``pattern`` runs in both, on the same ``redacts``/``keeps``
    cases. ``narrow`` (Python only) may spare a match the pattern alone cannot tell
    apart (RE2 has no lookaround): the Collector then masks a superset."""

    kind: str
    pattern: str
    guards: tuple[str, ...]
    """Lower-case substrings one of which a text must hold to be searched (speed)."""
    redacts: tuple[tuple[str, str], ...]
    """(text, the part that must not survive) pairs."""
    keeps: tuple[str, ...] = ()
    """Texts that must come through unchanged."""
    narrow: Callable[[str], bool] | None = None


def _mixed_secret(value: str) -> bool:
    """A 40-character AWS secret key has upper and lower case letters and digits; a hex
    digest (a git commit) does not."""
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    )


SHARED_DETECTORS: Final[tuple[SharedDetector, ...]] = (
    SharedDetector(
        JWT,
        r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,}",
        ("eyj",),
        (
            (
                "id eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.dBjftJeZ4CVPmB92K27uhbUJU1p1r",
                "eyJzdWIi",
            ),
        ),
        ("eyJ alone is not a token",),
    ),
    SharedDetector(
        API_KEY,
        r"\b(?:[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|hf_[A-Za-z0-9]{30,}|ya29\.[A-Za-z0-9_-]{20,})",
        ("k_live_", "k_test_", "hf_", "ya29."),
        (
            ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc ok", "4eC39HqLyjWDarjtT1zdp7dc"),
            ("hf hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 used", "AbCdEfGhIjKlMnOp"),
            ("oauth ya29.a0AfH6SMBx3Kq-9Zr_TtLwX2yQ7 expired", "a0AfH6SMBx3Kq"),
        ),
        ("half_measures and hf_x stay",),
    ),
    SharedDetector(
        API_KEY,
        r"\b[A-Za-z0-9/+]{40}\b",
        (),
        (("aws_secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here", "wJalrXUtnFEMI"),),
        ("pseudonym v1:" + "ab" * 32 + " stays",),
        _mixed_secret,
    ),
    SharedDetector(
        CLOUD_ACCOUNT,
        r"\barn:aws[a-z-]*:(?:iam|sts)::[0-9]{12}:[A-Za-z-]+/[^\s\"'<>,;]+",
        ("arn:",),
        (
            ("denied for arn:aws:iam::123456789012:user/alice.kim today", "alice.kim"),
            ("as arn:aws:sts::123456789012:assumed-role/dev/bob", "bob"),
        ),
        ("arn is a word",),
    ),
    SharedDetector(
        NATIONAL_ID,
        r"\b[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])-?[1-8][0-9]{6}\b",
        (),
        (("주민번호 900101-1234567 입니다", "1234567"), ("rrn 8505152345678", "8505152345678")),
        ("order 2025-0111-100000 stays",),
    ),
    SharedDetector(
        PHONE,
        r"(?:\+82[ -]?0?|\b0)(?:1[016789]|2|[3-6][1-5])[ -]?[0-9]{3,4}[ -]?[0-9]{4}\b",
        ("0", "+82"),
        (
            ("전화 010-1234-5678 로", "1234-5678"),
            ("call +82 10 9876 5432 now", "9876 5432"),
            ("office 02-345-6789", "345-6789"),
        ),
        ("build 20251231 and port 8080 stay",),
    ),
    SharedDetector(
        PATH,
        r"(?:/|\\)(?:home|Users|root)[/\\][^\s\"'<>|:*?]+",
        ("home", "users", "root"),
        (
            ("ENOENT_/home/alice/app.py: no such file", "alice"),
            ("err:/Users/bob/x", "bob"),
            ("model-4/home/carol/models/x.gguf", "carol"),
        ),
        ("the home page and Users guide stay",),
    ),
    SharedDetector(
        PATH,
        r"(?i:%2F(?:home|Users|root)%2F[A-Za-z0-9._~%-]+)",
        ("%2f",),
        (("open%2Fhome%2Falice%2Fapp.py", "alice"),),
        ("100%2F3 is a ratio",),
    ),
    SharedDetector(
        EMAIL,
        r"[A-Za-z0-9._+-]{1,64}(?:%40|\x{FF20})[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,7}\.[A-Za-z]{2,63}",
        ("%40", "\uff20"),
        (("to=alice.kim%40example.com&x=1", "alice.kim"), ("bob\uff20example.org", "bob")),
        ("50%40 off",),
    ),
    SharedDetector(
        API_KEY,
        r"(?i:\b(?:pass(?:word|wd|phrase)?|pwd)[\"']?\s*[=:]\s*[\"']?[^\"'\n\r,;&}<>]*[^\s\"',;&}<>])",
        ("pass", "pwd"),
        (("password: correct horse battery staple", "battery staple"),),
        ("password reset requested",),
    ),
)
"""Detectors whose Python and RE2 (Collector) forms are one definition."""


def _python_pattern(detector: SharedDetector) -> re.Pattern[str]:
    # RE2 spells a code point \x{FF20}; Python's re spells it \uFF20.
    return re.compile(re.sub(r"\\x\{([0-9A-Fa-f]{4})\}", r"\\u\1", detector.pattern), re.ASCII)


_EARLY: Final = tuple((d, _python_pattern(d)) for d in SHARED_DETECTORS if d.kind != PATH)
"""Run before the other detectors (most specific first)."""
_LATE: Final = tuple((d, _python_pattern(d)) for d in SHARED_DETECTORS if d.kind == PATH)
"""Path detectors run after the general path detector, which takes whole paths."""
_PLACEHOLDER_RE = re.compile(r"<redacted:[a-z_]+>")


def _redact_shared_early(text: str, found: Finding) -> str:
    return _redact_shared(_EARLY, text, found)


def _redact_shared_late(text: str, found: Finding) -> str:
    return _redact_shared(_LATE, text, found)


def _redact_shared(
    detectors: tuple[tuple[SharedDetector, re.Pattern[str]], ...], text: str, found: Finding
) -> str:
    lowered = text.lower()
    for detector, pattern in detectors:
        if detector.guards and not any(g in lowered for g in detector.guards):
            continue

        def replace(match: re.Match[str], detector: SharedDetector = detector) -> str:
            value = match.group(0)
            if _PLACEHOLDER_RE.search(value) or (
                detector.narrow is not None and not detector.narrow(value)
            ):
                return value
            found.append(detector.kind)
            return placeholder(detector.kind)

        text = pattern.sub(replace, text)
    return text


_DETECTORS: Final[tuple[Callable[[str, Finding], str], ...]] = (
    _redact_pem,
    _redact_shared_early,
    _redact_url_credentials,
    _redact_bearer,
    _redact_api_keys,
    _redact_email,
    _redact_paths,
    _redact_shared_late,
    _redact_ipv6,
    _redact_ipv4,
    _redact_cards,
)
_DIGIT_RUN_RE = re.compile(r"\d{4}")


def redact_text(text: str) -> tuple[str, list[str]]:
    """Redact secrets and personal data in ``text``.

    Returns the redacted text and one entry per redaction naming its kind (see
    ``KINDS``); each finding is replaced by ``<redacted:kind>``.
    """
    found: Finding = []
    if len(text) < 3:  # nothing this short can hold any of the kinds (`::1` is 3)
        return text, found
    # The normalised copy first (zero-width or full-width characters inside an address,
    # percent-encoding): when it shows a finding, the copy is what is kept, redacted.
    # Redacting the text as sent first would cut a glued secret in two (`%20C:\Users\..`
    # or `%20pg://user:pw@host` start no match as sent) and leave a piece the copy no
    # longer recognises.
    normalised = normalise(text)
    if normalised != text:
        again, found = _redact(normalised)
        if found:
            return again, found
    return _redact(text)


_PERCENT_RE = re.compile(r"%[0-9A-Fa-f]{2}")


def normalise(text: str) -> str:
    """The copy detectors also look at: NFKC, without Unicode format characters
    (zero-width spaces and joiners, bidi marks), percent-decoded."""
    if text.isascii():
        return unquote(text) if _PERCENT_RE.search(text) else text
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return unquote(text) if _PERCENT_RE.search(text) else text


def _redact(text: str) -> tuple[str, list[str]]:
    found: Finding = []
    for detector in _DETECTORS[:-1]:
        text = detector(text, found)
    if _DIGIT_RUN_RE.search(text):
        text = _redact_cards(text, found)
    return text, found
