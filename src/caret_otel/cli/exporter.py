"""``caret-otel exporter``, ``db migrate``, ``retention run``, ``forget`` and ``report``:
the PostgreSQL business exporter and the operations around it."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

import click
import psycopg

from caret_otel.exporters.postgres import report as report_mod
from caret_otel.exporters.postgres.config import (
    DATABASE_URL_ENVS,
    DEFAULT_HOST,
    DEFAULT_PORT,
    LISTEN_ENV,
    ExporterSettings,
    SettingsError,
    database_url_from_env,
    listen_from_env,
    require_database_url,
)
from caret_otel.stack.state import DEFAULT_DATA_DIR, StackNotRunningError, read_stack_info

database_url_option = click.option(
    "--database-url",
    metavar="URL",
    default=None,
    help=f"PostgreSQL URL [default: ${' or $'.join(DATABASE_URL_ENVS)}; for `report`, else the running `caret-otel up` stack's analyst login].",
)


def _database_url(flag: str | None) -> str:
    try:
        return require_database_url(flag)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _report_database_url(flag: str | None) -> str:
    """The flag or env URL; else the read-only analyst login of the running local stack."""
    if flag or database_url_from_env():
        return _database_url(flag)
    try:
        return read_stack_info(DEFAULT_DATA_DIR).database.analyst_dsn()
    except StackNotRunningError:
        return _database_url(flag)  # no URL anywhere: the usage error says how to give one


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


# --- exporter ---------------------------------------------------------------------------
@click.command("exporter")
@click.option(
    "--host", default=None, help=f"Listen address [default: {DEFAULT_HOST}, or ${LISTEN_ENV}]."
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None,
    help=f"Listen port [default: {DEFAULT_PORT}, or ${LISTEN_ENV}].",
)  # fmt: skip
@database_url_option
@click.option("--pool-size", type=click.IntRange(1, 64), default=4, show_default=True,
              help="PostgreSQL connections for writes.")  # fmt: skip
@click.option("--retention-interval", type=click.FloatRange(min=1), default=3600.0,
              show_default=True, help="Seconds between runs of the retention job.")  # fmt: skip
@click.option("--no-migrate", is_flag=True, help="Do not migrate the schema at start.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True)  # fmt: skip
def exporter(
    host: str | None,
    port: int | None,
    database_url: str | None,
    pool_size: int,
    retention_interval: float,
    no_migrate: bool,
    log_level: str,
) -> None:
    """Run the business exporter: OTLP/HTTP in (/v1/logs, /v1/metrics), PostgreSQL out.

    Migrates the schema at start, folds new events into the rollups continuously and
    runs the retention job periodically. Answers 503 with Retry-After while PostgreSQL
    is unavailable. Also serves /healthz, /readyz and /metrics.

    \b
    Examples:
      caret-otel exporter --database-url postgresql://caret_writer:...@127.0.0.1/caret
      CARET_OTEL_EXPORTER_LISTEN=0.0.0.0:4320 DATABASE_URL=postgresql://... caret-otel exporter
    """
    import uvicorn

    from caret_otel.exporters.postgres.app import create_app
    from caret_otel.exporters.postgres.service import ExporterService

    try:
        env_host, env_port = listen_from_env() or (DEFAULT_HOST, DEFAULT_PORT)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    settings = ExporterSettings(
        database_url=_database_url(database_url),
        pool_size=pool_size,
        retention_interval=retention_interval,
        run_migrations=not no_migrate,
    )
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(ExporterService(settings))
    uvicorn.run(
        app,
        host=host or env_host,
        port=port or env_port,
        log_level=log_level,
        access_log=log_level == "debug",
    )


# --- db migrate -------------------------------------------------------------------------
@click.group("db")
def db() -> None:
    """The exporter's PostgreSQL schema.

    \b
    Examples:
      caret-otel db migrate --database-url postgresql://postgres@127.0.0.1/caret
      caret-otel db status
    """


@db.command("migrate")
@database_url_option
def db_migrate(database_url: str | None) -> None:
    """Apply pending migrations (idempotent, safe to run concurrently) and set the role
    passwords given in the environment.

    Run it as a role that may create schemas and roles (the database owner or an
    administrator). Passwords come from $CARET_OTEL_WRITER_PASSWORD (caret_writer)
    and $CARET_OTEL_ANALYST_PASSWORD (caret_analyst) when set.

    \b
    Examples:
      caret-otel db migrate --database-url postgresql://postgres:...@127.0.0.1:5432/caret
      CARET_OTEL_WRITER_PASSWORD=... DATABASE_URL=postgresql://... caret-otel db migrate
    """
    from caret_otel.exporters.postgres.roles import set_role_passwords
    from caret_otel.exporters.postgres.schema import MigrationError, migrate

    url = _database_url(database_url)
    try:
        with _status("migrating"):
            applied = migrate(url)
            roles = set_role_passwords(url)
    except MigrationError as exc:
        _fail(str(exc))
    except psycopg.Error as exc:
        _fail(f"PostgreSQL: {exc}")
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("schema is up to date")
    for role in roles:
        click.echo(f"password set for role {role}")


@db.command("status")
@database_url_option
def db_status(database_url: str | None) -> None:
    """List the migrations that are not applied yet (exit 1 when there are some).

    \b
    Example:
      caret-otel db status --database-url postgresql://...
    """
    from caret_otel.exporters.postgres.schema import pending_migrations

    try:
        pending = pending_migrations(_database_url(database_url))
    except psycopg.Error as exc:
        _fail(f"PostgreSQL: {exc}")
    if not pending:
        click.echo("schema is up to date")
        return
    for name in pending:
        click.echo(f"pending {name}")
    raise SystemExit(1)


# --- retention run ----------------------------------------------------------------------
@click.group("retention")
def retention() -> None:
    """Retention tiers: raw events 30 days, rollups 1 year, anonymised trends 3 years.

    \b
    Examples:
      caret-otel retention run
      caret-otel retention run --dry-run --now 2026-01-31T00:00:00Z   # what would happen then
    """


@retention.command("run")
@database_url_option
@click.option("--now", "now_text", metavar="ISO-TIME", default=None,
              help="Run as if it were this time (UTC if no offset) [default: now].")  # fmt: skip
@click.option("--dry-run", is_flag=True,
              help="Run the job in a transaction that is rolled back: report, change nothing.")  # fmt: skip
@click.option("--force", is_flag=True,
              help="Allow a --now in the future without --dry-run (drops what would expire then).")  # fmt: skip
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)  # fmt: skip
def retention_run(
    database_url: str | None, now_text: str | None, dry_run: bool, force: bool, output: str
) -> None:
    """Roll up pending events, rebuild the monthly trends, create the coming partitions
    and drop the expired ones (whole partitions, never row by row).

    A --now in the future would drop data that has not expired yet, so it is refused
    unless --dry-run (see what would happen then) or --force (do it) is given.

    \b
    Examples:
      caret-otel retention run --database-url postgresql://...
      caret-otel retention run --dry-run                      # what would be dropped now
      caret-otel retention run --dry-run --now 2027-01-31     # ... and on that day
      caret-otel retention run --format json
    """
    import orjson

    from caret_otel.exporters.postgres.retention import run_retention

    now = None
    if now_text:
        try:
            now = datetime.fromisoformat(now_text.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(
                f"{now_text!r} is not an ISO time", param_hint="--now"
            ) from None
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        if now > datetime.now(UTC) and not (dry_run or force):
            raise click.BadParameter(
                f"{now.isoformat()} is in the future: the job would drop data that has not "
                "expired yet; add --dry-run to see what would happen then, or --force to do it",
                param_hint="--now",
            )
    try:
        with _status("dry run of the retention job" if dry_run else "running the retention job"):
            result = run_retention(_database_url(database_url), now=now, dry_run=dry_run)
    except psycopg.Error as exc:
        _fail(f"PostgreSQL: {exc}")
    if output == "json":
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    if result.dry_run:
        click.echo("dry run: nothing was changed; this is what the job would do")
    click.echo(f"as of {result.now.isoformat()}: rolled up {result.rolled_up} event(s)")
    click.echo(
        f"trends rebuilt for: {', '.join(m.strftime('%Y-%m') for m in result.trends_months) or 'none'}"
    )
    click.echo(f"partitions ensured: {len(result.ensured)}")
    click.echo(f"partitions dropped: {len(result.dropped)}")
    verb = "would drop" if result.dry_run else "dropped"
    for name in result.dropped:
        click.echo(f"  {verb} {name}")


# --- forget -----------------------------------------------------------------------------
@click.command("forget")
@click.argument("user_id_hash")
@database_url_option
@click.option("--request-id", default=None, help="Id of the deletion request (for the audit); "
              "repeating an id that completed returns its recorded result.")  # fmt: skip
def forget(user_id_hash: str, database_url: str | None, request_id: str | None) -> None:
    """Delete a user everywhere: every per-user table, under every live pseudonym key,
    with an audit row in privacy.deletion_requests.

    USER_ID_HASH is the client's user_id_hash; the pseudonym keys come from
    $CARET_OTEL_PSEUDONYM_KEYS or $CARET_OTEL_PSEUDONYM_KEY_FILE.

    \b
    Examples:
      caret-otel forget 3f1c9a... --database-url postgresql://...
      caret-otel forget 3f1c9a... --request-id ticket-4711
    """
    from caret_otel.exporters.postgres.deletion import InvalidDeletionRequest
    from caret_otel.exporters.postgres.deletion import forget as forget_user
    from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, PseudonymKeyError

    if not user_id_hash.strip():
        raise click.BadParameter("must not be empty", param_hint="USER_ID_HASH")
    try:
        pseudonyms = Pseudonymizer.from_env().all_pseudonyms(user_id_hash)
    except PseudonymKeyError as exc:
        _fail(str(exc))
    try:
        with _status("deleting"):
            result = forget_user(_database_url(database_url), pseudonyms, request_id=request_id)
    except InvalidDeletionRequest as exc:
        _fail(str(exc))
    except psycopg.Error as exc:
        _fail(f"PostgreSQL: {exc} (nothing was deleted)")
    state = "had already completed" if result.already_completed else "completed"
    click.echo(f"deletion request {result.request_id} {state} at {result.completed_at.isoformat()}")
    click.echo(f"pseudonyms searched: {len(pseudonyms)} (one per live key)")
    for table, rows in sorted(result.rows_removed.items()):
        click.echo(f"  {table}: {rows} row(s) removed")
    click.echo(f"total: {result.total_rows} row(s)")


# --- report -----------------------------------------------------------------------------
def _parse_day(_: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.command("report")
@click.option("--from", "start", metavar="DATE", callback=_parse_day,
              help="First day (YYYY-MM-DD) [default: 27 days before --to].")  # fmt: skip
@click.option("--to", "end", metavar="DATE", callback=_parse_day,
              help="Last day, included [default: today, UTC].")  # fmt: skip
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)  # fmt: skip
@database_url_option
def report(start: date | None, end: date | None, output: str, database_url: str | None) -> None:
    """Print the main analyst tables for a date range: active users, sessions,
    retention, lifecycle, paid conversion, credits, models, features, regions,
    languages and the anonymised monthly trends.

    Reads only the analytics.* views, so the read-only caret_analyst role is enough.

    \b
    Examples:
      caret-otel report --from 2026-01-01 --to 2026-01-31
      caret-otel report --format csv > report.csv
      caret-otel report --format json | jq .active_users.rows
    """
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=27)
    if end < start:
        raise click.BadParameter(f"{end} is before --from {start}", param_hint="--to")
    try:
        sections = report_mod.build_report(_report_database_url(database_url), start, end)
    except psycopg.Error as exc:
        _fail(f"PostgreSQL: {exc}")
    if output == "json":
        click.echo(report_mod.to_json(sections).decode())
    elif output == "csv":
        click.echo(report_mod.to_csv(sections), nl=False)
    else:
        _print_tables(sections, start, end)


def _print_tables(sections: list[report_mod.Section], start: date, end: date) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]Caret analytics {start} .. {end}[/bold] (UTC days)")
    for section in sections:
        table = Table(title=section.title, title_justify="left", title_style="bold")
        for column in section.columns:
            table.add_column(column, justify="left" if column in _TEXT_COLUMNS else "right")
        for row in section.rows:
            table.add_row(*(report_mod.format_cell(v) for v in row))
        if not section.rows:
            table.add_row(*(["(no data)"] + [""] * (len(section.columns) - 1)))
        console.print(table)


_TEXT_COLUMNS = frozenset(
    {
        "provider",
        "model",
        "plan",
        "feature",
        "country",
        "continent",
        "language",
        "dimension",
        "value",
    }
)


def _status(message: str) -> Any:
    """A spinner on a terminal; nothing when output is redirected."""
    from contextlib import nullcontext

    from rich.console import Console

    console = Console(stderr=True)
    if not sys.stderr.isatty():
        return nullcontext()
    return console.status(message + "...")
