#include "actors/dialer/sim_callers.h"

#include <stdlib.h>

#include "actors/dialer/rng.h"

#define US_PER_S 1000000.0

typedef struct {
    sim_callers_t *owner;
    uint64_t id;
    timerq_timer_t *action; /* the end of a wrap-up, or a preview decision */
    double pending_wrap;
    bool pending_person;
} caller_t;

struct sim_callers_t {
    const scenario_t *scenario;
    timerq_t *timers;
    const sim_carrier_t *sim;
    engine_t *engine;
    rng_t rng;
    uint32_t count;
    uint64_t first_id;
    caller_t *callers; /* callers[i] has id first_id + i */
};

sim_callers_t *sim_callers_new(const scenario_t *scenario, uint32_t count, timerq_t *timers, const sim_carrier_t *sim)
{
    sim_callers_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->scenario = scenario;
    self->timers = timers;
    self->sim = sim;
    self->count = count;
    self->first_id = SIM_CALLERS_FIRST_ID;
    self->callers = calloc((size_t)self->count + 1, sizeof(*self->callers));
    if (self->callers == NULL) {
        free(self);
        return NULL;
    }
    /* the stream bench/pacing's callers use, so a campaign run and a benchmark run agree */
    rng_seed(&self->rng, scenario->seed, 0xca11e5);
    for (uint32_t i = 0; i < self->count; i++)
        self->callers[i] = (caller_t){.owner = self, .id = self->first_id + i};
    return self;
}

void sim_callers_destroy(sim_callers_t **self_p)
{
    sim_callers_t *self = *self_p;
    if (self == NULL)
        return;
    for (uint32_t i = 0; i < self->count; i++)
        timerq_cancel(self->timers, &self->callers[i].action);
    free(self->callers);
    free(self);
    *self_p = NULL;
}

int sim_callers_join(sim_callers_t *self, engine_t *engine, int64_t now_us)
{
    self->engine = engine;
    int joined = 0;
    for (uint32_t i = 0; i < self->count; i++)
        if (engine_caller_join(engine, self->callers[i].id, now_us) == 0)
            joined++;
    return joined;
}

void sim_callers_leave(sim_callers_t *self, int64_t now_us)
{
    if (self->engine == NULL)
        return;
    for (uint32_t i = 0; i < self->count; i++)
        engine_caller_leave(self->engine, self->callers[i].id, now_us);
}

bool sim_callers_own(const sim_callers_t *self, uint64_t caller_id)
{
    return caller_id >= self->first_id && caller_id - self->first_id < self->count;
}

static int64_t s_us(double seconds)
{
    return (int64_t)(seconds * US_PER_S);
}

static void s_on_wrap_done(void *arg, int64_t now_us)
{
    caller_t *caller = arg;
    caller->action = NULL;
    engine_caller_ready(caller->owner->engine, caller->id, now_us);
}

static void s_on_preview_done(void *arg, int64_t now_us)
{
    caller_t *caller = arg;
    caller->action = NULL;
    engine_preview_dial(caller->owner->engine, caller->id, now_us);
}

void sim_callers_event(sim_callers_t *self, const engine_event_t *event)
{
    if (self->engine == NULL || !sim_callers_own(self, event->caller_id))
        return;
    caller_t *caller = &self->callers[event->caller_id - self->first_id];
    int64_t now = event->at_us;
    switch (event->type) {
    case ENGINE_CALLER_ON_CALL: {
        sim_bridge_truth_t truth;
        if (sim_carrier_bridge_truth(self->sim, event->call_id, &truth) == 0) {
            caller->pending_wrap = truth.wrap_seconds;
            caller->pending_person = truth.kind == SIM_HUMAN;
        } else {
            caller->pending_wrap = self->scenario->wrap_mean;
            caller->pending_person = true;
        }
        break;
    }
    case ENGINE_CALLER_WRAP_UP:
        engine_caller_disposition(self->engine, caller->id, caller->pending_person, now);
        timerq_cancel(self->timers, &caller->action);
        caller->action = timerq_add(self->timers, now + s_us(caller->pending_wrap), s_on_wrap_done, caller);
        break;
    case ENGINE_CALLER_PREVIEW: {
        double think = rng_lognormal(&self->rng, self->scenario->preview_mean, self->scenario->preview_cv);
        timerq_cancel(self->timers, &caller->action);
        caller->action = timerq_add(self->timers, now + s_us(think), s_on_preview_done, caller);
        break;
    }
    case ENGINE_CALLER_LEFT:
        timerq_cancel(self->timers, &caller->action);
        break;
    default:
        break;
    }
}
