"""The commands around the exporter, run as a user would: ``db migrate``, ``db status``,
``retention run``, ``forget`` and ``report`` (table, CSV, JSON)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from click.testing import CliRunner
from integration.exporter.exporter_helpers import KEY_ENTRIES, PSEUDONYMIZER, load, query
from integration.exporter.synthetic import synthetic_events
from psycopg.conninfo import make_conninfo

from caret_otel.cli.main import _register_commands, cli
from caret_otel.exporters.postgres.report import QUERIES
from caret_otel.exporters.postgres.schema import load_migrations
from caret_otel.stack import PostgresServer

pytestmark = pytest.mark.integration

_register_commands()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def run_stdout(*args: str) -> tuple[int, str]:
    """Exit status and standard output alone (notes go to standard error)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout


def test_db_migrate_and_status(postgres: PostgresServer) -> None:
    url = postgres.create_database("exp_cli_migrate")
    code, out = run("db", "status", "--database-url", url)
    assert code == 1
    assert f"pending {load_migrations()[0].name}" in out
    code, out = run("db", "migrate", "--database-url", url)
    assert code == 0
    assert out.count("applied ") == len(load_migrations())
    assert run("db", "migrate", "--database-url", url) == (0, "schema is up to date\n")
    assert run("db", "status", env={"DATABASE_URL": url}) == (0, "schema is up to date\n")


def test_a_missing_database_url_is_a_usage_error_naming_the_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no local stack in ./.caret-otel
    no_url = {"DATABASE_URL": "", "CARET_OTEL_DATABASE_URL": ""}
    for command, role in ((["report"], "caret_analyst"), (["db", "migrate"], "database owner"),
                          (["retention", "run"], "caret_writer")):  # fmt: skip
        code, out = run(*command, env=no_url)
        assert code == 2, command
        assert "--database-url" in out
        assert "DATABASE_URL" in out
        assert role in out, command
        assert "caret-otel up" in out
    code, out = run("report", "--data-dir", str(tmp_path / "nowhere"), env=no_url)
    assert code == 2
    assert "no running stack in" in out


def test_a_permission_error_names_the_role_instead_of_sql(loaded: str) -> None:
    with psycopg.connect(loaded, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS cli_reader")
        conn.execute("CREATE ROLE cli_reader LOGIN PASSWORD 'cli-reader-pw' IN ROLE caret_analyst")
    reader = make_conninfo(loaded, user="cli_reader", password="cli-reader-pw")
    code, out = run("retention", "run", "--database-url", reader)
    assert code == 1
    assert "needs caret_writer" in out
    assert "cli_reader" in out
    assert "SELECT" not in out
    assert "INSERT" not in out


@pytest.fixture
def loaded(database: str) -> str:
    load(
        database,
        synthetic_events(datetime.now(UTC) - timedelta(minutes=1), users=10, days=5),
        now=datetime.now(UTC),
    )
    return database


def test_report_prints_every_section_as_tables_csv_and_json(loaded: str) -> None:
    today = datetime.now(UTC).date()
    span = ["--from", str(today - timedelta(days=6)), "--to", str(today), "--database-url", loaded]
    code, out = run("report", *span)
    assert code == 0
    for title in ("Active users", "Sessions", "Day-N retention", "Weekly lifecycle",
                  "Paid conversion", "Credits consumed", "Model usage", "Feature use",
                  "Regions", "UI languages", "Anonymised monthly trends"):  # fmt: skip
        assert title in out

    code, out = run_stdout("report", *span, "--format", "json")
    assert code == 0
    document = orjson.loads(out)
    assert set(document) >= {"active_users", "sessions", "models", "credits", "regions"}
    dau = {row["day"]: row["dau"] for row in document["active_users"]["rows"]}
    expected = dict(
        query(loaded, "SELECT day::text, count(*) FROM agg.user_daily_activity GROUP BY 1")
    )
    assert dau == {day: n for day, n in expected.items() if day >= str(today - timedelta(days=6))}

    code, out = run("report", *span, "--format", "csv")
    assert code == 2  # one CSV holds one table
    assert "--table" in out
    assert "--output-dir" in out
    code, out = run_stdout("report", *span, "--format", "csv", "--table", "active_users")
    assert code == 0
    assert out.startswith("day,dau,wau,mau,stickiness,new_users,complete\n")
    assert out.count("\n") == 1 + len(dau)


def test_report_csv_writes_one_file_per_table(loaded: str, tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    code, out = run("report", "--from", str(today - timedelta(days=6)), "--to", str(today),
                    "--database-url", loaded, "--format", "csv", "--output-dir", str(tmp_path))  # fmt: skip
    assert code == 0, out
    assert "is still running: its numbers are partial" in out
    written = {path.stem for path in tmp_path.glob("*.csv")}
    assert written == set(report_keys())
    assert (tmp_path / "models.csv").read_text().startswith("provider,model,requests,")


def test_report_ends_yesterday_and_prints_full_values_when_piped(loaded: str) -> None:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    code, out = run("report", "--database-url", loaded, "--table", "models")
    assert code == 0, out
    assert f"{yesterday - timedelta(days=27)} .. {yesterday}" in out
    assert "partial" not in out
    assert "\u2026" not in out  # no value cut with an ellipsis
    models = [m for (m,) in query(loaded, "SELECT DISTINCT model FROM analytics.model_usage_daily"
                                  " WHERE day <= %s", (yesterday,))]  # fmt: skip
    assert models
    for model in models:
        assert model in out
    assert "Sessions" not in out  # only the table asked for


def report_keys() -> list[str]:
    return [q.key for q in QUERIES]


def test_report_refuses_a_reversed_range(loaded: str) -> None:
    code, out = run(
        "report", "--from", "2026-03-10", "--to", "2026-03-01", "--database-url", loaded
    )
    assert code == 2
    assert "before --from" in out


def test_forget_uses_every_live_key_from_the_environment(loaded: str) -> None:
    assert query(loaded, "SELECT count(*) FROM core.users WHERE user_pseudonym = %s",
                 (PSEUDONYMIZER.pseudonymize("user-3"),)) == [(1,)]  # fmt: skip
    env = {"CARET_OTEL_PSEUDONYM_KEYS": KEY_ENTRIES}
    code, out = run("forget", "user-3", "--database-url", loaded, "--request-id", "cli-1", env=env)
    assert code == 0, out
    assert "deletion request cli-1 completed" in out
    assert "pseudonyms searched: 2" in out
    assert query(loaded, "SELECT count(*) FROM core.users WHERE user_pseudonym = ANY(%s)",
                 (PSEUDONYMIZER.all_pseudonyms("user-3"),)) == [(0,)]  # fmt: skip
    code, out = run("forget", "user-3", "--database-url", loaded, "--request-id", "cli-1", env=env)
    assert code == 0
    assert "had already completed" in out


def test_forget_without_keys_says_how_to_configure_them(
    loaded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no local stack's keys in ./.caret-otel either
    env = {"CARET_OTEL_PSEUDONYM_KEYS": "", "CARET_OTEL_PSEUDONYM_KEY_FILE": ""}
    code, out = run("forget", "user-3", "--database-url", loaded, env=env)
    assert code == 1
    assert "CARET_OTEL_PSEUDONYM_KEYS" in out


def test_retention_run_reports_what_it_did(loaded: str) -> None:
    code, out = run("retention", "run", "--database-url", loaded, "--format", "json")
    assert code == 0
    result = orjson.loads(out)
    assert result["dropped"] == []
    assert result["ensured"]
    later = (datetime.now(UTC) + timedelta(days=40)).isoformat()
    code, out = run("retention", "run", "--database-url", loaded, "--now", later, "--force")
    assert code == 0
    assert "dropped raw.events_p" in out
    code, out = run("retention", "run", "--database-url", loaded, "--now", "yesterday")
    assert code == 2
    assert "--now" in out


def raw_state(url: str) -> tuple[object, ...]:
    rows = query(url, "SELECT count(*) FROM raw.events")[0][0]
    parts = query(
        url,
        "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'raw.events'::regclass",
    )[0][0]
    return rows, parts


def test_a_future_now_is_refused_without_dry_run_or_force(loaded: str) -> None:
    before = raw_state(loaded)
    later = (datetime.now(UTC) + timedelta(days=40)).isoformat()
    code, out = run("retention", "run", "--database-url", loaded, "--now", later)
    assert code == 2
    assert "in the future" in out
    assert "--dry-run" in out
    assert raw_state(loaded) == before


def test_a_dry_run_reports_what_would_go_and_changes_nothing(loaded: str) -> None:
    before = raw_state(loaded)
    assert before[0] > 0
    later = (datetime.now(UTC) + timedelta(days=40)).isoformat()
    code, out = run("retention", "run", "--database-url", loaded, "--now", later, "--dry-run")
    assert code == 0, out
    assert "nothing was changed" in out
    assert "would drop raw.events_p" in out
    assert raw_state(loaded) == before
    code, out = run("retention", "run", "--database-url", loaded, "--dry-run", "--format", "json")
    assert code == 0
    assert orjson.loads(out)["dry_run"] is True
    assert raw_state(loaded) == before


def test_every_command_has_help_with_examples() -> None:
    for command in (["exporter"], ["db", "migrate"], ["db", "status"], ["retention", "run"],
                    ["forget"], ["report"]):  # fmt: skip
        code, out = run(*command, "--help")
        assert code == 0, command
        assert "Example" in out, command
