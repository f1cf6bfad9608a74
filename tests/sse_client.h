/*
 * A Server-Sent Events client for end-to-end tests: streams read by libcurl, several at once on
 * one multi handle, incrementally. Each stream keeps the ids and types of its events in order and
 * checks every event's document against them as it arrives; `overflow` and `resume_after` keep
 * what the server's slow-consumer policy said.
 */
#ifndef IMPACT_TESTS_SSE_CLIENT_H
#define IMPACT_TESTS_SSE_CLIENT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/server.h"

#define TEST_SSE_MAX_EVENTS 20000
#define TEST_SSE_WAIT_S     120

typedef struct {
    CURLM *multi;
    CURL *easy;
    struct curl_slist *headers;
    char *raw; /* bytes not yet parsed into events */
    size_t raw_len, raw_cap;
    int64_t *ids;
    char (*types)[40];
    size_t n;
    bool retry_seen, overflow, done;
    bool paused; /* set by a test: the stream stops reading (libcurl pauses it) until resumed */
    int64_t resume_after;
    long http_version;
    CURLcode result; /* once done */
} test_sse_t;

/**
 * Opens the stream at `path` of `server` on `multi`, with up to two header lines of credentials
 * (a NULL ends them early) and Last-Event-ID when `last_event_id` is not -1, over HTTP/1.1 or h2c,
 * with a small receive buffer when asked; waits until it is registered (its retry line arrived):
 * events committed from then on are its to deliver. Fails the test when it is not answered 200.
 */
test_sse_t *test_sse_open(CURLM *multi, test_server_t *server, const char *path, const char *const credentials[2],
                          int64_t last_event_id, bool h2, bool small_buffer);

/** An account's stream: /v1/events/stream followed by `query` ("" or "?..."), with key and secret. */
test_sse_t *test_sse_open_account(CURLM *multi, test_server_t *server, const char *key, const char *auth, const char *query,
                                  int64_t last_event_id, bool h2, bool small_buffer);

void test_sse_close(test_sse_t **s_p);

/** Lets every stream of `multi` read for up to `ms`; a stream that ended is marked done. */
void test_sse_pump(CURLM *multi, int ms);

/** Pumps until `s` holds at least `n` events; when it ends or TEST_SSE_WAIT_S pass first, prints
 *  the server's log and fails the test. */
void test_sse_wait_events(test_sse_t *s, test_server_t *server, size_t n);

/** `s` delivered exactly what the events API lists after `after` for `filter` ("" or "&..."), in
 *  order, and nothing more within a second. */
void test_sse_assert_same_as_api(test_sse_t *s, test_server_t *server, int64_t after, const char *filter);

#endif
