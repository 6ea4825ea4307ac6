"""The churn model against real PostgreSQL: features read back from the stored rollups
equal the aggregates written; train stores a model, score writes a day of scores the
analyst can read; a rerun replaces them; scores expire with the raw tier."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from fixtures.services import migrated_database
from integration.exporter.exporter_helpers import pseudonym

from caret_otel.churn import features as f
from caret_otel.churn import model, store, synthetic
from caret_otel.exporters.postgres.retention import run_retention
from caret_otel.simulator.churn_drivers import ADOPTION_FEATURES
from caret_otel.stack import PostgresServer

pytestmark = pytest.mark.integration

FIRST_DAY = datetime.now(UTC).date() - timedelta(days=84)


def _write(url: str, data: f.DailyAggregates) -> None:
    """The population as the rollups would store it (one usage row per user and day)."""
    names = [pseudonym(u) for u in data.users]
    with psycopg.connect(url, autocommit=True) as conn:
        months = {data.day_at(d).replace(day=1) for d in range(data.days)}
        for table in (
            "agg.user_daily_activity",
            "agg.user_daily_usage",
            "agg.user_daily_feature",
            "agg.sessions",
            "agg.user_daily_tasks",
        ):
            for month in months:
                conn.execute("SELECT meta.ensure_partition(%s, %s)", (table, month))
        v = data.values
        with conn.cursor() as cur:
            for u, d in zip(*np.nonzero(v[:, :, f.ACTIVE]), strict=True):
                day, user, row = data.day_at(int(d)), names[u], v[u, d]
                first = f"{day} 10:00:00+00"
                cur.execute(
                    "INSERT INTO agg.user_daily_activity VALUES (%s, %s, %s, %s, %s)",
                    (day, user, int(row[f.EVENTS]), first, first),
                )
                cur.execute(
                    "INSERT INTO agg.user_daily_usage VALUES (%s, %s, %s, 'anthropic', 'm', %s, %s,"
                    " %s, %s, 0, 0, 0, 0)",
                    (day, user, "pro" if row[f.PAID] else "free", int(row[f.EVENTS]),
                     int(row[f.REQUESTS]), int(row[f.ERRORS]), int(row[f.TOKENS])),
                )  # fmt: skip
                cur.execute(
                    "INSERT INTO agg.user_daily_tasks VALUES (%s, %s, %s, %s, %s, 0, %s, %s)",
                    (day, user, "VS Code" if u % 3 else "Cursor", int(row[f.TASKS]),
                     int(row[f.COMPLETED]), int(row[f.THUMBS_UP]), int(row[f.THUMBS_DOWN])),
                )  # fmt: skip
                for s in range(int(row[f.SESSIONS])):
                    cur.execute(
                        "INSERT INTO agg.sessions VALUES (%s, %s, %s, %s, %s, 1)",
                        (day, user, s, first, first),
                    )
                for i, feature in enumerate(ADOPTION_FEATURES):
                    uses = int(row[len(f.METRICS) + i])
                    if uses:
                        cur.execute(
                            "INSERT INTO agg.user_daily_feature VALUES (%s, %s, %s, %s, %s)",
                            (day, user, feature, uses, uses),
                        )
            for u, user in enumerate(names):
                seen = f"{data.day_at(int(data.first_seen[u]))} 09:00:00+00"
                cur.execute(
                    "INSERT INTO core.users (user_pseudonym, first_seen_at, last_seen_at, plan)"
                    " VALUES (%s, %s, %s, %s)",
                    (user, seen, seen, "pro" if v[u, :, f.PAID].any() else "free"),
                )


@pytest.fixture(scope="module")
def population() -> f.DailyAggregates:
    data = synthetic.generate(users=600, days=84, seed=11, first_day=FIRST_DAY)
    # tokens are stored as integers
    values = data.values.copy()
    values[:, :, f.TOKENS] = np.floor(values[:, :, f.TOKENS])
    return f.DailyAggregates(data.users, data.first_day, values, data.first_seen)


@pytest.fixture(scope="module")
def database(postgres: PostgresServer, population: f.DailyAggregates) -> Iterator[str]:
    url = migrated_database(postgres, "behaviour_churn")
    _write(url, population)
    return url


def analyst(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER ROLE caret_analyst PASSWORD 'analyst-test'")
    info = psycopg.conninfo.conninfo_to_dict(url)
    info.update(user="caret_analyst", password="analyst-test")
    return psycopg.conninfo.make_conninfo(**info)


def test_the_stored_rollups_read_back_as_the_same_aggregates(
    database: str, population: f.DailyAggregates
) -> None:
    loaded = store.load_aggregates(
        database, population.first_day, population.first_day + timedelta(days=population.days)
    )
    order = [
        loaded.users.index(pseudonym(u)) for u in population.users if pseudonym(u) in loaded.users
    ]
    active = population.values[:, :, f.ACTIVE].any(axis=1)
    assert len(order) == int(active.sum())
    np.testing.assert_array_equal(loaded.values[order], population.values[active])
    np.testing.assert_array_equal(loaded.first_seen[order], population.first_seen[active])


def test_train_then_score_into_a_table_the_analyst_reads(database: str) -> None:
    as_of = FIRST_DAY + timedelta(days=84)
    result = store.train(database, as_of, lookback_days=84)
    assert result.evaluation.test_rows > 50
    scored = store.score(database, as_of)
    assert scored > 50
    again = store.score(database, as_of)  # idempotent per day
    assert again == scored
    with psycopg.connect(analyst(database)) as conn:
        rows = conn.execute(
            "SELECT count(*), min(probability), max(probability), min(risk_decile), max(risk_decile)"
            " FROM analytics.churn_scores WHERE score_day = %s",
            (as_of,),
        ).fetchone()
        deciles = conn.execute("SELECT sum(users) FROM analytics.churn_risk_daily").fetchone()
        segments = conn.execute(
            "SELECT DISTINCT host_app, plan FROM analytics.churn_scores WHERE score_day = %s",
            (as_of,),
        ).fetchall()
        evaluation = conn.execute(
            "SELECT evaluation->'scorers' FROM analytics.churn_models"
        ).fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT model FROM agg.churn_models")
    assert rows is not None
    assert rows[0] == scored
    assert 0 <= rows[1] < rows[2] <= 1
    assert (rows[3], rows[4]) == (1, 10)
    assert deciles == (scored,)
    assert set(segments) == {
        (app, plan) for app in ("VS Code", "Cursor") for plan in ("pro", "free")
    }
    assert evaluation is not None
    assert len(evaluation[0]) == 3


def test_scores_expire_with_the_raw_tier(database: str) -> None:
    old = datetime.now(UTC).date() - timedelta(days=45)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("SELECT meta.ensure_partition('agg.churn_scores', %s)", (old,))
        conn.execute(
            "INSERT INTO agg.churn_scores (score_day, user_pseudonym, model_id, probability,"
            " risk_decile, days_since_active) VALUES (%s, %s, 1, 0.5, 5, 1)",
            (old, pseudonym("old")),
        )
    run_retention(database)
    with psycopg.connect(database) as conn:
        left = conn.execute(
            "SELECT count(*) FROM agg.churn_scores WHERE score_day = %s", (old,)
        ).fetchone()
    assert left == (0,)


def test_a_day_without_active_users_scores_nobody(database: str) -> None:
    store.train(database, FIRST_DAY + timedelta(days=84), lookback_days=84)
    assert store.score(database, FIRST_DAY - timedelta(days=3)) == 0


def test_too_little_history_is_refused_with_the_reason(database: str) -> None:
    with pytest.raises(model.NotEnoughData, match="at least 56"):
        store.train(database, FIRST_DAY + timedelta(days=40), lookback_days=40)
