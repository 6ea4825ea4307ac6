"""The compiled hot path: all of it or none of it, built from the sources it names."""

from __future__ import annotations

import importlib
import logging
import shutil

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
