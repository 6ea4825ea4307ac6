-- core.users (kept while the account lives), the daily per-user rollups (1 year) and the
-- anonymised monthly trends (3 years).
--
-- Rollup dimensions are never NULL: a missing value is stored as 'unknown', so they can
-- be part of primary keys and every share adds up to 100 %.

CREATE TABLE core.users (
    user_pseudonym   text PRIMARY KEY,
    first_seen_at    timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    signup_at        timestamptz,
    first_paid_at    timestamptz,
    -- latest plan and country seen, with the event that said so (ties broken by event id)
    -- so that events arriving out of order give the same answer
    plan             text,
    plan_at          timestamptz,
    plan_event_id    text,
    country          text,
    country_at       timestamptz,
    country_event_id text
);
COMMENT ON TABLE core.users IS
    'One row per user pseudonym: first/last seen, sign-up, first payment, latest plan and country. The source of "new user"; never recomputed from the 30-day raw events.';

CREATE TABLE agg.user_daily_activity (
    day            date        NOT NULL,
    user_pseudonym text        NOT NULL,
    events         bigint      NOT NULL,
    first_event_at timestamptz NOT NULL,
    last_event_at  timestamptz NOT NULL,
    PRIMARY KEY (day, user_pseudonym)
) PARTITION BY RANGE (day);
CREATE INDEX user_daily_activity_user ON agg.user_daily_activity (user_pseudonym, day);

CREATE TABLE agg.user_daily_region (
    day            date   NOT NULL,
    user_pseudonym text   NOT NULL,
    country        text   NOT NULL,
    continent      text   NOT NULL,
    events         bigint NOT NULL,
    PRIMARY KEY (day, user_pseudonym, country, continent)
) PARTITION BY RANGE (day);

CREATE TABLE agg.user_daily_language (
    day            date   NOT NULL,
    user_pseudonym text   NOT NULL,
    language       text   NOT NULL,
    events         bigint NOT NULL,
    PRIMARY KEY (day, user_pseudonym, language)
) PARTITION BY RANGE (day);

CREATE TABLE agg.user_daily_feature (
    day            date   NOT NULL,
    user_pseudonym text   NOT NULL,
    feature        text   NOT NULL,
    uses           bigint NOT NULL,
    events         bigint NOT NULL,
    PRIMARY KEY (day, user_pseudonym, feature)
) PARTITION BY RANGE (day);

CREATE TABLE agg.user_daily_usage (
    day                date    NOT NULL,
    user_pseudonym     text    NOT NULL,
    plan               text    NOT NULL,
    provider           text    NOT NULL,
    model              text    NOT NULL,
    events             bigint  NOT NULL,
    requests           bigint  NOT NULL,
    errors             bigint  NOT NULL,
    tokens_in          bigint  NOT NULL,
    tokens_out         bigint  NOT NULL,
    tokens_cache_read  bigint  NOT NULL,
    tokens_cache_write bigint  NOT NULL,
    credits            numeric NOT NULL,
    PRIMARY KEY (day, user_pseudonym, plan, provider, model)
) PARTITION BY RANGE (day);

-- Sessions are rebuilt per (user, day) from that day's raw events: a session ends after
-- more than 30 minutes without events and at midnight UTC.
CREATE TABLE agg.sessions (
    day            date        NOT NULL,
    user_pseudonym text        NOT NULL,
    session_no     integer     NOT NULL,
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz NOT NULL,
    events         bigint      NOT NULL,
    PRIMARY KEY (day, user_pseudonym, session_no)
) PARTITION BY RANGE (day);

-- Percentiles do not add up, so they are rebuilt per (day, provider, model) from the raw
-- events whenever that day receives new requests (late events stay within the raw window).
CREATE TABLE agg.model_latency_daily (
    day      date             NOT NULL,
    provider text             NOT NULL,
    model    text             NOT NULL,
    samples  bigint           NOT NULL,
    p50_s    double precision NOT NULL,
    p95_s    double precision NOT NULL,
    PRIMARY KEY (day, provider, model)
) PARTITION BY RANGE (day);

-- Anonymised monthly cells: no user ids; a cell with fewer than k users is merged into
-- the value 'other' (and further cells join 'other' until it reaches k, so no small cell
-- can be recovered by subtraction).
CREATE TABLE trends.monthly (
    month     date    NOT NULL,
    dimension text    NOT NULL,
    value     text    NOT NULL,
    users     integer NOT NULL,
    events    bigint  NOT NULL,
    credits   numeric,
    complete  boolean NOT NULL,
    PRIMARY KEY (month, dimension, value)
) PARTITION BY RANGE (month);
COMMENT ON TABLE trends.monthly IS
    'Anonymised monthly trends (3 years): users, events and credits per dimension value, cells under k users merged into other.';

INSERT INTO meta.partitioned_tables (table_name, granularity, retention_key) VALUES
    ('agg.user_daily_activity', 'month', 'aggregates_days'),
    ('agg.user_daily_region', 'month', 'aggregates_days'),
    ('agg.user_daily_language', 'month', 'aggregates_days'),
    ('agg.user_daily_feature', 'month', 'aggregates_days'),
    ('agg.user_daily_usage', 'month', 'aggregates_days'),
    ('agg.sessions', 'month', 'aggregates_days'),
    ('agg.model_latency_daily', 'month', 'aggregates_days'),
    ('trends.monthly', 'month', 'trends_days');

-- Deletions that must also hold for data still in flight (a Collector's persistent queue
-- may deliver a deleted user's older events after the deletion): the loader drops events
-- of these users up to the deletion time. Only a digest is kept, never the pseudonym.
CREATE TABLE privacy.forgotten_pseudonyms (
    digest       text PRIMARY KEY,
    forgotten_at timestamptz NOT NULL
);
COMMENT ON TABLE privacy.forgotten_pseudonyms IS
    'SHA-256 of deleted pseudonyms and when they were deleted; events of theirs up to that time are refused.';
