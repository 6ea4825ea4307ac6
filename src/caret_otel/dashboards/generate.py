"""Render every generated file (dashboards JSON, Prometheus rules, their docs) and keep
them fresh.

``render_all()`` is pure: repository-relative path -> text. ``write_all()`` writes what
changed; ``stale_files()`` lists what differs from the checked-in copies, which is what
``caret-otel dashboards check`` and the freshness test fail on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from caret_otel.dashboards import behaviour as behaviour_board
from caret_otel.dashboards import (
    business,
    docs,
    llm_api,
    pipeline_health,
    product_usage,
    rules,
    slo,
)
from caret_otel.dashboards import experiments as experiments_board
from caret_otel.dashboards.board import to_json
from caret_otel.stack import alertmanager

GENERATED_KEY: Final = "x-generated-by"
"""JSON has no comments: generated dashboards carry this key (Grafana keeps unknown keys)."""
GENERATED_BY: Final = "caret-otel generate (src/caret_otel/dashboards)"
DASHBOARD_DIR: Final = Path("grafana") / "dashboards"
RULES_DIR: Final = Path("prometheus") / "rules"
RECORDING_RULES: Final = RULES_DIR / "caret-recording.yml"
ALERT_RULES: Final = RULES_DIR / "caret-alerts.yml"
SLO_RULES: Final = RULES_DIR / "caret-slo.yml"
ALERTMANAGER_CONFIG: Final = alertmanager.CONFIG_PATH
DASHBOARDS_DOC: Final = Path("docs") / "dashboards.md"
ALERTS_DOC: Final = Path("docs") / "alerts.md"

DASHBOARDS: Final[dict[str, Callable[[], dict[str, Any]]]] = {
    llm_api.UID: llm_api.build,
    product_usage.UID: product_usage.build,
    business.UID: business.build,
    pipeline_health.UID: pipeline_health.build,
    slo.UID: slo.build,
    behaviour_board.UID: behaviour_board.build,
    experiments_board.UID: experiments_board.build,
}


def dashboard_path(uid: str) -> Path:
    return DASHBOARD_DIR / f"{uid}.json"


def build_dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON model."""
    return {uid: build() for uid, build in DASHBOARDS.items()}


def render_all() -> dict[Path, str]:
    """Repository-relative path -> file content, for every generated file."""
    models = build_dashboards()
    files = {
        dashboard_path(uid): to_json({**model, GENERATED_KEY: GENERATED_BY})
        for uid, model in models.items()
    }
    files[RECORDING_RULES] = rules.recording_file()
    files[ALERT_RULES] = rules.alerts_file()
    files[SLO_RULES] = rules.slo_file()
    files[ALERTMANAGER_CONFIG] = alertmanager.checked_in_config()
    files[DASHBOARDS_DOC] = docs.dashboards_doc(models)
    files[ALERTS_DOC] = docs.alerts_doc(rules.alerts())
    return files


def stale_files(root: Path) -> list[Path]:
    """Generated files under ``root`` that are missing or differ from a fresh render."""
    stale = []
    for relative, text in render_all().items():
        path = root / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(relative)
    return stale


def write_all(root: Path) -> list[Path]:
    """Write every generated file that changed; return those (repository-relative)."""
    written = []
    for relative, text in render_all().items():
        path = root / relative
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(relative)
    return written
