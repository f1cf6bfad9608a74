/*
 * Rate limiting end to end: the real impactd (supervisor, broker, store pool on PostgreSQL, the
 * HTTP front end) started with --rate-limit 5 --rate-burst 5 through the environment, spoken to
 * with libcurl. A key's requests are admitted up to the burst and then refused with a 429
 * problem carrying Retry-After and the RateLimit headers, whichever way the key is presented;
 * other keys and a wrong secret for the same key are unaffected; the key is admitted again once
 * Retry-After has passed; keyless requests are bounded per client address, and so are keys
 * never seen before. With --rate-limit 0 nothing is limited and no header is added.
 *
 * Refill runs on the server's clock (5 requests per second), so the checks only rely on what
 * cannot change with speed: a drained bucket admits at most one request in the next 200 ms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/server.h"

#define S_RATE  5
#define S_BURST 5

typedef struct {
    char key[256], auth[256];
} creds_t;

static creds_t s_account(test_server_t *s, const char *name)
{
    creds_t c;
    char *out = test_server_cli(s, (const char *[]){"accounts", "create", name, NULL});
    assert_non_null(out);
    const char *k = strstr(out, "IMPACT_API_KEY=");
    const char *v = strstr(out, "IMPACT_API_AUTH=");
    assert_non_null(k);
    assert_non_null(v);
    assert_int_equal(sscanf(k + 15, "%255s", c.key), 1);
    assert_int_equal(sscanf(v + 16, "%255s", c.auth), 1);
    free(out);
    return c;
}

typedef enum { AS_HEADERS, AS_BASIC, AS_QUERY, AS_NONE } presented_t;

/* GET `path` presenting `c` as asked; the reply must be freed. */
static void s_get(test_server_t *s, const char *path, const creds_t *c, presented_t how, test_proto_t proto, test_reply_t *r)
{
    char url[1024], header[800];
    test_request_t req = {.proto = proto, .method = "GET", .path = path};
    switch (how) {
    case AS_HEADERS:
        req.key = c->key;
        req.auth = c->auth;
        break;
    case AS_BASIC: {
        char plain[520];
        unsigned char b64[704];
        int n = snprintf(plain, sizeof(plain), "%s:%s", c->key, c->auth);
        EVP_EncodeBlock(b64, (const unsigned char *)plain, n);
        snprintf(header, sizeof(header), "Authorization: Basic %s", b64);
        req.header = header;
        break;
    }
    case AS_QUERY:
        snprintf(url, sizeof(url), "%s?api_key=%s&api_auth=%s", path, c->key, c->auth);
        req.path = url;
        break;
    case AS_NONE:
        break;
    }
    assert_int_equal(test_http(s, &req, r), CURLE_OK);
}

static void s_header(const test_reply_t *r, const char *name, char *buf, size_t size)
{
    if (test_reply_header(r, name, buf, size) != 0)
        fail_msg("no %s header in:\n%s", name, r->headers);
}

static void s_assert_no_header(const test_reply_t *r, const char *name)
{
    char value[128];
    if (test_reply_header(r, name, value, sizeof(value)) == 0)
        fail_msg("unexpected %s: %s", name, value);
}

/* The headers every limited answer carries; Remaining is returned. */
static long s_assert_ratelimit_headers(const test_reply_t *r)
{
    char value[128];
    s_header(r, "ratelimit-limit", value, sizeof(value));
    assert_string_equal(value, "5");
    s_header(r, "ratelimit-policy", value, sizeof(value));
    assert_string_equal(value, "5;w=1;burst=5");
    s_header(r, "ratelimit-reset", value, sizeof(value));
    long reset = strtol(value, NULL, 10);
    assert_true(reset >= 0 && reset <= 1); /* a bucket of 5 refills in a second at 5 per second */
    s_header(r, "ratelimit-remaining", value, sizeof(value));
    long remaining = strtol(value, NULL, 10);
    assert_true(remaining >= 0 && remaining < S_BURST);
    return remaining;
}

/* A 429 problem document as the front end writes it; `per` names the bucket in the detail. */
static void s_assert_refused(const test_reply_t *r, const char *per)
{
    char value[128];
    assert_int_equal(r->status, 429);
    assert_string_equal(r->content_type, "application/problem+json");
    s_header(r, "retry-after", value, sizeof(value));
    assert_string_equal(value, "1"); /* one request is 200 ms away: a second, rounded up */
    assert_int_equal(s_assert_ratelimit_headers(r), 0);
    s_header(r, "ratelimit-reset", value, sizeof(value));
    assert_string_equal(value, "1");

    json_t *doc = test_reply_json(r);
    assert_non_null(doc);
    const char *type = json_string_value(json_object_get(doc, "type"));
    assert_non_null(type);
    assert_non_null(strstr(type, "/problems/rate-limited"));
    assert_string_equal(json_string_value(json_object_get(doc, "title")), "Too many requests");
    assert_int_equal(json_integer_value(json_object_get(doc, "status")), 429);
    const char *detail = json_string_value(json_object_get(doc, "detail"));
    assert_non_null(detail);
    assert_non_null(strstr(detail, "5 requests per second"));
    assert_non_null(strstr(detail, per));
    assert_string_equal(json_string_value(json_object_get(doc, "instance")), "/v1");
    s_header(r, "x-request-id", value, sizeof(value));
    assert_string_equal(json_string_value(json_object_get(doc, "request_id")), value);
    json_decref(doc);
}

/* Sends until the first 429 (which is checked and returned in r); returns the admissions before. */
static int s_until_refused(test_server_t *s, const creds_t *c, presented_t how, const char *per, test_reply_t *r)
{
    for (int admitted = 0; admitted < 100; admitted++) {
        s_get(s, "/v1", c, how, admitted % 2 ? PROTO_H2C : PROTO_HTTP1, r);
        if (r->status == 429) {
            s_assert_refused(r, per);
            return admitted;
        }
        s_assert_ratelimit_headers(r);
        test_reply_free(r);
    }
    fail_msg("never refused");
    return -1;
}

static void test_limits_per_key_and_address(void **state)
{
    test_server_t *s = *state = test_server_new(false);
    setenv("IMPACT_RATE_LIMIT", "5", 1);
    setenv("IMPACT_RATE_BURST", "5", 1);
    test_server_start(s);
    unsetenv("IMPACT_RATE_LIMIT");
    unsetenv("IMPACT_RATE_BURST");
    /* While the server started, the harness polled /v1/health without credentials, and the
     * address's bucket paid for every poll (more of them on a loaded machine). The first sights
     * of keys below are charged to that bucket too, so let it refill first: 5 at 5/s. */
    usleep(1200000);
    creds_t b = s_account(s, "Limited B"), c = s_account(s, "Limited C");
    char value[128];
    test_reply_t r;

    /* A successful answer carries the headers: a fresh bucket of 5 less this request. */
    s_get(s, "/v1", &b, AS_HEADERS, PROTO_HTTP1, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(s_assert_ratelimit_headers(&r), S_BURST - 1);
    s_header(&r, "ratelimit-reset", value, sizeof(value));
    assert_string_equal(value, "1");
    test_reply_free(&r);

    /* The rest of the burst, then 429: at least the 4 left, and few more (refill is 5/s). */
    int admitted = s_until_refused(s, &b, AS_HEADERS, "API key", &r);
    assert_true(admitted >= S_BURST - 1);
    s_header(&r, "retry-after", value, sizeof(value));
    long retry_after = strtol(value, NULL, 10);
    test_reply_free(&r);

    /* The same pair however it is presented is the same bucket: a separate one would admit 5. */
    const presented_t ways[] = {AS_BASIC, AS_QUERY, AS_HEADERS};
    for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]); i++) {
        assert_true(s_until_refused(s, &b, ways[i], "API key", &r) <= 1);
        test_reply_free(&r);
    }

    /* A wrong secret is someone else's bucket: the actor refuses it, the key's budget is untouched. */
    creds_t wrong = b;
    snprintf(wrong.auth, sizeof(wrong.auth), "ia_not_the_secret");
    s_get(s, "/v1", &wrong, AS_HEADERS, PROTO_HTTP1, &r);
    assert_int_equal(r.status, 401);
    assert_int_equal(s_assert_ratelimit_headers(&r), S_BURST - 1);
    test_reply_free(&r);

    /* Another key is not affected. */
    s_get(s, "/v1", &c, AS_HEADERS, PROTO_H2C, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(s_assert_ratelimit_headers(&r), S_BURST - 1);
    test_reply_free(&r);

    /* After Retry-After the key is admitted again. */
    usleep((useconds_t)(retry_after * 1000000 + 50000));
    s_get(s, "/v1", &b, AS_HEADERS, PROTO_HTTP1, &r);
    assert_int_equal(r.status, 200);
    s_assert_ratelimit_headers(&r);
    test_reply_free(&r);

    /* Without credentials the client's address is the bucket: the actor's 401s are limited too.
     * A key never seen costs its address first, so invented keys are no way around it. (The
     * address may refill between the two requests; then the invented key is admitted and the
     * next attempt, with a new one, is made.) */
    bool refused_by_address = false;
    for (int attempt = 0; attempt < 5 && !refused_by_address; attempt++) {
        assert_true(s_until_refused(s, NULL, AS_NONE, "client address", &r) >= (attempt == 0 ? 1 : 0));
        test_reply_free(&r);
        creds_t invented;
        snprintf(invented.key, sizeof(invented.key), "ik_invented_%d", attempt);
        snprintf(invented.auth, sizeof(invented.auth), "ia_invented");
        s_get(s, "/v1", &invented, AS_HEADERS, PROTO_HTTP1, &r);
        if (r.status == 429) {
            s_assert_refused(&r, "client address");
            refused_by_address = true;
        }
        test_reply_free(&r);
    }
    assert_true(refused_by_address);
    /* ... while keys already known keep their own buckets. */
    s_get(s, "/v1", &c, AS_HEADERS, PROTO_HTTP1, &r);
    assert_int_equal(r.status, 200);
    test_reply_free(&r);

    /* What the front end answers itself is not limited and carries no RateLimit headers. */
    const char *local[] = {"/v1/health", "/v1/openapi.json"};
    for (size_t i = 0; i < 2; i++) {
        s_get(s, local[i], NULL, AS_NONE, PROTO_HTTP1, &r);
        assert_true(r.status == 200 || r.status == 503);
        s_assert_no_header(&r, "ratelimit-limit");
        test_reply_free(&r);
    }
}

static void test_zero_turns_limiting_off(void **state)
{
    test_server_t *s = *state = test_server_new(false);
    setenv("IMPACT_RATE_LIMIT", "0", 1);
    test_server_start(s);
    unsetenv("IMPACT_RATE_LIMIT");
    test_reply_t r;
    creds_t dev;
    snprintf(dev.key, sizeof(dev.key), "%s", s->key);
    snprintf(dev.auth, sizeof(dev.auth), "%s", s->auth);
    s_get(s, "/v1", &dev, AS_HEADERS, PROTO_HTTP1, &r);
    assert_int_equal(r.status, 200);
    s_assert_no_header(&r, "ratelimit-limit");
    s_assert_no_header(&r, "ratelimit-policy");
    test_reply_free(&r);
    /* Far beyond any burst, keyless and keyed alike. */
    for (int i = 0; i < 250; i++) {
        s_get(s, "/v1", i % 2 ? &dev : NULL, i % 2 ? AS_HEADERS : AS_NONE, PROTO_H2C, &r);
        assert_int_equal(r.status, i % 2 ? 200 : 401);
        test_reply_free(&r);
    }
}

static int s_teardown(void **state)
{
    test_server_t *s = *state;
    test_server_destroy(&s);
    *state = NULL;
    return 0;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_limits_per_key_and_address, s_teardown),
        cmocka_unit_test_teardown(test_zero_turns_limiting_off, s_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
