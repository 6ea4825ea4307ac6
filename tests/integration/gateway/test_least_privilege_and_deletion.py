"""Issue 17 with PostgreSQL: the gateway runs as ``caret_gateway`` (consent and the
deletion function only), an Idempotency-Key is bound to its subject (409 for another
user), deletion also files Loki delete requests (against a local HTTP endpoint that
records them), and ``core.users`` expires a year after the user's last activity."""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from fixtures.services import migrated_database
from integration.gateway.gateway_support import AUTH, GatewayFactory, RunningGateway, client_event

from caret_otel.exporters.postgres.deletion import PER_USER_TABLES, loki_selector
from caret_otel.exporters.postgres.locks import FORGET_LOCK_KEY, ROLLUP_LOCK_KEY
from caret_otel.exporters.postgres.retention import run_retention
from caret_otel.exporters.postgres.roles import set_role_passwords
from caret_otel.stack import PostgresServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database_url(postgres: PostgresServer) -> str:
    return migrated_database(postgres, "gateway_least_privilege")


@pytest.fixture(scope="module")
def gateway_role_url(database_url: str) -> str:
    password = secrets.token_urlsafe(16)
    assert set_role_passwords(database_url, {"CARET_OTEL_GATEWAY_PASSWORD": password}) == [
        "caret_gateway"
    ]
    parts = urlsplit(database_url)
    return f"postgresql://caret_gateway:{password}@{parts.hostname}:{parts.port}{parts.path}"


class LokiRecorder:
    """A local HTTP endpoint standing in for Loki's delete API: records each request."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.requests: list[tuple[str, str, dict[str, list[str]], str | None]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                recorder.requests.append(
                    ("POST", parts.path, parse_qs(parts.query), self.headers.get("X-Scope-OrgID"))
                )
                self.send_response(recorder.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> LokiRecorder:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def loki() -> Iterator[LokiRecorder]:
    with LokiRecorder() as recorder:
        yield recorder


def count(url: str, sql: str, *args: object) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


def gateway_as_its_role(factory: GatewayFactory, url: str, **env: str) -> RunningGateway:
    return factory(env={"DATABASE_URL": url, "CARET_OTEL_DEV_VOLATILE_CONSENT": "", **env})


def test_the_gateway_role_may_do_consent_and_deletion_only(
    gateway_factory: GatewayFactory, gateway_role_url: str, database_url: str
) -> None:
    gw = gateway_as_its_role(gateway_factory, gateway_role_url)
    user = f"lp-{uuid.uuid4().hex[:8]}"
    assert gw.set_consent(user, False).status_code == 200
    assert gw.post_events(client_event(user=user)).json()["opted_out"] == 1
    done = gw.delete_user(user, key=f"erase-{user}")
    assert done.status_code == 200, done.text
    assert set(PER_USER_TABLES) <= set(done.json()["rows_removed"])
    with psycopg.connect(gateway_role_url, autocommit=True) as conn:
        for statement in (
            "SELECT 1 FROM raw.events LIMIT 1",
            "SELECT 1 FROM core.users LIMIT 1",
            "DELETE FROM privacy.consent",
            "DELETE FROM privacy.deletion_requests",
            "SELECT 1 FROM privacy.forgotten_pseudonyms LIMIT 1",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert count(database_url, "SELECT count(*) FROM privacy.deletion_requests") >= 1


def test_a_reused_idempotency_key_for_another_user_is_409(
    gateway_factory: GatewayFactory, gateway_role_url: str, database_url: str
) -> None:
    gw = gateway_as_its_role(gateway_factory, gateway_role_url)
    first, second = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    for user in (first, second):
        assert gw.post_events(client_event(user=user)).status_code == 202
    key = f"ticket-{uuid.uuid4().hex[:8]}"
    assert gw.delete_user(first, key=key).status_code == 200
    again = gw.delete_user(first, key=key)
    assert (again.status_code, again.json()["already_completed"]) == (200, True)
    reused = gw.delete_user(second, key=key)
    assert reused.status_code == 409
    assert reused.json()["field"] == "Idempotency-Key"
    assert second not in reused.text
    audited = count(
        database_url, "SELECT count(*) FROM privacy.deletion_requests WHERE request_id = %s", key
    )
    assert audited == 1
    assert gw.delete_user(second, key=f"{key}-2").status_code == 200
    assert 'caret_gateway_deletions_total{outcome="conflict"} 1.0' in gw.metrics_text()


def test_deletion_files_loki_delete_requests(
    gateway_factory: GatewayFactory, gateway_role_url: str, loki: LokiRecorder
) -> None:
    gw = gateway_as_its_role(
        gateway_factory,
        gateway_role_url,
        CARET_OTEL_LOKI_URL=loki.url,
        CARET_OTEL_LOKI_TENANT="caret",
    )
    user = f"loki-{uuid.uuid4().hex[:8]}"
    done = gw.delete_user(user, key=f"loki-{user}")
    assert done.status_code == 200, done.text
    pseudonyms = gw.gateway.pseudonymizer.all_pseudonyms(user)
    assert done.json()["loki_delete_requests"] == len(pseudonyms)
    assert [(m, p, org) for m, p, _, org in loki.requests] == [
        ("POST", "/loki/api/v1/delete", "caret")
    ] * len(pseudonyms)
    queries = [q["query"][0] for _, _, q, _ in loki.requests]
    assert queries == [loki_selector(p) for p in sorted(pseudonyms)]
    for _, _, params, _ in loki.requests:
        start, end = int(params["start"][0]), int(params["end"][0])
        assert end - start >= 30 * 86_400


def test_a_failed_loki_request_is_503_and_a_retry_files_it_again(
    gateway_factory: GatewayFactory, gateway_role_url: str, loki: LokiRecorder
) -> None:
    gw = gateway_as_its_role(gateway_factory, gateway_role_url, CARET_OTEL_LOKI_URL=loki.url)
    user = f"lokifail-{uuid.uuid4().hex[:8]}"
    loki.status = 500
    failed = gw.delete_user(user, key=f"k-{user}")
    assert failed.status_code == 503
    assert "Loki" in failed.json()["message"]
    loki.status = 204
    retried = gw.delete_user(user, key=f"k-{user}")
    assert retried.status_code == 200
    assert retried.json()["already_completed"] is True  # PostgreSQL's part ran once
    assert retried.json()["loki_delete_requests"] == 1
    assert len(loki.requests) == 2


def test_client_tokens_cannot_delete_or_look_up(
    gateway_factory: GatewayFactory, gateway_role_url: str
) -> None:
    gw = gateway_as_its_role(gateway_factory, gateway_role_url)
    assert gw.delete_user("x", headers=AUTH).status_code == 403
    lookup = gw.client.post("/telemetry/consent/lookup", json={"user_id_hash": "x"}, headers=AUTH)
    assert lookup.status_code == 403


def test_users_expire_a_year_after_their_last_activity(database_url: str) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    stale, active = (f"v1:{secrets.token_hex(32)}" for _ in range(2))
    with psycopg.connect(database_url, autocommit=True) as conn:
        for pseudonym, last_seen in ((stale, now - timedelta(days=400)), (active, now)):
            conn.execute(
                "INSERT INTO core.users (user_pseudonym, first_seen_at, last_seen_at)"
                " VALUES (%s, %s, %s)",
                (pseudonym, last_seen, last_seen),
            )
    assert run_retention(database_url, now=now, dry_run=True).users_expired >= 1
    assert count(database_url, "SELECT count(*) FROM core.users WHERE user_pseudonym = %s", stale)
    result = run_retention(database_url, now=now)
    assert result.users_expired >= 1
    remaining = count(
        database_url,
        "SELECT count(*) FROM core.users WHERE user_pseudonym = ANY (%s)",
        [stale, active],
    )
    assert remaining == 1


def test_the_deletion_function_takes_the_exporters_lock_keys() -> None:
    from importlib import resources

    sql = (
        resources.files("caret_otel.exporters.postgres")
        / "migrations"
        / "0010_gateway_role_deletion.sql"
    ).read_text(encoding="utf-8")
    assert f"pg_advisory_xact_lock({FORGET_LOCK_KEY})" in sql
    assert f"pg_advisory_xact_lock({ROLLUP_LOCK_KEY})" in sql


def test_the_sdk_reads_consent_from_the_database(
    gateway_factory: GatewayFactory, gateway_role_url: str
) -> None:
    from caret_otel.processors.privacy.consent import PostgresConsentStore
    from caret_otel.sdk.configure import default_consent_store

    gw = gateway_as_its_role(gateway_factory, gateway_role_url)
    user = f"sdk-{uuid.uuid4().hex[:8]}"
    assert gw.set_consent(user, False, headers=AUTH).status_code == 200
    store = default_consent_store({"CARET_OTEL_CONSENT_DATABASE_URL": gateway_role_url})
    try:
        assert isinstance(store, PostgresConsentStore)
        assert any(store.is_opted_out(p) for p in gw.gateway.pseudonymizer.all_pseudonyms(user))
    finally:
        store.close()
