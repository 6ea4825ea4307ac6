"""The OTLP adapter: every hiding place scrubbed, opt-out on every signal, series merged."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from unit.privacy import otlp_docs as doc

from caret_otel.otlp.json_format import parse_request
from caret_otel.otlp.values import any_to_python, attributes_to_dict
from caret_otel.processors.privacy import report as reasons
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.otlp import (
    DATA_POINT,
    scrub_logs_request,
    scrub_metrics_request,
    scrub_trace_request,
)
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer
from caret_otel.processors.privacy.report import ScrubReport
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.semconv.policy import load_policy

SECRET = "alice@example.com"
ALLOWED = {attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4", attrs.GEN_AI_USAGE_INPUT_TOKENS: 812}


R = TypeVar("R", ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest)


def parsed(kind: type[R], document: dict[str, Any]) -> R:
    _, request = parse_request(document)
    assert isinstance(request, kind)
    return request


def trace_request(document: dict[str, Any]) -> ExportTraceServiceRequest:
    return parsed(ExportTraceServiceRequest, document)


def logs_request(document: dict[str, Any]) -> ExportLogsServiceRequest:
    return parsed(ExportLogsServiceRequest, document)


def metrics_request(document: dict[str, Any]) -> ExportMetricsServiceRequest:
    return parsed(ExportMetricsServiceRequest, document)


@pytest.fixture
def opted_out(pseudonymizer: Pseudonymizer) -> InMemoryConsentStore:
    """Consent with "gone-user" opted out."""
    return InMemoryConsentStore([pseudonymizer.pseudonymize("gone-user")])


def as_text(message: Any) -> str:
    return json_format.MessageToJson(message, ensure_ascii=False)


def test_every_hiding_place_in_a_trace_is_scrubbed(
    engine: PrivacyEngine, consent: InMemoryConsentStore, report: ScrubReport
) -> None:
    request = trace_request(
        doc.traces(
            [
                doc.span(
                    f"GET /users/{SECRET}",
                    {**ALLOWED, "custom": SECRET, attrs.EXCEPTION_MESSAGE: f"denied {SECRET}"},
                    events=[(f"retry for {SECRET}", {attrs.EXCEPTION_STACKTRACE: SECRET})],
                    links=[{"note": SECRET, attrs.EXCEPTION_MESSAGE: SECRET}],
                    status_message=f"failed for {SECRET}",
                )
            ],
            resource={attrs.SERVICE_NAME: "llm-proxy", attrs.HOST_NAME: SECRET, "owner": SECRET},
            scope_doc=doc.scope(f"lib-{SECRET}", {"scope.owner": SECRET}),
        )
    )
    assert scrub_trace_request(request, engine, consent, report) == 0
    assert "alice" not in as_text(request)
    resource_spans = request.resource_spans[0]
    assert attributes_to_dict(resource_spans.resource.attributes) == {
        attrs.SERVICE_NAME: "llm-proxy"
    }
    span = resource_spans.scope_spans[0].spans[0]
    assert attributes_to_dict(span.attributes) == {
        **ALLOWED,
        attrs.EXCEPTION_MESSAGE: "denied <redacted:email>",
    }
    assert span.name == "GET /users/<redacted:email>"
    assert span.events[0].name == "retry for <redacted:email>"
    assert span.status.message == "failed for <redacted:email>"
    assert span.dropped_attributes_count == 1
    assert span.trace_id.hex() == doc.TRACE_ID
    # span name, event name, status, scope name, and three free-text attributes
    assert report.redacted["email"] == 7


def test_opted_out_spans_are_removed_wherever_the_user_is_named(
    engine: PrivacyEngine,
    pseudonymizer: Pseudonymizer,
    opted_out: InMemoryConsentStore,
    report: ScrubReport,
) -> None:
    request = trace_request(
        doc.traces(
            [
                doc.span("kept", {attrs.ENDUSER_ID: "other-user"}),
                doc.span("by attribute", {attrs.ENDUSER_ID: "gone-user"}),
                doc.span("by event", events=[("e", {attrs.USER_ID: "gone-user"})]),
                doc.span("by link", links=[{attrs.USER_HASH: "gone-user"}]),
            ]
        )
    )
    assert scrub_trace_request(request, engine, opted_out, report) == 3
    spans = request.resource_spans[0].scope_spans[0].spans
    assert [s.name for s in spans] == ["kept"]
    assert attributes_to_dict(spans[0].attributes)[attrs.ENDUSER_ID] == pseudonymizer.pseudonymize(
        "other-user"
    )


def test_opted_out_resource_removes_all_its_spans(
    engine: PrivacyEngine, opted_out: InMemoryConsentStore, report: ScrubReport
) -> None:
    request = trace_request(
        doc.traces([doc.span("a"), doc.span("b")], resource={attrs.ENDUSER_ID: "gone-user"})
    )
    assert scrub_trace_request(request, engine, opted_out, report) == 2
    assert len(request.resource_spans) == 0


def test_service_pseudonyms_pass_once_accepted(pseudonymizer: Pseudonymizer) -> None:
    engine = PrivacyEngine(load_policy(), pseudonymizer, accept_pseudonyms=True)
    pseudonym = pseudonymizer.pseudonymize("u1")
    request = trace_request(doc.traces([doc.span("s", {attrs.ENDUSER_PSEUDO_ID: pseudonym})]))
    scrub_trace_request(request, engine, InMemoryConsentStore(), ScrubReport())
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert attributes_to_dict(span.attributes) == {attrs.ENDUSER_PSEUDO_ID: pseudonym}


def test_log_bodies_event_names_and_attributes(
    engine: PrivacyEngine, consent: InMemoryConsentStore, report: ScrubReport
) -> None:
    request = logs_request(
        doc.logs(
            [
                doc.log_record(
                    {
                        "message": f"hello {SECRET}",
                        "items": [1, {"password": "hunter2"}],
                        "ok": True,
                    },
                    {attrs.EXCEPTION_TYPE: "ValueError", "raw.user": SECRET},
                    event_name=events.CARET_TASK_CREATED.name,
                ),
                doc.log_record(f"plain text from {SECRET}", event_name=f"custom {SECRET}"),
                doc.log_record(None, severity_text=f"WARN {SECRET}"),
            ]
        )
    )
    assert scrub_logs_request(request, engine, consent, report) == 0
    assert "alice" not in as_text(request)
    assert "hunter2" not in as_text(request)
    first, second, third = request.resource_logs[0].scope_logs[0].log_records
    # A structured body fails closed: only registry keys (or client aliases) stay.
    assert any_to_python(first.body) == {"message": "hello <redacted:email>"}
    assert attributes_to_dict(first.attributes) == {attrs.EXCEPTION_TYPE: "ValueError"}
    assert first.event_name == events.CARET_TASK_CREATED.name
    assert second.body.string_value == "plain text from <redacted:email>"
    assert second.event_name == "custom <redacted:email>"
    assert not third.HasField("body")
    assert third.severity_text == "WARN <redacted:email>"
    assert report.dropped[("body:items", reasons.UNKNOWN)] == 1
    assert report.dropped[("body:ok", reasons.UNKNOWN)] == 1


def test_opted_out_log_records_are_removed(
    engine: PrivacyEngine, opted_out: InMemoryConsentStore, report: ScrubReport
) -> None:
    request = logs_request(
        doc.logs(
            [
                doc.log_record("kept", {attrs.USER_ID: "other"}),
                doc.log_record("by attribute", {attrs.ENDUSER_PSEUDO_ID: "gone-user"}),
                doc.log_record({attrs.USER_ID: "gone-user", "msg": "by body"}),
            ]
        )
    )
    assert scrub_logs_request(request, engine, opted_out, report) == 2
    records = request.resource_logs[0].scope_logs[0].log_records
    assert [r.body.string_value for r in records] == ["kept"]


def test_metric_points_keep_only_metric_labels_and_exemplars_are_scrubbed(
    engine: PrivacyEngine, consent: InMemoryConsentStore, report: ScrubReport
) -> None:
    request = metrics_request(
        doc.metrics(
            [
                doc.metric(
                    "gen_ai.client.token.usage",
                    "sum",
                    [
                        doc.number_point(
                            5,
                            {
                                attrs.GEN_AI_REQUEST_MODEL: "gpt-4o",
                                attrs.SESSION_ID: "s1",
                                "x": SECRET,
                            },
                            exemplar={
                                attrs.EXCEPTION_MESSAGE: SECRET,
                                attrs.GEN_AI_TOKEN_TYPE: "input",
                            },
                        )
                    ],
                    description=f"owner {SECRET}",
                    metadata=doc.kvs({"owner": SECRET}),
                )
            ]
        )
    )
    assert scrub_metrics_request(request, engine, consent, report) == 0
    assert "alice" not in as_text(request)
    point = request.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]
    assert attributes_to_dict(point.attributes) == {attrs.GEN_AI_REQUEST_MODEL: "gpt-4o"}
    exemplar = point.exemplars[0]
    assert attributes_to_dict(exemplar.filtered_attributes) == {attrs.GEN_AI_TOKEN_TYPE: "input"}
    assert exemplar.trace_id.hex() == doc.TRACE_ID


def test_opted_out_metric_points_are_removed(
    engine: PrivacyEngine, opted_out: InMemoryConsentStore, report: ScrubReport
) -> None:
    request = metrics_request(
        doc.metrics(
            [
                doc.metric(
                    "caret.tokens",
                    "sum",
                    [
                        doc.number_point(3, {attrs.ENDUSER_ID: "gone-user"}),
                        doc.number_point(4, {attrs.ENDUSER_ID: "kept-user"}),
                    ],
                ),
                doc.metric(
                    "caret.task.starts", "sum", [doc.number_point(1, {attrs.USER_ID: "gone-user"})]
                ),
                doc.metric(
                    "caret.signups",
                    "sum",
                    [doc.number_point(1, {}, exemplar={attrs.ENDUSER_ID: "gone-user"})],
                ),
            ]
        )
    )
    assert scrub_metrics_request(request, engine, opted_out, report) == 3
    remaining = request.resource_metrics[0].scope_metrics[0].metrics
    assert [m.name for m in remaining] == ["caret.tokens"]
    assert [p.as_int for p in remaining[0].sum.data_points] == [4]


def test_points_that_become_one_series_are_merged(
    engine: PrivacyEngine, consent: InMemoryConsentStore, report: ScrubReport
) -> None:
    model = {attrs.GEN_AI_REQUEST_MODEL: "gpt-4o"}
    request = metrics_request(
        doc.metrics(
            [
                doc.metric(
                    "caret.tokens",
                    "sum",
                    [
                        doc.number_point(3, {**model, attrs.ENDUSER_ID: "a"}),
                        doc.number_point(4, {**model, attrs.ENDUSER_ID: "b"}),
                        doc.number_point(1, {attrs.GEN_AI_REQUEST_MODEL: "o3"}),
                    ],
                ),
                doc.metric(
                    "caret.task.duration",
                    "histogram",
                    [
                        doc.histogram_point(
                            [1, 2, 0], [1.0, 5.0], {**model, attrs.SESSION_ID: "a"}
                        ),
                        doc.histogram_point(
                            [0, 1, 3], [1.0, 5.0], {**model, attrs.SESSION_ID: "b"}
                        ),
                    ],
                ),
                doc.metric(
                    "caret.session.active",
                    "gauge",
                    [
                        doc.number_point(7, {attrs.SESSION_ID: "a"}, time=2),
                        doc.number_point(9, {attrs.SESSION_ID: "b"}, time=3),
                    ],
                ),
            ]
        )
    )
    scrub_metrics_request(request, engine, consent, report)
    tokens, duration, active = request.resource_metrics[0].scope_metrics[0].metrics
    assert [p.as_int for p in tokens.sum.data_points] == [7, 1]
    (histogram,) = duration.histogram.data_points
    assert list(histogram.bucket_counts) == [1, 3, 3]
    assert histogram.count == 7
    assert histogram.sum == 7.0
    (gauge,) = active.gauge.data_points
    assert gauge.as_int == 9
    assert report.dropped[(DATA_POINT, reasons.DUPLICATE)] == 1


def test_dangling_entity_keys_are_removed(
    engine: PrivacyEngine, consent: InMemoryConsentStore, report: ScrubReport
) -> None:
    document = doc.traces(
        [doc.span("s")], resource={attrs.SERVICE_NAME: "svc", attrs.HOST_NAME: "h"}
    )
    document["resourceSpans"][0]["resource"]["entityRefs"] = [
        {"type": "host", "idKeys": [attrs.HOST_NAME], "descriptionKeys": [attrs.SERVICE_NAME]},
        {
            "type": "service",
            "schemaUrl": "https://alice.example.net/x",
            "idKeys": [attrs.SERVICE_NAME, attrs.HOST_NAME],
            "descriptionKeys": [attrs.HOST_NAME],
        },
        {"type": "Jane Doe", "idKeys": [attrs.SERVICE_NAME]},
    ]
    request = trace_request(document)
    scrub_trace_request(request, engine, consent, report)
    # A ref left without id keys, or with a type that is not a lower-case word, goes.
    (ref,) = request.resource_spans[0].resource.entity_refs
    assert ref.type == "service"
    assert list(ref.id_keys) == [attrs.SERVICE_NAME]
    assert list(ref.description_keys) == []
    assert ref.schema_url == ""
