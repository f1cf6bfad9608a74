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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/dialer/feed.h"

#define ANSWERS_MAX 8

typedef struct {
    int status;
    const char *body; /* NULL with big: a body over the limit */
    int delay_ms;
    bool big;
} answer_t;

typedef struct {
    int fd, port;
    pthread_t thread;
    answer_t answers[ANSWERS_MAX];
    int n_answers, served;
    char paths[ANSWERS_MAX][256]; /* request targets, in order */
    pthread_mutex_t lock;
} server_t;

static void s_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL); /* the client may hang up first */
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

static void *s_serve(void *arg)
{
    server_t *s = arg;
    for (;;) {
        int conn = accept(s->fd, NULL, NULL);
        if (conn < 0)
            return NULL;
        char request[4096];
        size_t n = 0;
        ssize_t got;
        while (n < sizeof(request) - 1 && (got = read(conn, request + n, sizeof(request) - 1 - n)) > 0) {
            n += (size_t)got;
            request[n] = '\0';
            if (strstr(request, "\r\n\r\n"))
                break;
        }
        pthread_mutex_lock(&s->lock);
        int index = s->served++;
        if (index < ANSWERS_MAX)
            sscanf(request, "GET %255s", s->paths[index]);
        answer_t answer = index < s->n_answers ? s->answers[index] : (answer_t){.status = 404, .body = "{}"};
        pthread_mutex_unlock(&s->lock);
        if (answer.delay_ms)
            usleep((useconds_t)answer.delay_ms * 1000);
        char *body = NULL;
        size_t len;
        if (answer.big) {
            len = FEED_BODY_MAX + 100;
            body = malloc(len);
            memset(body, ' ', len);
        } else
            len = strlen(answer.body);
        char head[256];
        int head_len =
            snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     answer.status, len);
        s_write_all(conn, head, (size_t)head_len);
        s_write_all(conn, body ? body : answer.body, len);
        free(body);
        close(conn);
    }
}

static server_t *s_server(const answer_t *answers, int n)
{
    server_t *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    memcpy(s->answers, answers, (size_t)n * sizeof(*answers));
    s->n_answers = n;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(s->fd, 8), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&addr, &len), 0);
    s->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, s_serve, s), 0);
    return s;
}

static void s_server_stop(server_t **s_p)
{
    server_t *s = *s_p;
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->lock);
    free(s);
    *s_p = NULL;
}

static feed_t *s_feed(const server_t *s, const char *query, int page_size, int timeout_ms, bool allow_private)
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
    const answer_t answers[] = {
        {.status = 200, .body = "[\"202-555-0101\", 12025550102, \"not a number\"]"},
        {.status = 200, .body = "{\"phone_numbers\": [\"+1 202 555 0103\"], \"next_page\": null}"},
        {.status = 200, .body = "[]"},
    };
    server_t *server = s_server(answers, 3);
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
    s_server_stop(&server);
}

static void test_errors_back_off_and_retry_the_same_page(void **state)
{
    const answer_t answers[] = {
        {.status = 500, .body = "{\"error\": \"down\"}"},
        {.status = 200, .body = "not json"},
        {.status = 200, .body = "[\"2025550104\"]"},
    };
    server_t *server = s_server(answers, 3);
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
    s_server_stop(&server);
}

static void test_bad_answers_are_refused(void **state)
{
    const answer_t answers[] = {
        {.status = 200, .body = "[\"2025550101\", \"2025550102\", \"2025550103\"]"}, /* more than the limit of 2 */
        {.status = 200, .body = "{\"phone_numbers\": \"2025550101\"}"},
        {.status = 200, .big = true},
        {.status = 200, .body = "[\"2025550101\"]", .delay_ms = 1500}, /* slower than the 300 ms timeout */
    };
    const char *why[] = {"limit was 2", "neither an array", "larger than", "imeout"};
    for (int i = 0; i < 4; i++) {
        server_t *server = s_server(&answers[i], 1);
        feed_t *feed = s_feed(server, "", 2, 300, true);
        feed_page_t page;
        s_next(feed, true, &page);
        assert_int_equal(page.result, FEED_FAILED);
        if (strstr(page.error, why[i]) == NULL)
            fail_msg("answer %d: \"%s\" does not say \"%s\"", i, page.error, why[i]);
        assert_int_equal(page.count, 0);
        feed_page_free(&page);
        feed_destroy(&feed);
        s_server_stop(&server);
    }
}

static void test_private_addresses_are_refused(void **state)
{
    const answer_t answers[] = {{.status = 200, .body = "[\"2025550101\"]"}};
    server_t *server = s_server(answers, 1);
    feed_t *feed = s_feed(server, "", 10, 2000, false);
    feed_page_t page;
    s_next(feed, true, &page);
    assert_int_equal(page.result, FEED_FAILED);
    assert_non_null(strstr(page.error, "private addresses are refused"));
    assert_int_equal(server->served, 0);
    feed_page_free(&page);
    feed_destroy(&feed);
    s_server_stop(&server);
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
