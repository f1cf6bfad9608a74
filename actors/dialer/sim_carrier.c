#include "actors/dialer/sim_carrier.h"

#include "actors/dialer/idmap.h"
#include "actors/dialer/rng.h"

#include <stdlib.h>

#define US_PER_S  1000000.0
#define MAX_STEPS 4

/* How long an abandoned person stays on the line in silence, and how long a machine records
 * before it hangs up on a call nobody joined. */
#define ABANDONED_PATIENCE_S 3.0
#define MACHINE_RECORD_S     30.0

typedef enum { RINGING, ANSWERED, BRIDGED, PLAYING, ENDED } sim_state_t;

typedef struct {
    int64_t at_us;
    carrier_status_t status;
} step_t;

typedef struct sim_call_t {
    struct sim_carrier_t *sim;
    uint64_t id;
    sim_kind_t kind;
    sim_state_t state;
    rng_t rng;
    bool counted_live, abandoned, lose_final;
    int64_t deadline_us; /* a person abandons if not put through by then */
    int64_t greeting_end_us;
    int64_t ends_at_us;
    double wrap_seconds;
    step_t steps[MAX_STEPS]; /* scheduled events, in time order */
    int head, count;
    timerq_timer_t *timer;
    timerq_timer_t *deadline_timer;
} sim_call_t;

struct sim_carrier_t {
    scenario_t scenario;
    timerq_t *timers;
    int64_t start_us, horizon_us, next_slot_us;
    carrier_sink_fn *sink;
    void *sink_ctx;
    idmap_t *calls;
    uint64_t dial_index;
    sim_truth_t truth;
};

static int64_t seconds(double s)
{
    return (int64_t)(s * US_PER_S);
}

static void free_call(sim_carrier_t *self, sim_call_t *call)
{
    timerq_cancel(self->timers, &call->timer);
    timerq_cancel(self->timers, &call->deadline_timer);
    idmap_remove(self->calls, call->id);
    free(call);
}

static bool is_final(carrier_status_t status)
{
    return status == CARRIER_COMPLETED || status == CARRIER_BUSY || status == CARRIER_NO_ANSWER || status == CARRIER_FAILED ||
           status == CARRIER_CANCELED;
}

static void on_step(void *arg, int64_t now_us);

static void arm(sim_call_t *call)
{
    timerq_cancel(call->sim->timers, &call->timer);
    if (call->head < call->count)
        call->timer = timerq_add(call->sim->timers, call->steps[call->head].at_us, on_step, call);
}

/* Replaces whatever the call was going to report with a new plan. */
static void plan(sim_call_t *call, int count, const step_t *steps)
{
    for (int i = 0; i < count; i++)
        call->steps[i] = steps[i];
    call->head = 0;
    call->count = count;
    arm(call);
}

static void count_abandon(sim_carrier_t *self, sim_call_t *call)
{
    if (call->kind == SIM_HUMAN && call->counted_live && !call->abandoned && call->state != BRIDGED) {
        call->abandoned = true;
        self->truth.abandoned++;
    }
}

static void on_step(void *arg, int64_t now_us)
{
    sim_call_t *call = arg;
    sim_carrier_t *self = call->sim;
    call->timer = NULL;
    step_t step = call->steps[call->head++];
    if (step.status == CARRIER_ANSWERED && call->kind == SIM_HUMAN && !call->counted_live) {
        call->counted_live = true;
        self->truth.live_answered++;
    }
    if (step.status == CARRIER_ANSWERED)
        call->state = ANSWERED;
    if (step.status == CARRIER_ANSWERED_MACHINE && call->kind == SIM_HUMAN) {
        self->truth.amd_false_positives++;
        count_abandon(self, call);
    }
    bool final = is_final(step.status);
    if (final)
        call->state = ENDED;
    if (!(final && call->lose_final)) {
        carrier_event_t event = {.call_id = call->id, .status = step.status, .at_us = now_us};
        self->sink(self->sink_ctx, &event);
    }
    /* The sink may have acted on the call (bridged it, hung up: no operation frees it), which
     * replaces its plan; otherwise the next planned step is armed. */
    if (final)
        free_call(self, call);
    else if (!call->timer)
        arm(call);
}

/* The moment the 2-second rule expires for a person nobody joined: the truth counts an
 * abandon, and the person hangs up a little later if the dialer still does nothing. */
static void on_deadline(void *arg, int64_t now_us)
{
    sim_call_t *call = arg;
    call->deadline_timer = NULL;
    if (call->state != ANSWERED)
        return;
    count_abandon(call->sim, call);
    plan(call, 1, (step_t[]){{now_us + seconds(ABANDONED_PATIENCE_S), CARRIER_COMPLETED}});
}

static int sim_dial(void *handle, uint64_t call_id, const carrier_dial_t *request, int64_t now_us)
{
    sim_carrier_t *self = handle;
    const scenario_t *s = &self->scenario;
    if (idmap_get(self->calls, call_id))
        return -1;
    sim_call_t *call = calloc(1, sizeof *call);
    if (!call)
        return -1;
    call->sim = self;
    call->id = call_id;
    call->state = RINGING;
    rng_seed(&call->rng, s->seed, ++self->dial_index);
    if (idmap_put(self->calls, call_id, call) < 0) {
        free(call);
        return -1;
    }
    self->truth.dials++;

    /* A carrier with a calls-per-second cap queues the excess (as Twilio does). */
    int64_t start = now_us;
    if (s->cps > 0) {
        if (self->next_slot_us > start)
            start = self->next_slot_us;
        self->next_slot_us = start + seconds(1.0 / s->cps);
    }
    double timeout = request->ring_timeout_seconds > 0 ? request->ring_timeout_seconds : s->ring_timeout;
    double p_human = scenario_p_human_at(s, (double)(now_us - self->start_us) / 3600e6);
    double u = rng_uniform(&call->rng), ring;
    if (u < p_human) {
        call->kind = SIM_HUMAN;
        ring = rng_lognormal(&call->rng, s->ring_h_mean, s->ring_h_cv);
    } else if (u < p_human + s->p_machine) {
        call->kind = SIM_MACHINE;
        ring = rng_lognormal(&call->rng, s->ring_m_mean, s->ring_m_cv);
    } else if (u < p_human + s->p_machine + s->p_noans) {
        call->kind = SIM_NO_ANSWER;
        ring = timeout;
    } else {
        call->kind = rng_uniform(&call->rng) < 0.5 ? SIM_BUSY : SIM_FAILED;
        ring = rng_lognormal(&call->rng, s->fail_mean, s->fail_cv);
    }
    if ((call->kind == SIM_HUMAN || call->kind == SIM_MACHINE) && ring >= timeout) {
        call->kind = SIM_NO_ANSWER;
        ring = timeout;
    }
    double greeting = rng_lognormal(&call->rng, s->greet_mean, s->greet_cv);
    call->lose_final = s->lost_status > 0 && rng_uniform(&call->rng) < s->lost_status;
    double amd_draw = rng_uniform(&call->rng);
    int64_t answer = start + seconds(ring), greeting_end = answer + seconds(greeting);

    switch (call->kind) {
    case SIM_HUMAN:
        call->greeting_end_us = greeting_end;
        call->deadline_us = greeting_end + seconds(s->grace);
        if (request->detect_machine && amd_draw < s->amd_fp) {
            /* A person taken for a machine: whatever the dialer does next, they were abandoned. */
            plan(call, 3,
                 (step_t[]){{start, CARRIER_RINGING},
                            {answer, CARRIER_ANSWERED},
                            {greeting_end + seconds(s->amd_post), CARRIER_ANSWERED_MACHINE}});
            break;
        }
        if (request->detect_machine)
            plan(call, 4,
                 (step_t[]){{start, CARRIER_RINGING},
                            {answer, CARRIER_ANSWERED},
                            {greeting_end, CARRIER_GREETING_ENDED},
                            {greeting_end + seconds(s->amd_post), CARRIER_ANSWERED_HUMAN}});
        else
            plan(call, 3, (step_t[]){{start, CARRIER_RINGING}, {answer, CARRIER_ANSWERED}, {greeting_end, CARRIER_GREETING_ENDED}});
        call->deadline_timer = timerq_add(self->timers, call->deadline_us, on_deadline, call);
        break;
    case SIM_MACHINE:
        if (request->detect_machine)
            plan(call, 4,
                 (step_t[]){{start, CARRIER_RINGING},
                            {answer, CARRIER_ANSWERED},
                            {answer + seconds(3.0), amd_draw < s->amd_fn ? CARRIER_ANSWERED_HUMAN : CARRIER_ANSWERED_MACHINE},
                            {answer + seconds(MACHINE_RECORD_S), CARRIER_COMPLETED}});
        else
            plan(call, 3,
                 (step_t[]){{start, CARRIER_RINGING},
                            {answer, CARRIER_ANSWERED},
                            {answer + seconds(MACHINE_RECORD_S), CARRIER_COMPLETED}});
        break;
    case SIM_NO_ANSWER:
        plan(call, 2, (step_t[]){{start, CARRIER_RINGING}, {answer, CARRIER_NO_ANSWER}});
        break;
    case SIM_BUSY:
    case SIM_FAILED:
        plan(call, 1, (step_t[]){{answer, call->kind == SIM_BUSY ? CARRIER_BUSY : CARRIER_FAILED}});
        break;
    }
    return 0;
}

/* Talk between two times that falls inside the measured shift, in seconds. */
static double talk_within(const sim_carrier_t *self, int64_t from_us, int64_t to_us)
{
    if (to_us > self->horizon_us)
        to_us = self->horizon_us;
    return to_us > from_us ? (double)(to_us - from_us) / US_PER_S : 0.0;
}

static int sim_bridge(void *handle, uint64_t call_id, uint64_t caller_id, int64_t now_us)
{
    sim_carrier_t *self = handle;
    const scenario_t *s = &self->scenario;
    sim_call_t *call = idmap_get(self->calls, call_id);
    if (!call || call->state != ANSWERED)
        return -1;
    timerq_cancel(self->timers, &call->deadline_timer);
    if (call->kind == SIM_HUMAN && (call->abandoned || now_us > call->deadline_us)) {
        /* Too late: the person has given up. */
        count_abandon(self, call);
        call->state = ENDED;
        plan(call, 1, (step_t[]){{now_us, CARRIER_COMPLETED}});
        return 0;
    }
    call->state = BRIDGED;
    if (call->kind == SIM_HUMAN) {
        self->truth.connected++;
        call->ends_at_us = now_us + seconds(rng_lognormal(&call->rng, s->talk_mean, s->talk_cv));
        call->wrap_seconds = rng_lognormal(&call->rng, s->wrap_mean, s->wrap_cv);
        self->truth.live_talk_seconds += talk_within(self, now_us, call->ends_at_us);
    } else {
        self->truth.machines_to_callers++;
        call->ends_at_us = now_us + seconds(s->machine_handle);
        call->wrap_seconds = s->machine_wrap;
    }
    /* a greeting still going on when the caller joins still ends, and is still reported */
    if (call->greeting_end_us > now_us && call->greeting_end_us < call->ends_at_us)
        plan(call, 3,
             (step_t[]){{now_us, CARRIER_BRIDGED},
                        {call->greeting_end_us, CARRIER_GREETING_ENDED},
                        {call->ends_at_us, CARRIER_COMPLETED}});
    else
        plan(call, 2, (step_t[]){{now_us, CARRIER_BRIDGED}, {call->ends_at_us, CARRIER_COMPLETED}});
    return 0;
}

/* The talk the person would still have had: a call ended early by our side gives it back. */
static void s_cut_talk(sim_carrier_t *self, sim_call_t *call, int64_t now_us)
{
    if (call->state == BRIDGED && call->kind == SIM_HUMAN)
        self->truth.live_talk_seconds -= talk_within(self, now_us, call->ends_at_us);
}

/* A message to an answered call nobody took (identification, voicemail), or one a caller drops
 * on the machine they are connected to. */
static int sim_play(void *handle, uint64_t call_id, const char *audio_uri, bool hang_up_after, int64_t now_us)
{
    sim_carrier_t *self = handle;
    sim_call_t *call = idmap_get(self->calls, call_id);
    if (!call || (call->state != ANSWERED && call->state != BRIDGED))
        return -1;
    timerq_cancel(self->timers, &call->deadline_timer);
    count_abandon(self, call);
    s_cut_talk(self, call, now_us);
    call->state = PLAYING;
    int64_t done = now_us + seconds(self->scenario.message_seconds);
    if (hang_up_after)
        plan(call, 2, (step_t[]){{done, CARRIER_PLAYED}, {done, CARRIER_COMPLETED}});
    else
        plan(call, 1, (step_t[]){{done, CARRIER_PLAYED}});
    return 0;
}

/* The person talks on with the transfer target for as long as they would have with the caller:
 * the call ends when the drawn talk time does (at once for a machine, which has said its piece). */
static int sim_transfer(void *handle, uint64_t call_id, const char *to, bool warm, int64_t now_us)
{
    sim_carrier_t *self = handle;
    sim_call_t *call = idmap_get(self->calls, call_id);
    if (!call || call->state != BRIDGED || to == NULL || to[0] == '\0')
        return -1;
    int64_t ends = call->ends_at_us > now_us ? call->ends_at_us : now_us;
    plan(call, 1, (step_t[]){{ends, CARRIER_COMPLETED}});
    return 0;
}

static int sim_leave(void *handle, uint64_t call_id, int64_t now_us)
{
    sim_carrier_t *self = handle;
    sim_call_t *call = idmap_get(self->calls, call_id);
    return call && call->state == BRIDGED ? 0 : -1;
}

static int sim_hang_up(void *handle, uint64_t call_id, int64_t now_us)
{
    sim_carrier_t *self = handle;
    sim_call_t *call = idmap_get(self->calls, call_id);
    if (!call || call->state == ENDED)
        return -1;
    timerq_cancel(self->timers, &call->deadline_timer);
    if (call->state == RINGING) {
        plan(call, 1, (step_t[]){{now_us, CARRIER_CANCELED}});
        return 0;
    }
    count_abandon(self, call);
    s_cut_talk(self, call, now_us);
    plan(call, 1, (step_t[]){{now_us, CARRIER_COMPLETED}});
    return 0;
}

static void sim_destroy(void **handle)
{
    sim_carrier_destroy((sim_carrier_t **)handle);
}

static const carrier_ops_t sim_ops = {
    .dial = sim_dial,
    .bridge = sim_bridge,
    .play = sim_play,
    .transfer = sim_transfer,
    .leave = sim_leave,
    .hang_up = sim_hang_up,
    .destroy = sim_destroy,
};

sim_carrier_t *sim_carrier_new(const scenario_t *scenario, timerq_t *timers, int64_t start_us, carrier_sink_fn *sink,
                               void *sink_ctx)
{
    sim_carrier_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->scenario = *scenario;
    self->timers = timers;
    self->start_us = start_us;
    self->horizon_us = INT64_MAX;
    self->next_slot_us = start_us;
    self->sink = sink;
    self->sink_ctx = sink_ctx;
    self->calls = idmap_new();
    if (!self->calls) {
        free(self);
        return NULL;
    }
    return self;
}

static void free_each(void *ctx, uint64_t id, void *value)
{
    sim_call_t *call = value;
    timerq_cancel(call->sim->timers, &call->timer);
    timerq_cancel(call->sim->timers, &call->deadline_timer);
    free(call);
}

void sim_carrier_destroy(sim_carrier_t **self_p)
{
    sim_carrier_t *self = *self_p;
    if (!self)
        return;
    idmap_each(self->calls, free_each, NULL);
    idmap_destroy(&self->calls);
    free(self);
    *self_p = NULL;
}

carrier_t sim_carrier_carrier(sim_carrier_t *self)
{
    return (carrier_t){.ops = &sim_ops, .self = self};
}

void sim_carrier_set_horizon(sim_carrier_t *self, int64_t end_us)
{
    self->horizon_us = end_us;
}

const sim_truth_t *sim_carrier_truth(const sim_carrier_t *self)
{
    return &self->truth;
}

int sim_carrier_bridge_truth(const sim_carrier_t *self, uint64_t call_id, sim_bridge_truth_t *truth)
{
    const sim_call_t *call = idmap_get(self->calls, call_id);
    if (!call || call->state != BRIDGED)
        return -1;
    *truth = (sim_bridge_truth_t){.kind = call->kind, .ends_at_us = call->ends_at_us, .wrap_seconds = call->wrap_seconds};
    return 0;
}

size_t sim_carrier_active(const sim_carrier_t *self)
{
    return idmap_size(self->calls);
}
