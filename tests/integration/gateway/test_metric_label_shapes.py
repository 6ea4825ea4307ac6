"""Client-event metric labels fail closed on values (issue 16): a label value that does
not fit its registry shape (a path, an e-mail, a key, a Hangul name, a prompt) becomes
``other`` on the exported metric, never omitted and never copied, and the drop is
counted. Sent over the gateway's HTTP route; the metrics are read where the gateway
exports them (the sink Collector's output)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fixtures.services import SinkCollector, wait_until
from integration.gateway.gateway_support import GatewayFactory, client_event
from prometheus_client.parser import text_string_to_metric_families

from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics
from caret_otel.semconv.policy import OTHER_VALUE

pytestmark = pytest.mark.integration

HOSTILE = (
    "/home/alice/models/llama-3-8b.Q4_K_M.gguf",
    "alice.kim@example.com",
    "sk-ant-api03-" + "A1b2C3d4" * 6,
    "김철수",
    "C:\\Users\\alice\\secret project\\model.bin",
    "please fix the bug in /Users/alice/work/main.py",
)


def _points(sink: SinkCollector, name: str) -> list[dict[str, Any]]:
    return [p for record in sink.metrics() if record.name == name for p in record.data_points()]


def _value(point: dict[str, Any]) -> float:
    if "asInt" in point:
        return float(point["asInt"])
    return float(point.get("asDouble", point.get("count", 0)))


def _shape_drops(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "caret_gateway_attributes"
        for sample in family.samples
        if sample.name == "caret_gateway_attributes_total"
        and sample.labels == {"action": "dropped", "reason": "shape"}
    )


def test_off_shape_label_values_become_other_on_exported_metrics(
    gateway_factory: GatewayFactory, sink_collector: SinkCollector
) -> None:
    run = uuid.uuid4().hex[:10]
    provider, model = f"prov{run}", f"model-{run}"
    gw = gateway_factory()
    before = _shape_drops(gw.metrics_text())
    # A: a registry-shaped provider names the series; every model is hostile.
    hostile_models = [
        client_event(
            "task.created", user=f"a-{run}", api_provider=provider, model=value, mode="act"
        )
        for value in HOSTILE
    ]
    # B: a registry-shaped model names the series; provider, mode and editor are hostile.
    hostile_others = []
    for value in HOSTILE:
        event = client_event(
            "task.created", user=f"b-{run}", api_provider=value, model=model, mode=value
        )
        event["client_info"] = {**event["client_info"], "platform": value}
        hostile_others.append(event)
    response = gw.post_events(hostile_models + hostile_others)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 2 * len(HOSTILE), body
    dropped = {(d["key"], d["reason"]) for d in body["dropped"]}
    assert (attrs.GEN_AI_REQUEST_MODEL, "shape") in dropped
    assert (attrs.GEN_AI_PROVIDER_NAME, "shape") in dropped
    assert (attrs.CARET_TASK_MODE, "shape") in dropped

    starts = metrics.CARET_TASK_STARTS.name

    def series() -> tuple[dict[str, Any], dict[str, Any]] | None:
        points = _points(sink_collector, starts)
        a = [p for p in points if p["attributes"].get(attrs.GEN_AI_PROVIDER_NAME) == provider]
        b = [p for p in points if p["attributes"].get(attrs.GEN_AI_REQUEST_MODEL) == model]
        if not a or not b:
            return None
        return a[-1], b[-1]

    a, b = wait_until(series, timeout=30, what=f"{starts} of this test in the sink")
    # Every label of the metric is there; what did not fit is `other`, counted whole.
    assert a["attributes"] == {
        attrs.GEN_AI_PROVIDER_NAME: provider,
        attrs.GEN_AI_REQUEST_MODEL: OTHER_VALUE,
        attrs.CARET_TASK_MODE: "act",
        attrs.CARET_CLIENT_PLATFORM: "vscode",
    }
    assert _value(a) == len(HOSTILE)
    assert b["attributes"] == {
        attrs.GEN_AI_PROVIDER_NAME: OTHER_VALUE,
        attrs.GEN_AI_REQUEST_MODEL: model,
        attrs.CARET_TASK_MODE: OTHER_VALUE,
        attrs.CARET_CLIENT_PLATFORM: OTHER_VALUE,
    }
    assert _value(b) == len(HOSTILE)
    # No hostile value reached any exported metric, in any form.
    exported = sink_collector.metrics_path.read_text()
    for value in HOSTILE:
        for piece in (value, "alice", "김철수", "sk-ant-api03"):
            assert piece not in exported, piece
    # The drops are counted on the gateway's own /metrics (reason `shape`).
    assert _shape_drops(gw.metrics_text()) - before >= 3 * len(HOSTILE)
