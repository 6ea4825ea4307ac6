"""Anonymised monthly trends (the 3-year tier): no user ids, k-suppressed cells.

For each month and dimension (country, continent, language, plan, provider, model,
feature, and ``all``) a cell counts distinct users, events and credits. A cell with
fewer than k users (the policy's ``trends_min_users_per_cell``) is merged into the value
``other``; if ``other`` itself stays under k, the next smallest cells join it until it
reaches k, so no small cell can be recovered by subtracting the published cells from a
total. A dimension whose users in a month are fewer than k in all publishes nothing.

Months are rebuilt from the daily per-user rollups while late events can still change
them (they overlap the raw window), and once for any month that has rollups but no
trends yet; older months stay as they were when their rollups expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

from caret_otel.semconv.policy import load_policy

Connection = psycopg.Connection[Any]

OTHER: Final = "other"
ALL: Final = "all"

# dimension -> rows (day, user_pseudonym, value, events, credits) from the rollups
_SOURCES: Final[dict[str, str]] = {
    ALL: """SELECT a.day, a.user_pseudonym, 'all' AS value, a.events, coalesce(c.credits, 0) AS credits
            FROM agg.user_daily_activity a
            LEFT JOIN (SELECT day, user_pseudonym, sum(credits) AS credits
                       FROM agg.user_daily_usage GROUP BY day, user_pseudonym) c
              USING (day, user_pseudonym)""",
    "country": "SELECT day, user_pseudonym, country AS value, events, NULL::numeric AS credits FROM agg.user_daily_region",
    "continent": "SELECT day, user_pseudonym, continent AS value, events, NULL::numeric AS credits FROM agg.user_daily_region",
    "language": "SELECT day, user_pseudonym, language AS value, events, NULL::numeric AS credits FROM agg.user_daily_language",
    "plan": "SELECT day, user_pseudonym, plan AS value, events, credits FROM agg.user_daily_usage",
    "provider": "SELECT day, user_pseudonym, provider AS value, events, credits FROM agg.user_daily_usage",
    "model": "SELECT day, user_pseudonym, model AS value, events, credits FROM agg.user_daily_usage",
    "feature": "SELECT day, user_pseudonym, feature AS value, uses AS events, NULL::numeric AS credits FROM agg.user_daily_feature",
}
DIMENSIONS: Final = tuple(_SOURCES)


@dataclass(frozen=True)
class Cell:
    value: str
    users: int
    events: int
    credits: float | None


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def _cells(conn: Connection, dimension: str, month: date) -> list[Cell]:
    query = sql.SQL(
        "SELECT value, count(DISTINCT user_pseudonym), sum(events), sum(credits)"
        " FROM ({source}) s WHERE day >= %s AND day < %s GROUP BY value"
    ).format(source=sql.SQL(_SOURCES[dimension]))
    rows = conn.execute(query, (month, next_month(month))).fetchall()
    return [
        Cell(str(v), int(u), int(e or 0), None if c is None else float(c)) for v, u, e, c in rows
    ]


def _merged(conn: Connection, dimension: str, month: date, values: list[str]) -> Cell:
    query = sql.SQL(
        "SELECT count(DISTINCT user_pseudonym), coalesce(sum(events), 0), sum(credits)"
        " FROM ({source}) s WHERE day >= %s AND day < %s AND value = ANY(%s)"
    ).format(source=sql.SQL(_SOURCES[dimension]))
    row = conn.execute(query, (month, next_month(month), values)).fetchone()
    assert row is not None
    return Cell(OTHER, int(row[0]), int(row[1]), None if row[2] is None else float(row[2]))


def suppress(cells: list[Cell], k: int, merge: Any) -> list[Cell]:
    """The cells to publish: those with at least ``k`` users, plus ``other`` (built by
    ``merge(values)``) holding every smaller cell - grown with the next smallest cells
    until it has at least ``k`` users. Nothing when even everything merged is under k."""
    published = sorted(
        (c for c in cells if c.users >= k and c.value != OTHER), key=lambda c: (c.users, c.value)
    )
    small = [c.value for c in cells if c.users < k or c.value == OTHER]
    while small:
        other: Cell = merge(small)
        if other.users >= k:
            return [*sorted(published, key=lambda c: c.value), other]
        if not published:
            return []
        small.append(published.pop(0).value)
    return sorted(published, key=lambda c: c.value)


def refresh_month(conn: Connection, month: date, *, as_of: date, k: int) -> int:
    """Rebuild the trends of ``month`` (inside the caller's transaction); rows written."""
    conn.execute("SELECT meta.ensure_partition('trends.monthly', %s)", (month,))
    conn.execute("DELETE FROM trends.monthly WHERE month = %s", (month,))
    complete = next_month(month) <= as_of
    written = 0
    for dimension in DIMENSIONS:
        cells = _cells(conn, dimension, month)
        publish = suppress(cells, k, lambda values, d=dimension: _merged(conn, d, month, values))
        for cell in publish:
            conn.execute(
                "INSERT INTO trends.monthly (month, dimension, value, users, events, credits, complete)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (month, dimension, cell.value, cell.users, cell.events, cell.credits, complete),
            )
            written += 1
    return written


def months_to_refresh(conn: Connection, *, as_of: date, raw_days: int) -> list[date]:
    """Months late events can still change, and months with rollups but no trends yet."""
    late_from = month_start(as_of - timedelta(days=raw_days))
    rows = conn.execute(
        "SELECT DISTINCT date_trunc('month', a.day)::date AS month FROM agg.user_daily_activity a"
        " WHERE a.day >= %s"
        "    OR NOT EXISTS (SELECT 1 FROM trends.monthly t"
        "                   WHERE t.month = date_trunc('month', a.day)::date)"
        " ORDER BY 1",
        (late_from,),
    ).fetchall()
    return [row[0] for row in rows]


def refresh_trends(conn: Connection, *, as_of: date) -> list[date]:
    """Rebuild every month that needs it, each in its own transaction; the months done."""
    policy = load_policy()
    k = policy.retention["trends_min_users_per_cell"]
    months = months_to_refresh(conn, as_of=as_of, raw_days=policy.retention["raw_events_days"])
    for month in months:
        with conn.transaction():
            refresh_month(conn, month, as_of=as_of, k=k)
    return months
