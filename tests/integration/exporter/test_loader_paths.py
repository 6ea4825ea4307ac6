"""The loader's two paths on PostgreSQL: a fresh batch is COPYed straight into the table,
a batch holding a stored row falls back to staging and ``ON CONFLICT DO NOTHING`` - and
either way every row is stored once, the rollup queue gets exactly the inserted keys,
deleted users' events are dropped, and a value is stored alike."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from integration.exporter.exporter_helpers import PSEUDONYMIZER, event, pseudonym, query
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from caret_otel.exporters.postgres.deletion import forget, pseudonym_digest
from caret_otel.exporters.postgres.event_rows import EVENT_COLUMNS, AcceptWindow, EventRowBuilder
from caret_otel.exporters.postgres.loader import (
    EVENTS,
    FORGOTTEN_USER,
    METRIC_POINTS,
    Loader,
    StoreResult,
    Target,
)
from caret_otel.exporters.postgres.locks import FORGET_LOCK_KEY
from caret_otel.exporters.postgres.metric_rows import METRIC_COLUMNS, MetricRowBuilder
from caret_otel.otlp.build import AttributeValue, any_value, logs_request
from caret_otel.otlp.values import unix_nano
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as ev
from caret_otel.semconv import metrics

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
Row = tuple[Any, ...]
ID = EVENT_COLUMNS.index("event_id")
TS = EVENT_COLUMNS.index("event_ts")


def decode(records: Sequence[LogRecord], now: datetime = NOW) -> list[Row]:
    decoded = EventRowBuilder(AcceptWindow.at(now, 30)).decode(logs_request(records))
    assert decoded.refusals.total == 0, decoded.refusals.summary()
    return decoded.rows


def rows(count: int) -> list[Row]:
    return decode(
        [
            event(f"u{n % 7}", NOW - timedelta(minutes=n), ev.CARET_TASK_CREATED)
            for n in range(count)
        ]
    )


def rows_of(users: Sequence[str]) -> list[Row]:
    return decode([event(user, NOW - timedelta(hours=1), ev.CARET_TASK_CREATED) for user in users])


def keys(batch: Sequence[Row]) -> Counter[tuple[str, datetime]]:
    return Counter((row[ID], row[TS]) for row in batch)


def queued(url: str) -> list[Counter[tuple[str, datetime]]]:
    """The keys of each ``raw.rollup_batches`` row, in queue order."""
    batches = query(url, "SELECT event_ids, event_tss FROM raw.rollup_batches ORDER BY batch_id")
    return [Counter(zip(ids, tss, strict=True)) for ids, tss in batches]


def stored(url: str) -> Counter[tuple[str, datetime]]:
    return Counter(query(url, "SELECT event_id, event_ts FROM raw.events"))


def store(url: str, batch: Sequence[Row], loader: Loader | None = None) -> StoreResult:
    with psycopg.connect(url, autocommit=True) as conn:
        return (loader or Loader()).store_events(conn, batch)


def counts(result: StoreResult) -> tuple[int, int, int]:
    return result.received, result.inserted, result.duplicates


def test_a_fresh_batch_is_copied_and_its_keys_queued(database: str) -> None:
    batch = rows(5)
    result = store(database, batch)
    assert (result.path, counts(result)) == ("copy", (5, 5, 0))
    assert stored(database) == keys(batch)
    assert queued(database) == [keys(batch)]


def test_a_redelivered_batch_falls_back_to_staging_and_queues_nothing(database: str) -> None:
    batch = rows(5)
    loader = Loader()
    assert store(database, batch, loader).path == "copy"
    again = store(database, batch, loader)
    assert (again.path, counts(again)) == ("staging", (5, 0, 5))
    assert stored(database) == keys(batch)
    assert queued(database) == [keys(batch)]


def test_a_partly_redelivered_batch_stores_and_queues_only_the_new_rows(database: str) -> None:
    batch = rows(8)
    first, second = batch[:5], batch[3:]  # two rows in both
    assert store(database, first).path == "copy"
    result = store(database, second)
    assert (result.path, counts(result)) == ("staging", (5, 3, 2))
    assert stored(database) == keys(batch)
    assert queued(database) == [keys(first), keys(batch[5:])]


def test_an_event_twice_in_one_batch_is_stored_and_queued_once(database: str) -> None:
    batch = rows(3)
    result = store(database, [*batch, batch[1]])
    assert (result.path, counts(result)) == ("staging", (4, 3, 1))
    assert stored(database) == keys(batch)
    assert queued(database) == [keys(batch)]


def _wait_for_lock_waiters(conn: psycopg.Connection[Any], waiters: int) -> None:
    deadline = time.monotonic() + 30
    sql = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    while conn.execute(sql).fetchone() != (waiters,):
        assert time.monotonic() < deadline, f"{waiters} load(s) never waited for the lock"
        time.sleep(0.01)


def _hold_forget_lock(url: str) -> psycopg.Connection[Any]:
    """A connection holding the deletion lock, as a deletion in progress does: loads wait
    for it to commit."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("BEGIN")
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (FORGET_LOCK_KEY,))
    return conn


def test_two_connections_delivering_a_batch_at_once_store_and_queue_each_row_once(
    database: str,
) -> None:
    batch = rows(400)
    loader = Loader()  # shared, as by the exporter's request threads
    with ThreadPoolExecutor(max_workers=2) as pool, _hold_forget_lock(database) as blocker:
        # both wait for the lock, then load at the same moment
        deliveries = [pool.submit(store, database, batch, loader) for _ in range(2)]
        _wait_for_lock_waiters(blocker, 2)
        blocker.execute("COMMIT")
        results = sorted((f.result(timeout=60) for f in deliveries), key=lambda r: r.inserted)
    loser, winner = results
    assert (winner.path, counts(winner)) == ("copy", (400, 400, 0))
    assert (loser.path, counts(loser)) == ("staging", (400, 0, 400))
    assert stored(database) == keys(batch)
    assert queued(database) == [keys(batch)]


@pytest.fixture
def deleted_at(database: str) -> datetime:
    """alice deleted on request; when."""
    forget(database, PSEUDONYMIZER.all_pseudonyms("alice"))
    [(at,)] = query(
        database,
        "SELECT forgotten_at FROM privacy.forgotten_pseudonyms WHERE digest = %s",
        (pseudonym_digest(pseudonym("alice")),),
    )
    assert isinstance(at, datetime)
    return at


def test_deleted_users_events_are_dropped_on_both_paths(
    database: str, deleted_at: datetime
) -> None:
    def batch(*events: tuple[str, timedelta]) -> list[Row]:
        records = [event(who, deleted_at + delta, ev.CARET_TASK_CREATED) for who, delta in events]
        return decode(records, now=deleted_at)

    # "after": beyond the deletion plus IN_FLIGHT_SKEW (5 min), so surely received after it
    before, at, after = -timedelta(minutes=5), timedelta(0), timedelta(minutes=10)
    fresh = batch(("alice", before), ("alice", at), ("alice", after), ("bob", before))
    copied = store(database, fresh)
    assert (copied.path, counts(copied)) == ("copy", (4, 2, 0))
    assert copied.refusals.counts == {FORGOTTEN_USER: 2}  # up to the deletion (+ skew)
    kept = [fresh[2], fresh[3]]

    later = batch(("alice", before), ("alice", after), ("carol", before))
    staged = store(database, [fresh[3], *later])  # bob's event again: staging
    assert (staged.path, counts(staged)) == ("staging", (4, 2, 1))
    assert staged.refusals.counts == {FORGOTTEN_USER: 1}
    kept += [later[1], later[2]]

    assert stored(database) == keys(kept)
    assert queued(database) == [keys(kept[:2]), keys(kept[2:])]


@pytest.mark.parametrize("path", ["copy", "staging"])
def test_a_deletion_committed_while_a_load_waits_for_the_lock_applies_to_it(
    database: str, path: str
) -> None:
    alice, bob = rows_of(("alice", "bob"))
    if path == "staging":
        store(database, [bob])
    with ThreadPoolExecutor(max_workers=1) as pool, _hold_forget_lock(database) as deletion:
        deletion.execute(
            "INSERT INTO privacy.forgotten_pseudonyms (digest, forgotten_at) VALUES (%s, %s)",
            (pseudonym_digest(pseudonym("alice")), NOW),
        )
        load = pool.submit(store, database, [alice, bob])
        _wait_for_lock_waiters(deletion, 1)
        deletion.execute("COMMIT")
        result = load.result(timeout=60)
    expected = (2, 1, 0) if path == "copy" else (2, 0, 1)
    assert (result.path, counts(result)) == (path, expected)
    assert result.refusals.counts == {FORGOTTEN_USER: 1}
    assert stored(database) == keys([bob])


AWKWARD: list[dict[str, AttributeValue]] = [
    {
        attrs.CARET_CREDITS_AMOUNT: 0.1 + 0.2,  # 0.30000000000000004; float8::numeric: 0.3
        attrs.CARET_API_DURATION: 1 / 3,
        attrs.CARET_API_COST: 2 / 3,
        attrs.GEN_AI_TOOL_NAME: 'quote " backslash \\ tab \t newline \n ü 😀',
        attrs.GEN_AI_USAGE_INPUT_TOKENS: 2**40,
    },
    {attrs.CARET_CREDITS_AMOUNT: 1e-7, attrs.CARET_API_DURATION: 1e300},
    {attrs.CARET_CREDITS_AMOUNT: 123456789.12345679, attrs.CARET_API_COST: -0.0},
]


def test_both_paths_store_a_value_alike(database: str) -> None:
    def twin(values: dict[str, AttributeValue]) -> LogRecord:
        return event("dave", NOW - timedelta(hours=1), ev.CARET_TASK_TOKENS, values)

    copied = decode([twin(values) for values in AWKWARD])
    assert store(database, copied).path == "copy"
    staged = decode([twin(values) for values in AWKWARD])  # the same, under new event ids
    assert store(database, [copied[0], *staged]).path == "staging"

    def stored_values(batch: list[Row]) -> list[tuple[Any, ...]]:
        # as PostgreSQL prints them: numeric keeps every digit it was given
        return [
            query(
                database,
                "SELECT (to_jsonb(e) - 'event_id' - 'received_at')::text, credits"
                " FROM raw.events e WHERE event_id = %s",
                (row[ID],),
            )[0]
            for row in batch
        ]

    assert stored_values(staged) == stored_values(copied)
    # the shortest repr of the float, exactly: not float8::numeric's 15 digits
    credits = [c for _, c in stored_values(copied)]
    assert credits == [Decimal(repr(v[attrs.CARET_CREDITS_AMOUNT])) for v in AWKWARD]
    assert credits[0] == Decimal("0.30000000000000004")


def metrics_request(values: Sequence[float], plan: str = "pro") -> ExportMetricsServiceRequest:
    """A credits counter with one point per value (a minute apart) and a histogram."""
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    resource.resource.attributes.append(KeyValue(key=attrs.SERVICE_NAME, value=any_value("gw")))
    scope = resource.scope_metrics.add()
    counter = scope.metrics.add(name=metrics.CARET_CREDITS_CONSUMED.name, unit="{credit}")
    counter.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    counter.sum.is_monotonic = True
    for n, value in enumerate(values):
        point = counter.sum.data_points.add(
            start_time_unix_nano=unix_nano(NOW - timedelta(minutes=n + 1)),
            time_unix_nano=unix_nano(NOW - timedelta(minutes=n)),
            as_double=value,
        )
        point.attributes.append(KeyValue(key=attrs.CARET_PLAN_NAME, value=any_value(plan)))
    duration = scope.metrics.add(name=metrics.GEN_AI_CLIENT_OPERATION_DURATION.name, unit="s")
    duration.histogram.aggregation_temporality = (
        AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    )
    histogram = duration.histogram.data_points.add(
        start_time_unix_nano=unix_nano(NOW - timedelta(minutes=1)),
        time_unix_nano=unix_nano(NOW),
        count=3,
        sum=0.1 + 0.2,
        min=1 / 3,
        max=1e300,
        explicit_bounds=[0.1, 2 / 3],
        bucket_counts=[1, 1, 1],
    )
    histogram.attributes.append(KeyValue(key=attrs.CARET_PLAN_NAME, value=any_value(plan)))
    return request


def points(request: ExportMetricsServiceRequest) -> list[Row]:
    decoded = MetricRowBuilder(AcceptWindow.at(NOW, 30)).decode(request)
    assert decoded.refusals.total == 0, decoded.refusals.summary()
    return decoded.rows


def test_metric_points_take_both_paths_and_store_a_value_alike(database: str) -> None:
    values = [0.1 + 0.2, 1e-7, float("inf"), float("nan")]
    batch = points(metrics_request(values))
    loader = Loader()
    with psycopg.connect(database, autocommit=True) as conn:
        fresh = loader.store_metric_points(conn, batch)
        again = loader.store_metric_points(conn, batch)
        # one more point of the series: the others are duplicates
        grown = points(metrics_request([*values, 5.0]))
        partly = loader.store_metric_points(conn, grown)
        # the same values under another series, through staging
        twins = points(metrics_request(values, plan="free"))
        staged = loader.store_metric_points(conn, [batch[0], *twins])
    assert (fresh.path, counts(fresh)) == ("copy", (5, 5, 0))
    assert (again.path, counts(again)) == ("staging", (5, 0, 5))
    assert (partly.path, counts(partly)) == ("staging", (6, 1, 5))
    assert (staged.path, counts(staged)) == ("staging", (6, 5, 1))
    assert query(database, "SELECT count(*) FROM raw.metric_points") == [(11,)]

    columns = [c for c in METRIC_COLUMNS if c not in ("series_hash", "attrs")]
    listed = ", ".join(f"{c}::text" for c in columns)

    def stored_values(plan: str) -> list[tuple[Any, ...]]:
        return query(
            database,
            f"SELECT {listed} FROM raw.metric_points WHERE attrs ->> %s = %s"
            " ORDER BY metric_name, point_ts",
            (attrs.CARET_PLAN_NAME, plan),
        )

    pro, free = stored_values("pro"), stored_values("free")
    value = columns.index("value")
    assert free == [p for p in pro if p[value] != "5"]
    assert Counter(p[value] for p in free) == Counter(
        ["0.30000000000000004", "1e-07", "Infinity", "NaN", None]  # None: the histogram
    )


@pytest.mark.parametrize("target", [EVENTS, METRIC_POINTS], ids=lambda t: t.table)
def test_a_targets_key_is_its_tables_primary_key(database: str, target: Target) -> None:
    # the staging insert sorts by it (overlapping redeliveries lock rows in one order)
    columns = query(
        database,
        "SELECT a.attname FROM pg_index i"
        " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
        " WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n",
        (target.table,),
    )
    assert tuple(name for (name,) in columns) == target.key
