"""`caret-otel semconv check` on value shapes: every public, non-free-text string has
one; its expressions are RE2 and Python alike; the attribute's examples match it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from unit.semconv.test_check_rules import attribute, edit_yaml, registry_copy, run_check

from caret_otel.registry.check import re2_problems
from caret_otel.registry.model import load_registry

__all__ = ["registry_copy"]  # the fixture, imported for pytest


def _set_shape(root: Path, shape: object) -> None:
    def change(d: dict[str, object]) -> None:
        annotations = attribute(d, "registry.caret.task", "caret.task.mode")["annotations"]
        assert isinstance(annotations, dict)
        if shape is None:
            annotations["caret"].pop("shape")
        else:
            annotations["caret"]["shape"] = shape

    edit_yaml(root / "registry" / "caret.yaml", change)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (None, "needs a shape"),
        ("no_such_shape", "unknown shape 'no_such_shape'"),
        ({"pattern": "(?=plan)[a-z]+"}, "lookahead/lookbehind"),
        ({"pattern": "(a)\\1"}, "backreferences"),
        ({"pattern": "[a-z"}, "not a valid regular expression"),
        ({"enum": ["plan"]}, "example 'act' does not match shape caret.task.mode"),
        ({"enum": ["plan", "act"], "pattern": "x"}, "exactly one of enum, pattern"),
    ],
)
def test_shape_violations_are_named(registry_copy: Path, shape: object, message: str) -> None:
    _set_shape(registry_copy, shape)
    code, output = run_check(registry_copy)
    assert code != 0
    assert "caret.yaml" in output
    assert message in output, output


def test_named_shapes_are_re2_compatible_and_derived_enums_filled() -> None:
    reg = load_registry()
    for shape in reg.shapes.values():
        for expression in (shape.pattern, *shape.deny):
            if expression is not None:
                assert re2_problems(expression) == [], (shape.name, expression)
    client_types = reg.shapes["event_type"].enum
    assert client_types is not None
    assert "task.created" in client_types
    assert "task.focus_chain_other" in client_types
    assert not any("*" in value for value in client_types)


def test_value_shapes_file_is_plain_data() -> None:
    data = yaml.safe_load((load_registry().root / "value_shapes.yaml").read_text(encoding="utf-8"))
    assert set(data) == {"shapes"}
