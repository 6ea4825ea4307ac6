"""Idempotent bulk load: ``COPY`` into a staging table, then one ``INSERT … SELECT …
ON CONFLICT DO NOTHING`` into the partitioned table, in one transaction.

For events, the keys actually inserted (never a redelivered duplicate) go to
``raw.rollup_batches`` (one row per transaction) in the same statement, so the rollup
job folds every event in exactly once. Events of users deleted on request are dropped up to the deletion time
(a Collector's persistent queue may deliver them after the deletion).

A batch that PostgreSQL refuses for its content (a data or constraint error) is split
and loaded row by row, so one bad record is refused on its own (OTLP partial success)
instead of failing the whole request forever.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

import psycopg
from psycopg import sql

from .event_rows import EVENT_COLUMNS, Refusals
from .locks import FORGET_LOCK_KEY
from .metric_rows import METRIC_COLUMNS

log = logging.getLogger(__name__)

Connection = psycopg.Connection[Any]
FORGOTTEN_USER: Final = "deleted_user"
DB_REFUSED: Final = "refused_by_database"
_OPEN: Final = (psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR)


@dataclass(frozen=True)
class Target:
    """A partitioned table, its staging table and the columns a row tuple holds."""

    table: str
    staging: str
    columns: tuple[str, ...]
    time_column: str
    enqueue_for_rollup: bool
    wire_types: dict[str, str]
    """Type of a column as the rows carry it, where it is not ``text``. Staging is COPYed
    in binary (PostgreSQL then parses nothing); ``casts`` convert on insert."""
    casts: dict[str, str]
    """Column -> type of the table column, where staging holds another type."""

    def wire_type(self, column: str) -> str:
        return self.wire_types.get(column, "text")


EVENTS: Final = Target(
    table="raw.events",
    staging="staging_events",
    columns=EVENT_COLUMNS,
    time_column="event_ts",
    enqueue_for_rollup=True,
    wire_types={
        "event_ts": "timestamptz",
        "tokens_in": "int8",
        "tokens_out": "int8",
        "tokens_cache_read": "int8",
        "tokens_cache_write": "int8",
        "credits": "float8",  # exact decimal on the cast: Python's float repr is shortest
        "latency_s": "float8",
    },
    casts={"credits": "numeric", "attrs": "jsonb"},
)
METRIC_POINTS: Final = Target(
    table="raw.metric_points",
    staging="staging_metric_points",
    columns=METRIC_COLUMNS,
    time_column="point_ts",
    enqueue_for_rollup=False,
    wire_types={
        "start_ts": "timestamptz",
        "point_ts": "timestamptz",
        "monotonic": "bool",
        "value": "float8",
        "count": "int8",
        "sum": "float8",
        "min": "float8",
        "max": "float8",
    },
    casts={"buckets": "jsonb", "resource": "jsonb", "attrs": "jsonb"},
)


@dataclass
class StoreResult:
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    refusals: Refusals = field(default_factory=Refusals)


class PartitionCache:
    """Partitions known to exist, so ``meta.ensure_partition`` runs once per new day."""

    def __init__(self) -> None:
        self._known: set[tuple[str, date]] = set()

    def ensure(self, conn: Connection, table: str, days: Iterable[date]) -> None:
        missing = sorted({d for d in days if (table, d) not in self._known})
        for day in missing:
            # Outside the load transaction: creating a partition locks the parent table.
            conn.execute("SELECT meta.ensure_partition(%s, %s)", (table, day))
            self._known.add((table, day))

    def clear(self) -> None:
        self._known.clear()


def _is_missing_partition(exc: psycopg.Error) -> bool:
    return isinstance(exc, psycopg.errors.CheckViolation) and "no partition" in str(exc)


def _begin_sql(target: Target) -> sql.Composed:
    """Open the load transaction: take the deletion lock and make sure this session's
    staging table exists (it is created once per connection and emptied on commit)."""
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(target.wire_type(c)))
        for c in target.columns
    )
    return sql.SQL(
        "BEGIN;"
        "SELECT pg_advisory_xact_lock_shared({lock});"
        "CREATE TEMP TABLE IF NOT EXISTS {staging} ({definition}) ON COMMIT DELETE ROWS"
    ).format(
        lock=sql.Literal(FORGET_LOCK_KEY),
        staging=sql.Identifier(target.staging),
        definition=definition,
    )


_DROP_FORGOTTEN: Final = sql.SQL(
    "DELETE FROM {staging} s USING privacy.forgotten_pseudonyms f"
    " WHERE s.user_pseudonym IS NOT NULL"
    " AND f.digest = encode(sha256(convert_to(s.user_pseudonym, 'UTF8')), 'hex')"
    " AND s.event_ts <= f.forgotten_at"
)


def _finish_sql(target: Target) -> sql.Composed:
    """Move the staged rows into the table and commit. For events, the rows of deleted
    users are dropped first (one result set) and the insert answers the number of rows
    it queued for the rollup (0 or 1 row)."""
    cols = sql.SQL(", ").join(map(sql.Identifier, target.columns))
    values = sql.SQL(", ").join(
        sql.SQL("{}::{}").format(sql.Identifier(c), sql.SQL(target.casts[c]))
        if c in target.casts
        else sql.Identifier(c)
        for c in target.columns
    )
    staging = sql.Identifier(target.staging)
    insert = sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT {values} FROM {staging} ON CONFLICT DO NOTHING"
    ).format(table=sql.SQL(target.table), cols=cols, values=values, staging=staging)
    if not target.enqueue_for_rollup:
        return sql.SQL("{insert}; COMMIT").format(insert=insert)
    return sql.SQL(
        "{drop_forgotten};"
        "WITH inserted AS ({insert} RETURNING event_id, event_ts)"
        " INSERT INTO raw.rollup_batches (event_ids, event_tss)"
        " SELECT array_agg(event_id), array_agg(event_ts) FROM inserted HAVING count(*) > 0"
        " RETURNING cardinality(event_ids);"
        "COMMIT"
    ).format(drop_forgotten=_DROP_FORGOTTEN.format(staging=staging), insert=insert)


class Loader:
    """Writes decoded rows; one instance per process (it caches known partitions)."""

    def __init__(self) -> None:
        self.partitions = PartitionCache()
        self._begin = {t.table: _begin_sql(t) for t in (EVENTS, METRIC_POINTS)}
        self._finish = {t.table: _finish_sql(t) for t in (EVENTS, METRIC_POINTS)}
        self._copy = {
            t.table: sql.SQL("COPY {staging} ({cols}) FROM STDIN (FORMAT BINARY)").format(
                staging=sql.Identifier(t.staging),
                cols=sql.SQL(", ").join(map(sql.Identifier, t.columns)),
            )
            for t in (EVENTS, METRIC_POINTS)
        }

    def store_events(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> StoreResult:
        return self._store(conn, EVENTS, rows)

    def store_metric_points(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> StoreResult:
        return self._store(conn, METRIC_POINTS, rows)

    def _store(
        self, conn: Connection, target: Target, rows: Sequence[tuple[Any, ...]]
    ) -> StoreResult:
        """Store ``rows`` (autocommit connection); refused rows are reported, not raised."""
        if not rows:
            return StoreResult()
        try:
            return self._store_with_partitions(conn, target, rows)
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            if len(rows) == 1:
                result = StoreResult(received=1)
                # SQLSTATE and error class only: PostgreSQL's message may quote the value.
                detail = f"SQLSTATE {exc.sqlstate}, {type(exc).__name__}"
                result.refusals.add(DB_REFUSED, f"PostgreSQL refused a record ({detail})")
                log.warning("PostgreSQL refused a %s row (%s)", target.table, detail)
                return result
            log.warning(
                "PostgreSQL refused a batch of %d %s rows (%s); loading them one by one",
                len(rows),
                target.table,
                type(exc).__name__,
            )
            total = StoreResult()
            for row in rows:
                part = self._store(conn, target, [row])
                total.received += part.received
                total.inserted += part.inserted
                total.duplicates += part.duplicates
                total.refusals.merge(part.refusals)
            return total

    def _store_with_partitions(
        self, conn: Connection, target: Target, rows: Sequence[tuple[Any, ...]]
    ) -> StoreResult:
        time_index = target.columns.index(target.time_column)
        days = {_utc_day(row[time_index]) for row in rows}
        self.partitions.ensure(conn, target.table, days)
        try:
            return self._store_once(conn, target, rows)
        except psycopg.errors.CheckViolation as exc:
            if not _is_missing_partition(exc):
                raise
            # The retention job dropped a partition this process thought existed.
            self.partitions.clear()
            self.partitions.ensure(conn, target.table, days)
            return self._store_once(conn, target, rows)

    def _store_once(
        self, conn: Connection, target: Target, rows: Sequence[tuple[Any, ...]]
    ) -> StoreResult:
        """One transaction in three round trips (BEGIN with the staging setup, the COPY,
        the insert with COMMIT), as a raw ``COPY`` takes (BEGIN, COPY, COMMIT): on a busy
        host every round trip waits for the backend to be scheduled again."""
        result = StoreResult(received=len(rows))
        with conn.cursor() as cur:
            try:
                cur.execute(self._begin[target.table])
                with cur.copy(self._copy[target.table]) as copy:
                    copy.set_types([target.wire_type(c) for c in target.columns])
                    for row in rows:
                        copy.write_row(row)
                cur.execute(self._finish[target.table])
            except BaseException:
                # An error ends the statement batch before its COMMIT.
                if conn.info.transaction_status in _OPEN:
                    conn.rollback()
                raise
            if target.enqueue_for_rollup:
                forgotten = cur.rowcount  # first result: the DELETE of deleted users' rows
                if forgotten > 0:
                    result.refusals.add(
                        FORGOTTEN_USER,
                        f"{forgotten} event(s) of users deleted on request, "
                        "dated before the deletion",
                        count=forgotten,
                    )
                cur.nextset()
                queued = cur.fetchone()
                result.inserted = int(queued[0]) if queued else 0
            else:
                result.inserted = max(cur.rowcount, 0)
        result.duplicates = result.received - result.refusals.total - result.inserted
        return result


def _utc_day(ts: datetime) -> date:
    return ts.date()  # rows carry UTC datetimes (see otlp_values.time_from_unix_nano)
