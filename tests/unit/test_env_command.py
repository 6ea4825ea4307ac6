"""``caret-otel env`` and ``simulate`` against the local stack's stack.json: ``env`` prints
the exports a service needs (the Collector's endpoint and the key file, never a secret
value); ``simulate`` finds out there is no stack before it generates anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from click.testing import CliRunner

from caret_otel.cli.main import _register_commands, cli
from caret_otel.stack.state import DatabaseInfo, StackInfo

_register_commands()


def fake_stack(data_dir: Path) -> StackInfo:
    secrets = data_dir / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "analyst-password").write_text("analyst-secret-value\n")
    info = StackInfo(
        data_dir=str(data_dir),
        pid=os.getpid(),  # "running": this process is alive
        gateway_url="http://127.0.0.1:18080",
        exporter_url="http://127.0.0.1:18081",
        collector_otlp_http_url="http://127.0.0.1:14318",
        collector_otlp_grpc_endpoint="127.0.0.1:14317",
        collector_health_url="http://127.0.0.1:13133",
        collector_metrics_url="http://127.0.0.1:18888",
        prometheus_url="http://127.0.0.1:19090",
        sink_traces_path=str(data_dir / "sink" / "traces.jsonl"),
        sink_logs_path=str(data_dir / "sink" / "logs.jsonl"),
        sink_metrics_path=str(data_dir / "sink" / "metrics.jsonl"),
        logs_dir=str(data_dir / "logs"),
        secrets_dir=str(secrets),
        database=DatabaseInfo(
            host="127.0.0.1",
            port=15432,
            dbname="caret",
            superuser="postgres",
            superuser_password_file=None,
            writer_password_file=None,
            analyst_password_file=str(secrets / "analyst-password"),
        ),
        country_header="CF-IPCountry",
    )
    info.write()
    return info


def test_env_prints_the_collector_endpoint_and_the_key_file(tmp_path: Path) -> None:
    info = fake_stack(tmp_path / "stack")
    result = CliRunner().invoke(cli, ["env", "--data-dir", info.data_dir])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines == [
        "export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14318",
        f"export CARET_OTEL_PSEUDONYM_KEY_FILE={info.credentials.pseudonym_key_file}",
    ]
    exported = subprocess.run(
        ["bash", "-c", result.stdout + 'echo "$OTEL_EXPORTER_OTLP_ENDPOINT"'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert exported.stdout.strip() == "http://127.0.0.1:14318"


def test_env_grafana_adds_the_datasource_variables_without_the_password(tmp_path: Path) -> None:
    info = fake_stack(tmp_path / "stack")
    result = CliRunner().invoke(cli, ["env", "--data-dir", info.data_dir, "--grafana"])
    assert result.exit_code == 0, result.output
    assert "export CARET_GRAFANA_PROMETHEUS_URL=http://127.0.0.1:19090" in result.stdout
    assert "export CARET_GRAFANA_POSTGRES_HOST=127.0.0.1:15432" in result.stdout
    assert "export CARET_GRAFANA_POSTGRES_DB=caret" in result.stdout
    assert "analyst-secret-value" not in result.stdout  # read by the shell, not printed
    exported = subprocess.run(
        ["bash", "-c", result.stdout + 'echo "$CARET_ANALYST_PASSWORD"'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert exported.stdout.strip() == "analyst-secret-value"


def test_env_without_a_stack_says_how_to_start_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["env", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "caret-otel up" in result.output


def test_simulate_looks_for_the_stack_before_generating_traffic(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["simulate", "--data-dir", str(tmp_path / "none"), "--users", "100000"]
    )
    assert result.exit_code == 1
    assert "no running stack in" in result.output
    assert "client events" not in result.output  # nothing was generated first
