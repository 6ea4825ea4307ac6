"""``caret-otel funnel``, ``caret-otel paths`` and ``caret-otel churn train|score|evaluate``:
behaviour analysis and churn prediction (docs/behaviour.md, docs/churn.md)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg

from caret_otel.behaviour import funnel as fn
from caret_otel.churn import model as churn_model
from caret_otel.churn import store as churn_store
from caret_otel.churn import synthetic
from caret_otel.churn.features import DRIVER_GROUPS, LABEL_DAYS, OBSERVATION_DAYS
from caret_otel.cli.exporter import (
    ANALYST,
    WRITER,
    _database_error,
    _parse_day,
    _resolve_url,
    data_dir_option,
    database_url_option,
)
from caret_otel.exporters.postgres import report as report_mod
from caret_otel.semconv import events

_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def _parse_window(_: click.Context, __: click.Parameter, value: str) -> timedelta:
    match = _DURATION.match(value.strip())
    if match is None or int(match[1]) == 0:
        raise click.BadParameter("a positive duration like 30m, 2h or 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def print_section(section: report_mod.Section) -> None:
    """A section as a table on the terminal (every value in full when piped)."""
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=100_000, soft_wrap=True)
    table = Table(title=section.title, title_justify="left", title_style="bold")
    for column in section.columns:
        table.add_column(column, overflow="fold")
    for row in section.rows:
        table.add_row(*(report_mod.format_cell(v) for v in row))
    if not section.rows:
        table.add_row(*(["(no data)"] + [""] * (len(section.columns) - 1)))
    console.print(table)


@click.command("funnel")
@click.argument("steps", nargs=-1, required=True, metavar="STEP STEP [STEP...]")
@click.option("--from", "start", metavar="DATE", callback=_parse_day,
              help="First day of step-1 events (YYYY-MM-DD) [default: 6 days before --to].")  # fmt: skip
@click.option("--to", "end", metavar="DATE", callback=_parse_day,
              help="Last day, included [default: today (UTC)].")  # fmt: skip
@click.option("--window", default="1d", show_default=True, callback=_parse_window,
              help="Conversion window from step 1 (30m, 2h, 7d).")  # fmt: skip
@click.option("--by", "breakdown", type=click.Choice(fn.FILTER_COLUMNS), default=None,
              help="Break down by this dimension (platform is the host app).")  # fmt: skip
@click.option("--per", "unit", type=click.Choice(tuple(fn.UNITS)), default="user",
              show_default=True, help="What converts: a user, a session or a task.")  # fmt: skip
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)  # fmt: skip
@database_url_option(ANALYST, "calls analytics.funnel only")
@data_dir_option
def funnel(
    steps: tuple[str, ...],
    start: date | None,
    end: date | None,
    window: timedelta,
    breakdown: str | None,
    unit: str,
    output: str,
    database_url: str | None,
    data_dir: Path | None,
) -> None:
    """Conversion and drop-off per step of a funnel, with the median time between steps.

    A STEP is an event (its name or the client's event type), optionally filtered:
    EVENT[column=value,...] with columns provider, model, feature, feature_action,
    platform, language, plan, client_version, country, error_type. Each unit's path is
    greedy: its first step-1 event in the range, then the first matching event of each
    next step within --window of step 1. The analyst role is enough.

    \b
    Examples:
      caret-otel funnel task.created task.tokens task.completed
      caret-otel funnel task.created 'task.completed' --per task --by provider --window 2h
      caret-otel funnel session.started 'task.created[provider=anthropic]' --format csv
      caret-otel funnel task.created task.completed --from 2026-11-01 --to 2026-11-28 --format json
    """
    try:
        parsed = [fn.parse_step(text, i) for i, text in enumerate(steps)]
    except fn.FunnelError as exc:
        raise click.BadParameter(str(exc), param_hint="STEP") from None
    from_ts, to_ts = _time_range(start, end)
    url = _resolve_url(database_url, data_dir, ANALYST)
    try:
        section = fn.run_funnel(
            url, parsed, start=from_ts, end=to_ts, window=window, breakdown=breakdown, unit=unit
        )
    except psycopg.Error as exc:
        _database_error(exc, url, "funnel", ANALYST)
    emit(section, output)


def _time_range(start: date | None, end: date | None) -> tuple[datetime, datetime]:
    """--from/--to as a half-open UTC range: the last 7 days up to today by default."""
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=6)
    if end < start:
        raise click.BadParameter(f"{end} is before --from {start}", param_hint="--to")
    from_ts = datetime(start.year, start.month, start.day, tzinfo=UTC)
    return from_ts, datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)


@click.command("paths")
@click.option("--after", metavar="EVENT",
              help="The next events after this one within a session (its name or the client's "
                   "event type). Without it: the sessions' openings and endings.")  # fmt: skip
@click.option("--from", "start", metavar="DATE", callback=_parse_day,
              help="First day (YYYY-MM-DD) [default: 6 days before --to].")  # fmt: skip
@click.option("--to", "end", metavar="DATE", callback=_parse_day,
              help="Last day, included [default: today (UTC)].")  # fmt: skip
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Most common events shown (per edge without --after).")  # fmt: skip
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)  # fmt: skip
@database_url_option(ANALYST, "reads analytics.path_transitions and analytics.session_edges")
@data_dir_option
def paths(
    after: str | None,
    start: date | None,
    end: date | None,
    limit: int,
    output: str,
    database_url: str | None,
    data_dir: Path | None,
) -> None:
    """The commonest paths within sessions: what users do next after an event, or how their
    sessions open and end.

    A session is one user's session id; events are ordered by time (then event id).
    With --after: the next events after EVENT with their count and share, "(end)" when
    the session had no further event. Without it: the first and the last event of each
    session, the session start and end markers left out, with the share of sessions.
    The analyst role is enough; the raw events behind both last 30 days.

    \b
    Examples:
      caret-otel paths --after task.created
      caret-otel paths --after caret.task.provider_api_error --limit 5 --format csv
      caret-otel paths                                   # session openings and endings
      caret-otel paths --from 2026-11-01 --to 2026-11-28 --format json
    """
    name: str | None = None
    if after is not None:
        try:
            name = fn.event_name(after.strip())
        except fn.FunnelError as exc:
            raise click.BadParameter(str(exc), param_hint="--after") from None
    from_ts, to_ts = _time_range(start, end)
    url = _resolve_url(database_url, data_dir, ANALYST)
    try:
        if name is not None:
            section = fn.next_events(url, name, start=from_ts, end=to_ts, limit=limit)
        else:
            section = fn.session_edges(url, start=from_ts, end=to_ts, limit=limit)
    except psycopg.Error as exc:
        _database_error(exc, url, "paths", ANALYST)
    emit(section, output)


def emit(section: report_mod.Section, output: str) -> None:
    if output == "json":
        click.echo(report_mod.to_json([section]).decode())
    elif output == "csv":
        click.echo(report_mod.to_csv(section), nl=False)
    else:
        print_section(section)


@click.group("churn")
def churn() -> None:
    """Churn prediction: P(no activity in the next 14 days) for users active in the last 28.

    Features come only from the stored pseudonymous daily rollups (never free text);
    docs/churn.md is the model card.

    \b
    Examples:
      caret-otel churn evaluate --synthetic          # the model on an in-process population
      caret-otel churn train                         # evaluate out of time, fit, store
      caret-otel churn score                         # today's scores (cron it daily)
      caret-otel churn evaluate --format json        # the stored model's evaluation
    """


def evaluation_sections(evaluation: dict[str, Any]) -> list[report_mod.Section]:
    scorers = report_mod.Section(
        "scorers",
        f"Churn model, out of time: test day {evaluation['test_day']}, "
        f"{evaluation['test_rows']} users, churn rate {evaluation['test_churn_rate']:.1%} "
        f"(trained on {evaluation['train_rows']} user snapshots)",
        ("scorer", "roc_auc", "pr_auc", "brier", "ece", "top_decile_lift"),
        [
            (s["name"], s["roc_auc"], s["pr_auc"], s["brier"], s["ece"], s["top_decile_lift"])
            for s in evaluation["scorers"]
        ],
    )
    drivers = report_mod.Section(
        "drivers",
        "Top drivers (permutation importance: ROC AUC lost when the driver's features are "
        "shuffled together)",
        ("driver", "importance", "std", "features"),
        [
            (name, mean, std, ", ".join(DRIVER_GROUPS.get(name, ())))
            for name, mean, std in evaluation.get("driver_importance", [])[:8]
        ],
    )
    features = report_mod.Section(
        "features",
        "Top features (permutation importance: ROC AUC lost when the feature is shuffled)",
        ("feature", "importance", "std"),
        [tuple(row) for row in evaluation["importance"][:8]],
    )
    return [scorers, drivers, features]


def _print_evaluation(evaluation: dict[str, Any], output: str) -> None:
    sections = evaluation_sections(evaluation)
    if output == "json":
        click.echo(orjson.dumps(evaluation, option=orjson.OPT_INDENT_2).decode())
        return
    for section in sections:
        print_section(section)


def _day(value: date | None) -> date:
    return value or datetime.now(UTC).date()


@churn.command("train")
@click.option("--as-of", metavar="DATE", callback=_parse_day,
              help="Train on the days before this one [default: today (UTC)].")  # fmt: skip
@click.option("--lookback-days", type=click.IntRange(56, 366),
              default=churn_store.DEFAULT_LOOKBACK_DAYS, show_default=True,
              help="Days of daily rollups to learn from (at least 56: 28 observed + 2 x 14 labelled; "
                   "not with --synthetic).")  # fmt: skip
@click.option("--synthetic", "use_synthetic", is_flag=True,
              help="Learn from the in-process population with the simulator's known drivers "
                   "instead of the rollups (a demo or test database with too few days).")  # fmt: skip
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)  # fmt: skip
@database_url_option(WRITER, "reads the rollups, stores the model")
@data_dir_option
def train(
    as_of: date | None,
    lookback_days: int,
    use_synthetic: bool,
    output: str,
    database_url: str | None,
    data_dir: Path | None,
) -> None:
    """Evaluate the model out of time, fit it on every labelled snapshot and store it.

    \b
    Examples:
      caret-otel churn train
      caret-otel churn train --as-of 2026-11-30 --lookback-days 180 --format json
      caret-otel churn train --synthetic && caret-otel churn score   # a demo stack's scores
    """
    url = _resolve_url(database_url, data_dir, WRITER)
    try:
        if use_synthetic:
            result = churn_store.train_synthetic(url, _day(as_of))
        else:
            result = churn_store.train(url, _day(as_of), lookback_days=lookback_days)
    except psycopg.Error as exc:
        _database_error(exc, url, "churn train", WRITER)
    if output == "table":
        click.echo(f"stored churn model {result.model_id}")
    _print_evaluation({"model_id": result.model_id, **result.evaluation.as_dict()}, output)


@churn.command("score")
@click.option("--as-of", metavar="DATE", callback=_parse_day,
              help="Score day: users active in the 28 days before it [default: today (UTC)].")  # fmt: skip
@database_url_option(WRITER, "reads the rollups and the model, writes agg.churn_scores")
@data_dir_option
def score(as_of: date | None, database_url: str | None, data_dir: Path | None) -> None:
    """Score users with the latest stored model into agg.churn_scores (analysts read
    analytics.churn_scores). Idempotent per day: run it daily from cron.

    \b
    Examples:
      caret-otel churn score
      caret-otel churn score --as-of 2026-11-30
      # crontab: 15 0 * * *  caret-otel churn score --database-url "$WRITER_URL"
    """
    url = _resolve_url(database_url, data_dir, WRITER)
    day = _day(as_of)
    try:
        count = churn_store.score(url, day)
    except psycopg.Error as exc:
        _database_error(exc, url, "churn score", WRITER)
    click.echo(f"scored {count} user(s) for {day}")


@churn.command("evaluate")
@click.option("--synthetic", "use_synthetic", is_flag=True,
              help="Train and evaluate on an in-process population with the simulator's known drivers.")  # fmt: skip
@click.option("--users", type=click.IntRange(200, 50_000), default=2000, show_default=True,
              help="With --synthetic: population size.")  # fmt: skip
@click.option("--seed", type=int, default=7, show_default=True, help="With --synthetic: seed.")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)  # fmt: skip
@database_url_option(ANALYST, "reads analytics.churn_models")
@data_dir_option
def evaluate(
    use_synthetic: bool,
    users: int,
    seed: int,
    output: str,
    database_url: str | None,
    data_dir: Path | None,
) -> None:
    """Print the out-of-time evaluation: of the stored model, or (--synthetic) of a model
    trained now on a synthetic population whose true churn drivers are known.

    \b
    Examples:
      caret-otel churn evaluate --synthetic
      caret-otel churn evaluate --format json | jq .scorers
    """
    if use_synthetic:
        result = churn_model.evaluate(synthetic.generate(users=users, seed=seed))
        _print_evaluation(result.as_dict(), output)
        return
    url = _resolve_url(database_url, data_dir, ANALYST)
    try:
        stored = churn_store.stored_evaluation(url)
    except psycopg.Error as exc:
        _database_error(exc, url, "churn evaluate", ANALYST)
    _print_evaluation(stored, output)


def print_demo_behaviour(
    analyst_dsn: str, start: datetime, end: datetime, writer_dsn: str | None = None
) -> None:
    """What ``caret-otel demo`` shows of this module: a funnel over the simulated traffic,
    the churn model's evaluation (trained on the in-process population: see the note it
    prints) and, with ``writer_dsn``, that model stored and today's users scored with it."""
    steps = [
        fn.parse_step(spec.name, i)
        for i, spec in enumerate(
            (events.CARET_TASK_CREATED, events.CARET_TASK_TOKENS, events.CARET_TASK_COMPLETED)
        )
    ]
    try:
        section = fn.run_funnel(
            analyst_dsn, steps, start=start, end=end, window=timedelta(hours=2),
            breakdown="provider", unit="task",
        )  # fmt: skip
    except psycopg.Error as exc:
        click.echo(f"funnel: PostgreSQL refused the query ({type(exc).__name__})", err=True)
    else:
        print_section(section)
    click.echo(
        f"Churn model: the demo holds {(end - start).days} days of traffic and training needs "
        f"{OBSERVATION_DAYS + 2 * LABEL_DAYS}, so it is judged on "
        "an in-process population with the simulator's known churn drivers (docs/churn.md):"
    )
    if writer_dsn is None:
        result = churn_model.evaluate(synthetic.generate())
        for evaluation_section in evaluation_sections(result.as_dict()):
            print_section(evaluation_section)
        return
    today = end.date()
    try:
        trained = churn_store.train_synthetic(writer_dsn, today)
        for evaluation_section in evaluation_sections(trained.evaluation.as_dict()):
            print_section(evaluation_section)
        scored = churn_store.score(writer_dsn, today)
    except psycopg.Error as exc:
        click.echo(f"churn: PostgreSQL refused the query ({type(exc).__name__})", err=True)
        return
    click.echo(
        f"Stored it as churn model {trained.model_id} and scored {scored} simulated user(s) "
        f"for {today} into agg.churn_scores (analysts: analytics.churn_scores)."
    )
