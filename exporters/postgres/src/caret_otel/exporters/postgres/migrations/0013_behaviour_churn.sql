-- Behaviour analysis (funnels, paths, feature adoption) and churn scores.
-- docs/data-dictionary.md ("Behaviour: funnels, paths, feature adoption") and
-- docs/churn.md define every column.

-- ---------------------------------------------------------------------------------
-- Funnels: ordered steps within a conversion window, per user, per session or per
-- unit named by an attribute (a task), optionally broken down by a dimension.
--
-- steps: a JSON array of {"event": <event name>, "where": {<column>: <value>, ...}};
-- the "where" keys are columns of raw.events that hold no identifier (provider, model,
-- feature, feature_action, platform, language, plan, client_version, country,
-- error_type). Each unit's path is greedy: step 1 is its first matching event in
-- [from_ts, to_ts); step k is its first matching event after step k-1 (by time, then
-- event id) and no later than step 1 + conversion_window. The breakdown value is the
-- unit's value on its step-1 event. The analyst role calls it; it returns counts only.
CREATE FUNCTION analytics.funnel(
    steps             jsonb,
    conversion_window interval,
    from_ts           timestamptz,
    to_ts             timestamptz,
    breakdown         text DEFAULT NULL,
    unit              text DEFAULT 'user',
    unit_attribute    text DEFAULT NULL
) RETURNS TABLE (
    breakdown_value            text,
    step                       integer,
    event_name                 text,
    units                      bigint,
    conversion_from_first      numeric,
    conversion_from_previous   numeric,
    drop_off                   bigint,
    median_seconds_from_previous double precision
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    allowed_keys constant text[] := ARRAY['provider', 'model', 'feature', 'feature_action',
        'platform', 'language', 'plan', 'client_version', 'country', 'error_type'];
    bad_key text;
BEGIN
    IF jsonb_typeof(steps) IS DISTINCT FROM 'array' OR jsonb_array_length(steps) < 2
       OR jsonb_array_length(steps) > 20 THEN
        RAISE EXCEPTION 'steps: a JSON array of 2 to 20 steps is needed'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(steps) s
               WHERE jsonb_typeof(s->'event') IS DISTINCT FROM 'string'
                  OR (s ? 'where' AND jsonb_typeof(s->'where') <> 'object')) THEN
        RAISE EXCEPTION 'steps: every step needs an "event" string and an optional "where" object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT k INTO bad_key
    FROM jsonb_array_elements(steps) s, jsonb_object_keys(coalesce(s->'where', '{}')) k
    WHERE k <> ALL (allowed_keys) LIMIT 1;
    IF bad_key IS NOT NULL THEN
        RAISE EXCEPTION 'steps.where: unknown filter column (allowed: %)', array_to_string(allowed_keys, ', ')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF breakdown IS NOT NULL AND breakdown <> ALL (allowed_keys) THEN
        RAISE EXCEPTION 'breakdown: unknown dimension (allowed: %)', array_to_string(allowed_keys, ', ')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF unit NOT IN ('user', 'session', 'attribute') OR (unit = 'attribute') <> (unit_attribute IS NOT NULL) THEN
        RAISE EXCEPTION 'unit: one of user, session, attribute (attribute needs unit_attribute)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF conversion_window IS NULL OR conversion_window <= interval '0' OR from_ts IS NULL
       OR to_ts IS NULL OR to_ts <= from_ts THEN
        RAISE EXCEPTION 'conversion_window, from_ts, to_ts: a positive window and from_ts < to_ts are needed'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    RETURN QUERY
    WITH RECURSIVE spec AS (
        SELECT (s.ordinality)::integer AS k, s.value->>'event' AS name,
               coalesce(s.value->'where', '{}'::jsonb) AS filter
        FROM jsonb_array_elements(steps) WITH ORDINALITY AS s
    ), candidate AS (
        SELECT sp.k,
               e.user_pseudonym || E'\x1f' || CASE unit
                   WHEN 'user' THEN ''
                   WHEN 'session' THEN e.session_id
                   ELSE e.attrs->>unit_attribute END AS unit_id,
               e.event_ts, e.event_id,
               CASE breakdown
                   WHEN 'provider' THEN e.provider WHEN 'model' THEN e.model
                   WHEN 'feature' THEN e.feature WHEN 'feature_action' THEN e.feature_action
                   WHEN 'platform' THEN e.platform WHEN 'language' THEN e.language
                   WHEN 'plan' THEN e.plan WHEN 'client_version' THEN e.client_version
                   WHEN 'country' THEN e.country WHEN 'error_type' THEN e.error_type
               END AS dim
        FROM raw.events e
        JOIN spec sp ON sp.name = e.event_name
        WHERE e.event_ts >= from_ts AND e.event_ts < to_ts
          AND e.user_pseudonym IS NOT NULL
          AND (unit <> 'session' OR e.session_id IS NOT NULL)
          AND (unit <> 'attribute' OR e.attrs->>unit_attribute IS NOT NULL)
          AND (NOT sp.filter ? 'provider' OR e.provider = sp.filter->>'provider')
          AND (NOT sp.filter ? 'model' OR e.model = sp.filter->>'model')
          AND (NOT sp.filter ? 'feature' OR e.feature = sp.filter->>'feature')
          AND (NOT sp.filter ? 'feature_action' OR e.feature_action = sp.filter->>'feature_action')
          AND (NOT sp.filter ? 'platform' OR e.platform = sp.filter->>'platform')
          AND (NOT sp.filter ? 'language' OR e.language = sp.filter->>'language')
          AND (NOT sp.filter ? 'plan' OR e.plan = sp.filter->>'plan')
          AND (NOT sp.filter ? 'client_version' OR e.client_version = sp.filter->>'client_version')
          AND (NOT sp.filter ? 'country' OR e.country = sp.filter->>'country')
          AND (NOT sp.filter ? 'error_type' OR e.error_type = sp.filter->>'error_type')
    ), chain AS (
        (SELECT DISTINCT ON (c.unit_id) c.unit_id, 1 AS k, c.event_ts AS first_ts,
                c.event_ts, c.event_id, coalesce(c.dim, 'unknown') AS dim,
                NULL::double precision AS seconds
         FROM candidate c WHERE c.k = 1
         ORDER BY c.unit_id, c.event_ts, c.event_id)
        UNION ALL
        SELECT ch.unit_id, ch.k + 1, ch.first_ts, nxt.event_ts, nxt.event_id, ch.dim,
               extract(epoch FROM nxt.event_ts - ch.event_ts)::double precision
        FROM chain ch
        CROSS JOIN LATERAL (
            SELECT c.event_ts, c.event_id FROM candidate c
            WHERE c.unit_id = ch.unit_id AND c.k = ch.k + 1
              AND (c.event_ts, c.event_id) > (ch.event_ts, ch.event_id)
              AND c.event_ts <= ch.first_ts + conversion_window
            ORDER BY c.event_ts, c.event_id LIMIT 1
        ) nxt
    ), dims AS (
        -- every breakdown value seen on a step-1 event, and the total ('all')
        SELECT DISTINCT ch.dim FROM chain ch WHERE breakdown IS NOT NULL
        UNION SELECT 'all'
    ), reached AS (
        SELECT CASE WHEN grouping(ch.dim) = 1 THEN 'all' ELSE ch.dim END AS dim, ch.k,
               count(*) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY ch.seconds) AS median_s
        FROM chain ch
        GROUP BY GROUPING SETS ((ch.dim, ch.k), (ch.k))
    ), grid AS (
        SELECT d.dim, sp.k, sp.name, coalesce(r.n, 0)::bigint AS n, r.median_s
        FROM dims d CROSS JOIN spec sp
        LEFT JOIN reached r ON r.dim = d.dim AND r.k = sp.k
    )
    SELECT g.dim,
           g.k, g.name, g.n,
           CASE WHEN first_step.n > 0 THEN round(g.n::numeric / first_step.n, 4) END,
           CASE WHEN g.k = 1 THEN CASE WHEN g.n > 0 THEN 1.0000 END
                WHEN prev.n > 0 THEN round(g.n::numeric / prev.n, 4) END,
           CASE WHEN g.k = 1 THEN 0 ELSE prev.n - g.n END::bigint,
           g.median_s
    FROM grid g
    JOIN grid first_step ON first_step.dim = g.dim AND first_step.k = 1
    LEFT JOIN grid prev ON prev.dim = g.dim AND prev.k = g.k - 1
    ORDER BY (g.dim = 'all') DESC, g.dim, g.k;
END
$$;
REVOKE ALL ON FUNCTION analytics.funnel(jsonb, interval, timestamptz, timestamptz, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analytics.funnel(jsonb, interval, timestamptz, timestamptz, text, text, text)
    TO caret_analyst, caret_writer;

-- ---------------------------------------------------------------------------------
-- Paths within a session (user + session id, ordered by time then event id), over the
-- raw events (30 days). '(end)' stands for "the session had no further event".
CREATE VIEW analytics.path_transitions AS
WITH ordered AS (
    SELECT (event_ts AT TIME ZONE 'UTC')::date AS day, event_name,
           lead(event_name) OVER (PARTITION BY user_pseudonym, session_id
                                  ORDER BY event_ts, event_id) AS next_event_name
    FROM raw.events
    WHERE user_pseudonym IS NOT NULL AND session_id IS NOT NULL
)
SELECT day, event_name, coalesce(next_event_name, '(end)') AS next_event_name,
       count(*) AS transitions
FROM ordered
GROUP BY day, event_name, coalesce(next_event_name, '(end)');

-- The first and the last event of each session (edge = 'opening' | 'ending'), skipping
-- the events named in ignore_events (e.g. the session start and end markers), counted
-- per event name with the share of sessions.
CREATE FUNCTION analytics.session_edges(
    from_ts timestamptz, to_ts timestamptz, ignore_events text[] DEFAULT '{}'
) RETURNS TABLE (edge text, event_name text, sessions bigint, share numeric)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH kept AS (
        SELECT user_pseudonym, session_id, event_name,
               row_number() OVER w_first AS from_start,
               row_number() OVER w_last AS from_end
        FROM raw.events
        WHERE event_ts >= from_ts AND event_ts < to_ts
          AND user_pseudonym IS NOT NULL AND session_id IS NOT NULL
          AND event_name <> ALL (coalesce(ignore_events, '{}'))
        WINDOW w_first AS (PARTITION BY user_pseudonym, session_id ORDER BY event_ts, event_id),
               w_last AS (PARTITION BY user_pseudonym, session_id ORDER BY event_ts DESC, event_id DESC)
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
REVOKE ALL ON FUNCTION analytics.session_edges(timestamptz, timestamptz, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analytics.session_edges(timestamptz, timestamptz, text[])
    TO caret_analyst, caret_writer;

-- ---------------------------------------------------------------------------------
-- Feature adoption (from the daily rollups, kept a year). As of analytics.as_of():
-- active users = active in the 28 complete days before it; adopters = those of them who
-- used the feature in those days; days_to_adopt = days from a user's first activity to
-- their first use of the feature (adopters whose first activity is in the rollups).
CREATE VIEW analytics.feature_adoption AS
WITH cutoff AS (
    SELECT analytics.as_of() AS as_of
), active AS (
    SELECT DISTINCT a.user_pseudonym
    FROM agg.user_daily_activity a, cutoff
    WHERE a.day >= cutoff.as_of - 28 AND a.day < cutoff.as_of
), first_use AS (
    SELECT f.feature, f.user_pseudonym, min(f.day) AS first_day,
           bool_or(f.day >= cutoff.as_of - 28) AS recent
    FROM agg.user_daily_feature f, cutoff
    WHERE f.uses > 0 AND f.day < cutoff.as_of
    GROUP BY f.feature, f.user_pseudonym
), first_active AS (
    SELECT user_pseudonym, min(day) AS first_day FROM agg.user_daily_activity GROUP BY user_pseudonym
)
SELECT fu.feature,
       (SELECT count(*) FROM active) AS active_users_28d,
       count(*) FILTER (WHERE fu.recent AND ac.user_pseudonym IS NOT NULL) AS adopters_28d,
       round(count(*) FILTER (WHERE fu.recent AND ac.user_pseudonym IS NOT NULL)::numeric
             / nullif((SELECT count(*) FROM active), 0), 4) AS adoption_share,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY fu.first_day - fa.first_day) AS median_days_to_adopt
FROM first_use fu
LEFT JOIN active ac USING (user_pseudonym)
LEFT JOIN first_active fa USING (user_pseudonym)
GROUP BY fu.feature;

-- D7/D28 retention of adopters against non-adopters of the same cohort. Cohort: the
-- ISO week of a user's first activity; adopter of a feature: used it in the first 7
-- days (day 0-6). Retained D7: active on any of days 7-13; D28: days 28-34. A rate is
-- shown once every member's window is over.
CREATE VIEW analytics.feature_retention AS
WITH cutoff AS (
    SELECT analytics.as_of() AS as_of
), members AS (
    SELECT u.user_pseudonym, (u.first_seen_at AT TIME ZONE 'UTC')::date AS first_day
    FROM core.users u
), features AS (
    SELECT DISTINCT feature FROM agg.user_daily_feature WHERE uses > 0
), flags AS (
    SELECT m.user_pseudonym, m.first_day, ft.feature,
           EXISTS (SELECT 1 FROM agg.user_daily_feature f
                   WHERE f.user_pseudonym = m.user_pseudonym AND f.feature = ft.feature
                     AND f.uses > 0 AND f.day BETWEEN m.first_day AND m.first_day + 6) AS adopter,
           EXISTS (SELECT 1 FROM agg.user_daily_activity a
                   WHERE a.user_pseudonym = m.user_pseudonym
                     AND a.day BETWEEN m.first_day + 7 AND m.first_day + 13) AS d7,
           EXISTS (SELECT 1 FROM agg.user_daily_activity a
                   WHERE a.user_pseudonym = m.user_pseudonym
                     AND a.day BETWEEN m.first_day + 28 AND m.first_day + 34) AS d28
    FROM members m CROSS JOIN features ft
)
SELECT analytics.period_start('week', fl.first_day) AS cohort_week,
       fl.feature,
       fl.adopter,
       count(*) AS users,
       CASE WHEN max(fl.first_day) + 14 <= cutoff.as_of
            THEN round(avg(fl.d7::int), 4) END AS retention_d7,
       CASE WHEN max(fl.first_day) + 35 <= cutoff.as_of
            THEN round(avg(fl.d28::int), 4) END AS retention_d28
FROM flags fl, cutoff
GROUP BY 1, fl.feature, fl.adopter, cutoff.as_of;

-- ---------------------------------------------------------------------------------
-- Churn: trained models (no user data) and daily scores (per user: they expire with
-- the raw tier, 30 days, and `forget` deletes them: deletion.PER_USER_TABLES lists them).
-- The writer's grants come from grants.sql (schema agg); analysts read the views.

CREATE TABLE agg.churn_models (
    model_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trained_at   timestamptz NOT NULL DEFAULT now(),
    as_of        date        NOT NULL,
    algorithm    text        NOT NULL,
    features     text[]      NOT NULL,
    evaluation   jsonb       NOT NULL,
    -- the fitted scikit-learn estimator (pickle); only the writer can read or write it
    model        bytea       NOT NULL,
    model_sha256 text        NOT NULL
);
COMMENT ON TABLE agg.churn_models IS
    'Churn models: training day, feature list, out-of-time evaluation and the fitted estimator.';

CREATE TABLE agg.churn_scores (
    score_day      date             NOT NULL,
    user_pseudonym text             NOT NULL,
    model_id       bigint           NOT NULL,
    probability    double precision NOT NULL CHECK (probability BETWEEN 0 AND 1),
    risk_decile    smallint         NOT NULL CHECK (risk_decile BETWEEN 1 AND 10),
    days_since_active integer       NOT NULL,
    scored_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (score_day, user_pseudonym)
) PARTITION BY RANGE (score_day);
COMMENT ON TABLE agg.churn_scores IS
    'Daily churn probability (no activity in the next 14 days) of each user active in the 28 days before score_day; kept 30 days.';
CREATE INDEX churn_scores_user ON agg.churn_scores (user_pseudonym);

INSERT INTO meta.partitioned_tables (table_name, granularity, retention_key) VALUES
    ('agg.churn_scores', 'day', 'raw_events_days');


CREATE VIEW analytics.churn_scores AS
SELECT s.score_day, s.user_pseudonym, s.probability, s.risk_decile, s.days_since_active,
       s.model_id, s.scored_at
FROM agg.churn_scores s;

CREATE VIEW analytics.churn_risk_daily AS
SELECT score_day, risk_decile, count(*) AS users,
       round(avg(probability)::numeric, 4) AS mean_probability,
       round(sum(probability)::numeric, 2) AS expected_churners
FROM agg.churn_scores
GROUP BY score_day, risk_decile;

CREATE VIEW analytics.churn_models AS
SELECT model_id, trained_at, as_of, algorithm, features, evaluation
FROM agg.churn_models;

-- Observed churn by driver, from the daily rollups (no model needed): users active in
-- the first half of [from_day, to_day) ("base"); churned = no activity in the second
-- half. Split by their provider error rate, the number of distinct features they used
-- and their plan in the base half. (docs/churn.md: the 28 + 14-day windows the model
-- uses are from_day = as_of - 28, to_day = as_of + 14 with a base of 28 days; this view
-- halves any range so a dashboard's time picker can drive it.)
CREATE FUNCTION analytics.churn_observed(from_day date, to_day date)
RETURNS TABLE (dimension text, value text, users bigint, churned bigint, churn_rate numeric)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH bounds AS (
        SELECT from_day AS lo, from_day + (to_day - from_day) / 2 AS mid, to_day AS hi
    ), base AS (
        SELECT DISTINCT a.user_pseudonym
        FROM agg.user_daily_activity a, bounds b WHERE a.day >= b.lo AND a.day < b.mid
    ), later AS (
        SELECT DISTINCT a.user_pseudonym
        FROM agg.user_daily_activity a, bounds b WHERE a.day >= b.mid AND a.day < b.hi
    ), usage AS (
        -- 'free' is the one unpaid plan (caret_otel.exporters.postgres.rollup.UNPAID_PLANS);
        -- the rollups store a missing plan as 'unknown'
        SELECT u.user_pseudonym, sum(u.requests) AS requests, sum(u.errors) AS errors,
               CASE WHEN bool_or(u.plan NOT IN ('free', 'unknown')) THEN 'paid'
                    WHEN bool_or(u.plan = 'free') THEN 'free' ELSE 'unknown' END AS plan
        FROM agg.user_daily_usage u, bounds b WHERE u.day >= b.lo AND u.day < b.mid
        GROUP BY u.user_pseudonym
    ), used AS (
        SELECT f.user_pseudonym, count(DISTINCT f.feature) AS features
        FROM agg.user_daily_feature f, bounds b
        WHERE f.day >= b.lo AND f.day < b.mid AND f.uses > 0
        GROUP BY f.user_pseudonym
    ), labelled AS (
        SELECT l.user_pseudonym IS NULL AS churned,
               CASE WHEN coalesce(us.requests, 0) = 0 THEN 'no requests'
                    WHEN us.errors::numeric / us.requests < 0.02 THEN '0-2 %'
                    WHEN us.errors::numeric / us.requests < 0.05 THEN '2-5 %'
                    WHEN us.errors::numeric / us.requests < 0.10 THEN '5-10 %'
                    ELSE '10 % or more' END AS error_band,
               coalesce(ud.features, 0)::text AS features,
               coalesce(us.plan, 'unknown') AS plan
        FROM base bs
        LEFT JOIN later l USING (user_pseudonym)
        LEFT JOIN usage us USING (user_pseudonym)
        LEFT JOIN used ud USING (user_pseudonym)
    ), cells AS (
        SELECT 'provider_error_rate' AS dimension, error_band AS value, churned FROM labelled
        UNION ALL SELECT 'features_used', features, churned FROM labelled
        UNION ALL SELECT 'plan', plan, churned FROM labelled
    )
    SELECT dimension, value, count(*), count(*) FILTER (WHERE churned),
           round(avg(churned::int), 4)
    FROM cells
    GROUP BY dimension, value
    ORDER BY dimension, value
$$;
REVOKE ALL ON FUNCTION analytics.churn_observed(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analytics.churn_observed(date, date) TO caret_analyst, caret_writer;
