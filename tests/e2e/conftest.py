"""The whole local stack, started once per session with simulated traffic flowing.

``running_stack`` runs ``caret-otel up`` as a real subprocess (as a developer would),
waits for its ``stack.json``, then runs ``caret-otel simulate`` twice:

* a clean run (realistic traffic: what dashboards and analysts see), and
* a run with ``--plant-secrets`` (secrets in every client field, for the privacy scan),

and waits until PostgreSQL holds every event the two runs must leave there. At the end
of the session the stack gets SIGTERM, as Ctrl-C would, and must exit cleanly.

Tests read everything from the :class:`RunningStack` attributes: URLs, tokens, DSNs
(superuser and the read-only analyst role), the sink files and both runs' summaries.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from caret_otel.stack.catchup import wait_for_catch_up
from caret_otel.stack.postgres import find_bindir
from caret_otel.stack.state import StackInfo, StackNotRunningError, read_stack_info

STARTUP_TIMEOUT_S = 180.0
# Seed 13 has opt-outs and an opt-in. Paced over 45 s, the traffic spans several metric
# exports (gateway 15 s, SDK 5 s), so rate() and increase() over a minute see it.
CLEAN_RUN = ("--users", "40", "--days", "6", "--seed", "13", "--pace", "45")
PLANTED_RUN = ("--users", "28", "--days", "3", "--seed", "23", "--plant-secrets")


def caret_otel() -> list[str]:
    script = Path(sys.executable).with_name("caret-otel")
    return [str(script)] if script.is_file() else ["caret-otel"]


def cli_env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200"}


@dataclass
class RunningStack:
    """A running ``caret-otel up`` with simulated traffic stored."""

    info: StackInfo
    data_dir: Path
    process: subprocess.Popen[bytes]
    summaries: list[dict[str, Any]]
    """``simulate --summary-json`` of the clean run, then of the planted-secrets run."""
    extra_stored_events: int = 0
    """Rows other tests added to ``raw.events`` on purpose (the docs blocks post events)."""
    extra_deletion_requests: int = 0
    """Deletions other tests recorded on purpose (a docs block runs `caret-otel forget`)."""

    # --- endpoints and credentials ----------------------------------------------------------
    @property
    def gateway_url(self) -> str:
        return self.info.gateway_url

    @property
    def ingest_token(self) -> str:
        return self.info.credentials.ingest_token

    @property
    def admin_token(self) -> str:
        return self.info.credentials.admin_token

    @property
    def exporter_url(self) -> str:
        return self.info.exporter_url

    @property
    def collector_otlp_http_url(self) -> str:
        return self.info.collector_otlp_http_url

    @property
    def prometheus_url(self) -> str:
        assert self.info.prometheus_url, "the e2e stack runs Prometheus"
        return self.info.prometheus_url

    @property
    def postgres_dsn(self) -> str:
        """Superuser DSN of the business database (``caret``)."""
        return self.info.database.superuser_dsn()

    @property
    def analyst_dsn(self) -> str:
        """The read-only ``caret_analyst`` role (``analytics.*``, ``trends.*``)."""
        return self.info.database.analyst_dsn()

    @property
    def writer_dsn(self) -> str:
        return self.info.database.writer_dsn()

    @property
    def pg_dump(self) -> Path:
        return find_bindir() / "pg_dump"

    # --- sinks ------------------------------------------------------------------------------
    @property
    def sink_paths(self) -> Mapping[str, Path]:
        """Signal -> JSON-lines file of the Tempo/Loki stand-in."""
        return {
            "traces": Path(self.info.sink_traces_path),
            "logs": Path(self.info.sink_logs_path),
            "metrics": Path(self.info.sink_metrics_path),
        }

    # --- the traffic ------------------------------------------------------------------------
    @property
    def clean_summary(self) -> dict[str, Any]:
        return self.summaries[0]

    @property
    def planted_summary(self) -> dict[str, Any]:
        return self.summaries[1]

    @property
    def expected_stored_events(self) -> int:
        simulated = sum(int(s["expected_stored_events"]) for s in self.summaries)
        return simulated + self.extra_stored_events

    @property
    def needles(self) -> list[str]:
        return list(self.planted_summary["needles"])


def _wait_for_state(process: subprocess.Popen[bytes], data_dir: Path, log: Path) -> StackInfo:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"caret-otel up exited with {process.returncode}:\n{log.read_text()[-4000:]}"
            )
        try:
            return read_stack_info(data_dir)
        except StackNotRunningError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"caret-otel up not ready in {STARTUP_TIMEOUT_S:.0f}s:\n{log.read_text()[-4000:]}"
            )
        time.sleep(0.25)


def _simulate(data_dir: Path, summary: Path, args: tuple[str, ...]) -> dict[str, Any]:
    result = subprocess.run(
        [
            *caret_otel(),
            "simulate",
            "--data-dir",
            str(data_dir),
            "--summary-json",
            str(summary),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(),
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"caret-otel simulate failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    loaded: dict[str, Any] = orjson.loads(summary.read_bytes())
    return loaded


def _churn_scores(data_dir: Path) -> None:
    """A churn model and today's scores of the simulated users, as `caret-otel demo` stores
    them (the behaviour dashboard's churn panels read them). The stack holds a few days and
    training needs 56, so the model learns from the in-process population (docs/churn.md)."""
    for args in (("churn", "train", "--synthetic"), ("churn", "score")):
        result = subprocess.run(
            [*caret_otel(), *args, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=300,
            env=cli_env(),
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"caret-otel {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )


def stop_up(process: subprocess.Popen[bytes], timeout_s: float = 120.0) -> int:
    """SIGTERM, as a service manager would; the exit status (killed after the timeout)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture(scope="session")
def running_stack() -> Iterator[RunningStack]:
    # Outside pytest's 0700 temp root: the embedded PostgreSQL runs as an unprivileged user.
    root = Path(tempfile.mkdtemp(prefix="caret-otel-e2e-"))
    root.chmod(0o755)
    data_dir = root / "stack"
    log = root / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*caret_otel(), "up", "--data-dir", str(data_dir), "--no-fsync"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=cli_env(),
        )
    try:
        info = _wait_for_state(process, data_dir, log)
        summaries = [
            _simulate(data_dir, root / "clean.json", CLEAN_RUN),
            _simulate(data_dir, root / "planted.json", PLANTED_RUN),
        ]
        stack = RunningStack(info, data_dir, process, summaries)
        wait_for_catch_up(stack.postgres_dsn, stack.expected_stored_events, timeout_s=180)
        _churn_scores(data_dir)
        yield stack
    finally:
        status = stop_up(process)
        if status == 0:
            shutil.rmtree(root, ignore_errors=True)
        else:  # keep the logs for whoever reads the failure
            sys.stderr.write(f"caret-otel up exited with {status}; logs kept in {root}\n")
