/*
 * POST /v1/call, the brief's minimal API, end to end against the real impactd: a call starts a
 * running campaign with the numbers given (normalised, de-duplicated, time zones derived,
 * blocked ones marked), renders as a resource with pause, resume and stop, and is safe to retry
 * with an Idempotency-Key. Every malformed request is a 422 (or 400/415) naming what is wrong,
 * and leaves no campaign, call or number behind. Customer URLs pointing into our own network
 * are refused (the server runs without --allow-private-urls), when they are given and again
 * when a webhook is posted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/server.h"
#include "tests/webhook_receiver.h"

static test_server_t *g_server;
static PGconn *g_db;

/* A public address written as a literal: it passes the private-address check without DNS,
 * which CI machines may not have. Nothing is ever posted to it in these tests. */
#define PUBLIC_HOOK "http://93.184.216.34/impact/state"

static json_t *s_post(const char *path, const char *type, const char *body, long want)
{
    return test_call(g_server, g_server->key, g_server->auth, "POST", path, type, body, 0, want);
}

static long s_count(const char *sql)
{
    PGresult *res = PQexec(g_db, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

static void s_assert_names(const json_t *problem, const char *field)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(problem, "errors"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "field")), field) == 0)
            return;
    }
    char *text = json_dumps(problem, 0);
    print_error("problem does not name '%s': %s\n", field, text);
    free(text);
    fail();
}

static int s_setup(void **state)
{
    unsetenv("IMPACT_ALLOW_PRIVATE_URLS");
    setenv("IMPACT_RATE_LIMIT", "0", 1);
    g_server = test_server_new(false);
    test_server_start(g_server);
    g_db = PQconnectdb(g_server->db);
    assert_int_equal(PQstatus(g_db), CONNECTION_OK);
    return 0;
}

static int s_teardown(void **state)
{
    PQfinish(g_db);
    test_server_destroy(&g_server);
    return 0;
}

static void test_a_call_starts_dialing_its_numbers(void **state)
{
    PQclear(PQexec(g_db, "INSERT INTO blocked_numbers (account_id, number) SELECT id, '+12025550199' FROM accounts LIMIT 1"));
    json_t *call = s_post("/v1/call", "application/json",
                          "{\"dialer_type\": \"power\", \"from\": \"(212) 555-0142\", \"call_state_url\": \"" PUBLIC_HOOK "\","
                          " \"phone_number\": [\"202-555-0143\", 12025550144, \"+1 202 555 0143\", \"2025550199\"]}",
                          201);
    assert_string_equal(json_string_value(json_object_get(call, "dialer_type")), "Power");
    assert_string_equal(json_string_value(json_object_get(call, "from")), "+12125550142");
    assert_string_equal(json_string_value(json_object_get(call, "status")), "running");
    assert_int_equal(json_integer_value(json_object_get(call, "numbers_given")), 3); /* one duplicate */
    json_t *given = json_object_get(call, "phone_number");
    assert_int_equal(json_array_size(given), 3);
    assert_string_equal(json_string_value(json_array_get(given, 0)), "+12025550143");
    int64_t id = json_integer_value(json_object_get(call, "id"));
    int64_t campaign = json_integer_value(json_object_get(call, "campaign_id"));
    assert_true(id > 0 && campaign > 0);

    /* the campaign the dialer runs, and its numbers with their zones, the blocked one marked */
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM campaigns WHERE id = %lld AND origin = 'call' AND status = 'running'",
             (long long)campaign);
    assert_int_equal(s_count(sql), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM numbers WHERE campaign_id = %lld AND 'America/New_York' = ANY (time_zones)",
             (long long)campaign);
    assert_int_equal(s_count(sql), 3);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM numbers WHERE campaign_id = %lld AND blocked", (long long)campaign);
    assert_int_equal(s_count(sql), 1);

    /* pause, resume, stop: each answers the call, and each is idempotent */
    char path[128];
    const char *steps[][2] = {{"pause", "paused"}, {"pause", "paused"}, {"resume", "running"}, {"stop", "stopped"}};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        snprintf(path, sizeof(path), "/v1/calls/%lld/%s", (long long)id, steps[i][0]);
        json_t *after = s_post(path, NULL, NULL, 200);
        assert_string_equal(json_string_value(json_object_get(after, "status")), steps[i][1]);
        json_decref(after);
    }
    /* a record: never edited or deleted, and it offers exactly its own actions */
    json_t *actions = json_object_get(call, "actions");
    assert_int_equal(json_array_size(actions), 3);
    for (size_t i = 0; i < json_array_size(actions); i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(actions, i), "method")), "POST");
    snprintf(path, sizeof(path), "/v1/calls/%lld", (long long)id);
    json_decref(test_call(g_server, g_server->key, g_server->auth, "DELETE", path, NULL, NULL, 0, 405));
    json_decref(test_call(g_server, g_server->key, g_server->auth, "PATCH", path, "application/json", "{}", 0, 405));
    json_decref(test_call(g_server, g_server->key, g_server->auth, "GET", "/v1/call", NULL, NULL, 0, 405));
    json_t *read = test_call(g_server, g_server->key, g_server->auth, "GET", path, NULL, NULL, 0, 200);
    assert_string_equal(json_string_value(json_object_get(read, "status")), "stopped");
    json_decref(read);
    /* the call's campaign takes numbers from the call only: no list upload into it */
    char list[256];
    snprintf(list, sizeof(list), "{\"name\": \"into a call\", \"campaign_id\": %lld, \"column_map\": {\"phone\": \"phone\"}}",
             (long long)campaign);
    json_t *refused = s_post("/v1/lists", "application/json", list, 422);
    s_assert_names(refused, "campaign_id");
    json_decref(refused);
    json_decref(call);
}

static void test_a_call_through_a_form_with_a_feed(void **state)
{
    json_t *call = s_post("/v1/calls", "application/x-www-form-urlencoded",
                          "dialer_type=Preview&from=2125550142&call_state_url=" PUBLIC_HOOK
                          "&phone_numbers_url=http%3A%2F%2F93.184.216.34%2Fnumbers%3Fpage%3D1"
                          "&phone_number=2025550150&phone_number=2025550151",
                          201);
    assert_int_equal(json_integer_value(json_object_get(call, "numbers_given")), 2);
    assert_string_equal(json_string_value(json_object_get(call, "phone_numbers_url")), "http://93.184.216.34/numbers?page=1");
    json_decref(call);
    /* a feed alone is enough */
    call = s_post("/v1/call", "application/json",
                  "{\"dialer_type\": \"Power\", \"from\": \"2125550142\", \"call_state_url\": \"" PUBLIC_HOOK "\","
                  " \"phone_numbers_url\": \"https://93.184.216.34/numbers\"}",
                  201);
    assert_int_equal(json_integer_value(json_object_get(call, "numbers_given")), 0);
    json_decref(call);
}

static void test_a_retried_call_starts_once(void **state)
{
    long before = s_count("SELECT count(*) FROM calls");
    const char *body = "{\"dialer_type\": \"Power\", \"from\": \"2125550142\", \"call_state_url\": \"" PUBLIC_HOOK "\","
                       " \"phone_number\": \"2025550160\"}";
    for (int attempt = 0; attempt < 2; attempt++) {
        test_request_t req = {.proto = PROTO_H2C,
                              .method = "POST",
                              .path = "/v1/call",
                              .content_type = "application/json",
                              .body = body,
                              .key = g_server->key,
                              .auth = g_server->auth,
                              .header = "Idempotency-Key: call-retry-1"};
        test_reply_t reply;
        assert_int_equal(test_http(g_server, &req, &reply), CURLE_OK);
        assert_int_equal(reply.status, 201);
        if (attempt == 1)
            assert_string_equal(reply.replayed, "true");
        test_reply_free(&reply);
    }
    assert_int_equal(s_count("SELECT count(*) FROM calls"), before + 1);
}

typedef struct {
    const char *type, *body;
    long status;
    const char *field; /* named in the 422, or NULL */
} bad_case_t;

#define OK_HEAD "\"dialer_type\": \"Power\", \"from\": \"2125550142\", "
#define OK_URL  "\"call_state_url\": \"" PUBLIC_HOOK "\""

static void test_bad_calls_start_nothing(void **state)
{
    char many[20000];
    size_t n = (size_t)snprintf(many, sizeof(many), "{" OK_HEAD OK_URL ", \"phone_number\": [");
    for (int i = 0; i < 1001; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%s\"20255%05d\"", i ? "," : "", i);
    snprintf(many + n, sizeof(many) - n, "]}");
    const bad_case_t cases[] = {
        {"application/json", "{\"from\": \"2125550142\", " OK_URL ", \"phone_number\": \"2025550143\"}", 422, "dialer_type"},
        {"application/json", "{\"dialer_type\": \"Turbo\", \"from\": \"2125550142\", " OK_URL ", \"phone_number\": \"2025550143\"}",
         422, "dialer_type"},
        {"application/json", "{\"dialer_type\": \"Power\", " OK_URL ", \"phone_number\": \"2025550143\"}", 422, "from"},
        {"application/json", "{\"dialer_type\": \"Power\", \"from\": \"12\", " OK_URL ", \"phone_number\": \"2025550143\"}", 422,
         "from"},
        {"application/json", "{" OK_HEAD "\"phone_number\": \"2025550143\"}", 422, "call_state_url"},
        {"application/json", "{" OK_HEAD "\"call_state_url\": \"ftp://93.184.216.34/x\", \"phone_number\": \"2025550143\"}", 422,
         "call_state_url"},
        {"application/json", "{" OK_HEAD "\"call_state_url\": \"http://127.0.0.1:8080/x\", \"phone_number\": \"2025550143\"}", 422,
         "call_state_url"},
        {"application/json", "{" OK_HEAD "\"call_state_url\": \"http://10.1.2.3/x\", \"phone_number\": \"2025550143\"}", 422,
         "call_state_url"},
        {"application/json", "{" OK_HEAD "\"call_state_url\": \"http://[::1]/x\", \"phone_number\": \"2025550143\"}", 422,
         "call_state_url"},
        {"application/json", "{" OK_HEAD OK_URL ", \"phone_numbers_url\": \"http://localhost/numbers\"}", 422, "phone_numbers_url"},
        {"application/json", "{" OK_HEAD OK_URL ", \"phone_numbers_url\": \"http://169.254.169.254/latest\"}", 422,
         "phone_numbers_url"},
        {"application/json", "{" OK_HEAD OK_URL "}", 422, "phone_number"},
        {"application/json", "{" OK_HEAD OK_URL ", \"phone_number\": \"555\"}", 422, "phone_number"},
        {"application/json", "{" OK_HEAD OK_URL ", \"phone_number\": []}", 422, "phone_number"},
        {"application/json", "{" OK_HEAD OK_URL ", \"phone_number\": {\"n\": 1}}", 422, "phone_number"},
        {"application/json", "{" OK_HEAD OK_URL ", \"phone_number\": [\"2025550143\", \"call me\"]}", 422, "phone_number[1]"},
        {"application/json", "{" OK_HEAD OK_URL ", \"phone_number\": [\"2025550143\", true]}", 422, "phone_number[1]"},
        {"application/json", many, 422, "phone_number"},
        {"application/json",
         "{\"dialer_type\": \"Predictive\", \"from\": \"2125550142\", " OK_URL ", \"phone_number\": \"2025550143\"}", 422,
         "abandonment_message_id"},
        {"application/json", "{" OK_HEAD OK_URL ", \"phone_number\": \"2025550143\", \"status\": \"running\"}", 422, "status"},
        {"application/json", "{" OK_HEAD OK_URL ", \"phone_number\": \"2025550143\", \"speed\": 11}", 422, "speed"},
        {"application/json", "{" OK_HEAD OK_URL ", \"phone_number\": \"2025550143\"", 400, NULL},
        {"application/x-www-form-urlencoded", "dialer_type=Power&from=%ZZ", 400, NULL},
        {"text/plain", "dialer_type=Power", 415, NULL},
    };
    const char *tally = "SELECT (SELECT count(*) FROM campaigns) * 1000000 + (SELECT count(*) FROM calls) * 1000 + "
                        "(SELECT count(*) FROM numbers)";
    long before = s_count(tally);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *problem = s_post("/v1/call", cases[i].type, cases[i].body, cases[i].status);
        if (cases[i].field)
            s_assert_names(problem, cases[i].field);
        json_decref(problem);
    }
    assert_int_equal(s_count(tally), before);
}

/* Webhook endpoints are customer URLs too: the same refusal, on create and on update, and
 * nothing is stored or changed. */
static void test_private_webhook_endpoints_are_refused(void **state)
{
    const char *key = g_server->key, *auth = g_server->auth;
    json_decref(test_call(g_server, key, auth, "POST", "/v1/webhook_endpoints", "application/json",
                          "{\"url\": \"http://127.0.0.1:8080/hook\"}", 0, 422));
    json_decref(test_call(g_server, key, auth, "POST", "/v1/webhook_endpoints", "application/json",
                          "{\"url\": \"http://10.1.2.3/hook\"}", 0, 422));
    assert_int_equal(s_count("SELECT count(*) FROM webhook_endpoints"), 0);
    json_t *e = test_call(g_server, key, auth, "POST", "/v1/webhook_endpoints", "application/json",
                          "{\"url\": \"" PUBLIC_HOOK "\"}", 0, 201);
    char path[128];
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(e, "id")));
    json_decref(e);
    json_decref(test_call(g_server, key, auth, "PATCH", path, "application/json", "{\"url\": \"http://[::1]/hook\"}", 0, 422));
    e = test_call(g_server, key, auth, "GET", path, NULL, NULL, 0, 200);
    assert_string_equal(json_string_value(json_object_get(e, "url")), PUBLIC_HOOK);
    json_decref(e);
}

static int s_answer(void *arg, const char *path, int nth, int *delay_ms)
{
    return 204;
}

/* An endpoint accepted while its host was public, whose host now resolves to this machine (DNS
 * rebinding; done here to the row, as no test can own a public name): the deliverer refuses to
 * connect, logs the attempt as refused, and keeps the delivery for a later try. */
static void test_a_webhook_host_turned_private_is_refused_at_delivery(void **state)
{
    const char *key = g_server->key, *auth = g_server->auth;
    webhook_receiver_t *receiver = webhook_receiver_new(s_answer, NULL);
    assert_non_null(receiver);
    json_t *e = test_call(g_server, key, auth, "POST", "/v1/webhook_endpoints", "application/json",
                          "{\"url\": \"" PUBLIC_HOOK "\"}", 0, 201);
    long endpoint = (long)json_integer_value(json_object_get(e, "id"));
    json_decref(e);
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE webhook_endpoints SET url = 'http://127.0.0.1:%d/rebound' WHERE id = %ld",
             webhook_receiver_port(receiver), endpoint);
    PQclear(PQexec(g_db, sql));
    snprintf(sql, sizeof(sql),
             "SELECT event_publish(account_id, NULL, NULL, 'list.import_completed', now(), '{\"test\": true}') "
             "FROM webhook_endpoints WHERE id = %ld",
             endpoint);
    PGresult *res = PQexec(g_db, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM webhook_delivery_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id "
             "WHERE d.endpoint_id = %ld",
             endpoint);
    for (int i = 0; i < 600 && s_count(sql) == 0; i++)
        usleep(100 * 1000);
    char path[160];
    snprintf(path, sizeof(path), "/v1/webhook_endpoints/%ld/deliveries", endpoint);
    json_t *log = test_call(g_server, key, auth, "GET", path, NULL, NULL, 0, 200);
    json_t *delivery = json_array_get(json_object_get(log, "items"), 0);
    assert_non_null(delivery);
    assert_string_equal(json_string_value(json_object_get(delivery, "state")), "pending");
    json_t *attempt = json_array_get(json_object_get(delivery, "attempts"), 0);
    assert_non_null(attempt);
    assert_true(json_is_null(json_object_get(attempt, "http_status")));
    assert_non_null(strstr(json_string_value(json_object_get(attempt, "error")), "private addresses are refused"));
    json_decref(log);
    webhook_received_t got[1];
    assert_int_equal(webhook_receiver_received(receiver, got, 1), 0);
    webhook_receiver_destroy(&receiver);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_call_starts_dialing_its_numbers),
        cmocka_unit_test(test_a_call_through_a_form_with_a_feed),
        cmocka_unit_test(test_a_retried_call_starts_once),
        cmocka_unit_test(test_bad_calls_start_nothing),
        cmocka_unit_test(test_private_webhook_endpoints_are_refused),
        cmocka_unit_test(test_a_webhook_host_turned_private_is_refused_at_delivery),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
