"""The commands around the exporter, run as a user would: ``db migrate``, ``db status``,
``retention run``, ``forget`` and ``report`` (table, CSV, JSON)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from click.testing import CliRunner
from integration.exporter.exporter_helpers import KEY_ENTRIES, PSEUDONYMIZER, load, query
from integration.exporter.synthetic import synthetic_events

from caret_otel.cli.main import _register_commands, cli
from caret_otel.exporters.postgres.schema import load_migrations
from caret_otel.stack import PostgresServer

pytestmark = pytest.mark.integration

_register_commands()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


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


def test_a_missing_database_url_is_a_usage_error() -> None:
    code, out = run("report", env={"DATABASE_URL": "", "CARET_OTEL_DATABASE_URL": ""})
    assert code == 2
    assert "--database-url" in out
    assert "DATABASE_URL" in out


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

    code, out = run("report", *span, "--format", "json")
    assert code == 0
    document = orjson.loads(out)
    assert set(document) >= {"active_users", "sessions", "models", "credits", "regions"}
    dau = {row["day"]: row["dau"] for row in document["active_users"]["rows"]}
    expected = dict(
        query(loaded, "SELECT day::text, count(*) FROM agg.user_daily_activity GROUP BY 1")
    )
    assert dau == {day: n for day, n in expected.items() if day >= str(today - timedelta(days=6))}

    code, out = run("report", *span, "--format", "csv")
    assert code == 0
    assert out.startswith("# active_users: ")
    assert "\nday,dau,wau,mau,stickiness,new_users\n" in out


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


def test_forget_without_keys_says_how_to_configure_them(loaded: str) -> None:
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
