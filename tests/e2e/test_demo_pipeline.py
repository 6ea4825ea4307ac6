"""End to end on `caret-otel up` with simulated traffic (see conftest.py).

What the pipeline must show once the simulated traffic has been stored:

* ``raw.events`` holds exactly the events the gateway accepted (opted-out users'
  events are not accepted) plus the server's billing events, minus the deleted users';
* the gateway dropped exactly the events sent after an opt-out and rejected exactly
  the deliberately malformed ones;
* Prometheus has the upstream GenAI metrics and the caret metrics;
* the Tempo/Loki stand-in received the task and GenAI spans and the event log records;
* no planted secret reached any sink: PostgreSQL (a full ``pg_dump``), Prometheus
  (every series' labels and every label value) and the sink files.
"""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from e2e.conftest import RunningStack

from caret_otel.dashboards.promnames import prometheus_name
from caret_otel.sdk.genai.providers import OPERATION_CHAT
from caret_otel.semconv import events, metrics, spans
from caret_otel.stack.prometheus import wait_for_query

pytestmark = pytest.mark.e2e

# A model every run uses: proof that each scan reads real content (a scan that finds
# nothing because it read nothing would pass any secret).
KNOWN_MODEL = "claude-sonnet-4-5"


def test_raw_events_hold_accepted_events_minus_opted_out_and_deleted(
    running_stack: RunningStack,
) -> None:
    with psycopg.connect(running_stack.postgres_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM raw.events").fetchone()
    assert row is not None
    assert row[0] == running_stack.expected_stored_events
    for summary in running_stack.summaries:
        assert (
            summary["accepted"] + summary["opted_out"] + summary["rejected"]
            == summary["events_sent"]
        )
        assert summary["events_sent"] == summary["events_generated"]
        # The gateway dropped exactly what the clients sent after opting out ...
        assert summary["opted_out"] == summary["expected_opted_out"] > 0
        # ... and rejected exactly the malformed events (planted run only).
        assert summary["rejected"] == summary["expected_rejected"]
    assert running_stack.planted_summary["rejected"] > 0


def test_deleted_users_left_no_rows(running_stack: RunningStack) -> None:
    pseudonymizer = running_stack.info.credentials.pseudonymizer()
    deleted = [u for s in running_stack.summaries for u in s["deleted_user_ids"]]
    assert deleted, "the simulation sends deletion requests"
    pseudonyms = [p for user in deleted for p in pseudonymizer.all_pseudonyms(user)]
    with psycopg.connect(running_stack.postgres_dsn) as conn:
        found = conn.execute(
            "SELECT count(*) FROM raw.events WHERE user_pseudonym = ANY(%s)", (pseudonyms,)
        ).fetchone()
        audited = conn.execute("SELECT count(*) FROM privacy.deletion_requests").fetchone()
    assert found == (0,)
    assert audited == (len(deleted) + running_stack.extra_deletion_requests,)


def test_prometheus_has_genai_and_caret_metrics(running_stack: RunningStack) -> None:
    url = running_stack.prometheus_url
    wanted = [
        prometheus_name(metrics.GEN_AI_CLIENT_OPERATION_DURATION, "count"),
        prometheus_name(metrics.GEN_AI_CLIENT_TOKEN_USAGE, "bucket"),
        prometheus_name(metrics.CARET_TASK_STARTS),
        prometheus_name(metrics.CARET_TASK_DURATION, "count"),
        prometheus_name(metrics.CARET_TOKENS),
        prometheus_name(metrics.CARET_FEATURE_USES),
        prometheus_name(metrics.CARET_API_ERRORS),
        prometheus_name(metrics.CARET_SIGNUPS),
        prometheus_name(metrics.CARET_SESSION_ACTIVE),
    ]
    for name in wanted:
        result = wait_for_query(url, name, timeout=90)
        assert result, name
    # The GenAI series are the server side's real provider calls, per provider.
    providers = wait_for_query(
        url,
        f"count by (gen_ai_provider_name) ({wanted[0]})",
        until=lambda r: len(r) >= 3,
        timeout=90,
    )
    assert {r["metric"]["gen_ai_provider_name"] for r in providers} >= {"anthropic", "openai"}


def _records(path: Any, layout: tuple[str, str, str]) -> list[dict[str, Any]]:
    outer, middle, inner = layout
    found: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        for resource in orjson.loads(line).get(outer, []):
            for scope in resource.get(middle, []):
                found.extend(scope.get(inner, []))
    return found


def test_sink_received_spans_and_logs(running_stack: RunningStack) -> None:
    spans_seen = _records(
        running_stack.sink_paths["traces"], ("resourceSpans", "scopeSpans", "spans")
    )
    names = {span["name"] for span in spans_seen}
    assert spans.CARET_TASK in names
    # GenAI client spans: "{operation} {model}" from the server side's provider calls.
    assert any(name.startswith(f"{OPERATION_CHAT} claude-") for name in names), sorted(names)[:20]
    logs = _records(running_stack.sink_paths["logs"], ("resourceLogs", "scopeLogs", "logRecords"))
    event_names = {record.get("eventName", "") for record in logs}
    assert {
        events.CARET_TASK_CREATED.name,
        events.CARET_TASK_TOKENS.name,
        events.CARET_USER_OPT_OUT.name,
        events.CARET_USER_SIGNED_UP.name,
    } <= event_names


def _prometheus_text(url: str) -> str:
    """Every series' labels, every label name and every label value, as one text."""
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
        series = client.get("/api/v1/series", params={"match[]": '{__name__=~".+"}'}).json()["data"]
        label_names = client.get("/api/v1/labels").json()["data"]
        values = [client.get(f"/api/v1/label/{name}/values").json()["data"] for name in label_names]
    return orjson.dumps([series, label_names, values]).decode()


def _pg_dump(running_stack: RunningStack) -> str:
    result = subprocess.run(
        [str(running_stack.pg_dump), "--no-owner", running_stack.postgres_dsn],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return result.stdout


def test_no_planted_secret_reaches_any_sink(running_stack: RunningStack) -> None:
    needles = running_stack.needles
    assert len(needles) >= 10
    wait_for_query(
        running_stack.prometheus_url, prometheus_name(metrics.CARET_TASK_STARTS), timeout=90
    )
    sinks = {
        "postgresql (pg_dump)": _pg_dump(running_stack),
        "prometheus (series, labels, values)": _prometheus_text(running_stack.prometheus_url),
        **{
            f"sink {signal}": path.read_text() if path.exists() else ""
            for signal, path in running_stack.sink_paths.items()
        },
    }
    leaks = []
    for sink, text in sinks.items():
        if sink != "sink metrics":  # the sink's metrics leg is optional; the others must carry data
            assert KNOWN_MODEL in text, f"{sink} holds no traffic: the scan would prove nothing"
        lowered = text.lower()
        leaks += [f"{sink}: {needle!r}" for needle in needles if needle.lower() in lowered]
    assert not leaks, "planted secrets leaked:\n" + "\n".join(leaks)
