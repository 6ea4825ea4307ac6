"""Issue 17 over real HTTP: each attack fails.

Roles (client / service / admin tokens), consent that only its owner can lift (a signed
assertion from the account service, or a service/admin token), consent that fails
closed without a durable store, pseudonyms kept only when their keyed tag verifies, and
abuse limits checked before any work: a gzip attribute bomb, a 200,000-key
``client_info`` event and stalled bodies are answered quickly while ``/healthz`` and
other clients are served.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import secrets
import socket
import threading
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from fixtures.services import SinkCollector
from integration.gateway.gateway_support import (
    ADMIN_AUTH,
    AUTH,
    INGEST,
    SERVICE_AUTH,
    GatewayFactory,
    RunningGateway,
    client_event,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from caret_otel.processors.privacy.consent import ConsentAssertionKey, sign_assertion
from caret_otel.semconv import attributes as attrs

pytestmark = pytest.mark.integration

ASSERTION_KEY = ConsentAssertionKey("acct1", secrets.token_bytes(32))
ASSERTION_ENV = {
    "CARET_OTEL_CONSENT_ASSERTION_KEYS": (
        f"{ASSERTION_KEY.id}:{base64.b64encode(ASSERTION_KEY.secret).decode()}"
    )
}
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def put_consent(
    gw: RunningGateway, user: str, enabled: bool, headers: dict[str, str], **extra: Any
) -> httpx.Response:
    body = {"user_id_hash": user, "telemetry_enabled": enabled, **extra}
    return gw.client.put("/telemetry/consent", json=body, headers=headers)


def opted_out(gw: RunningGateway, user: str) -> bool:
    answer = gw.post_events(client_event(user=user))
    assert answer.status_code == 202, answer.text
    return bool(answer.json()["opted_out"])


# --- consent: anyone may opt out, only the user's proof lifts it ------------------------


def test_a_client_token_cannot_lift_an_opt_out(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env=ASSERTION_ENV)
    user = f"victim-{uuid.uuid4().hex[:8]}"
    assert put_consent(gw, user, False, AUTH).status_code == 200  # opting out: anyone
    flipped = put_consent(gw, user, True, AUTH)
    assert flipped.status_code == 403
    assert flipped.json()["field"] == "assertion"
    assert opted_out(gw, user)
    # An opt-in *event* from a client is kept as an event but lifts nothing either.
    gw.post_events(client_event("user.opt_in", user=user, telemetry_enabled=True))
    assert opted_out(gw, user)
    assert 'caret_gateway_consent_refused_total{reason="no_proof"} 2.0' in gw.metrics_text()


def test_a_signed_assertion_lifts_an_opt_out_once(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env=ASSERTION_ENV)
    user = f"owner-{uuid.uuid4().hex[:8]}"
    assert put_consent(gw, user, False, AUTH).status_code == 200
    # Signed for another user, for the other decision, expired, or by an unknown key.
    wrong = [
        sign_assertion(ASSERTION_KEY, "someone-else", True),
        sign_assertion(ASSERTION_KEY, user, False),
        sign_assertion(ASSERTION_KEY, user, True, issued_at=int(time.time()) - 3600),
        sign_assertion(ConsentAssertionKey("acct1", secrets.token_bytes(32)), user, True),
        {"key_id": "acct1", "issued_at": "now", "nonce": "n" * 16, "signature": "0" * 64},
    ]
    for assertion in wrong:
        refused = put_consent(gw, user, True, AUTH, assertion=assertion)
        assert refused.status_code == 403, refused.text
        assert refused.json()["field"].startswith("assertion")
        assert user not in refused.text
    assert opted_out(gw, user)
    good = sign_assertion(ASSERTION_KEY, user, True)
    assert put_consent(gw, user, True, AUTH, assertion=good).status_code == 200
    assert not opted_out(gw, user)
    # The user opts out again; replaying the earlier assertion cannot undo it.
    assert put_consent(gw, user, False, AUTH).status_code == 200
    replay = put_consent(gw, user, True, AUTH, assertion=good)
    assert (replay.status_code, replay.json()["field"]) == (403, "assertion.nonce")
    assert opted_out(gw, user)


def test_service_and_admin_tokens_may_lift_and_admin_may_look_up(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory()
    user = f"svc-{uuid.uuid4().hex[:8]}"
    assert put_consent(gw, user, False, AUTH).status_code == 200
    lookup = {"user_id_hash": user}
    assert gw.client.post("/telemetry/consent/lookup", json=lookup, headers=AUTH).status_code == 403
    state = gw.client.post("/telemetry/consent/lookup", json=lookup, headers=ADMIN_AUTH)
    assert state.json()["telemetry_enabled"] is False
    assert put_consent(gw, user, True, SERVICE_AUTH).status_code == 200
    state = gw.client.post("/telemetry/consent/lookup", json=lookup, headers=ADMIN_AUTH)
    assert state.json()["telemetry_enabled"] is True
    assert put_consent(gw, user, False, ADMIN_AUTH).status_code == 200
    assert put_consent(gw, user, True, ADMIN_AUTH).status_code == 200


def test_client_opt_outs_are_rate_limited(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(env={"CARET_OTEL_CONSENT_WRITES_PER_SECOND": "1"})
    answers = [put_consent(gw, f"mass-{n}", False, AUTH).status_code for n in range(8)]
    assert answers[:5] == [200] * 5  # the burst (5 s at the rate)
    assert 429 in answers[5:]
    # A service is not limited.
    assert put_consent(gw, "mass-svc", False, SERVICE_AUTH).status_code == 200


def test_consent_writes_without_a_durable_store_answer_503(
    gateway_factory: GatewayFactory,
) -> None:
    gw = gateway_factory(env={"CARET_OTEL_DEV_VOLATILE_CONSENT": ""})
    refused = put_consent(gw, "nobody", False, AUTH)
    assert refused.status_code == 503
    assert "durable" in refused.json()["message"]
    batch = gw.post_events(client_event("user.opt_out", user="nobody", telemetry_enabled=False))
    assert batch.status_code == 503
    assert gw.client.get("/readyz").json()["checks"]["consent_durable"] == "no"


# --- roles on the OTLP routes and keyed pseudonyms --------------------------------------


def spans_request(user_value: str) -> bytes:
    span = Span(
        trace_id=secrets.token_bytes(16),
        span_id=secrets.token_bytes(8),
        name="chat claude-sonnet-4",
        start_time_unix_nano=time.time_ns() - 1_000_000,
        end_time_unix_nano=time.time_ns(),
        attributes=[
            KeyValue(key=attrs.ENDUSER_PSEUDO_ID, value=AnyValue(string_value=user_value)),
            KeyValue(key=attrs.GEN_AI_PROVIDER_NAME, value=AnyValue(string_value="anthropic")),
        ],
    )
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    )
    return request.SerializeToString()


def test_forged_pseudonyms_on_otlp(gateway: RunningGateway, sink_collector: SinkCollector) -> None:
    # An unkeyed SHA-256 of an e-mail, shaped exactly like a pseudonym of our key.
    key_id = gateway.gateway.pseudonymizer.key_ids[-1]
    forged = f"v{key_id}:" + hashlib.sha256(b"alice@example.com").hexdigest()
    client = gateway.client.post("/v1/traces", content=spans_request(forged),
                                 headers={**PROTOBUF, **AUTH})  # fmt: skip
    assert client.status_code == 403
    assert (
        gateway.client.post("/v1/logs", content=b"", headers={**PROTOBUF, **ADMIN_AUTH}).status_code
        == 403
    )

    service = gateway.client.post("/v1/traces", content=spans_request(forged),
                                  headers={**PROTOBUF, **SERVICE_AUTH})  # fmt: skip
    assert service.status_code == 200
    genuine = gateway.gateway.pseudonymizer.pseudonymize(f"bob-{uuid.uuid4().hex}")
    kept = gateway.client.post("/v1/traces", content=spans_request(genuine),
                               headers={**PROTOBUF, **SERVICE_AUTH})  # fmt: skip
    assert kept.status_code == 200
    sink_collector.wait_for_span(lambda s: s.attributes.get(attrs.ENDUSER_PSEUDO_ID) == genuine)
    # The forged value was dropped: stored neither as sent nor re-keyed.
    assert 'caret_gateway_attributes_total{action="dropped",reason="invalid"}' in (
        gateway.metrics_text()
    )
    assert not [s for s in sink_collector.spans() if forged in orjson.dumps(s.data).decode()]


# --- abuse limits before work -----------------------------------------------------------


class HealthProbe:
    """Polls /healthz in a thread and keeps each answer's latency."""

    def __init__(self, url: str) -> None:
        self._client = httpx.Client(base_url=url, timeout=5)
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            assert self._client.get("/healthz").status_code == 200
            self.latencies.append(time.perf_counter() - started)
            time.sleep(0.005)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._client.close()

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def attribute_bomb(count: int) -> bytes:
    """An ExportTraceServiceRequest whose one span holds ``count`` empty key-values."""
    span = b"\x4a\x00" * count  # Span.attributes (field 9), each an empty KeyValue
    scope = b"\x12" + _varint(len(span)) + span
    resource = b"\x12" + _varint(len(scope)) + scope
    return b"\x0a" + _varint(len(resource)) + resource


@pytest.fixture
def roomy_gateway(gateway_factory: GatewayFactory) -> RunningGateway:
    # Room for the bomb to be inflated: only the field count may stop it.
    return gateway_factory(env={"CARET_OTEL_MAX_DECOMPRESSED_BYTES": str(16 << 20)})


def test_gzip_attribute_bomb_and_huge_client_info_are_answered_fast(
    roomy_gateway: RunningGateway,
) -> None:
    gw = roomy_gateway
    bomb = gzip.compress(attribute_bomb(4_000_000), compresslevel=9)
    assert len(bomb) < 16 << 10  # a few KB on the wire
    event = client_event()
    event["client_info"] = {f"k{n}": n for n in range(200_000)}
    huge_event = gzip.compress(orjson.dumps(event))
    with HealthProbe(gw.url) as probe:
        time.sleep(0.5)
        started = time.perf_counter()
        answer = gw.client.post("/v1/traces", content=bomb,
                                headers={**PROTOBUF, **SERVICE_AUTH, "Content-Encoding": "gzip"})  # fmt: skip
        bomb_s = time.perf_counter() - started
        started = time.perf_counter()
        rejected = gw.client.post("/telemetry/events", content=huge_event, headers={
            "Content-Type": "application/json", "Content-Encoding": "gzip", **AUTH})  # fmt: skip
        event_s = time.perf_counter() - started
        time.sleep(1.0)  # enough samples that p99 is not one scheduling hiccup
    assert answer.status_code == 413, answer.content
    assert bomb_s < 1.0
    assert rejected.status_code == 413, rejected.text
    assert rejected.json()["field"] == "client_info"
    # Beyond the attribute limit but no flood: that event alone is rejected, counted first.
    wide = client_event()
    wide["client_info"] = {f"k{n}": n for n in range(500)}
    answer = gw.post_events([wide, client_event()])
    assert answer.status_code == 202
    assert answer.json()["rejected"][0]["field"] == "client_info"
    assert event_s < 1.0
    assert len(probe.latencies) > 100
    assert probe.p99() < 0.1, (len(probe.latencies), sorted(probe.latencies)[-5:])


def stalled_connection(url: str, token: str) -> socket.socket:
    """Headers and part of a body, then silence."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"POST /telemetry/events HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + b"Content-Length: 1000\r\n\r\n"
        + b'[{"event_type": '
    )
    return sock


def test_stalled_bodies_get_408_while_others_are_served(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(
        env={"CARET_OTEL_BODY_READ_TIMEOUT_SECONDS": "1", "CARET_OTEL_MAX_INFLIGHT_REQUESTS": "4"}
    )
    stalled = [stalled_connection(gw.url, INGEST) for _ in range(3)]
    try:
        started = time.perf_counter()
        served = [gw.post_events(client_event()).status_code for _ in range(5)]
        assert served == [202] * 5
        for sock in stalled:
            sock.settimeout(5)
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert time.perf_counter() - started < 4
    finally:
        for sock in stalled:
            sock.close()
    # The slots are free again: the in-flight limit (4) is not held by the stalled three.
    assert [gw.post_events(client_event()).status_code for _ in range(4)] == [202] * 4
    assert 'caret_gateway_body_timeouts_total{route="/telemetry/events"} 3.0' in gw.metrics_text()


def test_a_disconnect_mid_body_is_counted(gateway: RunningGateway) -> None:
    sock = stalled_connection(gateway.url, INGEST)
    time.sleep(0.2)
    sock.close()
    expected = 'caret_gateway_client_disconnects_total{route="/telemetry/events"} 1.0'
    deadline = time.monotonic() + 5
    while expected not in gateway.metrics_text():
        assert time.monotonic() < deadline, "the disconnect was not counted"
        time.sleep(0.05)
    assert gateway.post_events(client_event()).status_code == 202


def test_probes_say_nothing_internal(gateway_factory: GatewayFactory) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    internal = f"http://127.0.0.1:{port}"
    gw = gateway_factory(otlp_endpoint=internal, env={"OTEL_EXPORTER_OTLP_TIMEOUT": "300"})
    ready = gw.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["collector"] == "unavailable"
    assert str(port) not in ready.text
    assert str(port) not in gw.metrics_text()
