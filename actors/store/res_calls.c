/*
 * Calls: the brief's minimal API. One POST /v1/call (or /v1/calls) with a dialer type, a caller
 * id, a call-state webhook URL and numbers (given inline, or a feed URL the dialer pages through)
 * starts dialing at once. A call owns a campaign of origin 'call', so the dialer runs it like any
 * other; pause, resume and stop act on that campaign.
 *
 * Everything is checked before anything is written: every bad field is named in one 422, and a
 * refused request leaves no campaign, call or number behind.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/store/input.h"
#include "actors/store/resource.h"
#include "common/netguard.h"
#include "common/problem.h"
#include "phone/phone.h"

#define COUNT(a)         (sizeof(a) / sizeof((a)[0]))
#define CALL_NUMBERS_MAX 1000 /* numbers in one request; more belong in a list upload or the feed */
#define CALL_ZONES_MAX   8
#define CALL_NAME_MAX    200

static const char *const s_dialer_types[] = {"Preview", "Power", "Predictive", NULL};

static const field_def_t s_fields[] = {
    {.name = "dialer_type",
     .type = FIELD_ENUM,
     .flags = F_REQUIRED | F_IMMUTABLE,
     .choices = s_dialer_types,
     .select_sql = "(SELECT dialer_type FROM campaigns c WHERE c.id = calls.campaign_id)",
     .doc = "Preview, Power or Predictive"},
    {.name = "from",
     .type = FIELD_PHONE,
     .flags = F_REQUIRED | F_IMMUTABLE,
     .select_sql = "(SELECT caller_id FROM campaigns c WHERE c.id = calls.campaign_id)",
     .doc = "Caller ID shown to called parties"},
    {.name = "status",
     .type = FIELD_TEXT,
     .flags = F_READONLY,
     .select_sql = "(SELECT status FROM campaigns c WHERE c.id = calls.campaign_id)",
     .doc = "running, paused or stopped"},
    {.name = "call_state_url",
     .type = FIELD_URL,
     .flags = F_REQUIRED | F_IMMUTABLE,
     .max = 2000,
     .doc = "Every call state change is POSTed here"},
    {.name = "phone_numbers_url",
     .type = FIELD_URL,
     .flags = F_IMMUTABLE | F_NULLABLE,
     .max = 2000,
     .doc = "GETs more numbers, page by page, when the dialer runs low"},
    {.name = "phone_number",
     .type = FIELD_NAMES,
     .flags = F_IMMUTABLE,
     .select_sql = "(SELECT coalesce(json_agg(phone), '[]'::json) FROM (SELECT n.phone FROM numbers n "
                   "WHERE n.campaign_id = calls.campaign_id ORDER BY n.id LIMIT calls.numbers_given) given)",
     .doc = "One number, or an array of up to 1000 (strings in any common notation, or digits); rendered as E.164"},
    {.name = "numbers_given", .type = FIELD_INT, .flags = F_READONLY, .doc = "Distinct valid numbers in phone_number"},
    {.name = "abandonment_message_id",
     .type = FIELD_REF,
     .flags = F_IMMUTABLE | F_NULLABLE,
     .ref_table = "messages",
     .ref_path = "messages",
     .select_sql = "(SELECT abandonment_message_id FROM campaigns c WHERE c.id = calls.campaign_id)",
     .doc = "Identification message played when no caller is free; required for Predictive"},
    {.name = "campaign_id", .type = FIELD_REF, .flags = F_READONLY | F_FILTER, .ref_path = "campaigns"},
};

static const constraint_def_t s_constraints[] = {
    {"campaigns_abandonment_message_id_fkey", "abandonment_message_id", "is not a message of this account"},
};

static const field_def_t *s_field(const char *name)
{
    for (size_t i = 0; i < COUNT(s_fields); i++)
        if (strcmp(s_fields[i].name, name) == 0)
            return &s_fields[i];
    return NULL;
}

/* The numbers of a request, normalised and de-duplicated, with their time zones. */
typedef struct {
    char (*phones)[PHONE_E164_SIZE];
    char (*zones)[CALL_ZONES_MAX * 48];
    size_t count;
} numbers_t;

static bool s_seen(const numbers_t *n, const char *e164)
{
    for (size_t i = 0; i < n->count; i++)
        if (strcmp(n->phones[i], e164) == 0)
            return true;
    return false;
}

/* One phone_number item: a string in any common notation, or digits as a JSON integer. */
static void s_add_number(numbers_t *n, json_t *item, size_t index, bool many, json_t *problem)
{
    char given[64], e164[PHONE_E164_SIZE], where[32];
    snprintf(where, sizeof(where), many ? "phone_number[%zu]" : "phone_number", index);
    if (json_is_integer(item) && json_integer_value(item) > 0)
        snprintf(given, sizeof(given), "%" JSON_INTEGER_FORMAT, json_integer_value(item));
    else if (json_is_string(item) && json_string_length(item) < sizeof(given))
        snprintf(given, sizeof(given), "%s", json_string_value(item));
    else {
        problem_add_error(problem, where, "must be a phone number (a string, or digits)");
        return;
    }
    phone_error_t error;
    if (phone_normalize(given, "US", e164, sizeof(e164), &error) != 0) {
        problem_add_error(problem, where, phone_error_text(error));
        return;
    }
    if (s_seen(n, e164))
        return;
    const char *zones[CALL_ZONES_MAX];
    int found = phone_time_zones(e164, zones, CALL_ZONES_MAX);
    snprintf(n->phones[n->count], sizeof(n->phones[0]), "%s", e164);
    size_t used = 0;
    n->zones[n->count][0] = '\0';
    for (int z = 0; z < found; z++)
        used += (size_t)snprintf(n->zones[n->count] + used, sizeof(n->zones[0]) - used, "%s%s", z ? "," : "", zones[z]);
    n->count++;
}

static void s_collect_numbers(json_t *value, numbers_t *n, json_t *problem)
{
    if (!json_is_array(value)) {
        s_add_number(n, value, 0, false, problem);
        return;
    }
    size_t size = json_array_size(value);
    if (size == 0 || size > CALL_NUMBERS_MAX) {
        problem_add_error(problem, "phone_number", "must hold 1 to 1000 numbers; upload a list for more");
        return;
    }
    for (size_t i = 0; i < size; i++)
        s_add_number(n, json_array_get(value, i), i, true, problem);
}

/* Postgres array literal of quoted items, or NULL when it does not fit. */
static char *s_array(const void *items, size_t stride, size_t count)
{
    size_t size = 3 + count * (stride + 3);
    char *out = malloc(size), *p = out;
    if (out == NULL)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < count; i++)
        p += snprintf(p, size - (size_t)(p - out), "%s\"%s\"", i ? "," : "", (const char *)items + i * stride);
    snprintf(p, size - (size_t)(p - out), "}");
    return out;
}

/* A customer URL: well formed, and (unless this server allows it) not pointing inside our
 * network. The value stays in *sql for the insert. */
static void s_url(resource_call_t *call, json_t *body, const char *name, char **sql, json_t *problem)
{
    json_t *value = json_object_get(body, name);
    char message[INPUT_MESSAGE_SIZE];
    if (value == NULL || json_is_null(value))
        return;
    if (input_field_value(s_field(name), value, false, sql, message, sizeof(message)) != 0) {
        problem_add_error(problem, name, message);
        return;
    }
    if (*sql && !call->route->limits->allow_private_urls && netguard_check_url(*sql, message, sizeof(message)) != 0)
        problem_add_error(problem, name, message);
}

static void s_create(resource_call_t *call)
{
    const api_request_t *req = call->req;
    input_t in;
    char message[INPUT_MESSAGE_SIZE];
    if (input_read(req, call->reply, &in) != 0)
        return;
    json_t *body = in.object, *problem = problem_new(422, "invalid-fields", "Invalid fields", NULL, req->path);
    char *dialer_type = NULL, *from = NULL, *state_url = NULL, *numbers_url = NULL, *message_id = NULL;
    char *phones = NULL, *zones = NULL;
    numbers_t numbers = {.phones = calloc(CALL_NUMBERS_MAX, sizeof(*numbers.phones)),
                         .zones = calloc(CALL_NUMBERS_MAX, sizeof(*numbers.zones))};
    if (numbers.phones == NULL || numbers.zones == NULL) {
        api_reply_problem(call->reply, req, 503, "unavailable", "Service unavailable", "Out of memory.");
        goto Done;
    }

    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        const field_def_t *f = s_field(key);
        if (f == NULL || (f->flags & F_READONLY))
            problem_add_error(problem, key, f ? "is read-only" : "is not a field of a call");
    }
    const char *required[] = {"dialer_type", "from", "call_state_url"};
    char **into[] = {&dialer_type, &from, &state_url};
    for (size_t i = 0; i < COUNT(required); i++) {
        value = json_object_get(body, required[i]);
        if (value == NULL || json_is_null(value))
            problem_add_error(problem, required[i], "is required");
        else if (i < 2 && input_field_value(s_field(required[i]), value, in.from_form, into[i], message, sizeof(message)) != 0)
            problem_add_error(problem, required[i], message);
    }
    s_url(call, body, "call_state_url", &state_url, problem);
    s_url(call, body, "phone_numbers_url", &numbers_url, problem);
    value = json_object_get(body, "abandonment_message_id");
    if (value && !json_is_null(value) &&
        input_field_value(s_field("abandonment_message_id"), value, in.from_form, &message_id, message, sizeof(message)) != 0)
        problem_add_error(problem, "abandonment_message_id", message);
    value = json_object_get(body, "phone_number");
    if (value && !json_is_null(value))
        s_collect_numbers(value, &numbers, problem);
    if (numbers.count == 0 && numbers_url == NULL && json_array_size(json_object_get(problem, "errors")) == 0)
        problem_add_error(problem, "phone_number", "give phone_number (one or an array) or phone_numbers_url");
    if (dialer_type && strcmp(dialer_type, "Predictive") == 0 && message_id == NULL)
        problem_add_error(problem, "abandonment_message_id",
                          "Predictive dialing needs an identification message to play when no caller is free");
    if (json_array_size(json_object_get(problem, "errors")) > 0) {
        json_object_set_new(problem, "detail", json_string("Nothing was started."));
        api_reply_problem_object(call->reply, req, problem);
        problem = NULL;
        goto Done;
    }

    phones = s_array(numbers.phones, sizeof(numbers.phones[0]), numbers.count);
    zones = s_array(numbers.zones, sizeof(numbers.zones[0]), numbers.count);
    char account[24], count[24], campaign[24];
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    snprintf(count, sizeof(count), "%zu", numbers.count);
    if (phones == NULL || zones == NULL || resource_begin(call) != 0)
        goto Done;
    /* The campaign first (its name needs no uniqueness trouble: the call's own id is not known
     * yet, so a sequence-free unique name is the timestamp and the campaign id). */
    const char *campaign_params[] = {account, dialer_type, from, message_id};
    PGresult *res =
        resource_exec(call,
                      "INSERT INTO campaigns (account_id, name, dialer_type, caller_id, abandonment_message_id, origin) "
                      "VALUES ($1, 'call ' || to_char(now(), 'YYYY-MM-DD HH24:MI:SS.US'), $2, $3, $4, 'call') "
                      "RETURNING id",
                      4, campaign_params);
    if (res == NULL)
        goto Rollback;
    snprintf(campaign, sizeof(campaign), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *insert_params[] = {account, campaign, phones, zones};
    res = resource_exec(call, "SELECT numbers_add($1, $2, $3::text[], $4::text[])", 4, insert_params);
    if (res == NULL)
        goto Rollback;
    PQclear(res);
    const char *call_params[] = {account, campaign, state_url, numbers_url, count};
    res = resource_exec(call,
                        "INSERT INTO calls (account_id, campaign_id, call_state_url, phone_numbers_url, numbers_given) "
                        "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                        5, call_params);
    if (res == NULL)
        goto Rollback;
    call->ids[0] = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    call->id_count = 1;
    PQclear(res);
    const char *start_params[] = {campaign};
    res = resource_exec(call, "UPDATE campaigns SET status = 'running' WHERE id = $1", 1, start_params);
    if (res == NULL)
        goto Rollback;
    PQclear(res);
    if (resource_commit(call) == 0)
        resource_reply_row(call, 201);
    goto Done;
Rollback:
    resource_rollback(call);
Done:
    json_decref(problem);
    input_free(&in);
    free(dialer_type);
    free(from);
    free(state_url);
    free(numbers_url);
    free(message_id);
    free(phones);
    free(zones);
    free(numbers.phones);
    free(numbers.zones);
}

/* Pause, resume and stop act on the call's campaign; each is idempotent. */
static void s_set_status(resource_call_t *call, const char *status, const char *from_statuses)
{
    resource_set_status(call,
                        "UPDATE campaigns c SET status = $3 FROM calls WHERE calls.account_id = $1 AND calls.id = $2 "
                        "AND c.id = calls.campaign_id AND c.status IN (%s)",
                        status, from_statuses);
}

static void s_pause(resource_call_t *call)
{
    s_set_status(call, "paused", "'running'");
}

static void s_resume(resource_call_t *call)
{
    s_set_status(call, "running", "'paused'");
}

static void s_stop(resource_call_t *call)
{
    s_set_status(call, "stopped", "'running', 'paused'");
}

static const action_def_t s_actions[] = {
    {"pause", "Stop placing new calls; calls in progress finish", s_pause, "POST"},
    {"resume", "Dial again after a pause", s_resume, "POST"},
    {"stop", "End dialing for good", s_stop, "POST"},
};

static const link_def_t s_links[] = {
    {"deliveries", "deliveries", NULL},
};

const resource_def_t res_calls = {
    .collection = "calls",
    .singular = "call",
    .table = "calls",
    .name_column = "'call ' || calls.id",
    .fields = s_fields,
    .field_count = COUNT(s_fields),
    .constraints = s_constraints,
    .constraint_count = COUNT(s_constraints),
    .actions = s_actions,
    .action_count = COUNT(s_actions),
    .links = s_links,
    .link_count = COUNT(s_links),
    .append_only = true,
    .create_alias = "call",
    .create = s_create,
};
