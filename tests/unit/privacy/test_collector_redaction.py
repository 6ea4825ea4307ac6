"""The Collector's side of redaction, as generated: the secret patterns are the RE2 forms
of the Python detectors, format and control characters go before they run, and string[]
values are checked element by element (the real Collector runs all of this in
tests/integration/privacy/)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from caret_otel.processors.privacy import redaction
from caret_otel.registry import collector_privacy as cp
from caret_otel.registry.model import load_registry
from caret_otel.semconv import attributes as attrs


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return cp.collector_privacy_config(load_registry())


def _literals(condition: str) -> list[str]:
    """The regexes of ``IsMatch(target, "...")`` in an OTTL condition, unescaped."""
    return [
        json.loads(literal.replace("$$", "$"))
        for literal in re.findall(r'IsMatch\([^,]+, ("(?:[^"\\]|\\.)*")\)', condition)
    ]


def test_secret_patterns_are_the_detectors_in_their_order() -> None:
    assert [p.regex for p in cp.SECRET_PATTERNS] == [d.re2 for d in redaction.DETECTORS]
    assert [p.kind for p in cp.SECRET_PATTERNS] == [d.kind for d in redaction.DETECTORS]
    routes = [p.matches_routes for p in cp.SECRET_PATTERNS]
    assert routes == [d.matches_routes for d in redaction.DETECTORS]


def test_format_and_control_characters_go_before_the_patterns_run(
    config: dict[str, Any],
) -> None:
    for processors in cp.INGRESS_PROCESSORS.values():
        assert processors.index(cp.NORMALISE) < processors.index(cp.ALLOWLIST)
    assert redaction.CONTROL_RE.pattern[1:-1] in cp.STRIPPED_RE2
    assert cp.STRIPPED_RE2.startswith("[\\p{Cf}")
    normalise = config[cp.NORMALISE]
    assert normalise["error_mode"] == "propagate"
    targets = {
        statement.split("(", 1)[1].split(",", 1)[0]
        for key in ("trace_statements", "log_statements", "metric_statements")
        for group in normalise[key]
        for statement in group["statements"]
    }
    assert targets == {
        "resource.attributes",
        "scope.attributes",
        "scope.name",
        "scope.version",
        "span.attributes",
        "span.name",
        "span.status.message",
        "spanevent.attributes",
        "spanevent.name",
        "log.attributes",
        "log.body",
        "log.event_name",
        "log.severity_text",
        "datapoint.attributes",
    }


def test_string_arrays_are_checked_element_by_element() -> None:
    """OTTL reads a list as its compact JSON text; the generated regexes judge every
    element (here in Python, which reads these RE2 patterns alike)."""
    view = cp.PolicyView.of(load_registry())
    shapes = dict(view.shaped_arrays)
    assert set(shapes) == {attrs.GEN_AI_RESPONSE_FINISH_REASONS}
    shape = shapes[attrs.GEN_AI_RESPONSE_FINISH_REASONS]
    condition = cp.array_shape_mismatch("x", shape)
    anchored, too_long = _literals(condition)

    def off(values: Any) -> bool:
        text = json.dumps(values, separators=(",", ":"))
        return not re.search(anchored, text) or bool(re.search(too_long, text))

    assert not off(["stop"])
    assert not off(["stop", "length", "tool_calls"])
    assert not off([])
    assert off(["stop", "Jane Doe"])
    assert off(["stop", "x" * (shape.max_length + 1)])
    assert off(['a","b'])
    assert off(["/home/alice"])
    assert off("stop")


def test_numbers_booleans_and_coarse_values_are_checked() -> None:
    view = cp.PolicyView.of(load_registry())
    typed = dict(view.typed)
    assert typed[attrs.HTTP_RESPONSE_STATUS_CODE] == "int"
    assert cp.type_mismatch("x", "int") == "x != nil and not IsInt(x)"
    shaped = dict(view.shaped)
    assert shaped[attrs.GEO_COUNTRY_ISO_CODE].name == cp.COARSE_SHAPES["country_code"]
    assert shaped[attrs.GEO_CONTINENT_CODE].name == cp.COARSE_SHAPES["continent_code"]
