"""PostgresConsentStore against a real PostgreSQL: write-through, convergence between
processes, outages (answers from memory, refuses writes) and clear setup errors."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fixtures.services import wait_until

from caret_otel.exporters.postgres.schema import migrate
from caret_otel.processors.privacy.consent import ConsentStoreError, PostgresConsentStore
from caret_otel.stack import PostgresServer
from caret_otel.stack.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database_url(postgres: PostgresServer) -> str:
    url = postgres.create_database("privacy_consent_tests")
    migrate(url)
    return url


@pytest.fixture
def user() -> list[str]:
    """A fresh user's pseudonyms under two keys (their shape does not matter here)."""
    tag = uuid.uuid4().hex
    return [f"v1:{tag}", f"v2:{tag}"]


def stored(url: str, pseudonym: str) -> bool | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT telemetry_enabled FROM privacy.consent WHERE user_pseudonym = %s", (pseudonym,)
        ).fetchone()
    return None if row is None else bool(row[0])


def test_opt_out_holds_at_once_in_the_writing_process(database_url: str, user: list[str]) -> None:
    store = PostgresConsentStore(database_url, refresh_interval=60)
    try:
        assert not store.is_opted_out(user[0])
        store.set_consent(user, enabled=False)
        assert store.is_opted_out(user[0])
        assert store.is_opted_out(user[1])
        assert stored(database_url, user[0]) is False
        store.set_consent(user, enabled=True)
        assert not store.is_opted_out(user[0])
        assert stored(database_url, user[1]) is True
    finally:
        store.close()


def test_other_processes_converge_within_the_refresh_interval(
    database_url: str, user: list[str]
) -> None:
    writer = PostgresConsentStore(database_url, refresh_interval=60)
    reader = PostgresConsentStore(database_url, refresh_interval=0.2)
    try:
        assert reader.healthy
        writer.set_consent(user, enabled=False)
        wait_until(lambda: reader.is_opted_out(user[0]), timeout=10, what="opt-out to propagate")
        writer.set_consent(user, enabled=True)
        wait_until(lambda: not reader.is_opted_out(user[0]), timeout=10, what="opt-in to propagate")
    finally:
        writer.close()
        reader.close()


def test_rows_written_by_anyone_are_loaded(database_url: str, user: list[str]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO privacy.consent (user_pseudonym, telemetry_enabled) VALUES (%s, false)",
            (user[0],),
        )
    store = PostgresConsentStore(database_url, refresh_interval=60)
    try:
        assert store.is_opted_out(user[0])
        assert store.opted_out_count >= 1
    finally:
        store.close()


def test_missing_table_says_to_migrate(postgres: PostgresServer) -> None:
    url = postgres.create_database("privacy_consent_unmigrated")
    with pytest.raises(ConsentStoreError, match=r"privacy\.consent does not exist.*migrat"):
        PostgresConsentStore(url)


def test_unreachable_database_fails_fast_without_leaking_the_password() -> None:
    url = f"postgresql://caret:s3cret-pw@127.0.0.1:{free_port()}/caret"
    started = time.monotonic()
    with pytest.raises(ConsentStoreError) as caught:
        PostgresConsentStore(url, connect_timeout=1)
    assert time.monotonic() - started < 10
    assert "cannot connect" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of our own, so stopping it does not disturb other tests."""
    root = Path(tempfile.mkdtemp(prefix="caret-otel-consent-pg-"))
    root.chmod(0o755)
    server = PostgresServer(root / "data", log_path=root / "postgres.log", fsync=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_outage_keeps_answering_from_memory_and_refuses_writes(
    own_postgres: PostgresServer, user: list[str]
) -> None:
    url = own_postgres.create_database("consent")
    migrate(url)
    store = PostgresConsentStore(url, refresh_interval=0.2)
    try:
        store.set_consent(user[:1], enabled=False)
        own_postgres.stop()
        wait_until(lambda: not store.healthy, timeout=30, what="the store to notice the outage")
        assert store.is_opted_out(user[0])  # the hot path never needs the database
        with pytest.raises(ConsentStoreError, match="nothing was changed"):
            store.set_consent(user[1:], enabled=False)
        own_postgres.start()
        wait_until(lambda: store.healthy, timeout=60, what="the store to recover")
        store.set_consent(user[1:], enabled=False)
        assert store.is_opted_out(user[1])
    finally:
        store.close()
