/*
 * Numbers that must never be dialed: for one campaign, or for every campaign of the account
 * (campaign_id null). Numbers are stored in E.164 so "(212) 555-0123" and "+12125550123" are
 * the same entry. `bulk` adds up to BLOCKED_BULK_MAX numbers in one statement.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/store/input.h"
#include "actors/store/resource.h"
#include "common/json_writer.h"
#include "common/problem.h"

#define COUNT(a)     (sizeof(a) / sizeof((a)[0]))
#define E164_MAX_LEN 16

static const field_def_t s_fields[] = {
    {.name = "number", .type = FIELD_PHONE, .flags = F_REQUIRED | F_IMMUTABLE | F_FILTER},
    {.name = "campaign_id",
     .type = FIELD_REF,
     .flags = F_NULLABLE | F_IMMUTABLE | F_FILTER,
     .ref_path = "campaigns",
     .doc = "null (the default) blocks the number in every campaign of the account"},
    {.name = "note", .type = FIELD_TEXT, .min = 0, .max = 500, .doc = "Why it is blocked (a do-not-call request, ...)"},
};

static const constraint_def_t s_constraints[] = {
    {"blocked_numbers_number_key", "number", "is already blocked for this campaign (or account-wide)"},
    {"blocked_numbers_campaign_id_fkey", "campaign_id", "is not a campaign of this account"},
};

static const field_def_t s_number_field = {.name = "number", .type = FIELD_PHONE};
static const field_def_t s_campaign_field = {.name = "campaign_id", .type = FIELD_REF, .flags = F_NULLABLE};
static const field_def_t s_note_field = {.name = "note", .type = FIELD_TEXT, .min = 0, .max = 500};

static void s_invalid(resource_call_t *call, json_t *problem, const char *detail)
{
    json_object_set_new(problem, "detail", json_string(detail));
    api_reply_problem_object(call->reply, call->req, problem);
}

/* Appends a quoted element to a PostgreSQL array literal. E.164 text is '+' and digits only, so
 * it needs no escaping. */
static void s_array_append(char *array, size_t *len, const char *e164)
{
    *len += (size_t)sprintf(array + *len, "%s\"%s\"", *len > 1 ? "," : "", e164);
}

static void s_bulk(resource_call_t *call)
{
    input_t in;
    char message[INPUT_MESSAGE_SIZE];
    if (input_read(call->req, call->reply, &in) != 0)
        return;
    char *campaign = NULL, *note = NULL, *array = NULL;
    json_t *invalid = json_array();
    json_t *p = problem_new(422, "invalid-fields", "Invalid fields", NULL, call->req->path);
    const char *key;
    json_t *value;
    json_object_foreach(in.object, key, value)
    {
        if (strcmp(key, "numbers") != 0 && strcmp(key, "campaign_id") != 0 && strcmp(key, "note") != 0)
            problem_add_error(p, key, "is not a field of this action (numbers, campaign_id, note)");
    }
    json_t *numbers = json_object_get(in.object, "numbers");
    if (numbers && in.from_form && json_is_string(numbers)) {
        json_t *one = json_pack("[O]", numbers);
        json_object_set_new(in.object, "numbers", one);
        numbers = one;
    }
    if (!json_is_array(numbers) || json_array_size(numbers) == 0 || json_array_size(numbers) > BLOCKED_BULK_MAX)
        problem_add_error(p, "numbers", "must be an array of 1 to 10000 phone numbers");
    value = json_object_get(in.object, "campaign_id");
    if (value && input_field_value(&s_campaign_field, value, in.from_form, &campaign, message, sizeof(message)) != 0)
        problem_add_error(p, "campaign_id", message);
    value = json_object_get(in.object, "note");
    if (value && input_field_value(&s_note_field, value, in.from_form, &note, message, sizeof(message)) != 0)
        problem_add_error(p, "note", message);
    if (json_array_size(json_object_get(p, "errors")) > 0) {
        s_invalid(call, p, "The request is not valid; nothing was changed.");
        p = NULL;
        goto Exit;
    }

    /* Every number is checked; the valid ones are stored even when others are not, and each
     * invalid one is reported by its index so the client can fix exactly those. */
    size_t count = json_array_size(numbers), len = 1, valid = 0;
    array = malloc(count * (E164_MAX_LEN + 4) + 3);
    if (array == NULL)
        goto Exit;
    array[0] = '{';
    for (size_t i = 0; i < count; i++) {
        json_t *item = json_array_get(numbers, i);
        char *e164 = NULL;
        if (input_field_value(&s_number_field, item, in.from_form, &e164, message, sizeof(message)) != 0) {
            json_array_append_new(invalid,
                                  json_pack("{s:I, s:O, s:s}", "index", (json_int_t)i, "number", item, "message", message));
        } else if (strlen(e164) <= E164_MAX_LEN) {
            s_array_append(array, &len, e164);
            valid++;
        }
        free(e164);
    }
    array[len++] = '}';
    array[len] = '\0';

    int64_t created = 0;
    if (valid > 0) {
        char account[24];
        snprintf(account, sizeof(account), "%" PRId64, call->account->account_id);
        const char *params[] = {account, array, campaign, note ? note : ""};
        PGresult *res = resource_exec(call,
                                      "INSERT INTO blocked_numbers (account_id, number, campaign_id, note) "
                                      "SELECT $1, n, $3, $4 FROM unnest($2::text[]) AS n "
                                      "ON CONFLICT ON CONSTRAINT blocked_numbers_number_key DO NOTHING",
                                      4, params);
        if (res == NULL)
            goto Exit;
        created = strtoll(PQcmdTuples(res), NULL, 10);
        PQclear(res);
    }

    char uri[API_PATH_MAX + 256], collection[300];
    snprintf(uri, sizeof(uri), "%s%s", call->req->base_url, call->req->path);
    snprintf(collection, sizeof(collection), "%s/v1/blocked_numbers", call->req->base_url);
    json_writer_t w;
    json_writer_init(&w);
    json_writer_object_begin(&w);
    json_writer_kv_string(&w, "uri", uri);
    json_writer_kv_string(&w, "name", "blocked numbers added");
    json_writer_kv_int(&w, "received", (int64_t)count);
    json_writer_kv_int(&w, "created", created);
    json_writer_kv_int(&w, "already_blocked", (int64_t)valid - created);
    json_writer_key(&w, "invalid");
    char *invalid_text = json_dumps(invalid, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_writer_raw(&w, invalid_text ? invalid_text : "", invalid_text ? strlen(invalid_text) : 0);
    free(invalid_text);
    json_writer_key(&w, "actions");
    json_writer_array_begin(&w);
    json_writer_array_end(&w);
    json_writer_key(&w, "resources");
    json_writer_array_begin(&w);
    json_writer_object_begin(&w);
    json_writer_kv_string(&w, "name", "blocked_numbers");
    json_writer_kv_string(&w, "uri", collection);
    json_writer_object_end(&w);
    json_writer_array_end(&w);
    json_writer_object_end(&w);
    size_t body_len;
    char *body = json_writer_finish(&w, &body_len);
    if (body == NULL)
        api_reply_problem(call->reply, call->req, 500, "internal", "Internal error", "The response could not be rendered.");
    else
        api_reply_take(call->reply, 200, "application/json", body, body_len);
Exit:
    if (call->reply->status == 0)
        api_reply_problem(call->reply, call->req, 500, "internal", "Internal error", "out of memory");
    json_decref(p);
    json_decref(invalid);
    free(array);
    free(campaign);
    free(note);
    input_free(&in);
}

static const action_def_t s_collection_actions[] = {
    {"bulk", "Block up to 10000 numbers at once: {numbers: [...], campaign_id, note}; invalid numbers are reported by index",
     s_bulk, "POST"},
};

const resource_def_t res_blocked_numbers = {
    .collection = "blocked_numbers",
    .singular = "blocked_number",
    .table = "blocked_numbers",
    .name_column = "number",
    .fields = s_fields,
    .field_count = COUNT(s_fields),
    .constraints = s_constraints,
    .constraint_count = COUNT(s_constraints),
    .collection_actions = s_collection_actions,
    .collection_action_count = COUNT(s_collection_actions),
};
