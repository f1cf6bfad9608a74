#include "tests/sse_client.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Parses complete events (blank-line terminated) out of raw. */
static void s_parse(test_sse_t *s)
{
    char *start = s->raw, *end;
    while ((end = memmem(start, s->raw_len - (size_t)(start - s->raw), "\n\n", 2)) != NULL) {
        *end = '\0';
        int64_t id = -1;
        char type[40] = "";
        const char *data = NULL;
        for (char *line = start, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            if (strncmp(line, "retry: ", 7) == 0)
                s->retry_seen = true;
            else if (strncmp(line, "id: ", 4) == 0)
                id = strtoll(line + 4, NULL, 10);
            else if (strncmp(line, "event: ", 7) == 0)
                snprintf(type, sizeof(type), "%s", line + 7);
            else if (strncmp(line, "data: ", 6) == 0)
                data = line + 6;
        }
        if (strcmp(type, "overflow") == 0) {
            json_t *d = json_loads(data, 0, NULL);
            assert_non_null(d);
            s->overflow = true;
            s->resume_after = json_integer_value(json_object_get(d, "resume_after"));
            json_decref(d);
        } else if (id >= 0) {
            assert_true(s->n < TEST_SSE_MAX_EVENTS);
            /* each event's document is the events API's, with its id and type */
            json_t *doc = json_loads(data, 0, NULL);
            assert_non_null(doc);
            assert_int_equal(json_integer_value(json_object_get(doc, "id")), id);
            assert_string_equal(json_string_value(json_object_get(doc, "type")), type);
            json_decref(doc);
            s->ids[s->n] = id;
            snprintf(s->types[s->n], sizeof(s->types[0]), "%s", type);
            s->n++;
        }
        start = end + 2;
    }
    size_t left = s->raw_len - (size_t)(start - s->raw);
    memmove(s->raw, start, left);
    s->raw_len = left;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    test_sse_t *s = userdata;
    size_t len = size * nmemb;
    if (s->paused)
        return CURL_WRITEFUNC_PAUSE;
    if (s->raw_len + len + 1 > s->raw_cap) {
        s->raw_cap = (s->raw_len + len + 1) * 2;
        s->raw = realloc(s->raw, s->raw_cap);
        assert_non_null(s->raw);
    }
    memcpy(s->raw + s->raw_len, ptr, len);
    s->raw_len += len;
    s_parse(s);
    return len;
}

/* A small receive buffer, so a consumer that stops reading stops the server's writes soon. */
static int on_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    int size = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    return CURL_SOCKOPT_OK;
}

void test_sse_pump(CURLM *multi, int ms)
{
    int running;
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, NULL, 0, ms, NULL);
    curl_multi_perform(multi, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        test_sse_t *s;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        s->done = true;
        s->result = msg->data.result;
    }
}

/* Opens the stream at `path` with `credentials` (header lines; Last-Event-ID when not -1) and
 * waits until it is registered (its retry line arrived): events committed from then on are its
 * to deliver. */
test_sse_t *test_sse_open(CURLM *multi, test_server_t *server, const char *path, const char *const credentials[2],
                          int64_t last_event_id, bool h2, bool small_buffer)
{
    test_sse_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->ids = calloc(TEST_SSE_MAX_EVENTS, sizeof(*s->ids));
    s->types = calloc(TEST_SSE_MAX_EVENTS, sizeof(*s->types));
    char url[512], h[300];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", server->port, path);
    s->easy = curl_easy_init();
    curl_easy_setopt(s->easy, CURLOPT_URL, url);
    curl_easy_setopt(s->easy, CURLOPT_PROXY, ""); /* the server under test, whatever the environment says */
    for (int i = 0; i < 2 && credentials[i]; i++)
        s->headers = curl_slist_append(s->headers, credentials[i]);
    s->headers = curl_slist_append(s->headers, "Accept: text/event-stream");
    if (last_event_id >= 0) {
        snprintf(h, sizeof(h), "Last-Event-ID: %" PRId64, last_event_id);
        s->headers = curl_slist_append(s->headers, h);
    }
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    /* One connection per stream, as a browser's EventSource has: closing one closes its connection. */
    curl_easy_setopt(s->easy, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(s->easy, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(s->easy, CURLOPT_HTTP_VERSION, h2 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : CURL_HTTP_VERSION_1_1);
    if (small_buffer) {
        curl_easy_setopt(s->easy, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
        curl_easy_setopt(s->easy, CURLOPT_BUFFERSIZE, 1024L);
    }
    s->multi = multi;
    curl_multi_add_handle(multi, s->easy);
    for (int i = 0; i < TEST_SSE_WAIT_S * 10 && !s->retry_seen && !s->done; i++)
        test_sse_pump(s->multi, 100);
    long code = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
    if (!s->retry_seen)
        fprintf(stderr, "stream %s answered %ld (%s): %.*s\n", url, code, curl_easy_strerror(s->result), (int)s->raw_len,
                s->raw ? s->raw : "");
    assert_true(s->retry_seen);
    assert_int_equal(code, 200);
    curl_easy_getinfo(s->easy, CURLINFO_HTTP_VERSION, &s->http_version);
    return s;
}

/* An account's stream: `query` after /v1/events/stream. */
test_sse_t *test_sse_open_account(CURLM *multi, test_server_t *server, const char *key, const char *auth, const char *query,
                                  int64_t last_event_id, bool h2, bool small_buffer)
{
    char path[512], key_line[300], auth_line[300];
    snprintf(path, sizeof(path), "/v1/events/stream%s", query);
    snprintf(key_line, sizeof(key_line), "Api-Key: %s", key);
    snprintf(auth_line, sizeof(auth_line), "Api-Auth: %s", auth);
    return test_sse_open(multi, server, path, (const char *[]){key_line, auth_line}, last_event_id, h2, small_buffer);
}

void test_sse_close(test_sse_t **s_p)
{
    test_sse_t *s = *s_p;
    curl_multi_remove_handle(s->multi, s->easy);
    curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->headers);
    free(s->raw);
    free(s->ids);
    free(s->types);
    free(s);
    *s_p = NULL;
}

/* Waits until the stream holds at least `n` events (or ended). */
void test_sse_wait_events(test_sse_t *s, test_server_t *server, size_t n)
{
    for (int i = 0; i < TEST_SSE_WAIT_S * 10 && s->n < n && !s->done; i++)
        test_sse_pump(s->multi, 100);
    if (s->n < n)
        test_server_dump_log(server);
    if (s->n < n)
        fprintf(stderr, "stream: %zu events of %zu, done %d (%s), overflow %d\n", s->n, n, s->done, curl_easy_strerror(s->result),
                s->overflow);
    assert_true(s->n >= n);
}

/* The stream delivered exactly what the API lists after `after` for `filter`, in order. */
void test_sse_assert_same_as_api(test_sse_t *s, test_server_t *server, int64_t after, const char *filter)
{
    int64_t *ids = calloc(TEST_SSE_MAX_EVENTS, sizeof(*ids));
    size_t n = test_event_ids(server, server->key, server->auth, after, filter, ids, TEST_SSE_MAX_EVENTS);
    test_sse_wait_events(s, server, n);
    for (int i = 0; i < 20; i++)
        test_sse_pump(s->multi, 50); /* anything beyond would be a duplicate or a stranger */
    assert_int_equal(s->n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s->ids[i], ids[i]);
    free(ids);
}
