"""Hostile values for the output-level property tests: planted secrets (also in the
forms only a normalising pass sees: zero-width characters inside, full-width at signs and
slashes, percent-encoded separators), Hangul names, prompts and control characters, each
with the needles that must reach no output; and the registry's view of every attribute,
to plant them everywhere and to judge what came out."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from unit.privacy.planted import Planted, any_secret, markers, secret_in_text

from caret_otel.registry.collector_privacy import COARSE_SHAPES
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv.policy import AttributeRule, ValueShape, load_policy

POLICY = load_policy()
RULES: dict[str, AttributeRule] = POLICY.attributes


def _shape(rule: AttributeRule) -> ValueShape | None:
    if rule.privacy == "coarse" and rule.coarse in COARSE_SHAPES:
        return POLICY.shapes[COARSE_SHAPES[rule.coarse]]
    if rule.privacy == "public" and not rule.free_text:
        return rule.shape
    return None


SHAPES: dict[str, ValueShape] = {
    name: shape
    for name, rule in RULES.items()
    if rule.type in ("string", "string[]") and (shape := _shape(rule)) is not None
}
"""Every key whose string values (or string[] elements) must have a registry shape."""
FREE_TEXT = sorted(n for n, r in RULES.items() if r.free_text)
SCALARS = sorted(n for n, r in RULES.items() if r.type in ("int", "double", "boolean"))
PLANTED_KEYS = sorted(
    n for n, r in RULES.items() if not r.free_text and (r.privacy != "public" or n in SHAPES)
)
"""Keys that get any hostile value (dropped, hashed or shape-checked): all but free text."""
ALLOWED = {n for n, r in RULES.items() if r.privacy != "forbidden"}
UNKNOWN_KEY = "custom.hostile"
CONTROL_OR_FORMAT = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f"


@dataclass(frozen=True)
class Canary:
    text: str
    needles: tuple[str, ...]


def _from(planted: Planted) -> Canary:
    return Canary(planted.text, planted.needles)


_ZW = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e"])


@st.composite
def _disguised(draw: st.DrawFn) -> Canary:
    """An e-mail or a home path as only a normalising pass sees it."""
    marker = draw(markers)
    zw = draw(_ZW)
    cut = draw(st.integers(1, len(marker) - 1))
    hidden = marker[:cut] + zw + marker[cut:]
    form = draw(
        st.sampled_from(["zw_email", "fw_email", "pct_email", "zw_path", "fw_path", "pct_path"])
    )
    text = {
        "zw_email": f"{hidden}{zw}@example{zw}.com",
        "fw_email": f"{marker}\uff20example.org",
        "pct_email": f"{marker}%40example.co.kr",
        "zw_path": f"/home/{hidden}/project/app.py",
        "fw_path": f"\uff0fUsers\uff0f{marker}\uff0fnotes.txt",
        "pct_path": f"%2Fhome%2F{marker}%2F.ssh%2Fid_rsa",
    }[form]
    return Canary(text, (marker,))


@st.composite
def _hangul(draw: st.DrawFn) -> Canary:
    name = draw(st.text(alphabet="김이박최정강조윤장임민준서연지우현수영", min_size=2, max_size=4))
    marker = draw(markers)
    return Canary(f"{name} {marker}", (marker, unicodedata.normalize("NFC", name + " ")))


@st.composite
def _prompt(draw: st.DrawFn) -> Canary:
    marker = draw(markers)
    return Canary(f"Please refactor {marker} and email the result to my manager", (marker,))


@st.composite
def _controls(draw: st.DrawFn) -> Canary:
    marker = draw(markers)
    junk = draw(
        st.text(alphabet="\x00\x01\x07\x08\x0b\x1b\x7f\u200b\u202e", min_size=1, max_size=4)
    )
    # A space keeps it off every shape once the Collector strips the junk.
    return Canary(f"{marker} {junk}x", (marker,))


secret = st.one_of(any_secret.map(_from), _disguised())
"""A secret the redaction patterns must take out of free text."""
secret_text = st.one_of(
    secret_in_text().map(lambda pair: Canary(pair[1], pair[0].needles)),
    _disguised(),
).flatmap(
    lambda c: st.sampled_from(["", "\x00", "\u200b", "\x07\x1b"]).map(
        lambda junk: Canary(junk + c.text + junk, c.needles)
    )
)
"""Free text holding a secret (and maybe control or format characters)."""
anything = st.one_of(secret, _disguised(), _hangul(), _prompt(), _controls())
"""Any hostile value: none of it may come out under a key that is not free text."""


def needles(canaries: Iterable[Canary]) -> list[str]:
    return [n for c in canaries for n in c.needles]


def leaked(needle_list: Iterable[str], output: str) -> str | None:
    folded = unicodedata.normalize("NFC", output).casefold()
    for needle in needle_list:
        if unicodedata.normalize("NFC", needle).casefold() in folded:
            return needle
    return None


def strings(value: Any) -> Iterable[str]:
    """Every string inside decoded OTLP/JSON (keys and values)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def has_control_or_format(text: str) -> bool:
    return any(
        (c < " " and c not in "\t\n\r") or c == "\x7f" or unicodedata.category(c) == "Cf"
        for c in text
    )


def off_shape(key: str, value: Any, *, label: bool) -> str | None:
    """Why ``value`` under ``key`` is not registry-shaped (None when it is)."""
    rule = RULES.get(key)
    if rule is None or rule.privacy == "forbidden":
        return "not an allowed key"
    if rule.privacy == "pseudonymous":
        ok = isinstance(value, str) and value.startswith("v") and ":" in value
        return None if ok else "not a pseudonym"
    if label and value == "other":
        return None
    shape = SHAPES.get(key)
    if rule.type == "string[]":
        if not isinstance(value, list) or shape is None:
            return "not a shaped list"
        bad = [v for v in value if not (isinstance(v, str) and shape.matches(v))]
        return f"elements {bad!r} off {shape.name}" if bad else None
    if rule.type == "string":
        if not isinstance(value, str):
            return "not a string"
        if shape is not None and not shape.matches(value):
            return f"off {shape.name}"
        return None
    expected = {"int": (int,), "double": (int, float), "boolean": (bool,)}[rule.type]
    return None if isinstance(value, expected) else f"not {rule.type}"


GOOD = {
    attrs.GEN_AI_OPERATION_NAME: "chat",
    attrs.GEN_AI_PROVIDER_NAME: "anthropic",
    attrs.GEN_AI_RESPONSE_FINISH_REASONS: ["stop", "length"],
    attrs.GEO_COUNTRY_ISO_CODE: "KR",
    attrs.HTTP_RESPONSE_STATUS_CODE: 200,
    attrs.CARET_ERROR_MESSAGE: "retry at 10:00:00 after 429",
}
"""Well-formed values, sent in a record of their own beside the hostile ones: they must
come out unchanged (the pass does not win by deleting everything)."""


class Planter:
    """Hostile values for every place of one example: a pool of them drawn by
    Hypothesis, spread over the places by a Hypothesis-seeded choice (so an example stays
    small enough to draw and shrink); every pooled value's needles must reach no output."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.anything: list[Canary] = draw(st.lists(anything, min_size=16, max_size=16))
        self.texts: list[Canary] = draw(st.lists(secret_text, min_size=8, max_size=8))
        self.planted = [*self.anything, *self.texts]
        self.choose = draw(st.randoms(use_true_random=False)).choice

    def any(self) -> str:
        return self.choose(self.anything).text

    def text(self) -> str:
        return self.choose(self.texts).text

    def attributes(self, keys: list[str] = PLANTED_KEYS) -> dict[str, Any]:
        """A hostile value under every key: lists for string[] keys, text under
        numeric and boolean keys, secrets in free text, and one unknown key."""
        out: dict[str, Any] = {}
        for key in keys:
            out[key] = [GOOD[key][0], self.any()] if RULES[key].type == "string[]" else self.any()
        for key in (*FREE_TEXT, *SCALARS):
            out[key] = self.text() if key in FREE_TEXT else self.any()
        out[UNKNOWN_KEY] = self.any()
        return out
