"""*Pipeline health*: is every event collected, how late does it land, where does it queue?

Source: the self-metrics of the gateway, our Collector and the business exporter
(scrape jobs in ``prometheus/prometheus.yml``), plus the registry's consent-change
counter for opt-outs. The KPI panels use the same expressions as the alert rules.
"""

from __future__ import annotations

from typing import Any

from caret_otel.dashboards import expressions as x
from caret_otel.dashboards import promql as q
from caret_otel.dashboards import selfmetrics as sm
from caret_otel.dashboards.board import Board
from caret_otel.dashboards.datasources import PROMETHEUS
from caret_otel.dashboards.panels import Prom, graph, single
from caret_otel.dashboards.promnames import prometheus_label, prometheus_name
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics

UID = "caret-pipeline-health"
W = q.RATE_WINDOW
CONSENT_CHANGES = prometheus_name(metrics.CARET_CONSENT_CHANGES)
TELEMETRY_ENABLED = prometheus_label(attrs.CARET_CONSENT_TELEMETRY_ENABLED)


def legend(*labels: str) -> str:
    return " ".join("{{" + label + "}}" for label in labels)


def _client_event_outcomes() -> str:
    """Accepted, rejected (by reason) and opted-out events in one set of series, so the
    panel has data whenever events flow and shows rejections the moment they appear."""
    accepted = q.with_label(
        q.sum_rate(sm.GATEWAY_EVENTS_ACCEPTED, (), W), sm.LABEL_REASON, "accepted"
    )
    rejected = q.sum_rate(sm.GATEWAY_EVENTS_REJECTED, (sm.LABEL_REASON,), W)
    opted_out = q.with_label(
        q.sum_rate(sm.GATEWAY_EVENTS_OPTED_OUT, (), W), sm.LABEL_REASON, "opted_out"
    )
    return f"{accepted} or {rejected} or {opted_out}"


def _gateway_export_outcomes() -> str:
    exported = q.with_label(
        q.sum_rate(sm.GATEWAY_EXPORTED_ITEMS, (sm.LABEL_SIGNAL,), W), sm.LABEL_OUTCOME, "exported"
    )
    failed = q.with_label(
        q.sum_rate(sm.GATEWAY_EXPORT_FAILURES, (sm.LABEL_SIGNAL,), W),
        sm.LABEL_OUTCOME,
        "failed attempts",
    )
    lost = q.with_label(
        q.sum_rate(sm.GATEWAY_EXPORT_LOST_ITEMS, (sm.LABEL_SIGNAL,), W), sm.LABEL_OUTCOME, "lost"
    )
    return f"{exported} or {failed} or {lost}"


def _consent_changes() -> str:
    """Both sources of consent changes as one set of series, told apart by ``source``."""
    from_events = q.with_label(
        f"label_replace({q.sum_rate(CONSENT_CHANGES, (TELEMETRY_ENABLED,), W)}, "
        f'{q.quote(sm.LABEL_TELEMETRY_ENABLED)}, "$1", {q.quote(TELEMETRY_ENABLED)}, "(.*)")',
        "source",
        "client event",
    )
    from_api = q.with_label(
        q.sum_rate(sm.GATEWAY_CONSENT_CHANGES, (sm.LABEL_TELEMETRY_ENABLED,), W),
        "source",
        "consent API",
    )
    return f"60 * ({from_events} or {from_api})"


def _exporter_failures() -> str:
    written = q.with_label(
        q.sum_rate(sm.EXPORTER_ROWS_WRITTEN, (), W), sm.LABEL_OUTCOME, "rows written"
    )
    failed = q.with_label(
        q.sum_rate(sm.EXPORTER_FAILURES, (sm.LABEL_STAGE, sm.LABEL_KIND), W),
        sm.LABEL_OUTCOME,
        "failed",
    )
    return f"{written} or {failed}"


def _exporter_outcomes() -> list[Prom]:
    """Per signal: sent and failed items per exporter, in one set of series."""
    by = (sm.LABEL_EXPORTER,)
    queries = []
    for word in sm.COLLECTOR_ITEM_WORDS:
        sent = q.with_label(
            q.sum_rate(sm.COLLECTOR_EXPORTER_SENT + word, by, W), sm.LABEL_OUTCOME, "sent"
        )
        failed = q.with_label(
            q.sum_rate(sm.COLLECTOR_EXPORTER_SEND_FAILED + word, by, W), sm.LABEL_OUTCOME, "failed"
        )
        queries.append(
            Prom(f"{sent} or {failed}", f"{word} " + legend(sm.LABEL_EXPORTER, sm.LABEL_OUTCOME))
        )
    return queries


def _collector_per_signal(prefix: str, by: tuple[str, ...]) -> list[Prom]:
    return [
        Prom(q.sum_rate(prefix + word, by, W), f"{word} " + legend(*by))
        for word in sm.COLLECTOR_ITEM_WORDS
    ]


def build() -> dict[str, Any]:
    board = Board(
        UID,
        "Caret · Pipeline health",
        "Collection success, end-to-end lag, queues, failures and privacy operations of the telemetry pipeline.",
        [PROMETHEUS],
    )
    objectives = x.OBJECTIVES
    board.row(
        "Service levels",
        single("Collection success", f"Share of received client events collected (objective > {objectives.collection_success_min:.0%}).",
               "percentunit", Prom(x.collection_success_ratio(W))),
        single("Gateway p99 latency", f"p99 answer time of the ingest routes (objective < {objectives.gateway_p99_max_seconds * 1000:.0f} ms).",
               "s", Prom(x.gateway_latency(0.99, W))),
        single("End-to-end lag", f"Collector business-queue wait + rollup lag (objective < {objectives.pipeline_lag_max_seconds / 60:.0f} min).",
               "s", Prom(x.pipeline_lag(W))),
        single("Scrape targets up", "Gateway, exporter and Collector targets answering their scrape.",
               "short", Prom(q.sum_by((), q.selector("up", q.match("job", "|".join(sm.SCRAPE_JOBS)))))),
        graph("Collection success ratio", "The collection KPI over time.", "percentunit",
              Prom(x.collection_success_ratio(W), "collection success")),
        graph("End-to-end lag by stage", "How long new events wait in the Collector's business queue, and how far "
              "the analyst rollups trail the stored events.", "s",
              Prom(x.business_queue_wait(W), "Collector business queue"), Prom(x.rollup_lag(), "rollups")),
    )  # fmt: skip
    board.row(
        "Gateway",
        graph("Requests by route and status", "Gateway requests per second by route template and HTTP status.",
              "reqps", Prom(q.sum_rate(sm.GATEWAY_REQUESTS, (sm.LABEL_ROUTE, sm.LABEL_STATUS), W),
                            legend(sm.LABEL_ROUTE, sm.LABEL_STATUS))),
        graph("Request latency p99 by route", "99th percentile answer time per route.", "s",
              Prom(q.quantile(0.99, sm.GATEWAY_REQUEST_DURATION_BUCKET, (sm.LABEL_ROUTE,), W), legend(sm.LABEL_ROUTE))),
        graph("Client events by outcome", "Events per second accepted, rejected (by reason) and dropped for opt-out.",
              "short", Prom(_client_event_outcomes(), legend(sm.LABEL_REASON)), stacked=True),
        graph("Attributes dropped and pseudonymised", "What the privacy processor did to attributes, by action and reason, per second.",
              "short", Prom(q.sum_rate(sm.GATEWAY_ATTRIBUTES, (sm.LABEL_ACTION, sm.LABEL_REASON), W),
                            legend(sm.LABEL_ACTION, sm.LABEL_REASON))),
        graph("Export queue depth", "Items waiting in the gateway's export queue for the Collector, per signal.",
              "short", Prom(q.sum_by((sm.LABEL_SIGNAL,), sm.GATEWAY_QUEUE_ITEMS), legend(sm.LABEL_SIGNAL))),
        graph("Export to the Collector", "Items per second exported, failed attempts (retried) and lost items, per signal.",
              "short", Prom(_gateway_export_outcomes(), legend(sm.LABEL_OUTCOME, sm.LABEL_SIGNAL))),
    )  # fmt: skip
    board.row(
        "Collector",
        graph("Accepted by the receiver", "Items per second the Collector's OTLP receiver accepted, per signal.",
              "short", *_collector_per_signal(sm.COLLECTOR_RECEIVER_ACCEPTED, ())),
        graph("Refused by the receiver (memory limiter)", "Items per second refused under memory pressure; senders retry.",
              "short", *_collector_per_signal(sm.COLLECTOR_RECEIVER_REFUSED, ())),
        graph("Exporter queue fill", "Sending-queue size / capacity per exporter; the business leg's queue is on disk.",
              "percentunit", Prom(x.queue_fill_ratio(), legend(sm.LABEL_EXPORTER, sm.LABEL_DATA_TYPE))),
        graph("Exporter queue size", "Items waiting in each exporter's sending queue.", "short",
              Prom(q.sum_by((sm.LABEL_EXPORTER, sm.LABEL_DATA_TYPE), sm.COLLECTOR_QUEUE_SIZE),
                   legend(sm.LABEL_EXPORTER, sm.LABEL_DATA_TYPE))),
        graph("Items sent and failed by exporter",
              "Items per second each exporter delivered, and items it gave up on after its retries, per signal.",
              "short", *_exporter_outcomes(), width=24),
    )  # fmt: skip
    board.row(
        "Business exporter",
        graph("Rows written by table", "Rows per second the business exporter committed to PostgreSQL.", "short",
              Prom(q.sum_rate(sm.EXPORTER_ROWS_WRITTEN, (sm.LABEL_TABLE,), W), legend(sm.LABEL_TABLE))),
        graph("Batches by outcome", "OTLP requests handled per second, by signal and outcome.", "reqps",
              Prom(q.sum_rate(sm.EXPORTER_BATCHES, (sm.LABEL_SIGNAL, sm.LABEL_OUTCOME), W),
                   legend(sm.LABEL_SIGNAL, sm.LABEL_OUTCOME))),
        graph("Write latency p50 / p99", "Time to commit one batch to PostgreSQL.", "s",
              Prom(q.quantile(0.5, sm.EXPORTER_WRITE_DURATION_BUCKET, (), W), "p50"),
              Prom(q.quantile(0.99, sm.EXPORTER_WRITE_DURATION_BUCKET, (), W), "p99")),
        graph("Duplicates skipped", "Redelivered events recognised by (event_id, event_ts) and skipped, per second.",
              "short", Prom(q.sum_rate(sm.EXPORTER_DEDUP_HITS, (), W), "duplicates")),
        graph("Exporter outcomes", "Rows written per second, and failures by stage (write, rollup, retention) and kind; "
              "failed writes are answered 503 and retried by the Collector.", "short",
              Prom(_exporter_failures(), legend(sm.LABEL_OUTCOME, sm.LABEL_STAGE, sm.LABEL_KIND))),
        graph("Rollup lag", "Age of the oldest stored event not yet folded into the rollups.", "s",
              Prom(x.rollup_lag(), "rollup lag")),
    )  # fmt: skip
    board.row(
        "Privacy operations",
        graph("Opt-outs and opt-ins",
              f"Consent changes per minute, from client events ({metrics.CARET_CONSENT_CHANGES.name}) and from the consent API.",
              "opm", Prom(_consent_changes(), "{{source}} enabled={{" + sm.LABEL_TELEMETRY_ENABLED + "}}")),
        graph("Deletion requests processed", "Deletion requests per minute, by outcome.", "opm",
              Prom(f"60 * {q.sum_rate(sm.GATEWAY_DELETIONS, (sm.LABEL_OUTCOME,), W)}", legend(sm.LABEL_OUTCOME))),
    )  # fmt: skip
    return board.build()
