-- Events (issue 5): every state change a customer may follow, numbered once, in commit order.
--
-- Producers never number events. A trigger writes the event into event_inbox in the transaction
-- that commits the state it describes (so an event exists exactly when its state is committed),
-- and wakes the sequencer with NOTIFY event_inbox. The sequencer (events_sequence below, run by
-- the fan-out process: actors/fanout/sequencer.c) moves committed inbox rows into events, giving
-- each its public id there.
--
-- Why one sequencer assigns the ids, rather than a bigserial on events filled by the producers:
-- a sequence hands out numbers when rows are inserted, but rows become visible when their
-- transactions commit, and concurrent transactions commit in any order. The dialer of campaign A
-- may take id 41 and the dialer of campaign B id 42, and B commit first. A reader that pages with
-- a cursor (the events API's `after`, a stream's Last-Event-ID) then reads 42, remembers it, and
-- asks for ids above 42 from then on: when A commits a moment later, 41 is never delivered to
-- anyone who was following. Nothing fails and nothing is logged; the event is just skipped. The
-- longer a producer's transaction (an import batch, a dialer's group commit), the wider the window.
--
-- The sequencer closes it: it takes pg_advisory_xact_lock(EVENTS_SEQUENCER_LOCK), so only one
-- numbering transaction runs at a time; under the lock, each statement's snapshot already holds
-- everything the previous numbering transaction committed (locks are released after the commit
-- is visible); it numbers the inbox rows it can see from the last id up and deletes them, and
-- commits before the next one can start. So ids are assigned in the order they become visible,
-- without gaps: a reader that has seen id N will never later find a committed event below N.
-- Inbox rows still uncommitted when a batch runs are numbered by a later batch, above it.
-- Within a batch, rows keep the order of their inbox ids, which is insertion order within one
-- producer transaction (a dial's dialing before its answer), and across the transactions of one
-- writer (a campaign has one dialer, which commits each batch before writing the next).
--
-- A stream is a filter on events: an account's (account_id), a campaign's (campaign_id), a
-- caller's (caller_id). Ids increase within each because they increase globally. The catalog of
-- types, their streams and payloads is schemas/events.json (docs/events.md); the event_type
-- domain below must list exactly its types (tests/test_events.c compares them).
--
-- No foreign keys: producers write the inbox on the dialer's hot path from rows whose tenancy is
-- already checked, accounts are never deleted, and a key check the sequencer could fail would
-- stop every account's events behind one row.

CREATE DOMAIN event_type AS text CONSTRAINT event_type_check CHECK (VALUE IN (
    'call.dialing', 'call.answered', 'call.bridged', 'call.ended',
    'campaign.started', 'campaign.paused', 'campaign.resumed', 'campaign.stopped',
    'list.import_completed', 'list.import_failed'));

-- Written by producers' triggers; emptied by the sequencer. The id orders rows, nothing else.
CREATE TABLE event_inbox (
    id           bigserial PRIMARY KEY,
    account_id   bigint NOT NULL,
    campaign_id  bigint,
    caller_id    bigint,
    type         event_type NOT NULL,
    occurred_at  timestamptz NOT NULL,
    payload      jsonb NOT NULL
);

CREATE TABLE events (
    id           bigint PRIMARY KEY, -- assigned by events_sequence only
    account_id   bigint NOT NULL,
    campaign_id  bigint,
    caller_id    bigint,
    type         event_type NOT NULL,
    occurred_at  timestamptz NOT NULL, -- when the state changed
    created_at   timestamptz NOT NULL, -- when the event was numbered and became readable
    payload      jsonb NOT NULL
);
-- The readers' scans: an account's, a campaign's and a caller's events by id.
CREATE INDEX events_account ON events (account_id, id);
CREATE INDEX events_campaign ON events (campaign_id, id) WHERE campaign_id IS NOT NULL;
CREATE INDEX events_caller ON events (caller_id, id) WHERE caller_id IS NOT NULL;

-- The last id given; one row. A counter rather than max(events.id) so that ids are never reused
-- once old events are deleted.
CREATE TABLE events_sequencer (
    last_id  bigint NOT NULL,
    one      boolean PRIMARY KEY DEFAULT true CHECK (one)
);
INSERT INTO events_sequencer (last_id) VALUES (0);

-- Numbers up to `max` committed inbox rows (1 to 100000) and returns how many it moved; safe to
-- call from any connection at any time, concurrently (the lock serialises the callers). It must
-- run in a READ COMMITTED transaction of its own: the snapshot of each statement after the lock
-- is what makes the previous batch visible. Readers are woken with NOTIFY events (the new last id).
CREATE FUNCTION events_sequence(max integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    last bigint;
    moved integer;
BEGIN
    IF max IS NULL OR max < 1 OR max > 100000 THEN
        RAISE EXCEPTION 'events_sequence: max must be 1 to 100000, not %', max USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- EVENTS_SEQUENCER_LOCK: 'evnt' as an integer; no other advisory lock takes a single key
    -- except the migrations' (DB_MIGRATION_LOCK_KEY, a different number).
    PERFORM pg_advisory_xact_lock(1702260340);
    SELECT last_id INTO last FROM events_sequencer;
    WITH taken AS (
        DELETE FROM event_inbox WHERE id IN (SELECT id FROM event_inbox ORDER BY id LIMIT max)
        RETURNING id, account_id, campaign_id, caller_id, type, occurred_at, payload
    )
    INSERT INTO events (id, account_id, campaign_id, caller_id, type, occurred_at, created_at, payload)
    SELECT last + row_number() OVER (ORDER BY id), account_id, campaign_id, caller_id, type, occurred_at, now(), payload
      FROM taken;
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved > 0 THEN
        UPDATE events_sequencer SET last_id = last + moved;
        PERFORM pg_notify('events', (last + moved)::text);
    END IF;
    RETURN moved;
END $$;

-- One event into the inbox, and the sequencer woken (one notification per transaction: equal
-- notifications fold at commit).
CREATE FUNCTION event_publish(account bigint, campaign bigint, caller bigint, kind event_type, occurred timestamptz,
                              payload jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_inbox (account_id, campaign_id, caller_id, type, occurred_at, payload)
    VALUES (account, campaign, caller, kind, occurred, payload);
    PERFORM pg_notify('event_inbox', '');
END $$;

-- Every committed transition of every call attempt, of every campaign: the same transitions,
-- times and cumulative payloads as 0008's call_events (which only v1 calls have, for their
-- call_state_url), plus call_id when the campaign belongs to a v1 call. The caller is part of a
-- call's events (and of the caller's stream) from its bridge on.
CREATE FUNCTION call_attempts_publish() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_call bigint;
    base jsonb;
BEGIN
    SELECT id INTO v_call FROM calls WHERE campaign_id = NEW.campaign_id ORDER BY id LIMIT 1;
    base := jsonb_build_object('attempt_id', NEW.call_id, 'campaign_id', NEW.campaign_id, 'call_id', v_call,
                               'phone', NEW.phone, 'from', NEW.from_number, 'dialed_at', call_events_time(NEW.dialed_at));
    IF TG_OP = 'INSERT' THEN
        PERFORM event_publish(NEW.account_id, NEW.campaign_id, NULL, 'call.dialing', NEW.dialed_at, base);
    END IF;
    IF NEW.answered_at IS NOT NULL THEN
        base := base || jsonb_build_object('answered_at', call_events_time(NEW.answered_at));
        IF TG_OP = 'INSERT' OR OLD.answered_at IS NULL THEN
            PERFORM event_publish(NEW.account_id, NEW.campaign_id, NULL, 'call.answered', NEW.answered_at, base);
        END IF;
    END IF;
    IF NEW.bridged_at IS NOT NULL THEN
        base := base || jsonb_build_object('bridged_at', call_events_time(NEW.bridged_at), 'caller_id', NEW.caller_id);
        IF TG_OP = 'INSERT' OR OLD.bridged_at IS NULL THEN
            PERFORM event_publish(NEW.account_id, NEW.campaign_id, NEW.caller_id, 'call.bridged', NEW.bridged_at, base);
        END IF;
    END IF;
    IF NEW.ended_at IS NOT NULL AND (TG_OP = 'INSERT' OR OLD.ended_at IS NULL) THEN
        base := base || jsonb_build_object('ended_at', call_events_time(NEW.ended_at), 'outcome', NEW.outcome,
                                           'abandoned', NEW.abandoned);
        PERFORM event_publish(NEW.account_id, NEW.campaign_id, CASE WHEN NEW.bridged_at IS NOT NULL THEN NEW.caller_id END,
                              'call.ended', NEW.ended_at, base);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER call_attempts_publish AFTER INSERT OR UPDATE ON call_attempts
    FOR EACH ROW EXECUTE FUNCTION call_attempts_publish();

-- A campaign's status changes: started (from stopped, or created running), paused, resumed
-- (paused to running) and stopped.
CREATE FUNCTION campaigns_publish() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous text := CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END;
    kind event_type;
BEGIN
    kind := CASE
        WHEN NEW.status = 'running' AND previous = 'paused' THEN 'campaign.resumed'
        WHEN NEW.status = 'running' THEN 'campaign.started'
        WHEN NEW.status = 'paused' THEN 'campaign.paused'
        WHEN NEW.status = 'stopped' AND previous IS NOT NULL THEN 'campaign.stopped'
    END;
    IF kind IS NOT NULL THEN
        PERFORM event_publish(NEW.account_id, NEW.id, NULL, kind, now(),
                              jsonb_build_object('campaign_id', NEW.id, 'uri', '/v1/campaigns/' || NEW.id, 'name', NEW.name,
                                                 'origin', NEW.origin, 'status', NEW.status, 'previous_status', previous));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER campaigns_publish_insert AFTER INSERT ON campaigns
    FOR EACH ROW WHEN (NEW.status <> 'stopped') EXECUTE FUNCTION campaigns_publish();
CREATE TRIGGER campaigns_publish_update AFTER UPDATE OF status ON campaigns
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION campaigns_publish();

-- The end of a list's import (or prune), with its counts, in the transaction that records it.
CREATE FUNCTION lists_publish() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM event_publish(NEW.account_id, NEW.campaign_id, NULL,
                          CASE NEW.status WHEN 'completed' THEN 'list.import_completed' ELSE 'list.import_failed' END,
                          coalesce(NEW.finished_at, now()),
                          jsonb_build_object('list_id', NEW.id, 'uri', '/v1/lists/' || NEW.id, 'name', NEW.name,
                                             'campaign_id', NEW.campaign_id, 'purpose', NEW.purpose, 'status', NEW.status,
                                             'rows_total', NEW.rows_total, 'rows_imported', NEW.rows_imported,
                                             'rows_invalid', NEW.rows_invalid, 'rows_duplicate', NEW.rows_duplicate,
                                             'rows_blocked', NEW.rows_blocked, 'rows_removed', NEW.rows_removed,
                                             'failure', NEW.failure));
    RETURN NULL;
END $$;
CREATE TRIGGER lists_publish AFTER UPDATE OF status ON lists
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('completed', 'failed'))
    EXECUTE FUNCTION lists_publish();
