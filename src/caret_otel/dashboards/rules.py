"""Prometheus recording and alert rules, generated from the same expressions as the
dashboards (:mod:`caret_otel.dashboards.expressions`).

``caret-otel generate`` writes them to ``prometheus/rules/``; the rule unit
tests in ``prometheus/tests/`` (``promtool test rules``) prove each alert fires and stays
quiet when it should. Runbooks are in ``docs/alerts.md``, one section per alert.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from caret_otel.dashboards import expressions as x
from caret_otel.dashboards import promql as q
from caret_otel.dashboards import selfmetrics as sm
from caret_otel.dashboards.promnames import prometheus_label, prometheus_name
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics

WINDOW: Final = "5m"
EVALUATION_INTERVAL: Final = "30s"
RUNBOOK_BASE: Final = "docs/alerts.md#"
MIN_CALLS_PER_WINDOW: Final = 20
"""An error ratio over fewer calls than this in 5 minutes is noise, not an incident."""

PLATFORM: Final = prometheus_label(attrs.CARET_CLIENT_PLATFORM)
CARET_TOKEN_TYPE: Final = prometheus_label(attrs.CARET_TOKEN_TYPE)
BY_PM: Final = (x.ENVIRONMENT, x.PROVIDER, x.MODEL)


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str
    runbook: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.duration,
            "labels": {"severity": self.severity, **self.labels},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": RUNBOOK_BASE + self.name.lower(),
            },
        }


def _series_stem(metric_name: str) -> str:
    """``…_seconds_count`` -> ``…_seconds``: the metric part of a recording-rule name."""
    for suffix in ("_count", "_sum", "_bucket"):
        if metric_name.endswith(suffix):
            return metric_name.removesuffix(suffix)
    return metric_name


def recording_rules() -> list[dict[str, str]]:
    """``level:metric:operation`` series for long-range panels and ad-hoc queries."""
    duration = _series_stem(x.OPERATION_DURATION_COUNT)
    tokens = prometheus_name(metrics.CARET_TOKENS)
    sessions = prometheus_name(metrics.CARET_SESSION_ACTIVE)
    level = "env_provider_model"
    rules = [
        (f"{level}:{duration}:requests_rate{WINDOW}", x.genai_requests(WINDOW, BY_PM)),
        (f"{level}:{duration}:errors_rate{WINDOW}", x.genai_errors(WINDOW, BY_PM)),
        (f"{level}:{duration}:error_ratio_rate{WINDOW}", x.genai_error_ratio(WINDOW, BY_PM)),
        *(
            (
                f"{level}:{duration}:p{int(qt * 100)}_rate{WINDOW}",
                x.genai_latency(qt, WINDOW, BY_PM),
            )
            for qt in (0.5, 0.95, 0.99)
        ),
        (
            f"{level}_token_type:{_series_stem(x.TOKEN_USAGE_SUM)}:rate{WINDOW}",
            q.sum_rate(x.TOKEN_USAGE_SUM, (*BY_PM, x.TOKEN_TYPE), WINDOW),
        ),
        (
            f"{level}_token_type:{tokens}:rate{WINDOW}",
            q.sum_rate(tokens, (*BY_PM, CARET_TOKEN_TYPE), WINDOW),
        ),
        (f"env_platform:{sessions}:sum", q.sum_by((x.ENVIRONMENT, PLATFORM), sessions)),
        (f"caret:collection_success:ratio_rate{WINDOW}", x.collection_success_ratio(WINDOW)),
        (f"caret:gateway_ingest_latency_seconds:p99_rate{WINDOW}", x.gateway_latency(0.99, WINDOW)),
        (f"caret:pipeline_lag_seconds:estimate_rate{WINDOW}", x.pipeline_lag(WINDOW)),
        ("exporter_data_type:otelcol_exporter_queue:fill_ratio", x.queue_fill_ratio()),
    ]
    return [{"record": name, "expr": expr} for name, expr in rules]


def alerts() -> list[Alert]:
    o = x.OBJECTIVES
    requests = x.genai_requests(WINDOW, BY_PM)
    queue_by = (sm.LABEL_EXPORTER, sm.LABEL_DATA_TYPE)
    queue_size = q.sum_by(queue_by, sm.COLLECTOR_QUEUE_SIZE)
    business_send_failed = x.collector_signals_rate(
        sm.COLLECTOR_EXPORTER_SEND_FAILED,
        WINDOW,
        (q.eq(sm.LABEL_EXPORTER, sm.COLLECTOR_BUSINESS_EXPORTER),),
    )
    jobs = "|".join(sm.SCRAPE_JOBS)
    return [
        Alert(
            "CaretProviderErrorRatioHigh",
            f"({x.genai_error_ratio(WINDOW, BY_PM)} > {o.provider_error_ratio_max})"
            f" and ({requests} * 300 >= {MIN_CALLS_PER_WINDOW})",
            "10m", "warning",
            "{{ $labels." + x.PROVIDER + " }} / {{ $labels." + x.MODEL + " }}: {{ $value | humanizePercentage }} of calls fail",
            f"More than {o.provider_error_ratio_max:.0%} of provider calls failed for 10 minutes. "
            f"Check the Errors row of the LLM API dashboard for the {attrs.ERROR_TYPE}, then the provider's status page.",
            runbook=(
                "Open *LLM API performance*, row Errors: which error type dominates (timeout, 429, 5xx)?",
                "429: Caret is over the provider's rate limit; check the request rate in row Throughput "
                "and the account's quota.",
                "5xx or timeout: look at the provider's status page; compare with other models of the "
                "same provider to tell a model outage from a provider outage.",
                "Client-reported provider errors rising too means users see it: announce it.",
            ),
        ),
        Alert(
            "CaretProviderLatencyHigh",
            f"{x.genai_latency(0.99, WINDOW, BY_PM)} > {o.provider_p99_max_seconds:g}",
            "15m", "warning",
            "{{ $labels." + x.PROVIDER + " }} / {{ $labels." + x.MODEL + " }}: p99 latency {{ $value | humanizeDuration }}",
            f"p99 of {metrics.GEN_AI_CLIENT_OPERATION_DURATION.name} above {o.provider_p99_max_seconds:g} s for 15 minutes.",
            runbook=(
                "Open *LLM API performance*, row Latency: is one model slow or the whole provider?",
                "Check token usage per call (row Tokens): longer prompts make slower calls.",
                "If only one provider region is slow, the provider's status page usually says so.",
            ),
        ),
        Alert(
            "CaretGatewayLatencyHigh",
            f"{x.gateway_latency(0.99, WINDOW)} > {o.gateway_p99_max_seconds:g}",
            "10m", "warning",
            "Gateway ingest p99 latency {{ $value | humanizeDuration }}",
            f"p99 answer time of the ingest routes above the {o.gateway_p99_max_seconds * 1000:.0f} ms KPI for 10 minutes.",
            runbook=(
                "Open *Pipeline health*, row Gateway: which route is slow, and is the export queue full?",
                "A full export queue or a Collector refusing data (memory limiter) slows answers: "
                "see the Collector row.",
                "CPU-bound: the gateway is one process per core; add instances behind the load balancer.",
            ),
        ),
        Alert(
            "CaretCollectionSuccessLow",
            f"{x.collection_success_ratio(WINDOW)} < {o.collection_success_min:g}",
            "10m", "critical",
            "Only {{ $value | humanizePercentage }} of client events are collected",
            f"Collection success below the {o.collection_success_min:.0%} KPI for 10 minutes: events are rejected or lost.",
            runbook=(
                "Open *Pipeline health*, panel Client events by outcome: which rejection reason grew?",
                "invalid_* reasons after a client release: a client bug; the rejected field is named in "
                "the 4xx body the client got.",
                "Lost items (panel Export to the Collector): the Collector rejected data permanently; "
                "its log says why.",
            ),
        ),
        Alert(
            "CaretPipelineLagHigh",
            f"({x.pipeline_lag(WINDOW)}) > {o.pipeline_lag_max_seconds:g}",
            "5m", "critical",
            "Events reach the analyst views {{ $value | humanizeDuration }} after receipt",
            f"End-to-end lag (Collector business-queue wait + rollup lag) above the {o.pipeline_lag_max_seconds / 60:.0f}-minute KPI for 5 minutes.",
            runbook=(
                "Open *Pipeline health*, panel End-to-end lag by stage: queue wait or rollups?",
                "Queue wait: the business exporter is slow or down (see CaretBusinessExporterFailing and "
                "its write latency); the queue is on disk, nothing is lost.",
                "Rollups: check the exporter's log for rollup failures and PostgreSQL for locks.",
            ),
        ),
        Alert(
            "CaretBusinessExporterFailing",
            f"({q.sum_rate(sm.EXPORTER_FAILURES, (), WINDOW)} > 0) or ({business_send_failed} > 0)",
            "5m", "critical",
            "The business exporter is failing",
            "The business exporter reports failures (writing, rollups or retention), or the Collector gives up "
            "sending to it; data waits in the Collector's persistent queue.",
            runbook=(
                "Open *Pipeline health*, row Business exporter: failures by stage and kind.",
                "kind=unavailable: PostgreSQL is down or refusing connections; the exporter answers 503 "
                "and the Collector keeps the data in its persistent queue until it is back.",
                "kind=error: read the exporter's log; a bad migration or a full disk are the usual causes.",
            ),
        ),
        Alert(
            "CaretCollectorQueueFilling",
            f"{x.queue_fill_ratio(queue_by)} > {o.queue_fill_ratio_max:g}",
            "5m", "critical",
            "{{ $labels." + sm.LABEL_EXPORTER + " }} ({{ $labels." + sm.LABEL_DATA_TYPE + " }}) sending queue {{ $value | humanizePercentage }} full",
            "An exporter's sending queue is more than half full; when it is full, the Collector refuses new data.",
            runbook=(
                "The destination of that exporter is down or slow: check it first (Prometheus, Loki, "
                "Tempo or the business exporter).",
                "When the queue is full the Collector refuses new data and the gateway answers 503; "
                "raise the queue size or fix the destination before that.",
            ),
        ),
        Alert(
            "CaretCollectorQueueGrowing",
            f"(deriv(({queue_size})[10m:1m]) > 0) and ({queue_size} > 1000)",
            "15m", "warning",
            "{{ $labels." + sm.LABEL_EXPORTER + " }} ({{ $labels." + sm.LABEL_DATA_TYPE + " }}) sending queue keeps growing",
            "The queue has grown for 15 minutes: the destination is slower than the input or down.",
            runbook=(
                "Compare the exporter's sent rate with the receiver's accepted rate (*Pipeline health*, "
                "Collector row): the destination keeps up with less than the input.",
                "Scale the destination or the exporter's consumers (num_consumers).",
            ),
        ),
        Alert(
            "CaretCollectorRefusingData",
            f"{x.collector_refused(WINDOW)} > 0",
            "5m", "warning",
            "The Collector refuses {{ $value | humanize }} items/s (memory limiter)",
            "The memory limiter is above its soft limit; senders get retryable errors and the gateway may answer 503.",
            runbook=(
                "The Collector is above its memory_limiter soft limit: a destination is slow and queues "
                "grew, or the input spiked.",
                "Check the queue panels; raise CARET_OTEL_COLLECTOR_MEMORY_LIMIT_MIB if the host has room.",
                "Senders retry, so nothing is lost while it is short.",
            ),
        ),
        Alert(
            "CaretIngestionStopped",
            f"({q.sum_rate(sm.GATEWAY_EVENTS_ACCEPTED, (), '15m')} == 0) or absent({sm.GATEWAY_EVENTS_ACCEPTED})",
            "10m", "critical",
            "No client events accepted for 25 minutes",
            "The gateway accepted no event in the last 15 minutes (for 10 more): clients cannot reach it, or it rejects everything.",
            runbook=(
                "Is the gateway up (CaretScrapeTargetDown) and reachable from the internet (load "
                "balancer, DNS, certificate)?",
                "Panel Requests by route and status: are requests arriving but rejected (401: ingest "
                "token rotated without a client release)?",
                "In a test or demo stack with no traffic this alert is expected.",
            ),
        ),
        Alert(
            "CaretScrapeTargetDown",
            f"up{{job=~{q.quote(jobs)}}} == 0",
            "5m", "critical",
            "{{ $labels.job }} at {{ $labels.instance }} is down",
            "Prometheus cannot scrape a pipeline component's /metrics.",
            runbook=(
                "The process is down or its /metrics port changed: check its log and the supervisor "
                "(`caret-otel up` prints each part's log file).",
                "A down gateway stops ingestion; a down exporter fills the Collector's business queue.",
            ),
        ),
    ]  # fmt: skip


# --- service-level objectives: error budgets and multi-window, multi-burn-rate alerts ---------

SLO_PERIOD: Final = "30d"
"""The error budget's period: an objective of 99 % allows 1 % bad events per 30 days."""
SLO_PERIOD_SECONDS: Final = 30 * 86400
SLO_WINDOWS: Final[dict[str, int]] = {
    "5m": 300,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "6h": 21600,
    "1d": 86400,
    "3d": 259200,
}
"""Nominal window -> seconds. Recording-rule names keep the nominal window whatever the
:class:`RuleTiming`, so alerts and dashboards never change with it."""
SLO_LABEL: Final = "slo"
BURN_LABEL: Final = "burn"


def prometheus_duration(seconds: float) -> str:
    """``3600`` -> ``"1h"``, ``90`` -> ``"90s"``; at least ``"1s"``."""
    whole = max(1, round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


@dataclass(frozen=True)
class RuleTiming:
    """How fast the SLO rules react.

    ``speedup`` divides every rate window and every pending (``for``) duration of the SLO
    rules; production uses 1. The end-to-end alerting test renders the *same* rules with
    ``speedup=60`` (the 1 h window becomes 60 s, the 5 m window 5 s) and a 1 s evaluation
    interval, so a burn pages within seconds - the rules are not rewritten for the test.
    """

    speedup: float = 1.0
    evaluation_interval: str = EVALUATION_INTERVAL

    def __post_init__(self) -> None:
        if not self.speedup > 0:
            raise ValueError(f"speedup must be positive, got {self.speedup!r}")

    def window(self, nominal: str) -> str:
        """The real range of a nominal SLO window (``"1h"`` -> ``"1m"`` at speedup 60)."""
        return prometheus_duration(SLO_WINDOWS[nominal] / self.speedup)

    def duration(self, seconds: float) -> str:
        return prometheus_duration(seconds / self.speedup)


DEFAULT_TIMING: Final = RuleTiming()


@dataclass(frozen=True)
class BurnWindows:
    """One multi-window condition: the error ratio over ``long`` *and* over ``short``
    exceed ``factor`` x the error budget (Google SRE workbook, chapter 5)."""

    long: str
    short: str
    factor: float


@dataclass(frozen=True)
class BurnAlert:
    """Fast burn pages (critical), slow burn opens a ticket (warning)."""

    kind: str
    severity: str
    pending_seconds: int
    windows: tuple[BurnWindows, ...]
    meaning: str


BURN_ALERTS: Final = (
    BurnAlert(
        "fast", "critical", 120,
        (BurnWindows("1h", "5m", 14.4), BurnWindows("6h", "30m", 6)),
        "2 % of the 30-day error budget spent in one hour (or 5 % in six hours)",
    ),
    BurnAlert(
        "slow", "warning", 900,
        (BurnWindows("1d", "2h", 3), BurnWindows("3d", "6h", 1)),
        "10 % of the 30-day error budget spent in one day (or in three days)",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Slo:
    """A service-level objective on a ratio of bad to all events.

    ``error_ratio(window)`` is the PromQL of the share of bad events over ``window``
    (labels ``by`` kept); ``objective`` the share that must be good.
    """

    name: str
    title: str
    objective: float
    error_ratio: Callable[[RuleTiming, str], str]
    by: tuple[str, ...]
    what: str
    runbook: tuple[str, ...]
    level: str = "caret"
    """The ``level`` part of the recording-rule names (the labels kept)."""

    @property
    def budget(self) -> float:
        return 1 - self.objective

    @property
    def alert_stem(self) -> str:
        return "CaretSLO" + "".join(part.title() for part in self.name.split("_"))

    def record(self, window: str) -> str:
        return f"{self.level}:slo_{self.name}:error_ratio_rate{window}"

    def alert_name(self, burn: BurnAlert) -> str:
        return f"{self.alert_stem}Burn{burn.kind.title()}"


def _pipeline_lag_bad(timing: RuleTiming) -> str:
    """1 while the end-to-end lag estimate is above the KPI, else 0 (recorded each
    evaluation: the lag SLO counts bad *time*, not bad events)."""
    return (
        f"({x.pipeline_lag(timing.window('5m'))}) > bool {x.OBJECTIVES.pipeline_lag_max_seconds:g}"
    )


PIPELINE_LAG_BAD: Final = "caret:slo_pipeline_lag:over_objective"


def slos() -> list[Slo]:
    """The plan's KPIs as SLOs (thresholds from :data:`expressions.OBJECTIVES`)."""
    o = x.OBJECTIVES
    return [
        Slo(
            "collection_success", "Collection success", o.collection_success_min,
            lambda _t, w: x.collection_error_ratio(w), (),
            "client events not collected",
            (
                "Open *SLOs* and *Pipeline health*, panel Client events by outcome: which rejection "
                "reason grew, or are accepted events lost on the way to the Collector?",
                "invalid_* reasons after a client release: a client bug; the rejected field is named "
                "in the 4xx body the client got.",
                "Lost items: the Collector rejected data permanently; its log says why.",
            ),
        ),
        Slo(
            "ingest_latency", "Ingest latency", 0.99,
            lambda _t, w: x.gateway_slow_ratio(w, o.gateway_p99_max_seconds), (),
            f"ingest requests slower than {o.gateway_p99_max_seconds * 1000:.0f} ms (KPI: p99 below that)",
            (
                "Open *Pipeline health*, row Gateway: which route is slow, and is the export queue full?",
                "A Collector refusing data (memory limiter) or a full export queue slows answers.",
                "CPU-bound: add gateway instances behind the load balancer.",
            ),
        ),
        Slo(
            "pipeline_lag", "Pipeline delay", 0.99,
            lambda _t, w: f"avg_over_time({PIPELINE_LAG_BAD}[{w}])", (),
            f"time with an end-to-end delay above {o.pipeline_lag_max_seconds / 60:.0f} min",
            (
                "Open *Pipeline health*, panel End-to-end lag by stage: queue wait or rollups?",
                "Queue wait: the business exporter is slow or down; the queue is on disk, nothing is lost.",
                "Rollups: check the exporter's log for rollup failures and PostgreSQL for locks.",
            ),
        ),
        Slo(
            "provider_errors", "Provider calls", 1 - o.provider_error_ratio_max,
            lambda _t, w: x.genai_error_ratio(w, (x.ENVIRONMENT, x.PROVIDER)),
            (x.ENVIRONMENT, x.PROVIDER),
            "LLM provider calls that fail",
            (
                "Open *LLM API performance*, row Errors: which error type dominates (timeout, 429, 5xx)?",
                "429: over the provider's rate limit; 5xx or timeout: the provider's status page.",
                "A provider outage burns this budget without any fault of ours: announce it to users.",
            ),
            level="env_provider",
        ),
    ]  # fmt: skip


def _threshold(slo: Slo, factor: float) -> str:
    return f"{factor * slo.budget:.6g}"


def slo_alerts(timing: RuleTiming = DEFAULT_TIMING) -> list[Alert]:
    """Two alerts per SLO: fast burn (pages) and slow burn (ticket), each the ``or`` of
    two long-and-short window conditions, so a burn fires quickly and a blip - which
    raises the short window only, or the long one too little - does not."""
    found = []
    for slo in slos():
        for burn in BURN_ALERTS:
            conditions = [
                f"({slo.record(w.long)} > {_threshold(slo, w.factor)}"
                f" and {slo.record(w.short)} > {_threshold(slo, w.factor)})"
                for w in burn.windows
            ]
            pairs = "; ".join(f"{w.factor:g}x over {w.long} and {w.short}" for w in burn.windows)
            found.append(
                Alert(
                    slo.alert_name(burn),
                    " or ".join(conditions),
                    timing.duration(burn.pending_seconds),
                    burn.severity,
                    f"{slo.title} SLO, {burn.kind} burn: {{{{ $value | humanizePercentage }}}} "
                    f"bad (budget {slo.budget:.0%})",
                    f"{slo.title} burns its {SLO_PERIOD} error budget too fast: {burn.meaning} "
                    f"({pairs}). Bad: {slo.what}; objective {slo.objective:.0%} good.",
                    runbook=slo.runbook,
                    labels={SLO_LABEL: slo.name, BURN_LABEL: burn.kind},
                )
            )
    return found


def slo_recording_rules(timing: RuleTiming = DEFAULT_TIMING) -> list[dict[str, str]]:
    rules = [{"record": PIPELINE_LAG_BAD, "expr": _pipeline_lag_bad(timing)}]
    for slo in slos():
        rules += [
            # ">= 0" drops the NaN of a window without any event (0/0): no traffic means no
            # ratio (absent), so budget and burn panels average over real samples only.
            {
                "record": slo.record(nominal),
                "expr": f"({slo.error_ratio(timing, timing.window(nominal))}) >= 0",
            }
            for nominal in SLO_WINDOWS
        ]
    return rules


def slo_file(timing: RuleTiming = DEFAULT_TIMING) -> str:
    """``prometheus/rules/caret-slo.yml`` (with ``timing``: the same rules, faster)."""
    # One group: its rules run in order, so each alert compares the ratios recorded in the
    # same evaluation (two groups would run concurrently, one evaluation apart at worst).
    groups = [
        {
            "name": "caret-slo",
            "interval": timing.evaluation_interval,
            "rules": [*slo_recording_rules(timing), *(a.rule() for a in slo_alerts(timing))],
        },
    ]
    what = "SLO recording rules and burn-rate alerts"
    if timing != DEFAULT_TIMING:
        what += f" (timing sped up {timing.speedup:g}x)"
    return _render(what, groups)


#: Alerts an ``CaretIngestionStopped`` makes fire as a consequence; Alertmanager mutes
#: them while it fires (alertmanager/alertmanager.yml, inhibit_rules).
INGESTION_STOPPED: Final = "CaretIngestionStopped"


def caused_by_ingestion_stopped() -> list[str]:
    collection = next(s for s in slos() if s.name == "collection_success")
    return [
        "CaretCollectionSuccessLow",
        *(collection.alert_name(b) for b in BURN_ALERTS),
    ]


def recording_file() -> str:
    groups = [
        {"name": "caret-recording", "interval": EVALUATION_INTERVAL, "rules": recording_rules()}
    ]
    return _render("Recording rules", groups)


def alerts_file() -> str:
    groups = [
        {
            "name": "caret-alerts",
            "interval": EVALUATION_INTERVAL,
            "rules": [a.rule() for a in alerts()],
        }
    ]
    return _render("Alert rules", groups)


def _render(what: str, groups: list[dict[str, Any]]) -> str:
    header = (
        f"# {what} of the Caret telemetry pipeline.\n"
        "# Generated by `caret-otel generate` from src/caret_otel/dashboards/rules.py. Do not edit.\n"
    )
    body = yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000, allow_unicode=True)
    return header + body
