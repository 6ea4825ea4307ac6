-- The rollup queue is filled by the database: every statement that inserts into
-- raw.events (the exporter's COPY straight into the table, or its idempotent
-- INSERT … ON CONFLICT DO NOTHING from staging) queues the keys of exactly the rows it
-- inserted - a transition table holds no skipped duplicate - as one raw.rollup_batches
-- row. The exporter no longer sends the keys back (binary arrays cost it ~1.4 µs of CPU
-- per event), and no insert path can forget to queue.
CREATE FUNCTION raw.queue_inserted_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO raw.rollup_batches (event_ids, event_tss)
    SELECT array_agg(event_id), array_agg(event_ts) FROM inserted_events HAVING count(*) > 0;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION raw.queue_inserted_events() FROM PUBLIC;
COMMENT ON FUNCTION raw.queue_inserted_events() IS
    'Statement trigger of raw.events: queues the inserted keys for the rollup job.';

CREATE TRIGGER queue_inserted_events
    AFTER INSERT ON raw.events
    REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION raw.queue_inserted_events();

-- Every load reads the deletions at or after its oldest event (usually none).
CREATE INDEX forgotten_pseudonyms_forgotten_at ON privacy.forgotten_pseudonyms (forgotten_at);
