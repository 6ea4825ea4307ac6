"""Exactly-once storage under at-least-once delivery: a request delivered three times
leaves every table as delivering it once, and the order events arrive in does not change
any rollup."""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import orjson
import psycopg
import pytest
from google.protobuf import json_format
from integration.exporter.exporter_helpers import (
    dump,
    load,
    query,
    running_exporter,
    tables,
    wait_rolled_up,
)
from integration.exporter.synthetic import synthetic_events
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from caret_otel.exporters.postgres import trends
from caret_otel.otlp.build import logs_request

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
VIEWS = [
    "active_users",
    "retention",
    "lifecycle",
    "sessions_daily",
    "paid_conversion",
    "credits_daily",
    "model_usage_daily",
    "feature_usage_daily",
    "language_daily",
    "region_daily",
    "trends_monthly",
]


def test_a_request_delivered_three_times_leaves_every_table_as_delivering_it_once(
    database: str,
) -> None:
    now = datetime.now(UTC)
    records = synthetic_events(now - timedelta(minutes=1), users=8, days=4)
    body = gzip.compress(logs_request(records).SerializeToString())
    with running_exporter(database) as exporter:
        first = exporter.post("/v1/logs", body, **{"Content-Encoding": "gzip"})
        assert first.status_code == 200, first.text
        assert ExportLogsServiceResponse.FromString(first.content) == ExportLogsServiceResponse()
        wait_rolled_up(database)
        once = dump(database)

        for _ in range(2):
            again = exporter.post("/v1/logs", body, **{"Content-Encoding": "gzip"})
            assert again.status_code == 200
        # the same events as OTLP/JSON are the same events too
        as_json = orjson.dumps(json_format.MessageToDict(logs_request(records)))
        assert exporter.post("/v1/logs", as_json, "application/json").status_code == 200
        wait_rolled_up(database)
        thrice = dump(database)
        metrics = exporter.get("/metrics").text

    assert len(once["raw.events"]) == len(records)
    assert once["raw.rollup_batches"] == []
    assert set(once) == set(tables(database))
    for table in once:
        assert thrice[table] == once[table], f"{table} changed on redelivery"
    assert f'caret_exporter_dedup_hits_total{{signal="logs"}} {3 * len(records)}.0' in metrics
    assert f'caret_exporter_rows_written_total{{table="raw.events"}} {len(records)}.0' in metrics
    # the first delivery was COPYed straight in; the three redeliveries took the staging path
    assert 'caret_exporter_staging_loads_total{signal="logs"} 3.0' in metrics


def _rollups_and_views(url: str, as_of: date) -> dict[str, object]:
    with psycopg.connect(url, autocommit=True) as conn:
        trends.refresh_trends(conn, as_of=as_of)
    state: dict[str, object] = dict(
        dump(url, [t for t in tables(url) if not t.startswith(("meta.", "raw."))])
    )
    state["raw.events"] = dump(url, ["raw.events"], skip_columns=["received_at"])["raw.events"]
    for view in VIEWS:
        state[f"analytics.{view}"] = sorted(
            query(url, f"SELECT * FROM analytics.{view}", as_of=as_of),
            key=repr,
        )
    return state


def test_events_arriving_out_of_order_give_the_same_rollups(
    new_database: Callable[[], str],
) -> None:
    records = synthetic_events(NOW - timedelta(hours=1), users=14, days=9)
    shuffled = list(records)
    random.Random(3).shuffle(shuffled)
    # late events: the second half of the stream first, then the first half backwards
    late_first = records[len(records) // 2 :] + records[: len(records) // 2][::-1]

    in_order, random_order, late = new_database(), new_database(), new_database()
    load(in_order, records, now=NOW, batch=25)
    load(random_order, shuffled, now=NOW, batch=13)
    load(late, late_first, now=NOW, batch=40)

    expected = _rollups_and_views(in_order, NOW.date())
    assert expected["analytics.sessions_daily"]
    assert expected["agg.user_daily_usage"]
    for url in (random_order, late):
        got = _rollups_and_views(url, NOW.date())
        for name, rows in expected.items():
            assert got[name] == rows, f"{name} depends on arrival order"
