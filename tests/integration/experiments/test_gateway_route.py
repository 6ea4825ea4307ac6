"""GET /telemetry/experiments through real HTTP: client and service tokens read the active
definitions; the admin token and no token do not; a broken file answers 503."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from integration.gateway.conftest import gateway_factory, pseudonym_env  # noqa: F401 (fixtures)
from integration.gateway.gateway_support import ADMIN_AUTH, AUTH, SERVICE_AUTH, GatewayFactory

from caret_otel.cli.experiments import experiments as experiments_cli
from caret_otel.core.environment_variables import CARET_OTEL_EXPERIMENTS_FILE
from caret_otel.experiments import definitions
from caret_otel.sdk import experiments as sdk_experiments

pytestmark = pytest.mark.integration


def test_clients_and_services_get_the_active_definitions(
    gateway_factory: GatewayFactory,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the repository's definition without its end date (planned users instead, for alpha
    # spending): active whenever the test runs
    folder = tmp_path / "definitions"
    folder.mkdir()
    shutil.copy(definitions.default_directory() / definitions.SCHEMA_FILE, folder)
    text = (definitions.default_directory() / "plan-mode-hint.yaml").read_text()
    open_ended = text.replace('end: "2027-01-31"\n', "planned_users: 4000\n")
    (folder / "plan-mode-hint.yaml").write_text(open_ended)
    served = tmp_path / "experiments.json"
    result = CliRunner().invoke(
        experiments_cli, ["export", "--dir", str(folder), "--output", str(served)]
    )
    assert result.exit_code == 0, result.output
    monkeypatch.setenv(CARET_OTEL_EXPERIMENTS_FILE, str(served))
    gateway = gateway_factory()
    for auth in (AUTH, SERVICE_AUTH):
        answer = gateway.client.get("/telemetry/experiments", headers=auth)
        assert answer.status_code == 200, answer.text
        parsed = sdk_experiments.parse_payload(answer.json())
        assert "plan-mode-hint" in parsed
    assert gateway.client.get("/telemetry/experiments").status_code == 401
    assert gateway.client.get("/telemetry/experiments", headers=ADMIN_AUTH).status_code == 403
    served.write_text("{not json")
    broken = gateway.client.get("/telemetry/experiments", headers=AUTH)
    assert broken.status_code == 503
    assert "not json" not in broken.text
