/*
 * sim_callers_t: simulated callers, beside or instead of people logged in to the campaign.
 *
 * They behave as bench/pacing's do: all join when the campaign starts; after each call they
 * tell the engine whether they heard a person (the simulated carrier's truth of the call they
 * took) and wrap up for the time the carrier drew for that call; in Preview they look at each
 * contact for a time drawn from the scenario and then dial it. Their timers run on the dialer's
 * timer queue, so they follow --sim-speed like everything else.
 */
#ifndef IMPACT_DIALER_SIM_CALLERS_H
#define IMPACT_DIALER_SIM_CALLERS_H

#include "actors/dialer/engine.h"
#include "actors/dialer/scenario.h"
#include "actors/dialer/sim_carrier.h"
#include "actors/dialer/timerq.h"

typedef struct sim_callers_t sim_callers_t;

/* Simulated callers' ids start here, far above any callers.id, so people and simulated callers
 * share the engine without colliding; it is what events show as their caller_id. */
#define SIM_CALLERS_FIRST_ID 1000000000000ULL

/** `count` callers, not yet joined. All arguments are borrowed. */
sim_callers_t *sim_callers_new(const scenario_t *scenario, uint32_t count, timerq_t *timers, const sim_carrier_t *sim);

/** True when `caller_id` is one of these simulated callers. */
bool sim_callers_own(const sim_callers_t *self, uint64_t caller_id);
void sim_callers_destroy(sim_callers_t **self_p);

/** Joins every caller to `engine` at `now_us`. Returns how many joined. */
int sim_callers_join(sim_callers_t *self, engine_t *engine, int64_t now_us);

/** Every caller leaves the engine (a clean stop): numbers they were previewing go back. */
void sim_callers_leave(sim_callers_t *self, int64_t now_us);

/** Feed every engine event here: the callers react to theirs. */
void sim_callers_event(sim_callers_t *self, const engine_event_t *event);

#endif
