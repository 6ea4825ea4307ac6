"""Our OpenTelemetry Collector distribution as a managed process.

``build/otelcol-caret`` is built by ``make collector`` from
``collector/builder-config.yaml``. Two configs run on it:

* ``otel-collector-config.yaml`` (repo root) - the production pipeline. Every
  endpoint is an ``${env:NAME:-default}`` placeholder; :class:`CollectorConfigEnv`
  is the one place in Python that knows those names, so the test-suite, ``caret-otel
  up`` and the docs cannot drift apart (a test compares it with the YAML).
* ``collector/privacy-pass.yaml`` - the Collector's privacy pass, generated from the
  semantic-conventions registry (``caret-otel semconv generate``). The production
  config's pipelines use its processors, so the two files always run together:
  :func:`config_files` adds it whenever the production config is named.
* ``collector/sink-config.yaml`` - the stand-in for Tempo and Loki in tests and the
  local stack: OTLP in, one JSON-lines file per signal out (:class:`SinkConfigEnv`).

Readiness is the ``health_check`` extension answering 200, which it does only once
every pipeline has started.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import yaml

from caret_otel.stack.ports import LOOPBACK, free_port
from caret_otel.stack.process import ManagedProcess, MissingBinaryError
from caret_otel.stack.repo import repo_root as repo_root  # public here too: collector.repo_root()

INSTALL_HINT = "build it with: make collector"


class CollectorConfigError(RuntimeError):
    """``otelcol-caret validate`` rejected a config; the message has its output."""


def binary_path() -> Path:
    """Our Collector binary: ``$CARET_OTEL_COLLECTOR_BIN`` or ``<repo>/build/otelcol-caret``.

    Raises :class:`MissingBinaryError` naming ``make collector`` when it is not built.
    """
    override = os.environ.get("CARET_OTEL_COLLECTOR_BIN")
    path = Path(override) if override else repo_root() / "build" / "otelcol-caret"
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingBinaryError(f"Collector binary {path} not found; {INSTALL_HINT}")
    return path


def default_config_path() -> Path:
    """``otel-collector-config.yaml`` at the repository root."""
    return repo_root() / "otel-collector-config.yaml"


def privacy_pass_path() -> Path:
    """``collector/privacy-pass.yaml``, generated from the registry."""
    return repo_root() / "collector" / "privacy-pass.yaml"


ConfigFiles = Path | Sequence[Path]
"""One config file, or several that the Collector merges in order (``--config`` each)."""


def config_files(config: ConfigFiles) -> tuple[Path, ...]:
    """The files to pass as ``--config`` for ``config``.

    The production config (:func:`default_config_path`) never runs without the privacy
    pass its pipelines refer to, so naming it alone means both files. Other configs
    (the sink, a test's variant) run as given; a variant of the production config lists
    :func:`privacy_pass_path` itself.
    """
    files = (config,) if isinstance(config, os.PathLike) else tuple(map(Path, config))
    if not files:
        raise ValueError("no Collector config file given")
    main = default_config_path().resolve()
    privacy = privacy_pass_path().resolve()
    resolved = [f.resolve() for f in files]
    if main in resolved and privacy not in resolved:
        files = (*files, privacy_pass_path())
    return files


def _config_flags(config: ConfigFiles) -> list[str]:
    return [f"--config={path}" for path in config_files(config)]


def sink_config_path() -> Path:
    """``collector/sink-config.yaml`` (the Tempo/Loki stand-in)."""
    return repo_root() / "collector" / "sink-config.yaml"


def components(binary: Path | None = None) -> dict[str, Any]:
    """Parsed output of ``otelcol-caret components`` (receivers, processors, ...)."""
    result = subprocess.run(
        [str(binary or binary_path()), "components"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


def validate_config(
    config_path: ConfigFiles, env: Mapping[str, str] | None = None, *, binary: Path | None = None
) -> str:
    """Dry-run ``config_path`` (see :func:`config_files`) with ``otelcol-caret validate``
    under ``env``.

    Returns the validator's output (warnings, e.g. deprecations); raises
    :class:`CollectorConfigError` when the config is rejected.
    """
    names = ", ".join(str(p) for p in config_files(config_path))
    result = subprocess.run(
        [str(binary or binary_path()), "validate", *_config_flags(config_path)],
        capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise CollectorConfigError(f"{names} is invalid:\n{output}")
    return output


def _env_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _ConfigEnv:
    """What :class:`CollectorConfigEnv` and :class:`SinkConfigEnv` share: the fields
    behind ``ENV_NAMES`` as variables, and the URLs of the OTLP/HTTP and health
    listeners (``host:port`` fields)."""

    #: field name -> environment variable read by the config.
    ENV_NAMES: ClassVar[Mapping[str, str]]
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # set by @dataclass
    http_endpoint: str
    health_endpoint: str

    def as_env(self) -> dict[str, str]:
        """Every variable, as strings, ready for ``os.environ``/``subprocess`` ``env``."""
        return {name: _env_text(getattr(self, field)) for field, name in self.ENV_NAMES.items()}

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    @property
    def health_port(self) -> int:
        return int(self.health_endpoint.rsplit(":", 1)[1])

    @property
    def http_url(self) -> str:
        """Base URL for OTLP/HTTP senders (SDK: ``<http_url>/v1/traces`` ...)."""
        return f"http://{self.http_endpoint}"


@dataclass(frozen=True)
class CollectorConfigEnv(_ConfigEnv):
    """The ``${env:...}`` inputs of ``otel-collector-config.yaml``, with its defaults.

    ``as_env()`` gives the variables to export; :meth:`with_free_ports` gives a set of
    loopback listeners that cannot collide with anything else running.
    """

    #: OTLP/gRPC listener (``host:port``).
    grpc_endpoint: str = "127.0.0.1:4317"
    #: OTLP/HTTP listener (``host:port``).
    http_endpoint: str = "127.0.0.1:4318"
    #: ``health_check`` extension (``host:port``); 200 on ``/`` once pipelines run.
    health_endpoint: str = "127.0.0.1:13133"
    #: The Collector's own metrics (Prometheus text on ``/metrics``).
    telemetry_host: str = "127.0.0.1"
    telemetry_port: int = 8888
    #: Log level of the Collector's own logs.
    log_level: str = "info"
    #: ``memory_limiter`` hard limit and spike allowance, MiB.
    memory_limit_mib: int = 512
    memory_spike_limit_mib: int = 128
    #: Prometheus remote-write receiver URL.
    prometheus_remote_write_url: str = "http://127.0.0.1:9090/api/v1/write"
    #: Tempo's OTLP/gRPC receiver (``host:port``) and whether to skip TLS.
    tempo_endpoint: str = "127.0.0.1:14317"
    tempo_insecure: bool = True
    #: Loki's OTLP endpoint (``.../otlp``; the exporter appends ``/v1/logs``).
    loki_endpoint: str = "http://127.0.0.1:3100/otlp"
    #: The business exporter's OTLP/HTTP base URL (``/v1/logs``, ``/v1/metrics`` appended).
    business_exporter_endpoint: str = "http://127.0.0.1:4320"
    #: Directory of the persistent sending queue of the business leg.
    storage_dir: str = ".caret-otel/collector/storage"
    #: How often the span_metrics connector emits the GenAI span metrics (Go duration).
    span_metrics_flush_interval: str = "15s"
    #: HMAC-SHA256 key of the privacy pass (>= 32 bytes). A secret: the config has no
    #: default for it, so a Collector without a key refuses to start.
    hmac_key: str = field(default="", repr=False)
    #: Key id written into the Collector's pseudonyms (``v<id>:<hex>``).
    hmac_key_id: str = "collector"

    #: field name -> environment variable read by ``otel-collector-config.yaml``.
    ENV_NAMES: ClassVar[Mapping[str, str]] = {
        "grpc_endpoint": "CARET_OTEL_COLLECTOR_GRPC_ENDPOINT",
        "http_endpoint": "CARET_OTEL_COLLECTOR_HTTP_ENDPOINT",
        "health_endpoint": "CARET_OTEL_COLLECTOR_HEALTH_ENDPOINT",
        "telemetry_host": "CARET_OTEL_COLLECTOR_TELEMETRY_HOST",
        "telemetry_port": "CARET_OTEL_COLLECTOR_TELEMETRY_PORT",
        "log_level": "CARET_OTEL_COLLECTOR_LOG_LEVEL",
        "memory_limit_mib": "CARET_OTEL_COLLECTOR_MEMORY_LIMIT_MIB",
        "memory_spike_limit_mib": "CARET_OTEL_COLLECTOR_MEMORY_SPIKE_LIMIT_MIB",
        "prometheus_remote_write_url": "CARET_OTEL_PROMETHEUS_REMOTE_WRITE_URL",
        "tempo_endpoint": "CARET_OTEL_TEMPO_ENDPOINT",
        "tempo_insecure": "CARET_OTEL_TEMPO_INSECURE",
        "loki_endpoint": "CARET_OTEL_LOKI_ENDPOINT",
        "business_exporter_endpoint": "CARET_OTEL_BUSINESS_EXPORTER_ENDPOINT",
        "storage_dir": "CARET_OTEL_COLLECTOR_STORAGE_DIR",
        "span_metrics_flush_interval": "CARET_OTEL_SPAN_METRICS_FLUSH_INTERVAL",
        "hmac_key": "CARET_OTEL_COLLECTOR_HMAC_KEY",
        "hmac_key_id": "CARET_OTEL_COLLECTOR_HMAC_KEY_ID",
    }
    #: Fields that are secrets: no default in any config file, never printed.
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"hmac_key"})
    #: The shape of a pseudonym key id (as in ``caret_otel.processors.pseudonyms``).
    KEY_ID_PATTERN: ClassVar[re.Pattern[str]] = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
    MIN_HMAC_KEY_BYTES: ClassVar[int] = 32

    def __post_init__(self) -> None:
        if not self.KEY_ID_PATTERN.match(self.hmac_key_id):
            raise ValueError(
                f"hmac_key_id {self.hmac_key_id!r}: use 1-32 letters, digits, '-' or '_'"
            )
        if self.hmac_key and len(self.hmac_key.encode()) < self.MIN_HMAC_KEY_BYTES:
            raise ValueError(f"hmac_key: at least {self.MIN_HMAC_KEY_BYTES} bytes are needed")

    @classmethod
    def with_free_ports(cls, **fields: Any) -> CollectorConfigEnv:
        """Defaults, with every *listener* of the Collector on a fresh loopback port.

        For tests and the local stack: unless ``hmac_key`` is given, a throw-away random
        key is made (pseudonyms then differ from run to run; production sets its own).
        """
        listeners: dict[str, Any] = {
            "grpc_endpoint": f"{LOOPBACK}:{free_port()}",
            "http_endpoint": f"{LOOPBACK}:{free_port()}",
            "health_endpoint": f"{LOOPBACK}:{free_port()}",
            "telemetry_host": LOOPBACK,
            "telemetry_port": free_port(),
            "hmac_key": secrets.token_urlsafe(48),
        }
        return cls(**{**listeners, **fields})

    @property
    def telemetry_url(self) -> str:
        """The Collector's own Prometheus metrics page."""
        return f"http://{self.telemetry_host}:{self.telemetry_port}/metrics"


@dataclass(frozen=True)
class SinkConfigEnv(_ConfigEnv):
    """The ``${env:...}`` inputs of ``collector/sink-config.yaml``.

    The sink writes what it receives as OTLP/JSON lines, one file per signal. Its
    OTLP/HTTP receiver also serves logs under ``/otlp/v1/logs``, the path Loki uses,
    so the Collector's Loki exporter is exercised with its real endpoint shape.
    """

    grpc_endpoint: str = "127.0.0.1:14317"
    http_endpoint: str = "127.0.0.1:3100"
    health_endpoint: str = "127.0.0.1:14133"
    logs_url_path: str = "/otlp/v1/logs"
    traces_path: str = ".caret-otel/sink/traces.jsonl"
    logs_path: str = ".caret-otel/sink/logs.jsonl"
    metrics_path: str = ".caret-otel/sink/metrics.jsonl"

    ENV_NAMES: ClassVar[Mapping[str, str]] = {
        "grpc_endpoint": "CARET_OTEL_SINK_GRPC_ENDPOINT",
        "http_endpoint": "CARET_OTEL_SINK_HTTP_ENDPOINT",
        "health_endpoint": "CARET_OTEL_SINK_HEALTH_ENDPOINT",
        "logs_url_path": "CARET_OTEL_SINK_LOGS_URL_PATH",
        "traces_path": "CARET_OTEL_SINK_TRACES_PATH",
        "logs_path": "CARET_OTEL_SINK_LOGS_PATH",
        "metrics_path": "CARET_OTEL_SINK_METRICS_PATH",
    }

    @classmethod
    def in_dir(cls, directory: Path, **fields: Any) -> SinkConfigEnv:
        """Free loopback ports; the three files under ``directory``."""
        values: dict[str, Any] = {
            "grpc_endpoint": f"{LOOPBACK}:{free_port()}",
            "http_endpoint": f"{LOOPBACK}:{free_port()}",
            "health_endpoint": f"{LOOPBACK}:{free_port()}",
            "traces_path": str(directory / "traces.jsonl"),
            "logs_path": str(directory / "logs.jsonl"),
            "metrics_path": str(directory / "metrics.jsonl"),
        }
        return cls(**{**values, **fields})

    @property
    def loki_endpoint(self) -> str:
        """What to give the Collector as its Loki endpoint (logs land in ``logs_path``)."""
        return self.http_url + self.logs_url_path.removesuffix("/v1/logs")


class CollectorProcess:
    """``otelcol-caret --config <file> ...`` with ``env``, ready when healthy.

    Args:
        binary: the Collector executable (see :func:`binary_path`).
        config_path: the YAML config to run, or several files merged in order; the
            production config brings its privacy pass along (:func:`config_files`).
        env: variables for the config's ``${env:...}`` placeholders (on top of
            ``os.environ``); must point the ``health_check`` endpoint at ``health_port``.
        log_path: the Collector's own log.
        health_port: port of the ``health_check`` extension on 127.0.0.1.
        name: used in logs and errors.
        extra_args: more flags (e.g. ``--feature-gates=...``).
    """

    def __init__(
        self,
        binary: Path,
        config_path: ConfigFiles,
        env: Mapping[str, str],
        log_path: Path,
        health_port: int,
        *,
        name: str = "otelcol-caret",
        extra_args: Sequence[str] = (),
        ready_timeout: float = 30.0,
        stop_timeout: float = 15.0,
        cwd: Path | None = None,
    ) -> None:
        self.binary = Path(binary)
        self.config_files = config_files(config_path)
        self.config_path = self.config_files[0]
        self.env = dict(env)
        self.log_path = Path(log_path)
        self.health_port = health_port
        self.name = name
        self.process = ManagedProcess(
            name,
            [self.binary, *_config_flags(self.config_files), *extra_args],
            log_path=self.log_path,
            env=self.env,
            cwd=cwd,
            ready=self.health_url,
            ready_timeout=ready_timeout,
            stop_signal=signal.SIGTERM,  # drains pipelines; the persistent queue keeps the rest
            stop_timeout=stop_timeout,
            install_hint=INSTALL_HINT,
        )

    @property
    def health_url(self) -> str:
        return f"http://{LOOPBACK}:{self.health_port}/"

    @property
    def is_running(self) -> bool:
        return self.process.is_running

    def validate(self) -> str:
        """``otelcol-caret validate`` on this config and env (see :func:`validate_config`)."""
        return validate_config(self.config_files, self.env, binary=self.binary)

    def start(self) -> None:
        if not self.binary.is_file():
            raise MissingBinaryError(f"Collector binary {self.binary} not found; {INSTALL_HINT}")
        if not self.is_running:
            self.process.start()

    def stop(self) -> int | None:
        return self.process.stop()

    def kill(self) -> int | None:
        return self.process.kill()

    def restart(self) -> None:
        self.process.restart()

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)

    def __repr__(self) -> str:
        return f"<CollectorProcess {self.name} {self.config_path.name} {self.process!r}>"
