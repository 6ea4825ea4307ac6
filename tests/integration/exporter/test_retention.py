"""Retention with the clock moved forward: raw events go after 30 days, rollups after a
year, trends after three - by dropping whole partitions; users stay while they live."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from integration.exporter.exporter_helpers import at, event, load, query

from caret_otel.exporters.postgres.retention import run_retention
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as ev

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def partitions(url: str, parent: str) -> list[str]:
    return [
        r[0]
        for r in query(
            url,
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY 1",
            (parent,),
        )
    ]


def counts(url: str) -> dict[str, int]:
    tables = [
        "raw.events",
        "agg.user_daily_activity",
        "agg.sessions",
        "trends.monthly",
        "core.users",
    ]
    return {t: query(url, f"SELECT count(*) FROM {t}")[0][0] for t in tables}


def run_at(url: str, when: datetime) -> list[str]:
    return run_retention(url, now=when).dropped


def test_each_tier_is_dropped_exactly_when_its_period_is_over(database: str) -> None:
    # 12 users in Korea on Mar 5 (enough for a trends cell), one of them again on Mar 30
    korea = {
        attrs.GEO_COUNTRY_ISO_CODE: "KR",
        attrs.GEO_CONTINENT_CODE: "AS",
        attrs.CARET_CLIENT_LANGUAGE: "ko",
    }
    records = [
        event(f"u{n}", at(date(2026, 3, 5), f"{8 + n}:00"), ev.CARET_TASK_CREATED, korea)
        for n in range(12)
    ]
    records.append(event("u0", at(date(2026, 3, 30), "09:00"), ev.CARET_TASK_CREATED, korea))
    load(database, records, now=START)

    first = run_retention(database, now=START)
    assert first.dropped == []
    assert date(2026, 3, 1) in first.trends_months
    # the coming days and months have partitions before any event needs them
    assert {"events_p20260331", "events_p20260403"} <= set(partitions(database, "raw.events"))
    assert "user_daily_activity_p202604" in partitions(database, "agg.user_daily_activity")
    assert counts(database) == {
        "raw.events": 13,
        "agg.user_daily_activity": 13,
        "agg.sessions": 13,
        "trends.monthly": 4,  # all, country KR, continent AS, language ko: 12 users each
        "core.users": 12,
    }

    # raw: the Mar 5 partition ends Mar 6, so it goes when Mar 6 is 30 days old (Apr 5)
    assert "raw.events_p20260305" not in run_at(database, datetime(2026, 4, 4, 23, 0, tzinfo=UTC))
    assert "events_p20260305" in partitions(database, "raw.events")
    dropped = run_at(database, datetime(2026, 4, 5, 0, 30, tzinfo=UTC))
    assert "raw.events_p20260305" in dropped
    assert query(database, "SELECT count(*) FROM raw.events") == [(1,)]  # the Mar 30 event
    # the analyst numbers live on in the rollups
    dau = query(
        database, "SELECT dau, new_users FROM analytics.active_users WHERE day = '2026-03-05'"
    )
    assert dau == [(12, 12)]

    # rollups: the March partitions go when April 1 is 365 days old (2027-04-01)
    run_at(database, datetime(2027, 3, 31, 12, 0, tzinfo=UTC))
    assert query(database, "SELECT count(*) FROM raw.events") == [(0,)]
    assert query(database, "SELECT count(*) FROM agg.user_daily_activity") == [(13,)]
    dropped = run_at(database, datetime(2027, 4, 1, 0, 30, tzinfo=UTC))
    assert "agg.user_daily_activity_p202603" in dropped
    assert "agg.sessions_p202603" in dropped
    assert query(database, "SELECT count(*) FROM agg.user_daily_activity") == [(0,)]
    assert query(database, "SELECT count(*) FROM analytics.active_users") == [(0,)]

    # trends outlive the rollups they came from, until April 1 is 1095 days old
    trends_rows = query(database, "SELECT * FROM trends.monthly ORDER BY dimension, value")
    assert trends_rows
    assert trends_rows[0][0] == date(2026, 3, 1)
    run_at(database, datetime(2029, 3, 30, 12, 0, tzinfo=UTC))
    assert query(database, "SELECT * FROM trends.monthly ORDER BY dimension, value") == trends_rows
    dropped = run_at(database, datetime(2029, 3, 31, 0, 30, tzinfo=UTC))
    assert "trends.monthly_p202603" in dropped
    assert query(database, "SELECT count(*) FROM trends.monthly") == [(0,)]

    # users expire a year after their last activity (March 2026: long gone by 2029)
    assert query(database, "SELECT count(*) FROM core.users") == [(0,)]


def test_the_exporter_refuses_events_older_than_the_raw_window(database: str) -> None:
    from caret_otel.exporters.postgres.event_rows import (
        OUTSIDE_WINDOW,
        AcceptWindow,
        EventRowBuilder,
    )
    from caret_otel.otlp.build import logs_request

    now = START
    window = AcceptWindow.at(now, 30)
    old = event("late", now - timedelta(days=31), ev.CARET_TASK_CREATED)
    decoded = EventRowBuilder(window).decode(logs_request([old]))
    assert decoded.rows == []
    assert decoded.refusals.counts == {OUTSIDE_WINDOW: 1}
