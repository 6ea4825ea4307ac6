"""The local stack's secret files and its stack.json (no services needed)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from caret_otel.stack.credentials import CredentialsError, StackCredentials, masked
from caret_otel.stack.state import DatabaseInfo, StackInfo, StackNotRunningError, read_stack_info


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_made_once_private_and_reused(tmp_path: Path) -> None:
    credentials, created = StackCredentials.ensure(tmp_path)
    assert len(created) == 7  # tokens, keys, role passwords (writer, analyst, gateway), HMAC key
    assert mode(credentials.directory) == 0o700
    for path in credentials.directory.iterdir():
        assert mode(path) == 0o600, path
    token = credentials.ingest_token
    assert len(token) >= 32
    assert token != credentials.admin_token
    again, created_again = StackCredentials.ensure(tmp_path)
    assert created_again == []
    assert again.ingest_token == token
    first = credentials.pseudonymizer().pseudonymize("user-1")
    assert again.pseudonymizer().pseudonymize("user-1") == first


def test_a_loosened_secret_is_tightened_and_an_empty_one_is_an_error(tmp_path: Path) -> None:
    credentials, _ = StackCredentials.ensure(tmp_path)
    credentials.admin_token_file.chmod(0o644)
    assert credentials.admin_token
    assert mode(credentials.admin_token_file) == 0o600
    credentials.ingest_token_file.write_text("\n")
    with pytest.raises(CredentialsError, match="ingest-token is empty"):
        StackCredentials.ensure(tmp_path)


def test_masked_shows_a_prefix_and_the_length_only() -> None:
    secret = "abcdefghijklmnopqrstuvwxyz0123456789"
    shown = masked(secret)
    assert shown.startswith("abcd")
    assert "efgh" not in shown
    assert str(len(secret)) in shown


def info_for(data_dir: Path, pid: int) -> StackInfo:
    return StackInfo(
        data_dir=str(data_dir),
        pid=pid,
        gateway_url="http://127.0.0.1:1",
        exporter_url="http://127.0.0.1:2",
        collector_otlp_http_url="http://127.0.0.1:3",
        collector_otlp_grpc_endpoint="127.0.0.1:4",
        collector_health_url="http://127.0.0.1:5/",
        collector_metrics_url="http://127.0.0.1:6/metrics",
        prometheus_url=None,
        sink_traces_path="t",
        sink_logs_path="l",
        sink_metrics_path="m",
        logs_dir="logs",
        secrets_dir=str(data_dir / "secrets"),
        database=DatabaseInfo("127.0.0.1", 5432, "caret", "postgres", None, None, None),
        country_header="CF-IPCountry",
    )


def test_stack_json_round_trips_and_is_private(tmp_path: Path) -> None:
    info = info_for(tmp_path, os.getpid())
    path = info.write()
    assert mode(path) == 0o600
    assert read_stack_info(tmp_path) == info
    assert info.database.superuser_dsn() == "postgresql://postgres@127.0.0.1:5432/caret"


def test_a_missing_or_dead_stack_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(StackNotRunningError, match="caret-otel up --data-dir"):
        read_stack_info(tmp_path)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    info_for(tmp_path, int(finished.stdout)).write()
    with pytest.raises(StackNotRunningError, match="is not running any more"):
        read_stack_info(tmp_path)
