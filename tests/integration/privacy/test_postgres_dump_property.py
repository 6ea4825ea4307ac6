"""Property: hostile values sent to the gateway - in every client property and client-info
field of client events, and in every attribute and OTLP string field of OTLP logs and
metrics - never reach PostgreSQL. The real gateway (in-process server) exports to the real
business exporter (its HTTP app), which loads a real PostgreSQL; then every row of every
table is read back and scanned for the planted needles and for control and format
characters. Well-formed sentinel events sent beside the hostile ones must be stored (the
path does not win by refusing everything)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from fixtures.services import SinkCollector, migrated_database, wait_until
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from integration.exporter.exporter_helpers import RunningExporter, dump, running_exporter, tables
from integration.gateway.gateway_support import AUTH, INGEST, SERVICE, SERVICE_AUTH
from integration.pipeline.pipeline_support import any_value, key_values
from integration.privacy.hostile import (
    GOOD,
    POLICY,
    UNKNOWN_KEY,
    Canary,
    Planter,
    has_control_or_format,
    leaked,
    needles,
)

from caret_otel.core import environment_variables as env_names
from caret_otel.processors.privacy.pseudonyms import generate_key_entry
from caret_otel.processors.privacy.redaction import CONTROL_RE
from caret_otel.receivers.gateway.config import GatewayConfig
from caret_otel.receivers.gateway.runtime import build_gateway
from caret_otel.receivers.gateway.server import BackgroundServer
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events, metrics
from caret_otel.stack import PostgresServer
from caret_otel.stack.ports import free_port

pytestmark = pytest.mark.integration

SENTINEL_MODEL = f"claude-sentinel-{uuid.uuid4().hex[:8]}"
CLIENT_EVENT_TYPES = ("task.created", "task.completed", "task.conversation_turn", "user.opt_in")
PROPERTIES_PER_EVENT = 48


@dataclass
class Stack:
    database_url: str
    gateway: httpx.Client
    exporter: RunningExporter


@pytest.fixture(scope="module")
def stack(
    postgres: PostgresServer, sink_collector: SinkCollector, services_dir: Path
) -> Iterator[Stack]:
    """Gateway -> business exporter -> PostgreSQL (traces, which the exporter does not
    take, go to the sink where Tempo would be)."""
    url = migrated_database(postgres, f"privacy_dump_{uuid.uuid4().hex[:8]}")
    with running_exporter(url) as exporter:
        env = {
            env_names.CARET_OTEL_INGEST_TOKENS: INGEST,
            env_names.CARET_OTEL_SERVICE_TOKENS: SERVICE,
            env_names.CARET_OTEL_ADMIN_TOKEN: "admin-token-for-privacy-dump-0123",
            env_names.CARET_OTEL_DEV_VOLATILE_CONSENT: "1",
            env_names.CARET_OTEL_PSEUDONYM_KEYS: generate_key_entry("pd"),
            env_names.OTEL_EXPORTER_OTLP_ENDPOINT: sink_collector.http_url,
            env_names.OTEL_METRIC_EXPORT_INTERVAL: "300",
            # OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT (used as is): logs and metrics to the exporter.
            **{
                f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT": f"{exporter.url}/v1/{signal}"
                for signal in ("logs", "metrics")
            },
        }
        gateway = build_gateway(GatewayConfig.from_env(env), environ=env)
        server = BackgroundServer(gateway, free_port())
        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield Stack(url, client, exporter)
        server.stop()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _client_events(p: Planter, event_type: str) -> list[dict[str, Any]]:
    """Hostile values under every client property (a few events, each under the gateway's
    property limit), under client_info and the identifiers; each event twice: as drawn
    (control characters get it refused whole) and with control characters removed (so
    that it is accepted and its other values are judged)."""
    names = sorted(POLICY.client_properties)
    out = []
    for start in range(0, len(names), PROPERTIES_PER_EVENT):
        properties: dict[str, Any] = {}
        for name in names[start : start + PROPERTIES_PER_EVENT]:
            key = POLICY.client_properties[name]
            properties[name] = p.text() if POLICY.attributes[key].free_text else p.any()
        properties["hostileExtra"] = p.any()
        event = {
            "event_type": event_type,
            "user_id_hash": p.any(),
            "session_id": p.any(),
            "timestamp": _iso(datetime.now(UTC) - timedelta(seconds=2)),
            "properties": properties,
            "client_info": {field: p.any() for field in POLICY.client_info} | {"hostname": p.any()},
        }
        out += [event, _without_controls(event)]
    return out


def _without_controls(value: Any) -> Any:
    if isinstance(value, str):
        return CONTROL_RE.sub("", value)
    if isinstance(value, dict):
        return {k: _without_controls(v) for k, v in value.items()}
    return value


def _sentinel_event(user: str) -> dict[str, Any]:
    return {
        "event_type": "task.created",
        "user_id_hash": user,
        "session_id": f"session-{user}",
        "timestamp": _iso(datetime.now(UTC) - timedelta(seconds=1)),
        "properties": {"api_provider": "anthropic", "model": SENTINEL_MODEL, "task_id": user},
        "client_info": {"version": "1.0.0", "platform": "vscode", "language": "ko"},
    }


def _otlp_logs(p: Planter, user: str) -> dict[str, Any]:
    now = time.time_ns()
    hostile = [
        {
            "timeUnixNano": str(now - 10**9),
            "eventName": name,
            "severityText": p.text(),
            "body": any_value(p.text() if index % 2 else {**p.attributes(), "nested": p.any()}),
            "attributes": key_values(p.attributes()),
        }
        for index, name in enumerate(
            (events.CARET_TASK_CREATED.name, events.CARET_TASK_COMPLETED.name, p.text())
        )
    ]
    sentinel = {
        "timeUnixNano": str(now),
        "eventName": events.CARET_TASK_CREATED.name,
        "attributes": key_values(
            {
                attrs.CARET_EVENT_ID: uuid.uuid4().hex,
                attrs.ENDUSER_ID: f"otlp-{user}",
                attrs.GEN_AI_REQUEST_MODEL: SENTINEL_MODEL,
                **{k: v for k, v in GOOD.items() if k != attrs.GEO_COUNTRY_ISO_CODE},
            }
        ),
    }
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": key_values(p.attributes())},
                "schemaUrl": p.any(),
                "scopeLogs": [
                    {
                        "scope": {
                            "name": p.text(),
                            "version": p.any(),
                            "attributes": key_values(p.attributes()),
                        },
                        "logRecords": [*hostile, sentinel],
                    }
                ],
            }
        ]
    }


def _otlp_metrics(p: Planter) -> dict[str, Any]:
    now = time.time_ns()
    labels = {key: p.any() for key in sorted(POLICY.metric_attributes)} | {UNKNOWN_KEY: p.any()}
    point = {
        "asInt": "2",
        "startTimeUnixNano": str(now - 10**9),
        "timeUnixNano": str(now),
        "attributes": key_values(labels),
    }
    return {
        "resourceMetrics": [
            {
                "resource": {"attributes": key_values(p.attributes())},
                "scopeMetrics": [
                    {
                        "scope": {"name": p.text(), "version": p.any()},
                        "metrics": [
                            {
                                "name": metrics.CARET_TASK_STARTS.name,
                                "unit": p.any(),
                                "description": p.any(),
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [point],
                                },
                            },
                            {
                                "name": f"custom.{p.any()}",
                                "gauge": {"dataPoints": [{"asInt": "1", "timeUnixNano": str(now)}]},
                            },
                        ],
                    }
                ],
            }
        ]
    }


@st.composite
def hostile_sends(
    draw: st.DrawFn,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], list[Canary]]:
    p = Planter(draw)
    user = uuid.uuid4().hex[:12]
    client = [e for t in CLIENT_EVENT_TYPES for e in _client_events(p, t)] + [_sentinel_event(user)]
    return client, _otlp_logs(p, user), _otlp_metrics(p), p.planted


def _post(client: httpx.Client, path: str, body: Any, headers: Mapping[str, str]) -> None:
    response = client.post(
        path, content=orjson.dumps(body), headers={"Content-Type": "application/json", **headers}
    )
    assert response.status_code in (200, 202), (path, response.status_code, response.text)


def _sentinels(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM raw.events WHERE model = %s", (SENTINEL_MODEL,)
        ).fetchone()
    return int(row[0]) if row else 0


def _schemas(url: str) -> list[str]:
    """Every schema but PostgreSQL's own: a table added later is scanned too."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname <> 'information_schema'"
        ).fetchall()
    return [row[0] for row in rows]


def _text(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_text(k), *_text(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _text(v)]
    return []


# The gateway's threads draw from the global `random` (span ids, export retry jitter) while
# Hypothesis draws an example; Hypothesis takes that for a strategy using `random`.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@given(example=hostile_sends())
@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
def test_nothing_hostile_reaches_a_postgres_dump(stack: Stack, example: Any) -> None:
    client_events, logs, metric_body, planted = example
    stored = _sentinels(stack.database_url)
    _post(stack.gateway, "/telemetry/events", client_events, AUTH)
    _post(stack.gateway, "/v1/logs", logs, SERVICE_AUTH)
    _post(stack.gateway, "/v1/metrics", metric_body, SERVICE_AUTH)
    wait_until(
        lambda: _sentinels(stack.database_url) >= stored + 2,
        timeout=30,
        what="both sentinel events in raw.events",
    )
    rows = dump(stack.database_url, tables(stack.database_url, _schemas(stack.database_url)))
    strings = _text([[list(row) for row in table] for table in rows.values()])
    text = json.dumps(strings, ensure_ascii=False, default=str)
    needle = leaked(needles(planted), text)
    if needle is not None:
        canary = next(c for c in planted if needle in c.needles)
        at = text.casefold().find(needle.casefold())
        pytest.fail(
            f"planted {canary.text!r} reached PostgreSQL: ...{text[max(0, at - 160) : at + 60]}..."
        )
    bad = [s for s in strings if has_control_or_format(s)]
    assert not bad, bad
