-- The rollup queue holds one row per load transaction (the keys it inserted, as two
-- parallel arrays) instead of one row per event: loading writes one small row and no
-- per-event index entries, which keeps the load path close to a raw COPY.

CREATE TABLE raw.rollup_batches (
    batch_id    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    event_ids   text[]      NOT NULL,
    event_tss   timestamptz[] NOT NULL,
    CHECK (cardinality(event_ids) = cardinality(event_tss))
);
COMMENT ON TABLE raw.rollup_batches IS
    'Keys of stored events not yet folded into the rollups, one row per load transaction.';

-- Keys queued by the previous layout move over as one batch.
INSERT INTO raw.rollup_batches (enqueued_at, event_ids, event_tss)
SELECT min(enqueued_at), array_agg(event_id ORDER BY enqueued_at), array_agg(event_ts ORDER BY enqueued_at)
FROM raw.rollup_queue
HAVING count(*) > 0;

DROP TABLE raw.rollup_queue;
