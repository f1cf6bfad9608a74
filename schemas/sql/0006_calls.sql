-- The brief's minimal API (POST /v1/call): one request starts dialing. A call is a campaign run
-- for an integrator: it owns a campaign (status, pacing, numbers and attempts all live where the
-- dialer already looks) and remembers where to report call states and where to fetch more
-- numbers. Numbers given in the request become the campaign's numbers at once; the feed URL adds
-- more as the dialer asks for them.

ALTER TABLE campaigns ADD COLUMN origin text NOT NULL DEFAULT 'admin' CHECK (origin IN ('admin', 'call'));

CREATE TABLE calls (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id         bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    campaign_id        bigint NOT NULL,
    call_state_url     text NOT NULL,
    phone_numbers_url  text,
    numbers_given      integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(), -- the resource convention; a call is never edited
    UNIQUE (account_id, id),
    CONSTRAINT calls_campaign_id_fkey FOREIGN KEY (account_id, campaign_id) REFERENCES campaigns (account_id, id),
    CONSTRAINT calls_numbers_check CHECK (numbers_given > 0 OR phone_numbers_url IS NOT NULL)
);
CREATE INDEX calls_campaign ON calls (campaign_id);
