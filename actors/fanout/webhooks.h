/*
 * Webhook delivery from two outboxes: call-state webhooks of POST /v1/call (the call_events
 * outbox, schemas/sql/0008_call_events.sql, to each call's call_state_url), and webhook endpoints
 * (the webhook_deliveries outbox, schemas/sql/0014_webhook_endpoints.sql, filled as events are
 * numbered). The two differ in their unit of order (a call; an endpoint's stream: one campaign,
 * or the account-level events), their retry class (fast; long: up to an hour apart for 3 days,
 * with jitter) and what a 410 Gone gives up (the call's URL; the endpoint, disabled, its
 * deliveries kept pending for an enable). Everything below holds for both.
 *
 * Events are committed with the attempt state they describe, so delivery only has to be
 * persistent: an event is claimed (a lease on the row, taken with SKIP LOCKED so several
 * deliverers never take the same one), POSTed, and settled: delivered on a 2xx; on 410 Gone the
 * call's URL is given up (this event and the call's pending ones are marked failed, later ones are
 * failed as they are written); anything else is retried with the retry class's back-off, or at
 * the time a Retry-After asks for when that is later, until the event is too old, when it is
 * marked failed. Rows are kept either way, with one call_event_deliveries row per attempt.
 *
 * Many calls' events are in flight at once (libcurl multi, driven by the fan-out actor's poll
 * loop: no threads), at most WEBHOOKS_IN_FLIGHT. Only the oldest pending event of a call is ever
 * claimed, and it stays pending, under its lease, until its outcome is settled, so a call never
 * has two events in flight and its events arrive in order.
 *
 * Each POST is signed the Standard Webhooks way (common/webhook_signature.h): webhook-id (the
 * event id, stable across retries: the receiver's de-duplication key), webhook-timestamp (Unix
 * seconds of this attempt) and webhook-signature with one signature per active secret of the
 * account (schemas/sql/0010_webhook_secrets.sql).
 */
#ifndef IMPACT_FANOUT_WEBHOOKS_H
#define IMPACT_FANOUT_WEBHOOKS_H

#include <czmq.h>
#include <stdbool.h>

#define WEBHOOKS_TIMEOUT_MS      5000
#define WEBHOOKS_IN_FLIGHT       64   /* deliveries at once, each of a different call or stream */
#define WEBHOOKS_LEASE_SECONDS   120  /* a claim outlives its delivery's timeout by far */
#define WEBHOOKS_RETRY_AFTER_MAX 3600 /* seconds: a longer Retry-After is cut to this */
#define WEBHOOKS_RECONNECT_MS    2000
#define WEBHOOKS_IDLE_MS         60000                      /* a scan even without a notification, against a lost one */
#define WEBHOOKS_SOCKETS_MAX     (4 * WEBHOOKS_IN_FLIGHT)   /* curl's sockets: two per connecting transfer, and idle ones */
#define WEBHOOKS_POLL_MAX        (1 + WEBHOOKS_SOCKETS_MAX) /* the database's socket and curl's */

typedef struct webhooks_t webhooks_t;

/** A deliverer on `database_url`; it connects (and reconnects) on its own. NULL when out of memory. */
webhooks_t *webhooks_new(const char *database_url, bool allow_private_urls);

/** Gives the claims of deliveries still in flight back, so they are posted again soon. */
void webhooks_destroy(webhooks_t **self_p);

/**
 * Fills `items` (room for WEBHOOKS_POLL_MAX) with what to poll for: the database's socket for
 * notifications, and the sockets of deliveries in flight. Returns how many. The sockets change
 * from turn to turn: call it before every poll.
 */
int webhooks_poll_items(webhooks_t *self, zmq_pollitem_t *items, int max);

/** Acts on the items webhooks_poll_items filled, after the poll. */
void webhooks_poll_ready(webhooks_t *self, const zmq_pollitem_t *items, int count);

/**
 * Settles finished deliveries, expires timed-out ones and starts what is due while there is room
 * in flight. Never blocks on a receiver. Returns milliseconds until it wants to run again.
 */
int webhooks_run(webhooks_t *self);

#endif
