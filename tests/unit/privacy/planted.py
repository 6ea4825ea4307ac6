"""Hypothesis strategies for planted secrets, and the check that none survives.

Every planted secret carries a *marker*: a random run of letters that are not hex
digits (so no pseudonym can contain it by chance) plus digits. A secret survives
if its marker, or the whole secret, appears anywhere in the output.
"""

from __future__ import annotations

import base64
import ipaddress
import unicodedata
from dataclasses import dataclass

from hypothesis import strategies as st

_MARKER_ALPHABET = "ghjkmnpqrstuvwxyz"


@dataclass(frozen=True)
class Planted:
    kind: str
    text: str
    """The secret as planted."""
    needles: tuple[str, ...]
    """Substrings that must not appear anywhere in the output."""

    def found_in(self, output: str) -> str | None:
        folded = unicodedata.normalize("NFC", output).casefold()
        for needle in self.needles:
            if unicodedata.normalize("NFC", needle).casefold() in folded:
                return needle
        return None


markers = st.text(alphabet=_MARKER_ALPHABET, min_size=4, max_size=4).flatmap(
    lambda head: st.text(alphabet=_MARKER_ALPHABET + "0123456789", min_size=6, max_size=10).map(
        lambda tail: head + tail
    )
)
_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8)


def _mixed_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips, strict=True))


@st.composite
def emails(draw: st.DrawFn) -> Planted:
    marker = draw(markers)
    local = draw(st.sampled_from([marker, f"{marker}.x", f"x+{marker}", f"{marker}\u00e9"]))
    domain = f"{draw(_words)}.{draw(st.sampled_from(['com', 'co.kr', 'de', 'io']))}"
    address = _mixed_case(draw, f"{local}@{domain}")
    form = draw(st.sampled_from(["NFC", "NFD"]))
    return Planted("email", unicodedata.normalize(form, address), (marker,))


@st.composite
def ipv4s(draw: st.DrawFn) -> Planted:
    octets = draw(st.lists(st.integers(0, 255), min_size=4, max_size=4))
    octets[0] = draw(st.integers(1, 254))
    address = ".".join(map(str, octets))
    return Planted("ipv4", address, (address,))


@st.composite
def ipv6s(draw: st.DrawFn) -> Planted:
    value = draw(st.integers(1, 2**128 - 1))
    address = ipaddress.IPv6Address(value)
    style = draw(st.sampled_from(["compressed", "exploded", "zone", "mapped"]))
    if style == "zone":
        text = f"fe80::{value % 65535 + 1:x}%eth{value % 4}"
        return Planted("ipv6", text, (text,))
    if style == "mapped":
        v4 = ipaddress.IPv4Address(value % 2**32 or 1)
        text = f"::ffff:{v4}"
        return Planted("ipv6", text, (text, str(v4)))
    text = address.compressed if style == "compressed" else address.exploded
    return Planted("ipv6", text, (text,))


@st.composite
def paths(draw: st.DrawFn) -> Planted:
    user = draw(markers)
    tail = "/".join(draw(st.lists(_words, min_size=1, max_size=3)))
    style = draw(st.sampled_from(["home", "users", "windows", "windows_space", "trace", "tilde"]))
    if style == "home":
        text = f"/home/{user}/{tail}.py"
    elif style == "users":
        text = f"/Users/{user}/{tail}"
    elif style == "windows":
        text = "C:\\Users\\" + user + "\\" + tail.replace("/", "\\") + ".ts"
    elif style == "windows_space":
        text = "C:\\Users\\Jane " + user + "\\" + tail.replace("/", "\\")
    elif style == "tilde":
        text = f"~/{user}/{tail}"
    else:
        text = (
            f'Traceback:\n  File "/home/{user}/{tail}.py", line 12, in main\n    raise ValueError'
        )
    return Planted("path", text, (user,))


@st.composite
def url_credentials(draw: st.DrawFn) -> Planted:
    user, password = draw(markers), draw(markers)
    scheme = draw(st.sampled_from(["pg", "postgresql", "https", "redis", "amqp"]))
    text = f"{scheme}://{user}:{password}@{draw(_words)}.internal:5432/{draw(_words)}"
    return Planted("url_credentials", text, (user, password))


@st.composite
def bearer_tokens(draw: st.DrawFn) -> Planted:
    marker = draw(markers)
    token = f"eyJ{marker}.{draw(markers)}.{draw(markers)}"
    prefix = draw(st.sampled_from(["Bearer ", "Authorization: Bearer ", "bearer "]))
    return Planted("bearer_token", prefix + token, (marker,))


@st.composite
def api_keys(draw: st.DrawFn) -> Planted:
    marker = draw(markers)
    style = draw(st.sampled_from(["openai", "anthropic", "github", "aws", "password", "secret"]))
    if style == "openai":
        text = f"sk-proj-{marker}{draw(markers)}"
    elif style == "anthropic":
        text = f"sk-ant-api03-{marker}{draw(markers)}"
    elif style == "github":
        text = f"ghp_{marker}{draw(markers)}{draw(markers)}"[:40]
        marker = text[4:20]
    elif style == "aws":
        digits = draw(st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ234567", min_size=16, max_size=16))
        text = "AKIA" + digits
        marker = digits
    elif style == "password":
        text = f"password={marker}"
    else:
        text = f'"client_secret": "{marker}X9{draw(markers)}"'
    return Planted("api_key", text, (marker,))


@st.composite
def pem_keys(draw: st.DrawFn) -> Planted:
    marker = draw(markers)
    body = base64.b64encode(marker.encode() * 6).decode()
    label = draw(st.sampled_from(["PRIVATE KEY", "RSA PRIVATE KEY", "OPENSSH PRIVATE KEY"]))
    text = f"-----BEGIN {label}-----\n{body[:40]}\n{body[40:]}\n-----END {label}-----"
    return Planted("pem_key", text, (body[:24],))


_TEST_CARDS = ("4111111111111111", "378282246310005", "6011111111111117", "5555555555554444")


def _luhn_digit(partial: str) -> str:
    total = 0
    for position, char in enumerate(reversed(partial)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


@st.composite
def card_numbers(draw: st.DrawFn) -> Planted:
    if draw(st.booleans()):
        digits = draw(st.sampled_from(_TEST_CARDS))
    else:
        partial = "4" + draw(st.text(alphabet="0123456789", min_size=14, max_size=14))
        digits = partial + _luhn_digit(partial)
    style = draw(st.sampled_from(["plain", "spaced", "dashed"]))
    if style == "plain":
        text = digits
    else:
        sep = " " if style == "spaced" else "-"
        text = sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))
    return Planted("card_number", text, (digits, text))


any_secret = st.one_of(
    emails(),
    ipv4s(),
    ipv6s(),
    paths(),
    url_credentials(),
    bearer_tokens(),
    api_keys(),
    pem_keys(),
    card_numbers(),
)


@st.composite
def secret_in_text(draw: st.DrawFn) -> tuple[Planted, str]:
    """A planted secret inside ordinary free text."""
    secret = draw(any_secret)
    before = " ".join(draw(st.lists(_words, max_size=4)))
    after = " ".join(draw(st.lists(_words, max_size=4)))
    left, right = draw(
        st.sampled_from(
            [
                (" ", " "),
                ("(", ")"),
                ('"', '"'),
                ("'", "'"),
                ("=", ";"),
                (": ", ", "),
                ("\n", "\n"),
                ("<", ">"),
            ]
        )
    )
    return secret, f"{before}{left}{secret.text}{right}{after}"


# Values the registry allows, which must leave unchanged.
ALLOWED_MODELS = ("claude-sonnet-4", "gpt-4o-2024-08-06", "claude-3-5-sonnet@20240620", "o3-mini")
ALLOWED_PROVIDERS = ("anthropic", "openai", "aws.bedrock", "gcp.vertex_ai", "deepseek")
ALLOWED_LANGUAGES = ("ko", "en", "ja", "zh-CN", "de")
versions = st.tuples(st.integers(0, 30), st.integers(0, 99), st.integers(0, 999)).map(
    lambda v: f"{v[0]}.{v[1]}.{v[2]}"
)
token_counts = st.integers(0, 2_000_000)


def first_survivor(planted: list[Planted], output: str) -> tuple[Planted, str] | None:
    for secret in planted:
        needle = secret.found_in(output)
        if needle is not None:
            return secret, needle
    return None
