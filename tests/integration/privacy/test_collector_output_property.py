"""Property: whatever a sender puts into OTLP sent straight to our Collector, nothing that
is not a registry-shaped value comes out of its privacy pass.

Each example plants hostile strings (secrets, also zero-width, full-width and
percent-encoded ones; Hangul names; prompts; control characters) into every attribute of
every place of logs, spans and metrics - resource, scope, span, span event, link, log
record, log-body map, data point, exemplar - and into the OTLP string fields around them
(names, status, severity, event name, body, trace state, schema URLs, scope version, metric
unit and description). The real Collector (``build/otelcol-caret``) runs the generated pass
and writes what it lets out to files, which are scanned: no planted needle anywhere, no
control or format character, only allowed keys, every value of its registry shape or type
(``other`` for a metric label), and well-formed values sent beside them still come out.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fixtures.services import Signal, otlp_attributes, otlp_value, wait_until
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from integration.pipeline.pipeline_support import any_value, key_values
from integration.privacy.collector_pass import SIGNALS, PrivacyPassCollector
from integration.privacy.hostile import (
    GOOD,
    UNKNOWN_KEY,
    Canary,
    Planter,
    has_control_or_format,
    leaked,
    needles,
    off_shape,
    strings,
)

from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics
from caret_otel.semconv.policy import load_policy

pytestmark = pytest.mark.integration

METRIC_SAFE = sorted(load_policy().metric_attributes)
SEMVER = load_policy().shapes["semver"]
OTEL_SCHEMA = "https://opentelemetry.io/schemas/1.38.0"
GOOD_LABELS = {attrs.GEN_AI_PROVIDER_NAME: "anthropic", attrs.GEN_AI_OPERATION_NAME: "chat"}


def _now() -> int:
    return time.time_ns()


def _span(p: Planter, now: int) -> dict[str, Any]:
    return {
        "traceId": uuid.uuid4().hex,
        "spanId": uuid.uuid4().hex[:16],
        "traceState": f"vendor={p.any()}",
        "name": p.text(),
        "kind": 3,
        "startTimeUnixNano": str(now - 10**9),
        "endTimeUnixNano": str(now),
        "attributes": key_values(p.attributes()),
        "events": [
            {"timeUnixNano": str(now), "name": p.text(), "attributes": key_values(p.attributes())}
        ],
        "links": [
            {
                "traceId": uuid.uuid4().hex,
                "spanId": uuid.uuid4().hex[:16],
                "traceState": p.any(),
                "attributes": key_values(p.attributes()),
            }
        ],
        "status": {"code": 2, "message": p.text()},
    }


def _good_span(now: int) -> dict[str, Any]:
    return {
        "traceId": uuid.uuid4().hex,
        "spanId": uuid.uuid4().hex[:16],
        "name": "chat anthropic",
        "startTimeUnixNano": str(now - 10**9),
        "endTimeUnixNano": str(now),
        "attributes": key_values(GOOD),
    }


def _scope(p: Planter) -> dict[str, Any]:
    return {"name": p.text(), "version": p.any(), "attributes": key_values(p.attributes())}


def _resource(p: Planter) -> dict[str, Any]:
    return {"attributes": key_values(p.attributes())}


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[dict[Signal, dict[str, Any]], list[Canary]]:
    p = Planter(draw)
    now = _now()
    traces = {
        "resourceSpans": [
            {
                "resource": _resource(p),
                "schemaUrl": p.any(),
                "scopeSpans": [
                    {
                        "scope": _scope(p),
                        "schemaUrl": p.any(),
                        "spans": [_span(p, now), _good_span(now)],
                    }
                ],
            }
        ]
    }
    string_body = {
        "timeUnixNano": str(now),
        "eventName": p.text(),
        "severityText": p.text(),
        "body": any_value(p.text()),
        "attributes": key_values(p.attributes()),
    }
    map_body = {
        "timeUnixNano": str(now),
        "eventName": p.text(),
        "body": any_value(
            {
                **p.attributes(),
                "nested": {attrs.CARET_ERROR_MESSAGE: p.text(), UNKNOWN_KEY: p.any()},
            }
        ),
        "attributes": key_values(p.attributes()),
    }
    good_log = {
        "timeUnixNano": str(now),
        "eventName": "caret.test.good",
        "attributes": key_values(GOOD),
    }
    logs = {
        "resourceLogs": [
            {
                "resource": _resource(p),
                "schemaUrl": OTEL_SCHEMA,
                "scopeLogs": [
                    {"scope": _scope(p), "logRecords": [string_body, map_body, good_log]}
                ],
            }
        ]
    }
    labels = {key: p.any() for key in METRIC_SAFE} | {UNKNOWN_KEY: p.any()}
    point = {
        "asInt": "3",
        "startTimeUnixNano": str(now - 10**9),
        "timeUnixNano": str(now),
        "attributes": key_values(labels),
        "exemplars": [
            {
                "asInt": "1",
                "timeUnixNano": str(now),
                "filteredAttributes": key_values(p.attributes()),
            }
        ],
    }
    good_point = {"asInt": "1", "timeUnixNano": str(now), "attributes": key_values(GOOD_LABELS)}
    starts = {
        "name": metrics.CARET_TASK_STARTS.name,
        "unit": p.any(),
        "description": p.any(),
        "metadata": key_values({UNKNOWN_KEY: p.any()}),
        "sum": {
            "aggregationTemporality": 2,
            "isMonotonic": True,
            "dataPoints": [point, good_point],
        },
    }
    unknown = {
        "name": f"custom.{p.any()}",
        "sum": {
            "aggregationTemporality": 2,
            "dataPoints": [{"asInt": "1", "timeUnixNano": str(now)}],
        },
    }
    metric_body = {
        "resourceMetrics": [
            {
                "resource": _resource(p),
                "scopeMetrics": [{"scope": _scope(p), "metrics": [starts, unknown]}],
            }
        ]
    }
    return {"traces": traces, "logs": logs, "metrics": metric_body}, p.planted


# --- judging what came out ------------------------------------------------------------------


def _check_attributes(where: str, attributes: Any, *, label: bool = False) -> None:
    decoded = attributes if isinstance(attributes, dict) else otlp_attributes(attributes)
    for key, value in decoded.items():
        problem = off_shape(key, value, label=label)
        assert problem is None, f"{where}: {key}={value!r}: {problem}"


def _walk(signal: Signal, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Check every place of one exported request; return its spans/records/points."""
    outer, middle, inner = {
        "traces": ("resourceSpans", "scopeSpans", "spans"),
        "logs": ("resourceLogs", "scopeLogs", "logRecords"),
        "metrics": ("resourceMetrics", "scopeMetrics", "metrics"),
    }[signal]
    items = []
    for block in request.get(outer, []):
        _check_attributes(
            "resource", block.get("resource", {}).get("attributes"), label=signal == "metrics"
        )
        assert block.get("schemaUrl", "") in ("", OTEL_SCHEMA), block.get("schemaUrl")
        for scope_block in block.get(middle, []):
            scope = scope_block.get("scope", {})
            _check_attributes("scope", scope.get("attributes"), label=signal == "metrics")
            version = scope.get("version", "")
            assert version == "" or SEMVER.matches(version), version
            assert scope_block.get("schemaUrl", "") in ("", OTEL_SCHEMA)
            for item in scope_block.get(inner, []):
                items.append(item)
                if signal == "traces":
                    _check_attributes("span", item.get("attributes"))
                    assert not item.get("traceState"), item.get("traceState")
                    assert not item.get("links"), "links are dropped"
                    for event in item.get("events", []):
                        _check_attributes("span event", event.get("attributes"))
                elif signal == "logs":
                    _check_attributes("log", item.get("attributes"))
                    body = otlp_value(item.get("body", {}))
                    if isinstance(body, dict):
                        _check_attributes("log body", body)
                else:
                    assert item["name"] == metrics.CARET_TASK_STARTS.name, item["name"]
                    assert item["unit"] == metrics.CARET_TASK_STARTS.unit
                    assert "metadata" not in item
                    for point in item["sum"]["dataPoints"]:
                        _check_attributes("data point", point.get("attributes"), label=True)
                        for exemplar in point.get("exemplars", []):
                            _check_attributes("exemplar", exemplar.get("filteredAttributes"))
    return items


def _good_came_out(signal: Signal, items: list[dict[str, Any]]) -> None:
    if signal == "metrics":
        points = [
            otlp_attributes(p.get("attributes")) for m in items for p in m["sum"]["dataPoints"]
        ]
        assert GOOD_LABELS in points, points
        return
    decoded = [otlp_attributes(item.get("attributes")) for item in items]
    assert GOOD in decoded, decoded


def _new_lines(privacy_pass: PrivacyPassCollector, before: dict[Signal, int]) -> Callable[[], Any]:
    def check() -> dict[Signal, list[dict[str, Any]]] | None:
        out = {s: privacy_pass.requests(s)[before[s] :] for s in SIGNALS}
        return out if all(out.values()) else None

    return check


@given(example=hostile_requests())
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
def test_nothing_off_shape_leaves_the_collector(
    privacy_pass: PrivacyPassCollector, example: tuple[dict[Signal, dict[str, Any]], list[Canary]]
) -> None:
    requests, planted = example
    before: dict[Signal, int] = {s: len(privacy_pass.requests(s)) for s in SIGNALS}
    for signal in SIGNALS:
        privacy_pass.post(signal, requests[signal])
    out = wait_until(_new_lines(privacy_pass, before), timeout=20, what="the pass's output")
    text = json.dumps(out, ensure_ascii=False)
    needle = leaked(needles(planted), text)
    if needle is not None:
        canary = next(c for c in planted if needle in c.needles)
        at = text.casefold().find(needle.casefold())
        context = text[max(0, at - 120) : at + 60] if at >= 0 else "(after normalisation)"
        pytest.fail(f"planted {canary.text!r} came out: ...{context}...")
    bad = [s for s in strings(out) if has_control_or_format(s)]
    assert not bad, bad
    for signal in SIGNALS:
        items = [item for request in out[signal] for item in _walk(signal, request)]
        _good_came_out(signal, items)
