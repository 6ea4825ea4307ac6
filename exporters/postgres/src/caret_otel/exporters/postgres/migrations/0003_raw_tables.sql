-- Raw tier (30 days): one row per business event and per metric data point, partitioned
-- by UTC day so retention drops whole partitions instead of deleting rows.

CREATE TABLE raw.events (
    event_id           text        NOT NULL,
    event_ts           timestamptz NOT NULL,
    day                date        NOT NULL GENERATED ALWAYS AS ((event_ts AT TIME ZONE 'UTC')::date) STORED,
    event_name         text        NOT NULL,
    user_pseudonym     text,
    session_id         text,
    plan               text,
    country            text,
    continent          text,
    provider           text,
    model              text,
    feature            text,
    feature_action     text,
    language           text,
    client_version     text,
    platform           text,
    tokens_in          bigint,
    tokens_out         bigint,
    tokens_cache_read  bigint,
    tokens_cache_write bigint,
    credits            numeric,
    latency_s          double precision,
    error_type         text,
    attrs              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    received_at        timestamptz NOT NULL DEFAULT now(),
    -- The partition key must be part of every unique key of a partitioned table.
    PRIMARY KEY (event_id, event_ts)
) PARTITION BY RANGE (event_ts);
-- Session and per-user recomputation, and deletion on request.
CREATE INDEX events_user_ts ON raw.events (user_pseudonym, event_ts);
COMMENT ON TABLE raw.events IS
    'One row per business event (log record with a caret event name); kept 30 days.';

-- Events stored but not yet folded into the rollups. The load transaction adds the keys
-- it inserted (never a redelivered duplicate), the rollup job removes them in the same
-- transaction as it updates the rollups: every event is rolled up exactly once.
CREATE TABLE raw.rollup_queue (
    event_id    text        NOT NULL,
    event_ts    timestamptz NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, event_ts)
);
CREATE INDEX rollup_queue_enqueued ON raw.rollup_queue (enqueued_at);

CREATE TABLE raw.metric_points (
    metric_name text             NOT NULL,
    -- SHA-256 of the canonical JSON of resource and point attributes: one series.
    series_hash text             NOT NULL,
    -- start of a cumulative/delta interval; 1970-01-01 when the point has none (gauges)
    start_ts    timestamptz      NOT NULL,
    point_ts    timestamptz      NOT NULL,
    kind        text             NOT NULL
        CHECK (kind IN ('sum', 'gauge', 'histogram', 'exponential_histogram', 'summary')),
    unit        text             NOT NULL,
    temporality text             CHECK (temporality IN ('cumulative', 'delta')),
    monotonic   boolean,
    value       double precision,
    count       bigint,
    sum         double precision,
    min         double precision,
    max         double precision,
    -- histogram: {"bounds": [...], "counts": [...]}; exponential: scale, zero_count,
    -- positive/negative offsets and counts; summary: {"quantiles": [[q, v], ...]}
    buckets     jsonb,
    resource    jsonb            NOT NULL DEFAULT '{}'::jsonb,
    attrs       jsonb            NOT NULL DEFAULT '{}'::jsonb,
    received_at timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (metric_name, series_hash, start_ts, point_ts)
) PARTITION BY RANGE (point_ts);
COMMENT ON TABLE raw.metric_points IS
    'Business metric data points (caret.* and gen_ai.*) as received over OTLP; kept 30 days.';

INSERT INTO meta.partitioned_tables (table_name, granularity, retention_key) VALUES
    ('raw.events', 'day', 'raw_events_days'),
    ('raw.metric_points', 'day', 'raw_events_days');
