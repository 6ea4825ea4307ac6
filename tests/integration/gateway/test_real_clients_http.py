"""Real-client events over HTTP, through the real Collector into Prometheus and the sink
where Tempo/Loki would be: per-event rejections only for unknown types; token and cost
metrics equal the client's own totals on both shapes; Caret's own OpenTelemetry
exporter on /v1/logs maps to the same events, and e-mail and name never leave."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import pytest
from fixtures.services import RunningCollector, SinkCollector
from integration.gateway.gateway_support import SERVICE_AUTH, GatewayFactory
from real_client_corpus import FUTURE_EVENT_TYPES, batches, build

from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events
from caret_otel.stack import PrometheusServer

pytestmark = pytest.mark.integration


def test_the_corpus_is_accepted_and_counted_exactly_once(
    gateway_factory: GatewayFactory, collector: RunningCollector, prometheus: PrometheusServer
) -> None:
    run = uuid.uuid4().hex[:8]
    corpus = build(datetime.now(UTC), tag=run)
    gw = gateway_factory(otlp_endpoint=collector.http_url)
    accepted = 0
    rejected: list[str] = []
    for batch in batches(corpus):
        response = gw.post_events(batch)
        assert response.status_code == 202, response.text
        answer = response.json()
        accepted += answer["accepted"]
        for item in answer["rejected"]:
            assert item["field"] == "event_type", item
            rejected.append(batch[item["index"]]["event_type"])
    assert accepted == len(corpus.events) - corpus.future_events
    assert set(rejected) == set(FUTURE_EVENT_TYPES)

    selector = f'gen_ai_request_model=~".*-{run}"'
    expected = {
        "input": corpus.totals.input_tokens,
        "output": corpus.totals.output_tokens,
        "cache_read": corpus.totals.cache_read_tokens,
        "cache_write": corpus.totals.cache_write_tokens,
    }
    tokens = prometheus.wait_for(
        f"sum by (caret_token_type) (caret_tokens_total{{{selector}}})",
        until=lambda r: (
            {s["metric"]["caret_token_type"]: float(s["value"][1]) for s in r} == expected
        ),
    )
    assert len(tokens) == 4
    cost = prometheus.wait_for(
        f"sum(caret_api_cost_total{{{selector}}})",
        until=lambda r: bool(r) and math.isclose(float(r[0]["value"][1]), corpus.totals.cost),
    )
    assert cost
    errors = prometheus.wait_for(
        f'sum(caret_api_errors_total{{{selector},http_response_status_code="429"}})',
        until=lambda r: bool(r) and float(r[0]["value"][1]) == corpus.provider_errors // 2,
    )
    assert errors  # Cline 2026's task.provider_api_error carries provider and model


def _record(body: str, attributes: dict[str, object], at_ns: int) -> dict[str, object]:
    def value(v: object) -> dict[str, object]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        return {"stringValue": str(v)}

    return {
        "timeUnixNano": str(at_ns),
        "severityText": "INFO",
        "body": {"stringValue": body},
        "attributes": [{"key": k, "value": value(v)} for k, v in attributes.items()],
    }


def test_carets_own_otel_exporter_maps_to_the_same_events(
    gateway_factory: GatewayFactory, sink_collector: SinkCollector
) -> None:
    run = uuid.uuid4().hex[:8]
    machine, account = f"machine-{run}", f"account-{run}"
    now_ns = int(datetime.now(UTC).timestamp()) * 10**9
    metadata = {"extension_version": "0.4.5", "platform": "Cursor", "platform_version": "1.95.3",
                "os_type": "Linux", "os_version": "#1 SMP Debian", "is_dev": False}  # fmt: skip
    identity = {"distinct_id": machine, "user_id": account, "user_email": "jane@example.com",
                "user_name": "Jane Doe"}  # fmt: skip
    turn = {"ulid": f"01JD{run}", "provider": "anthropic", "model": f"claude-{run}",
            "source": "assistant", "mode": "act", "tokensIn": 100, "tokensOut": 20,
            "cacheReadTokens": 0, "cacheWriteTokens": 0, "totalCost": 0.01,
            "isNativeToolCall": False, "timestamp": "2025-11-30T10:00:00.000Z"}  # fmt: skip
    document = {
        "resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "caret"}}]},
            "scopeLogs": [{"logRecords": [
                _record("user_identified", identity, now_ns - 3 * 10**9),
                _record("task.conversation_turn", {**identity, **turn, **metadata}, now_ns - 2 * 10**9),
                _record("task.feedback", {**identity, "ulid": f"01JD{run}", "feedbackType": "thumbs_up",
                                          "viewport.width": 900, **metadata}, now_ns - 10**9),
            ]}],
        }],
    }  # fmt: skip
    gw = gateway_factory()
    response = gw.client.post("/v1/logs", json=document, headers=SERVICE_AUTH)
    assert response.status_code == 200, response.text
    pseudonymizer = gw.gateway.pseudonymizer
    record = sink_collector.wait_for_log_record(
        lambda r: (
            r.name == events.CARET_TASK_CONVERSATION_TURN.name
            and r.attributes.get(attrs.GEN_AI_REQUEST_MODEL) == f"claude-{run}"
        )
    )
    assert record.attributes[attrs.ENDUSER_PSEUDO_ID] == pseudonymizer.pseudonymize(account)
    assert record.attributes[attrs.CARET_DEVICE_ID] == pseudonymizer.pseudonymize(machine)
    assert record.attributes[attrs.GEN_AI_USAGE_INPUT_TOKENS] == 100
    assert record.attributes[attrs.CARET_CLIENT_PLATFORM] == "cursor"
    sink_collector.wait_for_log_record(
        lambda r: (
            r.name == events.CARET_TASK_FEEDBACK.name
            and r.attributes.get(attrs.ENDUSER_PSEUDO_ID) == pseudonymizer.pseudonymize(account)
        )
    )
    stored = sink_collector.path("logs").read_text()
    for secret in ("jane@example.com", "Jane Doe", machine, account, "#1 SMP Debian"):
        assert secret not in stored
