/*
 * Caller sessions through the real impactd: a caller logs in with username and password or with
 * a PIN and no API key, gets a token (and the app's cookie) once; a second login replaces the
 * first; wrong credentials are one 401 and change nothing, and too many lock the name out; bad
 * input is a 422 naming every field; administrators list, read and end sessions with their key
 * and never see another account's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/dialing.h"
#include "tests/support.h"

static test_dialing_t g;
static int64_t g_account, g_campaign, g_caller;
static char g_pin[16];

static json_t *s_admin(const char *method, const char *path, const char *body, long want)
{
    return test_call(g.server, g.server->key, g.server->auth, method, path, body ? "application/json" : NULL, body, 0, want);
}

/* A login without any API key; the reply (for its headers) when `reply` is not NULL. */
static json_t *s_login(const char *body, long want, test_reply_t *reply)
{
    test_request_t req = {.method = "POST", .path = "/v1/caller_sessions", .content_type = "application/json", .body = body};
    test_reply_t r;
    assert_int_equal(test_http(g.server, &req, &r), CURLE_OK);
    if (r.status != want) {
        print_error("POST /v1/caller_sessions %s -> %ld (wanted %ld): %.*s\n", body, r.status, want, (int)r.body_len, r.body);
        fail();
    }
    json_t *doc = test_reply_json(&r);
    if (reply)
        *reply = r;
    else
        test_reply_free(&r);
    return doc;
}

static int s_setup(void **state)
{
    test_dialing_start(&g, TEST_SCENARIO_SHORT_CALLS, false);
    json_t *root = s_admin("GET", "/v1", NULL, 200);
    g_account = json_integer_value(json_object_get(json_object_get(root, "account"), "id"));
    json_decref(root);
    g_campaign = test_campaign_create(&g, "Sessions", "Power");
    char body[256];
    snprintf(body, sizeof(body), "{\"username\": \"ada\", \"password\": \"correct horse battery\", \"campaign_id\": %" PRId64 "}",
             g_campaign);
    json_t *caller = s_admin("POST", "/v1/callers", body, 201);
    g_caller = json_integer_value(json_object_get(caller, "id"));
    snprintf(g_pin, sizeof(g_pin), "%s", json_string_value(json_object_get(caller, "pin")));
    json_decref(caller);
    return 0;
}

static int s_teardown(void **state)
{
    test_dialing_stop(&g);
    return 0;
}

static void test_a_caller_logs_in_and_a_second_login_replaces_the_first(void **state)
{
    char body[256], path[128], cookie[256];
    snprintf(body, sizeof(body), "{\"account_id\": %" PRId64 ", \"username\": \"ada\", \"password\": \"correct horse battery\"}",
             g_account);
    test_reply_t reply;
    json_t *first = s_login(body, 201, &reply);
    const char *token = json_string_value(json_object_get(first, "token"));
    assert_non_null(token);
    assert_true(strncmp(token, "cs_", 3) == 0 && strlen(token) == 46);
    assert_int_equal(json_integer_value(json_object_get(first, "caller_id")), g_caller);
    assert_int_equal(json_integer_value(json_object_get(first, "campaign_id")), g_campaign);
    assert_int_equal(json_integer_value(json_object_get(first, "heartbeat_timeout_seconds")), 30);
    assert_int_equal(test_reply_header(&reply, "Set-Cookie", cookie, sizeof(cookie)), 0);
    assert_non_null(strstr(cookie, token));
    assert_non_null(strstr(cookie, "HttpOnly"));
    assert_non_null(strstr(cookie, "SameSite=Strict"));
    test_reply_free(&reply);
    /* only the token's digest is stored */
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM caller_sessions WHERE token_sha256 = sha256('%s'::bytea)", token);
    assert_int_equal(test_db_count(g.db, sql), 1);

    /* the administrator sees it live, without its token */
    snprintf(path, sizeof(path), "/v1/caller_sessions/%" PRId64, (int64_t)json_integer_value(json_object_get(first, "id")));
    json_t *seen = s_admin("GET", path, NULL, 200);
    assert_true(json_is_null(json_object_get(seen, "ended_at")));
    assert_null(json_object_get(seen, "token"));
    assert_null(json_object_get(seen, "token_sha256"));
    json_decref(seen);

    /* a PIN login of the same caller replaces the first session */
    snprintf(body, sizeof(body), "{\"account_id\": %" PRId64 ", \"pin\": \"%s\"}", g_account, g_pin);
    json_t *second = s_login(body, 201, NULL);
    assert_string_equal(json_string_value(json_object_get(second, "via")), "pin");
    seen = s_admin("GET", path, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(seen, "end_reason")), "replaced");
    json_decref(seen);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM caller_sessions WHERE caller_id = %" PRId64 " AND ended_at IS NULL", g_caller);
    assert_int_equal(test_db_count(g.db, sql), 1);

    /* the administrator ends it; ending it again changes nothing */
    snprintf(path, sizeof(path), "/v1/caller_sessions/%" PRId64 "/end", (int64_t)json_integer_value(json_object_get(second, "id")));
    json_t *ended = s_admin("POST", path, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(ended, "end_reason")), "ended_by_admin");
    json_decref(s_admin("POST", path, NULL, 200));
    assert_int_equal(test_db_count(g.db, sql), 0);
    json_decref(ended);

    /* another account sees none of it */
    const char *args[] = {"accounts", "create", "Elsewhere", NULL};
    char *out = test_server_cli(g.server, args);
    assert_non_null(out);
    char key[128] = "", auth[128] = "";
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "IMPACT_API_KEY=", 15) == 0)
            snprintf(key, sizeof(key), "%s", line + 15);
        if (strncmp(line, "IMPACT_API_AUTH=", 16) == 0)
            snprintf(auth, sizeof(auth), "%s", line + 16);
    }
    free(out);
    snprintf(path, sizeof(path), "/v1/caller_sessions/%" PRId64, (int64_t)json_integer_value(json_object_get(second, "id")));
    json_decref(test_call(g.server, key, auth, "GET", path, NULL, NULL, 0, 404));
    json_decref(first);
    json_decref(second);
}

/* A caller request with the session's token (or its cookie); `reply` keeps the answer. */
static long s_as_caller(const char *method, const char *path, const char *header, test_reply_t *reply)
{
    test_request_t req = {.method = method,
                          .path = path,
                          .header = header,
                          .body = strcmp(method, "POST") ? NULL : "{}",
                          .content_type = strcmp(method, "POST") ? NULL : "application/json"};
    assert_int_equal(test_http(g.server, &req, reply), CURLE_OK);
    return reply->status;
}

static void test_the_caller_sees_the_script_and_logs_out(void **state)
{
    char body[512], path[96], bearer[128], cookie[128];
    /* a script for the campaign: a text, a question with two answers, a note, a transfer */
    json_t *script = s_admin("POST", "/v1/scripts", "{\"name\": \"Canvass\"}", 201);
    int64_t script_id = json_integer_value(json_object_get(script, "id"));
    json_decref(script);
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/script_texts", script_id);
    json_decref(s_admin("POST", path, "{\"content\": \"Hello, **this is** the campaign.\"}", 201));
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/questions", script_id);
    json_t *question = s_admin("POST", path, "{\"text\": \"Can we count on your vote?\"}", 201);
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/questions/%" PRId64 "/possible_responses", script_id,
             (int64_t)json_integer_value(json_object_get(question, "id")));
    json_decref(question);
    json_decref(s_admin("POST", path, "{\"value\": \"Yes\", \"keypad\": 1}", 201));
    json_decref(s_admin("POST", path, "{\"value\": \"Call back\", \"keypad\": 2, \"retry\": true}", 201));
    snprintf(path, sizeof(path), "/v1/scripts/%" PRId64 "/notes", script_id);
    json_decref(s_admin("POST", path, "{\"label\": \"Comments\"}", 201));
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64, g_campaign);
    snprintf(body, sizeof(body), "{\"script_id\": %" PRId64 "}", script_id);
    json_decref(s_admin("PATCH", path, body, 200));

    snprintf(body, sizeof(body), "{\"account_id\": %" PRId64 ", \"username\": \"ada\", \"password\": \"correct horse battery\"}",
             g_account);
    json_t *session = s_login(body, 201, NULL);
    const char *token = json_string_value(json_object_get(session, "token"));
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", token);
    snprintf(cookie, sizeof(cookie), "Cookie: theme=dark; impact_caller_session=%s", token);

    test_reply_t r;
    assert_int_equal(s_as_caller("GET", "/v1/caller_session", bearer, &r), 200);
    json_t *view = test_reply_json(&r);
    test_reply_free(&r);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(view, "caller"), "id")), g_caller);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(view, "campaign"), "id")), g_campaign);
    json_t *s = json_object_get(view, "script");
    assert_int_equal(json_array_size(json_object_get(s, "texts")), 1);
    json_t *responses = json_object_get(json_array_get(json_object_get(s, "questions"), 0), "possible_responses");
    assert_int_equal(json_array_size(responses), 2);
    assert_true(json_is_true(json_object_get(json_array_get(responses, 1), "retry")));
    assert_int_equal(json_array_size(json_object_get(s, "notes")), 1);
    assert_null(json_object_get(view, "token"));
    json_decref(view);

    /* the cookie works as well; a heartbeat answers 204 */
    assert_int_equal(s_as_caller("POST", "/v1/caller_session/heartbeat", cookie, &r), 204);
    test_reply_free(&r);
    /* no token, a malformed one, an unknown one: 401, and nothing learned */
    assert_int_equal(s_as_caller("GET", "/v1/caller_session", NULL, &r), 401);
    test_reply_free(&r);
    assert_int_equal(s_as_caller("GET", "/v1/caller_session", "Authorization: Bearer cs_short", &r), 401);
    test_reply_free(&r);
    assert_int_equal(
        s_as_caller("GET", "/v1/caller_session", "Authorization: Bearer cs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &r), 401);
    test_reply_free(&r);
    /* an API key is no caller session */
    json_decref(test_call(g.server, g.server->key, g.server->auth, "GET", "/v1/caller_session", NULL, NULL, 0, 401));
    assert_int_equal(s_as_caller("DELETE", "/v1/caller_session", bearer, &r), 405);
    test_reply_free(&r);

    /* logging out ends the session: its token opens nothing any more */
    assert_int_equal(s_as_caller("POST", "/v1/caller_session/logout", bearer, &r), 204);
    char cleared[256];
    assert_int_equal(test_reply_header(&r, "Set-Cookie", cleared, sizeof(cleared)), 0);
    assert_non_null(strstr(cleared, "Max-Age=0"));
    test_reply_free(&r);
    assert_int_equal(s_as_caller("GET", "/v1/caller_session", bearer, &r), 401);
    test_reply_free(&r);
    snprintf(path, sizeof(path), "/v1/caller_sessions/%" PRId64, (int64_t)json_integer_value(json_object_get(session, "id")));
    json_t *ended = s_admin("GET", path, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(ended, "end_reason")), "logged_out");
    json_decref(ended);
    json_decref(session);
}

static void test_wrong_credentials_change_nothing_and_lock_out(void **state)
{
    char body[256], sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM caller_sessions WHERE caller_id = %" PRId64, g_caller);
    int64_t before = test_db_count(g.db, sql);
    /* a wrong password and an unknown name are the same answer */
    snprintf(body, sizeof(body), "{\"account_id\": %" PRId64 ", \"username\": \"ada\", \"password\": \"wrong\"}", g_account);
    json_t *p = s_login(body, 401, NULL);
    assert_string_equal(json_string_value(json_object_get(p, "type")), "/problems/invalid-credentials");
    json_decref(p);
    snprintf(body, sizeof(body), "{\"account_id\": %" PRId64 ", \"username\": \"nobody\", \"password\": \"wrong\"}", g_account);
    json_decref(s_login(body, 401, NULL));
    /* the right password of another account's caller name is not this account's */
    snprintf(body, sizeof(body), "{\"account_id\": %" PRId64 ", \"username\": \"ada\", \"password\": \"correct horse battery\"}",
             g_account + 1000);
    json_decref(s_login(body, 401, NULL));
    assert_int_equal(test_db_count(g.db, sql), before);

    /* ten failures for a name within the window: then even the right password waits */
    snprintf(body, sizeof(body), "{\"account_id\": %" PRId64 ", \"username\": \"ada\", \"password\": \"wrong\"}", g_account);
    for (int i = 1; i < 10; i++)
        json_decref(s_login(body, 401, NULL));
    snprintf(body, sizeof(body), "{\"account_id\": %" PRId64 ", \"username\": \"ada\", \"password\": \"correct horse battery\"}",
             g_account);
    test_reply_t reply;
    json_decref(s_login(body, 429, &reply));
    char retry[16];
    assert_int_equal(test_reply_header(&reply, "Retry-After", retry, sizeof(retry)), 0);
    assert_int_equal(atoi(retry), 900);
    test_reply_free(&reply);
    assert_int_equal(test_db_count(g.db, sql), before);
    /* the window passes */
    test_db_exec(g.db, "UPDATE caller_login_failures SET failed_at = failed_at - interval '1 hour'");
    json_decref(s_login(body, 201, NULL));
}

static void test_bad_logins_are_refused(void **state)
{
    char body[256];
    json_t *p = s_login("{\"pin\": \"12x4\", \"username\": \"ada\", \"shoe_size\": 9}", 422, NULL);
    char *text = json_dumps(p, JSON_COMPACT);
    assert_non_null(strstr(text, "account_id"));
    assert_non_null(strstr(text, "shoe_size"));
    assert_non_null(strstr(text, "\"pin\""));
    free(text);
    json_decref(p);
    json_decref(s_login("not json", 400, NULL));
    json_decref(s_login("{\"account_id\": 1, \"username\": \"ada\"}", 422, NULL));
    char longer[201], big[512];
    memset(longer, 'a', 200);
    longer[200] = '\0';
    snprintf(big, sizeof(big), "{\"account_id\": 1, \"username\": \"%s\", \"password\": \"x\"}", longer);
    json_decref(s_login(big, 422, NULL));

    /* a caller without a campaign cannot work */
    json_decref(s_admin("POST", "/v1/callers", "{\"username\": \"idle\", \"password\": \"correct horse battery\"}", 201));
    snprintf(body, sizeof(body), "{\"account_id\": %" PRId64 ", \"username\": \"idle\", \"password\": \"correct horse battery\"}",
             g_account);
    p = s_login(body, 409, NULL);
    assert_string_equal(json_string_value(json_object_get(p, "type")), "/problems/no-campaign");
    json_decref(p);
    /* logins need no key, but listing sessions does */
    json_decref(test_call(g.server, NULL, NULL, "GET", "/v1/caller_sessions", NULL, NULL, 0, 401));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_caller_logs_in_and_a_second_login_replaces_the_first),
        cmocka_unit_test(test_the_caller_sees_the_script_and_logs_out),
        cmocka_unit_test(test_wrong_credentials_change_nothing_and_lock_out),
        cmocka_unit_test(test_bad_logins_are_refused),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
