"""Finding the caret-otel checkout.

The Collector binary and configs, dashboards, provisioning and rules are repository
files (the Collector, Grafana and Prometheus read them from disk), not package data,
so we locate the checkout: ``$CARET_OTEL_REPO``, or the first folder above this module
(followed through the editable install's links) or above the working directory that
holds ``collector/builder-config.yaml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

_MARKER: Final = Path("collector") / "builder-config.yaml"


def repo_root() -> Path:
    """The caret-otel checkout (the directory holding ``collector/builder-config.yaml``).

    ``$CARET_OTEL_REPO`` wins; otherwise we search upwards from this file (also through
    the editable-install link) and from the working directory.
    """
    override = os.environ.get("CARET_OTEL_REPO")
    if override:
        return Path(override).absolute()
    here = Path(__file__)
    for start in (here.resolve(), here.absolute(), Path.cwd()):
        for candidate in (start, *start.parents):
            if (candidate / _MARKER).is_file():
                return candidate
    raise RuntimeError(
        f"cannot find the caret-otel checkout (no {_MARKER} above {here} or {Path.cwd()}); "
        "set CARET_OTEL_REPO"
    )
