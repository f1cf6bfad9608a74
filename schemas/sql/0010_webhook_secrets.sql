-- Signing secrets of webhooks (issue 5): Standard Webhooks, one or more per account.
--
-- Every account has a secret from its creation (a trigger), and deliveries are signed with every
-- secret that has not expired, newest first (actors/fanout/webhooks.c). Rotating
-- (POST /v1/webhook_secrets) adds a secret and gives the older ones an expiry, so a receiver can
-- move to the new secret while deliveries still verify with the old one. Expired secrets are kept
-- as the record of what signed past deliveries.

-- "whsec_" and the base64 of 24 random bytes. pgcrypto is not assumed to be installed; the
-- built-in gen_random_uuid() draws from the same strong random source (pg_strong_random), and
-- SHA-256 folds the 244 random bits of two version-4 UUIDs into 24 uniform bytes.
CREATE FUNCTION webhook_secret_new() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT 'whsec_' || encode(substring(sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())) FOR 24), 'base64')
$$;

CREATE TABLE webhook_secrets (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    secret      text NOT NULL DEFAULT webhook_secret_new() CHECK (secret ~ '^whsec_[A-Za-z0-9+/]{32}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz -- NULL: active until a rotation gives it an expiry
);
CREATE INDEX webhook_secrets_account ON webhook_secrets (account_id, id);
CREATE TRIGGER webhook_secrets_touch BEFORE UPDATE ON webhook_secrets FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

INSERT INTO webhook_secrets (account_id) SELECT id FROM accounts ORDER BY id;

CREATE FUNCTION accounts_webhook_secret() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_secrets (account_id) VALUES (NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER accounts_webhook_secret AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION accounts_webhook_secret();

-- A receiver that answers 410 Gone wants no more deliveries: the call remembers it, its pending
-- events are marked failed by the deliverer, and events written later are failed as they are
-- written, so nothing waits for a receiver that said it is gone.
ALTER TABLE calls ADD COLUMN call_state_gone_at timestamptz;

CREATE FUNCTION call_events_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM calls WHERE id = NEW.call_id AND call_state_gone_at IS NOT NULL) THEN
        NEW.failed_at := now();
        NEW.last_error := 'not sent: the call_state_url answered 410 Gone earlier';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER call_events_gone BEFORE INSERT ON call_events FOR EACH ROW EXECUTE FUNCTION call_events_gone();
