-- call_events' indexes for an outbox whose every row is updated once it is delivered (issue 5,
-- docs/performance.md). Recording a delivery updates its event, and the update cannot be HOT (it
-- takes the row out of the pending index): every index gets an entry for the new row version.
--
-- The primary key's pages are left half empty, so the entries of updated rows fit beside the
-- old ones until vacuum removes those: full pages made every such insert first try to delete old
-- versions to make room (a seventh of the database's time in the webhook benchmark), then split.
-- It applies to pages split from now on; the existing ones fill up as they are (REINDEX when
-- convenient, not here: it would hold writes to call_events for as long as it takes).
--
-- call_events_call (0008) goes: no query reads it (the deliverer finds a call's events through
-- the pending index, the API has no list of a call's events yet, and that list would read in id
-- order), and keeping it cost a fifth of each update.

ALTER INDEX call_events_pkey SET (fillfactor = 50);
DROP INDEX call_events_call;
