"""The PostgreSQL and Prometheus runners of caret_otel.stack against the real programs."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from caret_otel.stack import PostgresServer, PrometheusQueryError, PrometheusServer

pytestmark = pytest.mark.integration


def test_postgres_fixture_serves_password_logins(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.dsn()) as conn:
        row = conn.execute("SELECT current_user, inet_server_addr()::text").fetchone()
    assert row == ("postgres", "127.0.0.1/32")
    # TCP needs the password (scram) ...
    wrong = postgres.dsn(password="not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5).close()
    # ... the Unix socket in the 0700 data dir trusts its owner (and root).
    with psycopg.connect(postgres.socket_dsn()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_create_database_is_idempotent_and_tools_work(postgres: PostgresServer) -> None:
    dsn = postgres.create_database("stack_test")
    assert postgres.create_database("stack_test") == dsn
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (id int primary key)")
    dump = subprocess.run(
        [str(postgres.binaries().pg_dump), "--schema-only", dsn],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "CREATE TABLE public.t" in dump.stdout
    psql = subprocess.run(
        [str(postgres.binaries().psql), postgres.socket_dsn(dbname="stack_test"), "-Atc",
         "SELECT count(*) FROM t"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert psql.stdout.strip() == "0"


@pytest.fixture
def own_pg_dir() -> Iterator[Path]:
    # Outside pytest's 0700 temp root: the server runs as an unprivileged user.
    root = Path(tempfile.mkdtemp(prefix="caret-otel-test-pg-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_recovers_from_a_crash_and_reuses_its_cluster(own_pg_dir: Path) -> None:
    server = PostgresServer(own_pg_dir / "data", fsync=False)
    server.start()
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE TABLE crash (v text)")
            conn.execute("INSERT INTO crash VALUES ('committed before the crash')")
        server.kill()
        assert not server.is_running
        server.start()
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SELECT v FROM crash").fetchall() == [
                ("committed before the crash",)
            ]
        server.stop()
        # A new runner on the same data dir: init() is a no-op, the password is reused.
        again = PostgresServer(own_pg_dir / "data", fsync=False)
        again.start()
        try:
            assert again.password == server.password
            with psycopg.connect(again.dsn()) as conn:
                assert conn.execute("SELECT count(*) FROM crash").fetchone() == (1,)
        finally:
            again.stop()
    finally:
        server.stop()


def test_prometheus_query_errors_are_clear(prometheus: PrometheusServer) -> None:
    assert prometheus.query("vector(42)")[0]["value"][1] == "42"
    with pytest.raises(PrometheusQueryError, match="bad_data"):
        prometheus.query("sum(")
    prometheus.reload()
