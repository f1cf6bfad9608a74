-- Call-state webhooks of POST /v1/call (issue 4): an outbox of call events and its delivery log.
--
-- Events are written by a trigger on call_attempts, in the transaction that commits the state
-- they describe: an event exists exactly when its state is committed, so a crash anywhere loses
-- none and invents none. The fan-out process delivers them (actors/fanout/webhooks.c), oldest
-- first per call, retrying with back-off; rows are kept after delivery or failure as the record.
--
-- The dialer group-commits attempts, so one INSERT or UPDATE may carry several transitions of an
-- attempt (dialed, answered and ended in the same batch): each becomes its own event, in state
-- order, with its own time.

CREATE TABLE call_events (
    id              bigserial PRIMARY KEY,
    account_id      bigint NOT NULL,
    call_id         bigint NOT NULL REFERENCES calls (id) ON DELETE CASCADE, -- the v1 call the event is posted for
    campaign_id     bigint NOT NULL,
    attempt_id      bigint NOT NULL, -- call_attempts.call_id
    type            text NOT NULL CHECK (type IN ('call.dialing', 'call.answered', 'call.bridged', 'call.ended')),
    payload         jsonb NOT NULL,
    occurred_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- delivery: attempts counts claims; next_attempt_at is the retry time, or the claim's lease
    -- while a deliverer holds it; exactly one of delivered_at and failed_at ends an event
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    failed_at       timestamptz,
    last_error      text,
    CONSTRAINT call_events_settled_check CHECK (delivered_at IS NULL OR failed_at IS NULL)
);
-- The deliverer's scan: the oldest pending event of each call.
CREATE INDEX call_events_pending ON call_events (call_id, id) WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX call_events_call ON call_events (call_id, occurred_at);

-- One row per delivery attempt (the delivery log).
CREATE TABLE call_event_deliveries (
    id           bigserial PRIMARY KEY,
    event_id     bigint NOT NULL REFERENCES call_events (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    http_status  integer, -- NULL when no response arrived
    error        text,    -- NULL on success
    duration_ms  integer NOT NULL
);
CREATE INDEX call_event_deliveries_event ON call_event_deliveries (event_id, attempted_at);

-- Times as receivers read them: UTC, milliseconds, whatever the session's TimeZone.
CREATE FUNCTION call_events_time(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE FUNCTION call_attempts_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_call bigint;
    base jsonb;
    data jsonb;
BEGIN
    SELECT id INTO v_call FROM calls WHERE campaign_id = NEW.campaign_id ORDER BY id LIMIT 1;
    IF v_call IS NULL THEN
        RETURN NULL; -- an admin campaign: its attempts have no call_state_url
    END IF;
    -- Each event's payload shows the attempt as it stood at that transition, not as it stands
    -- after the whole batch: an answered event never carries the end of the call.
    base := jsonb_build_object('call_id', v_call, 'uri', '/v1/calls/' || v_call, 'campaign_id', NEW.campaign_id,
                               'attempt_id', NEW.call_id, 'phone', NEW.phone, 'from', NEW.from_number,
                               'dialed_at', call_events_time(NEW.dialed_at));
    IF TG_OP = 'INSERT' THEN
        INSERT INTO call_events (account_id, call_id, campaign_id, attempt_id, type, payload, occurred_at)
        VALUES (NEW.account_id, v_call, NEW.campaign_id, NEW.call_id, 'call.dialing', base, NEW.dialed_at);
    END IF;
    IF NEW.answered_at IS NOT NULL THEN
        base := base || jsonb_build_object('answered_at', call_events_time(NEW.answered_at));
        IF TG_OP = 'INSERT' OR OLD.answered_at IS NULL THEN
            INSERT INTO call_events (account_id, call_id, campaign_id, attempt_id, type, payload, occurred_at)
            VALUES (NEW.account_id, v_call, NEW.campaign_id, NEW.call_id, 'call.answered', base, NEW.answered_at);
        END IF;
    END IF;
    IF NEW.bridged_at IS NOT NULL THEN
        base := base || jsonb_build_object('bridged_at', call_events_time(NEW.bridged_at), 'caller_id', NEW.caller_id);
        IF TG_OP = 'INSERT' OR OLD.bridged_at IS NULL THEN
            INSERT INTO call_events (account_id, call_id, campaign_id, attempt_id, type, payload, occurred_at)
            VALUES (NEW.account_id, v_call, NEW.campaign_id, NEW.call_id, 'call.bridged', base, NEW.bridged_at);
        END IF;
    END IF;
    IF NEW.ended_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.ended_at IS NULL) THEN
        data := base || jsonb_build_object('ended_at', call_events_time(NEW.ended_at), 'outcome', NEW.outcome,
                                           'abandoned', NEW.abandoned);
        INSERT INTO call_events (account_id, call_id, campaign_id, attempt_id, type, payload, occurred_at)
        VALUES (NEW.account_id, v_call, NEW.campaign_id, NEW.call_id, 'call.ended', data, NEW.ended_at);
    END IF;
    -- Notifications with the same payload fold into one at commit: one wake-up per batch.
    PERFORM pg_notify('call_events', '');
    RETURN NULL;
END $$;
CREATE TRIGGER call_attempts_events AFTER INSERT OR UPDATE ON call_attempts
    FOR EACH ROW EXECUTE FUNCTION call_attempts_events();
