-- Accounts and their API keys. Every other table hangs off accounts(id): every query is scoped
-- to the account of the key that made the request.

CREATE TABLE accounts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- api_key is the public half of a credential pair and is looked up directly; api_auth is the
-- secret half and only its SHA-256 is kept. Secrets are 256 random bits, so a fast hash is
-- enough (nothing to brute-force); what matters is that a database dump reveals no usable secret.
CREATE TABLE api_keys (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    api_key        text NOT NULL UNIQUE,
    secret_sha256  bytea NOT NULL CHECK (length(secret_sha256) = 32),
    label          text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account_id);
