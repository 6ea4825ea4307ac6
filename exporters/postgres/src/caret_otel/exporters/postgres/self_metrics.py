"""The exporter's own Prometheus metrics (``GET /metrics``), all named ``caret_exporter_*``.

Each service instance has its own registry, so several exporters in one process (tests)
do not share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST
WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SelfMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.rows_written = Counter(
            "caret_exporter_rows_written",
            "Rows inserted into PostgreSQL (redelivered duplicates excluded).",
            ["table"],
            registry=self.registry,
        )
        self.batches = Counter(
            "caret_exporter_batches",
            "OTLP export requests handled, by signal and outcome "
            "(stored, partial, bad_request, unavailable, error).",
            ["signal", "outcome"],
            registry=self.registry,
        )
        self.dedup_hits = Counter(
            "caret_exporter_dedup_hits",
            "Records already stored (redelivery) and therefore not inserted again.",
            ["signal"],
            registry=self.registry,
        )
        self.staging_loads = Counter(
            "caret_exporter_staging_loads",
            "Requests loaded through the staging table (idempotent insert) because they "
            "held an already-stored record; the rest are COPYed straight into the table.",
            ["signal"],
            registry=self.registry,
        )
        self.refused_records = Counter(
            "caret_exporter_refused_records",
            "Records refused one by one (reported to the sender as OTLP partial success).",
            ["signal", "reason"],
            registry=self.registry,
        )
        self.dropped_attributes = Counter(
            "caret_exporter_dropped_attributes",
            "Attributes removed by the privacy policy before storage (unknown, forbidden, not_coarse).",
            ["reason"],
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "caret_exporter_write_duration_seconds",
            "Time to write one request's rows (one transaction; two after a fallback "
            "to the staging table).",
            ["signal"],
            buckets=WRITE_BUCKETS,
            registry=self.registry,
        )
        self.failures = Counter(
            "caret_exporter_failures",
            "Failed operations, by stage (write, rollup, retention, migrate) and kind "
            "(unavailable: PostgreSQL down or transient; error: anything else).",
            ["stage", "kind"],
            registry=self.registry,
        )
        self.rollup_lag = Gauge(
            "caret_exporter_rollup_lag_seconds",
            "Age of the oldest stored event not yet folded into the rollups (0 when none).",
            registry=self.registry,
        )
        self.rollup_queue = Gauge(
            "caret_exporter_rollup_queue_events",
            "Stored events waiting to be folded into the rollups.",
            registry=self.registry,
        )
        self.rolled_up = Counter(
            "caret_exporter_rolled_up_events",
            "Events folded into the rollups.",
            registry=self.registry,
        )
        self.retention_last_success = Gauge(
            "caret_exporter_retention_last_success_timestamp_seconds",
            "When the retention job last completed (Unix time).",
            registry=self.registry,
        )
        self.partitions_dropped = Counter(
            "caret_exporter_partitions_dropped",
            "Partitions dropped by the retention job.",
            registry=self.registry,
        )
        self.ready = Gauge(
            "caret_exporter_ready",
            "1 when the schema is migrated and PostgreSQL answers, else 0.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
