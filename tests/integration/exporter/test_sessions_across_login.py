"""A session split by login counts once (issue 15).

A real client's distinct id is the machine id until login and the account id after it,
in the same session: the rollup then holds part of the session under each pseudonym.
``analytics.sessions_daily`` counts the person's session once, its length from the first
to the last event across both pseudonyms. Day 2026-03-02, as of 2026-03-31:

    P  machine M 10:00, 10:10; logs in; account A 10:20, 10:50 (marked with M's
       pseudonym as the gateway does), A again 12:00 (more than 30 minutes later)
    Q  no login: 10:00, 10:05
    R  machine M2 09:00 and 09:40, account A2 09:20 in between (each pseudonym alone
       has a 40-minute gap; together the gaps are 20 minutes)

Sessions: P 10:00-10:50 (4 events, 3000 s) and 12:00 (1 event, 0 s); Q 10:00-10:05
(2 events, 300 s); R 09:00-09:40 (3 events, 2400 s). Per pseudonym the rollup has 7.
Paths and session edges follow a session id across the login in the same way.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pytest
from integration.exporter.exporter_helpers import at, event, load, pseudonym, query
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from caret_otel.exporters.postgres import rollup
from caret_otel.exporters.postgres.schema import migrate
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as ev
from caret_otel.stack import PostgresServer

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 2)
AS_OF = date(2026, 3, 31)
NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def e(user: str, hh_mm: str, *, session: str, machine: str | None = None) -> LogRecord:
    values: dict[str, str] = {attrs.SESSION_ID: pseudonym(session)}
    if machine is not None:
        values[attrs.CARET_DEVICE_ID] = pseudonym(machine)
    return event(user, at(DAY, hh_mm), ev.CARET_TASK_CREATED, values)


def dataset() -> list[LogRecord]:
    return [
        e("M", "10:00", session="s-p"),
        e("M", "10:10", session="s-p"),
        e("A", "10:20", session="s-p", machine="M"),
        e("A", "10:50", session="s-p", machine="M"),
        e("A", "12:00", session="s-p2"),
        e("Q", "10:00", session="s-q"),
        e("Q", "10:05", session="s-q"),
        e("M2", "09:00", session="s-r"),
        e("A2", "09:20", session="s-r", machine="M2"),
        e("M2", "09:40", session="s-r"),
    ]


@pytest.fixture(scope="module")
def url(postgres: PostgresServer) -> str:
    database_url = postgres.create_database("exp_sessions_across_login")
    migrate(database_url)
    load(database_url, dataset(), now=NOW, batch=3)  # the link arrives mid-stream
    return database_url


def test_the_rollup_holds_the_session_split_by_login(url: str) -> None:
    (split,) = query(url, "SELECT count(*) FROM agg.sessions WHERE day = %s", (DAY,))
    assert split == (7,)


def test_a_session_split_by_login_counts_once_with_its_whole_length(url: str) -> None:
    got = query(
        url,
        "SELECT sessions, users, events, p50_length_s, p90_length_s, avg_length_s,"
        " single_event_sessions FROM analytics.sessions_daily WHERE day = %s",
        (DAY,),
        as_of=AS_OF,
    )
    # lengths 0, 300, 2400, 3000 s: median 1350, p90 2400 + 0.7 * 600, mean 1425
    assert got == [(4, 3, 10, Decimal("1350.0"), Decimal("2820.0"), Decimal("1425.0"), 1)]


def test_paths_and_edges_follow_a_session_id_across_login(url: str) -> None:
    """Per person and session id: s-p (P), s-p2 (P), s-q (Q), s-r (R). Per pseudonym and
    session id there were 6 (M and A in s-p, M2 and A2 in s-r)."""
    ends = query(
        url,
        "SELECT sum(transitions) FROM analytics.path_transitions"
        " WHERE day = %s AND next_event_name = '(end)'",
        (DAY,),
    )
    assert ends == [(4,)]
    edges = query(
        url,
        "SELECT edge, sessions FROM analytics.session_edges(%s, %s) ORDER BY edge",
        (at(DAY, "00:00"), at(DAY, "23:59")),
    )
    assert edges == [("ending", 4), ("opening", 4)]


def test_the_analyst_reads_the_views(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE caret_analyst")
        conn.execute("SELECT set_config('caret.as_of', %s, false)", (AS_OF.isoformat(),))
        assert conn.execute("SELECT count(*) FROM analytics.sessions_daily").fetchall() == [(1,)]
        assert conn.execute("SELECT count(*) FROM analytics.path_transitions").fetchall() == [(2,)]
        edges = conn.execute(
            "SELECT count(*) FROM analytics.session_edges(%s, %s)",
            (at(DAY, "00:00"), at(DAY, "23:59")),
        ).fetchall()
        assert edges == [(2,)]


def test_sql_and_the_rollup_share_the_session_gap(url: str) -> None:
    assert query(url, "SELECT analytics.session_gap()") == [(rollup.SESSION_GAP,)]
