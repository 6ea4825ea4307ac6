-- Real Caret clients (issue 15).
--
-- 1. Identity link. A Cline/Caret client's distinct id is the machine id until login and
--    the account id after it (mid-session). The gateway puts the machine's pseudonym on
--    an event as `caret.device.id` when it differs from the event's user pseudonym (a
--    Cline 2026 `device_id`, or the session's earlier pseudonym for Caret 0.4.x). Every
--    load statement into raw.events records the pair here (both pseudonyms, never a raw
--    id), in both directions, so `forget` of either side (privacy.forget_user deletes by
--    user_pseudonym) removes the link: a trigger deletes the mirror row with it.
--    Active users, retention and sessions count a person once: core.person_of maps a
--    machine pseudonym to the account it logged into.
-- 2. Cost: agg.user_daily_usage gains cost_usd (the client's reported cost, each
--    provider request counted once: the gateway's token rule).
-- 3. Analyst views: host app / OS usage, feedback per model, checkpoint and mode use,
--    provider error rates by status.

CREATE TABLE core.identity_links (
    user_pseudonym   text        NOT NULL,
    linked_pseudonym text        NOT NULL,
    side             text        NOT NULL CHECK (side IN ('device', 'account')),
    first_seen_at    timestamptz NOT NULL,
    PRIMARY KEY (user_pseudonym, linked_pseudonym)
);
CREATE INDEX identity_links_linked ON core.identity_links (linked_pseudonym);
COMMENT ON TABLE core.identity_links IS
    'Machine pseudonym <-> account pseudonym of one person (both directions); side = what user_pseudonym is.';

CREATE FUNCTION core.drop_mirror_link() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM core.identity_links
    WHERE user_pseudonym = OLD.linked_pseudonym AND linked_pseudonym = OLD.user_pseudonym;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION core.drop_mirror_link() FROM PUBLIC;
CREATE TRIGGER drop_mirror_link AFTER DELETE ON core.identity_links
    FOR EACH ROW EXECUTE FUNCTION core.drop_mirror_link();

CREATE FUNCTION raw.record_identity_links() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO core.identity_links (user_pseudonym, linked_pseudonym, side, first_seen_at)
    SELECT l.user_pseudonym, l.linked_pseudonym, l.side, min(l.event_ts)
    FROM (
        SELECT attrs ->> 'caret.device.id' AS user_pseudonym, user_pseudonym AS linked_pseudonym,
               'device' AS side, event_ts
        FROM linked_events
        WHERE attrs ? 'caret.device.id' AND user_pseudonym IS NOT NULL
          AND attrs ->> 'caret.device.id' <> user_pseudonym
        UNION ALL
        SELECT user_pseudonym, attrs ->> 'caret.device.id', 'account', event_ts
        FROM linked_events
        WHERE attrs ? 'caret.device.id' AND user_pseudonym IS NOT NULL
          AND attrs ->> 'caret.device.id' <> user_pseudonym
    ) l
    WHERE NOT EXISTS (
        SELECT 1 FROM privacy.forgotten_pseudonyms f
        WHERE f.digest IN (encode(sha256(convert_to(l.user_pseudonym, 'UTF8')), 'hex'),
                           encode(sha256(convert_to(l.linked_pseudonym, 'UTF8')), 'hex')))
    GROUP BY l.user_pseudonym, l.linked_pseudonym, l.side
    ON CONFLICT (user_pseudonym, linked_pseudonym) DO UPDATE
        SET first_seen_at = least(core.identity_links.first_seen_at, excluded.first_seen_at);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION raw.record_identity_links() FROM PUBLIC;
CREATE TRIGGER record_identity_links
    AFTER INSERT ON raw.events
    REFERENCING NEW TABLE AS linked_events
    FOR EACH STATEMENT EXECUTE FUNCTION raw.record_identity_links();

-- A machine counts as the account it logged into (the first account, if several).
CREATE VIEW core.person_of AS
SELECT DISTINCT ON (user_pseudonym) user_pseudonym, linked_pseudonym AS person_pseudonym
FROM core.identity_links
WHERE side = 'device'
ORDER BY user_pseudonym, first_seen_at, linked_pseudonym;

CREATE VIEW core.person_daily_activity AS
SELECT a.day, coalesce(p.person_pseudonym, a.user_pseudonym) AS user_pseudonym,
       sum(a.events)::bigint AS events
FROM agg.user_daily_activity a
LEFT JOIN core.person_of p USING (user_pseudonym)
GROUP BY 1, 2;

CREATE VIEW core.persons AS
SELECT coalesce(p.person_pseudonym, u.user_pseudonym) AS user_pseudonym,
       min(u.first_seen_at) AS first_seen_at
FROM core.users u
LEFT JOIN core.person_of p USING (user_pseudonym)
GROUP BY 1;

ALTER TABLE agg.user_daily_usage ADD COLUMN cost_usd numeric NOT NULL DEFAULT 0;

CREATE OR REPLACE VIEW analytics.active_users AS
WITH cutoff AS (
    SELECT analytics.as_of() AS as_of
), bounds AS (
    SELECT min(a.day) AS first_day, max(a.day) AS last_day
    FROM core.person_daily_activity a, cutoff
    WHERE a.day <= cutoff.as_of
), days AS (
    SELECT d::date AS day
    FROM bounds, generate_series(bounds.first_day::timestamp, bounds.last_day::timestamp, interval '1 day') AS d
), daily AS (
    SELECT day, count(*) AS dau FROM core.person_daily_activity GROUP BY day
), windows AS (
    SELECT d.day,
           count(DISTINCT a.user_pseudonym) FILTER (WHERE a.day > d.day - 7) AS wau,
           count(DISTINCT a.user_pseudonym) AS mau
    FROM days d
    JOIN core.person_daily_activity a ON a.day BETWEEN d.day - 27 AND d.day
    GROUP BY d.day
), newcomers AS (
    SELECT (first_seen_at AT TIME ZONE 'UTC')::date AS day, count(*) AS new_users
    FROM core.persons GROUP BY 1
)
SELECT d.day,
       coalesce(daily.dau, 0)::bigint AS dau,
       coalesce(w.wau, 0)::bigint AS wau,
       coalesce(w.mau, 0)::bigint AS mau,
       CASE WHEN w.mau > 0 THEN round(coalesce(daily.dau, 0)::numeric / w.mau, 4) END AS stickiness,
       coalesce(n.new_users, 0)::bigint AS new_users,
       d.day < (SELECT as_of FROM cutoff) AS complete
FROM days d
LEFT JOIN daily USING (day)
LEFT JOIN windows w USING (day)
LEFT JOIN newcomers n USING (day)
ORDER BY d.day;

CREATE OR REPLACE VIEW analytics.retention AS
WITH cutoff AS (
    SELECT analytics.as_of() AS as_of
), members AS (
    SELECT g.granularity,
           analytics.period_start(g.granularity, (u.first_seen_at AT TIME ZONE 'UTC')::date) AS cohort_start,
           u.user_pseudonym
    FROM core.persons u
    CROSS JOIN (VALUES ('day'), ('week')) AS g (granularity)
), cohorts AS (
    SELECT granularity, cohort_start, count(*) AS cohort_size
    FROM members GROUP BY granularity, cohort_start
), user_periods AS (
    SELECT DISTINCT m.granularity, m.cohort_start, m.user_pseudonym,
           CASE m.granularity
               WHEN 'day' THEN a.day - m.cohort_start
               ELSE (analytics.period_start('week', a.day) - m.cohort_start) / 7
           END AS period
    FROM members m
    JOIN core.person_daily_activity a ON a.user_pseudonym = m.user_pseudonym
    CROSS JOIN cutoff
    WHERE a.day >= m.cohort_start AND a.day < cutoff.as_of
), retained AS (
    SELECT granularity, cohort_start, period, count(*) AS retained
    FROM user_periods GROUP BY granularity, cohort_start, period
), last_periods AS (
    SELECT granularity, cohort_start, user_pseudonym, max(period) AS last_period
    FROM user_periods GROUP BY granularity, cohort_start, user_pseudonym
), grid AS (
    SELECT c.granularity, c.cohort_start, c.cohort_size, n AS period
    FROM cohorts c
    CROSS JOIN cutoff
    CROSS JOIN LATERAL generate_series(
        0,
        CASE c.granularity
            WHEN 'day' THEN least(90, cutoff.as_of - c.cohort_start - 1)
            ELSE least(52, (cutoff.as_of - c.cohort_start) / 7 - 1)
        END) AS n
), on_or_after AS (
    SELECT g.granularity, g.cohort_start, g.period, count(l.user_pseudonym) AS retained_on_or_after
    FROM grid g
    LEFT JOIN last_periods l
        ON l.granularity = g.granularity AND l.cohort_start = g.cohort_start
       AND l.last_period >= g.period
    GROUP BY g.granularity, g.cohort_start, g.period
)
SELECT g.granularity,
       g.cohort_start,
       g.period,
       g.cohort_size,
       coalesce(r.retained, 0) AS retained,
       round(coalesce(r.retained, 0)::numeric / g.cohort_size, 4) AS rate,
       o.retained_on_or_after,
       round(o.retained_on_or_after::numeric / g.cohort_size, 4) AS rate_on_or_after
FROM grid g
LEFT JOIN retained r USING (granularity, cohort_start, period)
JOIN on_or_after o USING (granularity, cohort_start, period)
ORDER BY g.granularity, g.cohort_start, g.period;

CREATE OR REPLACE VIEW analytics.sessions_daily AS
SELECT day,
       count(*) AS sessions,
       count(DISTINCT user_pseudonym) AS users,
       sum(events)::bigint AS events,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY length_s)::numeric, 1) AS p50_length_s,
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY length_s)::numeric, 1) AS p90_length_s,
       round(avg(length_s)::numeric, 1) AS avg_length_s,
       count(*) FILTER (WHERE events = 1) AS single_event_sessions
FROM (
    SELECT s.day, coalesce(p.person_pseudonym, s.user_pseudonym) AS user_pseudonym, s.events,
           extract(epoch FROM s.ended_at - s.started_at) AS length_s
    FROM agg.sessions s
    LEFT JOIN core.person_of p USING (user_pseudonym)
    WHERE s.day <= analytics.as_of()
) s
GROUP BY day
ORDER BY day;

-- Usage by editor (host app) and OS family, from the raw tier (30 days).
CREATE VIEW analytics.host_app_daily AS
SELECT e.day,
       coalesce(e.platform, 'unknown') AS host_app,
       coalesce(e.attrs ->> 'os.type', 'unknown') AS os_family,
       count(DISTINCT coalesce(p.person_pseudonym, e.user_pseudonym)) AS users,
       count(*) AS events
FROM raw.events e
LEFT JOIN core.person_of p USING (user_pseudonym)
WHERE e.day <= analytics.as_of()
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- Thumbs up/down per model: a feedback event names its task; the task's model is the
-- one of its latest turn or creation.
CREATE VIEW analytics.feedback_by_model AS
WITH task_model AS (
    SELECT DISTINCT ON (attrs ->> 'caret.task.id') attrs ->> 'caret.task.id' AS task, provider, model
    FROM raw.events
    WHERE attrs ? 'caret.task.id' AND model IS NOT NULL
    ORDER BY attrs ->> 'caret.task.id', event_ts DESC
)
SELECT f.day,
       coalesce(t.provider, 'unknown') AS provider,
       coalesce(t.model, 'unknown') AS model,
       count(*) FILTER (WHERE f.attrs ->> 'caret.feedback.type' = 'thumbs_up') AS thumbs_up,
       count(*) FILTER (WHERE f.attrs ->> 'caret.feedback.type' = 'thumbs_down') AS thumbs_down,
       round(count(*) FILTER (WHERE f.attrs ->> 'caret.feedback.type' = 'thumbs_up')::numeric
             / count(*), 4) AS thumbs_up_rate
FROM raw.events f
LEFT JOIN task_model t ON t.task = f.attrs ->> 'caret.task.id'
WHERE f.event_name = 'caret.task.feedback' AND f.day <= analytics.as_of()
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- Checkpoint operations and plan/act switches.
CREATE VIEW analytics.checkpoint_mode_daily AS
SELECT e.day,
       e.feature,
       coalesce(e.attrs ->> 'caret.detail', e.attrs ->> 'caret.task.mode', 'unknown') AS action,
       count(*) AS uses,
       count(DISTINCT coalesce(p.person_pseudonym, e.user_pseudonym)) AS users
FROM raw.events e
LEFT JOIN core.person_of p USING (user_pseudonym)
WHERE e.event_name IN ('caret.task.checkpoint', 'caret.task.mode_switched')
  AND e.day <= analytics.as_of()
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- Provider error rate by provider, model and HTTP status: errors (task.provider_api_error,
-- and extension.error / extension.message that carry a status or provider) over requests
-- (assistant turns: one per provider request, in both client shapes) plus errors.
CREATE VIEW analytics.provider_errors_daily AS
WITH errors AS (
    SELECT day, coalesce(provider, 'unknown') AS provider, coalesce(model, 'unknown') AS model,
           coalesce(attrs ->> 'http.response.status_code', 'unknown') AS status,
           coalesce(error_type, 'unknown') AS error_type, count(*) AS errors
    FROM raw.events
    WHERE (event_name = 'caret.task.provider_api_error'
           OR (event_name = 'caret.extension.error'
               AND (attrs ? 'http.response.status_code' OR provider IS NOT NULL)))
      AND day <= analytics.as_of()
    GROUP BY 1, 2, 3, 4, 5
), requests AS (
    SELECT day, coalesce(provider, 'unknown') AS provider, coalesce(model, 'unknown') AS model,
           count(*) AS requests
    FROM raw.events
    WHERE event_name = 'caret.task.conversation_turn'
      AND attrs ->> 'caret.task.turn.source' = 'assistant'
      AND day <= analytics.as_of()
    GROUP BY 1, 2, 3
)
SELECT e.day, e.provider, e.model, e.status, e.error_type, e.errors,
       coalesce(r.requests, 0) AS requests,
       round(e.errors::numeric / (coalesce(r.requests, 0) + sum(e.errors) OVER w), 4) AS error_rate
FROM errors e
LEFT JOIN requests r USING (day, provider, model)
WINDOW w AS (PARTITION BY e.day, e.provider, e.model)
ORDER BY 1, 2, 3, 4, 5;
