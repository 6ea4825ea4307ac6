"""The load path's guarantees on PostgreSQL: one bad row is refused alone (also when found
after falling back to staging), a partition dropped behind the loader's back is
recreated, and partitions appear on demand."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from integration.exporter.exporter_helpers import event, query

from caret_otel.exporters.postgres import loader as loader_module
from caret_otel.exporters.postgres.event_rows import EVENT_COLUMNS, AcceptWindow, EventRowBuilder
from caret_otel.exporters.postgres.loader import DB_REFUSED, Loader
from caret_otel.otlp.build import logs_request
from caret_otel.semconv import events as ev

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def rows(count: int, start: datetime = NOW) -> list[tuple[object, ...]]:
    records = [
        event(f"u{n}", start - timedelta(minutes=n), ev.CARET_TASK_CREATED) for n in range(count)
    ]
    return EventRowBuilder(AcceptWindow.at(NOW, 30)).decode(logs_request(records)).rows


def test_a_row_postgres_refuses_is_refused_alone(database: str) -> None:
    good = rows(4)
    bad = list(good[2])
    bad[0] = "broken-row"
    bad[EVENT_COLUMNS.index("attrs")] = "{not json"
    batch = [*good[:2], tuple(bad), *good[2:]]
    with psycopg.connect(database, autocommit=True) as conn:
        result = Loader().store_events(conn, batch)
    assert (result.received, result.inserted, result.duplicates) == (5, 4, 0)
    assert result.refusals.counts == {DB_REFUSED: 1}
    assert "{not json" not in result.refusals.summary()  # no stored value in messages
    assert query(database, "SELECT count(*) FROM raw.events") == [(4,)]
    assert query(database, "SELECT count(*) FROM raw.events WHERE event_id = 'broken-row'") == [
        (0,)
    ]


def test_a_row_refused_after_falling_back_to_staging_is_refused_alone(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    stored = rows(1)
    fresh = rows(400, NOW - timedelta(minutes=1))
    bad = list(fresh[-1])
    bad[0] = "broken-row"
    bad[EVENT_COLUMNS.index("attrs")] = "{not json"
    # The COPY meets the duplicate first (rows are inserted in buffers of at most 64 kB,
    # then checked against the primary key); the staging COPY then meets the bad row.
    batch = [*stored, *fresh, tuple(bad)]
    loader = Loader()
    with psycopg.connect(database, autocommit=True) as conn:
        assert loader.store_events(conn, stored).inserted == 1
        with caplog.at_level(logging.DEBUG, logger=loader_module.__name__):
            result = loader.store_events(conn, batch)
    fell_back = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert fell_back[0].startswith("raw.events: a batch of 402 row(s) holds a stored row")
    assert result.path == "staging"
    assert (result.received, result.inserted, result.duplicates) == (402, 400, 1)
    assert result.refusals.counts == {DB_REFUSED: 1}
    assert query(database, "SELECT count(*) FROM raw.events") == [(401,)]
    queued = query(
        database, "SELECT count(*), count(DISTINCT k) FROM raw.rollup_batches, unnest(event_ids) k"
    )
    assert queued == [(401, 401)]


def test_a_partition_dropped_behind_the_loaders_back_is_created_again(database: str) -> None:
    loader = Loader()
    with psycopg.connect(database, autocommit=True) as conn:
        assert loader.store_events(conn, rows(2)).inserted == 2
        conn.execute("SELECT meta.drop_partitions_before('raw.events', '2026-04-30')")
        # the loader still believes the day's partition exists
        assert loader.store_events(conn, rows(3)).inserted == 3
    assert query(database, "SELECT count(*) FROM raw.events") == [(3,)]


def test_partitions_are_created_for_every_day_of_a_batch(database: str) -> None:
    spread = [r for day in range(5) for r in rows(1, NOW - timedelta(days=day))]
    with psycopg.connect(database, autocommit=True) as conn:
        assert Loader().store_events(conn, spread).inserted == 5
    names = query(
        database,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'raw.events'::regclass ORDER BY 1",
    )
    assert [n for (n,) in names] == [f"events_p202603{d}" for d in range(27, 32)]
