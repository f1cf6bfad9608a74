-- Caller sessions (issue 6, docs/adr/0006-caller-sessions.md): a caller logged in to work on
-- their campaign. The store creates a session when a caller's username and password, or PIN,
-- check out (POST /v1/caller_sessions, the one request that needs no API key); what the caller
-- does afterwards is served by the campaign's dialer, which reads the session from here.
--
-- The token is 256 random bits, kept only as its SHA-256: it is as hard to guess as a key, so a
-- slow hash would only slow every request. One live session per caller: a new login ends the
-- previous one ('replaced'), so a forgotten browser tab cannot keep taking calls. Every session
-- ends by a stated rule: logged out, not seen for its heartbeat timeout (the dialer), past its
-- absolute expiry, or ended by an administrator; ended_at is the record of it.

CREATE TABLE caller_sessions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    caller_id     bigint NOT NULL,
    campaign_id   bigint NOT NULL,
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    via           text NOT NULL CHECK (via IN ('password', 'pin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    end_reason    text CHECK (end_reason IN ('logged_out', 'timed_out', 'expired', 'ended_by_admin', 'replaced')),
    UNIQUE (account_id, id),
    CONSTRAINT caller_sessions_caller_id_fkey FOREIGN KEY (account_id, caller_id) REFERENCES callers (account_id, id),
    CONSTRAINT caller_sessions_campaign_id_fkey FOREIGN KEY (account_id, campaign_id) REFERENCES campaigns (account_id, id),
    CONSTRAINT caller_sessions_ended_check CHECK ((ended_at IS NULL) = (end_reason IS NULL))
);
CREATE UNIQUE INDEX caller_sessions_one_live ON caller_sessions (caller_id) WHERE ended_at IS NULL;
CREATE INDEX caller_sessions_campaign ON caller_sessions (campaign_id) WHERE ended_at IS NULL;
CREATE TRIGGER caller_sessions_touch BEFORE UPDATE ON caller_sessions FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- The dialer serving a session learns at once that it ended elsewhere (logout, replacement, an
-- administrator): the payload is "<campaign id>:<session id>".
CREATE FUNCTION caller_sessions_notify_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('caller_sessions', NEW.campaign_id || ':' || NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER caller_sessions_notify_end AFTER UPDATE OF ended_at ON caller_sessions
    FOR EACH ROW WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL) EXECUTE FUNCTION caller_sessions_notify_end();

-- Failed logins, for the lockout: too many for one login name of an account in a window and the
-- next attempts are refused without checking the password. Rows older than the window are
-- pruned by the login itself.
CREATE TABLE caller_login_failures (
    account_id  bigint NOT NULL,
    login       text NOT NULL, -- the username, or 'pin' for PIN logins
    failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX caller_login_failures_recent ON caller_login_failures (account_id, login, failed_at);
