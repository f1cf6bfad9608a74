/*
 * actors/dialer/feed: a customer's number feed fetched with real libcurl from a local HTTP
 * server that plays a script of answers: paging and the query it sends, both body shapes,
 * invalid numbers skipped, exhaustion, HTTP errors with back-off and the same page asked again,
 * slow answers timed out, malformed and oversized bodies, more numbers than asked for, and
 * private addresses refused unless allowed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/dialer/feed.h"
#include "tests/http_script.h"

static feed_t *s_feed(const http_script_t *s, const char *query, int page_size, int timeout_ms, bool allow_private)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/numbers%s", s->port, query);
    feed_options_t options = {.page_size = page_size, .timeout_ms = timeout_ms, .allow_private = allow_private};
    feed_t *feed = feed_new(url, &options);
    assert_non_null(feed);
    return feed;
}

/* Asks for a page (unless ask is false) and waits for the answer; the bound only limits a
 * failure, nothing asserts how fast the answer comes. */
static void s_next(feed_t *feed, bool ask, feed_page_t *page)
{
    if (ask)
        assert_int_equal(feed_request(feed), 0);
    zpoller_t *poller = zpoller_new(feed_socket(feed), NULL);
    assert_non_null(zpoller_wait(poller, 20000));
    zpoller_destroy(&poller);
    assert_int_equal(feed_receive(feed, page), 0);
}

static void test_pages_until_exhausted(void **state)
{
    const http_answer_t answers[] = {
        {.status = 200, .body = "[\"202-555-0101\", 12025550102, \"not a number\"]"},
        {.status = 200, .body = "{\"phone_numbers\": [\"+1 202 555 0103\"], \"next_page\": null}"},
        {.status = 200, .body = "[]"},
    };
    http_script_t *server = http_script_start(answers, 3, (http_answer_t){.status = 404, .body = "{}"});
    feed_t *feed = s_feed(server, "?campaign=7", 3, 5000, true);
    feed_page_t page;
    s_next(feed, true, &page);
    assert_int_equal(page.result, FEED_NUMBERS);
    assert_int_equal(page.page, 1);
    assert_int_equal(page.count, 2);
    assert_int_equal(page.invalid, 1);
    assert_string_equal(page.numbers[0], "+12025550101");
    assert_string_equal(page.numbers[1], "+12025550102");
    feed_page_free(&page);
    s_next(feed, true, &page);
    assert_int_equal(page.result, FEED_NUMBERS);
    assert_int_equal(page.page, 2);
    assert_int_equal(page.count, 1);
    feed_page_free(&page);
    s_next(feed, true, &page);
    assert_int_equal(page.result, FEED_EXHAUSTED);
    assert_int_equal(page.page, 3);
    assert_int_equal(page.retry_in_ms, 60000);
    feed_page_free(&page);
    /* the customer's own query is kept, the page and limit added */
    assert_string_equal(server->paths[0], "/numbers?campaign=7&page=1&limit=3");
    assert_string_equal(server->paths[2], "/numbers?campaign=7&page=3&limit=3");
    feed_destroy(&feed);
    http_script_stop(&server);
}

static void test_errors_back_off_and_retry_the_same_page(void **state)
{
    const http_answer_t answers[] = {
        {.status = 500, .body = "{\"error\": \"down\"}"},
        {.status = 200, .body = "not json"},
        {.status = 200, .body = "[\"2025550104\"]"},
    };
    http_script_t *server = http_script_start(answers, 3, (http_answer_t){.status = 404, .body = "{}"});
    feed_t *feed = s_feed(server, "", 10, 5000, true);
    feed_page_t page;
    s_next(feed, true, &page);
    assert_int_equal(page.result, FEED_FAILED);
    assert_non_null(strstr(page.error, "HTTP status 500"));
    assert_int_equal(page.retry_in_ms, 1000);
    feed_page_free(&page);
    /* asked during the back-off: made when it ends, and the wait doubles on the next failure */
    s_next(feed, true, &page);
    assert_int_equal(page.result, FEED_FAILED);
    assert_non_null(strstr(page.error, "not JSON"));
    assert_int_equal(page.retry_in_ms, 2000);
    feed_page_free(&page);
    s_next(feed, true, &page);
    assert_int_equal(page.result, FEED_NUMBERS);
    assert_int_equal(page.page, 1);
    assert_int_equal(page.count, 1);
    feed_page_free(&page);
    for (int i = 0; i < 3; i++)
        assert_string_equal(server->paths[i], "/numbers?page=1&limit=10");
    feed_destroy(&feed);
    http_script_stop(&server);
}

static void test_bad_answers_are_refused(void **state)
{
    const http_answer_t answers[] = {
        {.status = 200, .body = "[\"2025550101\", \"2025550102\", \"2025550103\"]"}, /* more than the limit of 2 */
        {.status = 200, .body = "{\"phone_numbers\": \"2025550101\"}"},
        {.status = 200, .padding = FEED_BODY_MAX + 100},
        {.status = 200, .body = "[\"2025550101\"]", .delay_ms = 1500}, /* slower than the 300 ms timeout */
    };
    const char *why[] = {"limit was 2", "neither an array", "larger than", "imeout"};
    for (int i = 0; i < 4; i++) {
        http_script_t *server = http_script_start(&answers[i], 1, (http_answer_t){.status = 404, .body = "{}"});
        feed_t *feed = s_feed(server, "", 2, 300, true);
        feed_page_t page;
        s_next(feed, true, &page);
        assert_int_equal(page.result, FEED_FAILED);
        if (strstr(page.error, why[i]) == NULL)
            fail_msg("answer %d: \"%s\" does not say \"%s\"", i, page.error, why[i]);
        assert_int_equal(page.count, 0);
        feed_page_free(&page);
        feed_destroy(&feed);
        http_script_stop(&server);
    }
}

static void test_private_addresses_are_refused(void **state)
{
    const http_answer_t answers[] = {{.status = 200, .body = "[\"2025550101\"]"}};
    http_script_t *server = http_script_start(answers, 1, (http_answer_t){.status = 404, .body = "{}"});
    feed_t *feed = s_feed(server, "", 10, 2000, false);
    feed_page_t page;
    s_next(feed, true, &page);
    assert_int_equal(page.result, FEED_FAILED);
    assert_non_null(strstr(page.error, "private addresses are refused"));
    assert_int_equal(http_script_served(server), 0);
    feed_page_free(&page);
    feed_destroy(&feed);
    http_script_stop(&server);
    /* nor is a URL over the size limit, or with a fragment, accepted at all */
    char long_url[2100];
    memset(long_url, 'a', sizeof(long_url) - 1);
    long_url[sizeof(long_url) - 1] = '\0';
    memcpy(long_url, "http://", 7);
    assert_null(feed_new(long_url, NULL));
    assert_null(feed_new("http://93.184.216.34/n#frag", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pages_until_exhausted),
        cmocka_unit_test(test_errors_back_off_and_retry_the_same_page),
        cmocka_unit_test(test_bad_answers_are_refused),
        cmocka_unit_test(test_private_addresses_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
