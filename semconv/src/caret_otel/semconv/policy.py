"""Typed access to ``policy.json``, the privacy policy generated from the registry.

The Python privacy processor, the gateway's client-event mapping and the Collector's
privacy pass all read this one file, so they can never disagree.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

POLICY_FILE = "policy.json"
OTHER_VALUE = "other"
"""What a metric label whose value does not match its shape becomes."""


class ValueShape:
    """The values one public string attribute may take (``value_shapes.yaml``).

    ``matches`` is the Python side; ``anchored`` is the same test as one RE2
    expression (enum or pattern, anchored) for the Collector's privacy pass, with
    ``max_length`` and ``deny`` checked beside it.
    """

    __slots__ = ("_deny", "_enum", "_regex", "deny", "enum", "max_length", "name", "pattern")

    def __init__(
        self,
        name: str,
        *,
        max_length: int,
        enum: tuple[str, ...] | None = None,
        pattern: str | None = None,
        deny: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.max_length = max_length
        self.enum = enum
        self.pattern = pattern
        self.deny = deny
        self._enum = frozenset(enum) if enum is not None else None
        # ASCII classes: Go's RE2 \d, \w and \s are ASCII-only, so both sides agree.
        self._regex = re.compile(pattern, re.ASCII) if pattern is not None else None
        self._deny = tuple(re.compile(d, re.ASCII) for d in deny)

    def matches(self, value: str) -> bool:
        """Whether ``value`` is a value of this shape."""
        if len(value) > self.max_length:
            return False
        if self._enum is not None:
            if value not in self._enum:
                return False
        elif self._regex is None or self._regex.fullmatch(value) is None:
            return False
        return not any(d.search(value) for d in self._deny)

    @property
    def anchored(self) -> str:
        """The enum or pattern as one anchored regular expression (RE2 and Python)."""
        if self.enum is not None:
            return "^(?:" + "|".join(re.escape(v) for v in self.enum) + ")$"
        return f"^(?:{self.pattern})$"

    def __repr__(self) -> str:
        return f"ValueShape({self.name!r})"


@dataclass(frozen=True)
class AttributeRule:
    """What the privacy processor does with one attribute key."""

    name: str
    privacy: str
    """public | pseudonymous | coarse | forbidden"""
    type: str
    metric: bool
    """May label a metric (low cardinality, never a pseudonym)."""
    free_text: bool = False
    """The value may hold free text: scan and redact it."""
    coarse: str | None = None
    """How to generalise a coarse value: country_code | continent_code."""
    shape: ValueShape | None = field(default=None, compare=False)
    """The values a public string may take; None for free text and non-strings."""


@dataclass(frozen=True)
class Policy:
    version: str
    upstream_version: str
    retention: dict[str, int]
    attributes: dict[str, AttributeRule]
    client_properties: dict[str, str]
    """Key of the client's ``properties`` -> attribute name."""
    client_info: dict[str, str]
    """Field of the client's ``client_info`` -> attribute name."""
    events: frozenset[str]
    metrics: dict[str, dict[str, Any]]
    shapes: dict[str, ValueShape] = field(default_factory=dict)
    """Shape name -> shape (named shapes and attributes' inline ones)."""

    def rule(self, key: str) -> AttributeRule | None:
        return self.attributes.get(key)

    @property
    def metric_attributes(self) -> frozenset[str]:
        return frozenset(name for name, rule in self.attributes.items() if rule.metric)


def _shape(name: str, data: dict[str, Any]) -> ValueShape:
    enum = data.get("enum")
    pattern = data.get("pattern")
    return ValueShape(
        name,
        max_length=int(data["max_length"]),
        enum=tuple(str(v) for v in enum) if enum is not None else None,
        pattern=str(pattern) if pattern is not None else None,
        deny=tuple(str(d) for d in data.get("deny", ())),
    )


def policy_from_dict(data: dict[str, Any]) -> Policy:
    shapes = {str(k): _shape(str(k), v) for k, v in data.get("shapes", {}).items()}
    return Policy(
        version=str(data["version"]),
        upstream_version=str(data["upstream_version"]),
        retention={str(k): int(v) for k, v in data["retention"].items()},
        attributes={
            name: AttributeRule(
                name=name,
                privacy=str(rule["privacy"]),
                type=str(rule["type"]),
                metric=bool(rule["metric"]),
                free_text=bool(rule.get("free_text", False)),
                coarse=rule.get("coarse"),
                shape=shapes[rule["shape"]] if rule.get("shape") else None,
            )
            for name, rule in data["attributes"].items()
        },
        client_properties={str(k): str(v) for k, v in data["client_properties"].items()},
        client_info={str(k): str(v) for k, v in data["client_info"].items()},
        events=frozenset(str(e) for e in data["events"]),
        metrics={str(k): dict(v) for k, v in data["metrics"].items()},
        shapes=shapes,
    )


@cache
def load_policy() -> Policy:
    """The policy shipped with the package (cached: it is immutable at run time)."""
    text = resources.files("caret_otel.semconv").joinpath(POLICY_FILE).read_text(encoding="utf-8")
    return policy_from_dict(json.loads(text))


@cache
def load_schema() -> dict[str, Any]:
    """The transparency schema served at ``GET /telemetry/schema``."""
    text = resources.files("caret_otel.semconv").joinpath("schema.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
