"""Everything one gateway process holds, built from its configuration.

:func:`build_gateway` wires the privacy engine, the consent store, the export queue,
the task-span tracker and the SDK metric pipeline; :meth:`Gateway.start` and
:meth:`Gateway.stop` run in the ASGI lifespan (the sender tasks need the event loop).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter

from caret_otel.processors.privacy.client_events import ClientEventScrubber
from caret_otel.processors.privacy.consent import (
    ConsentAssertionVerifier,
    ConsentStore,
    InMemoryConsentStore,
    NonceLedger,
    PostgresConsentStore,
)
from caret_otel.processors.privacy.engine import Limits, PrivacyEngine
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer
from caret_otel.receivers.gateway import hot_path
from caret_otel.receivers.gateway.auth import Authenticator
from caret_otel.receivers.gateway.client_ingest import ClientEventIngestor
from caret_otel.receivers.gateway.client_metrics import ClientMetrics, pipeline
from caret_otel.receivers.gateway.config import GatewayConfig
from caret_otel.receivers.gateway.export import OtlpExporter
from caret_otel.receivers.gateway.self_metrics import GatewayMetrics
from caret_otel.receivers.gateway.task_spans import TaskSpans
from caret_otel.semconv.policy import Policy, load_policy

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    config: GatewayConfig
    policy: Policy
    pseudonymizer: Pseudonymizer
    client_engine: PrivacyEngine
    """For client events: every id is (re-)keyed, a client never picks its pseudonym."""
    service_engine: PrivacyEngine
    """For our services' OTLP: pseudonyms they already made under our keys are kept."""
    consent: ConsentStore
    auth: Authenticator
    exporter: OtlpExporter
    ingestor: ClientEventIngestor
    client_metrics: ClientMetrics
    meters: MeterProvider
    metrics: GatewayMetrics
    assertions: ConsentAssertionVerifier
    """Verifies the account service's signed consent assertions (lifting an opt-out)."""
    readiness: dict[str, object] = field(default_factory=dict)
    """The last readiness answer and when it was taken (``readiness.check`` caches it)."""

    @property
    def consent_is_durable(self) -> bool:
        """Whether consent writes may be taken: a durable store, or the development flag."""
        return bool(getattr(self.consent, "durable", False)) or self.config.volatile_consent

    async def start(self) -> None:
        await self.exporter.start()

    async def stop(self) -> None:
        lost = await self.exporter.stop(drain_timeout_s=self.config.otlp.timeout_s)
        if lost:
            log.error("gateway stopped with %d undelivered items (see export_lost_items)", lost)
        self.meters.shutdown()
        self.consent.close()


def build_gateway(
    config: GatewayConfig,
    *,
    environ: Mapping[str, str] | None = None,
    consent: ConsentStore | None = None,
    metric_exporter: MetricExporter | None = None,
) -> Gateway:
    """Build a gateway; raises ``PseudonymKeyError`` (with the keygen hint) without keys
    and ``ConsentStoreError`` when ``DATABASE_URL`` is set but unreachable."""
    policy = load_policy()
    pseudonymizer = Pseudonymizer.from_env(environ)
    engine_limits = Limits(
        max_attributes=config.limits.max_attributes_per_event,
        max_value_length=config.limits.max_value_length,
    )
    client_engine = PrivacyEngine(policy, pseudonymizer, engine_limits)
    service_engine = PrivacyEngine(policy, pseudonymizer, engine_limits, accept_pseudonyms=True)
    if consent is None:
        if config.database_url:
            consent = PostgresConsentStore(config.database_url)
        else:
            if config.volatile_consent:
                log.warning(
                    "DATABASE_URL is not set and CARET_OTEL_DEV_VOLATILE_CONSENT=1: consent "
                    "is kept in memory only (lost on restart, not shared between gateway "
                    "processes); for development only. Deletions answer 503"
                )
            else:
                log.warning(
                    "DATABASE_URL is not set: consent changes and deletions answer 503 "
                    "(no durable store); set DATABASE_URL, or for development "
                    "CARET_OTEL_DEV_VOLATILE_CONSENT=1"
                )
            consent = InMemoryConsentStore()
    metrics = GatewayMetrics()
    hot_path.report()
    meters, client_metrics = pipeline(
        config.otlp,
        policy,
        export_interval_s=config.metric_export_interval_s,
        exporter=metric_exporter,
    )
    metrics.watch_folded_series(client_metrics.folded_counts)
    ingestor = ClientEventIngestor(
        ClientEventScrubber(client_engine, consent),
        client_metrics,
        TaskSpans(config.limits.task_cache_size),
        config.limits,
        policy.retention["raw_events_days"],
    )
    return Gateway(
        config=config,
        policy=policy,
        pseudonymizer=pseudonymizer,
        client_engine=client_engine,
        service_engine=service_engine,
        consent=consent,
        auth=Authenticator(config.ingest_tokens, config.admin_token, config.service_tokens),
        exporter=OtlpExporter(config.otlp, config.limits, metrics),
        ingestor=ingestor,
        client_metrics=client_metrics,
        meters=meters,
        metrics=metrics,
        assertions=ConsentAssertionVerifier(
            config.assertion_keys,
            consent if isinstance(consent, NonceLedger) else InMemoryConsentStore(),
            config.limits.consent_assertion_max_age_s,
        ),
    )
