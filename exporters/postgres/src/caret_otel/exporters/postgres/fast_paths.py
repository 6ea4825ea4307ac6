"""The exporter's two hot paths, compiled when they could be built.

``_log_records_scan`` and ``_attribute_fast_paths`` are Cython extensions, built when the
distribution is installed with a C compiler and Python's headers at hand. Without them
the pure-Python twins (``*_pure.py``: same results, same errors, slower) are used, and
the choice is logged once at import. ``CARET_OTEL_EXPORTER_PURE_PYTHON=1`` forces the
pure-Python ones (to compare, or to rule the extensions out while debugging); the test
suite runs the exporter's unit tests once each way.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Final

from caret_otel.core.environment_variables import CARET_OTEL_EXPORTER_PURE_PYTHON

from . import _attribute_fast_paths_pure, _log_records_scan_pure

log = logging.getLogger(__name__)


def _compiled() -> tuple[ModuleType, ModuleType] | None:
    if os.environ.get(CARET_OTEL_EXPORTER_PURE_PYTHON) == "1":
        log.info(
            "caret-otel exporter: pure-Python fast paths, as %s asks",
            CARET_OTEL_EXPORTER_PURE_PYTHON,
        )
        return None
    try:
        from . import _attribute_fast_paths, _log_records_scan
    except ImportError:
        return None
    return _log_records_scan, _attribute_fast_paths


_found = _compiled()
COMPILED: Final = _found is not None
"""True when the Cython extensions are in use."""
scanner, placer = _found or (_log_records_scan_pure, _attribute_fast_paths_pure)
if not COMPILED and os.environ.get(CARET_OTEL_EXPORTER_PURE_PYTHON) != "1":
    log.warning(
        "caret-otel exporter: compiled fast paths not built (no C compiler at install "
        "time); using the pure-Python ones, which store rows more slowly. Reinstall with "
        "gcc and python3.11-dev to build them."
    )

scan_log_records = scanner.scan_log_records
place_fast = placer.place_fast
FAST_TEXT: Final[int] = placer.FAST_TEXT
FAST_EXTRA_TEXT: Final[int] = placer.FAST_EXTRA_TEXT
FAST_CHECKED: Final[int] = placer.FAST_CHECKED
FAST_INT: Final[int] = placer.FAST_INT
FAST_DOUBLE: Final[int] = placer.FAST_DOUBLE
FAST_EXTRA_DOUBLE: Final[int] = placer.FAST_EXTRA_DOUBLE
FAST_LATENCY: Final[int] = placer.FAST_LATENCY
