-- The caller's desk (issue 6, docs/caller-api.md): what the campaign's dialer needs to serve
-- people making calls: survey results, transfers as an outcome, caller events, and how many
-- simulated callers share a campaign with them.

-- NULL: as many simulated callers as the simulation scenario has agents (the demo dials at once);
-- 0 for a campaign worked by people only. The simulated carrier is the only carrier today, so a
-- campaign can mix people and simulated callers in tests and benchmarks.
ALTER TABLE campaigns ADD COLUMN simulated_callers integer CHECK (simulated_callers BETWEEN 0 AND 1000);

-- A call handed to a script's transfer target: the caller's part ended, the person was not lost.
ALTER TABLE call_attempts DROP CONSTRAINT call_attempts_outcome_check;
ALTER TABLE call_attempts ADD CONSTRAINT call_attempts_outcome_check CHECK (outcome IN (
    'talked', 'abandoned', 'machine', 'voicemail', 'busy', 'no_answer', 'failed', 'canceled', 'timed_out', 'hung_up',
    'transferred'));

ALTER DOMAIN event_type DROP CONSTRAINT event_type_check;
ALTER DOMAIN event_type ADD CONSTRAINT event_type_check CHECK (VALUE IN (
    'call.dialing', 'call.answered', 'call.bridged', 'call.ended',
    'campaign.started', 'campaign.paused', 'campaign.resumed', 'campaign.stopped', 'campaign.numbers_needed',
    'list.import_completed', 'list.import_failed',
    'caller.ready', 'caller.preview', 'caller.on_call', 'caller.wrap_up', 'caller.left',
    'survey.submitted'));

-- A person's transition at their desk (docs/events.md, caller.*), published by the campaign's
-- dialer as it happens. The state names are the desk's (docs/caller-api.md).
CREATE FUNCTION caller_publish(p_account bigint, p_campaign bigint, p_caller bigint, p_session bigint, p_type event_type,
                               p_at timestamptz, p_call bigint, p_number bigint) RETURNS void LANGUAGE sql AS $$
    SELECT event_publish(p_account, p_campaign, p_caller, p_type, p_at, jsonb_strip_nulls(jsonb_build_object(
        'caller_id', p_caller, 'caller_session_id', p_session,
        'state', CASE p_type WHEN 'caller.ready' THEN 'on_hold' WHEN 'caller.preview' THEN 'preview'
                             WHEN 'caller.on_call' THEN 'connected' WHEN 'caller.wrap_up' THEN 'wrap_up' ELSE 'idle' END,
        'call_id', p_call, 'number_id', p_number)))
$$;

-- What a caller submitted about a call: one row per call (a second submission is refused by the
-- dialer, and by the key here). The answers and notes are kept as submitted, with their question
-- and response ids: the script may be edited later, the survey of a call must not change with it.
-- Written by the dialer without waiting (its statement queue), so no foreign keys: every id was
-- checked against the campaign's script in the dialer before the row was sent.
CREATE TABLE call_results (
    call_id       bigint PRIMARY KEY,
    account_id    bigint NOT NULL,
    campaign_id   bigint NOT NULL,
    caller_id     bigint NOT NULL,
    session_id    bigint NOT NULL,
    number_id     bigint NOT NULL,
    lead_id       bigint,
    machine       boolean NOT NULL DEFAULT false,
    retry         boolean NOT NULL DEFAULT false,
    answers       jsonb NOT NULL DEFAULT '[]',
    notes         jsonb NOT NULL DEFAULT '[]',
    submitted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_results_campaign ON call_results (campaign_id, submitted_at);
CREATE INDEX call_results_caller ON call_results (caller_id, submitted_at);

-- Stores a survey, settles its number and publishes survey.submitted, in one transaction. A
-- response marked `retry` (call back later) puts the number back in the queue one recycle
-- interval from now, if it has attempts left; otherwise a number whose call was talked through
-- stays done. The event carries the answers with their texts as they were at submission.
CREATE FUNCTION call_results_submit(p_call bigint, p_account bigint, p_campaign bigint, p_caller bigint, p_session bigint,
                                    p_number bigint, p_lead bigint, p_machine boolean, p_retry boolean, p_answers jsonb,
                                    p_notes jsonb, p_recycle_hours int, p_max_attempts int) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    answers jsonb;
BEGIN
    INSERT INTO call_results (call_id, account_id, campaign_id, caller_id, session_id, number_id, lead_id, machine, retry,
                              answers, notes)
    VALUES (p_call, p_account, p_campaign, p_caller, p_session, p_number, p_lead, p_machine, p_retry, p_answers, p_notes)
    ON CONFLICT (call_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_retry THEN
        UPDATE numbers SET status = 'retry', next_attempt_at = now() + make_interval(hours => p_recycle_hours)
         WHERE id = p_number AND attempts < p_max_attempts AND NOT blocked AND removed_at IS NULL;
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object('question_id', q.id, 'question', q.text,
                                                 'possible_response_id', r.id, 'response', r.value) ORDER BY a.ord), '[]')
      INTO answers
      FROM jsonb_array_elements(p_answers) WITH ORDINALITY AS a(v, ord)
      JOIN questions q ON q.id = (a.v ->> 'question_id')::bigint
      JOIN possible_responses r ON r.id = (a.v ->> 'possible_response_id')::bigint;
    PERFORM event_publish(p_account, p_campaign, p_caller, 'survey.submitted', now(),
                          jsonb_build_object('call_id', p_call, 'caller_id', p_caller, 'caller_session_id', p_session,
                                             'number_id', p_number, 'phone', (SELECT phone FROM numbers WHERE id = p_number),
                                             'lead_id', p_lead, 'machine', p_machine, 'retry', p_retry,
                                             'answers', answers, 'notes', p_notes));
END $$;
