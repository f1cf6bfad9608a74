-- A call's status callbacks through the API (GET /v1/calls/{id}/deliveries): each event posted
-- to the call's URL, its state and every attempt, the log that webhook endpoints already have.
--
-- The list reads a call's events in id order, so an index on (call_id, id) comes back (0019
-- dropped the one on (call_id, occurred_at) while nothing read it). Every delivery updates its
-- event outside HOT, so this index gets an entry per delivery too; its pages are left half empty
-- for the same reason as the primary key's (0019).

CREATE INDEX call_events_call ON call_events (call_id, id) WITH (fillfactor = 50);

CREATE VIEW call_deliveries AS
    SELECT id, account_id, call_id, type, occurred_at,
           CASE WHEN delivered_at IS NOT NULL THEN 'delivered'
                WHEN failed_at IS NOT NULL THEN 'failed'
                ELSE 'pending' END AS state,
           CASE WHEN delivered_at IS NULL AND failed_at IS NULL THEN next_attempt_at END AS next_attempt_at,
           coalesce(delivered_at, failed_at) AS settled_at,
           last_error,
           created_at,
           coalesce(delivered_at, failed_at, created_at) AS updated_at
      FROM call_events;
