-- Numbers that arrive one request or one feed page at a time (POST /v1/call, a call's
-- phone_numbers_url), added the way the importer adds a list's: normalised by the caller,
-- de-duplicated within the campaign, marked when blocked. One function, so the API and the
-- dialer cannot drift apart.
--
-- The account's blocked-numbers lock is taken shared, as every import batch does
-- (0004_import_write_path.sql), and the campaign's import lock exclusively for the transaction:
-- lists cannot be imported into a call's campaign (below), so nothing else holds it long, and
-- two adders of one campaign cannot both miss each other's numbers.
CREATE FUNCTION numbers_add(account bigint, campaign bigint, phones text[], zones text[]) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    added integer;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1, blocked_numbers_lock_key(account));
    PERFORM pg_advisory_xact_lock(2, (campaign % 2147483647)::integer);
    INSERT INTO numbers (account_id, campaign_id, phone, time_zones, blocked)
    SELECT account, campaign, given.p,
           CASE WHEN given.z = '' THEN '{}'::text[] ELSE string_to_array(given.z, ',') END,
           EXISTS (SELECT 1 FROM blocked_numbers b
                    WHERE b.account_id = account AND b.number = given.p
                      AND (b.campaign_id IS NULL OR b.campaign_id = campaign))
      FROM (SELECT DISTINCT ON (p) p, z, position FROM unnest(phones, zones) WITH ORDINALITY AS t(p, z, position)
             ORDER BY p, position) AS given
     WHERE NOT EXISTS (SELECT 1 FROM numbers n WHERE n.campaign_id = campaign AND n.phone = given.p)
     ORDER BY given.position; -- ids in the order given: the dialer takes never-dialed numbers by id
    GET DIAGNOSTICS added = ROW_COUNT;
    RETURN added;
END $$;

-- A call's campaign takes its numbers from the call, never from a list upload.
CREATE FUNCTION lists_not_for_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM campaigns WHERE id = NEW.campaign_id AND origin = 'call') THEN
        RAISE EXCEPTION 'campaign % runs a call; its numbers come from the call', NEW.campaign_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'lists_campaign_id_call', TABLE = 'lists';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER lists_not_for_calls BEFORE INSERT OR UPDATE OF campaign_id ON lists
    FOR EACH ROW EXECUTE FUNCTION lists_not_for_calls();
