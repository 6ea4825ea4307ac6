"""The analyst report: the main ``analytics.*`` views for a date range, as tables.

It reads only the analyst views (``analytics.*``), so it runs with the read-only
``caret_analyst`` role as well as with the writer. ``caret-otel report`` renders it as
terminal tables, CSV or JSON.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Final

import orjson
import psycopg


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class Query:
    key: str
    title: str
    sql: str


RETENTION_DAYS: Final = (1, 7, 14, 28)

QUERIES: Final = (
    Query(
        "active_users",
        "Active users (DAU, WAU over 7 days, MAU over 28 days) and new users",
        "SELECT day, dau, wau, mau, stickiness, new_users, complete FROM analytics.active_users"
        " WHERE day BETWEEN %(start)s AND %(end)s ORDER BY day",
    ),
    Query(
        "sessions",
        "Sessions (a new one after 30 min without events or at midnight UTC)",
        "SELECT day, sessions, users, events, p50_length_s, p90_length_s, single_event_sessions"
        " FROM analytics.sessions_daily WHERE day BETWEEN %(start)s AND %(end)s ORDER BY day",
    ),
    Query(
        "retention",
        "Day-N retention of the first-time cohorts that started in the range (all cohorts combined)",
        "SELECT period AS day_n, count(*) AS cohorts, sum(cohort_size)::bigint AS cohort_users,"
        " sum(retained)::bigint AS retained,"
        " round(sum(retained)::numeric / nullif(sum(cohort_size), 0), 4) AS rate,"
        " round(sum(retained_on_or_after)::numeric / nullif(sum(cohort_size), 0), 4)"
        "   AS rate_on_or_after"
        " FROM analytics.retention WHERE granularity = 'day'"
        " AND cohort_start BETWEEN %(start)s AND %(end)s AND period = ANY(%(periods)s)"
        " GROUP BY period ORDER BY period",
    ),
    Query(
        "lifecycle",
        "Weekly lifecycle: new, returning, resurrecting and dormant users",
        "SELECT period_start AS week, new_users, returning_users, resurrecting_users, dormant_users, complete"
        " FROM analytics.lifecycle WHERE granularity = 'week'"
        " AND period_start BETWEEN date_trunc('week', %(start)s::timestamp)::date AND %(end)s"
        " ORDER BY period_start",
    ),
    Query(
        "paid_conversion",
        "Paid conversion of weekly sign-up cohorts (rates once the cohort had its full 14/30 days)",
        "SELECT signup_week, signups, paid_14d, paid_30d, rate_14d, rate_30d"
        " FROM analytics.paid_conversion"
        " WHERE signup_week BETWEEN date_trunc('week', %(start)s::timestamp)::date AND %(end)s"
        " ORDER BY signup_week",
    ),
    Query(
        "credits",
        "Credits consumed per day (per active user, and p50/p90 over users who spent any)",
        "SELECT day, credits, users, credits_per_active_user, p50_credits_per_user,"
        " p90_credits_per_user FROM analytics.credits_daily"
        " WHERE plan = 'all' AND day BETWEEN %(start)s AND %(end)s ORDER BY day",
    ),
    Query(
        "credits_by_plan",
        "Credits consumed in the range by plan, provider and model",
        "SELECT plan, provider, model, sum(credits) AS credits FROM analytics.credits_daily"
        " WHERE plan <> 'all' AND day BETWEEN %(start)s AND %(end)s"
        " GROUP BY plan, provider, model ORDER BY credits DESC, plan, provider, model",
    ),
    Query(
        "models",
        "Model usage in the range (share of requests; latency is the median of daily p50/p95)",
        "SELECT provider, model, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,"
        " round(sum(errors)::numeric / nullif(sum(requests), 0), 4) AS error_rate,"
        " round(sum(requests)::numeric / nullif(sum(sum(requests)) OVER (), 0), 4) AS request_share,"
        " round(avg(user_share), 4) AS avg_user_share,"
        " round(percentile_cont(0.5) WITHIN GROUP (ORDER BY p50_latency_s)::numeric, 3) AS p50_latency_s,"
        " round(percentile_cont(0.5) WITHIN GROUP (ORDER BY p95_latency_s)::numeric, 3) AS p95_latency_s,"
        " sum(tokens_in)::bigint AS tokens_in, sum(tokens_out)::bigint AS tokens_out"
        " FROM analytics.model_usage_daily WHERE day BETWEEN %(start)s AND %(end)s"
        " GROUP BY provider, model ORDER BY requests DESC, provider, model",
    ),
    Query(
        "features",
        "Feature use in the range (adoption: users of the feature in 28 days / MAU, on the last day)",
        "SELECT feature, sum(uses)::bigint AS uses,"
        " (array_agg(adoption_28d ORDER BY day DESC))[1] AS adoption_28d"
        " FROM analytics.feature_usage_daily WHERE day BETWEEN %(start)s AND %(end)s"
        " GROUP BY feature ORDER BY uses DESC, feature",
    ),
    Query(
        "regions",
        "Regions in the range (average daily users)",
        "SELECT country, continent, round(avg(users), 1) AS avg_daily_users,"
        " sum(events)::bigint AS events, sum(new_users)::bigint AS new_users"
        " FROM analytics.region_daily WHERE day BETWEEN %(start)s AND %(end)s"
        " GROUP BY country, continent ORDER BY events DESC, country",
    ),
    Query(
        "languages",
        "UI languages in the range (average daily users)",
        "SELECT language, round(avg(users), 1) AS avg_daily_users, sum(events)::bigint AS events"
        " FROM analytics.language_daily WHERE day BETWEEN %(start)s AND %(end)s"
        " GROUP BY language ORDER BY events DESC, language",
    ),
    Query(
        "trends",
        "Anonymised monthly trends (cells under 10 users merged into 'other')",
        "SELECT month, dimension, value, users, events, credits, complete"
        " FROM analytics.trends_monthly"
        " WHERE month BETWEEN date_trunc('month', %(start)s::timestamp)::date AND %(end)s"
        " ORDER BY month, dimension, users DESC, value",
    ),
)


def build_report(
    conninfo: str, start: date, end: date, *, keys: Iterable[str] | None = None
) -> list[Section]:
    """Run the report queries (every one, or those named in ``keys``) for ``[start, end]``
    (inclusive)."""
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    wanted = set(keys) if keys is not None else {q.key for q in QUERIES}
    unknown = wanted - {q.key for q in QUERIES}
    if unknown:
        raise ValueError(f"unknown report table(s): {', '.join(sorted(unknown))}")
    params = {"start": start, "end": end, "periods": list(RETENTION_DAYS)}
    sections: list[Section] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        for query in (q for q in QUERIES if q.key in wanted):
            cur = conn.execute(query.sql, params)
            columns = tuple(d.name for d in cur.description or ())
            sections.append(Section(query.key, query.title, columns, cur.fetchall()))
    return sections


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def to_json(sections: list[Section]) -> bytes:
    document = {
        s.key: {
            "title": s.title,
            "rows": [dict(zip(s.columns, map(_plain, row), strict=True)) for row in s.rows],
        }
        for s in sections
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def to_csv(section: Section) -> str:
    """One section as one CSV table: a header row, then the rows (nothing else, so any
    CSV reader takes it as it is)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(section.columns)
    writer.writerows([[_plain(v) for v in row] for row in section.rows])
    return out.getvalue()


def format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal | float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if value % 1 else f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
