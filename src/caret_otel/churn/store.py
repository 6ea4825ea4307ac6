"""The churn model and PostgreSQL: daily aggregates in, models and daily scores out.

Features come only from the stored pseudonymous daily rollups (``agg.user_daily_activity``,
``agg.user_daily_usage``, ``agg.user_daily_feature``, ``agg.sessions``,
``agg.user_daily_tasks``) and ``core.users.first_seen_at``: no raw event and no free text. Models go to
``agg.churn_models`` (the fitted estimator, its feature list and its out-of-time
evaluation); scores to ``agg.churn_scores``, one partition per day, dropped with the raw
tier (30 days) and deleted by ``forget``. Analysts read them through
``analytics.churn_scores``, ``analytics.churn_risk_daily`` and ``analytics.churn_models``.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import numpy as np
import orjson
import psycopg
from threadpoolctl import threadpool_limits

from caret_otel.churn import features as f
from caret_otel.churn import model as m
from caret_otel.churn import synthetic
from caret_otel.core.errors import ServiceError
from caret_otel.exporters.postgres.rollup import UNPAID_PLANS
from caret_otel.simulator.churn_drivers import ADOPTION_FEATURES

DEFAULT_LOOKBACK_DAYS: Final = 112
"""Days of aggregates a training run reads (the rollups keep a year)."""
ALGORITHM: Final = "sklearn.HistGradientBoostingClassifier"
UNKNOWN_PLAN: Final = "unknown"
"""What the rollups store when an event carried no plan (neither paid nor free)."""
UNKNOWN_HOST_APP: Final = "unknown"


class ModelMissing(ServiceError):
    """No trained churn model is stored (or the stored one is damaged)."""


_ACTIVITY: Final = """
SELECT a.day, a.user_pseudonym, a.events FROM agg.user_daily_activity a
WHERE a.day >= %(start)s AND a.day < %(end)s
"""
_USAGE: Final = """
SELECT day, user_pseudonym, sum(requests), sum(errors), sum(tokens_in + tokens_out),
       bool_or(plan <> ALL (%(unpaid)s) AND plan <> %(unknown)s)
FROM agg.user_daily_usage WHERE day >= %(start)s AND day < %(end)s
GROUP BY day, user_pseudonym
"""
_SESSIONS: Final = """
SELECT day, user_pseudonym, count(*) FROM agg.sessions
WHERE day >= %(start)s AND day < %(end)s GROUP BY day, user_pseudonym
"""
_FEATURES: Final = """
SELECT day, user_pseudonym, feature, sum(uses) FROM agg.user_daily_feature
WHERE day >= %(start)s AND day < %(end)s AND uses > 0 AND feature = ANY (%(features)s)
GROUP BY day, user_pseudonym, feature
"""
_TASKS: Final = """
SELECT day, user_pseudonym, tasks_created, tasks_completed, thumbs_up, thumbs_down
FROM agg.user_daily_tasks WHERE day >= %(start)s AND day < %(end)s
"""
_PLANS: Final = """
SELECT user_pseudonym, plan FROM core.users WHERE user_pseudonym = ANY (%(users)s)
"""
_HOST_APPS: Final = """
SELECT DISTINCT ON (user_pseudonym) user_pseudonym, host_app FROM agg.user_daily_tasks
WHERE user_pseudonym = ANY (%(users)s) AND day >= %(start)s AND day < %(end)s
ORDER BY user_pseudonym, day DESC
"""
_FIRST_SEEN: Final = """
SELECT user_pseudonym, (first_seen_at AT TIME ZONE 'UTC')::date FROM core.users
WHERE user_pseudonym = ANY (%(users)s)
"""


def load_aggregates(conninfo: str, start: date, end: date) -> f.DailyAggregates:
    """Every user active in ``[start, end)`` with their daily aggregates of those days."""
    params: dict[str, Any] = {
        "start": start,
        "end": end,
        "unpaid": list(UNPAID_PLANS),
        "unknown": UNKNOWN_PLAN,
        "features": list(ADOPTION_FEATURES),
    }
    with psycopg.connect(conninfo) as conn:
        activity = conn.execute(_ACTIVITY, params).fetchall()
        usage = conn.execute(_USAGE, params).fetchall()
        sessions = conn.execute(_SESSIONS, params).fetchall()
        feature_rows = conn.execute(_FEATURES, params).fetchall()
        task_rows = conn.execute(_TASKS, params).fetchall()
        users = tuple(sorted({row[1] for row in activity}))
        first_seen_rows = conn.execute(_FIRST_SEEN, {"users": list(users)}).fetchall()
    index = {user: i for i, user in enumerate(users)}
    days = (end - start).days
    values = f.empty_values(len(users), days)

    def cell(day: date, user: str) -> tuple[int, int] | None:
        u = index.get(user)
        return None if u is None else (u, (day - start).days)

    for day, user, events in activity:
        u, d = index[user], (day - start).days
        values[u, d, f.ACTIVE] = 1
        values[u, d, f.EVENTS] = float(events)
    for day, user, requests, errors, tokens, paid in usage:
        at = cell(day, user)
        if at is not None:
            values[at[0], at[1], [f.REQUESTS, f.ERRORS, f.TOKENS, f.PAID]] = (
                float(requests), float(errors), float(tokens), 1.0 if paid else 0.0,
            )  # fmt: skip
    for day, user, count in sessions:
        at = cell(day, user)
        if at is not None:
            values[at[0], at[1], f.SESSIONS] = float(count)
    for day, user, created, completed, up, down in task_rows:
        at = cell(day, user)
        if at is not None:
            values[at[0], at[1], [f.TASKS, f.COMPLETED, f.THUMBS_UP, f.THUMBS_DOWN]] = (
                float(created), float(completed), float(up), float(down),
            )  # fmt: skip
    column = {name: len(f.METRICS) + i for i, name in enumerate(ADOPTION_FEATURES)}
    for day, user, feature, uses in feature_rows:
        at = cell(day, user)
        if at is not None:
            values[at[0], at[1], column[feature]] = float(uses)
    first_seen = np.zeros(len(users), dtype=np.int64)
    seen = {user: day for user, day in first_seen_rows}
    for user, u in index.items():
        first = seen.get(user)
        active_days = np.flatnonzero(values[u, :, f.ACTIVE])
        fallback = int(active_days[0]) if active_days.size else 0
        first_seen[u] = (first - start).days if first is not None else fallback
    return f.DailyAggregates(users, start, values, first_seen)


@dataclass(frozen=True)
class TrainResult:
    model_id: int
    evaluation: m.Evaluation


def train(conninfo: str, as_of: date, *, lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> TrainResult:
    """Evaluate out of time, fit on every labelled snapshot, store both; needs the writer."""
    start = as_of - timedelta(days=lookback_days)
    data = load_aggregates(conninfo, start, as_of)
    source = {"source": "rollups", "from": start.isoformat(), "to": as_of.isoformat()}
    return _fit_and_store(conninfo, as_of, data, source)


def train_synthetic(conninfo: str, as_of: date, *, users: int = 2000, seed: int = 7) -> TrainResult:
    """The same, on the in-process population with the simulator's known churn drivers
    (:mod:`caret_otel.churn.synthetic`): a model for a database that holds too few days
    to train on (a demo, a test stack). Its evaluation records where it learnt."""
    data = synthetic.generate(users=users, seed=seed)
    source = {"source": "synthetic", "users": users, "seed": seed, "days": data.days}
    return _fit_and_store(conninfo, as_of, data, source)


def _fit_and_store(
    conninfo: str, as_of: date, data: f.DailyAggregates, source: dict[str, Any]
) -> TrainResult:
    evaluation = m.evaluate(data)
    estimator = m.train_for_scoring(data)
    blob = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
    stored = {**evaluation.as_dict(), "training_data": source}
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "INSERT INTO agg.churn_models (as_of, algorithm, features, evaluation, model,"
            " model_sha256) VALUES (%s, %s, %s, %s::jsonb, %s, %s) RETURNING model_id",
            (
                as_of,
                ALGORITHM,
                list(f.FEATURES),
                orjson.dumps(stored).decode(),
                blob,
                hashlib.sha256(blob).hexdigest(),
            ),
        ).fetchone()
    assert row is not None
    return TrainResult(int(row[0]), evaluation)


def latest_model(conninfo: str) -> tuple[int, Any]:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT model_id, features, model, model_sha256 FROM agg.churn_models"
            " ORDER BY model_id DESC LIMIT 1"
        ).fetchone()
    if row is None:
        raise ModelMissing("no churn model is stored yet: run `caret-otel churn train` first")
    model_id, names, blob, digest = row
    if hashlib.sha256(bytes(blob)).hexdigest() != digest:
        raise ModelMissing(f"churn model {model_id} is damaged (checksum mismatch): retrain it")
    if tuple(names) != f.FEATURES:
        raise ModelMissing(
            f"churn model {model_id} was trained on other features than this version "
            "computes: run `caret-otel churn train`"
        )
    # Only the writer role can write agg.churn_models: the blob is our own estimator.
    return int(model_id), pickle.loads(bytes(blob))  # noqa: S301


def deciles(p: f.FloatArray) -> f.IntArray:
    """1 (lowest risk) to 10 (highest) by rank."""
    if len(p) == 0:
        return np.zeros(0, dtype=np.int64)
    ranks = np.argsort(np.argsort(p, kind="stable"), kind="stable")
    return (ranks * 10 // len(p) + 1).astype(np.int64)


def score(conninfo: str, score_day: date) -> int:
    """Score every user active in the 28 days before ``score_day``; return the count.

    Idempotent: a rerun for the same day replaces that day's scores.
    """
    model_id, estimator = latest_model(conninfo)
    data = load_aggregates(conninfo, score_day - timedelta(days=f.OBSERVATION_DAYS), score_day)
    snap = f.snapshot(data, data.days, require_label=False)
    p = np.zeros(0, dtype=np.float64)
    if len(snap.user_index):
        with threadpool_limits(m.THREADS):
            p = np.asarray(estimator.predict_proba(snap.x)[:, 1], dtype=np.float64)
    risk = deciles(p)
    recency = snap.x[:, f.FEATURES.index(f.RECENCY_FEATURE)]
    scored = [data.users[u] for u in snap.user_index]
    with psycopg.connect(conninfo) as conn:
        params = {"users": scored, "start": data.first_day, "end": score_day}
        plans: dict[str, str | None] = dict(conn.execute(_PLANS, params).fetchall())
        host_apps: dict[str, str] = dict(conn.execute(_HOST_APPS, params).fetchall())
        rows = [
            (score_day, user, model_id, float(p[i]), int(risk[i]), int(recency[i]),
             plans.get(user) or UNKNOWN_PLAN, host_apps.get(user) or UNKNOWN_HOST_APP)
            for i, user in enumerate(scored)
        ]  # fmt: skip
        conn.execute("SELECT meta.ensure_partition('agg.churn_scores', %s)", (score_day,))
        conn.execute("DELETE FROM agg.churn_scores WHERE score_day = %s", (score_day,))
        with conn.cursor().copy(
            "COPY agg.churn_scores (score_day, user_pseudonym, model_id, probability,"
            " risk_decile, days_since_active, plan, host_app) FROM STDIN"
        ) as copy:
            for record in rows:
                copy.write_row(record)
    return len(rows)


def stored_evaluation(conninfo: str) -> dict[str, Any]:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT model_id, evaluation FROM analytics.churn_models ORDER BY model_id DESC LIMIT 1"
        ).fetchone()
    if row is None:
        raise ModelMissing("no churn model is stored yet: run `caret-otel churn train` first")
    return {"model_id": row[0], **row[1]}
