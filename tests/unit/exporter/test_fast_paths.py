"""The exporter's compiled fast paths and their pure-Python twins pass the same tests.

The unit tests of this folder run here with the compiled extensions (``make install``
builds them: the machine has a C compiler), and once more in a child pytest with
``CARET_OTEL_EXPORTER_PURE_PYTHON=1``, where :mod:`fast_paths` picks the pure-Python ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from caret_otel.core.environment_variables import CARET_OTEL_EXPORTER_PURE_PYTHON
from caret_otel.exporters.postgres import (
    _attribute_fast_paths_pure,
    _log_records_scan_pure,
    fast_paths,
)

HERE = Path(__file__).parent
PURE = os.environ.get(CARET_OTEL_EXPORTER_PURE_PYTHON) == "1"


def test_the_implementation_in_use_is_the_one_asked_for() -> None:
    if PURE:
        assert not fast_paths.COMPILED
        assert fast_paths.scanner is _log_records_scan_pure
        assert fast_paths.placer is _attribute_fast_paths_pure
    else:  # built by `make install`; a missing extension here is a build problem
        assert fast_paths.COMPILED, "the Cython extensions were not built"
        assert fast_paths.scanner.__file__.endswith(".so")


def test_both_implementations_share_the_placement_modes() -> None:
    from caret_otel.exporters.postgres import _attribute_fast_paths as compiled

    for name in dir(_attribute_fast_paths_pure):
        if name.startswith("FAST_"):
            assert getattr(compiled, name) == getattr(_attribute_fast_paths_pure, name), name


def test_the_unit_tests_pass_with_the_pure_python_fast_paths() -> None:
    if PURE:  # already the child run
        return
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, CARET_OTEL_EXPORTER_PURE_PYTHON: "1"},
        timeout=600,
    )
    summary = result.stdout.strip().splitlines()[-1:] or [result.stderr[-2000:]]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary[0], summary
