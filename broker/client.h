/*
 * The requester side of the broker protocol, for any DEALER connected to the broker's front
 * socket. Sends never block: a full queue is reported as -1 with errno EAGAIN so the caller can
 * answer 503 instead of stalling an event loop.
 */
#ifndef IMPACT_BROKER_CLIENT_H
#define IMPACT_BROKER_CLIENT_H

#include <czmq.h>
#include <stdint.h>

#include "broker/wire.h"

/** Sends [service][corr][body]. 0, or -1 with errno set. */
int brk_client_send(zsock_t *dealer, const char *service, uint64_t corr, const void *body, size_t size);

/** Receives one reply without blocking: 0 with the body frame handed over; -1 with errno EAGAIN when
 *  none is waiting, EPROTO when a malformed reply was discarded (keep draining). */
int brk_client_recv(zsock_t *dealer, uint64_t *corr, brk_status_t *status, zframe_t **body);

#endif
