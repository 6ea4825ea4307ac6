"""Shared by the pipeline tests: our Collector on the production config (both files) with
a known pseudonym key, OTLP/JSON builders, and readers for what landed in the sinks.

Every test run sends under its own ``service.name`` so that data of other tests (the
sinks and Prometheus are shared by the session) never matches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fixtures.services import RunningCollector, Signal, SinkCollector, read_json_lines, wait_until

from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.stack import CollectorConfigEnv, CollectorProcess, ManagedProcess, PrometheusServer
from caret_otel.stack import collector as collector_mod
from caret_otel.stack.ports import LOOPBACK, free_port

HMAC_KEY = "pipeline-tests-hmac-key-0123456789abcdef"
HMAC_KEY_ID = "pt"


def collector_pseudonym(identifier: str) -> str:
    """What the Collector's privacy pass makes of an un-hashed identifier."""
    digest = hmac.new(HMAC_KEY.encode(), identifier.encode(), hashlib.sha256).hexdigest()
    return f"v{HMAC_KEY_ID}:{digest}"


def unique_service(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def start_collector(
    binary: Path,
    directory: Path,
    name: str,
    *,
    prometheus: PrometheusServer,
    sink: SinkCollector,
    business_endpoint: str,
    **fields: Any,
) -> RunningCollector:
    """The production config, wired like the session ``collector`` fixture, with the test
    key and a 1 s span-metrics flush; ``fields`` override :class:`CollectorConfigEnv`."""
    directory.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "prometheus_remote_write_url": prometheus.remote_write_url,
        "tempo_endpoint": sink.grpc_endpoint,
        "loki_endpoint": sink.loki_endpoint,
        "business_exporter_endpoint": business_endpoint,
        "storage_dir": str(directory / "storage"),
        "hmac_key": HMAC_KEY,
        "hmac_key_id": HMAC_KEY_ID,
        "span_metrics_flush_interval": "1s",
        "log_level": "warn",
        **fields,
    }
    config = CollectorConfigEnv.with_free_ports(**settings)
    process = CollectorProcess(
        binary,
        collector_mod.default_config_path(),
        config.as_env(),
        directory / f"{name}.log",
        config.health_port,
        name=name,
        cwd=directory,
    )
    process.start()
    return RunningCollector(name, config, process)


# --- OTLP/JSON -------------------------------------------------------------------------------
def any_value(value: Any) -> dict[str, Any]:
    """A Python value as an OTLP/JSON ``AnyValue``."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": key_values(value)}}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    raise TypeError(f"no OTLP value for {value!r}")


def key_values(mapping: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": any_value(value)} for key, value in mapping.items()]


def resource(service: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"attributes": key_values({attrs.SERVICE_NAME: service, **(extra or {})})}


def post(collector: RunningCollector, signal: Signal, body: Mapping[str, Any]) -> None:
    """One OTLP/HTTP JSON export; the Collector must accept all of it."""
    response = httpx.post(f"{collector.http_url}/v1/{signal}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    assert not response.json().get("partialSuccess", {}).get("rejectedLogRecords")


# --- reading the sinks -----------------------------------------------------------------------
_OUTER: dict[Signal, str] = {
    "traces": "resourceSpans",
    "logs": "resourceLogs",
    "metrics": "resourceMetrics",
}


def resource_blocks(sink: SinkCollector, signal: Signal, service: str) -> list[dict[str, Any]]:
    """Every resource block of ``service`` the sink wrote for ``signal``, as sent on."""
    blocks = []
    for request in read_json_lines(sink.path(signal)):
        for block in request.get(_OUTER[signal], []):
            names = [
                kv["value"].get("stringValue")
                for kv in block.get("resource", {}).get("attributes", [])
                if kv["key"] == attrs.SERVICE_NAME
            ]
            if service in names:
                blocks.append(block)
    return blocks


def as_text(blocks: Iterable[Any]) -> str:
    """JSON text (non-ASCII kept) to search for leaked values."""
    return "\n".join(json.dumps(block, ensure_ascii=False) for block in blocks)


def prometheus_series(prometheus: PrometheusServer, service: str) -> list[dict[str, str]]:
    """The label sets of every series of ``service`` (its own and its target_info)."""
    found = prometheus.query(f'{{job="{service}"}}')
    return [dict(series["metric"]) for series in found]


# --- the business exporter and PostgreSQL ------------------------------------------------------
def start_exporter(database_url: str, directory: Path, name: str = "exporter") -> ManagedProcess:
    """``caret-otel exporter`` (the real CLI, its own process), ready when ``/readyz`` is 200."""
    port = free_port()
    process = ManagedProcess(
        name,
        [
            Path(sys.executable).with_name("caret-otel"),
            "exporter",
            "--host", LOOPBACK,
            "--port", str(port),
            "--database-url", database_url,
            "--log-level", "warning",
        ],
        log_path=directory / f"{name}.log",
        ready=f"http://{LOOPBACK}:{port}/readyz",
        ready_timeout=60,
    )  # fmt: skip
    process.start()
    return process


def exporter_url(process: ManagedProcess) -> str:
    """Base URL of an exporter from :func:`start_exporter`."""
    port = process.argv[process.argv.index("--port") + 1]
    return f"http://{LOOPBACK}:{port}"


def stored_events(database_url: str, event_ids: Sequence[str]) -> tuple[int, int]:
    """(rows, distinct event ids) of ``raw.events`` among ``event_ids``."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM raw.events WHERE event_id = ANY(%s)",
            (list(event_ids),),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def business_event_records(event_ids: Sequence[str], user: str) -> list[dict[str, Any]]:
    """``caret.task.created`` events (OTLP/JSON log records) as a service would send them
    straight to the Collector: raw user and task ids, which the privacy pass hashes."""
    spec = events.CARET_TASK_CREATED
    now = time.time_ns()
    return [
        {
            "timeUnixNano": str(now),
            "eventName": spec.name,
            "attributes": key_values(
                {
                    attrs.CARET_EVENT_ID: event_id,
                    attrs.CARET_EVENT_CLIENT_TYPE: spec.client_event,
                    attrs.ENDUSER_PSEUDO_ID: user,
                    attrs.CARET_TASK_ID: f"task-{event_id}",
                    attrs.GEN_AI_PROVIDER_NAME: "anthropic",
                    attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
                }
            ),
        }
        for event_id in event_ids
    ]


def logs_body(service: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceLogs": [{"resource": resource(service), "scopeLogs": [{"logRecords": records}]}]
    }


class EventStream:
    """Sends ``batches`` x ``batch_size`` business events to a Collector at a steady rate,
    from a thread, like the gateway would: a request that fails (Collector down, refused)
    is sent again until it is accepted. ``acknowledged`` counts accepted events."""

    def __init__(
        self, collector: RunningCollector, *, batches: int, batch_size: int, interval: float
    ) -> None:
        self.url = f"{collector.http_url}/v1/logs"
        self.service = unique_service("stream")
        self.user = f"user-{uuid.uuid4().hex[:8]}"
        run = uuid.uuid4().hex[:8]
        self.batches = [
            [f"{run}-{b:04d}-{i:03d}" for i in range(batch_size)] for b in range(batches)
        ]
        self.interval = interval
        self.acknowledged = 0
        self.resends = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="event-stream", daemon=True)
        self._failure: BaseException | None = None

    @property
    def event_ids(self) -> list[str]:
        return [event_id for batch in self.batches for event_id in batch]

    def start(self) -> EventStream:
        self._thread.start()
        return self

    def wait_acknowledged(self, count: int, timeout: float) -> None:
        wait_until(lambda: self.acknowledged >= count or self._failure, timeout=timeout,
                   what=f"{count} events acknowledged by the Collector")  # fmt: skip
        self._raise()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not finish"
        self._raise()

    def _raise(self) -> None:
        if self._failure is not None:
            raise AssertionError("event stream failed") from self._failure

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=10) as client:
                for batch in self.batches:
                    started = time.monotonic()
                    body = logs_body(self.service, business_event_records(batch, self.user))
                    while not self._send(client, body):
                        self.resends += 1
                        time.sleep(0.2)
                    with self._lock:
                        self.acknowledged += len(batch)
                    time.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        except BaseException as exc:  # reported by join()/wait_acknowledged()
            self._failure = exc

    def _send(self, client: httpx.Client, body: dict[str, Any]) -> bool:
        try:
            response = client.post(self.url, json=body)
        except httpx.TransportError:
            return False  # the Collector is down: try again, as an SDK or the gateway would
        return response.status_code == 200
