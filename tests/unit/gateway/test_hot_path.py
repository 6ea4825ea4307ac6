"""The compiled hot path: all of it or none of it, built from the sources it names."""

from __future__ import annotations

import importlib
import logging
import shutil
import subprocess
import sys

import pytest

from caret_otel.receivers.gateway import hot_path


def test_compiled_entirely_or_not_at_all() -> None:
    for module in hot_path.MODULES:
        importlib.import_module(module)
    compiled = hot_path.compiled_modules()
    assert compiled in ([], list(hot_path.MODULES))
    if shutil.which("cc") is not None and not compiled:
        pytest.fail("a C compiler is here but the hot path is not compiled: run `make install`")


def test_start_says_which_hot_path_runs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=hot_path.__name__):
        hot_path.report()
    expected = "compiled (mypyc)" if hot_path.compiled_modules() else "pure Python"
    assert any(expected in record.getMessage() for record in caplog.records)


def test_use_sources_imports_every_module_from_its_py_file() -> None:
    # A fresh interpreter: in this one the modules are imported already (and use_sources
    # refuses then, which the second half checks).
    script = (
        "import importlib, sys\n"
        "from caret_otel.receivers.gateway import hot_path\n"
        "hot_path.use_sources()\n"
        "for module in hot_path.MODULES:\n"
        "    print(importlib.import_module(module).__file__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    files = result.stdout.split()
    assert len(files) == len(hot_path.MODULES)
    assert all(file.endswith(".py") for file in files), files
    importlib.import_module(hot_path.MODULES[0])
    with pytest.raises(RuntimeError, match="after these were imported"):
        hot_path.use_sources()
