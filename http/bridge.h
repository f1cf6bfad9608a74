/*
 * http_bridge_t: one event-loop thread's DEALER to the broker front, driven from inside the h2o
 * loop, and the table of requests waiting for a reply.
 *
 * Each relayed request gets a correlation id ((thread index << 56) | counter) and a pending
 * entry allocated in the request's own pool with h2o_mem_alloc_shared. The entry is in the
 * table from send until exactly one of three things happens first:
 *   - the broker's reply arrives: the callback runs with HTTP_REPLY_BROKER;
 *   - the deadline passes: the callback runs with HTTP_REPLY_TIMEOUT;
 *   - the client goes away (RST_STREAM, connection closed) and h2o frees the pool: the entry's
 *     dispose hook takes it out of the table and the callback never runs. A reply that arrives
 *     later finds no entry and is dropped and counted.
 * So the callback is the only place a relayed request is answered, and nothing ever touches an
 * h2o_req_t that h2o has freed.
 *
 * A call (http_bridge_call) is the same for an owner that is no request: an event stream, whose
 * request is gone once it became a WebSocket. Its entry is the bridge's; the owner cancels it when
 * it goes, which takes the place of the pool's dispose hook.
 */
#ifndef IMPACT_HTTP_BRIDGE_H
#define IMPACT_HTTP_BRIDGE_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/wire.h"

typedef struct st_http_bridge_t http_bridge_t;

typedef enum {
    HTTP_REPLY_BROKER,   /* the broker answered: `status` and `body` are set */
    HTTP_REPLY_TIMEOUT,  /* the deadline passed first */
    HTTP_REPLY_SHUTDOWN, /* the process is stopping and cannot wait any longer */
} http_reply_kind_t;

typedef struct {
    http_reply_kind_t kind;
    uint64_t corr;
    brk_status_t status;
    const void *body; /* the reply frame's bytes; valid only during the callback */
    size_t size;
} http_reply_t;

/**
 * Called once per relayed request whose client is still there. The entry has already left the
 * table, so the callback may answer (and thereby free) the request.
 */
typedef void (*http_bridge_reply_cb)(h2o_req_t *req, const http_reply_t *reply);

/**
 * Connects a DEALER to `endpoint` and watches it from `ctx`'s loop.
 * @param ctx the thread's h2o context (its loop and zero timeout are used)
 * @param thread_index goes into the top byte of every correlation id
 * @param timeout_ms the deadline of every request
 * @param max_pending further sends fail with ENOSPC while this many are waiting
 * @return the bridge, or NULL on failure
 */
http_bridge_t *http_bridge_new(h2o_context_t *ctx, const char *endpoint, unsigned thread_index, uint64_t timeout_ms,
                               size_t max_pending);

/** Closes the socket; pending requests are answered with HTTP_REPLY_SHUTDOWN first. Idempotent. */
void http_bridge_destroy(http_bridge_t **self_p);

/**
 * Registers `req` as pending and queues [corr][body] for `service` in the outgoing batch, which
 * the next drain sends (see bridge.c). A broker queue found full at that point answers the
 * request through its callback with BRK_STATUS_OVERLOADED.
 * @return 0, or -1 with errno: ENOSPC (too many pending), EINVAL (bad service name)
 */
int http_bridge_send(http_bridge_t *self, h2o_req_t *req, const char *service, const void *body, size_t size,
                     http_bridge_reply_cb cb);

typedef struct st_http_bridge_call_t http_bridge_call_t;

/** Called once per call that was not cancelled; the call is freed before. */
typedef void (*http_bridge_call_cb)(void *arg, const http_reply_t *reply);

/**
 * As http_bridge_send, for an owner that is not a request: the answer goes to cb(arg), unless
 * http_bridge_cancel comes first.
 * @return the call, valid until its callback runs or it is cancelled; NULL with errno as
 * http_bridge_send (or ENOMEM)
 */
http_bridge_call_t *http_bridge_call(http_bridge_t *self, const char *service, const void *body, size_t size,
                                     http_bridge_call_cb cb, void *arg);

/** Withdraws a call whose answer is no longer wanted: a reply that comes later is dropped as late. */
void http_bridge_cancel(http_bridge_call_t *call);

/** Sends the outgoing batch, then delivers every reply waiting on the socket (bounded per call;
 *  the rest are scheduled). */
void http_bridge_drain(http_bridge_t *self);

/** Requests still waiting for a reply. */
size_t http_bridge_pending(const http_bridge_t *self);

/** Answers every pending request with HTTP_REPLY_SHUTDOWN now. */
void http_bridge_abort_all(http_bridge_t *self);

/** One log line with the counters (sent, replied, timed out, gone, late, malformed). */
void http_bridge_log_stats(const http_bridge_t *self);

#endif
