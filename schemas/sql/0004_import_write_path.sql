-- The import write path (docs/performance.md, "List imports"): the importer COPYs rows straight
-- into numbers and leads, de-duplicating phones and custom_ids in its own memory while it holds
-- the campaign's advisory lock (actors/importer/import.c), so no unique index has to be probed
-- and maintained for every imported row. What stays indexed is what a reader looks up:
--
-- numbers: id (the stable id the dialer will keep its state under); (campaign_id, id), which a
--   campaign's numbers are read and counted by, in import order; phone, by equality only (the
--   blocked-numbers trigger, ?phone=), as a hash index: about half the cost of a b-tree on
--   random keys, and text comparisons in this collation cost more again.
-- leads: id; number_id (a number's leads, pruning); list_id (the delete guard, ?list_id=);
--   (campaign_id, custom_id), which also serves ?campaign_id= on its leading column. Each index
--   left costs an imported row about 1-2 us on the 2-core machine, the heap row 2-3 us.

ALTER TABLE numbers DROP CONSTRAINT numbers_phone_key;
DROP INDEX numbers_account_phone;
CREATE INDEX numbers_campaign ON numbers (campaign_id, id);
CREATE INDEX numbers_phone ON numbers USING hash (phone);

ALTER TABLE leads DROP CONSTRAINT leads_custom_id_key;
DROP INDEX leads_campaign;
-- custom_ids are the client's identifiers, compared for equality only: byte order ("C") spares
-- every index comparison the locale's strcoll, about half the cost of this index at import.
ALTER TABLE leads ALTER COLUMN custom_id TYPE text COLLATE "C";
CREATE INDEX leads_custom_id ON leads (campaign_id, custom_id);

-- An import reads the blocked numbers of its account once and marks its rows from memory. Each
-- change to blocked_numbers bumps the account's version here, under an exclusive advisory lock
-- on the account that every import batch takes shared: a batch that sees the version it loaded
-- cannot miss an entry, and an entry committed after the batch's check waits for the batch to
-- commit, after which its trigger sees (and marks) the batch's numbers.
-- No foreign key: deleting an account deletes its blocked numbers, whose trigger writes here
-- while the account row is going; a version left behind is harmless.
CREATE TABLE blocked_number_versions (
    account_id  bigint PRIMARY KEY,
    version     bigint NOT NULL DEFAULT 0
);

-- The advisory lock key shared with the importer: (IMPORT_LOCK_BLOCKED, account id folded into
-- an int4); a fold collision only makes two accounts wait for each other.
CREATE FUNCTION blocked_numbers_lock_key(account bigint) RETURNS integer LANGUAGE sql IMMUTABLE AS
$$ SELECT (account % 2147483647)::integer $$;

CREATE OR REPLACE FUNCTION blocked_numbers_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry blocked_numbers;
BEGIN
    entry := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    PERFORM pg_advisory_xact_lock(1, blocked_numbers_lock_key(entry.account_id));
    INSERT INTO blocked_number_versions AS v (account_id, version) VALUES (entry.account_id, 1)
        ON CONFLICT (account_id) DO UPDATE SET version = v.version + 1;
    UPDATE numbers n
       SET blocked = EXISTS (SELECT 1 FROM blocked_numbers b
                              WHERE b.account_id = n.account_id AND b.number = n.phone
                                AND (b.campaign_id IS NULL OR b.campaign_id = n.campaign_id))
     WHERE n.phone = entry.number AND n.account_id = entry.account_id
       AND (entry.campaign_id IS NULL OR n.campaign_id = entry.campaign_id);
    RETURN NULL;
END $$;
