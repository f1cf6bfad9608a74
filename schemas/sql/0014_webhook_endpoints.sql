-- Webhook endpoints (issue 5): URLs that receive an account's events, or one campaign's, as they
-- are numbered, with a delivery outbox and its log.
--
-- The outbox is filled by a statement trigger on events, so a delivery row exists exactly when
-- its event does: the sequencer's numbering transaction (events_sequence, 0009) commits both, and
-- neither the sequencer's code nor its function has to know about endpoints. One statement per
-- numbering batch joins the batch with the account's endpoints, rather than one lookup per event.
--
-- An endpoint gets the events numbered while it is enabled. A disabled endpoint (by the customer,
-- or by a 410 Gone) gets no new rows, and its pending rows stay pending: re-enabling resumes them
-- in order, and a replay (POST .../replay) fills in what was numbered in between.
--
-- Order: a stream is an endpoint's events of one campaign, or its account-level events (stream 0).
-- The deliverer (actors/fanout/webhooks.c) only ever sends the pending row of a stream with the
-- lowest event id, and keeps it pending under a lease until its attempt is settled, so a stream
-- never has two deliveries in flight and receives its events in id order.

-- Every name a type of the catalog: casting to the domain raises its check (event_type_check),
-- which the API reports against event_types.
CREATE FUNCTION webhook_event_types_valid(types jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_typeof(types) = 'array'
       AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(types) t WHERE t::event_type IS NULL)
$$;

CREATE TABLE webhook_endpoints (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id       bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url              text NOT NULL,
    campaign_id      bigint,
    event_types      jsonb NOT NULL DEFAULT '[]' CHECK (webhook_event_types_valid(event_types)),
    description      text,
    enabled          boolean NOT NULL DEFAULT true,
    disabled_reason  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, id),
    CONSTRAINT webhook_endpoints_campaign_id_fkey FOREIGN KEY (account_id, campaign_id) REFERENCES campaigns (account_id, id)
        ON DELETE CASCADE
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, id);
CREATE TRIGGER webhook_endpoints_touch BEFORE UPDATE ON webhook_endpoints FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- One row per (endpoint, event) to deliver; a replay adds another row for the same event.
-- attempts counts claims; next_attempt_at is the retry time, or the claim's lease while a
-- deliverer holds it. Rows are kept after they settle, as the delivery log.
CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id       bigint NOT NULL,
    endpoint_id      bigint NOT NULL,
    event_id         bigint NOT NULL, -- events.id, and the webhook-id of every attempt
    stream           bigint NOT NULL, -- the event's campaign, 0 for account-level events
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    settled_at       timestamptz,
    last_error       text,
    replay           boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (account_id, endpoint_id) REFERENCES webhook_endpoints (account_id, id) ON DELETE CASCADE
);
-- The deliverer's scan: the head (lowest event id) of each pending stream.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, stream, event_id, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

-- One row per attempt (the delivery log).
CREATE TABLE webhook_delivery_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL,
    http_status  integer, -- NULL when no response arrived
    error        text,    -- NULL on success
    duration_ms  integer NOT NULL
);
CREATE INDEX webhook_delivery_attempts_delivery ON webhook_delivery_attempts (delivery_id, id);

-- The rows of a numbering batch for every enabled endpoint that wants them, in event id order,
-- and the deliverer woken (one notification per transaction: equal notifications fold).
CREATE FUNCTION events_webhook_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (account_id, endpoint_id, event_id, stream)
    SELECT w.account_id, w.id, e.id, coalesce(e.campaign_id, 0)
      FROM added e
      JOIN webhook_endpoints w ON w.account_id = e.account_id AND w.enabled
       AND (w.campaign_id IS NULL OR w.campaign_id = e.campaign_id)
       AND (w.event_types = '[]' OR w.event_types ? e.type)
     ORDER BY e.id, w.id;
    IF FOUND THEN
        PERFORM pg_notify('webhook_deliveries', '');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER events_webhook_deliveries AFTER INSERT ON events REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION events_webhook_deliveries();
