"""The rules ``caret-otel semconv check`` enforces on the registry.

Each rule returns :class:`Problem` objects that name the registry file and the field,
so a failing check tells the author exactly what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from caret_otel.registry.generate import render_all
from caret_otel.registry.model import (
    ATTRIBUTE_TYPES,
    COARSE_RULES,
    CUSTOM_NAMESPACE,
    INSTRUMENTS,
    NAME_RE,
    PRIVACY_CLASSES,
    Problem,
    Registry,
    Shape,
)

Rule = Callable[[Registry], Iterable[Problem]]


def _all_names(reg: Registry) -> Iterable[tuple[str, str, str]]:
    """(file, field, name) for every name the registry defines."""
    for attr in reg.attributes.values():
        yield attr.file, f"attribute {attr.name}", attr.name
    for event in reg.events.values():
        yield event.file, f"event {event.name or '?'}.name", event.name
    for metric in reg.metrics.values():
        yield metric.file, f"metric {metric.name or '?'}.metric_name", metric.name


def rule_naming(reg: Registry) -> Iterable[Problem]:
    """Lower case, dot-separated namespaces, snake_case inside a component."""
    for file, where, name in _all_names(reg):
        if not NAME_RE.match(name):
            yield Problem(file, where, f"{name!r} is not lower-case dot/snake_case naming")


def rule_namespace(reg: Registry) -> Iterable[Problem]:
    """Custom names only under `caret.*`; any other name must be a pinned upstream name."""
    for attr in reg.attributes.values():
        if attr.upstream and attr.name not in reg.upstream_attributes:
            yield Problem(
                attr.file,
                f"attribute {attr.name}",
                f"not under `{CUSTOM_NAMESPACE}*` and not an upstream attribute of "
                f"semantic conventions v{reg.upstream_version} (upstream_attributes.yaml)",
            )
    for metric in reg.metrics.values():
        if not metric.name.startswith(CUSTOM_NAMESPACE) and metric.name not in reg.upstream_metrics:
            yield Problem(
                metric.file,
                f"metric {metric.name}.metric_name",
                f"not under `{CUSTOM_NAMESPACE}*` and not an upstream metric (upstream_attributes.yaml)",
            )
    for event in reg.events.values():
        if not event.name.startswith(CUSTOM_NAMESPACE):
            yield Problem(
                event.file,
                f"event {event.name}.name",
                f"events must live under `{CUSTOM_NAMESPACE}*`",
            )


def rule_counter_total(reg: Registry) -> Iterable[Problem]:
    for metric in reg.metrics.values():
        if metric.instrument in ("counter", "updowncounter") and metric.name.endswith("total"):
            yield Problem(
                metric.file,
                f"metric {metric.name}.metric_name",
                "counters must not end in `total` (Prometheus adds `_total` itself)",
            )


def rule_metric_shape(reg: Registry) -> Iterable[Problem]:
    for metric in reg.metrics.values():
        where = f"metric {metric.name or '?'}"
        if metric.instrument not in INSTRUMENTS:
            yield Problem(
                metric.file,
                f"{where}.instrument",
                f"missing or unknown instrument {metric.instrument!r}; one of {', '.join(INSTRUMENTS)}",
            )
        if not metric.unit:
            yield Problem(
                metric.file, f"{where}.unit", "every metric needs a unit (UCUM or {annotation})"
            )
        if not metric.brief:
            yield Problem(metric.file, f"{where}.brief", "every metric needs a brief")


def rule_attribute_shape(reg: Registry) -> Iterable[Problem]:
    for attr in reg.attributes.values():
        where = f"attribute {attr.name}"
        if attr.privacy not in PRIVACY_CLASSES:
            yield Problem(
                attr.file,
                f"{where}.annotations.caret.privacy",
                f"missing or unknown privacy class {attr.privacy!r}; one of {', '.join(PRIVACY_CLASSES)}",
            )
        if not attr.brief:
            yield Problem(attr.file, f"{where}.brief", "every attribute needs a brief")
        if attr.type not in ATTRIBUTE_TYPES:
            yield Problem(attr.file, f"{where}.type", f"unknown type {attr.type!r}")
        if attr.privacy == "coarse" and attr.coarse not in COARSE_RULES:
            yield Problem(
                attr.file,
                f"{where}.annotations.caret.coarse",
                f"a coarse attribute needs a rule, one of {', '.join(COARSE_RULES)}",
            )


def rule_metric_cardinality(reg: Registry) -> Iterable[Problem]:
    """Pseudonyms and forbidden content never label a metric."""
    for attr in reg.attributes.values():
        if attr.metric and attr.privacy in ("pseudonymous", "forbidden"):
            yield Problem(
                attr.file,
                f"attribute {attr.name}.annotations.caret.metric",
                f"a {attr.privacy} attribute must not be allowed on metrics (high cardinality / user data)",
            )
    for metric in reg.metrics.values():
        for ref in metric.attributes:
            label = reg.attributes.get(ref)
            if label is not None and not label.metric:
                yield Problem(
                    metric.file,
                    f"metric {metric.name}.attributes",
                    f"{ref} is not allowed on metrics (annotations.caret.metric is false)",
                )


def rule_references(reg: Registry) -> Iterable[Problem]:
    owners: list[tuple[str, str, tuple[str, ...]]] = []
    owners += [(e.file, f"event {e.name}", e.attributes) for e in reg.events.values()]
    owners += [(s.file, f"span {s.id}", s.attributes) for s in reg.spans.values()]
    owners += [(m.file, f"metric {m.name}", m.attributes) for m in reg.metrics.values()]
    for file, where, refs in owners:
        for ref in refs:
            if ref not in reg.attributes:
                yield Problem(
                    file, f"{where}.attributes", f"reference to unknown attribute {ref!r}"
                )
    known: dict[str, set[str]] = {
        "event": set(reg.events),
        "metric": set(reg.metrics),
        "span": {s.name for s in reg.spans.values()},
    }
    for event in reg.events.values():
        for signal in event.signals:
            if signal.name not in known.get(signal.signal, set()):
                yield Problem(
                    event.file,
                    f"event {event.name}.annotations.caret.signals",
                    f"unknown {signal.signal} {signal.name!r}",
                )


# Python `re` syntax that Go's RE2 (the Collector's OTTL) rejects or reads differently.
_NOT_RE2 = (
    (re.compile(r"\(\?<?[=!]"), "lookahead/lookbehind"),
    (re.compile(r"\(\?>"), "atomic groups"),
    (re.compile(r"\(\?P="), "named backreferences"),
    (re.compile(r"\(\?\("), "conditionals"),
    (re.compile(r"\(\?#"), "comments"),
    (re.compile(r"(?<!\\)\\[1-9]"), "backreferences"),
    (re.compile(r"(?<!\\)\\Z"), "\\Z (use $)"),
    (re.compile(r"(?<!\\)[*+?}]\+"), "possessive quantifiers"),
)
_REPEAT_RE = re.compile(r"\{(\d+)(?:,(\d*))?\}")
RE2_MAX_REPEAT = 1000


def re2_problems(pattern: str) -> list[str]:
    """Why ``pattern`` is not an expression both Python (ASCII) and RE2 accept alike."""
    problems = []
    try:
        re.compile(pattern, re.ASCII)
    except re.error as exc:
        problems.append(f"not a valid regular expression: {exc}")
    for construct, what in _NOT_RE2:
        if construct.search(pattern):
            problems.append(f"uses {what}, which RE2 does not support")
    for match in _REPEAT_RE.finditer(pattern):
        bounds = [int(b) for b in match.groups() if b]
        if any(b > RE2_MAX_REPEAT for b in bounds):
            problems.append(f"repeat count above {RE2_MAX_REPEAT} (RE2's limit)")
    return problems


def _shape_expressions(shape: Shape) -> list[tuple[str, str]]:
    out = [("pattern", shape.pattern)] if shape.pattern is not None else []
    return out + [(f"deny[{i}]", d) for i, d in enumerate(shape.deny)]


def rule_value_shapes(reg: Registry) -> Iterable[Problem]:
    """Every public string that is not free text has a shape; shapes are valid RE2 and
    Python alike; every example of a shaped attribute matches its shape."""
    from caret_otel.semconv.policy import ValueShape  # the runtime matcher itself

    for shape in reg.shapes.values():
        for where, expression in _shape_expressions(shape):
            for message in re2_problems(expression):
                yield Problem(shape.file, f"shape {shape.name}.{where}", message)
    for attr in reg.attributes.values():
        where = f"attribute {attr.name}.annotations.caret.shape"
        is_string = attr.type in ("string", "string[]")
        if attr.privacy == "public" and is_string and not attr.free_text and not attr.shape:
            yield Problem(
                attr.file,
                where,
                "every public string attribute that is not free text needs a shape "
                "(a name from value_shapes.yaml, {enum: [...]} or {pattern: '...'})",
            )
        if attr.shape and (attr.free_text or not is_string):
            yield Problem(attr.file, where, "only non-free-text string attributes take a shape")
        own = reg.shapes.get(attr.shape or "")
        if own is None or any(re2_problems(e) for _, e in _shape_expressions(own)):
            continue
        matcher = ValueShape(
            own.name,
            max_length=own.max_length,
            enum=own.enum,
            pattern=own.pattern,
            deny=own.deny,
        )
        for example in attr.examples:
            values = example if isinstance(example, list) else [example]
            for value in values:
                if not matcher.matches(str(value)):
                    yield Problem(
                        attr.file,
                        f"attribute {attr.name}.examples",
                        f"example {value!r} does not match shape {own.name}",
                    )


def rule_loaded(reg: Registry) -> Iterable[Problem]:
    return list(reg.problems)


DIAGNOSTIC_PREFIX = "caret.diagnostic."
"""Log-only events live here: the Collector keeps this prefix off the business leg."""


def rule_client_events(reg: Registry) -> Iterable[Problem]:
    """Every client event type maps to one event; log-only events and only they are
    named under ``caret.diagnostic.*``; not-collected keys are not also attributes' keys
    of the event's own per-event mapping."""
    owner: dict[str, str] = {}
    for event in reg.events.values():
        where = f"event {event.name}.annotations.caret"
        for client in event.client_events:
            if client in owner:
                yield Problem(
                    event.file,
                    f"{where}.client_event",
                    f"{client} is also mapped by {owner[client]}",
                )
            owner[client] = event.name
        if (event.handling == "log") != event.name.startswith(DIAGNOSTIC_PREFIX):
            yield Problem(
                event.file,
                f"{where}.handling",
                f"log-only events, and only they, are named {DIAGNOSTIC_PREFIX}*",
            )
        own = {key for key, _, _ in event.properties}
        for key, reason in event.not_collected:
            if key in own:
                yield Problem(event.file, f"{where}.not_collected.{key}", "also in properties")
            if not reason:
                yield Problem(event.file, f"{where}.not_collected.{key}", "say why")
        for _, name, _ in event.properties:
            if name not in event.attributes:
                yield Problem(
                    event.file, f"{where}.properties", f"{name} is not an attribute of the event"
                )
        if (
            event.client_events
            and event.actions
            and not any(c.endswith("*") for c in event.client_events)
        ):
            yield Problem(event.file, f"{where}.actions", "actions are for a family (`prefix*`)")


RULES: tuple[Rule, ...] = (
    rule_loaded,
    rule_naming,
    rule_namespace,
    rule_counter_total,
    rule_metric_shape,
    rule_attribute_shape,
    rule_metric_cardinality,
    rule_references,
    rule_value_shapes,
    rule_client_events,
)


def stale_files(reg: Registry, docs_path: Path | None = None) -> list[Problem]:
    problems = []
    for path, content in render_all(reg, docs_path).items():
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != content:
            state = "missing" if current is None else "stale"
            problems.append(
                Problem(path.name, "(generated file)", f"{state}; run `caret-otel generate`")
            )
    return problems


def check(reg: Registry, docs_path: Path | None = None) -> list[Problem]:
    problems = [p for rule in RULES for p in rule(reg)]
    # Stale output is only meaningful once the registry itself is valid.
    if not problems:
        problems = stale_files(reg, docs_path)
    return problems
