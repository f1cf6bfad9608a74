-- An endpoint the deliverer gives up on is disabled, and the account is told (issue 5): a
-- receiver that answers 410 Gone wants no more (0014), and one that has failed every attempt to
-- deliver an event for the long retry class's give-up age (3 days) is as good as gone. Either
-- way its pending deliveries wait for an enable, and a webhook_endpoint.disabled event goes to
-- the account's other endpoints and streams, so someone learns of it before days of events pile
-- up. An endpoint the account disables itself (disabled_reason null) is no news to it: no event.

ALTER DOMAIN event_type DROP CONSTRAINT event_type_check;
ALTER DOMAIN event_type ADD CONSTRAINT event_type_check CHECK (VALUE IN (
    'call.dialing', 'call.answered', 'call.bridged', 'call.ended',
    'campaign.started', 'campaign.paused', 'campaign.resumed', 'campaign.stopped', 'campaign.numbers_needed',
    'list.import_completed', 'list.import_failed',
    'caller.ready', 'caller.preview', 'caller.on_call', 'caller.wrap_up', 'caller.left',
    'survey.submitted',
    'webhook_endpoint.disabled'));

CREATE FUNCTION webhook_endpoints_publish_disabled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM event_publish(NEW.account_id, NULL, NULL, 'webhook_endpoint.disabled', now(),
                          jsonb_build_object('webhook_endpoint_id', NEW.id, 'uri', '/v1/webhook_endpoints/' || NEW.id,
                                             'url', NEW.url, 'campaign_id', NEW.campaign_id,
                                             'reason', NEW.disabled_reason));
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_endpoints_publish_disabled AFTER UPDATE OF enabled ON webhook_endpoints
    FOR EACH ROW WHEN (OLD.enabled AND NOT NEW.enabled AND NEW.disabled_reason IS NOT NULL)
    EXECUTE FUNCTION webhook_endpoints_publish_disabled();
