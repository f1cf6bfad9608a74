/*
 * numbers_t: a campaign's supply of numbers to dial, taken from PostgreSQL in batches.
 *
 * A batch is claimed with one committed statement (FOR UPDATE SKIP LOCKED) that counts the
 * attempt and pushes next_attempt_at a recycle interval ahead, before any of it is dialed: a
 * dialer killed at any moment can leave a number claimed but never dialed (it waits one recycle
 * interval), never dialed twice inside its recycle window. Numbers never dialed come first, in
 * import order, then due retries; only numbers inside the campaign's calling hours in every time
 * zone they may be in (the campaign's zone when unknown), decided by the database clock.
 *
 * Claimed numbers wait in memory until the engine takes them. Each remembers when its calling
 * window closes, and one taken after that goes back instead. A number blocked after its batch
 * was claimed is dropped when numbers_recheck_blocked runs (on the blocked_numbers
 * notification), and so is one a Preview caller is looking at. Numbers given back (by the engine, or all of them on a clean stop)
 * are released in the database with their dial state rebuilt from call_attempts.
 */
#ifndef IMPACT_DIALER_NUMBERS_H
#define IMPACT_DIALER_NUMBERS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "actors/dialer/dbq.h"
#include "actors/dialer/engine.h"
#include "phone/phone.h"

#define NUMBERS_BATCH_MAX 10000

typedef struct numbers_t numbers_t;

/** A supply for `campaign_id` claiming `batch` numbers at a time (1..NUMBERS_BATCH_MAX) through
 *  `db`, whose connection is `conn` (both borrowed). */
numbers_t *numbers_new(PGconn *conn, dbq_t *db, int64_t campaign_id, int batch);

/** Frees the memory only; call numbers_release first to hand unused claims back. */
void numbers_destroy(numbers_t **self_p);

/** The engine's next_number hook: 0 with *number filled, -1 when none is waiting. */
int numbers_take(numbers_t *self, engine_number_t *number);

/** The engine's return_number hook: the number goes back to the database on the next sync. */
void numbers_give_back(numbers_t *self, const engine_number_t *number);

/**
 * Starts claiming another batch if the queue runs low (or ran dry), no claim is in progress and
 * the last attempt was not too recent, and sends the release of numbers given back; the rows
 * arrive through the statement queue. 0, or -1 when a statement failed since the last call.
 */
int numbers_sync(numbers_t *self);

/* Withdraws a blocked number held outside the queue (by a Preview caller); returns 1 if it was held. */
typedef int(numbers_withdraw_fn)(void *ctx, uint64_t number_id, int64_t now_us);

/** Asks which queued numbers, and which of the `held` ones taken from the queue but not yet
 *  dialed, were blocked or removed since they were claimed. The answer drops (and releases) the
 *  queued ones and passes the held ones to `withdraw`. 0 or -1. */
int numbers_recheck_blocked(numbers_t *self, const uint64_t *held, size_t n_held, numbers_withdraw_fn *withdraw, void *ctx);

/** On a clean stop: releases every queued and given-back number, waiting for the statement
 *  queue. 0 or -1. */
int numbers_release(numbers_t *self, int64_t now_us);

/**
 * At start, after call_log_recover: releases every number of the campaign still claimed by a
 * dialer that died. None of them is in flight (recovery ended every open attempt), and a claim's
 * dial is always recorded before it is placed, so none was dialed under its claim. 0 or -1.
 */
int numbers_recover(PGconn *conn, int64_t campaign_id);

/**
 * Adds numbers to the campaign (a page of a call's feed): already E.164, given their time zones
 * here, de-duplicated against the campaign and marked when blocked, by the database's
 * numbers_add. The next sync claims them. Returns how many were new, or -1.
 */
int numbers_add(numbers_t *self, int64_t account_id, const char (*phones)[PHONE_E164_SIZE], size_t count, int64_t now_us);

/** True when the queue is empty and the last claim found nothing to dial (the list is used up,
 *  or what is left waits for its calling hours or its recycle delay). */
bool numbers_dry(const numbers_t *self);

/** Numbers waiting in memory. */
size_t numbers_queued(const numbers_t *self);

#endif
