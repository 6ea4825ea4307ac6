"""Idempotent bulk load of decoded rows into the day-partitioned raw tables.

A duplicate (a row stored before) arrives only when the Collector redelivers a request
after a timeout or a failure, so a batch first takes the **copy** path: one transaction
that ``COPY``s the rows straight into the partitioned table, nearly as fast as a raw
``COPY``. A duplicate makes that COPY fail on the primary key (a unique violation, or a
deadlock with a concurrent delivery of the same rows); the transaction is rolled back
and the batch takes the **staging** path: ``COPY`` into a temporary table with the
target's column types, then one ``INSERT … SELECT … ON CONFLICT DO NOTHING``, which
stores exactly the rows not stored yet. Both paths send the rows in COPY's text format
into columns of the same types, so a value is stored alike whichever path it took.

Events are users' events. Their load transaction holds the deletion lock (shared) and
drops the events of users deleted on request up to the deletion time (a Collector's
persistent queue may deliver them after the deletion), judged by a bound on when the
gateway received them (``IN_FLIGHT_SKEW``) and by every pseudonym an event carries. The
keys of the events a statement inserted (never a redelivered duplicate's) are queued in
``raw.rollup_batches`` by a statement trigger on ``raw.events`` (migration 0008), one
row per statement, so the rollup job folds every event in exactly once whichever path
stored it, and the keys never travel back from the exporter.

A batch that PostgreSQL refuses for its content (a data or constraint error) is split
and loaded row by row, so one bad record is refused on its own (OTLP partial success)
instead of failing the whole request forever.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Final, Literal

import psycopg
from psycopg import sql

from .deletion import pseudonym_digest
from .event_rows import EVENT_COLUMNS, Refusals
from .locks import FORGET_LOCK_KEY
from .metric_rows import METRIC_COLUMNS

log = logging.getLogger(__name__)

Connection = psycopg.Connection[Any]
Cursor = psycopg.Cursor[Any]
Statement = sql.SQL | sql.Composed
LoadPath = Literal["copy", "staging"]
FORGOTTEN_USER: Final = "deleted_user"
DB_REFUSED: Final = "refused_by_database"
_OPEN: Final = (psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR)
# What a COPY straight into the table hits when a row is stored already (or is being
# stored by a concurrent transaction); the staging path stores such a batch exactly.
_DUPLICATE: Final = (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected)
_USER_INDEX: Final = EVENT_COLUMNS.index("user_pseudonym")
_EVENT_TS_INDEX: Final = EVENT_COLUMNS.index("event_ts")
_ATTRS_INDEX: Final = EVENT_COLUMNS.index("attrs")
_PSEUDONYM_IN_TEXT: Final = re.compile(r"v[A-Za-z0-9_-]{1,32}:[0-9a-f]{64}")
IN_FLIGHT_SKEW: Final = timedelta(seconds=300)
"""The gateway refuses events dated more than this after it received them (its
``CARET_OTEL_MAX_CLOCK_SKEW_SECONDS`` default), so an event dated ``t`` was received
after ``t - IN_FLIGHT_SKEW``: the in-flight filter judges by that bound on the receive
time, and an event dated in the future cannot slip past a deletion."""
# The same users recur in every batch: hash each pseudonym once.
_digest: Final = lru_cache(maxsize=1 << 16)(pseudonym_digest)


@dataclass(frozen=True)
class Target:
    """A partitioned table, its staging table and the columns a row tuple holds."""

    table: str
    staging: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    """The primary key."""
    time_column: str
    users_events: bool
    """Rows are users' events: loaded under the deletion lock, without deleted users'
    rows (the table's trigger queues their keys for the rollup)."""


EVENTS: Final = Target(
    table="raw.events",
    staging="staging_events",
    columns=EVENT_COLUMNS,
    key=("event_id", "event_ts"),
    time_column="event_ts",
    users_events=True,
)
METRIC_POINTS: Final = Target(
    table="raw.metric_points",
    staging="staging_metric_points",
    columns=METRIC_COLUMNS,
    key=("metric_name", "series_hash", "start_ts", "point_ts"),
    time_column="point_ts",
    users_events=False,
)


@dataclass
class StoreResult:
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    refusals: Refusals = field(default_factory=Refusals)
    path: LoadPath = "copy"
    """``staging`` when a transaction of the batch fell back to the idempotent insert
    (it held a duplicate), else ``copy``."""

    def add(self, other: StoreResult) -> None:
        self.received += other.received
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.refusals.merge(other.refusals)
        if other.path == "staging":
            self.path = "staging"


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


@dataclass(frozen=True)
class _Statements:
    """The SQL of one target, composed once."""

    begin: Statement
    """Open the transaction (events: and take the deletion lock, shared)."""
    begin_staging: Statement
    create_staging: Statement
    """This session's staging table: created once per connection, emptied on commit.
    ``CREATE TABLE … AS`` gives it the target's column types and none of its
    constraints or defaults, so the text COPY parses a value as the copy path does."""
    copy_into_table: Statement
    copy_into_staging: Statement
    finish_staging: Statement
    """Insert the staged rows that are not stored yet, and commit."""

    @classmethod
    def of(cls, target: Target) -> _Statements:
        cols = sql.SQL(", ").join(map(sql.Identifier, target.columns))
        table = sql.SQL(target.table)
        staging = sql.Identifier(target.staging)
        # In key order: two overlapping redeliveries in flight then take their row locks
        # in the same order and wait for each other instead of deadlocking.
        insert = sql.SQL(
            "INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging}"
            " ORDER BY {key} ON CONFLICT DO NOTHING"
        ).format(
            table=table,
            cols=cols,
            staging=staging,
            key=sql.SQL(", ").join(map(sql.Identifier, target.key)),
        )
        begin: Statement
        if target.users_events:
            begin = sql.SQL("BEGIN; SELECT pg_advisory_xact_lock_shared({})").format(
                sql.Literal(FORGET_LOCK_KEY)
            )
        else:
            # Metric points hold no user data: a deletion need not wait for them.
            begin = sql.SQL("BEGIN")
        create_staging = sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS"
            " AS SELECT {cols} FROM {table} WITH NO DATA"
        ).format(staging=staging, cols=cols, table=table)
        return cls(
            begin=begin,
            begin_staging=sql.SQL("{}; {}").format(begin, create_staging),
            create_staging=create_staging,
            copy_into_table=sql.SQL("COPY {table} ({cols}) FROM STDIN").format(
                table=table, cols=cols
            ),
            copy_into_staging=sql.SQL("COPY {staging} ({cols}) FROM STDIN").format(
                staging=staging, cols=cols
            ),
            finish_staging=sql.SQL("{insert}; COMMIT").format(insert=insert),
        )


# Only a deletion at or after a batch's oldest event can drop one of its events: usually
# there is none. Asking for those, rather than for the digests of the batch's few hundred
# distinct pseudonyms, saves hashing and sending them (~0.7 µs a row); the table holds the
# deletions of the raw window only (the retention job prunes it). Read in a statement of
# its own after the lock: a statement's snapshot is taken when it starts, and a deletion
# commits while the load waits for the lock.
_FORGOTTEN_SINCE: Final = sql.SQL(
    "SELECT digest, forgotten_at FROM privacy.forgotten_pseudonyms WHERE forgotten_at >= {}"
)


class Loader:
    """Writes decoded rows; one instance per process (it caches known partitions)."""

    def __init__(self) -> None:
        self.partitions = PartitionCache()
        self._statements = {t.table: _Statements.of(t) for t in (EVENTS, METRIC_POINTS)}

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
                total.add(self._store(conn, target, [row]))
            return total

    def _store_with_partitions(
        self, conn: Connection, target: Target, rows: Sequence[tuple[Any, ...]]
    ) -> StoreResult:
        time_index = target.columns.index(target.time_column)
        # Rows carry UTC datetimes (otlp_values.time_from_unix_nano): their date is the
        # partition's day. Inline, not a helper call: this runs once per stored row.
        days = {row[time_index].date() for row in rows}
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
        try:
            return self._load(conn, target, rows, "copy")
        except _DUPLICATE as exc:
            log.debug(
                "%s: a batch of %d row(s) holds a stored row (%s on %s);"
                " storing it through the staging table",
                target.table,
                len(rows),
                type(exc).__name__,
                exc.diag.constraint_name or "no constraint",
            )
        return self._load(conn, target, rows, "staging")

    def _load(
        self,
        conn: Connection,
        target: Target,
        rows: Sequence[tuple[Any, ...]],
        path: LoadPath,
    ) -> StoreResult:
        """Store ``rows`` in one transaction, by ``path``.

        Round trips (on a busy host each waits for the backend to be scheduled again):
        the copy path takes four for events (BEGIN with the lock and the deleted users'
        lookup, the COPY's start, its data, COMMIT) and two for metric points (a COPY
        commits on its own); a raw ``COPY`` in a transaction takes four (BEGIN, COPY
        start, data, COMMIT)."""
        statements = self._statements[target.table]
        staged = path == "staging"
        result = StoreResult(received=len(rows), path=path)
        with conn.cursor() as cur:
            try:
                if target.users_events:
                    rows = _begin_users_events(cur, statements, rows, result, staged)
                elif staged:
                    cur.execute(statements.begin_staging)
                if rows:
                    # Text format, as the staging path: a value is parsed alike on both.
                    copy_sql = (
                        statements.copy_into_staging if staged else statements.copy_into_table
                    )
                    with cur.copy(copy_sql) as copy:
                        for row in rows:
                            copy.write_row(row)
                if staged:
                    cur.execute(statements.finish_staging)
                    result.inserted = max(cur.rowcount, 0)  # the INSERT's, the first result
                else:
                    if target.users_events:
                        cur.execute("COMMIT")
                    result.inserted = len(rows)
            except BaseException:
                # An error ends the transaction (or the statement batch before its COMMIT).
                if conn.info.transaction_status in _OPEN:
                    conn.rollback()
                raise
        result.duplicates = result.received - result.refusals.total - result.inserted
        return result


def _begin_users_events(
    cur: Cursor,
    statements: _Statements,
    rows: Sequence[tuple[Any, ...]],
    result: StoreResult,
    staged: bool,
) -> Sequence[tuple[Any, ...]]:
    """Open the transaction under the deletion lock and drop the rows of deleted
    users that may have been received before their deletion (dated up to the deletion
    plus ``IN_FLIGHT_SKEW``), by any pseudonym the row carries; the rows to store."""
    parts = [statements.begin]
    if staged:
        parts.append(statements.create_staging)
    oldest = min(row[_EVENT_TS_INDEX] for row in rows) - IN_FLIGHT_SKEW
    parts.append(_FORGOTTEN_SINCE.format(sql.Literal(oldest)))
    # One simple-protocol query: its statements run in order, each with a new snapshot.
    cur.execute(sql.SQL("; ").join(parts))
    while cur.nextset():
        pass  # to the lookup's result, the last one
    forgotten: dict[str, datetime] = dict(cur.fetchall())
    if not forgotten:
        return rows
    kept = [
        row
        for row in rows
        if (at := _deleted_at(row, forgotten)) is None or row[_EVENT_TS_INDEX] - IN_FLIGHT_SKEW > at
    ]
    dropped = len(rows) - len(kept)
    if not dropped:
        return rows
    result.refusals.add(
        FORGOTTEN_USER,
        f"{dropped} event(s) of users deleted on request, dated before the deletion",
        count=dropped,
    )
    return kept


def _deleted_at(row: tuple[Any, ...], forgotten: dict[str, datetime]) -> datetime | None:
    """The latest deletion of a pseudonym the row carries: its user column or any
    pseudonym among its other attributes (a service's ``enduser.id``, ``user.id``...)."""
    user = row[_USER_INDEX]
    at = forgotten.get(_digest(user)) if user is not None else None
    text = row[_ATTRS_INDEX]
    if text and text != "{}":
        for found in _PSEUDONYM_IN_TEXT.findall(text):
            other = forgotten.get(_digest(found))
            if other is not None and (at is None or other > at):
                at = other
    return at
