/*
 * brk_worker_t: an actor's connection to the broker's back socket.
 *
 * The worker connects a DEALER with the actor's routing id, heartbeats its service name every
 * BRK_HEARTBEAT_MS (the first heartbeat goes out on creation), takes requests and sends replies.
 * Requests arrive in batches (wire.h); the worker hands them out one at a time and sends the
 * replies to a batch back together, once the last request it holds has been answered.
 *
 * An actor polls brk_worker_sock() together with its own sockets (with a zero timeout while
 * brk_worker_busy() says requests are already queued), calls brk_worker_recv() until it returns
 * NULL, and calls brk_worker_tick() whenever its poller wakes up or times out.
 */
#ifndef IMPACT_BROKER_WORKER_H
#define IMPACT_BROKER_WORKER_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/wire.h"

typedef struct brk_worker_t brk_worker_t;

/* One request; frames stay owned by the request until it is replied to or destroyed. */
typedef struct {
    zframe_t *requester;
    zframe_t *corr;
    zframe_t *body;
} brk_request_t;

/** Connects to `endpoint` as `identity` serving `service`. NULL on failure. */
brk_worker_t *brk_worker_new(const char *endpoint, const char *service, const char *identity);

/** Sends any replies still held back, then closes. */
void brk_worker_destroy(brk_worker_t **self_p);

/** The socket to poll. */
zsock_t *brk_worker_sock(brk_worker_t *self);

/** Sends a heartbeat when one is due. Returns milliseconds until the next one is due. */
int brk_worker_tick(brk_worker_t *self);

/** True while received requests are queued inside the worker (poll with a zero timeout). */
bool brk_worker_busy(const brk_worker_t *self);

/**
 * The next request: a queued one, or the first of a newly received batch. Never blocks: NULL
 * when nothing is waiting (and then every held-back reply has been sent). Malformed messages
 * are discarded.
 */
brk_request_t *brk_worker_recv(brk_worker_t *self);

/**
 * Replies to a request and destroys it. The reply is held back while more requests of the same
 * requester are queued, and sent with theirs. 0 or -1.
 */
int brk_worker_reply(brk_worker_t *self, brk_request_t **request_p, brk_status_t status, const void *body, size_t size);

/** Sends the held-back replies now. 0 or -1. */
int brk_worker_flush(brk_worker_t *self);

void brk_request_destroy(brk_request_t **request_p);

#endif
