"""``configure()``: privacy before every exporter, OTLP/HTTP that honours the standard
variables, cumulative temporality, the registry's buckets, OTEL_SDK_DISABLED, clear
errors - checked on what a real OTLP/HTTP receiver gets and on in-memory readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from caret_otel.devtools.provider_stub import ProviderStub
from caret_otel.processors.privacy.pseudonyms import (
    KEY_FILE_ENV,
    KEYS_ENV,
    Pseudonymizer,
    PseudonymKeyError,
    generate_key_entry,
)
from caret_otel.sdk import SdkConfigurationError, configure
from caret_otel.sdk.genai import is_instrumented
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as event_specs
from caret_otel.semconv import metrics as metric_specs

from .conftest import OtlpReceiver

AT = datetime(2025, 1, 11, 10, 0, tzinfo=UTC)
KEY = generate_key_entry("t1")
OTEL_ENV = (
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.setenv(KEYS_ENV, KEY)


def pseudonym(value: str) -> str:
    return Pseudonymizer.from_env().pseudonymize(value)


def values(attributes: Any) -> dict[str, Any]:
    """OTLP protobuf ``KeyValue`` list -> dict (scalars and string arrays)."""
    out: dict[str, Any] = {}
    for kv in attributes:
        kind = kv.value.WhichOneof("value")
        value: Any = getattr(kv.value, kind) if kind else None
        if isinstance(value, common_pb2.ArrayValue):
            value = [getattr(v, v.WhichOneof("value")) for v in value.values]
        out[kv.key] = value
    return out


def test_exports_over_otlp_with_privacy_and_the_standard_variables(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-caret-tenant=team-a")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-from-env")
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test,host.name=janes-laptop"
    )
    handle = configure(
        "billing-from-code", service_version="1.2.3", set_global=False, instrument_httpx=False
    )
    tracer = handle.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("charge") as span:
        span.set_attribute(attrs.ENDUSER_ID, "alice@example.com")
        span.set_attribute("billing.internal_note", "not in the registry")
    event_id = handle.events.credits_consumed(
        "user-1", 2.5, "anthropic", "claude-sonnet-4", "pro", at=AT
    )
    assert handle.force_flush()
    handle.shutdown()

    everything = b"".join(r.body for r in otlp_receiver.received)
    for secret in (b"alice@example.com", b"user-1", b"janes-laptop", b"not in the registry"):
        assert secret not in everything
    for signal in ("/v1/traces", "/v1/metrics", "/v1/logs"):
        requests = otlp_receiver.requests(signal)
        assert requests, f"nothing exported on {signal}"
        assert all(r.headers["x-caret-tenant"] == "team-a" for r in requests)

    [trace_request] = otlp_receiver.requests("/v1/traces")
    resource_spans = trace_request.decoded().resource_spans[0]
    resource = values(resource_spans.resource.attributes)
    assert resource[attrs.SERVICE_NAME] == "billing-from-env"  # the operator's name wins
    assert resource[attrs.SERVICE_VERSION] == "1.2.3"
    assert resource[attrs.DEPLOYMENT_ENVIRONMENT_NAME] == "test"
    assert attrs.HOST_NAME not in resource  # forbidden: dropped from every signal
    assert attrs.SERVICE_INSTANCE_ID in resource
    [span_data] = resource_spans.scope_spans[0].spans
    assert values(span_data.attributes) == {attrs.ENDUSER_ID: pseudonym("alice@example.com")}

    log_records = [
        record
        for request in otlp_receiver.requests("/v1/logs")
        for rl in request.decoded().resource_logs
        for sl in rl.scope_logs
        for record in sl.log_records
    ]
    [record] = log_records
    assert record.event_name == event_specs.CARET_CREDITS_CONSUMED.name
    record_attributes = values(record.attributes)
    assert record_attributes[attrs.ENDUSER_PSEUDO_ID] == pseudonym("user-1")
    assert record_attributes[attrs.CARET_EVENT_ID] == event_id

    metric_requests = otlp_receiver.requests("/v1/metrics")
    metric_resource = values(metric_requests[-1].decoded().resource_metrics[0].resource.attributes)
    assert attrs.HOST_NAME not in metric_resource
    credits = [
        metric
        for request in metric_requests
        for rm in request.decoded().resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == metric_specs.CARET_CREDITS_CONSUMED.name
    ]
    assert credits
    last = credits[-1]
    assert last.sum.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert last.sum.is_monotonic
    [point] = last.sum.data_points
    assert point.as_double == 2.5
    assert values(point.attributes) == {
        attrs.CARET_PLAN_NAME: "pro",
        attrs.GEN_AI_PROVIDER_NAME: "anthropic",
        attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
    }


def in_memory(
    **kwargs: Any,
) -> tuple[Any, InMemorySpanExporter, InMemoryLogRecordExporter, InMemoryMetricReader]:
    spans, logs, reader = (
        InMemorySpanExporter(),
        InMemoryLogRecordExporter(),
        InMemoryMetricReader(),
    )
    handle = configure(
        "test-service",
        set_global=False,
        span_exporters=[spans],
        log_exporters=[logs],
        metric_readers=[reader],
        batch=False,
        **kwargs,
    )
    return handle, spans, logs, reader


def metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def test_registry_buckets_and_metric_safe_labels_apply_whoever_creates_the_instrument() -> None:
    handle, _spans, _logs, reader = in_memory(instrument_httpx=False)
    meter = handle.meter_provider.get_meter("someone-elses-instrumentation")
    duration = metric_specs.GEN_AI_CLIENT_OPERATION_DURATION
    meter.create_histogram(duration.name, unit="s").record(
        0.5, {attrs.GEN_AI_REQUEST_MODEL: "m", attrs.ENDUSER_ID: "u-1", "free.text": "x"}
    )
    meter.create_histogram("caret_otel_test_latency", unit="s").record(0.5)
    [point] = metric_points(reader, duration.name)
    assert list(point.explicit_bounds) == list(duration.buckets or ())
    assert dict(point.attributes) == {attrs.GEN_AI_REQUEST_MODEL: "m"}
    [other] = metric_points(reader, "caret_otel_test_latency")
    assert list(other.explicit_bounds) != list(duration.buckets or ())
    handle.shutdown()


def test_genai_spans_leave_through_the_privacy_layer(provider_stub: ProviderStub) -> None:
    handle, spans, logs, reader = in_memory(provider_hosts={provider_stub.authority: "anthropic"})
    prompt, reply = "PROMPT-SECRET-via-configure", "REPLY-SECRET-via-configure"
    try:
        assert is_instrumented()
        response = httpx.post(
            f"{provider_stub.url}/v1/messages",
            json={
                "model": "stub-model",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": prompt}],
            },
            headers={"x-stub-reply": reply},
        )
        assert response.status_code == 200
        response_id = response.json()["id"]
        handle.events.credits_consumed("user-1", 1.0, "anthropic", "stub-model", "pro")
        metrics_json = (reader.get_metrics_data() or MetricsData([])).to_json()
    finally:
        handle.shutdown()
    exported = "\n".join(
        [s.to_json() for s in spans.get_finished_spans()]
        + [r.to_json() for r in logs.get_finished_logs()]
        + [metrics_json]
    )
    assert prompt not in exported
    assert reply not in exported
    assert "user-1" not in exported
    assert not is_instrumented()  # shutdown removed the httpx layer
    exported = spans.get_finished_spans()
    [genai] = [s for s in exported if s.name == "chat stub-model"]
    genai_attributes = dict(genai.attributes or {})
    # The provider's response id is pseudonymous in the registry: keyed, not in clear.
    assert genai_attributes[attrs.GEN_AI_RESPONSE_ID] == pseudonym(response_id)
    assert genai_attributes[attrs.GEN_AI_USAGE_INPUT_TOKENS] == 19
    for span in exported:
        assert not any("/v1/messages" in str(v) for v in (span.attributes or {}).values())
    [point] = metric_points(reader, metric_specs.GEN_AI_CLIENT_OPERATION_DURATION.name)
    assert list(point.explicit_bounds) == list(
        metric_specs.GEN_AI_CLIENT_OPERATION_DURATION.buckets or ()
    )


def test_sdk_disabled_exports_nothing(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "TRUE")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.url)
    handle = configure("off-service", set_global=False)
    assert not handle.enabled
    assert not is_instrumented()
    event_id = handle.events.signup("user-1", "free", "organic")
    assert len(event_id) == 32
    handle.tracer_provider.get_tracer("t").start_span("s").end()
    assert handle.force_flush()
    handle.shutdown()
    assert otlp_receiver.received == []


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
)
def test_grpc_protocol_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "grpc")
    with pytest.raises(SdkConfigurationError, match=f"{variable}='grpc'.*http/protobuf"):
        configure("svc", set_global=False, instrument_httpx=False)


def test_missing_pseudonym_key_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEYS_ENV)
    with pytest.raises(PseudonymKeyError, match="caret-otel privacy keygen"):
        configure("svc", set_global=False, instrument_httpx=False)


def test_bad_export_interval_is_named() -> None:
    with pytest.raises(SdkConfigurationError, match="metric_export_interval_s"):
        configure("svc", set_global=False, instrument_httpx=False, metric_export_interval_s=0)


GLOBAL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from caret_otel import sdk

    out = {}
    try:
        sdk.record_signup("user-1", "free", "organic")
    except RuntimeError as exc:
        out["before"] = str(exc)
    first = sdk.configure("global-service", instrument_httpx=False)
    out["same"] = sdk.configure("other-name") is first
    out["event_id"] = sdk.record_credits_purchased("user-1", 100, "pro")
    first.shutdown()
    try:
        sdk.configure("again")
    except sdk.SdkConfigurationError as exc:
        out["after_shutdown"] = str(exc)
    json.dump(out, sys.stdout)
    """
)


def test_global_configuration_is_idempotent_and_feeds_the_module_helpers(
    otlp_receiver: OtlpReceiver,
) -> None:
    # Global providers can be set once per process, so this runs in a fresh one.
    env = {
        **{k: v for k, v in os.environ.items() if k not in OTEL_ENV},
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url,
    }
    result = subprocess.run(
        [sys.executable, "-c", GLOBAL_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    out = json.loads(result.stdout)
    assert "configure() has not been called" in out["before"]
    assert out["same"] is True
    assert "cannot run again" in out["after_shutdown"]
    logs = otlp_receiver.requests("/v1/logs")
    [record] = [
        record
        for request in logs
        for rl in request.decoded().resource_logs
        for sl in rl.scope_logs
        for record in sl.log_records
    ]
    assert record.event_name == event_specs.CARET_CREDITS_PURCHASED.name
    assert values(record.attributes)[attrs.CARET_EVENT_ID] == out["event_id"]
    resource = values(logs[0].decoded().resource_logs[0].resource.attributes)
    assert resource[attrs.SERVICE_NAME] == "global-service"
