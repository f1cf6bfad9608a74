-- The dialer (actors/dialer): per-number dial state, every call attempt, and the notifications
-- that start and stop a campaign's dialer process.
--
-- Numbers: the importer COPYs them at high speed, so what is added here costs it nothing: two
-- nullable columns without defaults (a catalog change, no rewrite) and a partial index whose
-- predicate no imported row satisfies. status moves not_called -> dialing (claimed by a dialer)
-- -> retry | done | failed; attempts counts claims, and a claim is committed before the number is
-- dialed, with next_attempt_at already a recycle interval ahead, so a dialer killed at any moment
-- can never make a number due again inside its recycle window.

ALTER TABLE numbers ADD COLUMN next_attempt_at timestamptz, ADD COLUMN last_outcome text;
CREATE INDEX numbers_due ON numbers (campaign_id, next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- Seconds left in the calling window of a number right now: calling hours must hold in every
-- zone the number may be in (the campaign's zone when the import found none). 0 when outside.
CREATE FUNCTION dialer_window_left(zones text[], fallback text, starts time, ends time) RETURNS double precision
    LANGUAGE sql STABLE AS $$
    SELECT coalesce(min(CASE WHEN local >= starts AND local < ends THEN extract(epoch FROM ends - local) ELSE 0 END), 0)
      FROM (SELECT (now() AT TIME ZONE z)::time AS local
              FROM unnest(CASE WHEN cardinality(zones) > 0 THEN zones ELSE ARRAY[fallback] END) AS z) AS l
$$;

-- Call ids are the engine's (unique across dialer restarts): each dialer process reserves a block
-- of a billion ids with one nextval at start.
CREATE SEQUENCE call_id_blocks AS bigint INCREMENT BY 1000000000 MINVALUE 1 START WITH 1;

-- One row per dial. Written by the dialer before the carrier is asked to dial (so a call can
-- never exist without its row), then completed as events arrive, in group-committed batches.
CREATE TABLE call_attempts (
    call_id      bigint PRIMARY KEY,
    account_id   bigint NOT NULL,
    campaign_id  bigint NOT NULL,
    number_id    bigint NOT NULL,
    phone        text NOT NULL,
    from_number  text NOT NULL,
    caller_id    bigint,
    dialed_at    timestamptz NOT NULL,
    answered_at  timestamptz,
    bridged_at   timestamptz,
    ended_at     timestamptz,
    outcome      text CHECK (outcome IN ('talked', 'abandoned', 'machine', 'voicemail', 'busy', 'no_answer', 'failed',
                                         'canceled', 'timed_out', 'hung_up')),
    abandoned    boolean NOT NULL DEFAULT false,
    CONSTRAINT call_attempts_ended_check CHECK ((ended_at IS NULL) = (outcome IS NULL))
);
CREATE INDEX call_attempts_campaign ON call_attempts (campaign_id, dialed_at);
CREATE INDEX call_attempts_number ON call_attempts (number_id, dialed_at);
CREATE INDEX call_attempts_open ON call_attempts (campaign_id) WHERE ended_at IS NULL;

-- The supervisor runs one dialer per running or paused campaign and learns of changes here;
-- a dialer learns of its own campaign's pause, resume and stop the same way.
CREATE FUNCTION campaigns_notify_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('campaign_status', NEW.id || ':' || NEW.status);
    RETURN NULL;
END $$;
CREATE TRIGGER campaigns_notify_status AFTER UPDATE OF status ON campaigns
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION campaigns_notify_status();

-- A number blocked after a dialer claimed it must still not be dialed: its dialer re-checks the
-- numbers it holds when told the account's blocked numbers grew. Once per statement, so a bulk
-- block of ten thousand numbers is one notification per account.
CREATE FUNCTION blocked_numbers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('blocked_numbers', a.account_id::text) FROM (SELECT DISTINCT account_id FROM added) AS a;
    RETURN NULL;
END $$;
CREATE TRIGGER blocked_numbers_notify AFTER INSERT ON blocked_numbers
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION blocked_numbers_notify();
