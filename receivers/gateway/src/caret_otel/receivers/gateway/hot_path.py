"""The per-event hot path, compiled with mypyc when it was built: the gateway's, and the
per-record work of the SDK's privacy log processor (``log_records``).

``make install`` compiles :data:`MODULES` (the same ``.py`` sources: nothing is written
twice) into C extensions placed next to their sources, where Python imports them in
preference to the ``.py``. Compiled, the gateway takes about 1.4x the events per
CPU-second (``docs/benchmarks.md``). Without a C compiler the build is skipped and the
pure-Python modules run, with the same results (the test-suite runs either way).

A compiled module older than its source would hide an edit, so :func:`stale` lists
them: the gateway logs a warning at start and the test-suite refuses to run until
``make install`` rebuilt them (``make pure-python`` removes every compiled module).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

log = logging.getLogger(__name__)

MODULES: Final = (
    "caret_otel.otlp.wire",
    "caret_otel.processors.privacy.pseudonyms",
    "caret_otel.processors.privacy.engine",
    "caret_otel.processors.privacy.log_records",
    "caret_otel.processors.privacy.client_events",
    "caret_otel.receivers.gateway.client_batch",
    "caret_otel.receivers.gateway.client_metrics",
    "caret_otel.receivers.gateway.client_ingest",
)
"""The modules every client event runs through, in import order, and ``log_records``
(what the SDK's privacy log processor does for every log record of a Python service)."""

GROUP: Final = "caret_otel_hot_path"
"""mypyc's shared library of the compiled modules is ``<GROUP>__mypyc``."""


_EXTENSION: Final = importlib.machinery.EXTENSION_SUFFIXES[0]


def _extension(module: str) -> Path | None:
    """The compiled extension beside ``module``'s source, which Python imports in
    preference to the ``.py`` (found on disk: a mypyc module's ``__file__`` names the
    shared library's folder, not its own)."""
    package, _, name = module.rpartition(".")
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or ()) if spec is not None else ():
        if (Path(folder) / f"{name}.py").exists():
            extension = Path(folder) / f"{name}{_EXTENSION}"
            return extension if extension.exists() else None
    return None


def compiled_modules() -> list[str]:
    """The modules of :data:`MODULES` that import as compiled extensions."""
    return [module for module in MODULES if _extension(module) is not None]


SOURCE_PACKAGES: Final = (
    "caret_otel.otlp",
    "caret_otel.processors.privacy",
    "caret_otel.receivers.gateway",
    "caret_otel.semconv",
)
"""Packages whose sources the compiled code was built from: mypyc also folds the
constants of imported modules (the generated semantic conventions) into its C code."""


def stale() -> list[str]:
    """Compiled modules built before the last change to a source they depend on (a
    ``.py`` of :data:`SOURCE_PACKAGES`)."""
    compiled = [(m, path) for m in MODULES if (path := _extension(m)) is not None]
    if not compiled:
        return []
    newest = max(
        source.stat().st_mtime
        for package in SOURCE_PACKAGES
        if (spec := importlib.util.find_spec(package)) is not None
        for folder in spec.submodule_search_locations or ()
        for source in Path(folder).glob("*.py")
    )
    return [module for module, path in compiled if path.stat().st_mtime < newest]


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Finds the modules of :data:`MODULES` as their ``.py`` sources only."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES or path is None:
            return None
        loaders = [(importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)]
        for folder in path:
            spec = importlib.machinery.FileFinder(folder, *loaders).find_spec(fullname, target)
            if spec is not None:
                return spec
        return None


def use_sources() -> None:
    """Import the modules of :data:`MODULES` from their ``.py`` sources in this process
    even where compiled extensions sit beside them: what a service that installed the
    distributions as wheels runs (the benchmarks measure both). Call it before any of
    them is imported; it raises ``RuntimeError`` when one already is."""
    loaded = [module for module in MODULES if module in sys.modules]
    if loaded:
        raise RuntimeError(f"use_sources() after these were imported: {', '.join(loaded)}")
    if not any(isinstance(finder, _SourcesFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourcesFirst())


def report() -> None:
    """Log which hot path runs (once, at gateway start)."""
    outdated = stale()
    if outdated:
        log.warning(
            "compiled modules older than their source (an edit is not running): %s; "
            "rebuild them with `make install`, or remove them with `make pure-python`",
            ", ".join(outdated),
        )
    compiled = compiled_modules()
    if len(compiled) == len(MODULES):
        log.info("hot path: compiled (mypyc)")
    elif compiled:
        log.warning("hot path: partly compiled (%s); run `make install`", ", ".join(compiled))
    else:
        log.info("hot path: pure Python (build it with a C compiler: `make install`)")
