"""Migrations (ordered, recorded, idempotent, safe in parallel, append-only) and the two
roles: the writer runs the whole exporter, the analyst reads analytics.* and trends.*
only. Passwords come from the environment."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
import pytest
from integration.exporter.exporter_helpers import PSEUDONYMIZER, event, query

from caret_otel.exporters.postgres import rollup, trends
from caret_otel.exporters.postgres.deletion import forget
from caret_otel.exporters.postgres.event_rows import AcceptWindow, EventRowBuilder
from caret_otel.exporters.postgres.loader import Loader
from caret_otel.exporters.postgres.retention import run_retention
from caret_otel.exporters.postgres.roles import set_role_passwords
from caret_otel.exporters.postgres.schema import MigrationError, load_migrations, migrate
from caret_otel.otlp.build import logs_request
from caret_otel.semconv import events as ev
from caret_otel.stack import PostgresServer

pytestmark = pytest.mark.integration


def test_migrations_apply_once_even_when_several_processes_start_together(
    postgres: PostgresServer,
) -> None:
    url = postgres.create_database("exp_parallel_migrate")
    results: list[list[str]] = []

    def run() -> None:
        results.append(migrate(url))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = [m.name for m in load_migrations()]
    assert sorted(results, key=len) == [[], [], [], names]
    assert query(url, "SELECT name FROM meta.schema_migrations ORDER BY version") == [
        (n,) for n in names
    ]
    assert migrate(url) == []


def test_an_applied_migration_that_changed_is_an_error(database: str) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("UPDATE meta.schema_migrations SET checksum = 'edited' WHERE version = 2")
    with pytest.raises(MigrationError, match="0002_partition_management was changed"):
        migrate(database)


def _role_url(admin_url: str, role: str, password: str) -> str:
    parts = urlsplit(admin_url)
    return f"postgresql://{role}:{password}@{parts.hostname}:{parts.port}{parts.path}"


@pytest.fixture
def role_urls(database: str) -> dict[str, str]:
    passwords = {
        "caret_writer": secrets.token_urlsafe(16),
        "caret_analyst": secrets.token_urlsafe(16),
    }
    env = {
        "CARET_OTEL_WRITER_PASSWORD": passwords["caret_writer"],
        "CARET_OTEL_ANALYST_PASSWORD": passwords["caret_analyst"],
    }
    assert set_role_passwords(database, env) == ["caret_analyst", "caret_writer"]
    return {role: _role_url(database, role, pw) for role, pw in passwords.items()}


def test_the_writer_role_runs_load_rollup_retention_and_deletion(role_urls: dict[str, str]) -> None:
    writer = role_urls["caret_writer"]
    now = datetime.now(UTC)
    records = [
        event(f"w{n}", now - timedelta(days=n, minutes=1), ev.CARET_TASK_CREATED) for n in range(3)
    ]
    decoded = EventRowBuilder(AcceptWindow.at(now, 30)).decode(logs_request(records))
    with psycopg.connect(writer, autocommit=True) as conn:
        assert Loader().store_events(conn, decoded.rows).inserted == 3  # creates partitions too
        assert rollup.roll_up(conn) == 3
        trends.refresh_trends(conn, as_of=now.date())
    result = run_retention(writer, now=now + timedelta(days=45))
    assert any(name.startswith("raw.events_p") for name in result.dropped)
    assert forget(writer, PSEUDONYMIZER.all_pseudonyms("w0")).rows_removed["core.users"] == 1
    assert migrate(writer) == []  # nothing pending: the writer may call it at start


def test_the_analyst_role_reads_analytics_and_trends_only(role_urls: dict[str, str]) -> None:
    with psycopg.connect(role_urls["caret_analyst"], autocommit=True) as conn:
        for view in ("active_users", "retention", "lifecycle", "credits_daily", "trends_monthly"):
            conn.execute(f"SELECT * FROM analytics.{view} LIMIT 1")
        conn.execute("SELECT * FROM trends.monthly LIMIT 1")
        for table in ("raw.events", "core.users", "agg.user_daily_activity", "privacy.consent",
                      "privacy.deletion_requests", "meta.schema_migrations"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO trends.monthly VALUES ('2026-01-01', 'all', 'all', 99, 1, 0, true)"
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT meta.ensure_partition('raw.events', '2026-01-01')")


def test_roles_cannot_log_in_over_tcp_without_a_password(database: str) -> None:
    fresh_role = f"caret_probe_{secrets.token_hex(4)}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {fresh_role} LOGIN")  # like the migration: no password
    try:
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(_role_url(database, fresh_role, "guess"), connect_timeout=5)
    finally:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {fresh_role}")
