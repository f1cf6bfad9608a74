-- The attempt that delivers a call event is recorded on the event (issue 5): one row written per
-- delivered event instead of two. Recording outcomes is what bounds call-state webhooks per
-- second (actors/fanout/webhooks.c, docs/performance.md), and a log row cost as much again as the
-- event's own update: a heap row, two index entries, a sequence number and a foreign key check.
--
-- The delivery log keeps its name and its meaning, every attempt: call_event_deliveries is now a
-- view of the attempts logged in their own rows (those that failed, and the deliveries recorded
-- before this migration) and of the delivering attempts recorded on their events.

ALTER TABLE call_event_deliveries RENAME TO call_event_attempts;
ALTER TABLE call_event_attempts RENAME CONSTRAINT call_event_deliveries_event_id_fkey TO call_event_attempts_event_id_fkey;
ALTER INDEX call_event_deliveries_pkey RENAME TO call_event_attempts_pkey;
ALTER INDEX call_event_deliveries_event RENAME TO call_event_attempts_event;
ALTER SEQUENCE call_event_deliveries_id_seq RENAME TO call_event_attempts_id_seq;

ALTER TABLE call_events
    ADD COLUMN delivered_attempted_at timestamptz, -- the delivering attempt's start, with delivered_at
    ADD COLUMN delivered_status integer,
    ADD COLUMN delivered_duration_ms integer;

CREATE VIEW call_event_deliveries AS
    SELECT event_id, attempted_at, http_status, error, duration_ms FROM call_event_attempts
    UNION ALL
    SELECT id, delivered_attempted_at, delivered_status, NULL, delivered_duration_ms FROM call_events
     WHERE delivered_status IS NOT NULL;
