"""The service-level expressions shared by recording rules, alerts and panels.

Each function takes the rate window (``"5m"`` in rules, ``$__rate_interval`` on
dashboards) and extra matchers (dashboard variables), so a KPI means exactly the same
on a panel as in the alert that pages someone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from caret_otel.dashboards import promql as q
from caret_otel.dashboards import selfmetrics as sm
from caret_otel.dashboards.promnames import prometheus_label, prometheus_name
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics

# Labels of registry metrics, as Prometheus spells them.
PROVIDER: Final = prometheus_label(attrs.GEN_AI_PROVIDER_NAME)
MODEL: Final = prometheus_label(attrs.GEN_AI_REQUEST_MODEL)
OPERATION: Final = prometheus_label(attrs.GEN_AI_OPERATION_NAME)
ERROR_TYPE: Final = prometheus_label(attrs.ERROR_TYPE)
TOKEN_TYPE: Final = prometheus_label(attrs.GEN_AI_TOKEN_TYPE)
ENVIRONMENT: Final = prometheus_label(attrs.DEPLOYMENT_ENVIRONMENT_NAME)

# Series of the upstream GenAI client metrics.
OPERATION_DURATION_COUNT: Final = prometheus_name(metrics.GEN_AI_CLIENT_OPERATION_DURATION, "count")
OPERATION_DURATION_BUCKET: Final = prometheus_name(
    metrics.GEN_AI_CLIENT_OPERATION_DURATION, "bucket"
)
TOKEN_USAGE_SUM: Final = prometheus_name(metrics.GEN_AI_CLIENT_TOKEN_USAGE, "sum")


@dataclass(frozen=True)
class Objectives:
    """The thresholds the alerts enforce (plan KPIs: collection > 99 %, API < 100 ms,
    pipeline delay < 5 min), written once for the rules and the docs."""

    collection_success_min: float = 0.99
    gateway_p99_max_seconds: float = 0.1
    pipeline_lag_max_seconds: float = 300.0
    provider_error_ratio_max: float = 0.05
    provider_p99_max_seconds: float = 30.0
    queue_fill_ratio_max: float = 0.5


OBJECTIVES: Final = Objectives()


# --- GenAI provider calls --------------------------------------------------------------------


def genai_requests(window: str, by: Sequence[str] = (), matchers: Sequence[str] = ()) -> str:
    """Provider calls per second."""
    return q.sum_rate(q.selector(OPERATION_DURATION_COUNT, *matchers), by, window)


def genai_errors(window: str, by: Sequence[str] = (), matchers: Sequence[str] = ()) -> str:
    """Failed provider calls per second (the error type label is set only on failures)."""
    return q.sum_rate(
        q.selector(OPERATION_DURATION_COUNT, *matchers, q.ne(ERROR_TYPE, "")), by, window
    )


def genai_error_ratio(window: str, by: Sequence[str] = (), matchers: Sequence[str] = ()) -> str:
    """Share of provider calls that failed; 0 (not "no data") for groups without errors."""
    requests = genai_requests(window, by, matchers)
    return q.ratio(f"{genai_errors(window, by, matchers)} or 0 * {requests}", requests)


def genai_latency(
    quantile: float, window: str, by: Sequence[str] = (), matchers: Sequence[str] = ()
) -> str:
    """Latency quantile of provider calls, in seconds."""
    return q.quantile(quantile, q.selector(OPERATION_DURATION_BUCKET, *matchers), by, window)


# --- the gateway -------------------------------------------------------------------------------


def gateway_latency(quantile: float, window: str, by: Sequence[str] = ()) -> str:
    """Latency quantile of the gateway's ingest routes (the "API response" KPI)."""
    bucket = q.selector(
        sm.GATEWAY_REQUEST_DURATION_BUCKET, q.match(sm.LABEL_ROUTE, sm.GATEWAY_INGEST_ROUTES_REGEX)
    )
    return q.quantile(quantile, bucket, by, window)


def collection_success_ratio(window: str) -> str:
    """Share of received client events that were collected.

    Not collected = rejected at the gateway (invalid, too old, over a limit) plus accepted
    log records the gateway then lost (permanent Collector rejection, shutdown). Events of
    opted-out users are neither: dropping them is the correct outcome.
    """
    return f"1 - {collection_error_ratio(window)}"


def collection_error_ratio(window: str) -> str:
    """Share of received client events that were *not* collected (the SLO's error ratio;
    see :func:`collection_success_ratio`)."""
    rejected = q.or_zero(q.sum_rate(sm.GATEWAY_EVENTS_REJECTED, (), window))
    lost = q.or_zero(
        q.sum_rate(
            q.selector(sm.GATEWAY_EXPORT_LOST_ITEMS, q.eq(sm.LABEL_SIGNAL, sm.SIGNAL_LOGS)),
            (),
            window,
        )
    )
    accepted = q.sum_rate(sm.GATEWAY_EVENTS_ACCEPTED, (), window)
    return q.ratio(f"({rejected}) + ({lost})", f"{accepted} + ({rejected})")


def gateway_slow_ratio(window: str, threshold_seconds: float) -> str:
    """Share of ingest requests that took longer than ``threshold_seconds`` (the latency
    SLO's error ratio: "p99 < 100 ms" = at most 1 % of requests slower than 100 ms).
    ``threshold_seconds`` must be a bucket boundary of the gateway's histogram."""
    routes = q.match(sm.LABEL_ROUTE, sm.GATEWAY_INGEST_ROUTES_REGEX)
    fast = q.sum_rate(
        q.selector(
            sm.GATEWAY_REQUEST_DURATION_BUCKET, routes, q.eq("le", f"{threshold_seconds:g}")
        ),
        (),
        window,
    )
    total = q.sum_rate(
        q.selector(sm.GATEWAY_REQUEST_DURATION_BUCKET, routes, q.eq("le", "+Inf")), (), window
    )
    return f"1 - {q.ratio(fast, total)}"


# --- the pipeline behind the gateway ------------------------------------------------------------


def business_queue_wait(window: str) -> str:
    """Seconds an item now entering the Collector's business queue waits before it is sent:
    queue length / send rate (Little's law). With nothing sent the rate is clamped to
    0.001 items/s, so a stuck queue shows as a huge wait, not as "no data"."""
    business = (q.eq(sm.LABEL_EXPORTER, sm.COLLECTOR_BUSINESS_EXPORTER),)
    queued = q.sum_by((), q.selector(sm.COLLECTOR_QUEUE_SIZE, *business))
    sent = collector_signals_rate(sm.COLLECTOR_EXPORTER_SENT, window, business)
    return f"({queued} / clamp_min({sent}, 0.001))"


def rollup_lag() -> str:
    """Seconds the oldest stored event has waited to reach the analyst views' rollups."""
    return f"max({sm.EXPORTER_ROLLUP_LAG})"


def pipeline_lag(window: str) -> str:
    """End-to-end lag estimate, in seconds: the wait in the Collector's business queue
    plus the rollup lag of the business exporter (time from the gateway to the queue and
    the write itself are sub-second and left out)."""
    return f"{business_queue_wait(window)} + {rollup_lag()}"


def collector_signals_rate(prefix: str, window: str, matchers: Sequence[str] = ()) -> str:
    """Items per second of one Collector family summed over the three signals.

    One ``rate()`` over a ``__name__`` regex would fail: rate drops the metric name, so
    the spans, metric-point and log-record series of one component collide. Each signal
    gets its own term instead, 0 when the Collector has not created that series yet.
    """
    terms = [
        q.or_zero(q.sum_rate(q.selector(prefix + word, *matchers), (), window))
        for word in sm.COLLECTOR_ITEM_WORDS
    ]
    return "(" + " + ".join(f"({term})" for term in terms) + ")"


def collector_refused(window: str) -> str:
    """Items per second the Collector's receivers refused (memory limiter back-pressure)."""
    return collector_signals_rate(sm.COLLECTOR_RECEIVER_REFUSED, window)


def queue_fill_ratio(by: Sequence[str] = (sm.LABEL_EXPORTER, sm.LABEL_DATA_TYPE)) -> str:
    """How full each Collector exporter's sending queue is (0-1)."""
    return q.ratio(q.sum_by(by, sm.COLLECTOR_QUEUE_SIZE), q.sum_by(by, sm.COLLECTOR_QUEUE_CAPACITY))
