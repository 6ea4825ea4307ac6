"""Every answer of the gateway's HTTP API, through real HTTP (uvicorn on a loopback port),
with a real Collector behind it."""

from __future__ import annotations

import gzip
import socket
import time
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from fixtures.services import SinkCollector, wait_until
from google.rpc import status_pb2
from integration.gateway.gateway_support import (
    ADMIN_AUTH,
    AUTH,
    SERVICE_AUTH,
    GatewayFactory,
    RunningGateway,
    client_event,
    iso,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from caret_otel.semconv import attributes as attrs
from caret_otel.stack.ports import free_port

pytestmark = pytest.mark.integration

PROTOBUF = {"Content-Type": "application/x-protobuf", **SERVICE_AUTH}
# With nothing listening, shutdown gives up draining after the export timeout.
SHORT_TIMEOUT = {"OTEL_EXPORTER_OTLP_TIMEOUT": "500"}


def unreachable_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


# --- 202 and per-event rejection -------------------------------------------------------


def test_single_event_is_accepted(gateway: RunningGateway) -> None:
    response = gateway.post_events(client_event(prompt="never stored", unknown_key=1))
    assert response.status_code == 202
    assert response.json() == {
        "accepted": 1,
        "rejected": [],
        "opted_out": 0,
        "dropped_attributes": 2,
        "dropped": [
            {"key": attrs.CARET_PROMPT_TEXT, "reason": "forbidden", "count": 1},
            {"key": "properties.unknown_key", "reason": "unknown", "count": 1},
        ],
    }


def test_the_answer_says_which_key_was_dropped_and_why(gateway: RunningGateway) -> None:
    """A token count sent as a string is not silently lost: the key and the reason come
    back (the value never does)."""
    response = gateway.post_events(client_event("task.conversation_turn", tokensIn="120"))
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert {"key": attrs.GEN_AI_USAGE_INPUT_TOKENS, "reason": "type", "count": 1} in body["dropped"]
    assert "120" not in response.text


def test_batch_partial_rejection(gateway: RunningGateway) -> None:
    now = datetime.now(UTC)
    missing_user = client_event()
    del missing_user["user_id_hash"]
    bad_type = client_event()
    bad_type["session_id"] = 42
    events = [
        client_event(),
        missing_user,
        client_event("task.unheard_of"),
        "not an object",
        {**client_event(), "timestamp": iso(now + timedelta(minutes=10))},
        {**client_event(), "timestamp": iso(now - timedelta(days=31))},
        client_event("task.tokens", tokens_in=-5),
        bad_type,
        client_event("ui.model_selected"),
    ]
    response = gateway.post_events({"events": events})
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    rejected = {r["index"]: r for r in body["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 4, 5, 6, 7]
    assert rejected[1]["field"] == "user_id_hash"
    assert rejected[2]["field"] == "event_type"
    assert rejected[3]["field"] == "event"
    assert rejected[4]["field"] == "timestamp"
    assert "future" in rejected[4]["reason"]
    assert rejected[5]["field"] == "timestamp"
    assert "retention" in rejected[5]["reason"]
    assert "negative" in rejected[6]["reason"]
    assert rejected[7]["field"] == "session_id"
    assert "string" in rejected[7]["reason"]
    metrics = gateway.metrics_text()
    assert 'caret_gateway_events_rejected_total{reason="timestamp_in_future"} 1.0' in metrics
    assert 'caret_gateway_events_rejected_total{reason="invalid_event_type"} 1.0' in metrics


def test_json_array_and_gzip(gateway: RunningGateway) -> None:
    response = gateway.post_events(
        [client_event(), client_event("task.completed", outcome="success")], gzipped=True
    )
    assert response.status_code == 202
    assert response.json()["accepted"] == 2


def test_long_values_are_cut_and_counted(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(
        env={"CARET_OTEL_MAX_VALUE_LENGTH": "16", "CARET_OTEL_MAX_ATTRIBUTES_PER_EVENT": "8"}
    )
    response = gw.post_events(
        [client_event(model="m" * 100), client_event(**{f"p{i}": i for i in range(8)})]
    )
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"][0]["field"] == "properties"
    # A model id longer than the limit is not cut into another plausible id: it is off
    # its value shape and dropped (docs/privacy.md).
    assert body["dropped_attributes"] == 1
    assert 'caret_gateway_attributes_total{action="dropped",reason="shape"}' in gw.metrics_text()
    cut = gw.post_events(client_event("task.provider_api_error", errorMessage="e" * 100))
    assert cut.status_code == 202
    assert 'caret_gateway_attributes_total{action="truncated",reason="length"}' in gw.metrics_text()


def test_country_comes_only_from_the_configured_header(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"CARET_OTEL_COUNTRY_HEADER": "X-Edge-Country"})
    ok = gw.post_events(client_event(), headers={"X-Edge-Country": "kr", "CF-IPCountry": "US"})
    assert ok.json()["dropped_attributes"] == 0
    # Not an ISO code: dropped (and counted), the event still goes through.
    invalid = gw.post_events(client_event(), headers={"X-Edge-Country": "T1"})
    assert invalid.json() | {"rejected": [], "dropped": []} == {
        "accepted": 1,
        "rejected": [],
        "opted_out": 0,
        "dropped_attributes": 1,
        "dropped": [],
    }


# --- 4xx -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "headers", "field"),
    [
        (b"{not json", {}, "body"),
        (b"\x1f\x8b\x08\x00broken", {"Content-Encoding": "gzip"}, "body"),
        (b"", {}, "body"),
    ],
)
def test_400_names_the_problem(
    gateway: RunningGateway, content: bytes, headers: dict[str, str], field: str
) -> None:
    response = gateway.client.post(
        "/telemetry/events",
        content=content,
        headers={"Content-Type": "application/json", **AUTH, **headers},
    )
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert response.json()["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-known-token-123456"},
        {"Authorization": "Basic dXNlcjpwdw=="},
    ],
)
def test_401_without_a_valid_token(gateway: RunningGateway, headers: dict[str, str]) -> None:
    response = gateway.client.post("/telemetry/events", json=client_event(), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["field"] == "Authorization"


def test_403_admin_token_cannot_ingest(gateway: RunningGateway) -> None:
    response = gateway.client.post("/telemetry/events", json=client_event(), headers=ADMIN_AUTH)
    assert response.status_code == 403


def test_413_body_and_event_count(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(
        env={"CARET_OTEL_MAX_BODY_BYTES": "2000", "CARET_OTEL_MAX_EVENTS_PER_REQUEST": "3"}
    )
    too_big = gw.post_events([client_event(padding_key="x" * 3000)])
    assert (too_big.status_code, too_big.json()["field"]) == (413, "body")
    too_many = gw.post_events([{}] * 4)
    assert (too_many.status_code, too_many.json()["field"]) == (413, "events")
    # A small gzip body that inflates beyond the limit is refused too.
    bomb = gw.client.post(
        "/telemetry/events",
        content=gzip.compress(b" " * 10_000_000),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip", **AUTH},
    )
    assert bomb.status_code == 413


def test_415_content_type_and_encoding(gateway: RunningGateway) -> None:
    plain = gateway.client.post(
        "/telemetry/events", content=b"{}", headers={"Content-Type": "text/plain", **AUTH}
    )
    assert (plain.status_code, plain.json()["field"]) == (415, "Content-Type")
    brotli = gateway.client.post(
        "/telemetry/events",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Encoding": "br", **AUTH},
    )
    assert (brotli.status_code, brotli.json()["field"]) == (415, "Content-Encoding")
    otlp_text = gateway.client.post(
        "/v1/traces", content=b"x", headers={"Content-Type": "text/plain", **SERVICE_AUTH}
    )
    assert otlp_text.status_code == 415


def test_422_wrong_shape_or_every_event_rejected(gateway: RunningGateway) -> None:
    shape = gateway.post_events(42)
    assert (shape.status_code, shape.json()["field"]) == (422, "body")
    events_not_list = gateway.post_events({"events": "many"})
    assert (events_not_list.status_code, events_not_list.json()["field"]) == (422, "events")
    all_bad = gateway.post_events([client_event("nope.nope"), {"event_type": "task.created"}])
    assert all_bad.status_code == 422
    body = all_bad.json()
    assert body["accepted"] == 0
    assert [r["index"] for r in body["rejected"]] == [0, 1]


# --- 429 / 503 with Retry-After --------------------------------------------------------


def test_429_when_too_many_requests_are_in_flight(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"CARET_OTEL_MAX_INFLIGHT_REQUESTS": "1"})
    port = int(gw.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as slow:
        # Headers and half a body: the request stays in flight until we finish it.
        slow.sendall(
            b"POST /telemetry/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {AUTH['Authorization'].split()[1]}\r\n".encode()
            + b"Content-Length: 100\r\n\r\n{"
        )
        deadline = time.monotonic() + 5
        while True:
            response = gw.post_events(client_event())
            if response.status_code == 429 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) >= 1
        # Probes are never refused, so an overloaded gateway can still say so.
        assert gw.client.get("/healthz").status_code == 200
    assert (
        'caret_gateway_requests_total{route="/telemetry/events",status="429"}' in gw.metrics_text()
    )


def test_503_when_the_export_queue_is_full(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(
        otlp_endpoint=unreachable_endpoint(),
        env={
            "CARET_OTEL_EXPORT_QUEUE_MAX_BYTES": "1",
            "CARET_OTEL_EXPORT_GRACE_SECONDS": "600",
            **SHORT_TIMEOUT,
        },
    )
    assert gw.post_events(client_event()).status_code == 202
    refused = gw.post_events(client_event())
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert "queue is full" in refused.json()["message"]


def test_503_when_the_collector_is_down_past_the_grace(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(
        otlp_endpoint=unreachable_endpoint(),
        env={"CARET_OTEL_EXPORT_GRACE_SECONDS": "0.2", **SHORT_TIMEOUT},
    )
    assert gw.post_events(client_event()).status_code == 202  # within the grace: queued
    time.sleep(0.5)
    refused = gw.post_events(client_event())
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert "unreachable" in refused.json()["message"]
    otlp = gw.client.post("/v1/logs", content=b"", headers=PROTOBUF)
    assert otlp.status_code == 503
    assert "Retry-After" in otlp.headers
    ready = gw.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["collector"] != "ok"


def test_a_permanent_refusal_by_the_collector_is_counted_not_silent(
    gateway_factory: GatewayFactory, sink_collector: SinkCollector
) -> None:
    # A path the Collector does not serve: it answers 404, which OTLP says not to retry.
    gw = gateway_factory(
        env={"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": sink_collector.http_url + "/no/such/path"}
    )
    assert gw.post_events(client_event()).status_code == 202
    lost = 'caret_gateway_export_lost_items_total{reason="rejected",signal="logs"} 1.0'
    wait_until(lambda: lost in gw.metrics_text(), what="the lost item to be counted")


# --- OTLP/HTTP -----------------------------------------------------------------------------


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def traces_request(*users: str) -> ExportTraceServiceRequest:
    spans = [
        Span(
            trace_id=bytes([i + 1]) * 16,
            span_id=bytes([i + 1]) * 8,
            name="chat model",
            attributes=[kv("user.id", user), kv("prompt.secret", "x")],
        )
        for i, user in enumerate(users)
    ]
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )


def test_otlp_protobuf_with_partial_success(gateway: RunningGateway) -> None:
    assert gateway.set_consent("otlp-opted-out", False).status_code == 200
    response = gateway.client.post(
        "/v1/traces",
        content=traces_request("otlp-kept", "otlp-opted-out").SerializeToString(),
        headers=PROTOBUF,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "opted out" in answer.partial_success.error_message
    gzipped = gateway.client.post(
        "/v1/traces",
        content=gzip.compress(traces_request("otlp-kept").SerializeToString()),
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
    )
    assert gzipped.status_code == 200
    assert (
        'caret_gateway_otlp_items_total{outcome="opted_out",signal="traces"} 1.0'
        in gateway.metrics_text()
    )


def test_otlp_json_with_partial_success(gateway: RunningGateway) -> None:
    assert gateway.set_consent("json-opted-out", False).status_code == 200
    document = {
        "resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "caret-api"}}]},
            "scopeLogs": [{"logRecords": [
                {"timeUnixNano": "1736589600000000000", "traceId": "0102030405060708090a0b0c0d0e0f10",
                 "spanId": "0102030405060708", "body": {"stringValue": "mail bob@example.com"},
                 "attributes": [{"key": "user.id", "value": {"stringValue": "json-kept"}}]},
                {"body": {"stringValue": "x"}, "attributes": [{"key": "user.id", "value": {"stringValue": "json-opted-out"}}]},
            ]}],
        }],
        "futureField": {"ignored": True},
    }  # fmt: skip
    response = gateway.client.post("/v1/logs", json=document, headers=SERVICE_AUTH)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["partialSuccess"]["rejectedLogRecords"] in ("1", 1)
    all_kept = gateway.client.post("/v1/logs", json={"resourceLogs": []}, headers=SERVICE_AUTH)
    assert (all_kept.status_code, all_kept.json()) == (200, {})


def test_otlp_errors_use_the_request_encoding(gateway: RunningGateway) -> None:
    broken = gateway.client.post("/v1/logs", content=b"\x0a\xff\xff\xff", headers=PROTOBUF)
    assert broken.status_code == 400
    assert broken.headers["Content-Type"] == "application/x-protobuf"
    status = status_pb2.Status()
    status.ParseFromString(broken.content)
    assert status.code == 3
    assert "protobuf" in status.message
    bad_id = gateway.client.post(
        "/v1/traces",
        json={"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]},
        headers=SERVICE_AUTH,
    )
    assert bad_id.status_code == 400
    assert "traceId" in bad_id.json()["message"]
    unauthorized = gateway.client.post(
        "/v1/metrics", content=b"", headers={"Content-Type": "application/x-protobuf"}
    )
    assert unauthorized.status_code == 401


def test_otlp_logs_request_through_the_gateway_is_scrubbed(gateway: RunningGateway) -> None:
    record = LogRecord(
        body=AnyValue(string_value="call me at alice@example.com"),
        attributes=[kv("user.email", "a@b.c")],
    )
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[record])])]
    )
    response = gateway.client.post(
        "/v1/logs", content=request.SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200
    answer = ExportLogsServiceResponse()
    answer.ParseFromString(response.content)
    assert not answer.HasField("partial_success")
    metrics = gateway.metrics_text()
    assert 'caret_gateway_attributes_total{action="redacted",reason="email"}' in metrics
    assert 'caret_gateway_attributes_total{action="dropped",reason="forbidden"}' in metrics


# --- consent ---------------------------------------------------------------------------


def test_opted_out_users_next_event_is_dropped(gateway: RunningGateway) -> None:
    assert gateway.post_events(client_event(user="alice")).json()["accepted"] == 1
    recorded = gateway.set_consent("alice", False)
    assert (recorded.status_code, recorded.json()) == (200, {"telemetry_enabled": False})
    dropped = gateway.post_events([client_event(user="alice"), client_event(user="bob")])
    assert dropped.status_code == 202
    assert dropped.json() | {"dropped_attributes": 0, "dropped": []} == {
        "accepted": 1, "rejected": [], "opted_out": 1, "dropped_attributes": 0, "dropped": [],
    }  # fmt: skip
    assert gateway.set_consent("alice", True).status_code == 200
    assert gateway.post_events(client_event(user="alice")).json()["accepted"] == 1


def test_opt_out_event_applies_to_the_rest_of_the_batch(gateway: RunningGateway) -> None:
    batch = [
        client_event(user="carol"),
        client_event("user.opt_out", user="carol", telemetry_enabled=False),
        client_event("task.completed", user="carol"),
        client_event("user.opt_in", user="carol", telemetry_enabled=True),
        client_event("task.created", user="carol"),
    ]
    body = gateway.post_events(batch).json()
    # created, opt_out, (completed dropped), opt_in (kept as an event, but a client token's
    # opt-in cannot lift the opt-out), (created dropped)
    assert (body["accepted"], body["opted_out"]) == (3, 2)


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        (b"{", 400, "body"),
        (b"[]", 422, "body"),
        (b'{"user_id_hash": "", "telemetry_enabled": false}', 422, "user_id_hash"),
        (b'{"user_id_hash": "u", "telemetry_enabled": "no"}', 422, "telemetry_enabled"),
    ],
)
def test_consent_validation(
    gateway: RunningGateway, payload: bytes, status: int, field: str
) -> None:
    response = gateway.client.put(
        "/telemetry/consent", content=payload, headers={"Content-Type": "application/json", **AUTH}
    )
    assert (response.status_code, response.json()["field"]) == (status, field)


# --- deletion authorisation ------------------------------------------------------------


def test_deletion_needs_the_admin_token(gateway: RunningGateway) -> None:
    path = "/telemetry/deletions"
    body = {"user_id_hash": "some-user"}
    assert gateway.client.post(path, json=body).status_code == 401
    unknown = {"Authorization": "Bearer unknown-token-123456789"}
    assert gateway.client.post(path, json=body, headers=unknown).status_code == 401
    assert gateway.client.post(path, json=body, headers=AUTH).status_code == 403
    assert gateway.client.post(path, json=body, headers=SERVICE_AUTH).status_code == 403
    without_database = gateway.client.post(path, json=body, headers=ADMIN_AUTH)
    assert without_database.status_code == 503
    assert "DATABASE_URL" in without_database.json()["message"]
    # The former form (the id in the URL) is gone, and says where to go.
    old = gateway.client.delete("/telemetry/users/some-user", headers=ADMIN_AUTH)
    assert old.status_code == 410
    assert "POST /telemetry/deletions" in old.json()["message"]
    assert "some-user" not in old.text


def test_deletion_without_configured_admin_token_is_forbidden(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"CARET_OTEL_ADMIN_TOKEN": ""})
    refused = gw.client.post("/telemetry/deletions", json={"user_id_hash": "u"}, headers=AUTH)
    assert refused.status_code == 403


# --- transparency and operations -------------------------------------------------------


def test_schema_health_readiness_metrics(gateway: RunningGateway) -> None:
    schema = gateway.client.get("/telemetry/schema")
    assert schema.status_code == 200
    assert schema.json()
    assert gateway.client.get("/healthz").json() == {"status": "ok"}
    ready = gateway.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["collector"] == "ok"
    gateway.post_events(client_event())
    text = gateway.metrics_text()
    for name in (
        "caret_gateway_requests_total", "caret_gateway_request_duration_seconds_bucket",
        "caret_gateway_events_accepted_total", "caret_gateway_export_queue_bytes",
        "caret_gateway_attributes_total",
    ):  # fmt: skip
        assert name in text


def test_openapi_describes_every_route(gateway: RunningGateway) -> None:
    document = gateway.client.get("/openapi.json").json()
    paths = document["paths"]
    for path, method in [
        ("/telemetry/events", "post"), ("/v1/traces", "post"), ("/v1/metrics", "post"), ("/v1/logs", "post"),
        ("/telemetry/schema", "get"), ("/telemetry/consent", "put"), ("/telemetry/users/{user_id_hash}", "delete"),
        ("/healthz", "get"), ("/readyz", "get"), ("/metrics", "get"),
    ]:  # fmt: skip
        assert method in paths[path], path
    events = paths["/telemetry/events"]["post"]
    assert {"202", "400", "401", "413", "415", "422", "429", "503"} <= set(events["responses"])
    assert "ClientEvent" in document["components"]["schemas"]
    schema = orjson.dumps(events["requestBody"])
    assert b"#/components/schemas/ClientEvent" in schema
    assert "ingestToken" in document["components"]["securitySchemes"]


def test_unknown_route_and_method(gateway: RunningGateway) -> None:
    assert gateway.client.get("/nope").status_code == 404
    assert gateway.client.get("/telemetry/events").status_code == 405
    assert 'route="unmatched",status="404"' in gateway.metrics_text()


def test_client_ip_is_never_used(gateway: RunningGateway) -> None:
    # Forwarding headers are ignored; only the trusted country header feeds geo.
    response = gateway.post_events(
        client_event(), headers={"X-Forwarded-For": "203.0.113.9", "CF-IPCountry": "de"}
    )
    assert response.status_code == 202


def test_httpx_default_client_gets_json_errors(gateway: RunningGateway) -> None:
    response = httpx.post(
        gateway.url + "/telemetry/events",
        content=b"x",
        headers={"Content-Type": "application/json", **AUTH},
    )
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
