-- A/B experiments (docs/experiments.md): each user's first exposure per experiment, the
-- per-user experiment metrics (defined once, here) and the analysts' views.

-- First exposure per (experiment, user). Partitioned by month of the first exposure and
-- kept as long as the aggregates (1 year); `forget` finds it by its user column.
-- (experiment_key, user_pseudonym) is unique: only the trigger below writes here, under
-- one advisory lock. A user later seen with another variant is flagged and left out of
-- the analysis (their assignment is not what the definition says).
CREATE TABLE agg.experiment_exposures (
    experiment_key    text        NOT NULL,
    user_pseudonym    text        NOT NULL,
    variant           text        NOT NULL,
    first_exposed_at  timestamptz NOT NULL,
    event_id          text        NOT NULL,
    multiple_variants boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (experiment_key, user_pseudonym, first_exposed_at)
) PARTITION BY RANGE (first_exposed_at);
CREATE INDEX experiment_exposures_user ON agg.experiment_exposures (user_pseudonym);
COMMENT ON TABLE agg.experiment_exposures IS
    'First exposure of each user to each experiment (variant, time); kept 1 year.';

INSERT INTO meta.partitioned_tables (table_name, granularity, retention_key) VALUES
    ('agg.experiment_exposures', 'month', 'aggregates_days');

-- Statement trigger of raw.events (as the rollup queue): the exposure events a load
-- inserted - never a redelivered duplicate - update the first exposures. An earlier
-- exposure arriving late moves the first exposure back.
CREATE FUNCTION agg.record_first_exposures() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    month date;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM inserted_events
                   WHERE event_name = 'caret.experiment.exposure') THEN
        RETURN NULL;
    END IF;
    -- one writer of first exposures at a time (rare events; keeps the key unique)
    PERFORM pg_advisory_xact_lock(7301200012);
    FOR month IN
        SELECT DISTINCT date_trunc('month', event_ts AT TIME ZONE 'UTC')::date
        FROM inserted_events WHERE event_name = 'caret.experiment.exposure'
    LOOP
        PERFORM meta.ensure_partition('agg.experiment_exposures', month);
    END LOOP;
    WITH batch AS (
        SELECT attrs ->> 'caret.experiment.key' AS experiment_key, user_pseudonym,
               attrs ->> 'caret.experiment.variant' AS variant, event_ts, event_id
        FROM inserted_events
        WHERE event_name = 'caret.experiment.exposure' AND user_pseudonym IS NOT NULL
          AND attrs ->> 'caret.experiment.key' IS NOT NULL
          AND attrs ->> 'caret.experiment.variant' IS NOT NULL
    ), firsts AS (
        SELECT experiment_key, user_pseudonym,
               (array_agg(variant ORDER BY event_ts, event_id))[1] AS variant,
               min(event_ts) AS exposed_at,
               (array_agg(event_id ORDER BY event_ts, event_id))[1] AS event_id,
               count(DISTINCT variant) > 1 AS several
        FROM batch GROUP BY experiment_key, user_pseudonym
    ), updated AS (
        UPDATE agg.experiment_exposures e SET
            multiple_variants = e.multiple_variants OR f.several OR f.variant <> e.variant,
            variant = CASE WHEN f.exposed_at < e.first_exposed_at THEN f.variant ELSE e.variant END,
            event_id = CASE WHEN f.exposed_at < e.first_exposed_at THEN f.event_id ELSE e.event_id END,
            first_exposed_at = least(e.first_exposed_at, f.exposed_at)
        FROM firsts f
        WHERE e.experiment_key = f.experiment_key AND e.user_pseudonym = f.user_pseudonym
        RETURNING e.experiment_key
    )
    INSERT INTO agg.experiment_exposures
        (experiment_key, user_pseudonym, variant, first_exposed_at, event_id, multiple_variants)
    SELECT f.experiment_key, f.user_pseudonym, f.variant, f.exposed_at, f.event_id, f.several
    FROM firsts f
    WHERE NOT EXISTS (SELECT 1 FROM agg.experiment_exposures e
                      WHERE e.experiment_key = f.experiment_key
                        AND e.user_pseudonym = f.user_pseudonym);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION agg.record_first_exposures() FROM PUBLIC;
COMMENT ON FUNCTION agg.record_first_exposures() IS
    'Statement trigger of raw.events: keeps the first exposure per user and experiment.';

CREATE TRIGGER record_first_exposures
    AFTER INSERT ON raw.events
    REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION agg.record_first_exposures();

-- The per-user experiment metrics: every metric of docs/experiments.md, once. Post values
-- cover the user's time since the first exposure, pre values the 14 days before it (for
-- CUPED). Counts come from the raw events (kept 30 days), with the rollups' definitions:
-- provider requests are token-usage and provider-error events, consumed credits those of
-- token usage and credit consumption; feedback is the thumbs up/down of task results.
-- Writer-only: it holds one row per user.
CREATE VIEW agg.experiment_user_metrics AS
WITH units AS (
    SELECT experiment_key, variant, user_pseudonym, first_exposed_at AS exposed_at
    FROM agg.experiment_exposures
    WHERE NOT multiple_variants
), counted AS (
    SELECT u.experiment_key, u.variant, u.user_pseudonym, u.exposed_at,
           w.post,
           count(*) FILTER (WHERE e.event_name = 'caret.task.created') AS tasks_created,
           count(*) FILTER (WHERE e.event_name = 'caret.task.completed'
                            AND e.attrs ->> 'caret.task.outcome' = 'success') AS tasks_completed,
           coalesce(sum(coalesce(e.tokens_in, 0) + coalesce(e.tokens_out, 0))
                    FILTER (WHERE e.event_name = 'caret.task.tokens'), 0) AS tokens,
           coalesce(sum(e.credits) FILTER (WHERE e.event_name IN ('caret.task.tokens',
                                                                  'caret.credits.consumed')), 0) AS credits,
           count(*) FILTER (WHERE e.event_name IN ('caret.task.tokens',
                                                   'caret.task.provider_api_error')) AS requests,
           count(*) FILTER (WHERE e.event_name = 'caret.task.provider_api_error') AS errors,
           count(*) FILTER (WHERE e.event_name = 'caret.task.feedback'
                            AND e.attrs ->> 'caret.feedback.type' IN ('thumbs_up', 'thumbs_down'))
               AS feedback,
           count(*) FILTER (WHERE e.event_name = 'caret.task.feedback'
                            AND e.attrs ->> 'caret.feedback.type' = 'thumbs_up') AS thumbs_up,
           count(DISTINCT e.day) AS active_days,
           count(*) FILTER (WHERE e.event_ts >= u.exposed_at + interval '7 days'
                            AND e.event_ts < u.exposed_at + interval '14 days') AS d7_events
    FROM units u
    CROSS JOIN (VALUES (true), (false)) AS w (post)
    LEFT JOIN raw.events e
        ON e.user_pseudonym = u.user_pseudonym
       AND CASE WHEN w.post THEN e.event_ts >= u.exposed_at
                ELSE e.event_ts >= u.exposed_at - interval '14 days' AND e.event_ts < u.exposed_at END
       AND e.event_name <> 'caret.experiment.exposure'
    GROUP BY u.experiment_key, u.variant, u.user_pseudonym, u.exposed_at, w.post
)
SELECT p.experiment_key, p.variant, p.user_pseudonym, p.exposed_at,
       p.tasks_created, p.tasks_completed, p.tokens, p.credits, p.requests, p.errors,
       p.feedback, p.thumbs_up, p.active_days,
       -- observable once the user's day 7-13 window has passed
       CASE WHEN p.exposed_at + interval '14 days' <= now()
            THEN (p.d7_events > 0)::int END AS retained_d7,
       (cu.first_paid_at >= p.exposed_at)::int AS paid_conversion,
       b.tasks_created AS pre_tasks_created, b.tasks_completed AS pre_tasks_completed,
       b.tokens AS pre_tokens, b.credits AS pre_credits, b.requests AS pre_requests,
       b.errors AS pre_errors, b.active_days AS pre_active_days,
       (b.active_days > 0)::int AS pre_retained,
       coalesce((cu.first_paid_at < p.exposed_at)::int, 0) AS pre_paid
FROM counted p
JOIN counted b
    ON b.experiment_key = p.experiment_key AND b.user_pseudonym = p.user_pseudonym AND NOT b.post
LEFT JOIN core.users cu ON cu.user_pseudonym = p.user_pseudonym
WHERE p.post;
COMMENT ON VIEW agg.experiment_user_metrics IS
    'One row per exposed user and experiment: the experiment metrics since the first exposure and in the 14 days before.';

-- Sufficient statistics per experiment, variant and metric: what the statistics need
-- (n, sums, sums of squares and cross products), never a user. A variant with fewer
-- than 10 users in a metric reports nothing (k-threshold).
CREATE VIEW analytics.experiment_variant_stats AS
WITH unpivoted AS (
    SELECT m.experiment_key, m.variant, v.metric, v.value, v.denominator, v.pre
    FROM agg.experiment_user_metrics m
    CROSS JOIN LATERAL (VALUES
        ('tasks_created', m.tasks_created::float8, NULL::float8, m.pre_tasks_created::float8),
        ('tasks_completed', m.tasks_completed, NULL, m.pre_tasks_completed),
        ('task_completion_rate', m.tasks_completed, m.tasks_created, NULL),
        ('tokens_per_task', m.tokens, m.tasks_created, NULL),
        ('cost_per_task', m.credits, m.tasks_created, NULL),
        ('provider_error_rate', m.errors, m.requests, NULL),
        ('thumbs_up_rate', m.thumbs_up, m.feedback, NULL),
        ('active_days', m.active_days, NULL, m.pre_active_days),
        ('retained_d7', m.retained_d7, NULL, m.pre_retained),
        ('paid_conversion', m.paid_conversion, NULL, m.pre_paid),
        ('credits', m.credits, NULL, m.pre_credits)
    ) AS v (metric, value, denominator, pre)
    WHERE v.value IS NOT NULL
)
SELECT experiment_key, variant, metric,
       count(*) AS users,
       sum(value) AS value_sum,
       sum(value * value) AS value_sum_squares,
       sum(denominator) AS denominator_sum,
       sum(denominator * denominator) AS denominator_sum_squares,
       sum(value * denominator) AS value_denominator_sum_products,
       sum(pre) AS pre_sum,
       sum(pre * pre) AS pre_sum_squares,
       sum(value * pre) AS value_pre_sum_products
FROM unpivoted
GROUP BY experiment_key, variant, metric
HAVING count(*) >= 10;
COMMENT ON VIEW analytics.experiment_variant_stats IS
    'Per experiment, variant and metric: users and the sums the statistics need; variants under 10 users are not shown.';

-- Users per variant (the sample-ratio check's input), k-threshold applied.
CREATE VIEW analytics.experiment_exposures_daily AS
SELECT experiment_key, variant, (first_exposed_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS new_users,
       sum(count(*)) OVER (PARTITION BY experiment_key, variant
                           ORDER BY (first_exposed_at AT TIME ZONE 'UTC')::date) AS users
FROM agg.experiment_exposures
WHERE NOT multiple_variants
GROUP BY experiment_key, variant, (first_exposed_at AT TIME ZONE 'UTC')::date;
COMMENT ON VIEW analytics.experiment_exposures_daily IS
    'New and cumulative exposed users per experiment, variant and day.';

-- A quick fixed-horizon look for dashboards: each variant against `control` per metric,
-- relative lift with a 95 % delta-method interval (no CUPED, no sequential correction,
-- no sample-ratio check). Decisions use `caret-otel experiments analyze`.
CREATE VIEW analytics.experiment_results AS
WITH stats AS (
    SELECT s.*,
           value_sum / users AS mean,
           (value_sum_squares - value_sum * value_sum / users) / nullif(users - 1, 0) AS var,
           denominator_sum / users AS d_mean,
           (denominator_sum_squares - denominator_sum * denominator_sum / users)
               / nullif(users - 1, 0) AS d_var,
           (value_denominator_sum_products - value_sum * denominator_sum / users)
               / nullif(users - 1, 0) AS cov
    FROM analytics.experiment_variant_stats s
), estimates AS (
    SELECT experiment_key, variant, metric, users,
           CASE WHEN denominator_sum IS NULL THEN mean
                ELSE value_sum / nullif(denominator_sum, 0) END AS estimate,
           CASE WHEN denominator_sum IS NULL THEN var
                ELSE var / nullif(d_mean ^ 2, 0) - 2 * cov * mean / nullif(d_mean ^ 3, 0)
                     + mean ^ 2 * d_var / nullif(d_mean ^ 4, 0) END AS unit_variance
    FROM stats
)
SELECT t.experiment_key, t.variant, t.metric,
       c.users AS control_users, t.users,
       c.estimate AS control_value, t.estimate AS value,
       (t.estimate - c.estimate) / nullif(c.estimate, 0) AS lift,
       (t.estimate - c.estimate) / nullif(c.estimate, 0) - 1.959964 * sqrt(
           t.unit_variance / (c.estimate ^ 2 * t.users)
           + c.unit_variance * t.estimate ^ 2 / (c.estimate ^ 4 * c.users)) AS lift_ci_low,
       (t.estimate - c.estimate) / nullif(c.estimate, 0) + 1.959964 * sqrt(
           t.unit_variance / (c.estimate ^ 2 * t.users)
           + c.unit_variance * t.estimate ^ 2 / (c.estimate ^ 4 * c.users)) AS lift_ci_high
FROM estimates t
JOIN estimates c
    ON c.experiment_key = t.experiment_key AND c.metric = t.metric AND c.variant = 'control'
WHERE t.variant <> 'control' AND c.estimate <> 0;
COMMENT ON VIEW analytics.experiment_results IS
    'Each variant against control per metric: relative lift and a fixed-horizon 95 % interval (decide with caret-otel experiments analyze).';
