"""Load the Caret semantic-conventions registry (Weaver syntax) into typed objects.

Loading never stops at the first mistake: every problem found is collected as a
:class:`Problem` naming the file and the field, so ``caret-otel semconv check`` can
report all of them at once.
"""

from __future__ import annotations

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
CUSTOM_NAMESPACE = "caret."
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


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
    return reg


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
            client_properties=_str_tuple(caret.get("client_property")),
            client_info=str(client_info) if client_info is not None else None,
            group_id=str(group["id"]),
            purpose=purpose,
            file=file,
        )
        if name in reg.attributes:
            reg.problems.append(Problem(file, f"{where}.id", f"{name} is declared twice"))
        reg.attributes[name] = attribute


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
    client_event = caret.get("client_event")
    feature = caret.get("feature")
    action = caret.get("action")
    reg.events[name] = Event(
        name=name,
        brief=str(group.get("brief") or "").strip(),
        client_event=str(client_event) if client_event else None,
        business=bool(caret.get("business", False)),
        feature=str(feature) if feature else None,
        action=str(action) if action else None,
        signals=signals,
        attributes=attributes,
        required=required,
        file=file,
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
