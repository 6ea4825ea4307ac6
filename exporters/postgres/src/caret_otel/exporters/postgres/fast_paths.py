"""The exporter's two hot paths, compiled when they could be built.

``_log_records_scan`` and ``_attribute_fast_paths`` are Cython extensions, built when the
distribution is installed with a C compiler and Python's headers at hand. Without them
the pure-Python twins (``*_pure.py``: same results, same errors, slower) are used, and
the choice is logged once at import. ``tests/unit/exporter`` runs the same cases on both.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Final

from . import _attribute_fast_paths_pure, _log_records_scan_pure

log = logging.getLogger(__name__)


def _compiled() -> tuple[ModuleType, ModuleType] | None:
    try:
        from . import _attribute_fast_paths, _log_records_scan
    except ImportError:
        return None
    return _log_records_scan, _attribute_fast_paths


_found = _compiled()
COMPILED: Final = _found is not None
"""True when the Cython extensions are in use."""
scanner, placer = _found or (_log_records_scan_pure, _attribute_fast_paths_pure)
if not COMPILED:
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
