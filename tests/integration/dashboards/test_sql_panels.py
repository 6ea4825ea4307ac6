"""Every SQL panel runs, as Grafana's read-only analyst role, against the real schema.

Rows are the end-to-end test's business (it needs traffic); this test proves every
column, view and grant a panel relies on exists, right after the migrations ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from caret_otel.dashboards import generate, lint
from caret_otel.dashboards import panel_queries as pq
from caret_otel.exporters.postgres.schema import migrate
from caret_otel.stack.postgres import PostgresServer

pytestmark = pytest.mark.integration

ANALYST = "caret_analyst"


@pytest.fixture(scope="module")
def analyst(postgres: PostgresServer) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection that has become the analyst role (as Grafana's datasource logs in)."""
    dsn = postgres.create_database("caret_dashboards")
    migrate(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SET ROLE {ANALYST}")
        yield conn


def sql_queries() -> list[tuple[pq.PanelQuery, str]]:
    time_range = pq.TimeRange.last(timedelta(days=30))
    found = []
    for dashboard in generate.build_dashboards().values():
        values = lint.lint_values(dashboard)
        found += [
            (q, text) for q, text in pq.expanded_queries(dashboard, values, time_range) if q.is_sql
        ]
    return found


def test_there_are_sql_panels() -> None:
    assert len(sql_queries()) >= 10


@pytest.mark.parametrize(
    ("query", "sql"),
    sql_queries(),
    ids=lambda v: str(v)[:60] if isinstance(v, pq.PanelQuery) else "",
)
def test_sql_panel_runs_as_the_analyst(
    analyst: psycopg.Connection[tuple[object, ...]], query: pq.PanelQuery, sql: str
) -> None:
    cursor = analyst.execute(sql.encode())
    assert cursor.description is not None, f"{query}: returns no columns"
    columns = [c.name for c in cursor.description]
    if "time" in columns:
        assert columns[0] == "time", f"{query}: a time series needs its time column first"


def test_the_analyst_cannot_read_raw_events(
    analyst: psycopg.Connection[tuple[object, ...]],
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        analyst.execute("SELECT 1 FROM raw.events LIMIT 1")
