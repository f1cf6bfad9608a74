/*
 * An event stream written as WebSocket messages (stream.h), over HTTP/1.1 only: h2o 2.2 upgrades
 * HTTP/1 connections, and HTTP/2 clients read the SSE stream. h2o does the handshake and the
 * connection's reads and writes, wslay the framing; this file says what goes in the messages.
 *
 * Messages (docs/api.md "Event streams"), one text frame each:
 *   {"id":"5120","type":"campaign.paused","data":<the event document>}
 *   {"type":"overflow","resume_after":"5120"}, then close 4000
 * Ids are strings, as SSE's are, so no client rounds them through a double. Keep-alives are ping
 * frames, which browsers answer by themselves and never show to scripts, like SSE's comments.
 *
 * Close codes: 1000 when a caller's session is over, 1001 when the server stops, 1011 when the
 * events cannot be read, 4000 after the overflow message; a client that sends a text or binary
 * message gets 1003 (the stream takes none), one whose message is over WS_RECV_MAX bytes 1009
 * (wslay's own). Only control frames are expected from the client.
 *
 * Queued messages are wslay's (it copies them), and cannot be taken back: its queue is what the
 * stream's bounds count, an overflow comes after what is in it, and its resume_after is the last
 * event queued, which the client will have read first. wslay sends control frames ahead of queued
 * messages, so the close that follows an overflow is queued only once the overflow message is
 * being sent (it is given to wslay as a source it reads from, which tells when). Other closes go
 * at once: the client resumes from the last id it got. A client that has not finished the close
 * handshake WS_CLOSE_BEATS keep-alives after it began (one that stopped reading) is cut off.
 *
 * h2o calls on_message with NULL when the connection is gone, sometimes from inside
 * h2o_websocket_proceed, which this file calls while the stream is in the middle of something: the
 * h2o connection is closed at once, the stream only stopped, and freed from the zero timeout.
 */
#include <h2o/websocket.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "http/problem.h"
#include "http/stream.h"

#define WS_RECV_MAX    1024 /* bytes in one message from the client: it has nothing to say but pings */
#define WS_CLOSE_BEATS 4

#define WS_CLOSE_NORMAL   1000
#define WS_CLOSE_AWAY     1001
#define WS_CLOSE_DATA     1003
#define WS_CLOSE_ERROR    1011
#define WS_CLOSE_OVERFLOW 4000

typedef struct {
    http_stream_t *st;
    h2o_websocket_conn_t *conn; /* NULL once closed */
    h2o_context_t *ctx;
    h2o_timeout_entry_t reap; /* frees the stream once the connection has closed */
    int64_t sent_id;          /* the last event queued (or where the stream started) */
    int closing;              /* a close frame is queued, or the overflow message that comes before one */
    unsigned close_beats;     /* keep-alives since */
    char overflow[96];        /* the overflow message, until wslay reads it */
    size_t overflow_len;
} ws_t;

static int s_up(const ws_t *ws)
{
    return ws->conn != NULL && ws->conn->sock != NULL;
}

static void on_reap(h2o_timeout_entry_t *entry)
{
    ws_t *ws = H2O_STRUCT_FROM_MEMBER(ws_t, reap, entry);
    http_stream_destroy(ws->st); /* disposes ws */
}

/* The connection is over: closed now, the stream freed once whoever is running has returned. */
static void s_gone(ws_t *ws)
{
    if (ws->conn) {
        h2o_websocket_close(ws->conn);
        ws->conn = NULL;
    }
    http_stream_stop(ws->st);
    if (!h2o_timeout_is_linked(&ws->reap))
        h2o_timeout_link(ws->ctx->loop, &ws->ctx->zero_timeout, &ws->reap);
}

static void s_flush(void *w)
{
    ws_t *ws = w;
    if (s_up(ws))
        h2o_websocket_proceed(ws->conn); /* may close it: ws->conn is not used after */
}

static void s_close(ws_t *ws, uint16_t code, const char *reason)
{
    if (ws->conn == NULL || ws->closing)
        return;
    ws->closing = 1;
    wslay_event_queue_close(ws->conn->ws_ctx, code, (const uint8_t *)reason, strlen(reason));
}

/* wslay starts sending the overflow message: every event queued before it is out, and the close
 * may follow. */
static ssize_t on_overflow_read(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, const union wslay_event_msg_source *source,
                                int *eof, void *user_data)
{
    ws_t *ws = source->data;
    size_t n = ws->overflow_len < len ? ws->overflow_len : len;
    memcpy(buf, ws->overflow, n);
    *eof = 1;
    static const char reason[] = "overflow: resume after resume_after";
    wslay_event_queue_close(ctx, WS_CLOSE_OVERFLOW, (const uint8_t *)reason, sizeof(reason) - 1);
    return (ssize_t)n;
}

/* wslay has answered pings and a close itself; this decides about the rest. No proceed from here:
 * h2o is inside its own. */
static void on_message(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg)
{
    ws_t *ws = conn->data;
    if (arg == NULL) {
        s_gone(ws);
        return;
    }
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
    case WSLAY_BINARY_FRAME:
        log_info("WebSocket stream of account %" PRId64 ": the client sent a message; closing", http_stream_account(ws->st));
        s_close(ws, WS_CLOSE_DATA, "this stream takes no messages");
        http_stream_stop(ws->st);
        break;
    case WSLAY_CONNECTION_CLOSE:
        ws->closing = 1;
        http_stream_stop(ws->st);
        break;
    default:
        break;
    }
}

static int s_start(http_stream_t *st, h2o_req_t *req, int64_t after, void **w)
{
    const char *key = NULL;
    ws_t *ws = NULL;
    if (h2o_is_websocket_handshake(req, &key) != 0 || key == NULL || (ws = calloc(1, sizeof(*ws))) == NULL)
        return -1;
    ws->st = st;
    ws->ctx = req->conn->ctx;
    ws->sent_id = after;
    ws->reap.cb = on_reap;
    http_response_init(req, 101); /* for its X-Request-Id: h2o sets the status line */
    ws->conn = h2o_upgrade_to_websocket(req, key, ws, on_message);
    wslay_event_config_set_max_recv_msg_length(ws->conn->ws_ctx, WS_RECV_MAX);
    *w = ws;
    return 0;
}

static char *s_frame(int64_t id, const char *type, const char *doc, size_t *len)
{
    size_t need = strlen(doc) + strlen(type) + 64;
    char *text = malloc(need);
    if (text)
        *len = (size_t)snprintf(text, need, "{\"id\":\"%" PRId64 "\",\"type\":\"%s\",\"data\":%s}", id, type, doc);
    return text;
}

static int s_queue_text(ws_t *ws, const char *text, size_t len)
{
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
    return ws->conn != NULL && wslay_event_queue_msg(ws->conn->ws_ctx, &msg) == 0 ? 0 : -1;
}

static int s_queue(void *w, int64_t id, const char *text, size_t len)
{
    ws_t *ws = w;
    if (s_queue_text(ws, text, len) != 0)
        return -1;
    ws->sent_id = id;
    return 0;
}

static void s_backlog(void *w, size_t *events, size_t *bytes)
{
    ws_t *ws = w;
    *events = ws->conn ? wslay_event_get_queued_msg_count(ws->conn->ws_ctx) : 0;
    *bytes = ws->conn ? wslay_event_get_queued_msg_length(ws->conn->ws_ctx) : 0;
}

static void s_keepalive(void *w)
{
    ws_t *ws = w;
    if (!s_up(ws))
        return;
    if (ws->closing) {
        if (++ws->close_beats >= WS_CLOSE_BEATS) {
            log_info("WebSocket stream of account %" PRId64 ": the close handshake did not finish; cut off",
                     http_stream_account(ws->st));
            s_gone(ws);
        }
        return;
    }
    if (wslay_event_get_queued_msg_count(ws->conn->ws_ctx) != 0 || h2o_socket_is_writing(ws->conn->sock))
        return;
    struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
    wslay_event_queue_msg(ws->conn->ws_ctx, &ping);
    s_flush(ws);
}

static int64_t s_overflow(void *w)
{
    ws_t *ws = w;
    if (ws->conn == NULL || ws->closing)
        return ws->sent_id;
    ws->closing = 1;
    int n = snprintf(ws->overflow, sizeof(ws->overflow), "{\"type\":\"overflow\",\"resume_after\":\"%" PRId64 "\"}", ws->sent_id);
    ws->overflow_len = (size_t)n;
    struct wslay_event_fragmented_msg msg = {.opcode = WSLAY_TEXT_FRAME, .source.data = ws, .read_callback = on_overflow_read};
    if (wslay_event_queue_fragmented_msg(ws->conn->ws_ctx, &msg) != 0) {
        static const char reason[] = "overflow";
        wslay_event_queue_close(ws->conn->ws_ctx, WS_CLOSE_OVERFLOW, (const uint8_t *)reason, sizeof(reason) - 1);
    }
    s_flush(ws);
    return ws->sent_id;
}

static void s_end(void *w, http_stream_end_t why)
{
    ws_t *ws = w;
    switch (why) {
    case HTTP_STREAM_END_SESSION:
        s_close(ws, WS_CLOSE_NORMAL, "the caller session is over");
        break;
    case HTTP_STREAM_END_SHUTDOWN:
        s_close(ws, WS_CLOSE_AWAY, "the server is stopping");
        break;
    case HTTP_STREAM_END_FAILED:
        s_close(ws, WS_CLOSE_ERROR, "the events cannot be read");
        break;
    }
    s_flush(ws);
}

static void s_dispose(void *w)
{
    ws_t *ws = w;
    if (ws->conn)
        h2o_websocket_close(ws->conn);
    if (h2o_timeout_is_linked(&ws->reap))
        h2o_timeout_unlink(&ws->reap);
    free(ws);
}

const http_stream_writer_t http_websocket_writer = {
    .start = s_start,
    .frame = s_frame,
    .queue = s_queue,
    .backlog = s_backlog,
    .flush = s_flush,
    .keepalive = s_keepalive,
    .overflow = s_overflow,
    .end = s_end,
    .dispose = s_dispose,
};
