"""The gateway with PostgreSQL: durable, shared consent and deletion on request."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from fixtures.services import migrated_database, wait_until
from integration.gateway.gateway_support import AUTH, GatewayFactory, client_event

from caret_otel.stack import PostgresServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database_url(postgres: PostgresServer) -> str:
    return migrated_database(postgres, "gateway_tests")


def consent_rows(url: str) -> dict[str, bool]:
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute("SELECT user_pseudonym, telemetry_enabled FROM privacy.consent").fetchall()
        )


def test_opt_out_is_durable_and_shared_between_gateways(
    gateway_factory: GatewayFactory, database_url: str
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    first = gateway_factory(env={"DATABASE_URL": database_url})
    second = gateway_factory(env={"DATABASE_URL": database_url})
    assert first.client.get("/readyz").json()["checks"]["consent_store"] == "ok"
    assert first.set_consent(user, False).status_code == 200
    pseudonyms = first.gateway.pseudonymizer.all_pseudonyms(user)
    assert all(consent_rows(database_url)[p] is False for p in pseudonyms)
    # The process that took the opt-out honours it on the very next request ...
    assert first.post_events(client_event(user=user)).json()["opted_out"] == 1
    # ... and another process within its refresh interval.
    wait_until(lambda: second.post_events(client_event(user=user)).json()["opted_out"] == 1,
               timeout=15, what="the second gateway to see the opt-out")  # fmt: skip


def test_deletion_with_the_admin_token(gateway_factory: GatewayFactory, database_url: str) -> None:
    gw = gateway_factory(env={"DATABASE_URL": database_url})
    user = f"user-{uuid.uuid4().hex[:8]}"
    assert gw.delete_user(user, headers=AUTH).status_code == 403
    key = f"erase-{user}"
    done = gw.delete_user(user, key=key)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["request_id"] == key
    assert body["already_completed"] is False
    assert body["pseudonyms"] == 1
    assert body["deleted_rows"] == sum(body["rows_removed"].values())
    again = gw.delete_user(user, key=key)
    assert (again.status_code, again.json()["already_completed"]) == (200, True)
    with psycopg.connect(database_url) as conn:
        audited = conn.execute(
            "SELECT count(*) FROM privacy.deletion_requests WHERE request_id = %s", (key,)
        ).fetchone()
    assert audited == (1,)
    assert 'caret_gateway_deletions_total{outcome="done"} 2.0' in gw.metrics_text()


@pytest.mark.parametrize("enabled", [False, True], ids=["opt-out-kept", "opt-in-removed"])
def test_deletion_keeps_an_opt_out_and_removes_an_opt_in(
    gateway_factory: GatewayFactory, database_url: str, enabled: bool
) -> None:
    gw = gateway_factory(env={"DATABASE_URL": database_url})
    user = f"user-{uuid.uuid4().hex[:8]}"
    assert gw.set_consent(user, enabled).status_code == 200
    done = gw.delete_user(user)
    assert done.status_code == 200, done.text
    # `forget` itself keeps an opt-out row: nothing is deleted and written back.
    assert done.json()["rows_removed"]["privacy.consent"] == (1 if enabled else 0)
    pseudonym = gw.gateway.pseudonymizer.pseudonymize(user)
    assert consent_rows(database_url).get(pseudonym) == (None if enabled else False)
    assert gw.post_events(client_event(user=user)).json()["opted_out"] == (0 if enabled else 1)


def test_bad_idempotency_key(gateway_factory: GatewayFactory, database_url: str) -> None:
    gw = gateway_factory(env={"DATABASE_URL": database_url})
    response = gw.delete_user("u", key="k" * 300)
    assert (response.status_code, response.json()["field"]) == (400, "Idempotency-Key")


def test_503_when_the_consent_store_cannot_record(
    gateway_factory: GatewayFactory, postgres: PostgresServer
) -> None:
    url = migrated_database(postgres, "gateway_consent_broken")
    gw = gateway_factory(env={"DATABASE_URL": url})
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE privacy.consent RENAME TO consent_gone")
    try:
        refused = gw.set_consent("someone", False)
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        # An opt-out event cannot be recorded either: the whole request is refused.
        batch = gw.post_events(
            [
                client_event(user="x"),
                client_event("user.opt_out", user="x", telemetry_enabled=False),
            ]
        )
        assert batch.status_code == 503
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE privacy.consent_gone RENAME TO consent")
