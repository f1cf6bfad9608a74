/*
 * The admin REST API end to end: the real impactd against real PostgreSQL over HTTP. Every
 * resource's lifecycle through JSON and form bodies, tenant isolation between two accounts on
 * every route, and a table of bad input per resource that must be refused with a clear error
 * and change nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/store/routes.h"
#include "tests/server.h"

typedef struct {
    char key[256], auth[256];
} account_t;

static test_server_t *g_server;
static account_t g_dev, g_other;

/* One request as `who`; asserts the status (printing the body when it differs) and returns the
 * parsed body (NULL for an empty one). */
static json_t *s_call(const account_t *who, const char *method, const char *path, const char *content_type, const char *body,
                      long want)
{
    return test_call(g_server, who ? who->key : NULL, who ? who->auth : NULL, method, path, content_type, body, 0, want);
}

static json_t *s_json(const account_t *who, const char *method, const char *path, const char *body, long want)
{
    return s_call(who, method, path, body ? "application/json" : NULL, body, want);
}

static json_t *s_form(const account_t *who, const char *method, const char *path, const char *body, long want)
{
    return s_call(who, method, path, "application/x-www-form-urlencoded", body, want);
}

static int64_t s_id(const json_t *doc)
{
    return json_integer_value(json_object_get(doc, "id"));
}

static const char *s_str(const json_t *doc, const char *key)
{
    return json_string_value(json_object_get(doc, key));
}

/* The error list of a problem names `field`. */
static void s_assert_error_names(const json_t *problem, const char *field)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(problem, "errors"), i, e)
    {
        if (strcmp(s_str(e, "field"), field) == 0)
            return;
    }
    char *text = json_dumps(problem, 0);
    print_error("problem does not name field '%s': %s\n", field, text);
    free(text);
    fail();
}

/* The path part of an absolute uri the server rendered. */
static const char *s_path_of(const char *uri)
{
    const char *p = strstr(uri, "://");
    assert_non_null(p);
    p = strchr(p + 3, '/');
    assert_non_null(p);
    return p;
}

static int64_t s_total(const account_t *who, const char *path)
{
    json_t *list = s_json(who, "GET", path, NULL, 200);
    int64_t total = json_integer_value(json_object_get(list, "total"));
    json_decref(list);
    return total;
}

static void s_parse_credentials(const char *out, account_t *a)
{
    const char *k = strstr(out, "IMPACT_API_KEY=");
    const char *v = strstr(out, "IMPACT_API_AUTH=");
    assert_non_null(k);
    assert_non_null(v);
    sscanf(k + 15, "%255s", a->key);
    sscanf(v + 16, "%255s", a->auth);
}

static int s_setup(void **state)
{
    g_server = test_server_new(false);
    test_server_start(g_server);
    snprintf(g_dev.key, sizeof(g_dev.key), "%s", g_server->key);
    snprintf(g_dev.auth, sizeof(g_dev.auth), "%s", g_server->auth);
    char *out = test_server_cli(g_server, (const char *[]){"accounts", "create", "Other tenant", NULL});
    assert_non_null(out);
    s_parse_credentials(out, &g_other);
    free(out);
    return 0;
}

static int s_teardown(void **state)
{
    test_server_destroy(&g_server);
    return 0;
}

/* ---- every resource's lifecycle, through JSON and through forms ------------------------------- */

typedef struct {
    const char *collection; /* may hold %s for the parent path */
    const char *create_json, *create_form;
    const char *update_json, *update_form; /* NULL: the resource is never edited */
    const char *field, *updated;           /* a string field and its value after the update */
    bool archivable;
} lifecycle_t;

/* Create (JSON, then form), read, find in the list, update (JSON, then form), delete or archive
 * (then restore), and check each step's effect. */
static void s_lifecycle(const lifecycle_t *l, const char *parent)
{
    char collection[256];
    snprintf(collection, sizeof(collection), l->collection, parent);
    for (int form = 0; form < 2; form++) {
        json_t *made = form ? s_form(&g_dev, "POST", collection, l->create_form, 201)
                            : s_json(&g_dev, "POST", collection, l->create_json, 201);
        char item[300];
        snprintf(item, sizeof(item), "%s", s_path_of(s_str(made, "uri")));
        assert_non_null(s_str(made, "name"));
        assert_true(json_is_array(json_object_get(made, "actions")));
        assert_true(json_is_array(json_object_get(made, "resources")));
        json_t *read = s_json(&g_dev, "GET", item, NULL, 200);
        assert_true(json_equal(json_object_get(read, "id"), json_object_get(made, "id")));
        json_decref(read);

        char listing[400];
        snprintf(listing, sizeof(listing), "%s?per_page=100", collection);
        json_t *page = s_json(&g_dev, "GET", listing, NULL, 200);
        bool listed = false;
        size_t i;
        json_t *row;
        json_array_foreach(json_object_get(page, "items"), i, row) listed =
            listed || json_equal(json_object_get(row, "id"), json_object_get(made, "id"));
        assert_true(listed);
        json_decref(page);

        if (l->update_json) {
            json_t *updated =
                form ? s_form(&g_dev, "PATCH", item, l->update_form, 200) : s_json(&g_dev, "PATCH", item, l->update_json, 200);
            assert_string_equal(s_str(updated, l->field), l->updated);
            json_decref(updated);
            updated = s_json(&g_dev, "GET", item, NULL, 200);
            assert_string_equal(s_str(updated, l->field), l->updated);
            json_decref(updated);
        }
        if (l->archivable) {
            json_t *archived = s_json(&g_dev, "DELETE", item, NULL, 200);
            assert_false(json_is_null(json_object_get(archived, "archived_at")));
            json_decref(archived);
            char restore[320];
            snprintf(restore, sizeof(restore), "%s/restore", item);
            json_t *restored = s_json(&g_dev, "POST", restore, NULL, 200);
            assert_true(json_is_null(json_object_get(restored, "archived_at")));
            json_decref(restored);
        } else {
            json_decref(s_json(&g_dev, "DELETE", item, NULL, 204));
            json_decref(s_json(&g_dev, "GET", item, NULL, 404));
            json_decref(s_json(&g_dev, "DELETE", item, NULL, 404));
        }
        json_decref(made);
    }
}

static void test_every_resource_lifecycle(void **state)
{
    json_t *campaign = s_json(&g_dev, "POST", "/v1/campaigns", "{\"name\": \"Lifecycle\"}", 201);
    json_t *script = s_json(&g_dev, "POST", "/v1/scripts", "{\"name\": \"Lifecycle script\"}", 201);
    char script_path[64], question_path[128], body[256], form[256];
    snprintf(script_path, sizeof(script_path), "/v1/scripts/%" PRId64, s_id(script));
    snprintf(body, sizeof(body), "%s/questions", script_path);
    json_t *question = s_json(&g_dev, "POST", body, "{\"text\": \"Q\"}", 201);
    snprintf(question_path, sizeof(question_path), "%s/questions/%" PRId64, script_path, s_id(question));

    static const lifecycle_t plain[] = {
        {"/v1/campaigns%s", "{\"name\": \"C json\"}", "name=C+form", "{\"name\": \"C2\"}", "name=C2", "name", "C2", true},
        {"/v1/scripts%s", "{\"name\": \"S json\"}", "name=S+form", "{\"name\": \"S2\"}", "name=S2", "name", "S2", true},
        {"/v1/custom_fields%s", "{\"name\": \"cf_json\"}", "name=cf_form", NULL, NULL, NULL, NULL, false},
        {"/v1/blocked_numbers%s", "{\"number\": \"+1 646 555 0190\"}", "number=%2B1+646+555+0191", "{\"note\": \"dnc\"}",
         "note=dnc", "note", "dnc", false},
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        s_lifecycle(&plain[i], "");

    static const lifecycle_t nested[] = {
        {"%s/script_texts", "{\"content\": \"Hello\"}", "content=Hello", "{\"content\": \"Bye\"}", "content=Bye", "content", "Bye",
         false},
        {"%s/questions", "{\"text\": \"Q1\"}", "text=Q1", "{\"text\": \"Q2\"}", "text=Q2", "text", "Q2", false},
        {"%s/notes", "{\"label\": \"N1\"}", "label=N1", "{\"label\": \"N2\"}", "label=N2", "label", "N2", false},
        {"%s/transfers", "{\"label\": \"T1\", \"phone_number\": \"+1 312 555 0100\"}", "label=T1&phone_number=3125550100",
         "{\"transfer_type\": \"cold\"}", "transfer_type=cold", "transfer_type", "cold", false},
    };
    for (size_t i = 0; i < sizeof(nested) / sizeof(nested[0]); i++)
        s_lifecycle(&nested[i], script_path);
    static const lifecycle_t responses = {"%s/possible_responses",
                                          "{\"value\": \"Yes\"}",
                                          "value=No",
                                          "{\"value\": \"Maybe\"}",
                                          "value=Maybe",
                                          "value",
                                          "Maybe",
                                          false};
    s_lifecycle(&responses, question_path);

    snprintf(body, sizeof(body), "{\"name\": \"G json\", \"campaign_id\": %" PRId64 "}", s_id(campaign));
    snprintf(form, sizeof(form), "name=G+form&campaign_id=%" PRId64, s_id(campaign));
    lifecycle_t groups = {"/v1/caller_groups%s", body, form, "{\"name\": \"G2\"}", "name=G2", "name", "G2", false};
    s_lifecycle(&groups, "");
    lifecycle_t callers = {"/v1/callers%s",
                           "{\"username\": \"life_json\", \"password\": \"a long password\"}",
                           "username=life_form&password=a+long+password",
                           "{\"name\": \"Lin\"}",
                           "name=Lin",
                           "name",
                           "Lin",
                           true};
    s_lifecycle(&callers, "");
    snprintf(body, sizeof(body), "{\"name\": \"L json\", \"campaign_id\": %" PRId64 ", \"column_map\": {\"P\": \"phone\"}}",
             s_id(campaign));
    snprintf(form, sizeof(form), "name=L+form&campaign_id=%" PRId64 "&column_map=%%7B%%22P%%22%%3A%%22phone%%22%%7D",
             s_id(campaign));
    lifecycle_t lists = {"/v1/lists%s", body, form, "{\"name\": \"L2\"}", "name=L2", "name", "L2", false};
    s_lifecycle(&lists, "");
    json_decref(question);
    json_decref(script);
    json_decref(campaign);
}

/* ---- campaigns ---------------------------------------------------------------------------- */

static void test_campaign_lifecycle(void **state)
{
    json_t *c = s_json(&g_dev, "POST", "/v1/campaigns", "{\"name\": \"Spring canvass\", \"dialer_type\": \"predictive\"}", 201);
    int64_t id = s_id(c);
    assert_true(id > 0);
    assert_string_equal(s_str(c, "name"), "Spring canvass");
    assert_string_equal(s_str(c, "dialer_type"), "Predictive"); /* canonical spelling */
    assert_string_equal(s_str(c, "status"), "stopped");
    assert_string_equal(s_str(c, "calling_hours_start"), "09:00");
    assert_true(json_real_value(json_object_get(c, "acceptable_abandon_rate")) == 0.03 ||
                json_number_value(json_object_get(c, "acceptable_abandon_rate")) == 0.03);
    assert_int_equal(json_integer_value(json_object_get(c, "abandon_rate_window_days")), 30);
    assert_true(json_is_null(json_object_get(c, "archived_at")));
    assert_non_null(strstr(s_str(c, "uri"), "/v1/campaigns/"));
    assert_true(json_array_size(json_object_get(c, "actions")) >= 4);
    json_decref(c);

    char path[128], sub[160];
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64, id);
    c = s_json(&g_dev, "GET", path, NULL, 200);
    assert_string_equal(s_str(c, "name"), "Spring canvass");
    json_decref(c);

    /* Predictive needs a caller ID and an identification message before it may dial. */
    snprintf(sub, sizeof(sub), "%s/start", path);
    json_t *p = s_json(&g_dev, "POST", sub, NULL, 409);
    s_assert_error_names(p, "from");
    s_assert_error_names(p, "abandonment_message_id");
    json_decref(p);

    /* Switch to Power (no identification message needed) and give it a caller ID. */
    c = s_json(&g_dev, "PATCH", path,
               "{\"dialer_type\": \"Power\", \"from\": \"(212) 555-0142\", \"time_zone\": \"America/Chicago\"}", 200);
    assert_string_equal(s_str(c, "from"), "+12125550142");
    assert_string_equal(s_str(c, "time_zone"), "America/Chicago");
    json_decref(c);
    c = s_json(&g_dev, "POST", sub, NULL, 200);
    assert_string_equal(s_str(c, "status"), "running");
    json_decref(c);

    /* While running: the dialing mode is fixed and it cannot be archived. */
    p = s_json(&g_dev, "PATCH", path, "{\"dialer_type\": \"Preview\"}", 422);
    s_assert_error_names(p, "dialer_type");
    json_decref(p);
    p = s_json(&g_dev, "DELETE", path, NULL, 422);
    s_assert_error_names(p, "status");
    json_decref(p);

    snprintf(sub, sizeof(sub), "%s/pause", path);
    c = s_json(&g_dev, "POST", sub, NULL, 200);
    assert_string_equal(s_str(c, "status"), "paused");
    json_decref(c);
    snprintf(sub, sizeof(sub), "%s/stop", path);
    c = s_json(&g_dev, "POST", sub, NULL, 200);
    assert_string_equal(s_str(c, "status"), "stopped");
    json_decref(c);
    c = s_json(&g_dev, "POST", sub, NULL, 200); /* stopping a stopped campaign is not an error */
    json_decref(c);

    /* Archive hides it from the default list; restore brings it back. */
    int64_t before = s_total(&g_dev, "/v1/campaigns");
    c = s_json(&g_dev, "DELETE", path, NULL, 200);
    assert_false(json_is_null(json_object_get(c, "archived_at")));
    json_decref(c);
    assert_int_equal(s_total(&g_dev, "/v1/campaigns"), before - 1);
    assert_true(s_total(&g_dev, "/v1/campaigns?archived=true") >= 1);
    snprintf(sub, sizeof(sub), "%s/start", path);
    p = s_json(&g_dev, "POST", sub, NULL, 409);
    s_assert_error_names(p, "archived_at");
    json_decref(p);
    snprintf(sub, sizeof(sub), "%s/restore", path);
    c = s_json(&g_dev, "POST", sub, NULL, 200);
    assert_true(json_is_null(json_object_get(c, "archived_at")));
    json_decref(c);
    assert_int_equal(s_total(&g_dev, "/v1/campaigns"), before);
}

static void test_campaign_through_a_form(void **state)
{
    json_t *c = s_form(&g_dev, "POST", "/v1/campaigns",
                       "name=Form+made&dialer_type=Preview&from=%2B1+415+555+0100&calling_hours_start=10%3A30"
                       "&answering_machine_detection=true&max_lines_per_caller=2&acceptable_abandon_rate=0.02",
                       201);
    assert_string_equal(s_str(c, "name"), "Form made");
    assert_string_equal(s_str(c, "from"), "+14155550100");
    assert_string_equal(s_str(c, "calling_hours_start"), "10:30");
    assert_true(json_is_true(json_object_get(c, "answering_machine_detection")));
    assert_int_equal(json_integer_value(json_object_get(c, "max_lines_per_caller")), 2);
    char path[128];
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64, s_id(c));
    json_decref(c);
    c = s_form(&g_dev, "PATCH", path, "from=&max_lines_per_caller=3", 200);
    assert_true(json_is_null(json_object_get(c, "from")));
    assert_int_equal(json_integer_value(json_object_get(c, "max_lines_per_caller")), 3);
    json_decref(c);
}

/* ---- messages ----------------------------------------------------------------------------- */

static json_t *s_upload(const account_t *who, const char *path, const char *type, const void *body, size_t len, long want,
                        test_reply_t *raw)
{
    test_request_t req = {.proto = PROTO_H2C,
                          .method = "POST",
                          .path = path,
                          .content_type = type,
                          .body = body,
                          .body_len = len,
                          .key = who->key,
                          .auth = who->auth};
    test_reply_t r;
    assert_int_equal(test_http(g_server, &req, &r), CURLE_OK);
    if (r.status != want) {
        print_error("POST %s -> %ld (wanted %ld): %s\n", path, r.status, want, r.body ? r.body : "");
        fail();
    }
    json_t *doc = test_reply_json(&r);
    if (raw)
        *raw = r;
    else
        test_reply_free(&r);
    return doc;
}

static void test_messages_upload_and_play_back(void **state)
{
    size_t len;
    unsigned char *wav = test_wav(1500, &len);
    test_reply_t raw;
    json_t *m = s_upload(&g_dev, "/v1/messages?name=Voicemail%20drop", "audio/x-wav", wav, len, 201, &raw);
    assert_non_null(strstr(raw.location, "/v1/messages/"));
    test_reply_free(&raw);
    assert_string_equal(s_str(m, "name"), "Voicemail drop");
    assert_string_equal(s_str(m, "content_type"), "audio/wav");
    assert_int_equal(json_integer_value(json_object_get(m, "duration_ms")), 1500);
    assert_int_equal(json_integer_value(json_object_get(m, "size_bytes")), (json_int_t)len);

    char path[128];
    snprintf(path, sizeof(path), "/v1/messages/%" PRId64 "/audio", s_id(m));
    test_request_t req = {.proto = PROTO_H2C, .method = "GET", .path = path, .key = g_dev.key, .auth = g_dev.auth};
    test_reply_t r;
    assert_int_equal(test_http(g_server, &req, &r), CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "audio/wav");
    assert_int_equal(r.body_len, len);
    assert_memory_equal(r.body, wav, len);
    test_reply_free(&r);
    req.key = g_other.key;
    req.auth = g_other.auth;
    assert_int_equal(test_http(g_server, &req, &r), CURLE_OK);
    assert_int_equal(r.status, 404);
    test_reply_free(&r);

    /* A campaign may now leave it on answering machines. */
    char body[256];
    snprintf(body, sizeof(body),
             "{\"name\": \"With drops\", \"answering_machine_detection\": true, \"voicemail_message_id\": %" PRId64
             ", \"drop_voicemail_automatically\": true}",
             s_id(m));
    json_decref(s_json(&g_dev, "POST", "/v1/campaigns", body, 201));
    json_decref(s_json(&g_other, "POST", "/v1/campaigns", body, 422));

    /* Not audio, the wrong kind of audio, no name, an unplayable format. */
    json_t *p = s_upload(&g_dev, "/v1/messages?name=x", "text/plain", wav, len, 415, NULL);
    json_decref(p);
    p = s_upload(&g_dev, "/v1/messages", "audio/wav", wav, len, 422, NULL);
    s_assert_error_names(p, "name");
    json_decref(p);
    p = s_upload(&g_dev, "/v1/messages?name=x", "audio/mpeg", wav, len, 422, NULL);
    s_assert_error_names(p, "body");
    json_decref(p);
    wav[20] = 3; /* IEEE float samples */
    p = s_upload(&g_dev, "/v1/messages?name=x", "audio/wav", wav, len, 422, NULL);
    s_assert_error_names(p, "body");
    json_decref(p);
    wav[20] = 1;
    p = s_upload(&g_dev, "/v1/messages?name=x", "audio/wav", wav, 100, 422, NULL); /* truncated */
    s_assert_error_names(p, "body");
    json_decref(p);
    free(wav);
    json_decref(m);
}

/* ---- scripts and their parts --------------------------------------------------------------- */

static void test_script_with_every_part(void **state)
{
    json_t *f = s_json(&g_dev, "POST", "/v1/custom_fields", "{\"name\": \"precinct\"}", 201);
    json_decref(f);
    json_t *s = s_form(&g_dev, "POST", "/v1/scripts",
                       "name=Survey&selected_fields=phone&selected_fields=first_name"
                       "&selected_fields=precinct",
                       201);
    assert_int_equal(json_array_size(json_object_get(s, "selected_fields")), 3);
    char base[128], path[256], sub[320];
    snprintf(base, sizeof(base), "/v1/scripts/%" PRId64, s_id(s));
    json_decref(s);

    /* A field name that exists nowhere is refused by name. */
    json_t *p = s_json(&g_dev, "PATCH", base, "{\"selected_fields\": [\"phone\", \"shoe_size\"]}", 422);
    s_assert_error_names(p, "selected_fields");
    json_decref(p);
    /* A custom field a script shows cannot be deleted. */
    json_t *fields = s_json(&g_dev, "GET", "/v1/custom_fields?q=precinct", NULL, 200);
    const char *field_uri = s_str(json_array_get(json_object_get(fields, "items"), 0), "uri");
    p = s_json(&g_dev, "DELETE", s_path_of(field_uri), NULL, 409);
    json_decref(p);
    json_decref(fields);

    snprintf(path, sizeof(path), "%s/script_texts", base);
    json_t *t = s_json(&g_dev, "POST", path, "{\"content\": \"# Hello\\n\\nThis is **Impact**.\", \"position\": 1}", 201);
    assert_string_equal(s_str(t, "content"), "# Hello\n\nThis is **Impact**.");
    json_decref(t);

    snprintf(path, sizeof(path), "%s/questions", base);
    json_t *q = s_json(&g_dev, "POST", path, "{\"text\": \"Can we count on your vote?\"}", 201);
    snprintf(sub, sizeof(sub), "%s/%" PRId64 "/possible_responses", path, s_id(q));
    json_decref(q);
    json_t *r = s_json(&g_dev, "POST", sub, "{\"value\": \"Yes\", \"keypad\": 1}", 201);
    json_decref(r);
    r = s_form(&g_dev, "POST", sub, "value=Call+back+later&keypad=2&retry=true", 201);
    assert_true(json_is_true(json_object_get(r, "retry")));
    json_decref(r);
    p = s_json(&g_dev, "POST", sub, "{\"value\": \"No\", \"keypad\": 1}", 409);
    s_assert_error_names(p, "keypad");
    json_decref(p);
    assert_int_equal(s_total(&g_dev, sub), 2);

    snprintf(path, sizeof(path), "%s/notes", base);
    json_decref(s_json(&g_dev, "POST", path, "{\"label\": \"Comments\"}", 201));
    snprintf(path, sizeof(path), "%s/transfers", base);
    t = s_json(&g_dev, "POST", path,
               "{\"label\": \"Field office\", \"phone_number\": \"+1 312 555 0199\", \"transfer_type\": \"cold\"}", 201);
    assert_string_equal(s_str(t, "phone_number"), "+13125550199");
    json_decref(t);

    /* Deleting the script takes its parts with it. */
    s = s_json(&g_dev, "GET", base, NULL, 200);
    assert_true(json_array_size(json_object_get(s, "resources")) >= 4);
    json_decref(s);
}

static void test_nested_paths_must_agree(void **state)
{
    json_t *a = s_json(&g_dev, "POST", "/v1/scripts", "{\"name\": \"A\"}", 201);
    json_t *b = s_json(&g_dev, "POST", "/v1/scripts", "{\"name\": \"B\"}", 201);
    char path[256];
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/questions", s_id(a));
    json_t *q = s_json(&g_dev, "POST", path, "{\"text\": \"Q\"}", 201);
    /* The question belongs to script A; addressing it under B finds nothing. */
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/questions/%" PRId64, s_id(b), s_id(q));
    json_decref(s_json(&g_dev, "GET", path, NULL, 404));
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/questions/%" PRId64 "/possible_responses", s_id(b), s_id(q));
    json_decref(s_json(&g_dev, "POST", path, "{\"value\": \"x\"}", 404));
    json_decref(a);
    json_decref(b);
    json_decref(q);
}

/* ---- callers and groups --------------------------------------------------------------------- */

static void test_callers_follow_their_group(void **state)
{
    json_t *c1 = s_json(&g_dev, "POST", "/v1/campaigns", "{\"name\": \"One\"}", 201);
    json_t *c2 = s_json(&g_dev, "POST", "/v1/campaigns", "{\"name\": \"Two\"}", 201);
    char body[256], path[128];
    snprintf(body, sizeof(body), "{\"name\": \"Evening shift\", \"campaign_id\": %" PRId64 "}", s_id(c1));
    json_t *g = s_json(&g_dev, "POST", "/v1/caller_groups", body, 201);
    snprintf(body, sizeof(body), "username=ada&password=correct+horse+battery&caller_group_id=%" PRId64, s_id(g));
    json_t *caller = s_form(&g_dev, "POST", "/v1/callers", body, 201);
    assert_int_equal(json_integer_value(json_object_get(caller, "campaign_id")), s_id(c1));
    assert_null(json_object_get(caller, "password"));
    assert_null(json_object_get(caller, "password_hash"));
    const char *pin = s_str(caller, "pin");
    assert_int_equal(strlen(pin), 6);

    /* Moving the group moves its callers. */
    snprintf(path, sizeof(path), "/v1/caller_groups/%" PRId64, s_id(g));
    snprintf(body, sizeof(body), "{\"campaign_id\": %" PRId64 "}", s_id(c2));
    json_decref(s_json(&g_dev, "PATCH", path, body, 200));
    snprintf(path, sizeof(path), "/v1/callers/%" PRId64, s_id(caller));
    json_t *again = s_json(&g_dev, "GET", path, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(again, "campaign_id")), s_id(c2));
    json_decref(again);

    json_t *p = s_json(&g_dev, "POST", "/v1/callers", "{\"username\": \"ada\", \"password\": \"another password\"}", 409);
    s_assert_error_names(p, "username");
    json_decref(p);
    p = s_json(&g_dev, "POST", "/v1/callers", "{\"username\": \"bob\", \"password\": \"short\"}", 422);
    s_assert_error_names(p, "password");
    json_decref(p);

    /* Archived callers leave the default list and can be restored. */
    json_decref(s_json(&g_dev, "DELETE", path, NULL, 200));
    snprintf(path, sizeof(path), "/v1/callers?caller_group_id=%" PRId64, s_id(g));
    assert_int_equal(s_total(&g_dev, path), 0);
    json_decref(c1);
    json_decref(c2);
    json_decref(g);
    json_decref(caller);
}

/* ---- blocked numbers ----------------------------------------------------------------------- */

static void test_blocked_numbers_single_and_bulk(void **state)
{
    json_t *b = s_json(&g_dev, "POST", "/v1/blocked_numbers", "{\"number\": \"(646) 555-0111\", \"note\": \"asked\"}", 201);
    assert_string_equal(s_str(b, "number"), "+16465550111");
    assert_true(json_is_null(json_object_get(b, "campaign_id")));
    json_decref(b);
    /* The same number in another notation is the same entry. */
    json_t *p = s_json(&g_dev, "POST", "/v1/blocked_numbers", "{\"number\": \"+1 646 555 0111\"}", 409);
    s_assert_error_names(p, "number");
    json_decref(p);

    json_t *r = s_json(&g_dev, "POST", "/v1/blocked_numbers/bulk",
                       "{\"numbers\": [\"646-555-0111\", \"+1 718 555 0100\", \"not a number\", \"+1 555 555 0123\", "
                       "\"718.555.0100\"], \"note\": \"import\"}",
                       200);
    assert_int_equal(json_integer_value(json_object_get(r, "received")), 5);
    assert_int_equal(json_integer_value(json_object_get(r, "created")), 1);
    assert_int_equal(json_integer_value(json_object_get(r, "already_blocked")), 2);
    json_t *invalid = json_object_get(r, "invalid");
    assert_int_equal(json_array_size(invalid), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(invalid, 0), "index")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(invalid, 1), "index")), 3);
    json_decref(r);
    assert_int_equal(s_total(&g_dev, "/v1/blocked_numbers?number=%2B17185550100"), 1);
}

/* ---- pagination ---------------------------------------------------------------------------- */

static void test_pages_are_stable_and_linked(void **state)
{
    for (int i = 0; i < 12; i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"name\": \"Paged %02d\"}", i);
        json_decref(s_json(&g_other, "POST", "/v1/scripts", body, 201));
    }
    json_t *page = s_json(&g_other, "GET", "/v1/scripts?q=paged&per_page=5", NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(page, "total")), 12);
    assert_int_equal(json_integer_value(json_object_get(page, "page_count")), 3);
    assert_true(json_is_null(json_object_get(page, "prev_page")));
    int seen = 0;
    int64_t last_id = 0;
    while (page) {
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(page, "items"), i, item)
        {
            assert_true(s_id(item) > last_id); /* stable order, no repeats */
            last_id = s_id(item);
            seen++;
        }
        const char *next = s_str(page, "next_page");
        json_t *following = NULL;
        if (next) {
            assert_non_null(strstr(next, "q=paged"));
            following = s_json(&g_other, "GET", s_path_of(next), NULL, 200);
        } else {
            assert_string_equal(s_str(page, "uri"), s_str(page, "last_page"));
        }
        json_decref(page);
        page = following;
    }
    assert_int_equal(seen, 12);

    test_request_t req = {
        .method = "GET", .path = "/v1/scripts?q=paged&per_page=5&page=2", .key = g_other.key, .auth = g_other.auth};
    test_reply_t r;
    assert_int_equal(test_http(g_server, &req, &r), CURLE_OK);
    assert_non_null(strstr(r.link, "rel=\"first\""));
    assert_non_null(strstr(r.link, "rel=\"prev\""));
    assert_non_null(strstr(r.link, "rel=\"next\""));
    assert_non_null(strstr(r.link, "rel=\"last\""));
    test_reply_free(&r);

    json_t *p = s_json(&g_other, "GET", "/v1/scripts?per_page=1000&page=0", NULL, 422);
    s_assert_error_names(p, "per_page");
    s_assert_error_names(p, "page");
    json_decref(p);
}

/* ---- tenant isolation ---------------------------------------------------------------------- */

/* Every item the dev account owns answers 404 to the other account, for every method, and the
 * other account's lists never show it. */
static void test_no_cross_account_access(void **state)
{
    json_t *campaign = s_json(&g_dev, "POST", "/v1/campaigns", "{\"name\": \"Private\"}", 201);
    json_t *script = s_json(&g_dev, "POST", "/v1/scripts", "{\"name\": \"Private script\"}", 201);
    char body[256], path[256];
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/questions", s_id(script));
    json_t *question = s_json(&g_dev, "POST", path, "{\"text\": \"Private?\"}", 201);
    snprintf(body, sizeof(body), "{\"name\": \"G\", \"campaign_id\": %" PRId64 "}", s_id(campaign));
    json_t *group = s_json(&g_dev, "POST", "/v1/caller_groups", body, 201);
    json_t *caller = s_json(&g_dev, "POST", "/v1/callers", "{\"username\": \"private\", \"password\": \"private password\"}", 201);
    json_t *blocked = s_json(&g_dev, "POST", "/v1/blocked_numbers", "{\"number\": \"+1 202 555 0188\"}", 201);
    json_t *field = s_json(&g_dev, "POST", "/v1/custom_fields", "{\"name\": \"ward\"}", 201);
    snprintf(body, sizeof(body), "{\"name\": \"Private list\", \"campaign_id\": %" PRId64 ", \"column_map\": {\"P\": \"phone\"}}",
             s_id(campaign));
    json_t *list = s_json(&g_dev, "POST", "/v1/lists", body, 201);
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/script_texts", s_id(script));
    json_t *text = s_json(&g_dev, "POST", path, "{\"content\": \"Private text\"}", 201);
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/questions/%" PRId64 "/possible_responses", s_id(script), s_id(question));
    json_t *response = s_json(&g_dev, "POST", path, "{\"value\": \"Private answer\"}", 201);
    json_t *owned[] = {campaign, script, question, group, caller, blocked, field, list, text, response};

    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
        const char *item = s_path_of(s_str(owned[i], "uri"));
        json_decref(s_json(&g_other, "GET", item, NULL, 404));
        if (owned[i] != field) /* custom fields are never edited: PATCH is 405 for every id */
            json_decref(s_json(&g_other, "PATCH", item, "{}", 404));
        json_decref(s_json(&g_other, "DELETE", item, NULL, 404));
        json_t *still = s_json(&g_dev, "GET", item, NULL, 200);
        json_decref(still);
    }
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64 "/start", s_id(campaign));
    json_decref(s_json(&g_other, "POST", path, NULL, 404));
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/upload", s_id(list));
    json_decref(s_call(&g_other, "POST", path, "text/csv", "P\n2125550100\n", 404));
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/import", s_id(list));
    json_decref(s_json(&g_other, "POST", path, NULL, 404));
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/import_errors", s_id(list));
    json_decref(s_json(&g_other, "GET", path, NULL, 404));
    snprintf(body, sizeof(body), "{\"name\": \"Steal\", \"campaign_id\": %" PRId64 ", \"column_map\": {\"P\": \"phone\"}}",
             s_id(campaign));
    json_t *p = s_json(&g_other, "POST", "/v1/lists", body, 422);
    s_assert_error_names(p, "campaign_id");
    json_decref(p);
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/notes", s_id(script));
    json_decref(s_json(&g_other, "POST", path, "{\"label\": \"x\"}", 404));
    json_decref(s_json(&g_other, "GET", path, NULL, 404));

    /* References across accounts are refused by name. */
    snprintf(body, sizeof(body), "{\"name\": \"Steal\", \"campaign_id\": %" PRId64 "}", s_id(campaign));
    p = s_json(&g_other, "POST", "/v1/caller_groups", body, 422);
    s_assert_error_names(p, "campaign_id");
    json_decref(p);
    snprintf(body, sizeof(body), "{\"name\": \"Steal\", \"script_id\": %" PRId64 "}", s_id(script));
    p = s_json(&g_other, "POST", "/v1/campaigns", body, 422);
    s_assert_error_names(p, "script_id");
    json_decref(p);

    /* The other account's lists never show the dev account's rows. */
    const char *collections[] = {"/v1/campaigns?q=Private",
                                 "/v1/scripts?q=Private",
                                 "/v1/callers?q=private",
                                 "/v1/blocked_numbers?number=%2B12025550188",
                                 "/v1/custom_fields?q=ward",
                                 "/v1/lists?q=Private",
                                 "/v1/numbers",
                                 "/v1/leads",
                                 "/v1/messages"};
    for (size_t i = 0; i < sizeof(collections) / sizeof(collections[0]); i++)
        assert_int_equal(s_total(&g_other, collections[i]), 0);
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        json_decref(owned[i]);
}

/* ---- bad input ----------------------------------------------------------------------------- */

typedef struct {
    const char *path;
    const char *content_type;
    const char *body;
    long status;
    const char *field; /* named in errors, or NULL */
} bad_case_t;

static void test_bad_input_changes_nothing(void **state)
{
    static const bad_case_t cases[] = {
        /* campaigns */
        {"/v1/campaigns", "application/json", "{}", 422, "name"},
        {"/v1/campaigns", "application/json", "{\"name\": 42}", 422, "name"},
        {"/v1/campaigns", "application/json", "{\"name\": \"\"}", 422, "name"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"colour\": \"red\"}", 422, "colour"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"status\": \"running\"}", 422, "status"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"dialer_type\": \"Robocall\"}", 422, "dialer_type"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"from\": \"+1 555 555 0123\"}", 422, "from"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"from\": \"call me\"}", 422, "from"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"acceptable_abandon_rate\": 0.05}", 422,
         "acceptable_abandon_rate"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"calling_hours_start\": \"07:00\"}", 422, "calling_hours_start"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"calling_hours_end\": \"25:00\"}", 422, "calling_hours_end"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"time_zone\": \"Mars/Olympus\"}", 422, "time_zone"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"time_zone\": \"../../etc/passwd\"}", 422, "time_zone"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"max_lines_per_caller\": 1.5}", 422, "max_lines_per_caller"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"max_lines_per_caller\": \"3\"}", 422, "max_lines_per_caller"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"drop_voicemail_automatically\": true}", 422,
         "drop_voicemail_automatically"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"script_id\": 999999999}", 422, "script_id"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"script_id\": -1}", 422, "script_id"},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"answering_machine_detection\": \"yes\"}", 422,
         "answering_machine_detection"},
        {"/v1/campaigns", "application/x-www-form-urlencoded", "name=x&max_attempts=lots", 422, "max_attempts"},
        {"/v1/campaigns", "application/x-www-form-urlencoded", "name=x&name=y", 422, "name"},
        {"/v1/campaigns", "application/x-www-form-urlencoded", "name=%ZZ", 400, NULL},
        {"/v1/campaigns", "application/x-www-form-urlencoded", "name=%C3%28", 400, NULL},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\"", 400, NULL},
        {"/v1/campaigns", "application/json", "[\"name\"]", 400, NULL},
        {"/v1/campaigns", "application/json", "{\"name\": \"x\", \"name\": \"y\"}", 400, NULL},
        {"/v1/campaigns", "text/plain", "name=x", 415, NULL},
        /* scripts and parts */
        {"/v1/scripts", "application/json", "{\"name\": \"x\", \"selected_fields\": \"phone\"}", 422, "selected_fields"},
        {"/v1/scripts", "application/json", "{\"name\": \"x\", \"selected_fields\": [\"phone\", \"phone\"]}", 422,
         "selected_fields"},
        {"/v1/scripts", "application/json", "{\"name\": \"x\", \"selected_fields\": [\"no such\"]}", 422, "selected_fields"},
        {"/v1/custom_fields", "application/json", "{\"name\": \"first_name\"}", 422, "name"},
        {"/v1/custom_fields", "application/json", "{\"name\": \"has space\"}", 422, "name"},
        /* callers and groups */
        {"/v1/callers", "application/json", "{\"username\": \"u\"}", 422, "password"},
        {"/v1/callers", "application/json", "{\"username\": \"u\", \"password\": \"long enough\", \"pin\": \"12a4\"}", 422, "pin"},
        {"/v1/callers", "application/json", "{\"username\": \"u\", \"password\": \"long enough\", \"caller_group_id\": 99999999}",
         422, "caller_group_id"},
        {"/v1/caller_groups", "application/json", "{\"name\": \"g\"}", 422, "campaign_id"},
        /* lists */
        {"/v1/lists", "application/json", "{\"name\": \"l\", \"campaign_id\": 1}", 422, "column_map"},
        {"/v1/lists", "application/json", "{\"name\": \"l\", \"campaign_id\": 1, \"column_map\": [\"phone\"]}", 422, "column_map"},
        {"/v1/lists", "application/json", "{\"name\": \"l\", \"campaign_id\": 1, \"column_map\": {\"P\": 5}}", 422, "column_map"},
        {"/v1/lists", "application/json",
         "{\"name\": \"l\", \"campaign_id\": 1, \"column_map\": {\"P\": \"phone\"}, \"separator\": \"#\"}", 422, "separator"},
        {"/v1/lists", "application/json",
         "{\"name\": \"l\", \"campaign_id\": 1, \"column_map\": {\"P\": \"phone\"}, \"webhook_url\": \"ftp://example.org/x\"}", 422,
         "webhook_url"},
        {"/v1/lists", "application/json",
         "{\"name\": \"l\", \"campaign_id\": 1, \"column_map\": {\"P\": \"phone\"}, \"purpose\": \"merge\"}", 422, "purpose"},
        {"/v1/lists", "application/json",
         "{\"name\": \"l\", \"campaign_id\": 1, \"column_map\": {\"P\": \"phone\"}, \"status\": \"completed\"}", 422, "status"},
        /* blocked numbers */
        {"/v1/blocked_numbers", "application/json", "{\"number\": \"12\"}", 422, "number"},
        {"/v1/blocked_numbers", "application/json", "{\"number\": 12125550100}", 422, "number"},
        {"/v1/blocked_numbers/bulk", "application/json", "{\"numbers\": []}", 422, "numbers"},
        {"/v1/blocked_numbers/bulk", "application/json", "{\"numbers\": [\"+12125550100\"], \"campaign_id\": \"x\"}", 422,
         "campaign_id"},
    };
    static const char *const counted[] = {
        "/v1/campaigns?archived=all", "/v1/scripts?archived=all", "/v1/custom_fields", "/v1/callers?archived=all",
        "/v1/caller_groups",          "/v1/blocked_numbers",      "/v1/lists",         "/v1/messages?archived=all"};
    enum { COUNTED = sizeof(counted) / sizeof(counted[0]) };
    int64_t before[COUNTED];
    for (size_t i = 0; i < COUNTED; i++)
        before[i] = s_total(&g_dev, counted[i]);
    char overlong[400];
    snprintf(overlong, sizeof(overlong), "{\"name\": \"%0250d\"}", 0);
    json_decref(s_json(&g_dev, "POST", "/v1/campaigns", overlong, 422));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *p = s_call(&g_dev, "POST", cases[i].path, cases[i].content_type, cases[i].body, cases[i].status);
        assert_non_null(p);
        assert_non_null(s_str(p, "title"));
        if (cases[i].field)
            s_assert_error_names(p, cases[i].field);
        json_decref(p);
    }
    for (size_t i = 0; i < COUNTED; i++)
        assert_int_equal(s_total(&g_dev, counted[i]), before[i]);

    /* The parts of a script refuse bad values the same way. */
    json_t *script = s_json(&g_dev, "POST", "/v1/scripts", "{\"name\": \"Bad parts\"}", 201);
    json_t *question = NULL;
    char path[200];
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/questions", s_id(script));
    question = s_json(&g_dev, "POST", path, "{\"text\": \"Q\"}", 201);
    const struct {
        const char *suffix, *body, *field;
    } parts[] = {
        {"script_texts", "{\"content\": \"\"}", "content"},
        {"script_texts", "{\"content\": \"x\", \"position\": -1}", "position"},
        {"questions", "{}", "text"},
        {"notes", "{\"label\": 7}", "label"},
        {"transfers", "{\"label\": \"t\", \"phone_number\": \"12\"}", "phone_number"},
        {"transfers", "{\"label\": \"t\", \"phone_number\": \"+13125550100\", \"transfer_type\": \"hot\"}", "transfer_type"},
    };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/%s", s_id(script), parts[i].suffix);
        json_t *p = s_json(&g_dev, "POST", path, parts[i].body, 422);
        s_assert_error_names(p, parts[i].field);
        json_decref(p);
    }
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/questions/%" PRId64 "/possible_responses", s_id(script), s_id(question));
    json_t *p = s_json(&g_dev, "POST", path, "{\"value\": \"v\", \"keypad\": 10}", 422);
    s_assert_error_names(p, "keypad");
    json_decref(p);
    json_decref(question);
    json_decref(script);

    /* Unknown paths and methods, and malformed ids. */
    json_decref(s_json(&g_dev, "GET", "/v1/campaigns/abc", NULL, 404));
    json_decref(s_json(&g_dev, "GET", "/v1/campaigns/0", NULL, 404));
    json_decref(s_json(&g_dev, "GET", "/v1/campaigns/99999999999999999999", NULL, 404));
    json_decref(s_json(&g_dev, "GET", "/v1/nothing", NULL, 404));
    json_decref(s_json(&g_dev, "DELETE", "/v1/campaigns", NULL, 405));
    json_decref(s_json(NULL, "GET", "/v1/campaigns", NULL, 401));
}

/* ---- lists (creation, upload, queueing) ------------------------------------------------------ */

static json_t *s_csv_part(const account_t *who, const char *path, const char *csv, long want)
{
    return s_call(who, "POST", path, "text/csv", csv, want);
}

static void test_list_upload_in_parts(void **state)
{
    json_t *c = s_json(&g_dev, "POST", "/v1/campaigns", "{\"name\": \"Listed\"}", 201);
    char body[512], path[160];
    /* The column map must name existing fields and a phone column. */
    snprintf(body, sizeof(body),
             "{\"name\": \"No phone\", \"campaign_id\": %" PRId64 ", \"column_map\": {\"First\": \"first_name\"}}", s_id(c));
    json_t *p = s_json(&g_dev, "POST", "/v1/lists", body, 422);
    s_assert_error_names(p, "column_map");
    json_decref(p);
    snprintf(body, sizeof(body),
             "{\"name\": \"Bad field\", \"campaign_id\": %" PRId64
             ", \"column_map\": {\"Phone\": \"phone\", \"X\": \"shoe_size\"}}",
             s_id(c));
    p = s_json(&g_dev, "POST", "/v1/lists", body, 422);
    s_assert_error_names(p, "column_map");
    json_decref(p);

    snprintf(body, sizeof(body),
             "{\"name\": \"Spring list\", \"external_id\": \"crm-42\", \"campaign_id\": %" PRId64
             ", \"column_map\": {\"Phone\": \"phone\", \"First\": \"first_name\"}, \"webhook_url\": \"https://example.org/hook\"}",
             s_id(c));
    json_t *list = s_json(&g_dev, "POST", "/v1/lists", body, 201);
    assert_string_equal(s_str(list, "status"), "awaiting_upload");
    assert_string_equal(s_str(list, "separator"), ",");
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/import", s_id(list));
    p = s_json(&g_dev, "POST", path, NULL, 409); /* nothing uploaded yet */
    s_assert_error_names(p, "upload_parts");
    json_decref(p);

    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/upload?part=2", s_id(list));
    json_t *l = s_csv_part(&g_dev, path, "212-555-0101,Ada\n", 200);
    assert_int_equal(json_integer_value(json_object_get(l, "upload_parts")), 1);
    json_decref(l);
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/import", s_id(list));
    p = s_json(&g_dev, "POST", path, NULL, 409); /* part 1 is missing */
    s_assert_error_names(p, "upload_parts");
    json_decref(p);
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/upload", s_id(list));
    l = s_csv_part(&g_dev, path, "Phone,First\n", 200);
    assert_int_equal(json_integer_value(json_object_get(l, "upload_parts")), 2);
    assert_int_equal(json_integer_value(json_object_get(l, "upload_bytes")), 12 + 17);
    json_decref(l);
    json_decref(s_call(&g_dev, "POST", path, "application/json", "{}", 415));
    json_decref(s_call(&g_other, "POST", path, "text/csv", "Phone\n", 404));

    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/import", s_id(list));
    l = s_json(&g_dev, "POST", path, NULL, 202);
    assert_true(strcmp(s_str(l, "status"), "queued") == 0 || strcmp(s_str(l, "status"), "importing") == 0 ||
                strcmp(s_str(l, "status"), "completed") == 0);
    json_decref(l);
    /* Once queued, the file and the map are fixed. */
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64 "/upload", s_id(list));
    json_decref(s_csv_part(&g_dev, path, "Phone\n", 409));
    snprintf(path, sizeof(path), "/v1/lists/%" PRId64, s_id(list));
    p = s_json(&g_dev, "PATCH", path, "{\"column_map\": {\"Phone\": \"phone\"}}", 422);
    s_assert_error_names(p, "column_map");
    json_decref(p);
    l = s_json(&g_dev, "PATCH", path, "{\"enabled\": false}", 200);
    assert_false(json_is_true(json_object_get(l, "enabled")));
    json_decref(l);
    json_decref(list);
    json_decref(c);
}

/* ---- Idempotency-Key ----------------------------------------------------------------------- */

typedef struct {
    const char *key, *body;
    const account_t *who;
    long status;
    int64_t id;
    bool replayed;
} keyed_post_t;

static void *s_keyed_post(void *arg)
{
    keyed_post_t *p = arg;
    char header[300];
    snprintf(header, sizeof(header), "Idempotency-Key: %s", p->key);
    test_request_t req = {.proto = PROTO_H2C,
                          .method = "POST",
                          .path = "/v1/campaigns",
                          .content_type = "application/json",
                          .body = p->body,
                          .key = p->who->key,
                          .auth = p->who->auth,
                          .header = header};
    test_reply_t r;
    p->status = test_http(g_server, &req, &r) == CURLE_OK ? r.status : 0;
    json_t *doc = test_reply_json(&r);
    p->id = doc ? s_id(doc) : 0;
    p->replayed = strcmp(r.replayed, "true") == 0;
    json_decref(doc);
    test_reply_free(&r);
    return NULL;
}

static void test_idempotency_key_replays_the_first_answer(void **state)
{
    int64_t before = s_total(&g_dev, "/v1/campaigns?archived=all");
    keyed_post_t first = {.key = "order-7f3a", .body = "{\"name\": \"Once only\"}", .who = &g_dev};
    s_keyed_post(&first);
    assert_int_equal(first.status, 201);
    assert_false(first.replayed);
    keyed_post_t again = first;
    s_keyed_post(&again);
    assert_int_equal(again.status, 201);
    assert_true(again.replayed);
    assert_int_equal(again.id, first.id);
    assert_int_equal(s_total(&g_dev, "/v1/campaigns?archived=all"), before + 1);

    /* The same key for a different request is an error, not a silent replay. */
    keyed_post_t other_body = {.key = "order-7f3a", .body = "{\"name\": \"Something else\"}", .who = &g_dev};
    s_keyed_post(&other_body);
    assert_int_equal(other_body.status, 422);
    /* Keys belong to an account. */
    keyed_post_t other_account = {.key = "order-7f3a", .body = "{\"name\": \"Once only\"}", .who = &g_other};
    s_keyed_post(&other_account);
    assert_int_equal(other_account.status, 201);
    assert_false(other_account.replayed);

    /* A refused request is an answer too: replayed, not re-evaluated. */
    keyed_post_t bad = {.key = "bad-1", .body = "{\"name\": \"\"}", .who = &g_dev};
    s_keyed_post(&bad);
    assert_int_equal(bad.status, 422);
    s_keyed_post(&bad);
    assert_int_equal(bad.status, 422);
    assert_true(bad.replayed);

    /* Racing retries: one creation, both see it. */
    keyed_post_t racers[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        racers[i] = (keyed_post_t){.key = "race-1", .body = "{\"name\": \"Raced\"}", .who = &g_dev};
        assert_int_equal(pthread_create(&threads[i], NULL, s_keyed_post, &racers[i]), 0);
    }
    int originals = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(racers[i].status, 201);
        assert_int_equal(racers[i].id, racers[0].id);
        originals += !racers[i].replayed;
    }
    assert_int_equal(originals, 1);
    assert_int_equal(s_total(&g_dev, "/v1/campaigns?q=Raced&archived=all"), 1);
}

/* ---- the OpenAPI document and the server agree ----------------------------------------------- */

typedef struct {
    json_t *paths;
    int missing;
} describe_ctx_t;

static void s_route_documented(void *arg, const char *method, const char *pattern)
{
    describe_ctx_t *ctx = arg;
    char lower[16];
    size_t i = 0;
    for (; method[i] && i + 1 < sizeof(lower); i++)
        lower[i] = (char)(method[i] - 'A' + 'a');
    lower[i] = '\0';
    if (json_object_get(json_object_get(ctx->paths, pattern), lower) == NULL) {
        print_error("served but not documented: %s %s\n", method, pattern);
        ctx->missing++;
    }
}

/* A documented path with every {parameter} replaced by an id that exists nowhere: the server must
 * still recognise the route (a 404 that names a missing resource, or any other answer), never
 * answer "no resource at this path" or 405. */
static void s_assert_served(const char *method, const char *pattern, bool stream)
{
    char path[512];
    size_t o = 0;
    for (const char *p = pattern; *p && o + 12 < sizeof(path); p++) {
        if (*p == '{') {
            o += (size_t)snprintf(path + o, sizeof(path) - o, "987654321");
            p = strchr(p, '}');
            assert_non_null(p);
        } else {
            path[o++] = *p;
        }
    }
    path[o] = '\0';
    /* A stream never ends by itself: a bad cursor makes it answer at once (422), route and all. */
    if (stream)
        snprintf(path + o, sizeof(path) - o, "?after=none");
    char upper[16];
    size_t i = 0;
    for (; method[i] && i + 1 < sizeof(upper); i++)
        upper[i] = (char)(method[i] - 'a' + 'A');
    upper[i] = '\0';
    test_request_t req = {.proto = PROTO_H2C,
                          .method = upper,
                          .path = path,
                          .key = g_dev.key,
                          .auth = g_dev.auth,
                          .content_type = "application/json",
                          .body = strcmp(upper, "GET") && strcmp(upper, "DELETE") ? "{}" : NULL};
    test_reply_t r;
    assert_int_equal(test_http(g_server, &req, &r), CURLE_OK);
    json_t *doc = test_reply_json(&r);
    const char *detail = json_string_value(json_object_get(doc, "detail"));
    if (r.status == 405 || (r.status == 404 && detail && strcmp(detail, "No resource at this path.") == 0)) {
        print_error("documented but not served: %s %s -> %ld\n", upper, pattern, r.status);
        fail();
    }
    json_decref(doc);
    test_reply_free(&r);
}

static void test_root_states_the_limits(void **state)
{
    json_t *root = s_json(&g_dev, "GET", "/v1", NULL, 200);
    json_t *limits = json_object_get(root, "limits");
    assert_int_equal(json_integer_value(json_object_get(limits, "max_body_bytes")), 1048576);
    assert_int_equal(json_integer_value(json_object_get(limits, "page_size_max")), 100);
    assert_int_equal(json_integer_value(json_object_get(limits, "bulk_numbers_max")), 10000);
    assert_true(json_is_integer(json_object_get(limits, "requests_per_second")));
    /* Every top-level collection is one link away. */
    size_t i;
    json_t *link;
    int collections = 0;
    json_array_foreach(json_object_get(root, "resources"), i, link) collections += strstr(s_str(link, "uri"), "/v1/") != NULL;
    assert_true(collections >= 12);
    json_decref(root);
}

static void test_openapi_agrees_with_routes(void **state)
{
    json_t *doc = s_json(NULL, "GET", "/v1/openapi.json", NULL, 200);
    json_t *paths = json_object_get(doc, "paths");
    assert_true(json_object_size(paths) > 20);
    describe_ctx_t ctx = {.paths = paths};
    routes_describe(s_route_documented, &ctx);
    assert_int_equal(ctx.missing, 0);

    const char *pattern;
    json_t *item;
    json_object_foreach(paths, pattern, item)
    {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op)
        {
            json_t *content = json_object_get(json_object_get(json_object_get(op, "responses"), "200"), "content");
            if (strcmp(method, "parameters") != 0)
                s_assert_served(method, pattern, json_object_get(content, "text/event-stream") != NULL);
        }
    }
    json_decref(doc);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    /* These tests are not about rate limits: their bursts of requests with one key must not meet
     * the default limit (tests/test_ratelimit_http.c covers it). */
    setenv("IMPACT_RATE_LIMIT", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_resource_lifecycle),
        cmocka_unit_test(test_campaign_lifecycle),
        cmocka_unit_test(test_campaign_through_a_form),
        cmocka_unit_test(test_messages_upload_and_play_back),
        cmocka_unit_test(test_script_with_every_part),
        cmocka_unit_test(test_nested_paths_must_agree),
        cmocka_unit_test(test_callers_follow_their_group),
        cmocka_unit_test(test_blocked_numbers_single_and_bulk),
        cmocka_unit_test(test_pages_are_stable_and_linked),
        cmocka_unit_test(test_no_cross_account_access),
        cmocka_unit_test(test_bad_input_changes_nothing),
        cmocka_unit_test(test_list_upload_in_parts),
        cmocka_unit_test(test_idempotency_key_replays_the_first_answer),
        cmocka_unit_test(test_root_states_the_limits),
        cmocka_unit_test(test_openapi_agrees_with_routes),
    };
    int rc = cmocka_run_group_tests(tests, s_setup, s_teardown);
    curl_global_cleanup();
    return rc;
}
