"""Funnels and paths in PostgreSQL equal an independent pandas computation over the same
raw rows; the analyst role may call them; churn scores are removed by forget.

Events go in through the exporter's real decode, load and rollup path."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pandas as pd
import psycopg
import pytest
from fixtures.services import migrated_database
from integration.exporter.exporter_helpers import event, load, pseudonym
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from caret_otel.behaviour import funnel as fn
from caret_otel.exporters.postgres.deletion import forget
from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events as ev
from caret_otel.stack import PostgresServer

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
START = NOW - timedelta(days=4)
PROVIDERS = (("anthropic", "claude-sonnet-4"), ("openai", "gpt-5"))
PLATFORMS = ("vscode", "cursor")


def _events(users: int = 40, seed: int = 3) -> list[LogRecord]:
    rng = random.Random(seed)
    out: list[tuple[datetime, LogRecord]] = []
    for n in range(users):
        name = f"user-{n}"
        platform = PLATFORMS[n % 2]
        for s in range(rng.randint(1, 3)):
            session = pseudonym(f"session-{n}-{s}")
            ts = START + timedelta(hours=rng.uniform(0, 60))
            common: dict[str, Any] = {
                attrs.SESSION_ID: session,
                attrs.CARET_CLIENT_PLATFORM: platform,
            }

            def add(
                at: datetime,
                spec: ev.EventSpec,
                values: dict[str, Any] | None = None,
                *,
                name: str = name,
                common: dict[str, Any] = common,
            ) -> None:
                out.append((at, event(name, at, spec, {**common, **(values or {})})))

            add(ts, ev.CARET_SESSION_STARTED)
            for t in range(rng.randint(0, 3)):
                provider, model = rng.choice(PROVIDERS)
                task = {
                    attrs.CARET_TASK_ID: pseudonym(f"task-{n}-{s}-{t}"),
                    attrs.GEN_AI_PROVIDER_NAME: provider,
                    attrs.GEN_AI_REQUEST_MODEL: model,
                }
                ts += timedelta(seconds=rng.choice([0, 5, 40, 300]))
                add(ts, ev.CARET_TASK_CREATED, task)
                for _ in range(rng.randint(0, 3)):
                    # a zero step makes ties: the event id breaks them, here as in pandas
                    ts += timedelta(seconds=rng.choice([0, 20, 3600, 20_000]))
                    if rng.random() < 0.2:
                        add(ts, ev.CARET_TASK_PROVIDER_API_ERROR, {**task, attrs.ERROR_TYPE: "429"})
                    else:
                        add(ts, ev.CARET_TASK_TOKENS, {**task, attrs.GEN_AI_USAGE_INPUT_TOKENS: 10})
                if rng.random() < 0.3:
                    ts += timedelta(seconds=30)
                    add(
                        ts,
                        ev.CARET_TASK_FOCUS_CHAIN,
                        {**task, attrs.CARET_FEATURE_ACTION: "enabled"},
                    )
                if rng.random() < 0.7:
                    ts += timedelta(seconds=rng.choice([1, 600, 7200]))
                    add(ts, ev.CARET_TASK_COMPLETED, task)
            ts += timedelta(seconds=60)
            add(ts, ev.CARET_SESSION_ENDED)
    out.sort(key=lambda pair: pair[0])
    return [record for _, record in out]


@pytest.fixture(scope="module")
def database(postgres: PostgresServer) -> Iterator[str]:
    url = migrated_database(postgres, "behaviour_funnels")
    load(url, _events(), now=NOW)
    return url


@pytest.fixture(scope="module")
def frame(database: str) -> pd.DataFrame:
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT event_id, event_ts, event_name, user_pseudonym, session_id, provider,"
            " platform, attrs->>%s AS task_id FROM raw.events",
            (attrs.CARET_TASK_ID,),
        ).fetchall()
    columns = [
        "event_id",
        "event_ts",
        "event_name",
        "user",
        "session",
        "provider",
        "platform",
        "task",
    ]
    return pd.DataFrame(rows, columns=columns)


def analyst(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER ROLE caret_analyst PASSWORD 'analyst-test'")
    info = psycopg.conninfo.conninfo_to_dict(url)
    info.update(user="caret_analyst", password="analyst-test")
    return psycopg.conninfo.make_conninfo(**info)


def pandas_funnel(
    df: pd.DataFrame,
    steps: list[fn.Step],
    window: timedelta,
    unit: str,
    breakdown: str | None,
) -> dict[tuple[str, int], tuple[int, float | None]]:
    """The greedy funnel, written independently: (breakdown value, step) -> (units,
    median seconds from the previous step)."""
    df = df[(df.event_ts >= START) & (df.event_ts < NOW) & df.user.notna()].copy()
    key = {"user": ["user"], "session": ["user", "session"], "task": ["user", "task"]}[unit]
    df = df.dropna(subset=key).sort_values(["event_ts", "event_id"])
    reached: dict[tuple[str, int], list[float]] = {}
    for _, group in df.groupby(key if len(key) > 1 else key[0], sort=False):
        matches = []
        for step in steps:
            mask = group.event_name == step.event
            for column, value in step.where.items():
                mask &= group[column] == value
            matches.append(group[mask])
        first = matches[0]
        if first.empty:
            continue
        dim = "all"
        head = first.iloc[0]
        if breakdown is not None:
            dim = head[breakdown] if head[breakdown] is not None else "unknown"
        t1 = head.event_ts
        previous = (head.event_ts, head.event_id)
        seconds: list[float] = [float("nan")]
        for later in matches[1:]:
            after = later[
                ((later.event_ts > previous[0])
                 | ((later.event_ts == previous[0]) & (later.event_id > previous[1])))
                & (later.event_ts <= t1 + window)
            ]  # fmt: skip
            if after.empty:
                break
            nxt = after.iloc[0]
            seconds.append((nxt.event_ts - previous[0]).total_seconds())
            previous = (nxt.event_ts, nxt.event_id)
        for k, value in enumerate(seconds, start=1):
            for d in {dim, "all"}:
                reached.setdefault((d, k), []).append(value)
    out: dict[tuple[str, int], tuple[int, float | None]] = {}
    for cell, values in reached.items():
        median = pd.Series(values).median() if cell[1] > 1 else None
        out[cell] = (len(values), None if median is None else float(median))
    return out


CASES = [
    ("user", None, ["task.created", "task.tokens", "task.completed"], timedelta(days=1)),
    ("task", "provider", ["task.created", "task.tokens", "task.completed"], timedelta(hours=2)),
    ("session", "platform", ["session.started", "task.created[provider=openai]", "task.completed"],
     timedelta(hours=1)),
    ("user", None, ["task.tokens", "task.tokens", "task.tokens"], timedelta(days=2)),
]  # fmt: skip


@pytest.mark.parametrize(("unit", "breakdown", "texts", "window"), CASES)
def test_funnel_equals_pandas(
    database: str,
    frame: pd.DataFrame,
    unit: str,
    breakdown: str | None,
    texts: list[str],
    window: timedelta,
) -> None:
    steps = [fn.parse_step(text, i) for i, text in enumerate(texts)]
    result = fn.run_funnel(
        analyst(database),
        steps,
        start=START,
        end=NOW,
        window=window,
        breakdown=breakdown,
        unit=unit,
    )
    expected = pandas_funnel(frame, steps, window, unit, breakdown)
    got = {(r[0], r[1]): (r[3], r[7]) for r in result.rows}
    assert got[("all", 1)][0] > 5, "the test data must reach the funnel"
    assert got[("all", len(steps))][0] > 0
    for cell, (units, median) in got.items():
        want_units, want_median = expected.get(cell, (0, None))
        assert units == want_units, cell
        if want_median is None:
            assert median is None, cell
        else:
            assert median == pytest.approx(want_median), cell
    assert {c for c, v in got.items() if v[0]} == set(expected)
    first = {r[0]: r[3] for r in result.rows if r[1] == 1}
    for r in result.rows:
        assert float(r[4]) == pytest.approx(round(r[3] / first[r[0]], 4))


def test_paths_equal_pandas(database: str, frame: pd.DataFrame) -> None:
    df = frame.dropna(subset=["user", "session"]).sort_values(["event_ts", "event_id"])
    df = df.assign(next=df.groupby(["user", "session"]).event_name.shift(-1).fillna("(end)"))
    created = ev.CARET_TASK_CREATED.name
    expected = df[df.event_name == created].groupby("next").size().to_dict()
    section = fn.next_events(analyst(database), "task.created", start=START, end=NOW, limit=50)
    assert {r[0]: r[1] for r in section.rows} == expected
    assert sum(float(r[2]) for r in section.rows) == pytest.approx(1.0, abs=1e-3)

    kept = df[~df.event_name.isin(fn.SESSION_MARKERS)]
    groups = kept.groupby(["user", "session"]).event_name
    want = {("opening", k): v for k, v in groups.first().value_counts().to_dict().items()} | {
        ("ending", k): v for k, v in groups.last().value_counts().to_dict().items()
    }
    edges = fn.session_edges(analyst(database), start=START, end=NOW)
    assert {(r[0], r[1]): r[2] for r in edges.rows} == want


def test_a_bad_funnel_is_refused_naming_the_field(database: str) -> None:
    with pytest.raises(fn.FunnelError, match="filter column"):
        fn.parse_step("task.created[user_pseudonym=x]", 0)
    with pytest.raises(fn.FunnelError, match=r"steps\[1\]"):
        fn.parse_step("no.such.event", 1)
    # the database refuses on its own too (an analyst may call the function directly)
    with psycopg.connect(analyst(database)) as conn, pytest.raises(psycopg.Error, match="where"):
        conn.execute(
            "SELECT * FROM analytics.funnel(%s::jsonb, interval '1 day', now() - interval '1 day', now())",
            ('[{"event": "a", "where": {"user_pseudonym": "x"}}, {"event": "b"}]',),
        )


def test_adoption_views_answer(database: str) -> None:
    with psycopg.connect(analyst(database)) as conn:
        adoption = conn.execute(
            "SELECT feature, adopters_28d, adoption_share FROM analytics.feature_adoption"
        ).fetchall()
        retention = conn.execute("SELECT count(*) FROM analytics.feature_retention").fetchone()
    features = {row[0]: row for row in adoption}
    focus = ev.CARET_TASK_FOCUS_CHAIN.feature
    assert focus in features
    assert features[focus][1] > 0
    assert retention is not None
    assert retention[0] > 0


def test_churn_scores_are_removed_by_forget(database: str) -> None:
    user = pseudonym("user-1")
    day = NOW.date()
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("SELECT meta.ensure_partition('agg.churn_scores', %s)", (day,))
        conn.execute(
            "INSERT INTO agg.churn_scores (score_day, user_pseudonym, model_id, probability,"
            " risk_decile, days_since_active) VALUES (%s, %s, 1, 0.5, 5, 1)",
            (day, user),
        )
    result = forget(database, [user])
    assert result.rows_removed["agg.churn_scores"] == 1
    with psycopg.connect(database) as conn:
        left = conn.execute("SELECT count(*) FROM agg.churn_scores").fetchone()
    assert left == (0,)


def test_the_cli_prints_the_funnel_as_json_and_csv(database: str) -> None:
    from click.testing import CliRunner

    from caret_otel.cli.behaviour import funnel

    url = analyst(database)
    args = ["task.created", "task.completed", "--per", "task", "--database-url", url]
    args += ["--from", START.date().isoformat(), "--to", NOW.date().isoformat()]
    result = CliRunner().invoke(funnel, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = orjson.loads(result.output)["funnel"]["rows"]
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["units"] >= rows[1]["units"] > 0
    csv_out = CliRunner().invoke(funnel, [*args, "--format", "csv"])
    assert csv_out.output.splitlines()[0].startswith("breakdown,step,event,units")
    bad = CliRunner().invoke(funnel, ["task.created", "not.an.event", "--database-url", url])
    assert bad.exit_code == 2
    assert "steps[1]" in bad.output
    assert "not.an.event" not in bad.output
