-- The hosted resources of the admin API: scripts (and what they contain), recorded messages,
-- campaigns, caller groups, callers, custom fields and blocked numbers.
--
-- Tenant isolation is enforced by the schema, not only by the queries: every table carries
-- account_id, every parent exposes UNIQUE (account_id, id), and every reference is a composite
-- foreign key (account_id, x_id) -> parent (account_id, id). A row can therefore never point at
-- another account's row, whatever a handler does.
--
-- Constraint names follow <table>_<field>_<kind>; the store maps a violated constraint back to
-- the API field it names (actors/store/resource.c), so the names are part of the API's errors.

CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

-- The fields every lead has; custom fields add to them per account.
CREATE FUNCTION lead_system_fields() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['phone', 'custom_id', 'first_name', 'middle_name', 'last_name', 'suffix', 'email',
                 'address', 'city', 'state', 'zip_code', 'country']
$$;

-- Names of the account's own lead fields, beside the system fields (phone, first_name, ...).
CREATE TABLE custom_fields (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT custom_fields_name_key UNIQUE (account_id, name),
    CONSTRAINT custom_fields_name_check CHECK (name ~ '^[A-Za-z0-9_]{1,64}$' AND name <> ALL (lead_system_fields())),
    UNIQUE (account_id, id)
);

CREATE TABLE scripts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id       bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name             text NOT NULL,
    -- Which lead fields a caller sees, in order: system field names and custom field names.
    selected_fields  jsonb NOT NULL DEFAULT '["phone", "first_name", "last_name"]',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    archived_at      timestamptz,
    UNIQUE (account_id, id)
);

CREATE TABLE script_texts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL,
    script_id   bigint NOT NULL,
    content     text NOT NULL,
    position    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT script_texts_script_id_fkey FOREIGN KEY (account_id, script_id)
        REFERENCES scripts (account_id, id) ON DELETE CASCADE
);
CREATE INDEX script_texts_script ON script_texts (script_id, position, id);

CREATE TABLE questions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL,
    script_id   bigint NOT NULL,
    text        text NOT NULL,
    position    integer NOT NULL DEFAULT 0,
    external_id text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT questions_script_id_fkey FOREIGN KEY (account_id, script_id)
        REFERENCES scripts (account_id, id) ON DELETE CASCADE,
    UNIQUE (account_id, id)
);
CREATE INDEX questions_script ON questions (script_id, position, id);

CREATE TABLE possible_responses (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   bigint NOT NULL,
    question_id  bigint NOT NULL,
    value        text NOT NULL,
    -- The digit a phones-only caller presses for this answer.
    keypad       smallint,
    -- true: choosing this answer leaves the lead to be called again.
    retry        boolean NOT NULL DEFAULT false,
    position     integer NOT NULL DEFAULT 0,
    external_id  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT possible_responses_question_id_fkey FOREIGN KEY (account_id, question_id)
        REFERENCES questions (account_id, id) ON DELETE CASCADE,
    CONSTRAINT possible_responses_keypad_key UNIQUE (question_id, keypad)
);
CREATE INDEX possible_responses_question ON possible_responses (question_id, position, id);

CREATE TABLE notes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL,
    script_id   bigint NOT NULL,
    label       text NOT NULL,
    position    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notes_script_id_fkey FOREIGN KEY (account_id, script_id)
        REFERENCES scripts (account_id, id) ON DELETE CASCADE
);
CREATE INDEX notes_script ON notes (script_id, position, id);

CREATE TABLE transfers (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     bigint NOT NULL,
    script_id      bigint NOT NULL,
    label          text NOT NULL,
    phone_number   text NOT NULL,
    transfer_type  text NOT NULL DEFAULT 'warm' CHECK (transfer_type IN ('warm', 'cold')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transfers_script_id_fkey FOREIGN KEY (account_id, script_id)
        REFERENCES scripts (account_id, id) ON DELETE CASCADE
);
CREATE INDEX transfers_script ON transfers (script_id, id);

-- Recorded audio (voicemail drops, abandonment/identification messages), kept in the database
-- so it is as durable and as backed-up as everything else.
CREATE TABLE messages (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name          text NOT NULL,
    content_type  text NOT NULL CHECK (content_type IN ('audio/wav', 'audio/mpeg')),
    size_bytes    integer NOT NULL,
    duration_ms   integer,
    sha256        text NOT NULL,
    audio         bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    archived_at   timestamptz,
    UNIQUE (account_id, id)
);

CREATE TABLE campaigns (
    id                            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id                    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                          text NOT NULL,
    dialer_type                   text NOT NULL DEFAULT 'Power'
                                  CHECK (dialer_type IN ('Preview', 'Power', 'Predictive')),
    status                        text NOT NULL DEFAULT 'stopped'
                                  CHECK (status IN ('stopped', 'running', 'paused')),
    caller_id                     text,
    script_id                     bigint,
    time_zone                     text NOT NULL DEFAULT 'America/Los_Angeles',
    calling_hours_start           time NOT NULL DEFAULT '09:00',
    calling_hours_end             time NOT NULL DEFAULT '21:00',
    recycle_rate_hours            integer NOT NULL DEFAULT 1,
    max_attempts                  integer NOT NULL DEFAULT 5,
    acceptable_abandon_rate       numeric(6, 5) NOT NULL DEFAULT 0.03,
    abandon_rate_window_days      integer NOT NULL DEFAULT 30,
    answering_machine_detection   boolean NOT NULL DEFAULT false,
    voicemail_message_id          bigint,
    drop_voicemail_automatically  boolean NOT NULL DEFAULT false,
    callers_can_drop_voicemail    boolean NOT NULL DEFAULT false,
    call_back_after_voicemail     boolean NOT NULL DEFAULT false,
    abandonment_message_id        bigint,
    max_lines_per_caller          integer NOT NULL DEFAULT 4,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    updated_at                    timestamptz NOT NULL DEFAULT now(),
    archived_at                   timestamptz,
    UNIQUE (account_id, id),
    CONSTRAINT campaigns_script_id_fkey FOREIGN KEY (account_id, script_id)
        REFERENCES scripts (account_id, id),
    CONSTRAINT campaigns_voicemail_message_id_fkey FOREIGN KEY (account_id, voicemail_message_id)
        REFERENCES messages (account_id, id),
    CONSTRAINT campaigns_abandonment_message_id_fkey FOREIGN KEY (account_id, abandonment_message_id)
        REFERENCES messages (account_id, id),
    -- The TCPA allows calls between 8 am and 9 pm in the called party's local time; a window
    -- outside that can never be honoured, so it is refused when configured, not when dialing.
    CONSTRAINT campaigns_calling_hours_check CHECK (calling_hours_start >= '08:00'
        AND calling_hours_end <= '21:00' AND calling_hours_start < calling_hours_end),
    CONSTRAINT campaigns_drop_voicemail_automatically_check CHECK (NOT drop_voicemail_automatically
        OR (answering_machine_detection AND voicemail_message_id IS NOT NULL)),
    CONSTRAINT campaigns_callers_can_drop_voicemail_check CHECK (NOT callers_can_drop_voicemail
        OR voicemail_message_id IS NOT NULL),
    CONSTRAINT campaigns_call_back_after_voicemail_check CHECK (NOT call_back_after_voicemail
        OR drop_voicemail_automatically OR callers_can_drop_voicemail),
    CONSTRAINT campaigns_archived_check CHECK (archived_at IS NULL OR status = 'stopped')
);
CREATE INDEX campaigns_account ON campaigns (account_id, id);

CREATE TABLE caller_groups (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         text NOT NULL,
    campaign_id  bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, id),
    CONSTRAINT caller_groups_campaign_id_fkey FOREIGN KEY (account_id, campaign_id)
        REFERENCES campaigns (account_id, id)
);

CREATE TABLE callers (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id       bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name             text NOT NULL DEFAULT '',
    username         text NOT NULL,
    password_hash    text NOT NULL,
    pin              text NOT NULL CHECK (pin ~ '^[0-9]{4,8}$'),
    phones_only      boolean NOT NULL DEFAULT false,
    caller_group_id  bigint,
    campaign_id      bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    archived_at      timestamptz,
    UNIQUE (account_id, id),
    CONSTRAINT callers_username_key UNIQUE (account_id, username),
    CONSTRAINT callers_pin_key UNIQUE (account_id, pin),
    CONSTRAINT callers_caller_group_id_fkey FOREIGN KEY (account_id, caller_group_id)
        REFERENCES caller_groups (account_id, id) ON DELETE SET NULL (caller_group_id),
    CONSTRAINT callers_campaign_id_fkey FOREIGN KEY (account_id, campaign_id)
        REFERENCES campaigns (account_id, id)
);
CREATE INDEX callers_group ON callers (caller_group_id) WHERE caller_group_id IS NOT NULL;

-- A caller in a group works on the group's campaign: joining a group takes its campaign, and
-- moving a group to another campaign moves its callers, in the same transaction.
CREATE FUNCTION callers_follow_group() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.caller_group_id IS NOT NULL THEN
        SELECT campaign_id INTO NEW.campaign_id FROM caller_groups WHERE id = NEW.caller_group_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER callers_follow_group BEFORE INSERT OR UPDATE ON callers
    FOR EACH ROW EXECUTE FUNCTION callers_follow_group();

CREATE FUNCTION caller_groups_move_callers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.campaign_id IS DISTINCT FROM OLD.campaign_id THEN
        UPDATE callers SET campaign_id = NEW.campaign_id WHERE caller_group_id = NEW.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER caller_groups_move_callers AFTER UPDATE ON caller_groups
    FOR EACH ROW EXECUTE FUNCTION caller_groups_move_callers();

-- campaign_id NULL blocks the number in every campaign of the account.
CREATE TABLE blocked_numbers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    number       text NOT NULL,
    campaign_id  bigint,
    note         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT blocked_numbers_number_key UNIQUE NULLS NOT DISTINCT (account_id, campaign_id, number),
    CONSTRAINT blocked_numbers_campaign_id_fkey FOREIGN KEY (account_id, campaign_id)
        REFERENCES campaigns (account_id, id) ON DELETE CASCADE
);
CREATE INDEX blocked_numbers_lookup ON blocked_numbers (account_id, number);

CREATE TRIGGER custom_fields_touch BEFORE UPDATE ON custom_fields FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER scripts_touch BEFORE UPDATE ON scripts FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER script_texts_touch BEFORE UPDATE ON script_texts FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER questions_touch BEFORE UPDATE ON questions FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER possible_responses_touch BEFORE UPDATE ON possible_responses FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER notes_touch BEFORE UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER transfers_touch BEFORE UPDATE ON transfers FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER messages_touch BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER campaigns_touch BEFORE UPDATE ON campaigns FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER caller_groups_touch BEFORE UPDATE ON caller_groups FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER callers_touch BEFORE UPDATE ON callers FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER blocked_numbers_touch BEFORE UPDATE ON blocked_numbers FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- A caller PIN identifies a caller who dials in by phone. It is random, not sequential, so one
-- caller's PIN says nothing about another's; an explicit PIN is kept as given.
CREATE FUNCTION callers_assign_pin() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    candidate text;
BEGIN
    IF NEW.pin IS NULL THEN
        LOOP
            candidate := lpad((floor(random() * 1000000))::int::text, 6, '0');
            EXIT WHEN NOT EXISTS (SELECT 1 FROM callers WHERE account_id = NEW.account_id AND pin = candidate);
        END LOOP;
        NEW.pin := candidate;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER callers_assign_pin BEFORE INSERT ON callers FOR EACH ROW EXECUTE FUNCTION callers_assign_pin();

-- The fields a script shows must exist: a system field of every lead, or a custom field of the
-- account. Checked here so no path (API, import, future tools) can store a dangling name.

CREATE FUNCTION scripts_check_selected_fields() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unknown text;
BEGIN
    SELECT f INTO unknown FROM jsonb_array_elements_text(NEW.selected_fields) AS f
     WHERE f <> ALL (lead_system_fields())
       AND NOT EXISTS (SELECT 1 FROM custom_fields c WHERE c.account_id = NEW.account_id AND c.name = f)
     LIMIT 1;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown field %', unknown
            USING ERRCODE = 'check_violation', CONSTRAINT = 'scripts_selected_fields_check', TABLE = 'scripts';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER scripts_check_selected_fields BEFORE INSERT OR UPDATE OF selected_fields ON scripts
    FOR EACH ROW EXECUTE FUNCTION scripts_check_selected_fields();

-- Switching dialing mode under running callers would change pacing mid-call.
CREATE FUNCTION campaigns_guard_running() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'stopped' AND NEW.dialer_type IS DISTINCT FROM OLD.dialer_type THEN
        RAISE EXCEPTION 'dialer_type cannot change while the campaign is %', OLD.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'campaigns_dialer_type_running', TABLE = 'campaigns';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER campaigns_guard_running BEFORE UPDATE ON campaigns FOR EACH ROW EXECUTE FUNCTION campaigns_guard_running();

-- A custom field a script still shows cannot go away (the script would show nothing there).
CREATE FUNCTION custom_fields_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM scripts WHERE account_id = OLD.account_id AND selected_fields ? OLD.name) THEN
        RAISE EXCEPTION 'custom field % is selected by a script', OLD.name
            USING ERRCODE = 'foreign_key_violation', TABLE = 'scripts';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER custom_fields_guard_delete BEFORE DELETE ON custom_fields
    FOR EACH ROW EXECUTE FUNCTION custom_fields_guard_delete();

-- Idempotency-Key: the first answer to a POST or PATCH carrying a key is kept for a day and
-- replayed to every retry with the same key, so a client that lost a response can retry without
-- creating twice. The row is written in the same transaction as the request's own changes, so
-- either both exist or neither does.
CREATE TABLE idempotency_keys (
    account_id    bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key           text NOT NULL,
    fingerprint   bytea NOT NULL,
    status        integer,
    content_type  text,
    location      text,
    body          bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
