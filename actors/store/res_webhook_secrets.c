/*
 * The account's webhook signing secrets (schemas/sql/0010_webhook_secrets.sql). Listing shows
 * each secret's value, since receivers need it to verify deliveries; a POST rotates: a new
 * secret, and every older active one expires after expire_previous_in_seconds (24 hours unless
 * given), during which deliveries carry a signature for each. Secrets are made by the database
 * and never edited or deleted: an expired one is the record of what signed earlier deliveries.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/store/input.h"
#include "actors/store/resource.h"
#include "common/problem.h"

#define COUNT(a)                (sizeof(a) / sizeof((a)[0]))
#define EXPIRE_PREVIOUS_DEFAULT "86400"
#define EXPIRE_PREVIOUS_MAX     604800 /* a week: longer overlaps only prolong a leaked secret's use */
#define EXPIRE_PREVIOUS_PARAM   "expire_previous_in_seconds"

static const field_def_t s_fields[] = {
    {.name = "secret",
     .type = FIELD_TEXT,
     .flags = F_READONLY,
     .doc = "whsec_ and the base64 of the signing key: verify webhook-signature with it (Standard Webhooks)"},
    {.name = "active",
     .type = FIELD_BOOL,
     .flags = F_READONLY,
     .select_sql = "(expires_at IS NULL OR expires_at > now())",
     .doc = "Deliveries are signed with every active secret"},
    {.name = "expires_at",
     .type = FIELD_TIMESTAMP,
     .flags = F_READONLY,
     .doc = "null until a newer secret is made; then when this one stops signing"},
};

static const field_def_t s_expire_previous = {
    .name = EXPIRE_PREVIOUS_PARAM, .type = FIELD_INT, .min = 0, .max = EXPIRE_PREVIOUS_MAX};

static void s_rotate(resource_call_t *call)
{
    input_t in;
    char message[INPUT_MESSAGE_SIZE];
    if (input_read(call->req, call->reply, &in) != 0)
        return;
    json_t *problem = problem_new(422, "invalid-fields", "Invalid fields", NULL, call->req->path);
    char *expire = NULL;
    const char *key;
    json_t *value;
    json_object_foreach(in.object, key, value)
    {
        if (strcmp(key, EXPIRE_PREVIOUS_PARAM) != 0)
            problem_add_error(problem, key, "is not a parameter of a rotation (" EXPIRE_PREVIOUS_PARAM ")");
        else if (json_is_null(value))
            continue;
        else if (input_field_value(&s_expire_previous, value, in.from_form, &expire, message, sizeof(message)) != 0)
            problem_add_error(problem, key, message);
    }
    input_free(&in);
    if (json_array_size(json_object_get(problem, "errors")) > 0) {
        json_object_set_new(problem, "detail", json_string("No secret was made and none was changed."));
        api_reply_problem_object(call->reply, call->req, problem);
        free(expire);
        return;
    }
    json_decref(problem);

    char account[24];
    snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
    const char *params[] = {account, expire ? expire : EXPIRE_PREVIOUS_DEFAULT};
    if (resource_begin(call) != 0) {
        free(expire);
        return;
    }
    /* An older secret already due to expire sooner keeps its earlier end: a rotation never
     * lengthens the life of a secret being replaced. */
    PGresult *res = resource_exec(call,
                                  "UPDATE webhook_secrets SET expires_at = least(coalesce(expires_at, 'infinity'), "
                                  "now() + make_interval(secs => $2::int)) "
                                  "WHERE account_id = $1 AND (expires_at IS NULL OR expires_at > now())",
                                  2, params);
    free(expire);
    if (res == NULL)
        goto Rollback;
    PQclear(res);
    res = resource_exec(call, "INSERT INTO webhook_secrets (account_id) VALUES ($1) RETURNING id", 1, params);
    if (res == NULL)
        goto Rollback;
    call->ids[0] = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    call->id_count = 1;
    PQclear(res);
    if (resource_commit(call) != 0)
        return;
    resource_reply_row(call, 201);
    char path[128], uri[1024];
    snprintf(path, sizeof(path), "/v1/webhook_secrets/%" PRId64, call->ids[0]);
    snprintf(uri, sizeof(uri), "%s%s", call->req->base_url, path);
    api_reply_header(call->reply, "Location", uri);
    return;
Rollback:
    resource_rollback(call);
}

const resource_def_t res_webhook_secrets = {
    .collection = "webhook_secrets",
    .singular = "webhook_secret",
    .table = "webhook_secrets",
    .name_column = "'webhook secret ' || id",
    .fields = s_fields,
    .field_count = COUNT(s_fields),
    .append_only = true,
    .create = s_rotate,
};
