"""The panels over the real-client views (issue 15: editors and OS families, feedback per
model, checkpoint and mode use, provider errors by status) and the sessions panels return
data for real client traffic: the real-client corpus (both client shapes, logins
mid-session) goes through the gateway's ingestion and the exporter's real load and rollup
path, then every such panel's query runs as Grafana's analyst role over the dashboard's
time range."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from fixtures.services import migrated_database
from integration.exporter.test_real_clients_db import store
from real_client_corpus import build

from caret_otel.dashboards import business, generate, lint, product_usage
from caret_otel.dashboards import panel_queries as pq
from caret_otel.stack import PostgresServer

pytestmark = pytest.mark.integration

VIEWS = (
    "analytics.host_app_daily",
    "analytics.feedback_by_model",
    "analytics.checkpoint_mode_daily",
    "analytics.provider_errors_daily",
    "analytics.sessions_daily",
)
NOW = datetime.now(UTC)


def panel_sql() -> list[tuple[pq.PanelQuery, str]]:
    """Every SQL panel query over the views above, expanded for the last 30 days."""
    time_range = pq.TimeRange.last(timedelta(days=30), NOW + timedelta(minutes=5))
    found = []
    for dashboard in generate.build_dashboards().values():
        values = lint.lint_values(dashboard)
        for query, text in pq.expanded_queries(dashboard, values, time_range):
            if query.is_sql and any(view in text for view in VIEWS):
                found.append((query, text))
    return found


@pytest.fixture(scope="module")
def analyst(postgres: PostgresServer) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    url = migrated_database(postgres, "dash_real_client_panels")
    store(url, build(NOW), NOW)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET ROLE caret_analyst")
        yield conn


def test_business_and_product_usage_read_every_real_client_view() -> None:
    for uid, views in ((business.UID, VIEWS), (product_usage.UID, VIEWS[:4])):
        texts = [text for query, text in panel_sql() if query.dashboard == uid]
        for view in views:
            assert any(view in text for text in texts), f"no {uid} panel reads {view}"


@pytest.mark.parametrize(
    ("query", "sql"),
    panel_sql(),
    ids=lambda v: str(v)[:70] if isinstance(v, pq.PanelQuery) else "",
)
def test_the_panel_returns_data(
    analyst: psycopg.Connection[tuple[object, ...]], query: pq.PanelQuery, sql: str
) -> None:
    cursor = analyst.execute(sql.encode())
    rows = cursor.fetchall()
    assert rows, f"{query}: no rows"
    assert cursor.description is not None
    names = [c.name for c in cursor.description]
    values = [
        row[i]
        for row in rows
        for i, name in enumerate(names)
        if name not in ("time", "metric") and isinstance(row[i], int | float | Decimal)
    ]
    assert any(values), f"{query}: no value column holds a non-zero number"
