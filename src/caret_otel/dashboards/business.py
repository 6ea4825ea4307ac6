"""*Business*: the analyst views in PostgreSQL (``analytics.*``), read-only.

Every panel reads a contract view of the business exporter through the ``caret_analyst``
role: active users, new users, retention, lifecycle, paid conversion, credits, regions,
model share, editors and OS families, feedback per model, checkpoint and mode use,
provider errors by status, and sessions. Only two Grafana macros are used, ``$__timeFilter(column)``
and ``$__timeFrom()``/``$__timeTo()``, so the e2e test can expand them exactly.
"""

from __future__ import annotations

from typing import Any

from caret_otel.dashboards.board import Board, custom_variable
from caret_otel.dashboards.datasources import POSTGRES
from caret_otel.dashboards.panels import graph, grid, pie, single
from caret_otel.dashboards.sql import Sql

UID = "caret-business"
RETENTION_PERIODS = range(8)


def _latest(column: str) -> Sql:
    """The active_users series of one column (a constant of this module, never input)."""
    return Sql(
        f"""
SELECT day::timestamp AS "time", {column}
FROM analytics.active_users
WHERE $__timeFilter(day)
ORDER BY day
"""  # noqa: S608
    ).time_series()


ACTIVE_USERS_SQL = """
SELECT day::timestamp AS "time", dau AS "DAU", wau AS "WAU", mau AS "MAU"
FROM analytics.active_users
WHERE $__timeFilter(day)
ORDER BY day
"""

NEW_USERS_SQL = """
SELECT day::timestamp AS "time", new_users AS "new users"
FROM analytics.active_users
WHERE $__timeFilter(day)
ORDER BY day
"""

RETENTION_SQL = (
    """
SELECT cohort_start AS "cohort", max(cohort_size) AS "cohort size",
"""
    + ",\n".join(
        f'       max(rate) FILTER (WHERE period = {n}) AS "{n}"' for n in RETENTION_PERIODS
    )
    + """
FROM analytics.retention
WHERE granularity = '$granularity' AND $__timeFilter(cohort_start)
GROUP BY cohort_start
ORDER BY cohort_start DESC
"""
)

LIFECYCLE_SQL = """
SELECT period_start::timestamp AS "time", new_users AS "new", returning_users AS "returning",
       resurrecting_users AS "resurrecting", -dormant_users AS "dormant"
FROM analytics.lifecycle
WHERE granularity = '$granularity' AND $__timeFilter(period_start)
ORDER BY period_start
"""

PAID_CONVERSION_SQL = """
SELECT signup_week AS "sign-up week", signups AS "sign-ups",
       paid_14d AS "paid within 14 d", rate_14d AS "rate 14 d",
       paid_30d AS "paid within 30 d", rate_30d AS "rate 30 d"
FROM analytics.paid_conversion
WHERE $__timeFilter(signup_week)
ORDER BY signup_week DESC
"""

CREDITS_PER_USER_SQL = """
SELECT day::timestamp AS "time", credits_per_active_user AS "per active user",
       p50_credits_per_user AS "p50 per spending user", p90_credits_per_user AS "p90 per spending user"
FROM analytics.credits_daily
WHERE plan = 'all' AND provider = 'all' AND model = 'all' AND $__timeFilter(day)
ORDER BY day
"""

CREDITS_BY_PLAN_SQL = """
SELECT day::timestamp AS "time", plan AS "metric", sum(credits) AS "credits"
FROM analytics.credits_daily
WHERE NOT (plan = 'all' AND provider = 'all' AND model = 'all') AND $__timeFilter(day)
GROUP BY day, plan
ORDER BY day
"""

CREDITS_BY_MODEL_SQL = """
SELECT provider AS "provider", model AS "model", plan AS "plan", sum(credits) AS "credits",
       sum(users) AS "user-days"
FROM analytics.credits_daily
WHERE NOT (plan = 'all' AND provider = 'all' AND model = 'all') AND $__timeFilter(day)
GROUP BY provider, model, plan
ORDER BY 4 DESC
"""

REGIONS_SQL = """
SELECT country AS "country", continent AS "continent", sum(users) AS "user-days", sum(events) AS "events"
FROM analytics.region_daily
WHERE $__timeFilter(day)
GROUP BY country, continent
ORDER BY 3 DESC
"""

MODEL_SHARE_SQL = """
SELECT provider || ' / ' || model AS "model", sum(requests) AS "requests"
FROM analytics.model_usage_daily
WHERE $__timeFilter(day)
GROUP BY provider, model
ORDER BY 2 DESC
"""

MODEL_TABLE_SQL = """
SELECT provider AS "provider", model AS "model", sum(requests) AS "requests",
       sum(requests)::float8 / nullif(sum(sum(requests)) OVER (), 0) AS "share of requests",
       avg(user_share) AS "avg share of DAU", sum(errors)::float8 / nullif(sum(requests), 0) AS "error rate",
       avg(p95_latency_s) AS "p95 latency (s)", sum(tokens_in + tokens_out) AS "tokens"
FROM analytics.model_usage_daily
WHERE $__timeFilter(day)
GROUP BY provider, model
ORDER BY 3 DESC
"""

SESSIONS_SQL = """
SELECT day::timestamp AS "time", sessions AS "sessions", users AS "users",
       single_event_sessions AS "single-event sessions"
FROM analytics.sessions_daily
WHERE $__timeFilter(day)
ORDER BY day
"""

SESSION_LENGTH_SQL = """
SELECT day::timestamp AS "time", p50_length_s AS "p50", p90_length_s AS "p90"
FROM analytics.sessions_daily
WHERE $__timeFilter(day)
ORDER BY day
"""

# Real clients (issue 15): editors, feedback per model, checkpoints and modes, as trends
# (the Product usage board has the totals of the same views).
USERS_BY_EDITOR_SQL = """
SELECT day::timestamp AS "time", host_app AS "metric", sum(users) AS "users"
FROM analytics.host_app_daily
WHERE $__timeFilter(day)
GROUP BY day, host_app
ORDER BY day
"""

USERS_BY_OS_SQL = """
SELECT day::timestamp AS "time", os_family AS "metric", sum(users) AS "users"
FROM analytics.host_app_daily
WHERE $__timeFilter(day)
GROUP BY day, os_family
ORDER BY day
"""

THUMBS_UP_RATE_SQL = """
SELECT day::timestamp AS "time", provider || ' / ' || model AS "metric",
       sum(thumbs_up)::float8 / nullif(sum(thumbs_up) + sum(thumbs_down), 0) AS "thumbs-up rate"
FROM analytics.feedback_by_model
WHERE $__timeFilter(day)
GROUP BY day, provider, model
ORDER BY day
"""

CHECKPOINT_MODE_USE_SQL = """
SELECT day::timestamp AS "time", feature || ' ' || action AS "metric", sum(uses) AS "uses"
FROM analytics.checkpoint_mode_daily
WHERE $__timeFilter(day)
GROUP BY day, feature, action
ORDER BY day
"""

PROVIDER_ERRORS_BY_STATUS_SQL = """
SELECT day::timestamp AS "time", status AS "metric", sum(errors) AS "errors"
FROM analytics.provider_errors_daily
WHERE $__timeFilter(day)
GROUP BY day, status
ORDER BY day
"""

FEATURE_ADOPTION_SQL = """
SELECT day::timestamp AS "time", feature AS "metric", adoption_28d AS "adoption"
FROM analytics.feature_usage_daily
WHERE $__timeFilter(day)
ORDER BY day
"""


def build() -> dict[str, Any]:
    board = Board(
        UID,
        "Caret · Business",
        "Active users, retention, lifecycle, conversion, credits, regions, model share, editors, feedback, "
        "checkpoints and modes, provider errors and sessions "
        "from the PostgreSQL analyst views (read-only caret_analyst role).",
        [POSTGRES],
        [custom_variable("granularity", "Cohort granularity", ("day", "week"),
                         "Period of retention cohorts and lifecycle buckets.")],
        time_from="now-30d",
    )  # fmt: skip
    board.row(
        "Active users",
        single("DAU", "Distinct active users on the latest day.", "short", _latest('dau AS "DAU"')),
        single("WAU", "Distinct active users in the 7 days up to the latest day.", "short", _latest('wau AS "WAU"')),
        single("MAU", "Distinct active users in the 28 days up to the latest day.", "short", _latest('mau AS "MAU"')),
        single("Stickiness", "DAU / MAU on the latest day.", "percentunit", _latest('stickiness AS "DAU/MAU"')),
        graph("DAU / WAU / MAU", "Daily, 7-day and 28-day distinct active users.", "short", Sql(ACTIVE_USERS_SQL).time_series()),
        graph("New users per day", "Users whose first activity was that day (from the 1-year users table).",
              "short", Sql(NEW_USERS_SQL).time_series(), bars=True),
    )  # fmt: skip
    board.row(
        "Retention and lifecycle",
        grid("Retention triangle",
             "Share of each first-activity cohort active again N periods later (columns N = 0..7); "
             "only complete periods are shown.", "percentunit", Sql(RETENTION_SQL), width=24, height=10),
        graph("Lifecycle", "Per period: new, returning and resurrecting users, and dormant users (drawn below zero).",
              "short", Sql(LIFECYCLE_SQL).time_series(), bars=True, stacked=True, width=24),
    )  # fmt: skip
    board.row(
        "Monetisation",
        grid("Paid conversion by sign-up week", "Share of each sign-up week's cohort paying within 14 and 30 days.",
             "short", Sql(PAID_CONVERSION_SQL), width=24),
        graph("Credits per active user", "Credits consumed / DAU per day, and the p50 / p90 credits of one spending user.",
              "short", Sql(CREDITS_PER_USER_SQL).time_series()),
        graph("Credits by plan", "Credits consumed per day, by plan.", "short",
              Sql(CREDITS_BY_PLAN_SQL).time_series(), bars=True, stacked=True),
        grid("Credits by model and plan", "Credits consumed and user-days per provider, model and plan.",
             "short", Sql(CREDITS_BY_MODEL_SQL), width=24),
    )  # fmt: skip
    board.row(
        "Models, regions and features",
        pie("Model share of requests", "Share of provider requests per model in the selected range.", "short",
            Sql(MODEL_SHARE_SQL)),
        grid("Models", "Requests, share of requests and of DAU, error rate, p95 latency and tokens per model.",
             "short", Sql(MODEL_TABLE_SQL), width=16),
        grid("Regional usage", "User-days and events per country (country level only, by privacy policy).",
             "short", Sql(REGIONS_SQL)),
        graph("Feature adoption (28 days)", "Share of 28-day active users who used each feature.", "percentunit",
              Sql(FEATURE_ADOPTION_SQL).time_series()),
    )  # fmt: skip
    board.row(
        "Editors, feedback and modes",
        graph("Active users by editor", "Distinct users per day and host app (VS Code, Cursor, ...), one "
              "person counted once across login (analytics.host_app_daily).", "short",
              Sql(USERS_BY_EDITOR_SQL).time_series()),
        graph("Active users by OS family", "Distinct users per day and OS family (analytics.host_app_daily).",
              "short", Sql(USERS_BY_OS_SQL).time_series()),
        graph("Thumbs-up rate per model", "Thumbs up / (up + down) on task results per day, per model of the "
              "task (analytics.feedback_by_model).", "percentunit", Sql(THUMBS_UP_RATE_SQL).time_series()),
        graph("Checkpoint and mode use", "Checkpoint operations and plan/act switches per day "
              "(analytics.checkpoint_mode_daily).", "short", Sql(CHECKPOINT_MODE_USE_SQL).time_series(),
              bars=True, stacked=True),
        graph("Provider errors by HTTP status", "Provider errors the clients reported per day, by HTTP status "
              "(analytics.provider_errors_daily; rates per model are on Product usage).", "short",
              Sql(PROVIDER_ERRORS_BY_STATUS_SQL).time_series(), bars=True, stacked=True, width=24),
    )  # fmt: skip
    board.row(
        "Sessions",
        graph("Sessions per day", "Sessions (split after 30 minutes of inactivity; one person's session "
              "split by login counts once), users and single-event sessions.",
              "short", Sql(SESSIONS_SQL).time_series()),
        graph("Session length p50 / p90", "Session length (last event - first event) per day.", "s",
              Sql(SESSION_LENGTH_SQL).time_series()),
    )  # fmt: skip
    return board.build()
