/*
 * Webhook endpoints (schemas/sql/0014_webhook_endpoints.sql): URLs that receive the account's
 * events, or one campaign's, optionally only some types. The outbox is filled by the database as
 * events are numbered and delivered by the fan-out process (actors/fanout/webhooks.c); here are
 * the endpoints themselves, their delivery log (each delivery with every attempt) and replays.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/store/input.h"
#include "actors/store/resource.h"
#include "common/netguard.h"
#include "common/problem.h"

#define COUNT(a)             (sizeof(a) / sizeof((a)[0]))
#define REPLAY_EVENTS_MAX    100000 /* events one replay may queue: a larger range is several replays */
#define EVENT_TYPES_MAX      64     /* names in event_types; the catalog has fewer */
#define ENDPOINT_URL_MAX     2048
#define ENDPOINT_DESCRIPTION 500

static const field_def_t s_endpoint_fields[] = {
    {.name = "url",
     .type = FIELD_URL,
     .flags = F_REQUIRED,
     .max = ENDPOINT_URL_MAX,
     .doc = "http or https URL the events are POSTed to (signed like call-state webhooks)"},
    {.name = "campaign_id",
     .type = FIELD_REF,
     .flags = F_NULLABLE | F_FILTER,
     .ref_table = "campaigns",
     .ref_path = "campaigns",
     .doc = "Only this campaign's events; null for every event of the account"},
    {.name = "event_types",
     .type = FIELD_NAMES,
     .flags = F_DOTTED,
     .max = EVENT_TYPES_MAX,
     .doc = "Only events of these types (schemas/events.json); empty for all"},
    {.name = "description", .type = FIELD_TEXT, .flags = F_NULLABLE, .max = ENDPOINT_DESCRIPTION, .doc = "For humans"},
    {.name = "enabled", .type = FIELD_BOOL, .flags = F_FILTER, .doc = "A disabled endpoint gets no deliveries"},
    {.name = "disabled_reason",
     .type = FIELD_TEXT,
     .flags = F_READONLY,
     .doc = "Why the deliverer disabled the endpoint (a 410 Gone, or 3 days of failures); null otherwise"},
};

static const constraint_def_t s_endpoint_constraints[] = {
    {"event_type_check", "event_types", "names a type that is not in the event catalog (GET /v1/events documents them)"},
    {"webhook_endpoints_campaign_id_fkey", "campaign_id", "is not a campaign of this account"},
};

/* Customer URLs may not point inside our network unless this server allows it (tests). Checked
 * on the stored value, so a create and an update are refused alike, inside their transaction. */
static int s_after_write(resource_call_t *call)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, call->ids[call->id_count - 1]);
    const char *params[] = {id};
    /* Enabling again clears the deliverer's reason and wakes it for the pending deliveries. */
    PGresult *res = resource_exec(call,
                                  "WITH e AS (UPDATE webhook_endpoints SET disabled_reason = NULL WHERE id = $1 AND enabled "
                                  "AND disabled_reason IS NOT NULL) SELECT url, pg_notify('webhook_deliveries', '') "
                                  "FROM webhook_endpoints WHERE id = $1",
                                  1, params);
    if (res == NULL)
        return -1;
    char message[INPUT_MESSAGE_SIZE];
    int rc = 0;
    if (PQntuples(res) == 1 && !call->route->limits->allow_private_urls &&
        netguard_check_url(PQgetvalue(res, 0, 0), message, sizeof(message)) != 0) {
        json_t *problem = problem_new(422, "invalid-fields", "Invalid fields", "Nothing was changed.", call->req->path);
        problem_add_error(problem, "url", message);
        api_reply_problem_object(call->reply, call->req, problem);
        rc = -1;
    }
    PQclear(res);
    return rc;
}

static void s_set_enabled(resource_call_t *call, const char *enabled)
{
    char account[24], id[24];
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    snprintf(id, sizeof(id), "%" PRId64, call->ids[call->id_count - 1]);
    const char *params[] = {account, id, enabled};
    PGresult *res = resource_exec(call,
                                  "UPDATE webhook_endpoints SET enabled = $3::boolean, disabled_reason = NULL "
                                  "WHERE account_id = $1 AND id = $2 AND (enabled <> $3::boolean OR disabled_reason IS NOT NULL) "
                                  "RETURNING pg_notify('webhook_deliveries', '')",
                                  3, params);
    if (res == NULL)
        return;
    PQclear(res);
    resource_reply_row(call, 200);
}

static void s_enable(resource_call_t *call)
{
    s_set_enabled(call, "true");
}

static void s_disable(resource_call_t *call)
{
    s_set_enabled(call, "false");
}

/* An RFC 3339 time with a zone (Z or an offset): PostgreSQL reads it, but would also read many
 * other spellings, and a replay's range should mean one thing. */
static bool s_is_time(const char *s)
{
    const char *shape = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; shape[i]; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
            return false;
    s += i;
    if (*s == '.') {
        size_t digits = strspn(s + 1, "0123456789");
        if (digits == 0 || digits > 6)
            return false;
        s += 1 + digits;
    }
    if (strcmp(s, "Z") == 0)
        return true;
    return (s[0] == '+' || s[0] == '-') && isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[2]) && s[3] == ':' &&
           isdigit((unsigned char)s[4]) && isdigit((unsigned char)s[5]) && s[6] == '\0';
}

/* An event id parameter: a positive integer, as text for the statement. */
static int s_event_id(json_t *value, char *out, size_t size)
{
    if (!json_is_integer(value) || json_integer_value(value) < 1)
        return -1;
    snprintf(out, size, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
    return 0;
}

/* POST <endpoint>/replay: new deliveries, in event order, of one event (event_id) or of a range
 * (after and optionally until as event ids, or since and optionally until as times), limited to
 * the events the endpoint's filters select. Nothing is queued when the range holds more than
 * REPLAY_EVENTS_MAX events. */
static void s_replay(resource_call_t *call)
{
    input_t in;
    if (input_read(call->req, call->reply, &in) != 0)
        return;
    json_t *problem = problem_new(422, "invalid-fields", "Invalid fields", NULL, call->req->path);
    char event_id[24] = "", after[24] = "", until_id[24] = "", since[64] = "", until_time[64] = "";
    json_t *until = NULL;
    const char *key;
    json_t *value;
    json_object_foreach(in.object, key, value)
    {
        const char *s = json_string_value(value);
        if (strcmp(key, "event_id") == 0) {
            if (s_event_id(value, event_id, sizeof(event_id)) != 0)
                problem_add_error(problem, key, "must be an event id (a positive integer)");
        } else if (strcmp(key, "after") == 0) {
            if (json_is_integer(value) && json_integer_value(value) == 0)
                snprintf(after, sizeof(after), "0");
            else if (s_event_id(value, after, sizeof(after)) != 0)
                problem_add_error(problem, key, "must be an event id (0 for the first event)");
        } else if (strcmp(key, "since") == 0) {
            if (s == NULL || strlen(s) >= sizeof(since) || !s_is_time(s))
                problem_add_error(problem, key, "must be an RFC 3339 time with a zone (2026-01-31T12:00:00Z)");
            else
                snprintf(since, sizeof(since), "%s", s);
        } else if (strcmp(key, "until") == 0) {
            until = value;
        } else {
            problem_add_error(problem, key, "is not a parameter of a replay (event_id, after, since, until)");
        }
    }
    int given = (event_id[0] != '\0') + (after[0] != '\0') + (since[0] != '\0');
    if (given != 1 && json_array_size(json_object_get(problem, "errors")) == 0)
        problem_add_error(problem, "event_id", "give exactly one of event_id, after and since");
    if (until != NULL && event_id[0] != '\0')
        problem_add_error(problem, "until", "is not used with event_id");
    else if (until != NULL && after[0] != '\0' && s_event_id(until, until_id, sizeof(until_id)) != 0)
        problem_add_error(problem, "until", "must be an event id, since the range starts after one");
    else if (until != NULL && since[0] != '\0') {
        const char *s = json_string_value(until);
        if (s == NULL || strlen(s) >= sizeof(until_time) || !s_is_time(s))
            problem_add_error(problem, "until", "must be an RFC 3339 time with a zone, since the range starts at one");
        else
            snprintf(until_time, sizeof(until_time), "%s", s);
    }
    input_free(&in);
    if (json_array_size(json_object_get(problem, "errors")) > 0) {
        json_object_set_new(problem, "detail", json_string("Nothing was replayed."));
        api_reply_problem_object(call->reply, call->req, problem);
        return;
    }
    json_decref(problem);

    char account[24], id[24], limit[16];
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    snprintf(id, sizeof(id), "%" PRId64, call->ids[call->id_count - 1]);
    snprintf(limit, sizeof(limit), "%d", REPLAY_EVENTS_MAX + 1);
    const char *params[] = {account,
                            id,
                            event_id[0] ? event_id : NULL,
                            after[0] ? after : NULL,
                            until_id[0] ? until_id : NULL,
                            since[0] ? since : NULL,
                            until_time[0] ? until_time : NULL,
                            limit};
    if (resource_begin(call) != 0)
        return;
    /* Counted within the limit first, so an oversized range is refused before anything is written
     * (and without counting all of it). */
    static const char matching[] =
        "FROM events e JOIN webhook_endpoints w ON w.account_id = e.account_id "
        "AND (w.campaign_id IS NULL OR w.campaign_id = e.campaign_id) AND (w.event_types = '[]' OR w.event_types ? e.type) "
        "WHERE w.account_id = $1 AND w.id = $2 "
        "AND ($3::bigint IS NULL OR e.id = $3) AND ($4::bigint IS NULL OR e.id > $4) AND ($5::bigint IS NULL OR e.id <= $5) "
        "AND ($6::timestamptz IS NULL OR e.created_at >= $6) AND ($7::timestamptz IS NULL OR e.created_at < $7) ";
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "SELECT (SELECT count(*) FROM (SELECT 1 %s LIMIT $8) n), EXISTS (SELECT 1 FROM webhook_endpoints "
             "WHERE account_id = $1 AND id = $2)",
             matching);
    PGresult *res = resource_exec(call, sql, 8, params);
    if (res == NULL)
        goto Rollback;
    long count = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    bool exists = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    if (!exists) {
        api_reply_problem(call->reply, call->req, 404, "not-found", "Not found", "No such webhook endpoint.");
        goto Rollback;
    }
    if (count > REPLAY_EVENTS_MAX) {
        json_t *p = problem_new(422, "invalid-fields", "Invalid fields", "Nothing was replayed.", call->req->path);
        problem_add_error(p,
                          event_id[0] ? "event_id"
                          : after[0]  ? "after"
                                      : "since",
                          "selects more than 100000 events: replay a narrower range at a time");
        api_reply_problem_object(call->reply, call->req, p);
        goto Rollback;
    }
    if (event_id[0] && count == 0) {
        json_t *p = problem_new(422, "invalid-fields", "Invalid fields", "Nothing was replayed.", call->req->path);
        problem_add_error(p, "event_id", "is not an event this endpoint receives (its account, campaign and types)");
        api_reply_problem_object(call->reply, call->req, p);
        goto Rollback;
    }
    snprintf(sql, sizeof(sql),
             "WITH added AS (INSERT INTO webhook_deliveries (account_id, endpoint_id, event_id, stream, replay) "
             "SELECT w.account_id, w.id, e.id, coalesce(e.campaign_id, 0), true %s ORDER BY e.id LIMIT $8 RETURNING event_id) "
             "SELECT count(*), min(event_id), max(event_id), pg_notify('webhook_deliveries', '') FROM added",
             matching);
    res = resource_exec(call, sql, 8, params);
    if (res == NULL)
        goto Rollback;
    json_t *body = json_object();
    json_object_set_new(body, "replayed", json_integer(strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
    json_object_set_new(body, "first_event_id",
                        PQgetisnull(res, 0, 1) ? json_null() : json_integer(strtoll(PQgetvalue(res, 0, 1), NULL, 10)));
    json_object_set_new(body, "last_event_id",
                        PQgetisnull(res, 0, 2) ? json_null() : json_integer(strtoll(PQgetvalue(res, 0, 2), NULL, 10)));
    PQclear(res);
    if (resource_commit(call) != 0) {
        json_decref(body);
        return;
    }
    api_reply_json(call->reply, 202, body);
    return;
Rollback:
    resource_rollback(call);
}

static const action_def_t s_endpoint_actions[] = {
    {"enable", "Deliver again, resuming the pending deliveries in order", s_enable, "POST"},
    {"disable", "Stop delivering; pending deliveries wait for an enable", s_disable, "POST"},
    {"replay", "Deliver again: event_id, or after/until event ids, or since/until times (at most 100000 events)", s_replay, "POST"},
};

static const link_def_t s_endpoint_links[] = {
    {"deliveries", "deliveries", NULL},
};

const resource_def_t res_webhook_endpoints = {
    .collection = "webhook_endpoints",
    .singular = "webhook_endpoint",
    .table = "webhook_endpoints",
    .name_column = "coalesce(description, url)",
    .fields = s_endpoint_fields,
    .field_count = COUNT(s_endpoint_fields),
    .constraints = s_endpoint_constraints,
    .constraint_count = COUNT(s_endpoint_constraints),
    .actions = s_endpoint_actions,
    .action_count = COUNT(s_endpoint_actions),
    .links = s_endpoint_links,
    .link_count = COUNT(s_endpoint_links),
    .after_write = s_after_write,
};

static const char *const s_states[] = {"pending", "delivered", "failed", NULL};

static const field_def_t s_delivery_fields[] = {
    {.name = "event_id",
     .type = FIELD_INT,
     .flags = F_READONLY | F_FILTER,
     .doc = "The event, and the webhook-id of every attempt"},
    {.name = "state",
     .type = FIELD_ENUM,
     .flags = F_READONLY | F_FILTER,
     .choices = s_states,
     .doc = "pending, delivered or failed"},
    {.name = "replay",
     .type = FIELD_BOOL,
     .flags = F_READONLY,
     .doc = "Made by POST .../replay rather than as the event was numbered"},
    RESOURCE_DELIVERY_FIELDS("webhook_delivery_attempts a WHERE a.delivery_id = webhook_deliveries.id"),
};

const resource_def_t res_webhook_deliveries = {
    .collection = "deliveries",
    .singular = "webhook_delivery",
    .table = "webhook_deliveries",
    .parent = &res_webhook_endpoints,
    .parent_column = "endpoint_id",
    .name_column = "'event ' || event_id",
    .fields = s_delivery_fields,
    .field_count = COUNT(s_delivery_fields),
    .read_only = true,
};
