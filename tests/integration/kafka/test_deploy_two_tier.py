"""deploy/docker-compose.kafka.yaml (the two-tier topology) is a valid Compose file whose
Collectors run our two tier configs with the variables those configs read.

No container engine runs here, so the files are checked against the Compose
Specification's JSON schema: ``tests/data/compose_spec.json``, vendored from the
``docker-compose`` 1.29.2 wheel on PyPI (``compose/config/compose_spec.json``, Apache-2.0).
That schema predates the top-level ``name:`` key (added to the specification in 2022),
so ``name`` is checked here as a string and removed before validating the base file.
The Collector environments are then validated by our Collector's own ``validate``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from caret_otel.contracts.collector import KafkaTierEnv, edge_config_path, processing_config_path
from caret_otel.stack import CollectorConfigEnv
from caret_otel.stack import collector as collector_mod

pytestmark = pytest.mark.integration

DEPLOY = collector_mod.repo_root() / "deploy"
SCHEMA = Path(__file__).parents[2] / "data" / "compose_spec.json"
COMPOSE_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::([?-])([^}]*))?\}")


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / name).read_text())
    return loaded


def _validator() -> Any:
    schema = json.loads(SCHEMA.read_text())
    # The file names draft 2019-09 (with a URL jsonschema does not know by that spelling).
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


@pytest.mark.parametrize("name", ["docker-compose.yaml", "docker-compose.kafka.yaml"])
def test_compose_files_follow_the_compose_specification(name: str) -> None:
    document = _load(name)
    project_name = document.pop("name", "")
    assert isinstance(project_name, str)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator().iter_errors(document)
    ]
    assert not errors, errors


def test_the_schema_rejects_a_broken_file() -> None:
    """The check can fail: an unknown service key and a wrong type are refused."""
    broken = {"services": {"kafka": {"image": 4, "replica": 2}}}
    assert len(list(_validator().iter_errors(broken))) >= 2


def _resolve(value: str) -> str:
    def fill(match: re.Match[str]) -> str:
        if match.group(2) == "-":
            return match.group(3)
        return "compose-stand-in-secret-0123456789abcdef"

    return COMPOSE_VARIABLE.sub(fill, value)


def _mounts(service: dict[str, Any], path: Path) -> bool:
    return any(
        str(volume).startswith(f"../collector/{path.name}:") for volume in service["volumes"]
    )


def test_two_tier_services_run_the_tier_configs(collector_binary: Path, tmp_path: Path) -> None:
    base, kafka = _load("docker-compose.yaml"), _load("docker-compose.kafka.yaml")
    edge = kafka["services"]["collector"]
    processing = kafka["services"]["processing"]
    assert _mounts(edge, edge_config_path())
    assert _mounts(processing, processing_config_path())
    assert edge["command"][0].endswith("/edge-config.yaml")
    assert processing["command"][0].endswith("/processing-config.yaml")
    assert processing["deploy"]["replicas"] >= 2
    known = set(CollectorConfigEnv.ENV_NAMES.values()) | set(KafkaTierEnv.ENV_NAMES.values())
    # The edge is the base file's collector with the Kafka variables merged in.
    edge_env = {**base["services"]["collector"]["environment"], **edge["environment"]}
    tiers = ((edge_config_path(), edge_env), (processing_config_path(), processing["environment"]))
    for config, env in tiers:
        assert set(env) <= known, sorted(set(env) - known)
        resolved = {name: _resolve(str(value)) for name, value in env.items()}
        resolved[CollectorConfigEnv.ENV_NAMES["storage_dir"]] = str(tmp_path / "storage")
        collector_mod.validate_config(config, resolved, binary=collector_binary)
