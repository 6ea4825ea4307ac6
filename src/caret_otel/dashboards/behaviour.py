"""*Behaviour and churn*: funnels, paths within sessions, feature adoption and its
effect on retention, observed churn by driver and the churn model's scores.

Source: PostgreSQL only (read-only caret_analyst role): ``analytics.funnel`` and
``analytics.session_edges`` (functions over the raw events, 30 days),
``analytics.path_transitions``, ``analytics.feature_adoption``,
``analytics.feature_retention`` and ``analytics.churn_observed`` (migration 0013); the
churn model's daily scores (``analytics.churn_scores``, ``analytics.churn_risk_daily``,
with plan and host app since migration 0014) and its evaluation
(``analytics.churn_models``), written by ``caret-otel churn train`` and ``churn score``
(docs/churn.md).
"""

from __future__ import annotations

from typing import Any

import orjson

from caret_otel.behaviour.funnel import SESSION_MARKERS
from caret_otel.churn.model import GRADIENT_BOOSTING, RECENCY_RULE
from caret_otel.dashboards.board import Board
from caret_otel.dashboards.datasources import POSTGRES
from caret_otel.dashboards.panels import graph, grid
from caret_otel.dashboards.sql import Sql
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events

UID = "caret-behaviour"


def _steps(*specs: events.EventSpec) -> str:
    return orjson.dumps([{"event": spec.name} for spec in specs]).decode()


def _funnel_sql(steps: str, window: str, breakdown: str, unit: str, attribute: str | None) -> str:
    unit_attribute = f"'{attribute}'" if attribute else "NULL"
    # Every interpolated value is a registry constant or a literal of this module.
    return f"""
SELECT breakdown_value AS "{breakdown}", step, event_name AS event, units,
       conversion_from_first, conversion_from_previous, drop_off,
       median_seconds_from_previous AS "median s from previous"
FROM analytics.funnel('{steps}'::jsonb, interval '{window}', $__timeFrom(), $__timeTo(),
                      '{breakdown}', '{unit}', {unit_attribute})
ORDER BY 1, 2
"""  # noqa: S608


TASK_FUNNEL_SQL = _funnel_sql(
    _steps(events.CARET_TASK_CREATED, events.CARET_TASK_TOKENS, events.CARET_TASK_COMPLETED),
    "2 hours",
    "provider",
    "attribute",
    attrs.CARET_TASK_ID,
)
USER_FUNNEL_SQL = _funnel_sql(
    _steps(events.CARET_SESSION_STARTED, events.CARET_TASK_CREATED, events.CARET_TASK_COMPLETED),
    "1 day",
    "platform",
    "user",
    None,
)


def _next_events_sql(after: events.EventSpec) -> str:
    return f"""
SELECT next_event_name AS "next event", sum(transitions) AS transitions,
       round(sum(transitions) / sum(sum(transitions)) OVER (), 4) AS share
FROM analytics.path_transitions
WHERE event_name = '{after.name}' AND $__timeFilter(day)
GROUP BY next_event_name
ORDER BY transitions DESC
LIMIT 10
"""  # noqa: S608 (a registry constant)


NEXT_AFTER_CREATED_SQL = _next_events_sql(events.CARET_TASK_CREATED)
NEXT_AFTER_ERROR_SQL = _next_events_sql(events.CARET_TASK_PROVIDER_API_ERROR)
_MARKERS = ", ".join(f"'{name}'" for name in SESSION_MARKERS)
SESSION_EDGES_SQL = f"""
SELECT edge, event_name AS event, sessions, share
FROM analytics.session_edges($__timeFrom(), $__timeTo(), ARRAY[{_MARKERS}])
WHERE share >= 0.01
ORDER BY edge DESC, sessions DESC
"""  # noqa: S608 (registry constants)
ADOPTION_SQL = """
SELECT feature, active_users_28d AS "active users (28 d)", adopters_28d AS adopters,
       adoption_share AS "adoption share", median_days_to_adopt AS "median days to adopt"
FROM analytics.feature_adoption
ORDER BY adoption_share DESC NULLS LAST
"""
ADOPTER_RETENTION_SQL = """
SELECT feature,
       CASE WHEN adopter THEN 'adopters' ELSE 'non-adopters' END AS "group",
       sum(users) AS users,
       round(sum(retention_d7 * users) / nullif(sum(users) FILTER (WHERE retention_d7 IS NOT NULL), 0), 4) AS "D7 retention",
       round(sum(retention_d28 * users) / nullif(sum(users) FILTER (WHERE retention_d28 IS NOT NULL), 0), 4) AS "D28 retention"
FROM analytics.feature_retention
GROUP BY feature, adopter
ORDER BY feature, adopter DESC
"""
OBSERVED_CHURN_SQL = """
SELECT dimension, value, users, churned, churn_rate AS "churn rate"
FROM analytics.churn_observed($__timeFrom()::date, $__timeTo()::date + 1)
"""


# The scores of the last score day in the dashboard's time range.
_LATEST_SCORES = """
WITH latest AS (
    SELECT max(score_day) AS score_day FROM analytics.churn_scores WHERE $__timeFilter(score_day)
), scores AS (
    SELECT s.* FROM analytics.churn_scores s JOIN latest USING (score_day)
)"""
RISK_BANDS = ((0.5, "high (50 % or more)"), (0.2, "medium (20-50 %)"), (0.0, "low (under 20 %)"))
"""Churn probability bands of the risk panel: (lower bound, label), highest first."""
_BAND_CASE = (
    "CASE "
    + " ".join(f"WHEN probability >= {low} THEN '{label}'" for low, label in RISK_BANDS[:-1])
    + f" ELSE '{RISK_BANDS[-1][1]}' END"
)
RISK_BANDS_SQL = f"""{_LATEST_SCORES}
SELECT score_day AS "score day", {_BAND_CASE} AS "risk band", count(*) AS users,
       round(avg(probability)::numeric, 4) AS "mean probability",
       round(sum(probability)::numeric, 1) AS "expected churners"
FROM scores
GROUP BY score_day, 2
ORDER BY min(probability) DESC
"""  # noqa: S608 (literals of this module)
TOP_DECILE_SQL = f"""{_LATEST_SCORES}
SELECT host_app AS "host app", plan, count(*) AS users,
       count(*) FILTER (WHERE risk_decile = 10) AS "top-decile users",
       round(count(*) FILTER (WHERE risk_decile = 10)::numeric / count(*), 4) AS "top-decile share",
       round(avg(probability)::numeric, 4) AS "mean probability"
FROM scores
GROUP BY host_app, plan
ORDER BY "top-decile share" DESC, users DESC, host_app, plan
"""  # noqa: S608
SCORE_DISTRIBUTION_SQL = f"""{_LATEST_SCORES}
SELECT to_char(least(floor(probability * 10), 9) / 10, 'FM0.0') || '-'
       || to_char(least(floor(probability * 10), 9) / 10 + 0.1, 'FM0.0') AS probability,
       count(*) AS users
FROM scores
GROUP BY 1
ORDER BY 1
"""  # noqa: S608
EXPECTED_CHURNERS_SQL = """
SELECT score_day::timestamp AS "time", sum(users) AS "users scored",
       sum(expected_churners) AS "expected churners"
FROM analytics.churn_risk_daily
WHERE $__timeFilter(score_day)
GROUP BY score_day
ORDER BY score_day
"""


def _metric(scorer: str, metric: str) -> str:
    """One metric of one scorer from the stored evaluation (both constants of this code)."""
    select = f"(SELECT (s ->> '{metric}')::numeric"
    return f"{select} FROM jsonb_array_elements(evaluation -> 'scorers') s WHERE s ->> 'name' = '{scorer}')"


MODEL_SQL = f"""
SELECT model_id AS model, trained_at AS "trained at", as_of AS "as of",
       coalesce(evaluation -> 'training_data' ->> 'source', 'rollups') AS "trained on",
       evaluation ->> 'test_day' AS "test day",
       (evaluation ->> 'test_rows')::bigint AS "test users",
       {_metric(GRADIENT_BOOSTING, "roc_auc")} AS "ROC AUC",
       {_metric(RECENCY_RULE, "roc_auc")} AS "recency-rule ROC AUC",
       {_metric(GRADIENT_BOOSTING, "pr_auc")} AS "PR AUC",
       {_metric(GRADIENT_BOOSTING, "ece")} AS "ECE",
       {_metric(GRADIENT_BOOSTING, "top_decile_lift")} AS "top-decile lift",
       (SELECT string_agg(d ->> 0, ', ' ORDER BY n)
        FROM jsonb_array_elements(evaluation -> 'driver_importance') WITH ORDINALITY AS t (d, n)
        WHERE n <= 5) AS "top drivers"
FROM analytics.churn_models
ORDER BY model_id DESC
LIMIT 3
"""  # noqa: S608 (constants of caret_otel.churn.model)


def build() -> dict[str, Any]:
    board = Board(
        UID,
        "Caret · Behaviour and churn",
        "Where users drop out of a task, what they do next, which features they adopt and whether "
        "adopters stay, and who leaves (PostgreSQL analyst views, read-only caret_analyst role).",
        [POSTGRES],
        time_from="now-7d",
    )
    board.row(
        "Funnels",
        grid("Task funnel by provider",
             "Per task: created, then a successful provider response, then completed, within 2 hours "
             "of creation (analytics.funnel). Conversion from the first and the previous step, drop-off "
             "and median seconds between steps.", "short", Sql(TASK_FUNNEL_SQL)),
        grid("Session-to-task funnel by host app",
             "Per user: a session start, then a task, then a completed task within a day "
             "(analytics.funnel), by host app (client platform).", "short", Sql(USER_FUNNEL_SQL)),
    )  # fmt: skip
    board.row(
        "Paths",
        grid("What follows a new task",
             "The most common next events after a task is created, within the same session "
             "(analytics.path_transitions); (end) = the session had no further event.",
             "short", Sql(NEXT_AFTER_CREATED_SQL)),
        grid("What follows a provider error",
             "The most common next events after a failed provider request in the same session: "
             "a retry, another tool, or the end of the session (analytics.path_transitions).",
             "short", Sql(NEXT_AFTER_ERROR_SQL)),
        grid("Session openings and endings",
             "The first and last event of sessions, session start/end markers left out "
             "(analytics.session_edges).", "short", Sql(SESSION_EDGES_SQL)),
    )  # fmt: skip
    board.row(
        "Feature adoption",
        grid("Feature adoption (28 days)",
             "Share of users active in the last 28 days who used each feature, and the median days "
             "from a user's first activity to their first use (analytics.feature_adoption).",
             "short", Sql(ADOPTION_SQL)),
        grid("Retention of adopters vs non-adopters",
             "D7 and D28 retention of users who used the feature in their first week against those "
             "who did not, over the same cohorts (analytics.feature_retention).",
             "percentunit", Sql(ADOPTER_RETENTION_SQL)),
    )  # fmt: skip
    board.row(
        "Churn",
        grid("Observed churn by driver",
             "Users active in the first half of the time range, and the share of them with no activity "
             "in the second half, by provider error rate, distinct features used and plan "
             "(analytics.churn_observed).",
             "short", Sql(OBSERVED_CHURN_SQL), width=24),
        grid("Users by churn risk band",
             "The model's scores of the last score day in the range: users whose probability of no "
             "activity in the next 14 days is high, medium or low, with the expected number of "
             "churners (sum of probabilities; analytics.churn_scores).",
             "short", Sql(RISK_BANDS_SQL)),
        grid("Top-decile share by host app and plan",
             "Share of each host app and plan's scored users in the riskiest tenth (risk decile 10) "
             "on the last score day; 0.1 is average (analytics.churn_scores).",
             "short", Sql(TOP_DECILE_SQL)),
        grid("Churn score distribution",
             "Scored users per 0.1-wide probability bin on the last score day "
             "(analytics.churn_scores).", "short", Sql(SCORE_DISTRIBUTION_SQL)),
        graph("Users scored and expected churners",
              "Per score day: users scored (active in the 28 days before) and the expected churners "
              "among them (analytics.churn_risk_daily).",
              "short", Sql(EXPECTED_CHURNERS_SQL).time_series(), bars=True),
        grid("Churn model",
             "The latest stored models: when and on what they were trained, their out-of-time test "
             "day and ROC AUC against the recency-only rule, calibration error (ECE) and top "
             "drivers (analytics.churn_models; docs/churn.md).",
             "short", Sql(MODEL_SQL), width=24),
    )  # fmt: skip
    return board.build()
