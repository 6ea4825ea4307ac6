"""Caret's own OpenTelemetry exporter shape (log records, body = event name) rebuilt as
client events; other records stay in the request."""

from __future__ import annotations

from datetime import UTC, datetime

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from caret_otel.otlp.build import event_record, logs_request
from caret_otel.receivers.gateway.client_otlp_logs import extract_client_events
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events

NOW_NS = 1_764_000_000_123_000_000


def caret_request(*records: tuple[str, dict[str, object]]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    name = resource.resource.attributes.add()
    name.key, name.value.string_value = attrs.SERVICE_NAME, "caret"
    scope = resource.scope_logs.add()
    for body, attributes in records:
        record = scope.log_records.add()
        record.time_unix_nano = NOW_NS
        record.body.string_value = body
        for key, value in attributes.items():
            kv = record.attributes.add()
            kv.key = key
            if isinstance(value, bool):
                kv.value.bool_value = value
            elif isinstance(value, int):
                kv.value.int_value = value
            else:
                kv.value.string_value = str(value)
    return request


def test_records_become_client_events_without_email_or_name() -> None:
    identity = {"distinct_id": "machine-1", "user_id": "account-1",
                "user_email": "jane@example.com", "user_name": "Jane Doe"}  # fmt: skip
    request = caret_request(
        ("user_identified", identity),
        (
            "task.feedback",
            {
                **identity,
                "ulid": "01JD",
                "feedbackType": "thumbs_up",
                "extension_version": "0.4.5",
                "platform": "Cursor",
                "openAiCompatibleDomain": "undefined",
            },
        ),
        ("user.extension_activated", {"distinct_id": "machine-2"}),
        ("some service log line", {"x": 1}),
    )
    events = extract_client_events(request)
    assert [e["event_type"] for e in events] == ["task.feedback", "user.extension_activated"]
    feedback, activated = events
    assert feedback["user_id_hash"] == "account-1"
    assert feedback["properties"]["device_id"] == "machine-1"
    assert feedback["properties"]["feedbackType"] == "thumbs_up"
    assert "openAiCompatibleDomain" not in feedback["properties"]  # "undefined"
    assert feedback["client_info"] == {"version": "0.4.5", "platform": "Cursor"}
    assert feedback["timestamp"] == "2025-11-24T16:00:00.123Z"
    assert "jane@example.com" not in repr(events)
    assert "Jane Doe" not in repr(events)
    assert activated["user_id_hash"] == activated["session_id"] == "machine-2"
    assert "device_id" not in activated["properties"]
    # Only the record that is no client event stays in the request.
    (kept,) = request.resource_logs[0].scope_logs[0].log_records
    assert kept.body.string_value == "some service log line"


def test_other_services_and_named_events_are_left_alone() -> None:
    at = datetime(2025, 11, 24, tzinfo=UTC)
    service = logs_request([event_record(events.CARET_TASK_CREATED.name, at, {})])
    service.resource_logs[0].resource.attributes.add(
        key=attrs.SERVICE_NAME
    ).value.string_value = "caret-api"
    before = service.SerializeToString()
    assert extract_client_events(service) == []
    assert service.SerializeToString() == before
