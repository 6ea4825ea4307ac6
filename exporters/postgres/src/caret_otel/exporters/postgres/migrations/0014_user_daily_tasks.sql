-- Tasks and feedback per user and day (issue 19: the churn model's task completion rate
-- and thumbs-down share need them for longer than the raw tier's 30 days), and the plan
-- and host app of each churn score (the dashboard's segments). docs/data-dictionary.md
-- and docs/churn.md define every column.

-- One row per (UTC day, user) with a task or feedback event that day; kept a year with
-- the other daily rollups. Rebuilt from that day's raw events whenever the day receives
-- task or feedback events (as agg.sessions is), so a task counts once however often the
-- client reports it: Cline/Caret sends task.completed on every attempt_completion, again
-- when the user continues the task.
CREATE TABLE agg.user_daily_tasks (
    day                date   NOT NULL,
    user_pseudonym     text   NOT NULL,
    -- the host app (client platform) of most of the day's task and feedback events
    host_app           text   NOT NULL,
    -- distinct task ids (an event without one counts alone)
    tasks_created      bigint NOT NULL,
    -- tasks that ended successfully: caret.task.completed with outcome success, or with no
    -- outcome (Cline/Caret 0.4.x sends it on attempt_completion only)
    tasks_completed    bigint NOT NULL,
    -- tasks that ended otherwise (outcome cancelled, abandoned, error, ...)
    tasks_unsuccessful bigint NOT NULL,
    thumbs_up          bigint NOT NULL,
    thumbs_down        bigint NOT NULL,
    PRIMARY KEY (day, user_pseudonym)
) PARTITION BY RANGE (day);
COMMENT ON TABLE agg.user_daily_tasks IS
    'Per user and day: host app, tasks created / completed / ended unsuccessfully (distinct task ids), thumbs up and down; kept a year.';

INSERT INTO meta.partitioned_tables (table_name, granularity, retention_key) VALUES
    ('agg.user_daily_tasks', 'month', 'aggregates_days');

-- Rebuild the rows of the given (day, user) pairs from the raw events. The rollup job
-- calls it (under the rollup lock, in the transaction that folds a batch in) with the
-- pairs its batch touched; it runs with the caller's rights.
CREATE FUNCTION agg.rebuild_user_daily_tasks(days date[], users text[]) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    written bigint;
BEGIN
    DELETE FROM agg.user_daily_tasks t
    USING unnest(days, users) AS k (day, user_pseudonym)
    WHERE t.day = k.day AND t.user_pseudonym = k.user_pseudonym;
    INSERT INTO agg.user_daily_tasks (day, user_pseudonym, host_app, tasks_created,
        tasks_completed, tasks_unsuccessful, thumbs_up, thumbs_down)
    SELECT k.day, k.user_pseudonym,
           coalesce(mode() WITHIN GROUP (ORDER BY e.platform), 'unknown'),
           count(DISTINCT coalesce(e.attrs ->> 'caret.task.id', e.event_id))
               FILTER (WHERE e.event_name = 'caret.task.created'),
           count(DISTINCT coalesce(e.attrs ->> 'caret.task.id', e.event_id))
               FILTER (WHERE e.event_name = 'caret.task.completed'
                         AND coalesce(e.attrs ->> 'caret.task.outcome', 'success') = 'success'),
           count(DISTINCT coalesce(e.attrs ->> 'caret.task.id', e.event_id))
               FILTER (WHERE e.event_name = 'caret.task.completed'
                         AND coalesce(e.attrs ->> 'caret.task.outcome', 'success') <> 'success'),
           count(*) FILTER (WHERE e.event_name = 'caret.task.feedback'
                              AND e.attrs ->> 'caret.feedback.type' = 'thumbs_up'),
           count(*) FILTER (WHERE e.event_name = 'caret.task.feedback'
                              AND e.attrs ->> 'caret.feedback.type' = 'thumbs_down')
    FROM (SELECT DISTINCT u.day, u.user_pseudonym
          FROM unnest(days, users) AS u (day, user_pseudonym)) k
    JOIN raw.events e
      ON e.user_pseudonym = k.user_pseudonym
     AND e.event_ts >= k.day::timestamp AT TIME ZONE 'UTC'
     AND e.event_ts < (k.day + 1)::timestamp AT TIME ZONE 'UTC'
    WHERE e.event_name IN ('caret.task.created', 'caret.task.completed', 'caret.task.feedback')
    GROUP BY k.day, k.user_pseudonym;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;
REVOKE ALL ON FUNCTION agg.rebuild_user_daily_tasks(date[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agg.rebuild_user_daily_tasks(date[], text[]) TO caret_writer;
COMMENT ON FUNCTION agg.rebuild_user_daily_tasks(date[], text[]) IS
    'Rebuilds agg.user_daily_tasks for the given (day, user) pairs from raw.events.';

-- Backfill what the raw tier still holds, under the rollup lock (locks.ROLLUP_LOCK_KEY)
-- so no rollup interleaves; events still queued are rebuilt again when rolled up.
SELECT pg_advisory_xact_lock(27973166650643020);
SELECT meta.ensure_partition('agg.user_daily_tasks', m.month)
FROM (SELECT DISTINCT date_trunc('month', day)::date AS month FROM raw.events) m;
SELECT agg.rebuild_user_daily_tasks(array_agg(t.day), array_agg(t.user_pseudonym))
FROM (
    SELECT DISTINCT day, user_pseudonym FROM raw.events
    WHERE user_pseudonym IS NOT NULL
      AND event_name IN ('caret.task.created', 'caret.task.completed', 'caret.task.feedback')
) t;

-- ---------------------------------------------------------------------------------
-- Churn scores carry the user's plan (core.users: the latest seen) and host app (of the
-- user's latest day in agg.user_daily_tasks before the score day) when scored, so the
-- dashboard can show where the risk is.
ALTER TABLE agg.churn_scores
    ADD COLUMN plan     text NOT NULL DEFAULT 'unknown',
    ADD COLUMN host_app text NOT NULL DEFAULT 'unknown';

CREATE OR REPLACE VIEW analytics.churn_scores AS
SELECT s.score_day, s.user_pseudonym, s.probability, s.risk_decile, s.days_since_active,
       s.model_id, s.scored_at, s.plan, s.host_app
FROM agg.churn_scores s;
