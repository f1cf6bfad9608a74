#include "actors/importer/import.h"

#include "actors/importer/keyset.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "actors/store/db.h"
#include "common/csv.h"
#include "common/json_writer.h"
#include "common/log.h"
#include "phone/phone.h"

/* The lead fields every list may fill, in the order of import_stage's columns after the phone.
 * The same names as lead_system_fields() in schemas/sql/0002_admin.sql. */
static const char *const s_system_fields[] = {"phone", "custom_id", "first_name", "middle_name", "last_name", "suffix",
                                              "email", "address",   "city",       "state",       "zip_code",  "country"};
#define SYSTEM_FIELDS (sizeof(s_system_fields) / sizeof(s_system_fields[0]))
#define FIELD_PHONE   0
#define FIELD_CUSTOM  -2 /* a custom field: its name is in custom_names */
#define FIELD_IGNORED -1 /* a column the map does not mention */
#define COLUMNS_MAX   CSV_DEFAULT_MAX_FIELDS
#define PHONE_REGION  "US" /* numbers without a country code are North American */

typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} buffer_t;

/* A new number's blocked flag, written 'f' into the COPY text by the parsing thread and turned to
 * 't' by the flushing thread, which owns the blocked numbers (they are re-read under a lock in
 * the batch's own transaction). */
typedef struct {
    size_t offset;
    uint64_t phone;
} flag_t;

/* One batch of rows on its way to the database: COPY text for numbers, leads, the stage (rows
 * that update or may join what the campaign already has) and the row errors, its counts, and
 * where the CSV stream resumes after it. */
typedef struct {
    buffer_t numbers, leads, stage, errors;
    uint64_t *phones; /* every valid row's phone, to count the blocked ones */
    size_t phone_count, phone_cap;
    flag_t *flags;
    size_t flag_count, flag_cap;
    int64_t *restored; /* pruned numbers that come back */
    size_t restored_count, restored_cap;
    bool failed;
    int64_t rows, valid, invalid, created;
    csv_position_t next;
} batch_t;

typedef struct {
    PGconn *conn;  /* reads the uploaded parts (the parsing thread) */
    PGconn *flush; /* writes batches (the flushing thread) */
    const import_job_t *job;
    int pid;
    char account[24], campaign[24], list[24], pid_text[16];
    bool prune_leads, adds; /* adds: an import list (not a prune list) */

    /* Header: what each CSV column fills. */
    bool have_header;
    int column_count;
    int column_field[COLUMNS_MAX];
    char *column_custom[COLUMNS_MAX];
    json_t *map; /* header -> field, from the list */

    /* Position in the stream made of every part in order. CSV records are numbered from 1 with
     * the header, so a data row's number is its record number minus one. */
    csv_reader_t *reader;

    /* What the campaign has, read once under the campaign's advisory lock (held by `flush` for
     * the whole import, so no other import adds to the campaign meanwhile) and kept up to date
     * by the parsing thread. */
    keyset_t *numbers, *custom_ids;
    int64_t *ids; /* number ids reserved from the sequence, handed out in order */
    size_t id_next, id_count;
    char id_sequence[128];

    /* Owned by the flushing thread: the blocked numbers of the account and campaign, as of
     * blocked_number_versions' `blocked_version`. */
    keyset_t *blocked;
    int64_t blocked_version;

    /* Parsing and writing overlap: while the flushing thread writes one batch on its own
     * connection, this thread normalises the rows of the next. Two batches alternate; `pending`
     * is the one being written. */
    batch_t batches[2];
    batch_t *batch; /* being filled */
    pthread_t flusher;
    bool flusher_started;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    batch_t *pending;
    bool quit, flush_failed;

    import_result_t result;
    char *failure;
    size_t failure_size;
    import_stop_fn *stop;
    void *stop_arg;
} import_t;

/* Advisory lock classes (two-int keys); the blocked-numbers one is shared with
 * blocked_numbers_apply() in schemas/sql/0004_import_write_path.sql. */
#define LOCK_BLOCKED  "1"
#define LOCK_CAMPAIGN "2"

/* ---- buffers ------------------------------------------------------------------------------- */

static void s_append(buffer_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (grown == NULL) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void s_append_str(buffer_t *b, const char *s)
{
    s_append(b, s, strlen(s));
}

/* A value in COPY's text format: backslash escapes for the four characters it gives meaning. */
static void s_copy_value(buffer_t *b, const char *s, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *esc = s[i] == '\\' ? "\\\\" : s[i] == '\t' ? "\\t" : s[i] == '\n' ? "\\n" : s[i] == '\r' ? "\\r" : NULL;
        if (esc == NULL)
            continue;
        s_append(b, s + run, i - run);
        s_append_str(b, esc);
        run = i + 1;
    }
    s_append(b, s + run, len - run);
}

static void s_copy_null(buffer_t *b)
{
    s_append_str(b, "\\N");
}

/* Makes room for `need` elements of `size` bytes in *array. false if memory ran out. */
static bool s_reserve(void *array, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t grown = *cap ? *cap * 2 : 1024;
    while (grown < need)
        grown *= 2;
    void *p = realloc(*(void **)array, grown * size);
    if (p == NULL)
        return false;
    *(void **)array = p;
    *cap = grown;
    return true;
}

/* ---- keys ------------------------------------------------------------------------------------ */

/* An E.164 number as the key of a set: its digits as a number. E.164 digits never start with 0,
 * so distinct numbers give distinct keys; 0 when the number has more than 19 digits (past what
 * any numbering plan in use assigns, and past uint64_t). */
static uint64_t s_phone_key(const char *e164)
{
    uint64_t key = 0;
    int digits = 0;
    for (const char *p = e164 + (e164[0] == '+'); *p >= '0' && *p <= '9'; p++, digits++)
        key = key * 10 + (uint64_t)(*p - '0');
    return digits == 0 || digits > 19 ? 0 : key;
}

/* custom_ids are kept as fingerprints of their 64-bit FNV-1a hashes (keyset.h): one seen before
 * sends the row down the path that updates the lead by its custom_id in SQL, which also copes
 * with the rare collision (the update finds nothing and the lead is inserted). */
static uint64_t s_text_key(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ? h : 1;
}

/* ---- SQL helpers ---------------------------------------------------------------------------- */

static bool s_command(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_warn("import: %s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

static bool s_copy(PGconn *conn, const char *sql, const buffer_t *b)
{
    if (b->len == 0)
        return true;
    PGresult *res = PQexec(conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COPY_IN;
    PQclear(res);
    if (!ok || PQputCopyData(conn, b->data, (int)b->len) != 1 || PQputCopyEnd(conn, NULL) != 1) {
        log_warn("import: %s: %s", sql, PQerrorMessage(conn));
        while ((res = PQgetResult(conn)) != NULL)
            PQclear(res);
        return false;
    }
    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            log_warn("import: %s: %s", sql, PQresultErrorMessage(res));
            ok = false;
        }
        PQclear(res);
    }
    return ok;
}

/* Runs a statement returning one count; -1 on failure. */
static int64_t s_count(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    int64_t count = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    if (count < 0)
        log_warn("import: %s", PQresultErrorMessage(res));
    PQclear(res);
    return count;
}

/* ---- the batch ------------------------------------------------------------------------------ */

static const char s_lead_columns[] =
    "custom_id, first_name, middle_name, last_name, suffix, email, address, city, state, zip_code, "
    "country, custom";

static bool s_exec_params(PGconn *conn, const char *what, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        log_warn("import: %s: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

/* Applies the staged rows: what a prune list names, or, for an import, the rows that may meet
 * what the campaign already has (a custom_id seen before, a second lead on a number). Every join
 * from the stage is an index lookup per staged row; ANALYZE tells the planner the stage is small,
 * where a freshly filled temp table without statistics would make it hash the whole campaign. */
static int s_apply_stage(import_t *im, int64_t *removed)
{
    PGconn *conn = im->flush;
    const char *p[] = {im->account, im->campaign, im->list};
    *removed = 0;
    if (!s_command(conn, "ANALYZE import_stage"))
        return -1;
    if (strcmp(im->job->purpose, "prune_numbers") == 0) {
        *removed = s_count(conn,
                           "WITH r AS (UPDATE numbers n SET removed_at = now() FROM (SELECT DISTINCT phone FROM import_stage) s "
                           "WHERE n.phone = s.phone AND n.campaign_id = $2 AND n.removed_at IS NULL AND n.account_id = $1 "
                           "RETURNING n.id), "
                           "l AS (UPDATE leads SET removed_at = now() WHERE number_id IN (SELECT id FROM r) AND removed_at IS NULL "
                           "AND $3::bigint IS NOT NULL RETURNING 1) "
                           "SELECT count(*) FROM r",
                           3, p);
        return *removed < 0 ? -1 : 0;
    }
    if (im->prune_leads) {
        *removed = s_count(conn,
                           "WITH r AS (UPDATE leads SET removed_at = now() WHERE account_id = $1 AND campaign_id = $2 "
                           "AND custom_id IN (SELECT custom_id FROM import_stage) AND removed_at IS NULL "
                           "AND $3::bigint IS NOT NULL RETURNING 1) SELECT count(*) FROM r",
                           3, p);
        return *removed < 0 ? -1 : 0;
    }
    /* A lead with a custom_id is the same person whenever it comes again (the last row wins, and
     * it moves to the row's number); one without is new unless its number already has a lead of
     * the same name. */
    char sql[2560];
    snprintf(
        sql, sizeof(sql),
        "WITH s AS (SELECT DISTINCT ON (custom_id) * FROM import_stage WHERE custom_id IS NOT NULL "
        "ORDER BY custom_id, record DESC), "
        "u AS (UPDATE leads l SET number_id = s.number_id, list_id = $3, first_name = s.first_name, "
        "middle_name = s.middle_name, last_name = s.last_name, suffix = s.suffix, email = s.email, address = s.address, "
        "city = s.city, state = s.state, zip_code = s.zip_code, country = s.country, custom = s.custom, removed_at = NULL "
        "FROM s WHERE l.campaign_id = $2 AND l.custom_id = s.custom_id RETURNING l.custom_id) "
        "INSERT INTO leads (account_id, campaign_id, number_id, list_id, %s) "
        "SELECT $1, $2, s.number_id, $3, s.custom_id, s.first_name, s.middle_name, s.last_name, s.suffix, s.email, "
        "s.address, s.city, s.state, s.zip_code, s.country, s.custom FROM s WHERE s.custom_id NOT IN (SELECT custom_id FROM u)",
        s_lead_columns);
    if (!s_exec_params(conn, "leads by custom_id", sql, 3, p))
        return -1;
    snprintf(sql, sizeof(sql),
             "INSERT INTO leads (account_id, campaign_id, number_id, list_id, %s) "
             "SELECT DISTINCT ON (s.number_id, s.first_name, s.last_name) $1, $2, s.number_id, $3, NULL, s.first_name, "
             "s.middle_name, s.last_name, s.suffix, s.email, s.address, s.city, s.state, s.zip_code, s.country, s.custom "
             "FROM import_stage s WHERE s.custom_id IS NULL AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.number_id = s.number_id "
             "AND l.custom_id IS NULL AND l.first_name IS NOT DISTINCT FROM s.first_name "
             "AND l.last_name IS NOT DISTINCT FROM s.last_name) "
             "ORDER BY s.number_id, s.first_name, s.last_name, s.record",
             s_lead_columns);
    return s_exec_params(conn, "leads of known numbers", sql, 3, p) ? 0 : -1;
}

/* Loads the blocked numbers of the account (and of the campaign) into im->blocked. 0 or -1. */
static int s_load_blocked(import_t *im)
{
    const char *p[] = {im->account, im->campaign};
    PGresult *res = PQexecParams(
        im->flush, "SELECT number FROM blocked_numbers WHERE account_id = $1 AND (campaign_id IS NULL OR campaign_id = $2)", 2,
        NULL, p, NULL, NULL, 0);
    keyset_t *blocked = keyset_new(KEYSET_EXACT);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && blocked != NULL;
    for (int i = 0; ok && i < PQntuples(res); i++) {
        uint64_t key = s_phone_key(PQgetvalue(res, i, 0));
        ok = key == 0 || keyset_put(blocked, key, 0) == 0;
    }
    if (ok) {
        keyset_destroy(&im->blocked);
        im->blocked = blocked;
    } else {
        log_warn("import: blocked numbers: %s", blocked ? PQresultErrorMessage(res) : "out of memory");
        keyset_destroy(&blocked);
    }
    PQclear(res);
    return ok ? 0 : -1;
}

/* In the batch's transaction: takes the account's blocked-numbers lock shared (see 0004's
 * blocked_number_versions) and re-reads the blocked numbers if they changed since they were
 * read. From here to the commit no change to them can commit, and any that committed before is
 * in im->blocked. 0 or -1. */
static int s_blocked_current(import_t *im)
{
    const char *p[] = {im->account};
    /* Two statements: the version must be read with a snapshot taken after the lock is held. */
    if (!s_exec_params(im->flush, "blocked numbers lock",
                       "SELECT pg_advisory_xact_lock_shared(" LOCK_BLOCKED ", blocked_numbers_lock_key($1::bigint))", 1, p))
        return -1;
    int64_t version =
        s_count(im->flush, "SELECT coalesce((SELECT version FROM blocked_number_versions WHERE account_id = $1), 0)", 1, p);
    if (version < 0)
        return -1;
    if (version != im->blocked_version) {
        if (s_load_blocked(im) != 0)
            return -1;
        im->blocked_version = version;
    }
    return 0;
}

/* Commits the batch with the list's counts and resume point. The update is conditional on this
 * worker still owning the list: if another took it over, nothing of this batch lands. Runs on
 * the flushing thread. */
static int s_flush(import_t *im, batch_t *batch)
{
    PGconn *conn = im->flush;
    if (batch->failed || batch->numbers.failed || batch->leads.failed || batch->stage.failed || batch->errors.failed)
        return -1;
    int64_t blocked = 0, removed = 0;
    /* An asynchronous commit is safe here: the batch and its resume point commit together, so
     * a crash that loses the last commit loses both and the import redoes that batch. */
    if (!s_command(conn, "BEGIN") || !s_command(conn, "SET LOCAL synchronous_commit = off"))
        return -1;
    if (im->adds) {
        if (s_blocked_current(im) != 0)
            goto Rollback;
        for (size_t i = 0; i < batch->flag_count; i++)
            if (keyset_has(im->blocked, batch->flags[i].phone, NULL))
                batch->numbers.data[batch->flags[i].offset] = 't';
        for (size_t i = 0; i < batch->phone_count; i++)
            blocked += keyset_has(im->blocked, batch->phones[i], NULL);
    }
    char sql[512];
    snprintf(sql, sizeof(sql), "COPY leads (account_id, campaign_id, number_id, list_id, %s) FROM STDIN", s_lead_columns);
    if (!s_copy(conn, "COPY numbers (id, account_id, campaign_id, phone, time_zones, list_id, blocked) FROM STDIN",
                &batch->numbers) ||
        !s_copy(conn, sql, &batch->leads) ||
        !s_copy(conn, "COPY list_import_errors (account_id, list_id, record, line, message) FROM STDIN", &batch->errors))
        goto Rollback;
    if (batch->restored_count > 0) {
        buffer_t ids = {0};
        s_append_str(&ids, "{");
        for (size_t i = 0; i < batch->restored_count; i++) {
            char id[24];
            snprintf(id, sizeof(id), "%s%" PRId64, i ? "," : "", batch->restored[i]);
            s_append_str(&ids, id);
        }
        s_append(&ids, "}", 2);
        const char *p[] = {ids.failed ? NULL : ids.data};
        bool ok = !ids.failed && s_exec_params(conn, "restoring numbers",
                                               "UPDATE numbers SET removed_at = NULL WHERE id = ANY($1::bigint[]) "
                                               "AND removed_at IS NOT NULL",
                                               1, p);
        free(ids.data);
        if (!ok)
            goto Rollback;
    }
    if (batch->stage.len > 0 &&
        (!s_copy(conn,
                 "COPY import_stage (record, phone, time_zones, custom_id, first_name, middle_name, last_name, suffix, email, "
                 "address, city, state, zip_code, country, custom, number_id) FROM STDIN",
                 &batch->stage) ||
         s_apply_stage(im, &removed) != 0))
        goto Rollback;
    char rows[24], valid[24], invalid[24], dup[24], blk[24], rem[24], offset[24], records[24], line[24];
    snprintf(rows, sizeof(rows), "%" PRId64, batch->rows);
    snprintf(valid, sizeof(valid), "%" PRId64, im->adds ? batch->valid : 0);
    snprintf(invalid, sizeof(invalid), "%" PRId64, batch->invalid);
    snprintf(dup, sizeof(dup), "%" PRId64, im->adds ? batch->valid - batch->created : 0);
    snprintf(blk, sizeof(blk), "%" PRId64, blocked);
    snprintf(rem, sizeof(rem), "%" PRId64, removed);
    snprintf(offset, sizeof(offset), "%" PRIu64, batch->next.offset);
    snprintf(records, sizeof(records), "%" PRIu64, batch->next.records);
    snprintf(line, sizeof(line), "%" PRIu64, batch->next.line);
    const char *p[] = {im->list, im->pid_text, rows, valid, invalid, dup, blk, rem, offset, records, line};
    int64_t owned =
        s_count(conn,
                "WITH u AS (UPDATE lists SET rows_total = rows_total + $3, rows_imported = rows_imported + $4, "
                "rows_invalid = rows_invalid + $5, rows_duplicate = rows_duplicate + $6, rows_blocked = rows_blocked + $7, "
                "rows_removed = rows_removed + $8, bytes_done = $9, resume_offset = $9, resume_record = $10, "
                "resume_line = $11, heartbeat_at = now() "
                "WHERE id = $1 AND status = 'importing' AND worker_pid = $2 RETURNING 1) SELECT count(*) FROM u",
                11, p);
    if (owned != 1)
        goto Rollback;
    return s_command(conn, "COMMIT") ? 0 : -1;
Rollback:
    s_command(conn, "ROLLBACK");
    return -1;
}

static void *s_flusher(void *arg)
{
    import_t *im = arg;
    pthread_mutex_lock(&im->lock);
    for (;;) {
        while (im->pending == NULL && !im->quit)
            pthread_cond_wait(&im->changed, &im->lock);
        if (im->pending == NULL)
            break;
        batch_t *batch = im->pending;
        pthread_mutex_unlock(&im->lock);
        int rc = s_flush(im, batch);
        pthread_mutex_lock(&im->lock);
        im->flush_failed = im->flush_failed || rc != 0;
        im->pending = NULL;
        pthread_cond_broadcast(&im->changed);
    }
    pthread_mutex_unlock(&im->lock);
    return NULL;
}

/* Waits until the flushing thread is idle. false if a flush failed (the import is then lost to
 * this worker and resumes from the last committed batch). */
static bool s_wait_flushed(import_t *im)
{
    pthread_mutex_lock(&im->lock);
    while (im->pending != NULL && !im->flush_failed)
        pthread_cond_wait(&im->changed, &im->lock);
    bool ok = !im->flush_failed;
    pthread_mutex_unlock(&im->lock);
    return ok;
}

/* Hands the filled batch to the flushing thread and starts filling the other one. */
static int s_hand_off(import_t *im)
{
    if (!s_wait_flushed(im)) {
        im->result = IMPORT_LOST;
        return -1;
    }
    batch_t *next = im->batch == &im->batches[0] ? &im->batches[1] : &im->batches[0];
    next->numbers.len = next->leads.len = next->stage.len = next->errors.len = 0;
    next->numbers.failed = next->leads.failed = next->stage.failed = next->errors.failed = next->failed = false;
    next->phone_count = next->flag_count = next->restored_count = 0;
    next->rows = next->valid = next->invalid = next->created = 0;
    next->next = im->batch->next;
    pthread_mutex_lock(&im->lock);
    im->pending = im->batch;
    pthread_cond_broadcast(&im->changed);
    pthread_mutex_unlock(&im->lock);
    im->batch = next;
    return 0;
}

/* ---- rows ----------------------------------------------------------------------------------- */

static void s_fail(import_t *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_fail(import_t *im, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(im->failure, im->failure_size, fmt, ap);
    va_end(ap);
    im->result = IMPORT_FAILED;
}

/* The header: every column the map names must be there (matched exactly, else ignoring case
 * and surrounding spaces), so a misspelt map fails loudly instead of importing empty fields. */
static int s_header(import_t *im, const csv_row_t *row)
{
    if (row->error != CSV_OK) {
        s_fail(im, "The header row cannot be read: %s", row->error_text);
        return -1;
    }
    if (row->count > COLUMNS_MAX) {
        s_fail(im, "The header has more than %d columns.", COLUMNS_MAX);
        return -1;
    }
    im->column_count = (int)row->count;
    for (int c = 0; c < im->column_count; c++)
        im->column_field[c] = FIELD_IGNORED;
    const char *header;
    json_t *field;
    json_object_foreach(im->map, header, field)
    {
        int found = -1;
        for (int c = 0; c < im->column_count && found < 0; c++)
            if (row->fields[c].len == strlen(header) && memcmp(row->fields[c].data, header, row->fields[c].len) == 0)
                found = c;
        for (int c = 0; c < im->column_count && found < 0; c++) {
            const char *p = row->fields[c].data;
            size_t len = row->fields[c].len;
            while (len && (*p == ' ' || *p == '\t'))
                p++, len--;
            while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                len--;
            if (len == strlen(header) && strncasecmp(p, header, len) == 0)
                found = c;
        }
        if (found < 0) {
            s_fail(im, "The column '%s' named in column_map is not in the file's header.", header);
            return -1;
        }
        const char *name = json_string_value(field);
        im->column_field[found] = FIELD_CUSTOM;
        for (size_t f = 0; f < SYSTEM_FIELDS; f++)
            if (strcmp(s_system_fields[f], name) == 0)
                im->column_field[found] = (int)f;
        if (im->column_field[found] == FIELD_CUSTOM && (im->column_custom[found] = strdup(name)) == NULL) {
            s_fail(im, "out of memory");
            return -1;
        }
    }
    im->have_header = true;
    return 0;
}

static void s_row_error(import_t *im, int64_t record, int64_t line, const char *message)
{
    char number[48];
    buffer_t *b = &im->batch->errors;
    s_append_str(b, im->account);
    s_append_str(b, "\t");
    s_append_str(b, im->list);
    snprintf(number, sizeof(number), "\t%" PRId64 "\t%" PRId64 "\t", record, line);
    s_append_str(b, number);
    s_copy_value(b, message, strnlen(message, IMPORT_MESSAGE_MAX));
    s_append_str(b, "\n");
    im->batch->invalid++;
}

static size_t s_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* The next number id, from ids reserved in bulk from numbers' sequence (the leads of a new
 * number need it before the number is written). 0 if the database cannot be reached. */
static int64_t s_next_id(import_t *im)
{
    if (im->id_next == im->id_count) {
        char count[16];
        snprintf(count, sizeof(count), "%d", IMPORT_BATCH_ROWS);
        const char *p[] = {im->id_sequence, count};
        PGresult *res =
            PQexecParams(im->conn, "SELECT nextval($1::regclass) FROM generate_series(1, $2::int)", 2, NULL, p, NULL, NULL, 0);
        bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == IMPORT_BATCH_ROWS &&
                  (im->ids != NULL || (im->ids = malloc(IMPORT_BATCH_ROWS * sizeof(int64_t))) != NULL);
        for (int i = 0; ok && i < IMPORT_BATCH_ROWS; i++)
            im->ids[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        if (!ok)
            log_warn("import: reserving number ids: %s", PQresultErrorMessage(res));
        PQclear(res);
        if (!ok)
            return 0;
        im->id_next = 0;
        im->id_count = IMPORT_BATCH_ROWS;
    }
    return im->ids[im->id_next++];
}

/* The lead fields of a row after its number id, in s_lead_columns' order. */
static void s_lead_fields(buffer_t *b, const csv_field_t *const *values, const char *custom_json, size_t custom_len)
{
    for (size_t f = 1; f < SYSTEM_FIELDS; f++) {
        s_append_str(b, "\t");
        if (values[f])
            s_copy_value(b, values[f]->data, values[f]->len);
        else
            s_copy_null(b);
    }
    s_append_str(b, "\t");
    if (custom_json)
        s_copy_value(b, custom_json, custom_len);
    else
        b->failed = true;
}

/* A row for the stage: prune lists, and import rows that may meet what the campaign has. */
static void s_stage_row(import_t *im, int64_t record, const char *e164, const char *zones_text, const csv_field_t *const *values,
                        const char *custom_json, size_t custom_len, int64_t number_id)
{
    char number[48];
    buffer_t *b = &im->batch->stage;
    snprintf(number, sizeof(number), "%" PRId64 "\t", record);
    s_append_str(b, number);
    s_append_str(b, e164 ? e164 : "\\N");
    s_append_str(b, "\t");
    s_append_str(b, zones_text ? zones_text : "\\N");
    s_lead_fields(b, values, custom_json, custom_len);
    if (number_id > 0)
        snprintf(number, sizeof(number), "\t%" PRId64 "\n", number_id);
    else
        snprintf(number, sizeof(number), "\t\\N\n");
    s_append_str(b, number);
}

/* An import row whose phone is valid: a new number (or a pruned one restored), its lead, and
 * what goes to the stage instead when the campaign may already have the lead. */
static void s_add_row(import_t *im, int64_t record, const char *e164, uint64_t phone, const char *zones_text,
                      const csv_field_t *const *values, const char *custom_json, size_t custom_len)
{
    batch_t *batch = im->batch;
    int64_t number_id;
    bool new_number = false;
    if (!keyset_has(im->numbers, phone, &number_id)) {
        if (keyset_count(im->numbers) >= IMPORT_CAMPAIGN_NUMBERS_MAX) {
            s_fail(im, "The campaign would have more than %d numbers; split it into several campaigns.",
                   IMPORT_CAMPAIGN_NUMBERS_MAX);
            batch->failed = true;
            return;
        }
        if ((number_id = s_next_id(im)) == 0 || keyset_put(im->numbers, phone, number_id) != 0 ||
            !s_reserve(&batch->flags, &batch->flag_cap, batch->flag_count + 1, sizeof(flag_t))) {
            batch->failed = true;
            return;
        }
        char head[96];
        buffer_t *b = &batch->numbers;
        snprintf(head, sizeof(head), "%" PRId64 "\t%s\t%s\t", number_id, im->account, im->campaign);
        s_append_str(b, head);
        s_append_str(b, e164);
        s_append_str(b, "\t");
        s_append_str(b, zones_text);
        s_append_str(b, "\t");
        s_append_str(b, im->list);
        s_append_str(b, "\t");
        batch->flags[batch->flag_count++] = (flag_t){.offset = b->len, .phone = phone};
        s_append_str(b, "f\n");
        batch->created++;
        new_number = true;
    } else if (number_id < 0) {
        /* A pruned number that comes back is restored; its old leads stay, so its lead is staged. */
        number_id = -number_id;
        if (keyset_put(im->numbers, phone, number_id) != 0 ||
            !s_reserve(&batch->restored, &batch->restored_cap, batch->restored_count + 1, sizeof(int64_t))) {
            batch->failed = true;
            return;
        }
        batch->restored[batch->restored_count++] = number_id;
        batch->created++;
    }
    if (!s_reserve(&batch->phones, &batch->phone_cap, batch->phone_count + 1, sizeof(uint64_t))) {
        batch->failed = true;
        return;
    }
    batch->phones[batch->phone_count++] = phone;
    batch->valid++;

    const csv_field_t *custom_id = values[1];
    bool copy = new_number;
    if (custom_id) {
        uint64_t key = s_text_key(custom_id->data, custom_id->len);
        copy = !keyset_has(im->custom_ids, key, NULL);
        if (copy && keyset_count(im->custom_ids) >= IMPORT_CAMPAIGN_NUMBERS_MAX) {
            s_fail(im, "The campaign would have more than %d leads with a custom_id; split it into several campaigns.",
                   IMPORT_CAMPAIGN_NUMBERS_MAX);
            batch->failed = true;
            return;
        }
        if (copy && keyset_put(im->custom_ids, key, 0) != 0) {
            batch->failed = true;
            return;
        }
    }
    if (!copy) {
        s_stage_row(im, record, e164, zones_text, values, custom_json, custom_len, number_id);
        return;
    }
    char head[96];
    buffer_t *b = &batch->leads;
    snprintf(head, sizeof(head), "%s\t%s\t%" PRId64 "\t%s", im->account, im->campaign, number_id, im->list);
    s_append_str(b, head);
    s_lead_fields(b, values, custom_json, custom_len);
    s_append_str(b, "\n");
}

/* One data row into the batch, or into the errors with the reason. */
static void s_data_row(import_t *im, const csv_row_t *row, int64_t record, int64_t line)
{
    if (row->error != CSV_OK) {
        s_row_error(im, record, line, row->error_text);
        return;
    }
    const csv_field_t *values[SYSTEM_FIELDS] = {0};
    char message[IMPORT_MESSAGE_MAX];
    json_writer_t custom;
    json_writer_init(&custom);
    json_writer_object_begin(&custom);
    for (int c = 0; c < im->column_count && c < (int)row->count; c++) {
        const csv_field_t *v = &row->fields[c];
        int f = im->column_field[c];
        if (f == FIELD_IGNORED || v->len == 0)
            continue;
        if (s_utf8_chars(v->data, v->len) > IMPORT_FIELD_MAX) {
            snprintf(message, sizeof(message), "%s: longer than %d characters",
                     f == FIELD_CUSTOM ? im->column_custom[c] : s_system_fields[f], IMPORT_FIELD_MAX);
            s_row_error(im, record, line, message);
            json_writer_reset(&custom);
            return;
        }
        if (f == FIELD_CUSTOM) {
            json_writer_key(&custom, im->column_custom[c]);
            json_writer_string_len(&custom, v->data, v->len);
        } else {
            values[f] = v;
        }
    }
    json_writer_object_end(&custom);
    size_t custom_len;
    char *custom_json = json_writer_finish(&custom, &custom_len);

    char e164[PHONE_E164_SIZE], phone_input[PHONE_INPUT_MAX + 2];
    /* Every IANA name is letters, digits and / _ - + only, so it needs no quoting beyond "". */
    char zones_text[PHONE_ZONES_MAX * 64 + 3];
    uint64_t phone = 0;
    if (!im->prune_leads) {
        phone_error_t error = PHONE_EMPTY;
        const csv_field_t *v = values[FIELD_PHONE];
        size_t len = v ? (v->len < sizeof(phone_input) - 1 ? v->len : sizeof(phone_input) - 1) : 0;
        memcpy(phone_input, v ? v->data : "", len);
        phone_input[len] = '\0';
        if (v == NULL || v->len > PHONE_INPUT_MAX || phone_normalize(phone_input, PHONE_REGION, e164, sizeof(e164), &error) != 0 ||
            (phone = s_phone_key(e164)) == 0) {
            snprintf(message, sizeof(message), "phone '%.40s' %s", phone_input,
                     v && v->len > PHONE_INPUT_MAX ? phone_error_text(PHONE_TOO_LONG)
                     : error == PHONE_OK           ? "has more digits than any number that can be dialed"
                                                   : phone_error_text(error));
            s_row_error(im, record, line, message);
            free(custom_json);
            return;
        }
        const char *zones[PHONE_ZONES_MAX];
        int zone_count = phone_time_zones(e164, zones, PHONE_ZONES_MAX);
        size_t n = 0;
        zones_text[n++] = '{';
        for (int z = 0; z < zone_count && n + strlen(zones[z]) + 4 < sizeof(zones_text); z++)
            n += (size_t)snprintf(zones_text + n, sizeof(zones_text) - n, "%s\"%s\"", z ? "," : "", zones[z]);
        zones_text[n++] = '}';
        zones_text[n] = '\0';
    } else if (values[1] == NULL) {
        s_row_error(im, record, line, "custom_id is empty");
        free(custom_json);
        return;
    }
    if (im->adds) {
        s_add_row(im, record, e164, phone, zones_text, values, custom_json, custom_len);
    } else {
        s_stage_row(im, record, im->prune_leads ? NULL : e164, im->prune_leads ? NULL : zones_text, values, custom_json, custom_len,
                    0);
        im->batch->valid++;
    }
    free(custom_json);
}

static int s_on_row(void *arg, const csv_row_t *row)
{
    import_t *im = arg;
    if (!im->have_header && row->record == 1)
        return s_header(im, row) == 0 ? 0 : 1;
    im->batch->rows++;
    s_data_row(im, row, (int64_t)row->record - 1, (int64_t)row->line);
    if (im->result == IMPORT_FAILED)
        return 1;
    im->batch->next = csv_reader_position(im->reader);
    if (im->batch->rows >= IMPORT_BATCH_ROWS) {
        if (s_hand_off(im) != 0)
            return 1;
        if (im->stop(im->stop_arg)) {
            im->result = IMPORT_STOPPED;
            return 1;
        }
    }
    return 0;
}

/* Only the header, read from the start of the file when an import resumes further in. */
static int s_on_header_only(void *arg, const csv_row_t *row)
{
    import_t *im = arg;
    return s_header(im, row) == 0 ? 1 : -1;
}

/* ---- parts ---------------------------------------------------------------------------------- */

/* Feeds the stream from `from` on: each part is fetched alone, so memory holds one part. */
static int s_feed_parts(import_t *im, csv_reader_t *reader, int64_t from, csv_row_fn *on_row, bool until_stopped)
{
    PGresult *sizes = PQexecParams(im->conn, "SELECT part, length(data) FROM list_upload_parts WHERE list_id = $1 ORDER BY part", 1,
                                   NULL, (const char *[]){im->list}, NULL, NULL, 0);
    if (PQresultStatus(sizes) != PGRES_TUPLES_OK) {
        PQclear(sizes);
        im->result = IMPORT_LOST;
        return -1;
    }
    int64_t start = 0;
    int rc = 0;
    for (int i = 0; i < PQntuples(sizes) && rc == 0; i++) {
        int64_t len = strtoll(PQgetvalue(sizes, i, 1), NULL, 10);
        if (start + len <= from) {
            start += len;
            continue;
        }
        char skip[24];
        snprintf(skip, sizeof(skip), "%" PRId64, from > start ? from - start + 1 : 1);
        const char *p[] = {im->list, PQgetvalue(sizes, i, 0), skip};
        PGresult *part =
            PQexecParams(im->conn, "SELECT substring(data from $3::int) FROM list_upload_parts WHERE list_id = $1 AND part = $2", 3,
                         NULL, p, NULL, NULL, 1);
        if (PQresultStatus(part) != PGRES_TUPLES_OK || PQntuples(part) != 1) {
            PQclear(part);
            im->result = IMPORT_LOST;
            rc = -1;
            break;
        }
        rc = csv_reader_feed(reader, PQgetvalue(part, 0, 0), (size_t)PQgetlength(part, 0, 0), on_row, im);
        PQclear(part);
        start += len;
    }
    PQclear(sizes);
    if (rc == 0 && until_stopped)
        rc = csv_reader_finish(reader, on_row, im);
    return rc;
}

/* ---- the campaign -------------------------------------------------------------------------- */

/* Takes the campaign's advisory lock on the flushing connection, for the whole import (it goes
 * with the connection, so also with a crashed importer): imports into one campaign run one after
 * the other, which is what lets each trust its in-memory view of the campaign. While it waits,
 * the list's heartbeat is kept fresh so no other importer takes it over. 0, or -1 (stopped or
 * lost). */
static int s_lock_campaign(import_t *im)
{
    const char *p[] = {im->campaign, im->list, im->pid_text};
    for (;;) {
        PGresult *res = PQexecParams(im->flush, "SELECT pg_try_advisory_lock(" LOCK_CAMPAIGN ", ($1::bigint % 2147483647)::int)", 1,
                                     NULL, p, NULL, NULL, 0);
        bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        bool locked = ok && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (!ok || locked)
            return ok ? 0 : -1;
        if (s_count(im->flush,
                    "WITH u AS (UPDATE lists SET heartbeat_at = now() WHERE id = $2 AND status = 'importing' AND worker_pid = $3 "
                    "AND $1::bigint IS NOT NULL RETURNING 1) SELECT count(*) FROM u",
                    3, p) != 1)
            return -1;
        if (im->stop(im->stop_arg)) {
            im->result = IMPORT_STOPPED;
            return -1;
        }
        log_info("list=%s waits for another import into campaign %s", im->list, im->campaign);
        sleep(1);
    }
}

/* Streams a query's rows to `on_row`, one at a time, so a campaign of millions of numbers is
 * never held twice in memory. */
static int s_stream(import_t *im, const char *sql, bool (*on_row)(import_t *, const PGresult *))
{
    const char *p[] = {im->campaign};
    if (!PQsendQueryParams(im->flush, sql, 1, NULL, p, NULL, NULL, 0) || !PQsetSingleRowMode(im->flush))
        return -1;
    bool ok = true;
    PGresult *res;
    while ((res = PQgetResult(im->flush)) != NULL) {
        ExecStatusType status = PQresultStatus(res);
        if (status == PGRES_SINGLE_TUPLE)
            ok = ok && on_row(im, res);
        else if (status != PGRES_TUPLES_OK) {
            log_warn("import: %s", PQresultErrorMessage(res));
            ok = false;
        }
        PQclear(res);
    }
    return ok ? 0 : -1;
}

static bool s_on_number(import_t *im, const PGresult *res)
{
    int64_t id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    uint64_t key = s_phone_key(PQgetvalue(res, 0, 1));
    return key == 0 || keyset_put(im->numbers, key, strcmp(PQgetvalue(res, 0, 2), "t") == 0 ? -id : id) == 0;
}

static bool s_on_custom_id(import_t *im, const PGresult *res)
{
    return keyset_put(im->custom_ids, s_text_key(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0)), 0) == 0;
}

/* What an import list needs before its first row: the campaign's lock, its numbers and
 * custom_ids, the blocked numbers, and the sequence number ids come from. 0 or -1. */
static int s_campaign_state(import_t *im)
{
    if (s_lock_campaign(im) != 0)
        return -1;
    PGresult *res = PQexec(im->flush, "SELECT pg_get_serial_sequence('numbers', 'id')");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
              snprintf(im->id_sequence, sizeof(im->id_sequence), "%s", PQgetvalue(res, 0, 0)) < (int)sizeof(im->id_sequence);
    PQclear(res);
    if (!ok || s_stream(im, "SELECT id, phone, removed_at IS NOT NULL FROM numbers WHERE campaign_id = $1", s_on_number) != 0 ||
        s_stream(im, "SELECT custom_id FROM leads WHERE campaign_id = $1 AND custom_id IS NOT NULL", s_on_custom_id) != 0)
        return -1;
    if (keyset_count(im->numbers) > IMPORT_CAMPAIGN_NUMBERS_MAX || keyset_count(im->custom_ids) > IMPORT_CAMPAIGN_NUMBERS_MAX) {
        s_fail(im, "The campaign has more than %d numbers or leads; import into another campaign.", IMPORT_CAMPAIGN_NUMBERS_MAX);
        return -1;
    }
    /* The blocked numbers as of a version, read under the lock the batches take (s_blocked_current). */
    im->blocked_version = -1;
    if (!s_command(im->flush, "BEGIN") || s_blocked_current(im) != 0) {
        s_command(im->flush, "ROLLBACK");
        return -1;
    }
    return s_command(im->flush, "COMMIT") ? 0 : -1;
}

static csv_reader_t *s_reader(const import_job_t *job)
{
    csv_options_t options = {.separator = job->separator};
    return csv_reader_new(&options);
}

import_result_t import_run(PGconn *conn, const char *database_url, const import_job_t *job, int worker_pid, import_stop_fn *stop,
                           void *stop_arg, char *failure, size_t failure_size)
{
    import_t im = {.conn = conn,
                   .job = job,
                   .pid = worker_pid,
                   .prune_leads = strcmp(job->purpose, "prune_leads") == 0,
                   .adds = strcmp(job->purpose, "import") == 0,
                   .result = IMPORT_DONE,
                   .failure = failure,
                   .failure_size = failure_size,
                   .stop = stop,
                   .stop_arg = stop_arg};
    char err[512];
    pthread_mutex_init(&im.lock, NULL);
    pthread_cond_init(&im.changed, NULL);
    im.batch = &im.batches[0];
    snprintf(im.account, sizeof(im.account), "%" PRId64, job->account_id);
    snprintf(im.campaign, sizeof(im.campaign), "%" PRId64, job->campaign_id);
    snprintf(im.list, sizeof(im.list), "%" PRId64, job->list_id);
    snprintf(im.pid_text, sizeof(im.pid_text), "%d", worker_pid);
    if ((im.numbers = keyset_new(KEYSET_WITH_VALUES)) == NULL || (im.custom_ids = keyset_new(KEYSET_FINGERPRINTS)) == NULL ||
        (im.blocked = keyset_new(KEYSET_EXACT)) == NULL) {
        im.result = IMPORT_LOST;
        goto Exit;
    }
    im.map = json_loads(job->column_map, 0, NULL);
    if (im.map == NULL || !json_is_object(im.map)) {
        s_fail(&im, "The list's column_map is not readable.");
        goto Exit;
    }
    if ((im.flush = db_connect(database_url, err, sizeof(err))) == NULL) {
        log_warn("import: %s", err);
        im.result = IMPORT_LOST;
        goto Exit;
    }
    if (!s_command(im.flush, "CREATE TEMP TABLE import_stage (record bigint, phone text, time_zones text[], "
                             "custom_id text, first_name text, middle_name text, last_name text, suffix text, email text, "
                             "address text, city text, state text, zip_code text, country text, custom jsonb, "
                             "number_id bigint) ON COMMIT DELETE ROWS") ||
        (im.adds && s_campaign_state(&im) != 0) || pthread_create(&im.flusher, NULL, s_flusher, &im) != 0) {
        if (im.result == IMPORT_DONE)
            im.result = IMPORT_LOST;
        im.result = IMPORT_LOST;
        goto Exit;
    }
    im.flusher_started = true;
    if (job->resume_offset > 0) {
        csv_reader_t *header = s_reader(job);
        if (header == NULL) {
            im.result = IMPORT_LOST;
            goto Exit;
        }
        s_feed_parts(&im, header, 0, s_on_header_only, false);
        csv_reader_destroy(&header);
        if (!im.have_header) {
            if (im.result == IMPORT_DONE)
                s_fail(&im, "The file has no header row.");
            goto Exit;
        }
    }
    im.batch->next = (csv_position_t){
        .offset = (uint64_t)job->resume_offset, .line = (uint64_t)job->resume_line, .records = (uint64_t)job->resume_record};
    if ((im.reader = s_reader(job)) == NULL || (job->resume_offset > 0 && csv_reader_resume(im.reader, &im.batch->next) != 0)) {
        im.result = IMPORT_LOST;
        goto Exit;
    }
    s_feed_parts(&im, im.reader, job->resume_offset, s_on_row, true);
    if (im.result == IMPORT_DONE && !im.have_header)
        s_fail(&im, "The file is empty: it has no header row.");
    /* The last batch, then nothing may be left in flight: the list is completed only after
     * every row is committed. */
    if (im.result == IMPORT_DONE && (s_hand_off(&im) != 0 || !s_wait_flushed(&im)))
        im.result = IMPORT_LOST;
Exit:
    if (im.flusher_started) {
        pthread_mutex_lock(&im.lock);
        im.quit = true;
        pthread_cond_broadcast(&im.changed);
        pthread_mutex_unlock(&im.lock);
        pthread_join(im.flusher, NULL);
    }
    PQfinish(im.flush);
    pthread_cond_destroy(&im.changed);
    pthread_mutex_destroy(&im.lock);
    csv_reader_destroy(&im.reader);
    for (int c = 0; c < COLUMNS_MAX; c++)
        free(im.column_custom[c]);
    json_decref(im.map);
    for (int b = 0; b < 2; b++) {
        batch_t *batch = &im.batches[b];
        free(batch->numbers.data);
        free(batch->leads.data);
        free(batch->stage.data);
        free(batch->errors.data);
        free(batch->phones);
        free(batch->flags);
        free(batch->restored);
    }
    keyset_destroy(&im.numbers);
    keyset_destroy(&im.custom_ids);
    keyset_destroy(&im.blocked);
    free(im.ids);
    return im.result;
}
