"""`caret-otel semconv check`: passes on the repo and fails, naming file and field, on
each kind of violation."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from caret_otel.cli.semconv import semconv
from caret_otel.registry.model import default_registry_dir

Mutator = Callable[[Path], None]


@pytest.fixture
def registry_copy(tmp_path: Path) -> Path:
    """A copy of the registry (with its generated files) and its docs, in a temp folder."""
    root = tmp_path / "semantic_conventions"
    shutil.copytree(default_registry_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(default_registry_dir().parent / "docs" / "semantic-conventions.md", docs)
    shutil.copytree(default_registry_dir().parent / "collector", tmp_path / "collector")
    package = Path("semconv", "src", "caret_otel", "semconv")
    shutil.copytree(
        default_registry_dir().parent / package,
        tmp_path / package,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return root


def run_check(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(semconv, ["check", "--registry", str(root)])
    return result.exit_code, result.output


def edit_yaml(path: Path, change: Callable[[dict[str, object]], None]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def group(data: dict[str, object], group_id: str) -> dict[str, object]:
    groups = data["groups"]
    assert isinstance(groups, list)
    found = [g for g in groups if g["id"] == group_id]
    assert found, group_id
    result: dict[str, object] = found[0]
    return result


def attribute(data: dict[str, object], group_id: str, name: str) -> dict[str, object]:
    attrs = group(data, group_id)["attributes"]
    assert isinstance(attrs, list)
    found: dict[str, object] = next(a for a in attrs if a["id"] == name)
    return found


def test_repository_registry_passes() -> None:
    code, output = run_check(default_registry_dir())
    assert code == 0, output
    assert "generated files are fresh" in output


def test_copy_passes(registry_copy: Path) -> None:
    code, output = run_check(registry_copy)
    assert code == 0, output


def _rename_attr(name: str) -> Mutator:
    def mutate(root: Path) -> None:
        edit_yaml(
            root / "registry" / "caret.yaml",
            lambda d: attribute(d, "registry.caret.task", "caret.task.mode").update(id=name),
        )

    return mutate


def generated(root: Path, name: str) -> Path:
    """A generated file of the runtime package, beside the registry copy ``root``."""
    return root.parent / "semconv" / "src" / "caret_otel" / "semconv" / name


def _stale(root: Path) -> None:
    path = generated(root, "attributes.py")
    path.write_text(path.read_text() + "\nEXTRA = 1\n")


def _counter_total(root: Path) -> None:
    edit_yaml(
        root / "registry" / "metrics.yaml",
        lambda d: group(d, "metric.caret.signups").update(metric_name="caret.signups.total"),
    )


def _metric_without_unit(root: Path) -> None:
    edit_yaml(
        root / "registry" / "metrics.yaml", lambda d: group(d, "metric.caret.signups").pop("unit")
    )


def _metric_without_instrument(root: Path) -> None:
    edit_yaml(
        root / "registry" / "metrics.yaml",
        lambda d: group(d, "metric.caret.signups").pop("instrument"),
    )


def _attribute_without_privacy(root: Path) -> None:
    edit_yaml(
        root / "registry" / "caret.yaml",
        lambda d: attribute(d, "registry.caret.task", "caret.task.mode").pop("annotations"),
    )


def _attribute_without_brief(root: Path) -> None:
    edit_yaml(
        root / "registry" / "caret.yaml",
        lambda d: attribute(d, "registry.caret.task", "caret.task.mode").pop("brief"),
    )


def _pseudonym_on_metrics(root: Path) -> None:
    def change(d: dict[str, object]) -> None:
        attr = attribute(d, "registry.caret.task", "caret.task.id")
        attr["annotations"] = {"caret": {"privacy": "pseudonymous", "metric": True}}

    edit_yaml(root / "registry" / "caret.yaml", change)


def _metric_uses_non_metric_attribute(root: Path) -> None:
    def change(d: dict[str, object]) -> None:
        attrs = group(d, "metric.caret.signups")["attributes"]
        assert isinstance(attrs, list)
        attrs.append({"ref": "enduser.pseudo.id"})

    edit_yaml(root / "registry" / "metrics.yaml", change)


def _unknown_reference(root: Path) -> None:
    def change(d: dict[str, object]) -> None:
        attrs = group(d, "metric.caret.signups")["attributes"]
        assert isinstance(attrs, list)
        attrs.append({"ref": "caret.does_not_exist"})

    edit_yaml(root / "registry" / "metrics.yaml", change)


@pytest.mark.parametrize(
    ("mutate", "file", "field", "message"),
    [
        pytest.param(
            _stale, "attributes.py", "(generated file)", "stale", id="stale-generated-file"
        ),
        pytest.param(
            _rename_attr("app.task.mode"),
            "caret.yaml",
            "attribute app.task.mode",
            "not an upstream attribute",
            id="name-outside-caret-namespace",
        ),
        pytest.param(
            _rename_attr("otel.task_mode"),
            "caret.yaml",
            "attribute otel.task_mode",
            "not an upstream attribute",
            id="reserved-otel-namespace",
        ),
        pytest.param(
            _rename_attr("caret.Task.Mode"),
            "caret.yaml",
            "attribute caret.Task.Mode",
            "lower-case",
            id="naming-case",
        ),
        pytest.param(
            _rename_attr("caret.task-mode"),
            "caret.yaml",
            "attribute caret.task-mode",
            "lower-case",
            id="naming-dash",
        ),
        pytest.param(
            _counter_total,
            "metrics.yaml",
            "metric caret.signups.total.metric_name",
            "must not end in `total`",
            id="counter-total",
        ),
        pytest.param(
            _metric_without_unit,
            "metrics.yaml",
            "metric caret.signups.unit",
            "needs a unit",
            id="metric-without-unit",
        ),
        pytest.param(
            _metric_without_instrument,
            "metrics.yaml",
            "metric caret.signups.instrument",
            "unknown instrument",
            id="metric-without-instrument",
        ),
        pytest.param(
            _attribute_without_privacy,
            "caret.yaml",
            "attribute caret.task.mode.annotations.caret.privacy",
            "privacy class",
            id="attribute-without-privacy-class",
        ),
        pytest.param(
            _attribute_without_brief,
            "caret.yaml",
            "attribute caret.task.mode.brief",
            "needs a brief",
            id="attribute-without-brief",
        ),
        pytest.param(
            _pseudonym_on_metrics,
            "caret.yaml",
            "attribute caret.task.id.annotations.caret.metric",
            "must not be allowed on metrics",
            id="pseudonymous-allowed-on-metrics",
        ),
        pytest.param(
            _metric_uses_non_metric_attribute,
            "metrics.yaml",
            "metric caret.signups.attributes",
            "enduser.pseudo.id is not allowed on metrics",
            id="high-cardinality-metric-label",
        ),
        pytest.param(
            _unknown_reference,
            "metrics.yaml",
            "metric caret.signups.attributes",
            "unknown attribute 'caret.does_not_exist'",
            id="unknown-reference",
        ),
    ],
)
def test_each_violation_fails_naming_file_and_field(
    registry_copy: Path, mutate: Mutator, file: str, field: str, message: str
) -> None:
    mutate(registry_copy)
    code, output = run_check(registry_copy)
    assert code == 1, output
    expected = f"error: {file}: {field}: "
    lines = [line for line in output.splitlines() if line.startswith(expected)]
    assert lines, f"no line starting with {expected!r} in:\n{output}"
    assert any(message in line for line in lines), output


def test_generate_refuses_an_invalid_registry(registry_copy: Path) -> None:
    _counter_total(registry_copy)
    before = generated(registry_copy, "metrics.py").read_text()
    result = CliRunner().invoke(semconv, ["generate", "--registry", str(registry_copy)])
    assert result.exit_code == 1
    assert "must not end in `total`" in result.output
    assert generated(registry_copy, "metrics.py").read_text() == before


def test_generate_repairs_stale_files(registry_copy: Path) -> None:
    _stale(registry_copy)
    result = CliRunner().invoke(semconv, ["generate", "--registry", str(registry_copy)])
    assert result.exit_code == 0, result.output
    assert "attributes.py" in result.output
    assert run_check(registry_copy)[0] == 0
