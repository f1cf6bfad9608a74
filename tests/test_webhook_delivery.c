/*
 * Call-state webhook delivery by the real impactd's fan-out process (actors/fanout/webhooks.c) to
 * a local receiver that serves every connection on its own thread and checks what arrives:
 *
 * - every delivery carries a Standard Webhooks signature that verifies, with an HMAC computed
 *   here independently of common/webhook_signature.c, under the secret read from the API;
 * - several calls' deliveries are in flight together: the receiver holds the first request of
 *   call A open until a request of call B has arrived, which a deliverer posting one request at
 *   a time can never satisfy; yet no call ever has two requests unanswered, each call's events
 *   arrive in order, and each event is answered 2xx exactly once;
 * - a Retry-After (seconds or an HTTP-date) puts the next attempt no earlier than it asks, as the
 *   delivery log's attempt times show, and an excessive one is cut to an hour;
 * - the API's log of a call's callbacks (GET /v1/calls/{id}/deliveries) shows the same: each
 *   event's state and every attempt, the refused one and the one that delivered it;
 * - 410 Gone ends a call's deliveries: its pending events and those written later are failed;
 * - a rotation signs with both secrets, each verifying; bad rotation requests change nothing;
 * - the fan-out process killed with SIGKILL mid-delivery loses nothing: its restarted successor
 *   takes its calls over at once (long before their leases end) and posts from the first event
 *   whose outcome was not recorded, so an event may arrive again, with the same webhook-id, but
 *   the first receipts stay in order;
 * - the deliverer's database connection cut mid-delivery sends nothing twice: the outcomes it
 *   could not record are recorded once it is back, each attempt logged once;
 * - proxy variables in impactd's environment are not followed: the server runs with http_proxy
 *   and all_proxy naming a port where nothing listens, and every test above still gets its
 *   deliveries, straight from the deliverer (common/netguard.h says why).
 *
 * Events are written into the outbox directly, as the call_attempts trigger writes them
 * (tests/test_call_webhooks.c covers the trigger), so each test controls exactly what is sent.
 * Every wait polls for a state with a generous bound that only turns a hang into a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/dialing.h"
#include "tests/support.h"

#define RECEIVED_MAX  1024
#define PATHS_MAX     32
#define SECRETS_KNOWN 8
#define HOLD_SECONDS  60 /* only turns a deliverer that never overlaps into a failure, not a hang */
#define SLOW_MS       20

/* ---- signatures, verified independently ---------------------------------------------------- */

typedef struct {
    char text[64]; /* whsec_... */
    unsigned char key[48];
    int key_len;
} secret_t;

static void s_secret(secret_t *s, const char *text)
{
    snprintf(s->text, sizeof(s->text), "%s", text);
    assert_int_equal(strncmp(text, "whsec_", 6), 0);
    const char *b64 = text + 6;
    assert_int_equal(strlen(b64), 32); /* 24 bytes, no padding */
    s->key_len = EVP_DecodeBlock(s->key, (const unsigned char *)b64, 32);
    assert_int_equal(s->key_len, 24);
}

/* The bit of every known secret that signed one of the header's v1 signatures, and the count of
 * signatures in the header. */
static unsigned s_verify(const secret_t *known, int n_known, const char *id, const char *timestamp, const char *body,
                         const char *header, int *n_signatures)
{
    char content[4096];
    int len = snprintf(content, sizeof(content), "%s.%s.%s", id, timestamp, body);
    unsigned matched = 0;
    *n_signatures = 0;
    for (const char *p = header; *p;) {
        size_t n = strcspn(p, " ");
        (*n_signatures)++;
        for (int k = 0; k < n_known; k++) {
            unsigned char mac[32];
            unsigned int mac_len;
            char expected[64];
            HMAC(EVP_sha256(), known[k].key, known[k].key_len, (const unsigned char *)content, (size_t)len, mac, &mac_len);
            int e = snprintf(expected, sizeof(expected), "v1,");
            EVP_EncodeBlock((unsigned char *)expected + e, mac, (int)mac_len);
            if (strlen(expected) == n && strncmp(p, expected, n) == 0)
                matched |= 1u << k;
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    return matched;
}

/* ---- a receiver serving each connection on its own thread ---------------------------------- */

typedef struct {
    char path[64];
    int64_t id; /* webhook-id, equal to the body's id */
    char timestamp[24];
    int n_signatures;
    unsigned signed_by; /* bits of the known secrets that verified */
    int status;         /* what it was answered */
    bool overlapped;    /* this call already had an unanswered request when it arrived */
} received_t;

typedef struct {
    char path[64];
    int requests, unanswered;
} path_state_t;

typedef struct {
    int fd, port;
    pthread_t acceptor;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int threads; /* connection threads still running */
    secret_t known[SECRETS_KNOWN];
    int n_known;
    received_t got[RECEIVED_MAX];
    int n_got;
    path_state_t paths[PATHS_MAX];
    int n_paths;
    bool b_arrived;       /* a request of /hold/B came */
    bool a_released_by_b; /* the held first request of /hold/A saw it */
    time_t retry_date;    /* the HTTP-date /retry/date was told, Unix seconds */
} receiver_t;

static receiver_t *g_hook;
static test_dialing_t g;
static char g_account[24];

static void s_header(const char *head, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    const char *at = strcasestr(head, name);
    if (at == NULL)
        return;
    at += strlen(name);
    while (*at == ' ')
        at++;
    size_t n = strcspn(at, "\r\n");
    snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), at);
}

static path_state_t *s_path(receiver_t *r, const char *path)
{
    for (int i = 0; i < r->n_paths; i++)
        if (strcmp(r->paths[i].path, path) == 0)
            return &r->paths[i];
    assert_true(r->n_paths < PATHS_MAX);
    path_state_t *p = &r->paths[r->n_paths++];
    snprintf(p->path, sizeof(p->path), "%s", path);
    return p;
}

/* What a request to `path` is answered, the n-th on that path (from 1): the status, and one
 * extra header line (or ""). /slow/ paths answer after SLOW_MS, so deliveries last long enough
 * to be interrupted. */
static int s_answer(receiver_t *r, const char *path, int nth, char *extra, size_t size, int *delay_ms)
{
    extra[0] = '\0';
    *delay_ms = strncmp(path, "/slow/", 6) == 0 ? SLOW_MS : 0;
    if (strcmp(path, "/gone") == 0)
        return 410;
    if (strcmp(path, "/retry/seconds") == 0 && nth == 1) {
        snprintf(extra, size, "Retry-After: 3\r\n");
        return 503;
    }
    if (strcmp(path, "/retry/date") == 0 && nth == 1) {
        r->retry_date = time(NULL) + 3;
        struct tm tm;
        gmtime_r(&r->retry_date, &tm);
        char date[64];
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        snprintf(extra, size, "Retry-After: %s\r\n", date);
        return 503;
    }
    if (strcmp(path, "/retry/long") == 0) {
        snprintf(extra, size, "Retry-After: 100000\r\n");
        return 503;
    }
    return 204;
}

static void s_serve(receiver_t *r, int conn)
{
    char buf[8192];
    size_t n = 0;
    ssize_t got;
    const char *body = NULL;
    long length = -1;
    while (n < sizeof(buf) - 1 && (got = read(conn, buf + n, sizeof(buf) - 1 - n)) > 0) {
        n += (size_t)got;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        char *cl = strcasestr(buf, "content-length:");
        if (end && cl)
            length = strtol(cl + 15, NULL, 10), body = end + 4;
        if (body && (long)(n - (size_t)(body - buf)) >= length)
            break;
    }
    if (body == NULL)
        return;
    char path[64] = "", id[32], timestamp[24], signature[1024];
    sscanf(buf, "%*s %63s", path);
    s_header(buf, "\r\nwebhook-id:", id, sizeof(id));
    s_header(buf, "\r\nwebhook-timestamp:", timestamp, sizeof(timestamp));
    s_header(buf, "\r\nwebhook-signature:", signature, sizeof(signature));
    json_t *event = json_loads(body, 0, NULL);

    pthread_mutex_lock(&r->lock);
    path_state_t *p = s_path(r, path);
    int nth = ++p->requests;
    received_t *rec = r->n_got < RECEIVED_MAX ? &r->got[r->n_got++] : NULL;
    if (rec) {
        snprintf(rec->path, sizeof(rec->path), "%s", path);
        rec->id = strtoll(id, NULL, 10);
        if (event == NULL || json_integer_value(json_object_get(event, "id")) != rec->id)
            rec->id = -1; /* the header and the body disagree: fails the checks below */
        snprintf(rec->timestamp, sizeof(rec->timestamp), "%s", timestamp);
        rec->signed_by = s_verify(r->known, r->n_known, id, timestamp, body, signature, &rec->n_signatures);
        rec->overlapped = p->unanswered > 0;
    }
    p->unanswered++;
    if (strcmp(path, "/hold/B") == 0) {
        r->b_arrived = true;
        pthread_cond_broadcast(&r->changed);
    }
    if (strcmp(path, "/hold/A") == 0 && nth == 1) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += HOLD_SECONDS;
        while (!r->b_arrived && pthread_cond_timedwait(&r->changed, &r->lock, &until) == 0)
            ;
        r->a_released_by_b = r->b_arrived;
    }
    char extra[128];
    int delay_ms;
    int status = s_answer(r, path, nth, extra, sizeof(extra), &delay_ms);
    if (rec)
        rec->status = status;
    pthread_mutex_unlock(&r->lock);
    json_decref(event);
    usleep((useconds_t)delay_ms * 1000);
    /* Answered from here on: the deliverer may send the call's next event once it reads this. */
    pthread_mutex_lock(&r->lock);
    p->unanswered--;
    pthread_mutex_unlock(&r->lock);

    char reply[512];
    int len = snprintf(reply, sizeof(reply), "HTTP/1.1 %d X\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n", status, extra);
    ssize_t ignored = write(conn, reply, (size_t)len);
    (void)ignored;
}

typedef struct {
    receiver_t *r;
    int conn;
} connection_t;

static void *s_connection(void *arg)
{
    connection_t *c = arg;
    receiver_t *r = c->r;
    s_serve(r, c->conn);
    close(c->conn);
    free(c);
    pthread_mutex_lock(&r->lock);
    r->threads--;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static void *s_accept(void *arg)
{
    receiver_t *r = arg;
    int conn;
    while ((conn = accept(r->fd, NULL, NULL)) >= 0) {
        connection_t *c = malloc(sizeof(*c));
        pthread_t thread;
        *c = (connection_t){r, conn};
        pthread_mutex_lock(&r->lock);
        r->threads++;
        pthread_mutex_unlock(&r->lock);
        if (pthread_create(&thread, NULL, s_connection, c) != 0) {
            s_connection(c);
            continue;
        }
        pthread_detach(thread);
    }
    return NULL;
}

static receiver_t *s_receiver_start(void)
{
    receiver_t *r = calloc(1, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->changed, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(r->fd, 64), 0);
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&addr, &len), 0);
    r->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&r->acceptor, NULL, s_accept, r), 0);
    return r;
}

static void s_receiver_stop(receiver_t **r_p)
{
    receiver_t *r = *r_p;
    shutdown(r->fd, SHUT_RDWR); /* wakes accept() */
    pthread_join(r->acceptor, NULL);
    close(r->fd);
    pthread_mutex_lock(&r->lock);
    r->b_arrived = true; /* releases a held request */
    pthread_cond_broadcast(&r->changed);
    while (r->threads > 0)
        pthread_cond_wait(&r->changed, &r->lock);
    pthread_mutex_unlock(&r->lock);
    pthread_cond_destroy(&r->changed);
    pthread_mutex_destroy(&r->lock);
    free(r);
    *r_p = NULL;
}

/* The secrets the API lists as active become the receiver's known secrets, in list order. */
static int s_learn_secrets(void)
{
    json_t *list = test_call(g.server, g.server->key, g.server->auth, "GET", "/v1/webhook_secrets", NULL, NULL, 0, 200);
    size_t i;
    json_t *item;
    pthread_mutex_lock(&g_hook->lock);
    g_hook->n_known = 0;
    json_array_foreach(json_object_get(list, "items"), i, item)
    {
        if (!json_is_true(json_object_get(item, "active")))
            continue;
        assert_true(g_hook->n_known < SECRETS_KNOWN);
        s_secret(&g_hook->known[g_hook->n_known++], json_string_value(json_object_get(item, "secret")));
    }
    int n = g_hook->n_known;
    pthread_mutex_unlock(&g_hook->lock);
    json_decref(list);
    return n;
}

/* ---- outbox rows -------------------------------------------------------------------------- */

/* A call reporting to `path` on the receiver (its campaign is never started). */
static int64_t s_call(const char *path)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "WITH c AS (INSERT INTO campaigns (account_id, name, origin) VALUES (%s, 'hook %s', 'call') RETURNING id) "
             "INSERT INTO calls (account_id, campaign_id, call_state_url, numbers_given) SELECT %s, id, "
             "'http://127.0.0.1:%d%s', 1 FROM c RETURNING id",
             g_account, path, g_account, g_hook->port, path);
    return test_db_count(g.db, sql);
}

/* Writes `n` events of `call` (one attempt going through its states), in one transaction. */
static void s_events(int64_t call, int n)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "INSERT INTO call_events (account_id, call_id, campaign_id, attempt_id, type, payload, occurred_at) "
             "SELECT account_id, id, campaign_id, 700000000000 + id, (ARRAY['call.dialing', 'call.answered', "
             "'call.bridged', 'call.ended'])[1 + (s - 1) %% 4], jsonb_build_object('call_id', id, 'step', s), now() "
             "FROM calls, generate_series(1, %d) AS s WHERE id = %" PRId64 " ORDER BY s",
             n, call);
    test_db_exec(g.db, sql);
    test_db_exec(g.db, "NOTIFY call_events");
}

static void s_wait_settled(int64_t call, int seconds)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_events WHERE call_id = %" PRId64 " AND delivered_at IS NULL AND failed_at IS NULL", call);
    test_db_wait_equal(&g, sql, 0, seconds);
}

/* Requests the receiver got on `path`. */
static int s_requests(const char *path)
{
    pthread_mutex_lock(&g_hook->lock);
    int n = 0;
    for (int i = 0; i < g_hook->n_got; i++)
        n += strcmp(g_hook->got[i].path, path) == 0;
    pthread_mutex_unlock(&g_hook->lock);
    return n;
}

/* ---- fixtures ----------------------------------------------------------------------------- */

static int s_setup(void **state)
{
    g_hook = s_receiver_start();
    /* Inherited by impactd: a delivery that went through a proxy would find nothing there. */
    setenv("http_proxy", "http://127.0.0.1:9", 1);
    setenv("all_proxy", "http://127.0.0.1:9", 1);
    /* the receiver runs on this machine */
    test_dialing_start(&g, "agents = 1\n", true);
    json_t *root = test_call(g.server, g.server->key, g.server->auth, "GET", "/v1", NULL, NULL, 0, 200);
    snprintf(g_account, sizeof(g_account), "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(json_object_get(root, "account"), "id")));
    json_decref(root);
    return 0;
}

static int s_teardown(void **state)
{
    test_dialing_stop(&g);
    s_receiver_stop(&g_hook);
    return 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

#define EVENTS_PER_CALL 4

static void test_deliveries_are_signed_concurrent_and_in_order(void **state)
{
    /* the account was given a secret when it was made, and the API shows it */
    assert_int_equal(s_learn_secrets(), 1);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM webhook_secrets WHERE account_id = %s AND expires_at IS NULL AND secret = '%s'", g_account,
             g_hook->known[0].text);
    assert_int_equal(test_db_count(g.db, sql), 1);

    const char *paths[] = {"/hold/A", "/hold/B", "/plain/C"};
    int64_t calls[3];
    for (int i = 0; i < 3; i++)
        calls[i] = s_call(paths[i]);
    for (int i = 0; i < 3; i++)
        s_events(calls[i], EVENTS_PER_CALL);
    for (int i = 0; i < 3; i++)
        s_wait_settled(calls[i], 120);

    /* concurrency, structurally: A's first request was held open until B's arrived */
    pthread_mutex_lock(&g_hook->lock);
    assert_true(g_hook->a_released_by_b);
    assert_int_equal(s_path(g_hook, "/hold/A")->requests, EVENTS_PER_CALL); /* answered, not timed out and retried */
    time_t now = time(NULL);
    for (int c = 0; c < 3; c++) {
        int64_t last = 0, delivered = 0;
        for (int i = 0; i < g_hook->n_got; i++) {
            const received_t *rec = &g_hook->got[i];
            if (strcmp(rec->path, paths[c]) != 0)
                continue;
            /* signed with the account's one secret, ids agree, the timestamp is this attempt's */
            assert_int_equal(rec->n_signatures, 1);
            assert_int_equal(rec->signed_by, 1);
            assert_true(rec->id > 0);
            long stamp = strtol(rec->timestamp, NULL, 10);
            assert_true(stamp > now - 600 && stamp <= now + 5);
            /* one request at a time per call, in order, each event answered 2xx once */
            assert_false(rec->overlapped);
            assert_true(rec->id > last);
            last = rec->id;
            delivered += rec->status == 204;
        }
        assert_int_equal(delivered, EVENTS_PER_CALL);
    }
    pthread_mutex_unlock(&g_hook->lock);
    /* the outbox agrees: every event delivered once, one attempt each, all 204 */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_events e JOIN call_event_deliveries d ON d.event_id = e.id WHERE e.call_id IN (%" PRId64
             ", %" PRId64 ", %" PRId64 ") AND e.delivered_at IS NOT NULL AND e.attempts = 1 AND d.http_status = 204",
             calls[0], calls[1], calls[2]);
    assert_int_equal(test_db_count(g.db, sql), 3 * EVENTS_PER_CALL);
}

/* The delivery log's two attempts of the one event of `call`: seconds from the end of the first
 * (its start plus its duration, when its outcome was settled) to the start of the second. */
static double s_gap_after_first(int64_t call)
{
    char sql[768];
    snprintf(sql, sizeof(sql),
             "SELECT extract(epoch FROM max(d.attempted_at) - min(d.attempted_at + make_interval(secs => d.duration_ms / 1000.0)) "
             "FILTER (WHERE d.http_status = 503)) * 1000 FROM call_event_deliveries d JOIN call_events e ON e.id = d.event_id "
             "WHERE e.call_id = %" PRId64,
             call);
    return (double)test_db_count(g.db, sql) / 1000.0;
}

/* The API's log of the two calls of test_retry_after_is_honoured: `delivered` was refused once
 * with a Retry-After, then delivered; `waiting` was refused and waits an hour. */
static void s_check_delivery_log(int64_t delivered, int64_t waiting)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/calls/%" PRId64 "/deliveries", delivered);
    json_t *log = test_call(g.server, g.server->key, g.server->auth, "GET", path, NULL, NULL, 0, 200);
    json_t *items = json_object_get(log, "items");
    assert_int_equal(json_array_size(items), 1);
    json_t *d = json_array_get(items, 0);
    int64_t event = json_integer_value(json_object_get(d, "id"));
    assert_int_equal(json_integer_value(json_object_get(d, "call_id")), delivered);
    assert_string_equal(json_string_value(json_object_get(d, "type")), "call.dialing");
    assert_string_equal(json_string_value(json_object_get(d, "state")), "delivered");
    assert_true(json_is_null(json_object_get(d, "next_attempt_at")));
    assert_non_null(json_string_value(json_object_get(d, "settled_at")));
    json_t *attempts = json_object_get(d, "attempts");
    assert_int_equal(json_array_size(attempts), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(attempts, 0), "http_status")), 503);
    assert_string_equal(json_string_value(json_object_get(json_array_get(attempts, 0), "error")), "HTTP 503 (Retry-After: 3 s)");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(attempts, 1), "http_status")), 204);
    assert_true(json_is_null(json_object_get(json_array_get(attempts, 1), "error")));
    json_decref(log);

    /* one callback read alone is the same; a filter that matches none lists none */
    snprintf(path, sizeof(path), "/v1/calls/%" PRId64 "/deliveries/%" PRId64, delivered, event);
    json_t *one = test_call(g.server, g.server->key, g.server->auth, "GET", path, NULL, NULL, 0, 200);
    assert_int_equal(json_array_size(json_object_get(one, "attempts")), 2);
    json_decref(one);
    snprintf(path, sizeof(path), "/v1/calls/%" PRId64 "/deliveries?state=pending", delivered);
    log = test_call(g.server, g.server->key, g.server->auth, "GET", path, NULL, NULL, 0, 200);
    assert_int_equal(json_array_size(json_object_get(log, "items")), 0);
    json_decref(log);

    snprintf(path, sizeof(path), "/v1/calls/%" PRId64 "/deliveries?state=pending", waiting);
    log = test_call(g.server, g.server->key, g.server->auth, "GET", path, NULL, NULL, 0, 200);
    d = json_array_get(json_object_get(log, "items"), 0);
    assert_non_null(d);
    assert_non_null(json_string_value(json_object_get(d, "next_attempt_at")));
    assert_true(json_is_null(json_object_get(d, "settled_at")));
    assert_string_equal(json_string_value(json_object_get(d, "last_error")), "HTTP 503 (Retry-After: 3600 s)");
    assert_int_equal(json_array_size(json_object_get(d, "attempts")), 1);
    json_decref(log);

    /* another call's event is not this call's; an unknown call and a bad filter are refused */
    snprintf(path, sizeof(path), "/v1/calls/%" PRId64 "/deliveries/%" PRId64, waiting, event);
    json_decref(test_call(g.server, g.server->key, g.server->auth, "GET", path, NULL, NULL, 0, 404));
    json_decref(test_call(g.server, g.server->key, g.server->auth, "GET", "/v1/calls/999999999/deliveries", NULL, NULL, 0, 404));
    snprintf(path, sizeof(path), "/v1/calls/%" PRId64 "/deliveries?state=lost", delivered);
    json_decref(test_call(g.server, g.server->key, g.server->auth, "GET", path, NULL, NULL, 0, 422));
}

static void test_retry_after_is_honoured(void **state)
{
    char sql[768];
    int64_t seconds = s_call("/retry/seconds"), date = s_call("/retry/date"), longer = s_call("/retry/long");
    s_events(seconds, 1);
    s_events(date, 1);
    s_events(longer, 1);
    s_wait_settled(seconds, 60);
    s_wait_settled(date, 60);

    /* "Retry-After: 3" beats the first back-off step (1 s): the retry starts 3 s or more after */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_event_deliveries d JOIN call_events e ON e.id = d.event_id WHERE e.call_id = %" PRId64
             " AND d.http_status = 503 AND d.error = 'HTTP 503 (Retry-After: 3 s)'",
             seconds);
    assert_int_equal(test_db_count(g.db, sql), 1);
    assert_true(s_gap_after_first(seconds) >= 3.0);
    assert_int_equal(s_requests("/retry/seconds"), 2);

    /* an HTTP-date: the retry starts no earlier than the date named */
    pthread_mutex_lock(&g_hook->lock);
    time_t stated = g_hook->retry_date;
    pthread_mutex_unlock(&g_hook->lock);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_event_deliveries d JOIN call_events e ON e.id = d.event_id WHERE e.call_id = %" PRId64
             " AND d.http_status = 204 AND d.attempted_at >= to_timestamp(%lld)",
             date, (long long)stated);
    assert_int_equal(test_db_count(g.db, sql), 1);
    assert_int_equal(s_requests("/retry/date"), 2);

    /* a Retry-After beyond an hour is cut to one: the next attempt is set exactly an hour after
     * the first one's outcome was settled */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_events WHERE call_id = %" PRId64 " AND attempts = 1 AND last_error = "
             "'HTTP 503 (Retry-After: 3600 s)'",
             longer);
    test_db_wait_equal(&g, sql, 1, 60);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_events e JOIN call_event_deliveries d ON d.event_id = e.id WHERE e.call_id = %" PRId64
             " AND abs(extract(epoch FROM e.next_attempt_at - (d.attempted_at + make_interval(secs => d.duration_ms / 1000.0) "
             "+ interval '1 hour'))) < 0.001",
             longer);
    assert_int_equal(test_db_count(g.db, sql), 1);

    s_check_delivery_log(seconds, longer);
}

static void test_gone_stops_the_call(void **state)
{
    char sql[768];
    int64_t gone = s_call("/gone"), fence = s_call("/plain/fence");
    s_events(gone, 3);
    s_wait_settled(gone, 60);

    /* the first event was refused for good, the others failed unsent */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_events WHERE call_id = %" PRId64 " AND failed_at IS NOT NULL AND delivered_at IS NULL "
             "AND attempts = 1 AND last_error = 'HTTP 410 Gone: the receiver wants no more of this call''s events'",
             gone);
    assert_int_equal(test_db_count(g.db, sql), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_events WHERE call_id = %" PRId64 " AND failed_at IS NOT NULL AND attempts = 0 "
             "AND last_error = 'not sent: the call_state_url answered 410 Gone to event ' || (SELECT min(id) FROM call_events "
             "WHERE call_id = %" PRId64 ")",
             gone, gone);
    assert_int_equal(test_db_count(g.db, sql), 2);

    /* an event written later is failed as it is written */
    s_events(gone, 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_events WHERE call_id = %" PRId64 " AND failed_at IS NOT NULL AND attempts = 0 "
             "AND last_error = 'not sent: the call_state_url answered 410 Gone earlier'",
             gone);
    assert_int_equal(test_db_count(g.db, sql), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM calls WHERE id = %" PRId64 " AND call_state_gone_at IS NOT NULL", gone);
    assert_int_equal(test_db_count(g.db, sql), 1);

    /* after another call's event, written later, was delivered, the receiver still saw /gone once */
    s_events(fence, 1);
    s_wait_settled(fence, 60);
    assert_int_equal(s_requests("/plain/fence"), 1);
    assert_int_equal(s_requests("/gone"), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_event_deliveries d JOIN call_events e ON e.id = d.event_id WHERE e.call_id = %" PRId64,
             gone);
    assert_int_equal(test_db_count(g.db, sql), 1);
}

/* The signatures of the one request on `path`: how many, and which known secrets made them. */
static unsigned s_signed_by(const char *path, int *n_signatures)
{
    unsigned by = 0;
    int found = 0;
    pthread_mutex_lock(&g_hook->lock);
    for (int i = 0; i < g_hook->n_got; i++) {
        if (strcmp(g_hook->got[i].path, path) == 0) {
            found++;
            by = g_hook->got[i].signed_by;
            *n_signatures = g_hook->got[i].n_signatures;
        }
    }
    pthread_mutex_unlock(&g_hook->lock);
    assert_int_equal(found, 1);
    return by;
}

static void test_rotation_signs_with_both_secrets(void **state)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM webhook_secrets WHERE account_id = %s", g_account);
    int64_t before = test_db_count(g.db, sql);

    /* bad requests are refused and change nothing */
    const char *bad[] = {"{\"expire_previous_in_seconds\": -1}", "{\"expire_previous_in_seconds\": 604801}",
                         "{\"expire_previous_in_seconds\": \"soon\"}", "{\"secret\": \"whsec_mine\"}", "[1]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        json_decref(test_call(g.server, g.server->key, g.server->auth, "POST", "/v1/webhook_secrets", "application/json", bad[i], 0,
                              i == 4 ? 400 : 422));
    assert_int_equal(test_db_count(g.db, sql), before);
    json_decref(test_call(g.server, g.server->key, g.server->auth, "DELETE", "/v1/webhook_secrets/1", NULL, NULL, 0, 405));

    /* a rotation: a new secret, the old one active for a day more */
    json_t *made = test_call(g.server, g.server->key, g.server->auth, "POST", "/v1/webhook_secrets", NULL, NULL, 0, 201);
    assert_true(json_is_true(json_object_get(made, "active")));
    assert_true(json_is_null(json_object_get(made, "expires_at")));
    const char *secret = json_string_value(json_object_get(made, "secret"));
    assert_non_null(secret);
    assert_int_equal(strlen(secret), 38);
    assert_int_equal(s_learn_secrets(), 2);
    assert_string_equal(g_hook->known[1].text, secret);
    json_decref(made);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM webhook_secrets WHERE account_id = %s AND expires_at BETWEEN now() + interval '23 hours' AND "
             "now() + interval '24 hours'",
             g_account);
    assert_int_equal(test_db_count(g.db, sql), 1);

    int64_t both = s_call("/rotation/both");
    s_events(both, 1);
    s_wait_settled(both, 60);
    int n = 0;
    assert_int_equal(s_signed_by("/rotation/both", &n), 3); /* each signature verifies, one per secret */
    assert_int_equal(n, 2);

    /* a rotation that retires the older secrets at once: one signature, by the newest */
    made = test_call(g.server, g.server->key, g.server->auth, "POST", "/v1/webhook_secrets", "application/json",
                     "{\"expire_previous_in_seconds\": 0}", 0, 201);
    json_decref(made);
    assert_int_equal(s_learn_secrets(), 1);
    int64_t newest = s_call("/rotation/newest");
    s_events(newest, 1);
    s_wait_settled(newest, 60);
    assert_int_equal(s_signed_by("/rotation/newest", &n), 1);
    assert_int_equal(n, 1);
    json_t *list = test_call(g.server, g.server->key, g.server->auth, "GET", "/v1/webhook_secrets", NULL, NULL, 0, 200);
    assert_int_equal(json_integer_value(json_object_get(list, "total")), before + 2);
    json_decref(list);

    /* an account made later has its own secret from the start */
    test_db_exec(g.db, "INSERT INTO accounts (name) VALUES ('Later')");
    assert_int_equal(test_db_count(g.db, "SELECT count(*) FROM webhook_secrets s JOIN accounts a ON a.id = s.account_id WHERE "
                                         "a.name = 'Later' AND s.expires_at IS NULL AND s.secret ~ '^whsec_[A-Za-z0-9+/]{32}$'"),
                     1);
}

/* ---- interruptions ------------------------------------------------------------------------ */

#define CUT_CALLS  6
#define CUT_EVENTS 10

/* Calls on /slow/<prefix><n> with CUT_EVENTS events each, written; returns once the receiver has
 * had `requests` of them, deliveries still under way. */
static void s_slow_calls(const char *prefix, int64_t *calls, int requests)
{
    char path[64];
    for (int i = 0; i < CUT_CALLS; i++) {
        snprintf(path, sizeof(path), "/slow/%s%d", prefix, i);
        calls[i] = s_call(path);
    }
    for (int i = 0; i < CUT_CALLS; i++)
        s_events(calls[i], CUT_EVENTS);
    for (int tries = 0; tries < 600; tries++) {
        int got = 0;
        for (int i = 0; i < CUT_CALLS; i++) {
            snprintf(path, sizeof(path), "/slow/%s%d", prefix, i);
            got += s_requests(path);
        }
        if (got >= requests)
            return;
        usleep(10 * 1000);
    }
    fail_msg("the deliveries of /slow/%s* never started", prefix);
}

/* What /slow/<prefix><n> received: every one of the call's events answered 2xx, the first
 * receipts in id order, signed; a repeat only of an event received before. Returns the requests. */
static int s_check_slow(const char *prefix, int n, int64_t call)
{
    char path[64], sql[256];
    snprintf(path, sizeof(path), "/slow/%s%d", prefix, n);
    snprintf(sql, sizeof(sql), "SELECT min(id) FROM call_events WHERE call_id = %" PRId64, call);
    int64_t first = test_db_count(g.db, sql), last = 0, requests = 0;
    pthread_mutex_lock(&g_hook->lock);
    for (int i = 0; i < g_hook->n_got; i++) {
        const received_t *rec = &g_hook->got[i];
        if (strcmp(rec->path, path) != 0)
            continue;
        requests++;
        assert_int_equal(rec->status, 204);
        assert_int_equal(rec->signed_by, 1);
        assert_true(rec->id >= first && rec->id < first + CUT_EVENTS);
        if (rec->id > last) {
            assert_int_equal(rec->id, last ? last + 1 : first);
            last = rec->id;
        }
    }
    pthread_mutex_unlock(&g_hook->lock);
    assert_int_equal(last, first + CUT_EVENTS - 1);
    return (int)requests;
}

static void test_kill_9_posts_again_and_loses_nothing(void **state)
{
    int64_t calls[CUT_CALLS];
    int fanout = test_wait_process(&g, "fanout", 0);
    s_slow_calls("kill", calls, CUT_CALLS * CUT_EVENTS / 4);
    assert_int_equal(kill(fanout, SIGKILL), 0);
    /* The dead process's leases last WEBHOOKS_LEASE_SECONDS (120 s): done well before, its
     * successor took them over. */
    test_wait_process(&g, "fanout", fanout);
    for (int i = 0; i < CUT_CALLS; i++)
        s_wait_settled(calls[i], 60);
    int requests = 0;
    for (int i = 0; i < CUT_CALLS; i++)
        requests += s_check_slow("kill", i, calls[i]);
    /* Every event delivered, and a delivery recorded for each; repeats happen only if the kill
     * came between a 2xx and its record. */
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM call_events WHERE call_id BETWEEN %" PRId64 " AND %" PRId64 " AND delivered_at IS NOT NULL",
             calls[0], calls[CUT_CALLS - 1]);
    assert_int_equal(test_db_count(g.db, sql), CUT_CALLS * CUT_EVENTS);
    assert_true(requests >= CUT_CALLS * CUT_EVENTS);
    print_message("killed mid-delivery: %d events, %d requests\n", CUT_CALLS * CUT_EVENTS, requests);
}

static void test_a_lost_database_connection_sends_nothing_twice(void **state)
{
    int64_t calls[CUT_CALLS];
    s_slow_calls("cut", calls, CUT_CALLS * CUT_EVENTS / 4);
    /* The deliverer's connection is the one whose statements name the leases. */
    assert_true(test_db_count(g.db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
                                    "current_database() AND pid <> pg_backend_pid() AND query LIKE '%call_event_leases%'") >= 1);
    for (int i = 0; i < CUT_CALLS; i++)
        s_wait_settled(calls[i], 60);
    for (int i = 0; i < CUT_CALLS; i++)
        assert_int_equal(s_check_slow("cut", i, calls[i]), CUT_EVENTS);
    /* once each, one attempt each, each attempt logged once */
    char sql[512];
    snprintf(
        sql, sizeof(sql),
        "SELECT count(*) FROM call_events e WHERE call_id BETWEEN %" PRId64 " AND %" PRId64 " AND delivered_at IS NOT NULL "
        "AND attempts = 1 AND (SELECT count(*) FROM call_event_deliveries d WHERE d.event_id = e.id AND d.http_status = 204) = 1",
        calls[0], calls[CUT_CALLS - 1]);
    assert_int_equal(test_db_count(g.db, sql), CUT_CALLS * CUT_EVENTS);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deliveries_are_signed_concurrent_and_in_order),
        cmocka_unit_test(test_retry_after_is_honoured),
        cmocka_unit_test(test_gone_stops_the_call),
        cmocka_unit_test(test_rotation_signs_with_both_secrets),
        cmocka_unit_test(test_kill_9_posts_again_and_loses_nothing),
        cmocka_unit_test(test_a_lost_database_connection_sends_nothing_twice),
    };
    return cmocka_run_group_tests_name("webhook delivery", tests, s_setup, s_teardown);
}
