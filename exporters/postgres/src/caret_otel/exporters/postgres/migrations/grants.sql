-- Re-applied after every migration run that changed something (idempotent).
-- The writer reads and writes everything it loads, rolls up, retains and deletes; the
-- analyst reads analytics.* and trends.* only.
GRANT USAGE ON SCHEMA meta TO caret_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA meta TO caret_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA raw, core, agg, trends, privacy TO caret_writer;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA raw, core, agg, trends, privacy TO caret_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO caret_writer;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA meta TO caret_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA analytics, trends TO caret_analyst;
-- The gateway records which pseudonym keys it uses (0009; `forget` checks them).
GRANT SELECT, INSERT ON privacy.pseudonym_key_fingerprints TO caret_gateway;
