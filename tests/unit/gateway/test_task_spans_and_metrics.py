"""The caret.task span and the client-event -> metric mapping, checked against the registry."""

from __future__ import annotations

import hashlib

from metric_capture import MetricCapture
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricsData

from caret_otel.otlp import wire as protowire
from caret_otel.receivers.gateway import client_metrics, task_spans
from caret_otel.receivers.gateway.config import OtlpTarget
from caret_otel.registry.model import load_registry
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events, metrics, spans
from caret_otel.semconv.policy import load_policy

S = 1_000_000_000
TASK = "v1:" + "ab" * 32


def decode(span_field: bytes) -> trace_pb2.Span:
    request = ExportTraceServiceRequest()
    request.ParseFromString(protowire.export_request(b"", b"", [span_field]))
    return request.resource_spans[0].scope_spans[0].spans[0]


def span_attributes(span: trace_pb2.Span) -> dict[str, object]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}


def test_ids_are_deterministic_and_documented() -> None:
    digest = hashlib.sha256(spans.CARET_TASK.encode() + b"\x00" + TASK.encode()).digest()
    assert task_spans.task_ids(TASK) == (digest[:16], digest[16:24])
    assert task_spans.task_trace_id(TASK) == digest[:16]
    assert task_spans.task_ids("v1:" + "cd" * 32)[0] != digest[:16]


def test_span_starts_at_the_created_event() -> None:
    tracker = task_spans.TaskSpans(max_open_tasks=10)
    tracker.created(
        100 * S,
        {
            attrs.CARET_TASK_ID: TASK,
            attrs.CARET_TASK_MODE: "act",
            attrs.GEN_AI_REQUEST_MODEL: "m1",
            attrs.CARET_EVENT_ID: "e",
        },
    )
    encoded = tracker.completed(
        160 * S,
        {attrs.CARET_TASK_ID: TASK, attrs.CARET_TASK_OUTCOME: "success", attrs.CARET_TASK_DURATION: 5.0,
         attrs.ENDUSER_PSEUDO_ID: "v1:user"},
    )  # fmt: skip
    assert encoded is not None
    span = decode(encoded)
    assert span.name == spans.CARET_TASK
    assert span.kind == trace_pb2.Span.SPAN_KIND_INTERNAL
    assert (span.trace_id, span.span_id) == task_spans.task_ids(TASK, 100 * S)
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (100 * S, 160 * S)
    assert span.status.code == trace_pb2.Status.STATUS_CODE_UNSET
    # Attributes of both events, only those of the span definition.
    assert span_attributes(span) == {
        attrs.CARET_TASK_ID: TASK, attrs.CARET_TASK_MODE: "act", attrs.GEN_AI_REQUEST_MODEL: "m1",
        attrs.CARET_TASK_OUTCOME: "success", attrs.CARET_TASK_DURATION: 5.0,
    }  # fmt: skip
    assert len(tracker) == 0


def test_without_created_the_duration_gives_the_start() -> None:
    tracker = task_spans.TaskSpans(max_open_tasks=10)
    encoded = tracker.completed(
        160 * S,
        {
            attrs.CARET_TASK_ID: TASK,
            attrs.CARET_TASK_DURATION: 12.5,
            attrs.CARET_TASK_OUTCOME: "error",
        },
    )
    assert encoded is not None
    span = decode(encoded)
    assert span.start_time_unix_nano == 160 * S - 12_500_000_000
    assert span.status.code == trace_pb2.Status.STATUS_CODE_ERROR


def test_without_created_or_duration_the_span_has_zero_length() -> None:
    tracker = task_spans.TaskSpans(max_open_tasks=10)
    for duration in (None, float("inf"), -3.0, True):
        attributes: dict[str, protowire.AttributeValue] = {attrs.CARET_TASK_ID: TASK}
        if duration is not None:
            attributes[attrs.CARET_TASK_DURATION] = duration
        encoded = tracker.completed(160 * S, attributes)
        assert encoded is not None
        assert decode(encoded).start_time_unix_nano == 160 * S
    assert tracker.completed(160 * S, {}) is None


def test_open_tasks_are_bounded() -> None:
    tracker = task_spans.TaskSpans(max_open_tasks=3)
    for i in range(5):
        tracker.created(i * S, {attrs.CARET_TASK_ID: f"task-{i}"})
    assert len(tracker) == 3
    oldest = tracker.completed(10 * S, {attrs.CARET_TASK_ID: "task-0"})
    assert oldest is not None
    assert decode(oldest).start_time_unix_nano == 10 * S  # forgotten: zero length
    newest = tracker.completed(10 * S, {attrs.CARET_TASK_ID: "task-4"})
    assert newest is not None
    assert decode(newest).start_time_unix_nano == 4 * S


def test_span_attributes_match_the_registry() -> None:
    registry_span = next(s for s in load_registry().spans.values() if s.name == spans.CARET_TASK)
    assert set(task_spans.SPAN_ATTRIBUTES) == set(registry_span.attributes)


SAMPLE_VALUES = {"string": "x", "int": 3, "double": 2.5, "boolean": True}


def test_metric_mapping_matches_the_registry_signals() -> None:
    """Each event, carrying every attribute it may have, feeds exactly the metrics the
    registry's client-event table lists for it."""
    registry = load_registry()
    policy = load_policy()
    provider, recorder = client_metrics.pipeline(
        OtlpTarget(endpoints={}), policy, exporter=MetricCapture()
    )
    for event in registry.events.values():
        declared = {s.name for s in event.signals if s.signal == "metric"}
        full = {key: SAMPLE_VALUES[registry.attributes[key].type] for key in event.attributes}
        batch = client_metrics.MetricBatch()
        recorder.observe(batch, event.name, full)
        fed = {name for name, _ in batch.sums} | {name for name, _, _ in batch.samples}
        assert fed == declared, event.name
    assert set(client_metrics.EVENT_METRICS) == {e.name for e in events.ALL}
    provider.shutdown()


def test_labels_are_only_policy_metric_attributes() -> None:
    policy = load_policy()
    for spec in client_metrics.CLIENT_METRICS:
        for key in client_metrics.allowed_labels(spec, policy):
            rule = policy.rule(key)
            assert rule is not None
            assert rule.metric
            assert rule.privacy != "pseudonymous"


def collect(
    provider: MeterProvider, exporter: MetricCapture
) -> dict[str, list[tuple[dict[str, object], object]]]:
    data = exporter.collect(provider)
    assert isinstance(data, MetricsData)
    found: dict[str, list[tuple[dict[str, object], object]]] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = (point.count, point.sum, tuple(point.explicit_bounds))  # type: ignore[union-attr]
                    found.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return found


def test_events_become_measurements() -> None:
    exporter = MetricCapture()
    policy = load_policy()
    provider, recorder = client_metrics.pipeline(
        OtlpTarget(endpoints={}), policy, exporter=exporter
    )
    base = {attrs.GEN_AI_PROVIDER_NAME: "anthropic", attrs.GEN_AI_REQUEST_MODEL: "claude",
            attrs.ENDUSER_PSEUDO_ID: "v1:user", attrs.CARET_CLIENT_PLATFORM: "vscode"}  # fmt: skip
    batch = client_metrics.MetricBatch()
    for _ in range(3):
        recorder.observe(
            batch, events.CARET_TASK_CREATED.name, {**base, attrs.CARET_TASK_MODE: "act"}
        )
    recorder.observe(batch, events.CARET_TASK_TOKENS.name, {**base, attrs.GEN_AI_USAGE_INPUT_TOKENS: 100,
                     attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 20, attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 7,
                     attrs.CARET_CREDITS_AMOUNT: 0.5})  # fmt: skip
    recorder.observe(
        batch,
        events.CARET_TASK_COMPLETED.name,
        {**base, attrs.CARET_TASK_DURATION: 42.0, attrs.CARET_TASK_OUTCOME: "success"},
    )
    recorder.observe(batch, events.CARET_USER_OPT_OUT.name, base)
    recorder.observe(batch, events.CARET_SESSION_STARTED.name, base)
    recorder.observe(batch, events.CARET_SESSION_STARTED.name, base)
    recorder.observe(
        batch, events.CARET_SESSION_ENDED.name, {**base, attrs.CARET_SESSION_DURATION: 600.0}
    )
    recorder.flush(batch)
    found = collect(provider, exporter)
    assert found[metrics.CARET_TASK_STARTS.name] == [
        ({attrs.GEN_AI_PROVIDER_NAME: "anthropic", attrs.GEN_AI_REQUEST_MODEL: "claude",
          attrs.CARET_TASK_MODE: "act", attrs.CARET_CLIENT_PLATFORM: "vscode"}, 3)
    ]  # fmt: skip
    tokens = {
        point[0][attrs.CARET_TOKEN_TYPE]: point[1] for point in found[metrics.CARET_TOKENS.name]
    }
    assert tokens == {"input": 100, "output": 20, "cache_read": 7}
    usage = {
        p[0][attrs.GEN_AI_TOKEN_TYPE]: p[1] for p in found[metrics.GEN_AI_CLIENT_TOKEN_USAGE.name]
    }
    assert usage["input"][0:2] == (1, 100)  # type: ignore[index]
    assert usage["input"][2] == metrics.GEN_AI_CLIENT_TOKEN_USAGE.buckets  # type: ignore[index]
    assert found[metrics.CARET_CREDITS_CONSUMED.name][0][1] == 0.5
    duration = found[metrics.CARET_TASK_DURATION.name][0]
    assert duration[1][0:2] == (1, 42.0)  # type: ignore[index]
    assert duration[1][2] == metrics.CARET_TASK_DURATION.buckets  # type: ignore[index]
    assert found[metrics.CARET_CONSENT_CHANGES.name] == [
        ({attrs.CARET_CONSENT_TELEMETRY_ENABLED: False}, 1)
    ]
    assert found[metrics.CARET_SESSION_ACTIVE.name] == [
        ({attrs.CARET_CLIENT_PLATFORM: "vscode"}, 1)
    ]
    # No pseudonym ever became a label.
    for points in found.values():
        for labels, _ in points:
            assert attrs.ENDUSER_PSEUDO_ID not in labels
    provider.shutdown()
