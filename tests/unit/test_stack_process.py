"""ManagedProcess: readiness, graceful stop, escalation, kill, restart, and no orphans.

The child is a tiny Python script that forks a grandchild (as PostgreSQL forks
backends) and writes both PIDs to a file once it is up, which doubles as the
readiness signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from caret_otel.stack import (
    ManagedProcess,
    MissingBinaryError,
    PortInUseError,
    PostgresServer,
    ProcessStartError,
    ensure_port_free,
    free_port,
    is_port_free,
)
from caret_otel.stack import collector as collector_mod
from caret_otel.stack import prometheus as prometheus_mod
from caret_otel.stack.ports import LOOPBACK, is_listening
from caret_otel.stack.process import ServiceRunner

CHILD = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    pids_file, mode = sys.argv[1], sys.argv[2]
    if mode == "exit":
        print("boom: cannot start", flush=True)
        sys.exit(3)
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The grandchild ignores SIGTERM: only the group-wide SIGKILL sweep can end it.
    grandchild = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    print("child up", os.getpid(), grandchild.pid, flush=True)
    with open(pids_file + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {grandchild.pid}")
    os.rename(pids_file + ".tmp", pids_file)
    time.sleep(600)
    """
)


def gone(pid: int, timeout: float = 5.0) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for its reaper counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return path


def make(tmp_path: Path, script: Path, mode: str = "normal", **kwargs: object) -> ManagedProcess:
    pids = tmp_path / f"pids-{mode}"
    pids.unlink(missing_ok=True)
    options: dict[str, object] = {
        "log_path": tmp_path / "child.log",
        "ready": pids.exists,
        "ready_timeout": 10.0,
    }
    options.update(kwargs)
    return ManagedProcess("child", [sys.executable, str(script), str(pids), mode], **options)  # type: ignore[arg-type]


def pids_of(proc: ManagedProcess, tmp_path: Path, mode: str = "normal") -> tuple[int, int]:
    leader, grandchild = (tmp_path / f"pids-{mode}").read_text().split()
    assert int(leader) == proc.pid
    return int(leader), int(grandchild)


def test_start_waits_for_readiness_and_stop_ends_the_group(tmp_path: Path, script: Path) -> None:
    proc = make(tmp_path, script)
    proc.start()
    assert proc.returncode is None, "running"
    leader, grandchild = pids_of(proc, tmp_path)
    assert os.getpgid(grandchild) == leader, "child leads its own process group"
    assert proc.stop() == -signal.SIGTERM
    assert not proc.is_running
    assert gone(leader)
    assert gone(grandchild), "the grandchild ignoring SIGTERM must not survive stop()"
    assert "child up" in proc.log_path.read_text()
    assert proc.stop() == -signal.SIGTERM, "stop() is idempotent"


def test_stop_escalates_to_sigkill_after_the_grace(tmp_path: Path, script: Path) -> None:
    proc = make(tmp_path, script, "ignore-term", stop_timeout=0.5)
    proc.start()
    _, grandchild = pids_of(proc, tmp_path, "ignore-term")
    started = time.monotonic()
    assert proc.stop() == -signal.SIGKILL
    assert time.monotonic() - started < 5
    assert gone(grandchild)


def test_kill_is_immediate_and_total(tmp_path: Path, script: Path) -> None:
    proc = make(tmp_path, script)
    proc.start()
    leader, grandchild = pids_of(proc, tmp_path)
    assert proc.kill() == -signal.SIGKILL
    assert gone(leader)
    assert gone(grandchild)


def test_restart_runs_a_new_process_and_appends_to_the_log(tmp_path: Path, script: Path) -> None:
    proc = make(tmp_path, script)
    proc.start()
    first = proc.pid
    (tmp_path / "pids-normal").unlink()
    proc.restart()
    try:
        assert proc.is_running
        assert proc.pid != first
        assert first is not None
        assert gone(first)
        log = proc.log_path.read_text()
        assert "start #1 of child" in log
        assert "start #2 of child" in log
    finally:
        proc.stop()


def test_start_twice_is_an_error(tmp_path: Path, script: Path) -> None:
    with make(tmp_path, script) as proc, pytest.raises(RuntimeError, match="already running"):
        proc.start()
    assert not proc.is_running


def test_early_exit_raises_with_the_log_tail(tmp_path: Path, script: Path) -> None:
    proc = make(tmp_path, script, "exit")
    with pytest.raises(ProcessStartError) as info:
        proc.start()
    message = str(info.value)
    assert "exited with status 3" in message
    assert "boom: cannot start" in message
    assert str(proc.log_path) in message


def test_readiness_timeout_raises_and_leaves_nothing_running(tmp_path: Path, script: Path) -> None:
    proc = make(tmp_path, script, ready=lambda: False, ready_timeout=0.5)
    with pytest.raises(ProcessStartError, match="did not become ready within") as info:
        proc.start()
    assert "child up" in str(info.value), "the log tail is in the message"
    assert not proc.is_running
    _, grandchild = pids_of(proc, tmp_path)
    assert gone(grandchild)


def test_http_readiness_probe(tmp_path: Path) -> None:
    port = free_port()
    proc = ManagedProcess(
        "http.server",
        [sys.executable, "-m", "http.server", str(port), "--bind", LOOPBACK],
        log_path=tmp_path / "http.log",
        ready=f"http://{LOOPBACK}:{port}/",
        cwd=tmp_path,
    )
    with proc:
        assert is_listening(port)
        assert not is_port_free(port)
        with pytest.raises(PortInUseError, match=f"{port} is already in use"):
            ensure_port_free(port, service="http.server")
    assert is_port_free(port)


def test_child_dies_with_a_sigkilled_parent(tmp_path: Path, script: Path) -> None:
    """Even when the supervising Python process is SIGKILLed (no cleanup runs), the
    service it started does not survive it (parent-death signal)."""
    pids = tmp_path / "pids-normal"
    parent_code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from caret_otel.stack import ManagedProcess
        proc = ManagedProcess("child", [sys.executable, {str(script)!r}, {str(pids)!r}, "normal"],
                              log_path=Path({str(tmp_path / "orphan.log")!r}),
                              ready=Path({str(pids)!r}).exists)
        proc.start()
        print("started", flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "started"
        leader = int(pids.read_text().split()[0])
        parent.kill()
        parent.wait()
        assert gone(leader), "the service outlived its SIGKILLed supervisor"
    finally:
        if parent.poll() is None:
            parent.kill()
        if pids.exists():
            for pid in map(int, pids.read_text().split()):
                if not gone(pid, timeout=0):
                    os.kill(pid, signal.SIGKILL)


def test_free_ports_are_distinct_and_free() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    assert all(is_port_free(p) for p in ports)


def test_missing_programs_name_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARET_OTEL_COLLECTOR_BIN", str(tmp_path / "no-such-otelcol"))
    with pytest.raises(MissingBinaryError, match="make collector"):
        collector_mod.binary_path()

    monkeypatch.setenv("CARET_OTEL_PROMETHEUS_BIN", str(tmp_path / "no-such-prometheus"))
    with pytest.raises(MissingBinaryError, match="apt-get install -y prometheus"):
        prometheus_mod.binary_path()

    server = PostgresServer(tmp_path / "pg", bindir=tmp_path / "no-such-bindir")
    with pytest.raises(MissingBinaryError, match="pip install pgserver"):
        server.init()

    proc = ManagedProcess("ghost", ["no-such-program-caret"], log_path=tmp_path / "g.log")
    with pytest.raises(MissingBinaryError, match="no-such-program-caret"):
        proc.start()


class HttpService(ServiceRunner):
    """The smallest service runner: Python's http.server serving its data directory."""

    service = "http-service"
    install_hint = "it is Python's own"

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        super().__init__(data_dir, port, log_path=None, ready_timeout=30.0)

    def _command(self) -> ManagedProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "http.server", str(self.port), "--bind", self.host]
        return self._managed(argv, ready=f"{self.base_url}/", cwd=self.data_dir, stop_timeout=5)


def test_service_runner_starts_once_stops_kills_and_restarts(tmp_path: Path) -> None:
    service = HttpService(tmp_path / "svc" / "data")
    assert service.log_path == tmp_path / "svc" / "http-service.log"
    assert service.process is None
    assert not service.is_running
    service.stop()  # never started: nothing to do
    service.start()
    try:
        assert service.is_running
        assert is_listening(service.port)
        pid = service.process.pid if service.process else None
        service.start()  # already running: the same process
        assert service.process is not None
        assert service.process.pid == pid
        assert f"<HttpService {service.base_url} running" in repr(service)
        service.kill()
        assert not service.is_running
        assert service.process.returncode == -signal.SIGKILL
        service.restart()
        assert service.is_running
        assert service.process.pid != pid
        assert service.log_path.read_text().count("start #") == 2
    finally:
        service.stop()
    assert not service.is_running
    assert is_port_free(service.port)
    assert "stopped" in repr(service)


def test_service_runner_refuses_a_taken_port_naming_the_service(tmp_path: Path) -> None:
    first = HttpService(tmp_path / "a" / "data")
    first.start()
    try:
        second = HttpService(tmp_path / "b" / "data", port=first.port)
        with pytest.raises(PortInUseError, match=f"http-service: 127.0.0.1:{first.port}"):
            second.start()
        assert second.process is None
    finally:
        first.stop()
