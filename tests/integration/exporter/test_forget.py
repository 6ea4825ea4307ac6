"""Deletion on request: after ``forget`` no table of any schema holds the user's
pseudonyms (under any key) but an opt-out in ``privacy.consent``, the audit row exists,
other users are untouched, repeating is harmless, and the user's events still in flight
are refused."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from integration.exporter.exporter_helpers import PSEUDONYMIZER, at, event, load, query
from integration.exporter.synthetic import synthetic_events

from caret_otel.exporters.postgres import trends
from caret_otel.exporters.postgres.deletion import InvalidDeletionRequest, forget
from caret_otel.exporters.postgres.event_rows import AcceptWindow, EventRowBuilder
from caret_otel.exporters.postgres.loader import FORGOTTEN_USER, Loader
from caret_otel.otlp.build import logs_request
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as ev

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
OLD_KEY_ONLY = PSEUDONYMIZER.all_pseudonyms("alice")[0]  # written under key 1 before rotation


def alice_events() -> list:
    day = NOW.date() - timedelta(days=2)
    common = {attrs.GEO_COUNTRY_ISO_CODE: "KR", attrs.CARET_PLAN_NAME: "free"}
    records = [
        event("alice", at(day, "09:00"), ev.CARET_USER_SIGNED_UP, common),
        event("alice", at(day, "09:05"), ev.CARET_TASK_TOKENS, {
            **common, attrs.GEN_AI_PROVIDER_NAME: "anthropic",
            attrs.GEN_AI_REQUEST_MODEL: "claude-sonnet-4", attrs.CARET_CREDITS_AMOUNT: 3.0,
            attrs.CARET_API_DURATION: 1.5,
        }),
        event("alice", at(day, "09:06"), ev.CARET_TASK_TOOL_USED, common),
        # an event a service sent about alice: her pseudonym only in another attribute
        event(None, at(day, "09:07"), ev.CARET_TASK_CREATED,
              {attrs.ENDUSER_ID: PSEUDONYMIZER.pseudonymize("alice")}),
    ]  # fmt: skip
    # older data written under the previous key
    old = event("alice", at(day - timedelta(days=1), "10:00"), ev.CARET_TASK_CREATED)
    old.attributes[1].value.string_value = OLD_KEY_ONLY
    return [*records, old]


def hits(url: str, needles: list[str]) -> dict[str, int]:
    """Rows holding any of ``needles`` (anywhere in the row's text), for every table of
    every schema of the database - partitions included, system catalogs excluded."""
    found: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        names = conn.execute(
            """SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind IN ('r', 'p', 'm')
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                 AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'"""
        ).fetchall()
        assert len(names) > 20  # every schema's tables and partitions
        for (name,) in names:
            count = conn.execute(
                f"SELECT count(*) FROM {name} t WHERE t::text LIKE ANY (%s)",
                ([f"%{n}%" for n in needles],),
            ).fetchone()
            if count and count[0]:
                found[name] = count[0]
    return found


@pytest.fixture
def loaded(database: str) -> str:
    load(
        database,
        [*alice_events(), *synthetic_events(NOW - timedelta(hours=2), users=6, days=3)],
        now=NOW,
    )
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO privacy.consent (user_pseudonym, telemetry_enabled) VALUES (%s, true)",
            (PSEUDONYMIZER.pseudonymize("alice"),),
        )
        trends.refresh_trends(conn, as_of=NOW.date())
    return database


@pytest.mark.parametrize("opted_out", [False, True], ids=["opted-in", "opted-out"])
def test_forget_leaves_no_trace_of_the_user_in_any_table(loaded: str, opted_out: bool) -> None:
    pseudonyms = PSEUDONYMIZER.all_pseudonyms("alice")
    hex_parts = [p.split(":", 1)[1] for p in pseudonyms]
    alice = PSEUDONYMIZER.pseudonymize("alice")
    if opted_out:
        with psycopg.connect(loaded, autocommit=True) as conn:
            conn.execute(
                "UPDATE privacy.consent SET telemetry_enabled = false WHERE user_pseudonym = %s",
                (alice,),
            )
    before = hits(loaded, hex_parts)
    assert {"raw.events", "core.users", "agg.user_daily_activity", "agg.sessions",
            "agg.user_daily_usage", "privacy.consent"} <= set(before)  # fmt: skip
    others_before = query(
        loaded, "SELECT count(*) FROM raw.events WHERE user_pseudonym <> ALL(%s)", (pseudonyms,)
    )
    trends_before = query(loaded, "SELECT * FROM trends.monthly ORDER BY 1, 2, 3")

    result = forget(loaded, pseudonyms, request_id="ticket-4711")

    # The one row that may stay is an opt-out: it is how her choice keeps being honoured
    # (docs/privacy.md, "Deletion and consent"), and it holds nothing but the pseudonym.
    assert hits(loaded, hex_parts) == ({"privacy.consent": 1} if opted_out else {})
    consent = query(loaded, "SELECT user_pseudonym, telemetry_enabled FROM privacy.consent")
    assert consent == ([(alice, False)] if opted_out else [])
    assert result.request_id == "ticket-4711"
    assert not result.already_completed
    assert result.rows_removed["raw.events"] == 5
    assert result.rows_removed["core.users"] == 2  # one per key
    assert result.rows_removed["privacy.consent"] == (0 if opted_out else 1)
    assert result.rows_removed["agg.user_daily_activity"] == 2  # a day under each key
    assert result.rows_removed["agg.user_daily_usage"] == 1
    audit = query(
        loaded,
        "SELECT request_id, pseudonym_digests, requested_at <= completed_at, rows_removed"
        " FROM privacy.deletion_requests",
    )
    digests = sorted(hashlib.sha256(p.encode()).hexdigest() for p in pseudonyms)
    assert audit == [("ticket-4711", digests, True, result.rows_removed)]
    # other users and the anonymised trends are untouched
    assert query(loaded, "SELECT count(*) FROM raw.events") == others_before
    assert query(loaded, "SELECT * FROM trends.monthly ORDER BY 1, 2, 3") == trends_before


def test_forget_is_idempotent(loaded: str) -> None:
    pseudonyms = PSEUDONYMIZER.all_pseudonyms("alice")
    first = forget(loaded, pseudonyms, request_id="r-1")
    again = forget(loaded, pseudonyms, request_id="r-1")
    assert again.already_completed
    assert again.rows_removed == first.rows_removed
    assert again.completed_at == first.completed_at
    later = forget(loaded, pseudonyms)  # a new request finds nothing more
    assert later.total_rows == 0
    assert not later.already_completed
    assert query(loaded, "SELECT count(*) FROM privacy.deletion_requests") == [(2,)]


def test_events_in_flight_from_before_the_deletion_are_refused(loaded: str) -> None:
    forget(loaded, PSEUDONYMIZER.all_pseudonyms("alice"))
    deleted_at = query(loaded, "SELECT completed_at FROM privacy.deletion_requests")[0][0]
    in_flight = event("alice", deleted_at - timedelta(minutes=5), ev.CARET_TASK_CREATED)
    # Dated after the deletion, yet possibly received before it (the gateway takes events
    # up to IN_FLIGHT_SKEW in the future): refused too.
    future_dated = event("alice", deleted_at + timedelta(minutes=2), ev.CARET_TASK_CREATED)
    # A service's event with alice's pseudonym in another attribute only.
    in_attrs = event(None, deleted_at - timedelta(minutes=1), ev.CARET_TASK_CREATED,
                     {attrs.ENDUSER_ID: PSEUDONYMIZER.pseudonymize("alice")})  # fmt: skip
    afterwards = event("alice", deleted_at + timedelta(minutes=10), ev.CARET_TASK_CREATED)
    decoded = EventRowBuilder(AcceptWindow.at(deleted_at, 30)).decode(
        logs_request([in_flight, future_dated, in_attrs, afterwards])
    )
    with psycopg.connect(loaded, autocommit=True) as conn:
        stored = Loader().store_events(conn, decoded.rows)
    assert (stored.inserted, stored.refusals.counts) == (1, {FORGOTTEN_USER: 3})
    rows = query(
        loaded,
        "SELECT event_ts FROM raw.events WHERE user_pseudonym = %s",
        (PSEUDONYMIZER.pseudonymize("alice"),),
    )
    assert rows == [(afterwards_ts(afterwards),)]


def afterwards_ts(record: object) -> datetime:
    from caret_otel.otlp.values import time_from_unix_nano

    return time_from_unix_nano(record.time_unix_nano)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("pseudonyms", "field"),
    [
        ([], "user_pseudonyms"),
        (["alice@example.com"], r"user_pseudonyms\[0\]"),
        (["v1:abc"], r"user_pseudonyms\[0\]"),
    ],
)
def test_a_bad_request_names_the_field_and_deletes_nothing(
    loaded: str, pseudonyms: list[str], field: str
) -> None:
    before = query(loaded, "SELECT count(*) FROM raw.events")
    with pytest.raises(InvalidDeletionRequest, match=field):
        forget(loaded, pseudonyms)
    assert query(loaded, "SELECT count(*) FROM raw.events") == before
