"""Client events through the gateway's real ingestion (scrubber, time window, log
records, task spans): control characters are refused per event naming the field, and
whatever hostile text sits in a property or in ``client_info``, the exported OTLP log
records and spans carry only registry-shaped values."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metric_capture import MetricCapture
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from unit.privacy.planted import Planted
from unit.privacy.test_value_shapes import CLIENT_PROPERTIES, Values, check_value, hostile

from caret_otel.processors.privacy.client_events import ClientEventScrubber
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, parse_keys
from caret_otel.receivers.gateway import client_metrics
from caret_otel.receivers.gateway.client_batch import CONTROL_CHARACTER
from caret_otel.receivers.gateway.client_ingest import ClientEventIngestor, IngestResult
from caret_otel.receivers.gateway.config import IngestLimits, OtlpTarget
from caret_otel.receivers.gateway.task_spans import TaskSpans
from caret_otel.semconv.policy import load_policy

KEY = "1:" + base64.b64encode(bytes(range(32))).decode()
POLICY = load_policy()


def _ingestor() -> ClientEventIngestor:
    engine = PrivacyEngine(POLICY, Pseudonymizer(parse_keys(KEY, source="test")))
    _, recorder = client_metrics.pipeline(
        OtlpTarget(endpoints={}), POLICY, exporter=MetricCapture()
    )
    return ClientEventIngestor(
        ClientEventScrubber(engine, InMemoryConsentStore()),
        recorder,
        TaskSpans(max_open_tasks=100),
        IngestLimits(),
        raw_retention_days=30,
    )


INGESTOR = _ingestor()


async def _no_consent(user: str, enabled: bool) -> None:
    return None


def _event(**properties: object) -> dict[str, Any]:
    return {
        "event_type": "task.created",
        "user_id_hash": "hashed_user_id",
        "session_id": "session_uuid",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "properties": {"task_id": "01JH0000000000000000000000", **properties},
        "client_info": {"version": "1.0.0", "platform": "vscode", "language": "ko"},
    }


def _ingest(events: list[dict[str, Any]]) -> IngestResult:
    return asyncio.run(INGESTOR.ingest(events, None, _no_consent))


def test_control_characters_are_rejected_per_event_naming_the_field() -> None:
    events = [
        _event(model="claude-sonnet-4"),
        _event(errorMessage="boom\x00"),
        {**_event(), "client_info": {"version": "1.0.0\x1b", "platform": "vscode"}},
        _event(errorMessage="line one\nline two\tindented"),  # tab and newline are fine
    ]
    result = _ingest(events)
    assert result.accepted == 2
    assert [(r.index, r.field, r.code) for r in result.rejected] == [
        (1, "properties.errorMessage", CONTROL_CHARACTER),
        (2, "client_info.version", CONTROL_CHARACTER),
    ]
    for rejection in result.rejected:
        assert "\x00" not in rejection.reason
        assert "boom" not in rejection.reason


def _exported_attributes(result: IngestResult) -> list[dict[str, object]]:
    out = []
    logs = ExportLogsServiceRequest.FromString(INGESTOR.logs_request(result))
    traces = ExportTraceServiceRequest.FromString(INGESTOR.traces_request(result))
    holders: list[Any] = [
        r for rl in logs.resource_logs for sl in rl.scope_logs for r in sl.log_records
    ]
    holders += [s for rs in traces.resource_spans for ss in rs.scope_spans for s in ss.spans]
    for holder in holders:
        out.append({kv.key: _python(kv.value) for kv in holder.attributes})
    return out


def _python(value: Any) -> object:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_python(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@given(drawn=st.lists(hostile(), min_size=1, max_size=6))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_properties_leave_the_gateway_shaped(
    drawn: list[tuple[str, Planted | None]],
) -> None:
    values = Values(drawn)
    properties = {key: values() for key, _ in CLIENT_PROPERTIES}
    event = _event(**properties)
    event["client_info"] = {field: values() for field in POLICY.client_info}
    result = _ingest([event, _event(model=values(), provider=values()), _event()])
    exported = _exported_attributes(result)
    assert exported, "the plain event must leave: the check would prove nothing"
    for attributes in exported:
        for key, value in attributes.items():
            rule = POLICY.rule(key)
            assert rule is not None, key
            assert rule.privacy != "forbidden", key
            check_value(key, rule, value, metric=False)
    text = json.dumps(exported, ensure_ascii=False)
    for secret in values.secrets:
        if any(n.casefold() in p for n in secret.needles for p in values.plain):
            continue
        assert secret.found_in(text) is None, (secret.kind, text[:1000])
