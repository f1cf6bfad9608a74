-- campaign.numbers_needed (issue 5): a running campaign has callers but nothing it may dial now.
--
-- The dialer is the only one who knows: its claims came back empty while its queue was empty.
-- It publishes the event once per dry spell (numbers flowing again re-arms it) through this
-- function, in a transaction of its own: the event describes an observation, not a row, so there
-- is no state transaction to ride in. What the customer needs in order to act comes along:
-- how many numbers are left at all (none: upload more; some: they wait for their calling hours
-- or their recycle delay) and when the first retry comes due.

ALTER DOMAIN event_type DROP CONSTRAINT event_type_check;
ALTER DOMAIN event_type ADD CONSTRAINT event_type_check CHECK (VALUE IN (
    'call.dialing', 'call.answered', 'call.bridged', 'call.ended',
    'campaign.started', 'campaign.paused', 'campaign.resumed', 'campaign.stopped', 'campaign.numbers_needed',
    'list.import_completed', 'list.import_failed'));

CREATE FUNCTION campaign_publish_numbers_needed(p_campaign bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c campaigns%ROWTYPE;
    waiting bigint;
    next_retry timestamptz;
BEGIN
    SELECT * INTO c FROM campaigns WHERE id = p_campaign;
    IF NOT FOUND OR c.status <> 'running' THEN
        RETURN;
    END IF;
    SELECT count(*) FILTER (WHERE n.status IN ('not_called', 'retry') AND n.attempts < c.max_attempts),
           min(n.next_attempt_at) FILTER (WHERE n.status = 'retry' AND n.attempts < c.max_attempts)
      INTO waiting, next_retry
      FROM numbers n WHERE n.campaign_id = p_campaign AND NOT n.blocked AND n.removed_at IS NULL;
    PERFORM event_publish(c.account_id, c.id, NULL, 'campaign.numbers_needed', now(),
                          jsonb_build_object('campaign_id', c.id, 'uri', '/v1/campaigns/' || c.id, 'name', c.name,
                                             'origin', c.origin, 'numbers_waiting', waiting,
                                             'next_retry_at', call_events_time(next_retry)));
END $$;
