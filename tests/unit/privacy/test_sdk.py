"""In-process privacy in the OTel SDK: span exporter, log processor, metric views, wiring."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from caret_otel.processors.privacy import report as reasons
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer
from caret_otel.processors.privacy.sdk import (
    PrivacyConfigurationError,
    PrivacyLogRecordProcessor,
    PrivacySpanExporter,
    PrivacyWiring,
    add_privacy_log_processor,
    install_privacy,
    privacy_views,
)
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.semconv.policy import load_policy

RESOURCE = Resource.create(
    {attrs.SERVICE_NAME: "llm-proxy", attrs.HOST_NAME: "alice-laptop", "process.pid": 42}
)


@dataclass
class Pipeline:
    tracer_provider: TracerProvider
    logger_provider: LoggerProvider
    meter_provider: MeterProvider
    spans: InMemorySpanExporter
    logs: InMemoryLogRecordExporter
    metrics: InMemoryMetricReader
    wiring: PrivacyWiring
    consent: InMemoryConsentStore


@pytest.fixture
def pipeline(engine: PrivacyEngine) -> Iterator[Pipeline]:
    consent = InMemoryConsentStore()
    tracer_provider = TracerProvider(resource=RESOURCE)
    logger_provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    wiring = install_privacy(
        tracer_provider,
        logger_provider,
        engine=engine,
        consent=consent,
        span_exporters=[spans],
        log_exporters=[logs],
        batch=False,
    )
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(
        resource=RESOURCE, **wiring.meter_provider_kwargs(metric_readers=[reader])
    )
    yield Pipeline(
        tracer_provider, logger_provider, meter_provider, spans, logs, reader, wiring, consent
    )
    tracer_provider.shutdown()
    logger_provider.shutdown()
    meter_provider.shutdown()


def test_spans_leave_scrubbed(pipeline: Pipeline, pseudonymizer: Pseudonymizer) -> None:
    tracer = pipeline.tracer_provider.get_tracer("caret.llm", attributes={"owner": "bob@corp.io"})
    with tracer.start_as_current_span("chat claude-sonnet-4 for bob@corp.io") as span:
        span.set_attributes(
            {
                attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
                attrs.GEN_AI_USAGE_INPUT_TOKENS: 10,
                attrs.ENDUSER_ID: "bob",
                attrs.GEN_AI_INPUT_MESSAGES: "my prompt",
                "code.line.number": 3,
            }
        )
        span.add_event("retry", {attrs.EXCEPTION_MESSAGE: "timeout at 10.0.0.3"})
        span.set_status(Status(StatusCode.ERROR, "key sk-ant-api03-abcdefghijklmnopqrstuv"))
    (out,) = pipeline.spans.get_finished_spans()
    assert out.name == "chat claude-sonnet-4 for <redacted:email>"
    assert dict(out.attributes or {}) == {
        attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
        attrs.GEN_AI_USAGE_INPUT_TOKENS: 10,
        attrs.ENDUSER_ID: pseudonymizer.pseudonymize("bob"),
    }
    assert dict(out.events[0].attributes or {}) == {
        attrs.EXCEPTION_MESSAGE: "timeout at <redacted:ipv4>"
    }
    assert out.status.description == "key <redacted:api_key>"
    assert dict(out.resource.attributes) == {
        k: v for k, v in RESOURCE.attributes.items() if k not in (attrs.HOST_NAME, "process.pid")
    }
    assert out.instrumentation_scope is not None
    assert out.instrumentation_scope.attributes == {}
    assert out.context == span.get_span_context()
    report = pipeline.wiring.report()
    assert report.dropped[(attrs.GEN_AI_INPUT_MESSAGES, reasons.FORBIDDEN)] == 1
    assert report.dropped[(attrs.HOST_NAME, reasons.FORBIDDEN)] >= 1


def test_opted_out_spans_never_leave(pipeline: Pipeline, pseudonymizer: Pseudonymizer) -> None:
    pipeline.consent.set_consent(pseudonymizer.all_pseudonyms("gone"), enabled=False)
    tracer = pipeline.tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("a", attributes={attrs.ENDUSER_ID: "gone"}):
        pass
    with tracer.start_as_current_span("b", attributes={attrs.ENDUSER_ID: "stays"}):
        pass
    assert [s.name for s in pipeline.spans.get_finished_spans()] == ["b"]
    assert pipeline.wiring.span_exporters[0].rejected_spans == 1


def test_logs_leave_scrubbed(pipeline: Pipeline) -> None:
    logger = pipeline.logger_provider.get_logger("caret.events")
    logger.emit(
        event_name=events.CARET_TASK_CREATED.name,
        body={"message": "user carol@example.com", "password": "hunter2", "note": "x"},
        attributes={
            attrs.GEN_AI_REQUEST_MODEL: "gpt-4o",
            attrs.CARET_FILE_PATH: "/home/carol/a.py",
        },
    )
    (record,) = pipeline.logs.get_finished_logs()
    assert record.log_record.body == {"message": "user <redacted:email>"}
    assert dict(record.log_record.attributes or {}) == {attrs.GEN_AI_REQUEST_MODEL: "gpt-4o"}
    assert record.log_record.event_name == events.CARET_TASK_CREATED.name
    assert attrs.HOST_NAME not in record.resource.attributes


@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
def test_stdlib_logging_exceptions_are_scrubbed(pipeline: Pipeline) -> None:
    handler = LoggingHandler(logger_provider=pipeline.logger_provider)
    logger = logging.getLogger("caret.test.privacy")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise PermissionError("cannot read /home/dave/.ssh/id_rsa for dave@corp.io")
        except PermissionError:
            logger.exception("failed for dave@corp.io")
    finally:
        logger.removeHandler(handler)
    (record,) = pipeline.logs.get_finished_logs()
    text = record.to_json()
    assert "dave" not in text
    attributes = dict(record.log_record.attributes or {})
    assert attributes[attrs.EXCEPTION_TYPE] == "PermissionError"
    assert "<redacted:path>" in str(attributes[attrs.EXCEPTION_STACKTRACE])
    assert attrs.CODE_FILE_PATH not in attributes


def test_opted_out_logs_never_leave(pipeline: Pipeline, pseudonymizer: Pseudonymizer) -> None:
    pipeline.consent.set_consent(pseudonymizer.all_pseudonyms("gone"), enabled=False)
    logger = pipeline.logger_provider.get_logger("t")
    logger.emit(body="a", attributes={attrs.ENDUSER_PSEUDO_ID: "gone"})
    logger.emit(body={attrs.USER_ID: "gone"})
    logger.emit(body="b", attributes={attrs.ENDUSER_PSEUDO_ID: "stays"})
    assert [r.log_record.body for r in pipeline.logs.get_finished_logs()] == ["b"]


def test_logs_of_a_service_resource_naming_an_opted_out_user_never_leave(
    engine: PrivacyEngine, pseudonymizer: Pseudonymizer
) -> None:
    consent = InMemoryConsentStore()
    consent.set_consent(pseudonymizer.all_pseudonyms("gone"), enabled=False)
    for user, expected in (("gone", []), ("stays", ["a", "b"])):
        logs = InMemoryLogRecordExporter()
        provider = LoggerProvider(
            resource=Resource.create({attrs.SERVICE_NAME: "cli", attrs.ENDUSER_ID: user}),
            shutdown_on_exit=False,
        )
        wiring = install_privacy(
            None, provider, engine=engine, consent=consent, log_exporters=[logs], batch=False
        )
        logger = provider.get_logger("t")
        logger.emit(body="a", attributes={attrs.GEN_AI_REQUEST_MODEL: "gpt-4o"})
        logger.emit(body="b")
        finished = logs.get_finished_logs()
        assert [r.log_record.body for r in finished] == expected
        assert wiring.log_processor is not None
        assert wiring.log_processor.rejected_records == 2 - len(expected)
        assert all(r.resource.attributes.get(attrs.ENDUSER_ID) != user for r in finished)
        provider.shutdown()


def test_metrics_keep_only_safe_labels_and_skip_opted_out_users(
    pipeline: Pipeline, pseudonymizer: Pseudonymizer
) -> None:
    pipeline.consent.set_consent(pseudonymizer.all_pseudonyms("gone"), enabled=False)
    counter = pipeline.meter_provider.get_meter("m").create_counter("caret.tokens")
    labels = {attrs.GEN_AI_REQUEST_MODEL: "gpt-4o", attrs.GEO_COUNTRY_ISO_CODE: "kr"}
    counter.add(5, {**labels, attrs.ENDUSER_ID: "stays", attrs.SESSION_ID: "s"})
    counter.add(100, {**labels, attrs.ENDUSER_ID: "gone"})
    counter.add(1, {attrs.GEN_AI_REQUEST_MODEL: "o3", attrs.GEO_COUNTRY_ISO_CODE: "Germany"})
    data = pipeline.metrics.get_metrics_data()
    assert data is not None
    (metric,) = data.resource_metrics[0].scope_metrics[0].metrics
    points = {tuple(sorted((p.attributes or {}).items())): p for p in metric.data.data_points}
    assert set(points) == {
        ((attrs.GEN_AI_REQUEST_MODEL, "gpt-4o"), (attrs.GEO_COUNTRY_ISO_CODE, "KR")),
        ((attrs.GEN_AI_REQUEST_MODEL, "o3"),),
    }
    assert [p.value for p in points.values()] == [5, 1]
    assert all(not p.exemplars for p in metric.data.data_points)


def test_privacy_views_without_engine_only_filter_keys() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=privacy_views(load_policy()))
    provider.get_meter("m").create_counter("c").add(
        1, {attrs.GEN_AI_REQUEST_MODEL: "x", attrs.ENDUSER_ID: "u"}
    )
    data = reader.get_metrics_data()
    assert data is not None
    point = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    assert dict(point.attributes or {}) == {attrs.GEN_AI_REQUEST_MODEL: "x"}
    provider.shutdown()


def test_log_processor_after_a_batch_processor_is_refused(engine: PrivacyEngine) -> None:
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(InMemoryLogRecordExporter()))
    with pytest.raises(PrivacyConfigurationError, match="already has: BatchLogRecordProcessor"):
        add_privacy_log_processor(provider, engine, InMemoryConsentStore())
    with pytest.raises(PrivacyConfigurationError, match="before any other log processor"):
        install_privacy(None, provider, engine=engine, consent=InMemoryConsentStore())
    provider.shutdown()


def test_span_exporter_without_privacy_is_refused(engine: PrivacyEngine) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    with pytest.raises(PrivacyConfigurationError, match="without the privacy processor"):
        install_privacy(provider, None, engine=engine, consent=InMemoryConsentStore())
    provider.shutdown()


def test_privacy_as_the_provider_pipeline_gates_every_processor(
    engine: PrivacyEngine, pseudonymizer: Pseudonymizer
) -> None:
    consent = InMemoryConsentStore([pseudonymizer.pseudonymize("gone")])
    privacy = PrivacyLogRecordProcessor(engine, consent)
    provider = LoggerProvider(shutdown_on_exit=False, multi_log_record_processor=privacy)
    exporter = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    assert add_privacy_log_processor(provider, engine, consent) is privacy
    logger = provider.get_logger("t")
    logger.emit(body="x", attributes={attrs.USER_ID: "gone"})
    logger.emit(body="mail eve@example.org")
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["mail <redacted:email>"]
    assert privacy.rejected_records == 1
    provider.shutdown()


def test_a_processor_wrongly_added_after_privacy_gets_only_empty_shells(
    engine: PrivacyEngine, pseudonymizer: Pseudonymizer
) -> None:
    consent = InMemoryConsentStore([pseudonymizer.pseudonymize("gone")])
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    add_privacy_log_processor(provider, engine, consent)
    bypass = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(bypass))
    provider.get_logger("t").emit(
        body="secret for eve@example.org", attributes={attrs.USER_ID: "gone"}
    )
    (shell,) = bypass.get_finished_logs()
    assert shell.log_record.body is None
    assert not shell.log_record.attributes
    assert not shell.resource.attributes
    assert shell.instrumentation_scope is None
    provider.shutdown()


class BrokenConsent(InMemoryConsentStore):
    def is_opted_out(self, user_pseudonym: str) -> bool:
        raise RuntimeError("consent backend gone")


def test_scrub_failure_exports_nothing(engine: PrivacyEngine) -> None:
    exporter = InMemorySpanExporter()
    privacy = PrivacySpanExporter(exporter, engine, BrokenConsent())
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(privacy))
    with provider.get_tracer("t").start_as_current_span("s", attributes={attrs.ENDUSER_ID: "u"}):
        pass
    assert exporter.get_finished_spans() == ()
    assert privacy.report().dropped[("record", "error")] == 1
    provider.shutdown()


def test_log_scrub_failure_forwards_nothing(engine: PrivacyEngine) -> None:
    provider = LoggerProvider(shutdown_on_exit=False)
    privacy = add_privacy_log_processor(provider, engine, BrokenConsent())
    exporter = InMemoryLogRecordExporter()
    privacy.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    provider.get_logger("t").emit(body="x", attributes={attrs.ENDUSER_ID: "u"})
    assert exporter.get_finished_logs() == ()
    assert privacy.report().dropped[("record", "error")] == 1
    provider.shutdown()
