"""``caret-otel exporter``, ``db migrate``, ``retention run``, ``forget`` and ``report``:
the PostgreSQL business exporter and the operations around it."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict

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

F = TypeVar("F", bound=Callable[..., Any])

# The role each command logs in as, and why: the help texts and the errors name it.
OWNER: Final = "the database owner (or a superuser)"
WRITER: Final = "caret_writer"
ANALYST: Final = "caret_analyst"


def database_url_option(role: str, does: str) -> Callable[[F], F]:
    """``--database-url``: its help says what the command does with it and which role it needs."""
    return click.option(
        "--database-url",
        metavar="URL",
        default=None,
        help=(
            f"PostgreSQL URL logging in as {role} ({does}) [default: "
            f"${' or $'.join(DATABASE_URL_ENVS)}, else the {_LOGIN[role]} of the "
            "`caret-otel up` stack running in --data-dir]."
        ),
    )


_LOGIN: Final = {
    OWNER: "superuser login",
    WRITER: "caret_writer login",
    ANALYST: "read-only caret_analyst login",
}

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help=f"Data directory of a local stack (`caret-otel up`) to use when no --database-url "
    f"is given; naming it takes precedence over ${' and $'.join(DATABASE_URL_ENVS)} "
    f"[default: {DEFAULT_DATA_DIR}].",
)


def _resolve_url(flag: str | None, data_dir: Path | None, role: str) -> str:
    """The flag; else the environment (unless --data-dir was named); else the local stack."""
    if flag:
        return flag
    if data_dir is None:
        from_env = database_url_from_env()
        if from_env:
            return from_env
    directory = data_dir or DEFAULT_DATA_DIR
    try:
        database = read_stack_info(directory).database
        if role == OWNER:
            return database.superuser_dsn()
        return database.writer_dsn() if role == WRITER else database.analyst_dsn()
    except StackNotRunningError as exc:
        if data_dir is not None:
            raise click.UsageError(str(exc)) from None
        raise click.UsageError(
            f"no database URL: pass --database-url URL (logging in as {role}) or set "
            + " or ".join(DATABASE_URL_ENVS)
            + f", or start the local stack (`.venv/bin/caret-otel up`) so that --data-dir "
            f"({DEFAULT_DATA_DIR}) finds it"
        ) from None


def _login_of(url: str) -> str:
    try:
        user = conninfo_to_dict(url).get("user")
    except psycopg.Error:
        user = None
    return str(user) if user else "the default user"


def _database_error(
    exc: psycopg.Error, url: str, command: str, role: str, after: str = ""
) -> NoReturn:
    """One line: a permission error names the role needed, never the SQL it stopped at."""
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        _fail(
            f"PostgreSQL refused `caret-otel {command}` for {_login_of(url)}: it needs {role}"
            f" (pass --database-url with that login){after}"
        )
    if isinstance(exc, psycopg.OperationalError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(f"PostgreSQL is unreachable or refused the login: {first}{after}")
    message = (exc.diag.message_primary if exc.diag else None) or type(exc).__name__
    _fail(f"PostgreSQL: {message}{after}")


def _fail(message: str) -> NoReturn:
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
@click.option(
    "--database-url", metavar="URL", default=None,
    help=f"PostgreSQL URL logging in as {WRITER} (loads events, rolls up, runs retention; with "
    f"migrations at start: {OWNER}) [default: ${' or $'.join(DATABASE_URL_ENVS)}].",
)  # fmt: skip
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
    try:
        url = require_database_url(database_url)
    except SettingsError as exc:
        raise click.UsageError(f"{exc}; it logs in as {WRITER}") from None
    settings = ExporterSettings(
        database_url=url,
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
      caret-otel db status                              # the local stack's database
      caret-otel db migrate --database-url postgresql://postgres:...@127.0.0.1:5432/caret
    """


@db.command("migrate")
@database_url_option(OWNER, "creates schemas, tables and the caret_writer/caret_analyst roles")
@data_dir_option
def db_migrate(database_url: str | None, data_dir: Path | None) -> None:
    """Apply pending migrations (idempotent, safe to run concurrently) and set the role
    passwords given in the environment.

    Run it as a role that may create schemas and roles (the database owner or an
    administrator). Passwords come from $CARET_OTEL_WRITER_PASSWORD (caret_writer)
    and $CARET_OTEL_ANALYST_PASSWORD (caret_analyst) when set.

    \b
    Examples:
      caret-otel db migrate                             # the local stack's database
      caret-otel db migrate --database-url postgresql://postgres:...@127.0.0.1:5432/caret
      CARET_OTEL_WRITER_PASSWORD=... DATABASE_URL=postgresql://... caret-otel db migrate
    """
    from caret_otel.exporters.postgres.roles import set_role_passwords
    from caret_otel.exporters.postgres.schema import MigrationError, migrate

    url = _resolve_url(database_url, data_dir, OWNER)
    try:
        with _status("migrating"):
            applied = migrate(url)
            roles = set_role_passwords(url)
    except MigrationError as exc:
        _fail(str(exc))
    except psycopg.Error as exc:
        _database_error(exc, url, "db migrate", OWNER)
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("schema is up to date")
    for role in roles:
        click.echo(f"password set for role {role}")


@db.command("status")
@database_url_option(WRITER, "reads meta.schema_migrations; the owner works too")
@data_dir_option
def db_status(database_url: str | None, data_dir: Path | None) -> None:
    """List the migrations that are not applied yet (exit 1 when there are some).

    \b
    Examples:
      caret-otel db status                              # the local stack's database
      caret-otel db status --database-url postgresql://caret_writer:...@127.0.0.1/caret
    """
    from caret_otel.exporters.postgres.schema import pending_migrations

    url = _resolve_url(database_url, data_dir, WRITER)
    try:
        pending = pending_migrations(url)
    except psycopg.Error as exc:
        _database_error(exc, url, "db status", WRITER)
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
      caret-otel retention run --dry-run
      caret-otel retention run --dry-run --now 2027-01-31T00:00:00Z   # what would happen then
    """


@retention.command("run")
@database_url_option(WRITER, "rolls up, rebuilds trends, creates and drops partitions")
@data_dir_option
@click.option("--now", "now_text", metavar="ISO-TIME", default=None,
              help="Run as if it were this time (UTC if no offset) [default: now].")  # fmt: skip
@click.option("--dry-run", is_flag=True,
              help="Run the job in a transaction that is rolled back: report, change nothing.")  # fmt: skip
@click.option("--force", is_flag=True,
              help="Allow a --now in the future without --dry-run (drops what would expire then).")  # fmt: skip
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)  # fmt: skip
def retention_run(
    database_url: str | None,
    data_dir: Path | None,
    now_text: str | None,
    dry_run: bool,
    force: bool,
    output: str,
) -> None:
    """Roll up pending events, rebuild the monthly trends, create the coming partitions
    and drop the expired ones (whole partitions, never row by row).

    A --now in the future would drop data that has not expired yet, so it is refused
    unless --dry-run (see what would happen then) or --force (do it) is given.

    \b
    Examples:
      caret-otel retention run --dry-run                      # what would be dropped now
      caret-otel retention run --dry-run --now 2027-01-31     # ... and on that day
      caret-otel retention run --database-url postgresql://caret_writer:...@127.0.0.1/caret
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
    url = _resolve_url(database_url, data_dir, WRITER)
    try:
        with _status("dry run of the retention job" if dry_run else "running the retention job"):
            result = run_retention(url, now=now, dry_run=dry_run)
    except psycopg.Error as exc:
        _database_error(exc, url, "retention run", WRITER)
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
def _forget_keys(data_dir: Path | None) -> Any:
    """The pseudonym keys: the environment's, unless --data-dir names a local stack
    (its key file); with neither, the local stack's in the default data directory."""
    from caret_otel.processors.privacy.pseudonyms import (
        HOW_TO_MAKE_A_KEY,
        KEY_FILE_ENV,
        KEYS_ENV,
        Pseudonymizer,
        PseudonymKeyError,
    )
    from caret_otel.stack.credentials import SECRETS_DIR, StackCredentials

    if data_dir is None and (os.environ.get(KEYS_ENV) or os.environ.get(KEY_FILE_ENV)):
        return Pseudonymizer.from_env()
    credentials = StackCredentials((data_dir or DEFAULT_DATA_DIR) / SECRETS_DIR)
    if not credentials.pseudonym_key_file.is_file():
        raise PseudonymKeyError(
            f"no pseudonym key configured and no local stack's key in "
            f"{credentials.pseudonym_key_file}: {HOW_TO_MAKE_A_KEY} - with the keys that "
            "wrote the data, or pass --data-dir of the `caret-otel up` stack that did"
        )
    return credentials.pseudonymizer()


_NOTHING_DONE: Final = "; nothing was deleted and no deletion was recorded"


@click.command("forget")
@click.argument("user_id_hash")
@database_url_option(WRITER, "deletes the user's rows and writes the audit row")
@data_dir_option
@click.option("--request-id", default=None, help="Id of the deletion request (for the audit); "
              "repeating an id that completed returns its recorded result.")  # fmt: skip
def forget(
    user_id_hash: str, database_url: str | None, data_dir: Path | None, request_id: str | None
) -> None:
    """Delete a user everywhere: every per-user table, under every live pseudonym key,
    with an audit row in privacy.deletion_requests.

    USER_ID_HASH is the client's user_id_hash. The pseudonym keys come from
    $CARET_OTEL_PSEUDONYM_KEYS or $CARET_OTEL_PSEUDONYM_KEY_FILE; without them (or with
    --data-dir) from the local stack's key file, and the database from its
    caret_writer login.

    Keys that never wrote to the database are refused (exit 1, nothing recorded): the
    gateway records a fingerprint of its keys, and the stored pseudonyms carry their
    key id. A deletion is recorded only when the keys are the ones that wrote the data.

    \b
    Examples:
      caret-otel forget 3f1c9a...                          # the local stack (.caret-otel)
      caret-otel forget 3f1c9a... --data-dir /srv/caret-otel --request-id ticket-4711
      CARET_OTEL_PSEUDONYM_KEY_FILE=/run/secrets/keys caret-otel forget 3f1c9a... \\
        --database-url postgresql://caret_writer:...@db/caret
    """
    from caret_otel.exporters.postgres.deletion import InvalidDeletionRequest
    from caret_otel.exporters.postgres.deletion import forget as forget_user
    from caret_otel.exporters.postgres.key_fingerprints import check_keys
    from caret_otel.processors.privacy.pseudonyms import PseudonymKeyError

    if not user_id_hash.strip():
        raise click.BadParameter("must not be empty", param_hint="USER_ID_HASH")
    try:
        pseudonymizer = _forget_keys(data_dir)
    except PseudonymKeyError as exc:
        _fail(str(exc))
    pseudonyms: list[str] = pseudonymizer.all_pseudonyms(user_id_hash)
    url = _resolve_url(database_url, data_dir, WRITER)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            check = check_keys(conn, pseudonymizer)
            stored = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM core.users WHERE user_pseudonym = ANY (%s))",
                (pseudonyms,),
            ).fetchone()
            repeated = (
                request_id is not None
                and conn.execute(
                    "SELECT 1 FROM privacy.deletion_requests"
                    " WHERE request_id = %s AND completed_at IS NOT NULL",
                    (request_id,),
                ).fetchone()
                is not None
            )
    except psycopg.Error as exc:
        _database_error(exc, url, "forget", WRITER, _NOTHING_DONE)
    user_stored = bool(stored and stored[0])
    # A completed request id returns its recorded result: nothing runs again, no check.
    if not repeated and check.problem:
        _fail(
            f"{check.problem}{_NOTHING_DONE}. Use the keys of the gateway that wrote the data: "
            "a local stack's with --data-dir DIR (DIR/secrets/pseudonym-keys), otherwise "
            "$CARET_OTEL_PSEUDONYM_KEYS or $CARET_OTEL_PSEUDONYM_KEY_FILE"
        )
    if not repeated and not check.matching and not user_stored:
        # Nothing proves these keys wrote here (no fingerprint recorded) and they find
        # no user: a deletion of nothing with unverified keys would only look done.
        _fail(
            "no stored user matches USER_ID_HASH under these keys, and no fingerprint of "
            "the keys was ever recorded, so they cannot be confirmed as the ones that wrote "
            f"the data{_NOTHING_DONE}"
        )
    unknown = sorted(set(check.given) - check.matching) if check.recorded else []
    if unknown:
        click.echo(
            f"warning: key id(s) {', '.join(unknown)} never wrote here (only "
            f"{', '.join(sorted(check.matching))} did); they are searched too",
            err=True,
        )
    try:
        with _status("deleting"):
            result = forget_user(url, pseudonyms, request_id=request_id)
    except InvalidDeletionRequest as exc:
        _fail(str(exc))
    except psycopg.Error as exc:
        _database_error(exc, url, "forget", WRITER, " (nothing was deleted)")
    state = "had already completed" if result.already_completed else "completed"
    click.echo(f"deletion request {result.request_id} {state} at {result.completed_at.isoformat()}")
    click.echo(f"pseudonyms searched: {len(pseudonyms)} (one per live key)")
    for table, rows in sorted(result.rows_removed.items()):
        click.echo(f"  {table}: {rows} row(s) removed")
    click.echo(f"total: {result.total_rows} row(s)")
    if not result.total_rows and not result.already_completed:
        click.echo(
            "nothing of this user was stored (the keys are the right ones); "
            "the user's events still in flight will be refused"
        )


# --- report -----------------------------------------------------------------------------
def _parse_day(_: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


_TABLE_KEYS: Final = tuple(q.key for q in report_mod.QUERIES)


@click.command("report")
@click.option("--from", "start", metavar="DATE", callback=_parse_day,
              help="First day (YYYY-MM-DD) [default: 27 days before --to].")  # fmt: skip
@click.option("--to", "end", metavar="DATE", callback=_parse_day,
              help="Last day, included [default: yesterday, the last complete UTC day].")  # fmt: skip
@click.option("--table", "tables", multiple=True, type=click.Choice(_TABLE_KEYS),
              help="Only this table (repeatable) [default: all].")  # fmt: skip
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="csv: one table to stdout (--table), or one file per "
              "table with --output-dir.")  # fmt: skip
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="With --format csv: write DIR/<table>.csv for each table.")  # fmt: skip
@database_url_option(ANALYST, "reads the analytics.* views only")
@data_dir_option
def report(
    start: date | None,
    end: date | None,
    tables: tuple[str, ...],
    output: str,
    output_dir: Path | None,
    database_url: str | None,
    data_dir: Path | None,
) -> None:
    """Print the main analyst tables for a date range: active users, sessions,
    retention, lifecycle, paid conversion, credits, models, features, regions,
    languages and the anonymised monthly trends.

    Reads only the analytics.* views, so the read-only caret_analyst role is enough.
    Values are printed in full (a narrow terminal wraps them). The range ends yesterday
    unless --to says otherwise; a range holding today (UTC) says that day is partial.

    \b
    Examples:
      caret-otel report                                  # the last 28 complete days
      caret-otel report --from 2026-01-01 --to 2026-01-31 --table models
      caret-otel report --format csv --table active_users > active_users.csv
      caret-otel report --format csv --output-dir report/   # report/<table>.csv each
      caret-otel report --format json | jq .active_users.rows
    """
    today = datetime.now(UTC).date()
    end = end or today - timedelta(days=1)
    start = start or end - timedelta(days=27)
    if end < start:
        raise click.BadParameter(f"{end} is before --from {start}", param_hint="--to")
    keys = tables or _TABLE_KEYS
    if output == "csv" and output_dir is None and len(keys) > 1:
        raise click.UsageError(
            "CSV holds one table: choose one with --table NAME, or write one file per table "
            "with --output-dir DIR"
        )
    if output_dir is not None and output != "csv":
        raise click.BadParameter("only with --format csv", param_hint="--output-dir")
    url = _resolve_url(database_url, data_dir, ANALYST)
    try:
        sections = report_mod.build_report(url, start, end, keys=keys)
    except psycopg.Error as exc:
        _database_error(exc, url, "report", ANALYST)
    partial = f"{today} (UTC) is still running: its numbers are partial" if end >= today else None
    if output == "table":
        _print_tables(sections, start, end, partial)
        return
    if partial:
        click.echo(f"note: {partial}", err=True)
    if output == "json":
        click.echo(report_mod.to_json(sections).decode())
    elif output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        for section in sections:
            path = output_dir / f"{section.key}.csv"
            path.write_text(report_mod.to_csv(section), encoding="utf-8")
            click.echo(f"wrote {path}", err=True)
    else:
        click.echo(report_mod.to_csv(sections[0]), nl=False)


def _print_tables(
    sections: list[report_mod.Section], start: date, end: date, partial: str | None
) -> None:
    from rich.console import Console
    from rich.table import Table

    # Piped output gets every value in full; a terminal wraps long values instead of
    # cutting them.
    console = Console() if sys.stdout.isatty() else Console(width=100_000, soft_wrap=True)
    console.print(f"[bold]Caret analytics {start} .. {end}[/bold] (UTC days)")
    if partial:
        console.print(f"note: {partial}")
    for section in sections:
        table = Table(title=section.title, title_justify="left", title_style="bold")
        for column in section.columns:
            table.add_column(
                column, justify="left" if column in _TEXT_COLUMNS else "right", overflow="fold"
            )
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
