#include "actors/store/resource.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/store/input.h"
#include "common/json_writer.h"
#include "common/log.h"
#include "common/problem.h"
#include "common/urlform.h"

#define SQL_MAX      8192
#define PATH_MAX_LEN 512
#define QUERY_Q_MAX  200 /* characters of a ?q= search */

/* Timestamps leave the database as RFC 3339 UTC text, so rendering is a copy. */
#define SQL_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* ------------------------------------------------------------------------------------------ */
/* Paths                                                                                       */

int resource_depth(const resource_def_t *def)
{
    int depth = 0;
    for (const resource_def_t *p = def->parent; p; p = p->parent)
        depth++;
    return depth;
}

/* The chain from the top-level ancestor down to def. */
static int s_chain(const resource_def_t *def, const resource_def_t **chain)
{
    int depth = resource_depth(def);
    const resource_def_t *d = def;
    for (int i = depth; i >= 0; i--, d = d->parent)
        chain[i] = d;
    return depth;
}

int resource_collection_path(const resource_def_t *def, const int64_t *ids, char *out, size_t size)
{
    const resource_def_t *chain[RESOURCE_DEPTH_MAX + 1];
    int depth = s_chain(def, chain);
    int n = snprintf(out, size, "/v1");
    for (int i = 0; i <= depth && n > 0 && (size_t)n < size; i++) {
        if (i < depth)
            n += snprintf(out + n, size - (size_t)n, "/%s/%" PRId64, chain[i]->collection, ids[i]);
        else
            n += snprintf(out + n, size - (size_t)n, "/%s", chain[i]->collection);
    }
    return n > 0 && (size_t)n < size ? 0 : -1;
}

int resource_item_path(const resource_def_t *def, const int64_t *ids, int id_count, char *out, size_t size)
{
    if (id_count != resource_depth(def) + 1 || resource_collection_path(def, ids, out, size) != 0)
        return -1;
    size_t len = strlen(out);
    int n = snprintf(out + len, size - len, "/%" PRId64, ids[id_count - 1]);
    return n > 0 && (size_t)n < size - len ? 0 : -1;
}

static const char *s_column(const field_def_t *f)
{
    return f->column ? f->column : f->name;
}

static const field_def_t *s_field_by_name(const resource_def_t *def, const char *name)
{
    for (size_t i = 0; i < def->field_count; i++)
        if (strcmp(def->fields[i].name, name) == 0)
            return &def->fields[i];
    return NULL;
}

static const field_def_t *s_field_by_column(const resource_def_t *def, const char *column)
{
    for (size_t i = 0; i < def->field_count; i++)
        if (strcmp(s_column(&def->fields[i]), column) == 0)
            return &def->fields[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Database errors                                                                             */

void resource_reply_db_error(resource_call_t *call, PGresult *res)
{
    PGconn *conn = call->route->conn;
    log_warn("req=%s database error: %s", call->req->request_id, res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    api_reply_problem(call->reply, call->req, 503, "unavailable", "Service unavailable",
                      "The database could not complete the request; nothing was changed. Retry shortly.");
    api_reply_header(call->reply, "Retry-After", "1");
}

static void s_reply_field_problem(resource_call_t *call, int status, const char *slug, const char *title, const char *field,
                                  const char *message)
{
    json_t *p = problem_new(status, slug, title, NULL, call->req->path);
    if (p && field) {
        char detail[512];
        snprintf(detail, sizeof(detail), "%s: %s", field, message);
        json_object_set_new(p, "detail", json_string(detail));
        problem_add_error(p, field, message);
    } else if (p) {
        json_object_set_new(p, "detail", json_string(message));
    }
    api_reply_problem_object(call->reply, call->req, p);
}

/* Which API field a constraint is about: the resource's table says so, or the name does
 * (<table>_<column>_<kind>, PostgreSQL's own convention for single-column constraints). */
static const char *s_constraint_field(const resource_def_t *def, const char *table, const char *constraint, const char *db_message,
                                      const char **message, char *buf, size_t size)
{
    *message = NULL;
    for (size_t i = 0; constraint && i < def->constraint_count; i++) {
        if (strcmp(def->constraints[i].constraint, constraint) == 0) {
            *message = def->constraints[i].message ? def->constraints[i].message : db_message;
            return def->constraints[i].field;
        }
    }
    size_t tlen = table ? strlen(table) : 0;
    if (constraint == NULL || tlen == 0 || strncmp(constraint, table, tlen) != 0 || constraint[tlen] != '_')
        return NULL;
    snprintf(buf, size, "%s", constraint + tlen + 1);
    char *kind = strrchr(buf, '_');
    if (kind == NULL)
        return NULL;
    *kind = '\0';
    const field_def_t *f = s_field_by_column(def, buf);
    return f ? f->name : buf;
}

PGresult *resource_exec(resource_call_t *call, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = stmt_exec(call->route->stmts, call->route->conn, sql, nparams, params);
    ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        return res;

    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *table = res ? PQresultErrorField(res, PG_DIAG_TABLE_NAME) : NULL;
    const char *column = res ? PQresultErrorField(res, PG_DIAG_COLUMN_NAME) : NULL;
    const char *message;
    char buf[128];
    const char *db_message = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *field = s_constraint_field(call->def, table, constraint, db_message, &message, buf, sizeof(buf));
    bool other_table = table && strcmp(table, call->def->table) != 0;

    if (state && strcmp(state, "23505") == 0) {
        s_reply_field_problem(call, 409, "conflict", "Conflict", field ? field : "id",
                              message ? message : "is already taken by another resource");
    } else if (state && strcmp(state, "23503") == 0 && other_table && field == NULL) {
        /* Another table still points at this row: deleting it would break that row. */
        char detail[256];
        snprintf(detail, sizeof(detail), "This %s is still used by %s; change or remove those first.", call->def->singular, table);
        api_reply_problem(call->reply, call->req, 409, "in-use", "Resource in use", detail);
    } else if (state && strcmp(state, "23503") == 0) {
        s_reply_field_problem(call, 422, "invalid-fields", "Invalid fields", field ? field : "id",
                              message ? message : "refers to something that does not exist in this account");
    } else if (state && strcmp(state, "23514") == 0) {
        s_reply_field_problem(call, 422, "invalid-fields", "Invalid fields", field ? field : call->def->singular,
                              message ? message : "is not allowed");
    } else if (state && strcmp(state, "23502") == 0) {
        const field_def_t *f = column ? s_field_by_column(call->def, column) : NULL;
        s_reply_field_problem(call, 422, "invalid-fields", "Invalid fields", f ? f->name : (column ? column : "?"),
                              "must not be null");
    } else if (state && strncmp(state, "22", 2) == 0) {
        s_reply_field_problem(call, 422, "invalid-fields", "Invalid fields", NULL,
                              res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : "invalid value");
    } else {
        resource_reply_db_error(call, res);
    }
    PQclear(res);
    return NULL;
}

/* A write and its hook form one transaction; inside a request that already runs in one (an
 * Idempotency-Key), a savepoint plays that part so a failed write leaves the outer one usable. */
static int s_tx(resource_call_t *call, bool begin)
{
    bool nested = call->route->in_transaction;
    const char *command =
        begin ? (nested ? "SAVEPOINT resource_write" : "BEGIN") : (nested ? "RELEASE SAVEPOINT resource_write" : "COMMIT");
    PGresult *res = PQexec(call->route->conn, command);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc != 0)
        resource_reply_db_error(call, res);
    PQclear(res);
    return rc;
}

static void s_rollback(resource_call_t *call)
{
    PQclear(PQexec(call->route->conn, call->route->in_transaction ? "ROLLBACK TO SAVEPOINT resource_write" : "ROLLBACK"));
}

void resource_set_status(resource_call_t *call, const char *update, const char *status, const char *from_statuses)
{
    char account[24], id[24], sql[512];
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    snprintf(id, sizeof(id), "%" PRId64, call->ids[call->id_count - 1]);
    const char *params[] = {account, id, status};
    snprintf(sql, sizeof(sql), update, from_statuses);
    PGresult *res = resource_exec(call, sql, 3, params);
    if (res == NULL)
        return;
    PQclear(res);
    resource_reply_row(call, 200);
}

int resource_begin(resource_call_t *call)
{
    return s_tx(call, true);
}

int resource_commit(resource_call_t *call)
{
    return s_tx(call, false);
}

void resource_rollback(resource_call_t *call)
{
    s_rollback(call);
}

/* ------------------------------------------------------------------------------------------ */
/* SQL building                                                                                */

typedef struct {
    char text[SQL_MAX];
    size_t len;
    bool overflow;
} sql_t;

static void s_sql(sql_t *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_sql(sql_t *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(q->text + q->len, sizeof(q->text) - q->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(q->text) - q->len)
        q->overflow = true;
    else
        q->len += (size_t)n;
}

/* Columns in a fixed order the renderer relies on: id, parent id, name, each rendered field,
 * created_at, updated_at, archived_at. */
static void s_select_list(sql_t *q, const resource_def_t *def)
{
    s_sql(q, "id, %s, %s", def->parent_column ? def->parent_column : "NULL", def->name_column ? def->name_column : "NULL");
    for (size_t i = 0; i < def->field_count; i++) {
        const field_def_t *f = &def->fields[i];
        const char *c = s_column(f);
        if (f->select_sql) {
            s_sql(q, ", %s", f->select_sql);
            continue;
        }
        switch (f->type) {
        case FIELD_PASSWORD:
            s_sql(q, ", NULL");
            break;
        case FIELD_TIMESTAMP:
            s_sql(q, ", to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')", c);
            break;
        case FIELD_TIME:
            s_sql(q, ", to_char(%s, 'HH24:MI')", c);
            break;
        case FIELD_DECIMAL:
            s_sql(q, ", %s::float8", c);
            break;
        default:
            s_sql(q, ", %s", c);
        }
    }
    s_sql(q, ", " SQL_TS("created_at") ", " SQL_TS("updated_at") ", %s", def->archivable ? SQL_TS("archived_at") : "NULL");
}

/* WHERE clause addressing the item (or the collection when with_id is false): $1 account,
 * $2 parent id when nested, then the item id. */
static int s_where(sql_t *q, const resource_call_t *call, bool with_id, const char **params, char idbuf[][24])
{
    int n = 0;
    params[n++] = idbuf[0];
    snprintf(idbuf[0], 24, "%" PRId64, call->account->account_id);
    s_sql(q, " WHERE account_id = $1");
    int depth = resource_depth(call->def);
    if (call->def->parent_column) {
        snprintf(idbuf[n], 24, "%" PRId64, call->ids[depth - 1]);
        params[n] = idbuf[n];
        n++;
        s_sql(q, " AND %s = $%d", call->def->parent_column, n);
    }
    if (with_id) {
        snprintf(idbuf[n], 24, "%" PRId64, call->ids[depth]);
        params[n] = idbuf[n];
        n++;
        s_sql(q, " AND id = $%d", n);
    }
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Rendering                                                                                   */

static void s_link(json_writer_t *w, const api_request_t *req, const char *name, const char *path)
{
    char uri[1024];
    snprintf(uri, sizeof(uri), "%s%s", req->base_url, path);
    json_writer_object_begin(w);
    json_writer_kv_string(w, "name", name);
    json_writer_kv_string(w, "uri", uri);
    json_writer_object_end(w);
}

static void s_action(json_writer_t *w, const api_request_t *req, const char *name, const char *method, const char *path)
{
    char uri[1024];
    snprintf(uri, sizeof(uri), "%s%s", req->base_url, path);
    json_writer_object_begin(w);
    json_writer_kv_string(w, "name", name);
    json_writer_kv_string(w, "method", method);
    json_writer_kv_string(w, "uri", uri);
}

static const char *s_type_name(field_type_t t)
{
    static const char *const names[] = {
        [FIELD_TEXT] = "string",         [FIELD_LONG_TEXT] = "string", [FIELD_INT] = "integer",
        [FIELD_DECIMAL] = "number",      [FIELD_BOOL] = "boolean",     [FIELD_ENUM] = "string",
        [FIELD_PHONE] = "phone",         [FIELD_REF] = "id",           [FIELD_TIME] = "time",
        [FIELD_TIME_ZONE] = "time_zone", [FIELD_NAMES] = "array",      [FIELD_DIGITS] = "digits",
        [FIELD_PASSWORD] = "password",   [FIELD_URL] = "url",          [FIELD_JSON] = "object",
        [FIELD_TIMESTAMP] = "timestamp",
    };
    return names[t];
}

/* The writable fields as `parameters` of a create or update action. */
static void s_parameters(json_writer_t *w, const resource_def_t *def, bool create)
{
    json_writer_key(w, "parameters");
    json_writer_array_begin(w);
    for (size_t i = 0; i < def->field_count; i++) {
        const field_def_t *f = &def->fields[i];
        if ((f->flags & F_READONLY) || (!create && (f->flags & F_IMMUTABLE)))
            continue;
        json_writer_object_begin(w);
        json_writer_kv_string(w, "name", f->name);
        json_writer_kv_string(w, "type", s_type_name(f->type));
        json_writer_kv_bool(w, "required", create && (f->flags & F_REQUIRED));
        if (f->type == FIELD_ENUM) {
            json_writer_key(w, "choices");
            json_writer_array_begin(w);
            for (const char *const *c = f->choices; *c; c++)
                json_writer_string(w, *c);
            json_writer_array_end(w);
        }
        if (f->doc)
            json_writer_kv_string(w, "description", f->doc);
        json_writer_object_end(w);
    }
    json_writer_array_end(w);
}

/* One row as a resource. `full` adds the parameters of the update action (single reads). */
static void s_render_row(json_writer_t *w, resource_call_t *call, PGresult *res, int row, bool full)
{
    const resource_def_t *def = call->def;
    const api_request_t *req = call->req;
    int64_t ids[RESOURCE_DEPTH_MAX + 1];
    int depth = resource_depth(def);
    memcpy(ids, call->ids, sizeof(ids));
    ids[depth] = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    char path[PATH_MAX_LEN], sub[PATH_MAX_LEN + 64], uri[1024];
    resource_item_path(def, ids, depth + 1, path, sizeof(path));
    snprintf(uri, sizeof(uri), "%s%s", req->base_url, path);

    json_writer_object_begin(w);
    json_writer_kv_string(w, "uri", uri);
    json_writer_kv_string(w, "name", PQgetisnull(res, row, 2) ? "" : PQgetvalue(res, row, 2));
    json_writer_key(w, "id");
    json_writer_raw(w, PQgetvalue(res, row, 0), (size_t)PQgetlength(res, row, 0));
    if (def->parent_column) {
        json_writer_key(w, def->parent_column);
        json_writer_raw(w, PQgetvalue(res, row, 1), (size_t)PQgetlength(res, row, 1));
    }
    int col = 3;
    for (size_t i = 0; i < def->field_count; i++, col++) {
        const field_def_t *f = &def->fields[i];
        /* Write-only, or already rendered as the resource's `name`. */
        if (f->type == FIELD_PASSWORD || strcmp(f->name, "name") == 0)
            continue;
        json_writer_key(w, f->name);
        const char *v = PQgetvalue(res, row, col);
        size_t len = (size_t)PQgetlength(res, row, col);
        if (PQgetisnull(res, row, col))
            json_writer_null(w);
        else if (f->type == FIELD_BOOL)
            json_writer_bool(w, v[0] == 't');
        else if (f->type == FIELD_INT || f->type == FIELD_REF || f->type == FIELD_DECIMAL || f->type == FIELD_NAMES ||
                 f->type == FIELD_JSON)
            json_writer_raw(w, v, len);
        else
            json_writer_string_len(w, v, len);
    }
    json_writer_kv_string(w, "created_at", PQgetvalue(res, row, col));
    json_writer_kv_string(w, "updated_at", PQgetvalue(res, row, col + 1));
    if (def->archivable) {
        if (PQgetisnull(res, row, col + 2))
            json_writer_kv_null(w, "archived_at");
        else
            json_writer_kv_string(w, "archived_at", PQgetvalue(res, row, col + 2));
    }
    bool archived = def->archivable && !PQgetisnull(res, row, col + 2);

    json_writer_key(w, "actions");
    json_writer_array_begin(w);
    if (!def->no_update && !def->read_only && !def->append_only) {
        s_action(w, req, "update", "PATCH", path);
        if (full)
            s_parameters(w, def, false);
        json_writer_object_end(w);
    }
    if (def->archivable && archived) {
        snprintf(sub, sizeof(sub), "%s/restore", path);
        s_action(w, req, "restore", "POST", sub);
        json_writer_object_end(w);
    } else if (!def->read_only && !def->append_only) {
        s_action(w, req, def->archivable ? "archive" : "delete", "DELETE", path);
        json_writer_object_end(w);
    }
    for (size_t i = 0; i < def->action_count && !archived; i++) {
        snprintf(sub, sizeof(sub), "%s/%s", path, def->actions[i].name);
        s_action(w, req, def->actions[i].name, def->actions[i].method, sub);
        if (def->actions[i].doc)
            json_writer_kv_string(w, "description", def->actions[i].doc);
        json_writer_object_end(w);
    }
    json_writer_array_end(w);

    json_writer_key(w, "resources");
    json_writer_array_begin(w);
    if (def->parent) {
        resource_item_path(def->parent, ids, depth, sub, sizeof(sub));
        s_link(w, req, def->parent->singular, sub);
    }
    for (size_t i = 0; i < def->link_count; i++) {
        const link_def_t *l = &def->links[i];
        if (l->filter_column)
            snprintf(sub, sizeof(sub), "/v1/%s?%s=%" PRId64, l->path, l->filter_column, ids[depth]);
        else
            snprintf(sub, sizeof(sub), "%s/%s", path, l->path);
        s_link(w, req, l->name, sub);
    }
    col = 3;
    for (size_t i = 0; i < def->field_count; i++, col++) {
        const field_def_t *f = &def->fields[i];
        if (f->type != FIELD_REF || f->ref_path == NULL || PQgetisnull(res, row, col))
            continue;
        char name[64];
        size_t n = strlen(f->name);
        snprintf(name, sizeof(name), "%.*s", (int)(n > 3 && strcmp(f->name + n - 3, "_id") == 0 ? n - 3 : n), f->name);
        snprintf(sub, sizeof(sub), "/v1/%s/%s", f->ref_path, PQgetvalue(res, row, col));
        s_link(w, req, name, sub);
    }
    json_writer_array_end(w);
    json_writer_object_end(w);
}

static void s_reply_writer(resource_call_t *call, json_writer_t *w, int status)
{
    size_t len;
    char *body = json_writer_finish(w, &len);
    if (body == NULL) {
        json_writer_reset(w);
        api_reply_problem(call->reply, call->req, 500, "internal", "Internal error", "The response could not be rendered.");
        return;
    }
    api_reply_take(call->reply, status, "application/json", body, len);
}

static void s_reply_not_found(resource_call_t *call)
{
    char detail[128];
    snprintf(detail, sizeof(detail), "No %s with this id in this account.", call->def->singular);
    api_reply_problem(call->reply, call->req, 404, "not-found", "Not found", detail);
}

/* ------------------------------------------------------------------------------------------ */
/* Parents                                                                                     */

int resource_check_parents(resource_call_t *call)
{
    const resource_def_t *chain[RESOURCE_DEPTH_MAX + 1];
    int depth = s_chain(call->def, chain);
    char account[24], id[24], parent[24];
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    for (int level = 0; level < depth; level++) {
        const resource_def_t *a = chain[level];
        char sql[256];
        snprintf(id, sizeof(id), "%" PRId64, call->ids[level]);
        const char *params[3] = {account, id, parent};
        int n = 2;
        if (a->parent_column) {
            snprintf(parent, sizeof(parent), "%" PRId64, call->ids[level - 1]);
            snprintf(sql, sizeof(sql), "SELECT 1 FROM %s WHERE account_id = $1 AND id = $2 AND %s = $3", a->table,
                     a->parent_column);
            n = 3;
        } else {
            snprintf(sql, sizeof(sql), "SELECT 1 FROM %s WHERE account_id = $1 AND id = $2", a->table);
        }
        PGresult *res = stmt_exec(call->route->stmts, call->route->conn, sql, n, params);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            resource_reply_db_error(call, res);
            PQclear(res);
            return -1;
        }
        bool found = PQntuples(res) == 1;
        PQclear(res);
        if (!found) {
            char detail[128];
            snprintf(detail, sizeof(detail), "No %s with id %" PRId64 " in this account.", a->singular, call->ids[level]);
            api_reply_problem(call->reply, call->req, 404, "not-found", "Not found", detail);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Read                                                                                        */

void resource_reply_row(resource_call_t *call, int status)
{
    sql_t q = {0};
    const char *params[3];
    char idbuf[3][24];
    s_sql(&q, "SELECT ");
    s_select_list(&q, call->def);
    s_sql(&q, " FROM %s", call->def->table);
    int n = s_where(&q, call, true, params, idbuf);
    PGresult *res = resource_exec(call, q.text, n, params);
    if (res == NULL)
        return;
    if (PQntuples(res) != 1) {
        s_reply_not_found(call);
    } else {
        json_writer_t w;
        json_writer_init(&w);
        s_render_row(&w, call, res, 0, true);
        s_reply_writer(call, &w, status);
    }
    PQclear(res);
}

void resource_read(resource_call_t *call)
{
    if (resource_check_parents(call) == 0)
        resource_reply_row(call, 200);
}

/* ------------------------------------------------------------------------------------------ */
/* List                                                                                        */

typedef struct {
    int64_t page, per_page;
    char q[QUERY_Q_MAX * 4 + 1];
    const char *archived; /* "false", "true" or "all" */
    const field_def_t *filter[RESOURCE_FIELDS_MAX];
    char *filter_value[RESOURCE_FIELDS_MAX];
    int filter_count;
    char query_suffix[1024]; /* the filters again, percent-encoded, for page links */
} list_query_t;

static void s_list_query_free(list_query_t *lq)
{
    for (int i = 0; i < lq->filter_count; i++)
        free(lq->filter_value[i]);
}

/* Reads and checks ?page, ?per_page, ?q, ?archived and the filterable fields. -1 with a 422. */
static int s_list_query(resource_call_t *call, list_query_t *lq)
{
    char value[QUERY_Q_MAX * 4 + 1], message[INPUT_MESSAGE_SIZE];
    json_t *errors = json_array();
    memset(lq, 0, sizeof(*lq));
    lq->page = 1;
    lq->per_page = RESOURCE_PAGE_DEFAULT;
    lq->archived = "false";
    const field_def_t page_field = {.name = "page", .type = FIELD_INT, .min = 1, .max = 1000000000};
    const field_def_t per_page_field = {.name = "per_page", .type = FIELD_INT, .min = 1, .max = RESOURCE_PAGE_MAX};
    const field_def_t *paging[] = {&page_field, &per_page_field};
    int64_t *targets[] = {&lq->page, &lq->per_page};
    for (int i = 0; i < 2; i++) {
        if (api_param(call->req, paging[i]->name, value, sizeof(value)) != 0)
            continue;
        char *sql_value;
        json_t *s = json_string(value);
        if (input_field_value(paging[i], s, true, &sql_value, message, sizeof(message)) != 0)
            json_array_append_new(errors, json_pack("{s:s, s:s}", "field", paging[i]->name, "message", message));
        else
            *targets[i] = strtoll(sql_value, NULL, 10);
        free(sql_value);
        json_decref(s);
    }
    if (api_param(call->req, "q", lq->q, sizeof(lq->q)) == 0) {
        if (!input_utf8_valid(lq->q, strlen(lq->q)) || strlen(lq->q) > QUERY_Q_MAX)
            json_array_append_new(errors,
                                  json_pack("{s:s, s:s}", "field", "q", "message", "must be UTF-8 text of at most 200 bytes"));
        else if (lq->q[0])
            urlform_append(lq->query_suffix, sizeof(lq->query_suffix), "q", lq->q, "");
    }
    if (call->def->archivable && api_param(call->req, "archived", value, sizeof(value)) == 0) {
        if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0 || strcmp(value, "all") == 0) {
            lq->archived = strcmp(value, "true") == 0 ? "true" : strcmp(value, "all") == 0 ? "all" : "false";
            urlform_append(lq->query_suffix, sizeof(lq->query_suffix), "archived", lq->archived, "");
        } else {
            json_array_append_new(errors, json_pack("{s:s, s:s}", "field", "archived", "message", "must be true, false or all"));
        }
    }
    for (size_t i = 0; i < call->def->field_count; i++) {
        const field_def_t *f = &call->def->fields[i];
        if (!(f->flags & F_FILTER) || lq->filter_count == RESOURCE_FIELDS_MAX ||
            api_param(call->req, f->name, value, sizeof(value)) != 0)
            continue;
        json_t *s = json_string(value);
        char *sql_value = NULL;
        field_def_t as_filter = *f;
        as_filter.flags |= F_NULLABLE;
        if (s == NULL || input_field_value(&as_filter, s, true, &sql_value, message, sizeof(message)) != 0) {
            json_array_append_new(errors, json_pack("{s:s, s:s}", "field", f->name, "message", s ? message : "must be UTF-8"));
        } else {
            lq->filter[lq->filter_count] = f;
            lq->filter_value[lq->filter_count++] = sql_value;
            urlform_append(lq->query_suffix, sizeof(lq->query_suffix), f->name, value, "");
        }
        json_decref(s);
    }
    if (json_array_size(errors) == 0) {
        json_decref(errors);
        return 0;
    }
    json_t *p =
        problem_new(422, "invalid-query", "Invalid query parameters", "Some query parameters are not valid.", call->req->path);
    json_object_set_new(p, "errors", errors);
    api_reply_problem_object(call->reply, call->req, p);
    return -1;
}

static void s_page_uri(char *out, size_t size, const resource_call_t *call, const char *path, int64_t page, const list_query_t *lq)
{
    snprintf(out, size, "%s%s?page=%" PRId64 "&per_page=%" PRId64 "%s", call->req->base_url, path, page, lq->per_page,
             lq->query_suffix);
}

void resource_list(resource_call_t *call)
{
    list_query_t lq;
    if (resource_check_parents(call) != 0 || s_list_query(call, &lq) != 0)
        return;
    const resource_def_t *def = call->def;
    sql_t where = {0};
    const char *params[RESOURCE_FIELDS_MAX + 8];
    char idbuf[3][24], escaped[sizeof(lq.q) * 2 + 3];
    int n = s_where(&where, call, false, params, idbuf);
    if (def->archivable && strcmp(lq.archived, "all") != 0)
        s_sql(&where, " AND archived_at IS %s", strcmp(lq.archived, "true") == 0 ? "NOT NULL" : "NULL");
    if (lq.q[0] && def->name_column) {
        /* ILIKE with the user's % and _ taken literally. */
        size_t e = 0;
        escaped[e++] = '%';
        for (const char *p = lq.q; *p; p++) {
            if (*p == '%' || *p == '_' || *p == '\\')
                escaped[e++] = '\\';
            escaped[e++] = *p;
        }
        escaped[e++] = '%';
        escaped[e] = '\0';
        params[n++] = escaped;
        s_sql(&where, " AND %s ILIKE $%d", def->name_column, n);
    }
    for (int i = 0; i < lq.filter_count; i++) {
        if (lq.filter_value[i] == NULL) {
            s_sql(&where, " AND %s IS NULL", s_column(lq.filter[i]));
        } else {
            params[n++] = lq.filter_value[i];
            s_sql(&where, " AND %s = $%d", s_column(lq.filter[i]), n);
        }
    }

    sql_t q = {0};
    s_sql(&q, "SELECT count(*) FROM %s%s", def->table, where.text);
    PGresult *count = resource_exec(call, q.text, n, params);
    if (count == NULL)
        goto Exit;
    int64_t total = strtoll(PQgetvalue(count, 0, 0), NULL, 10);
    PQclear(count);

    /* The page goes in parameters, not in the text, so one prepared statement serves them all. */
    char limit[24], offset[24];
    snprintf(limit, sizeof(limit), "%" PRId64, lq.per_page);
    snprintf(offset, sizeof(offset), "%" PRId64, (lq.page - 1) * lq.per_page);
    memset(&q, 0, sizeof(q));
    s_sql(&q, "SELECT ");
    s_select_list(&q, def);
    s_sql(&q, " FROM %s%s ORDER BY %s LIMIT $%d OFFSET $%d", def->table, where.text, def->order_by ? def->order_by : "id", n + 1,
          n + 2);
    params[n] = limit;
    params[n + 1] = offset;
    if (q.overflow || where.overflow) {
        api_reply_problem(call->reply, call->req, 500, "internal", "Internal error", "query too long");
        goto Exit;
    }
    PGresult *res = resource_exec(call, q.text, n + 2, params);
    if (res == NULL)
        goto Exit;

    char path[PATH_MAX_LEN], uri[PATH_MAX_LEN + 1400], link[4 * sizeof(uri) + 64];
    resource_collection_path(def, call->ids, path, sizeof(path));
    int64_t last = total == 0 ? 1 : (total + lq.per_page - 1) / lq.per_page;
    json_writer_t w;
    json_writer_init(&w);
    json_writer_object_begin(&w);
    s_page_uri(uri, sizeof(uri), call, path, lq.page, &lq);
    json_writer_kv_string(&w, "uri", uri);
    json_writer_kv_string(&w, "name", def->collection);
    json_writer_kv_int(&w, "total", total);
    json_writer_kv_int(&w, "page", lq.page);
    json_writer_kv_int(&w, "per_page", lq.per_page);
    json_writer_kv_int(&w, "page_count", last);
    link[0] = '\0';
    const struct {
        const char *key, *rel;
        int64_t page;
        bool present;
    } pages[] = {
        {"first_page", "first", 1, true},
        {"prev_page", "prev", lq.page - 1, lq.page > 1},
        {"next_page", "next", lq.page + 1, lq.page < last},
        {"last_page", "last", last, true},
    };
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        if (!pages[i].present) {
            json_writer_kv_null(&w, pages[i].key);
            continue;
        }
        s_page_uri(uri, sizeof(uri), call, path, pages[i].page, &lq);
        json_writer_kv_string(&w, pages[i].key, uri);
        size_t len = strlen(link);
        snprintf(link + len, sizeof(link) - len, "%s<%s>; rel=\"%s\"", len ? ", " : "", uri, pages[i].rel);
    }
    json_writer_key(&w, "items");
    json_writer_array_begin(&w);
    for (int row = 0; row < PQntuples(res); row++)
        s_render_row(&w, call, res, row, false);
    json_writer_array_end(&w);
    json_writer_key(&w, "actions");
    json_writer_array_begin(&w);
    if (!def->read_only) {
        s_action(&w, call->req, "create", "POST", path);
        s_parameters(&w, def, true);
        json_writer_object_end(&w);
    }
    for (size_t i = 0; i < def->collection_action_count; i++) {
        char sub[PATH_MAX_LEN + 64];
        snprintf(sub, sizeof(sub), "%s/%s", path, def->collection_actions[i].name);
        s_action(&w, call->req, def->collection_actions[i].name, def->collection_actions[i].method, sub);
        if (def->collection_actions[i].doc)
            json_writer_kv_string(&w, "description", def->collection_actions[i].doc);
        json_writer_object_end(&w);
    }
    json_writer_array_end(&w);
    json_writer_key(&w, "resources");
    json_writer_array_begin(&w);
    if (def->parent) {
        char parent[PATH_MAX_LEN];
        resource_item_path(def->parent, call->ids, resource_depth(def), parent, sizeof(parent));
        s_link(&w, call->req, def->parent->singular, parent);
    }
    json_writer_array_end(&w);
    json_writer_object_end(&w);
    PQclear(res);
    s_reply_writer(call, &w, 200);
    api_reply_header(call->reply, "Link", link);
Exit:
    s_list_query_free(&lq);
}

/* ------------------------------------------------------------------------------------------ */
/* Create and update                                                                           */

typedef struct {
    const field_def_t *field[RESOURCE_FIELDS_MAX];
    char *value[RESOURCE_FIELDS_MAX];
    int count;
} assignments_t;

static void s_assignments_free(assignments_t *a)
{
    for (int i = 0; i < a->count; i++)
        free(a->value[i]);
    a->count = 0;
}

/* Checks every given field (unknown, read-only, immutable, invalid) and every missing required
 * one, collecting all errors so one round trip reports all of them. -1 with a 4xx reply. */
static int s_assignments(resource_call_t *call, bool create, assignments_t *out)
{
    input_t in;
    char message[INPUT_MESSAGE_SIZE];
    memset(out, 0, sizeof(*out));
    if (input_read(call->req, call->reply, &in) != 0)
        return -1;
    json_t *p = problem_new(422, "invalid-fields", "Invalid fields", NULL, call->req->path);
    const char *key;
    json_t *value;
    json_object_foreach(in.object, key, value)
    {
        const field_def_t *f = s_field_by_name(call->def, key);
        if (f == NULL) {
            problem_add_error(p, key, "is not a field of this resource");
        } else if (f->flags & F_READONLY) {
            problem_add_error(p, key, "is read-only");
        } else if (!create && (f->flags & F_IMMUTABLE)) {
            problem_add_error(p, key, "cannot be changed after creation");
        } else if (input_field_value(f, value, in.from_form, &out->value[out->count], message, sizeof(message)) != 0) {
            problem_add_error(p, key, message);
        } else {
            out->field[out->count++] = f;
        }
    }
    for (size_t i = 0; create && i < call->def->field_count; i++) {
        const field_def_t *f = &call->def->fields[i];
        if ((f->flags & F_REQUIRED) && json_object_get(in.object, f->name) == NULL)
            problem_add_error(p, f->name, "is required");
    }
    input_free(&in);
    size_t errors = json_array_size(json_object_get(p, "errors"));
    if (errors == 0) {
        json_decref(p);
        return 0;
    }
    char detail[96];
    snprintf(detail, sizeof(detail), "%zu field%s not valid; nothing was changed.", errors, errors == 1 ? " is" : "s are");
    json_object_set_new(p, "detail", json_string(detail));
    api_reply_problem_object(call->reply, call->req, p);
    s_assignments_free(out);
    return -1;
}

/* Runs the write and the resource's hook in one transaction and answers with the row. */
static void s_write(resource_call_t *call, sql_t *q, int nparams, const char **params, int status)
{
    if (q->overflow) {
        api_reply_problem(call->reply, call->req, 500, "internal", "Internal error", "statement too long");
        return;
    }
    if (s_tx(call, true) != 0)
        return;
    PGresult *res = resource_exec(call, q->text, nparams, params);
    if (res == NULL)
        goto Error;
    if (PQntuples(res) != 1) {
        PQclear(res);
        s_reply_not_found(call);
        goto Error;
    }
    int depth = resource_depth(call->def);
    call->ids[depth] = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    call->id_count = depth + 1;
    PQclear(res);
    if (call->def->after_write && call->def->after_write(call) != 0)
        goto Error;
    if (s_tx(call, false) != 0)
        return;
    resource_reply_row(call, status);
    if (status == 201) {
        char path[PATH_MAX_LEN], uri[1024];
        resource_item_path(call->def, call->ids, call->id_count, path, sizeof(path));
        snprintf(uri, sizeof(uri), "%s%s", call->req->base_url, path);
        api_reply_header(call->reply, "Location", uri);
    }
    return;
Error:
    s_rollback(call);
}

void resource_create(resource_call_t *call)
{
    assignments_t a;
    if (resource_check_parents(call) != 0 || s_assignments(call, true, &a) != 0)
        return;
    const resource_def_t *def = call->def;
    const char *params[RESOURCE_FIELDS_MAX + 4];
    char account[24], parent[24];
    int n = 0;
    sql_t q = {0};
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    params[n++] = account;
    s_sql(&q, "INSERT INTO %s (account_id", def->table);
    if (def->parent_column) {
        snprintf(parent, sizeof(parent), "%" PRId64, call->ids[resource_depth(def) - 1]);
        params[n++] = parent;
        s_sql(&q, ", %s", def->parent_column);
    }
    for (int i = 0; i < a.count; i++) {
        s_sql(&q, ", %s", s_column(a.field[i]));
        params[n++] = a.value[i];
    }
    s_sql(&q, ") VALUES ($1");
    for (int i = 2; i <= n; i++)
        s_sql(&q, ", $%d", i);
    s_sql(&q, ") RETURNING id");
    s_write(call, &q, n, params, 201);
    s_assignments_free(&a);
}

void resource_update(resource_call_t *call)
{
    assignments_t a;
    if (resource_check_parents(call) != 0 || s_assignments(call, false, &a) != 0)
        return;
    if (a.count == 0) {
        resource_reply_row(call, 200);
        return;
    }
    const char *params[RESOURCE_FIELDS_MAX + 4];
    char idbuf[3][24];
    sql_t q = {0}, where = {0};
    int n = s_where(&where, call, true, params, idbuf);
    s_sql(&q, "UPDATE %s SET ", call->def->table);
    for (int i = 0; i < a.count; i++) {
        params[n++] = a.value[i];
        s_sql(&q, "%s%s = $%d", i ? ", " : "", s_column(a.field[i]), n);
    }
    s_sql(&q, "%s RETURNING id", where.text);
    s_write(call, &q, n, params, 200);
    s_assignments_free(&a);
}

/* ------------------------------------------------------------------------------------------ */
/* Delete, archive, restore                                                                    */

/* Runs one statement on the addressed row ("%s" takes the WHERE clause) and answers with the
 * row (200), 204 when it is gone, or 404 when it was not there. */
static void s_change_row(resource_call_t *call, const char *format, bool gone)
{
    if (resource_check_parents(call) != 0)
        return;
    const char *params[3];
    char idbuf[3][24];
    sql_t q = {0}, where = {0};
    int n = s_where(&where, call, true, params, idbuf);
    s_sql(&q, format, call->def->table, where.text);
    PGresult *res = resource_exec(call, q.text, n, params);
    if (res == NULL)
        return;
    bool found = PQntuples(res) == 1;
    PQclear(res);
    if (!found)
        s_reply_not_found(call);
    else if (gone)
        api_reply_take(call->reply, 204, NULL, strdup(""), 0);
    else
        resource_reply_row(call, 200);
}

void resource_delete(resource_call_t *call)
{
    if (call->def->archivable)
        s_change_row(call, "UPDATE %s SET archived_at = coalesce(archived_at, now())%s RETURNING id", false);
    else
        s_change_row(call, "DELETE FROM %s%s RETURNING id", true);
}

void resource_restore(resource_call_t *call)
{
    s_change_row(call, "UPDATE %s SET archived_at = NULL%s RETURNING id", false);
}
