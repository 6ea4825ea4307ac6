"""Find and redact secrets and personal data in free text.

``redact_text`` runs on the gateway's hot path for every free-text value, span name,
status description and log body, so each detector is one precompiled regex guarded
by a cheap substring test: text that cannot hold a kind (no ``@`` means no e-mail)
never reaches its regex. Detectors run in a fixed order, most specific first, so a
credential URL is reported as ``url_credentials`` rather than as an e-mail, and the
placeholders written by one detector (``<redacted:kind>``) never match a later one:
redacting twice gives the same text as redacting once.

Text is also looked at normalised: a copy is normalised (NFKC: the full-width at sign
U+FF20 becomes ``@``; Unicode format characters stripped: a zero-width space inside an
e-mail; percent-decoded: ``alice%40example.com``, ``%2Fhome%2Falice``) and searched
first. When that finds anything, the redacted copy is what leaves; otherwise the text
redacted as sent.

Every detector (:data:`DETECTORS`) is one definition from which both its Python form and
its RE2 form (the Collector's privacy pass, rendered by
``caret_otel.registry.collector_privacy``) are produced, and carries the cases both forms
are tested on. Where Python refines a match (Luhn, IPv6 validity, how random a value
looks) the RE2 form is the broader detector (``Detector.broader``, docs/privacy.md).
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


# --- one definition, two dialects --------------------------------------------------------
#
# Every detector is written once (:data:`DETECTORS`) in the syntax Python's ``re`` and Go's
# RE2 (the Collector's privacy pass) read the same way, with ``<<name>>`` fragments where
# the two must differ (:data:`FRAGMENTS`): RE2 has no look-around, no ``\w`` beyond ASCII,
# and the Collector cannot normalise text first, so its separators also take the
# full-width and percent-encoded forms the Python side decodes before matching.

# Combining marks, so that e-mail addresses in NFD form (e + U+0301) match as a whole.
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"

FRAGMENTS: Final[dict[str, tuple[str, str]]] = {
    # name: (Python, RE2). Separators: Python matches the normalised copy (NFKC,
    # percent-decoded), the Collector the text as sent.
    "at": ("@", r"(?:@|\x{FF20}|%40)"),
    "sl": ("/", r"(?:/|\x{FF0F}|%2[Ff])"),
    "bs": (r"\\", r"(?:\\|\x{FF3C}|%5[Cc])"),
    "sep": (r"[\\/]", r"(?:[\\/]|\x{FF0F}|\x{FF3C}|%2[Ff]|%5[Cc])"),
    # Inside a character class: word characters and combining marks of any script.
    "w": (r"\w", r"\p{L}\p{N}_"),
    # RE2 also takes format characters (a zero-width space) inside an address: the
    # Collector strips them from top-level values, not from nested log-body maps.
    "marks": (_MARKS, r"\p{M}\p{Cf}"),
    "letter": (r"[^\W\d_]", r"\p{L}"),
    # Look-behinds: RE2 takes the character before instead (it is masked too); at the
    # start of the text there is none.
    "not_after_letter": (r"(?<![A-Za-z])", r"(?:^|[^A-Za-z])"),
    "not_after_word_or_tilde": (r"(?<![\w~])", r"(?:^|[^A-Za-z0-9_~])"),
    # An underscore may glue a path to a word (`ENOENT_/home/alice/x`); `//` and `~/`
    # never start one (URLs, home paths have their own alternative).
    "path_start": (r"(?<![^\W_])(?<![/~])", r"(?:^|[^A-Za-z0-9/~])"),
    # Digit runs (addresses, cards) must not continue a word or a dotted number ("v1.2.3.4",
    # "1.2.3.4.5" stay); an underscore or a lone dot before them is fine ("ip_10.0.0.1").
    "num_start": (r"(?<![^\W_])(?<!\d\.)", r"(?:^|[^A-Za-z0-9.]|(?:^|[^0-9])\.)"),
    "v6_start": (r"(?<![\w:])(?<!\d\.)", r"(?:^|[^A-Za-z0-9_:])"),
    # Look-aheads: RE2 drops the condition (it matches more, never less).
    "num_end": (r"(?![^\W_]|\.\d)", ""),
    "v6_end": (r"(?![\w:])", ""),
    "sep_ahead": (r"(?=[\\/])", ""),
}
"""The ``<<name>>`` fragments of detector patterns, as (Python ``re``, RE2)."""

_FRAGMENT_RE = re.compile(r"<<([a-z0-9_]+)>>")
_NAMED_GROUP_RE = re.compile(r"\(\?P<[a-z]+>")


def python_form(pattern: str) -> str:
    """``pattern`` for Python's ``re`` (code points ``\\x{FF20}`` spelled ``\\uFF20``)."""
    text = _FRAGMENT_RE.sub(lambda m: FRAGMENTS[m.group(1)][0], pattern)
    return re.sub(r"\\x\{([0-9A-Fa-f]{4})\}", r"\\u\1", text)


def re2_form(pattern: str) -> str:
    """``pattern`` for RE2 (the Collector): the RE2 fragments, and no capturing groups
    (the redaction processor masks whole matches)."""
    text = _FRAGMENT_RE.sub(lambda m: FRAGMENTS[m.group(1)][1], pattern)
    return _NAMED_GROUP_RE.sub("(?:", text)


Finding = list[str]
Refine = Callable[[str, str, Finding], str | None]
"""Python only: given the kept ``pre`` part of a match and the rest (without ``post``), the
text to put in place of the rest (findings appended), or ``None`` for the placeholder of
the detector's kind."""


@dataclass(frozen=True)
class Detector:
    """One detector, written once for Python and RE2 (the Collector): the same
    ``pattern`` runs in both (:func:`python_form`, :func:`re2_form`) and both are tested
    on the same ``redacts``/``keeps`` cases. ``refine`` (Python only) may spare a match
    the pattern alone cannot tell apart (Luhn, IPv6 validity, how random a value looks):
    the Collector then masks a superset, described by ``broader``."""

    kind: str
    pattern: str
    guards: tuple[str, ...]
    """Lower-case substrings one of which a text must hold to be searched (speed)."""
    redacts: tuple[tuple[str, str], ...]
    """(text, the part that must not survive) pairs."""
    keeps: tuple[str, ...] = ()
    """Texts that must come through unchanged (in both forms)."""
    refine: Refine | None = None
    broader: str = ""
    """What the RE2 form masks that the Python form spares (docs/privacy.md)."""
    python_keeps: tuple[str, ...] = ()
    """Texts the Python form keeps and the broader RE2 form masks."""
    unicode: bool = False
    """Python ``\\w``/``\\s``/``\\b`` over all scripts (else ASCII, like RE2)."""
    guard: Callable[[str], bool] | None = None
    """A further cheap test a text must pass to be searched (speed)."""
    digits: bool = False
    """Only searched in a text with a run of four digits (speed)."""
    matches_routes: bool = False
    """Also matches route templates (``/v1/messages``): the Collector does not apply it to
    ``http.route``, which holds exactly such templates."""

    @property
    def python(self) -> str:
        return python_form(self.pattern)

    @property
    def re2(self) -> str:
        return re2_form(self.pattern)


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


_PASSWORD_NAME_RE = re.compile(r"(?i)(?:pass(?:word|wd|phrase)?|pwd)[\"']?\s*[=:]\s*[\"']?$")
"""The name and separator of an assignment whose value is a password."""
_DIGIT_RUN_RE = re.compile(r"\d{4}")


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


def _only_if(is_finding: Callable[[str], bool]) -> Refine:
    """A refinement that redacts a match only when ``is_finding`` says it is one."""

    def refine(pre: str, value: str, found: Finding) -> str | None:
        return None if is_finding(value) else value

    return refine


def _mixed_secret(value: str) -> bool:
    """A 40-character AWS secret key has upper and lower case letters and digits; a hex
    digest (a git commit) does not."""
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    )


def _valid_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value.split("%", 1)[0])
    except ValueError:
        return False
    return True


# Paths: a component in the middle may hold single spaces (`C:\Users\Jane Doe\...`), so a
# name with a space does not leak its second half; it is taken only when a separator
# follows (the look-ahead keeps Python's match unique and linear; RE2 is linear anyway).
_SEG = r"[^\\/\s\"'<>|:*?,;()\[\]{}]"
_MID = rf"{_SEG}+(?: {_SEG}+)*<<sep_ahead>>"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
_H = r"[0-9A-Fa-f]{1,4}"
# Names of secrets and the characters of a token: patterns, not secrets.
_SECRET_NAMES = r"secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|key"  # noqa: S105
_PASSWORD_NAMES = r"pass(?:word|wd|phrase)?|pwd"  # noqa: S105
_TOKEN_CHARS = r"[A-Za-z0-9._~+/=-]"  # noqa: S105

DETECTORS: Final[tuple[Detector, ...]] = (
    # Most specific first: a credential URL is reported as url_credentials, not as an
    # e-mail; a placeholder written by one never matches a later one.
    Detector(
        PEM_KEY,
        # A key cut short (a truncated log line) is still a key: without an END marker
        # everything that looks like base64 after the header goes too.
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----"
        r"(?s:.*?-----END[A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s]*)",
        ("private key",),
        (
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAs3cr3tK3y\n-----END RSA PRIVATE KEY-----",
                "MIIEowIBAAKCAQEAs3cr3tK3y",
            ),
            ("cut -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0", "MIIEvQ"),
        ),
        ("a PRIVATE KEY is mentioned",),
    ),
    Detector(
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
    Detector(
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
    Detector(
        API_KEY,
        r"\b[A-Za-z0-9/+]{40}\b",
        (),
        (("aws_secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here", "wJalrXUtnFEMI"),),
        ("pseudonym v1:" + "ab" * 32 + " stays",),
        _only_if(_mixed_secret),
        "any 40 characters of [A-Za-z0-9/+] (Python: only with upper and lower case "
        "letters and digits, so hex digests stay)",
        guard=lambda text: len(text) >= 40,
        python_keeps=("commit 3f786850e387550fdab836ed7e6dc881de23001b",),
    ),
    Detector(
        CLOUD_ACCOUNT,
        r"\barn:aws[a-z-]*:(?:iam|sts)::[0-9]{12}:[A-Za-z-]+/[^\s\"'<>,;]+",
        ("arn:",),
        (
            ("denied for arn:aws:iam::123456789012:user/alice.kim today", "alice.kim"),
            ("as arn:aws:sts::123456789012:assumed-role/dev/bob", "bob"),
        ),
        ("arn is a word",),
    ),
    Detector(
        NATIONAL_ID,
        r"\b[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])-?[1-8][0-9]{6}\b",
        (),
        (("주민번호 900101-1234567 입니다", "1234567"), ("rrn 8505152345678", "8505152345678")),
        ("order 2025-0111-100000 stays",),
        digits=True,
    ),
    Detector(
        PHONE,
        r"(?:\+82[ -]?0?|\b0)(?:1[016789]|2|[3-6][1-5])[ -]?[0-9]{3,4}[ -]?[0-9]{4}\b",
        ("0", "+82"),
        (
            ("전화 010-1234-5678 로", "1234-5678"),
            ("call +82 10 9876 5432 now", "9876 5432"),
            ("office 02-345-6789", "345-6789"),
        ),
        ("build 20251231 and port 8080 stay",),
        digits=True,
    ),
    Detector(
        API_KEY,
        # Every word of a password goes, up to the end of the value.
        rf"(?i:\b(?P<pre>(?:{_PASSWORD_NAMES})[\"']?\s*[=:]\s*[\"']?))"
        r"[^\"'\n\r,;&}<>]*[^\s\"',;&}<>]",
        ("pass", "pwd"),
        (
            ("password: correct horse battery staple", "battery staple"),
            ("login password=hunter2!", "hunter2"),
        ),
        ("password reset requested",),
    ),
    Detector(
        URL_CREDENTIALS,
        # scheme://userinfo@host: the userinfo (user, or user:password, or a token) goes.
        # No word boundary before the scheme: text glued to it (`%20pg://user:pw@host`,
        # `x_https://`) must not hide the credentials.
        r"(?i:(?P<pre>[a-z][a-z0-9+.-]*:<<sl>><<sl>>)[^\s/?#<>\"']*(?P<post><<at>>))",
        ("://", "%2f", "\uff0f"),
        (
            ("dsn pg://caret:s3cretpw@db.internal/app", "s3cretpw"),
            ("https://ghp_token123@github.com/org/repo", "ghp_token123"),
        ),
        ("https://api.anthropic.com/v1/messages returned 429",),
    ),
    Detector(
        BEARER_TOKEN,
        r"(?i:\b(?P<pre>(?:bearer|basic)\s+))[A-Za-z0-9._~+/=-]{8,}",
        ("bearer", "basic"),
        (
            ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGci"),
            ("Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpw"),
        ),
        ("basic mode on",),
    ),
    Detector(
        BEARER_TOKEN,
        # After the looser `token` only values that look random, so "invalid token
        # provided" stays: with a digit, a symbol or mixed case.
        rf"\b(?P<pre>(?i:token)\s+){_TOKEN_CHARS}*"
        r"(?:[0-9_~+/=]|[a-z][A-Za-z0-9._~+/=-]*[A-Z]|[A-Z][A-Za-z0-9._~+/=-]*[a-z])"
        rf"{_TOKEN_CHARS}*",
        ("token",),
        (("auth token gAAAAABl3x9Q2kZr7vW_zz ok", "gAAAAABl3x9Q2kZr7vW"),),
        ("invalid token provided",),
        _only_if(_looks_random),
        "any word with a digit, one of _~+/= or mixed case after `token` (Python: also at "
        "least 12 characters of two kinds)",
        python_keeps=("token abc1 expired",),
    ),
    Detector(
        API_KEY,
        r"\b(?:sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
        r"|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|xox[abposr]-[A-Za-z0-9-]{10,}"
        r"|glpat-[A-Za-z0-9_-]{20,})",
        ("sk-", "gh", "akia", "asia", "aiza", "xox", "glpat-"),
        (
            ("key sk-ant-api03-abcdefghijklmnopqrstuv", "abcdefghijklmnopqrstuv"),
            ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
            ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "abcdefghijklmnop"),
        ),
        ("task-sk-1 and ghost stay",),
    ),
    Detector(
        API_KEY,
        # key=value / "key": "value" where the key names a secret (a password name with a
        # prefix, `db_password`, included): password values go whatever they look like,
        # others only when they look random, so `token=expired` stays readable.
        rf"(?i:\b(?P<pre>(?:[a-z0-9]+[_-])*(?:{_PASSWORD_NAMES}|{_SECRET_NAMES})"
        r"[\"']?\s*[=:]\s*[\"']?))[^\s\"'&,;}<>]+",
        ("pass", "pwd", "secret", "token", "key"),
        (
            ('{"api_key": "Zx81kQ0pLm3nT7"}', "Zx81kQ0pLm3nT7"),
            ("db_password=hunter2", "hunter2"),
            ("token=abcDEF123456xyz", "abcDEF123456xyz"),
        ),
        (),
        lambda pre, value, found: (
            None if _PASSWORD_NAME_RE.search(pre) or _looks_random(value) else value
        ),
        "any value after a secret's name (Python: values after names other than a "
        "password's only when they look random)",
        python_keeps=("invalid token provided; key: enabled; token=expired",),
        guard=lambda text: "=" in text or ":" in text,
    ),
    Detector(
        EMAIL,
        # Bounded by the RFC 5321 limits (64-character local part, 63-character labels) so
        # that long runs of word characters cannot make the regex backtrack quadratically.
        r"[<<w>>.!#$%&'*+=?^`{|}~<<marks>>-]{1,64}<<at>>"
        r"(?:[<<w>><<marks>>-]{1,63}\.){1,8}<<letter>>[<<w>><<marks>>-]{0,62}",
        ("@", "%40", "\uff20"),
        (
            ("write to Jane.Doe@Example.COM today", "Jane.Doe"),
            ("cc jose\u0301@exa\u0301mple.org (NFD)", "jose\u0301"),
            ("cc zoë@exämple.org (NFC)", "zoë@"),
            ("to=alice.kim%40example.com&x=1", "alice.kim"),
            ("bob\uff20example.org", "bob"),
            ("zero\u200bwidth\u200b@exam\u200bple.com", "width"),
            ("write to jo\u2060hn.kim\uff20corp.example.com", "hn.kim"),
        ),
        ("50%40 off", "model claude-3-5-sonnet@20240620"),
        unicode=True,
    ),
    Detector(
        PATH,
        r"(?i:file:<<sl>><<sl>>)[^\s\"'<>]+",
        ("file:",),
        (("file:///home/carol/x.txt", "carol"),),
        ("a file: header",),
        unicode=True,
    ),
    Detector(
        PATH,
        # A drive letter may be glued to digits or `_` (`v4C:\\Users\\...`), never to a
        # letter (`https://` stays a URL).
        rf"<<not_after_letter>>[A-Za-z]:<<sep>>(?:{_MID}<<sep>>)*{_SEG}*",
        (":\\", ":/"),
        (
            ("at C:\\Users\\jane\\repo\\index.ts:10:5", "jane"),
            ("C:\\Users\\Jane Doe\\Documents\\plan.docx", "Jane Doe"),
            ("v4C:\\Users\\kim\\x", "kim"),
            ("path C:%5CUsers%5Cfrank%5Cx.txt", "frank"),
        ),
        ("https://example.com/a/b stays",),
        unicode=True,
    ),
    Detector(
        PATH,
        rf"<<bs>><<bs>>{_SEG}+(?:<<bs>>{_MID})*<<bs>>{_SEG}*",
        ("\\", "%5c", "\uff3c"),
        (("share \\\\fileserver\\alice\\docs", "alice"),),
        ("a \\\\ b",),
        unicode=True,
    ),
    Detector(
        PATH,
        rf"<<not_after_word_or_tilde>>~<<sep>>(?:{_MID}<<sep>>)*{_SEG}*",
        ("~",),
        (("saved to ~/notes/diary.txt", "notes/diary"),),
        ("approx ~5 ms",),
        unicode=True,
    ),
    Detector(
        PATH,
        # POSIX absolute paths of two or more components (a lone `/tmp` names nobody), not
        # after a word character or `/`: URL paths (`https://host/v1/messages`) and ratios
        # (`1/2`, `and/or`) stay.
        rf"<<path_start>><<sl>>{_SEG}+(?:<<sl>>{_MID})*<<sl>>{_SEG}+<<sl>>?",
        ("/", "%2f", "\uff0f"),
        (
            ("open /home/alice/project/app.py failed", "alice"),
            ("read /Users/bob/.ssh/id_rsa", "/Users/bob"),
            ('File "/srv/caret/app/main.py", line 3', "/srv/caret"),
            ("open \uff0fhome\uff0fdave\uff0fx.py", "dave"),
            ("open /ho\u200bme/ali\u200bce/x.py", "ce/x"),
            ("cwd=%2Fsrv%2Fteam%2Fmain.py", "team"),
        ),
        ("ratio 1/2, and/or", "a lone /tmp is no one's home"),
        unicode=True,
        matches_routes=True,
    ),
    Detector(
        PATH,
        # Home directories glued to anything (`ENOENT_/home/alice`, `model-4/home/carol`,
        # percent-encoded `%2Fhome%2Falice`): they name their owner.
        r"<<sep>>(?:home|Users|root)<<sep>>[^\s\"'<>|:*?]+",
        ("home", "users", "root"),
        (
            ("ENOENT_/home/alice/app.py: no such file", "alice"),
            ("err:/Users/bob/x", "bob"),
            ("model-4/home/carol/models/x.gguf", "carol"),
            ("open%2Fhome%2Ferin%2Fapp.py", "erin"),
        ),
        ("the home page and Users guide stay", "100%2F3 is a ratio"),
    ),
    Detector(
        IPV6,
        # Addresses with a dotted IPv4 tail first, so that the tail is not left behind.
        rf"<<v6_start>>(?:(?:{_H}:){{6}}{_IPV4}|(?:{_H}(?::{_H}){{0,5}})?::(?:{_H}:){{0,4}}{_IPV4}"
        rf"|(?:{_H}:){{7}}{_H}|(?:{_H}(?::{_H}){{0,6}})?::(?:{_H}(?::{_H}){{0,6}})?)"
        r"(?:%[A-Za-z0-9_.-]+)?<<v6_end>>",
        (":",),
        (
            ("link-local fe80::1%eth0 down", "fe80::1"),
            ("mapped ::ffff:198.51.100.9 seen", "198.51.100.9"),
            ("host 2001:db8:85a3::8a2e:370:7334 up", "8a2e:370:7334"),
        ),
        ("retry at 10:00:00 UTC", "MAC 00:1a:2b:3c:4d:5e is not an IPv6 address"),
        lambda pre, value, found: None if _valid_ipv6(value) else value,
        "any IPv6-shaped run of hex groups (Python: only valid addresses)",
        python_keeps=("groups 1:2:3:4:5:6:7:8:9 stay",),
        # Every form has `::`, or six or seven colons.
        guard=lambda text: "::" in text or text.count(":") >= 6,
    ),
    Detector(
        IPV4,
        rf"<<num_start>>{_IPV4}<<num_end>>",
        (".",),
        (("peer 203.0.113.7 refused", "203.0.113.7"), ("connect 10.0.0.1:8080", "10.0.0.1")),
        ("sdk version 1.45.0", "v1.2.3.4 stays"),
        guard=lambda text: text.count(".") >= 3,
        python_keeps=("1.2.3.4.5 stays",),
        broader="the first four parts of a longer dotted number",
    ),
    Detector(
        CARD_NUMBER,
        # 12 or more digits (optionally grouped by spaces or dashes) starting like a card
        # network's issuer prefix. Python then looks for a Luhn-valid card of a length
        # that network issues, group by group (any long digit string holds a Luhn-valid
        # substring by chance, and ids must survive).
        r"<<num_start>>(?:4[0-9]{3}|5[0-8][0-9]{2}|2[2-7][0-9]{2}|3[0-9]{3}|6[0-9]{3}|81[0-9]{2})"
        r"(?:[ -]?[0-9]){8,}<<num_end>>",
        (),
        (
            ("card 4111 1111 1111 1111 charged", "1111 1111 1111"),
            ("amex 378282246310005", "378282246310005"),
            ("discover 6011-1111-1111-1117", "6011-1111"),
        ),
        ("took 1700000000000 ns", "compact timestamp 20250111100000 stays"),
        lambda pre, value, found: _redact_card_run(value, found),
        "any run of 12 or more digits that starts with an issuer prefix, long ids included "
        "(Python: also a network's length and the Luhn check)",
        digits=True,
        python_keeps=("Luhn-invalid 4111111111111112 stays", "id 5123456789012345678901234 stays"),
    ),
)
"""Every detector, in the order both passes run them."""


OPAQUE_ID_PATTERN: Final = (
    r"[0-9a-f]{0,63}[a-f][0-9a-f]{0,63}|[0-9A-F]{0,63}[A-F][0-9A-F]{0,63}"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
"""A hex digest holding at least one hex letter, or a UUID: an id by construction (keyed
event hashes, trace-style ids), never judged by the detectors - which would read a run of
decimal digits in one as a card or phone number - in the engine (a shaped value, matched
whole) and in the Collector (its redaction's ``allowed_values``). Plain RE2, so one
expression serves both; decimal digits only are not ids: they may be a card number."""

_OPAQUE_ID_RE: Final = re.compile(OPAQUE_ID_PATTERN)
_HEX_DIGITS: Final = ("0123456789abcdef", "0123456789ABCDEF")


def is_opaque_id(value: str) -> bool:
    """Whether ``OPAQUE_ID_PATTERN`` matches ``value`` whole.

    The usual id, a hex digest of at most 64 digits in one case, is recognised without
    the expression (its greedy repeats backtrack to find the hex letter; this runs for
    the event id of every SDK event record): one case of hex digits only, not decimal
    digits only, has a hex letter, and at 64 characters or fewer that letter has at
    most 63 on either side. Anything else is left to the expression (tested equal on
    generated strings)."""
    if 0 < len(value) <= 64 and not value.isdigit():
        lower, upper = _HEX_DIGITS
        if not value.strip(lower) or not value.strip(upper):
            return True
    return _OPAQUE_ID_RE.fullmatch(value) is not None


_PLACEHOLDER: Final = "<redacted:"


@dataclass(frozen=True)
class _Compiled:
    detector: Detector
    regex: re.Pattern[str]
    pre: bool
    post: bool
    guards: re.Pattern[str] | None
    """The detector's guards as one search (a C loop, not a Python one per guard)."""


def _compile(detector: Detector) -> _Compiled:
    regex = re.compile(detector.python, 0 if detector.unicode else re.ASCII)
    guards = (
        re.compile("|".join(re.escape(g) for g in detector.guards)) if detector.guards else None
    )
    return _Compiled(detector, regex, "pre" in regex.groupindex, "post" in regex.groupindex, guards)


_COMPILED: Final = tuple(_compile(d) for d in DETECTORS)


def _apply(compiled: _Compiled, text: str, found: Finding) -> str:
    if compiled.regex.search(text) is None:
        return text  # the common case: no replacement function built, no copy made
    detector = compiled.detector
    kind = detector.kind
    mark = placeholder(kind)

    def replace(match: re.Match[str]) -> str:
        value = match.group(0)
        if _PLACEHOLDER in value:  # ours: redacting twice gives the same text
            return value
        pre = match.group("pre") if compiled.pre else ""
        post = match.group("post") if compiled.post else ""
        core = value[len(pre) : len(value) - len(post)]
        if detector.refine is not None:
            refined = detector.refine(pre, core, found)
            if refined is not None:
                return pre + refined + post
        found.append(kind)
        return pre + mark + post

    return compiled.regex.sub(replace, text)


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
    # Guards are judged on the text as it came in: detectors only take text away (and
    # write placeholders no detector matches), so a guard that fails there fails later.
    lowered = text.lower()
    digits: bool | None = None
    for compiled, guards, guard, needs_digits in _SCHEDULE:
        if guards is not None and guards.search(lowered) is None:
            continue
        if guard is not None and not guard(text):
            continue
        if needs_digits:
            if digits is None:
                digits = _DIGIT_RUN_RE.search(text) is not None
            if not digits:
                continue
        text = _apply(compiled, text, found)
    return text, found


_SCHEDULE: Final = tuple((c, c.guards, c.detector.guard, c.detector.digits) for c in _COMPILED)
"""Each detector with its cheap tests unpacked (read once per text: the loop is hot)."""
