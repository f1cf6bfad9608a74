/*
 * call_log_t: every call attempt of a campaign and its outcome, group-committed to
 * call_attempts, and the dial state of each number following from the outcome.
 *
 * Engine events are buffered per call and written in one statement per flush (arrays unnested
 * on the server: a round trip per batch, not per event), with the numbers' new state in the same
 * statement, so an outcome and its consequence commit together. Writes go through the dialer's
 * statement queue (dbq.h): the loop never waits for a commit, one write is in flight at a time,
 * and what changes meanwhile goes in the next.
 *
 * Write-ahead dialing: the log also stands between the engine and the carrier. A dial is held
 * until the flush that commits its attempt row, and only then handed to the carrier, so no call
 * ever exists without its row: a dialer killed at any moment leaves at worst rows for calls that
 * never rang, which recovery ends as timed out. The cost is one commit before each dial (two when
 * the dial comes while another write is in flight); the dialer flushes at once whenever dials are
 * held and no write is in flight.
 *
 * Outcomes and retries: talked, and voicemail unless the campaign calls back after voicemail,
 * end a number (done); failed ends it (failed, never retried); anything else (busy, no answer,
 * abandoned, machine, canceled, timed out, hung up) retries it one recycle interval after the
 * attempt ended, until max_attempts.
 */
#ifndef IMPACT_DIALER_CALL_LOG_H
#define IMPACT_DIALER_CALL_LOG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "actors/dialer/carrier.h"
#include "actors/dialer/dbq.h"
#include "actors/dialer/engine.h"

#define CALL_LOG_BATCH    512           /* rows per flush at most; more waiting means flush again at once */
#define CALL_LOG_ID_BLOCK 1000000000ULL /* call ids reserved per dialer start (schemas/sql/0005) */

typedef struct call_log_t call_log_t;

typedef struct {
    int64_t account_id;
    int64_t campaign_id;
    const char *from; /* the caller id presented (copied) */
    int recycle_hours;
    int max_attempts;
    bool call_back_after_voicemail;
} call_log_config_t;

/** A log writing through `db` (borrowed). NULL on failure. */
call_log_t *call_log_new(dbq_t *db, const call_log_config_t *config);
void call_log_destroy(call_log_t **self_p);

/**
 * Reserves a block of CALL_LOG_ID_BLOCK call ids, unique across every dialer ever started. 0
 * with *first set, or -1.
 */
int call_log_reserve_ids(PGconn *conn, uint64_t *first);

/**
 * Recovery after a dialer of this campaign died: every attempt it left open is ended as timed
 * out (its call died with the process) and its number waits a recycle interval from that dial.
 * Returns the attempts closed, or -1.
 */
int call_log_recover(PGconn *conn, int64_t campaign_id);

/**
 * The carrier the engine should use: `inner` behind the write-ahead gate. Status events still go
 * from `inner` straight to the engine; `sink` is told CARRIER_FAILED for a held dial the inner
 * carrier refused when it was finally placed. The view is valid as long as the log.
 */
carrier_t call_log_carrier(call_log_t *self, carrier_t inner, carrier_sink_fn *sink, void *sink_ctx);

/** Records an engine event that happened at `wall_us` (microseconds since the Unix epoch). */
void call_log_event(call_log_t *self, const engine_event_t *event, int64_t wall_us);

/** True when a flush should not wait for the next interval: no write is in flight, and dials are
 *  held or a batch is full. */
bool call_log_urgent(const call_log_t *self);

/** Rows waiting to be written. */
size_t call_log_dirty(const call_log_t *self);

/**
 * Sends what is waiting (up to CALL_LOG_BATCH rows) as one transaction unless a write is in
 * flight; when it commits, the dials it holds are placed at the carrier time dbq_service was
 * given. 0, or -1 while the last write that completed had failed, or when this one cannot be sent
 * (everything stays buffered for the next try).
 */
int call_log_flush(call_log_t *self);

/** On a clean stop: writes everything and waits for it. 0, or -1 when a write failed. */
int call_log_flush_all(call_log_t *self, int64_t now_us);

/**
 * On a clean stop: ends every call not yet ended at `wall_us`, with `outcome`, or talked for a
 * call that was put through to a caller, and drops held dials (they end without ringing). Flush
 * afterwards. Returns the calls ended.
 */
int call_log_end_all(call_log_t *self, engine_outcome_t outcome, int64_t wall_us);

#endif
