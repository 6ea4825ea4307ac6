"""Exposures through the real load path into PostgreSQL: the first exposure per user and
experiment, the per-user metrics, the k-threshold, `forget`, retention, and `analyze`."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from click.testing import CliRunner
from integration.exporter.exporter_helpers import at, event, load, pseudonym, query

from caret_otel.cli.experiments import experiments as experiments_cli
from caret_otel.dashboards import experiments as experiments_board
from caret_otel.exporters.postgres.deletion import forget
from caret_otel.exporters.postgres.retention import run_retention
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events

pytestmark = pytest.mark.integration

DAY = date.today() - timedelta(days=3)
NOW = datetime.now(UTC)
KEY = "plan-mode-hint"
REPO_EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"


def _exposure(user: str, when: datetime, variant: str, key: str = KEY) -> object:
    return event(
        user, when, events.CARET_EXPERIMENT_EXPOSURE,
        {attrs.CARET_EXPERIMENT_KEY: key, attrs.CARET_EXPERIMENT_VARIANT: variant},
    )  # fmt: skip


def _task(user: str, when: datetime, completed: bool) -> list[object]:
    records = [
        event(
            user,
            when,
            events.CARET_TASK_CREATED,
            {attrs.CARET_TASK_ID: pseudonym(f"{user}-{when}")},
        )
    ]
    if completed:
        records.append(
            event(user, when + timedelta(minutes=5), events.CARET_TASK_COMPLETED,
                  {attrs.CARET_TASK_ID: pseudonym(f"{user}-{when}"), attrs.CARET_TASK_OUTCOME: "success"})
        )  # fmt: skip
    return records


def _population() -> list[object]:
    records: list[object] = []
    for i in range(24):
        user, variant = f"user-{i}", ("control" if i % 2 == 0 else "hint")
        exposed = at(DAY, "10:00")
        # one task before the exposure (pre period), two after; the hint completes more
        records += _task(user, exposed - timedelta(days=2), completed=True)
        records.append(_exposure(user, exposed, variant))
        records += _task(user, exposed + timedelta(hours=1), completed=True)
        records += _task(
            user,
            exposed + timedelta(hours=2),
            completed=(i % 6 != 1) if variant == "hint" else i % 4 == 0,
        )
        # feedback on the second task: thumbs up from every hint user, every other control user
        thumbs = "thumbs_up" if variant == "hint" or i % 4 == 0 else "thumbs_down"
        records.append(
            event(user, exposed + timedelta(hours=3), events.CARET_TASK_FEEDBACK,
                  {attrs.CARET_FEEDBACK_TYPE: thumbs})
        )  # fmt: skip
        # later exposures of the same user change nothing
        records.append(_exposure(user, exposed + timedelta(days=1), variant))
    # a small variant of another experiment: under the k-threshold
    records += [_exposure(f"user-{i}", at(DAY, "11:00"), "b", key="tiny") for i in range(5)]
    records += [
        _exposure(f"user-{i}", at(DAY, "11:00"), "control", key="tiny") for i in range(5, 17)
    ]
    return records


def test_first_exposures_metrics_and_k_threshold(database: str) -> None:
    load(database, _population(), now=NOW, batch=37)  # batches split users' events
    rows = query(
        database,
        "SELECT variant, count(*), min(first_exposed_at), max(first_exposed_at),"
        " bool_or(multiple_variants) FROM agg.experiment_exposures WHERE experiment_key = %s"
        " GROUP BY variant ORDER BY variant",
        (KEY,),
    )
    exposed = at(DAY, "10:00")
    assert rows == [("control", 12, exposed, exposed, False), ("hint", 12, exposed, exposed, False)]
    stats = {
        (r[0], r[1]): r[2:]
        for r in query(
            database,
            "SELECT metric, variant, users, value_sum, denominator_sum, pre_sum"
            " FROM analytics.experiment_variant_stats WHERE experiment_key = %s",
            (KEY,),
        )
    }
    # two tasks after the exposure each; the one before is the pre period
    assert stats[("tasks_created", "control")] == (12, 24.0, None, 12.0)
    assert stats[("task_completion_rate", "hint")] == (12, 20.0, 24.0, None)
    assert stats[("task_completion_rate", "control")] == (12, 18.0, 24.0, None)
    assert stats[("thumbs_up_rate", "hint")] == (12, 12.0, 12.0, None)
    assert stats[("thumbs_up_rate", "control")] == (12, 6.0, 12.0, None)
    # k-threshold: 'tiny' shows its control (12 users) but not its variant b (5 users)
    tiny = query(
        database,
        "SELECT DISTINCT variant FROM analytics.experiment_variant_stats WHERE experiment_key = 'tiny'",
    )
    assert tiny == [("control",)]
    results = query(
        database,
        "SELECT lift FROM analytics.experiment_results"
        " WHERE experiment_key = %s AND metric = 'task_completion_rate'",
        (KEY,),
    )
    assert results[0][0] == pytest.approx(20 / 18 - 1)


def test_an_earlier_exposure_moves_the_first_back_and_another_variant_is_flagged(
    database: str,
) -> None:
    exposed = at(DAY, "10:00")
    load(
        database,
        [_exposure("late", exposed, "hint"), _exposure("flip", exposed, "control")],
        now=NOW,
    )
    load(
        database,
        [_exposure("late", exposed - timedelta(days=2), "hint"),
         _exposure("flip", exposed + timedelta(hours=1), "hint")],
        now=NOW + timedelta(days=0),
    )  # fmt: skip
    rows = dict(
        (r[0], r[1:])
        for r in query(
            database,
            "SELECT user_pseudonym, first_exposed_at, multiple_variants FROM agg.experiment_exposures",
        )
    )
    assert rows[pseudonym("late")] == (exposed - timedelta(days=2), False)
    assert rows[pseudonym("flip")] == (exposed, True)


def test_forget_and_retention_cover_exposures(database: str) -> None:
    load(database, _population(), now=NOW)
    result = forget(database, [pseudonym("user-0")])
    assert result.rows_removed["agg.experiment_exposures"] == 2  # plan-mode-hint and tiny
    assert query(
        database, "SELECT count(*) FROM agg.experiment_exposures WHERE user_pseudonym = %s",
        (pseudonym("user-0"),),
    ) == [(0,)]  # fmt: skip
    later = run_retention(database, now=NOW + timedelta(days=400))
    assert any(name.startswith("agg.experiment_exposures_p") for name in later.dropped)
    assert query(database, "SELECT count(*) FROM agg.experiment_exposures") == [(0,)]


def test_analyze_prints_the_table_and_json(database: str) -> None:
    load(database, _population(), now=NOW)
    with psycopg.connect(database) as conn:  # the CLI reads as the superuser here
        assert conn.execute("SELECT count(*) FROM analytics.experiment_variant_stats").fetchone()
    runner = CliRunner()
    args = ["analyze", KEY, "--dir", str(REPO_EXPERIMENTS), "--database-url", database]
    table = runner.invoke(experiments_cli, args)
    assert table.exit_code == 0, table.output
    assert "task_completion_rate" in table.output
    assert "decision:" in table.output
    as_json = runner.invoke(experiments_cli, [*args, "--format", "json"])
    report = orjson.loads(as_json.output)
    assert report["users"] == {"control": 12, "hint": 12}
    primary = next(r for r in report["results"] if r["role"] == "primary")
    assert primary["lift"] == pytest.approx(20 / 18 - 1)
    assert primary["ci_low"] < primary["lift"] < primary["ci_high"]
    # the method and today's look: one day of exposures, planned users projected to the end
    assert report["method"] == "alpha-spending"
    look = report["look"]
    day = (date.today() - date(2026, 11, 1)).days + 1
    assert (look["day"], look["planned_days"], look["number"], look["users"]) == (day, 92, 1, 24)
    assert look["projected"]
    assert look["planned_users"] == math.ceil(24 * 92 / min(day, 92))
    assert f"alpha spending (group-sequential, O'Brien-Fleming type): day {day} of 92, look 1" in (
        table.output
    )
    # the dashboard's results grid names its method and the look (days since the first exposure)
    with psycopg.connect(database) as conn:
        rows = conn.execute(experiments_board.RESULTS_SQL).fetchall()
    assert {(r[0], r[3], r[4]) for r in rows} == {(KEY, "fixed horizon, 95 %", 4)}
    # the same data with GrowthBook's always-valid test, for comparison
    valid = runner.invoke(experiments_cli, [*args, "--format", "json", "--method", "always-valid"])
    other = orjson.loads(valid.output)
    assert other["method"] == "always-valid"
    assert other["look"] is None
    assert next(r for r in other["results"] if r["role"] == "primary")["lift"] == primary["lift"]


def test_plan_reads_the_baseline_and_the_traffic_from_the_database(database: str) -> None:
    load(database, _population(), now=NOW)
    args = ["plan", KEY, "--dir", str(REPO_EXPERIMENTS), "--database-url", database]
    result = CliRunner().invoke(experiments_cli, args)
    assert result.exit_code == 0, result.output
    # the control's completion rate so far (18 of 24 tasks) is the baseline
    assert "baseline 0.75" in result.output
    # the definition's method: alpha spending over one look a day from start to end
    assert "users in all (alpha-spending test, 92 daily looks, MDE +5.0%" in result.output
    assert "set `planned_users: " in result.output
    # 24 users, all of them active in the last week: no new users to reach 2,950
    assert (
        "duration: not reachable at current traffic (24 eligible users in 28 days" in result.output
    )
