/*
 * The event sequencer: numbers the events producers leave in event_inbox, moving them into
 * events in commit order (schemas/sql/0009_events.sql explains why one sequencer assigns the
 * ids). It runs events_sequence() when PostgreSQL notifies event_inbox and on a safety tick
 * (SEQUENCER_TICK_MS) against a lost notification or one sent while it was disconnected, and
 * again at once while it moves full batches. The SQL function takes the lock that orders
 * numbering, so a second sequencer (another fan-out process, an operator's psql) is harmless.
 *
 * After numbering, it publishes every event numbered since it last published (by anyone) on a
 * ZeroMQ PUB socket, oldest first, one two-frame message per event:
 *   [header: EVENTS_PUB_HEADER_SIZE bytes: id, account_id, campaign_id, caller_id as big-endian
 *    int64 (0 for none), then the type, NUL-padded to EVENTS_PUB_TYPE_MAX bytes]
 *   [the event's JSON document as the events API renders it (common/event_json.h), links relative]
 * It starts from the last id given when it connects: subscribers catch up from the database
 * themselves (ids have no gaps, so a subscriber sees what it missed).
 *
 * Every SEQUENCER_TICK_MS it also publishes a one-frame message, the last id published as a
 * big-endian int64 (EVENTS_PUB_TICK_SIZE bytes). A subscriber learns from it where the stream
 * stands without waiting for an event: one that just connected has no baseline to judge its
 * first event by, and one whose last events were dropped would otherwise not know until the
 * next event came.
 */
#ifndef IMPACT_FANOUT_SEQUENCER_H
#define IMPACT_FANOUT_SEQUENCER_H

#include <czmq.h>

#define SEQUENCER_BATCH        1000 /* inbox rows numbered per transaction */
#define SEQUENCER_RUN_MS       200  /* no batch starts later than this into a run: the broker is served between runs */
#define SEQUENCER_TICK_MS      1000
#define SEQUENCER_RECONNECT_MS 2000
#define SEQUENCER_PUBLISH_MAX  1000 /* events read per publishing query */

#define EVENTS_PUB_ENDPOINT    "events.ipc" /* in the run dir (config_endpoint) */
#define EVENTS_PUB_TYPE_MAX    64
#define EVENTS_PUB_HEADER_SIZE (4 * 8 + EVENTS_PUB_TYPE_MAX)
#define EVENTS_PUB_TICK_SIZE   8
#define EVENTS_PUB_DOC_MAX     (256 * 1024) /* a bigger document is not published (logged): readers fetch it */

typedef struct sequencer_t sequencer_t;

/**
 * A sequencer on `database_url`; it connects (and reconnects) on its own.
 * @param pub a bound PUB socket the events are published on (borrowed), or NULL to publish nothing
 * @return the sequencer, or NULL when out of memory
 */
sequencer_t *sequencer_new(const char *database_url, zsock_t *pub);

void sequencer_destroy(sequencer_t **self_p);

/** The PostgreSQL socket to poll for notifications, or -1 while disconnected. */
int sequencer_socket(sequencer_t *self);

/** Reads notifications after the socket polled readable. */
void sequencer_readable(sequencer_t *self);

/** Numbers what is waiting, if it is time to. Returns milliseconds until it wants to run again. */
int sequencer_run(sequencer_t *self);

#endif
