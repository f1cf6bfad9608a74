/*
 * An event stream written as Server-Sent Events (stream.h): `200 text/event-stream`, `retry:`
 * first, each event as `id:`, `event:` and `data:` lines, a `: keep-alive` comment when nothing
 * else waits, and `event: overflow` with the last id handed to the connection before the end.
 *
 * Output waits for h2o's proceed callback: what is queued meanwhile is one buffer, handed over
 * whole at the next proceed, so a reader that keeps up gets a batch in one write. The buffer is
 * what the stream's bounds count; the batch in flight is the connection's.
 *
 * The writer lives in the request's pool, and frees the stream with it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/problem.h"
#include "http/stream.h"

#define SSE_RETRY_MS    2000
#define SSE_KEEP_BUFFER 16384 /* a written output buffer up to this size is reused */

typedef struct {
    h2o_generator_t generator; /* first: h2o hands it back to the callbacks */
    http_stream_t *st;         /* NULL once the stream is freed */
    h2o_req_t *req;
    char *out; /* text waiting for the connection */
    size_t out_len, out_cap, out_events;
    int64_t out_last;
    int64_t sent_id; /* the last event handed to the connection (or where the stream started) */
    char *fly;       /* text handed to h2o_send, until proceed */
    size_t fly_cap;
    int sending;
    int closing; /* overflowed or ended: the next send is the last */
    int final;   /* the last send was the end */
    int stopped; /* h2o stopped the response (the client left): nothing more may be sent */
} sse_t;

static int s_append(sse_t *sse, const char *text, size_t len)
{
    if (sse->out_len + len > sse->out_cap) {
        size_t cap = sse->out_cap ? sse->out_cap : 4096;
        while (cap < sse->out_len + len)
            cap *= 2;
        char *p = realloc(sse->out, cap);
        if (p == NULL)
            return -1;
        sse->out = p;
        sse->out_cap = cap;
    }
    memcpy(sse->out + sse->out_len, text, len);
    sse->out_len += len;
    return 0;
}

static void s_flush(void *w)
{
    sse_t *sse = w;
    if (sse->stopped || sse->sending || sse->final || sse->out_len == 0)
        return;
    sse->fly = sse->out;
    sse->fly_cap = sse->out_cap;
    h2o_iovec_t buf = h2o_iovec_init(sse->fly, sse->out_len);
    sse->out = NULL;
    sse->out_len = sse->out_cap = 0;
    if (sse->out_events)
        sse->sent_id = sse->out_last;
    sse->out_events = 0;
    sse->sending = 1;
    sse->final = sse->closing;
    h2o_send(sse->req, &buf, 1, sse->final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    sse_t *sse = (sse_t *)generator;
    /* The buffer just written is the next one filled. Allocating one per stream per event and
     * freeing it after the write made glibc hand the pages back to the kernel (madvise, with a
     * TLB shootdown on every core) and fault them in again: a third of the HTTP threads' time in
     * a wide fan-out. One that grew for a burst is let go. */
    if (sse->out == NULL && sse->fly_cap <= SSE_KEEP_BUFFER) {
        sse->out = sse->fly;
        sse->out_cap = sse->fly_cap;
        sse->out_len = 0;
    } else {
        free(sse->fly);
    }
    sse->fly = NULL;
    sse->sending = 0;
    s_flush(sse);
}

static void on_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    sse_t *sse = (sse_t *)generator;
    sse->closing = 1;
    sse->stopped = 1;
    if (sse->st)
        http_stream_stop(sse->st);
}

/* The request's pool is going: the client left or the response ended. */
static void on_sse_dispose(void *p)
{
    sse_t *sse = p;
    if (sse->st)
        http_stream_destroy(sse->st);
    free(sse->out);
    free(sse->fly);
}

static int s_start(http_stream_t *st, h2o_req_t *req, int64_t after, void **w)
{
    static h2o_generator_t generator = {on_proceed, on_stop};
    sse_t *sse = h2o_mem_alloc_shared(&req->pool, sizeof(*sse), on_sse_dispose);
    memset(sse, 0, sizeof(*sse));
    sse->generator = generator;
    sse->st = st;
    sse->req = req;
    sse->sent_id = after;
    http_response_init(req, 200);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_start_response(req, &sse->generator);
    char retry[32];
    int n = snprintf(retry, sizeof(retry), "retry: %d\n\n", SSE_RETRY_MS);
    s_append(sse, retry, (size_t)n);
    *w = sse;
    return 0;
}

static char *s_frame(int64_t id, const char *type, const char *doc, size_t *len)
{
    size_t need = strlen(doc) + strlen(type) + 64;
    char *text = malloc(need);
    if (text)
        *len = (size_t)snprintf(text, need, "id: %" PRId64 "\nevent: %s\ndata: %s\n\n", id, type, doc);
    return text;
}

static int s_queue(void *w, int64_t id, const char *text, size_t len)
{
    sse_t *sse = w;
    if (s_append(sse, text, len) != 0)
        return -1;
    sse->out_events++;
    sse->out_last = id;
    return 0;
}

static void s_backlog(void *w, size_t *events, size_t *bytes)
{
    sse_t *sse = w;
    *events = sse->out_events;
    *bytes = sse->out_len;
}

static void s_keepalive(void *w)
{
    sse_t *sse = w;
    if (sse->closing || sse->sending || sse->out_len != 0)
        return;
    static const char comment[] = ": keep-alive\n\n";
    s_append(sse, comment, sizeof(comment) - 1);
    s_flush(sse);
}

/* Whatever waits is dropped; the client resumes from the last event the connection was given. */
static int64_t s_overflow(void *w)
{
    sse_t *sse = w;
    char text[128];
    int n = snprintf(text, sizeof(text), "event: overflow\ndata: {\"resume_after\": %" PRId64 "}\n\n", sse->sent_id);
    sse->out_len = 0;
    sse->out_events = 0;
    sse->closing = 1;
    s_append(sse, text, (size_t)n);
    s_flush(sse);
    return sse->sent_id;
}

/* SSE cannot say why: the stream just ends, and the client resumes from the last id it got. */
static void s_end(void *w, http_stream_end_t why)
{
    sse_t *sse = w;
    sse->closing = 1;
    s_flush(sse);
    if (!sse->stopped && !sse->sending && !sse->final) {
        sse->final = 1;
        sse->sending = 1;
        h2o_send(sse->req, NULL, 0, H2O_SEND_STATE_FINAL);
    }
}

static void s_dispose(void *w)
{
    sse_t *sse = w;
    sse->st = NULL;
}

const http_stream_writer_t http_sse_writer = {
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
