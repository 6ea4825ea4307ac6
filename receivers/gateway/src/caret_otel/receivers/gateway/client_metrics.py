"""Metrics derived from client events, through the OpenTelemetry SDK.

The mapping (which event feeds which instrument, with what value) follows the
registry's client-event table (``docs/semantic-conventions.md``); a unit test compares
:data:`EVENT_METRICS` with the registry's ``signals`` so the two cannot drift.

Labels are only attributes the policy marks ``metric: true`` and the metric lists; a
View per SDK instrument enforces the same allow-list inside the SDK (histograms are
aggregated by :mod:`client_histograms` from the same label sets, with the registry's
bucket advice). Every such label that the event can carry (the registry lists
the attribute on the event) is on each of its measurements: when the event has no value
for it, because the client sent none or the privacy processor dropped an off-shape one
(counted there, reason ``shape``), the label is ``other``, never left out, so a refused
value can neither vanish from a breakdown nor split a metric's series by label set.
Temporality is cumulative (Prometheus remote-write drops delta sums).

Counter increments of one request are summed per label set (:class:`MetricBatch`) and
added to totals that observable instruments report at collection time; histogram values
go to :class:`~caret_otel.receivers.gateway.client_histograms.ClientHistograms`; see
:class:`ClientMetrics` for why.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import Counter as SdkCounter
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics import ObservableCounter as SdkObservableCounter
from opentelemetry.sdk.metrics import ObservableGauge as SdkObservableGauge
from opentelemetry.sdk.metrics import ObservableUpDownCounter as SdkObservableUpDownCounter
from opentelemetry.sdk.metrics import UpDownCounter as SdkUpDownCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource

from caret_otel.core.version import __version__
from caret_otel.otlp.wire import AttributeValue
from caret_otel.receivers.gateway.client_histograms import ClientHistograms, HistogramExporter
from caret_otel.receivers.gateway.config import OtlpTarget
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events, metrics
from caret_otel.semconv.metrics import MetricSpec
from caret_otel.semconv.policy import OTHER_VALUE, Policy

log = logging.getLogger(__name__)

METER_NAME = "caret_otel.receivers.gateway"
GATEWAY_SERVICE_NAME = "caret-gateway"
SERVICE_NAMESPACE = "caret"

Labels = tuple[tuple[str, AttributeValue], ...]

_CUMULATIVE = {
    kind: AggregationTemporality.CUMULATIVE
    for kind in (
        SdkCounter, SdkUpDownCounter, SdkHistogram,
        SdkObservableCounter, SdkObservableUpDownCounter, SdkObservableGauge,
    )
}  # fmt: skip


class MetricBatch:
    """Measurements of one request: counter sums per label set, histogram samples."""

    __slots__ = ("samples", "sums")

    def __init__(self) -> None:
        self.sums: dict[tuple[str, Labels], float] = {}
        self.samples: list[tuple[str, Labels, float]] = []

    def add(self, metric: str, labels: Labels, value: float) -> None:
        key = (metric, labels)
        self.sums[key] = self.sums.get(key, 0) + value

    def record(self, metric: str, labels: Labels, value: float) -> None:
        self.samples.append((metric, labels, value))


def _number(value: object) -> float | None:
    """A finite, non-negative measurement, or None (validated earlier; belt and braces)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


# An observer adds one event's measurements to a batch:
# (recorder, batch, attributes, OTel event name).
Observer = Callable[["ClientMetrics", MetricBatch, Mapping[str, AttributeValue], str], None]


def _count(spec: MetricSpec) -> Observer:
    def observe(m: ClientMetrics, b: MetricBatch, a: Mapping[str, AttributeValue], e: str) -> None:
        b.add(spec.name, m.labels(spec, a, event=e), 1)

    return observe


def _sum_of(spec: MetricSpec, key: str) -> Observer:
    def observe(m: ClientMetrics, b: MetricBatch, a: Mapping[str, AttributeValue], e: str) -> None:
        value = _number(a.get(key))
        if value is not None:
            b.add(spec.name, m.labels(spec, a, event=e), value)

    return observe


def _sample_of(spec: MetricSpec, key: str) -> Observer:
    def observe(m: ClientMetrics, b: MetricBatch, a: Mapping[str, AttributeValue], e: str) -> None:
        value = _number(a.get(key))
        if value is not None:
            b.record(spec.name, m.labels(spec, a, event=e), value)

    return observe


def _session_delta(delta: int) -> Observer:
    spec = metrics.CARET_SESSION_ACTIVE

    def observe(m: ClientMetrics, b: MetricBatch, a: Mapping[str, AttributeValue], e: str) -> None:
        b.add(spec.name, m.labels(spec, a, event=e), delta)

    return observe


# (usage attribute, gen_ai.token.type value or None, caret.token.type value)
_TOKEN_KINDS = (
    (attrs.GEN_AI_USAGE_INPUT_TOKENS, "input", "input"),
    (attrs.GEN_AI_USAGE_OUTPUT_TOKENS, "output", "output"),
    (attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, None, "cache_read"),
    (attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, None, "cache_write"),
)


def _tokens(m: ClientMetrics, b: MetricBatch, a: Mapping[str, AttributeValue], e: str) -> None:
    usage, caret_tokens = metrics.GEN_AI_CLIENT_TOKEN_USAGE, metrics.CARET_TOKENS
    found = [
        (gen_ai_type, caret_type, value)
        for key, gen_ai_type, caret_type in _TOKEN_KINDS
        if (value := _number(a.get(key))) is not None
    ]
    if not found:
        return
    # The labels shared by every kind are built once per event, not once per kind.
    caret_labels = m.labeller(caret_tokens, a, attrs.CARET_TOKEN_TYPE, event=e)
    usage_labels = m.labeller(usage, a, attrs.GEN_AI_TOKEN_TYPE, event=e)
    for gen_ai_type, caret_type, value in found:
        b.add(caret_tokens.name, caret_labels(caret_type), value)
        if gen_ai_type is not None:
            b.record(usage.name, usage_labels(gen_ai_type), value)


def _consent(enabled: bool) -> Observer:
    spec = metrics.CARET_CONSENT_CHANGES

    def observe(m: ClientMetrics, b: MetricBatch, a: Mapping[str, AttributeValue], e: str) -> None:
        extra = {attrs.CARET_CONSENT_TELEMETRY_ENABLED: enabled}
        b.add(spec.name, m.labels(spec, a, extra, event=e), 1)

    return observe


_FEATURE_USE = _count(metrics.CARET_FEATURE_USES)
_COST = _sum_of(metrics.CARET_API_COST, attrs.CARET_API_COST)
_API_ERROR = _count(metrics.CARET_API_ERRORS)
MCP_STARTED = "started"


def _mcp_use(m: ClientMetrics, b: MetricBatch, a: Mapping[str, AttributeValue], e: str) -> None:
    """An MCP call arrives as `started` then `success`/`error`: one use, not two."""
    if a.get(attrs.CARET_TOOL_STATUS) != MCP_STARTED:
        _FEATURE_USE(m, b, a, e)


def _provider_error(
    m: ClientMetrics, b: MetricBatch, a: Mapping[str, AttributeValue], e: str
) -> None:
    """extension.error / extension.message count as provider errors when they name an
    HTTP status or a provider (Caret 0.4.x reports every first-chunk provider error so)."""
    if attrs.HTTP_RESPONSE_STATUS_CODE in a or attrs.GEN_AI_PROVIDER_NAME in a:
        _API_ERROR(m, b, a, e)


EVENT_METRICS: dict[str, tuple[Observer, ...]] = {
    events.CARET_TASK_CREATED.name: (_count(metrics.CARET_TASK_STARTS),),
    events.CARET_TASK_COMPLETED.name: (
        _count(metrics.CARET_TASK_COMPLETIONS),
        _sample_of(metrics.CARET_TASK_DURATION, attrs.CARET_TASK_DURATION),
    ),
    events.CARET_TASK_CONVERSATION_TURN.name: (_count(metrics.CARET_TASK_TURNS), _tokens, _COST),
    events.CARET_TASK_TOKENS.name: (
        _tokens,
        _sum_of(metrics.CARET_CREDITS_CONSUMED, attrs.CARET_CREDITS_AMOUNT),
        _COST,
    ),
    events.CARET_TASK_PROVIDER_API_ERROR.name: (_API_ERROR,),
    events.CARET_EXTENSION_ERROR.name: (_provider_error,),
    events.CARET_TASK_BROWSER_TOOL_START.name: (_FEATURE_USE,),
    events.CARET_TASK_BROWSER_TOOL_END.name: (_FEATURE_USE,),
    events.CARET_TASK_FOCUS_CHAIN.name: (_FEATURE_USE,),
    events.CARET_TASK_MCP_TOOL_CALLED.name: (_mcp_use,),
    events.CARET_TASK_TOOL_USED.name: (_FEATURE_USE,),
    events.CARET_UI_MODEL_SELECTED.name: (_count(metrics.CARET_MODEL_SELECTIONS),),
    events.CARET_CREDITS_CONSUMED.name: (
        _sum_of(metrics.CARET_CREDITS_CONSUMED, attrs.CARET_CREDITS_AMOUNT),
    ),
    events.CARET_CREDITS_PURCHASED.name: (
        _sum_of(metrics.CARET_CREDITS_PURCHASED, attrs.CARET_CREDITS_AMOUNT),
    ),
    events.CARET_PLAN_CHANGED.name: (_count(metrics.CARET_PLAN_CHANGES),),
    events.CARET_SESSION_STARTED.name: (_session_delta(+1),),
    events.CARET_SESSION_ENDED.name: (
        _session_delta(-1),
        _sample_of(metrics.CARET_SESSION_DURATION, attrs.CARET_SESSION_DURATION),
    ),
    events.CARET_USER_OPT_IN.name: (_consent(True),),
    events.CARET_USER_OPT_OUT.name: (_consent(False),),
    events.CARET_USER_SIGNED_UP.name: (_count(metrics.CARET_SIGNUPS),),
}
"""OTel event name -> what its events add to which metrics."""
# Every other event of a feature (checkpoint, mode, terminal, mention, ...) is a use.
EVENT_METRICS.update(
    (spec.name, (_FEATURE_USE,))
    for spec in events.ALL
    if spec.feature is not None and spec.name not in EVENT_METRICS
)
# Events that feed no metric (kept as events only) are listed too, with no observer.
for _spec in events.ALL:
    EVENT_METRICS.setdefault(_spec.name, ())

# Metrics fed by client events (instruments are created for these only).
CLIENT_METRICS: tuple[MetricSpec, ...] = (
    metrics.CARET_TASK_STARTS, metrics.CARET_TASK_COMPLETIONS, metrics.CARET_TASK_DURATION,
    metrics.CARET_TASK_TURNS, metrics.GEN_AI_CLIENT_TOKEN_USAGE, metrics.CARET_TOKENS,
    metrics.CARET_CREDITS_CONSUMED, metrics.CARET_CREDITS_PURCHASED, metrics.CARET_API_ERRORS,
    metrics.CARET_FEATURE_USES, metrics.CARET_MODEL_SELECTIONS, metrics.CARET_PLAN_CHANGES,
    metrics.CARET_SESSION_ACTIVE, metrics.CARET_SESSION_DURATION, metrics.CARET_CONSENT_CHANGES,
    metrics.CARET_SIGNUPS, metrics.CARET_API_COST,
)  # fmt: skip


def allowed_labels(spec: MetricSpec, policy: Policy) -> tuple[str, ...]:
    """The metric's attributes that the privacy policy allows as labels."""
    return tuple(
        key for key in spec.attributes if (rule := policy.rule(key)) is not None and rule.metric
    )


def views(policy: Policy) -> list[View]:
    """One View per client metric the SDK aggregates (histograms are ours): the allowed
    label keys."""
    return [
        View(instrument_name=spec.name, attribute_keys=set(allowed_labels(spec, policy)))
        for spec in CLIENT_METRICS
        if spec.instrument != "histogram"
    ]


def meter_provider(
    otlp: OtlpTarget,
    policy: Policy,
    client_histograms: ClientHistograms,
    *,
    export_interval_s: float = 15.0,
    exporter: MetricExporter | None = None,
) -> MeterProvider:
    """The SDK pipeline: views from the registry, cumulative OTLP/HTTP to the Collector
    (or to ``exporter``, e.g. a test's in-memory one) every ``export_interval_s``, the
    client histograms added to every export."""
    resource = Resource.create(
        {
            attrs.SERVICE_NAME: GATEWAY_SERVICE_NAME,
            attrs.SERVICE_NAMESPACE: SERVICE_NAMESPACE,
            attrs.SERVICE_VERSION: __version__,
        }
    )
    if exporter is None:
        exporter = OTLPMetricExporter(
            endpoint=otlp.endpoints["metrics"],
            headers=dict(otlp.headers),
            timeout=otlp.timeout_s,
            preferred_temporality=_CUMULATIVE,  # type: ignore[arg-type]
        )
    merged = HistogramExporter(exporter, client_histograms, resource, METER_NAME)
    reader = PeriodicExportingMetricReader(merged, export_interval_millis=export_interval_s * 1000)
    return MeterProvider(metric_readers=[reader], resource=resource, views=views(policy))


def pipeline(
    otlp: OtlpTarget,
    policy: Policy,
    *,
    export_interval_s: float = 15.0,
    exporter: MetricExporter | None = None,
) -> tuple[MeterProvider, ClientMetrics]:
    """The gateway's client-metric pipeline: the SDK provider (shut it down at the end)
    and the recorder that feeds it, sharing one histogram store."""
    store = ClientHistograms(spec for spec in CLIENT_METRICS if spec.instrument == "histogram")
    provider = meter_provider(
        otlp, policy, store, export_interval_s=export_interval_s, exporter=exporter
    )
    return provider, ClientMetrics(provider.get_meter(METER_NAME), policy, store)


MAX_SERIES_PER_METRIC = 2000
"""Label sets kept per metric (the SDK's default cardinality limit); further label sets
are folded into one series whose every label is ``other`` (counted in
``ClientMetrics.folded``, served on the gateway's ``/metrics`` as
``caret_gateway_metric_series_folded_total``), so a flood of made-up model names can grow
neither memory nor Prometheus."""


def _folded(labels: Labels) -> Labels:
    return tuple((key, OTHER_VALUE) for key, _ in labels)


class ClientMetrics:
    """Turns accepted client events into measurements of the SDK pipeline.

    Counters and up-down counters are kept here as cumulative totals and reported to the
    SDK through observable instruments at each collection: a request then costs a few
    dict additions instead of one SDK call (~9 µs) per label set. Histogram values go to
    ``client_histograms`` (the store :func:`meter_provider` exports), at ~1 µs a value.
    """

    def __init__(self, meter: Meter, policy: Policy, client_histograms: ClientHistograms) -> None:
        self._labels = {spec.name: allowed_labels(spec, policy) for spec in CLIENT_METRICS}
        # (metric, event) -> the metric's allowed labels that the event can carry
        self._event_labels: dict[tuple[str, str | None], tuple[str, ...]] = {
            (metric, None): keys for metric, keys in self._labels.items()
        }
        for event in events.ALL:
            for metric, keys in self._labels.items():
                carried = tuple(k for k in keys if k in event.attributes)
                self._event_labels[metric, event.name] = carried
        self._lock = threading.Lock()  # the SDK collects from its own thread
        self._totals: dict[str, dict[Labels, float]] = {}
        self._histograms = client_histograms
        self._overflow_logged: set[str] = set()
        self._histogram_series: dict[str, set[Labels]] = {}
        self.folded: dict[str, int] = {}
        """Measurements folded into the ``other`` series, per metric."""
        for spec in CLIENT_METRICS:
            if spec.instrument == "histogram":
                continue
            self._totals[spec.name] = {}
            create = (
                meter.create_observable_counter
                if spec.instrument == "counter"
                else meter.create_observable_up_down_counter
            )
            create(spec.name, [self._reporter(spec.name)], spec.unit, spec.brief)

    def folded_counts(self) -> dict[str, int]:
        """Measurements folded into the ``other`` series so far, for every client metric
        (0 when none): what ``GatewayMetrics.watch_folded_series`` serves."""
        with self._lock:
            return {spec.name: self.folded.get(spec.name, 0) for spec in CLIENT_METRICS}

    def _reporter(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def report(_: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                series = list(self._totals[name].items())
            return [Observation(total, dict(labels)) for labels, total in series]

        return report

    def labels(
        self,
        spec: MetricSpec,
        attributes: Mapping[str, AttributeValue],
        extra: Mapping[str, AttributeValue] | None = None,
        *,
        event: str | None = None,
    ) -> Labels:
        """The label set of one measurement: every allowed label that ``event`` can carry
        (every allowed label when no event is named), with the event's value or ``other``
        when it has none (not sent, or dropped off-shape by the privacy processor); the
        measurement's own ``extra`` labels win."""
        keys = self._event_labels.get((spec.name, event))
        if keys is None:  # an event the registry does not know: every allowed label
            keys = self._labels[spec.name]
        if extra:
            pairs = [(k, attributes.get(k, OTHER_VALUE)) for k in keys if k not in extra]
            pairs.extend((k, v) for k, v in extra.items() if k in self._labels[spec.name])
            return tuple(pairs)
        return tuple([(k, attributes.get(k, OTHER_VALUE)) for k in keys])

    def labeller(
        self,
        spec: MetricSpec,
        attributes: Mapping[str, AttributeValue],
        key: str,
        *,
        event: str | None = None,
    ) -> Callable[[AttributeValue], Labels]:
        """``value -> labels(spec, attributes, {key: value}, event=event)``, with the labels
        other than ``key`` built once (an event's token kinds share them)."""
        base = tuple(pair for pair in self.labels(spec, attributes, event=event) if pair[0] != key)
        if key not in self._labels[spec.name]:
            return lambda _value: base
        return lambda value: (*base, (key, value))

    def observe(
        self, batch: MetricBatch, event_name: str, attributes: Mapping[str, AttributeValue]
    ) -> None:
        for observer in EVENT_METRICS.get(event_name, ()):
            observer(self, batch, attributes, event_name)

    def flush(self, batch: MetricBatch) -> None:
        """Add one request's measurements to the totals and the histograms."""
        with self._lock:
            for (name, labels), amount in batch.sums.items():
                series = self._totals[name]
                if labels not in series and len(series) >= MAX_SERIES_PER_METRIC:
                    self._overflowed(name)
                    labels = _folded(labels)
                series[labels] = series.get(labels, 0) + amount
            samples = []
            for name, labels, value in batch.samples:
                seen = self._histogram_series.setdefault(name, set())
                if labels not in seen:
                    if len(seen) >= MAX_SERIES_PER_METRIC:
                        self._overflowed(name)
                        labels = _folded(labels)
                    seen.add(labels)
                samples.append((name, labels, value))
        if samples:
            self._histograms.record(samples)

    def _overflowed(self, name: str) -> None:
        self.folded[name] = self.folded.get(name, 0) + 1
        if name not in self._overflow_logged:
            self._overflow_logged.add(name)
            log.warning(
                "%s has %d label sets; further ones are counted with every label 'other'",
                name, MAX_SERIES_PER_METRIC,
            )  # fmt: skip
