"""Roles, consent assertions, keyed pseudonym tags and the OTLP field count (issue 17)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import warnings

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Histogram,
    HistogramDataPoint,
    Metric,
    ResourceMetrics,
    ScopeMetrics,
)

from caret_otel.core.errors import RequestError
from caret_otel.exporters.postgres.deletion import LokiTarget, loki_selector
from caret_otel.processors.privacy.consent import (
    ConsentAssertionError,
    ConsentAssertionKey,
    ConsentAssertionKeyError,
    ConsentAssertionVerifier,
    InMemoryConsentStore,
    parse_assertion_keys,
    sign_assertion,
)
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, generate_key_entry, parse_keys
from caret_otel.receivers.gateway.auth import Authenticator, Role
from caret_otel.receivers.gateway.config import GatewayConfig, GatewayConfigError
from caret_otel.receivers.gateway.otlp_limits import count_json_values, count_protobuf_fields
from caret_otel.sdk.configure import default_consent_store
from caret_otel.semconv import attributes as attrs

CLIENT, SERVICE, ADMIN = (
    "client-token-0123456789",
    "service-token-0123456789",
    "admin-token-01234567",
)


def status(auth: Authenticator, token: str, *roles: Role) -> int | Role:
    try:
        return auth.require(f"Bearer {token}", *roles)
    except RequestError as exc:
        return exc.status


def test_each_role_is_refused_on_the_others_routes() -> None:
    auth = Authenticator((CLIENT,), ADMIN, (SERVICE,))
    assert status(auth, CLIENT, Role.CLIENT) is Role.CLIENT
    assert status(auth, SERVICE, Role.SERVICE) is Role.SERVICE
    assert status(auth, ADMIN, Role.ADMIN) is Role.ADMIN
    assert status(auth, CLIENT, Role.SERVICE) == 403
    assert status(auth, CLIENT, Role.ADMIN) == 403
    assert status(auth, SERVICE, Role.CLIENT) == 403
    assert status(auth, SERVICE, Role.ADMIN) == 403
    assert status(auth, ADMIN, Role.SERVICE) == 403
    assert status(auth, "unknown-token-0123456789", Role.CLIENT) == 401
    assert status(auth, SERVICE, Role.CLIENT, Role.SERVICE) is Role.SERVICE
    assert Role.INGEST is Role.CLIENT  # the former name still works


def test_without_service_tokens_the_otlp_routes_are_disabled() -> None:
    auth = Authenticator((CLIENT,), ADMIN)
    with pytest.raises(RequestError, match="CARET_OTEL_SERVICE_TOKENS") as caught:
        auth.require(f"Bearer {CLIENT}", Role.SERVICE)
    assert caught.value.status == 403


def base_env(**extra: str) -> dict[str, str]:
    return {"CARET_OTEL_INGEST_TOKENS": CLIENT, "CARET_OTEL_ADMIN_TOKEN": ADMIN, **extra}


def test_config_reads_roles_keys_and_flags() -> None:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    config = GatewayConfig.from_env(base_env(
        CARET_OTEL_SERVICE_TOKENS=SERVICE, CARET_OTEL_CONSENT_ASSERTION_KEYS=f"acct:{key}",
        CARET_OTEL_DEV_VOLATILE_CONSENT="1", CARET_OTEL_LOKI_URL="http://loki:3100",
        CARET_OTEL_BODY_READ_TIMEOUT_SECONDS="2.5",
    ))  # fmt: skip
    assert config.service_tokens == (SERVICE,)
    assert [k.id for k in config.assertion_keys] == ["acct"]
    assert config.volatile_consent
    assert config.loki_url == "http://loki:3100"
    assert config.limits.body_read_timeout_s == 2.5
    assert key not in repr(config)
    assert SERVICE not in repr(config)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"CARET_OTEL_SERVICE_TOKENS": CLIENT}, "CARET_OTEL_SERVICE_TOKENS"),
        ({"CARET_OTEL_SERVICE_TOKENS": ADMIN}, "CARET_OTEL_SERVICE_TOKENS"),
        ({"CARET_OTEL_LOKI_URL": "loki:3100"}, "CARET_OTEL_LOKI_URL"),
        ({"CARET_OTEL_DEV_VOLATILE_CONSENT": "yes"}, "CARET_OTEL_DEV_VOLATILE_CONSENT"),
    ],
)
def test_config_errors_name_the_variable(extra: dict[str, str], named: str) -> None:
    with pytest.raises(GatewayConfigError, match=named):
        GatewayConfig.from_env(base_env(**extra))


def test_assertion_keys_are_checked_and_never_printed() -> None:
    short = base64.b64encode(b"x" * 8).decode()
    with pytest.raises(ConsentAssertionKeyError, match="entry 1 has 8 bytes"):
        parse_assertion_keys(f"a:{short}", source="S")
    with pytest.raises(ConsentAssertionKeyError, match="base64"):
        parse_assertion_keys("a:!!!", source="S")
    key = ConsentAssertionKey("a", b"k" * 32)
    assert "k" * 32 not in repr(key)


KEY = ConsentAssertionKey("acct", secrets.token_bytes(32))


def verifier(max_age_s: float = 300) -> ConsentAssertionVerifier:
    return ConsentAssertionVerifier([KEY], InMemoryConsentStore(), max_age_s)


def test_an_assertion_proves_one_decision_for_one_user_once() -> None:
    check = verifier()
    good = sign_assertion(KEY, "u1", True)
    check.verify(good, "u1", True)
    with pytest.raises(ConsentAssertionError, match=r"assertion\.nonce"):
        check.verify(good, "u1", True)
    for assertion, user, enabled, field in [
        (sign_assertion(KEY, "u1", True), "u2", True, "assertion.signature"),
        (sign_assertion(KEY, "u1", False), "u1", True, "assertion.signature"),
        (sign_assertion(KEY, "u1", True, issued_at=int(time.time()) - 301), "u1", True,
         "assertion.issued_at"),
        (sign_assertion(KEY, "u1", True, issued_at=int(time.time()) + 120), "u1", True,
         "assertion.issued_at"),
        ({**sign_assertion(KEY, "u1", True), "key_id": "other"}, "u1", True, "assertion.key_id"),
        ({**sign_assertion(KEY, "u1", True), "nonce": "short"}, "u1", True, "assertion.nonce"),
        ("a string", "u1", True, "assertion"),
    ]:  # fmt: skip
        with pytest.raises(ConsentAssertionError) as caught:
            check.verify(assertion, user, enabled)
        assert caught.value.field == field
        assert "u1" not in str(caught.value)


def test_pseudonyms_carry_a_keyed_tag() -> None:
    keys = parse_keys(generate_key_entry("1"), source="test")
    pseudonymizer = Pseudonymizer(keys)
    genuine = pseudonymizer.pseudonymize("alice@example.com")
    assert pseudonymizer.verify(genuine)
    unkeyed = "v1:" + hashlib.sha256(b"alice@example.com").hexdigest()
    assert not pseudonymizer.verify(unkeyed)
    flipped = genuine[:-1] + ("0" if genuine[-1] != "0" else "1")
    assert not pseudonymizer.verify(flipped)
    other = Pseudonymizer(parse_keys(generate_key_entry("1"), source="test"))
    assert not other.verify(genuine)  # same key id, another key
    assert not pseudonymizer.verify("v1:abc")


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_the_field_count_stops_a_bomb_early_and_counts_real_requests() -> None:
    span = b"\x4a\x00" * 2_000_000
    scope = b"\x12" + varint(len(span)) + span
    resource = b"\x12" + varint(len(scope)) + scope
    bomb = b"\x0a" + varint(len(resource)) + resource
    started = time.perf_counter()
    with pytest.raises(RequestError) as caught:
        count_protobuf_fields(bomb, "traces", 100_000)
    assert caught.value.status == 413
    assert time.perf_counter() - started < 0.5
    record = LogRecord(body=AnyValue(string_value="x"),
                       attributes=[KeyValue(key=attrs.SESSION_ID, value=AnyValue(string_value="s"))])  # fmt: skip
    logs = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[record] * 10)])]
    ).SerializeToString()
    # resource_logs, scope_logs; per record: itself, body (+ its string), one attribute
    # (+ its key, value and the value's string)
    assert count_protobuf_fields(logs, "logs", 1000) == 1 + 1 + 10 * (1 + 2 + 4)
    # packed histogram buckets count one per element
    point = HistogramDataPoint(bucket_counts=[1] * 5000, explicit_bounds=[1.0] * 4999)
    metric = Metric(name="m", histogram=Histogram(data_points=[point]))
    metrics = ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(scope_metrics=[ScopeMetrics(metrics=[metric])])]
    ).SerializeToString()
    with pytest.raises(RequestError):
        count_protobuf_fields(metrics, "metrics", 5000)
    assert count_protobuf_fields(metrics, "metrics", 20_000) > 9999
    # malformed input is counted as far as it goes (the decoder names the problem)
    assert count_protobuf_fields(b"\x0a\xff\xff\xff", "logs", 10) == 1


def test_the_json_bound_needs_no_parse() -> None:
    assert count_json_values(b'{"a": [1, 2, {"b": 3}]}', 100) >= 5
    with pytest.raises(RequestError) as caught:
        count_json_values(b"[" + b"{}," * 10_000 + b"{}]", 1000)
    assert caught.value.status == 413


def test_the_loki_query_selects_every_pseudonymous_attribute() -> None:
    query = loki_selector("v1:" + "ab" * 32)
    assert query.startswith('{service_name=~".+"} | ')
    assert attrs.ENDUSER_PSEUDO_ID.replace(".", "_") + '="v1:' in query
    assert query.count(" or ") >= 1
    with pytest.raises(ValueError, match="CARET_OTEL_LOKI_URL"):
        LokiTarget("file:///etc/passwd")


def test_the_sdk_says_loudly_when_it_has_no_consent_database() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = default_consent_store({})
    assert isinstance(store, InMemoryConsentStore)
    assert any("CARET_OTEL_CONSENT_DATABASE_URL" in str(w.message) for w in caught)


def test_parse_errors_and_the_415_name_the_field_never_the_value() -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest as Logs,
    )

    from caret_otel.otlp.body import decode_request, media_type

    bad_number = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"s3cret"}]}]}]}'
    for payload, field in [(bad_number, "timeUnixNano"), (b'{"resourceLogs": "s3cret"}',
                           "resourceLogs"), (b"{s3cret", "body")]:  # fmt: skip
        with pytest.raises(RequestError) as caught:
            decode_request(payload, "application/json", Logs)
        assert caught.value.field == field
        assert "s3cret" not in caught.value.message
    with pytest.raises(RequestError) as refused:
        media_type("text/s3cret")
    assert refused.value.status == 415
    assert "s3cret" not in refused.value.message
