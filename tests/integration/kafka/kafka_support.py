"""Shared by the Kafka tests: the two Collector tiers wired to a real KRaft broker, the
business exporter and PostgreSQL, and an event stream of many users (so the log records
spread over several partitions, one user's records on one)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from fixtures.services import RunningCollector, SinkCollector
from integration.pipeline.pipeline_support import (
    HMAC_KEY,
    HMAC_KEY_ID,
    EventStream,
    business_event_records,
    logs_body,
)

from caret_otel.contracts.collector import (
    KafkaTierEnv,
    edge_config_path,
    processing_config_path,
)
from caret_otel.stack import CollectorConfigEnv, CollectorProcess, PrometheusServer
from caret_otel.stack.kafka import KafkaBroker


def kafka_tier(broker: KafkaBroker, name: str) -> KafkaTierEnv:
    """Topics and consumer groups of one test alone (the broker is shared), created now."""
    tier = KafkaTierEnv(
        brokers=broker.bootstrap_servers,
        topic_prefix=f"{name}-{uuid.uuid4().hex[:6]}",
        consumer_group=f"{name}-processing",
    )
    broker.create_topics([tier.topic(signal) for signal in KafkaTierEnv.SIGNALS])
    return tier


def _start(
    binary: Path, config: Path, directory: Path, name: str, env: CollectorConfigEnv,
    tier: KafkaTierEnv,
) -> RunningCollector:  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    process = CollectorProcess(
        binary,
        config,
        {**env.as_env(), **tier.as_env()},
        directory / f"{name}.log",
        env.health_port,
        name=name,
        cwd=directory,
    )
    process.start()
    return RunningCollector(name, env, process)


def start_edge(
    binary: Path, directory: Path, name: str, tier: KafkaTierEnv, **fields: Any
) -> RunningCollector:
    """An edge Collector (OTLP in, privacy pass, Kafka out) with its own disk queue."""
    settings: dict[str, Any] = {
        "storage_dir": str(directory / name / "storage"),
        "hmac_key": HMAC_KEY,
        "hmac_key_id": HMAC_KEY_ID,
        "log_level": "warn",
        **fields,
    }
    env = CollectorConfigEnv.with_free_ports(**settings)
    return _start(binary, edge_config_path(), directory / name, name, env, tier)


def start_processing(
    binary: Path,
    directory: Path,
    name: str,
    tier: KafkaTierEnv,
    *,
    prometheus: PrometheusServer,
    sink: SinkCollector,
    business_endpoint: str,
) -> RunningCollector:
    """A processing Collector (Kafka in, the production routing) in ``tier``'s groups."""
    env = CollectorConfigEnv.with_free_ports(
        prometheus_remote_write_url=prometheus.remote_write_url,
        tempo_endpoint=sink.grpc_endpoint,
        loki_endpoint=sink.loki_endpoint,
        business_exporter_endpoint=business_endpoint,
        hmac_key=HMAC_KEY,
        hmac_key_id=HMAC_KEY_ID,
        span_metrics_flush_interval="1s",
        log_level="info",
    )
    return _start(binary, processing_config_path(), directory / name, name, env, tier)


class MultiUserStream(EventStream):
    """:class:`EventStream` whose every batch holds the events of ``users`` users (the edge
    groups them by pseudonym, so they travel as ``users`` Kafka records with distinct keys)."""

    def __init__(self, collector: RunningCollector, *, users: int = 8, **kwargs: Any) -> None:
        super().__init__(collector, **kwargs)
        self.users = [f"user-{uuid.uuid4().hex[:8]}" for _ in range(users)]
        # Event ids in the registry's shape (32 hex digits): the privacy pass drops others.
        self.batches = [[uuid.uuid4().hex for _ in batch] for batch in self.batches]

    def _body(self, batch: list[str]) -> dict[str, Any]:
        records: list[dict[str, Any]] = []
        for index, user in enumerate(self.users):
            records.extend(business_event_records(batch[index :: len(self.users)], user))
        return logs_body(self.service, records)

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=10) as client:
                for batch in self.batches:
                    started = time.monotonic()
                    body = self._body(batch)
                    while not self._send(client, body):
                        self.resends += 1
                        time.sleep(0.2)
                    with self._lock:
                        self.acknowledged += len(batch)
                    time.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        except BaseException as exc:  # reported by join()/wait_acknowledged()
            self._failure = exc
