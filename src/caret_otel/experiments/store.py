"""Reading an experiment's numbers from PostgreSQL (analytics.* views only, so the
read-only caret_analyst login is enough)."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg

from .analysis import VariantStats

_STATS = """
SELECT metric, variant, users, value_sum, value_sum_squares, denominator_sum,
       denominator_sum_squares, value_denominator_sum_products, pre_sum, pre_sum_squares,
       value_pre_sum_products
FROM analytics.experiment_variant_stats WHERE experiment_key = %s
"""
_USERS = """
SELECT variant, max(users) FROM analytics.experiment_exposures_daily
WHERE experiment_key = %s GROUP BY variant
"""
_DAILY = """
SELECT day, sum(new_users) FROM analytics.experiment_exposures_daily
WHERE experiment_key = %s GROUP BY day ORDER BY day
"""
_TRAFFIC = """
SELECT dau, wau, mau FROM analytics.active_users
WHERE day < analytics.as_of() ORDER BY day DESC LIMIT 1
"""


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def variant_stats(
    conninfo: str, key: str
) -> tuple[dict[str, dict[str, VariantStats]], dict[str, int]]:
    """``table[metric][variant]`` and users per variant of experiment ``key``."""
    table: dict[str, dict[str, VariantStats]] = {}
    with psycopg.connect(conninfo) as conn:
        for row in conn.execute(_STATS, (key,)).fetchall():
            metric, variant, users, *sums = row
            table.setdefault(str(metric), {})[str(variant)] = VariantStats(
                int(users), float(sums[0]), float(sums[1]), *(_float(v) for v in sums[2:])
            )
        users = {str(v): int(n) for v, n in conn.execute(_USERS, (key,)).fetchall()}
    return table, users


def new_users_per_day(conninfo: str, key: str) -> tuple[list[tuple[date, int]], date]:
    """Users first exposed per day (all variants) and the analysts' today
    (``analytics.as_of()``): the input of alpha spending's daily looks."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(_DAILY, (key,)).fetchall()
        today_row = conn.execute("SELECT analytics.as_of()").fetchone()
    assert today_row is not None
    return [(day, int(n)) for day, n in rows], today_row[0]


def recent_reach(conninfo: str) -> list[float]:
    """Distinct active users after 1, 7 and 28 days (DAU, WAU, MAU of the last full day),
    interpolated linearly to a cumulative curve of 28 days."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(_TRAFFIC).fetchone()
    if row is None:
        return []
    dau, wau, mau = (float(v) for v in row)
    points = {1: dau, 7: wau, 28: mau}
    curve: list[float] = []
    for day in range(1, 29):
        low = max(d for d in points if d <= day)
        high = min(d for d in points if d >= day)
        share = 0.0 if high == low else (day - low) / (high - low)
        curve.append(points[low] + share * (points[high] - points[low]))
    return curve
