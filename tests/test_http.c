/*
 * The HTTP front end end to end: http_main runs in a child process (forked before this process
 * touches ZeroMQ, so the child starts with a clean czmq), the real broker and a real broker
 * worker run here as actors, the process table is a real shared-memory region, and libcurl is
 * the client (HTTP/1.1, h2c by prior knowledge and by Upgrade, h2 and HTTP/1.1 over TLS).
 *
 * The worker serves "store" and picks its behaviour from the path:
 *   /v1/echo...        200 echoing what arrived (method, path, query, headers, body, ids)
 *   /v1/drop           never answers (the front end's deadline gives 504)
 *   /v1/slow           answers after S_SLOW_MS (clients that give up earlier vanish mid-request)
 *   /v1/actor-error    broker status ACTOR_ERROR (502)
 *
 * The tests run in order and share the child: the last one stops it with SIGTERM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/worker.h"
#include "common/config.h"
#include "http/http.h"
#include "schemas/msg.h"
#include "shm/stats.h"
#include "tests/support.h"

#define S_SLOW_MS    400
#define S_TIMEOUT_MS "700"
#define S_MAX_BODY   4096
#define S_VANISHING  40
#define S_BENCH_BODY "{\"bench\":true}"

typedef struct {
    char *dir;
    impact_config_t config;
    char front[160];
    char back[160];
    char bench_file[160];
    int port;
    int tls_port;
    pid_t child;
    shm_region_t *shm;
    zactor_t *broker;
    zactor_t *worker;
} fixture_t;

static fixture_t s_f;

/* ---- the worker actor ----------------------------------------------------------------------- */

typedef struct {
    int64_t due;
    brk_request_t *request;
} delayed_t;

static void s_reply(brk_worker_t *worker, brk_request_t **request, int status, const char *body, msg_pairs_t *headers)
{
    msg_api_response_t res = {.status = (uint64_t)status, .has_status = true};
    res.content_type = msg_str("application/json");
    res.has_content_type = true;
    res.body = msg_str(body);
    res.has_body = true;
    if (headers != NULL) {
        res.headers = *headers;
        res.has_headers = true;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(msg_api_response_encode(&res, &sb), 0);
    brk_worker_reply(worker, request, BRK_STATUS_OK, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static json_t *s_view(msg_str_t s)
{
    return json_stringn(s.ptr ? s.ptr : "", s.len);
}

static void s_echo(brk_worker_t *worker, brk_request_t **request, const msg_api_request_t *m)
{
    json_t *headers = json_object();
    for (uint32_t i = 0; m->has_headers && i < m->headers.count; i++) {
        char name[64];
        if (msg_str_copy(m->headers.name[i], name, sizeof(name)) == 0)
            json_object_set_new(headers, name, s_view(m->headers.value[i]));
    }
    json_t *doc = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "method", s_view(m->method), "path", s_view(m->path), "query",
                            m->has_query ? s_view(m->query) : json_null(), "headers", headers, "body",
                            m->has_body ? s_view(m->body) : json_null(), "request_id", s_view(m->request_id), "base_url",
                            m->has_base_url ? s_view(m->base_url) : json_null());
    char *text = json_dumps(doc, JSON_COMPACT);
    msg_pairs_t pairs = {0};
    msg_pairs_add(&pairs, msg_str("X-Echo"), msg_str("yes"));
    msg_pairs_add(&pairs, msg_str("ETag"), msg_str("\"v1\""));
    /* Must not reach the client: a response split and a framing header. */
    msg_pairs_add(&pairs, msg_str("x-evil"), msg_str("a\r\nx-injected: 1"));
    msg_pairs_add(&pairs, msg_str("content-length"), msg_str("999"));
    s_reply(worker, request, 201, text, &pairs);
    free(text);
    json_decref(doc);
}

static void s_worker_actor(zsock_t *pipe, void *args)
{
    brk_worker_t *worker = brk_worker_new(args, "store", "store.test");
    zlistx_t *delayed = zlistx_new();
    zpoller_t *poller = zpoller_new(pipe, brk_worker_sock(worker), NULL);
    int slow_received = 0, slow_replied = 0;
    zsock_signal(pipe, 0);

    while (true) {
        int wait = brk_worker_tick(worker);
        delayed_t *first = zlistx_first(delayed);
        if (first != NULL) {
            int64_t until = first->due - zclock_mono();
            wait = until < 0 ? 0 : until < wait ? (int)until : wait;
        }
        void *which = zpoller_wait(poller, wait);
        if (which == pipe) {
            char *command = zstr_recv(pipe);
            bool stop = command == NULL || streq(command, "$TERM");
            if (command != NULL && streq(command, "COUNTS"))
                zsock_send(pipe, "ii", slow_received, slow_replied);
            zstr_free(&command);
            if (stop)
                break;
        } else if (which == brk_worker_sock(worker)) {
            /* A batch may carry several requests: serve all of them before polling again. */
            brk_request_t *request;
            while ((request = brk_worker_recv(worker)) != NULL) {
                msg_api_request_t m = {0};
                char err[128];
                if (msg_api_request_decode(zframe_data(request->body), zframe_size(request->body), &m, err, sizeof(err)) != 0) {
                    brk_worker_reply(worker, &request, BRK_STATUS_ACTOR_ERROR, "", 0);
                } else if (msg_str_eq(m.path, "/v1/drop")) {
                    brk_request_destroy(&request);
                } else if (msg_str_eq(m.path, "/v1/slow")) {
                    delayed_t *d = calloc(1, sizeof(*d));
                    d->due = zclock_mono() + S_SLOW_MS;
                    d->request = request;
                    zlistx_add_end(delayed, d);
                    slow_received++;
                } else if (msg_str_eq(m.path, "/v1/actor-error")) {
                    brk_worker_reply(worker, &request, BRK_STATUS_ACTOR_ERROR, "", 0);
                } else {
                    s_echo(worker, &request, &m);
                }
            }
        }
        for (delayed_t *d = zlistx_first(delayed); d != NULL && d->due <= zclock_mono(); d = zlistx_first(delayed)) {
            s_reply(worker, &d->request, 200, "{\"slow\":true}", NULL);
            slow_replied++;
            zlistx_detach_cur(delayed);
            free(d);
        }
    }
    for (delayed_t *d = zlistx_first(delayed); d != NULL; d = zlistx_next(delayed)) {
        brk_request_destroy(&d->request);
        free(d);
    }
    zlistx_destroy(&delayed);
    zpoller_destroy(&poller);
    brk_worker_destroy(&worker);
}

static void s_worker_counts(int *received, int *replied)
{
    zstr_send(s_f.worker, "COUNTS");
    assert_int_equal(zsock_recv(s_f.worker, "ii", received, replied), 0);
}

/* ---- the client ----------------------------------------------------------------------------- */

typedef struct {
    CURLcode rc;
    long status;
    long version;
    char headers[16384];
    size_t headers_len;
    char *body;
    size_t body_len;
} response_t;

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    response_t *r = arg;
    r->body = realloc(r->body, r->body_len + size * n + 1);
    memcpy(r->body + r->body_len, data, size * n);
    r->body_len += size * n;
    r->body[r->body_len] = '\0';
    return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    response_t *r = arg;
    size_t len = size * n;
    if (r->headers_len + len < sizeof(r->headers)) {
        memcpy(r->headers + r->headers_len, data, len);
        r->headers_len += len;
        r->headers[r->headers_len] = '\0';
    }
    return len;
}

static void s_response_free(response_t *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* The value of the last header `name` (case-insensitive) into buf; 0 or -1 when absent. */
static int s_header(const response_t *r, const char *name, char *buf, size_t size)
{
    int found = -1;
    size_t n = strlen(name);
    for (const char *line = r->headers; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            snprintf(buf, size, "%.*s", (int)len, v);
            found = 0;
        }
    }
    return found;
}

static CURL *s_easy(response_t *r, const char *method, const char *url, const char *body, size_t len, long version,
                    struct curl_slist *headers)
{
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, version);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    if (headers != NULL)
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (strncmp(url, "https:", 6) == 0) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, s_f.config.tls_cert);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    }
    return curl;
}

static void s_finish(CURL *curl, response_t *r)
{
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(curl, CURLINFO_HTTP_VERSION, &r->version);
    curl_easy_cleanup(curl);
}

static void s_request(response_t *r, const char *method, const char *url, const char *body, size_t len, long version,
                      struct curl_slist *headers)
{
    memset(r, 0, sizeof(*r));
    CURL *curl = s_easy(r, method, url, body, len, version, headers);
    r->rc = curl_easy_perform(curl);
    s_finish(curl, r);
}

static void s_url(char *buf, size_t size, bool tls, const char *path)
{
    snprintf(buf, size, "%s://127.0.0.1:%d%s", tls ? "https" : "http", tls ? s_f.tls_port : s_f.port, path);
}

static void s_get(response_t *r, const char *path, long version)
{
    char url[256];
    s_url(url, sizeof(url), false, path);
    s_request(r, "GET", url, NULL, 0, version, NULL);
}

/* Checks a problem document: media type, status, type slug, instance and the request id. */
static void s_assert_problem(const response_t *r, long status, const char *slug, const char *instance)
{
    char value[256], type[128];
    assert_int_equal(r->rc, CURLE_OK);
    assert_int_equal(r->status, status);
    assert_int_equal(s_header(r, "content-type", value, sizeof(value)), 0);
    assert_string_equal(value, "application/problem+json");
    json_error_t error;
    json_t *doc = json_loads(r->body ? r->body : "", 0, &error);
    assert_non_null(doc);
    snprintf(type, sizeof(type), "/problems/%s", slug);
    const char *got = json_string_value(json_object_get(doc, "type"));
    assert_non_null(got);
    assert_true(strlen(got) >= strlen(type) && strcmp(got + strlen(got) - strlen(type), type) == 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "status")), status);
    assert_non_null(json_string_value(json_object_get(doc, "title")));
    if (instance != NULL)
        assert_string_equal(json_string_value(json_object_get(doc, "instance")), instance);
    assert_int_equal(s_header(r, "x-request-id", value, sizeof(value)), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "request_id")), value);
    json_decref(doc);
}

static bool s_child_alive(void)
{
    int status;
    return waitpid(s_f.child, &status, WNOHANG) == 0;
}

/* ---- fixture -------------------------------------------------------------------------------- */

static bool s_can_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return ok;
}

static int s_wait_listening(int port)
{
    for (int i = 0; i < 400; i++) {
        if (s_can_connect(port))
            return 0;
        usleep(25 * 1000);
    }
    return -1;
}

static void s_write_proc(uint32_t slot, const char *role, const char *name, shm_proc_state_t state, uint32_t restarts)
{
    shm_proc_t proc = {.pid = 4242 + (int32_t)slot, .state = state, .restarts = restarts, .last_exit = -1};
    snprintf(proc.role, sizeof(proc.role), "%s", role);
    snprintf(proc.name, sizeof(proc.name), "%s", name);
    proc.started_unix_ms = INT64_C(1767225600123); /* 2026-01-01T00:00:00.123Z */
    proc.updated_unix_ms = proc.started_unix_ms;
    assert_int_equal(shm_proc_write(s_f.shm, slot, &proc), 0);
}

static int s_group_setup(void **state)
{
    s_f.dir = support_tmpdir("impact-http");
    impact_config_t *c = &s_f.config;
    s_f.port = support_free_port();
    do
        s_f.tls_port = support_free_port();
    while (s_f.tls_port == s_f.port);
    snprintf(c->listen, sizeof(c->listen), "127.0.0.1:%d", s_f.port);
    snprintf(c->tls_listen, sizeof(c->tls_listen), "127.0.0.1:%d", s_f.tls_port);
    snprintf(c->tls_cert, sizeof(c->tls_cert), "%s/tls/cert.pem", s_f.dir);
    snprintf(c->tls_key, sizeof(c->tls_key), "%s/tls/key.pem", s_f.dir);
    snprintf(c->run_dir, sizeof(c->run_dir), "%s", s_f.dir);
    snprintf(c->shm_name, sizeof(c->shm_name), "/impact-test-http-%d", (int)getpid());
    c->http_threads = 2;
    c->max_body = S_MAX_BODY;
    char err[256];
    if (http_tls_ensure_cert(c->tls_cert, c->tls_key, err, sizeof(err)) != 0) {
        fprintf(stderr, "certificate: %s\n", err);
        return -1;
    }
    config_endpoint(c, BRK_FRONT_ENDPOINT, s_f.front, sizeof(s_f.front));
    config_endpoint(c, BRK_BACK_ENDPOINT, s_f.back, sizeof(s_f.back));
    snprintf(s_f.bench_file, sizeof(s_f.bench_file), "%s/bare.json", s_f.dir);
    FILE *fp = fopen(s_f.bench_file, "w");
    fputs(S_BENCH_BODY, fp);
    fclose(fp);

    shm_region_unlink(c->shm_name);
    s_f.shm = shm_region_create(c->shm_name);
    if (s_f.shm == NULL)
        return -1;

    s_f.child = fork();
    if (s_f.child == 0) {
        setenv("IMPACT_REQUEST_TIMEOUT_MS", S_TIMEOUT_MS, 1);
        setenv("IMPACT_SHUTDOWN_GRACE_MS", "5000", 1);
        setenv("IMPACT_BENCH_BARE_FILE", s_f.bench_file, 1);
        exit(http_main(&s_f.config));
    }
    if (s_f.child < 0)
        return -1;

    brk_config_t broker = {.front_endpoint = s_f.front, .back_endpoint = s_f.back, .expiry_ms = 500};
    s_f.broker = zactor_new(brk_actor, &broker);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (s_f.broker == NULL || s_wait_listening(s_f.port) != 0 || s_wait_listening(s_f.tls_port) != 0)
        return -1;
    *state = &s_f;
    return 0;
}

static int s_group_teardown(void **state)
{
    if (s_f.child > 0 && s_child_alive()) {
        kill(s_f.child, SIGKILL);
        waitpid(s_f.child, NULL, 0);
    }
    zactor_destroy(&s_f.worker);
    zactor_destroy(&s_f.broker);
    shm_region_destroy(&s_f.shm);
    shm_region_unlink(s_f.config.shm_name);
    curl_global_cleanup();
    support_rmtree(&s_f.dir);
    return 0;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_no_worker_gives_503(void **state)
{
    response_t r;
    s_get(&r, "/v1/echo", CURL_HTTP_VERSION_1_1);
    s_assert_problem(&r, 503, "service-unavailable", "/v1/echo");
    char value[32];
    assert_int_equal(s_header(&r, "retry-after", value, sizeof(value)), 0);
    assert_string_equal(value, "1");
    s_response_free(&r);
}

static void test_worker_comes_up(void **state)
{
    s_f.worker = zactor_new(s_worker_actor, s_f.back);
    assert_non_null(s_f.worker);
    /* The broker learns of the worker from its first heartbeat; until then: 503. */
    response_t r = {0};
    for (int i = 0; i < 400; i++) {
        s_get(&r, "/v1/echo", CURL_HTTP_VERSION_1_1);
        if (r.status == 201)
            break;
        s_response_free(&r);
        usleep(25 * 1000);
    }
    assert_int_equal(r.status, 201);
    s_response_free(&r);
}

/* Sends a POST through the relay and checks both directions arrived intact. */
static void s_round_trip(bool tls, long version, long expect_version)
{
    char url[256], value[256], base_url[96];
    s_url(url, sizeof(url), tls, "/v1/echo/x?a=1&b=two");
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Authorization: Bearer secret-token");
    h = curl_slist_append(h, "X-Api-Key: k-123");
    h = curl_slist_append(h, "Idempotency-Key: idem-1");
    h = curl_slist_append(h, "Cookie: session=nope");
    h = curl_slist_append(h, "X-Custom: nope");
    const char *body = "{\"hello\":\"world\"}";
    response_t r;
    s_request(&r, "POST", url, body, strlen(body), version, h);
    curl_slist_free_all(h);

    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.version, expect_version);
    assert_int_equal(s_header(&r, "content-type", value, sizeof(value)), 0);
    assert_string_equal(value, "application/json");
    assert_int_equal(s_header(&r, "x-echo", value, sizeof(value)), 0);
    assert_string_equal(value, "yes");
    assert_int_equal(s_header(&r, "etag", value, sizeof(value)), 0);
    assert_string_equal(value, "\"v1\"");
    assert_int_equal(s_header(&r, "x-evil", value, sizeof(value)), -1);
    assert_int_equal(s_header(&r, "x-injected", value, sizeof(value)), -1);
    assert_int_equal(s_header(&r, "content-length", value, sizeof(value)) == 0 && strcmp(value, "999") == 0, 0);

    char request_id[64];
    assert_int_equal(s_header(&r, "x-request-id", request_id, sizeof(request_id)), 0);
    assert_int_equal(strlen(request_id), 24);
    assert_int_equal(strspn(request_id, "0123456789abcdef"), 24);

    json_error_t error;
    json_t *doc = json_loadb(r.body, r.body_len, 0, &error);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(doc, "path")), "/v1/echo/x");
    assert_string_equal(json_string_value(json_object_get(doc, "query")), "a=1&b=two");
    assert_string_equal(json_string_value(json_object_get(doc, "body")), body);
    assert_string_equal(json_string_value(json_object_get(doc, "request_id")), request_id);
    snprintf(base_url, sizeof(base_url), "%s://127.0.0.1:%d", tls ? "https" : "http", tls ? s_f.tls_port : s_f.port);
    assert_string_equal(json_string_value(json_object_get(doc, "base_url")), base_url);
    json_t *headers = json_object_get(doc, "headers");
    assert_string_equal(json_string_value(json_object_get(headers, "content-type")), "application/json");
    assert_string_equal(json_string_value(json_object_get(headers, "authorization")), "Bearer secret-token");
    assert_string_equal(json_string_value(json_object_get(headers, "x-api-key")), "k-123");
    assert_string_equal(json_string_value(json_object_get(headers, "idempotency-key")), "idem-1");
    /* cookies reach the actor (the caller app's session cookie); other headers stay at the edge */
    assert_string_equal(json_string_value(json_object_get(headers, "cookie")), "session=nope");
    assert_null(json_object_get(headers, "x-custom"));
    json_decref(doc);
    s_response_free(&r);
}

static void test_relay_http1(void **state)
{
    s_round_trip(false, CURL_HTTP_VERSION_1_1, CURL_HTTP_VERSION_1_1);
}

static void test_relay_h2c_prior_knowledge(void **state)
{
    s_round_trip(false, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE, CURL_HTTP_VERSION_2_0);
}

static void test_relay_h2c_upgrade(void **state)
{
    response_t r;
    s_get(&r, "/v1/echo/up", CURL_HTTP_VERSION_2_0);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.version, CURL_HTTP_VERSION_2_0);
    s_response_free(&r);
}

static void test_relay_h2_over_tls(void **state)
{
    s_round_trip(true, CURL_HTTP_VERSION_2TLS, CURL_HTTP_VERSION_2_0);
}

static void test_relay_http1_over_tls(void **state)
{
    s_round_trip(true, CURL_HTTP_VERSION_1_1, CURL_HTTP_VERSION_1_1);
}

static void test_silent_worker_gives_504(void **state)
{
    response_t r;
    s_get(&r, "/v1/drop", CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    s_assert_problem(&r, 504, "gateway-timeout", "/v1/drop");
    s_response_free(&r);
}

static void test_actor_error_gives_502(void **state)
{
    response_t r;
    s_get(&r, "/v1/actor-error?x=1", CURL_HTTP_VERSION_1_1);
    s_assert_problem(&r, 502, "bad-gateway", "/v1/actor-error");
    s_response_free(&r);
}

static void test_oversized_body_gives_413(void **state)
{
    char url[256];
    size_t len = S_MAX_BODY * 2;
    char *body = malloc(len);
    memset(body, 'x', len);
    s_url(url, sizeof(url), false, "/v1/echo");
    /* Expect: 100-continue makes curl wait for the verdict instead of pushing the body into a
     * connection the server closes after its 413 (which could reset the answer away). */
    struct curl_slist *h = curl_slist_append(NULL, "Expect: 100-continue");
    response_t r;
    s_request(&r, "POST", url, body, len, CURL_HTTP_VERSION_1_1, h);
    curl_slist_free_all(h);
    s_assert_problem(&r, 413, "payload-too-large", "/v1/echo");
    s_response_free(&r);

    /* HTTP/2: h2o resets the stream (REFUSED_STREAM); the request must not go through. */
    s_request(&r, "POST", url, body, len, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE, NULL);
    assert_true(r.rc != CURLE_OK || r.status != 201);
    s_response_free(&r);
    free(body);

    s_get(&r, "/v1/echo", CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    assert_int_equal(r.status, 201);
    s_response_free(&r);
}

static void test_malformed_http_gets_400(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s_f.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    const char *garbage = "THIS IS \x01 NOT HTTP\r\n\r\n";
    assert_int_equal(write(fd, garbage, strlen(garbage)), (ssize_t)strlen(garbage));
    char buf[512] = "";
    size_t got = 0;
    ssize_t n;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    assert_true(strncmp(buf, "HTTP/1.1 400", 12) == 0);

    response_t r;
    s_get(&r, "/v1/echo", CURL_HTTP_VERSION_1_1);
    assert_int_equal(r.status, 201);
    s_response_free(&r);
}

static void test_unknown_paths_give_404(void **state)
{
    response_t r;
    s_get(&r, "/nope?token=secret", CURL_HTTP_VERSION_1_1);
    s_assert_problem(&r, 404, "not-found", "/nope");
    assert_null(strstr(r.body, "secret"));
    s_response_free(&r);
    s_get(&r, "/v1x", CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    s_assert_problem(&r, 404, "not-found", "/v1x");
    s_response_free(&r);
}

/* Dot segments are refused, not resolved: the actor must see the path the route was chosen on. */
static void test_dot_segments_refused(void **state)
{
    char url[256];
    response_t r = {0};
    s_url(url, sizeof(url), false, "/v1/accounts/../echo");
    CURL *curl = s_easy(&r, "GET", url, NULL, 0, CURL_HTTP_VERSION_1_1, NULL);
    curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
    r.rc = curl_easy_perform(curl);
    s_finish(curl, &r);
    s_assert_problem(&r, 400, "bad-path", "/v1/accounts/../echo");
    s_response_free(&r);
}

static void test_bench_bare(void **state)
{
    response_t r;
    char value[64];
    s_get(&r, "/bench/bare", CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    assert_int_equal(r.status, 200);
    assert_int_equal(s_header(&r, "content-type", value, sizeof(value)), 0);
    assert_string_equal(value, "application/json");
    assert_int_equal(r.body_len, strlen(S_BENCH_BODY));
    assert_memory_equal(r.body, S_BENCH_BODY, r.body_len);
    s_response_free(&r);
}

static void test_health(void **state)
{
    s_write_proc(0, "broker", "broker", SHM_PROC_RUNNING, 0);
    s_write_proc(1, "store", "store.1", SHM_PROC_RUNNING, 2);
    response_t r;
    s_get(&r, "/v1/health", CURL_HTTP_VERSION_1_1);
    assert_int_equal(r.status, 200);
    json_error_t error;
    json_t *doc = json_loadb(r.body, r.body_len, 0, &error);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "ok");
    json_t *procs = json_object_get(doc, "processes");
    assert_int_equal(json_array_size(procs), 2);
    json_t *store = json_array_get(procs, 1);
    assert_string_equal(json_string_value(json_object_get(store, "role")), "store");
    assert_string_equal(json_string_value(json_object_get(store, "name")), "store.1");
    assert_string_equal(json_string_value(json_object_get(store, "state")), "running");
    assert_int_equal(json_integer_value(json_object_get(store, "pid")), 4243);
    assert_int_equal(json_integer_value(json_object_get(store, "restarts")), 2);
    assert_string_equal(json_string_value(json_object_get(store, "started_at")), "2026-01-01T00:00:00.123Z");
    json_decref(doc);
    s_response_free(&r);

    s_write_proc(1, "store", "store.1", SHM_PROC_BACKOFF, 3);
    s_get(&r, "/v1/health", CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    assert_int_equal(r.status, 503);
    doc = json_loadb(r.body, r.body_len, 0, &error);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "degraded");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(doc, "processes"), 1), "state")),
                        "backoff");
    json_decref(doc);
    s_response_free(&r);

    /* No region at all (the supervisor is gone or not up yet): a problem, not an empty table. */
    shm_region_destroy(&s_f.shm);
    assert_int_equal(shm_region_unlink(s_f.config.shm_name), 0);
    s_get(&r, "/v1/health", CURL_HTTP_VERSION_1_1);
    s_assert_problem(&r, 503, "health-unavailable", "/v1/health");
    s_response_free(&r);
    s_f.shm = shm_region_create(s_f.config.shm_name);
    assert_non_null(s_f.shm);
}

/*
 * Clients that give up before the reply: over HTTP/1.1 the connection closes, over h2c the
 * stream is reset while the connection lives on. Each reply then arrives for a request h2o has
 * freed; it must be dropped without touching it (ASan in the child would abort on a
 * use-after-free, which the final SIGTERM test would see as a non-zero exit).
 */
static void test_clients_that_vanish(void **state)
{
    int received0, replied0;
    s_worker_counts(&received0, &replied0);

    CURLM *multi = curl_multi_init();
    CURL *easy[S_VANISHING];
    response_t *responses = calloc(S_VANISHING, sizeof(*responses));
    char url[256];
    s_url(url, sizeof(url), false, "/v1/slow");
    for (int i = 0; i < S_VANISHING; i++) {
        easy[i] =
            s_easy(&responses[i], "GET", url, NULL, 0, i % 2 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : CURL_HTTP_VERSION_1_1, NULL);
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, (long)(S_SLOW_MS / 4));
        curl_multi_add_handle(multi, easy[i]);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(multi, &running);
        if (running)
            curl_multi_poll(multi, NULL, 0, 50, NULL);
    }
    CURLMsg *msg;
    int left, timed_out = 0;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE && msg->data.result == CURLE_OPERATION_TIMEDOUT)
            timed_out++;
    for (int i = 0; i < S_VANISHING; i++) {
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
        s_response_free(&responses[i]);
    }
    free(responses);
    curl_multi_cleanup(multi);
    assert_int_equal(timed_out, S_VANISHING);

    /* Wait until the worker has answered every request it got: those replies are the late ones. */
    int received, replied;
    for (int i = 0; i < 400; i++) {
        s_worker_counts(&received, &replied);
        if (received > received0 && replied == received)
            break;
        usleep(25 * 1000);
    }
    assert_int_equal(replied, received);

    response_t r;
    for (int i = 0; i < 4; i++) {
        s_get(&r, "/v1/echo", i % 2 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : CURL_HTTP_VERSION_1_1);
        assert_int_equal(r.status, 201);
        s_response_free(&r);
    }
    assert_true(s_child_alive());
}

/* A finished request whose connection stays open (keep-alive or HTTP/2), left idle. */
static CURL *s_idle_connection(long version, response_t *r)
{
    char url[256];
    s_url(url, sizeof(url), false, "/bench/bare");
    memset(r, 0, sizeof(*r));
    CURL *curl = s_easy(r, "GET", url, NULL, 0, version, NULL);
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    return curl;
}

/*
 * SIGTERM with a request in flight and idle connections open: the request still gets its
 * answer, the idle connections are closed rather than waited for, and the process exits 0.
 */
static void test_sigterm_finishes_in_flight_and_exits_0(void **state)
{
    int received0, replied0, received, replied;
    s_worker_counts(&received0, &replied0);
    response_t idle_r[2];
    CURL *idle[2] = {s_idle_connection(CURL_HTTP_VERSION_1_1, &idle_r[0]),
                     s_idle_connection(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE, &idle_r[1])};

    response_t r = {0};
    char url[256];
    s_url(url, sizeof(url), false, "/v1/slow");
    CURLM *multi = curl_multi_init();
    CURL *easy = s_easy(&r, "GET", url, NULL, 0, CURL_HTTP_VERSION_1_1, NULL);
    curl_multi_add_handle(multi, easy);
    int running = 1;
    /* Drive the transfer until the worker holds the request: it is then in flight in the child. */
    for (int i = 0; i < 400; i++) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 25, NULL);
        s_worker_counts(&received, &replied);
        if (received > received0)
            break;
    }
    assert_true(received > received0);
    assert_int_equal(kill(s_f.child, SIGTERM), 0);
    while (running) {
        curl_multi_perform(multi, &running);
        if (running)
            curl_multi_poll(multi, NULL, 0, 50, NULL);
    }
    CURLMsg *msg;
    int left;
    CURLcode result = CURLE_FAILED_INIT;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL)
        if (msg->msg == CURLMSG_DONE)
            result = msg->data.result;
    curl_multi_remove_handle(multi, easy);
    s_finish(easy, &r);
    curl_multi_cleanup(multi);
    assert_int_equal(result, CURLE_OK);
    assert_int_equal(r.status, 200);
    s_response_free(&r);

    /* Bounded wait for the exit (the bound is generous; exiting at all is what is checked). */
    int status = 0;
    pid_t done = 0;
    for (int i = 0; i < 600 && done == 0; i++) {
        done = waitpid(s_f.child, &status, WNOHANG);
        if (done == 0)
            usleep(25 * 1000);
    }
    assert_int_equal(done, s_f.child);
    s_f.child = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_false(s_can_connect(s_f.port));
    for (int i = 0; i < 2; i++) {
        curl_easy_cleanup(idle[i]);
        s_response_free(&idle_r[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_worker_gives_503),
        cmocka_unit_test(test_worker_comes_up),
        cmocka_unit_test(test_relay_http1),
        cmocka_unit_test(test_relay_h2c_prior_knowledge),
        cmocka_unit_test(test_relay_h2c_upgrade),
        cmocka_unit_test(test_relay_h2_over_tls),
        cmocka_unit_test(test_relay_http1_over_tls),
        cmocka_unit_test(test_silent_worker_gives_504),
        cmocka_unit_test(test_actor_error_gives_502),
        cmocka_unit_test(test_oversized_body_gives_413),
        cmocka_unit_test(test_malformed_http_gets_400),
        cmocka_unit_test(test_unknown_paths_give_404),
        cmocka_unit_test(test_dot_segments_refused),
        cmocka_unit_test(test_bench_bare),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_clients_that_vanish),
        cmocka_unit_test(test_sigterm_finishes_in_flight_and_exits_0),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
