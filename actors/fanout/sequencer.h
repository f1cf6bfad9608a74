/*
 * The event sequencer: numbers the events producers leave in event_inbox, moving them into
 * events in commit order (schemas/sql/0009_events.sql explains why one sequencer assigns the
 * ids). It runs events_sequence() when PostgreSQL notifies event_inbox and on a safety tick
 * (SEQUENCER_TICK_MS) against a lost notification or one sent while it was disconnected, and
 * again at once while it moves full batches. The SQL function takes the lock that orders
 * numbering, so a second sequencer (another fan-out process, an operator's psql) is harmless.
 */
#ifndef IMPACT_FANOUT_SEQUENCER_H
#define IMPACT_FANOUT_SEQUENCER_H

#define SEQUENCER_BATCH        1000 /* inbox rows numbered per transaction */
#define SEQUENCER_RUN_MS       200  /* no batch starts later than this into a run: the broker is served between runs */
#define SEQUENCER_TICK_MS      1000
#define SEQUENCER_RECONNECT_MS 2000

typedef struct sequencer_t sequencer_t;

/** A sequencer on `database_url`; it connects (and reconnects) on its own. NULL when out of memory. */
sequencer_t *sequencer_new(const char *database_url);

void sequencer_destroy(sequencer_t **self_p);

/** The PostgreSQL socket to poll for notifications, or -1 while disconnected. */
int sequencer_socket(sequencer_t *self);

/** Reads notifications after the socket polled readable. */
void sequencer_readable(sequencer_t *self);

/** Numbers what is waiting, if it is time to. Returns milliseconds until it wants to run again. */
int sequencer_run(sequencer_t *self);

#endif
