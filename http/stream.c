/*
 * GET /v1/events/stream: the account's events, live (http/README.md, docs/api.md "Event
 * streams"); GET /v1/caller_session/events/stream: a caller's own events, the same way,
 * authenticated by their session (docs/caller-api.md), which it keeps alive. Each is written as
 * Server-Sent Events (sse.c) or, to an HTTP/1.1 WebSocket handshake, as WebSocket messages
 * (websocket.c); everything here is the same for both (stream.h).
 *
 * Each event-loop thread SUBscribes to the fan-out process's publisher (actors/fanout/sequencer.h)
 * from inside its own loop, the way bridge.c watches its DEALER, so an event reaches the streams
 * of that thread without crossing threads or locks. Every frame is checked (two parts, sizes,
 * ids, type, a JSON object with the same id); a bad one is logged and dropped.
 *
 * Nothing is ever skipped silently. Ids are global and gapless, so the thread's subscriber knows
 * it missed something when an id is not the one after the last (a PUB socket drops at its
 * high-water mark and while reconnecting; a restarted fan-out publishes from its start), or when
 * the sequencer's once-a-second tick names an id past the last it received (the lost tail). Every
 * stream of the thread then catches up from the database through the events API (GET /v1/events
 * with its own credentials and filters, relayed to the store like every request), buffering live
 * events meanwhile, and delivers the buffered ones above what the database gave. A new stream
 * does the same from its resume point: it is registered (buffering) before its first read, so
 * what commits between the read and the first live event is in one or the other, and duplicates
 * are dropped by id.
 *
 * Reads are made with copies of the client's credentials and query, taken when the stream is
 * made: a WebSocket's request is gone once the connection is upgraded.
 *
 * Slow consumers: events wait for the connection in the writer's queue. Past STREAM_QUEUE_EVENTS
 * events or STREAM_QUEUE_BYTES bytes waiting the writer overflows: the client is told the last id
 * it was handed, to resume from, and the stream ends. Nothing else waits for a slow stream.
 */
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <h2o/websocket.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/fanout/sequencer.h"
#include "common/log.h"
#include "common/urlform.h"
#include "http/problem.h"
#include "http/server.h"
#include "http/stream.h"

/* A stream's queue holds a few of the sequencer's batches (SEQUENCER_BATCH events arrive at once). */
#define STREAM_QUEUE_EVENTS 4096
#define STREAM_QUEUE_BYTES  (4 * 1024 * 1024)
#define STREAM_HEARTBEAT_MS 15000
#define STREAM_PAGE         100 /* the events API's largest page */
#define STREAM_TYPES_MAX    16
#define STREAM_DRAIN_BATCH  256
#define STREAM_SUB_RCVHWM   100000
#define STREAM_QUERY_MAX    2048
#define STREAM_BASE_MAX     300
#define STREAM_ID_MAX       32 /* a request id (http_request_id: 24 hex digits) */
#define STREAM_RENDER_CACHE 8  /* distinct link bases and framings rendered once per event and thread */

typedef enum { PHASE_CATCHUP, PHASE_LIVE, PHASE_CLOSING } stream_phase_t;

typedef struct {
    int64_t id;
    char *text; /* the framed event */
    size_t len;
} queued_t;

typedef struct {
    const http_stream_writer_t *writer;
    char base[STREAM_BASE_MAX];
    char *text; /* NULL: could not be rendered */
    size_t len;
} rendered_t;

/* In the request's pool until the stream starts: the request owns the stream until then. */
typedef struct {
    http_stream_t *st; /* NULL once started or destroyed */
} stream_anchor_t;

struct st_http_stream_t {
    h2o_linklist_t link; /* in the thread's hub, from creation to destruction */
    const http_stream_writer_t *writer;
    void *w; /* the writer's, once started */
    http_thread_t *thread;
    h2o_req_t *req;           /* until started */
    stream_anchor_t *anchor;  /* until started */
    http_bridge_call_t *call; /* the read in flight */
    h2o_timeout_entry_t heartbeat;
    int64_t account_id, campaign_id, caller_id; /* 0: no filter */
    int of_caller;                              /* a caller's own stream (GET /v1/caller_session/events/stream) */
    int touching;                               /* the read in flight only keeps the session alive: its items are not needed */
    char types[STREAM_TYPES_MAX][EVENTS_PUB_TYPE_MAX + 1];
    size_t num_types;
    char base[STREAM_BASE_MAX];
    char request_id[STREAM_ID_MAX];
    msg_pairs_t headers; /* the client's forwarded headers, pointing into `kept` */
    h2o_iovec_t query;   /* the client's query, in `kept`, forwarded with every read */
    char *kept;
    stream_phase_t phase;
    int started;      /* the writer has the stream */
    int overflowed;   /* overflowed before it started: the writer says so first thing */
    int newest_first; /* the first read asks for the latest event only: no replay */
    int again;        /* a gap was seen during the read: read once more before going live */
    int64_t last_id;  /* the last event queued for the client (or, before any, where it starts) */
    queued_t *live;   /* live events held while catching up */
    size_t num_live, cap_live, live_bytes;
};

typedef struct {
    h2o_context_t *ctx;
    zsock_t *sub;
    h2o_socket_t *watcher; /* owns the dup of ZMQ_FD */
    h2o_timeout_entry_t drain_later;
    h2o_timeout_t heartbeat;
    int heartbeat_inited;
    int64_t last_seen; /* the last id received; -1 before the first */
    h2o_linklist_t streams;
    uint64_t dropped; /* malformed frames */
} stream_hub_t;

static _Thread_local stream_hub_t *s_hub;

static void s_fetch(http_stream_t *st);

/* ---- the stream ------------------------------------------------------------------------------ */

int64_t http_stream_account(const http_stream_t *st)
{
    return st->account_id;
}

static void s_drop_live(http_stream_t *st)
{
    for (size_t i = 0; i < st->num_live; i++)
        free(st->live[i].text);
    st->num_live = 0;
    st->live_bytes = 0;
}

void http_stream_stop(http_stream_t *st)
{
    st->phase = PHASE_CLOSING;
    s_drop_live(st);
    http_bridge_cancel(st->call);
    st->call = NULL;
}

void http_stream_destroy(http_stream_t *st)
{
    if (st->anchor)
        st->anchor->st = NULL;
    if (h2o_linklist_is_linked(&st->link))
        h2o_linklist_unlink(&st->link);
    if (h2o_timeout_is_linked(&st->heartbeat))
        h2o_timeout_unlink(&st->heartbeat);
    http_stream_stop(st);
    free(st->live);
    free(st->kept);
    if (st->w)
        st->writer->dispose(st->w);
    free(st);
}

/* The client left before the stream started. */
static void on_anchor_dispose(void *p)
{
    stream_anchor_t *anchor = p;
    if (anchor->st)
        http_stream_destroy(anchor->st);
}

/* Before the stream started: frees it and answers its request (`answer` does). */
static h2o_req_t *s_abandon(http_stream_t *st)
{
    h2o_req_t *req = st->req;
    http_stream_destroy(st);
    return req;
}

static void s_overflow(http_stream_t *st)
{
    s_drop_live(st);
    st->phase = PHASE_CLOSING;
    if (!st->started) {
        st->overflowed = 1;
        return;
    }
    int64_t resume = st->writer->overflow(st->w);
    log_info("event stream of account %" PRId64 " overflowed after event %" PRId64 ": closed", st->account_id, resume);
}

static int s_over_bounds(const http_stream_t *st, size_t more_bytes)
{
    size_t events = 0, bytes = 0;
    if (st->started)
        st->writer->backlog(st->w, &events, &bytes);
    return events + st->num_live + 1 > STREAM_QUEUE_EVENTS || bytes + st->live_bytes + more_bytes > STREAM_QUEUE_BYTES;
}

/* Queues one event's text for the client, in order; the overflow when the queue is full. */
static void s_queue(http_stream_t *st, int64_t id, const char *text, size_t len)
{
    if (st->phase == PHASE_CLOSING || id <= st->last_id)
        return;
    if (s_over_bounds(st, len) || st->writer->queue(st->w, id, text, len) != 0) {
        s_overflow(st);
        return;
    }
    st->last_id = id;
}

static void s_flush(http_stream_t *st)
{
    if (st->started)
        st->writer->flush(st->w);
}

/* Ends a stream that cannot go on: a started one after what is queued, one not started yet with a
 * problem document. */
static void s_end(http_stream_t *st, http_stream_end_t why)
{
    if (!st->started) {
        http_problem_send(s_abandon(st), 500, "internal-error", "Internal Server Error", "the events cannot be read");
        return;
    }
    if (st->phase == PHASE_CLOSING)
        return;
    http_stream_stop(st);
    st->writer->end(st->w, why);
}

static void s_touch(http_stream_t *st);

static void on_heartbeat(h2o_timeout_entry_t *entry)
{
    http_stream_t *st = H2O_STRUCT_FROM_MEMBER(http_stream_t, heartbeat, entry);
    h2o_timeout_link(s_hub->ctx->loop, &s_hub->heartbeat, &st->heartbeat);
    if (st->of_caller)
        s_touch(st);
    st->writer->keepalive(st->w);
}

/* The writer takes the stream over from the request. 0, or -1 when it could not (answered). */
static int s_start(http_stream_t *st)
{
    void *w = NULL;
    if (st->writer->start(st, st->req, st->last_id, &w) != 0) {
        http_problem_send(s_abandon(st), 500, "internal-error", "Internal Server Error", "the stream cannot be started");
        return -1;
    }
    st->w = w;
    st->started = 1;
    st->req = NULL;
    st->anchor->st = NULL;
    st->anchor = NULL;
    st->heartbeat.cb = on_heartbeat;
    h2o_timeout_link(s_hub->ctx->loop, &s_hub->heartbeat, &st->heartbeat);
    if (st->overflowed)
        s_overflow(st);
    return 0;
}

/* ---- events --------------------------------------------------------------------------------- */

/* Event types as the catalog writes them; anything else would not frame safely. */
static int s_is_type(const char *type, size_t len)
{
    if (len == 0 || len > EVENTS_PUB_TYPE_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((type[i] >= 'a' && type[i] <= 'z') || (type[i] >= '0' && type[i] <= '9') || type[i] == '.' || type[i] == '_'))
            return 0;
    return 1;
}

/* The document with its own links made absolute under `base` (the scheme and host a client
 * used), framed by `writer`. */
static char *s_render(const char *base, const http_stream_writer_t *writer, json_t *doc, int64_t id, const char *type, size_t *len)
{
    json_t *copy = json_deep_copy(doc);
    if (copy == NULL)
        return NULL;
    char uri[1024];
    const char *u = json_string_value(json_object_get(copy, "uri"));
    if (u && u[0] == '/') {
        snprintf(uri, sizeof(uri), "%s%s", base, u);
        json_object_set_new(copy, "uri", json_string(uri));
    }
    size_t i;
    json_t *link;
    json_array_foreach(json_object_get(copy, "resources"), i, link)
    {
        u = json_string_value(json_object_get(link, "uri"));
        if (u && u[0] == '/') {
            snprintf(uri, sizeof(uri), "%s%s", base, u);
            json_object_set_new(link, "uri", json_string(uri));
        }
    }
    char *data = json_dumps(copy, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(copy);
    if (data == NULL)
        return NULL;
    char *text = writer->frame(id, type, data, len);
    free(data);
    return text;
}

static int s_matches(const http_stream_t *st, int64_t account, int64_t campaign, int64_t caller, const char *type)
{
    if (account != st->account_id || (st->campaign_id && campaign != st->campaign_id) || (st->caller_id && caller != st->caller_id))
        return 0;
    if (st->num_types == 0)
        return 1;
    for (size_t i = 0; i < st->num_types; i++)
        if (strcmp(st->types[i], type) == 0)
            return 1;
    return 0;
}

/* A live event for one stream (its text, shared with the thread's other streams): queued, or
 * a copy held while the stream catches up. */
static void s_deliver(http_stream_t *st, int64_t id, const char *shared, size_t len)
{
    if (st->phase == PHASE_CLOSING)
        return;
    if (shared == NULL) {
        s_overflow(st);
        return;
    }
    if (st->phase == PHASE_LIVE) {
        s_queue(st, id, shared, len);
        s_flush(st);
        return;
    }
    char *text;
    if (s_over_bounds(st, len) || (text = malloc(len)) == NULL) {
        s_overflow(st);
        return;
    }
    memcpy(text, shared, len);
    if (st->num_live == st->cap_live) {
        size_t cap = st->cap_live ? st->cap_live * 2 : 16;
        queued_t *p = realloc(st->live, cap * sizeof(*p));
        if (p == NULL) {
            free(text);
            s_overflow(st);
            return;
        }
        st->live = p;
        st->cap_live = cap;
    }
    st->live[st->num_live++] = (queued_t){id, text, len};
    st->live_bytes += len;
}

/* Something was missed: every stream reads the database again from what it last queued. */
static void s_resync(http_stream_t *st)
{
    if (st->phase == PHASE_CLOSING)
        return;
    if (st->phase == PHASE_CATCHUP) {
        st->again = 1;
        return;
    }
    st->phase = PHASE_CATCHUP;
    s_fetch(st);
}

static int64_t s_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return (int64_t)v;
}

/* One frame checked and handed to the thread's streams; a bad one is counted and logged. */
static void s_on_event(stream_hub_t *hub, const unsigned char *header, size_t header_len, const char *doc_text, size_t doc_len)
{
    const char *why = NULL;
    int64_t id = 0, account = 0, campaign = 0, caller = 0;
    char type[EVENTS_PUB_TYPE_MAX + 1] = "";
    json_t *doc = NULL;
    if (header_len != EVENTS_PUB_HEADER_SIZE || doc_len == 0 || doc_len > EVENTS_PUB_DOC_MAX) {
        why = "bad frame sizes";
        goto Error;
    }
    id = s_be64(header), account = s_be64(header + 8), campaign = s_be64(header + 16), caller = s_be64(header + 24);
    memcpy(type, header + 32, EVENTS_PUB_TYPE_MAX);
    size_t tlen = strnlen(type, EVENTS_PUB_TYPE_MAX);
    for (size_t i = tlen; i < EVENTS_PUB_TYPE_MAX; i++)
        if (type[i] != '\0')
            why = "type not NUL-padded";
    if (why == NULL && !s_is_type(type, tlen))
        why = "bad type";
    if (why == NULL && (id <= 0 || account <= 0 || campaign < 0 || caller < 0))
        why = "bad ids";
    if (why)
        goto Error;
    doc = json_loadb(doc_text, doc_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc) || json_integer_value(json_object_get(doc, "id")) != id ||
        strcmp(json_string_value(json_object_get(doc, "type")) ? json_string_value(json_object_get(doc, "type")) : "", type) != 0) {
        why = "document does not match its header";
        goto Error;
    }
    if (hub->last_seen >= 0 && id <= hub->last_seen) {
        json_decref(doc);
        return; /* already delivered or read: a restarted publisher starts where it finds the database */
    }
    int gap = hub->last_seen < 0 || id != hub->last_seen + 1;
    hub->last_seen = id;
    /* The text differs between streams only by the base of its links (the scheme and host each
     * client used) and its framing (SSE or WebSocket), and a thread's clients nearly all share
     * one of each: each distinct pair is rendered once per event, not once per stream, which was
     * most of the cost of a wide fan-out. */
    rendered_t rendered[STREAM_RENDER_CACHE];
    size_t num_rendered = 0;
    for (h2o_linklist_t *n = hub->streams.next, *next; n != &hub->streams; n = next) {
        next = n->next;
        http_stream_t *st = H2O_STRUCT_FROM_MEMBER(http_stream_t, link, n);
        if (gap)
            s_resync(st);
        if (!s_matches(st, account, campaign, caller, type))
            continue;
        size_t r = 0;
        while (r < num_rendered && (rendered[r].writer != st->writer || strcmp(rendered[r].base, st->base) != 0))
            r++;
        if (r == num_rendered) {
            size_t len = 0;
            char *text = s_render(st->base, st->writer, doc, id, type, &len);
            if (r == STREAM_RENDER_CACHE) {
                s_deliver(st, id, text, len);
                free(text);
                continue;
            }
            /* the base is copied: a stream may end while the event is handed out */
            rendered[r].writer = st->writer;
            memcpy(rendered[r].base, st->base, sizeof(rendered[r].base));
            rendered[r].text = text;
            rendered[r].len = len;
            num_rendered++;
        }
        s_deliver(st, id, rendered[r].text, rendered[r].len);
    }
    for (size_t r = 0; r < num_rendered; r++)
        free(rendered[r].text);
    json_decref(doc);
    return;

Error:
    json_decref(doc);
    hub->dropped++;
    log_warn("event stream: frame dropped (%s); event %" PRId64, why, id);
}

/* The sequencer's tick: the last id it published. Past what this thread received, events were
 * dropped on the way; and a thread that has received nothing yet gets its baseline from it, so
 * its first event is judged by the id before it instead of sending every stream back to the
 * database (thousands of reads at once when many clients connected before any event). */
static void s_on_tick(stream_hub_t *hub, const unsigned char *frame)
{
    int64_t id = s_be64(frame);
    if (id < 0 || id <= hub->last_seen)
        return;
    hub->last_seen = id;
    for (h2o_linklist_t *n = hub->streams.next, *next; n != &hub->streams; n = next) {
        next = n->next;
        s_resync(H2O_STRUCT_FROM_MEMBER(http_stream_t, link, n));
    }
}

static void s_hub_drain(stream_hub_t *hub)
{
    void *sock = zsock_resolve(hub->sub);
    for (int budget = STREAM_DRAIN_BATCH; budget > 0; budget--) {
        if (!(zsock_events(hub->sub) & ZMQ_POLLIN))
            return;
        zmq_msg_t parts[2];
        size_t n = 0;
        int more = 1;
        while (more) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&part);
                break;
            }
            more = zmq_msg_more(&part);
            if (n < 2)
                parts[n++] = part;
            else {
                zmq_msg_close(&part);
                n = 3; /* too many parts */
            }
        }
        if (n == 2)
            s_on_event(hub, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]));
        else if (n == 1 && zmq_msg_size(&parts[0]) == EVENTS_PUB_TICK_SIZE)
            s_on_tick(hub, zmq_msg_data(&parts[0]));
        else if (n != 0) {
            hub->dropped++;
            log_warn("event stream: frame dropped (%zu parts)", n);
        }
        for (size_t i = 0; i < n && i < 2; i++)
            zmq_msg_close(&parts[i]);
    }
    /* Bound reached: no new edge will come for what is left. */
    if (!h2o_timeout_is_linked(&hub->drain_later))
        h2o_timeout_link(hub->ctx->loop, &hub->ctx->zero_timeout, &hub->drain_later);
}

static void on_hub_readable(h2o_socket_t *sock, const char *err)
{
    s_hub_drain(sock->data);
}

static void on_hub_drain_later(h2o_timeout_entry_t *entry)
{
    s_hub_drain(H2O_STRUCT_FROM_MEMBER(stream_hub_t, drain_later, entry));
}

int http_stream_thread_init(h2o_context_t *ctx, const char *endpoint)
{
    stream_hub_t *hub = calloc(1, sizeof(*hub));
    if (hub == NULL)
        return -1;
    hub->ctx = ctx;
    hub->last_seen = -1;
    hub->drain_later.cb = on_hub_drain_later;
    h2o_linklist_init_anchor(&hub->streams);
    h2o_timeout_init(ctx->loop, &hub->heartbeat, STREAM_HEARTBEAT_MS);
    hub->heartbeat_inited = 1;
    s_hub = hub;
    int fd;
    if ((hub->sub = zsock_new(ZMQ_SUB)) == NULL)
        goto Error;
    zsock_set_rcvhwm(hub->sub, STREAM_SUB_RCVHWM);
    zsock_set_maxmsgsize(hub->sub, EVENTS_PUB_DOC_MAX + EVENTS_PUB_HEADER_SIZE);
    zsock_set_linger(hub->sub, 0);
    zsock_set_subscribe(hub->sub, "");
    if (zsock_connect(hub->sub, "%s", endpoint) != 0) {
        log_error("cannot connect to the event publisher at %s", endpoint);
        goto Error;
    }
    if ((fd = fcntl(zsock_fd(hub->sub), F_DUPFD_CLOEXEC, 0)) == -1) {
        log_error("dup(ZMQ_FD): %s", strerror(errno));
        goto Error;
    }
    hub->watcher = h2o_evloop_socket_create(ctx->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    hub->watcher->data = hub;
    h2o_socket_read_start(hub->watcher, on_hub_readable);
    return 0;

Error:
    http_stream_thread_dispose();
    return -1;
}

void http_stream_thread_run(void)
{
    if (s_hub && s_hub->sub)
        s_hub_drain(s_hub);
}

void http_stream_thread_shutdown(void)
{
    if (s_hub == NULL)
        return;
    for (h2o_linklist_t *n = s_hub->streams.next; n != &s_hub->streams; n = n->next) {
        http_stream_t *st = H2O_STRUCT_FROM_MEMBER(http_stream_t, link, n);
        if (st->started && st->writer == &http_websocket_writer)
            s_end(st, HTTP_STREAM_END_SHUTDOWN);
    }
}

void http_stream_thread_dispose(void)
{
    stream_hub_t *hub = s_hub;
    if (hub == NULL)
        return;
    while (!h2o_linklist_is_empty(&hub->streams))
        http_stream_destroy(H2O_STRUCT_FROM_MEMBER(http_stream_t, link, hub->streams.next));
    if (h2o_timeout_is_linked(&hub->drain_later))
        h2o_timeout_unlink(&hub->drain_later);
    if (hub->heartbeat_inited)
        h2o_timeout_dispose(hub->ctx->loop, &hub->heartbeat);
    if (hub->watcher)
        h2o_socket_close(hub->watcher);
    zsock_destroy(&hub->sub);
    if (hub->dropped)
        log_info("event stream: %" PRIu64 " malformed frames dropped", hub->dropped);
    free(hub);
    s_hub = NULL;
}

/* ---- reading the database through the events API --------------------------------------------- */

/* The events API's page: queued in order; more pages, or the held live events, follow. */
static void on_fetch_reply(void *arg, const http_reply_t *reply)
{
    http_stream_t *st = arg;
    st->call = NULL;
    msg_api_response_t res = {0};
    char err[160];
    int answered = reply->kind == HTTP_REPLY_BROKER && reply->status == BRK_STATUS_OK &&
                   msg_api_response_decode(reply->body, reply->size, &res, err, sizeof(err)) == 0;
    int ok = answered && res.status == 200 && res.has_body;
    if (st->touching) {
        /* Live events went on meanwhile: only the answer matters. A refusal means the session is
         * over; a gap seen meanwhile is read now. */
        st->touching = 0;
        if (!ok) {
            log_info("caller stream of account %" PRId64 ": the session is over; closing", st->account_id);
            s_end(st, answered ? HTTP_STREAM_END_SESSION : HTTP_STREAM_END_FAILED);
        } else if (st->phase == PHASE_CATCHUP) {
            s_fetch(st);
        }
        return;
    }
    if (st->started && st->phase == PHASE_CLOSING)
        return;
    json_t *root = ok ? json_loadb(res.body.ptr, res.body.len, 0, NULL) : NULL;
    json_t *items = json_object_get(root, "items");
    if (!json_is_array(items) || json_array_size(items) > STREAM_PAGE) {
        json_decref(root);
        if (!st->started) {
            h2o_req_t *req = s_abandon(st);
            if (ok)
                http_problem_send(req, 502, "bad-gateway", "Bad Gateway", "the service sent an unexpected answer");
            else
                http_api_on_reply(req, reply); /* the store's refusal (422 for a bad filter) as it is */
            return;
        }
        log_warn("event stream of account %" PRId64 ": cannot read the events (%s); closing", st->account_id,
                 ok ? "bad answer" : "store unavailable");
        s_end(st, HTTP_STREAM_END_FAILED);
        return;
    }
    size_t count = json_array_size(items);
    if (st->newest_first) {
        /* Live from the latest event: nothing before it is replayed. */
        st->newest_first = 0;
        json_int_t latest = count ? json_integer_value(json_object_get(json_array_get(items, 0), "id")) : 0;
        if (latest > st->last_id)
            st->last_id = latest;
        count = 0;
    }
    if (!st->started && s_start(st) != 0) {
        json_decref(root);
        return;
    }
    for (size_t i = 0; i < count && st->phase != PHASE_CLOSING; i++) {
        json_t *item = json_array_get(items, i);
        json_int_t id = json_integer_value(json_object_get(item, "id"));
        const char *type = json_string_value(json_object_get(item, "type"));
        if (id <= st->last_id || type == NULL || !s_is_type(type, strlen(type))) {
            log_warn("event stream: the events API answered out of order at %" PRId64, (int64_t)id);
            json_decref(root);
            s_end(st, HTTP_STREAM_END_FAILED);
            return;
        }
        size_t len;
        char *text = s_render(st->base, st->writer, item, id, type, &len);
        if (text == NULL) {
            s_overflow(st);
            break;
        }
        s_queue(st, id, text, len);
        free(text);
    }
    json_decref(root);
    if (st->phase == PHASE_CLOSING) {
        s_flush(st);
        return;
    }
    if (count == STREAM_PAGE || st->again) {
        st->again = 0;
        s_flush(st);
        s_fetch(st);
        return;
    }
    /* Caught up: the held live events above what the database gave follow in order. */
    st->phase = PHASE_LIVE;
    for (size_t i = 0; i < st->num_live && st->phase == PHASE_LIVE; i++)
        s_queue(st, st->live[i].id, st->live[i].text, st->live[i].len);
    s_drop_live(st);
    s_flush(st);
}

/*
 * A caller's stream keeps their session alive, as any request of theirs does: every keep-alive
 * reads the newest of their events, which counts as seeing them (docs/adr/0006: no phantom
 * callers); when the session is over the read is refused and the stream ends. Live events keep
 * flowing during the read: holding them, as a gap's catch-up must, would stall every caller's
 * screen at once each time their keep-alives come due together.
 */
static void s_touch(http_stream_t *st)
{
    if (st->phase != PHASE_LIVE || st->call != NULL)
        return;
    st->touching = 1;
    st->newest_first = 1;
    s_fetch(st);
    st->newest_first = 0;
    if (st->call == NULL)
        st->touching = 0;
}

/* Asks the events API for what follows last_id (or, the first time without a cursor, for the
 * latest event), with the client's credentials and filters. Before the stream started, a failure
 * to ask answers the request and frees the stream. */
static void s_fetch(http_stream_t *st)
{
    if (st->call != NULL)
        return;
    char query[STREAM_QUERY_MAX + 64];
    if (st->newest_first)
        snprintf(query, sizeof(query), "limit=1&%.*s", (int)st->query.len, st->query.base);
    else
        snprintf(query, sizeof(query), "after=%" PRId64 "&limit=%d&%.*s", st->last_id, STREAM_PAGE, (int)st->query.len,
                 st->query.base);
    size_t len = strlen(query);
    if (len && query[len - 1] == '&')
        query[--len] = '\0';
    msg_api_request_t m = {0};
    m.method = msg_str("GET");
    m.path = msg_str(st->of_caller ? "/v1/caller_session/events" : "/v1/events");
    m.query = (msg_str_t){query, (uint32_t)len};
    m.has_query = true;
    m.headers = st->headers;
    m.has_headers = st->headers.count > 0;
    m.request_id = msg_str(st->request_id);
    m.base_url = msg_str(st->base);
    m.has_base_url = st->base[0] != '\0';
    if ((st->call = http_api_call(st->thread, &m, on_fetch_reply, st)) != NULL)
        return;
    int err = errno;
    if (!st->started)
        http_api_refuse(s_abandon(st), err);
    else
        s_end(st, HTTP_STREAM_END_FAILED); /* the client resumes from what it got */
}

/* ---- the request ----------------------------------------------------------------------------- */

typedef struct {
    int64_t after; /* -1: none */
    int64_t campaign_id, caller_id;
    char types[STREAM_TYPES_MAX][EVENTS_PUB_TYPE_MAX + 1];
    size_t num_types;
} stream_args_t;

static int s_integer(const char *s, size_t len, int64_t min, int64_t *out)
{
    if (len == 0 || len > 18 || (s[0] == '0' && len > 1))
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return v >= min ? 0 : -1;
}

/* 1 when the query names only the stream's parameters and credentials (a caller's stream: after
 * and type; its credential is the session's token or cookie). */
static int s_known_names(h2o_iovec_t query, int of_caller)
{
    static const char *known[] = {"after", "type", "campaign_id", "caller_id", "api_key", "api_auth"};
    size_t num_known = of_caller ? 2 : sizeof(known) / sizeof(known[0]);
    for (size_t at = 0; at < query.len;) {
        const char *item = query.base + at;
        size_t len = 0;
        while (at + len < query.len && item[len] != '&')
            len++;
        size_t name_len = 0;
        while (name_len < len && item[name_len] != '=')
            name_len++;
        int found = name_len == 0;
        for (size_t i = 0; i < num_known && !found; i++)
            found = strlen(known[i]) == name_len && memcmp(known[i], item, name_len) == 0;
        if (!found)
            return 0;
        at += len + 1;
    }
    return 1;
}

/* The stream's parameters; bad ones answered with a problem document. 0 or -1. A WebSocket
 * resumes with ?after only: browsers cannot send Last-Event-ID on one. */
static int s_args(h2o_req_t *req, h2o_iovec_t query, int of_caller, int websocket, stream_args_t *a)
{
    memset(a, 0, sizeof(*a));
    a->after = -1;
    char value[STREAM_TYPES_MAX * (EVENTS_PUB_TYPE_MAX + 1) + 1];
    int bad = !s_known_names(query, of_caller);
    if (urlform_param(query.base, query.len, "after", value, sizeof(value)) == 0)
        bad |= s_integer(value, strlen(value), 0, &a->after) != 0;
    if (urlform_param(query.base, query.len, "campaign_id", value, sizeof(value)) == 0)
        bad |= s_integer(value, strlen(value), 1, &a->campaign_id) != 0;
    if (urlform_param(query.base, query.len, "caller_id", value, sizeof(value)) == 0)
        bad |= s_integer(value, strlen(value), 1, &a->caller_id) != 0;
    if (urlform_param(query.base, query.len, "type", value, sizeof(value)) == 0) {
        for (const char *t = value; !bad;) {
            size_t n = strcspn(t, ",");
            if (n == 0 || n > EVENTS_PUB_TYPE_MAX || a->num_types == STREAM_TYPES_MAX) {
                bad = 1;
                break;
            }
            memcpy(a->types[a->num_types], t, n);
            a->types[a->num_types++][n] = '\0';
            if (t[n] == '\0')
                break;
            t += n + 1;
        }
    }
    if (bad) {
        http_problem_send(req, 422, "invalid-query", "Invalid query parameters",
                          of_caller ? "a caller's stream takes after (an event id) and type (event types separated by commas)"
                                    : "a stream takes after, campaign_id and caller_id (ids) and type (event types separated by "
                                      "commas)");
        return -1;
    }
    if (websocket)
        return 0;
    /* Last-Event-ID, sent by a reconnecting EventSource, wins over ?after. */
    ssize_t at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
    if (at != -1) {
        h2o_iovec_t v = req->headers.entries[at].value;
        if (s_integer(v.base, v.len, 0, &a->after) != 0) {
            http_problem_send(req, 400, "bad-last-event-id", "Bad Request", "Last-Event-ID must be an event id");
            return -1;
        }
    }
    return 0;
}

static h2o_iovec_t s_query(h2o_req_t *req)
{
    return req->query_at < req->path.len ? h2o_iovec_init(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1)
                                         : h2o_iovec_init(NULL, 0);
}

/*
 * 1 for an HTTP/1.1 WebSocket handshake, 0 for any other request (HTTP/2 has no Upgrade: its
 * streams are SSE), -1 for a broken handshake (answered).
 */
static int s_websocket(h2o_req_t *req)
{
    if (req->version >= 0x200 || req->upgrade.base == NULL ||
        !h2o_lcstris(req->upgrade.base, req->upgrade.len, H2O_STRLIT("websocket")))
        return 0;
    const char *key = NULL;
    if (h2o_is_websocket_handshake(req, &key) != 0 || key == NULL) {
        http_problem_send(req, 400, "bad-websocket-handshake", "Bad Request", "a WebSocket handshake needs a Sec-WebSocket-Key");
        return -1;
    }
    ssize_t at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-websocket-version"), -1);
    if (at == -1 || !h2o_memis(req->headers.entries[at].value.base, req->headers.entries[at].value.len, H2O_STRLIT("13"))) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-version"), 0, NULL, H2O_STRLIT("13"));
        http_problem_send(req, 426, "websocket-version", "Upgrade Required", "the WebSocket version must be 13");
        return -1;
    }
    return 1;
}

/*
 * A browser lets any page open a WebSocket to any server, with that server's cookies and without
 * asking it (no CORS applies): a caller's session cookie counts only on a handshake from the
 * server's own origin. Other credentials cannot be sent by a page that does not know them.
 */
static void s_drop_foreign_cookie(h2o_req_t *req, msg_pairs_t *headers)
{
    ssize_t at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    char base[STREAM_BASE_MAX];
    if (at == -1 || (http_base_url(req, base, sizeof(base)) == 0 &&
                     h2o_memis(req->headers.entries[at].value.base, req->headers.entries[at].value.len, base, strlen(base))))
        return;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < headers->count; i++) {
        if (h2o_lcstris(headers->name[i].ptr, headers->name[i].len, H2O_STRLIT("cookie")))
            continue;
        headers->name[kept] = headers->name[i];
        headers->value[kept++] = headers->value[i];
    }
    headers->count = kept;
}

/* Copies what every read needs from the request, which a WebSocket's stream outlives. 0 or -1. */
static int s_keep(http_stream_t *st, h2o_req_t *req, int websocket)
{
    msg_api_request_t m = {0};
    if (http_api_collect(req, &m) != 0)
        return -1;
    if (websocket)
        s_drop_foreign_cookie(req, &m.headers);
    h2o_iovec_t query = s_query(req);
    size_t size = query.len;
    for (uint32_t i = 0; i < m.headers.count; i++)
        size += m.headers.name[i].len + m.headers.value[i].len;
    if ((st->kept = malloc(size + 1)) == NULL)
        return -1;
    char *at = st->kept;
    for (uint32_t i = 0; i < m.headers.count; i++) {
        msg_str_t *name = &m.headers.name[i], *value = &m.headers.value[i];
        memcpy(at, name->ptr, name->len);
        st->headers.name[i] = (msg_str_t){at, name->len};
        at += name->len;
        if (value->len)
            memcpy(at, value->ptr, value->len);
        st->headers.value[i] = (msg_str_t){at, value->len};
        at += value->len;
    }
    st->headers.count = m.headers.count;
    if (query.len)
        memcpy(at, query.base, query.len);
    st->query = h2o_iovec_init(at, query.len);
    h2o_iovec_t id = http_request_id(req);
    snprintf(st->request_id, sizeof(st->request_id), "%.*s", (int)id.len, id.base);
    if (http_base_url(req, st->base, sizeof(st->base)) != 0)
        st->base[0] = '\0';
    return 0;
}

/* The store's answer to GET /v1 (or, for a caller, GET /v1/caller_session) on the client's
 * behalf: its account (and caller), then the first read. */
static void s_on_auth(h2o_req_t *req, const http_reply_t *reply, int of_caller)
{
    msg_api_response_t res = {0};
    char err[160];
    if (reply->kind != HTTP_REPLY_BROKER || reply->status != BRK_STATUS_OK ||
        msg_api_response_decode(reply->body, reply->size, &res, err, sizeof(err)) != 0 || res.status != 200 || !res.has_body) {
        http_api_on_reply(req, reply);
        return;
    }
    json_t *root = json_loadb(res.body.ptr, res.body.len, 0, NULL);
    json_int_t account_id = of_caller ? json_integer_value(json_object_get(root, "account_id"))
                                      : json_integer_value(json_object_get(json_object_get(root, "account"), "id"));
    json_int_t own_caller = json_integer_value(json_object_get(json_object_get(root, "caller"), "id"));
    json_decref(root);
    if (account_id <= 0 || (of_caller && own_caller <= 0) || s_hub == NULL) {
        http_problem_send(req, 502, "bad-gateway", "Bad Gateway", "the service sent an unexpected answer");
        return;
    }
    int websocket = s_websocket(req); /* checked before: 0 or 1 now */
    stream_args_t a;
    if (s_args(req, s_query(req), of_caller, websocket, &a) != 0) /* parsed again into `a`: they were checked before */
        return;
    http_stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL || s_keep(st, req, websocket) != 0) {
        if (st)
            free(st->kept);
        free(st);
        http_problem_send(req, 500, "internal-error", "Internal Server Error", "the stream cannot be made");
        return;
    }
    st->writer = websocket ? &http_websocket_writer : &http_sse_writer;
    st->thread = http_thread_of(req);
    st->req = req;
    st->anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*st->anchor), on_anchor_dispose);
    st->anchor->st = st;
    st->account_id = account_id;
    st->campaign_id = a.campaign_id;
    st->caller_id = of_caller ? own_caller : a.caller_id;
    st->of_caller = of_caller;
    st->num_types = a.num_types;
    memcpy(st->types, a.types, sizeof(a.types));
    st->newest_first = a.after < 0;
    st->last_id = a.after < 0 ? 0 : a.after;
    st->phase = PHASE_CATCHUP;
    /* Registered before the first read: every live event from here on is held, none is lost. */
    h2o_linklist_insert(&s_hub->streams, &st->link);
    s_fetch(st);
}

static void on_auth_reply(h2o_req_t *req, const http_reply_t *reply)
{
    s_on_auth(req, reply, 0);
}

static void on_caller_auth_reply(h2o_req_t *req, const http_reply_t *reply)
{
    s_on_auth(req, reply, 1);
}

void http_stream_serve(h2o_req_t *req, msg_api_request_t *m, int of_caller)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
        http_problem_send(req, 405, "method-not-allowed", "Method Not Allowed", "an event stream is read with GET");
        return;
    }
    h2o_iovec_t query = s_query(req);
    if (query.len > STREAM_QUERY_MAX) {
        http_problem_send(req, 414, "uri-too-long", "URI Too Long", "the query string is too long");
        return;
    }
    int websocket = s_websocket(req);
    stream_args_t a;
    if (websocket < 0 || s_args(req, query, of_caller, websocket, &a) != 0)
        return;
    if (websocket)
        s_drop_foreign_cookie(req, &m->headers);
    m->has_headers = m->headers.count > 0;
    m->method = msg_str("GET");
    m->path = msg_str(of_caller ? "/v1/caller_session" : "/v1");
    m->has_body = false;
    if (http_api_send(req, m, of_caller ? on_caller_auth_reply : on_auth_reply) != 0)
        log_line(LOG_LEVEL_DEBUG, NULL, "event stream: the store could not be asked");
}
