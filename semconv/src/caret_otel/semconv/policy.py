"""Typed access to ``policy.json``, the privacy policy generated from the registry.

The Python privacy processor, the gateway's client-event mapping and the Collector's
privacy pass all read this one file, so they can never disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

POLICY_FILE = "policy.json"


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

    def rule(self, key: str) -> AttributeRule | None:
        return self.attributes.get(key)

    @property
    def metric_attributes(self) -> frozenset[str]:
        return frozenset(name for name, rule in self.attributes.items() if rule.metric)


def policy_from_dict(data: dict[str, Any]) -> Policy:
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
            )
            for name, rule in data["attributes"].items()
        },
        client_properties={str(k): str(v) for k, v in data["client_properties"].items()},
        client_info={str(k): str(v) for k, v in data["client_info"].items()},
        events=frozenset(str(e) for e in data["events"]),
        metrics={str(k): dict(v) for k, v in data["metrics"].items()},
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
