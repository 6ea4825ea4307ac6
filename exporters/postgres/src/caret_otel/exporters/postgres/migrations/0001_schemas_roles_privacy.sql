-- Schemas, roles and the privacy tables (consent, deletion audit).
--
-- Roles are cluster-wide while this file runs once per database, possibly in several
-- databases at the same time (one advisory lock per database does not serialise them),
-- so creating a role tolerates "already exists" from a concurrent run.
DO $roles$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['caret_writer', 'caret_analyst'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                -- LOGIN without a password: only trusted local sockets can use it until
                -- migrate() sets the password from the environment.
                EXECUTE format('CREATE ROLE %I LOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$roles$;

DO $connect$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO caret_writer, caret_analyst', current_database());
END
$connect$;

-- Nobody but the owner may create objects in public (PostgreSQL 15+ default; made explicit).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

CREATE SCHEMA IF NOT EXISTS raw;        -- per-event rows, 30 days
CREATE SCHEMA IF NOT EXISTS core;       -- one row per user, kept while the account lives
CREATE SCHEMA IF NOT EXISTS agg;        -- daily rollups, 1 year
CREATE SCHEMA IF NOT EXISTS trends;     -- anonymised monthly cells, 3 years
CREATE SCHEMA IF NOT EXISTS analytics;  -- the analysts' views (a contract)
CREATE SCHEMA IF NOT EXISTS privacy;    -- consent and the deletion audit

-- Writer: the exporter, the gateway's consent store and deletion. Analyst: read-only,
-- analytics.* and trends.* only (Grafana uses it).
GRANT USAGE ON SCHEMA raw, core, agg, trends, analytics, privacy TO caret_writer;
GRANT USAGE ON SCHEMA analytics, trends TO caret_analyst;

CREATE TABLE IF NOT EXISTS privacy.consent (
    user_pseudonym    text PRIMARY KEY,
    telemetry_enabled boolean NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE privacy.consent IS
    'Latest telemetry setting per user pseudonym; the gateway drops data of users with telemetry_enabled = false.';

CREATE TABLE IF NOT EXISTS privacy.deletion_requests (
    request_id        text PRIMARY KEY,
    -- SHA-256 of each pseudonym, not the pseudonym: after a deletion no table may still
    -- hold the user's pseudonyms, yet an auditor can check a given pseudonym was covered.
    pseudonym_digests text[] NOT NULL,
    requested_at      timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    rows_removed      jsonb NOT NULL DEFAULT '{}'::jsonb
);
COMMENT ON TABLE privacy.deletion_requests IS
    'Audit of forget requests: which pseudonyms, when, and how many rows each table lost.';
