"""A supervised child process: start, wait until ready, stop, kill, restart.

Every real service of the local stack (PostgreSQL, Prometheus, our Collector, the
sink Collector) runs through :class:`ManagedProcess`, so they all share one set of
guarantees that the test-suite and ``caret-otel up`` rely on:

* **Readiness, not sleeps.** ``start()`` returns only after a probe passes (an HTTP
  URL answering 200, or any callable returning True). If the child exits first or
  the probe never passes, the error names the service, the reason and the last log
  lines - the one thing you need to debug a service that would not start in CI.
* **No orphans.** The child leads its own process group (``start_new_session``), and
  ``stop()``/``kill()`` signal the whole group, so helpers it forked (PostgreSQL
  backends, a shell's children) go too. On Linux the child also gets a parent-death
  signal (via util-linux ``setpriv --pdeathsig KILL``), so it dies even when the
  Python process that started it is SIGKILLed and never runs its cleanup. As a last
  resort an ``atexit`` hook stops whatever is still running at interpreter exit.
* **Logs on disk.** stdout and stderr go to one log file, appended across restarts
  with a header line per start, so a crash-and-restart test keeps the whole story.

The parent-death signal is tied to the *thread* that started the child: start
services from a thread that lives as long as they should (the main thread in
practice), or pass ``die_with_parent=False``.

:class:`ServiceRunner` is the part the server runners share (Prometheus, Alertmanager,
Kafka): a loopback port, a log file, start-once, stop, kill, restart.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import datetime as _dt
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

import httpx

from caret_otel.core.errors import ServiceError
from caret_otel.stack.ports import LOOPBACK, ensure_port_free, free_port

#: A readiness probe: returns True once the service accepts work. It should be
#: cheap and must not raise for "not yet" (connection refused and the like).
Probe = Callable[[], bool]


class MissingBinaryError(ServiceError):
    """A program the stack needs is not installed; the message says how to install it."""


class ProcessStartError(ServiceError):
    """A service exited or did not become ready in time; the message has its log tail."""


def http_probe(url: str, *, status: int = 200, timeout: float = 1.0) -> Probe:
    """Return a probe that passes when ``GET url`` answers with ``status``.

    Connection errors and timeouts mean "not ready yet", never an exception. Proxy
    variables are ignored: a readiness check talks to the service directly.
    """

    def probe() -> bool:
        try:
            response = httpx.get(url, timeout=timeout, trust_env=False)
        except httpx.HTTPError:
            return False
        return response.status_code == status

    return probe


def resolve_executable(program: str | os.PathLike[str], *, install_hint: str = "") -> Path:
    """Find ``program`` (a path or a name on ``PATH``) or raise :class:`MissingBinaryError`.

    ``install_hint`` is appended to the error, e.g. ``"install it with: make collector"``.
    """
    text = os.fspath(program)
    if os.sep in text:
        path = Path(text)
        if path.is_file() and os.access(path, os.X_OK):
            return path
    else:
        found = shutil.which(text)
        if found:
            return Path(found)
    hint = f"; {install_hint}" if install_hint else ""
    raise MissingBinaryError(f"executable {text!r} not found{hint}")


def _read_tail(path: Path, lines: int) -> str:
    """Last ``lines`` lines of a (possibly large, possibly missing) log file."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return "(no log file yet)"
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


# Processes still running at interpreter exit are stopped by _stop_all_at_exit.
_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()
_live_lock = threading.Lock()


def _stop_all_at_exit() -> None:
    with _live_lock:
        survivors = list(_live)
    for proc in survivors:
        with contextlib.suppress(Exception):
            proc.stop(timeout=min(proc.stop_timeout, 5.0))


atexit.register(_stop_all_at_exit)


class ManagedProcess:
    """One long-running child process with a readiness probe and group-wide shutdown.

    Args:
        name: short name used in log headers and error messages (``"prometheus"``).
        argv: the command; ``argv[0]`` is a path or a name looked up on ``PATH``.
        log_path: file that receives stdout and stderr (appended, parent dirs created).
        env: variables to set for the child, on top of ``os.environ`` unless
            ``inherit_env`` is False.
        cwd: working directory of the child.
        ready: an HTTP URL that must answer 200, or a :data:`Probe`; None means
            "ready as soon as it is running".
        ready_timeout: seconds ``start()`` waits for ``ready``.
        stop_signal: signal for a graceful stop (PostgreSQL wants SIGINT, "fast
            shutdown"; most services SIGTERM).
        stop_timeout: grace period after ``stop_signal`` before SIGKILL.
        user: run the child as this system user (needs root); the group becomes the
            user's primary group and supplementary groups are cleared.
        die_with_parent: give the child a parent-death SIGKILL (Linux, needs
            ``setpriv``); see the module docstring for the thread caveat.
        install_hint: appended to :class:`MissingBinaryError` when ``argv[0]`` is missing.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        cwd: Path | None = None,
        ready: str | Probe | None = None,
        ready_timeout: float = 30.0,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_timeout: float = 10.0,
        user: str | None = None,
        die_with_parent: bool = True,
        install_hint: str = "",
    ) -> None:
        if not argv:
            raise ValueError(f"{name}: empty command")
        self.name = name
        self.argv: list[str] = [os.fspath(a) for a in argv]
        self.log_path = Path(log_path)
        self.env: dict[str, str] = dict(env or {})
        self.inherit_env = inherit_env
        self.cwd = cwd
        self.ready = ready
        self.ready_timeout = ready_timeout
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self.user = user
        self.die_with_parent = die_with_parent
        self.install_hint = install_hint
        self._popen: subprocess.Popen[bytes] | None = None
        # True from start() until the group was swept with SIGKILL. Signalling a group
        # only while this holds means a later stop() never hits a recycled group id.
        self._group_alive = False
        self.starts = 0

    # --- state ---------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        """True while the child (the group leader) has not exited."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def pid(self) -> int | None:
        """PID of the child (also its process-group id), None before the first start."""
        return self._popen.pid if self._popen is not None else None

    @property
    def returncode(self) -> int | None:
        """Exit status of the last run (negative = killed by that signal), None if running."""
        return self._popen.poll() if self._popen is not None else None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log file (for error messages and reports)."""
        return _read_tail(self.log_path, lines)

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, *, wait: bool = True) -> None:
        """Start the child and (unless ``wait=False``) block until it is ready.

        On any start failure the child is stopped before the error propagates, so a
        failed start never leaves a half-started service behind.
        """
        if self.is_running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        executable = resolve_executable(self.argv[0], install_hint=self.install_hint)
        argv = [str(executable), *self.argv[1:]]
        if self.die_with_parent:
            setpriv = shutil.which("setpriv")
            if setpriv is not None:
                # setpriv sets PR_SET_PDEATHSIG and execs the service in place (same pid).
                argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]

        env = {**os.environ, **self.env} if self.inherit_env else dict(self.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        uid: int | None = None
        gid: int | None = None
        extra_groups: list[int] | None = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            uid, gid, extra_groups = entry.pw_uid, entry.pw_gid, []

        self.starts += 1
        with self.log_path.open("ab") as log:
            stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            header = f"=== {stamp} start #{self.starts} of {self.name}: {' '.join(argv)}\n"
            log.write(header.encode())
            log.flush()
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
                close_fds=True,
                user=uid,
                group=gid,
                extra_groups=extra_groups,
            )
        self._group_alive = True
        with _live_lock:
            _live.add(self)
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop(timeout=min(self.stop_timeout, 5.0))
                raise

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the readiness probe passes; raise :class:`ProcessStartError` if the
        child exits first or ``timeout`` (default ``ready_timeout``) runs out."""
        probe = self._probe()
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        delay = 0.02
        while True:
            code = self.returncode
            if self._popen is None or code is not None:
                raise ProcessStartError(
                    f"{self.name} exited with status {code} before it was ready "
                    f"(log: {self.log_path}); last log lines:\n{self.log_tail()}"
                )
            if probe is None or probe():
                return
            if time.monotonic() >= deadline:
                limit = self.ready_timeout if timeout is None else timeout
                raise ProcessStartError(
                    f"{self.name} did not become ready within {limit:.0f}s "
                    f"(probe: {self.ready!r}, log: {self.log_path}); last log lines:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _probe(self) -> Probe | None:
        if self.ready is None or callable(self.ready):
            return self.ready
        return http_probe(self.ready)

    def stop(self, timeout: float | None = None) -> int | None:
        """Graceful stop: ``stop_signal`` to the group, SIGKILL after ``timeout``.

        Returns the exit status (None if never started). Idempotent.
        """
        popen = self._popen
        if popen is None:
            return None
        grace = self.stop_timeout if timeout is None else timeout
        was_live = self._group_alive
        if popen.poll() is None:
            self._signal_group(self.stop_signal)
            try:
                popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                popen.wait()
        # Anything the leader left behind in its group (it may have exited without
        # waiting for its own children) is killed, so nothing outlives stop().
        self._signal_group(signal.SIGKILL)
        self._group_alive = False
        with _live_lock:
            _live.discard(self)
        if was_live:
            self._log_event(f"stopped, exit status {popen.returncode}")
        return popen.returncode

    def kill(self) -> int | None:
        """SIGKILL the whole group at once, as a crash would (for crash-recovery tests)."""
        popen = self._popen
        if popen is None:
            return None
        was_live = self._group_alive
        self._signal_group(signal.SIGKILL)
        popen.wait()
        self._group_alive = False
        with _live_lock:
            _live.discard(self)
        if was_live:
            self._log_event(f"killed (SIGKILL), exit status {popen.returncode}")
        return popen.returncode

    def _log_event(self, what: str) -> None:
        """Append a marker line, so a log spanning restarts and crashes reads in order."""
        stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        with contextlib.suppress(OSError), self.log_path.open("ab") as log:
            log.write(f"=== {stamp} {self.name} {what}\n".encode())

    def restart(self, *, wait: bool = True) -> None:
        """Stop (gracefully) and start again with the same command, env and log file."""
        self.stop()
        self.start(wait=wait)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._popen is None or not self._group_alive:
            return
        try:
            os.killpg(self._popen.pid, sig)
        except ProcessLookupError:
            self._group_alive = False  # nobody left in the group
        except PermissionError:
            pass

    # --- context manager -----------------------------------------------------------------
    def __enter__(self) -> Self:
        if not self.is_running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running pid={self.pid}" if self.is_running else f"stopped rc={self.returncode}"
        return f"<ManagedProcess {self.name} {state} log={self.log_path}>"


class ServiceRunner(abc.ABC):
    """One server of the stack on ``127.0.0.1:port`` run as a :class:`ManagedProcess`: the
    part that Prometheus, Alertmanager and Kafka share (the runners in ``prometheus.py``,
    ``alertmanager.py`` and ``kafka.py``).

    A subclass names the service (:attr:`service`, also its default log file
    ``<data_dir>/../<service>.log``) and builds its process in :meth:`_command` - write its
    config, check its ports with :meth:`_managed`. :meth:`start` does nothing while it runs,
    and :meth:`start` again after :meth:`stop` or :meth:`kill` reuses the data directory.

    Args:
        data_dir: the service's data (a subclass creates or formats it).
        port: its listen port; a free one when None.
        log_path: stdout and stderr, appended across restarts.
        ready_timeout: seconds :meth:`start` waits for readiness.
    """

    #: Name in log headers and errors; the default log file is ``<service>.log``.
    service: ClassVar[str]
    #: How to install the program, appended when it is missing.
    install_hint: ClassVar[str] = ""

    def __init__(
        self, data_dir: Path, port: int | None, *, log_path: Path | None, ready_timeout: float
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.log_path = log_path or self.data_dir.parent / f"{self.service}.log"
        self.ready_timeout = ready_timeout
        self._process: ManagedProcess | None = None

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.is_running

    @property
    def process(self) -> ManagedProcess | None:
        return self._process

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """What ``repr`` shows: :attr:`base_url` unless a subclass names another."""
        return self.base_url

    @abc.abstractmethod
    def _command(self) -> ManagedProcess:
        """Prepare the service (config, data directory) and return its process, not started."""

    def _managed(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        ready: str | Probe,
        ports: Sequence[int] = (),
        cwd: Path | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_timeout: float = 30.0,
    ) -> ManagedProcess:
        """The service's :class:`ManagedProcess` (log, readiness timeout, install hint),
        after checking that ``ports`` (default: :attr:`port`) are free."""
        for port in ports or (self.port,):
            ensure_port_free(port, self.host, service=self.service)
        return ManagedProcess(
            self.service,
            argv,
            cwd=cwd,
            log_path=self.log_path,
            ready=ready,
            ready_timeout=self.ready_timeout,
            stop_signal=stop_signal,
            stop_timeout=stop_timeout,
            install_hint=self.install_hint,
        )

    def start(self) -> None:
        """Start the service and wait until it is ready (nothing when it already runs)."""
        if self.is_running:
            return
        self._process = self._command()
        self._process.start()

    def stop(self) -> None:
        """Graceful stop (see :meth:`ManagedProcess.stop`); nothing when never started."""
        if self._process is not None:
            self._process.stop()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self._process is not None:
            self._process.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        return self._process.log_tail(lines) if self._process is not None else ""

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<{type(self).__name__} {self.address} {state} data={self.data_dir}>"
