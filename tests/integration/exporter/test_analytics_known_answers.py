"""The analyst views on a small hand-built dataset whose answers were worked out by hand.

Five users in March 2026 (2026-03-02 is a Monday; the views look at the data as of
2026-03-31). Every event of a user carries that user's country, continent and language.

    A  KR/AS/ko  signs up Mar 2 09:00 (free); tokens Mar 2 09:10 and 09:50 (anthropic,
                 credits 2 and 3, latency 1 s and 3 s); tokens Mar 3 10:00 and 10:05
                 (openai, credits 1 and 1, latency 2 s and 4 s); task Mar 9; plan -> pro
                 Mar 12 08:00; tool use Mar 16 (plan pro)
    B  US/NA/en  signs up Mar 2 11:00 (free); API error Mar 2 11:20 (anthropic); task
                 Mar 2 11:50 (exactly 30 min later: same session); tokens Mar 4 (anthropic,
                 credits 5); buys credits Mar 22 12:00
    C  KR/AS/ko  no sign-up; session Mar 3 08:00, browser tool 08:20-08:30, tokens 08:25
                 (anthropic, credits 2, latency 2 s); task Mar 4 23:50, completed Mar 5 00:10
    D  DE/EU/de  signs up Mar 9 07:00 (free); tokens Mar 9 07:05 (openai, credits 4); MCP
                 tool Mar 10
    E  JP/AS/ja  model selected Mar 2 15:00, consumes 1 credit 15:05 (anthropic); model
                 selected Mar 16 15:00

Active days: A 2,3,9,12,16 · B 2,4,22 · C 3,4,5 · D 9,10 · E 2,16.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from integration.exporter.exporter_helpers import at, event, load, pseudonym, query
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as ev

pytestmark = pytest.mark.integration

AS_OF = date(2026, 3, 31)
NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
PLACES = {
    "A": ("KR", "AS", "ko"),
    "B": ("US", "NA", "en"),
    "C": ("KR", "AS", "ko"),
    "D": ("DE", "EU", "de"),
    "E": ("JP", "AS", "ja"),
}
ANTHROPIC = {attrs.GEN_AI_PROVIDER_NAME: "anthropic", attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4"}
OPENAI = {attrs.GEN_AI_PROVIDER_NAME: "openai", attrs.GEN_AI_REQUEST_MODEL: "gpt-5"}


def d(day: int) -> date:
    return date(2026, 3, day)


def e(
    user: str,
    day: int,
    hh_mm: str,
    spec: ev.EventSpec,
    *,
    model: dict[str, str] | None = None,
    **values: Any,
) -> LogRecord:
    country, continent, language = PLACES[user]
    attributes: dict[str, Any] = {
        attrs.GEO_COUNTRY_ISO_CODE: country,
        attrs.GEO_CONTINENT_CODE: continent,
        attrs.CARET_CLIENT_LANGUAGE: language,
        **(model or {}),
    }
    attributes.update({KEYS[key]: value for key, value in values.items()})
    return event(user, at(d(day), hh_mm), spec, attributes)


KEYS = {
    "plan": attrs.CARET_PLAN_NAME,
    "credits": attrs.CARET_CREDITS_AMOUNT,
    "latency": attrs.CARET_API_DURATION,
    "tokens_in": attrs.GEN_AI_USAGE_INPUT_TOKENS,
    "tokens_out": attrs.GEN_AI_USAGE_OUTPUT_TOKENS,
    "error": attrs.ERROR_TYPE,
}


def dataset() -> list[LogRecord]:
    tokens, error = ev.CARET_TASK_TOKENS, ev.CARET_TASK_PROVIDER_API_ERROR
    return [
        # A
        e("A", 2, "09:00", ev.CARET_USER_SIGNED_UP, plan="free"),
        e(
            "A",
            2,
            "09:10",
            tokens,
            plan="free",
            model=ANTHROPIC,
            credits=2,
            latency=1.0,
            tokens_in=1000,
            tokens_out=100,
        ),
        e(
            "A",
            2,
            "09:50",
            tokens,
            plan="free",
            model=ANTHROPIC,
            credits=3,
            latency=3.0,
            tokens_in=500,
            tokens_out=50,
        ),
        e("A", 3, "10:00", tokens, plan="free", model=OPENAI, credits=1, latency=2.0),
        e("A", 3, "10:05", tokens, plan="free", model=OPENAI, credits=1, latency=4.0),
        e("A", 9, "10:00", ev.CARET_TASK_CREATED),
        e("A", 12, "08:00", ev.CARET_PLAN_CHANGED, plan="pro"),
        e("A", 16, "10:00", ev.CARET_TASK_TOOL_USED, plan="pro"),
        # B
        e("B", 2, "11:00", ev.CARET_USER_SIGNED_UP, plan="free"),
        e("B", 2, "11:20", error, model=ANTHROPIC, error="timeout"),
        e("B", 2, "11:50", ev.CARET_TASK_CREATED),
        e("B", 4, "12:00", tokens, plan="free", model=ANTHROPIC, credits=5, latency=5.0),
        e("B", 22, "12:00", ev.CARET_CREDITS_PURCHASED, credits=100),
        # C
        e("C", 3, "08:00", ev.CARET_SESSION_STARTED),
        e("C", 3, "08:20", ev.CARET_TASK_BROWSER_TOOL_START),
        e("C", 3, "08:25", tokens, plan="free", model=ANTHROPIC, credits=2, latency=2.0),
        e("C", 3, "08:30", ev.CARET_TASK_BROWSER_TOOL_END),
        e("C", 4, "23:50", ev.CARET_TASK_CREATED),
        e("C", 5, "00:10", ev.CARET_TASK_COMPLETED),
        # D
        e("D", 9, "07:00", ev.CARET_USER_SIGNED_UP, plan="free"),
        e("D", 9, "07:05", tokens, plan="free", model=OPENAI, credits=4, latency=4.0),
        e("D", 10, "07:00", ev.CARET_TASK_MCP_TOOL_CALLED),
        # E
        e("E", 2, "15:00", ev.CARET_UI_MODEL_SELECTED, model=ANTHROPIC),
        e("E", 2, "15:05", ev.CARET_CREDITS_CONSUMED, plan="free", model=ANTHROPIC, credits=1),
        e("E", 16, "15:00", ev.CARET_UI_MODEL_SELECTED, model=ANTHROPIC),
    ]


@pytest.fixture(scope="module")
def url(postgres: Any) -> str:
    from caret_otel.exporters.postgres.schema import migrate

    database_url = postgres.create_database("exp_known_answers")
    migrate(database_url)
    load(database_url, dataset(), now=NOW, batch=7)
    return database_url


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return query(url, sql, params or None, as_of=AS_OF)


def test_dau_wau_mau_stickiness_and_new_users(url: str) -> None:
    got = {
        r[0]: r[1:]
        for r in rows(
            url, "SELECT day, dau, wau, mau, stickiness, new_users FROM analytics.active_users"
        )
    }
    assert min(got) == d(2)
    assert max(got) == d(22)
    assert len(got) == 21
    assert got[d(2)] == (3, 3, 3, Decimal("1.0000"), 3)
    assert got[d(3)] == (2, 4, 4, Decimal("0.5000"), 1)
    assert got[d(5)] == (1, 4, 4, Decimal("0.2500"), 0)
    assert got[d(7)] == (0, 4, 4, Decimal("0.0000"), 0)
    assert got[d(9)] == (2, 4, 5, Decimal("0.4000"), 1)
    assert got[d(11)] == (0, 3, 5, Decimal("0.0000"), 0)
    assert got[d(12)] == (1, 2, 5, Decimal("0.2000"), 0)
    assert got[d(16)] == (2, 3, 5, Decimal("0.4000"), 0)
    assert got[d(22)] == (1, 3, 5, Decimal("0.2000"), 0)
    assert sum(r[4] for r in got.values()) == 5  # every user is new exactly once


def test_day_n_retention_of_first_time_cohorts(url: str) -> None:
    got = {
        (r[0], r[1]): r[2:]
        for r in rows(
            url,
            "SELECT cohort_start, period, cohort_size, retained, rate, retained_on_or_after,"
            " rate_on_or_after FROM analytics.retention WHERE granularity = 'day'",
        )
    }
    third, two_thirds = Decimal("0.3333"), Decimal("0.6667")
    # cohort Mar 2 = {A, B, E}
    assert got[(d(2), 0)] == (3, 3, Decimal("1.0000"), 3, Decimal("1.0000"))
    assert got[(d(2), 1)] == (3, 1, third, 3, Decimal("1.0000"))  # A; A, B, E come back
    assert got[(d(2), 2)] == (3, 1, third, 3, Decimal("1.0000"))  # B
    assert got[(d(2), 3)] == (3, 0, Decimal("0.0000"), 3, Decimal("1.0000"))
    assert got[(d(2), 7)] == (3, 1, third, 3, Decimal("1.0000"))  # A on Mar 9
    assert got[(d(2), 14)] == (3, 2, two_thirds, 3, Decimal("1.0000"))  # A, E on Mar 16
    assert got[(d(2), 15)] == (3, 0, Decimal("0.0000"), 1, third)  # only B after Mar 16
    assert got[(d(2), 20)] == (3, 1, third, 1, third)
    assert got[(d(2), 21)] == (3, 0, Decimal("0.0000"), 0, Decimal("0.0000"))
    # only complete days: Mar 2 + 28 = Mar 30 is the last day before AS_OF
    assert max(p for c, p in got if c == d(2)) == 28
    # cohorts Mar 3 = {C}, Mar 9 = {D}
    assert got[(d(3), 1)] == (1, 1, Decimal("1.0000"), 1, Decimal("1.0000"))
    assert got[(d(3), 3)] == (1, 0, Decimal("0.0000"), 0, Decimal("0.0000"))
    assert got[(d(9), 1)] == (1, 1, Decimal("1.0000"), 1, Decimal("1.0000"))
    # combined day-1 retention: (1 + 1 + 1) / (3 + 1 + 1)
    combined = rows(
        url,
        "SELECT sum(retained)::numeric / sum(cohort_size) FROM analytics.retention"
        " WHERE granularity = 'day' AND period = 1",
    )
    assert combined[0][0] == Decimal("0.6")


def test_weekly_retention(url: str) -> None:
    got = {
        (r[0], r[1]): r[2:]
        for r in rows(
            url,
            "SELECT cohort_start, period, cohort_size, retained FROM analytics.retention"
            " WHERE granularity = 'week'",
        )
    }
    # week of Mar 2 = {A, B, C, E}: week 1 A; week 2 A, B, E; week 3 nobody
    assert got[(d(2), 0)] == (4, 4)
    assert got[(d(2), 1)] == (4, 1)
    assert got[(d(2), 2)] == (4, 3)
    assert got[(d(2), 3)] == (4, 0)
    assert (d(2), 4) not in got  # the week of Mar 30 is not complete on Mar 31
    assert got[(d(9), 0)] == (1, 1)
    assert got[(d(9), 1)] == (1, 0)


def test_lifecycle_new_returning_resurrecting_dormant(url: str) -> None:
    weekly = {
        r[0]: r[1:]
        for r in rows(
            url,
            "SELECT period_start, new_users, returning_users, resurrecting_users, dormant_users, complete"
            " FROM analytics.lifecycle WHERE granularity = 'week' ORDER BY 1",
        )
    }
    assert weekly == {
        d(2): (4, 0, 0, 0, True),  # A, B, C, E all new
        d(9): (1, 1, 0, 3, True),  # D new; A returning; B, C, E dormant
        d(16): (0, 1, 2, 1, True),  # A returning; E, B resurrecting; D dormant
    }
    daily = {
        r[0]: r[1:]
        for r in rows(
            url,
            "SELECT period_start, new_users, returning_users, resurrecting_users, dormant_users"
            " FROM analytics.lifecycle WHERE granularity = 'day'",
        )
    }
    assert daily[d(3)] == (1, 1, 0, 2)  # C new, A returning, B and E dormant
    assert daily[d(6)] == (0, 0, 0, 1)  # C went dormant
    assert daily[d(9)] == (1, 0, 1, 0)  # D new, A resurrecting


def test_sessions_split_after_30_minutes_and_at_midnight(url: str) -> None:
    got = {
        r[0]: r[1:]
        for r in rows(
            url,
            "SELECT day, sessions, users, events, p50_length_s, p90_length_s,"
            " single_event_sessions FROM analytics.sessions_daily",
        )
    }
    # Mar 2: A 09:00-09:10 (600 s) and 09:50 alone (40 min gap); B 11:00-11:50 (a gap of
    # exactly 30 min does not split: 3000 s); E 15:00-15:05 (300 s).
    # lengths 0, 300, 600, 3000: p50 = 450, p90 = 600 + 0.7 * 2400 = 2280
    assert got[d(2)] == (4, 3, 8, Decimal("450.0"), Decimal("2280.0"), 1)
    # Mar 3: C 08:00-08:30 (1800 s, 4 events), A 10:00-10:05 (300 s)
    assert got[d(3)] == (2, 2, 6, Decimal("1050.0"), Decimal("1650.0"), 0)
    # C's 23:50 and 00:10 are 20 minutes apart but on two days: two sessions
    assert got[d(4)] == (2, 2, 2, Decimal("0.0"), Decimal("0.0"), 2)
    assert got[d(5)] == (1, 1, 1, Decimal("0.0"), Decimal("0.0"), 1)


def test_paid_conversion_within_14_and_30_days(url: str) -> None:
    got = {
        r[0]: r[1:]
        for r in rows(
            url,
            "SELECT signup_week, signups, paid_14d, paid_30d, rate_14d, rate_30d"
            " FROM analytics.paid_conversion",
        )
    }
    # A pays after 9 days 23 h (plan -> pro), B after 20 days 1 h (credits bought);
    # the 30-day rate waits until Apr 8, when the whole week had its 30 days.
    assert got == {
        d(2): (2, 1, 2, Decimal("0.5000"), None),
        d(9): (1, 0, 0, Decimal("0.0000"), None),
    }


def test_credits_per_user(url: str) -> None:
    got = {
        (r[0], r[1], r[2], r[3]): r[4:]
        for r in rows(
            url,
            "SELECT day, plan, provider, model, credits, users, credits_per_active_user,"
            " p50_credits_per_user, p90_credits_per_user FROM analytics.credits_daily",
        )
    }
    # Mar 2: A 5 (2 + 3), E 1; DAU 3 -> 2 per active user; p50 3, p90 1 + 0.9 * 4 = 4.6
    assert got[(d(2), "free", "anthropic", "claude-sonnet-4")] == (
        Decimal("6"),
        2,
        Decimal("2.0000"),
        Decimal("3.0000"),
        Decimal("4.6000"),
    )
    assert got[(d(2), "all", "all", "all")] == got[(d(2), "free", "anthropic", "claude-sonnet-4")]
    # Mar 3: A 2 on openai, C 2 on anthropic
    assert got[(d(3), "all", "all", "all")] == (
        Decimal("4"),
        2,
        Decimal("2.0000"),
        Decimal("2.0000"),
        Decimal("2.0000"),
    )
    assert got[(d(3), "free", "openai", "gpt-5")][:2] == (Decimal("2"), 1)
    # a purchase is not consumption: nothing on Mar 22
    assert not [k for k in got if k[0] == d(22)]


def test_model_share_latency_errors_and_tokens(url: str) -> None:
    got = {
        (r[0], r[1]): r[2:]
        for r in rows(
            url,
            "SELECT day, model, requests, errors, error_rate, users, request_share, user_share,"
            " p50_latency_s, p95_latency_s, tokens_in, tokens_out FROM analytics.model_usage_daily",
        )
    }
    # Mar 2: anthropic A x2 + B's failed call; users A, B of DAU 3
    assert got[(d(2), "claude-sonnet-4")] == (
        3, 1, Decimal("0.3333"), 2, Decimal("1.0000"), Decimal("0.6667"),
        2.0, pytest.approx(2.9), 1500, 150,
    )  # fmt: skip
    # Mar 3: openai 2 requests (A), anthropic 1 (C); each model 1 of 2 active users
    assert got[(d(3), "gpt-5")][:8] == (
        2,
        0,
        Decimal("0.0000"),
        1,
        Decimal("0.6667"),
        Decimal("0.5000"),
        3.0,
        pytest.approx(3.9),
    )
    assert got[(d(3), "claude-sonnet-4")][4:6] == (Decimal("0.3333"), Decimal("0.5000"))


def test_feature_use_and_28_day_adoption(url: str) -> None:
    got = {
        (r[0], r[1]): r[2:]
        for r in rows(
            url,
            "SELECT day, feature, uses, users, adopters_28d, adoption_28d"
            " FROM analytics.feature_usage_daily",
        )
    }
    # C's browser session: start and end are one use; MAU on Mar 3 is 4
    assert got[(d(3), "browser_tool")] == (1, 1, 1, Decimal("0.2500"))
    # days later the adopter still counts within 28 days (MAU on Mar 10 is 5)
    assert got[(d(10), "browser_tool")] == (0, 0, 1, Decimal("0.2000"))
    assert got[(d(10), "mcp_tool")] == (1, 1, 1, Decimal("0.2000"))
    assert got[(d(16), "tool")] == (1, 1, 1, Decimal("0.2000"))


def test_regions_and_languages(url: str) -> None:
    regions = {
        (r[0], r[1]): r[2:]
        for r in rows(
            url,
            "SELECT day, country, continent, users, events, new_users, user_share"
            " FROM analytics.region_daily",
        )
    }
    assert regions[(d(2), "KR")] == ("AS", 1, 3, 1, Decimal("0.3333"))
    assert regions[(d(2), "US")] == ("NA", 1, 3, 1, Decimal("0.3333"))
    assert regions[(d(2), "JP")] == ("AS", 1, 2, 1, Decimal("0.3333"))
    assert regions[(d(3), "KR")] == ("AS", 2, 6, 1, Decimal("1.0000"))  # A and C; C is new
    languages = {
        (r[0], r[1]): r[2:]
        for r in rows(
            url, "SELECT day, language, users, events, user_share FROM analytics.language_daily"
        )
    }
    assert languages[(d(3), "ko")] == (2, 6, Decimal("1.0000"))
    assert languages[(d(9), "de")] == (1, 2, Decimal("0.5000"))


def test_users_table_keeps_first_seen_signup_first_payment_and_latest_plan(url: str) -> None:
    got = {
        r[0]: r[1:]
        for r in query(
            url,
            "SELECT user_pseudonym, first_seen_at, signup_at, first_paid_at, plan, country"
            " FROM core.users",
        )
    }
    assert got[pseudonym("A")] == (
        at(d(2), "09:00"),
        at(d(2), "09:00"),
        at(d(12), "08:00"),
        "pro",
        "KR",
    )
    assert got[pseudonym("B")] == (
        at(d(2), "11:00"),
        at(d(2), "11:00"),
        at(d(22), "12:00"),
        "free",
        "US",
    )
    assert got[pseudonym("C")] == (at(d(3), "08:00"), None, None, "free", "KR")
    assert len(got) == 5
