-- Identity links: one row per pair in each load statement.
--
-- 0011's trigger grouped by (user, linked, side), but the table's key is (user, linked):
-- two events of one statement naming the same two pseudonyms the other way round (a
-- machine id and an account id swapped, by a careless or hostile client) gave the pair
-- with both sides, and the upsert failed (cardinality violation), so the exporter
-- answered 503 to that batch on every retry and ingestion stalled behind it.
-- Now each pair takes the side of its first event (by time, then by the device
-- pseudonym, so that both directions of a pair come from the same event and agree).

CREATE OR REPLACE FUNCTION raw.record_identity_links() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO core.identity_links (user_pseudonym, linked_pseudonym, side, first_seen_at)
    SELECT l.user_pseudonym, l.linked_pseudonym,
           (array_agg(l.side ORDER BY l.event_ts, l.device_pseudonym))[1],
           min(l.event_ts)
    FROM (
        SELECT attrs ->> 'caret.device.id' AS user_pseudonym, user_pseudonym AS linked_pseudonym,
               'device' AS side, event_ts, attrs ->> 'caret.device.id' AS device_pseudonym
        FROM linked_events
        WHERE attrs ? 'caret.device.id' AND user_pseudonym IS NOT NULL
          AND attrs ->> 'caret.device.id' <> user_pseudonym
        UNION ALL
        SELECT user_pseudonym, attrs ->> 'caret.device.id', 'account', event_ts,
               attrs ->> 'caret.device.id'
        FROM linked_events
        WHERE attrs ? 'caret.device.id' AND user_pseudonym IS NOT NULL
          AND attrs ->> 'caret.device.id' <> user_pseudonym
    ) l
    WHERE NOT EXISTS (
        SELECT 1 FROM privacy.forgotten_pseudonyms f
        WHERE f.digest IN (encode(sha256(convert_to(l.user_pseudonym, 'UTF8')), 'hex'),
                           encode(sha256(convert_to(l.linked_pseudonym, 'UTF8')), 'hex')))
    GROUP BY l.user_pseudonym, l.linked_pseudonym
    ON CONFLICT (user_pseudonym, linked_pseudonym) DO UPDATE
        SET first_seen_at = least(core.identity_links.first_seen_at, excluded.first_seen_at);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION raw.record_identity_links() FROM PUBLIC;
