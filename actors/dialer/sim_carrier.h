/*
 * The simulated carrier: a phone network drawn from a scenario, the default carrier.
 *
 * Every dial gets its own random stream, numbered by dial order from the scenario's seed, so two
 * pacing policies run on one scenario meet the same people and machines in the same order
 * (common random numbers: differences between policies are not luck). Events are scheduled on
 * the owner's timer queue, so the carrier runs on the real clock in impactd and in virtual time
 * in bench/pacing, unchanged.
 *
 * It also keeps the ground truth a real network hides: who really answered, when the 2-second
 * rule really expired, how long people talked. The benchmark scores policies on that truth; the
 * dialer only ever sees the events.
 */
#ifndef IMPACT_DIALER_SIM_CARRIER_H
#define IMPACT_DIALER_SIM_CARRIER_H

#include "actors/dialer/carrier.h"
#include "actors/dialer/scenario.h"
#include "actors/dialer/timerq.h"

typedef struct sim_carrier_t sim_carrier_t;

typedef enum { SIM_HUMAN, SIM_MACHINE, SIM_NO_ANSWER, SIM_BUSY, SIM_FAILED } sim_kind_t;

/* What really happened, counted by the carrier. Live answers and abandons follow the US
 * definition (a person answered; not put through to a caller within greeting + grace), with
 * people hung up on as machines (AMD false positives) counted as abandoned and also separately. */
typedef struct {
    uint64_t dials;
    uint64_t live_answered;
    uint64_t abandoned;
    uint64_t amd_false_positives;
    uint64_t connected;           /* people put through in time */
    uint64_t machines_to_callers; /* machines put through (no AMD, or missed by it) */
    double live_talk_seconds;     /* person-to-caller talk, clipped at the horizon */
} sim_truth_t;

/* What the benchmark's simulated callers need to know when a call reaches them. */
typedef struct {
    sim_kind_t kind;
    int64_t ends_at_us;  /* when the far end will hang up */
    double wrap_seconds; /* how long the caller will wrap up afterwards */
} sim_bridge_truth_t;

/* start_us is the shift's start on the queue's clock (live-rate drift is relative to it). */
sim_carrier_t *sim_carrier_new(const scenario_t *scenario, timerq_t *timers, int64_t start_us, carrier_sink_fn *sink,
                               void *sink_ctx);
void sim_carrier_destroy(sim_carrier_t **self_p);

/* The carrier interface view; destroying through it destroys the simulator. */
carrier_t sim_carrier_carrier(sim_carrier_t *self);

/* Talk after this time is not counted in the truth (the end of the measured shift). */
void sim_carrier_set_horizon(sim_carrier_t *self, int64_t end_us);

const sim_truth_t *sim_carrier_truth(const sim_carrier_t *self);

/* Returns 0 and fills *truth for a call that is bridged now, -1 otherwise. */
int sim_carrier_bridge_truth(const sim_carrier_t *self, uint64_t call_id, sim_bridge_truth_t *truth);

/* Calls the simulator still tracks (ringing, answered, talking or playing). */
size_t sim_carrier_active(const sim_carrier_t *self);

#endif
