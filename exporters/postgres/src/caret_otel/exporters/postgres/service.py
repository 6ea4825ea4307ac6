"""The exporter's work without HTTP: decode, store, and the maintenance loop.

``ExporterService.export_logs``/``export_metrics`` run in a worker thread per request:
decode the OTLP message into rows, write them in one transaction, and answer with the
OTLP response (partial success when some records were refused). When PostgreSQL is
down, or the schema is not migrated yet, or a write fails for a reason other than the
data itself, they raise :class:`Unavailable`: the HTTP layer answers 503 with
``Retry-After`` and the Collector keeps the data and retries. Nothing is answered 2xx
that was not stored or explicitly reported as refused.

A background thread migrates the schema at start (retrying while PostgreSQL is down),
then folds new events into the rollups about every second and runs the retention job
every hour.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsPartialSuccess,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from psycopg_pool import ConnectionPool, PoolTimeout

from caret_otel.core.errors import ServiceError
from caret_otel.semconv.policy import load_policy

from . import retention, rollup, schema
from .config import ExporterSettings
from .event_rows import AcceptWindow, EventRowBuilder, Refusals
from .loader import Loader, StoreResult
from .metric_rows import MetricRowBuilder
from .self_metrics import SelfMetrics

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# SQLSTATE classes that mean "try again later": connection, transaction rollback
# (serialization, deadlock), insufficient resources, operator intervention, system error.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_TRANSIENT_STATES = frozenset({"55P03", "55006"})  # lock not available, object in use


class Unavailable(ServiceError):
    """The data was not stored and should be sent again later (HTTP 503)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | PoolTimeout):
        return True
    state = exc.sqlstate if isinstance(exc, psycopg.Error) else None
    if not state:
        return False
    return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES


@dataclass(frozen=True)
class ExportOutcome:
    received: int
    inserted: int
    duplicates: int
    refusals: Refusals


class ExporterService:
    def __init__(
        self,
        settings: ExporterSettings,
        *,
        clock: Clock = utc_now,
        metrics: SelfMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = metrics or SelfMetrics()
        self.loader = Loader()
        self.raw_days = load_policy().retention["raw_events_days"]
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=settings.pool_size,
            open=False,
            timeout=settings.db_timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(settings.db_timeout))},
            check=ConnectionPool.check_connection,
            # Keep trying to reconnect for as long as the exporter runs.
            reconnect_timeout=365 * 24 * 3600,
            name="caret-exporter",
        )
        self.migrated = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_retention = 0.0

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self.pool.open(wait=False)
        if not self.settings.run_migrations:
            self.migrated.set()
        self._thread = threading.Thread(
            target=self._maintenance_loop, name="caret-exporter-maintenance", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.pool.close()

    # --- requests --------------------------------------------------------------------
    def window(self) -> AcceptWindow:
        return AcceptWindow.at(self.clock(), self.raw_days)

    def export_logs(self, request: ExportLogsServiceRequest | bytes) -> ExportLogsServiceResponse:
        """Store a request's business events. ``request`` may be the serialized message
        (a protobuf body): the row builder reads it without protobuf objects. Raises
        :class:`google.protobuf.message.DecodeError` for bytes that are not a request."""
        builder = EventRowBuilder(self.window())
        if isinstance(request, bytes):
            decoded = builder.decode_serialized(request)
        else:
            decoded = builder.decode(request)
        for reason, count in decoded.dropped_attributes.items():
            self.metrics.dropped_attributes.labels(reason).inc(count)
        stored = self._store("logs", "raw.events", self.loader.store_events, decoded.rows)
        refusals = decoded.refusals
        refusals.merge(stored.refusals)
        self._account("logs", stored, refusals)
        if stored.inserted:
            self._wake.set()
        response = ExportLogsServiceResponse()
        if refusals.total:
            response.partial_success.CopyFrom(
                ExportLogsPartialSuccess(
                    rejected_log_records=refusals.total, error_message=refusals.summary()
                )
            )
        return response

    def export_metrics(self, request: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse:
        decoded = MetricRowBuilder(self.window()).decode(request)
        for reason, count in decoded.dropped_attributes.items():
            self.metrics.dropped_attributes.labels(reason).inc(count)
        stored = self._store(
            "metrics", "raw.metric_points", self.loader.store_metric_points, decoded.rows
        )
        refusals = decoded.refusals
        refusals.merge(stored.refusals)
        self._account("metrics", stored, refusals)
        response = ExportMetricsServiceResponse()
        if refusals.total:
            response.partial_success.CopyFrom(
                ExportMetricsPartialSuccess(
                    rejected_data_points=refusals.total, error_message=refusals.summary()
                )
            )
        return response

    def _store(
        self,
        signal: str,
        table: str,
        store: Callable[[psycopg.Connection[Any], list[tuple[Any, ...]]], StoreResult],
        rows: list[tuple[Any, ...]],
    ) -> StoreResult:
        if not rows:
            return StoreResult()
        if not self.migrated.is_set():
            self.metrics.batches.labels(signal, "unavailable").inc()
            raise Unavailable("the database schema is not migrated yet")
        started = time.perf_counter()
        try:
            with self.pool.connection() as conn:
                result = store(conn, rows)
        except (psycopg.Error, PoolTimeout) as exc:
            kind = "unavailable" if is_transient(exc) else "error"
            self.metrics.failures.labels("write", kind).inc()
            self.metrics.batches.labels(signal, "unavailable").inc()
            log.warning(
                "could not write %d %s row(s) (%s: %s); answering 503",
                len(rows),
                table,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            raise Unavailable(f"PostgreSQL is unavailable ({type(exc).__name__})") from exc
        self.metrics.write_seconds.labels(signal).observe(time.perf_counter() - started)
        self.metrics.rows_written.labels(table).inc(result.inserted)
        return result

    def _account(self, signal: str, stored: StoreResult, refusals: Refusals) -> None:
        self.metrics.dedup_hits.labels(signal).inc(stored.duplicates)
        if stored.path == "staging":
            self.metrics.staging_loads.labels(signal).inc()
        for reason, count in refusals.counts.items():
            self.metrics.refused_records.labels(signal, reason).inc(count)
        self.metrics.batches.labels(signal, "partial" if refusals.total else "stored").inc()

    # --- health ----------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        if not self.migrated.is_set():
            self.metrics.ready.set(0)
            return False, "schema not migrated yet (is PostgreSQL reachable?)"
        try:
            with self.pool.connection(timeout=2.0) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout) as exc:
            self.metrics.ready.set(0)
            return False, f"PostgreSQL unreachable ({type(exc).__name__})"
        self.metrics.ready.set(1)
        return True, "ready"

    # --- maintenance -----------------------------------------------------------------
    def _maintenance_loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if not self.migrated.is_set():
                    applied = schema.migrate(self.settings.database_url)
                    if applied:
                        log.info("applied migrations: %s", ", ".join(applied))
                    self.migrated.set()
                self._maintenance_pass()
                backoff = 1.0
                self._wake.wait(self.settings.rollup_interval)
                self._wake.clear()
            except Exception as exc:
                stage = "migrate" if not self.migrated.is_set() else "rollup"
                kind = "unavailable" if is_transient(exc) else "error"
                self.metrics.failures.labels(stage, kind).inc()
                log.warning("maintenance (%s) failed: %s: %s", stage, type(exc).__name__, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _maintenance_pass(self) -> None:
        with self.pool.connection() as conn:
            handled = rollup.roll_up(conn, max_batches=10)
            self.metrics.rolled_up.inc(handled)
            state = rollup.queue_state(conn)
        self.metrics.rollup_queue.set(state.depth)
        self.metrics.rollup_lag.set(state.lag_seconds)
        if time.monotonic() - self._last_retention >= self.settings.retention_interval:
            self.run_retention()

    def run_retention(self) -> retention.RetentionResult | None:
        try:
            result = retention.run_retention(self.settings.database_url, now=self.clock())
        except psycopg.Error as exc:
            self.metrics.failures.labels(
                "retention", "unavailable" if is_transient(exc) else "error"
            ).inc()
            log.warning("retention job failed: %s: %s", type(exc).__name__, exc)
            return None
        self._last_retention = time.monotonic()
        self.metrics.retention_last_success.set(time.time())
        self.metrics.partitions_dropped.inc(len(result.dropped))
        self.metrics.rolled_up.inc(result.rolled_up)
        return result
