-- Sessions across login (issue 15).
--
-- A real client's distinct id is the machine id until login and the account id after
-- it, in the same session: agg.sessions (rebuilt per user pseudonym and day) then holds
-- one session under the machine's pseudonym up to the login and one under the account's
-- after it. analytics.sessions_daily (0011) mapped both to the person but still counted
-- two sessions, each with part of the length. Here the sessions of one person and day
-- are merged again by the session rule itself: sorted by start, a session continues the
-- one before it when it starts at most the session gap (30 minutes, as the rollup's
-- SESSION_GAP; analytics.session_gap() says it once for SQL) after the latest end so
-- far. That is exactly the session the person's events of both pseudonyms make
-- together: one session, its length from the first to the last event across both,
-- its events summed. analytics.path_transitions and analytics.session_edges follow a
-- session id by person too (below). Only these are redefined, with the same columns.

CREATE FUNCTION analytics.session_gap() RETURNS interval
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT interval '30 minutes'
$$;
COMMENT ON FUNCTION analytics.session_gap() IS
    'A session ends after more than this without events (the rollup''s SESSION_GAP).';
GRANT EXECUTE ON FUNCTION analytics.session_gap() TO caret_analyst, caret_writer;

CREATE OR REPLACE VIEW analytics.sessions_daily AS
WITH person_sessions AS (
    SELECT s.day, coalesce(p.person_pseudonym, s.user_pseudonym) AS user_pseudonym,
           s.started_at, s.ended_at, s.events
    FROM agg.sessions s
    LEFT JOIN core.person_of p USING (user_pseudonym)
    WHERE s.day <= analytics.as_of()
), marked AS (
    SELECT day, user_pseudonym, started_at, ended_at, events,
           CASE WHEN started_at - max(ended_at) OVER w <= analytics.session_gap()
                THEN 0 ELSE 1 END AS starts
    FROM person_sessions
    WINDOW w AS (PARTITION BY day, user_pseudonym ORDER BY started_at, ended_at
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
), numbered AS (
    SELECT day, user_pseudonym, started_at, ended_at, events,
           sum(starts) OVER (PARTITION BY day, user_pseudonym ORDER BY started_at, ended_at
                             ROWS UNBOUNDED PRECEDING) AS session_no
    FROM marked
), merged AS (
    SELECT day, user_pseudonym, sum(events)::bigint AS events,
           extract(epoch FROM max(ended_at) - min(started_at)) AS length_s
    FROM numbered
    GROUP BY day, user_pseudonym, session_no
)
SELECT day,
       count(*) AS sessions,
       count(DISTINCT user_pseudonym) AS users,
       sum(events)::bigint AS events,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY length_s)::numeric, 1) AS p50_length_s,
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY length_s)::numeric, 1) AS p90_length_s,
       round(avg(length_s)::numeric, 1) AS avg_length_s,
       count(*) FILTER (WHERE events = 1) AS single_event_sessions
FROM merged
GROUP BY day
ORDER BY day;

-- Paths and session edges (0013) follow a session by user and session id: the same
-- session id under the machine's and then the account's pseudonym was two sessions,
-- the one before the login ending in '(end)'. They follow it by person now (only these
-- two are redefined, same columns; the funnel's `session` unit is unchanged).
CREATE OR REPLACE VIEW analytics.path_transitions AS
WITH ordered AS (
    SELECT (e.event_ts AT TIME ZONE 'UTC')::date AS day, e.event_name,
           lead(e.event_name) OVER (PARTITION BY coalesce(p.person_pseudonym, e.user_pseudonym),
                                                 e.session_id
                                    ORDER BY e.event_ts, e.event_id) AS next_event_name
    FROM raw.events e
    LEFT JOIN core.person_of p ON p.user_pseudonym = e.user_pseudonym
    WHERE e.user_pseudonym IS NOT NULL AND e.session_id IS NOT NULL
)
SELECT day, event_name, coalesce(next_event_name, '(end)') AS next_event_name,
       count(*) AS transitions
FROM ordered
GROUP BY day, event_name, coalesce(next_event_name, '(end)');

CREATE OR REPLACE FUNCTION analytics.session_edges(
    from_ts timestamptz, to_ts timestamptz, ignore_events text[] DEFAULT '{}'
) RETURNS TABLE (edge text, event_name text, sessions bigint, share numeric)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH person_events AS (
        SELECT coalesce(p.person_pseudonym, e.user_pseudonym) AS person, e.session_id,
               e.event_name, e.event_ts, e.event_id
        FROM raw.events e
        LEFT JOIN core.person_of p ON p.user_pseudonym = e.user_pseudonym
        WHERE e.event_ts >= from_ts AND e.event_ts < to_ts
          AND e.user_pseudonym IS NOT NULL AND e.session_id IS NOT NULL
          AND e.event_name <> ALL (coalesce(ignore_events, '{}'))
    ), kept AS (
        SELECT event_name,
               row_number() OVER w_first AS from_start,
               row_number() OVER w_last AS from_end
        FROM person_events
        WINDOW w_first AS (PARTITION BY person, session_id ORDER BY event_ts, event_id),
               w_last AS (PARTITION BY person, session_id ORDER BY event_ts DESC, event_id DESC)
    ), edges AS (
        SELECT 'opening' AS edge, event_name FROM kept WHERE from_start = 1
        UNION ALL
        SELECT 'ending', event_name FROM kept WHERE from_end = 1
    )
    SELECT edge, event_name, count(*) AS sessions,
           round(count(*)::numeric / sum(count(*)) OVER (PARTITION BY edge), 4) AS share
    FROM edges
    GROUP BY edge, event_name
    ORDER BY edge, sessions DESC, event_name
$$;
