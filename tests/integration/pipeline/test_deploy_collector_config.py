"""The Collector config as deploy/docker-compose.yaml runs it (container listeners, service
host names, the queue volume) passes our Collector's own validator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from caret_otel.stack import collector as collector_mod

pytestmark = pytest.mark.integration

COMPOSE_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::([?-])([^}]*))?\}")


def _resolve(value: str) -> str:
    """Fill compose's ${VAR:?msg} with a stand-in secret and ${VAR:-default} with its default."""

    def fill(match: re.Match[str]) -> str:
        kind, text = match.group(2), match.group(3)
        if kind == "-":
            return text
        return "compose-stand-in-secret-0123456789abcdef"

    return COMPOSE_VARIABLE.sub(fill, value)


def test_compose_collector_environment_validates(collector_binary: Path, tmp_path: Path) -> None:
    compose = yaml.safe_load(
        (collector_mod.repo_root() / "deploy" / "docker-compose.yaml").read_text()
    )
    env = {
        name: _resolve(str(value))
        for name, value in compose["services"]["collector"]["environment"].items()
    }
    env["CARET_OTEL_COLLECTOR_STORAGE_DIR"] = str(tmp_path / "storage")  # the volume's stand-in
    collector_mod.validate_config(collector_mod.default_config_path(), env, binary=collector_binary)
