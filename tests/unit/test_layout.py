"""The repository layout keeps its promises: import path = file path, one namespace over
every distribution, the registry's runtime package as the ground floor, every generated
file marked, every environment variable named once, one exception hierarchy."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import caret_otel
from caret_otel.cli.generate import expected_files
from caret_otel.contracts.checkout import repo_root
from caret_otel.core import environment_variables
from caret_otel.core.errors import CaretOtelError

ROOT = repo_root()
DISTRIBUTIONS = {
    "caret-otel-core": "core",
    "caret-otel-semconv": "semconv",
    "caret-otel-processor-privacy": "processors/privacy",
    "caret-otel-sdk": "sdk",
    "caret-otel-exporter-postgres": "exporters/postgres",
    "caret-otel-gateway": "receivers/gateway",
    "caret-otel": ".",
}
SOURCES = [ROOT / folder / "src" for folder in DISTRIBUTIONS.values()]


def python_files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_every_distribution_is_a_src_layout_under_the_namespace(name: str) -> None:
    folder = ROOT / DISTRIBUTIONS[name]
    assert f'name = "{name}"' in (folder / "pyproject.toml").read_text(encoding="utf-8")
    namespace = folder / "src" / "caret_otel"
    assert namespace.is_dir()
    assert not (namespace / "__init__.py").exists(), "caret_otel is a PEP 420 namespace"


def test_the_namespace_spans_every_distribution_and_nothing_else() -> None:
    assert sorted(Path(p).resolve() for p in caret_otel.__path__) == sorted(
        (source / "caret_otel").resolve() for source in SOURCES
    )


def test_import_works_from_the_repository_root_without_path_tricks() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import caret_otel.sdk, caret_otel.semconv; print('ok')"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_the_semconv_runtime_package_imports_nothing_else_of_the_project() -> None:
    for path in python_files(ROOT / "semconv" / "src"):
        for module in imported_modules(path):
            if module.startswith("caret_otel"):
                assert module.startswith("caret_otel.semconv"), f"{path.name} imports {module}"


def test_lower_floors_never_import_upper_ones() -> None:
    # distribution folder -> the caret_otel packages it may import besides its own
    allowed = {
        "core": ("caret_otel.core", "caret_otel.otlp"),
        "processors/privacy": ("caret_otel.core", "caret_otel.otlp", "caret_otel.semconv",
                               "caret_otel.processors"),
        "sdk": ("caret_otel.core", "caret_otel.otlp", "caret_otel.semconv",
                "caret_otel.processors", "caret_otel.sdk"),
        "exporters/postgres": ("caret_otel.core", "caret_otel.otlp", "caret_otel.semconv",
                               "caret_otel.processors", "caret_otel.exporters"),
    }  # fmt: skip
    for folder, prefixes in allowed.items():
        for path in python_files(ROOT / folder / "src"):
            for module in imported_modules(path):
                if module.startswith("caret_otel"):
                    assert module.startswith(prefixes), f"{folder}: {path.name} imports {module}"


def test_no_path_workaround_is_left() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    words = ("PYTHONSAFE" + "PATH", "editable_mode" + "=strict")
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".png", ".so"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for word in words:
            assert word not in text, f"{name} mentions {word}"


def test_every_generated_file_is_marked_in_gitattributes_and_in_itself() -> None:
    patterns = [
        line.split()[0]
        for line in (ROOT / ".gitattributes").read_text(encoding="utf-8").splitlines()
        if "linguist-generated=true" in line
    ]
    for path in expected_files(ROOT):
        relative = path.relative_to(ROOT).as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":  # no comments in JSON: a key says it
            assert '"x-generated-by"' in text, relative
        else:
            assert re.search("generated by", text[:400], re.I), relative


def test_environment_variable_names_are_never_typed_outside_their_module() -> None:
    names = {v for k, v in vars(environment_variables).items() if k.isupper()}
    own = Path(environment_variables.__file__).resolve()
    for path in python_files(*SOURCES):
        if path.resolve() == own:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} types {node.value!r}")


def _all_modules() -> list[str]:
    found = []
    for info in pkgutil.walk_packages(caret_otel.__path__, "caret_otel."):
        if "._" not in info.name:
            found.append(info.name)
    return found


def test_every_public_exception_derives_from_the_common_base() -> None:
    offenders = []
    for name in _all_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, Exception)
                and value.__module__ == name
                and not attr.startswith("_")
                and not issubclass(value, CaretOtelError)
            ):
                offenders.append(f"{name}.{attr}")
    assert not offenders, offenders
