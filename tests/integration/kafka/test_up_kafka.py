"""`caret-otel up --kafka`: the whole local stack with the Kafka tier, as a developer runs it.

One real `caret-otel up --kafka` (its own data directory, every port free) beside services
it did not start: a Kafka broker (the module's, see conftest.py) and a sink Collector, the
same programs as two of its parts. Events posted to its gateway reach ``raw.events`` through
the edge Collector, the broker's topic and the processing Collector's consumer group; on
SIGTERM (Ctrl-C, a service manager) it stops every process of its own and nothing else.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from fixtures.services import wait_until
from integration.gateway.gateway_support import client_event

from caret_otel.contracts.collector import KafkaTierEnv, edge_config_path, processing_config_path
from caret_otel.semconv import events
from caret_otel.stack import collector as collector_mod
from caret_otel.stack.collector import CollectorProcess, SinkConfigEnv
from caret_otel.stack.kafka import DEFAULT_PARTITIONS, KafkaBroker
from caret_otel.stack.state import StackInfo, StackNotRunningError, read_stack_info, state_path

pytestmark = pytest.mark.integration

STARTUP_TIMEOUT_S = 150.0
USERS = 6
REQUESTS = 5
PER_REQUEST = 12


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Reachable by the unprivileged PostgreSQL user (not under pytest's 0700 root).
    root = Path(tempfile.mkdtemp(prefix="caret-otel-up-kafka-"))
    root.chmod(0o755)
    yield root / "stack"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def bystander_collector(services_dir: Path, collector_binary: Path) -> Iterator[CollectorProcess]:
    """Another Collector of the same binary on this machine, not started by `up`."""
    directory = Path(tempfile.mkdtemp(prefix="bystander-", dir=services_dir))
    env = SinkConfigEnv.in_dir(directory)
    process = CollectorProcess(
        collector_binary, collector_mod.sink_config_path(), env.as_env(),
        directory / "bystander.log", env.health_port, name="bystander-collector",
    )  # fmt: skip
    process.start()
    try:
        yield process
    finally:
        process.stop()


def processes_using(data_dir: Path) -> dict[int, str]:
    """pid -> command line of every process whose command line, working directory or
    environment names ``data_dir``: the parts of that stack still alive."""
    needle = str(data_dir)
    found: dict[int, str] = {}
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        if proc.pid == os.getpid():
            continue
        try:
            command = " ".join(proc.info["cmdline"] or [])
            if needle in f"{command} {proc.info['cwd'] or ''}" or any(
                needle in value for value in proc.environ().values()
            ):
                found[proc.pid] = command
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def start_up(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], StackInfo]:
    script = Path(sys.executable).with_name("caret-otel")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(script), "up", "--data-dir", str(data_dir), "--no-fsync", "--kafka"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise AssertionError(f"`up --kafka` exited ({process.returncode}):\n{log.read_text()}")
        try:
            return process, read_stack_info(data_dir)
        except StackNotRunningError:
            if time.monotonic() > deadline:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=120)
                raise AssertionError(f"`up --kafka` not ready:\n{log.read_text()}") from None
            time.sleep(0.25)


def stack_broker(data_dir: Path) -> KafkaBroker:
    """A handle on the broker `up` started (its client port from the properties it wrote)."""
    properties = (data_dir / "kafka" / "kafka-server.properties").read_text()
    listeners = next(line for line in properties.splitlines() if line.startswith("listeners="))
    port = int(listeners.split("PLAINTEXT://", 1)[1].split(",", 1)[0].rsplit(":", 1)[1])
    return KafkaBroker(data_dir / "kafka" / "data", port=port)


def post_events(info: StackInfo, run: str) -> int:
    """REQUESTS batches of client events of USERS users to the gateway; events accepted."""
    accepted = 0
    headers = {"Authorization": f"Bearer {info.credentials.ingest_token}"}
    with httpx.Client(base_url=info.gateway_url, timeout=30, trust_env=False) as client:
        for request in range(REQUESTS):
            body = [
                client_event(
                    str(events.CARET_TASK_TOKENS.client_event),
                    user=f"{run}-user-{n % USERS}",
                    task_id=f"{run}-task-{request}",
                    tokens_in=100 + n,
                    tokens_out=10,
                )
                for n in range(PER_REQUEST)
            ]
            response = client.post("/telemetry/events", json=body, headers=headers)
            assert response.status_code == 202, response.text
            accepted += int(response.json()["accepted"])
    return accepted


def stored_rows(info: StackInfo) -> int:
    with psycopg.connect(info.database.superuser_dsn(), autocommit=True) as conn:
        found = conn.execute("SELECT count(*) FROM raw.events").fetchone()
    return int(found[0]) if found else 0


def test_up_kafka_stores_events_through_both_tiers_and_stops_only_its_own(
    data_dir: Path, kafka_broker: KafkaBroker, bystander_collector: CollectorProcess
) -> None:
    bystanders = [kafka_broker.process, bystander_collector.process]
    bystander_pids = {p.pid for p in bystanders if p is not None}
    assert len(bystander_pids) == 2
    up, info = start_up(data_dir, data_dir.parent / "up.log")
    try:
        # Its parts: the broker, both Collector tiers (and not the single-tier Collector).
        parts = processes_using(data_dir)
        commands = " ".join(parts.values())
        assert "kafka.Kafka" in commands
        assert str(edge_config_path()) in commands
        assert str(processing_config_path()) in commands
        assert str(collector_mod.default_config_path()) not in commands
        assert not bystander_pids & parts.keys()

        accepted = post_events(info, uuid.uuid4().hex[:8])
        assert accepted == REQUESTS * PER_REQUEST
        wait_until(lambda: stored_rows(info) >= accepted, timeout=60, what="rows in raw.events")
        assert stored_rows(info) == accepted  # exactly once

        # They went through Kafka: the logs topic holds them and the processing Collector
        # is the one member of the logs consumer group, holding every partition.
        tier = KafkaTierEnv()
        topic_dir = data_dir / "kafka" / "data"
        written = sum(f.stat().st_size for f in topic_dir.glob(f"{tier.topic('logs')}-*/*.log"))
        assert written > 0
        assert stack_broker(data_dir).group_members(tier.group("logs")) == [DEFAULT_PARTITIONS]
    finally:
        up.send_signal(signal.SIGTERM)
        status = up.wait(timeout=120)
    output = (data_dir.parent / "up.log").read_text()
    assert status == 0, output
    for part in ("gateway", "edge-collector", "processing-collector", "kafka", "postgres"):
        assert f"stopping {part}" in output
    deadline = time.monotonic() + 10
    while (left := processes_using(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left behind: {left}"
    assert not state_path(data_dir).exists()
    # What `up` did not start runs on, untouched.
    assert kafka_broker.is_running
    assert bystander_collector.is_running
    assert all(psutil.pid_exists(pid) for pid in bystander_pids)
