/*
 * Pacing: how many lines a campaign should dial right now.
 *
 * A policy sees a snapshot of the campaign (pacing_view_t) made only of what a real dialer
 * knows: callers and how long they have been in their state, unresolved dials and how long ago
 * they were placed, answered calls waiting for a caller, and the learned statistics. It
 * answers a number of new lines. The engine asks on every tick and whenever a caller frees up,
 * caps the answer (lines per caller, calls per second) and places the calls.
 *
 * Policies are objects behind a small vtable so the benchmark can run its baselines (fixed
 * ratio, a VICIdial replica, the original product's formula, a lookahead reference with
 * privileged knowledge) through exactly the engine that ships. The product's own policies are
 * "power" (one line per caller on hold: it cannot abandon) and "predictive" (pacing_predictive.c).
 */
#ifndef IMPACT_DIALER_PACING_H
#define IMPACT_DIALER_PACING_H

#include "actors/dialer/pacing_stats.h"

#include <stdint.h>

typedef enum {
    PACING_CALLER_READY,   /* on hold, waiting for a call */
    PACING_CALLER_ON_CALL, /* talking */
    PACING_CALLER_WRAP_UP, /* finishing the last call's paperwork */
    PACING_CALLER_PREVIEW, /* looking at a contact before dialing (Preview mode) */
} pacing_caller_state_t;

typedef struct {
    uint64_t caller_id;
    pacing_caller_state_t state;
    int64_t since_us;
} pacing_caller_t;

typedef enum {
    PACING_TICK,        /* the periodic tick */
    PACING_CALLER_FREE, /* a caller just became ready */
} pacing_reason_t;

typedef struct {
    int64_t now_us;
    const pacing_caller_t *callers;
    uint32_t n_callers;
    uint32_t ready;              /* callers on hold and not yet promised to a waiting call */
    uint32_t busy;               /* on a call or wrapping up */
    const int64_t *dialed_at_us; /* one per unresolved dial */
    uint32_t n_unresolved;
    uint32_t waiting; /* answered calls waiting for a caller */
    const pacing_stats_t *stats;
    double abandon_cap;   /* the campaign's cap, e.g. 0.03 */
    double grace_seconds; /* the hold limit after a greeting */
    uint32_t max_lines;   /* the engine will not exceed this many unresolved dials */
} pacing_view_t;

typedef struct pacing_policy_t pacing_policy_t;

typedef struct {
    const char *name;
    /* Lines to dial now; 0 or less means none. */
    int (*lines)(pacing_policy_t *self, const pacing_view_t *view, pacing_reason_t reason);
    /* Optional: a claim (a call needing a caller) was put through, or abandoned. live is the
     * probability that a person, not a machine, answered it (1 when known; see pacing_stats.h). */
    void (*claim_outcome)(pacing_policy_t *self, int64_t now_us, bool abandoned, double live);
    /* Optional: screening, in Predictive mode without machine detection at the carrier. As a call
     * is answered the engine asks this with the probability that a person answered it should
     * no greeting end in time (people pick up sooner than machines: see
     * pacing_stats_person_given_ring). True holds the answer until its greeting ends (a person:
     * it needs a caller) or the hold limit passes (a likely machine: it is ended with the
     * identification message and reported to claim_outcome as an abandon weighted by `person`);
     * false puts it through at once. Without this every answer needs a caller at once, as the
     * benchmark's baselines assume. */
    bool (*screen)(pacing_policy_t *self, double person);
    void (*destroy)(pacing_policy_t **self_p);
} pacing_ops_t;

struct pacing_policy_t {
    const pacing_ops_t *ops;
};

/* Power (progressive): lines in flight equal to the callers on hold. */
pacing_policy_t *pacing_power_new(void);

/* Options of the predictive engine; zero values take the defaults. */
typedef struct {
    double target;          /* abandon rate aimed at; default: the cap minus a margin that shrinks with data */
    double horizon_seconds; /* how far ahead supply and demand are projected; default 40 */
    /* The campaign's live answers and abandons inside its abandon-rate window from before this
     * policy started (an earlier dialer process): the budget spends what the window has left, and
     * pays back what it overspent, instead of starting afresh at every restart. */
    double history_live, history_abandoned;
} pacing_predictive_options_t;

pacing_policy_t *pacing_predictive_new(const pacing_predictive_options_t *options);

/* The aggressiveness of a predictive policy right now (for stats and the benchmark trace). */
double pacing_predictive_threshold(const pacing_policy_t *policy);

static inline void pacing_policy_destroy(pacing_policy_t **policy_p)
{
    if (*policy_p)
        (*policy_p)->ops->destroy(policy_p);
}

#endif
