/*
 * ZeroMQ inside the h2o loop.
 *
 * ZMQ_FD is edge-triggered: it becomes readable when the socket's internal mailbox got work,
 * not while messages are waiting, and it is consumed by asking ZMQ_EVENTS. So:
 *   - the loop watches a dup() of it (h2o closes what it watches; the real ZMQ_FD belongs to
 *     libzmq and must never be closed), with H2O_SOCKET_FLAG_DONT_READ so h2o only notifies and
 *     never read()s the descriptor itself (that would steal libzmq's wake-up);
 *   - every drain loops while ZMQ_EVENTS says POLLIN, and when it stops early (batch bound) it
 *     schedules itself on the zero timeout, because no new edge will come for what is left;
 *   - a send can make replies readable without a new edge, so every send schedules a drain, and
 *     server.c drains after each h2o_evloop_run return as the last safety net.
 *
 * Requests are not sent one by one: http_bridge_send puts them in an outgoing batch that the
 * drain (scheduled on the zero timeout, so it runs once the loop has handled everything that
 * arrived together) sends as one message. Under load that turns a hundred hops into one.
 */
#include "http/bridge.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "broker/client.h"
#include "common/log.h"

#define HTTP_BRIDGE_DRAIN_BATCH 256
#define HTTP_BRIDGE_SNDHWM      10000
#define HTTP_BRIDGE_RCVHWM      100000
#define HTTP_CORR_COUNTER_MASK  ((UINT64_C(1) << 56) - 1)

/* A pending entry: a request's, in its pool, or a call's, malloc'd and freed when it completes or
 * is cancelled. */
struct st_http_bridge_call_t {
    uint64_t corr;         /* the table's key points here */
    h2o_req_t *req;        /* valid while the entry is in the table: dispose takes it out first; NULL for a call */
    http_bridge_t *bridge; /* NULL once out of the table */
    http_bridge_reply_cb cb;
    http_bridge_call_cb call_cb;
    void *arg;
    h2o_timeout_entry_t deadline;
};
typedef struct st_http_bridge_call_t http_pending_t;

struct st_http_bridge_t {
    h2o_context_t *ctx;
    zsock_t *dealer;
    h2o_socket_t *watcher; /* owns the dup of ZMQ_FD */
    zhashx_t *pending;     /* &corr -> http_pending_t*, neither owned: both live in request pools */
    h2o_timeout_t timeout;
    int timeout_inited;
    h2o_timeout_entry_t drain_later;
    brk_batch_t *outbox; /* requests registered as pending but not sent yet */
    unsigned thread_index;
    uint64_t counter;
    size_t max_pending;
    struct {
        uint64_t sent, batches, replied, timed_out, gone, late, malformed, refused;
    } stats;
};

static size_t s_corr_hash(const void *key)
{
    uint64_t v;
    memcpy(&v, key, sizeof(v));
    /* The low bits are a counter; mix so consecutive ids spread over the buckets. */
    v ^= v >> 33;
    v *= UINT64_C(0xff51afd7ed558ccd);
    v ^= v >> 33;
    return (size_t)v;
}

static int s_corr_compare(const void *a, const void *b)
{
    uint64_t x, y;
    memcpy(&x, a, sizeof(x));
    memcpy(&y, b, sizeof(y));
    return x < y ? -1 : x > y;
}

static void s_unlink(http_pending_t *p)
{
    zhashx_delete(p->bridge->pending, &p->corr);
    if (h2o_timeout_is_linked(&p->deadline))
        h2o_timeout_unlink(&p->deadline);
    p->bridge = NULL;
}

/* Takes the entry out of the table before the callback: answering may free the request's pool,
 * and with it `p`, so nothing here reads `p` after the call. */
static void s_complete(http_pending_t *p, http_reply_t *reply)
{
    reply->corr = p->corr;
    s_unlink(p);
    if (p->req == NULL) {
        http_bridge_call_cb cb = p->call_cb;
        void *arg = p->arg;
        free(p);
        cb(arg, reply);
        return;
    }
    p->cb(p->req, reply);
}

static void on_pending_dispose(void *_p)
{
    http_pending_t *p = _p;
    if (p->bridge == NULL)
        return;
    p->bridge->stats.gone++;
    log_debug("corr=%016" PRIx64 " client went away before the reply", p->corr);
    s_unlink(p);
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    http_pending_t *p = H2O_STRUCT_FROM_MEMBER(http_pending_t, deadline, entry);
    p->bridge->stats.timed_out++;
    http_reply_t reply = {.kind = HTTP_REPLY_TIMEOUT};
    s_complete(p, &reply);
}

static void s_schedule_drain(http_bridge_t *self)
{
    if (!h2o_timeout_is_linked(&self->drain_later))
        h2o_timeout_link(self->ctx->loop, &self->ctx->zero_timeout, &self->drain_later);
}

static void on_drain_later(h2o_timeout_entry_t *entry)
{
    http_bridge_drain(H2O_STRUCT_FROM_MEMBER(http_bridge_t, drain_later, entry));
}

static void on_zmq_readable(h2o_socket_t *sock, const char *err)
{
    http_bridge_drain(sock->data);
}

http_bridge_t *http_bridge_new(h2o_context_t *ctx, const char *endpoint, unsigned thread_index, uint64_t timeout_ms,
                               size_t max_pending)
{
    int fd = -1;
    http_bridge_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->ctx = ctx;
    self->thread_index = thread_index & 0xff;
    self->max_pending = max_pending;
    self->drain_later.cb = on_drain_later;

    if ((self->pending = zhashx_new()) == NULL || (self->outbox = brk_batch_new()) == NULL)
        goto Error;
    zhashx_set_key_hasher(self->pending, s_corr_hash);
    zhashx_set_key_comparator(self->pending, s_corr_compare);
    zhashx_set_key_duplicator(self->pending, NULL);
    zhashx_set_key_destructor(self->pending, NULL);

    if ((self->dealer = zsock_new(ZMQ_DEALER)) == NULL)
        goto Error;
    zsock_set_sndhwm(self->dealer, HTTP_BRIDGE_SNDHWM);
    zsock_set_rcvhwm(self->dealer, HTTP_BRIDGE_RCVHWM);
    zsock_set_linger(self->dealer, 0);
    if (zsock_connect(self->dealer, "%s", endpoint) != 0) {
        log_error("cannot connect to the broker at %s", endpoint);
        goto Error;
    }
    if ((fd = fcntl(zsock_fd(self->dealer), F_DUPFD_CLOEXEC, 0)) == -1) {
        log_error("dup(ZMQ_FD): %s", strerror(errno));
        goto Error;
    }
    self->watcher = h2o_evloop_socket_create(ctx->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    self->watcher->data = self;
    h2o_socket_read_start(self->watcher, on_zmq_readable);

    h2o_timeout_init(ctx->loop, &self->timeout, timeout_ms);
    self->timeout_inited = 1;
    return self;

Error:
    http_bridge_destroy(&self);
    return NULL;
}

void http_bridge_destroy(http_bridge_t **self_p)
{
    http_bridge_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->pending != NULL)
        http_bridge_abort_all(self);
    if (h2o_timeout_is_linked(&self->drain_later))
        h2o_timeout_unlink(&self->drain_later);
    if (self->timeout_inited)
        h2o_timeout_dispose(self->ctx->loop, &self->timeout);
    /* Closes our dup only; h2o deletes it from epoll before closing. */
    if (self->watcher != NULL)
        h2o_socket_close(self->watcher);
    zhashx_destroy(&self->pending);
    brk_batch_destroy(&self->outbox);
    zsock_destroy(&self->dealer);
    free(self);
    *self_p = NULL;
}

/* Sends the outgoing batch. If the broker's queue is full, every request in it is answered as
 * the broker would have answered it: overloaded, so the client gets a 503 and may retry. */
static void s_flush(http_bridge_t *self)
{
    if (brk_batch_count(self->outbox) == 0)
        return;
    if (brk_batch_send(self->outbox, self->dealer) == 0) {
        self->stats.batches++;
        return;
    }
    for (size_t i = 0; i < brk_batch_count(self->outbox); i++) {
        uint64_t corr = brk_batch_corr(self->outbox, i);
        http_pending_t *p = zhashx_lookup(self->pending, &corr);
        if (p == NULL)
            continue;
        self->stats.refused++;
        http_reply_t reply = {.kind = HTTP_REPLY_BROKER, .status = BRK_STATUS_OVERLOADED};
        s_complete(p, &reply);
    }
    brk_batch_clear(self->outbox);
}

/* Puts the body in the outgoing batch under a new correlation id. 0, or -1 with errno. */
static int s_enqueue(http_bridge_t *self, const char *service, const void *body, size_t size, uint64_t *corr)
{
    if (zhashx_size(self->pending) >= self->max_pending) {
        self->stats.refused++;
        errno = ENOSPC;
        return -1;
    }
    *corr = ((uint64_t)self->thread_index << 56) | (++self->counter & HTTP_CORR_COUNTER_MASK);
    if (brk_batch_add(self->outbox, service, *corr, body, size) != 0) {
        if (errno != EXDEV && errno != ENOSPC)
            return -1;
        /* The batch is for another service or full: send it and start a new one. */
        s_flush(self);
        if (brk_batch_add(self->outbox, service, *corr, body, size) != 0)
            return -1;
    }
    return 0;
}

static void s_track(http_bridge_t *self, http_pending_t *p)
{
    p->bridge = self;
    p->deadline.cb = on_deadline;
    zhashx_insert(self->pending, &p->corr, p);
    h2o_timeout_link(self->ctx->loop, &self->timeout, &p->deadline);
    self->stats.sent++;
    s_schedule_drain(self);
}

int http_bridge_send(http_bridge_t *self, h2o_req_t *req, const char *service, const void *body, size_t size,
                     http_bridge_reply_cb cb)
{
    uint64_t corr;
    if (s_enqueue(self, service, body, size, &corr) != 0)
        return -1;
    /* The memory is the request's and goes with it, which is what makes a vanished client safe:
     * its entry leaves the table, and a reply for it is dropped as late. */
    http_pending_t *p = h2o_mem_alloc_shared(&req->pool, sizeof(*p), on_pending_dispose);
    *p = (http_pending_t){.corr = corr, .req = req, .cb = cb};
    s_track(self, p);
    return 0;
}

http_bridge_call_t *http_bridge_call(http_bridge_t *self, const char *service, const void *body, size_t size,
                                     http_bridge_call_cb cb, void *arg)
{
    /* Allocated first: a body already in the batch cannot be taken back. */
    http_pending_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if (s_enqueue(self, service, body, size, &p->corr) != 0) {
        free(p);
        return NULL;
    }
    p->call_cb = cb;
    p->arg = arg;
    s_track(self, p);
    return p;
}

void http_bridge_cancel(http_bridge_call_t *call)
{
    if (call == NULL)
        return;
    call->bridge->stats.gone++;
    s_unlink(call);
    free(call);
}

static void s_on_reply(void *arg, uint64_t corr, brk_status_t status, const void *body, size_t size)
{
    http_bridge_t *self = arg;
    http_pending_t *p = zhashx_lookup(self->pending, &corr);
    if (p == NULL) {
        /* Its request timed out or its client left; either way it was already answered. */
        self->stats.late++;
        log_debug("corr=%016" PRIx64 " late reply dropped", corr);
        return;
    }
    self->stats.replied++;
    http_reply_t reply = {.kind = HTTP_REPLY_BROKER, .status = status, .body = body, .size = size};
    s_complete(p, &reply);
}

void http_bridge_drain(http_bridge_t *self)
{
    s_flush(self);
    for (int n = 0; n < HTTP_BRIDGE_DRAIN_BATCH; n++) {
        if (brk_client_recv(self->dealer, s_on_reply, self) < 0) {
            if (errno != EPROTO)
                return;
            self->stats.malformed++;
            log_warn("discarded a malformed reply from the broker");
        }
    }
    s_schedule_drain(self);
}

size_t http_bridge_pending(const http_bridge_t *self)
{
    return zhashx_size(self->pending);
}

void http_bridge_abort_all(http_bridge_t *self)
{
    http_pending_t *p;
    while ((p = zhashx_first(self->pending)) != NULL) {
        http_reply_t reply = {.kind = HTTP_REPLY_SHUTDOWN};
        s_complete(p, &reply);
    }
}

void http_bridge_log_stats(const http_bridge_t *self)
{
    log_info("thread %u relayed: sent=%" PRIu64 " in %" PRIu64 " batches, replied=%" PRIu64 " timed_out=%" PRIu64 " gone=%" PRIu64
             " late=%" PRIu64 " malformed=%" PRIu64 " refused=%" PRIu64,
             self->thread_index, self->stats.sent, self->stats.batches, self->stats.replied, self->stats.timed_out,
             self->stats.gone, self->stats.late, self->stats.malformed, self->stats.refused);
}
