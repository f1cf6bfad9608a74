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
#include <stdio.h>
#include <string.h>

#include "tests/http_script.h"
#include "tests/dialing.h"

static test_dialing_t g;

static int s_setup(void **state)
{
    /* the feed is served on this machine */
    test_dialing_start(&g, "agents = 3\ntalk_mean = 5\nwrap_mean = 1\nring_h_mean = 3\nring_m_mean = 5\nring_timeout = 8\n", true);
    return 0;
}

static int s_teardown(void **state)
{
    test_dialing_stop(&g);
    return 0;
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
    json_t *call = test_call(g.server, g.server->key, g.server->auth, "POST", "/v1/call", "application/json", body, 0, 201);
    int64_t campaign = json_integer_value(json_object_get(call, "campaign_id"));
    json_decref(call);

    /* the one number given, then the two pages after the feed's failure: 202-555-0110 came twice */
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM numbers WHERE campaign_id = %" PRId64, campaign);
    assert_int_equal(test_db_wait_at_least(&g, sql, 5, 60), 5);
    test_move_into_calling_hours(g.db, campaign);
    snprintf(sql, sizeof(sql), "SELECT count(DISTINCT number_id) FROM call_attempts WHERE campaign_id = %" PRId64, campaign);
    assert_int_equal(test_db_wait_at_least(&g, sql, 5, 60), 5);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM numbers WHERE campaign_id = %" PRId64 " AND phone = '+12025550110'", campaign);
    assert_int_equal(test_db_count(g.db, sql), 1);

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
