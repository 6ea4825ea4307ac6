"""Defence in depth: OTLP sent straight to our Collector (bypassing the gateway) with
secrets planted on every signal and in every place they can hide comes out clean at
every sink - the Tempo and Loki stand-in, the business leg, Prometheus series and labels.

The planted secrets are one per kind the Python privacy processor redacts, and each is
first checked against that processor (``redact_text``), so the two passes are shown to
cover the same samples. Values that must survive (clock times, versions, routes,
pseudonyms made by the gateway) are checked too, so the pass cannot "win" by deleting
everything.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fixtures.services import RunningCollector, SinkCollector, otlp_attributes, wait_until
from integration.pipeline.pipeline_support import (
    any_value,
    as_text,
    collector_pseudonym,
    key_values,
    post,
    prometheus_series,
    resource,
    resource_blocks,
    unique_service,
)

from caret_otel.dashboards.promnames import prometheus_label
from caret_otel.processors.privacy import redaction as py
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics
from caret_otel.semconv.policy import load_policy
from caret_otel.stack import PrometheusServer

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Secret:
    kind: str
    text: str
    core: str
    """The part that must not survive anywhere."""


SECRETS = (
    Secret(py.EMAIL, "write to Jane.Doe@Example.COM today", "Jane.Doe"),
    Secret(py.EMAIL, "cc jose\u0301@exa\u0301mple.org (NFD)", "jose\u0301"),
    Secret(py.EMAIL, "cc zoë@exämple.org (NFC)", "zoë@"),
    Secret(py.IPV4, "peer 203.0.113.7 refused", "203.0.113.7"),
    Secret(py.IPV6, "link-local fe80::1%eth0 down", "fe80::1"),
    Secret(py.IPV6, "mapped ::ffff:198.51.100.9 seen", "198.51.100.9"),
    Secret(py.IPV6, "host 2001:db8:85a3::8a2e:370:7334 up", "8a2e:370:7334"),
    Secret(py.PATH, "open /home/alice/project/app.py failed", "alice"),
    Secret(py.PATH, "read /Users/bob/.ssh/id_rsa", "/Users/bob"),
    Secret(py.PATH, "C:\\Users\\Jane Doe\\Documents\\plan.docx", "Jane Doe"),
    Secret(py.PATH, "saved to ~/notes/diary.txt", "notes/diary"),
    Secret(py.PATH, 'File "/srv/caret/app/main.py", line 3', "/srv/caret"),
    Secret(py.URL_CREDENTIALS, "dsn pg://caret:s3cretpw@db.internal/app", "s3cretpw"),
    Secret(py.BEARER_TOKEN, "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGci"),
    Secret(py.API_KEY, "key sk-ant-api03-abcdefghijklmnopqrstuv", "abcdefghijklmnopqrstuv"),
    Secret(py.API_KEY, "aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    Secret(py.API_KEY, "login password=hunter2!", "hunter2"),
    Secret(
        py.PEM_KEY,
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAs3cr3tK3y\n-----END RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEAs3cr3tK3y",
    ),
    Secret(py.CARD_NUMBER, "card 4111 1111 1111 1111 charged", "1111 1111 1111"),
    Secret(py.CARD_NUMBER, "amex 378282246310005", "378282246310005"),
    Secret(py.CARD_NUMBER, "discover 6011-1111-1111-1117", "6011-1111"),
    # Every detector (one definition for both passes), on its own cases.
    *(Secret(d.kind, text, core) for d in py.DETECTORS for text, core in d.redacts),
)
# Free text that is not a secret and must come through unchanged.
SURVIVORS = (
    "retry at 10:00:00 UTC",
    "sdk version 1.45.0",
    "took 1700000000000 ns",
    "since 2024-01-01T10:00:00Z",
    "invalid token provided",
    "request 627cc493-f310-47de-96bd-71410b7dec09",
    *(text for d in py.DETECTORS for text in d.keeps),
)
RAW_USER = f"raw-user-{uuid.uuid4().hex[:8]}"
UNKNOWN_METRIC = "custom.leak.requests"
SENDER_TRACE_STATE = "vendor=jane.doe.example"
SENDER_SCHEMA_URL = "https://jane.example.net/schema"
OTEL_SCHEMA_URL = "https://opentelemetry.io/schemas/1.38.0"


def eid(label: str) -> str:
    """A test record's ``caret.event.id``: the event-id shape (32 hex digits)."""
    return hashlib.sha256(label.encode()).hexdigest()[:32]


GATEWAY_PSEUDONYM = "v1:" + "ab" * 32
FORBIDDEN_VALUE = "janes-macbook-pro"
UNKNOWN_VALUE = "favourite-colour-teal"


def test_python_processor_redacts_the_same_samples() -> None:
    """The samples are secrets by the Python processor's own judgement (same kinds)."""
    for secret in SECRETS:
        redacted, kinds = py.redact_text(secret.text)
        assert secret.kind in kinds, (secret, kinds)
        assert secret.core not in redacted, (secret, redacted)
    for text in SURVIVORS:
        assert py.redact_text(text) == (text, []), text
    assert {s.kind for s in SECRETS} == set(py.KINDS)


def _now_ns() -> int:
    return time.time_ns()


def _traces(service: str) -> dict[str, Any]:
    now = _now_ns()
    spans = []
    for index, secret in enumerate(SECRETS):
        spans.append(
            {
                "traceId": uuid.uuid4().hex,
                "spanId": uuid.uuid4().hex[:16],
                "name": secret.text,
                "kind": 3,
                "startTimeUnixNano": str(now - 10**9),
                "endTimeUnixNano": str(now),
                "attributes": key_values(
                    {
                        attrs.CARET_EVENT_ID: eid(f"span-{index}"),
                        attrs.CARET_ERROR_MESSAGE: secret.text,
                        attrs.GEN_AI_OPERATION_NAME: "chat",
                        attrs.GEN_AI_PROVIDER_NAME: "anthropic",
                        attrs.GEN_AI_REQUEST_MODEL: "model-x",
                        attrs.ERROR_TYPE: secret.text,
                        attrs.ENDUSER_ID: RAW_USER,
                        attrs.URL_FULL: f"https://u:{secret.core}@example.net/",
                        "custom.secret": UNKNOWN_VALUE,
                    }
                ),
                "events": [
                    {
                        "timeUnixNano": str(now - 5 * 10**8),
                        "name": secret.text,
                        "attributes": key_values(
                            {attrs.EXCEPTION_MESSAGE: secret.text, "custom.secret": UNKNOWN_VALUE}
                        ),
                    }
                ],
                "traceState": SENDER_TRACE_STATE,
                "links": [
                    {
                        "traceId": uuid.uuid4().hex,
                        "spanId": uuid.uuid4().hex[:16],
                        "attributes": key_values({attrs.CARET_ERROR_MESSAGE: secret.text}),
                    }
                ],
                "status": {"code": 2, "message": secret.text},
            }
        )
    return {
        "resourceSpans": [
            {
                "resource": _resource(service),
                "schemaUrl": SENDER_SCHEMA_URL,
                "scopeSpans": [{"scope": _scope(), "schemaUrl": OTEL_SCHEMA_URL, "spans": spans}],
            }
        ]
    }


def _resource(service: str) -> dict[str, Any]:
    structured = "; ".join(s.text for s in SECRETS)
    return resource(
        service,
        {
            attrs.SERVICE_VERSION: structured,
            attrs.DEPLOYMENT_ENVIRONMENT_NAME: "privacy-test",
            attrs.ENDUSER_ID: RAW_USER,
            attrs.HOST_NAME: FORBIDDEN_VALUE,
            "custom.secret": UNKNOWN_VALUE,
            "redaction.masked.keys": UNKNOWN_VALUE,  # the processor's own audit key
        },
    )


def _scope() -> dict[str, Any]:
    return {
        "name": SECRETS[0].text,
        "version": SECRETS[3].text,
        "attributes": key_values(
            {attrs.EXCEPTION_MESSAGE: "; ".join(s.text for s in SECRETS), "custom": UNKNOWN_VALUE}
        ),
    }


def _logs(service: str) -> dict[str, Any]:
    now = _now_ns()
    records = []
    for index, secret in enumerate(SECRETS):
        records.append(
            {
                "timeUnixNano": str(now),
                "eventName": f"caret.test.probe {secret.text}",
                "severityText": secret.text,
                "body": any_value(secret.text),
                "attributes": key_values(
                    {
                        attrs.CARET_EVENT_ID: eid(f"log-{index}"),
                        attrs.CARET_ERROR_MESSAGE: secret.text,
                        attrs.GEN_AI_REQUEST_MODEL: secret.text,
                        attrs.ENDUSER_ID: RAW_USER,
                        attrs.SESSION_ID: GATEWAY_PSEUDONYM,
                        attrs.CARET_PROMPT_TEXT: secret.text,
                        attrs.CARET_USER_EMAIL: "jane@example.com",
                        "custom.secret": UNKNOWN_VALUE,
                    }
                ),
            }
        )
    nested = {
        attrs.CARET_ERROR_MESSAGE: [s.text for s in SECRETS],
        attrs.EXCEPTION_STACKTRACE: {attrs.EXCEPTION_MESSAGE: SECRETS[7].text},
        attrs.HTTP_ROUTE: SECRETS[0].text,
        "message": UNKNOWN_VALUE,
    }
    records.append(
        {
            "timeUnixNano": str(now),
            "eventName": "caret.test.nested",
            "body": any_value(nested),
            "attributes": key_values({attrs.CARET_EVENT_ID: eid("log-nested")}),
        }
    )
    for index, text in enumerate(SURVIVORS):
        records.append(
            {
                "timeUnixNano": str(now),
                "eventName": "caret.test.survivor",
                "body": any_value(text),
                "attributes": key_values(
                    {
                        attrs.CARET_EVENT_ID: eid(f"survivor-{index}"),
                        attrs.CARET_ERROR_MESSAGE: text,
                        attrs.HTTP_ROUTE: "/v1/messages",
                    }
                ),
            }
        )
    return {
        "resourceLogs": [
            {
                "resource": _resource(service),
                "scopeLogs": [{"scope": _scope(), "logRecords": records}],
            }
        ]
    }


MODEL = f"model-{uuid.uuid4().hex[:8]}"


def _metrics(service: str) -> dict[str, Any]:
    now = _now_ns()
    secret = SECRETS[0].text
    point_attributes = key_values(
        {
            attrs.GEN_AI_REQUEST_MODEL: MODEL,
            attrs.GEN_AI_PROVIDER_NAME: "anthropic",
            attrs.ERROR_TYPE: secret,
            attrs.ENDUSER_ID: RAW_USER,
            attrs.SESSION_ID: GATEWAY_PSEUDONYM,
            attrs.CARET_ERROR_MESSAGE: secret,
            "custom.secret": UNKNOWN_VALUE,
        }
    )
    exemplar = {
        "asInt": "1",
        "timeUnixNano": str(now),
        "filteredAttributes": key_values(
            {attrs.ENDUSER_ID: RAW_USER, attrs.GEN_AI_REQUEST_MODEL: secret}
        ),
    }
    starts = {
        "name": metrics.CARET_TASK_STARTS.name,
        "unit": "jane@example.com",
        "description": f"tasks {secret}",
        "metadata": key_values({"note": secret}),
        "sum": {
            "aggregationTemporality": 2,
            "isMonotonic": True,
            "dataPoints": [
                {
                    "asInt": "3",
                    "startTimeUnixNano": str(now - 10**9),
                    "timeUnixNano": str(now),
                    "attributes": point_attributes,
                    "exemplars": [exemplar],
                }
            ],
        },
    }
    duration = metrics.GEN_AI_CLIENT_OPERATION_DURATION
    histogram = {
        "name": duration.name,
        "unit": duration.unit,
        "histogram": {
            "aggregationTemporality": 2,
            "dataPoints": [
                {
                    "startTimeUnixNano": str(now - 10**9),
                    "timeUnixNano": str(now),
                    "count": "1",
                    "sum": 0.5,
                    "bucketCounts": ["0", "1"],
                    "explicitBounds": [0.1],
                    "attributes": point_attributes,
                }
            ],
        },
    }
    return {
        "resourceMetrics": [
            {
                "resource": _resource(service),
                "scopeMetrics": [
                    {"scope": _scope(), "metrics": [starts, histogram, _unknown_metric(now)]}
                ],
            }
        ]
    }


def _unknown_metric(now: int) -> dict[str, Any]:
    return {
        "name": UNKNOWN_METRIC,
        "unit": "1",
        "sum": {
            "aggregationTemporality": 2,
            "isMonotonic": True,
            "dataPoints": [{"asInt": "1", "timeUnixNano": str(now), "attributes": []}],
        },
    }


@dataclass(frozen=True)
class Landed:
    service: str
    tempo: str
    loki: str
    business: str
    prometheus: list[dict[str, str]]
    spans: list[dict[str, Any]]
    logs: list[dict[str, Any]]
    loki_resource: dict[str, Any]
    business_metrics: list[dict[str, Any]]


def _items(blocks: list[dict[str, Any]], middle: str, inner: str) -> list[dict[str, Any]]:
    return [
        item for block in blocks for scope in block.get(middle, []) for item in scope.get(inner, [])
    ]


@pytest.fixture(scope="module")
def landed(
    pipeline_collector: RunningCollector,
    sink_collector: SinkCollector,
    business_sink: SinkCollector,
    prometheus: PrometheusServer,
) -> Landed:
    service = unique_service("privacy")
    post(pipeline_collector, "traces", _traces(service))
    post(pipeline_collector, "logs", _logs(service))
    post(pipeline_collector, "metrics", _metrics(service))
    sent_logs = len(SECRETS) + 1 + len(SURVIVORS)

    def all_arrived() -> bool:
        spans = _items(resource_blocks(sink_collector, "traces", service), "scopeSpans", "spans")
        logs = _items(resource_blocks(sink_collector, "logs", service), "scopeLogs", "logRecords")
        business = resource_blocks(business_sink, "metrics", service)
        return len(spans) == len(SECRETS) and len(logs) == sent_logs and bool(business)

    wait_until(all_arrived, timeout=30, what="every planted span, log record and metric")
    starts = prometheus.wait_for(
        f'{{__name__=~"caret_task_starts.*", job="{service}"}}', timeout=30
    )
    assert starts
    trace_blocks = resource_blocks(sink_collector, "traces", service)
    log_blocks = resource_blocks(sink_collector, "logs", service)
    business_blocks = [
        *resource_blocks(business_sink, "logs", service),
        *resource_blocks(business_sink, "metrics", service),
    ]
    return Landed(
        service=service,
        tempo=as_text(trace_blocks),
        loki=as_text(log_blocks),
        business=as_text(business_blocks),
        prometheus=prometheus_series(prometheus, service),
        spans=_items(trace_blocks, "scopeSpans", "spans"),
        logs=_items(log_blocks, "scopeLogs", "logRecords"),
        loki_resource=otlp_attributes(log_blocks[0]["resource"]["attributes"]),
        business_metrics=_items(
            resource_blocks(business_sink, "metrics", service), "scopeMetrics", "metrics"
        ),
    )


def _stores(landed: Landed) -> dict[str, str]:
    labels = "\n".join(f"{k}={v}" for series in landed.prometheus for k, v in series.items())
    return {
        "tempo": landed.tempo,
        "loki": landed.loki,
        "business": landed.business,
        "prometheus": labels,
    }


@pytest.mark.parametrize("secret", SECRETS, ids=lambda s: f"{s.kind}:{s.core}")
def test_no_planted_secret_reaches_any_store(landed: Landed, secret: Secret) -> None:
    for store, text in _stores(landed).items():
        assert text, f"nothing of this run in {store}: the test would prove nothing"
        assert secret.core not in text, f"{secret.kind} {secret.core!r} leaked into {store}"


def test_forbidden_unknown_and_raw_identifiers_reach_no_store(landed: Landed) -> None:
    for store, text in _stores(landed).items():
        for value in (FORBIDDEN_VALUE, UNKNOWN_VALUE, RAW_USER, "jane@example.com"):
            assert value not in text, f"{value!r} leaked into {store}"
        for key in (attrs.HOST_NAME, attrs.CARET_PROMPT_TEXT, attrs.URL_FULL, "custom.secret"):
            assert f'"{key}"' not in text, f"key {key} reached {store}"
        assert "redaction." not in text, f"a redaction audit key reached {store}"


def test_secrets_are_masked_in_every_place_of_a_span(landed: Landed) -> None:
    by_id = {otlp_attributes(s["attributes"])[attrs.CARET_EVENT_ID]: s for s in landed.spans}
    for index, secret in enumerate(SECRETS):
        span = by_id[eid(f"span-{index}")]
        attributes = otlp_attributes(span["attributes"])
        for where, value in (
            ("name", span["name"]),
            ("status", span["status"]["message"]),
            ("event name", span["events"][0]["name"]),
            ("event attribute", otlp_attributes(span["events"][0]["attributes"])[attrs.EXCEPTION_MESSAGE]),
            ("free text", attributes[attrs.CARET_ERROR_MESSAGE]),
        ):  # fmt: skip
            assert "****" in value, (where, value)
            assert secret.core not in value, (where, value)
        # Links cannot be filtered attribute by attribute, so they are dropped.
        assert not span.get("links"), span.get("links")
        assert attributes[attrs.ENDUSER_ID] == collector_pseudonym(RAW_USER)


def test_secrets_are_masked_in_log_bodies_names_and_attributes(landed: Landed) -> None:
    by_id = {otlp_attributes(r["attributes"])[attrs.CARET_EVENT_ID]: r for r in landed.logs}
    for index, secret in enumerate(SECRETS):
        record = by_id[eid(f"log-{index}")]
        attributes = otlp_attributes(record["attributes"])
        # (RE2 has no look-behind: a pattern that needs a delimiter before the match
        # masks that delimiter too.)
        assert record["eventName"].startswith("caret.test.probe")
        for value in (
            record["eventName"],
            record["severityText"],
            record["body"]["stringValue"],
            attributes[attrs.CARET_ERROR_MESSAGE],
        ):
            assert "****" in value, value
            assert secret.core not in value, value
        # A public string that is not its shape (a model id with spaces, a path, a
        # masked secret) is dropped, not kept masked.
        assert attrs.GEN_AI_REQUEST_MODEL not in attributes
        assert attributes[attrs.ENDUSER_ID] == collector_pseudonym(RAW_USER)
        # A pseudonym made by the gateway passes unchanged (not hashed twice).
        assert attributes[attrs.SESSION_ID] == GATEWAY_PSEUDONYM
        assert attrs.CARET_PROMPT_TEXT not in attributes
    nested = by_id[eid("log-nested")]["body"]["kvlistValue"]["values"]
    # http.route held free text, not a route template: off its shape, so dropped.
    assert {kv["key"] for kv in nested} == {attrs.CARET_ERROR_MESSAGE, attrs.EXCEPTION_STACKTRACE}


def test_values_that_are_not_secrets_survive(landed: Landed) -> None:
    by_id = {otlp_attributes(r["attributes"])[attrs.CARET_EVENT_ID]: r for r in landed.logs}
    for index, text in enumerate(SURVIVORS):
        record = by_id[eid(f"survivor-{index}")]
        attributes = otlp_attributes(record["attributes"])
        assert attributes[attrs.CARET_ERROR_MESSAGE] == text
        assert record["body"]["stringValue"] == text
        assert attributes[attrs.HTTP_ROUTE] == "/v1/messages"


def test_resources_keep_only_registry_keys(landed: Landed) -> None:
    allowed = {
        name for name, rule in load_policy().attributes.items() if rule.privacy != "forbidden"
    }
    assert set(landed.loki_resource) <= allowed
    assert landed.loki_resource[attrs.ENDUSER_ID] == collector_pseudonym(RAW_USER)
    assert landed.loki_resource[attrs.DEPLOYMENT_ENVIRONMENT_NAME] == "privacy-test"


def test_metric_labels_are_metric_safe_and_clean(landed: Landed) -> None:
    """No user-level label on any series, none on target_info, no secret in a value."""
    policy = load_policy()
    safe = {prometheus_label(name) for name in policy.metric_attributes}
    own = {"__name__", "job", "instance", "le", "otel_scope_name", "otel_scope_version"}
    user_level = {
        prometheus_label(n) for n, r in policy.attributes.items() if r.privacy == "pseudonymous"
    }
    for series in landed.prometheus:
        labels = set(series)
        assert not labels & user_level, series
        if series["__name__"] != "target_info":
            assert labels <= safe | own, sorted(labels - safe - own)
    names = {series["__name__"] for series in landed.prometheus}
    assert "target_info" in names
    assert any(name.startswith("gen_ai_client_operation_duration") for name in names)


def test_business_metrics_keep_safe_labels_and_clean_exemplars(landed: Landed) -> None:
    safe = load_policy().metric_attributes
    (starts,) = [m for m in landed.business_metrics if m["name"] == metrics.CARET_TASK_STARTS.name]
    assert "metadata" not in starts
    assert SECRETS[0].core not in starts["description"]
    (point,) = starts["sum"]["dataPoints"]
    labels = otlp_attributes(point["attributes"])
    assert set(labels) <= safe
    assert labels[attrs.GEN_AI_REQUEST_MODEL] == MODEL
    for exemplar in point.get("exemplars", []):
        filtered = otlp_attributes(exemplar.get("filteredAttributes"))
        assert set(filtered) <= safe
        assert all(SECRETS[0].core not in str(v) for v in filtered.values())


def test_otlp_fields_outside_attributes_are_dropped_or_replaced(landed: Landed) -> None:
    """trace_state dropped, schema_url only upstream's, scope.version only a version,
    metric units from the registry, unknown metrics nowhere."""
    for store, text in _stores(landed).items():
        assert SENDER_TRACE_STATE not in text, store
        assert SENDER_SCHEMA_URL not in text, store
        assert prometheus_label(UNKNOWN_METRIC) not in text, store
        assert UNKNOWN_METRIC not in text, store
    assert OTEL_SCHEMA_URL in landed.tempo
    for span in landed.spans:
        assert not span.get("traceState"), span.get("traceState")
    (starts,) = [m for m in landed.business_metrics if m["name"] == metrics.CARET_TASK_STARTS.name]
    assert starts["unit"] == metrics.CARET_TASK_STARTS.unit
    assert starts["description"] == " ".join(metrics.CARET_TASK_STARTS.brief.split())


def test_metric_label_off_its_shape_becomes_other(landed: Landed) -> None:
    label = prometheus_label(attrs.ERROR_TYPE)
    values = {series.get(label) for series in landed.prometheus if label in series}
    assert values == {"other"}, values
