"""*Experiments*: A/B experiments from the analyst views (``analytics.experiment_*``).

Exposed users per experiment and variant over time (a lopsided split is the first sign
of a sample-ratio mismatch), and each variant against control per metric with the
fixed-horizon interval of ``analytics.experiment_results`` at today's look (the day since
the first exposure is a column). The decision - the experiment's method (alpha spending
over daily looks by default, or always-valid intervals), CUPED, the sample-ratio check,
Benjamini-Hochberg - is ``caret-otel experiments analyze KEY`` (docs/experiments.md); the
board says so.
"""

from __future__ import annotations

from typing import Any

from caret_otel.dashboards.board import Board
from caret_otel.dashboards.datasources import POSTGRES
from caret_otel.dashboards.panels import graph, grid, single
from caret_otel.dashboards.sql import Sql

UID = "caret-experiments"

EXPERIMENTS_SQL = """
SELECT max(day)::timestamp AS "time", count(DISTINCT experiment_key) AS "experiments"
FROM analytics.experiment_exposures_daily
WHERE $__timeFilter(day)
"""

EXPOSED_USERS_SQL = """
SELECT max(day)::timestamp AS "time", sum(new_users) AS "exposed users"
FROM analytics.experiment_exposures_daily
WHERE $__timeFilter(day)
"""

CUMULATIVE_SQL = """
SELECT day::timestamp AS "time", experiment_key || ' / ' || variant AS "metric",
       users AS "users"
FROM analytics.experiment_exposures_daily
WHERE $__timeFilter(day)
ORDER BY day
"""

NEW_USERS_SQL = """
SELECT day::timestamp AS "time", experiment_key || ' / ' || variant AS "metric",
       new_users AS "new users"
FROM analytics.experiment_exposures_daily
WHERE $__timeFilter(day)
ORDER BY day
"""

SPLIT_SQL = """
SELECT experiment_key AS "experiment", variant AS "variant", sum(new_users) AS "users",
       round(sum(new_users) / sum(sum(new_users)) OVER (PARTITION BY experiment_key), 4)
           AS "share of users"
FROM analytics.experiment_exposures_daily
GROUP BY experiment_key, variant
ORDER BY experiment_key, variant
"""

RESULTS_SQL = """
SELECT r.experiment_key AS "experiment", r.variant AS "variant", r.metric AS "metric",
       'fixed horizon, 95 %' AS "method",
       analytics.as_of() - f.first_day + 1 AS "look: day since first exposure",
       r.control_users AS "control users", r.users AS "users",
       round(r.control_value::numeric, 4) AS "control",
       round(r.value::numeric, 4) AS "variant value",
       round(r.lift::numeric, 4) AS "lift", round(r.lift_ci_low::numeric, 4) AS "95 % low",
       round(r.lift_ci_high::numeric, 4) AS "95 % high"
FROM analytics.experiment_results r
JOIN (SELECT experiment_key, min(day) AS first_day
      FROM analytics.experiment_exposures_daily GROUP BY experiment_key) f
    ON f.experiment_key = r.experiment_key
ORDER BY r.experiment_key, r.metric, r.variant
"""

COMPLETION_SQL = """
SELECT experiment_key AS "experiment", variant AS "variant", users AS "users",
       round((value_sum / nullif(denominator_sum, 0))::numeric, 4) AS "task completion rate"
FROM analytics.experiment_variant_stats
WHERE metric = 'task_completion_rate'
ORDER BY experiment_key, variant
"""

MEANS_SQL = """
SELECT experiment_key AS "experiment", metric AS "metric", variant AS "variant",
       users AS "users",
       round((CASE WHEN denominator_sum IS NULL THEN value_sum / users
                   ELSE value_sum / nullif(denominator_sum, 0) END)::numeric, 4) AS "value"
FROM analytics.experiment_variant_stats
ORDER BY experiment_key, metric, variant
"""


def build() -> dict[str, Any]:
    board = Board(
        UID,
        "Caret · Experiments",
        "A/B experiments: exposed users per variant and each variant against control per metric "
        "(a fixed-horizon 95 % interval at today's look, not the experiment's sequential method: "
        "decide with `caret-otel experiments analyze KEY`, which applies alpha spending or the "
        "always-valid test and names the look).",
        [POSTGRES],
        [],
        time_from="now-30d",
    )
    board.row(
        "Exposure",
        single("Experiments with exposures", "Experiments that recorded a first exposure in the range.",
               "short", Sql(EXPERIMENTS_SQL).time_series()),
        single("Exposed users", "Users first exposed to any experiment in the range.", "short",
               Sql(EXPOSED_USERS_SQL).time_series()),
        grid("Split per experiment", "Users and share of users per variant since each experiment started; "
             "a share far from the weights is a sample-ratio mismatch (analyze tests it).",
             "short", Sql(SPLIT_SQL)),
        graph("Exposed users (cumulative)", "Users exposed so far, per experiment and variant.", "short",
              Sql(CUMULATIVE_SQL).time_series()),
        graph("New exposed users per day", "Users whose first exposure fell on that day, per experiment and variant.",
              "short", Sql(NEW_USERS_SQL).time_series(), bars=True),
    )  # fmt: skip
    board.row(
        "Results",
        grid("Each variant against control",
             "Method: fixed horizon, 95 %, at today's look (column: day since the experiment's first "
             "exposure). Relative lift per metric with a delta-method interval - no CUPED, no "
             "sequential correction (peeking at it daily inflates false positives), no sample-ratio "
             "check. The decision uses the experiment's method: `caret-otel experiments analyze KEY` "
             "(alpha spending by default: its boundary at today's look). Variants under 10 users "
             "are not shown.", "short", Sql(RESULTS_SQL), width=24, height=10),
        grid("Task completion rate per variant", "Tasks completed successfully / tasks started since the first exposure.",
             "short", Sql(COMPLETION_SQL)),
        grid("Metric values per variant", "Per-user mean, or ratio of sums for ratio metrics, since the first exposure.",
             "short", Sql(MEANS_SQL)),
    )  # fmt: skip
    return board.build()
