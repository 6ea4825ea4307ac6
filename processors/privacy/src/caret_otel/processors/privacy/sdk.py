"""The privacy engine inside the OpenTelemetry Python SDK (in-process privacy).

- Traces: ``PrivacySpanExporter`` wraps an exporter and hands it scrubbed copies
  (spans are immutable once ended, so scrubbing happens at export).
- Logs: ``PrivacyLogRecordProcessor`` scrubs each record in place and forwards it to
  the processors registered on it. It must see every record first: either make it
  the provider's processor pipeline (``LoggerProvider(multi_log_record_processor=
  PrivacyLogRecordProcessor(engine, consent))``, after which every
  ``add_log_record_processor`` goes behind it) or register it with
  ``add_privacy_log_processor`` before any other processor, which refuses to run
  after a batch or simple processor.
- Metrics: ``privacy_views`` keeps only metric-safe attribute keys on every
  instrument (and, given an engine and a consent store, validates coarse values and
  leaves measurements of opted-out users out of the aggregates); exemplars are off;
  ``PrivacyMetricExporter`` scrubs what views cannot reach (the resource, meter
  names and attributes, metric names and descriptions).
- ``install_privacy`` wires all of them in one call.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordProcessor,
    ReadWriteLogRecord,
    SynchronousMultiLogRecordProcessor,
)
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter
from opentelemetry.sdk.metrics._internal.aggregation import (
    Aggregation,
    DefaultAggregation,
    _Aggregation,
)
from opentelemetry.sdk.metrics._internal.exemplar import ExemplarReservoirBuilder
from opentelemetry.sdk.metrics._internal.instrument import _Instrument
from opentelemetry.sdk.metrics._internal.measurement import Measurement
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, Status, TraceState
from opentelemetry.util.types import AnyValue, Attributes

from caret_otel.core.errors import CaretOtelError
from caret_otel.processors.privacy import report as reasons
from caret_otel.processors.privacy.consent import USER_ATTRIBUTES, ConsentStore, opted_out_user
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.log_records import (
    NO_ATTRIBUTES,
    LogRecordScrubber,
    attributes_view,
)
from caret_otel.processors.privacy.otlp import clean_schema_url, clean_scope_version
from caret_otel.processors.privacy.report import ScrubReport, reportable_key
from caret_otel.semconv.policy import Policy

log = logging.getLogger(__name__)

RECORD: Final = "record"
"""Report key for whole records dropped because scrubbing failed (fail closed)."""
ERROR: Final = "error"
_CACHE_SIZE = 64


def _otel(attributes: dict[str, object]) -> dict[str, AnyValue]:
    """The engine's output typed for the SDK: it only emits str, bool, int, float and
    tuples of those, which are all valid OTel attribute values."""
    return cast(dict[str, AnyValue], attributes)


class PrivacyConfigurationError(CaretOtelError, RuntimeError):
    """The SDK is wired so that data could leave before the privacy processor sees it."""


class _CumulativeReport:
    """A thread-safe running total of what one adapter did. Adapters scrub straight
    into ``total`` while holding ``lock`` (one report per record would cost more than
    the scrubbing)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total = ScrubReport()

    def add(self, report: ScrubReport) -> None:
        with self.lock:
            self.total.merge(report)

    def snapshot(self) -> ScrubReport:
        copy = ScrubReport()
        with self.lock:
            copy.merge(self.total)
        return copy


def _ended_items(items: object) -> Sequence[Any] | None:
    """The events or links of an ended span, for reading (None: unknown layout, use
    the public accessor).

    ``ReadableSpan.events``/``.links`` copy the SDK's ``BoundedList`` into a tuple under
    its lock on every access. Once a span has ended its lists no longer change (the SDK
    refuses additions after ``end()``), and exporters only see ended spans, so the
    backing deque is read directly; a tuple or list (a ``ReadableSpan`` built by hand)
    is used as it is.
    """
    inner = getattr(items, "_dq", None)
    if isinstance(inner, deque):
        return inner
    return items if isinstance(items, tuple | list) else None


_SPAN_PARAMETERS: Final = (
    "name",
    "context",
    "parent",
    "resource",
    "attributes",
    "events",
    "links",
    "kind",
    "instrumentation_info",
    "status",
    "start_time",
    "end_time",
    "instrumentation_scope",
)
_POSITIONAL_SPAN: Final = (
    tuple(inspect.signature(ReadableSpan.__init__).parameters)[1:] == _SPAN_PARAMETERS
)
"""Whether this SDK's ``ReadableSpan`` takes exactly these parameters in this order.
Each scrubbed span is a new ``ReadableSpan``, and CPython matches thirteen keyword
arguments by name at every call; positional arguments skip that. Checked once, at
import: another layout falls back to keywords."""


class _ScrubCache:
    """Scrubbed resources and scopes, by identity: a provider has one resource and few
    scopes, so each is scrubbed once rather than per record, and what was dropped
    from them is counted once, when they are first seen."""

    def __init__(self, engine: PrivacyEngine) -> None:
        self._engine = engine
        self._resources: dict[int, tuple[Resource, Resource, Mapping[str, object]]] = {}
        self._scopes: dict[int, tuple[InstrumentationScope, InstrumentationScope]] = {}

    def resource(self, resource: Resource, report: ScrubReport) -> Resource:
        return self.resource_entry(resource, report)[1]

    def resource_entry(
        self, resource: Resource, report: ScrubReport
    ) -> tuple[Resource, Resource, Mapping[str, object]]:
        """(the resource, its scrubbed copy, its raw user attributes for the consent
        check: usually none)."""
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            attributes = resource.attributes
            users = {k: attributes[k] for k in USER_ATTRIBUTES if k in attributes} or NO_ATTRIBUTES
            scrubbed = Resource(
                self._scrub_mapping(attributes, report),
                clean_schema_url(resource.schema_url or "", report),
            )
            cached = (resource, scrubbed, users)
            if len(self._resources) >= _CACHE_SIZE:
                self._resources.clear()
            self._resources[id(resource)] = cached
        return cached

    def scope(
        self, scope: InstrumentationScope | None, report: ScrubReport
    ) -> InstrumentationScope | None:
        if scope is None:
            return None
        cached = self._scopes.get(id(scope))
        if cached is None or cached[0] is not scope:
            scrubbed = InstrumentationScope(
                self._engine.scrub_name(scope.name, report),
                clean_scope_version(scope.version or "", self._engine, report) or None,
                clean_schema_url(scope.schema_url or "", report) or None,
                self._scrub_mapping(scope.attributes, report) or None,
            )
            cached = (scope, scrubbed)
            if len(self._scopes) >= _CACHE_SIZE:
                self._scopes.clear()
            self._scopes[id(scope)] = cached
        return cached[1]

    def _scrub_mapping(self, attributes: Attributes, report: ScrubReport) -> dict[str, Any]:
        if not attributes:
            return {}
        return self._engine.scrub_attributes(attributes, report)


# --- traces ---------------------------------------------------------------------------------


def _without_trace_state(context: SpanContext) -> SpanContext:
    """W3C trace state is vendor free text: it never leaves (OTLP ``trace_state``)."""
    if not context.trace_state:
        return context
    return SpanContext(
        context.trace_id, context.span_id, context.is_remote, context.trace_flags, TraceState()
    )


class PrivacySpanExporter(SpanExporter):
    """Exports scrubbed copies of spans through ``wrapped``; spans of users who opted
    out are not exported at all. If scrubbing fails, nothing of the batch is exported
    (fail closed) and the failure is logged without any span content."""

    def __init__(self, wrapped: SpanExporter, engine: PrivacyEngine, consent: ConsentStore) -> None:
        self._wrapped = wrapped
        self._engine = engine
        self._consent = consent
        self._cache = _ScrubCache(engine)
        self._report = _CumulativeReport()
        self.rejected_spans = 0

    @property
    def wrapped(self) -> SpanExporter:
        return self._wrapped

    def report(self) -> ScrubReport:
        """What this exporter has dropped, pseudonymised and redacted so far."""
        return self._report.snapshot()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        kept: list[ReadableSpan] = []
        with self._report.lock:
            report = self._report.total
            try:
                for span in spans:
                    scrubbed = self._scrub(span, report)
                    if scrubbed is None:
                        self.rejected_spans += 1
                    else:
                        kept.append(scrubbed)
            except Exception as exc:  # fail closed: never export what could not be scrubbed
                log.error(
                    "privacy: dropped a batch of %d spans, scrubbing failed (%s)",
                    len(spans),
                    type(exc).__name__,
                )
                report.dropped[(RECORD, ERROR)] += len(spans)
                return SpanExportResult.FAILURE
        if not kept:
            return SpanExportResult.SUCCESS
        return self._wrapped.export(kept)

    def _scrub(self, span: ReadableSpan, report: ScrubReport) -> ReadableSpan | None:
        engine = self._engine
        # ReadableSpan.attributes wraps the BoundedAttributes in a MappingProxyType.
        attributes = attributes_view(getattr(span, "_attributes", None) or span.attributes)
        span_events = _ended_items(getattr(span, "_events", None))
        if span_events is None:
            span_events = span.events
        span_links = _ended_items(getattr(span, "_links", None))
        if span_links is None:
            span_links = span.links
        _, resource, resource_users = self._cache.resource_entry(span.resource, report)
        consent = self._consent
        events: Sequence[Event] = ()
        links: Sequence[Link] = ()
        if span_events or span_links:  # one span in many has any: skip the lists otherwise
            event_attributes = [attributes_view(e.attributes) for e in span_events]
            link_attributes = [attributes_view(k.attributes) for k in span_links]
            if opted_out_user(
                engine, consent, attributes, resource_users, *event_attributes, *link_attributes
            ):
                return None
            events = [
                Event(
                    engine.scrub_name(event.name, report),
                    _otel(engine.scrub_attributes(event_attributes[i], report)),
                    event.timestamp,
                )
                for i, event in enumerate(span_events)
            ]
            links = [
                Link(
                    _without_trace_state(link.context),
                    _otel(engine.scrub_attributes(link_attributes[i], report)),
                )
                for i, link in enumerate(span_links)
            ]
        elif opted_out_user(engine, consent, attributes, resource_users):
            return None
        status = span.status
        if status.description:
            # Descriptions repeat like names ("429 from api.anthropic.com"): cached.
            status = Status(
                status.status_code, engine.scrub_description(status.description, report)
            )
        name = engine.scrub_name(span.name, report)
        scrubbed: Any = engine.scrub_attributes(attributes, report)
        scope = self._cache.scope(span.instrumentation_scope, report)
        context = span.context
        if context is not None and context.trace_state:
            context = _without_trace_state(context)
        if _POSITIONAL_SPAN:  # a third cheaper than by keyword (see _POSITIONAL_SPAN)
            return ReadableSpan(
                name,
                context,
                span.parent,
                resource,
                scrubbed,
                events,
                links,
                span.kind,
                None,  # instrumentation_info: deprecated, superseded by the scope
                status,
                span.start_time,
                span.end_time,
                scope,
            )
        return ReadableSpan(
            name=name,
            context=context,
            parent=span.parent,
            resource=resource,
            attributes=scrubbed,
            events=events,
            links=links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=scope,
        )

    def shutdown(self) -> None:
        self._wrapped.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._wrapped.force_flush(timeout_millis)


# --- logs -----------------------------------------------------------------------------------


class _Reporting(threading.local):
    """Per thread: whether this thread is logging our own scrubbing failure. A class
    default rather than ``getattr(..., False)``: a missing attribute on a thread-local
    raises and catches AttributeError inside getattr, which costs more per record than
    the rest of the check."""

    active = False


class PrivacyLogRecordProcessor(SynchronousMultiLogRecordProcessor):
    """Scrubs each log record in place, then forwards it to the processors registered
    on it (``add_log_record_processor``); records of users who opted out are not
    forwarded. Use it as the provider's pipeline or register it first with
    ``add_privacy_log_processor`` (see the module docstring)."""

    def __init__(self, engine: PrivacyEngine, consent: ConsentStore) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._report = _CumulativeReport()
        self._failing = _Reporting()
        cache = _ScrubCache(engine)
        self._scrubber = LogRecordScrubber(engine, consent, cache.resource_entry, cache.scope)
        self.rejected_records = 0

    def report(self) -> ScrubReport:
        return self._report.snapshot()

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        if self._failing.active:
            return  # a log emitted while reporting our own failure: never recurse
        failure: Exception | None = None
        with self._report.lock:
            try:
                keep = self._scrubber.scrub(log_record, self._report.total)
            except Exception as exc:  # fail closed: an unscrubbed record never goes on
                self._report.total.dropped[(RECORD, ERROR)] += 1
                failure, keep = exc, False
        if failure is not None:
            _blank(log_record)
            self._failing.active = True
            try:
                log.error(
                    "privacy: dropped a log record, scrubbing failed (%s)",
                    type(failure).__name__,
                )
            finally:
                self._failing.active = False
            return
        if keep:
            # what SynchronousMultiLogRecordProcessor.on_emit does, without its frame
            for processor in self._log_record_processors:
                processor.on_emit(log_record)
        else:
            self.rejected_records += 1
            # Processors registered on the provider after this one (a misuse that
            # add_privacy_log_processor cannot see coming) still get the record: give
            # them nothing to export but an empty shell.
            _blank(log_record)


def _blank(record: ReadWriteLogRecord) -> None:
    """Leave nothing in a record that must not leave: a shell with the empty resource."""
    record.resource = Resource.get_empty()
    record.instrumentation_scope = None
    api_record = record.log_record
    api_record.attributes = {}
    api_record.body = None
    api_record.event_name = None
    api_record.severity_text = None


def _registered_log_processors(logger_provider: LoggerProvider) -> tuple[Any, ...] | Any:
    """The provider's processor pipeline: our gate itself, or the tuple of processors.

    The SDK has no public accessor; reading its attributes is the only way to check
    the order. If a future SDK renames them the check fails closed.
    """
    pipeline = getattr(logger_provider, "_multi_log_record_processor", None)
    if isinstance(pipeline, PrivacyLogRecordProcessor):
        return pipeline
    processors = getattr(pipeline, "_log_record_processors", None)
    if not isinstance(processors, tuple):
        raise PrivacyConfigurationError(
            "cannot check the log processors of this LoggerProvider (unknown SDK layout); "
            "create it with LoggerProvider(multi_log_record_processor="
            "PrivacyLogRecordProcessor(engine, consent)) instead"
        )
    return processors


def add_privacy_log_processor(
    logger_provider: LoggerProvider, engine: PrivacyEngine, consent: ConsentStore
) -> PrivacyLogRecordProcessor:
    """Register the privacy processor first on ``logger_provider`` and return it.

    Register exporting processors on the returned processor
    (``processor.add_log_record_processor(BatchLogRecordProcessor(exporter))``) so that
    records of opted-out users never reach them. Raises ``PrivacyConfigurationError``
    when another processor is already registered (it would see records unscrubbed).
    """
    registered = _registered_log_processors(logger_provider)
    if isinstance(registered, PrivacyLogRecordProcessor):
        return registered
    if registered and isinstance(registered[0], PrivacyLogRecordProcessor):
        return registered[0]  # already installed: installing twice is harmless
    if registered:
        names = ", ".join(type(p).__name__ for p in registered)
        raise PrivacyConfigurationError(
            f"the privacy log processor must be registered before any other log processor, "
            f"but this LoggerProvider already has: {names}. Those would receive log records "
            "before they are scrubbed. Call install_privacy()/add_privacy_log_processor() "
            "right after creating the LoggerProvider and add exporting processors to the "
            "returned privacy processor."
        )
    processor = PrivacyLogRecordProcessor(engine, consent)
    logger_provider.add_log_record_processor(processor)
    return processor


# --- metrics --------------------------------------------------------------------------------


class _PrivacyAggregation(Aggregation):
    """The default aggregation, with stream attributes scrubbed (metric-safe keys,
    coarse values validated) and measurements of opted-out users left out.

    A View cannot change values nor skip measurements, so this hooks the one place the
    SDK offers per stream: the aggregation it creates for each attribute set.
    """

    def __init__(
        self,
        engine: PrivacyEngine,
        consent: ConsentStore | None,
        inner: Aggregation | None = None,
    ) -> None:
        self._engine = engine
        self._consent = consent
        self._default = inner or DefaultAggregation()
        self._report = _CumulativeReport()

    def _create_aggregation(
        self,
        instrument: _Instrument,
        attributes: Attributes,
        reservoir_factory: Callable[[type[_Aggregation[Any]]], ExemplarReservoirBuilder],
        start_time_unix_nano: int,
    ) -> _Aggregation[Any]:
        if attributes is None:  # the SDK's template aggregation (type detection only)
            return self._default._create_aggregation(
                instrument, None, reservoir_factory, start_time_unix_nano
            )
        report = ScrubReport()
        scrubbed = self._engine.scrub_attributes(attributes, report, metric=True)
        self._report.add(report)
        inner = self._default._create_aggregation(
            instrument, _otel(scrubbed), reservoir_factory, start_time_unix_nano
        )
        consent = self._consent
        if consent is None:
            return inner
        engine = self._engine
        aggregate = inner.aggregate

        def aggregate_if_consented(
            measurement: Measurement, should_sample_exemplar: bool = True
        ) -> None:
            if measurement.attributes and opted_out_user(engine, consent, measurement.attributes):
                return
            aggregate(measurement, should_sample_exemplar)

        inner.aggregate = aggregate_if_consented  # type: ignore[method-assign]
        return inner


def privacy_views(
    policy: Policy,
    *,
    engine: PrivacyEngine | None = None,
    consent: ConsentStore | None = None,
    aggregation: Aggregation | None = None,
) -> list[View]:
    """Views that keep only metric-safe attribute keys on every instrument.

    With an ``engine`` the kept values are validated too (coarse values such as
    country codes); with a ``consent`` store as well, measurements that carry the
    attributes of an opted-out user are not aggregated at all. Add other views only
    for instruments these do not cover: two matching views make two streams; to
    change how instruments aggregate (e.g. bucket boundaries), pass ``aggregation``,
    which then runs under the privacy scrubbing instead of the SDK default.
    """
    keys = set(policy.metric_attributes)
    if engine is None:
        return [View(instrument_name="*", attribute_keys=keys, aggregation=aggregation)]
    return [
        View(
            instrument_name="*",
            attribute_keys=keys,
            aggregation=_PrivacyAggregation(engine, consent, aggregation),
        )
    ]


class PrivacyMetricExporter(MetricExporter):
    """Exports metrics through ``wrapped`` with the resource, meter scopes, metric names
    and descriptions scrubbed, and data-point attributes checked once more against the
    metric-safe keys (views already filtered them; this also covers readers built
    without the privacy views). Fails closed like ``PrivacySpanExporter``."""

    def __init__(self, wrapped: MetricExporter, engine: PrivacyEngine) -> None:
        # The reader asks the exporter for its preferred temporality and aggregation.
        super().__init__(wrapped._preferred_temporality, wrapped._preferred_aggregation)
        self._wrapped = wrapped
        self._engine = engine
        self._cache = _ScrubCache(engine)
        self._report = _CumulativeReport()

    @property
    def wrapped(self) -> MetricExporter:
        return self._wrapped

    def report(self) -> ScrubReport:
        return self._report.snapshot()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        report = ScrubReport()
        try:
            scrubbed = MetricsData(
                resource_metrics=[
                    dataclasses.replace(
                        resource_metrics,
                        resource=self._cache.resource(resource_metrics.resource, report),
                        scope_metrics=[
                            self._scope_metrics(scope_metrics, report)
                            for scope_metrics in resource_metrics.scope_metrics
                        ],
                    )
                    for resource_metrics in metrics_data.resource_metrics
                ]
            )
        except Exception as exc:  # fail closed
            log.error(
                "privacy: dropped a metrics export, scrubbing failed (%s)", type(exc).__name__
            )
            report.dropped[(RECORD, ERROR)] += 1
            self._report.add(report)
            return MetricExportResult.FAILURE
        self._report.add(report)
        return self._wrapped.export(scrubbed, timeout_millis=timeout_millis, **kwargs)

    def _scope_metrics(self, scope_metrics: Any, report: ScrubReport) -> Any:
        engine = self._engine
        metrics = []
        for metric in scope_metrics.metrics:
            spec = engine.policy.metrics.get(metric.name)
            if spec is None:  # only registry metrics leave
                report.drop(reportable_key("metric:" + metric.name), reasons.UNKNOWN)
                continue
            data = metric.data
            points = [
                dataclasses.replace(
                    point,
                    attributes=_otel(
                        engine.scrub_attributes(point.attributes or {}, report, metric=True)
                    ),
                    exemplars=[],  # exemplar filtering is off; never export stray ones
                )
                for point in data.data_points
            ]
            metrics.append(
                dataclasses.replace(
                    metric,
                    unit=str(spec.get("unit", "")),
                    description=str(spec.get("description", "")),
                    data=dataclasses.replace(data, data_points=points),
                )
            )
        scope = self._cache.scope(scope_metrics.scope, report)
        return dataclasses.replace(scope_metrics, scope=scope, metrics=metrics)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._wrapped.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._wrapped.shutdown(timeout_millis=timeout_millis, **kwargs)


# --- one call -------------------------------------------------------------------------------


@dataclass
class PrivacyWiring:
    """What ``install_privacy`` set up, and how to add more exporters behind it."""

    engine: PrivacyEngine
    consent: ConsentStore
    log_processor: PrivacyLogRecordProcessor | None = None
    span_exporters: list[PrivacySpanExporter] = field(default_factory=list)
    metric_exporters: list[PrivacyMetricExporter] = field(default_factory=list)

    def wrap_span_exporter(self, exporter: SpanExporter) -> PrivacySpanExporter:
        wrapped = PrivacySpanExporter(exporter, self.engine, self.consent)
        self.span_exporters.append(wrapped)
        return wrapped

    def wrap_metric_exporter(self, exporter: MetricExporter) -> PrivacyMetricExporter:
        wrapped = PrivacyMetricExporter(exporter, self.engine)
        self.metric_exporters.append(wrapped)
        return wrapped

    def meter_provider_kwargs(
        self,
        *,
        metric_exporters: Sequence[MetricExporter] = (),
        export_interval_millis: float | None = None,
        metric_readers: Sequence[MetricReader] = (),
        aggregation: Aggregation | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for ``MeterProvider(...)``: privacy views, exemplars off,
        and the metric readers: ``metric_readers`` as given (a pull reader such as
        Prometheus sees the views but not the exporter wrapper, so its resource is
        not scrubbed) plus a periodic reader per exporter, each exporter wrapped in
        ``PrivacyMetricExporter``. ``aggregation``: what to aggregate with under the
        privacy view (the SDK default if None)."""
        readers: list[MetricReader] = list(metric_readers)
        readers.extend(
            PeriodicExportingMetricReader(
                self.wrap_metric_exporter(exporter), export_interval_millis=export_interval_millis
            )
            for exporter in metric_exporters
        )
        return {
            "views": privacy_views(
                self.engine.policy,
                engine=self.engine,
                consent=self.consent,
                aggregation=aggregation,
            ),
            "exemplar_filter": AlwaysOffExemplarFilter(),
            "metric_readers": readers,
        }

    def report(self) -> ScrubReport:
        total = ScrubReport()
        for exporter in self.span_exporters:
            total.merge(exporter.report())
        for metric_exporter in self.metric_exporters:
            total.merge(metric_exporter.report())
        if self.log_processor is not None:
            total.merge(self.log_processor.report())
        return total


def _check_span_processors(tracer_provider: TracerProvider) -> None:
    pipeline = getattr(tracer_provider, "_active_span_processor", None)
    processors = getattr(pipeline, "_span_processors", None)
    if not isinstance(processors, tuple):
        raise PrivacyConfigurationError(
            "cannot check the span processors of this TracerProvider (unknown SDK layout)"
        )
    for processor in processors:
        exporter = getattr(processor, "span_exporter", None)
        if exporter is not None and not isinstance(exporter, PrivacySpanExporter):
            raise PrivacyConfigurationError(
                f"this TracerProvider already has a {type(processor).__name__} exporting "
                f"through {type(exporter).__name__} without the privacy processor; install "
                "privacy first and pass exporters to install_privacy(span_exporters=...)"
            )


def install_privacy(
    tracer_provider: TracerProvider | None,
    logger_provider: LoggerProvider | None,
    *,
    engine: PrivacyEngine,
    consent: ConsentStore,
    span_exporters: Sequence[SpanExporter] = (),
    log_exporters: Sequence[LogRecordExporter] = (),
    batch: bool = True,
) -> PrivacyWiring:
    """Wire in-process privacy into the SDK providers in one call.

    Each span exporter is wrapped in ``PrivacySpanExporter`` and added to the tracer
    provider; the privacy log processor is registered first on the logger provider
    and each log exporter is added behind it; ``batch`` chooses batch (default) or
    simple processors. For metrics pass
    ``**wiring.meter_provider_kwargs(metric_exporters=[...])`` to ``MeterProvider``.
    Raises ``PrivacyConfigurationError`` if a provider already
    exports without privacy.
    """
    wiring = PrivacyWiring(engine, consent)
    if tracer_provider is not None:
        _check_span_processors(tracer_provider)
        for exporter in span_exporters:
            wrapped = wiring.wrap_span_exporter(exporter)
            tracer_provider.add_span_processor(
                BatchSpanProcessor(wrapped) if batch else SimpleSpanProcessor(wrapped)
            )
    elif span_exporters:
        raise PrivacyConfigurationError("span_exporters given without a tracer_provider")
    if logger_provider is not None:
        wiring.log_processor = add_privacy_log_processor(logger_provider, engine, consent)
        for log_exporter in log_exporters:
            processor: LogRecordProcessor = (
                BatchLogRecordProcessor(log_exporter)
                if batch
                else SimpleLogRecordProcessor(log_exporter)
            )
            wiring.log_processor.add_log_record_processor(processor)
    elif log_exporters:
        raise PrivacyConfigurationError("log_exporters given without a logger_provider")
    return wiring


__all__ = [
    "PrivacyConfigurationError",
    "PrivacyLogRecordProcessor",
    "PrivacyMetricExporter",
    "PrivacySpanExporter",
    "PrivacyWiring",
    "add_privacy_log_processor",
    "install_privacy",
    "privacy_views",
]
