"""The anonymised monthly trends on PostgreSQL: no cell under 10 users, small cells
merged into 'other' (grown until it reaches 10), no user ids."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pytest
from integration.exporter.exporter_helpers import at, event, load, query

from caret_otel.exporters.postgres import trends
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as ev

pytestmark = pytest.mark.integration

# 25 users active in February 2026, one task each (credits 2 each):
# KR 12 users, US 10, JP 2, DE 1.
PEOPLE = [("KR", "AS")] * 12 + [("US", "NA")] * 10 + [("JP", "AS")] * 2 + [("DE", "EU")]


def test_monthly_cells_under_k_users_are_merged_into_other(database: str) -> None:
    records = [
        event(
            f"person-{n}",
            at(date(2026, 2, 2 + n), "10:00"),
            ev.CARET_TASK_TOKENS,
            {
                attrs.GEO_COUNTRY_ISO_CODE: country,
                attrs.GEO_CONTINENT_CODE: continent,
                attrs.CARET_CLIENT_LANGUAGE: "en",
                attrs.CARET_PLAN_NAME: "free" if n < 20 else "pro",
                attrs.GEN_AI_PROVIDER_NAME: "anthropic",
                attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
                attrs.CARET_CREDITS_AMOUNT: 2.0,
            },
        )
        for n, (country, continent) in enumerate(PEOPLE)
    ]
    load(database, records, now=datetime(2026, 3, 1, tzinfo=UTC))
    with psycopg.connect(database, autocommit=True) as conn:
        months = trends.refresh_trends(conn, as_of=date(2026, 3, 10))
    assert months == [date(2026, 2, 1)]

    cells = {
        (r[0], r[1]): r[2:]
        for r in query(
            database,
            "SELECT dimension, value, users, events, credits, complete FROM analytics.trends_monthly"
            " WHERE month = '2026-02-01'",
        )
    }
    assert cells == {
        ("all", "all"): (25, 25, Decimal("50.0"), True),
        # JP (2) and DE (1) make 3: under 10, so the smallest published cell, US (10),
        # joins them - otherwise KR + US from the total would give JP + DE away.
        ("country", "KR"): (12, 12, None, True),
        ("country", "other"): (13, 13, None, True),
        # EU (1) alone is under 10: NA (10) joins it
        ("continent", "AS"): (14, 14, None, True),
        ("continent", "other"): (11, 11, None, True),
        ("language", "en"): (25, 25, None, True),
        # 20 free, 5 pro: pro alone under 10, so free joins and only 'other' remains
        ("plan", "other"): (25, 25, Decimal("50.0"), True),
        ("provider", "anthropic"): (25, 25, Decimal("50.0"), True),
        ("model", "claude-sonnet-4"): (25, 25, Decimal("50.0"), True),
    }
    assert query(database, "SELECT count(*) FROM trends.monthly WHERE users < 10") == [(0,)]
    columns = query(
        database,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'trends'",
    )
    assert not [c for (c,) in columns if "user_pseudonym" in c or "session" in c]


def test_a_month_with_fewer_than_k_users_publishes_nothing(database: str) -> None:
    records = [
        event(f"few-{n}", at(date(2026, 2, 10), f"1{n}:00"), ev.CARET_TASK_CREATED)
        for n in range(9)
    ]
    load(database, records, now=datetime(2026, 3, 1, tzinfo=UTC))
    with psycopg.connect(database, autocommit=True) as conn:
        trends.refresh_trends(conn, as_of=date(2026, 3, 10))
    assert query(database, "SELECT count(*) FROM trends.monthly") == [(0,)]
