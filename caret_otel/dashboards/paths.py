"""Where the checked-in files this package generates and reads live.

Dashboards, provisioning and rules are repository files (Grafana and Prometheus read
them from disk), not package data, so we locate the checkout: ``$CARET_OTEL_REPO``, or
the first folder above this module (followed through the editable install's links) or
above the working directory that holds ``grafana/provisioning``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

_MARKER: Final = Path("grafana") / "provisioning"


def repo_root() -> Path:
    override = os.environ.get("CARET_OTEL_REPO")
    if override:
        return Path(override).absolute()
    here = Path(__file__)
    for start in (here.resolve(), here.absolute(), Path.cwd()):
        for candidate in (start, *start.parents):
            if (candidate / _MARKER).is_dir():
                return candidate
    raise RuntimeError(
        f"cannot find the caret-otel checkout (no {_MARKER} above {here} or {Path.cwd()}); "
        "set CARET_OTEL_REPO"
    )
