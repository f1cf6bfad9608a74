/*
 * The event streams as WebSockets (GET /v1/events/stream and /v1/caller_session/events/stream
 * with an HTTP/1.1 Upgrade) against the real impactd and PostgreSQL, read by a small client
 * written here on plain sockets: the handshake and its accept key, masked client frames, the
 * server's frames parsed as they come, several connections at once.
 *
 * As in test_event_stream.c, every check compares a stream with the events API: a stream
 * delivers exactly what the API lists for the same filter after its cursor, in id order, each
 * once, whatever happened between (a reconnect, a consumer that stopped reading).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/dialing.h"
#include "tests/server.h"

#define WS_MAX_EVENTS 20000
#define WS_WAIT_S     120
#define WS_MAX_CONNS  8

typedef struct {
    int fd;
    long status;       /* of the handshake's answer */
    char *body;        /* the answer's body when it was not 101 */
    unsigned char *in; /* bytes not yet parsed into frames */
    size_t in_len, in_cap;
    int64_t *ids;
    char (*types)[40];
    int64_t *callers; /* each event's caller_id (0: null) */
    size_t n;
    int pings;
    bool overflow, closed, eof, paused;
    int64_t resume_after;
    int close_code;
} ws_t;

static test_dialing_t g;
static ws_t *g_open[WS_MAX_CONNS];

/* A deadline WS_WAIT_S from now: waits are bounded in time, not in reads (a consumer with a small
 * buffer needs many). */
static int64_t s_deadline(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + WS_WAIT_S * 1000;
}

static bool s_before(int64_t deadline)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 < deadline;
}

/* ---- the client ------------------------------------------------------------------------------ */

static void s_send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the server closed: what it sent is read as usual */
        p += n;
        len -= (size_t)n;
    }
}

/* A client frame: always masked, as RFC 6455 requires of clients. */
static void s_send_frame(ws_t *ws, int opcode, const void *payload, size_t len)
{
    unsigned char frame[16 + 4096];
    assert_true(len <= 4096);
    size_t at = 0;
    frame[at++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        frame[at++] = (unsigned char)(0x80 | len);
    } else {
        frame[at++] = 0x80 | 126;
        frame[at++] = (unsigned char)(len >> 8);
        frame[at++] = (unsigned char)len;
    }
    unsigned char mask[4];
    assert_int_equal(getrandom(mask, sizeof(mask), 0), sizeof(mask));
    memcpy(frame + at, mask, 4);
    at += 4;
    for (size_t i = 0; i < len; i++)
        frame[at + i] = ((const unsigned char *)payload)[i] ^ mask[i % 4];
    s_send_all(ws->fd, frame, at + len);
}

static void s_on_text(ws_t *ws, const char *text, size_t len)
{
    json_error_t err;
    json_t *msg = json_loadb(text, len, 0, &err);
    assert_non_null(msg);
    const char *type = json_string_value(json_object_get(msg, "type"));
    assert_non_null(type);
    if (strcmp(type, "overflow") == 0) {
        const char *resume = json_string_value(json_object_get(msg, "resume_after"));
        assert_non_null(resume);
        ws->overflow = true;
        ws->resume_after = strtoll(resume, NULL, 10);
        json_decref(msg);
        return;
    }
    /* {"id": "<id>", "type": "<type>", "data": <the event document, links absolute>} */
    const char *id = json_string_value(json_object_get(msg, "id"));
    json_t *doc = json_object_get(msg, "data");
    assert_non_null(id);
    assert_true(json_is_object(doc));
    assert_int_equal(json_integer_value(json_object_get(doc, "id")), strtoll(id, NULL, 10));
    assert_string_equal(json_string_value(json_object_get(doc, "type")), type);
    const char *uri = json_string_value(json_object_get(doc, "uri"));
    assert_non_null(uri);
    assert_true(strncmp(uri, "http://127.0.0.1:", 17) == 0);
    assert_false(ws->overflow); /* nothing follows the overflow message */
    assert_true(ws->n < WS_MAX_EVENTS);
    ws->ids[ws->n] = strtoll(id, NULL, 10);
    snprintf(ws->types[ws->n], sizeof(ws->types[0]), "%s", type);
    ws->callers[ws->n] = json_integer_value(json_object_get(doc, "caller_id"));
    ws->n++;
    json_decref(msg);
}

/* Parses the complete frames in `in`: messages recorded, pings answered, a close answered once. */
static void s_parse(ws_t *ws)
{
    size_t at = 0;
    while (ws->in_len - at >= 2) {
        const unsigned char *f = ws->in + at;
        int fin = f[0] & 0x80, opcode = f[0] & 0x0f;
        assert_int_equal(f[1] & 0x80, 0); /* servers do not mask */
        uint64_t len = f[1] & 0x7f;
        size_t head = 2;
        if (len == 126) {
            if (ws->in_len - at < 4)
                break;
            len = ((uint64_t)f[2] << 8) | f[3];
            head = 4;
        } else if (len == 127) {
            if (ws->in_len - at < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | f[2 + i];
            head = 10;
        }
        if (ws->in_len - at < head + len)
            break;
        const unsigned char *payload = f + head;
        assert_true(fin); /* every message is one frame */
        assert_int_not_equal(opcode, 0);
        switch (opcode) {
        case 1:
            s_on_text(ws, (const char *)payload, (size_t)len);
            break;
        case 8:
            assert_false(ws->closed);
            ws->closed = true;
            ws->close_code = len >= 2 ? (payload[0] << 8) | payload[1] : 1005;
            s_send_frame(ws, 8, payload, len >= 2 ? 2 : 0);
            break;
        case 9:
            ws->pings++;
            s_send_frame(ws, 10, payload, (size_t)len);
            break;
        case 10:
            break;
        default:
            fail_msg("unexpected opcode %d from the server", opcode);
        }
        at += head + (size_t)len;
    }
    memmove(ws->in, ws->in + at, ws->in_len - at);
    ws->in_len -= at;
}

static void s_read(ws_t *ws)
{
    if (ws->in_len + 65536 > ws->in_cap) {
        ws->in_cap = (ws->in_len + 65536) * 2;
        ws->in = realloc(ws->in, ws->in_cap);
        assert_non_null(ws->in);
    }
    ssize_t n = recv(ws->fd, ws->in + ws->in_len, ws->in_cap - ws->in_len, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        ws->eof = true;
        return;
    }
    if (n > 0) {
        ws->in_len += (size_t)n;
        s_parse(ws);
    }
}

/* Reads whatever every open connection that is not paused has waiting, for up to `ms`. */
static void s_pump(int ms)
{
    struct pollfd fds[WS_MAX_CONNS];
    ws_t *of[WS_MAX_CONNS];
    nfds_t n = 0;
    for (int i = 0; i < WS_MAX_CONNS; i++)
        if (g_open[i] && !g_open[i]->paused && !g_open[i]->eof) {
            fds[n] = (struct pollfd){.fd = g_open[i]->fd, .events = POLLIN};
            of[n++] = g_open[i];
        }
    if (n == 0) {
        usleep((useconds_t)ms * 1000);
        return;
    }
    if (poll(fds, n, ms) <= 0)
        return;
    for (nfds_t i = 0; i < n; i++)
        if (fds[i].revents)
            s_read(of[i]);
}

/* "Sec-WebSocket-Accept" for `key`: base64(SHA-1(key + the RFC's GUID)). */
static void s_accept_key(const char *key, char out[32])
{
    char src[128];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int n = snprintf(src, sizeof(src), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    assert_int_equal(EVP_Digest(src, (size_t)n, md, &md_len, EVP_sha1(), NULL), 1);
    EVP_EncodeBlock((unsigned char *)out, md, (int)md_len);
}

/*
 * Opens a WebSocket to `path` with the extra header lines in `headers` (NULL-terminated) and, when
 * `small_buffer`, a small receive buffer so a consumer that stops reading stops the server's
 * writes soon. The answer's status is in ->status; when it is 101 the connection is open and
 * read by s_pump, else ->body holds the answer's body and the socket is closed.
 */
static ws_t *s_open(const char *path, const char *const *headers, bool small_buffer)
{
    ws_t *ws = calloc(1, sizeof(*ws));
    assert_non_null(ws);
    ws->ids = calloc(WS_MAX_EVENTS, sizeof(*ws->ids));
    ws->types = calloc(WS_MAX_EVENTS, sizeof(*ws->types));
    ws->callers = calloc(WS_MAX_EVENTS, sizeof(*ws->callers));
    ws->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(ws->fd >= 0);
    if (small_buffer) {
        int size = 4096;
        setsockopt(ws->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.server->port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(ws->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);

    unsigned char nonce[16];
    char key[32], want[32], request[4096];
    assert_int_equal(getrandom(nonce, sizeof(nonce), 0), sizeof(nonce));
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce));
    int len = snprintf(request, sizeof(request),
                       "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                       path, g.server->port, key);
    for (int i = 0; headers && headers[i]; i++)
        len += snprintf(request + len, sizeof(request) - (size_t)len, "%s\r\n", headers[i]);
    len += snprintf(request + len, sizeof(request) - (size_t)len, "\r\n");
    assert_true((size_t)len < sizeof(request));
    s_send_all(ws->fd, request, (size_t)len);

    /* The answer's head, and whatever came after it */
    char head[16384];
    size_t got = 0;
    char *end = NULL;
    while (end == NULL) {
        struct pollfd p = {.fd = ws->fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, WS_WAIT_S * 1000), 1);
        ssize_t n = recv(ws->fd, head + got, sizeof(head) - 1 - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
        head[got] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    size_t head_len = (size_t)(end + 4 - head);
    assert_int_equal(sscanf(head, "HTTP/1.1 %ld", &ws->status), 1);
    if (ws->status == 101) {
        s_accept_key(key, want);
        char line[80];
        snprintf(line, sizeof(line), "\r\nsec-websocket-accept: %s\r\n", want);
        assert_non_null(strcasestr(head, line));
        ws->in_cap = 65536 + got;
        ws->in = malloc(ws->in_cap);
        assert_non_null(ws->in);
        memcpy(ws->in, head + head_len, got - head_len);
        ws->in_len = got - head_len;
        s_parse(ws);
        for (int i = 0; i < WS_MAX_CONNS; i++)
            if (g_open[i] == NULL) {
                g_open[i] = ws;
                return ws;
            }
        fail_msg("too many connections open");
    }
    const char *cl = strcasestr(head, "\r\ncontent-length: ");
    assert_non_null(cl);
    size_t body_len = strtoul(cl + 18, NULL, 10);
    ws->body = calloc(1, body_len + 1);
    size_t have = got - head_len < body_len ? got - head_len : body_len;
    memcpy(ws->body, head + head_len, have);
    while (have < body_len) {
        ssize_t n = recv(ws->fd, ws->body + have, body_len - have, 0);
        assert_true(n > 0);
        have += (size_t)n;
    }
    close(ws->fd);
    ws->fd = -1;
    return ws;
}

static void s_close(ws_t **ws_p)
{
    ws_t *ws = *ws_p;
    for (int i = 0; i < WS_MAX_CONNS; i++)
        if (g_open[i] == ws)
            g_open[i] = NULL;
    if (ws->fd >= 0)
        close(ws->fd);
    free(ws->in);
    free(ws->body);
    free(ws->ids);
    free(ws->types);
    free(ws->callers);
    free(ws);
    *ws_p = NULL;
}

/* An account's stream with the dev key in headers: `query` after /v1/events/stream. Must open. */
static ws_t *s_open_account(const char *query, bool small_buffer)
{
    char path[512], key_line[300], auth_line[300];
    snprintf(path, sizeof(path), "/v1/events/stream%s", query);
    snprintf(key_line, sizeof(key_line), "Api-Key: %s", g.server->key);
    snprintf(auth_line, sizeof(auth_line), "Api-Auth: %s", g.server->auth);
    ws_t *ws = s_open(path, (const char *[]){key_line, auth_line, NULL}, small_buffer);
    if (ws->status != 101)
        fprintf(stderr, "%s answered %ld: %s\n", path, ws->status, ws->body);
    assert_int_equal(ws->status, 101);
    return ws;
}

/* The handshake at `path` is refused with `want` and a problem document. */
static void s_refused(const char *path, const char *const *headers, long want)
{
    ws_t *ws = s_open(path, headers, false);
    if (ws->status != want)
        fprintf(stderr, "%s answered %ld, not %ld\n", path, ws->status, want);
    assert_int_equal(ws->status, want);
    json_t *problem = json_loads(ws->body, 0, NULL);
    assert_non_null(problem);
    assert_int_equal(json_integer_value(json_object_get(problem, "status")), want);
    json_decref(problem);
    s_close(&ws);
}

static void s_wait_events(ws_t *ws, size_t n)
{
    for (int64_t end = s_deadline(); s_before(end) && ws->n < n && !ws->eof;)
        s_pump(100);
    if (ws->n < n) {
        test_server_dump_log(g.server);
        fprintf(stderr, "websocket: %zu events of %zu, eof %d, close %d, overflow %d\n", ws->n, n, ws->eof, ws->close_code,
                ws->overflow);
    }
    assert_true(ws->n >= n);
}

static void s_wait_closed(ws_t *ws)
{
    for (int64_t end = s_deadline(); s_before(end) && !ws->eof;)
        s_pump(100);
    if (!ws->closed) {
        test_server_dump_log(g.server);
        fprintf(stderr, "websocket: no close frame; eof %d after %zu events (overflow %d)\n", ws->eof, ws->n, ws->overflow);
    }
    assert_true(ws->closed);
    assert_true(ws->eof);
}

/* The stream delivered exactly what the API lists after `after` for `filter`, in order. */
static void s_assert_same_as_api(ws_t *ws, int64_t after, const char *filter)
{
    int64_t *ids = calloc(WS_MAX_EVENTS, sizeof(*ids));
    size_t n = test_event_ids(g.server, g.server->key, g.server->auth, after, filter, ids, WS_MAX_EVENTS);
    s_wait_events(ws, n);
    for (int i = 0; i < 20; i++)
        s_pump(50); /* anything beyond would be a duplicate or a stranger */
    assert_int_equal(ws->n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ws->ids[i], ids[i]);
    free(ids);
}

static int64_t s_last_event_id(void)
{
    return test_db_count(g.db, "SELECT coalesce(max(id), 0) FROM events");
}

/* ---- the tests -------------------------------------------------------------------------------- */

static int s_setup(void **state)
{
    test_dialing_start(&g, "agents = 3\ntalk_mean = 5\nwrap_mean = 1\nring_h_mean = 3\nring_m_mean = 5\nring_timeout = 8\n", true);
    return 0;
}

/* After each test, passed or failed: a failed one leaves its connections open, and their reads
 * must not go on in the next test. */
static int s_close_all(void **state)
{
    for (int i = 0; i < WS_MAX_CONNS; i++)
        if (g_open[i])
            s_close(&g_open[i]);
    return 0;
}

static int s_teardown(void **state)
{
    s_close_all(state);
    test_dialing_stop(&g);
    return 0;
}

static int64_t g_campaign;
static int64_t g_first_id; /* the last event before the first test's */

/* A campaign's events reach an account stream authenticated by headers and one authenticated by
 * the query (a browser's way), in id order, each once, one text message each; a filter narrows. */
static void test_events_arrive_in_order_with_their_ids(void **state)
{
    g_first_id = s_last_event_id();
    ws_t *headers = s_open_account("", false);
    char path[600];
    snprintf(path, sizeof(path), "/v1/events/stream?api_key=%s&api_auth=%s", g.server->key, g.server->auth);
    ws_t *query = s_open(path, NULL, false);
    assert_int_equal(query->status, 101);

    g_campaign = test_campaign_create(&g, "Over WebSocket", "Power");
    char filter[128];
    snprintf(filter, sizeof(filter), "?campaign_id=%" PRId64 "&type=campaign.paused,campaign.stopped", g_campaign);
    ws_t *filtered = s_open_account(filter, false);
    test_campaign_action(&g, g_campaign, "start");
    test_campaign_action(&g, g_campaign, "pause");
    test_campaign_action(&g, g_campaign, "start");
    test_campaign_action(&g, g_campaign, "stop");
    test_db_wait_equal(&g, "SELECT count(*) FROM event_inbox", 0, 60);

    s_assert_same_as_api(headers, g_first_id, "");
    s_assert_same_as_api(query, g_first_id, "");
    assert_int_equal(headers->n, 4); /* started, paused, resumed, stopped */
    char api_filter[160];
    snprintf(api_filter, sizeof(api_filter), "&campaign_id=%" PRId64 "&type=campaign.paused,campaign.stopped", g_campaign);
    s_assert_same_as_api(filtered, g_first_id, api_filter);
    assert_int_equal(filtered->n, 2);
    assert_string_equal(filtered->types[0], "campaign.paused");
    assert_string_equal(filtered->types[1], "campaign.stopped");
    assert_false(headers->closed || query->closed || filtered->closed);
    s_close(&headers);
    s_close(&query);
    s_close(&filtered);
}

/* ?after= resumes with exactly the events that followed; Last-Event-ID is not read on a WebSocket. */
static void test_after_resumes_with_exactly_the_missed_events(void **state)
{
    int64_t ids[64];
    char filter[64], query[128], key_line[300], auth_line[300];
    snprintf(filter, sizeof(filter), "&campaign_id=%" PRId64, g_campaign);
    size_t n = test_event_ids(g.server, g.server->key, g.server->auth, g_first_id, filter, ids, 64);
    assert_true(n >= 4);
    snprintf(query, sizeof(query), "?campaign_id=%" PRId64 "&after=%" PRId64, g_campaign, ids[1]);
    ws_t *ws = s_open_account(query, false);
    s_assert_same_as_api(ws, ids[1], filter);
    assert_int_equal(ws->n, n - 2);
    s_close(&ws);

    snprintf(query, sizeof(query), "/v1/events/stream?campaign_id=%" PRId64 "&after=%" PRId64, g_campaign, ids[n - 2]);
    snprintf(key_line, sizeof(key_line), "Api-Key: %s", g.server->key);
    snprintf(auth_line, sizeof(auth_line), "Api-Auth: %s", g.server->auth);
    ws = s_open(query, (const char *[]){key_line, auth_line, "Last-Event-ID: 1", NULL}, false);
    assert_int_equal(ws->status, 101);
    s_assert_same_as_api(ws, ids[n - 2], filter);
    assert_int_equal(ws->n, 1);
    s_close(&ws);
}

/* Refusals come as HTTP problems before any upgrade: bad credentials, bad filters, a broken or
 * unsupported handshake; a caller's stream wants a caller's session. */
static void test_bad_handshakes_are_refused_before_the_upgrade(void **state)
{
    char key_line[300], auth_line[300];
    snprintf(key_line, sizeof(key_line), "Api-Key: %s", g.server->key);
    snprintf(auth_line, sizeof(auth_line), "Api-Auth: %s", "not-the-secret");
    s_refused("/v1/events/stream", NULL, 401);
    s_refused("/v1/events/stream", (const char *[]){key_line, auth_line, NULL}, 401);
    s_refused("/v1/events/stream?api_key=nobody&api_auth=nothing", NULL, 401);
    s_refused("/v1/caller_session/events/stream", NULL, 401);
    s_refused("/v1/caller_session/events/stream", (const char *[]){"Authorization: Bearer cs_notatoken", NULL}, 401);
    snprintf(auth_line, sizeof(auth_line), "Api-Auth: %s", g.server->auth);
    s_refused("/v1/events/stream?campaign_id=abc", (const char *[]){key_line, auth_line, NULL}, 422);
    s_refused("/v1/caller_session/events/stream?campaign_id=1", (const char *[]){"Authorization: Bearer cs_x", NULL}, 422);

    /* a version other than 13 */
    char request[1024];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.server->port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    int len = snprintf(request, sizeof(request),
                       "GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n%s\r\n%s\r\n\r\n",
                       key_line, auth_line);
    s_send_all(fd, request, (size_t)len);
    char answer[4096] = "";
    size_t got = 0;
    while (strstr(answer, "\r\n\r\n") == NULL && got < sizeof(answer) - 1) {
        ssize_t n = recv(fd, answer + got, sizeof(answer) - 1 - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
        answer[got] = '\0';
    }
    close(fd);
    assert_int_equal(strncmp(answer, "HTTP/1.1 426 ", 13), 0);
    assert_non_null(strcasestr(answer, "\r\nsec-websocket-version: 13\r\n"));
    assert_non_null(strcasestr(answer, "\r\ncontent-type: application/problem+json\r\n"));
}

static size_t on_h2_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    return 0; /* the head is all this wants: the stream itself would go on */
}

/* The same handshake over HTTP/2 (h2c) is not upgraded: HTTP/2 reads the SSE stream. */
static void test_http2_gets_the_sse_stream(void **state)
{
    char url[256], key_line[300], auth_line[300];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/events/stream", g.server->port);
    snprintf(key_line, sizeof(key_line), "Api-Key: %s", g.server->key);
    snprintf(auth_line, sizeof(auth_line), "Api-Auth: %s", g.server->auth);
    struct curl_slist *headers = NULL;
    const char *lines[] = {key_line, auth_line, "Upgrade: websocket",
                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        headers = curl_slist_append(headers, lines[i]);
    CURL *easy = curl_easy_init();
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_h2_write);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT, (long)WS_WAIT_S);
    CURLcode rc = curl_easy_perform(easy);
    long code = 0, version = 0;
    char *type = NULL;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
    curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type);
    assert_int_equal(rc, CURLE_WRITE_ERROR);
    assert_int_equal(code, 200);
    assert_int_equal(version, CURL_HTTP_VERSION_2_0);
    assert_non_null(type);
    assert_string_equal(type, "text/event-stream");
    curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
}

/* A client's own messages are refused: a text message is closed with 1003, one over the bound
 * with 1009. Pings are answered. */
static void test_client_messages_close_the_stream(void **state)
{
    ws_t *ws = s_open_account("", false);
    s_send_frame(ws, 9, "hello", 5);
    s_send_frame(ws, 1, "{\"subscribe\": true}", 19);
    s_wait_closed(ws);
    assert_int_equal(ws->close_code, 1003);
    s_close(&ws);

    ws = s_open_account("", false);
    char big[2048];
    memset(big, 'x', sizeof(big));
    s_send_frame(ws, 2, big, sizeof(big));
    s_wait_closed(ws);
    assert_int_equal(ws->close_code, 1009);
    s_close(&ws);
}

/* A consumer that stops reading gets the overflow message and close 4000; another on the same
 * server receives everything meanwhile; the overflowed one resumes from resume_after without a
 * gap. */
static void test_a_slow_consumer_overflows_alone(void **state)
{
    int64_t start = s_last_event_id();
    ws_t *slow = s_open_account("", true);
    ws_t *fast = s_open_account("", false);
    slow->paused = true;
    char sql[256];
    int64_t account = test_db_count(g.db, "SELECT min(id) FROM accounts");
    for (int round = 1; round <= 24; round++) {
        snprintf(sql, sizeof(sql),
                 "SELECT event_publish(%" PRId64 ", %" PRId64 ", NULL, 'campaign.paused', now(), "
                 "jsonb_build_object('pad', repeat('x', 300), 'n', n)) FROM generate_series(1, 500) AS n",
                 account, g_campaign);
        test_db_exec(g.db, sql);
        s_wait_events(fast, (size_t)round * 500);
    }
    s_assert_same_as_api(fast, start, "");
    assert_int_equal(fast->n, 12000);
    assert_false(fast->closed);

    slow->paused = false;
    s_wait_closed(slow);
    assert_true(slow->overflow);
    assert_int_equal(slow->close_code, 4000);
    assert_true(slow->n < 12000);
    /* what it got is the start of the sequence, up to resume_after */
    for (size_t i = 0; i < slow->n; i++)
        assert_int_equal(slow->ids[i], start + 1 + (int64_t)i);
    assert_int_equal(slow->resume_after, slow->n ? slow->ids[slow->n - 1] : start);
    char query[64];
    snprintf(query, sizeof(query), "?after=%" PRId64, slow->resume_after);
    int64_t resume = slow->resume_after;
    s_close(&slow);
    slow = s_open_account(query, false);
    s_assert_same_as_api(slow, resume, "");
    s_close(&slow);
    s_close(&fast);
}

/* A caller follows their own events with their session's token (header, or the cookie from the
 * server's own origin): only theirs, as their list gives them; a cookie from another origin does
 * not count; logging out closes the stream with 1000. An idle stream gets pings. */
static void test_a_caller_follows_their_own_events(void **state)
{
    ws_t *idle = s_open_account("?type=list.import_failed", false);
    int64_t campaign = test_campaign_create(&g, "Desk over WebSocket", "Power");
    char path[256], body[256], sql[256];
    snprintf(path, sizeof(path), "/v1/campaigns/%" PRId64, campaign);
    json_decref(test_call(g.server, g.server->key, g.server->auth, "PATCH", path, "application/json", "{\"simulated_callers\": 0}",
                          0, 200));
    test_campaign_import(&g, campaign, 3000, 20);
    test_move_into_calling_hours(g.db, campaign);
    test_campaign_action(&g, campaign, "start");
    snprintf(body, sizeof(body), "{\"username\": \"wscaller\", \"password\": \"socket password\", \"campaign_id\": %" PRId64 "}",
             campaign);
    json_t *caller = test_call(g.server, g.server->key, g.server->auth, "POST", "/v1/callers", "application/json", body, 0, 201);
    int64_t caller_id = json_integer_value(json_object_get(caller, "id"));
    json_decref(caller);
    json_t *root = test_call(g.server, g.server->key, g.server->auth, "GET", "/v1", NULL, NULL, 0, 200);
    snprintf(body, sizeof(body), "{\"account_id\": %" PRId64 ", \"username\": \"wscaller\", \"password\": \"socket password\"}",
             (int64_t)json_integer_value(json_object_get(json_object_get(root, "account"), "id")));
    json_decref(root);
    json_t *session = test_call(g.server, NULL, NULL, "POST", "/v1/caller_sessions", "application/json", body, 0, 201);
    const char *token = json_string_value(json_object_get(session, "token"));
    char bearer[128], cookie[128], own_origin[64], desk[160];
    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", token);
    snprintf(cookie, sizeof(cookie), "Cookie: impact_caller_session=%s", token);
    snprintf(own_origin, sizeof(own_origin), "Origin: http://127.0.0.1:%d", g.server->port);
    snprintf(desk, sizeof(desk), "%s", strstr(json_string_value(json_object_get(session, "desk_uri")), "/v1/"));
    json_decref(session);

    const char *stream = "/v1/caller_session/events/stream";
    s_refused(stream, (const char *[]){cookie, "Origin: http://elsewhere.example", NULL}, 401);
    ws_t *by_cookie = s_open(stream, (const char *[]){cookie, own_origin, NULL}, false);
    assert_int_equal(by_cookie->status, 101);
    s_close(&by_cookie);

    int64_t before = s_last_event_id();
    char query[160];
    snprintf(query, sizeof(query), "%s?after=%" PRId64, stream, before);
    ws_t *mine = s_open(query, (const char *[]){bearer, NULL}, false);
    assert_int_equal(mine->status, 101);
    snprintf(path, sizeof(path), "%s/start", desk);
    test_request_t start = {.method = "POST", .path = path, .header = bearer};
    test_reply_t reply;
    assert_int_equal(test_http(g.server, &start, &reply), CURLE_OK);
    assert_int_equal(reply.status, 200);
    test_reply_free(&reply);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE caller_id = %" PRId64 " AND type = 'call.bridged'", caller_id);
    test_db_wait_at_least(&g, sql, 1, WS_WAIT_S);
    s_wait_events(mine, 3); /* on hold, on the call, and the call's bridge */
    for (size_t i = 0; i < mine->n; i++)
        assert_int_equal(mine->callers[i], caller_id);
    /* the same as the caller's own list, in order */
    snprintf(path, sizeof(path), "/v1/caller_session/events?after=%" PRId64, before);
    test_request_t list = {.method = "GET", .path = path, .header = bearer};
    assert_int_equal(test_http(g.server, &list, &reply), CURLE_OK);
    assert_int_equal(reply.status, 200);
    json_t *page = test_reply_json(&reply);
    test_reply_free(&reply);
    json_t *items = json_object_get(page, "items");
    assert_true(json_array_size(items) >= mine->n);
    for (size_t i = 0; i < mine->n; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(items, i), "id")), mine->ids[i]);
    json_decref(page);

    /* logging out ends the stream at its next keep-alive */
    test_request_t logout = {.method = "POST", .path = "/v1/caller_session/logout", .header = bearer};
    assert_int_equal(test_http(g.server, &logout, &reply), CURLE_OK);
    assert_int_equal(reply.status, 204);
    test_reply_free(&reply);
    s_wait_closed(mine);
    assert_int_equal(mine->close_code, 1000);
    s_close(&mine);
    s_refused(stream, (const char *[]){bearer, NULL}, 401);
    test_campaign_action(&g, campaign, "stop");

    for (int64_t end = s_deadline(); s_before(end) && idle->pings == 0;)
        s_pump(100);
    assert_true(idle->pings > 0);
    assert_false(idle->closed);
    s_close(&idle);
}

/* SIGTERM closes open streams with 1001, and the http process exits clean (no sanitizer report,
 * which starts with its pid). */
static void test_a_stopping_server_says_going_away(void **state)
{
    ws_t *ws = s_open_account("", false);
    int pid, restarts;
    char state_name[32];
    test_process(&g, "http", &pid, &restarts, state_name, sizeof(state_name));
    assert_true(pid > 0);
    assert_int_equal(test_server_stop(g.server), 0);
    s_wait_closed(ws);
    assert_int_equal(ws->close_code, 1001);
    s_close(&ws);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "grep -q '^==%d==' '%s/impactd.log'", pid, g.server->data_dir);
    if (system(cmd) == 0)
        test_server_dump_log(g.server);
    assert_int_not_equal(system(cmd), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_events_arrive_in_order_with_their_ids, s_close_all),
        cmocka_unit_test_teardown(test_after_resumes_with_exactly_the_missed_events, s_close_all),
        cmocka_unit_test_teardown(test_bad_handshakes_are_refused_before_the_upgrade, s_close_all),
        cmocka_unit_test_teardown(test_http2_gets_the_sse_stream, s_close_all),
        cmocka_unit_test_teardown(test_client_messages_close_the_stream, s_close_all),
        cmocka_unit_test_teardown(test_a_slow_consumer_overflows_alone, s_close_all),
        cmocka_unit_test_teardown(test_a_caller_follows_their_own_events, s_close_all),
        cmocka_unit_test_teardown(test_a_stopping_server_says_going_away, s_close_all),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
