/*
 * Call-state webhooks of POST /v1/call: delivery of the call_events outbox
 * (schemas/sql/0008_call_events.sql) to each call's call_state_url.
 *
 * Events are committed with the attempt state they describe, so delivery only has to be
 * persistent: an event is claimed (a lease on the row, taken with SKIP LOCKED so several
 * deliverers never take the same one), POSTed, and marked delivered on a 2xx; anything else is
 * retried after 1 s, doubling to 10 minutes, until the event is a day old, when it is marked
 * failed. Rows are kept either way, with one call_event_deliveries row per attempt. Only the
 * oldest pending event of a call is ever claimed, so a call's events arrive in order.
 *
 * Each POST carries Webhook-Id (the event id, stable across retries, for de-duplication) and
 * Webhook-Timestamp (Unix seconds of the attempt), the inputs of Standard Webhooks signing.
 */
#ifndef IMPACT_FANOUT_WEBHOOKS_H
#define IMPACT_FANOUT_WEBHOOKS_H

#include <czmq.h>
#include <stdbool.h>

#define WEBHOOKS_TIMEOUT_MS    5000
#define WEBHOOKS_BATCH         16   /* events claimed per turn */
#define WEBHOOKS_RUN_MS        1000 /* no post starts later than this into a run: the broker is served between runs */
#define WEBHOOKS_LEASE_SECONDS 120  /* a claim outlives a whole batch of timeouts */
#define WEBHOOKS_RECONNECT_MS  2000
#define WEBHOOKS_IDLE_MS       60000 /* a scan even without a notification, against a lost one */

typedef struct webhooks_t webhooks_t;

/** A deliverer on `database_url`; it connects (and reconnects) on its own. NULL when out of memory. */
webhooks_t *webhooks_new(const char *database_url, bool allow_private_urls);

void webhooks_destroy(webhooks_t **self_p);

/** The PostgreSQL socket to poll for notifications, or -1 while disconnected. */
int webhooks_socket(webhooks_t *self);

/** Reads notifications after the socket polled readable. */
void webhooks_readable(webhooks_t *self);

/**
 * Delivers what is due, starting no post after WEBHOOKS_RUN_MS nor once `pipe` has a message
 * (claims not yet posted are given back). Returns milliseconds until it wants to run again.
 */
int webhooks_run(webhooks_t *self, zsock_t *pipe);

#endif
