"""The real-client corpus, through the gateway's ingestion and the exporter's real
decode, load and rollup path into PostgreSQL: token and cost totals in raw.events and
the rollups equal the client's own; a person who logs in mid-session counts once; the
identity link is recorded and `forget` of either side removes it; the analyst views of
issue 15 return rows."""

from __future__ import annotations

import asyncio
import base64
import math
from datetime import UTC, datetime

import psycopg
import pytest
from fixtures.services import migrated_database
from metric_capture import MetricCapture
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from real_client_corpus import Corpus, batches, build

from caret_otel.exporters.postgres import deletion, rollup
from caret_otel.exporters.postgres.event_rows import AcceptWindow, EventRowBuilder
from caret_otel.exporters.postgres.loader import Loader
from caret_otel.processors.privacy.client_events import ClientEventScrubber
from caret_otel.processors.privacy.consent import InMemoryConsentStore
from caret_otel.processors.privacy.engine import PrivacyEngine
from caret_otel.processors.privacy.pseudonyms import Pseudonymizer, parse_keys
from caret_otel.receivers.gateway import client_metrics
from caret_otel.receivers.gateway.client_ingest import ClientEventIngestor
from caret_otel.receivers.gateway.config import IngestLimits, OtlpTarget
from caret_otel.receivers.gateway.task_spans import TaskSpans
from caret_otel.semconv.policy import load_policy
from caret_otel.stack import PostgresServer

pytestmark = pytest.mark.integration

KEY = "1:" + base64.b64encode(b"real-clients-key" * 2).decode()
PSEUDONYMIZER = Pseudonymizer(parse_keys(KEY, source="tests"))


async def _no_consent(user: str, enabled: bool) -> None:
    raise AssertionError("the corpus has no consent change")


def store(url: str, corpus: Corpus, now: datetime) -> None:
    """What the Collector's business leg would deliver: every caret.* log record except
    the log-only caret.diagnostic.* ones (the filter of otel-collector-config.yaml)."""
    policy = load_policy()
    _, recorder = client_metrics.pipeline(
        OtlpTarget(endpoints={}), policy, exporter=MetricCapture()
    )
    ingestor = ClientEventIngestor(
        ClientEventScrubber(PrivacyEngine(policy, PSEUDONYMIZER), InMemoryConsentStore()),
        recorder,
        TaskSpans(max_open_tasks=1000),
        IngestLimits(),
        raw_retention_days=30,
    )
    builder = EventRowBuilder(AcceptWindow.at(now, 30))
    loader = Loader()
    with psycopg.connect(url, autocommit=True) as conn:
        for batch in batches(corpus):
            result = asyncio.run(ingestor.ingest(batch, "KR", _no_consent))
            request = ExportLogsServiceRequest.FromString(ingestor.logs_request(result))
            for resource in request.resource_logs:
                for scope in resource.scope_logs:
                    kept = [r for r in scope.log_records if ".diagnostic." not in r.event_name]
                    del scope.log_records[:]
                    scope.log_records.extend(kept)
            decoded = builder.decode(request)
            assert decoded.refusals.total == 0, decoded.refusals.summary()
            loader.store_events(conn, decoded.rows)
            rollup.roll_up(conn)


@pytest.fixture(scope="module")
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def loaded(postgres: PostgresServer, now: datetime) -> tuple[str, Corpus]:
    """One database for the module (the forget test, which changes it, runs last)."""
    database = migrated_database(postgres, "exp_real_clients")
    corpus = build(now)
    store(database, corpus, now)
    return database, corpus


def one(url: str, sql: str) -> tuple[object, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return tuple(row)


def test_tokens_and_cost_equal_the_clients_totals(loaded: tuple[str, Corpus]) -> None:
    url, corpus = loaded
    t = corpus.totals
    raw = one(url, """SELECT sum(tokens_in), sum(tokens_out), sum(tokens_cache_read),
                             sum(tokens_cache_write), sum((attrs ->> 'caret.api.cost')::numeric)
                      FROM raw.events""")  # fmt: skip
    expected = (t.input_tokens, t.output_tokens, t.cache_read_tokens, t.cache_write_tokens)
    assert raw[:4] == expected
    assert math.isclose(float(raw[4]), t.cost, rel_tol=1e-9)  # type: ignore[arg-type]
    agg = one(url, """SELECT sum(tokens_in), sum(tokens_out), sum(tokens_cache_read),
                             sum(tokens_cache_write), sum(cost_usd)
                      FROM agg.user_daily_usage""")  # fmt: skip
    assert agg[:4] == expected
    assert math.isclose(float(agg[4]), t.cost, rel_tol=1e-9)  # type: ignore[arg-type]


def test_a_person_who_logs_in_mid_session_counts_once(loaded: tuple[str, Corpus]) -> None:
    url, corpus = loaded
    (links,) = one(url, "SELECT count(*) FROM core.identity_links WHERE side = 'device'")
    assert links == len(corpus.logins)
    (pseudonyms,) = one(url, "SELECT count(DISTINCT user_pseudonym) FROM raw.events")
    assert pseudonyms == corpus.people + len(corpus.logins)
    (persons,) = one(url, "SELECT count(*) FROM core.persons")
    assert persons == corpus.people
    with psycopg.connect(url) as conn:
        conn.execute("SET caret.as_of = '2999-01-01'")
        mau = conn.execute("SELECT max(mau) FROM analytics.active_users").fetchone()
        users = conn.execute("SELECT max(users) FROM analytics.sessions_daily").fetchone()
    assert mau is not None
    assert mau[0] == corpus.people
    assert users is not None
    assert users[0] <= corpus.people


def test_an_mcp_call_is_one_feature_use(loaded: tuple[str, Corpus]) -> None:
    url, corpus = loaded
    uses, events = one(
        url, "SELECT sum(uses), sum(events) FROM agg.user_daily_feature WHERE feature = 'mcp_tool'"
    )
    assert (uses, events) == (corpus.mcp_calls, 2 * corpus.mcp_calls)


@pytest.mark.parametrize(
    "view",
    [
        "analytics.host_app_daily",
        "analytics.feedback_by_model",
        "analytics.checkpoint_mode_daily",
        "analytics.provider_errors_daily",
    ],
)
def test_analyst_views_return_rows(loaded: tuple[str, Corpus], view: str) -> None:
    url, _ = loaded
    with psycopg.connect(url) as conn:
        conn.execute("SET caret.as_of = '2999-01-01'")
        rows = conn.execute(f"SELECT * FROM {view}").fetchall()
    assert rows


def test_host_apps_and_provider_errors_are_coarse_and_counted(loaded: tuple[str, Corpus]) -> None:
    url, corpus = loaded
    with psycopg.connect(url) as conn:
        conn.execute("SET caret.as_of = '2999-01-01'")
        apps = {r[0] for r in conn.execute("SELECT host_app FROM analytics.host_app_daily")}
        errors = conn.execute(
            "SELECT sum(errors) FROM analytics.provider_errors_daily WHERE status = '429'"
        ).fetchone()
    assert apps <= {"vscode", "cursor", "windsurf", "vscodium"}
    assert errors == (corpus.provider_errors,)


def test_forget_of_either_side_removes_the_link(loaded: tuple[str, Corpus]) -> None:
    url, corpus = loaded
    machine, _account = corpus.logins[0]
    device = PSEUDONYMIZER.pseudonymize(machine)
    deletion.forget(url, [device], loki=None)
    with psycopg.connect(url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM core.identity_links WHERE %s IN (user_pseudonym, linked_pseudonym)",
            (device,),
        ).fetchone()
    assert left == (0,)
    (links,) = one(url, "SELECT count(*) FROM core.identity_links WHERE side = 'device'")
    assert links == len(corpus.logins) - 1
    deletion.forget(url, [PSEUDONYMIZER.pseudonymize(corpus.logins[1][1])], loki=None)
    (links,) = one(url, "SELECT count(*) FROM core.identity_links")
    assert links == 2 * (len(corpus.logins) - 2)


def test_swapped_ids_in_one_batch_are_one_link_not_a_stalled_exporter(
    postgres: PostgresServer, now: datetime
) -> None:
    """Two events of one load naming the same machine and account the other way round
    (a careless or hostile client): stored, one pair in each direction, sides agreeing."""
    url = migrated_database(postgres, "exp_swapped_ids")
    machine, account = "ab" * 32, "acct_swapped"
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    corpus = Corpus()
    for user, device in ((account, machine), (machine, account)):
        corpus.events.append(
            {
                "event_type": "task.created",
                "user_id_hash": user,
                "session_id": "vscode-session-swapped",
                "timestamp": stamp,
                "properties": {"ulid": "01JDSWAPPED000000000000000", "device_id": device},
                "client_info": {"version": "3.40.0", "platform": "Visual Studio Code"},
            }
        )
    store(url, corpus, now)
    with psycopg.connect(url) as conn:
        links = conn.execute(
            "SELECT user_pseudonym, linked_pseudonym, side FROM core.identity_links"
        ).fetchall()
        (stored,) = conn.execute("SELECT count(*) FROM raw.events").fetchone() or (0,)
    assert stored == 2
    assert len(links) == 2
    sides = {(user, linked): side for user, linked, side in links}
    (first, second), side = next(iter(sides.items()))
    assert sides[(second, first)] == ("account" if side == "device" else "device")
