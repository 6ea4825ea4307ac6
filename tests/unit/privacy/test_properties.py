"""Property tests: secrets planted in every hiding place of every signal never leave, and
registry-allowed values leave unchanged, through every adapter (OTLP, SDK, client events).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metric_capture import MetricCapture
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode
from unit.privacy import otlp_docs as doc
from unit.privacy.conftest import make_pseudonymizer
from unit.privacy.planted import (
    ALLOWED_LANGUAGES,
    ALLOWED_MODELS,
    ALLOWED_PROVIDERS,
    Planted,
    first_survivor,
    secret_in_text,
    token_counts,
    versions,
)

from caret_otel.otlp.json_format import parse_request
from caret_otel.otlp.values import attributes_to_dict
from caret_otel.processors.privacy.client_events import ClientEventScrubber
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.otlp import (
    scrub_logs_request,
    scrub_metrics_request,
    scrub_trace_request,
)
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.processors.privacy.sdk import install_privacy
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics
from caret_otel.semconv.policy import load_policy

ENGINE = PrivacyEngine(load_policy(), make_pseudonymizer())
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Allowed:
    """Registry-allowed values that must leave exactly as sent."""

    model: str
    provider: str
    language: str
    version: str
    input_tokens: int
    output_tokens: int

    def span_attributes(self) -> dict[str, object]:
        return {
            attrs.GEN_AI_REQUEST_MODEL: self.model,
            attrs.GEN_AI_PROVIDER_NAME: self.provider,
            attrs.CARET_CLIENT_LANGUAGE: self.language,
            attrs.CARET_CLIENT_VERSION: self.version,
            attrs.GEN_AI_USAGE_INPUT_TOKENS: self.input_tokens,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: self.output_tokens,
        }

    def metric_attributes(self) -> dict[str, object]:
        return {attrs.GEN_AI_REQUEST_MODEL: self.model, attrs.GEN_AI_PROVIDER_NAME: self.provider}


allowed_values = st.builds(
    Allowed,
    model=st.sampled_from(ALLOWED_MODELS),
    provider=st.sampled_from(ALLOWED_PROVIDERS),
    language=st.sampled_from(ALLOWED_LANGUAGES),
    version=versions,
    input_tokens=token_counts,
    output_tokens=token_counts,
)
# Several secrets per example; the places below take them in turn.
planted_texts = st.lists(secret_in_text(), min_size=1, max_size=6)


class Places:
    """Hands out planted texts to hiding places, cycling through them."""

    def __init__(self, planted: list[tuple[Planted, str]]) -> None:
        self.secrets = [p for p, _ in planted]
        self._texts = [t for _, t in planted]
        self._next = 0

    def __call__(self) -> str:
        text = self._texts[self._next % len(self._texts)]
        self._next += 1
        return text

    def nested(self) -> dict[str, object]:
        """A log body hiding texts in values, list items, deep maps and keys."""
        return {
            "message": self(),
            "context": {"steps": [self(), {"detail": self(), "level": 3}], "ok": False},
            self(): "value under a key that is itself a secret",
            "password": self(),
            "headers": {"Authorization": self()},
        }

    def attributes(self) -> dict[str, object]:
        """Unknown, forbidden, pseudonymous and free-text keys, plus a secret key name."""
        return {
            "custom.note": self(),
            attrs.CARET_PROMPT_TEXT: self(),
            attrs.URL_FULL: self(),
            attrs.USER_ID: self(),
            attrs.EXCEPTION_MESSAGE: self(),
            attrs.EXCEPTION_STACKTRACE: self(),
            f"k.{self()}": 1,
            "nested.map": {"inner": self()},
        }


def assert_nothing_survives(secrets: list[Planted], *outputs: str) -> None:
    joined = "\n".join(outputs)
    survivor = first_survivor(secrets, joined)
    if survivor is not None:
        secret, needle = survivor
        folded = joined.casefold()
        at = folded.find(needle.casefold())
        context = joined[max(0, at - 80) : at + 80] if at >= 0 else "(after normalisation)"
        raise AssertionError(
            f"{secret.kind} {secret.text!r} survived as {needle!r} in: ...{context}..."
        )


def report_text(report: ScrubReport) -> str:
    return json.dumps(report.as_dict(), ensure_ascii=False)


# --- OTLP adapter ---------------------------------------------------------------------------


def scrub_otlp_leaving_nothing(
    document: dict[str, Any], scrub: Callable[..., object], place: Places
) -> Any:
    """Parse ``document``, ``scrub`` it (engine, no opt-outs) and assert that no planted
    secret survives in the request or the report; the scrubbed request."""
    _, request = parse_request(document)
    report = ScrubReport()
    scrub(request, ENGINE, InMemoryConsentStore(), report)
    assert_nothing_survives(place.secrets, json_format.MessageToJson(request), report_text(report))
    return request


def assert_allowed_kept(allowed: dict[str, object], attributes: Any) -> None:
    """Every allowed attribute is among the scrubbed OTLP ``attributes``, unchanged."""
    kept = attributes_to_dict(attributes)
    assert {k: kept[k] for k in allowed} == allowed


@given(planted=planted_texts, allowed=allowed_values)
@SETTINGS
def test_otlp_traces_leak_nothing(planted: list[tuple[Planted, str]], allowed: Allowed) -> None:
    place = Places(planted)
    document = doc.traces(
        [
            doc.span(
                place(),
                {**allowed.span_attributes(), **place.attributes()},
                events=[(place(), place.attributes())],
                links=[place.attributes()],
                status_message=place(),
            )
        ],
        resource={attrs.SERVICE_NAME: "llm-proxy", **place.attributes()},
        scope_doc=doc.scope(place(), place.attributes()),
    )
    request = scrub_otlp_leaving_nothing(document, scrub_trace_request, place)
    assert_allowed_kept(
        allowed.span_attributes(), request.resource_spans[0].scope_spans[0].spans[0].attributes
    )


@given(planted=planted_texts, allowed=allowed_values)
@SETTINGS
def test_otlp_logs_leak_nothing(planted: list[tuple[Planted, str]], allowed: Allowed) -> None:
    place = Places(planted)
    document = doc.logs(
        [
            doc.log_record(
                place.nested(),
                {**allowed.span_attributes(), **place.attributes()},
                event_name=place(),
                severity_text=place(),
            ),
            doc.log_record(place()),
            doc.log_record([place(), [place(), {"k": place()}]]),
        ],
        resource=place.attributes(),
        scope_doc=doc.scope(place(), place.attributes()),
    )
    request = scrub_otlp_leaving_nothing(document, scrub_logs_request, place)
    assert_allowed_kept(
        allowed.span_attributes(), request.resource_logs[0].scope_logs[0].log_records[0].attributes
    )


@given(planted=planted_texts, allowed=allowed_values)
@SETTINGS
def test_otlp_metrics_leak_nothing(planted: list[tuple[Planted, str]], allowed: Allowed) -> None:
    place = Places(planted)
    labels = {**allowed.metric_attributes(), **place.attributes()}
    document = doc.metrics(
        [
            doc.metric(
                metrics.CARET_TOKENS.name,
                "sum",
                [doc.number_point(allowed.input_tokens, labels, exemplar=place.attributes())],
                description=place(),
                metadata=doc.kvs(place.attributes()),
            ),
            doc.metric(
                "caret.task.duration", "histogram", [doc.histogram_point([1, 2], [1.0], labels)]
            ),
            # A metric the registry does not know goes nowhere, whatever its name.
            doc.metric(place(), "sum", [doc.number_point(1, labels)]),
        ],
        resource=place.attributes(),
        scope_doc=doc.scope(place(), place.attributes()),
    )
    request = scrub_otlp_leaving_nothing(document, scrub_metrics_request, place)
    kept = request.resource_metrics[0].scope_metrics[0].metrics
    assert [m.name for m in kept] == [metrics.CARET_TOKENS.name, "caret.task.duration"]
    metric = kept[0]
    assert metric.unit == metrics.CARET_TOKENS.unit
    point = metric.sum.data_points[0]
    assert attributes_to_dict(point.attributes) == allowed.metric_attributes()
    assert point.as_int == allowed.input_tokens


# --- SDK adapter ----------------------------------------------------------------------------


@dataclass
class Sdk:
    tracer_provider: TracerProvider
    logger_provider: LoggerProvider
    meter_provider: MeterProvider
    spans: InMemorySpanExporter
    logs: InMemoryLogRecordExporter
    metrics: MetricCapture

    def outputs(self) -> Iterator[str]:
        self.meter_provider.force_flush()
        yield from (s.to_json() for s in self.spans.get_finished_spans())
        yield from (r.to_json() for r in self.logs.get_finished_logs())
        yield from (data.to_json() for data in self.metrics.exports)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


def sdk_pipeline(resource: Resource) -> Sdk:
    tracer_provider = TracerProvider(resource=resource)
    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    wiring = install_privacy(
        tracer_provider,
        logger_provider,
        engine=ENGINE,
        consent=InMemoryConsentStore(),
        span_exporters=[spans],
        log_exporters=[logs],
        batch=False,
    )
    sink = MetricCapture()
    meter_provider = MeterProvider(
        resource=resource,
        **wiring.meter_provider_kwargs(metric_exporters=[sink], export_interval_millis=10**9),
    )
    return Sdk(tracer_provider, logger_provider, meter_provider, spans, logs, sink)


def flat(attributes: dict[str, object]) -> dict[str, Any]:
    """SDK attributes cannot nest maps; keep the rest."""
    return {k: v for k, v in attributes.items() if not isinstance(v, dict)}


@given(planted=planted_texts, allowed=allowed_values)
@SETTINGS
def test_sdk_signals_leak_nothing(planted: list[tuple[Planted, str]], allowed: Allowed) -> None:
    place = Places(planted)
    sdk = sdk_pipeline(Resource.create(flat(place.attributes())))
    try:
        tracer = sdk.tracer_provider.get_tracer(place(), attributes=flat(place.attributes()))
        linked = tracer.start_span("linked")
        linked.end()
        with tracer.start_as_current_span(
            place(),
            attributes={**allowed.span_attributes(), **flat(place.attributes())},
            links=[Link(linked.get_span_context(), flat(place.attributes()))],
        ) as span:
            span.add_event(place(), flat(place.attributes()))
            span.set_status(Status(StatusCode.ERROR, place()))
        logger = sdk.logger_provider.get_logger(place())
        logger.emit(
            body=place.nested(),  # type: ignore[arg-type]
            attributes=flat(place.attributes()),  # type: ignore[arg-type]
            event_name=place(),
            severity_text=place(),
        )
        meter = sdk.meter_provider.get_meter(place())
        meter.create_counter("caret.tokens").add(
            allowed.input_tokens,
            {**allowed.metric_attributes(), **flat(place.attributes())},  # type: ignore[dict-item]
        )
        outputs = list(sdk.outputs())
    finally:
        sdk.shutdown()
    assert_nothing_survives(place.secrets, *outputs)
    (point,) = (
        sdk.metrics.exports[0].resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    )
    assert point.value == allowed.input_tokens
    assert dict(point.attributes or {}) == allowed.metric_attributes()
    exported = sdk.spans.get_finished_spans()[-1]
    kept = dict(exported.attributes or {})
    assert {k: kept[k] for k in allowed.span_attributes()} == allowed.span_attributes()


# --- client events --------------------------------------------------------------------------


@given(planted=planted_texts, allowed=allowed_values)
@SETTINGS
def test_client_events_leak_nothing(planted: list[tuple[Planted, str]], allowed: Allowed) -> None:
    place = Places(planted)
    raw = {
        "event_type": "task.provider_api_error",
        "user_id_hash": place(),
        "session_id": place(),
        "timestamp": "2025-01-11T10:00:00Z",
        "properties": {
            "api_provider": allowed.provider,
            "model": allowed.model,
            "error_message": place(),
            "prompt": place(),
            "filePath": place(),
            "cwd": place(),
            "task_id": place(),
            place(): "a secret as a property name",
            "extra": {"nested": place()},
            "status_code": 429,
        },
        "client_info": {
            "version": allowed.version,
            "platform": "vscode",
            "language": allowed.language,
            "machine": place(),
        },
    }
    report = ScrubReport()
    event = ClientEventScrubber(ENGINE, InMemoryConsentStore()).scrub(raw, report)
    assert event is not None
    assert_nothing_survives(
        place.secrets, json.dumps(event.attributes, ensure_ascii=False), report_text(report)
    )
    assert event.attributes[attrs.GEN_AI_REQUEST_MODEL] == allowed.model
    assert event.attributes[attrs.GEN_AI_PROVIDER_NAME] == allowed.provider
    assert event.attributes[attrs.CARET_CLIENT_VERSION] == allowed.version
    assert event.attributes[attrs.CARET_CLIENT_LANGUAGE] == allowed.language
    assert event.attributes[attrs.HTTP_RESPONSE_STATUS_CODE] == 429


# --- the engine is idempotent for trusted pseudonyms ---------------------------------------


@given(planted=planted_texts, allowed=allowed_values)
@SETTINGS
def test_scrubbing_twice_changes_nothing(
    planted: list[tuple[Planted, str]], allowed: Allowed
) -> None:
    trusting = PrivacyEngine(load_policy(), make_pseudonymizer(), accept_pseudonyms=True)
    place = Places(planted)
    values = {**allowed.span_attributes(), **place.attributes()}
    once = trusting.scrub_attributes(values, ScrubReport())
    assert trusting.scrub_attributes(once, ScrubReport()) == once
    body = place.nested()
    scrubbed_body = trusting.scrub_body(body, ScrubReport())
    assert trusting.scrub_body(scrubbed_body, ScrubReport()) == scrubbed_body
