#include "actors/importer/import.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* One batch of rows on its way to the database: COPY text for the stage and for the row errors,
 * its counts, and where the CSV stream resumes after it. */
typedef struct {
    buffer_t stage, errors;
    int64_t rows, valid, invalid;
    csv_position_t next;
} batch_t;

typedef struct {
    PGconn *conn;  /* reads the uploaded parts (the parsing thread) */
    PGconn *flush; /* writes batches (the flushing thread) */
    const import_job_t *job;
    int pid;
    char account[24], campaign[24], list[24], pid_text[16];
    bool prune_leads;

    /* Header: what each CSV column fills. */
    bool have_header;
    int column_count;
    int column_field[COLUMNS_MAX];
    char *column_custom[COLUMNS_MAX];
    json_t *map; /* header -> field, from the list */

    /* Position in the stream made of every part in order. CSV records are numbered from 1 with
     * the header, so a data row's number is its record number minus one. */
    csv_reader_t *reader;

    /* Parsing and writing overlap: while the flushing thread writes one batch on its own
     * connection, this thread normalises the rows of the next (phone numbers cost about as
     * much as the database work). Two batches alternate; `pending` is the one being written. */
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

/* Every join from the stage to numbers is a LATERAL subquery behind OFFSET 0, which keeps it a
 * nested loop of index lookups (one per staged row). Left to itself the planner, seeing a
 * freshly filled stage without statistics and a numbers table whose statistics lag the import,
 * hashes every number of the campaign for each batch: quadratic in the size of the list. */

/* Applies the staged rows for the list's purpose; fills the counts. 0 or -1. */
static int s_apply(import_t *im, const batch_t *batch, int64_t *duplicate, int64_t *blocked, int64_t *removed)
{
    PGconn *conn = im->flush;
    const char *p[] = {im->account, im->campaign, im->list};
    *duplicate = *blocked = *removed = 0;
    if (strcmp(im->job->purpose, "prune_numbers") == 0) {
        *removed = s_count(conn,
                           "WITH r AS (UPDATE numbers n SET removed_at = now() FROM (SELECT DISTINCT phone FROM import_stage) s "
                           "WHERE n.campaign_id = $2 AND n.phone = s.phone AND n.removed_at IS NULL AND n.account_id = $1 "
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
    /* A phone the campaign already has is a duplicate: its lead joins the existing number. A
     * pruned number that comes back is restored. Blocked numbers are imported, flagged, and
     * never dialed. */
    int64_t created =
        s_count(conn,
                "WITH n AS (INSERT INTO numbers (account_id, campaign_id, phone, time_zones, list_id, blocked) "
                "SELECT DISTINCT ON (s.phone) $1, $2, s.phone, s.time_zones, $3, EXISTS (SELECT 1 FROM blocked_numbers b "
                "WHERE b.account_id = $1 AND b.number = s.phone AND (b.campaign_id IS NULL OR b.campaign_id = $2)) "
                "FROM import_stage s ORDER BY s.phone, s.record "
                "ON CONFLICT (campaign_id, phone) DO UPDATE SET removed_at = NULL WHERE numbers.removed_at IS NOT NULL "
                "RETURNING 1) SELECT count(*) FROM n",
                3, p);
    if (created < 0)
        return -1;
    *duplicate = batch->valid - created;
    *blocked =
        s_count(conn,
                "SELECT count(*) FROM import_stage s CROSS JOIN LATERAL (SELECT blocked FROM numbers n WHERE n.campaign_id = $2 "
                "AND n.phone = s.phone AND n.account_id = $1 OFFSET 0) n WHERE n.blocked AND $3::bigint IS NOT NULL",
                3, p);
    if (*blocked < 0)
        return -1;
    /* A lead with a custom_id is the same person whenever it comes again (the last row wins);
     * one without is new unless its number already has a lead of the same name. */
    static const char lead_columns[] = "custom_id, first_name, middle_name, last_name, suffix, email, address, city, state, "
                                       "zip_code, country, custom";
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "INSERT INTO leads (account_id, campaign_id, number_id, list_id, %s) "
             "SELECT DISTINCT ON (s.custom_id) $1, $2, n.id, $3, s.custom_id, s.first_name, s.middle_name, s.last_name, s.suffix, "
             "s.email, s.address, s.city, s.state, s.zip_code, s.country, s.custom "
             "FROM import_stage s CROSS JOIN LATERAL (SELECT id, blocked FROM numbers n WHERE n.campaign_id = $2 AND n.phone = "
             "s.phone OFFSET 0) n "
             "WHERE s.custom_id IS NOT NULL ORDER BY s.custom_id, s.record DESC "
             "ON CONFLICT (campaign_id, custom_id) DO UPDATE SET number_id = excluded.number_id, list_id = excluded.list_id, "
             "first_name = excluded.first_name, middle_name = excluded.middle_name, last_name = excluded.last_name, "
             "suffix = excluded.suffix, email = excluded.email, address = excluded.address, city = excluded.city, "
             "state = excluded.state, zip_code = excluded.zip_code, country = excluded.country, custom = excluded.custom, "
             "removed_at = NULL",
             lead_columns);
    PGresult *res = PQexecParams(conn, sql, 3, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_warn("import: leads: %s", PQresultErrorMessage(res));
    PQclear(res);
    if (!ok)
        return -1;
    snprintf(sql, sizeof(sql),
             "INSERT INTO leads (account_id, campaign_id, number_id, list_id, %s) "
             "SELECT DISTINCT ON (n.id, s.first_name, s.last_name) $1, $2, n.id, $3, NULL, s.first_name, s.middle_name, "
             "s.last_name, s.suffix, s.email, s.address, s.city, s.state, s.zip_code, s.country, s.custom "
             "FROM import_stage s CROSS JOIN LATERAL (SELECT id, blocked FROM numbers n WHERE n.campaign_id = $2 AND n.phone = "
             "s.phone OFFSET 0) n "
             "WHERE s.custom_id IS NULL AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.number_id = n.id AND l.custom_id IS NULL "
             "AND l.first_name IS NOT DISTINCT FROM s.first_name AND l.last_name IS NOT DISTINCT FROM s.last_name) "
             "ORDER BY n.id, s.first_name, s.last_name, s.record",
             lead_columns);
    res = PQexecParams(conn, sql, 3, NULL, p, NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_warn("import: leads: %s", PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

/* Commits the batch with the list's counts and resume point. The update is conditional on this
 * worker still owning the list: if another took it over, nothing of this batch lands. Runs on
 * the flushing thread. */
static int s_flush(import_t *im, const batch_t *batch)
{
    PGconn *conn = im->flush;
    if (batch->stage.failed || batch->errors.failed)
        return -1;
    int64_t duplicate, blocked, removed;
    /* An asynchronous commit is safe here: the batch and its resume point commit together, so
     * a crash that loses the last commit loses both and the import redoes that batch. */
    if (!s_command(conn, "BEGIN") || !s_command(conn, "SET LOCAL synchronous_commit = off"))
        return -1;
    if (!s_copy(conn,
                "COPY import_stage (record, phone, time_zones, custom_id, first_name, middle_name, last_name, suffix, email, "
                "address, city, state, zip_code, country, custom) FROM STDIN",
                &batch->stage) ||
        !s_copy(conn, "COPY list_import_errors (account_id, list_id, record, line, message) FROM STDIN", &batch->errors) ||
        s_apply(im, batch, &duplicate, &blocked, &removed) != 0)
        goto Rollback;
    char rows[24], valid[24], invalid[24], dup[24], blk[24], rem[24], offset[24], records[24], line[24];
    snprintf(rows, sizeof(rows), "%" PRId64, batch->rows);
    snprintf(valid, sizeof(valid), "%" PRId64,
             im->prune_leads || strcmp(im->job->purpose, "prune_numbers") == 0 ? 0 : batch->valid);
    snprintf(invalid, sizeof(invalid), "%" PRId64, batch->invalid);
    snprintf(dup, sizeof(dup), "%" PRId64, duplicate);
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
        const batch_t *batch = im->pending;
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
    next->stage.len = next->errors.len = 0;
    next->stage.failed = next->errors.failed = false;
    next->rows = next->valid = next->invalid = 0;
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

/* One data row into the stage buffer, or into the errors with the reason. */
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
    const char *zones[PHONE_ZONES_MAX];
    int zone_count = 0;
    bool needs_phone = !im->prune_leads;
    if (needs_phone) {
        phone_error_t error = PHONE_EMPTY;
        const csv_field_t *v = values[FIELD_PHONE];
        size_t len = v ? (v->len < sizeof(phone_input) - 1 ? v->len : sizeof(phone_input) - 1) : 0;
        memcpy(phone_input, v ? v->data : "", len);
        phone_input[len] = '\0';
        if (v == NULL || v->len > PHONE_INPUT_MAX || phone_normalize(phone_input, PHONE_REGION, e164, sizeof(e164), &error) != 0) {
            snprintf(message, sizeof(message), "phone '%.40s' %s", phone_input,
                     v && v->len > PHONE_INPUT_MAX ? phone_error_text(PHONE_TOO_LONG) : phone_error_text(error));
            s_row_error(im, record, line, message);
            free(custom_json);
            return;
        }
        zone_count = phone_time_zones(e164, zones, PHONE_ZONES_MAX);
    } else if (values[1] == NULL) {
        s_row_error(im, record, line, "custom_id is empty");
        free(custom_json);
        return;
    }

    char number[24];
    buffer_t *b = &im->batch->stage;
    snprintf(number, sizeof(number), "%" PRId64 "\t", record);
    s_append_str(b, number);
    if (needs_phone) {
        s_append_str(b, e164);
        s_append_str(b, "\t{");
        for (int z = 0; z < zone_count; z++) {
            s_append_str(b, z ? ",\"" : "\"");
            s_append_str(b, zones[z]); /* IANA names: letters, digits, / _ - + only */
            s_append_str(b, "\"");
        }
        s_append_str(b, "}");
    } else {
        s_append_str(b, "\\N\t\\N");
    }
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
    s_append_str(b, "\n");
    free(custom_json);
    im->batch->valid++;
}

static int s_on_row(void *arg, const csv_row_t *row)
{
    import_t *im = arg;
    if (!im->have_header && row->record == 1)
        return s_header(im, row) == 0 ? 0 : 1;
    im->batch->rows++;
    s_data_row(im, row, (int64_t)row->record - 1, (int64_t)row->line);
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
                             "address text, city text, state text, zip_code text, country text, custom jsonb) "
                             "ON COMMIT DELETE ROWS") ||
        pthread_create(&im.flusher, NULL, s_flusher, &im) != 0) {
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
        free(im.batches[b].stage.data);
        free(im.batches[b].errors.data);
    }
    return im.result;
}
