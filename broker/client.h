/*
 * The requester side of the broker protocol, for any DEALER connected to the broker's front
 * socket. Requests travel in batches (see wire.h): a requester collects what it has to send
 * during one turn of its event loop in a brk_batch_t and sends it as one message. Sends never
 * block: a full queue is reported as -1 with errno EAGAIN so the caller can answer 503 instead
 * of stalling an event loop.
 */
#ifndef IMPACT_BROKER_CLIENT_H
#define IMPACT_BROKER_CLIENT_H

#include <czmq.h>
#include <stdint.h>

#include "broker/wire.h"

typedef struct brk_batch_t brk_batch_t;

brk_batch_t *brk_batch_new(void);
void brk_batch_destroy(brk_batch_t **self_p);

/**
 * Adds a request (the body is copied). -1 with errno EXDEV when the batch holds requests for
 * another service, ENOSPC when it is full (send it first), EINVAL for a bad service name.
 */
int brk_batch_add(brk_batch_t *self, const char *service, uint64_t corr, const void *body, size_t size);

/** Requests in the batch. */
size_t brk_batch_count(const brk_batch_t *self);

/** The correlation id of entry `index`, so a caller can fail each one when a send fails. */
uint64_t brk_batch_corr(const brk_batch_t *self, size_t index);

/** Sends the batch as one message and empties it. 0, or -1 with errno (EAGAIN) and the batch kept. */
int brk_batch_send(brk_batch_t *self, zsock_t *dealer);

/** Empties the batch without sending. */
void brk_batch_clear(brk_batch_t *self);

/** Sends a batch of one: [service][corr][body]. 0, or -1 with errno set. */
int brk_client_send(zsock_t *dealer, const char *service, uint64_t corr, const void *body, size_t size);

/** Called once per reply; `body` is valid only during the call. */
typedef void(brk_reply_fn)(void *arg, uint64_t corr, brk_status_t status, const void *body, size_t size);

/**
 * Receives one reply message without blocking and calls `on_reply` for each reply in it.
 * Returns the number of replies delivered, or -1 with errno EAGAIN when nothing is waiting and
 * EPROTO when a malformed message was discarded (keep draining). Replies before a malformed
 * part of a message are still delivered; the rest of it is dropped.
 */
int brk_client_recv(zsock_t *dealer, brk_reply_fn *on_reply, void *arg);

#endif
