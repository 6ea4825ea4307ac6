"""``prometheus/prometheus.yml``: the local stack's Prometheus config, as a template.

The checked-in file holds ``${NAME}`` placeholders (loopback ``host:port`` of each
scrape target, and the rules folder); :func:`render` fills them so ``caret-otel up`` can
run Prometheus against whatever ports it picked. Defaults (:data:`DEFAULTS`) are the
ports documented in ``docs/dashboards.md``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from caret_otel.core.errors import InputError
from caret_otel.dashboards.paths import repo_root

TEMPLATE_PATH: Final = Path("prometheus") / "prometheus.yml"
PLACEHOLDER: Final = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")

DEFAULTS: Final[dict[str, str]] = {
    "GATEWAY_TARGET": "127.0.0.1:4310",
    "EXPORTER_TARGET": "127.0.0.1:4320",
    "COLLECTOR_TARGET": "127.0.0.1:8888",
    "RULES_DIR": "rules",
}


class TemplateError(InputError):
    """A placeholder without a value, or a value that would break the YAML."""


def template(root: Path | None = None) -> str:
    return ((root or repo_root()) / TEMPLATE_PATH).read_text(encoding="utf-8")


def render(
    *,
    gateway: str = DEFAULTS["GATEWAY_TARGET"],
    exporter: str = DEFAULTS["EXPORTER_TARGET"],
    collector: str = DEFAULTS["COLLECTOR_TARGET"],
    rules_dir: Path | None = None,
    text: str | None = None,
) -> str:
    """The config with every placeholder filled.

    Args:
        gateway, exporter, collector: ``host:port`` of each ``/metrics`` endpoint (the
            Collector's is its ``service.telemetry`` pull port).
        rules_dir: folder of the ``*.yml`` rule files; absolute, because Prometheus
            resolves relative paths against the *rendered* config's folder. Defaults to
            ``<repo>/prometheus/rules``.
        text: the template (default: the checked-in ``prometheus/prometheus.yml``).
    """
    rules = rules_dir or repo_root() / "prometheus" / "rules"
    values = {
        "GATEWAY_TARGET": gateway,
        "EXPORTER_TARGET": exporter,
        "COLLECTOR_TARGET": collector,
        "RULES_DIR": str(Path(rules).absolute()),
    }
    for name, value in values.items():
        if not value or any(c in value for c in "\n\"'#{}"):
            raise TemplateError(
                f"{name}: {value!r} is empty or holds a character YAML would misread"
            )

    def fill(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in values:
            raise TemplateError(f"prometheus.yml uses ${{{name}}}, which render() has no value for")
        return values[name]

    return PLACEHOLDER.sub(fill, text if text is not None else template())
