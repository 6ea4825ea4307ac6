"""The contract between our Collector configs and everything that runs them.

``otel-collector-config.yaml`` (the production pipeline) and ``collector/sink-config.yaml``
(the Tempo/Loki stand-in) read every endpoint, path and secret from an
``${env:NAME:-default}`` placeholder. :class:`CollectorConfigEnv` and
:class:`SinkConfigEnv` are the one place in Python that knows those names, so the
test suite, ``caret-otel up``, the registry's privacy-pass generator and the docs cannot
drift apart (a test compares them with the YAML). The paths of the config files live
here too. Nothing here starts a process: that is :mod:`caret_otel.stack.collector`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from caret_otel.contracts.checkout import repo_root
from caret_otel.core.environment_variables import (
    CARET_OTEL_BUSINESS_EXPORTER_ENDPOINT,
    CARET_OTEL_COLLECTOR_GRPC_ENDPOINT,
    CARET_OTEL_COLLECTOR_HEALTH_ENDPOINT,
    CARET_OTEL_COLLECTOR_HMAC_KEY,
    CARET_OTEL_COLLECTOR_HMAC_KEY_ID,
    CARET_OTEL_COLLECTOR_HTTP_ENDPOINT,
    CARET_OTEL_COLLECTOR_LOG_LEVEL,
    CARET_OTEL_COLLECTOR_MEMORY_LIMIT_MIB,
    CARET_OTEL_COLLECTOR_MEMORY_SPIKE_LIMIT_MIB,
    CARET_OTEL_COLLECTOR_STORAGE_DIR,
    CARET_OTEL_COLLECTOR_TELEMETRY_HOST,
    CARET_OTEL_COLLECTOR_TELEMETRY_PORT,
    CARET_OTEL_KAFKA_BROKERS,
    CARET_OTEL_KAFKA_CONSUMER_GROUP,
    CARET_OTEL_KAFKA_TOPIC_PREFIX,
    CARET_OTEL_LOKI_ENDPOINT,
    CARET_OTEL_PROMETHEUS_REMOTE_WRITE_URL,
    CARET_OTEL_SINK_GRPC_ENDPOINT,
    CARET_OTEL_SINK_HEALTH_ENDPOINT,
    CARET_OTEL_SINK_HTTP_ENDPOINT,
    CARET_OTEL_SINK_LOGS_PATH,
    CARET_OTEL_SINK_LOGS_URL_PATH,
    CARET_OTEL_SINK_METRICS_PATH,
    CARET_OTEL_SINK_TRACES_PATH,
    CARET_OTEL_SPAN_METRICS_FLUSH_INTERVAL,
    CARET_OTEL_TEMPO_ENDPOINT,
    CARET_OTEL_TEMPO_INSECURE,
)


def default_config_path() -> Path:
    """``otel-collector-config.yaml`` at the repository root."""
    return repo_root() / "otel-collector-config.yaml"


def privacy_pass_path() -> Path:
    """``collector/privacy-pass.yaml``, generated from the registry."""
    return repo_root() / "collector" / "privacy-pass.yaml"


def edge_config_path() -> Path:
    """``collector/edge-config.yaml``: the edge tier of the two-tier topology (OTLP in,
    the privacy pass, Kafka out)."""
    return repo_root() / "collector" / "edge-config.yaml"


def processing_config_path() -> Path:
    """``collector/processing-config.yaml``: the processing tier (Kafka in, one consumer
    group per signal, the routing of the production config)."""
    return repo_root() / "collector" / "processing-config.yaml"


ConfigFiles = Path | Sequence[Path]
"""One config file, or several that the Collector merges in order (``--config`` each)."""


def config_files(config: ConfigFiles) -> tuple[Path, ...]:
    """The files to pass as ``--config`` for ``config``.

    The production config (:func:`default_config_path`) and the two tiers
    (:func:`edge_config_path`, :func:`processing_config_path`) never run without the
    privacy pass their pipelines refer to, so naming one alone means it and the pass. Other configs
    (the sink, a test's variant) run as given; a variant of the production config lists
    :func:`privacy_pass_path` itself.
    """
    files = (config,) if isinstance(config, os.PathLike) else tuple(map(Path, config))
    if not files:
        raise ValueError("no Collector config file given")
    needs_privacy = {
        path.resolve()
        for path in (default_config_path(), edge_config_path(), processing_config_path())
    }
    privacy = privacy_pass_path().resolve()
    resolved = [f.resolve() for f in files]
    if needs_privacy.intersection(resolved) and privacy not in resolved:
        files = (*files, privacy_pass_path())
    return files


def sink_config_path() -> Path:
    """``collector/sink-config.yaml`` (the Tempo/Loki stand-in)."""
    return repo_root() / "collector" / "sink-config.yaml"


def _env_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# caret_otel.stack imports this module, so its port helpers are imported when called.
def _loopback() -> str:
    from caret_otel.stack.ports import LOOPBACK

    return LOOPBACK


def _free_port() -> int:
    from caret_otel.stack.ports import free_port

    return free_port()


def _listener() -> str:
    """``host:port`` of a fresh loopback port."""
    return f"{_loopback()}:{_free_port()}"


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
        "grpc_endpoint": CARET_OTEL_COLLECTOR_GRPC_ENDPOINT,
        "http_endpoint": CARET_OTEL_COLLECTOR_HTTP_ENDPOINT,
        "health_endpoint": CARET_OTEL_COLLECTOR_HEALTH_ENDPOINT,
        "telemetry_host": CARET_OTEL_COLLECTOR_TELEMETRY_HOST,
        "telemetry_port": CARET_OTEL_COLLECTOR_TELEMETRY_PORT,
        "log_level": CARET_OTEL_COLLECTOR_LOG_LEVEL,
        "memory_limit_mib": CARET_OTEL_COLLECTOR_MEMORY_LIMIT_MIB,
        "memory_spike_limit_mib": CARET_OTEL_COLLECTOR_MEMORY_SPIKE_LIMIT_MIB,
        "prometheus_remote_write_url": CARET_OTEL_PROMETHEUS_REMOTE_WRITE_URL,
        "tempo_endpoint": CARET_OTEL_TEMPO_ENDPOINT,
        "tempo_insecure": CARET_OTEL_TEMPO_INSECURE,
        "loki_endpoint": CARET_OTEL_LOKI_ENDPOINT,
        "business_exporter_endpoint": CARET_OTEL_BUSINESS_EXPORTER_ENDPOINT,
        "storage_dir": CARET_OTEL_COLLECTOR_STORAGE_DIR,
        "span_metrics_flush_interval": CARET_OTEL_SPAN_METRICS_FLUSH_INTERVAL,
        "hmac_key": CARET_OTEL_COLLECTOR_HMAC_KEY,
        "hmac_key_id": CARET_OTEL_COLLECTOR_HMAC_KEY_ID,
    }
    #: Fields that are secrets: no default in any config file, never printed.
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"hmac_key"})
    #: The shape of a pseudonym key id (as in ``caret_otel.processors.privacy.pseudonyms``).
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
            "grpc_endpoint": _listener(),
            "http_endpoint": _listener(),
            "health_endpoint": _listener(),
            "telemetry_host": _loopback(),
            "telemetry_port": _free_port(),
            "hmac_key": secrets.token_urlsafe(48),
        }
        return cls(**{**listeners, **fields})

    @property
    def telemetry_url(self) -> str:
        """The Collector's own Prometheus metrics page."""
        return f"http://{self.telemetry_host}:{self.telemetry_port}/metrics"


@dataclass(frozen=True)
class KafkaTierEnv:
    """The Kafka inputs of the two-tier configs, on top of :class:`CollectorConfigEnv`.

    ``collector/edge-config.yaml`` and ``collector/processing-config.yaml`` read the
    variables of :class:`CollectorConfigEnv` they need (same names, same defaults) and
    these. Topics are ``<topic_prefix>.logs``, ``.metrics`` and ``.traces``; every
    processing Collector joins ``<consumer_group>.logs`` (and ``.metrics``, ``.traces``).
    """

    #: Bootstrap brokers, comma separated (``host:port,host:port``).
    brokers: str = "127.0.0.1:9092"
    #: Prefix of the three topics (one per signal).
    topic_prefix: str = "caret-otel"
    #: Prefix of the processing tier's consumer groups (one per signal topic).
    consumer_group: str = "caret-otel-processing"

    ENV_NAMES: ClassVar[Mapping[str, str]] = {
        "brokers": CARET_OTEL_KAFKA_BROKERS,
        "topic_prefix": CARET_OTEL_KAFKA_TOPIC_PREFIX,
        "consumer_group": CARET_OTEL_KAFKA_CONSUMER_GROUP,
    }
    #: The signals, each with its own topic and consumer group.
    SIGNALS: ClassVar[tuple[str, ...]] = ("logs", "metrics", "traces")

    def as_env(self) -> dict[str, str]:
        return {name: _env_text(getattr(self, field)) for field, name in self.ENV_NAMES.items()}

    def topic(self, signal: str) -> str:
        """The topic of ``signal`` (``logs``, ``metrics``, ``traces``)."""
        if signal not in self.SIGNALS:
            raise ValueError(f"signal {signal!r}: use one of {', '.join(self.SIGNALS)}")
        return f"{self.topic_prefix}.{signal}"

    def group(self, signal: str) -> str:
        """The processing tier's consumer group for ``signal``'s topic."""
        self.topic(signal)  # validates the signal
        return f"{self.consumer_group}.{signal}"


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
        "grpc_endpoint": CARET_OTEL_SINK_GRPC_ENDPOINT,
        "http_endpoint": CARET_OTEL_SINK_HTTP_ENDPOINT,
        "health_endpoint": CARET_OTEL_SINK_HEALTH_ENDPOINT,
        "logs_url_path": CARET_OTEL_SINK_LOGS_URL_PATH,
        "traces_path": CARET_OTEL_SINK_TRACES_PATH,
        "logs_path": CARET_OTEL_SINK_LOGS_PATH,
        "metrics_path": CARET_OTEL_SINK_METRICS_PATH,
    }

    @classmethod
    def in_dir(cls, directory: Path, **fields: Any) -> SinkConfigEnv:
        """Free loopback ports; the three files under ``directory``."""
        values: dict[str, Any] = {
            "grpc_endpoint": _listener(),
            "http_endpoint": _listener(),
            "health_endpoint": _listener(),
            "traces_path": str(directory / "traces.jsonl"),
            "logs_path": str(directory / "logs.jsonl"),
            "metrics_path": str(directory / "metrics.jsonl"),
        }
        return cls(**{**values, **fields})

    @property
    def loki_endpoint(self) -> str:
        """What to give the Collector as its Loki endpoint (logs land in ``logs_path``)."""
        return self.http_url + self.logs_url_path.removesuffix("/v1/logs")
