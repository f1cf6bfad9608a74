/*
 * A call's phone_numbers_url end to end: impactd's dialer pages through a customer's feed (a
 * local scripted server) when its numbers run low, adds each page to the call's campaign
 * (duplicates of numbers it already has dropped, invalid entries skipped) and dials them. The
 * feed failing for a while delays numbers, loses none.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/http_script.h"
#include "tests/server.h"
#include "tests/support.h"

static test_server_t *g_server;
static PGconn *g_db;
static char *g_dir;

static long s_count(const char *sql)
{
    PGresult *res = PQexec(g_db, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

/* Waits (bounded: the bound only limits a failure) until `sql` counts at least `want`. */
static long s_wait_count(const char *sql, long want)
{
    long n = 0;
    for (int i = 0; i < 600 && (n = s_count(sql)) < want; i++)
        usleep(100000);
    return n;
}

static int s_setup(void **state)
{
    g_dir = support_tmpdir("impact-call-feed");
    char scenario[512];
    snprintf(scenario, sizeof(scenario), "%s/fast.scn", g_dir);
    FILE *f = fopen(scenario, "w");
    assert_non_null(f);
    fprintf(f, "agents = 3\ntalk_mean = 5\nwrap_mean = 1\nring_h_mean = 3\nring_m_mean = 5\nring_timeout = 8\n");
    fclose(f);
    setenv("IMPACT_SCENARIO", scenario, 1);
    setenv("IMPACT_SIM_SPEED", "20", 1);
    setenv("IMPACT_ALLOW_PRIVATE_URLS", "1", 1); /* the feed is served on this machine */
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
    support_rmtree(&g_dir);
    unsetenv("IMPACT_SCENARIO");
    unsetenv("IMPACT_SIM_SPEED");
    unsetenv("IMPACT_ALLOW_PRIVATE_URLS");
    return 0;
}

/* Calling hours are judged in each number's zone on the real clock: give the campaign's numbers
 * the fixed-offset zone where it is now about two in the afternoon. */
static void s_move_into_calling_hours(int64_t campaign)
{
    time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    int offset = 14 - utc.tm_hour;
    char zone[32], sql[256];
    if (offset == 0)
        snprintf(zone, sizeof(zone), "Etc/GMT");
    else
        snprintf(zone, sizeof(zone), "Etc/GMT%+d", -offset); /* POSIX sign: Etc/GMT-3 is UTC+3 */
    snprintf(sql, sizeof(sql), "UPDATE numbers SET time_zones = ARRAY['%s'] WHERE campaign_id = %" PRId64, zone, campaign);
    PQclear(PQexec(g_db, sql));
}

static void test_the_dialer_pages_through_the_feed(void **state)
{
    const http_answer_t answers[] = {
        {.status = 503, .body = "{\"error\": \"warming up\"}"},
        {.status = 200, .body = "[\"202-555-0111\", \"202-555-0112\", \"not a number\", \"202-555-0110\"]"},
        {.status = 200, .body = "{\"phone_numbers\": [12025550113, \"+1 202 555 0114\"]}"},
    };
    http_script_t *feed = http_script_start(answers, 3, (http_answer_t){.status = 200, .body = "[]"});
    assert_non_null(feed);
    char body[512];
    snprintf(body, sizeof(body),
             "{\"dialer_type\": \"Power\", \"from\": \"2125550142\", \"call_state_url\": \"http://127.0.0.1:9/state\","
             " \"phone_number\": \"202-555-0110\", \"phone_numbers_url\": \"http://127.0.0.1:%d/numbers?list=a\"}",
             feed->port);
    json_t *call = test_call(g_server, g_server->key, g_server->auth, "POST", "/v1/call", "application/json", body, 0, 201);
    int64_t campaign = json_integer_value(json_object_get(call, "campaign_id"));
    json_decref(call);

    /* the one number given, then the two pages after the feed's failure: 202-555-0110 came twice */
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM numbers WHERE campaign_id = %" PRId64, campaign);
    assert_int_equal(s_wait_count(sql, 5), 5);
    s_move_into_calling_hours(campaign);
    snprintf(sql, sizeof(sql), "SELECT count(DISTINCT number_id) FROM call_attempts WHERE campaign_id = %" PRId64, campaign);
    assert_int_equal(s_wait_count(sql, 5), 5);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM numbers WHERE campaign_id = %" PRId64 " AND phone = '+12025550110'", campaign);
    assert_int_equal(s_count(sql), 1);

    /* the same page asked again after the failure, then the next, each with the customer's query kept */
    assert_true(http_script_served(feed) >= 3);
    assert_string_equal(feed->paths[0], "/numbers?list=a&page=1&limit=100");
    assert_string_equal(feed->paths[1], "/numbers?list=a&page=1&limit=100");
    assert_string_equal(feed->paths[2], "/numbers?list=a&page=2&limit=100");
    http_script_stop(&feed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_dialer_pages_through_the_feed),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
