/*
 * Events: the account's record of everything that happened (schemas/events.json lists the types,
 * docs/events.md explains them), read-only. GET /v1/events lists them newest first, or with
 * ?after=<id> oldest first from just after that id: a cursor a client keeps to read every event
 * exactly once, because ids are given in commit order (schemas/sql/0009_events.sql). Filters:
 * type (one or a comma list), campaign_id, caller_id, since and until (occurred_at), before.
 *
 * The generic list pages by page number over a count, which an append-only log of millions of
 * rows makes both slow and unstable (a page shifts under the reader as events arrive); cursors
 * are neither. Hence its own list and read, on the engine's routing, scoping and errors.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/store/resource.h"
#include "common/event_json.h"
#include "common/json_writer.h"
#include "common/problem.h"
#include "common/urlform.h"

#define EVENTS_TYPES_MAX  16 /* types in one ?type= */
#define EVENTS_TYPE_LEN   64 /* bytes of one type name */
#define EVENTS_PARAM_MAX  64 /* bytes of any other filter value */
#define EVENTS_QUERY_SIZE (EVENTS_TYPES_MAX * (EVENTS_TYPE_LEN + 1) * 3 + 8 * EVENTS_PARAM_MAX * 3 + 128)

/* Columns every statement selects, in the order s_render reads them. */
#define EVENT_COLUMNS EVENT_JSON_COLUMNS

typedef struct {
    char types[EVENTS_TYPES_MAX * (EVENTS_TYPE_LEN + 1) + 3]; /* a text[] literal, or "" */
    char campaign[24], caller[24], after[24], before[24], since[EVENTS_PARAM_MAX + 1], until[EVENTS_PARAM_MAX + 1];
    int64_t limit;
    bool ascending;
    char query[EVENTS_QUERY_SIZE]; /* the filters again, percent-encoded, for the page's links */
} events_query_t;

/* A query or form parameter: 1 when absent, 0 when present (in out), -1 when longer than size - 1. */
static int s_param(const api_request_t *req, const char *name, char *out, size_t size)
{
    if (api_param(req, name, out, size) == 0)
        return 0;
    size_t cap = (req->msg.has_query ? req->msg.query.len : 0) + (req->msg.has_body ? req->msg.body.len : 0) + 1;
    char *whole = malloc(cap);
    int rc = whole && api_param(req, name, whole, cap) == 0 ? -1 : 1;
    free(whole);
    return rc;
}

/* A decimal integer in min..max without sign or leading zeros. */
static bool s_integer(const char *s, int64_t min, int64_t max, int64_t *out)
{
    size_t len = strlen(s);
    if (len == 0 || len > 18 || (s[0] == '0' && len > 1))
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return v >= min && v <= max;
}

static bool s_digits(const char *s, int n, int min, int max, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return v >= min && v <= max;
}

/* RFC 3339: 2026-11-28T14:02:09Z, with optional fractional seconds and a numeric offset. */
static bool s_rfc3339(const char *s)
{
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year, month, day, hour, minute, second, oh, om;
    if (strlen(s) < 20 || !s_digits(s, 4, 1, 9999, &year) || s[4] != '-' || !s_digits(s + 5, 2, 1, 12, &month) || s[7] != '-' ||
        !s_digits(s + 8, 2, 1, days[month - 1], &day) || (s[10] != 'T' && s[10] != 't') || !s_digits(s + 11, 2, 0, 23, &hour) ||
        s[13] != ':' || !s_digits(s + 14, 2, 0, 59, &minute) || s[16] != ':' || !s_digits(s + 17, 2, 0, 59, &second))
        return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month == 2 && day == 29 && !leap)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        const char *digits = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == digits)
            return false;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return true;
    return (*p == '+' || *p == '-') && strlen(p) == 6 && s_digits(p + 1, 2, 0, 23, &oh) && p[3] == ':' &&
           s_digits(p + 4, 2, 0, 59, &om);
}

/* ?type=a,b: names of lowercase letters, digits, '.' and '_', as a text[] literal. Whether they
 * are event types is the database's to say (the event_type domain). */
static const char *s_types(const char *value, char *out, size_t size)
{
    size_t used = 0, count = 0;
    out[used++] = '{';
    for (const char *p = value;; p++) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len > EVENTS_TYPE_LEN)
            return "must be event types (see docs/events.md) separated by commas";
        if (++count > EVENTS_TYPES_MAX)
            return "may name at most 16 types";
        for (size_t i = 0; i < len; i++)
            if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '.' || p[i] == '_'))
                return "must be event types (see docs/events.md) separated by commas";
        used += (size_t)snprintf(out + used, size - used, "%s%.*s", count > 1 ? "," : "", (int)len, p);
        p += len;
        if (*p == '\0')
            break;
    }
    snprintf(out + used, size - used, "}");
    return NULL;
}

/* Reads and checks every filter, naming each bad one. 0, or -1 with a 422. */
static int s_query(resource_call_t *call, events_query_t *q)
{
    const api_request_t *req = call->req;
    char value[EVENTS_TYPES_MAX * (EVENTS_TYPE_LEN + 1) + 1];
    json_t *p = problem_new(422, "invalid-query", "Invalid query parameters", "Some query parameters are not valid.", req->path);
    int64_t number;
    memset(q, 0, sizeof(*q));
    q->limit = RESOURCE_PAGE_DEFAULT;

    int rc = s_param(req, "type", value, sizeof(value));
    const char *problem = rc < 0 ? "may name at most 16 types" : rc == 0 ? s_types(value, q->types, sizeof(q->types)) : NULL;
    if (problem)
        problem_add_error(p, "type", problem);
    else if (rc == 0)
        urlform_append(q->query, sizeof(q->query), "type", value, ",");

    const struct {
        const char *name;
        char *into;
        const char *message;
    } ids[] = {
        {"campaign_id", q->campaign, "must be a campaign id"},
        {"caller_id", q->caller, "must be a caller id"},
        {"after", q->after, "must be an event id (0 for the first event)"},
        {"before", q->before, "must be an event id"},
    };
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        rc = s_param(req, ids[i].name, value, EVENTS_PARAM_MAX + 1);
        if (rc > 0)
            continue;
        if (rc < 0 || !s_integer(value, strcmp(ids[i].name, "after") == 0 ? 0 : 1, INT64_C(999999999999999999), &number)) {
            problem_add_error(p, ids[i].name, ids[i].message);
            continue;
        }
        snprintf(ids[i].into, 24, "%" PRId64, number);
        urlform_append(q->query, sizeof(q->query), ids[i].name, value, ",");
    }
    const char *times[] = {"since", "until"};
    char *time_into[] = {q->since, q->until};
    for (int i = 0; i < 2; i++) {
        rc = s_param(req, times[i], value, EVENTS_PARAM_MAX + 1);
        if (rc > 0)
            continue;
        if (rc < 0 || !s_rfc3339(value)) {
            problem_add_error(p, times[i], "must be an RFC 3339 time such as 2026-11-28T14:00:00Z");
            continue;
        }
        snprintf(time_into[i], EVENTS_PARAM_MAX + 1, "%.64s", value);
        urlform_append(q->query, sizeof(q->query), times[i], value, ",");
    }
    rc = s_param(req, "limit", value, EVENTS_PARAM_MAX + 1);
    if (rc < 0 || (rc == 0 && !s_integer(value, 1, RESOURCE_PAGE_MAX, &q->limit)))
        problem_add_error(p, "limit", "must be an integer from 1 to 100");
    q->ascending = q->after[0] != '\0';

    if (json_array_size(json_object_get(p, "errors")) == 0) {
        json_decref(p);
        return 0;
    }
    api_reply_problem_object(call->reply, req, p);
    return -1;
}

/* One row of EVENT_JSON_COLUMNS as the shared rendering's fields. */
static event_fields_t s_fields(PGresult *res, int row)
{
    return (event_fields_t){
        .id = PQgetvalue(res, row, 0),
        .type = PQgetvalue(res, row, 1),
        .occurred_at = PQgetvalue(res, row, 2),
        .created_at = PQgetvalue(res, row, 3),
        .campaign_id = PQgetisnull(res, row, 4) ? NULL : PQgetvalue(res, row, 4),
        .caller_id = PQgetisnull(res, row, 5) ? NULL : PQgetvalue(res, row, 5),
        .payload = PQgetvalue(res, row, 6),
        .payload_len = (size_t)PQgetlength(res, row, 6),
    };
}

/* One event: the webhook envelope (id, type, occurred_at, data) as a resource (common/event_json.c). */
static void s_render(json_writer_t *w, const api_request_t *req, PGresult *res, int row)
{
    event_fields_t e = s_fields(res, row);
    event_json_render(w, req->base_url, &e);
}

static void s_reply_writer(resource_call_t *call, json_writer_t *w)
{
    size_t len;
    char *body = json_writer_finish(w, &len);
    if (body == NULL) {
        json_writer_reset(w);
        api_reply_problem(call->reply, call->req, 500, "internal", "Internal error", "The response could not be rendered.");
        return;
    }
    api_reply_take(call->reply, 200, "application/json", body, len);
}

/* The list statement: filters always present take neutral values when not given, so only the
 * index-relevant ones (campaign, caller) and the order change the text: eight prepared shapes. */
static void s_list_sql(const events_query_t *q, char *sql, size_t size)
{
    snprintf(
        sql, size,
        "SELECT " EVENT_COLUMNS " FROM events WHERE account_id = $1 AND ($2::event_type[] IS NULL OR type = ANY ($2)) "
        "AND id > coalesce($3::bigint, 0) AND id < coalesce($4::bigint, 9223372036854775807) "
        "AND occurred_at >= coalesce($5::timestamptz, '-infinity') AND occurred_at < coalesce($6::timestamptz, 'infinity')%s%s "
        "ORDER BY id %s LIMIT $7",
        q->campaign[0] ? " AND campaign_id = $8" : "",
        q->caller[0] ? (q->campaign[0] ? " AND caller_id = $9" : " AND caller_id = $8") : "", q->ascending ? "ASC" : "DESC");
}

/* The events of the call's account, filtered by the query; `collection` is the list's own path
 * for its links. A caller's own list (own_caller > 0) is always filtered to that caller. */
static void s_list_of(resource_call_t *call, const char *collection, int64_t own_caller)
{
    events_query_t q;
    if (s_query(call, &q) != 0)
        return;
    const api_request_t *req = call->req;
    if (own_caller > 0) {
        if (q.caller[0] || q.campaign[0]) {
            json_t *p =
                problem_new(422, "invalid-query", "Invalid query parameters", "A caller's events are their own.", req->path);
            problem_add_error(p, q.caller[0] ? "caller_id" : "campaign_id", "is not a filter of a caller's own events");
            api_reply_problem_object(call->reply, req, p);
            return;
        }
        snprintf(q.caller, sizeof(q.caller), "%" PRId64, own_caller);
    }
    char account[24], limit[24], sql[1024];
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    snprintf(limit, sizeof(limit), "%" PRId64, q.limit);
    const char *params[9] = {account,
                             q.types[0] ? q.types : NULL,
                             q.after[0] ? q.after : NULL,
                             q.before[0] ? q.before : NULL,
                             q.since[0] ? q.since : NULL,
                             q.until[0] ? q.until : NULL,
                             limit};
    int n = 7;
    if (q.campaign[0])
        params[n++] = q.campaign;
    if (q.caller[0])
        params[n++] = q.caller;
    s_list_sql(&q, sql, sizeof(sql));
    PGresult *res = stmt_exec(call->route->stmts, call->route->conn, sql, n, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        if (constraint && strcmp(constraint, "event_type_check") == 0) {
            json_t *p =
                problem_new(422, "invalid-query", "Invalid query parameters", "Some query parameters are not valid.", req->path);
            problem_add_error(p, "type", "names a type that is not an event type (see docs/events.md)");
            api_reply_problem_object(call->reply, req, p);
        } else {
            resource_reply_db_error(call, res);
        }
        PQclear(res);
        return;
    }

    int rows = PQntuples(res);
    char uri[EVENTS_QUERY_SIZE + 1024], next[EVENTS_QUERY_SIZE + 1024], cursor[EVENTS_QUERY_SIZE];
    snprintf(uri, sizeof(uri), "%s%s?limit=%" PRId64 "%s", req->base_url, collection, q.limit, q.query);
    /* Oldest first is a feed: the next page is where to ask for what comes after this one, even
     * when it is empty for now. Newest first ends with the oldest event. */
    bool more = q.ascending || rows == q.limit;
    if (more) {
        /* The same filters with the cursor moved past this page. */
        const char *last = rows > 0 ? PQgetvalue(res, rows - 1, 0) : q.after;
        const char *after = q.ascending ? last : q.after, *before = q.ascending ? q.before : last;
        cursor[0] = '\0';
        if (q.types[0]) {
            char types[sizeof(q.types)];
            snprintf(types, sizeof(types), "%.*s", (int)strlen(q.types) - 2, q.types + 1);
            urlform_append(cursor, sizeof(cursor), "type", types, ",");
        }
        const char *names[] = {"campaign_id", "caller_id", "after", "before", "since", "until"};
        const char *values[] = {q.campaign, own_caller > 0 ? "" : q.caller, after, before, q.since, q.until};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (values[i][0])
                urlform_append(cursor, sizeof(cursor), names[i], values[i], ",");
        snprintf(next, sizeof(next), "%s%s?limit=%" PRId64 "%s", req->base_url, collection, q.limit, cursor);
    }

    json_writer_t w;
    json_writer_init(&w);
    json_writer_object_begin(&w);
    json_writer_kv_string(&w, "uri", uri);
    json_writer_kv_string(&w, "name", "events");
    json_writer_kv_string(&w, "order", q.ascending ? "oldest_first" : "newest_first");
    json_writer_kv_int(&w, "limit", q.limit);
    if (more)
        json_writer_kv_string(&w, "next_page", next);
    else
        json_writer_kv_null(&w, "next_page");
    json_writer_key(&w, "items");
    json_writer_array_begin(&w);
    for (int row = 0; row < rows; row++)
        s_render(&w, req, res, row);
    json_writer_array_end(&w);
    json_writer_key(&w, "actions");
    json_writer_array_begin(&w);
    json_writer_array_end(&w);
    json_writer_key(&w, "resources");
    json_writer_array_begin(&w);
    json_writer_array_end(&w);
    json_writer_object_end(&w);
    PQclear(res);
    s_reply_writer(call, &w);
    if (more && call->reply->status == 200) {
        char link[sizeof(next) + 16]; /* an api reply header holds 2 KB: a longer link is only in the body */
        snprintf(link, sizeof(link), "<%s>; rel=\"next\"", next);
        api_reply_header(call->reply, "Link", link);
    }
}

static void s_list(resource_call_t *call)
{
    s_list_of(call, "/v1/events", 0);
}

void events_list_for_caller(const route_ctx_t *ctx, const api_request_t *req, api_reply_t *reply, int64_t account_id,
                            int64_t caller_id)
{
    auth_account_t account = {.account_id = account_id};
    resource_call_t call = {.route = ctx, .account = &account, .req = req, .reply = reply, .def = &res_events};
    s_list_of(&call, "/v1/caller_session/events", caller_id);
}

static void s_read(resource_call_t *call)
{
    char account[24], id[24];
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    snprintf(id, sizeof(id), "%" PRId64, call->ids[0]);
    const char *params[] = {account, id};
    PGresult *res = resource_exec(call, "SELECT " EVENT_COLUMNS " FROM events WHERE account_id = $1 AND id = $2", 2, params);
    if (res == NULL)
        return;
    if (PQntuples(res) != 1) {
        api_reply_problem(call->reply, call->req, 404, "not-found", "Not found", "No event with this id in this account.");
    } else {
        json_writer_t w;
        json_writer_init(&w);
        s_render(&w, call->req, res, 0);
        s_reply_writer(call, &w);
    }
    PQclear(res);
}

const resource_def_t res_events = {
    .collection = "events",
    .singular = "event",
    .table = "events",
    .read_only = true,
    .list = s_list,
    .read = s_read,
};
