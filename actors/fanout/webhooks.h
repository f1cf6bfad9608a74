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
 * persistent. A claim takes the pending events of up to WEBHOOKS_CLAIM_MAX calls or streams
 * whose oldest is due, at most WEBHOOKS_QUEUE_ITEMS each, with one lease per call or stream
 * (schemas/sql/0017_webhook_leases.sql: no other deliverer takes them meanwhile), into queues in
 * memory. A queue posts its events one at a time: the next once the one before was answered 2xx.
 * Anything else ends the queue: the outcome is recorded, and the database's schedule (the retry
 * class's back-off, or the time a Retry-After asks for when that is later, until the event is
 * too old, when it is marked failed) says when the call or stream is claimed again. On 410 Gone
 * the call's URL is given up (this event and the call's pending ones are marked failed, later
 * ones are failed as they are written). Rows are kept either way, with one row per attempt in
 * the delivery log (call_event_deliveries, webhook_delivery_attempts).
 *
 * Outcomes are recorded without waiting: they gather while the statement before them runs, and
 * go in one statement (the group commit of the dialer's call log, applied to deliveries), so the
 * database is asked once per batch rather than once per delivery. A queue's next event may go out
 * before the previous outcome is recorded; a crash then posts the unrecorded ones again, in order
 * and with the same webhook-id (at least once, never lost). A queue is let go, and its lease
 * deleted, only once its outcomes are recorded. It takes no new start WEBHOOKS_FRESH_MS after its
 * claim: the URL, the secrets and the endpoint's state it was claimed with are that recent, and
 * the lease outlives any delivery started within it.
 *
 * Statements go one at a time on one connection, results read when its socket is readable
 * (libpq's asynchronous calls), so neither the actor's loop nor the deliveries wait on the
 * database. Many calls' events are in flight at once (libcurl multi, driven by the fan-out
 * actor's poll loop: no threads), at most WEBHOOKS_IN_FLIGHT, never two of one queue.
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
#define WEBHOOKS_QUEUES_MAX      512  /* calls and streams held at once: enough to keep every slot busy while a claim runs */
#define WEBHOOKS_CLAIM_MAX       128  /* calls or streams one claim takes */
#define WEBHOOKS_QUEUE_ITEMS     64   /* events one claim loads per call or stream */
#define WEBHOOKS_FRESH_MS        2000 /* a queue starts nothing after this long from its claim */
#define WEBHOOKS_LEASE_SECONDS   120  /* outlives any delivery a queue starts, by far */
#define WEBHOOKS_RETRY_AFTER_MAX 3600 /* seconds: a longer Retry-After is cut to this */
#define WEBHOOKS_RECONNECT_MS    2000
#define WEBHOOKS_IDLE_MS         60000                      /* a scan even without a notification, against a lost one */
#define WEBHOOKS_SOCKETS_MAX     (4 * WEBHOOKS_IN_FLIGHT)   /* curl's sockets: two per connecting transfer, and idle ones */
#define WEBHOOKS_POLL_MAX        (1 + WEBHOOKS_SOCKETS_MAX) /* the database's socket and curl's */

typedef struct webhooks_t webhooks_t;

/**
 * A deliverer on `database_url`; it connects (and reconnects) on its own. `holder` names this
 * impactd instance in leases (a restarted fan-out process takes over the leases of the one
 * before it). NULL when out of memory.
 */
webhooks_t *webhooks_new(const char *database_url, const char *holder, bool allow_private_urls);

/**
 * Records the outcomes it has and gives its leases back, so another deliverer takes over at
 * once; deliveries still in flight are cut off and posted again.
 */
void webhooks_destroy(webhooks_t **self_p);

/**
 * Fills `items` (room for WEBHOOKS_POLL_MAX) with what to poll for: the database's socket for
 * notifications and results, and the sockets of deliveries in flight. Returns how many. The
 * sockets change from turn to turn: call it before every poll.
 */
int webhooks_poll_items(webhooks_t *self, zmq_pollitem_t *items, int max);

/** Acts on the items webhooks_poll_items filled, after the poll. */
void webhooks_poll_ready(webhooks_t *self, const zmq_pollitem_t *items, int count);

/**
 * Collects finished deliveries, starts what is loaded while there is room in flight, and sends
 * the database what is due (outcomes, a claim). Never blocks on a receiver or on the database.
 * Returns milliseconds until it wants to run again.
 */
int webhooks_run(webhooks_t *self);

#endif
