"""Render the Collector's privacy pass (``collector/privacy-pass.yaml``) from the registry.

The gateway's Python processor is the first privacy pass; this file is the second, run
by the Collector on everything it receives, so that data sent straight to the Collector
(bypassing the gateway) is held to the same registry policy. Both are generated from
the one registry, so they cannot disagree about which keys exist, which are
pseudonymous, forbidden or metric-safe.

The pass is six processors that the pipelines of ``otel-collector-config.yaml`` run
right after ``memory_limiter`` (:data:`INGRESS_PROCESSORS`):

1. ``redaction/pseudonyms`` - keyed HMAC-SHA256 of every pseudonymous attribute whose
   value is not already a pseudonym (key from ``$CARET_OTEL_COLLECTOR_HMAC_KEY``).
2. ``transform/pseudonym_format`` - writes those digests as ``v<key-id>:<hex>``, the
   shape of the gateway's pseudonyms, so the business exporter accepts them and
   ``forget`` finds them once the key is also given to the Python side.
3. ``transform/normalise`` - Unicode format and C0 control characters removed from every
   top-level string (one pass), so a zero-width character cannot hide a secret; the
   Collector cannot NFKC or percent-decode, so the secret patterns take full-width and
   percent-encoded separators instead.
4. ``redaction/allowlist`` - fail closed: only registry keys that are not forbidden
   survive, on resources, scopes, spans, span events, log records, log-body maps (at
   any depth) and data points; every remaining value (all types, log bodies included)
   is scanned for secrets.
5. ``transform/privacy`` - what the redaction processor does not reach: span, event,
   scope and metric names, status messages, severity texts, event names (all at
   ``error_mode: propagate``: a failing statement fails the batch rather than letting
   raw data through); span links (dropped) and exemplars (metric-safe keys, masked);
   metric data points limited to metric-safe keys; pseudonymous keys removed from
   metric resources, so no user-level value can become a label or ``target_info``;
   every public string that is not free text, every ``string[]`` element and every coarse
   value checked against its registry value shape, every number and boolean against its
   type (deleted on a mismatch, or ``other`` as a metric label); span trace state cleared;
   ``schema_url`` kept only when it is upstream's; ``scope.version`` only a version;
   metric units and descriptions replaced from the registry.
6. ``filter/registry_metrics`` (metrics only, first) - only registry metrics go on.

The secret patterns are the RE2 (Go) forms of the Python processor's detectors, produced
from the same definitions (:data:`caret_otel.processors.privacy.redaction.DETECTORS`); the
Collector masks them with ``****``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from caret_otel.contracts.collector import CollectorConfigEnv
from caret_otel.processors.privacy import redaction as python_redaction
from caret_otel.registry.model import Attribute, Registry, Shape
from caret_otel.semconv import attributes as attrs

MASK: Final = "****"
PSEUDONYM_RE2: Final = r"^v[A-Za-z0-9_-]{1,32}:[0-9a-f]{64}$"
"""A value already pseudonymised (the shape ``caret_otel.processors.privacy.pseudonyms`` writes)."""
DIGEST_RE2: Final = r"^([0-9a-f]{64})$"
"""What ``redaction/pseudonyms`` leaves in a pseudonymous attribute: a bare hex digest."""
REDACTION_AUDIT_KEYS_RE2: Final = r"^redaction\."
"""Keys the redaction processor lets through on its own (its audit summary). We run it
with ``summary: silent``, so any such key came from a sender and is not in the registry."""

PSEUDONYMS: Final = "redaction/pseudonyms"
PSEUDONYM_FORMAT: Final = "transform/pseudonym_format"
NORMALISE: Final = "transform/normalise"
ALLOWLIST: Final = "redaction/allowlist"
PRIVACY: Final = "transform/privacy"
METRIC_ALLOWLIST: Final = "filter/registry_metrics"
INGRESS_PROCESSORS: Final[dict[str, tuple[str, ...]]] = {
    # Metrics lose every pseudonymous key (never a label), so they skip the HMAC steps;
    # only registry metrics go on (to Prometheus and the business leg).
    "traces": (PSEUDONYMS, PSEUDONYM_FORMAT, NORMALISE, ALLOWLIST, PRIVACY),
    "logs": (PSEUDONYMS, PSEUDONYM_FORMAT, NORMALISE, ALLOWLIST, PRIVACY),
    "metrics": (METRIC_ALLOWLIST, NORMALISE, ALLOWLIST, PRIVACY),
}
"""The privacy processors each ingress pipeline runs, in order, after memory_limiter."""

_ENV = CollectorConfigEnv.ENV_NAMES
HMAC_KEY_PLACEHOLDER: Final = "${env:" + _ENV["hmac_key"] + "}"
"""No default on purpose: without a key the Collector refuses to start (fail closed)."""
HMAC_KEY_ID_PLACEHOLDER: Final = (
    "${env:" + _ENV["hmac_key_id"] + ":-" + CollectorConfigEnv.hmac_key_id + "}"
)


@dataclass(frozen=True)
class SecretPattern:
    """One RE2 regex for one kind of secret the Python processor also redacts."""

    kind: str
    regex: str
    matches_routes: bool = False
    """Also matches route templates (``/v1/messages``): not applied to the values of
    :data:`ROUTE_ATTRIBUTES`, which hold exactly such templates."""


ROUTE_ATTRIBUTES: Final = (attrs.HTTP_ROUTE,)
"""Attributes whose values are URL route templates by definition."""
COARSE_SHAPES: Final[dict[str, str]] = {
    "country_code": "iso_country",
    "continent_code": "continent",
}
"""The named shape a ``coarse`` attribute's value must have here: the gateway generalises
(``kr`` -> ``KR``), the Collector only checks (deleted, or ``other`` as a metric label)."""
VERSION_SHAPE: Final = "semver"
"""The named shape ``scope.version`` must match (else it is cleared)."""
STRIPPED_RE2: Final = "[\\p{Cf}" + python_redaction.CONTROL_RE.pattern[1:-1] + "]+"
"""What ``transform/normalise`` removes from every string before the secret patterns run:
Unicode format characters (zero-width spaces and joiners, bidi marks, which hide an
e-mail or a path from a pattern) and the C0 control characters the gateway refuses."""
SCHEMA_URL_RE2: Final = r"^https://opentelemetry\.io/schemas/[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$"
"""The only ``schema_url`` kept (resource and scope); any other is cleared."""


SECRET_PATTERNS: Final[tuple[SecretPattern, ...]] = tuple(
    # One definition with the Python processor, in its order (most specific first: a
    # credential URL is masked before the e-mail pattern could take its user@host part).
    SecretPattern(d.kind, d.re2, d.matches_routes)
    for d in python_redaction.DETECTORS
)


def blocked_values() -> list[str]:
    """The ``blocked_values`` of ``redaction/allowlist``, applied in order to every value."""
    return [p.regex for p in SECRET_PATTERNS]


def secrets_pattern(*, for_routes: bool = False) -> str:
    """Every pattern as one alternation, for OTTL ``replace_pattern`` (names, routes)."""
    chosen = [p for p in SECRET_PATTERNS if not (for_routes and p.matches_routes)]
    return "|".join(f"(?:{p.regex})" for p in chosen)


# --- OTTL text -------------------------------------------------------------------------------


def ottl_string(text: str) -> str:
    """``text`` as an OTTL string literal (Go escapes: backslash and double quote)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def confmap_literal(text: str) -> str:
    """Escape ``$`` so the Collector's config resolver does not expand it (``$$`` -> ``$``)."""
    return text.replace("$", "$$")


def _pattern(regex: str) -> str:
    return confmap_literal(ottl_string(regex))


def _names_pattern(names: Iterable[str], *, extra: Sequence[str] = ()) -> str:
    """An anchored RE2 alternation matching exactly ``names`` (and the ``extra`` regexes)."""
    return "^(?:" + "|".join([*(re.escape(n) for n in sorted(names)), *extra]) + ")$"


def _key_list(names: Iterable[str]) -> str:
    return "[" + ", ".join(ottl_string(n) for n in sorted(names)) + "]"


# --- the registry's view -------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyView:
    """The key sets the privacy pass needs, from the registry."""

    allowed: tuple[str, ...]
    pseudonymous: tuple[str, ...]
    metric_safe: tuple[str, ...]
    routes: tuple[str, ...]
    shaped: tuple[tuple[str, Shape], ...] = ()
    """Public string attributes (not free text) and their value shapes."""
    shaped_arrays: tuple[tuple[str, Shape], ...] = ()
    """Public string[] attributes (not free text) and the shape of every element."""
    typed: tuple[tuple[str, str], ...] = ()
    """Public attributes of a scalar type other than string, and that type."""
    metrics: tuple[tuple[str, str, str], ...] = ()
    """(name, unit, brief) of every registry metric."""
    version_shape: Shape | None = None
    """The shape of ``scope.version`` (the registry's ``semver``)."""

    @classmethod
    def of(cls, reg: Registry) -> PolicyView:
        attributes: list[Attribute] = sorted(reg.attributes.values(), key=lambda a: a.name)
        return cls(
            allowed=tuple(a.name for a in attributes if a.privacy != "forbidden"),
            pseudonymous=tuple(a.name for a in attributes if a.privacy == "pseudonymous"),
            metric_safe=tuple(a.name for a in attributes if a.metric and a.privacy != "forbidden"),
            routes=tuple(a.name for a in attributes if a.name in ROUTE_ATTRIBUTES),
            shaped=(
                *(
                    (a.name, reg.shapes[a.shape])
                    for a in attributes
                    if a.privacy == "public"
                    and a.type == "string"
                    and not a.free_text
                    and a.shape in reg.shapes
                ),
                *(
                    (a.name, reg.shapes[COARSE_SHAPES[a.coarse]])
                    for a in attributes
                    if a.privacy == "coarse" and a.coarse in COARSE_SHAPES
                ),
            ),
            shaped_arrays=tuple(
                (a.name, reg.shapes[a.shape])
                for a in attributes
                if a.privacy == "public"
                and a.type == "string[]"
                and not a.free_text
                and a.shape in reg.shapes
            ),
            typed=tuple(
                (a.name, a.type)
                for a in attributes
                if a.privacy == "public" and a.type in _TYPE_CHECKS
            ),
            metrics=tuple(
                (m.name, m.unit, " ".join(m.brief.split()))
                for m in sorted(reg.metrics.values(), key=lambda m: m.name)
            ),
            version_shape=reg.shapes.get(VERSION_SHAPE),
        )


# --- processors ----------------------------------------------------------------------------


def _redaction_pseudonyms(view: PolicyView) -> dict[str, Any]:
    return {
        "allow_all_keys": True,  # keys are judged by redaction/allowlist, next
        "blocked_key_patterns": [confmap_literal(_names_pattern(view.pseudonymous))],
        # Values that already are pseudonyms (made by the gateway) pass unchanged.
        "allowed_values": [confmap_literal(PSEUDONYM_RE2)],
        "redact_all_types": True,
        "hash_function": "hmac-sha256",
        "hmac_key": HMAC_KEY_PLACEHOLDER,
        "summary": "silent",
    }


def _redaction_allowlist(view: PolicyView) -> dict[str, Any]:
    return {
        "allow_all_keys": False,
        "allowed_keys": [k for k in view.allowed if k not in view.routes],
        # Kept, but scanned by transform/privacy without the absolute-path pattern.
        "ignored_keys": list(view.routes),
        "blocked_values": [confmap_literal(p) for p in blocked_values()],
        # A pseudonym is hex under a key id, an event id a hex digest or a UUID: nothing
        # to scan, and a digit run in the hex must not be mistaken for a card number.
        "allowed_values": [
            confmap_literal(PSEUDONYM_RE2),
            confmap_literal(f"^(?:{python_redaction.OPAQUE_ID_PATTERN})$"),
        ],
        "redact_all_types": True,
        "summary": "silent",
    }


_TRACE_CONTEXTS: Final = (
    ("resource", "resource"),
    ("scope", "scope"),
    ("span", "span"),
    ("spanevent", "spanevent"),
)
_LOG_CONTEXTS: Final = (("resource", "resource"), ("scope", "scope"), ("log", "log"))


def _format_statements(view: PolicyView, prefix: str) -> list[str]:
    # "$$1" is the regex group ("$1") once the config resolver has unescaped it.
    replacement = ottl_string(f"v{HMAC_KEY_ID_PLACEHOLDER}:$$1")
    out = [
        f"replace_pattern({prefix}.attributes[{ottl_string(key)}], {_pattern(DIGEST_RE2)}, {replacement})"
        for key in view.pseudonymous
    ]
    # A value with line breaks is hashed line by line (a digest per line): not one
    # pseudonym, so it goes.
    out += [
        f"delete_key({prefix}.attributes, {ottl_string(key)}) where"
        f" {prefix}.attributes[{ottl_string(key)}] != nil and"
        f" not IsMatch({prefix}.attributes[{ottl_string(key)}], {_pattern(PSEUDONYM_RE2)})"
        for key in view.pseudonymous
    ]
    if prefix == "log":  # redaction/pseudonyms hashes the keys of a map body too
        for key in view.pseudonymous:
            target = f"log.body[{ottl_string(key)}]"
            out.append(
                f"replace_pattern({target}, {_pattern(DIGEST_RE2)}, {replacement}) where IsMap(log.body)"
            )
            out.append(
                f"delete_key(log.body, {ottl_string(key)}) where IsMap(log.body) and {target} != nil"
                f" and not IsMatch({target}, {_pattern(PSEUDONYM_RE2)})"
            )
    return out


def _transform_pseudonym_format(view: PolicyView) -> dict[str, Any]:
    def groups(contexts: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        return [
            {"context": context, "statements": _format_statements(view, prefix)}
            for context, prefix in contexts
        ]

    return {
        "error_mode": "propagate",
        "trace_statements": groups(_TRACE_CONTEXTS),
        "log_statements": groups(_LOG_CONTEXTS),
    }


def _strip(target: str, *, where: str = "") -> str:
    suffix = f" where {where}" if where else ""
    return f'replace_pattern({target}, {_pattern(STRIPPED_RE2)}, ""){suffix}'


def _strip_map(target: str, *, where: str = "") -> str:
    suffix = f" where {where}" if where else ""
    return f'replace_all_patterns({target}, "value", {_pattern(STRIPPED_RE2)}, ""){suffix}'


def _transform_normalise() -> dict[str, Any]:
    """One pass over every string the secret patterns scan, before they do: the
    Collector cannot NFKC or percent-decode (the patterns take full-width and
    percent-encoded separators instead), but it can drop format characters."""
    resource = {"context": "resource", "statements": [_strip_map("resource.attributes")]}
    scope = {
        "context": "scope",
        "statements": [
            _strip_map("scope.attributes"),
            _strip("scope.name"),
            _strip("scope.version"),
        ],
    }
    span = {
        "context": "span",
        "statements": [
            _strip_map("span.attributes"),
            _strip("span.name"),
            _strip("span.status.message"),
        ],
    }
    spanevent = {
        "context": "spanevent",
        "statements": [_strip_map("spanevent.attributes"), _strip("spanevent.name")],
    }
    log = {
        "context": "log",
        "statements": [
            _strip_map("log.attributes"),
            _strip("log.body", where="IsString(log.body)"),
            _strip_map("log.body", where="IsMap(log.body)"),
            _strip("log.event_name"),
            _strip("log.severity_text"),
        ],
    }
    datapoint = {"context": "datapoint", "statements": [_strip_map("datapoint.attributes")]}
    return {
        "error_mode": "propagate",
        "trace_statements": [resource, scope, span, spanevent],
        "log_statements": [resource, scope, log],
        "metric_statements": [resource, scope, datapoint],
    }


def _mask(target: str, regex: str) -> str:
    return f'replace_pattern({target}, {_pattern(regex)}, "{MASK}")'


def _drop_audit_keys(target: str) -> str:
    return f"delete_matching_keys({target}, {_pattern(REDACTION_AUDIT_KEYS_RE2)})"


def _routes(view: PolicyView, prefix: str) -> list[str]:
    pattern = secrets_pattern(for_routes=True)
    return [_mask(f"{prefix}.attributes[{ottl_string(k)}]", pattern) for k in view.routes]


def _common(context: str, view: PolicyView) -> dict[str, Any]:
    """Statements for the attribute map of ``context`` every signal has."""
    target = f"{context}.attributes"
    return {"context": context, "statements": [_drop_audit_keys(target), *_routes(view, context)]}


def _names(*targets: str) -> list[str]:
    return [_mask(target, secrets_pattern()) for target in targets]


def _values(shape: Shape) -> str:
    """An RE2 regex (not anchored) for one value of ``shape``."""
    if shape.enum is not None:
        return "(?:" + "|".join(re.escape(v) for v in shape.enum) + ")"
    return f"(?:{shape.pattern})"


def shape_mismatch(target: str, shape: Shape) -> str:
    """An OTTL condition true when ``target`` is set and is not a value of ``shape``
    (a value the redaction processor masked no longer matches any shape)."""
    anchored = f"^{_values(shape)}$"
    parts = [f"not IsMatch({target}, {_pattern(anchored)})", f"Len({target}) > {shape.max_length}"]
    parts += [f"IsMatch({target}, {_pattern(deny)})" for deny in shape.deny]
    return f"{target} != nil and ({' or '.join(parts)})"


def array_shape_mismatch(target: str, shape: Shape) -> str:
    """An OTTL condition true when the string[] ``target`` is set and any element is not
    a value of ``shape``. OTTL has no loop over a slice, but reads one as its JSON text
    (``["stop","length"]``), which a regex can check element by element: every element
    a quoted value of the shape, none longer than the limit, no deny pattern anywhere.
    A value JSON escapes (a quote, a control character, ``<``) carries a backslash no
    shape allows, so it fails too: the whole array is dropped."""
    element = f'"{_values(shape)}"'
    anchored = rf"^\[(?:{element}(?:,{element})*)?\]$"
    too_long = f'"[^"]{{{shape.max_length + 1},}}"'
    parts = [
        f"not IsMatch({target}, {_pattern(anchored)})",
        f"IsMatch({target}, {_pattern(too_long)})",
    ]
    parts += [f"IsMatch({target}, {_pattern(deny)})" for deny in shape.deny]
    return f"{target} != nil and ({' or '.join(parts)})"


_TYPE_CHECKS: Final[dict[str, str]] = {
    "int": "IsInt({0})",
    "double": "(IsDouble({0}) or IsInt({0}))",
    "boolean": "IsBool({0})",
}
"""OTTL conditions true when a value has the registry type (a double may come as an int)."""


def type_mismatch(target: str, type_name: str) -> str:
    """An OTTL condition true when ``target`` is set and not of the registry type: a
    string under an int key would otherwise carry any text past the shape checks."""
    return f"{target} != nil and not {_TYPE_CHECKS[type_name].format(target)}"


def _mismatches(view: PolicyView, target: Callable[[str], str]) -> list[tuple[str, str]]:
    """(key, OTTL condition) of every shaped key (strings and string arrays) and every
    key of another scalar type."""
    return [
        *((key, shape_mismatch(target(key), shape)) for key, shape in view.shaped),
        *((key, array_shape_mismatch(target(key), shape)) for key, shape in view.shaped_arrays),
        *((key, type_mismatch(target(key), type_name)) for key, type_name in view.typed),
    ]


def _shapes(view: PolicyView, prefix: str, *, label: bool = False) -> list[str]:
    """Shaped keys of ``prefix``'s attributes: deleted on a mismatch, or as a metric
    label (``label``) replaced by ``other``."""
    out = []
    typed = {key for key, _ in view.typed}
    for key, mismatch in _mismatches(view, lambda k: f"{prefix}[{ottl_string(k)}]"):
        target = f"{prefix}[{ottl_string(key)}]"
        if label and key not in typed:
            action = f'set({target}, "other")'
        else:
            action = f"delete_key({prefix}, {ottl_string(key)})"
        out.append(f"{action} where {mismatch}")
    return out


def _body_shapes(view: PolicyView) -> list[str]:
    return [
        f"delete_key(log.body, {ottl_string(key)}) where IsMap(log.body) and {mismatch}"
        for key, mismatch in _mismatches(view, lambda k: f"log.body[{ottl_string(k)}]")
    ]


def _schema_url(target: str) -> str:
    return f'set({target}, "") where not IsMatch({target}, {_pattern(SCHEMA_URL_RE2)})'


def _scope_version(view: PolicyView) -> list[str]:
    if view.version_shape is None:
        return ['set(scope.version, "")']
    return [f'set(scope.version, "") where {shape_mismatch("scope.version", view.version_shape)}']


def _metric_registry(view: PolicyView) -> list[str]:
    """Unit and description of every registry metric replaced from the registry."""
    out = []
    for name, unit, brief in view.metrics:
        where = f"where metric.name == {ottl_string(name)}"
        out.append(f"set(metric.unit, {confmap_literal(ottl_string(unit))}) {where}")
        out.append(f"set(metric.description, {confmap_literal(ottl_string(brief))}) {where}")
    return out


def _filter_metrics(view: PolicyView) -> dict[str, Any]:
    names = _pattern(_names_pattern(name for name, _, _ in view.metrics))
    return {"error_mode": "propagate", "metric_conditions": [f"not IsMatch(metric.name, {names})"]}


def _transform_privacy(view: PolicyView) -> dict[str, Any]:
    resource = _common("resource", view)
    resource["statements"] += [
        *_shapes(view, "resource.attributes"),
        _schema_url("resource.schema_url"),
    ]
    scope = _common("scope", view)
    scope["statements"] += [
        *_shapes(view, "scope.attributes"),
        *_names("scope.name", "scope.version"),
        *_scope_version(view),
        _schema_url("scope.schema_url"),
    ]
    span = _common("span", view)
    span["statements"] += [
        *_shapes(view, "span.attributes"),
        *_names("span.name", "span.status.message"),
        # Neither the redaction processor nor OTTL can reach a link's attributes;
        # links are dropped rather than passed unchecked.
        "set(span.links, nil)",
        # W3C trace state is vendor free text; nothing downstream needs it.
        'set(span.trace_state, "")',
    ]
    spanevent = _common("spanevent", view)
    spanevent["statements"] += [*_shapes(view, "spanevent.attributes"), *_names("spanevent.name")]
    log = _common("log", view)
    log["statements"] += [
        *_shapes(view, "log.attributes"),
        *_body_shapes(view),
        *_names("log.event_name", "log.severity_text"),
        # A route key in a map body is skipped by the redaction processor too.
        *(
            f"{_mask(f'log.body[{ottl_string(k)}]', secrets_pattern(for_routes=True))}"
            " where IsMap(log.body)"
            for k in view.routes
        ),
    ]

    # Metrics: resource attributes become target_info labels, so no user-level value.
    not_metric_keys = _pattern(_names_pattern(view.pseudonymous, extra=(r"redaction\..*",)))
    metric_resource = {
        "context": "resource",
        "statements": [
            f"delete_matching_keys(resource.attributes, {not_metric_keys})",
            *_routes(view, "resource"),
            *_shapes(view, "resource.attributes", label=True),
            _schema_url("resource.schema_url"),
        ],
    }
    metric_scope = {
        "context": "scope",
        "statements": [
            # Prometheus remote write puts scope attributes on every series
            # (otel_scope_<key>), so they are labels: metric-safe keys only.
            f"keep_keys(scope.attributes, {_key_list(view.metric_safe)})",
            *_routes(view, "scope"),
            *_shapes(view, "scope.attributes", label=True),
            *_names("scope.name", "scope.version"),
            *_scope_version(view),
            _schema_url("scope.schema_url"),
        ],
    }
    metric = {
        "context": "metric",
        "statements": [
            *_names("metric.name", "metric.description"),
            # Only registry metrics get here (filter/registry_metrics): unit and
            # description come from the registry, whatever the sender wrote.
            *_metric_registry(view),
            # Metadata is free-form and the redaction processor does not scan it.
            'delete_matching_keys(metric.metadata, ".*")',
        ],
    }
    datapoint = {
        "context": "datapoint",
        "statements": [
            f"keep_keys(datapoint.attributes, {_key_list(view.metric_safe)})",
            *_routes(view, "datapoint"),
            *_shapes(view, "datapoint.attributes", label=True),
        ],
    }
    exemplar = {
        "context": "exemplar",
        "statements": [
            # The redaction processor does not reach exemplars either.
            f"keep_keys(exemplar.filtered_attributes, {_key_list(view.metric_safe)})",
            f'replace_all_patterns(exemplar.filtered_attributes, "value", {_pattern(secrets_pattern())}, "{MASK}")',
            *_shapes(view, "exemplar.filtered_attributes"),
        ],
    }
    return {
        "error_mode": "propagate",
        "trace_statements": [resource, scope, span, spanevent],
        "log_statements": [resource, scope, log],
        "metric_statements": [metric_resource, metric_scope, metric, datapoint, exemplar],
    }


def collector_privacy_config(reg: Registry) -> dict[str, Any]:
    """The ``processors`` section of the privacy pass, as data."""
    view = PolicyView.of(reg)
    return {
        PSEUDONYMS: _redaction_pseudonyms(view),
        PSEUDONYM_FORMAT: _transform_pseudonym_format(view),
        NORMALISE: _transform_normalise(),
        METRIC_ALLOWLIST: _filter_metrics(view),
        ALLOWLIST: _redaction_allowlist(view),
        PRIVACY: _transform_privacy(view),
    }


_COMMENTS: Final[dict[str, str]] = {
    PSEUDONYMS: "Keyed HMAC-SHA256 of pseudonymous attributes that arrive un-hashed.",
    PSEUDONYM_FORMAT: "Digests written as v<key-id>:<hex>, the gateway's pseudonym shape.",
    NORMALISE: "Format and control characters removed before the secret patterns run.",
    ALLOWLIST: "Fail closed: only registry keys that are not forbidden; secrets masked in every value.",
    PRIVACY: "Names, bodies, links, exemplars, metric labels, value shapes, trace state, schema URLs, units (error_mode: propagate).",
    METRIC_ALLOWLIST: "Only registry metrics go on (to Prometheus and the business leg).",
}

_HEADER: Final = """\
# The Collector's privacy pass: the second, defence-in-depth application of the
# registry's privacy policy, for data that reaches the Collector without the gateway.
#
# GENERATED by `caret-otel generate` from semantic_conventions/registry
# (src/caret_otel/registry/collector_privacy.py). Do not edit; `caret-otel generate --check`
# fails when this file is stale.
#
# Run it together with the pipelines that use it:
#   otelcol-caret --config otel-collector-config.yaml --config collector/privacy-pass.yaml
#
# Needs ${{env:{key}}} (at least 32 bytes; the Collector refuses to start
# without it) and optionally ${{env:{key_id}}} (default "{default_id}"): digests are
# written v<key-id>:<hex>. Give the Python side the same key (id:base64 of the same
# bytes in CARET_OTEL_PSEUDONYM_KEYS) so that `forget` finds what the Collector hashed.
#
# Limits (see docs/operations.md): span links are dropped (no processor can filter
# their attributes); log-body map keys must be registry keys too; points of one metric
# that collide after label removal are not merged; coarse values are generalised by the
# gateway, not here (only their shape is checked); card numbers are matched by issuer
# prefix and length (RE2 cannot check Luhn); http.route is scanned without the
# absolute-path pattern; entity refs are out of OTTL's reach (the gateway checks them);
# string[] values are checked element by element through their JSON text.
"""


class _Dumper(yaml.SafeDumper):
    """No ``&anchors``: every processor reads on its own."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_collector_privacy(reg: Registry) -> str:
    """The text of ``collector/privacy-pass.yaml``."""
    header = _HEADER.format(
        key=_ENV["hmac_key"], key_id=_ENV["hmac_key_id"], default_id=CollectorConfigEnv.hmac_key_id
    )
    out = [header, "processors:"]
    for name, config in collector_privacy_config(reg).items():
        body = yaml.dump(
            {name: config}, Dumper=_Dumper, sort_keys=False, width=1_000_000, allow_unicode=True
        )
        out.append(f"  # {_COMMENTS[name]}")
        out.extend("  " + line for line in body.rstrip("\n").splitlines())
    return "\n".join(out) + "\n"


def default_collector_privacy_path(reg: Registry) -> Path:
    return reg.root.parent / "collector" / "privacy-pass.yaml"
