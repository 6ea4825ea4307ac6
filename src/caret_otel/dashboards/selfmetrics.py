"""Names of the self-metrics Prometheus scrapes: the gateway, the business exporter and
the Collector's own telemetry.

These are not Caret semantic conventions (they describe our processes, not users), so
they are not in the registry. They are written here once, as the Prometheus series
names; tests check them against the real sources: the gateway's and the exporter's
prometheus-client registries, and a running ``build/otelcol-caret`` (v0.161.0 exposes
its counters *without* a ``_total`` suffix).
"""

from __future__ import annotations

from typing import Final

# --- scrape jobs (prometheus/prometheus.yml) -----------------------------------------------
JOB_GATEWAY: Final = "caret-gateway"
JOB_EXPORTER: Final = "caret-exporter"
JOB_COLLECTOR: Final = "otelcol"
SCRAPE_JOBS: Final = (JOB_GATEWAY, JOB_EXPORTER, JOB_COLLECTOR)

# --- gateway (caret_otel/gateway/self_metrics.py) ------------------------------------------
GATEWAY_REQUESTS: Final = "caret_gateway_requests_total"  # route, status
GATEWAY_REQUEST_DURATION_BUCKET: Final = "caret_gateway_request_duration_seconds_bucket"  # route
GATEWAY_EVENTS_ACCEPTED: Final = "caret_gateway_events_accepted_total"  # event
GATEWAY_EVENTS_REJECTED: Final = "caret_gateway_events_rejected_total"  # reason
GATEWAY_EVENTS_OPTED_OUT: Final = "caret_gateway_events_opted_out_total"
GATEWAY_ATTRIBUTES: Final = "caret_gateway_attributes_total"  # action, reason
GATEWAY_QUEUE_ITEMS: Final = "caret_gateway_export_queue_items"  # signal
GATEWAY_EXPORTED_ITEMS: Final = "caret_gateway_exported_items_total"  # signal
GATEWAY_EXPORT_FAILURES: Final = "caret_gateway_export_failures_total"  # signal, reason
GATEWAY_EXPORT_LOST_ITEMS: Final = "caret_gateway_export_lost_items_total"  # signal, reason
GATEWAY_CONSENT_CHANGES: Final = "caret_gateway_consent_changes_total"  # telemetry_enabled
GATEWAY_DELETIONS: Final = "caret_gateway_deletions_total"  # outcome

GATEWAY_SERIES: Final = (
    GATEWAY_REQUESTS,
    GATEWAY_REQUEST_DURATION_BUCKET,
    GATEWAY_EVENTS_ACCEPTED,
    GATEWAY_EVENTS_REJECTED,
    GATEWAY_EVENTS_OPTED_OUT,
    GATEWAY_ATTRIBUTES,
    GATEWAY_QUEUE_ITEMS,
    GATEWAY_EXPORTED_ITEMS,
    GATEWAY_EXPORT_FAILURES,
    GATEWAY_EXPORT_LOST_ITEMS,
    GATEWAY_CONSENT_CHANGES,
    GATEWAY_DELETIONS,
)

# --- business exporter (exporters/) --------------------------------------------------------
EXPORTER_ROWS_WRITTEN: Final = "caret_exporter_rows_written_total"  # table
EXPORTER_BATCHES: Final = "caret_exporter_batches_total"  # signal, outcome
EXPORTER_DEDUP_HITS: Final = "caret_exporter_dedup_hits_total"  # signal
EXPORTER_WRITE_DURATION_BUCKET: Final = "caret_exporter_write_duration_seconds_bucket"  # signal
EXPORTER_FAILURES: Final = "caret_exporter_failures_total"  # stage, kind
EXPORTER_ROLLUP_LAG: Final = "caret_exporter_rollup_lag_seconds"

EXPORTER_SERIES: Final = (
    EXPORTER_ROWS_WRITTEN,
    EXPORTER_BATCHES,
    EXPORTER_DEDUP_HITS,
    EXPORTER_WRITE_DURATION_BUCKET,
    EXPORTER_FAILURES,
    EXPORTER_ROLLUP_LAG,
)

# --- Collector (service.telemetry.metrics, level normal) -----------------------------------
# Per-signal families: the receiver/exporter names end in the signal's item word.
COLLECTOR_ITEM_WORDS: Final = ("spans", "metric_points", "log_records")
COLLECTOR_RECEIVER_ACCEPTED: Final = "otelcol_receiver_accepted_"
COLLECTOR_RECEIVER_REFUSED: Final = "otelcol_receiver_refused_"
COLLECTOR_EXPORTER_SENT: Final = "otelcol_exporter_sent_"
COLLECTOR_EXPORTER_SEND_FAILED: Final = "otelcol_exporter_send_failed_"
COLLECTOR_MEMORY_LIMITER_REFUSED: Final = "otelcol_processor_memory_limiter_refused_"
COLLECTOR_QUEUE_SIZE: Final = "otelcol_exporter_queue_size"  # exporter, data_type
COLLECTOR_QUEUE_CAPACITY: Final = "otelcol_exporter_queue_capacity"  # exporter, data_type
COLLECTOR_PROCESS_MEMORY_RSS: Final = "otelcol_process_memory_rss"

#: The Collector exporter that feeds the business exporter (otel-collector-config.yaml).
COLLECTOR_BUSINESS_EXPORTER: Final = "otlp_http/business"


# --- labels of the self-metrics (prometheus-client label names, not registry attributes) ---
LABEL_ROUTE: Final = "route"
LABEL_STATUS: Final = "status"
LABEL_EVENT: Final = "event"
LABEL_REASON: Final = "reason"
LABEL_SIGNAL: Final = "signal"
LABEL_ACTION: Final = "action"
LABEL_OUTCOME: Final = "outcome"
LABEL_TABLE: Final = "table"
LABEL_STAGE: Final = "stage"
LABEL_KIND: Final = "kind"
LABEL_TELEMETRY_ENABLED: Final = "telemetry_enabled"
LABEL_EXPORTER: Final = "exporter"
LABEL_DATA_TYPE: Final = "data_type"
LABEL_RECEIVER: Final = "receiver"

#: The gateway's ingest routes (route templates): what the "API response" KPI measures.
GATEWAY_INGEST_ROUTES_REGEX: Final = "/telemetry/events|/v1/traces|/v1/metrics|/v1/logs"
#: The gateway signal that carries client events (one log record per event).
SIGNAL_LOGS: Final = "logs"
