-- Webhook delivery from queues held in memory (issue 5, actors/fanout/webhooks.c): the deliverer
-- claims the pending events of a call (call_events, 0008), or of an endpoint's stream
-- (webhook_deliveries, 0014), together, posts them one after another from memory, and records
-- the outcomes of many deliveries in one statement. Before, every event was claimed alone (a row
-- written per event, a scan of every pending event's index entry to find each call's oldest) and
-- settled alone, and PostgreSQL bounded deliveries per second far below what the network allows.
--
-- What a deliverer holds is leased per call or stream, in the tables below, rather than per
-- event: a claim writes one row per call or stream instead of one per event, and no other
-- deliverer takes the call or stream while the lease lasts, so its events still go out one at a
-- time and in order. A lease names its holder (a host and a data directory: one impactd
-- instance): a fan-out process restarted after a crash takes its predecessor's leases over at
-- once, since the supervisor starts it only once the other is gone, while another instance waits
-- for them to end. A deliverer deletes its lease when it lets the call or stream go.
--
-- The events' own columns change meaning slightly: `attempts` counts recorded attempts (the
-- outcome's statement increments it, and only when the row still has the count the attempt was
-- made at, so recording an outcome twice, after a lost connection, changes nothing), and
-- `next_attempt_at` is only ever the retry time, never a lease.

CREATE TABLE call_event_leases (
    call_id bigint PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    holder  text NOT NULL,
    until   timestamptz NOT NULL
);

CREATE TABLE webhook_stream_leases (
    endpoint_id bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    stream      bigint NOT NULL, -- as webhook_deliveries.stream: a campaign, 0 for account-level events
    holder      text NOT NULL,
    until       timestamptz NOT NULL,
    PRIMARY KEY (endpoint_id, stream)
);
