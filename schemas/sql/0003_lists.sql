-- Lists, the numbers and leads they bring into a campaign, and the durable state of their
-- imports.
--
-- A number is one phone in one campaign (the original product's "household"): a list that
-- brings a phone the campaign already has adds its lead to the existing number, so a phone is
-- never dialed twice for the same campaign because two lists contain it. A lead is a person
-- reachable at a number.

CREATE TABLE lists (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    campaign_id     bigint NOT NULL,
    name            text NOT NULL,
    external_id     text,
    purpose         text NOT NULL DEFAULT 'import' CHECK (purpose IN ('import', 'prune_numbers', 'prune_leads')),
    enabled         boolean NOT NULL DEFAULT true,
    column_map      jsonb NOT NULL,
    separator       text NOT NULL DEFAULT ',' CHECK (separator IN (',', ';', '|', 'tab')),
    webhook_url     text,
    status          text NOT NULL DEFAULT 'awaiting_upload'
                    CHECK (status IN ('awaiting_upload', 'queued', 'importing', 'completed', 'failed')),
    upload_parts    integer NOT NULL DEFAULT 0,
    upload_bytes    bigint NOT NULL DEFAULT 0,
    -- Progress, written in the same transaction as each batch of rows, so after a crash the
    -- import resumes exactly after the last batch that committed.
    bytes_done      bigint NOT NULL DEFAULT 0,
    resume_offset   bigint NOT NULL DEFAULT 0,
    resume_record   bigint NOT NULL DEFAULT 0,
    resume_line     bigint NOT NULL DEFAULT 0,
    rows_total      bigint NOT NULL DEFAULT 0,
    rows_imported   bigint NOT NULL DEFAULT 0,
    rows_invalid    bigint NOT NULL DEFAULT 0,
    rows_duplicate  bigint NOT NULL DEFAULT 0,
    rows_blocked    bigint NOT NULL DEFAULT 0,
    rows_removed    bigint NOT NULL DEFAULT 0,
    failure         text,
    worker_pid      integer,
    heartbeat_at    timestamptz,
    queued_at       timestamptz,
    started_at      timestamptz,
    finished_at     timestamptz,
    notified_at     timestamptz,
    notify_status   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, id),
    CONSTRAINT lists_name_key UNIQUE (account_id, name),
    CONSTRAINT lists_external_id_key UNIQUE (account_id, external_id),
    CONSTRAINT lists_campaign_id_fkey FOREIGN KEY (account_id, campaign_id) REFERENCES campaigns (account_id, id)
);
CREATE INDEX lists_campaign ON lists (campaign_id);
CREATE INDEX lists_pending ON lists (queued_at) WHERE status IN ('queued', 'importing');
CREATE TRIGGER lists_touch BEFORE UPDATE ON lists FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- The uploaded file, kept until its import is done, in parts of at most the request body limit.
CREATE TABLE list_upload_parts (
    list_id  bigint NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    part     integer NOT NULL CHECK (part BETWEEN 1 AND 100000),
    data     bytea NOT NULL,
    PRIMARY KEY (list_id, part)
);

-- Rows an import could not take, by record number (header excluded) and physical line.
CREATE TABLE list_import_errors (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL,
    list_id     bigint NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    record      bigint NOT NULL,
    line        bigint NOT NULL,
    message     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (list_id, record)
);

CREATE TABLE numbers (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint NOT NULL,
    campaign_id     bigint NOT NULL,
    phone           text NOT NULL,
    -- Every zone the number may be in; calling hours must hold in all of them.
    time_zones      text[] NOT NULL,
    blocked         boolean NOT NULL DEFAULT false,
    status          text NOT NULL DEFAULT 'not_called',
    attempts        integer NOT NULL DEFAULT 0,
    last_dialed_at  timestamptz,
    list_id         bigint,
    removed_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Like leads (below), numbers are written only by the importer, with the account and
    -- campaign of the list it claimed, and campaigns are archived, never deleted: no per-row
    -- foreign key check.
    CONSTRAINT numbers_phone_key UNIQUE (campaign_id, phone)
);
CREATE INDEX numbers_account_phone ON numbers (account_id, phone);
CREATE TRIGGER numbers_touch BEFORE UPDATE ON numbers FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE TABLE leads (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   bigint NOT NULL,
    campaign_id  bigint NOT NULL,
    -- No foreign keys on number_id and list_id: leads are written only by the importer, in
    -- bulk, from the number it has just written and the list it has claimed, and per-row key
    -- checks cost more than the rest of an import row together (docs/performance.md). Numbers
    -- are never deleted (pruning marks them removed), and a list with leads cannot be deleted
    -- (lists_guard_delete below).
    number_id    bigint NOT NULL,
    list_id      bigint NOT NULL,
    custom_id    text,
    first_name   text,
    middle_name  text,
    last_name    text,
    suffix       text,
    email        text,
    address      text,
    city         text,
    state        text,
    zip_code     text,
    country      text,
    custom       jsonb NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'not_called',
    removed_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT leads_custom_id_key UNIQUE (campaign_id, custom_id)
);
CREATE INDEX leads_number ON leads (number_id);
CREATE INDEX leads_list ON leads (list_id);
CREATE INDEX leads_campaign ON leads (campaign_id, id);
CREATE TRIGGER leads_touch BEFORE UPDATE ON leads FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

-- Blocking a number also blocks it where it was already imported, and unblocking releases it
-- unless another entry still blocks it; in the same transaction as the blocked_numbers change.
CREATE FUNCTION blocked_numbers_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry blocked_numbers;
BEGIN
    entry := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    UPDATE numbers n
       SET blocked = EXISTS (SELECT 1 FROM blocked_numbers b
                              WHERE b.account_id = n.account_id AND b.number = n.phone
                                AND (b.campaign_id IS NULL OR b.campaign_id = n.campaign_id))
     WHERE n.account_id = entry.account_id AND n.phone = entry.number
       AND (entry.campaign_id IS NULL OR n.campaign_id = entry.campaign_id);
    RETURN NULL;
END $$;
CREATE TRIGGER blocked_numbers_apply AFTER INSERT OR DELETE ON blocked_numbers
    FOR EACH ROW EXECUTE FUNCTION blocked_numbers_apply();

-- A column map names the lead field each CSV column fills: a system field or a custom field of
-- the account. An import needs the phone column; pruning leads needs custom_id. The map and the
-- separator are fixed once the import is queued (the rows already read depend on them).
CREATE FUNCTION lists_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unknown text;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status <> 'awaiting_upload'
       AND (NEW.column_map IS DISTINCT FROM OLD.column_map OR NEW.separator IS DISTINCT FROM OLD.separator) THEN
        RAISE EXCEPTION 'column_map and separator cannot change once the import is queued'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'lists_column_map_locked', TABLE = 'lists';
    END IF;
    SELECT f INTO unknown FROM jsonb_each_text(NEW.column_map) AS m(header, f)
     WHERE f <> ALL (lead_system_fields())
       AND NOT EXISTS (SELECT 1 FROM custom_fields c WHERE c.account_id = NEW.account_id AND c.name = f)
     LIMIT 1;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'maps a column to ''%'', which is neither a system field nor a custom field of this account', unknown
            USING ERRCODE = 'check_violation', CONSTRAINT = 'lists_column_map_check', TABLE = 'lists';
    END IF;
    IF (SELECT count(*) FROM jsonb_each_text(NEW.column_map) AS m(header, f) GROUP BY f ORDER BY 1 DESC LIMIT 1) > 1 THEN
        RAISE EXCEPTION 'maps two columns to the same field'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'lists_column_map_check', TABLE = 'lists';
    END IF;
    IF NEW.purpose IN ('import', 'prune_numbers')
       AND NOT EXISTS (SELECT 1 FROM jsonb_each_text(NEW.column_map) AS m(header, f) WHERE f = 'phone') THEN
        RAISE EXCEPTION 'must map a column to phone'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'lists_column_map_check', TABLE = 'lists';
    END IF;
    IF NEW.purpose = 'prune_leads'
       AND NOT EXISTS (SELECT 1 FROM jsonb_each_text(NEW.column_map) AS m(header, f) WHERE f = 'custom_id') THEN
        RAISE EXCEPTION 'must map a column to custom_id to prune leads'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'lists_column_map_check', TABLE = 'lists';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER lists_check BEFORE INSERT OR UPDATE ON lists FOR EACH ROW EXECUTE FUNCTION lists_check();

CREATE FUNCTION lists_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM leads WHERE list_id = OLD.id) THEN
        RAISE EXCEPTION 'list % has leads', OLD.id USING ERRCODE = 'foreign_key_violation', TABLE = 'leads';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER lists_guard_delete BEFORE DELETE ON lists FOR EACH ROW EXECUTE FUNCTION lists_guard_delete();
