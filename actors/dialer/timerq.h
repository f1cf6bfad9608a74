/*
 * A queue of one-shot timers ordered by due time: the only clock the dialer engine and the
 * simulated carrier know.
 *
 * Time is an int64 count of microseconds whose origin the owner chooses. The dialer actor feeds
 * it the monotonic clock from its poller loop; the pacing benchmark jumps straight to the next
 * due time (virtual time). Because the engine never reads a clock of its own, the same code runs
 * a live campaign and an eight-hour simulated shift in a fraction of a second.
 *
 * Timers due at the same instant fire in the order they were added, which keeps simulations
 * deterministic.
 */
#ifndef IMPACT_DIALER_TIMERQ_H
#define IMPACT_DIALER_TIMERQ_H

#include <stddef.h>
#include <stdint.h>

#define TIMERQ_NEVER INT64_MAX

typedef struct timerq_t timerq_t;
typedef struct timerq_timer_t timerq_timer_t;

/* Called when a timer is due; now_us is the time the owner's loop passed to timerq_run_due. The
 * timer is already gone: the callback may add timers, and cancel others, freely. */
typedef void(timerq_fn)(void *arg, int64_t now_us);

timerq_t *timerq_new(void);
void timerq_destroy(timerq_t **self_p);

/* Returns a handle valid until the timer fires or is cancelled, or NULL when out of memory. */
timerq_timer_t *timerq_add(timerq_t *self, int64_t at_us, timerq_fn *fn, void *arg);

/* Cancels *timer_p if it is set and clears it; a NULL handle is a no-op. */
void timerq_cancel(timerq_t *self, timerq_timer_t **timer_p);

/* Due time of the earliest timer, or TIMERQ_NEVER. */
int64_t timerq_next(const timerq_t *self);

/* Fires, in due order, every timer due at or before now_us, including timers that callbacks
 * add for times not after now_us. Returns how many fired. */
size_t timerq_run_due(timerq_t *self, int64_t now_us);

size_t timerq_size(const timerq_t *self);

/* While a callback runs: the time its timer was due, which in real time may be earlier than the
 * now_us it was given (the owner's loop was busy or asleep). TIMERQ_NEVER outside callbacks. The
 * dialer measures how late its decisions are from it. */
int64_t timerq_firing_due(const timerq_t *self);

#endif
