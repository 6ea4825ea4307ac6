"""The privacy policy engine: keep, pseudonymise, coarsen or drop every value.

One engine serves every adapter (OTLP messages, the OTel SDK, Caret client events),
so every signal obeys the same rules, which come from the registry's generated
policy (``caret_otel.semconv.policy``):

- **fail closed**: a key that is not in the registry is dropped, and so is a key the
  registry marks ``forbidden``;
- ``pseudonymous`` values become keyed pseudonyms (``v<key-id>:<hex>``);
- ``coarse`` values are validated and kept only in their coarse form (an ISO country
  code, a continent code); anything else is dropped;
- ``public`` values must have the registry's type; free-text ones are redacted
  (``redaction.redact_text``); long values are cut;
- names (spans, events, metrics), status descriptions and log bodies are free text
  by nature and are always redacted.

Everything the engine does is counted in a ``ScrubReport`` (key names and counts,
never values).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from caret_otel.processors.privacy import report as reasons
from caret_otel.processors.privacy.consent import USER_ATTRIBUTES, ConsentStore
from caret_otel.processors.privacy.geo import CONTINENTS, normalise_country
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, is_pseudonym
from caret_otel.processors.privacy.redaction import (
    PATH,
    is_opaque_id,
    redact_text,
    strip_controls,
)
from caret_otel.processors.privacy.report import ScrubReport, reportable_key
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv.policy import OTHER_VALUE, AttributeRule, Policy, ValueShape, load_policy

__all__ = ["Limits", "PrivacyEngine", "ScrubReport"]

PUBLIC: Final = "public"
PSEUDONYMOUS: Final = "pseudonymous"
COARSE: Final = "coarse"
FORBIDDEN: Final = "forbidden"
COARSE_COUNTRY: Final = "country_code"
COARSE_CONTINENT: Final = "continent_code"
CONTROL_CHARACTERS: Final = "control_character"
"""Kind counted in ``ScrubReport.redacted`` for NUL and other C0 characters stripped
from free text (client events are rejected for them at the gateway instead)."""
BODY_KEY_PREFIX: Final = "body:"
"""Report keys of log-body map entries, so they never read like attribute names."""

# Redaction runs on a value cut to the limit plus this margin and the result is cut
# to the limit: a secret that straddles the limit is still seen whole (up to this many
# characters past it), while a huge value cannot make the regexes scan megabytes.
_REDACTION_MARGIN = 512
_NAME_CACHE_SIZE = 4096
_SHAPE_CACHE_SIZE = 4096
"""Decisions about public values kept at once, over all keys (see ``_ShapeCache``)."""
_TEXT_CACHE_SIZE = 2048
_TEXT_CACHE_MAX_LENGTH = 512
"""Free text (log bodies, free-text attributes) up to this length is cached: services
log the same messages again and again; a longer text is redacted every time, so the
cache holds at most ``_TEXT_CACHE_SIZE`` short texts."""


def _continent(value: str) -> str | None:
    candidate = value.strip().upper()
    return candidate if candidate in CONTINENTS else None


_COARSE: Final[dict[str, Callable[[str], str | None]]] = {
    COARSE_COUNTRY: normalise_country,
    COARSE_CONTINENT: _continent,
}
"""The coarse form of a value, by generalisation; None if the value is not valid."""

_EXACT_TYPES: Final[dict[str, type]] = {"string": str, "int": int, "double": float, "boolean": bool}


@dataclass(frozen=True, slots=True)
class _Plan:
    """How ``scrub_attributes`` treats one registry key, decided once per engine
    rather than per value (the loop over attributes is the hot path)."""

    rule: AttributeRule
    exact_type: type | None
    """A value of exactly this type leaves unchanged (after the length or finiteness
    check); None when every value goes through the full rule."""
    pseudonymous: bool
    coarse: Callable[[str], str | None] | None
    """The generalisation of a coarse key's string values (None: not coarse, or one
    this engine lacks)."""
    drop: tuple[str, str] | None
    """The report entry when the key never leaves (forbidden, or not metric-safe)."""
    shape: ValueShape | None = None
    """The values a public, non-free-text string may take (``value_shapes.yaml``)."""
    known: dict[str, bool] | None = None
    """The cached shape decisions of this key's values (``_ShapeCache.by_key``; the same
    dict in the metric and the non-metric plan), when it has a shape."""


_BACKSTOP_EXEMPT: Final[dict[str, frozenset[str]]] = {attrs.HTTP_ROUTE: frozenset({PATH})}
"""Redaction kinds the backstop ignores for a key: route templates look like paths (their
shape denies home directories instead)."""


def _shape_matcher(shape: ValueShape) -> Callable[[str], bool]:
    """``shape.matches`` without its general steps where a shape has no use for them
    (deny expressions, the enum or pattern branch): a value shape is checked for every
    id a record carries, so this runs per record. Built from the shape's public
    definition and equal to ``shape.matches`` on every input (tested)."""
    if shape.deny or (shape.enum is None) == (shape.pattern is None):
        return shape.matches
    limit = shape.max_length
    if shape.enum is not None:
        allowed = frozenset(shape.enum)
        return lambda value: len(value) <= limit and value in allowed
    # ASCII classes, as ValueShape compiles them (RE2's classes are ASCII-only).
    fullmatch = re.compile(shape.pattern or "", re.ASCII).fullmatch
    return lambda value: len(value) <= limit and fullmatch(value) is not None


class _ShapeCache:
    """Decisions "this public value may leave as this key" (shape and backstop), one
    dict of value -> bool per key, so the hot loop looks a value up without building a
    (key, value) tuple. Bounded over all keys: when ``_SHAPE_CACHE_SIZE`` decisions are
    held, every dict is emptied (a flood of distinct values cannot grow memory). Only
    public values are held (never identifiers that get pseudonymised), only values a
    shape could admit by length, and never opaque ids (each is seen once)."""

    def __init__(self) -> None:
        self.by_key: dict[str, dict[str, bool]] = {}
        self.size = 0

    def for_key(self, key: str) -> dict[str, bool]:
        known = self.by_key.get(key)
        if known is None:
            known = self.by_key.setdefault(key, {})
        return known

    def store(self, known: dict[str, bool], value: str, ok: bool) -> None:
        if self.size >= _SHAPE_CACHE_SIZE:
            for each in tuple(self.by_key.values()):  # a snapshot: keys may be added meanwhile
                each.clear()
            self.size = 0
        known[value] = ok
        self.size += 1


def _plan(
    key: str, rule: AttributeRule, *, metric: bool, shapes: _ShapeCache | None = None
) -> _Plan:
    drop: tuple[str, str] | None = None
    if rule.privacy == FORBIDDEN:
        drop = (key, reasons.FORBIDDEN)
    elif metric and not rule.metric:
        drop = (key, reasons.NOT_METRIC)
    exact_type: type | None = None
    if drop is None and rule.privacy == PUBLIC and not (rule.type == "string" and rule.free_text):
        exact_type = _EXACT_TYPES.get(rule.type)
    coarse = _COARSE.get(rule.coarse or "") if rule.privacy == COARSE else None
    shape = rule.shape if rule.privacy == PUBLIC and not rule.free_text else None
    known = shapes.for_key(key) if shape is not None and shapes is not None else None
    return _Plan(rule, exact_type, rule.privacy == PSEUDONYMOUS, coarse, drop, shape, known)


class _Dropped:
    """Marker for "this value does not leave" (the reason is already counted)."""


_DROPPED: Final = _Dropped()


@dataclass(frozen=True)
class Limits:
    """Bounds on what one record may carry; beyond them data is cut or dropped."""

    max_attributes: int = 128
    """Attributes kept per attribute set (and entries per log-body map)."""
    max_value_length: int = 4096
    """Characters kept per string value, description and body string."""
    max_body_depth: int = 8
    """Nesting levels kept in a log body (maps and lists)."""
    max_array_length: int = 128
    """Elements kept per array value or body list."""
    max_name_length: int = 256
    """Characters kept per span, event, metric and scope name."""

    def __post_init__(self) -> None:
        for name in (
            "max_attributes",
            "max_value_length",
            "max_body_depth",
            "max_array_length",
            "max_name_length",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")


# Secret holders among log-body keys: the last word of the key (or the last two)
# names a credential. Only the last word counts, so `access_token` goes while
# `token_count` (a number about tokens) stays.
_PLACEHOLDER_RE = re.compile(r"<redacted:[a-z0-9_]+>")
_KEY_WORD_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_SECRET_LAST_WORDS: Final = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "token",
        "apikey",
        "cookie",
        "cookies",
        "authorization",
        "credential",
        "credentials",
        "bearer",
        "privatekey",
        "jwt",
    }
)
_SECRET_LAST_PAIRS: Final = frozenset(
    {("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("session", "key")}
)


def is_secret_key_name(key: str) -> bool:
    """Whether a free-form map key (a log-body key) names a credential."""
    words = [w.lower() for w in _KEY_WORD_RE.findall(key)]
    if not words:
        return False
    if words[-1] in _SECRET_LAST_WORDS:
        return True
    return len(words) >= 2 and (words[-2], words[-1]) in _SECRET_LAST_PAIRS


class PrivacyEngine:
    """Applies the registry's privacy policy to attributes, names, text and bodies."""

    def __init__(
        self,
        policy: Policy,
        pseudonymizer: Pseudonymizer,
        limits: Limits = Limits(),
        *,
        accept_pseudonyms: bool = False,
    ) -> None:
        """``accept_pseudonyms``: keep values that already are pseudonyms under one of
        our live keys instead of hashing them again. Only for input from our own
        services whose in-process privacy already pseudonymised them (their OTLP at the
        gateway); never for client events, where a client must not pick its pseudonym.
        """
        self.policy = policy
        self.pseudonymizer = pseudonymizer
        self.limits = limits
        self.accept_pseudonyms = accept_pseudonyms
        self._rules: dict[str, AttributeRule] = dict(policy.attributes)
        self._client_aliases: dict[str, str] = dict(policy.client_properties)
        self._shapes = _ShapeCache()
        self._matchers: dict[ValueShape, Callable[[str], bool]] = {}
        self._plans = {
            key: _plan(key, rule, metric=False, shapes=self._shapes)
            for key, rule in self._rules.items()
        }
        self._metric_plans = {
            key: _plan(key, rule, metric=True, shapes=self._shapes)
            for key, rule in self._rules.items()
        }
        self._name_cache: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._description_cache: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._unknown_key_cache: dict[str, tuple[str, str]] = {}
        self._body_key_cache: dict[str, tuple[str, AttributeRule | None, str | None]] = {}
        self._text_cache: dict[str, tuple[str, tuple[str, ...], int, bool]] = {}

    @classmethod
    def from_env(cls, limits: Limits = Limits()) -> PrivacyEngine:
        """The shipped policy and the pseudonym keys from the environment.

        Raises ``PseudonymKeyError`` (saying how to make a key) when none is configured.
        """
        return cls(load_policy(), Pseudonymizer.from_env(), limits)

    # --- attributes -----------------------------------------------------------------------

    def rule(self, key: str) -> AttributeRule | None:
        return self._rules.get(key)

    def scrub_attributes(
        self, attrs: Mapping[str, object], report: ScrubReport, *, metric: bool = False
    ) -> dict[str, object]:
        """The attributes that may leave, transformed as the policy says.

        With ``metric=True`` only keys that may label a metric survive.
        """
        # Most values leave unchanged: start from a copy (one C-level copy of the whole
        # dict) and replace or delete the few that change, rather than insert every
        # kept value into a new dict. The order of keys is the input's either way.
        out: dict[str, object] = dict(attrs)
        max_attributes = self.limits.max_attributes
        max_length = self.limits.max_value_length
        # Dropped keys never count towards the limit, so only a set with more
        # attributes than the limit can reach it: the check is skipped otherwise.
        bounded = len(out) > max_attributes
        kept = 0  # values kept so far, counted only when bounded (every value then
        # takes the full rule below)
        plans = self._metric_plans if metric else self._plans
        dropped = report.dropped
        pseudonymize = self.pseudonymizer.pseudonymize
        accept_pseudonyms = self.accept_pseudonyms
        for key, value in attrs.items():
            plan = plans.get(key)
            if plan is None:
                dropped[self._unknown_key(key)] += 1
                del out[key]
                continue
            # Fast path first: a well-typed public value leaves unchanged. Exact types:
            # a bool is not taken for an int, nor a str subclass for a str; everything
            # else, every mismatch included, goes through the full rule. (A plan that
            # drops its key has no exact type, so it never takes this path.)
            value_type = type(value)
            if value_type is plan.exact_type and not bounded:
                if value_type is str:
                    known = plan.known
                    if known is not None:
                        text: str = value  # type: ignore[assignment]
                        # the shape cache read inline: a method call per attribute shows
                        ok = known.get(text)
                        if ok is None:
                            shape: ValueShape = plan.shape  # type: ignore[assignment]
                            ok = len(text) <= max_length and self._shape_decision(
                                key, shape, text, known
                            )
                        if not ok:
                            dropped[(key, reasons.SHAPE)] += 1
                            if metric:
                                out[key] = OTHER_VALUE
                            else:
                                del out[key]
                        continue
                    if len(value) <= max_length:  # type: ignore[arg-type]
                        continue
                elif value_type is not float or math.isfinite(value):  # type: ignore[arg-type]
                    continue
            if plan.drop is not None:
                dropped[plan.drop] += 1
                del out[key]
                continue
            if bounded and kept >= max_attributes:
                report.drop(key, reasons.LIMIT)
                del out[key]
                continue
            # identifiers and coarse values (a user id, a country: most records carry
            # one) inline; every other rule in _scrub_rule
            if value_type is str and plan.pseudonymous and not accept_pseudonyms:
                if not value.strip():  # type: ignore[attr-defined]
                    report.drop(key, reasons.EMPTY)
                    del out[key]
                    continue
                result: object = pseudonymize(value)  # type: ignore[arg-type]
                report.pseudonymised[key] += 1
            elif value_type is str and plan.coarse is not None:
                result = plan.coarse(value)  # type: ignore[arg-type]
                if result is None:
                    report.drop(key, reasons.INVALID)
                    del out[key]
                    continue
            else:
                result = self._scrub_rule(key, plan, value, report, metric)
                if result is _DROPPED:
                    del out[key]
                    continue
            kept += 1
            if result is not value:
                out[key] = result
        return out

    def _scrub_rule(
        self, key: str, plan: _Plan, value: object, report: ScrubReport, metric: bool
    ) -> object:
        """``scrub_attributes`` for a value off its fast path, of a key that may leave,
        when it is neither an identifier nor a coarse string (those are handled inline):
        what leaves, or ``_DROPPED`` (the reason counted)."""
        if metric and plan.shape is not None and type(value) is str:  # exactly str
            if len(value) <= self.limits.max_value_length and self.shape_ok(key, plan.shape, value):
                return value
            report.drop(key, reasons.SHAPE)
            return OTHER_VALUE
        return self.scrub_value(plan.rule, value, report)

    def shape_ok(self, key: str, shape: ValueShape, value: str) -> bool:
        """Whether ``value`` may leave as ``key``: it matches the shape and free-text
        redaction (run as a backstop) finds nothing in it. Cached: values repeat.

        ``key`` names the cache, so one key must always come with the same shape (true
        of the registry's attributes and of the OTLP fields the adapters check)."""
        known = self._shapes.for_key(key)
        ok = known.get(value)
        if ok is None:
            ok = self._shape_decision(key, shape, value, known)
        return ok

    def _shape_decision(
        self, key: str, shape: ValueShape, value: str, known: dict[str, bool]
    ) -> bool:
        """``shape_ok`` decided afresh. Cached unless the value is an opaque id, longer
        than any value of the shape, or longer than ``Limits.max_value_length`` (so a
        cached decision always belongs to a value within the limit, which
        ``scrub_attributes`` checks before it decides)."""
        if len(value) > shape.max_length:
            return False  # what shape.matches says first; not cached: as cheap as a look-up
        matcher = self._matchers.get(shape)
        if matcher is None:
            matcher = self._matchers[shape] = _shape_matcher(shape)
        ok = matcher(value)
        if ok:
            if is_opaque_id(value):
                # An id the shape admits (OPAQUE_ID_PATTERN): not judged by the backstop,
                # nor cached: each is seen once and would only push out values that repeat.
                return True
            exempt = _BACKSTOP_EXEMPT.get(key, frozenset())
            ok = all(kind in exempt for kind in redact_text(value)[1])
        if len(value) <= self.limits.max_value_length:
            self._shapes.store(known, value, ok)
        return ok

    def _unknown_key(self, key: str) -> tuple[str, str]:
        """The report entry of an unknown key, cached (unknown keys repeat too)."""
        entry = self._unknown_key_cache.get(key)
        if entry is None:
            entry = (reportable_key(key), reasons.UNKNOWN)
            if len(self._unknown_key_cache) >= _NAME_CACHE_SIZE:
                self._unknown_key_cache.clear()
            self._unknown_key_cache[key] = entry
        return entry

    def scrub_value(self, rule: AttributeRule, value: object, report: ScrubReport) -> object:
        """One value under its rule; returns the marker ``_DROPPED`` (reason counted)
        when it may not leave. Use ``is_dropped`` to test the result."""
        if rule.privacy == PUBLIC:
            return self._public(rule, value, report)
        if rule.privacy == PSEUDONYMOUS:
            return self._pseudonymous(rule.name, value, report)
        if rule.privacy == COARSE:
            return self._coarse(rule, value, report)
        report.drop(rule.name, reasons.FORBIDDEN)
        return _DROPPED

    def pseudonym_of(self, value: object) -> str | None:
        """The pseudonym an identifier becomes (None if it is not a usable identifier)."""
        if isinstance(value, bool) or not isinstance(value, str | int):
            return None
        text = str(value)
        if not text.strip():
            return None
        if self.accept_pseudonyms and is_pseudonym(text):
            # Kept only when its keyed tag verifies; an unkeyed look-alike is dropped.
            return text if self.pseudonymizer.verify(text) else None
        return self.pseudonymizer.pseudonymize(text)

    def opted_out(self, consent: ConsentStore, attributes: Mapping[str, object]) -> bool:
        """Whether a user attribute of ``attributes`` (raw, not yet scrubbed) belongs to a
        user who opted out, under any live key (``pseudonyms_for_consent``). Runs for
        every record: ``consent.opted_out_user`` checks several sets with it."""
        if not attributes:
            return False
        for key in USER_ATTRIBUTES:
            value = attributes.get(key)
            if value is None:
                continue
            for pseudonym in self.pseudonyms_for_consent(value):
                if consent.is_opted_out(pseudonym):
                    return True
        return False

    def pseudonyms_for_consent(self, value: object) -> Sequence[str]:
        """Every pseudonym an opt-out of this identifier may be stored under: one per
        live key for a raw id (an opt-out recorded before a key rotation still holds);
        the value itself when it is already a pseudonym we accept."""
        if type(value) is str:  # the usual case, checked first: this runs per record
            text = value
        elif isinstance(value, bool) or not isinstance(value, str | int):
            return ()
        else:
            text = str(value)
        if not text.strip():
            return ()
        if self.accept_pseudonyms and self.pseudonymizer.is_live_pseudonym(text):
            return (text,)
        return self.pseudonymizer.live_pseudonyms(text)

    def _pseudonymous(self, key: str, value: object, report: ScrubReport) -> object:
        if isinstance(value, bool) or not isinstance(value, str | int):
            report.drop(key, reasons.TYPE if value is not None else reasons.EMPTY)
            return _DROPPED
        pseudonym = self.pseudonym_of(value)
        if pseudonym is None:
            report.drop(key, reasons.INVALID if str(value).strip() else reasons.EMPTY)
            return _DROPPED
        report.pseudonymised[key] += 1
        return pseudonym

    def _coarse(self, rule: AttributeRule, value: object, report: ScrubReport) -> object:
        if not isinstance(value, str):
            report.drop(rule.name, reasons.TYPE)
            return _DROPPED
        generalise = _COARSE.get(rule.coarse or "")
        coarse = generalise(value) if generalise is not None else None
        if coarse is None:  # not a valid code, or a generalisation this engine lacks
            report.drop(rule.name, reasons.INVALID)
            return _DROPPED
        return coarse

    def _public(self, rule: AttributeRule, value: object, report: ScrubReport) -> object:
        kind = rule.type
        if kind == "string":
            if not isinstance(value, str):
                report.drop(rule.name, reasons.TYPE)
                return _DROPPED
            return self._public_string(rule, value, report)
        if kind.endswith("[]"):
            return self._public_array(rule, value, report)
        scalar = _scalar(kind, value)
        if scalar is _DROPPED:
            report.drop(rule.name, reasons.TYPE)
        return scalar

    def _public_string(self, rule: AttributeRule, value: str, report: ScrubReport) -> object:
        if rule.free_text:
            return self.scrub_text(value, report, key=rule.name)
        if rule.shape is not None:
            if len(value) <= self.limits.max_value_length and self.shape_ok(
                rule.name, rule.shape, value
            ):
                return value
            report.drop(rule.name, reasons.SHAPE)
            return _DROPPED
        return self._cut(value, self.limits.max_value_length, report, rule.name)

    def _public_array(self, rule: AttributeRule, value: object, report: ScrubReport) -> object:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            report.drop(rule.name, reasons.TYPE)
            return _DROPPED
        element_type = rule.type[:-2]
        items: list[object] = []
        for element in value[: self.limits.max_array_length]:
            if element_type == "string":
                if not isinstance(element, str):
                    report.drop(rule.name, reasons.TYPE)
                    return _DROPPED
                kept = self._public_string(rule, element, report)
                if kept is not _DROPPED:
                    items.append(kept)
                continue
            scalar = _scalar(element_type, element)
            if scalar is _DROPPED:
                report.drop(rule.name, reasons.TYPE)
                return _DROPPED
            items.append(scalar)
        if len(value) > self.limits.max_array_length:
            report.truncated[rule.name] += 1
        return tuple(items)

    # --- free text ------------------------------------------------------------------------

    def scrub_text(
        self, text: str, report: ScrubReport, *, key: str = "text", max_length: int | None = None
    ) -> str:
        """Redact secrets and personal data in free text, then cut it to the limit.

        Short texts under the default limit are cached (``_TEXT_CACHE_MAX_LENGTH``): the
        same result and the same counts as redacting them again."""
        if max_length is None and len(text) <= _TEXT_CACHE_MAX_LENGTH:
            cache = self._text_cache
            entry = cache.get(text)
            if entry is None:
                entry = _redacted_text(text, self.limits.max_value_length)
                if len(cache) >= _TEXT_CACHE_SIZE:
                    cache.clear()  # a flood of distinct texts must not grow memory
                cache[text] = entry
        else:
            limit = self.limits.max_value_length if max_length is None else max_length
            entry = _redacted_text(text, limit)
        redacted, kinds, controls, truncated = entry
        if controls:
            report.redacted[CONTROL_CHARACTERS] += controls
        for kind in kinds:
            report.redacted[kind] += 1
        if truncated:
            report.truncated[key] += 1
        return redacted

    def scrub_name(self, name: str, report: ScrubReport) -> str:
        """A span, event, metric or scope name: redacted and cut like free text.

        Names repeat (a service has few span names), so results are cached.
        """
        return self._cached_redaction(self._name_cache, name, self.limits.max_name_length, report)

    def scrub_description(self, text: str, report: ScrubReport) -> str:
        """A status description: redacted and cut like free text, cached like names
        (descriptions repeat: "429 from api.anthropic.com: retry in 2s")."""
        return self._cached_redaction(
            self._description_cache, text, self.limits.max_value_length, report
        )

    def _cached_redaction(
        self,
        cache: dict[str, tuple[str, tuple[str, ...]]],
        text: str,
        limit: int,
        report: ScrubReport,
    ) -> str:
        cached = cache.get(text)
        if cached is None:
            stripped, controls = strip_controls(text[: limit + _REDACTION_MARGIN])
            redacted, kinds = redact_text(stripped)
            kinds += [CONTROL_CHARACTERS] * controls
            if len(redacted) > limit:
                redacted = redacted[:limit]
            cached = (redacted, tuple(kinds))
            if len(cache) >= _NAME_CACHE_SIZE:
                cache.clear()  # a flood of distinct texts must not grow memory
            cache[text] = cached
        for kind in cached[1]:
            report.redacted[kind] += 1
        return cached[0]

    def _cut(self, text: str, limit: int, report: ScrubReport, key: str) -> str:
        if len(text) <= limit:
            return text
        report.truncated[key] += 1
        return text[:limit]

    # --- log bodies -----------------------------------------------------------------------

    def scrub_body(self, value: object, report: ScrubReport) -> object:
        """A log body (string, number, bool, nested maps and lists), scrubbed.

        A string body is free text: it is redacted. A map body is attributes in
        disguise and fails closed like them: an entry stays only when its key is a
        registry attribute or client property that is not forbidden, and its value then
        obeys that attribute's rule (type, shape, pseudonym, coarse form); every other
        key is dropped (reason ``unknown``, reported as ``body:<key>``). Lists are
        scrubbed element by element. Bytes are dropped (they cannot be inspected).
        Returns None when nothing may leave.
        """
        result = self._body(value, report, 0)
        return None if result is _DROPPED else result

    def _body(self, value: object, report: ScrubReport, depth: int) -> object:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.scrub_text(value, report, key="body")
        if depth >= self.limits.max_body_depth and isinstance(value, Mapping | list | tuple):
            report.drop("body", reasons.DEPTH)
            return _DROPPED
        if isinstance(value, Mapping):
            return self._body_map(value, report, depth)
        if isinstance(value, list | tuple):
            items: list[object] = []
            for element in value[: self.limits.max_array_length]:
                scrubbed = self._body(element, report, depth + 1)
                if scrubbed is not _DROPPED:
                    items.append(scrubbed)
            if len(value) > self.limits.max_array_length:
                report.truncated["body"] += 1
            return items
        report.drop("body", reasons.TYPE)  # bytes and anything else we cannot inspect
        return _DROPPED

    def _body_map(self, value: Mapping[object, object], report: ScrubReport, depth: int) -> object:
        out: dict[str, object] = {}
        for raw_key, item in value.items():
            key, rule, drop_reason = self._body_key(str(raw_key))
            if drop_reason is not None:
                report.drop(BODY_KEY_PREFIX + key, drop_reason)
                continue
            if len(out) >= self.limits.max_attributes:
                report.drop(BODY_KEY_PREFIX + key, reasons.LIMIT)
                continue
            if rule is None:
                # A structured body is attributes in disguise: fail closed like them.
                report.drop(BODY_KEY_PREFIX + key, reasons.UNKNOWN)
                continue
            scrubbed = self.scrub_value(rule, item, report)
            if scrubbed is not _DROPPED:
                out[key] = scrubbed
        return out

    def _body_key(self, key: str) -> tuple[str, AttributeRule | None, str | None]:
        """(shown key, rule for its value, drop reason) for a body map key; cached."""
        cached = self._body_key_cache.get(key)
        if cached is not None:
            return cached
        rule = self._rules.get(key)
        if rule is None and key in self._client_aliases:
            rule = self._rules.get(self._client_aliases[key])
        shown = redact_text(key[: self.limits.max_name_length])[0]
        drop_reason: str | None = None
        if rule is not None and rule.privacy == FORBIDDEN:
            drop_reason = reasons.FORBIDDEN
        elif is_secret_key_name(_PLACEHOLDER_RE.sub(" ", shown)):
            # Judged on the redacted key without its placeholders: the words of
            # `<redacted:api_key>` are ours, not the caller's, and judging the same text
            # every time keeps scrubbing twice equal to scrubbing once.
            drop_reason = reasons.SECRET_KEY
        result = (shown, rule, drop_reason)
        if len(self._body_key_cache) >= _NAME_CACHE_SIZE:
            self._body_key_cache.clear()
        self._body_key_cache[key] = result
        return result


def _redacted_text(text: str, limit: int) -> tuple[str, tuple[str, ...], int, bool]:
    """Free text redacted and cut to ``limit``: (the result, the kinds redacted, the
    control characters stripped, whether it was cut). Depends on nothing but its
    arguments, so ``PrivacyEngine.scrub_text`` may cache it."""
    if len(text) > limit + _REDACTION_MARGIN:
        text = text[: limit + _REDACTION_MARGIN]
    text, controls = strip_controls(text)
    redacted, kinds = redact_text(text)
    truncated = len(redacted) > limit
    if truncated:
        redacted = redacted[:limit]
    return redacted, tuple(kinds), controls, truncated


def is_dropped(value: object) -> bool:
    """Whether ``PrivacyEngine.scrub_value`` decided the value does not leave."""
    return value is _DROPPED


def _scalar(kind: str, value: object) -> object:
    """``value`` as the registry's scalar type, or ``_DROPPED`` on a mismatch.

    Booleans are accepted only for ``boolean`` (in Python ``True`` is also an int);
    an ``int`` is accepted for ``double`` (JSON has one number type); non-finite
    doubles are dropped (no consumer can aggregate them).
    """
    if kind == "boolean":
        return value if isinstance(value, bool) else _DROPPED
    if isinstance(value, bool):
        return _DROPPED
    if kind == "int":
        return value if isinstance(value, int) else _DROPPED
    if kind == "double":
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value)
        return _DROPPED
    return _DROPPED  # a type this engine does not know: fail closed
