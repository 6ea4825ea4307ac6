"""The whole local stack in one object: start, supervise, stop.

:class:`LocalStack` runs, on 127.0.0.1 and in this order,

1. PostgreSQL - ``DATABASE_URL`` when given, else an embedded server under
   ``<data dir>/postgres`` - migrated, with the writer and analyst role passwords set;
2. the sink Collector, standing where Tempo and Loki would be (JSON-lines files);
3. Prometheus with the remote-write receiver, scraping the gateway, the exporter and
   the Collector (optional: without Debian's binary the stack runs without it), and
   before it Alertmanager, which Prometheus sends its alerts to (receivers from the
   ``CARET_OTEL_ALERT_*`` variables; optional like Prometheus);
4. the business exporter (``caret-otel exporter``) writing PostgreSQL;
5. our Collector (``otel-collector-config.yaml`` with its privacy pass) - or, with
   ``kafka=True``, the two tiers: a KRaft Kafka broker, a processing Collector
   (``collector/processing-config.yaml``) and an edge Collector
   (``collector/edge-config.yaml``) where the single Collector would listen;
6. the gateway (``caret-otel gateway``), the public door.

Every part must pass its readiness probe before the next starts; a failure stops what
already runs and raises :class:`StackStartError` naming the part and showing its log.
Everything that can be checked without starting anything (programs installed, fixed
ports free, data directory not in use) is checked first, so most mistakes leave no
process behind at all. :meth:`LocalStack.wait` supervises: the first part that exits
is reported as a :class:`Crash`, and :meth:`LocalStack.stop` then takes the rest
down, gateway first so that queued data drains towards PostgreSQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Final
from urllib.parse import urlsplit

import orjson
import psycopg

from caret_otel.contracts.collector import (
    KafkaTierEnv,
    edge_config_path,
    processing_config_path,
)
from caret_otel.core.environment_variables import (
    CARET_OTEL_DATABASE_URL,
    CARET_OTEL_EXPERIMENTS_FILE,
    CARET_OTEL_EXPORTER_LISTEN,
)
from caret_otel.core.errors import ServiceError
from caret_otel.dashboards.prometheus_config import TemplateError, render
from caret_otel.experiments.definitions import export_document
from caret_otel.experiments.definitions import load as load_experiments
from caret_otel.exporters.postgres.roles import ROLE_PASSWORD_ENVS, set_role_passwords
from caret_otel.exporters.postgres.schema import MigrationError, migrate
from caret_otel.processors.privacy.pseudonyms import KEY_FILE_ENV, KEYS_ENV, PseudonymKeyError
from caret_otel.receivers.gateway import config as gateway_config
from caret_otel.stack import alertmanager as alertmanager_mod
from caret_otel.stack import collector as collector_mod
from caret_otel.stack import kafka as kafka_mod
from caret_otel.stack import prometheus as prometheus_mod
from caret_otel.stack.collector import (
    CollectorConfigEnv,
    CollectorConfigError,
    CollectorProcess,
    SinkConfigEnv,
)
from caret_otel.stack.credentials import CredentialsError, StackCredentials
from caret_otel.stack.ports import LOOPBACK, PortInUseError, ensure_port_free, free_port
from caret_otel.stack.postgres import PostgresServer, find_bindir
from caret_otel.stack.process import ManagedProcess, MissingBinaryError, ProcessStartError
from caret_otel.stack.state import DatabaseInfo, StackInfo, remove_state

DATABASE_NAME: Final = "caret"
WRITER_ROLE: Final = "caret_writer"
GATEWAY_ROLE: Final = "caret_gateway"
LOCK_FILE: Final = "stack.lock"
SERVICE_READY_TIMEOUT_S: Final = 90.0

# Variables a service must not inherit from the shell that runs `up`: they would
# override the files and endpoints the stack hands it (an env token wins over a file).
_CONTROLLED_PREFIXES: Final = ("OTEL_",)
_CONTROLLED: Final = frozenset(
    {
        gateway_config.INGEST_TOKENS_ENV,
        gateway_config.INGEST_TOKENS_FILE_ENV,
        gateway_config.ADMIN_TOKEN_ENV,
        gateway_config.ADMIN_TOKEN_FILE_ENV,
        gateway_config.DATABASE_URL_ENV,
        gateway_config.COUNTRY_HEADER_ENV,
        KEYS_ENV,
        KEY_FILE_ENV,
        CARET_OTEL_DATABASE_URL,
        CARET_OTEL_EXPORTER_LISTEN,
        *ROLE_PASSWORD_ENVS.values(),
    }
)


class StackStartError(ServiceError):
    """The stack could not start; nothing it started is left running."""


# What can go wrong while parts start, each with a message that says what to do; turned
# into StackStartError so `up` prints it instead of a traceback.
_START_FAILURES: Final = (
    ProcessStartError,
    MissingBinaryError,
    PortInUseError,
    OSError,
    psycopg.Error,
    MigrationError,
    CredentialsError,
    PseudonymKeyError,
    CollectorConfigError,
    TemplateError,
    alertmanager_mod.AlertReceiverError,
)


@dataclass(frozen=True)
class StackPorts:
    """Fixed ports (None: a free one is picked). All listen on 127.0.0.1."""

    gateway: int | None = None
    exporter: int | None = None
    prometheus: int | None = None
    postgres: int | None = None
    collector: int | None = None
    """The Collector's OTLP/HTTP port."""


@dataclass(frozen=True)
class Crash:
    """A part of the stack exited while it should have been running."""

    name: str
    returncode: int | None
    log_path: Path
    log_tail: str

    def message(self) -> str:
        return (
            f"{self.name} exited unexpectedly (status {self.returncode}); "
            f"log: {self.log_path}\n--- last lines ---\n{self.log_tail}"
        )


def caret_otel_command() -> list[str]:
    """How to run our own CLI in a child process (the console script of this Python)."""
    script = Path(sys.executable).with_name("caret-otel")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("caret-otel")
    if found:
        return [found]
    return [sys.executable, "-c", "from caret_otel.cli.main import main; main()"]


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without the variables the stack controls, plus
    ``extra``; Python children never put their working directory on ``sys.path``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _CONTROLLED and not name.startswith(_CONTROLLED_PREFIXES)
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class LocalStack:
    """Gateway, exporter, PostgreSQL, our Collector, Prometheus and the sink Collector.

    Args:
        data_dir: holds every part's data, logs (``logs/``), secrets (``secrets/``) and
            ``stack.json``. The embedded PostgreSQL runs as an unprivileged user when we
            are root, so the folder must be reachable by it (not under a 0700 tree).
        ports: fixed ports; the others are picked free.
        database_url: an existing PostgreSQL (migrated with this URL, used by the
            exporter and the gateway as is) instead of the embedded one.
        prometheus: True requires Prometheus, False skips it, None uses it if installed.
        fsync: False for throw-away data (tests, the demo): faster PostgreSQL.
        kafka: run the two Collector tiers with Kafka between them instead of one Collector.
        say: receives one-line progress messages.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        ports: StackPorts = StackPorts(),
        database_url: str | None = None,
        prometheus: bool | None = None,
        fsync: bool = True,
        kafka: bool = False,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.logs_dir = self.data_dir / "logs"
        self.ports = ports
        self.database_url = database_url
        self.want_prometheus = prometheus
        self.fsync = fsync
        self.want_kafka = kafka
        self.say = say
        self.warnings: list[str] = []
        self.info: StackInfo | None = None
        self._parts: list[tuple[str, ManagedProcess]] = []
        self._stoppers: list[tuple[str, Callable[[], object]]] = []
        self._lock_handle: IO[str] | None = None
        self._stopping = threading.Event()
        self._caret = caret_otel_command()
        self._gateway_port = ports.gateway or free_port()
        self._exporter_port = ports.exporter or free_port()
        self._prometheus_port = ports.prometheus or free_port()
        self._collector_http_port = ports.collector or free_port()
        self._collector_telemetry_port = free_port()
        self._collector_binary: Path | None = None
        self._run_prometheus = False
        self._run_alertmanager = False
        self._alertmanager_port = free_port()
        self._alert_receivers = alertmanager_mod.Receivers()

    # --- URLs ------------------------------------------------------------------------------
    @property
    def gateway_url(self) -> str:
        return f"http://{LOOPBACK}:{self._gateway_port}"

    @property
    def exporter_url(self) -> str:
        return f"http://{LOOPBACK}:{self._exporter_port}"

    @property
    def prometheus_url(self) -> str | None:
        return f"http://{LOOPBACK}:{self._prometheus_port}" if self._run_prometheus else None

    @property
    def alertmanager_url(self) -> str | None:
        running = self._run_alertmanager
        return f"http://{LOOPBACK}:{self._alertmanager_port}" if running else None

    # --- checks before anything starts -----------------------------------------------------
    def preflight(self) -> None:
        """Fail now, before any process starts: missing programs, taken ports."""
        self._collector_binary = collector_mod.binary_path()
        if self.want_kafka:
            kafka_mod.classpath()
            kafka_mod.java_binary()
        if self.database_url is None:
            find_bindir()
        self._run_prometheus = self.want_prometheus is not False
        if self._run_prometheus:
            try:
                prometheus_mod.binary_path()
            except MissingBinaryError as exc:
                if self.want_prometheus:
                    raise
                self._run_prometheus = False
                self.warnings.append(
                    f"Prometheus is not installed, so the stack runs without it (metrics are "
                    f"dropped after retries). {exc}. Then run `caret-otel up` again."
                )
        self._run_alertmanager = self._run_prometheus
        if self._run_alertmanager:
            self._alert_receivers = alertmanager_mod.Receivers.from_env()
            try:
                alertmanager_mod.binary_path()
            except MissingBinaryError as exc:
                self._run_alertmanager = False
                self.warnings.append(
                    f"Alertmanager is not installed, so alerts reach nobody. {exc}. "
                    "Then run `caret-otel up` again."
                )
        fixed = {
            "gateway": self.ports.gateway,
            "exporter": self.ports.exporter,
            "prometheus": self.ports.prometheus if self._run_prometheus else None,
            "postgres": self.ports.postgres if self.database_url is None else None,
            "collector": self.ports.collector,
        }
        for service, port in fixed.items():
            if port is not None:
                ensure_port_free(port, service=service)

    def _lock(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        handle = (self.data_dir / LOCK_FILE).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise StackStartError(
                f"{self.data_dir} is in use by a running `caret-otel up` (pid {owner}); "
                "stop it first or choose another --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_handle = handle

    def _unlock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    # --- start -----------------------------------------------------------------------------
    def start(self) -> StackInfo:
        """Start every part and wait until each is healthy; returns how to reach them.

        Raises :class:`StackStartError` (or the :class:`MissingBinaryError` /
        :class:`PortInUseError` of the preflight) with nothing left running.
        """
        try:
            self.preflight()
        except (MissingBinaryError, PortInUseError, alertmanager_mod.AlertReceiverError) as exc:
            raise StackStartError(str(exc)) from exc
        self._lock()
        try:
            self.info = self._start_parts()
        except BaseException as exc:
            self.stop()
            if isinstance(exc, _START_FAILURES):
                raise StackStartError(str(exc)) from exc
            raise  # Ctrl-C, SIGTERM, or a bug (with its traceback)
        self.info.write()
        return self.info

    def _start_parts(self) -> StackInfo:
        credentials, created = StackCredentials.ensure(self.data_dir)
        if created:
            self.say(f"generated {', '.join(created)} in {credentials.directory} (mode 0600)")
        database, writer_dsn = self._start_database(credentials)
        sink = self._start_sink()
        if self._run_alertmanager:
            self._start_alertmanager()
        if self._run_prometheus:
            remote_write = self._start_prometheus()
        else:
            remote_write = f"http://{LOOPBACK}:{free_port()}/api/v1/write"
        self._start_exporter(writer_dsn)
        collector_env = self._start_collector(credentials, sink, remote_write)
        # The internet-facing gateway logs in as caret_gateway (consent and the deletion
        # function only); an external DATABASE_URL is used as given.
        gateway_dsn = (
            writer_dsn
            if database.url_from_environment
            else database.login_dsn(GATEWAY_ROLE, credentials.gateway_password_file)
        )
        self._start_gateway(credentials, collector_env, gateway_dsn)
        return StackInfo(
            data_dir=str(self.data_dir),
            pid=os.getpid(),
            gateway_url=self.gateway_url,
            exporter_url=self.exporter_url,
            collector_otlp_http_url=collector_env.http_url,
            collector_otlp_grpc_endpoint=collector_env.grpc_endpoint,
            collector_health_url=f"http://{collector_env.health_endpoint}/",
            collector_metrics_url=collector_env.telemetry_url,
            prometheus_url=self.prometheus_url,
            sink_traces_path=sink.traces_path,
            sink_logs_path=sink.logs_path,
            sink_metrics_path=sink.metrics_path,
            logs_dir=str(self.logs_dir),
            secrets_dir=str(credentials.directory),
            database=database,
            country_header=gateway_config.DEFAULT_COUNTRY_HEADER,
        )

    def _track(self, name: str, process: ManagedProcess | None, stop: Callable[[], object]) -> None:
        if process is not None:
            self._parts.append((name, process))
        self._stoppers.append((name, stop))

    def _start_database(self, credentials: StackCredentials) -> tuple[DatabaseInfo, str]:
        passwords = {
            ROLE_PASSWORD_ENVS[WRITER_ROLE]: credentials.writer_password,
            ROLE_PASSWORD_ENVS["caret_analyst"]: credentials.analyst_password,
            ROLE_PASSWORD_ENVS[GATEWAY_ROLE]: credentials.gateway_password,
        }
        if self.database_url is not None:
            self.say("migrating the database given by DATABASE_URL")
            migrate(self.database_url)
            host, port, dbname = _url_parts(self.database_url)
            info = DatabaseInfo(
                host, port, dbname, None, None, None, None, url_from_environment=True
            )
            return info, self.database_url
        self.say("starting PostgreSQL (embedded)")
        server = PostgresServer(
            self.data_dir / "postgres" / "data",
            port=self.ports.postgres,
            log_path=self.logs_dir / "postgres.log",
            fsync=self.fsync,
        )
        self._track("postgres", None, server.stop)
        server.start()
        self._parts.append(("postgres", _required(server.process)))
        admin_dsn = server.create_database(DATABASE_NAME)
        applied = migrate(admin_dsn)
        if applied:
            self.say(f"applied {len(applied)} database migration(s)")
        set_role_passwords(admin_dsn, environ=passwords)
        info = DatabaseInfo(
            host=server.host,
            port=server.port,
            dbname=DATABASE_NAME,
            superuser=server.superuser,
            superuser_password_file=str(server.password_file),
            writer_password_file=str(credentials.writer_password_file),
            analyst_password_file=str(credentials.analyst_password_file),
        )
        return info, info.writer_dsn()

    def _start_sink(self) -> SinkConfigEnv:
        self.say("starting the sink Collector (Tempo/Loki stand-in)")
        assert self._collector_binary is not None
        env = SinkConfigEnv.in_dir(self.data_dir / "sink")
        sink = CollectorProcess(
            self._collector_binary,
            collector_mod.sink_config_path(),
            env.as_env(),
            self.logs_dir / "sink-collector.log",
            env.health_port,
            name="sink-collector",
            ready_timeout=SERVICE_READY_TIMEOUT_S,
        )
        self._track("sink-collector", sink.process, sink.stop)
        sink.start()
        return env

    def _start_alertmanager(self) -> None:
        delivers = self._alert_receivers.configured()
        self.say(
            "starting Alertmanager (receivers: "
            + (", ".join(delivers) or "none set, alerts are listed but not sent; docs/alerts.md")
            + ")"
        )
        root = self.data_dir / "alertmanager"
        config = alertmanager_mod.write_config(root, self._alert_receivers)
        server = alertmanager_mod.AlertmanagerServer(
            root / "data",
            config,
            port=self._alertmanager_port,
            log_path=self.logs_dir / "alertmanager.log",
            ready_timeout=SERVICE_READY_TIMEOUT_S,
        )
        self._track("alertmanager", None, server.stop)
        server.start()
        self._parts.append(("alertmanager", _required(server.process)))

    def _start_prometheus(self) -> str:
        self.say("starting Prometheus")
        root = self.data_dir / "prometheus"
        root.mkdir(parents=True, exist_ok=True)
        config = root / "prometheus.yml"
        alerting = (
            alertmanager_mod.prometheus_alerting(f"{LOOPBACK}:{self._alertmanager_port}")
            if self._run_alertmanager
            else ""
        )
        config.write_text(
            render(
                gateway=f"{LOOPBACK}:{self._gateway_port}",
                exporter=f"{LOOPBACK}:{self._exporter_port}",
                collector=f"{LOOPBACK}:{self._collector_telemetry_port}",
            )
            + alerting
        )
        server = prometheus_mod.PrometheusServer(
            root / "data",
            port=self._prometheus_port,
            config_path=config,
            log_path=self.logs_dir / "prometheus.log",
            ready_timeout=SERVICE_READY_TIMEOUT_S,
        )
        self._track("prometheus", None, server.stop)
        server.start()
        self._parts.append(("prometheus", _required(server.process)))
        return server.remote_write_url

    def _python_service(
        self, name: str, args: list[str], env: Mapping[str, str], ready: str
    ) -> ManagedProcess:
        process = ManagedProcess(
            name,
            [*self._caret, *args],
            log_path=self.logs_dir / f"{name}.log",
            env=child_environment(env),
            inherit_env=False,
            cwd=self.data_dir,
            ready=ready,
            ready_timeout=SERVICE_READY_TIMEOUT_S,
            stop_timeout=30.0,
        )
        self._track(name, process, process.stop)
        process.start()
        return process

    def _start_exporter(self, writer_dsn: str) -> None:
        self.say("starting the business exporter")
        self._python_service(
            "exporter",
            ["exporter", "--host", LOOPBACK, "--port", str(self._exporter_port), "--no-migrate"],
            {gateway_config.DATABASE_URL_ENV: writer_dsn},
            f"{self.exporter_url}/readyz",
        )

    def _start_collector(
        self, credentials: StackCredentials, sink: SinkConfigEnv, remote_write: str
    ) -> CollectorConfigEnv:
        if self.want_kafka:
            return self._start_two_tiers(credentials, sink, remote_write)
        self.say("starting our Collector")
        assert self._collector_binary is not None
        directory = self.data_dir / "collector"
        directory.mkdir(parents=True, exist_ok=True)
        env = CollectorConfigEnv.with_free_ports(
            http_endpoint=f"{LOOPBACK}:{self._collector_http_port}",
            telemetry_port=self._collector_telemetry_port,
            prometheus_remote_write_url=remote_write,
            tempo_endpoint=sink.grpc_endpoint,
            tempo_insecure=True,
            loki_endpoint=sink.loki_endpoint,
            business_exporter_endpoint=self.exporter_url,
            storage_dir=str(directory / "storage"),
            hmac_key=credentials.collector_hmac_key,
        )
        process = CollectorProcess(
            self._collector_binary,
            collector_mod.default_config_path(),
            env.as_env(),
            self.logs_dir / "collector.log",
            env.health_port,
            name="collector",
            cwd=directory,
            ready_timeout=SERVICE_READY_TIMEOUT_S,
        )
        self._track("collector", process.process, process.stop)
        process.start()
        return env

    def _start_two_tiers(
        self, credentials: StackCredentials, sink: SinkConfigEnv, remote_write: str
    ) -> CollectorConfigEnv:
        """Kafka, one processing Collector, then the edge Collector the gateway sends to."""
        self.say("starting Kafka (KRaft)")
        assert self._collector_binary is not None
        root = self.data_dir / "kafka"
        broker = kafka_mod.KafkaBroker(root / "data", log_path=self.logs_dir / "kafka.log")
        self._track("kafka", None, broker.stop)
        broker.start()
        assert broker.process is not None
        self._parts.append(("kafka", broker.process))
        tier = KafkaTierEnv(brokers=broker.bootstrap_servers)
        broker.create_topics([tier.topic(signal) for signal in tier.SIGNALS])
        tiers = (
            ("processing-collector", processing_config_path(),
             CollectorConfigEnv.with_free_ports(
                 prometheus_remote_write_url=remote_write, tempo_endpoint=sink.grpc_endpoint,
                 tempo_insecure=True, loki_endpoint=sink.loki_endpoint,
                 business_exporter_endpoint=self.exporter_url,
                 hmac_key=credentials.collector_hmac_key)),
            ("edge-collector", edge_config_path(),
             CollectorConfigEnv.with_free_ports(
                 http_endpoint=f"{LOOPBACK}:{self._collector_http_port}",
                 telemetry_port=self._collector_telemetry_port,
                 storage_dir=str(self.data_dir / "edge-collector" / "storage"),
                 hmac_key=credentials.collector_hmac_key)),
        )  # fmt: skip
        for name, config, env in tiers:
            self.say(f"starting the {name.replace('-', ' ')}")
            directory = self.data_dir / name
            directory.mkdir(parents=True, exist_ok=True)
            process = CollectorProcess(
                self._collector_binary, config, {**env.as_env(), **tier.as_env()},
                self.logs_dir / f"{name}.log", env.health_port, name=name, cwd=directory,
                ready_timeout=SERVICE_READY_TIMEOUT_S,
            )  # fmt: skip
            self._track(name, process.process, process.stop)
            process.start()
        return tiers[-1][2]

    def _start_gateway(
        self, credentials: StackCredentials, collector: CollectorConfigEnv, database_dsn: str
    ) -> None:
        self.say("starting the gateway")
        # The experiments the gateway serves to clients: the repository's definitions.
        served = self.data_dir / "experiments.json"
        served.write_bytes(orjson.dumps(export_document(load_experiments())))
        self._python_service(
            "gateway",
            ["gateway", "--host", LOOPBACK, "--port", str(self._gateway_port), "--no-migrate"],
            {
                gateway_config.INGEST_TOKENS_FILE_ENV: str(credentials.ingest_token_file),
                gateway_config.ADMIN_TOKEN_FILE_ENV: str(credentials.admin_token_file),
                KEY_FILE_ENV: str(credentials.pseudonym_key_file),
                gateway_config.OTLP_ENDPOINT_ENV: collector.http_url,
                gateway_config.DATABASE_URL_ENV: database_dsn,
                CARET_OTEL_EXPERIMENTS_FILE: str(served),
            },
            f"{self.gateway_url}/readyz",
        )

    # --- supervision -----------------------------------------------------------------------
    def poll(self) -> Crash | None:
        """The first part that is no longer running (None while all run)."""
        if self._stopping.is_set():
            return None
        for name, process in self._parts:
            if not process.is_running:
                return Crash(name, process.returncode, process.log_path, process.log_tail(20))
        return None

    def wait(self, stop: threading.Event, interval_s: float = 0.5) -> Crash | None:
        """Block until a part crashes (returned) or ``stop`` is set (None)."""
        while True:
            crash = self.poll()
            if crash is not None:
                return crash
            if stop.wait(interval_s):
                return None

    def stop(self) -> None:
        """Stop every part, newest first (idempotent); remove ``stack.json``.

        ``stack.json`` is removed only by the instance holding the data directory's lock:
        a second ``up`` refused because the directory is in use must leave the running
        stack's state alone (it is how ``simulate``, ``report`` and ``demo`` find it).
        """
        self._stopping.set()
        if self._lock_handle is not None:
            remove_state(self.data_dir)
        while self._stoppers:
            name, stop = self._stoppers.pop()
            self.say(f"stopping {name}")
            with contextlib.suppress(Exception):
                stop()
        self._parts.clear()
        self._unlock()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _required(process: ManagedProcess | None) -> ManagedProcess:
    if process is None:
        raise ProcessStartError("a service reported ready without a process")
    return process


def _url_parts(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    return parts.hostname or LOOPBACK, parts.port or 5432, parts.path.lstrip("/") or "postgres"
