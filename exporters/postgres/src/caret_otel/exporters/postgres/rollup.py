"""Fold newly stored events into ``core.users`` and the daily rollups, exactly once.

The load transaction queues the keys of the events it inserted; a rollup transaction
takes queued batches off ``raw.rollup_batches`` and updates every rollup in the same
transaction, so an event is counted once however often it was delivered, and a crash
either keeps the keys queued or commits both.

Additive rollups (counts, sums, first/last times) use ``INSERT … ON CONFLICT DO
UPDATE``: the result does not depend on the order events arrive in. Non-additive ones
are rebuilt from the raw events of what the batch touched: sessions per (user, day),
tasks and feedback per (user, day) (distinct task ids), latency percentiles per (day,
provider, model). Late events are accepted only within
the raw window, so those raw events are always there.

One rollup transaction runs at a time per database (an advisory lock); deletions take
the same lock, so a deletion never interleaves with a rollup that read the user's rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

import psycopg

from caret_otel.semconv import attributes as attrs
from caret_otel.semconv import events

from .locks import ROLLUP_LOCK_KEY

log = logging.getLogger(__name__)

Connection = psycopg.Connection[Any]

SESSION_GAP: Final = timedelta(minutes=30)
"""A session ends after more than this without events (and at midnight UTC)."""
UNPAID_PLANS: Final = ("free",)
"""Plans that do not count as paying; any other plan on an event means the user pays."""
DEFAULT_BATCH: Final = 20
"""Load transactions (queued batches) folded in per rollup transaction."""
ROLLUP_TABLES: Final = (
    "agg.user_daily_activity",
    "agg.user_daily_region",
    "agg.user_daily_language",
    "agg.user_daily_feature",
    "agg.user_daily_usage",
    "agg.sessions",
    "agg.model_latency_daily",
    "agg.user_daily_tasks",
)

_PARAMS: Final = {
    "signed_up": events.CARET_USER_SIGNED_UP.name,
    "credits_purchased": events.CARET_CREDITS_PURCHASED.name,
    "api_error": events.CARET_TASK_PROVIDER_API_ERROR.name,
    "tokens": events.CARET_TASK_TOKENS.name,
    # events that are provider requests (successful or failed)
    "request_events": [
        events.CARET_TASK_TOKENS.name,
        events.CARET_TASK_PROVIDER_API_ERROR.name,
    ],
    # events whose credits are consumption (a purchase is not)
    "credit_events": [events.CARET_TASK_TOKENS.name, events.CARET_CREDITS_CONSUMED.name],
    # Caret 0.4.x reports usage on assistant turns (Cline 2026 on task.tokens; the gateway
    # drops a turn's usage when its task sent task.tokens: each request counted once).
    "turn": events.CARET_TASK_CONVERSATION_TURN.name,
    "cost_attribute": attrs.CARET_API_COST,
    # an MCP call is reported `started`, then `success`/`error`: one use, not two
    "tool_status": attrs.CARET_TOOL_STATUS,
    "call_started": "started",
    "usage_events": [
        events.CARET_TASK_TOKENS.name,
        events.CARET_TASK_CONVERSATION_TURN.name,
        events.CARET_TASK_PROVIDER_API_ERROR.name,
        events.CARET_CREDITS_CONSUMED.name,
    ],
    # the end of a browser-tool session closes the use its start opened: not a second use
    "closing_action": events.CARET_TASK_BROWSER_TOOL_END.action,
    "unpaid_plans": list(UNPAID_PLANS),
    "session_gap": SESSION_GAP,
    # agg.user_daily_tasks is rebuilt for the (day, user) pairs these events touch
    "task_events": [
        events.CARET_TASK_CREATED.name,
        events.CARET_TASK_COMPLETED.name,
        events.CARET_TASK_FEEDBACK.name,
    ],
}

_CREATE_BATCH: Final = (
    "CREATE TEMP TABLE rollup_batch ON COMMIT DROP AS SELECT * FROM raw.events WITH NO DATA"
)

_CLAIM: Final = """
WITH picked AS (
    SELECT batch_id FROM raw.rollup_batches
    ORDER BY batch_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), claimed AS (
    DELETE FROM raw.rollup_batches q USING picked p
    WHERE q.batch_id = p.batch_id
    RETURNING q.event_ids, q.event_tss
), keys AS (
    SELECT k.event_id, k.event_ts
    FROM claimed, unnest(claimed.event_ids, claimed.event_tss) AS k (event_id, event_ts)
)
INSERT INTO rollup_batch SELECT e.* FROM raw.events e JOIN keys USING (event_id, event_ts)
"""

_BATCH_MONTHS: Final = "SELECT DISTINCT date_trunc('month', day)::date FROM rollup_batch"

_USERS: Final = """
INSERT INTO core.users AS u (user_pseudonym, first_seen_at, last_seen_at, signup_at,
                             first_paid_at, plan, plan_at, plan_event_id,
                             country, country_at, country_event_id)
SELECT b.user_pseudonym, b.first_seen_at, b.last_seen_at, b.signup_at, b.first_paid_at,
       p.plan, p.event_ts, p.event_id, c.country, c.event_ts, c.event_id
FROM (
    SELECT user_pseudonym,
           min(event_ts) AS first_seen_at,
           max(event_ts) AS last_seen_at,
           min(event_ts) FILTER (WHERE event_name = %(signed_up)s) AS signup_at,
           min(event_ts) FILTER (WHERE event_name = %(credits_purchased)s
                                    OR plan <> ALL (%(unpaid_plans)s)) AS first_paid_at
    FROM rollup_batch WHERE user_pseudonym IS NOT NULL
    GROUP BY user_pseudonym
) b
LEFT JOIN (
    SELECT DISTINCT ON (user_pseudonym) user_pseudonym, plan, event_ts, event_id
    FROM rollup_batch WHERE user_pseudonym IS NOT NULL AND plan IS NOT NULL
    ORDER BY user_pseudonym, event_ts DESC, event_id DESC
) p USING (user_pseudonym)
LEFT JOIN (
    SELECT DISTINCT ON (user_pseudonym) user_pseudonym, country, event_ts, event_id
    FROM rollup_batch WHERE user_pseudonym IS NOT NULL AND country IS NOT NULL
    ORDER BY user_pseudonym, event_ts DESC, event_id DESC
) c USING (user_pseudonym)
ON CONFLICT (user_pseudonym) DO UPDATE SET
    first_seen_at = least(u.first_seen_at, excluded.first_seen_at),
    last_seen_at = greatest(u.last_seen_at, excluded.last_seen_at),
    signup_at = least(u.signup_at, excluded.signup_at),
    first_paid_at = least(u.first_paid_at, excluded.first_paid_at),
    -- the latest plan / country wins, by (event time, event id): order-independent
    (plan, plan_at, plan_event_id) = (
        SELECT CASE WHEN newer THEN excluded.plan ELSE u.plan END,
               CASE WHEN newer THEN excluded.plan_at ELSE u.plan_at END,
               CASE WHEN newer THEN excluded.plan_event_id ELSE u.plan_event_id END
        FROM (SELECT excluded.plan_at IS NOT NULL
                     AND (u.plan_at IS NULL
                          OR (excluded.plan_at, excluded.plan_event_id)
                             > (u.plan_at, u.plan_event_id)) AS newer) AS cmp),
    (country, country_at, country_event_id) = (
        SELECT CASE WHEN newer THEN excluded.country ELSE u.country END,
               CASE WHEN newer THEN excluded.country_at ELSE u.country_at END,
               CASE WHEN newer THEN excluded.country_event_id ELSE u.country_event_id END
        FROM (SELECT excluded.country_at IS NOT NULL
                     AND (u.country_at IS NULL
                          OR (excluded.country_at, excluded.country_event_id)
                             > (u.country_at, u.country_event_id)) AS newer) AS cmp)
"""

_ACTIVITY: Final = """
INSERT INTO agg.user_daily_activity AS a (day, user_pseudonym, events, first_event_at, last_event_at)
SELECT day, user_pseudonym, count(*), min(event_ts), max(event_ts)
FROM rollup_batch WHERE user_pseudonym IS NOT NULL
GROUP BY day, user_pseudonym
ON CONFLICT (day, user_pseudonym) DO UPDATE SET
    events = a.events + excluded.events,
    first_event_at = least(a.first_event_at, excluded.first_event_at),
    last_event_at = greatest(a.last_event_at, excluded.last_event_at)
"""

_REGION: Final = """
INSERT INTO agg.user_daily_region AS r (day, user_pseudonym, country, continent, events)
SELECT day, user_pseudonym, coalesce(country, 'unknown'), coalesce(continent, 'unknown'), count(*)
FROM rollup_batch WHERE user_pseudonym IS NOT NULL
GROUP BY 1, 2, 3, 4
ON CONFLICT (day, user_pseudonym, country, continent) DO UPDATE SET events = r.events + excluded.events
"""

_LANGUAGE: Final = """
INSERT INTO agg.user_daily_language AS l (day, user_pseudonym, language, events)
SELECT day, user_pseudonym, coalesce(language, 'unknown'), count(*)
FROM rollup_batch WHERE user_pseudonym IS NOT NULL
GROUP BY 1, 2, 3
ON CONFLICT (day, user_pseudonym, language) DO UPDATE SET events = l.events + excluded.events
"""

_FEATURE: Final = """
INSERT INTO agg.user_daily_feature AS f (day, user_pseudonym, feature, uses, events)
SELECT day, user_pseudonym, feature,
       count(*) FILTER (WHERE feature_action IS DISTINCT FROM %(closing_action)s
                        AND (attrs ->> %(tool_status)s) IS DISTINCT FROM %(call_started)s),
       count(*)
FROM rollup_batch WHERE user_pseudonym IS NOT NULL AND feature IS NOT NULL
GROUP BY 1, 2, 3
ON CONFLICT (day, user_pseudonym, feature) DO UPDATE SET
    uses = f.uses + excluded.uses,
    events = f.events + excluded.events
"""

_USAGE: Final = """
INSERT INTO agg.user_daily_usage AS u (day, user_pseudonym, plan, provider, model, events,
    requests, errors, tokens_in, tokens_out, tokens_cache_read, tokens_cache_write, credits,
    cost_usd)
SELECT day, user_pseudonym, coalesce(plan, 'unknown'), coalesce(provider, 'unknown'),
       coalesce(model, 'unknown'),
       count(*),
       count(*) FILTER (WHERE event_name = ANY (%(request_events)s)
                        OR (event_name = %(turn)s AND tokens_out IS NOT NULL)),
       count(*) FILTER (WHERE event_name = %(api_error)s),
       coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0),
       coalesce(sum(tokens_cache_read), 0), coalesce(sum(tokens_cache_write), 0),
       coalesce(sum(credits) FILTER (WHERE event_name = ANY (%(credit_events)s)), 0),
       coalesce(sum((attrs ->> %(cost_attribute)s)::numeric), 0)
FROM rollup_batch
WHERE user_pseudonym IS NOT NULL AND event_name = ANY (%(usage_events)s)
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (day, user_pseudonym, plan, provider, model) DO UPDATE SET
    events = u.events + excluded.events,
    requests = u.requests + excluded.requests,
    errors = u.errors + excluded.errors,
    tokens_in = u.tokens_in + excluded.tokens_in,
    tokens_out = u.tokens_out + excluded.tokens_out,
    tokens_cache_read = u.tokens_cache_read + excluded.tokens_cache_read,
    tokens_cache_write = u.tokens_cache_write + excluded.tokens_cache_write,
    credits = u.credits + excluded.credits,
    cost_usd = u.cost_usd + excluded.cost_usd
"""

_TOUCHED_USER_DAYS: Final = (
    "CREATE TEMP TABLE touched_user_days ON COMMIT DROP AS"
    " SELECT DISTINCT day, user_pseudonym FROM rollup_batch WHERE user_pseudonym IS NOT NULL"
)

_SESSIONS_DELETE: Final = """
DELETE FROM agg.sessions s USING touched_user_days t
WHERE s.day = t.day AND s.user_pseudonym = t.user_pseudonym
"""

_SESSIONS_REBUILD: Final = """
INSERT INTO agg.sessions (day, user_pseudonym, session_no, started_at, ended_at, events)
WITH day_events AS (
    SELECT e.day, e.user_pseudonym, e.event_ts
    FROM touched_user_days t
    JOIN raw.events e
      ON e.user_pseudonym = t.user_pseudonym
     AND e.event_ts >= t.day::timestamp AT TIME ZONE 'UTC'
     AND e.event_ts < (t.day + 1)::timestamp AT TIME ZONE 'UTC'
), marked AS (
    SELECT day, user_pseudonym, event_ts,
           CASE WHEN event_ts - lag(event_ts) OVER w <= %(session_gap)s THEN 0 ELSE 1 END AS starts
    FROM day_events
    WINDOW w AS (PARTITION BY day, user_pseudonym ORDER BY event_ts)
), numbered AS (
    SELECT day, user_pseudonym, event_ts,
           sum(starts) OVER (PARTITION BY day, user_pseudonym ORDER BY event_ts
                             ROWS UNBOUNDED PRECEDING) AS session_no
    FROM marked
)
SELECT day, user_pseudonym, session_no, min(event_ts), max(event_ts), count(*)
FROM numbered
GROUP BY day, user_pseudonym, session_no
"""

# Tasks and feedback per (user, day) count distinct task ids, so they are rebuilt from
# that day's raw events (migration 0014's function) like the sessions.
_TASKS_REBUILD: Final = """
SELECT agg.rebuild_user_daily_tasks(array_agg(day), array_agg(user_pseudonym))
FROM (SELECT DISTINCT day, user_pseudonym FROM rollup_batch
      WHERE user_pseudonym IS NOT NULL AND event_name = ANY (%(task_events)s)) touched
"""

_TOUCHED_MODEL_DAYS: Final = """
CREATE TEMP TABLE touched_model_days ON COMMIT DROP AS
SELECT DISTINCT day, coalesce(provider, 'unknown') AS provider, coalesce(model, 'unknown') AS model
FROM rollup_batch WHERE event_name = %(tokens)s AND latency_s IS NOT NULL
"""

_LATENCY_DELETE: Final = """
DELETE FROM agg.model_latency_daily l USING touched_model_days t
WHERE l.day = t.day AND l.provider = t.provider AND l.model = t.model
"""

_LATENCY_REBUILD: Final = """
INSERT INTO agg.model_latency_daily (day, provider, model, samples, p50_s, p95_s)
SELECT e.day, t.provider, t.model, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY e.latency_s),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY e.latency_s)
FROM touched_model_days t
JOIN raw.events e
  ON e.day = t.day
 AND coalesce(e.provider, 'unknown') = t.provider
 AND coalesce(e.model, 'unknown') = t.model
WHERE e.event_name = %(tokens)s AND e.latency_s IS NOT NULL
  -- bounds as parameters of the whole scan, so only the touched days' partitions are read
  AND e.event_ts >= (SELECT min(day) FROM touched_model_days)::timestamp AT TIME ZONE 'UTC'
  AND e.event_ts < (SELECT max(day) + 1 FROM touched_model_days)::timestamp AT TIME ZONE 'UTC'
GROUP BY e.day, t.provider, t.model
"""

_STATEMENTS: Final = (
    _USERS,
    _ACTIVITY,
    _REGION,
    _LANGUAGE,
    _FEATURE,
    _USAGE,
    _TOUCHED_USER_DAYS,
    _SESSIONS_DELETE,
    _SESSIONS_REBUILD,
    _TASKS_REBUILD,
    _TOUCHED_MODEL_DAYS,
    _LATENCY_DELETE,
    _LATENCY_REBUILD,
)


@dataclass(frozen=True)
class QueueState:
    depth: int
    """Events stored but not rolled up yet."""
    lag_seconds: float
    """Age of the oldest of them (0 when none)."""


def ensure_rollup_partitions(conn: Connection, months: set[date]) -> None:
    """Create the rollup partitions for ``months`` (outside any transaction)."""
    for month in sorted(months):
        for table in ROLLUP_TABLES:
            conn.execute("SELECT meta.ensure_partition(%s, %s)", (table, month))


def _queued_months(conn: Connection) -> set[date]:
    rows = conn.execute(
        "SELECT DISTINCT date_trunc('month', t AT TIME ZONE 'UTC')::date"
        " FROM raw.rollup_batches, unnest(event_tss) AS t"
    ).fetchall()
    return {row[0] for row in rows}


def roll_up_batch(conn: Connection, *, limit: int = DEFAULT_BATCH) -> int | None:
    """Roll up at most ``limit`` queued load batches in one transaction.

    Returns the number of events rolled up, or None when another session holds the
    rollup lock (it is doing the work). ``conn`` must be in autocommit mode.
    """
    ensure_rollup_partitions(conn, _queued_months(conn))
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (ROLLUP_LOCK_KEY,))
        row = locked.fetchone()
        if row is None or not row[0]:
            return None
        conn.execute(_CREATE_BATCH)
        claimed = conn.execute(_CLAIM, {"limit": limit}).rowcount
        if claimed <= 0:
            return 0
        months = {r[0] for r in conn.execute(_BATCH_MONTHS).fetchall()}
        if not months <= _existing_months(conn):
            # Events queued after the check above touch a new month: create its
            # partitions in their own transaction and retry.
            raise _NeedPartitions(months)
        for statement in _STATEMENTS:
            conn.execute(statement, _PARAMS if "%(" in statement else None)
        return claimed


def _existing_months(conn: Connection) -> set[date]:
    rows = conn.execute(
        "SELECT to_date(substring(c.relname FROM '_p([0-9]{6})$'), 'YYYYMM')"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'agg.sessions'::regclass"
    ).fetchall()
    return {row[0] for row in rows if row[0] is not None}


class _NeedPartitions(Exception):
    def __init__(self, months: set[date]) -> None:
        super().__init__(f"rollup partitions missing for {sorted(months)}")
        self.months = months


def roll_up(conn: Connection, *, limit: int = DEFAULT_BATCH, max_batches: int | None = None) -> int:
    """Roll up queued events batch by batch until the queue is empty (or ``max_batches``
    ran, or another session holds the lock); return the number of events handled."""
    total = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        try:
            handled = roll_up_batch(conn, limit=limit)
        except _NeedPartitions as missing:
            ensure_rollup_partitions(conn, missing.months)
            continue
        if not handled:
            break
        total += handled
        batches += 1
    return total


def queue_state(conn: Connection, now: datetime | None = None) -> QueueState:
    row = conn.execute(
        "SELECT coalesce(sum(cardinality(event_ids)), 0),"
        " extract(epoch FROM coalesce(%s, now()) - min(enqueued_at))"
        " FROM raw.rollup_batches",
        (now,),
    ).fetchone()
    assert row is not None
    depth, lag = row
    return QueueState(depth=int(depth), lag_seconds=max(float(lag or 0.0), 0.0))
