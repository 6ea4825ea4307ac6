"""The retention job: keeps each tier exactly as long as the privacy policy says.

Every partitioned table is listed in ``meta.partitioned_tables`` with its period (day or
month) and tier (``raw_events_days`` 30, ``aggregates_days`` 365, ``trends_days`` 1095).
A run, in order:

1. folds every queued event into the rollups (so no event expires unrolled);
2. rebuilds the anonymised monthly trends that may still change (the 3-year tier is
   built before the 1-year rollups it comes from expire);
3. creates the partitions of the coming days and months;
4. drops every partition whose whole period is older than its tier - a partition is
   dropped, never deleted row by row;
5. forgets deletion digests older than the raw window (events that old are refused
   anyway);
6. deletes ``core.users`` rows whose last activity is more than a year old, and the
   nonces of consent assertions that expired.

``now`` can be moved to see what the job does on another day (tests do).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final

import psycopg

from caret_otel.semconv.policy import load_policy

from . import rollup, trends

log = logging.getLogger(__name__)

DAYS_AHEAD: Final = 3
"""Daily partitions are created this many days ahead (monthly: this month and the next)."""


@dataclass
class RetentionResult:
    now: datetime
    rolled_up: int = 0
    trends_months: list[date] = field(default_factory=list)
    ensured: list[str] = field(default_factory=list)
    """Partitions of the coming days and months (created unless they existed)."""
    dropped: list[str] = field(default_factory=list)
    cutoffs: dict[str, date] = field(default_factory=dict)
    """Table -> first day kept."""
    forgotten_digests_pruned: int = 0
    users_expired: int = 0
    """``core.users`` rows deleted: no activity for a year (``privacy.expire_users``)."""
    dry_run: bool = False
    """True when nothing was changed: the figures say what the job would do."""


def cutoff_for(today: date, days: int) -> date:
    """First day a tier of ``days`` keeps: partitions ending on or before it are dropped."""
    return today - timedelta(days=days)


def _upcoming(granularity: str, today: date) -> list[date]:
    if granularity == "day":
        return [today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)]
    this_month = today.replace(day=1)
    return [this_month, trends.next_month(this_month)]


def run_retention(
    conninfo: str, *, now: datetime | None = None, dry_run: bool = False
) -> RetentionResult:
    """Run the retention job once against ``conninfo``; see the module docstring.

    With ``dry_run`` the same job runs inside one transaction that is rolled back at the
    end: the result says exactly what would be rolled up, created and dropped, and
    nothing is changed (PostgreSQL's DDL is transactional, ``DROP TABLE`` included).
    """
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    retention = load_policy().retention
    result = RetentionResult(now=now, dry_run=dry_run)
    with psycopg.connect(conninfo, autocommit=not dry_run) as conn:
        result.rolled_up = rollup.roll_up(conn)
        result.trends_months = trends.refresh_trends(conn, as_of=today)
        tables: list[tuple[str, str, str]] = conn.execute(
            "SELECT table_name, granularity, retention_key FROM meta.partitioned_tables"
            " ORDER BY table_name"
        ).fetchall()
        for table, granularity, retention_key in tables:
            for day in _upcoming(granularity, today):
                name = conn.execute("SELECT meta.ensure_partition(%s, %s)", (table, day)).fetchone()
                if name is not None and name[0] not in result.ensured:
                    result.ensured.append(str(name[0]))
            cutoff = cutoff_for(today, retention[retention_key])
            result.cutoffs[table] = cutoff
            dropped = conn.execute(
                "SELECT meta.drop_partitions_before(%s, %s)", (table, cutoff)
            ).fetchall()
            result.dropped.extend(str(row[0]) for row in dropped)
        raw_cutoff = cutoff_for(today, retention["raw_events_days"])
        pruned = conn.execute(
            "DELETE FROM privacy.forgotten_pseudonyms WHERE forgotten_at < %s", (raw_cutoff,)
        )
        result.forgotten_digests_pruned = max(pruned.rowcount, 0)
        expired = conn.execute("SELECT privacy.expire_users(%s)", (now,)).fetchone()
        result.users_expired = int(expired[0]) if expired else 0
        conn.execute("DELETE FROM privacy.consent_assertion_nonces WHERE expires_at < %s", (now,))
        if dry_run:
            conn.rollback()
            return result
    if result.dropped:
        log.info("retention dropped %d partition(s): %s", len(result.dropped), result.dropped)
    return result
