"""The analyst views mean what they say (migration 0009): language and region shares
are counted from the users who carry the dimension (each user once, under their main
value of the day; `unknown` only without any), `caret.as_of` cuts every view of days,
`active_users` included, and the views come back in a stable order.

Users on 2026-03-10 (as of 2026-03-12):

    K  ko/KR: 3 client events; a sign-up (server-side: no language, no country)
    M  ko/KR: 1 event in ko, 2 events in en (switched): counted once, under en
    S  only a server-side credits purchase: no language, no country -> unknown
    L  en/US on 2026-03-11 (after the as-of cut below)
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from integration.exporter.exporter_helpers import at, event, load, query

from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as ev

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 10)
NEXT = date(2026, 3, 11)
NOW = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)


def client(language: str, country: str) -> dict[str, str]:
    return {attrs.CARET_CLIENT_LANGUAGE: language, attrs.GEO_COUNTRY_ISO_CODE: country}


@pytest.fixture
def url(database: str) -> str:
    ko, en = client("ko", "KR"), client("en", "US")
    load(
        database,
        [
            event("K", at(DAY, "09:00"), ev.CARET_TASK_CREATED, ko),
            event("K", at(DAY, "09:10"), ev.CARET_TASK_CREATED, ko),
            event("K", at(DAY, "09:20"), ev.CARET_TASK_CREATED, ko),
            event("K", at(DAY, "09:30"), ev.CARET_USER_SIGNED_UP, {attrs.CARET_PLAN_NAME: "free"}),
            event("M", at(DAY, "10:00"), ev.CARET_TASK_CREATED, ko),
            event("M", at(DAY, "10:10"), ev.CARET_TASK_CREATED, {**ko, attrs.CARET_CLIENT_LANGUAGE: "en"}),
            event("M", at(DAY, "10:20"), ev.CARET_TASK_CREATED, {**ko, attrs.CARET_CLIENT_LANGUAGE: "en"}),
            event("S", at(DAY, "11:00"), ev.CARET_CREDITS_PURCHASED, {attrs.CARET_CREDITS_AMOUNT: 5.0}),
            event("L", at(NEXT, "08:00"), ev.CARET_TASK_CREATED, en),
        ],
        now=NOW,
    )  # fmt: skip
    return database


def test_language_shares_count_each_user_once_among_those_who_carry_one(url: str) -> None:
    rows = query(
        url,
        "SELECT language, users, events, user_share FROM analytics.language_daily WHERE day = %s",
        (DAY,),
    )
    assert rows == [  # in the view's own order: day, language
        ("en", 1, 2, Decimal("0.5000")),  # M: 2 events in en beat 1 in ko
        ("ko", 1, 4, Decimal("0.5000")),  # K; the events count all of ko (K 3, M 1)
        ("unknown", 1, 2, None),  # S alone; K's sign-up event is counted, not K
    ]
    known = [share for _, _, _, share in rows if share is not None]
    assert sum(known) == 1


def test_region_shares_follow_the_same_rule(url: str) -> None:
    rows = query(
        url, "SELECT country, users, user_share FROM analytics.region_daily WHERE day = %s", (DAY,)
    )
    assert rows == [("KR", 2, Decimal("1.0000")), ("unknown", 1, None)]


def test_as_of_cuts_every_view_of_days_active_users_included(url: str) -> None:
    everything = query(
        url, "SELECT day, dau, complete FROM analytics.active_users", as_of=NOW.date()
    )
    assert everything == [(DAY, 3, True), (NEXT, 1, True)]
    as_of_day = query(url, "SELECT day, dau, complete FROM analytics.active_users", as_of=NEXT)
    assert as_of_day == [(DAY, 3, True), (NEXT, 1, False)]  # the running day is partial
    before = query(url, "SELECT day, dau FROM analytics.active_users", as_of=DAY - (NEXT - DAY))
    assert before == []
    for view in ("language_daily", "region_daily", "sessions_daily"):
        days = query(url, f"SELECT DISTINCT day FROM analytics.{view}", as_of=DAY)
        assert days == [(DAY,)], view
        days = query(url, f"SELECT DISTINCT day FROM analytics.{view} ORDER BY 1", as_of=NEXT)
        assert days == [(DAY,), (NEXT,)], view
