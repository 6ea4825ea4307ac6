"""*Product usage*: tasks, feature use, model selection, UI languages, concurrent users.

Source: the ``caret.*`` counters the gateway derives from client events (Prometheus),
and ``analytics.language_daily`` (PostgreSQL) for UI languages, which are not a metric
label (a per-language split of every counter would multiply series for little gain).
"""

from __future__ import annotations

from typing import Any

from caret_otel.dashboards import expressions as x
from caret_otel.dashboards import promql as q
from caret_otel.dashboards.board import Board, query_variable
from caret_otel.dashboards.datasources import POSTGRES, PROMETHEUS
from caret_otel.dashboards.panels import Prom, graph, grid, pie, single
from caret_otel.dashboards.promnames import prometheus_label, prometheus_name
from caret_otel.dashboards.sql import Sql
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import metrics

UID = "caret-product-usage"
W = q.RATE_WINDOW
RANGE = "$__range"

TASK_STARTS = prometheus_name(metrics.CARET_TASK_STARTS)
TASK_COMPLETIONS = prometheus_name(metrics.CARET_TASK_COMPLETIONS)
TASK_DURATION_BUCKET = prometheus_name(metrics.CARET_TASK_DURATION, "bucket")
TASK_TURNS = prometheus_name(metrics.CARET_TASK_TURNS)
FEATURE_USES = prometheus_name(metrics.CARET_FEATURE_USES)
MODEL_SELECTIONS = prometheus_name(metrics.CARET_MODEL_SELECTIONS)
SESSION_ACTIVE = prometheus_name(metrics.CARET_SESSION_ACTIVE)
SESSION_DURATION_BUCKET = prometheus_name(metrics.CARET_SESSION_DURATION, "bucket")
SIGNUPS = prometheus_name(metrics.CARET_SIGNUPS)

OUTCOME = prometheus_label(attrs.CARET_TASK_OUTCOME)
MODE = prometheus_label(attrs.CARET_TASK_MODE)
TURN_SOURCE = prometheus_label(attrs.CARET_TASK_TURN_SOURCE)
FEATURE = prometheus_label(attrs.CARET_FEATURE_NAME)
FEATURE_ACTION = prometheus_label(attrs.CARET_FEATURE_ACTION)
TOOL = prometheus_label(attrs.GEN_AI_TOOL_NAME)
PLATFORM = prometheus_label(attrs.CARET_CLIENT_PLATFORM)
CHANNEL = prometheus_label(attrs.CARET_SIGNUP_CHANNEL)
PLAN = prometheus_label(attrs.CARET_PLAN_NAME)

ENV = q.match(x.ENVIRONMENT, "$environment")
SUCCESS = "success"  # the caret.task.outcome of a task that did what was asked


def per_minute(expr: str) -> str:
    """Product counters are slow: per-minute rates read better than 0.02/s."""
    return f"60 * {expr}"


def legend(*labels: str) -> str:
    return " ".join("{{" + label + "}}" for label in labels)


LANGUAGES_SQL = """
SELECT language AS "UI language", sum(users) AS "user-days", sum(events) AS events
FROM analytics.language_daily
WHERE $__timeFilter(day)
GROUP BY language
ORDER BY 2 DESC
"""

# Real clients (issue 15): editors, OS families, feedback, checkpoints and modes.
HOST_APPS_SQL = """
SELECT host_app AS "host app", os_family AS "OS", sum(users) AS "user-days", sum(events) AS events
FROM analytics.host_app_daily
WHERE $__timeFilter(day)
GROUP BY host_app, os_family
ORDER BY 3 DESC
"""

FEEDBACK_SQL = """
SELECT provider, model, sum(thumbs_up) AS "thumbs up", sum(thumbs_down) AS "thumbs down",
       round(sum(thumbs_up)::numeric / nullif(sum(thumbs_up) + sum(thumbs_down), 0), 3) AS "up rate"
FROM analytics.feedback_by_model
WHERE $__timeFilter(day)
GROUP BY provider, model
ORDER BY 3 + 4 DESC
"""

CHECKPOINT_MODE_SQL = """
SELECT feature, action, sum(uses) AS uses, sum(users) AS "user-days"
FROM analytics.checkpoint_mode_daily
WHERE $__timeFilter(day)
GROUP BY feature, action
ORDER BY 3 DESC
"""


# Provider error rate by HTTP status from the real clients' events: task.provider_api_error
# (Cline 2026) and extension.message / extension.error (Caret 0.4.x) over requests.
PROVIDER_ERRORS_SQL = """
SELECT provider, model, status, error_type AS "error type", sum(errors) AS errors,
       sum(requests) AS requests, round(avg(error_rate), 4) AS "error rate"
FROM analytics.provider_errors_daily
WHERE $__timeFilter(day)
GROUP BY provider, model, status, error_type
ORDER BY errors DESC
"""


def build() -> dict[str, Any]:
    board = Board(
        UID,
        "Caret · Product usage",
        "What Caret users do: tasks, features, models, languages and concurrent sessions.",
        [PROMETHEUS, POSTGRES],
        [
            query_variable(
                "environment", "Environment", PROMETHEUS,
                f"label_values({TASK_STARTS}, {x.ENVIRONMENT})",
                f"{attrs.DEPLOYMENT_ENVIRONMENT_NAME}; All also matches series without it.",
            )
        ],
    )  # fmt: skip
    starts = q.selector(TASK_STARTS, ENV)
    completions = q.selector(TASK_COMPLETIONS, ENV)
    board.row(
        "Tasks",
        single("Tasks started", "Tasks started in the selected time range.", "short",
               Prom(q.sum_by((), q.increase(starts, RANGE)), instant=True)),
        single("Task success rate", f"Completed tasks with outcome {SUCCESS!r} / all completed tasks.",
               "percentunit",
               Prom(q.ratio(q.sum_by((), q.increase(q.selector(TASK_COMPLETIONS, ENV, q.eq(OUTCOME, SUCCESS)), RANGE)),
                            q.sum_by((), q.increase(completions, RANGE))), instant=True)),
        single("Active sessions", "Client sessions in progress now (concurrent users).", "short",
               Prom(q.sum_by((), q.selector(SESSION_ACTIVE, ENV)))),
        single("Sign-ups", "New accounts in the selected time range.", "short",
               Prom(q.sum_by((), q.increase(q.selector(SIGNUPS, ENV), RANGE)), instant=True)),
        graph("Task starts by mode", "Tasks started per minute, by agent mode (plan, act).", "opm",
              Prom(per_minute(q.sum_rate(starts, (MODE,), W)), legend(MODE)), stacked=True),
        graph("Task completions by outcome", "Tasks ended per minute, by outcome.", "opm",
              Prom(per_minute(q.sum_rate(completions, (OUTCOME,), W)), legend(OUTCOME)), stacked=True),
        graph("Task duration p50 / p90", "How long tasks take from creation to completion.", "s",
              Prom(q.quantile(0.5, q.selector(TASK_DURATION_BUCKET, ENV), (), W), "p50"),
              Prom(q.quantile(0.9, q.selector(TASK_DURATION_BUCKET, ENV), (), W), "p90")),
        graph("Conversation turns by source", "Conversation turns per minute, by who produced them.", "opm",
              Prom(per_minute(q.sum_rate(q.selector(TASK_TURNS, ENV), (TURN_SOURCE,), W)), legend(TURN_SOURCE))),
    )  # fmt: skip
    uses = q.selector(FEATURE_USES, ENV)
    board.row(
        "Features",
        graph("Feature uses by feature",
              "Uses per minute of the browser tool, MCP tools, the focus chain and built-in tools.", "opm",
              Prom(per_minute(q.sum_rate(uses, (FEATURE,), W)), legend(FEATURE)), stacked=True),
        grid("Feature actions in range",
             "Uses of each feature and action (start, end, enabled, ...) in the selected time range.", "short",
             Prom(q.sum_by((FEATURE, FEATURE_ACTION), q.increase(uses, RANGE)), instant=True)),
        graph("Built-in tools used", f"Uses per minute of each built-in agent tool ({attrs.GEN_AI_TOOL_NAME}).", "opm",
              Prom(per_minute(q.sum_rate(q.selector(FEATURE_USES, ENV, q.ne(TOOL, "")), (TOOL,), W)), legend(TOOL)),
              width=24),
    )  # fmt: skip
    selections = q.selector(MODEL_SELECTIONS, ENV)
    board.row(
        "Models",
        pie("Model selection share", "Share of UI model selections per model in the selected range.", "short",
            Prom(q.sum_by((x.PROVIDER, x.MODEL), q.increase(selections, RANGE)),
                 legend(x.PROVIDER, x.MODEL), instant=True)),
        graph("Model selections by model", "Models picked in the UI, per minute.", "opm",
              Prom(per_minute(q.sum_rate(selections, (x.MODEL,), W)), legend(x.MODEL)), width=16),
    )  # fmt: skip
    board.row(
        "Users",
        graph("Concurrent sessions by platform",
              f"{metrics.CARET_SESSION_ACTIVE.name}: sessions started and not yet ended, per client platform.", "short",
              Prom(q.sum_by((PLATFORM,), q.selector(SESSION_ACTIVE, ENV)), legend(PLATFORM)), stacked=True),
        graph("Session length p50 / p90", "Length of ended client sessions.", "s",
              Prom(q.quantile(0.5, q.selector(SESSION_DURATION_BUCKET, ENV), (), W), "p50"),
              Prom(q.quantile(0.9, q.selector(SESSION_DURATION_BUCKET, ENV), (), W), "p90")),
        grid("UI languages", "User-days and events per UI language of the extension (analytics.language_daily).",
             "short", Sql(LANGUAGES_SQL)),
        graph("Sign-ups by channel and plan", "New accounts per minute by sign-up channel and plan.", "opm",
              Prom(per_minute(q.sum_rate(q.selector(SIGNUPS, ENV), (CHANNEL, PLAN), W)), legend(CHANNEL, PLAN))),
    )  # fmt: skip
    board.row(
        "Editors, feedback, checkpoints",
        grid("Editors and OS families",
             "User-days and events per host app (VS Code, Cursor, ...) and OS family, one person "
             "counted once across login (analytics.host_app_daily).", "short", Sql(HOST_APPS_SQL)),
        grid("Feedback per model",
             "Thumbs up / down on task results and the thumbs-up rate, per model of the task "
             "(analytics.feedback_by_model).", "short", Sql(FEEDBACK_SQL)),
        grid("Checkpoints and mode switches",
             "Checkpoint operations (commit, diff, restore) and plan/act switches "
             "(analytics.checkpoint_mode_daily).", "short", Sql(CHECKPOINT_MODE_SQL)),
    )  # fmt: skip
    board.row(
        "Provider errors seen by users",
        grid("Provider error rate by status (client events)",
             "Errors / (requests + errors) per provider, model and HTTP status, from the "
             "clients' own reports (analytics.provider_errors_daily); the live rate is on "
             "the LLM API dashboard.", "short", Sql(PROVIDER_ERRORS_SQL), width=24),
    )  # fmt: skip
    return board.build()
