"""Find and redact secrets and personal data in free text.

``redact_text`` runs on the gateway's hot path for every free-text value, span name,
status description and log body, so each detector is one precompiled regex guarded
by a cheap substring test: text that cannot hold a kind (no ``@`` means no e-mail)
never reaches its regex. Detectors run in a fixed order, most specific first, so a
credential URL is reported as ``url_credentials`` rather than as an e-mail, and the
placeholders written by one detector (``<redacted:kind>``) never match a later one:
redacting twice gives the same text as redacting once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Final

EMAIL: Final = "email"
IPV4: Final = "ipv4"
IPV6: Final = "ipv6"
PATH: Final = "path"
URL_CREDENTIALS: Final = "url_credentials"
BEARER_TOKEN: Final = "bearer_token"  # noqa: S105 - a kind name, not a token
API_KEY: Final = "api_key"
PEM_KEY: Final = "pem_key"
CARD_NUMBER: Final = "card_number"
KINDS: Final[tuple[str, ...]] = (
    PEM_KEY,
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
_URL_CREDENTIALS_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#<>\"']*@")
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
    rf"|\b[A-Za-z]:[\\/](?:{_MID}[\\/])*{_SEG}*"
    rf"|\\\\{_SEG}+(?:\\{_MID})*\\{_SEG}*"
    rf"|(?<![\w~])~[\\/](?:{_MID}[\\/])*{_SEG}*"
    rf"|(?<![\w/~])/{_SEG}+(?:/{_MID})*/{_SEG}+/?"
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


_DETECTORS: Final[tuple[Callable[[str, Finding], str], ...]] = (
    _redact_pem,
    _redact_url_credentials,
    _redact_bearer,
    _redact_api_keys,
    _redact_email,
    _redact_paths,
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
    for detector in _DETECTORS[:-1]:
        text = detector(text, found)
    if _DIGIT_RUN_RE.search(text):
        text = _redact_cards(text, found)
    return text, found
