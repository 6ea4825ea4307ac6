-- Every load transaction writes one raw.rollup_batches row whose two arrays hold the keys
-- of up to a whole request (~45 kB for 1,000 events). With the default storage PostgreSQL
-- pglz-compresses them before moving them to TOAST, which cost the load path ~2 µs per
-- event; the rows live only until the next rollup, so the disk saved is not worth it.
ALTER TABLE raw.rollup_batches
    ALTER COLUMN event_ids SET STORAGE EXTERNAL,
    ALTER COLUMN event_tss SET STORAGE EXTERNAL;
