-- Analyst views that mean what they say (issue 22):
--
-- * every view of days stops at analytics.as_of() (SET caret.as_of = '2026-03-31' shows
--   the numbers as they were that day, active_users included); active_users gains a
--   `complete` column (false for the day that is still running);
-- * language and region shares are counted from the users who carry the dimension:
--   each active user of a day counts once, under the value of that day with the most
--   events (ties: the first in alphabetical order), and a user counts under 'unknown'
--   only when none of that day's events carried the dimension (server-side business
--   events - credits, sign-ups - carry no language or country). The shares of the known
--   values add up to 1 per day; the 'unknown' row has no share (it is not part of the
--   denominator);
-- * every view returns its rows in a stable order (its natural key).
--
-- It also adds privacy.pseudonym_key_fingerprints: one row per pseudonym key that a
-- service (the gateway) used with this database, as the SHA-256 of the key's pseudonym
-- of a fixed string - never the key. `caret-otel forget` uses it to refuse keys that
-- never wrote here instead of deleting nothing and calling it done.

CREATE TABLE IF NOT EXISTS privacy.pseudonym_key_fingerprints (
    key_id        text        NOT NULL,
    fingerprint   text        NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, fingerprint)
);
COMMENT ON TABLE privacy.pseudonym_key_fingerprints IS
    'Pseudonym keys used with this database: key id and SHA-256 of the key''s pseudonym of a fixed string (no key material).';

CREATE OR REPLACE VIEW analytics.active_users AS
WITH cutoff AS (
    SELECT analytics.as_of() AS as_of
), bounds AS (
    SELECT min(a.day) AS first_day, max(a.day) AS last_day
    FROM agg.user_daily_activity a, cutoff
    WHERE a.day <= cutoff.as_of
), days AS (
    SELECT d::date AS day
    FROM bounds, generate_series(bounds.first_day::timestamp, bounds.last_day::timestamp, interval '1 day') AS d
), daily AS (
    SELECT day, count(*) AS dau FROM agg.user_daily_activity GROUP BY day
), windows AS (
    SELECT d.day,
           count(DISTINCT a.user_pseudonym) FILTER (WHERE a.day > d.day - 7) AS wau,
           count(DISTINCT a.user_pseudonym) AS mau
    FROM days d
    JOIN agg.user_daily_activity a ON a.day BETWEEN d.day - 27 AND d.day
    GROUP BY d.day
), newcomers AS (
    SELECT (first_seen_at AT TIME ZONE 'UTC')::date AS day, count(*) AS new_users
    FROM core.users GROUP BY 1
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
    FROM core.users u
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
    JOIN agg.user_daily_activity a ON a.user_pseudonym = m.user_pseudonym
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

CREATE OR REPLACE VIEW analytics.lifecycle AS
WITH active AS (
    SELECT DISTINCT g.granularity, analytics.period_start(g.granularity, a.day) AS period_start,
           a.user_pseudonym
    FROM agg.user_daily_activity a
    CROSS JOIN (VALUES ('day'), ('week'), ('month')) AS g (granularity)
    WHERE a.day <= analytics.as_of()
), bounds AS (
    SELECT granularity, min(period_start) AS first_period, max(period_start) AS last_period
    FROM active GROUP BY granularity
), periods AS (
    SELECT b.granularity, p::date AS period_start
    FROM bounds b,
         generate_series(b.first_period::timestamp, b.last_period::timestamp,
                         analytics.period_length(b.granularity)) AS p
), classified AS (
    SELECT a.granularity, a.period_start,
           CASE
               WHEN analytics.period_start(a.granularity, (u.first_seen_at AT TIME ZONE 'UTC')::date)
                    = a.period_start THEN 'new'
               WHEN prev.user_pseudonym IS NOT NULL THEN 'returning'
               ELSE 'resurrecting'
           END AS status
    FROM active a
    JOIN core.users u USING (user_pseudonym)
    LEFT JOIN active prev
        ON prev.granularity = a.granularity AND prev.user_pseudonym = a.user_pseudonym
       AND prev.period_start = (a.period_start - analytics.period_length(a.granularity))::date
), dormant AS (
    SELECT prev.granularity,
           (prev.period_start + analytics.period_length(prev.granularity))::date AS period_start,
           count(*) AS dormant_users
    FROM active prev
    LEFT JOIN active cur
        ON cur.granularity = prev.granularity AND cur.user_pseudonym = prev.user_pseudonym
       AND cur.period_start = (prev.period_start + analytics.period_length(prev.granularity))::date
    WHERE cur.user_pseudonym IS NULL
    GROUP BY 1, 2
), counts AS (
    SELECT granularity, period_start,
           count(*) FILTER (WHERE status = 'new') AS new_users,
           count(*) FILTER (WHERE status = 'returning') AS returning_users,
           count(*) FILTER (WHERE status = 'resurrecting') AS resurrecting_users
    FROM classified GROUP BY granularity, period_start
)
SELECT p.granularity,
       p.period_start,
       coalesce(c.new_users, 0) AS new_users,
       coalesce(c.returning_users, 0) AS returning_users,
       coalesce(c.resurrecting_users, 0) AS resurrecting_users,
       coalesce(d.dormant_users, 0) AS dormant_users,
       (p.period_start + analytics.period_length(p.granularity))::date <= analytics.as_of() AS complete
FROM periods p
LEFT JOIN counts c USING (granularity, period_start)
LEFT JOIN dormant d USING (granularity, period_start)
ORDER BY p.granularity, p.period_start;

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
    SELECT day, user_pseudonym, events, extract(epoch FROM ended_at - started_at) AS length_s
    FROM agg.sessions
    WHERE day <= analytics.as_of()
) s
GROUP BY day
ORDER BY day;

CREATE OR REPLACE VIEW analytics.paid_conversion AS
WITH signups AS (
    SELECT analytics.period_start('week', (signup_at AT TIME ZONE 'UTC')::date) AS signup_week,
           signup_at, first_paid_at
    FROM core.users
    WHERE signup_at IS NOT NULL AND (signup_at AT TIME ZONE 'UTC')::date <= analytics.as_of()
), weekly AS (
    SELECT signup_week,
           count(*) AS signups,
           count(*) FILTER (WHERE first_paid_at <= signup_at + interval '14 days') AS paid_14d,
           count(*) FILTER (WHERE first_paid_at <= signup_at + interval '30 days') AS paid_30d
    FROM signups GROUP BY signup_week
)
SELECT signup_week,
       signups,
       paid_14d,
       paid_30d,
       CASE WHEN signup_week + 7 + 14 <= analytics.as_of()
            THEN round(paid_14d::numeric / signups, 4) END AS rate_14d,
       CASE WHEN signup_week + 7 + 30 <= analytics.as_of()
            THEN round(paid_30d::numeric / signups, 4) END AS rate_30d
FROM weekly
ORDER BY signup_week;

CREATE OR REPLACE VIEW analytics.credits_daily AS
WITH per_user AS (
    SELECT day, plan, provider, model, user_pseudonym, sum(credits) AS credits
    FROM agg.user_daily_usage
    WHERE credits <> 0 AND day <= analytics.as_of()
    GROUP BY GROUPING SETS ((day, plan, provider, model, user_pseudonym), (day, user_pseudonym))
), daily AS (
    SELECT day, count(*) AS dau FROM agg.user_daily_activity GROUP BY day
)
SELECT p.day,
       coalesce(p.plan, 'all') AS plan,
       coalesce(p.provider, 'all') AS provider,
       coalesce(p.model, 'all') AS model,
       sum(p.credits) AS credits,
       count(*) AS users,
       round(sum(p.credits) / daily.dau, 4) AS credits_per_active_user,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY p.credits)::numeric, 4) AS p50_credits_per_user,
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY p.credits)::numeric, 4) AS p90_credits_per_user
FROM per_user p
JOIN daily USING (day)
GROUP BY p.day, p.plan, p.provider, p.model, daily.dau
ORDER BY p.day, plan, provider, model;

CREATE OR REPLACE VIEW analytics.model_usage_daily AS
WITH models AS (
    SELECT day, provider, model,
           sum(requests)::bigint AS requests,
           sum(errors)::bigint AS errors,
           count(*) FILTER (WHERE requests > 0) AS users,
           sum(tokens_in)::bigint AS tokens_in,
           sum(tokens_out)::bigint AS tokens_out,
           sum(tokens_cache_read)::bigint AS tokens_cache_read,
           sum(tokens_cache_write)::bigint AS tokens_cache_write
    FROM (
        SELECT day, provider, model, user_pseudonym,
               sum(requests) AS requests, sum(errors) AS errors,
               sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,
               sum(tokens_cache_read) AS tokens_cache_read,
               sum(tokens_cache_write) AS tokens_cache_write
        FROM agg.user_daily_usage
        WHERE day <= analytics.as_of()
        GROUP BY day, provider, model, user_pseudonym
    ) per_user
    GROUP BY day, provider, model
    HAVING sum(requests) > 0
), totals AS (
    SELECT day, sum(requests)::bigint AS all_requests FROM models GROUP BY day
), daily AS (
    SELECT day, count(*) AS dau FROM agg.user_daily_activity GROUP BY day
)
SELECT m.day,
       m.provider,
       m.model,
       m.requests,
       m.errors,
       round(m.errors::numeric / m.requests, 4) AS error_rate,
       m.users,
       round(m.requests::numeric / t.all_requests, 4) AS request_share,
       round(m.users::numeric / d.dau, 4) AS user_share,
       l.p50_s AS p50_latency_s,
       l.p95_s AS p95_latency_s,
       m.tokens_in,
       m.tokens_out,
       m.tokens_cache_read,
       m.tokens_cache_write
FROM models m
JOIN totals t USING (day)
JOIN daily d USING (day)
LEFT JOIN agg.model_latency_daily l USING (day, provider, model)
ORDER BY m.day, m.provider, m.model;

CREATE OR REPLACE VIEW analytics.feature_usage_daily AS
WITH bounds AS (
    SELECT min(day) AS first_day, max(day) AS last_day
    FROM agg.user_daily_activity WHERE day <= analytics.as_of()
), grid AS (
    SELECT d::date AS day, f.feature
    FROM bounds,
         generate_series(bounds.first_day::timestamp, bounds.last_day::timestamp, interval '1 day') AS d,
         (SELECT DISTINCT feature FROM agg.user_daily_feature) AS f
), daily AS (
    SELECT day, feature, sum(uses)::bigint AS uses, count(*) FILTER (WHERE uses > 0) AS users
    FROM agg.user_daily_feature GROUP BY day, feature
), adopters AS (
    SELECT g.day, g.feature, count(DISTINCT f.user_pseudonym) AS adopters_28d
    FROM grid g
    JOIN agg.user_daily_feature f
        ON f.feature = g.feature AND f.day BETWEEN g.day - 27 AND g.day AND f.uses > 0
    GROUP BY g.day, g.feature
)
SELECT g.day,
       g.feature,
       coalesce(d.uses, 0)::bigint AS uses,
       coalesce(d.users, 0)::bigint AS users,
       coalesce(a.adopters_28d, 0)::bigint AS adopters_28d,
       CASE WHEN au.mau > 0 THEN round(coalesce(a.adopters_28d, 0)::numeric / au.mau, 4) END AS adoption_28d
FROM grid g
LEFT JOIN daily d USING (day, feature)
LEFT JOIN adopters a USING (day, feature)
LEFT JOIN analytics.active_users au USING (day)
ORDER BY g.day, g.feature;

-- One value per user and day (see the top): the known value with the most events.
CREATE OR REPLACE VIEW analytics.language_daily AS
WITH per_user AS (
    SELECT day, user_pseudonym, language, events,
           row_number() OVER (
               PARTITION BY day, user_pseudonym
               ORDER BY (language = 'unknown'), events DESC, language
           ) AS rank
    FROM agg.user_daily_language
    WHERE day <= analytics.as_of()
), carriers AS (
    SELECT day, count(*) FILTER (WHERE language <> 'unknown') AS known_users
    FROM per_user WHERE rank = 1 GROUP BY day
), counted AS (
    SELECT day, language,
           count(*) FILTER (WHERE rank = 1) AS users,
           sum(events)::bigint AS events
    FROM per_user GROUP BY day, language
)
SELECT c.day,
       c.language,
       c.users,
       c.events,
       CASE WHEN c.language <> 'unknown' AND k.known_users > 0
            THEN round(c.users::numeric / k.known_users, 4) END AS user_share
FROM counted c
JOIN carriers k USING (day)
ORDER BY c.day, c.language;

CREATE OR REPLACE VIEW analytics.region_daily AS
WITH per_user AS (
    SELECT day, user_pseudonym, country, continent, events,
           row_number() OVER (
               PARTITION BY day, user_pseudonym
               ORDER BY (country = 'unknown'), events DESC, country, continent
           ) AS rank
    FROM agg.user_daily_region
    WHERE day <= analytics.as_of()
), carriers AS (
    SELECT day, count(*) FILTER (WHERE country <> 'unknown') AS known_users
    FROM per_user WHERE rank = 1 GROUP BY day
), counted AS (
    SELECT p.day, p.country, p.continent,
           count(*) FILTER (WHERE p.rank = 1) AS users,
           sum(p.events)::bigint AS events,
           count(*) FILTER (WHERE p.rank = 1
                            AND (u.first_seen_at AT TIME ZONE 'UTC')::date = p.day) AS new_users
    FROM per_user p
    LEFT JOIN core.users u USING (user_pseudonym)
    GROUP BY p.day, p.country, p.continent
)
SELECT c.day,
       c.country,
       c.continent,
       c.users,
       c.events,
       c.new_users,
       CASE WHEN c.country <> 'unknown' AND k.known_users > 0
            THEN round(c.users::numeric / k.known_users, 4) END AS user_share
FROM counted c
JOIN carriers k USING (day)
ORDER BY c.day, c.country, c.continent;

CREATE OR REPLACE VIEW analytics.trends_monthly AS
SELECT month, dimension, value, users, events, credits, complete
FROM trends.monthly
ORDER BY month, dimension, value;
