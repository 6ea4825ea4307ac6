"""Load the Caret semantic-conventions registry (Weaver syntax) into typed objects.

Loading never stops at the first mistake: every problem found is collected as a
:class:`Problem` naming the file and the field, so ``caret-otel semconv check`` can
report all of them at once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from caret_otel.contracts.checkout import repo_root

PRIVACY_CLASSES = ("public", "pseudonymous", "coarse", "forbidden")
ATTRIBUTE_TYPES = ("string", "int", "double", "boolean", "string[]", "int[]", "double[]")
INSTRUMENTS = ("counter", "updowncounter", "histogram", "gauge")
COARSE_RULES = ("country_code", "continent_code")
HANDLINGS = ("business", "metrics", "log")
"""What the gateway does with a client event: ``business`` = log record stored in
PostgreSQL (+ its metrics); ``metrics`` = only its metrics (no log record); ``log`` = a
log record for Loki only, not stored in PostgreSQL."""
UNIT_SCALES = {"s": 1.0, "ms": 0.001}
"""Units a client property may be sent in, and the factor to the registry's seconds."""
CUSTOM_NAMESPACE = "caret."
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
SHAPES_FILE = "value_shapes.yaml"
DEFAULT_SHAPE_MAX_LENGTH = 128


def default_registry_dir() -> Path:
    """``semantic_conventions/`` of the checkout: the registry's YAML."""
    return repo_root() / "semantic_conventions"


@dataclass(frozen=True)
class Problem:
    """One violation of the registry rules, located by file and field."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


@dataclass(frozen=True)
class Shape:
    """The values a public string attribute may take: an enum, or a regular expression
    the whole value matches (RE2 syntax, ASCII classes), with a length limit and
    expressions that must match nowhere (RE2 has no lookahead)."""

    name: str
    brief: str
    enum: tuple[str, ...] | None
    pattern: str | None
    max_length: int
    deny: tuple[str, ...]
    file: str
    derived: str | None = None
    """``client_events``: the enum is every client event type the registry maps (a
    family's suffix only as one of its listed actions or ``other``), filled in once the
    events are loaded."""

    def policy(self) -> dict[str, Any]:
        """The shape as ``policy.json`` carries it."""
        entry: dict[str, Any] = {"max_length": self.max_length}
        if self.enum is not None:
            entry["enum"] = list(self.enum)
        if self.pattern is not None:
            entry["pattern"] = self.pattern
        if self.deny:
            entry["deny"] = list(self.deny)
        return entry


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str
    brief: str
    examples: tuple[Any, ...]
    stability: str
    requirement_level: str
    privacy: str
    metric: bool
    free_text: bool
    coarse: str | None
    client_properties: tuple[str, ...]
    client_info: str | None
    group_id: str
    purpose: str
    file: str
    shape: str | None = None
    """Name of the value shape (a key of ``Registry.shapes``): a named shape, or the
    attribute's own name for an inline ``{enum: ...}`` / ``{pattern: ...}``."""
    client_scales: tuple[tuple[str, float], ...] = ()
    """Client keys sent in another unit, with the factor to the registry's unit."""

    @property
    def upstream(self) -> bool:
        return not self.name.startswith(CUSTOM_NAMESPACE)


@dataclass(frozen=True)
class Signal:
    """One OTel signal derived from an event (for the client-event mapping table)."""

    signal: str
    name: str
    note: str


@dataclass(frozen=True)
class Event:
    name: str
    brief: str
    client_event: str | None
    business: bool
    feature: str | None
    action: str | None
    signals: tuple[Signal, ...]
    attributes: tuple[str, ...]
    required: tuple[str, ...]
    file: str
    client_events: tuple[str, ...] = ()
    """Every client event_type mapped here (a trailing * matches a family)."""
    handling: str = "business"
    """One of :data:`HANDLINGS`."""
    properties: tuple[tuple[str, str, float], ...] = ()
    """Per-event client keys: (key, attribute, unit factor); they win over global aliases."""
    not_collected: tuple[tuple[str, str], ...] = ()
    """Client keys deliberately not collected for this event, with the reason."""
    actions: tuple[str, ...] = ()
    """The known suffixes of a family (``task.focus_chain_*``); others become ``other``."""
    counted: str = ""
    """How the event is counted (tokens, uses, errors), for the generated documentation."""


@dataclass(frozen=True)
class Span:
    id: str
    name: str
    kind: str
    brief: str
    attributes: tuple[str, ...]
    file: str


@dataclass(frozen=True)
class Metric:
    name: str
    instrument: str
    unit: str
    brief: str
    attributes: tuple[str, ...]
    buckets: tuple[float, ...] | None
    file: str


@dataclass
class Registry:
    root: Path
    manifest: dict[str, Any]
    upstream_version: str
    upstream_attributes: frozenset[str]
    upstream_metrics: frozenset[str]
    attributes: dict[str, Attribute] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)
    metrics: dict[str, Metric] = field(default_factory=dict)
    shapes: dict[str, Shape] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def retention(self) -> dict[str, int]:
        value = self.manifest.get("retention", {})
        return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else {}

    def registry_files(self) -> Iterator[Path]:
        yield from sorted((self.root / "registry").glob("*.yaml"))


def _caret_annotations(node: Mapping[str, Any]) -> dict[str, Any]:
    annotations = node.get("annotations") or {}
    caret = annotations.get("caret") if isinstance(annotations, dict) else None
    return caret if isinstance(caret, dict) else {}


def _str_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _read_yaml(path: Path, problems: list[Problem]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        problems.append(Problem(path.name, "(file)", f"cannot read YAML: {exc}"))
        return {}
    if not isinstance(data, dict):
        problems.append(Problem(path.name, "(file)", "expected a mapping at the top level"))
        return {}
    return data


def load_registry(root: Path | None = None) -> Registry:
    """Read the manifest, the pinned upstream list and every ``registry/*.yaml`` file."""
    root = default_registry_dir() if root is None else root
    problems: list[Problem] = []
    manifest = _read_yaml(root / "registry_manifest.yaml", problems)
    upstream = _read_yaml(root / "upstream_attributes.yaml", problems)
    reg = Registry(
        root=root,
        manifest=manifest,
        upstream_version=str(upstream.get("version", "")),
        upstream_attributes=frozenset(_str_tuple(upstream.get("attributes"))),
        upstream_metrics=frozenset(_str_tuple(upstream.get("metrics"))),
        problems=problems,
    )
    if (root / SHAPES_FILE).exists():
        _load_shapes(reg, _read_yaml(root / SHAPES_FILE, problems))
    groups: list[tuple[str, dict[str, Any]]] = []
    for path in reg.registry_files():
        data = _read_yaml(path, problems)
        for index, group in enumerate(data.get("groups") or []):
            if not isinstance(group, dict) or "id" not in group:
                problems.append(Problem(path.name, f"groups[{index}]", "group without an id"))
                continue
            groups.append((path.name, group))
    # Attributes first, so that spans, events and metrics can resolve their refs.
    for file, group in groups:
        if group.get("type") == "attribute_group":
            _load_attribute_group(reg, file, group)
    for file, group in groups:
        kind = group.get("type")
        if kind == "event":
            _load_event(reg, file, group)
        elif kind == "span":
            _load_span(reg, file, group)
        elif kind == "metric":
            _load_metric(reg, file, group)
        elif kind != "attribute_group":
            problems.append(Problem(file, f"{group['id']}.type", f"unknown group type {kind!r}"))
    _derive_shapes(reg)
    return reg


DERIVED_ENUMS = ("client_events",)


def _derive_shapes(reg: Registry) -> None:
    """Fill the enums of derived shapes from the loaded events."""
    values: set[str] = set()
    for event in reg.events.values():
        values.add(event.name)  # what a service's SDK business event carries
        for client in event.client_events:
            if client.endswith("*"):
                prefix = client[:-1]
                values.update(prefix + action for action in (*event.actions, "other"))
            else:
                values.add(client)
    for name, shape in list(reg.shapes.items()):
        if shape.derived == "client_events" and values:
            enum = tuple(sorted(values))
            reg.shapes[name] = dataclasses.replace(
                shape, enum=enum, max_length=max(len(v) for v in enum)
            )


def _parse_shape(reg: Registry, file: str, where: str, name: str, node: Any) -> Shape | None:
    if not isinstance(node, dict):
        reg.problems.append(Problem(file, where, "a shape is a mapping with enum or pattern"))
        return None
    enum = node.get("enum")
    pattern = node.get("pattern")
    derived: str | None = None
    if isinstance(enum, str):
        if enum not in DERIVED_ENUMS:
            reg.problems.append(
                Problem(file, f"{where}.enum", f"a list, or one of {', '.join(DERIVED_ENUMS)}")
            )
            return None
        derived, enum = enum, [""]
    if (enum is None) == (pattern is None):
        reg.problems.append(Problem(file, where, "a shape has exactly one of enum, pattern"))
        return None
    if enum is not None and (not isinstance(enum, list) or not enum):
        reg.problems.append(Problem(file, f"{where}.enum", "must be a non-empty list"))
        return None
    max_length = node.get("max_length", DEFAULT_SHAPE_MAX_LENGTH)
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        reg.problems.append(Problem(file, f"{where}.max_length", "must be a positive integer"))
        max_length = DEFAULT_SHAPE_MAX_LENGTH
    if enum is not None and "max_length" not in node:
        max_length = max(len(str(v)) for v in enum)
    unknown = set(node) - {"brief", "enum", "pattern", "max_length", "deny"}
    if unknown:
        reg.problems.append(Problem(file, where, f"unknown keys {sorted(unknown)}"))
    return Shape(
        name=name,
        brief=" ".join(str(node.get("brief") or "").split()),
        enum=tuple(str(v) for v in enum) if enum is not None else None,
        pattern=str(pattern) if pattern is not None else None,
        max_length=max_length,
        deny=_str_tuple(node.get("deny")),
        file=file,
        derived=derived,
    )


def _load_shapes(reg: Registry, data: dict[str, Any]) -> None:
    shapes = data.get("shapes") or {}
    if not isinstance(shapes, dict):
        reg.problems.append(Problem(SHAPES_FILE, "shapes", "expected a mapping name -> shape"))
        return
    for name, node in shapes.items():
        shape = _parse_shape(reg, SHAPES_FILE, f"shapes.{name}", str(name), node)
        if shape is not None:
            reg.shapes[shape.name] = shape


def _attribute_shape(reg: Registry, file: str, where: str, name: str, node: Any) -> str | None:
    """The shape name of an attribute's ``shape`` annotation (inline shapes are
    registered under the attribute's own name)."""
    if node is None:
        return None
    if isinstance(node, str):
        if node not in reg.shapes:
            reg.problems.append(
                Problem(file, f"{where}.annotations.caret.shape", f"unknown shape {node!r}")
            )
        return node
    shape = _parse_shape(reg, file, f"{where}.annotations.caret.shape", name, node)
    if shape is None:
        return None
    if name in reg.shapes:
        reg.problems.append(
            Problem(file, f"{where}.annotations.caret.shape", f"{name} is also a named shape")
        )
    reg.shapes[name] = shape
    return name


def _load_attribute_group(reg: Registry, file: str, group: dict[str, Any]) -> None:
    purpose = str(_caret_annotations(group).get("purpose", "")).strip()
    for index, node in enumerate(group.get("attributes") or []):
        where = f"{group['id']}.attributes[{index}]"
        if not isinstance(node, dict) or not node.get("id"):
            reg.problems.append(Problem(file, where, "attribute without an id"))
            continue
        name = str(node["id"])
        caret = _caret_annotations(node)
        coarse = caret.get("coarse")
        client_info = caret.get("client_info")
        keys, scales = _client_keys(reg, file, f"{where}.annotations.caret.client_property", caret)
        attribute = Attribute(
            name=name,
            type=str(node.get("type", "")),
            brief=str(node.get("brief") or "").strip(),
            examples=tuple(node.get("examples") or ()),
            stability=str(node.get("stability", "development")),
            requirement_level=str(node.get("requirement_level", "recommended")),
            privacy=str(caret.get("privacy", "")),
            metric=bool(caret.get("metric", False)),
            free_text=bool(caret.get("free_text", False)),
            coarse=str(coarse) if coarse is not None else None,
            client_properties=keys,
            client_scales=scales,
            client_info=str(client_info) if client_info is not None else None,
            group_id=str(group["id"]),
            purpose=purpose,
            file=file,
            shape=_attribute_shape(reg, file, where, name, caret.get("shape")),
        )
        if name in reg.attributes:
            reg.problems.append(Problem(file, f"{where}.id", f"{name} is declared twice"))
        reg.attributes[name] = attribute


def _client_keys(
    reg: Registry, file: str, where: str, caret: Mapping[str, Any]
) -> tuple[tuple[str, ...], tuple[tuple[str, float], ...]]:
    """Client keys of an attribute: plain strings, or ``{key: K, unit: ms}`` for a key the
    client sends in another unit than the registry's."""
    keys: list[str] = []
    scales: list[tuple[str, float]] = []
    value = caret.get("client_property")
    for entry in [value] if isinstance(value, str | dict) else value or []:
        if isinstance(entry, dict):
            key, unit = str(entry.get("key", "")), str(entry.get("unit", "s"))
            if not key or unit not in UNIT_SCALES:
                reg.problems.append(
                    Problem(
                        file,
                        where,
                        f"expected {{key: <client key>, unit: one of {', '.join(UNIT_SCALES)}}}",
                    )
                )
                continue
            keys.append(key)
            if UNIT_SCALES[unit] != 1.0:
                scales.append((key, UNIT_SCALES[unit]))
        else:
            keys.append(str(entry))
    return tuple(keys), tuple(scales)


def _event_properties(
    reg: Registry, file: str, where: str, value: Any
) -> tuple[tuple[str, str, float], ...]:
    """``properties: {clientKey: attribute | {attribute: A, unit: ms}}`` of an event."""
    result: list[tuple[str, str, float]] = []
    for key, target in (value or {}).items() if isinstance(value, dict) else ():
        if isinstance(target, dict):
            name, unit = str(target.get("attribute", "")), str(target.get("unit", "s"))
        else:
            name, unit = str(target), "s"
        if not name or unit not in UNIT_SCALES:
            reg.problems.append(
                Problem(file, f"{where}.{key}", "expected an attribute or {attribute: A, unit: ms}")
            )
            continue
        result.append((str(key), name, UNIT_SCALES[unit]))
    return tuple(result)


def _refs(
    reg: Registry, file: str, owner: str, nodes: Any
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    names: list[str] = []
    required: list[str] = []
    for index, node in enumerate(nodes or []):
        ref = node.get("ref") if isinstance(node, dict) else None
        if not ref:
            reg.problems.append(
                Problem(file, f"{owner}.attributes[{index}]", "expected {ref: <attribute>}")
            )
            continue
        names.append(str(ref))
        if node.get("requirement_level") == "required":
            required.append(str(ref))
    return tuple(names), tuple(required)


def _load_event(reg: Registry, file: str, group: dict[str, Any]) -> None:
    caret = _caret_annotations(group)
    name = str(group.get("name") or "")
    attributes, required = _refs(reg, file, str(group["id"]), group.get("attributes"))
    signals = tuple(
        Signal(str(s.get("signal", "")), str(s.get("name", "")), str(s.get("note", "")))
        for s in caret.get("signals") or []
        if isinstance(s, dict)
    )
    client_events = _str_tuple(caret.get("client_event"))
    feature = caret.get("feature")
    action = caret.get("action")
    where = f"{group['id']}.annotations.caret"
    handling = str(caret.get("handling") or ("business" if caret.get("business") else "log"))
    if handling not in HANDLINGS:
        reg.problems.append(
            Problem(file, f"{where}.handling", f"one of {', '.join(HANDLINGS)}, not {handling!r}")
        )
    not_collected = caret.get("not_collected") or {}
    if not isinstance(not_collected, dict):
        reg.problems.append(Problem(file, f"{where}.not_collected", "expected {key: reason}"))
        not_collected = {}
    reg.events[name] = Event(
        name=name,
        brief=str(group.get("brief") or "").strip(),
        client_event=client_events[0] if client_events else None,
        business=handling == "business",
        feature=str(feature) if feature else None,
        action=str(action) if action else None,
        signals=signals,
        attributes=attributes,
        required=required,
        file=file,
        client_events=client_events,
        handling=handling,
        properties=_event_properties(reg, file, f"{where}.properties", caret.get("properties")),
        not_collected=tuple((str(k), " ".join(str(v).split())) for k, v in not_collected.items()),
        actions=_str_tuple(caret.get("actions")),
        counted=" ".join(str(caret.get("counted") or "").split()),
    )


def _load_span(reg: Registry, file: str, group: dict[str, Any]) -> None:
    caret = _caret_annotations(group)
    attributes, _ = _refs(reg, file, str(group["id"]), group.get("attributes"))
    reg.spans[str(group["id"])] = Span(
        id=str(group["id"]),
        name=str(caret.get("span_name") or group["id"]),
        kind=str(group.get("span_kind", "internal")),
        brief=" ".join(str(group.get("brief") or "").split()),
        attributes=attributes,
        file=file,
    )


def _load_metric(reg: Registry, file: str, group: dict[str, Any]) -> None:
    caret = _caret_annotations(group)
    attributes, _ = _refs(reg, file, str(group["id"]), group.get("attributes"))
    buckets = caret.get("buckets")
    name = str(group.get("metric_name") or "")
    reg.metrics[name or str(group["id"])] = Metric(
        name=name,
        instrument=str(group.get("instrument") or ""),
        unit=str(group.get("unit") or ""),
        brief=str(group.get("brief") or "").strip(),
        attributes=attributes,
        buckets=tuple(float(b) for b in buckets) if buckets else None,
        file=file,
    )
