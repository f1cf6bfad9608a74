/*
 * The real impactd binary under test: start it on free ports with a fresh database (or the
 * embedded PostgreSQL), speak HTTP to it with libcurl over any of the three protocols, and stop
 * it. Shared by every end-to-end test so they start and talk to the server the same way.
 */
#ifndef IMPACT_TESTS_SERVER_H
#define IMPACT_TESTS_SERVER_H

#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    char *data_dir;
    char *db; /* NULL: embedded PostgreSQL */
    char run_dir[64];
    int port, tls_port;
    pid_t pid;
    char key[256], auth[256]; /* the dev account's credentials */
} test_server_t;

typedef enum { PROTO_HTTP1, PROTO_H2C, PROTO_H2_TLS } test_proto_t;

typedef struct {
    test_proto_t proto;
    const char *method;
    const char *path;         /* with the query string */
    const char *content_type; /* NULL: none */
    const char *body;         /* NULL: none */
    size_t body_len;          /* 0 with a body: strlen(body) */
    const char *key, *auth;   /* sent as Api-Key / Api-Auth headers when not NULL */
    const char *header;       /* one extra "Name: value" header, or NULL */
    long timeout_ms;          /* 0: 10 s */
} test_request_t;

typedef struct {
    long status;
    long http_version;
    char content_type[128];
    char location[512];
    char link[2048];
    char allow[128];
    char replayed[16];  /* Idempotent-Replayed */
    char headers[8192]; /* the final response's header lines as received (cut at the size) */
    size_t headers_len;
    char *body;
    size_t body_len;
} test_reply_t;

/** A server description with a fresh data dir, database (unless embedded) and free ports. */
test_server_t *test_server_new(bool embedded);

/** Starts impactd and waits until GET /v1 answers 200 with the dev credentials. */
void test_server_start(test_server_t *s);

/** SIGTERM and wait (30 s, then SIGKILL and a failed test). Returns the wait status. */
int test_server_stop(test_server_t *s);

/** Stops if running, removes the data dir (unless IMPACT_TEST_KEEP is set) and the database. */
void test_server_destroy(test_server_t **s_p);

/** Prints the last lines of the server's log to stderr. */
void test_server_dump_log(test_server_t *s);

/** One request; the reply is filled when the result is CURLE_OK. */
CURLcode test_http(test_server_t *s, const test_request_t *req, test_reply_t *reply);

/** Status of a GET with (or without) the dev credentials; 0 when the request failed. */
long test_get_status(test_server_t *s, const char *path, bool with_auth);

/** Polls until `path` answers `want` (prints the log on failure). 0 or -1. */
int test_wait_status(test_server_t *s, const char *path, bool with_auth, long want, int seconds);

/**
 * One HTTP/2 (h2c) request with the given credentials (NULL: none) that must answer `want`: a
 * different status fails the test, printing the body. Returns the parsed body, NULL if empty.
 * body_len 0 with a body means strlen(body).
 */
json_t *test_call(test_server_t *s, const char *key, const char *auth, const char *method, const char *path,
                  const char *content_type, const char *body, size_t body_len, long want);

/**
 * The ids GET /v1/events lists after `after` for `filter` (a query suffix such as "&type=x",
 * or ""), every page, into ids (at most max: more fails the test). Returns how many.
 */
size_t test_event_ids(test_server_t *s, const char *key, const char *auth, int64_t after, const char *filter, int64_t *ids,
                      size_t max);

/** The reply body parsed as JSON, or NULL. */
json_t *test_reply_json(const test_reply_t *reply);

void test_reply_free(test_reply_t *reply);

/** The value of the first response header `name` (case-insensitive) into buf: 0, or -1 when absent. */
int test_reply_header(const test_reply_t *reply, const char *name, char *buf, size_t size);

/**
 * Runs `impactd <args...>` (args NULL-terminated) with its stdout captured into out (cut at
 * size - 1 bytes, NUL-terminated). Returns the wait status.
 */
int test_impactd_run(const char *const *args, char *out, size_t size);

/**
 * Runs `impactd <args...>` against the server's database (CLI subcommands such as
 * "accounts create NAME"), returning its stdout (malloc'd) or NULL when it failed.
 */
char *test_server_cli(test_server_t *s, const char *const *args);

/** A mono 16-bit 8 kHz WAV of `ms` milliseconds of a quiet tone (malloc'd), for message uploads. */
unsigned char *test_wav(int ms, size_t *len);

#endif
