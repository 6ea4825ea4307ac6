"""A service configured with ``caret_otel.sdk.configure()`` calls the provider stub; its
GenAI telemetry travels over OTLP/HTTP through our Collector and lands in Prometheus as
``gen_ai_client_operation_duration_seconds_*`` and ``gen_ai_client_token_usage_*``
series (and the GenAI span in the Tempo stand-in), with the registry's buckets.

Each run uses its own service name, which becomes the Prometheus ``job`` label, so data
of earlier runs cannot match."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fixtures.services import OtlpRecord, RunningCollector, SinkCollector

from caret_otel.devtools.provider_stub import RESPONSE_MODEL_SUFFIX, ProviderStub
from caret_otel.processors.privacy.pseudonyms import KEY_FILE_ENV, KEYS_ENV, generate_key_entry
from caret_otel.sdk import configure
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics as metric_specs
from caret_otel.stack import PrometheusServer

pytestmark = pytest.mark.integration

MODEL = "stub-model-it"
STUB_HOST = "localhost"
BODY = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
INPUT_TOKENS = 11 + 5 + 3  # the stub's default usage: input + cache read + cache write
OUTPUT_TOKENS = 7
DURATION = "gen_ai_client_operation_duration_seconds"
TOKENS = "gen_ai_client_token_usage"


@dataclass(frozen=True)
class Run:
    service: str
    stub: ProviderStub


@pytest.fixture(scope="module")
def genai_run(collector: RunningCollector, prometheus: PrometheusServer) -> Iterator[Run]:
    """Two successful calls (plain and streamed) and one 429, exported and flushed."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.setenv(KEYS_ENV, generate_key_entry("it"))
    service = f"caret-sdk-genai-it-{uuid.uuid4().hex[:8]}"
    with ProviderStub() as stub:
        # Reached by name, as real providers are: the Collector's privacy pass masks IP
        # addresses in attribute values.
        authority = f"{STUB_HOST}:{stub.port}"
        handle = configure(
            service,
            set_global=False,
            endpoint=collector.http_url,
            provider_hosts={authority: "anthropic"},
        )
        try:
            with httpx.Client() as client:
                url = f"http://{authority}/v1/messages"
                assert client.post(url, json=BODY).status_code == 200
                with client.stream("POST", url, json={**BODY, "stream": True}) as response:
                    response.read()
                rejected = client.post(url, json=BODY, headers={"x-stub-scenario": "error-429"})
                assert rejected.status_code == 429
            assert handle.force_flush()
        finally:
            handle.shutdown()
            monkeypatch.undo()
        yield Run(service, stub)


def _value(series: dict[str, Any]) -> float:
    return float(series["value"][1])


def test_operation_duration_lands_in_prometheus_with_upstream_labels_and_buckets(
    genai_run: Run, prometheus: PrometheusServer
) -> None:
    job = f'job="{genai_run.service}"'
    counts = prometheus.wait_for(
        f"{DURATION}_count{{{job}}}", until=lambda r: sum(_value(s) for s in r) >= 3
    )
    by_error = {s["metric"].get("error_type", ""): s for s in counts}
    assert set(by_error) == {"", "429"}
    assert _value(by_error[""]) == 2
    assert _value(by_error["429"]) == 1
    labels = by_error[""]["metric"]
    assert labels["gen_ai_operation_name"] == "chat"
    assert labels["gen_ai_provider_name"] == "anthropic"
    assert labels["gen_ai_request_model"] == MODEL
    assert labels["gen_ai_response_model"] == MODEL + RESPONSE_MODEL_SUFFIX
    assert labels["server_address"] == STUB_HOST
    assert labels["server_port"] == str(genai_run.stub.port)
    assert "gen_ai_response_model" not in by_error["429"]["metric"]

    buckets = prometheus.query(f'{DURATION}_bucket{{{job}, error_type=""}}')
    bounds = sorted(float(s["metric"]["le"]) for s in buckets)
    expected = [*(metric_specs.GEN_AI_CLIENT_OPERATION_DURATION.buckets or ()), float("inf")]
    assert bounds == expected
    assert prometheus.query(f"{DURATION}_sum{{{job}}}")


def test_token_usage_lands_in_prometheus_by_token_type(
    genai_run: Run, prometheus: PrometheusServer
) -> None:
    job = f'job="{genai_run.service}"'
    sums = prometheus.wait_for(f"{TOKENS}_sum{{{job}}}", until=lambda r: len(r) == 2)
    by_type = {s["metric"]["gen_ai_token_type"]: _value(s) for s in sums}
    assert by_type == {"input": 2 * INPUT_TOKENS, "output": 2 * OUTPUT_TOKENS}
    counts = prometheus.query(f"{TOKENS}_count{{{job}}}")
    assert {_value(s) for s in counts} == {2.0}
    names = {
        s["metric"]["__name__"] for s in prometheus.query(f'{{__name__=~"{TOKENS}_.*", {job}}}')
    }
    assert names == {f"{TOKENS}_bucket", f"{TOKENS}_sum", f"{TOKENS}_count"}


def test_genai_span_reaches_the_trace_store(genai_run: Run, sink_collector: SinkCollector) -> None:
    def is_ours(record: OtlpRecord) -> bool:
        return record.resource.get(attrs.SERVICE_NAME) == genai_run.service and record.name == (
            f"chat {MODEL}"
        )

    span = sink_collector.wait_for_span(is_ours)
    assert span.data["kind"] in (3, "SPAN_KIND_CLIENT")
    assert span.attributes[attrs.GEN_AI_USAGE_INPUT_TOKENS] == INPUT_TOKENS
