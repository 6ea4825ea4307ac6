"""`caret-otel up` fails loudly and cleanly: a clear message, exit status 1, and no
process left behind - whether the problem is found before anything starts (a taken
port, a missing program), while the stack starts (a part that dies at once), or while
it runs (a part that crashes)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from e2e.conftest import caret_otel, cli_env, stop_up

from caret_otel.stack.state import StackNotRunningError, read_stack_info, state_path

pytestmark = pytest.mark.e2e


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Reachable by the unprivileged PostgreSQL user (not under pytest's 0700 root).
    root = Path(tempfile.mkdtemp(prefix="caret-otel-up-"))
    root.chmod(0o755)
    yield root / "stack"
    shutil.rmtree(root, ignore_errors=True)


def processes_using(data_dir: Path) -> list[str]:
    """Every process whose command line, working directory or environment names
    ``data_dir`` - i.e. every part of that stack still alive."""
    needle = str(data_dir)
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "cwd"]):
        if proc.pid == os.getpid():
            continue
        try:
            where = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
            if needle in where or any(needle in v for v in proc.environ().values()):
                found.append(f"{proc.pid} {proc.info['name']}: {where[:200]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def assert_nothing_left(data_dir: Path) -> None:
    deadline = time.monotonic() + 10
    while (left := processes_using(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, "processes left behind:\n" + "\n".join(left)
    assert not state_path(data_dir).exists()


def run_up(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*caret_otel(), "up", "--data-dir", str(data_dir), "--no-fsync", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**cli_env(), **(env or {})},
        check=False,
    )


def test_a_taken_port_is_named_and_nothing_starts(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_up(data_dir, "--gateway-port", str(port))
    assert result.returncode == 1
    assert f"gateway: 127.0.0.1:{port} is already in use" in result.stderr
    assert_nothing_left(data_dir)


def test_a_missing_collector_says_how_to_build_it(data_dir: Path) -> None:
    result = run_up(data_dir, env={"CARET_OTEL_COLLECTOR_BIN": str(data_dir / "no-such-otelcol")})
    assert result.returncode == 1
    assert "no-such-otelcol not found; build it with: make collector" in result.stderr
    assert_nothing_left(data_dir)


def test_a_part_that_dies_at_start_stops_what_already_runs(data_dir: Path) -> None:
    # A "Collector" that fails at once: PostgreSQL is up by then and must be stopped.
    broken = data_dir.parent / "otelcol-broken"
    broken.write_text("#!/bin/sh\necho 'simulated start-up failure' >&2\nexit 3\n")
    broken.chmod(0o755)
    result = run_up(data_dir, env={"CARET_OTEL_COLLECTOR_BIN": str(broken)})
    assert result.returncode == 1
    assert "sink-collector exited with status 3 before it was ready" in result.stderr
    assert "simulated start-up failure" in result.stderr
    assert "stopping postgres" in result.stderr
    assert_nothing_left(data_dir)


def _wait_ready(process: subprocess.Popen[bytes], data_dir: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, "caret-otel up exited during start-up"
        try:
            read_stack_info(data_dir)
            return
        except StackNotRunningError:
            time.sleep(0.25)
    raise TimeoutError("caret-otel up did not become ready")


def test_a_crash_is_reported_and_the_stack_shuts_down(data_dir: Path) -> None:
    # Without Prometheus the stack still runs, after saying how to install it.
    log = data_dir.parent / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*caret_otel(), "up", "--data-dir", str(data_dir), "--no-fsync"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**cli_env(), "CARET_OTEL_PROMETHEUS_BIN": str(data_dir / "no-prometheus")},
        )
    try:
        _wait_ready(process, data_dir)
        # The orphan check sees every part of a running stack (so it can fail).
        running = processes_using(data_dir)
        for part in ("postgres", "otelcol-caret", "gateway", "exporter"):
            assert any(part in line for line in running), (part, running)
        # The data directory is taken while this stack runs.
        second = run_up(data_dir)
        assert second.returncode == 1
        assert "is in use by a running `caret-otel up`" in second.stderr
        exporter = next(
            p
            for p in psutil.process_iter(["cmdline", "cwd"])
            if "exporter" in (p.info["cmdline"] or []) and p.info["cwd"] == str(data_dir)
        )
        exporter.send_signal(signal.SIGKILL)
        status = process.wait(timeout=120)
    finally:
        stop_up(process)
    output = log.read_text()
    assert "Prometheus is not installed, so the stack runs without it" in output
    assert "apt-get install -y prometheus" in output
    assert status == 1, output
    assert "exporter exited unexpectedly (status -9)" in output
    assert "the stack was shut down" in output
    assert_nothing_left(data_dir)
