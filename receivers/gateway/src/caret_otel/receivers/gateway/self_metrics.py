"""The gateway's own health metrics, served as Prometheus text on ``GET /metrics``.

These describe the gateway (traffic, rejections, queue, export failures), not Caret's
users, so they live in a private prometheus-client registry rather than in the OTel
semantic-conventions registry. Every label has a small, fixed set of values: routes
are templates, reasons are codes, never user input.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from caret_otel.processors.privacy.report import ScrubReport

PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_LATEST

# Request latency buckets (seconds): the target is p99 < 50 ms, so resolve 1-100 ms well.
_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


class GatewayMetrics:
    """Prometheus instruments of one gateway instance (a fresh registry per instance)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "caret_gateway_requests", "HTTP requests by route template and status code.",
            ["route", "status"], registry=r,
        )  # fmt: skip
        self.request_duration = Histogram(
            "caret_gateway_request_duration_seconds", "Time to answer a request, by route.",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.events_accepted = Counter(
            "caret_gateway_events_accepted", "Client events accepted, by OTel event name.",
            ["event"], registry=r,
        )  # fmt: skip
        self.events_rejected = Counter(
            "caret_gateway_events_rejected", "Client events rejected, by reason code.",
            ["reason"], registry=r,
        )  # fmt: skip
        self.events_opted_out = Counter(
            "caret_gateway_events_opted_out",
            "Client events dropped because their user opted out of telemetry.", registry=r,
        )  # fmt: skip
        self.otlp_items = Counter(
            "caret_gateway_otlp_items", "Spans, data points and log records from OTLP requests.",
            ["signal", "outcome"], registry=r,
        )  # fmt: skip
        self.attributes = Counter(
            "caret_gateway_attributes",
            "Attributes the privacy processor acted on, by action and reason.",
            ["action", "reason"], registry=r,
        )  # fmt: skip
        self.queue_bytes = Gauge(
            "caret_gateway_export_queue_bytes", "Encoded OTLP waiting for the Collector.",
            ["signal"], registry=r,
        )  # fmt: skip
        self.queue_items = Gauge(
            "caret_gateway_export_queue_items", "Items waiting for the Collector.",
            ["signal"], registry=r,
        )  # fmt: skip
        self.exported_items = Counter(
            "caret_gateway_exported_items", "Items the Collector accepted.",
            ["signal"], registry=r,
        )  # fmt: skip
        self.export_failures = Counter(
            "caret_gateway_export_failures",
            "Failed export attempts to the Collector, by signal and reason "
            "(retryable ones are retried; 'rejected' ones are lost and logged).",
            ["signal", "reason"], registry=r,
        )  # fmt: skip
        self.export_lost_items = Counter(
            "caret_gateway_export_lost_items",
            "Accepted items that never reached the Collector (permanent rejection or shutdown).",
            ["signal", "reason"], registry=r,
        )  # fmt: skip
        self.consent_changes = Counter(
            "caret_gateway_consent_changes", "Consent updates recorded, by new setting.",
            ["telemetry_enabled"], registry=r,
        )  # fmt: skip
        self.consent_refused = Counter(
            "caret_gateway_consent_refused",
            "Consent changes refused, by reason (no_proof: a client's opt-in without an "
            "assertion, bad_assertion, rate_limited: client opt-outs beyond the limit).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.client_disconnects = Counter(
            "caret_gateway_client_disconnects",
            "Requests whose client went away before its body was read.",
            ["route"], registry=r,
        )  # fmt: skip
        self.body_timeouts = Counter(
            "caret_gateway_body_timeouts",
            "Requests whose body did not arrive within the deadline (answered 408).",
            ["route"], registry=r,
        )  # fmt: skip
        self.deletions = Counter(
            "caret_gateway_deletions", "Deletion requests served, by outcome.",
            ["outcome"], registry=r,
        )  # fmt: skip

    def record_scrub_report(self, report: ScrubReport) -> None:
        """Count what the privacy processor did: action (dropped, pseudonymised,
        redacted, truncated) and reason (drop reason, redaction kind)."""
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        for reason, count in report.dropped_by_reason().items():
            counts["dropped", reason] += count
        counts["pseudonymised", "pseudonymous"] += sum(report.pseudonymised.values())
        for kind, count in report.redacted.items():
            counts["redacted", kind] += count
        counts["truncated", "length"] += sum(report.truncated.values())
        for (action, reason), count in counts.items():
            if count:
                self.attributes.labels(action, reason).inc(count)

    def watch_folded_series(self, folded: Callable[[], Mapping[str, int]]) -> None:
        """Serve ``caret_gateway_metric_series_folded_total{metric}``: client-event
        measurements folded into a metric's all-``other`` series because the metric had
        reached its series cap. ``folded`` is read at each scrape
        (``ClientMetrics.folded_counts``: every client metric, 0 included)."""
        self.registry.register(_FoldedSeries(folded))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _FoldedSeries(Collector):
    """The series-cap folds of the client-event metrics, read when scraped (the counts
    live in ``ClientMetrics``: the hot path only adds to a dict)."""

    def __init__(self, folded: Callable[[], Mapping[str, int]]) -> None:
        self._folded = folded

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "caret_gateway_metric_series_folded",
            "Client-event measurements folded into their metric's series whose every label "
            "is 'other', because the metric had reached its series cap; by OTel metric name.",
            labels=["metric"],
        )
        for metric, count in sorted(self._folded().items()):
            family.add_metric([metric], count)
        yield family
