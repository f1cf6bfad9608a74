/*
 * Lists: a CSV upload that brings numbers and leads into a campaign (or removes them: prune
 * lists). A list is created with its column map, its file is uploaded in one or more parts (each
 * at most the request body limit), and `import` queues it for the importer process, which
 * reports progress on the list itself and rows it could not take under import_errors.
 *
 * The numbers and leads the imports produce are browsed here too, read-only: /v1/numbers and
 * /v1/leads, filtered by campaign, list or number.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "actors/store/resource.h"
#include "common/problem.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const s_purposes[] = {"import", "prune_numbers", "prune_leads", NULL};
static const char *const s_separators[] = {",", ";", "|", "tab", NULL};
static const char *const s_statuses[] = {"awaiting_upload", "queued", "importing", "completed", "failed", NULL};

static const field_def_t s_list_fields[] = {
    {.name = "name", .type = FIELD_TEXT, .flags = F_REQUIRED, .min = 1, .max = 200},
    {.name = "campaign_id", .type = FIELD_REF, .flags = F_REQUIRED | F_IMMUTABLE | F_FILTER, .ref_path = "campaigns"},
    {.name = "external_id",
     .type = FIELD_TEXT,
     .flags = F_NULLABLE,
     .min = 1,
     .max = 200,
     .doc = "Your own identifier for the list, unique in the account"},
    {.name = "purpose",
     .type = FIELD_ENUM,
     .flags = F_IMMUTABLE | F_FILTER,
     .choices = s_purposes,
     .doc = "import adds numbers and leads; prune_numbers removes the listed phones; prune_leads removes leads by custom_id"},
    {.name = "enabled", .type = FIELD_BOOL, .doc = "Leads of a disabled list are not dialed"},
    {.name = "column_map",
     .type = FIELD_JSON,
     .flags = F_REQUIRED,
     .max = 256,
     .doc = "CSV header -> lead field (phone, first_name, ..., or a custom field name); phone is required"},
    {.name = "separator", .type = FIELD_ENUM, .choices = s_separators},
    {.name = "webhook_url",
     .type = FIELD_URL,
     .flags = F_NULLABLE,
     .max = 2048,
     .doc = "Receives a POST when the import is done, with the list's counts"},
    {.name = "status", .type = FIELD_ENUM, .flags = F_READONLY | F_FILTER, .choices = s_statuses},
    {.name = "upload_parts", .type = FIELD_INT, .flags = F_READONLY},
    {.name = "upload_bytes", .type = FIELD_INT, .flags = F_READONLY},
    {.name = "progress_percent",
     .type = FIELD_DECIMAL,
     .flags = F_READONLY,
     .select_sql = "CASE WHEN upload_bytes > 0 THEN round(bytes_done * 100.0 / upload_bytes, 1) ELSE 0 END"},
    {.name = "rows_total", .type = FIELD_INT, .flags = F_READONLY},
    {.name = "rows_imported", .type = FIELD_INT, .flags = F_READONLY},
    {.name = "rows_invalid", .type = FIELD_INT, .flags = F_READONLY},
    {.name = "rows_duplicate", .type = FIELD_INT, .flags = F_READONLY},
    {.name = "rows_blocked", .type = FIELD_INT, .flags = F_READONLY},
    {.name = "rows_removed", .type = FIELD_INT, .flags = F_READONLY},
    {.name = "failure", .type = FIELD_TEXT, .flags = F_READONLY},
    {.name = "queued_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY},
    {.name = "started_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY},
    {.name = "finished_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY},
    {.name = "notified_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY},
    {.name = "notify_status", .type = FIELD_TEXT, .flags = F_READONLY},
};

static const constraint_def_t s_list_constraints[] = {
    {"lists_name_key", "name", "is already the name of another list of this account"},
    {"lists_external_id_key", "external_id", "is already the external_id of another list of this account"},
    {"lists_campaign_id_fkey", "campaign_id", "is not a campaign of this account"},
    {"lists_campaign_id_call", "campaign_id", "runs a call (POST /v1/call); its numbers come from the call, not from lists"},
    {"lists_column_map_check", "column_map", NULL},
    {"lists_column_map_locked", "column_map", NULL},
};

/* The account and list ids as text parameters. */
static void s_ids(const resource_call_t *call, char account[24], char list[24])
{
    snprintf(account, 24, "%" PRId64, call->account->account_id);
    snprintf(list, 24, "%" PRId64, call->ids[0]);
}

/* The list's status, or NULL (404 or 503 already filled). The caller frees it. */
static char *s_status(resource_call_t *call)
{
    char account[24], list[24];
    s_ids(call, account, list);
    const char *params[] = {account, list};
    PGresult *res = resource_exec(call, "SELECT status FROM lists WHERE account_id = $1 AND id = $2", 2, params);
    if (res == NULL)
        return NULL;
    char *status = PQntuples(res) == 1 ? strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    if (status == NULL)
        api_reply_problem(call->reply, call->req, 404, "not-found", "Not found", "No list with this id in this account.");
    return status;
}

static bool s_csv_type(const api_request_t *req)
{
    static const char *const types[] = {"text/csv", "text/plain", "application/csv", "application/vnd.ms-excel"};
    char given[128];
    if (api_header(req, "content-type", given, sizeof(given)) != 0)
        return false;
    size_t len = strcspn(given, "; ");
    for (size_t i = 0; i < COUNT(types); i++)
        if (strlen(types[i]) == len && strncasecmp(given, types[i], len) == 0)
            return true;
    return false;
}

/* POST /v1/lists/{id}/upload[?part=N]: stores one part of the file (again, if it is resent). */
static void s_upload(resource_call_t *call)
{
    const api_request_t *req = call->req;
    if (!s_csv_type(req)) {
        api_reply_problem(call->reply, req, 415, "unsupported-media-type", "Unsupported media type",
                          "Send the file (or one part of it) as the body with Content-Type text/csv.");
        return;
    }
    char value[16];
    long part = 1;
    if (api_param(req, "part", value, sizeof(value)) == 0) {
        char *end;
        part = strtol(value, &end, 10);
        if (*value == '\0' || *end != '\0' || part < 1 || part > LIST_UPLOAD_PARTS_MAX) {
            json_t *p = problem_new(422, "invalid-query", "Invalid query parameters", "part must be 1 to 100000.", req->path);
            problem_add_error(p, "part", "must be a whole number from 1 to 100000");
            api_reply_problem_object(call->reply, req, p);
            return;
        }
    }
    if (!req->msg.has_body || req->msg.body.len == 0) {
        json_t *p = problem_new(422, "invalid-fields", "Invalid fields", "The part is empty.", req->path);
        problem_add_error(p, "body", "must not be empty");
        api_reply_problem_object(call->reply, req, p);
        return;
    }
    char *status = s_status(call);
    if (status == NULL)
        return;
    bool open_for_upload = strcmp(status, "awaiting_upload") == 0;
    free(status);
    if (!open_for_upload) {
        api_reply_problem(call->reply, req, 409, "conflict", "Conflict",
                          "The list's import has already been queued; its file can no longer change. Create a new list.");
        return;
    }
    char account[24], list[24], part_text[16];
    s_ids(call, account, list);
    snprintf(part_text, sizeof(part_text), "%ld", part);
    const char *values[] = {account, list, part_text, req->msg.body.ptr};
    int lengths[] = {0, 0, 0, (int)req->msg.body.len};
    int formats[] = {0, 0, 0, 1};
    /* One statement: the part and the list's totals change together, and only while the list
     * still awaits its upload (a concurrent import request cannot slip in between). */
    PGresult *res =
        PQexecParams(call->route->conn,
                     "WITH l AS (SELECT id FROM lists WHERE account_id = $1 AND id = $2 AND status = 'awaiting_upload' "
                     "FOR UPDATE), "
                     "p AS (INSERT INTO list_upload_parts (list_id, part, data) SELECT id, $3, $4 FROM l "
                     "ON CONFLICT (list_id, part) DO UPDATE SET data = excluded.data RETURNING list_id, part, "
                     "length(data) AS bytes) "
                     "UPDATE lists SET upload_parts = (SELECT count(*) FROM list_upload_parts u WHERE u.list_id = lists.id "
                     "AND u.part <> (SELECT part FROM p)) + 1, "
                     "upload_bytes = (SELECT coalesce(sum(length(data)), 0) FROM list_upload_parts u "
                     "WHERE u.list_id = lists.id AND u.part <> (SELECT part FROM p)) + (SELECT bytes FROM p) "
                     "WHERE id = (SELECT list_id FROM p) RETURNING id",
                     4, NULL, values, lengths, formats, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        resource_reply_db_error(call, res);
        PQclear(res);
        return;
    }
    bool stored = PQntuples(res) == 1;
    PQclear(res);
    if (!stored) {
        api_reply_problem(call->reply, req, 409, "conflict", "Conflict", "The list's import was queued meanwhile.");
        return;
    }
    resource_reply_row(call, 200);
}

/* POST /v1/lists/{id}/import: queues the uploaded parts for the importer. */
static void s_import(resource_call_t *call)
{
    char account[24], list[24];
    s_ids(call, account, list);
    const char *params[] = {account, list};
    PGresult *res =
        resource_exec(call,
                      "SELECT status, upload_parts, coalesce((SELECT max(part) FROM list_upload_parts WHERE list_id = $2), 0) "
                      "FROM lists WHERE account_id = $1 AND id = $2",
                      2, params);
    if (res == NULL)
        return;
    if (PQntuples(res) != 1) {
        PQclear(res);
        api_reply_problem(call->reply, call->req, 404, "not-found", "Not found", "No list with this id in this account.");
        return;
    }
    json_t *p = problem_new(409, "cannot-import", "List cannot be imported", NULL, call->req->path);
    long parts = strtol(PQgetvalue(res, 0, 1), NULL, 10), highest = strtol(PQgetvalue(res, 0, 2), NULL, 10);
    if (strcmp(PQgetvalue(res, 0, 0), "awaiting_upload") != 0)
        problem_add_error(p, "status", "the import was already queued");
    else if (parts == 0)
        problem_add_error(p, "upload_parts", "no file was uploaded");
    else if (parts != highest)
        problem_add_error(p, "upload_parts", "parts are missing: upload parts 1 to N without gaps");
    PQclear(res);
    if (json_array_size(json_object_get(p, "errors")) > 0) {
        json_object_set_new(p, "detail", json_string("The list is not ready to import; nothing was changed."));
        api_reply_problem_object(call->reply, call->req, p);
        return;
    }
    json_decref(p);
    /* The notification wakes the importer at once; it also polls, so a lost one only delays. */
    res = resource_exec(call,
                        "WITH q AS (UPDATE lists SET status = 'queued', queued_at = now() WHERE account_id = $1 AND id = $2 "
                        "AND status = 'awaiting_upload' RETURNING id) SELECT pg_notify('list_import', id::text) FROM q",
                        2, params);
    if (res == NULL)
        return;
    PQclear(res);
    resource_reply_row(call, 202);
}

static const action_def_t s_list_actions[] = {
    {"upload", "Store the CSV file (or part N of it, ?part=N) as the body, Content-Type text/csv", s_upload, "POST"},
    {"import", "Queue the uploaded parts for import; progress shows on the list", s_import, "POST"},
};

static const link_def_t s_list_links[] = {
    {"import_errors", "import_errors", NULL},
    {"leads", "leads", "list_id"},
};

const resource_def_t res_lists = {
    .collection = "lists",
    .singular = "list",
    .table = "lists",
    .name_column = "name",
    .fields = s_list_fields,
    .field_count = COUNT(s_list_fields),
    .constraints = s_list_constraints,
    .constraint_count = COUNT(s_list_constraints),
    .actions = s_list_actions,
    .action_count = COUNT(s_list_actions),
    .links = s_list_links,
    .link_count = COUNT(s_list_links),
};

static const field_def_t s_error_fields[] = {
    {.name = "record", .type = FIELD_INT, .flags = F_READONLY, .doc = "Data row number, the header not counted"},
    {.name = "line", .type = FIELD_INT, .flags = F_READONLY, .doc = "Line of the file where the row starts"},
    {.name = "message", .type = FIELD_TEXT, .flags = F_READONLY},
};

const resource_def_t res_list_import_errors = {
    .collection = "import_errors",
    .singular = "import_error",
    .table = "list_import_errors",
    .parent = &res_lists,
    .parent_column = "list_id",
    .name_column = "message",
    .order_by = "record",
    .fields = s_error_fields,
    .field_count = COUNT(s_error_fields),
    .read_only = true,
};

static const field_def_t s_number_fields[] = {
    {.name = "phone", .type = FIELD_PHONE, .flags = F_READONLY | F_FILTER},
    {.name = "campaign_id", .type = FIELD_REF, .flags = F_READONLY | F_FILTER, .ref_path = "campaigns"},
    {.name = "time_zones",
     .type = FIELD_NAMES,
     .flags = F_READONLY,
     .select_sql = "array_to_json(time_zones)",
     .doc = "Every zone the number may be in; calling hours hold in all of them"},
    {.name = "blocked", .type = FIELD_BOOL, .flags = F_READONLY | F_FILTER},
    {.name = "status", .type = FIELD_TEXT, .flags = F_READONLY | F_FILTER, .max = 64},
    {.name = "attempts", .type = FIELD_INT, .flags = F_READONLY},
    {.name = "last_dialed_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY},
    {.name = "list_id",
     .type = FIELD_REF,
     .flags = F_READONLY | F_FILTER,
     .ref_path = "lists",
     .doc = "The list that first brought the number"},
    {.name = "removed_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY},
};

static const link_def_t s_number_links[] = {
    {"leads", "leads", "number_id"},
};

const resource_def_t res_numbers = {
    .collection = "numbers",
    .singular = "number",
    .table = "numbers",
    .name_column = "phone",
    .fields = s_number_fields,
    .field_count = COUNT(s_number_fields),
    .links = s_number_links,
    .link_count = COUNT(s_number_links),
    .read_only = true,
};

static const field_def_t s_lead_fields[] = {
    {.name = "campaign_id", .type = FIELD_REF, .flags = F_READONLY | F_FILTER, .ref_path = "campaigns"},
    {.name = "number_id", .type = FIELD_REF, .flags = F_READONLY | F_FILTER, .ref_path = "numbers"},
    {.name = "list_id", .type = FIELD_REF, .flags = F_READONLY | F_FILTER, .ref_path = "lists"},
    {.name = "phone",
     .type = FIELD_PHONE,
     .flags = F_READONLY,
     .select_sql = "(SELECT phone FROM numbers n WHERE n.id = leads.number_id)"},
    {.name = "custom_id", .type = FIELD_TEXT, .flags = F_READONLY | F_FILTER, .min = 1, .max = 200},
    {.name = "first_name", .type = FIELD_TEXT, .flags = F_READONLY},
    {.name = "middle_name", .type = FIELD_TEXT, .flags = F_READONLY},
    {.name = "last_name", .type = FIELD_TEXT, .flags = F_READONLY},
    {.name = "suffix", .type = FIELD_TEXT, .flags = F_READONLY},
    {.name = "email", .type = FIELD_TEXT, .flags = F_READONLY},
    {.name = "address", .type = FIELD_TEXT, .flags = F_READONLY},
    {.name = "city", .type = FIELD_TEXT, .flags = F_READONLY},
    {.name = "state", .type = FIELD_TEXT, .flags = F_READONLY},
    {.name = "zip_code", .type = FIELD_TEXT, .flags = F_READONLY},
    {.name = "country", .type = FIELD_TEXT, .flags = F_READONLY},
    {.name = "custom", .type = FIELD_JSON, .flags = F_READONLY, .doc = "Custom field name -> value"},
    {.name = "status", .type = FIELD_TEXT, .flags = F_READONLY | F_FILTER, .max = 64},
    {.name = "removed_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY},
};

const resource_def_t res_leads = {
    .collection = "leads",
    .singular = "lead",
    .table = "leads",
    .name_column = "coalesce(nullif(concat_ws(' ', first_name, last_name), ''), custom_id, '')",
    .fields = s_lead_fields,
    .field_count = COUNT(s_lead_fields),
    .read_only = true,
};
