-- Least privilege for the internet-facing gateway: the caret_gateway role may read and
-- write consent (and the nonces of signed consent assertions) and run the deletion
-- function - nothing else. The deletion itself runs as the function's owner
-- (SECURITY DEFINER, with a fixed search_path), so the gateway needs no DELETE right on
-- any table, and every deletion is validated, idempotent per subject and audited.

CREATE TABLE IF NOT EXISTS privacy.consent_assertion_nonces (
    nonce      text        PRIMARY KEY,   -- '<key id>:<nonce>' of a used consent assertion
    expires_at timestamptz NOT NULL       -- after this the assertion is too old anyway
);
CREATE INDEX IF NOT EXISTS consent_assertion_nonces_expires
    ON privacy.consent_assertion_nonces (expires_at);
COMMENT ON TABLE privacy.consent_assertion_nonces IS
    'Nonces of consent assertions already used (replay guard); pruned by the retention job.';

DO $role$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'caret_gateway') THEN
        BEGIN
            -- LOGIN without a password, like the other roles: migrate() sets it from
            -- CARET_OTEL_GATEWAY_PASSWORD.
            CREATE ROLE caret_gateway LOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO caret_gateway', current_database());
END
$role$;

GRANT USAGE ON SCHEMA privacy TO caret_gateway;
GRANT SELECT, INSERT, UPDATE ON privacy.consent TO caret_gateway;
GRANT SELECT, INSERT, UPDATE ON privacy.consent_assertion_nonces TO caret_gateway;

-- Delete a user everywhere (see caret_otel.exporters.postgres.deletion). Every table with
-- a user_pseudonym column in the exporter's schemas is found in the catalog; raw events
-- are also deleted when a pseudonym sits in any attribute; an opt-out in privacy.consent
-- stays (opt-ins go). p_expected_tables lists tables that must be covered: the function
-- refuses (before deleting anything) when one of them is not found. A request id that
-- completed before returns its recorded result when it was for the same pseudonyms, and
-- fails with SQLSTATE CO409 when it was for another subject.
CREATE OR REPLACE FUNCTION privacy.forget_user(
    p_request_id text,
    p_pseudonyms text[],
    p_expected_tables text[] DEFAULT '{}'
) RETURNS jsonb
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $forget$
DECLARE
    v_pseudonyms text[];
    v_digests    text[];
    v_row        record;
    v_requested  timestamptz;
    v_completed  timestamptz;
    v_removed    jsonb := '{}'::jsonb;
    v_tables     text[];
    v_table      text;
    v_count      bigint;
BEGIN
    IF p_request_id IS NULL OR length(p_request_id) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'request_id: must be 1 to 200 characters' USING ERRCODE = '22023';
    END IF;
    IF p_pseudonyms IS NULL OR cardinality(p_pseudonyms) NOT BETWEEN 1 AND 64 THEN
        RAISE EXCEPTION 'user_pseudonyms: 1 to 64 pseudonyms per request' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_pseudonyms) AS p(value)
               WHERE value IS NULL OR value !~ '^v[A-Za-z0-9_-]{1,32}:[0-9a-f]{64}$') THEN
        RAISE EXCEPTION 'user_pseudonyms: not a keyed pseudonym (expected v<key-id>:<64 hex>)'
            USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(DISTINCT value ORDER BY value) INTO v_pseudonyms
        FROM unnest(p_pseudonyms) AS p(value);
    SELECT array_agg(d ORDER BY d) INTO v_digests
        FROM (SELECT DISTINCT encode(sha256(convert_to(value, 'UTF8')), 'hex') AS d
              FROM unnest(v_pseudonyms) AS p(value)) AS digests;

    -- Wait for loads in flight and for a running rollup; later ones see the result.
    -- (caret_otel.exporters.postgres.locks: FORGET_LOCK_KEY, then ROLLUP_LOCK_KEY)
    PERFORM pg_advisory_xact_lock(27973166650639951);
    PERFORM pg_advisory_xact_lock(27973166650643020);

    SELECT requested_at, completed_at, rows_removed, pseudonym_digests INTO v_row
        FROM privacy.deletion_requests WHERE request_id = p_request_id;
    IF FOUND THEN
        IF v_row.pseudonym_digests IS DISTINCT FROM v_digests THEN
            RAISE EXCEPTION 'Idempotency-Key: this request id was used for another user'
                USING ERRCODE = 'CO409';
        END IF;
        IF v_row.completed_at IS NOT NULL THEN
            RETURN jsonb_build_object(
                'request_id', p_request_id, 'rows_removed', v_row.rows_removed,
                'requested_at', v_row.requested_at, 'completed_at', v_row.completed_at,
                'already_completed', true);
        END IF;
    END IF;

    SELECT array_agg(format('%I.%I', n.nspname, c.relname) ORDER BY n.nspname, c.relname)
        INTO v_tables
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE a.attname = 'user_pseudonym' AND NOT a.attisdropped
          AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND n.nspname IN ('raw', 'core', 'agg', 'trends', 'privacy');
    IF EXISTS (SELECT 1 FROM unnest(coalesce(p_expected_tables, '{}')) AS t(name)
               WHERE NOT name = ANY (coalesce(v_tables, '{}'))) THEN
        RAISE EXCEPTION 'expected_tables: a per-user table has no user_pseudonym column or does not exist'
            USING ERRCODE = '42P01';
    END IF;

    v_requested := now();
    FOREACH v_table IN ARRAY coalesce(v_tables, '{}') LOOP
        IF v_table = 'raw.events' THEN
            DELETE FROM raw.events e
            WHERE e.user_pseudonym = ANY (v_pseudonyms)
               OR EXISTS (SELECT 1 FROM unnest(v_pseudonyms) AS p(value)
                          WHERE jsonb_path_exists(e.attrs, '$.** ? (@ == $p)',
                                                  jsonb_build_object('p', p.value)));
        ELSIF v_table = 'privacy.consent' THEN
            -- An opt-out outlives the deletion; an opt-in does not.
            DELETE FROM privacy.consent
            WHERE user_pseudonym = ANY (v_pseudonyms) AND telemetry_enabled;
        ELSE
            EXECUTE format('DELETE FROM %s WHERE user_pseudonym = ANY ($1)', v_table)
                USING v_pseudonyms;
        END IF;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_removed := v_removed || jsonb_build_object(v_table, v_count);
    END LOOP;

    INSERT INTO privacy.forgotten_pseudonyms (digest, forgotten_at)
        SELECT d, now() FROM unnest(v_digests) AS d
        ON CONFLICT (digest) DO UPDATE SET forgotten_at = excluded.forgotten_at;
    INSERT INTO privacy.deletion_requests
        (request_id, pseudonym_digests, requested_at, completed_at, rows_removed)
        VALUES (p_request_id, v_digests, v_requested, clock_timestamp(), v_removed)
        ON CONFLICT (request_id) DO UPDATE
            SET completed_at = excluded.completed_at, rows_removed = excluded.rows_removed
        RETURNING completed_at INTO v_completed;
    RETURN jsonb_build_object(
        'request_id', p_request_id, 'rows_removed', v_removed,
        'requested_at', v_requested, 'completed_at', v_completed,
        'already_completed', false);
END
$forget$;

REVOKE ALL ON FUNCTION privacy.forget_user(text, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION privacy.forget_user(text, text[], text[]) TO caret_gateway, caret_writer;

-- core.users holds one row per user; it expires a year after the user's last activity
-- (the retention job deletes older rows with privacy.expire_users()).
CREATE OR REPLACE FUNCTION privacy.expire_users(p_now timestamptz) RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $expire$
    WITH gone AS (
        DELETE FROM core.users WHERE last_seen_at < p_now - interval '1 year' RETURNING 1
    )
    SELECT count(*) FROM gone;
$expire$;
COMMENT ON FUNCTION privacy.expire_users(timestamptz) IS
    'Deletes core.users rows whose last activity is more than a year before p_now.';
