"""Finding the caret-otel checkout.

The Collector binary and configs, the registry YAML, dashboards, provisioning and rules
are repository files (the Collector, Grafana and Prometheus read them from disk), not
package data, so we locate the checkout: ``$CARET_OTEL_REPO``, or the first folder above
this module or above the working directory that holds ``collector/builder-config.yaml``.
The root distribution is installed editable from the checkout (``make install``), so
this module's own path leads there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from caret_otel.core.environment_variables import CARET_OTEL_REPO
from caret_otel.core.errors import ConfigurationError

_MARKER: Final = Path("collector") / "builder-config.yaml"


def repo_root() -> Path:
    """The caret-otel checkout (the directory holding ``collector/builder-config.yaml``).

    ``$CARET_OTEL_REPO`` wins; otherwise we search upwards from this file and from the
    working directory.
    """
    override = os.environ.get(CARET_OTEL_REPO)
    if override:
        return Path(override).absolute()
    here = Path(__file__).absolute()
    for start in (here, Path.cwd()):
        for candidate in (start, *start.parents):
            if (candidate / _MARKER).is_file():
                return candidate
    raise ConfigurationError(
        f"cannot find the caret-otel checkout (no {_MARKER} above {here} or {Path.cwd()}); "
        f"set {CARET_OTEL_REPO}"
    )
