"""``configure()``: the tracer, meter and logger providers of a Caret service, privacy first.

One call builds the three SDK providers with

- the in-process privacy layer ahead of every exporter (``caret_otel.processors.privacy.sdk``):
  spans are scrubbed at export, log records before any processor sees them, metric
  attributes by the privacy views (exemplars off) and each metric export once more by
  ``PrivacyMetricExporter``;
- OTLP/HTTP exporters that read the standard ``OTEL_EXPORTER_OTLP_*`` variables
  (endpoint, headers, timeout, compression, certificates), a resource from
  ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` over the code's defaults, and
  ``OTEL_SDK_DISABLED=true`` to turn everything off;
- cumulative temporality for every instrument (Prometheus remote write drops deltas)
  and the registry's histogram buckets (:mod:`caret_otel.sdk.views`);
- the GenAI instrumentation of httpx (:mod:`caret_otel.sdk.genai`);
- the business-event helpers (:mod:`caret_otel.sdk.events`).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from opentelemetry import _logs, metrics, trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter, MetricReader
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.util.types import AttributeValue

from caret_otel.core.environment_variables import (
    CARET_OTEL_CONSENT_DATABASE_URL,
    OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_SDK_DISABLED,
)
from caret_otel.core.errors import ConfigurationError
from caret_otel.processors.privacy.consent import (
    ConsentStore,
    InMemoryConsentStore,
    PostgresConsentStore,
)
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, generate_key_entry, parse_keys
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.processors.privacy.sdk import PrivacyWiring, install_privacy
from caret_otel.sdk import genai
from caret_otel.sdk.events import BusinessEvents
from caret_otel.sdk.views import RegistryBucketAggregation
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv.policy import load_policy

SDK_DISABLED_ENV = OTEL_SDK_DISABLED
PROTOCOL_ENVS = (
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
)
TEMPORALITY_ENV = OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE
SUPPORTED_PROTOCOL = "http/protobuf"

_log = logging.getLogger(__name__)

NO_CONSENT_DATABASE = (
    f"caret_otel.sdk: {CARET_OTEL_CONSENT_DATABASE_URL} is not set, so this service does NOT "
    "honour the opt-outs users recorded at the gateway (its consent store is empty); set it to "
    "the PostgreSQL holding privacy.consent, or pass consent= to configure()"
)


def default_consent_store(environ: Mapping[str, str] | None = None) -> ConsentStore:
    """The consent store ``configure`` uses when none is given: ``privacy.consent`` in
    the PostgreSQL named by ``CARET_OTEL_CONSENT_DATABASE_URL`` (kept current in the
    background), else an empty in-memory store - and a warning saying so, loudly (a
    ``UserWarning`` and an error log line), because opt-outs are then not honoured."""
    import warnings

    env = os.environ if environ is None else environ
    url = env.get(CARET_OTEL_CONSENT_DATABASE_URL, "").strip()
    if url:
        try:
            return PostgresConsentStore(url)
        except ImportError:
            raise SdkConfigurationError(
                f"{CARET_OTEL_CONSENT_DATABASE_URL} is set but psycopg is not installed: "
                "pip install 'caret-otel-processor-privacy[postgres]'"
            ) from None
    _log.error(NO_CONSENT_DATABASE)
    warnings.warn(NO_CONSENT_DATABASE, UserWarning, stacklevel=3)
    return InMemoryConsentStore()


CUMULATIVE: dict[type, AggregationTemporality] = {
    kind: AggregationTemporality.CUMULATIVE
    for kind in (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    )
}
"""Every instrument kind cumulative: the Collector's Prometheus remote write drops deltas."""


class SdkConfigurationError(ConfigurationError):
    """``configure()`` cannot honour its arguments or environment; the message says why."""


@dataclass
class SdkHandle:
    """What :func:`configure` built. ``shutdown()`` flushes and stops everything."""

    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider
    logger_provider: _logs.LoggerProvider
    resource: Resource
    events: BusinessEvents
    privacy: PrivacyWiring | None
    enabled: bool
    is_global: bool
    instrumented_httpx: bool = False
    _shut_down: bool = field(default=False, repr=False)

    @property
    def is_shut_down(self) -> bool:
        return self._shut_down

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything recorded so far (spans, metric points, log records)."""
        if not self.enabled or self._shut_down:
            return True
        assert isinstance(self.tracer_provider, TracerProvider)
        assert isinstance(self.meter_provider, MeterProvider)
        assert isinstance(self.logger_provider, LoggerProvider)
        results = (
            self.tracer_provider.force_flush(timeout_millis),
            self.meter_provider.force_flush(timeout_millis),
            self.logger_provider.force_flush(timeout_millis),
        )
        return all(results)

    def shutdown(self) -> None:
        """Flush and stop the providers (idempotent); also removes the httpx GenAI layer."""
        if self._shut_down:
            return
        self._shut_down = True
        if self.instrumented_httpx:
            genai.uninstrument_httpx()
        if not self.enabled:
            return
        assert isinstance(self.tracer_provider, TracerProvider)
        assert isinstance(self.meter_provider, MeterProvider)
        assert isinstance(self.logger_provider, LoggerProvider)
        # Traces and logs first: their exporters may record metrics about themselves.
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


_lock = threading.Lock()
_global_handle: SdkHandle | None = None


def current() -> SdkHandle:
    """The handle of the global ``configure()`` call; raises if there was none."""
    handle = _global_handle
    if handle is None:
        raise RuntimeError("caret_otel.sdk.configure() has not been called in this process")
    return handle


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


def _check_environment() -> None:
    for name in PROTOCOL_ENVS:
        value = os.environ.get(name, "").strip().lower()
        if value and value != SUPPORTED_PROTOCOL:
            raise SdkConfigurationError(
                f"{name}={value!r}: caret_otel.sdk exports OTLP over HTTP only; set "
                f"{name}={SUPPORTED_PROTOCOL} and point OTEL_EXPORTER_OTLP_ENDPOINT at the "
                "OTLP/HTTP port (4318)"
            )
    preference = os.environ.get(TEMPORALITY_ENV, "").strip().lower()
    if preference and preference != "cumulative":
        _log.warning(
            "%s=%s ignored: metrics stay cumulative (Prometheus remote write drops deltas)",
            TEMPORALITY_ENV,
            preference,
        )


def build_resource(
    service_name: str | None,
    service_version: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
) -> Resource:
    """The code's defaults, overridden by ``OTEL_RESOURCE_ATTRIBUTES`` and
    ``OTEL_SERVICE_NAME`` (operators win), on top of the SDK's own attributes.

    Each process gets a ``service.instance.id`` unless one is given, so replicas of a
    service never write the same cumulative series.
    """
    defaults: dict[str, AttributeValue] = {attrs.SERVICE_INSTANCE_ID: str(uuid.uuid4())}
    defaults.update(resource_attributes or {})
    if service_name:
        defaults[attrs.SERVICE_NAME] = service_name
    if service_version:
        defaults[attrs.SERVICE_VERSION] = service_version
    return Resource.create(defaults).merge(OTELResourceDetector().detect())


def _events_without_export() -> BusinessEvents:
    """Helpers for a disabled SDK: they validate and return ids but emit nothing."""
    try:
        pseudonymizer = Pseudonymizer.from_env()
    except ValueError:  # no key configured: ids only need to be well-formed here
        pseudonymizer = Pseudonymizer(parse_keys(generate_key_entry("off"), source="disabled"))
    return BusinessEvents(pseudonymizer, _logs.NoOpLoggerProvider(), metrics.NoOpMeterProvider())


def configure(
    service_name: str | None = None,
    *,
    service_version: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    metric_export_interval_s: float | None = None,
    span_exporters: Sequence[SpanExporter] | None = None,
    log_exporters: Sequence[LogRecordExporter] | None = None,
    metric_readers: Sequence[MetricReader] | None = None,
    engine: PrivacyEngine | None = None,
    consent: ConsentStore | None = None,
    instrument_httpx: bool = True,
    provider_hosts: Mapping[str, str] | None = None,
    set_global: bool = True,
    batch: bool = True,
) -> SdkHandle:
    """Set up tracing, metrics and logs for a Caret service; privacy runs first.

    Args:
        service_name: ``service.name`` unless ``OTEL_SERVICE_NAME`` says otherwise.
        service_version, resource_attributes: more resource defaults
            (``OTEL_RESOURCE_ATTRIBUTES`` overrides them).
        endpoint: OTLP/HTTP base URL (``/v1/traces`` etc. appended); default: the
            ``OTEL_EXPORTER_OTLP_*`` variables, else ``http://localhost:4318``.
        headers: extra OTLP headers (default: ``OTEL_EXPORTER_OTLP_HEADERS``).
        metric_export_interval_s: default ``OTEL_METRIC_EXPORT_INTERVAL`` or 60 s.
        span_exporters, log_exporters, metric_readers: replace the OTLP exporters
            (tests, other backends); they still sit behind the privacy layer.
        engine: the privacy engine (default: the shipped policy and the pseudonym keys
            of ``CARET_OTEL_PSEUDONYM_KEYS`` / ``CARET_OTEL_PSEUDONYM_KEY_FILE``).
        consent: opted-out users (default: :func:`default_consent_store`: PostgreSQL's
            ``privacy.consent`` when ``CARET_OTEL_CONSENT_DATABASE_URL`` is set, else an
            empty in-memory store, with a loud warning that opt-outs are not honoured).
        instrument_httpx, provider_hosts: GenAI telemetry for provider calls made with
            httpx (see :func:`caret_otel.sdk.genai.instrument_httpx`).
        set_global: install the providers as the OTel globals (default). ``False``
            builds an independent set, e.g. for tests.
        batch: batch exporting processors (default) or simple ones (tests).

    Calling it again while the global configuration is live returns the same handle.
    Raises ``PseudonymKeyError`` when no pseudonym key is configured (its message says
    how to make one) and :class:`SdkConfigurationError` for unusable settings.
    """
    global _global_handle
    with _lock:
        if set_global and _global_handle is not None:
            if _global_handle.is_shut_down:
                raise SdkConfigurationError(
                    "the global SDK was shut down; OpenTelemetry providers can be set once "
                    "per process, so configure() cannot run again"
                )
            _log.debug("configure() called again; keeping the first configuration")
            return _global_handle
        options = SdkOptions(
            service_name=service_name,
            service_version=service_version,
            resource_attributes=resource_attributes,
            endpoint=endpoint,
            headers=headers,
            metric_export_interval_s=metric_export_interval_s,
            span_exporters=span_exporters,
            log_exporters=log_exporters,
            metric_readers=metric_readers,
            engine=engine,
            consent=consent,
            instrument_httpx=instrument_httpx,
            provider_hosts=provider_hosts,
            set_global=set_global,
            batch=batch,
        )
        resource = build_resource(service_name, service_version, resource_attributes)
        if _env_flag(SDK_DISABLED_ENV):
            _log.info("%s=true: telemetry is off for %s", SDK_DISABLED_ENV, service_name)
            handle = _disabled(options, resource)
        else:
            handle = _exporting(options, resource)
        if set_global:
            _global_handle = handle
        return handle


@dataclass(frozen=True)
class SdkOptions:
    """The arguments of :func:`configure` (see there)."""

    service_name: str | None
    service_version: str | None
    resource_attributes: Mapping[str, AttributeValue] | None
    endpoint: str | None
    headers: Mapping[str, str] | None
    metric_export_interval_s: float | None
    span_exporters: Sequence[SpanExporter] | None
    log_exporters: Sequence[LogRecordExporter] | None
    metric_readers: Sequence[MetricReader] | None
    engine: PrivacyEngine | None
    consent: ConsentStore | None
    instrument_httpx: bool
    provider_hosts: Mapping[str, str] | None
    set_global: bool
    batch: bool

    def signal_endpoint(self, signal: str) -> str | None:
        """``<endpoint>/v1/<signal>``; None lets the exporter read the environment."""
        return f"{self.endpoint.rstrip('/')}/v1/{signal}" if self.endpoint else None


def _disabled(options: SdkOptions, resource: Resource) -> SdkHandle:
    return SdkHandle(
        trace.NoOpTracerProvider(),
        metrics.NoOpMeterProvider(),
        _logs.NoOpLoggerProvider(),
        resource,
        _events_without_export(),
        privacy=None,
        enabled=False,
        is_global=options.set_global,
    )


def _exporting(options: SdkOptions, resource: Resource) -> SdkHandle:
    _check_environment()
    interval = options.metric_export_interval_s
    if interval is not None and interval <= 0:
        raise SdkConfigurationError(f"metric_export_interval_s: must be positive, got {interval}")
    engine = options.engine or PrivacyEngine(load_policy(), Pseudonymizer.from_env())
    consent = options.consent or default_consent_store()
    # Metric exports carry the resource too, and no metric path scrubs it: scrub it once
    # here so that every signal leaves with the same, policy-checked resource.
    scrubbed = engine.scrub_attributes(resource.attributes, ScrubReport())
    resource = Resource(cast(dict[str, AttributeValue], scrubbed), resource.schema_url)
    headers = dict(options.headers) if options.headers is not None else None

    tracer_provider = TracerProvider(resource=resource)
    logger_provider = LoggerProvider(resource=resource)
    span_exporters = options.span_exporters
    if span_exporters is None:
        span_exporters = [
            OTLPSpanExporter(endpoint=options.signal_endpoint("traces"), headers=headers)
        ]
    log_exporters = options.log_exporters
    if log_exporters is None:
        log_exporters = [OTLPLogExporter(endpoint=options.signal_endpoint("logs"), headers=headers)]
    wiring = install_privacy(
        tracer_provider,
        logger_provider,
        engine=engine,
        consent=consent,
        span_exporters=span_exporters,
        log_exporters=log_exporters,
        batch=options.batch,
    )
    metric_exporters: list[MetricExporter] = []
    if options.metric_readers is None:
        metric_exporters.append(
            OTLPMetricExporter(
                endpoint=options.signal_endpoint("metrics"),
                headers=headers,
                preferred_temporality=CUMULATIVE,
            )
        )
    # Privacy views (metric-safe keys, consent), the registry's buckets under them,
    # exemplars off, and each exporter behind PrivacyMetricExporter.
    meter_provider = MeterProvider(
        resource=resource,
        **wiring.meter_provider_kwargs(
            metric_exporters=metric_exporters,
            export_interval_millis=None if interval is None else interval * 1000,
            metric_readers=options.metric_readers or (),
            aggregation=RegistryBucketAggregation(),
        ),
    )
    if options.set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        _logs.set_logger_provider(logger_provider)
    handle = SdkHandle(
        tracer_provider,
        meter_provider,
        logger_provider,
        resource,
        BusinessEvents(engine.pseudonymizer, logger_provider, meter_provider),
        privacy=wiring,
        enabled=True,
        is_global=options.set_global,
    )
    if options.instrument_httpx:
        genai.instrument_httpx(options.provider_hosts, tracer_provider, meter_provider)
        handle.instrumented_httpx = True
    return handle
