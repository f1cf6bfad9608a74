#include "actors/dialer/engine.h"

#include "actors/dialer/idmap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PERSON_AFTER_HANDLES     1.0  /* a call as long as a machine's whole handling is a person's */
#define MACHINE_HANDLE_UNKNOWN_S 15.0 /* the machine handle time before one has been seen */
#define US_PER_S                 1000000.0
#define NO_SLOT                  UINT32_MAX

/* How long a call may stay answered while the carrier classifies it, and how long a message
 * may play, before the engine stops waiting for the carrier. */
#define CLASSIFY_TIMEOUT_S 10.0
#define PLAY_TIMEOUT_S     120.0

typedef enum {
    CALL_DIALING,
    CALL_RINGING,
    CALL_CLASSIFYING, /* answered; waiting for machine detection, or for a greeting (screening) */
    CALL_WAITING,     /* a claim queued for the next free caller */
    CALL_BRIDGED,
    CALL_PLAYING,     /* identification or voicemail message, then hang-up */
    CALL_ENDING,      /* hang-up sent, waiting for the carrier to confirm */
    CALL_THREE_WAY,   /* bridged, with a warm transfer's target added */
    CALL_HANDED_OVER, /* transferred: the caller's part is over, the person talks on */
} call_state_t;

typedef enum { CALLER_READY, CALLER_ON_CALL, CALLER_WRAP_UP, CALLER_PREVIEW, CALLER_PREVIEW_DIALING } caller_state_t;

typedef struct call_t call_t;
typedef struct caller_t caller_t;

struct call_t {
    uint64_t id;
    engine_number_t number;
    call_state_t state;
    caller_t *caller; /* the Preview caller it was dialed for, or the caller it is bridged to */
    int64_t dialed_at, answered_at, greeting_end_at, bridged_at, deadline;
    uint32_t unresolved_slot;
    /* Screening (pacing_ops_t.screen): P(a person answered) from the ring time, should no
     * greeting come in time; whether the call is held for its greeting; whether it was put
     * through the moment it was answered, before any greeting could count (see the end of
     * engine_caller_disposition). */
    double person;
    bool screened, put_through_at_answer;
    engine_outcome_t pending; /* the outcome to report once a message or hang-up completes */
    call_t *wait_prev, *wait_next;
    timerq_timer_t *timer;
    engine_t *engine;
};

struct caller_t {
    uint64_t id;
    caller_state_t state;
    bool leaving; /* left while on a call: removed when the call ends */
    int64_t since;
    uint32_t slot;
    caller_t *ready_prev, *ready_next;
    call_t *call;
    engine_number_t preview;
    bool has_preview;
    bool awaiting_disposition, last_greeted, last_put_through_at_answer; /* about the call just finished */
    bool last_was_machine;
    bool counted_person; /* its call (current or just finished) already counted as a person's */
    int64_t last_bridged_at;
};

struct engine_t {
    engine_config_t config;
    carrier_t carrier;
    timerq_t *timers;
    pacing_policy_t *policy;
    engine_hooks_t hooks;
    pacing_stats_t *stats;
    uint64_t next_call_id;
    bool paused;
    timerq_timer_t *tick;
    /* The carrier's calls-per-second cap, as "at most N dials in any one second": the times of
     * the last N dials, oldest first (a ring). */
    int64_t *recent_dials;
    uint32_t cps_window, recent_head;

    idmap_t *calls, *callers_by_id;
    caller_t **callers; /* dense, for the pacing view */
    uint32_t n_callers, callers_capacity;
    caller_t *ready_head, *ready_tail; /* on hold, longest-waiting first */
    call_t *wait_head, *wait_tail;     /* claims, oldest first */
    call_t **unresolved;
    int64_t *unresolved_at;
    uint32_t n_unresolved, unresolved_capacity;
    pacing_caller_t *view_callers;
    engine_counts_t counts;
};

void engine_config_defaults(engine_config_t *config)
{
    *config = (engine_config_t){
        .mode = DIAL_PREDICTIVE,
        .from = "",
        .ring_timeout_seconds = 25.0,
        .grace_seconds = 2.0,
        .max_lines_per_caller = 6.0,
        .abandon_cap = 0.03,
        .tick_seconds = 1.0,
        .status_timeout_seconds = 60.0,
        .max_call_seconds = 4 * 3600.0,
    };
}

static int64_t seconds(double s)
{
    return (int64_t)(s * US_PER_S);
}

static engine_event_t event_of(engine_event_type_t type, int64_t now, const call_t *call, const caller_t *caller,
                               engine_outcome_t outcome)
{
    return (engine_event_t){
        .type = type,
        .at_us = now,
        .call_id = call ? call->id : 0,
        .caller_id = caller ? caller->id : (call && call->caller ? call->caller->id : 0),
        .number_id = call ? call->number.number_id : (caller && caller->has_preview ? caller->preview.number_id : 0),
        .outcome = outcome,
    };
}

static void publish(engine_t *self, const engine_event_t *event)
{
    if (self->hooks.on_event)
        self->hooks.on_event(self->hooks.ctx, event);
}

static void emit(engine_t *self, engine_event_type_t type, int64_t now, const call_t *call, const caller_t *caller,
                 engine_outcome_t outcome)
{
    engine_event_t event = event_of(type, now, call, caller, outcome);
    publish(self, &event);
}

/*
 * An answer ended as a machine without a caller, which was a person after all with the chance
 * `person_share`: that person was abandoned. Pacing counts the share as that much of a live
 * answer and of an abandon at once; the event carries it into the call's record, so that the
 * campaign's abandon rate and the budget a restarted dialer starts from count it too. Without
 * the record, a restart forgot every such share, and at 1.3 machines per person those can be
 * most of a campaign's abandons.
 */
static void emit_machine(engine_t *self, call_t *call, double person_share, int64_t now)
{
    if (person_share > 0 && self->policy->ops->claim_outcome)
        self->policy->ops->claim_outcome(self->policy, now, true, person_share);
    self->counts.person_shares += person_share;
    engine_event_t event = event_of(ENGINE_CALL_MACHINE, now, call, NULL, OUTCOME_NONE);
    event.person_share = person_share;
    publish(self, &event);
}

/* ---- callers on hold: a FIFO so the longest-waiting caller takes the next answer ---- */

static void ready_push(engine_t *self, caller_t *caller)
{
    caller->ready_prev = self->ready_tail;
    caller->ready_next = NULL;
    if (self->ready_tail)
        self->ready_tail->ready_next = caller;
    else
        self->ready_head = caller;
    self->ready_tail = caller;
    self->counts.ready++;
}

/* Back at the head: a caller taken for a claim that vanished keeps their place in line. */
static void ready_push_front(engine_t *self, caller_t *caller)
{
    caller->ready_next = self->ready_head;
    caller->ready_prev = NULL;
    if (self->ready_head)
        self->ready_head->ready_prev = caller;
    else
        self->ready_tail = caller;
    self->ready_head = caller;
    self->counts.ready++;
}

static void ready_remove(engine_t *self, caller_t *caller)
{
    if (caller->ready_prev)
        caller->ready_prev->ready_next = caller->ready_next;
    else
        self->ready_head = caller->ready_next;
    if (caller->ready_next)
        caller->ready_next->ready_prev = caller->ready_prev;
    else
        self->ready_tail = caller->ready_prev;
    caller->ready_prev = caller->ready_next = NULL;
    self->counts.ready--;
}

/* ---- claims waiting for a caller ---- */

static void wait_push(engine_t *self, call_t *call)
{
    call->wait_prev = self->wait_tail;
    call->wait_next = NULL;
    if (self->wait_tail)
        self->wait_tail->wait_next = call;
    else
        self->wait_head = call;
    self->wait_tail = call;
    self->counts.waiting++;
}

static void wait_remove(engine_t *self, call_t *call)
{
    if (call->wait_prev)
        call->wait_prev->wait_next = call->wait_next;
    else
        self->wait_head = call->wait_next;
    if (call->wait_next)
        call->wait_next->wait_prev = call->wait_prev;
    else
        self->wait_tail = call->wait_prev;
    call->wait_prev = call->wait_next = NULL;
    self->counts.waiting--;
}

/* ---- unresolved dials: dense, for the pacing view ---- */

static int unresolved_add(engine_t *self, call_t *call)
{
    if (self->n_unresolved == self->unresolved_capacity) {
        uint32_t capacity = self->unresolved_capacity ? self->unresolved_capacity * 2 : 64;
        call_t **calls = realloc(self->unresolved, capacity * sizeof *calls);
        if (!calls)
            return -1;
        self->unresolved = calls;
        int64_t *at = realloc(self->unresolved_at, capacity * sizeof *at);
        if (!at)
            return -1;
        self->unresolved_at = at;
        self->unresolved_capacity = capacity;
    }
    call->unresolved_slot = self->n_unresolved;
    self->unresolved[self->n_unresolved] = call;
    self->unresolved_at[self->n_unresolved] = call->dialed_at;
    self->n_unresolved++;
    self->counts.unresolved = self->n_unresolved;
    return 0;
}

/* A dial is resolved when it is known whether it needs a caller; the delay since the dial and
 * the verdict are what the predictive policy learns from. */
static void resolve(engine_t *self, call_t *call, int64_t now, bool claim)
{
    if (call->unresolved_slot == NO_SLOT)
        return;
    uint32_t slot = call->unresolved_slot, last = --self->n_unresolved;
    self->unresolved[slot] = self->unresolved[last];
    self->unresolved_at[slot] = self->unresolved_at[last];
    self->unresolved[slot]->unresolved_slot = slot;
    call->unresolved_slot = NO_SLOT;
    self->counts.unresolved = self->n_unresolved;
    pacing_stats_dial_resolved(self->stats, (double)(now - call->dialed_at) / US_PER_S, claim);
}

static void pace(engine_t *self, int64_t now, pacing_reason_t reason);
static void offer_preview(engine_t *self, caller_t *caller, int64_t now);
static void caller_becomes_ready(engine_t *self, caller_t *caller, int64_t now, bool pace_after);

/* The counter of callers in a state; callers on hold are counted by their FIFO instead. */
static uint32_t *state_counter(engine_t *self, caller_state_t state)
{
    switch (state) {
    case CALLER_ON_CALL:
        return &self->counts.on_call;
    case CALLER_WRAP_UP:
        return &self->counts.wrap_up;
    case CALLER_PREVIEW:
    case CALLER_PREVIEW_DIALING:
        return &self->counts.preview;
    case CALLER_READY:
        break;
    }
    return NULL;
}

static void set_caller_state(engine_t *self, caller_t *caller, caller_state_t state, int64_t now)
{
    uint32_t *from = state_counter(self, caller->state), *to = state_counter(self, state);
    if (from)
        (*from)--;
    if (to)
        (*to)++;
    caller->state = state;
    caller->since = now;
}

static void remove_caller(engine_t *self, caller_t *caller, int64_t now)
{
    uint32_t *counter = state_counter(self, caller->state);
    if (counter)
        (*counter)--;
    else if (caller->ready_prev || self->ready_head == caller)
        ready_remove(self, caller);
    uint32_t slot = caller->slot, last = --self->n_callers;
    self->callers[slot] = self->callers[last];
    self->callers[slot]->slot = slot;
    self->counts.callers = self->n_callers;
    idmap_remove(self->callers_by_id, caller->id);
    emit(self, ENGINE_CALLER_LEFT, now, NULL, caller, OUTCOME_NONE);
    free(caller);
}

/* A greeting that ended within the hold limit of the answer is a person's. */
static bool greeted_in_time(const engine_t *self, const call_t *call)
{
    return call->greeting_end_at && call->greeting_end_at - call->answered_at <= seconds(self->config.grace_seconds);
}

/* Screening (see pacing_ops_t.screen): the policy's, in Predictive mode without machine
 * detection at the carrier. */
static bool screening(const engine_t *self)
{
    return self->config.mode == DIAL_PREDICTIVE && !self->config.detect_machine && self->policy->ops->screen;
}

static double ring_seconds(const call_t *call)
{
    return (double)(call->answered_at - call->dialed_at) / US_PER_S;
}

/* ---- the end of a call ---- */

/* The caller's part of `call` is over (it ended, or the person went on to a transfer target):
 * wrap-up, gone if they were leaving, or the next contact for a Preview dial that failed. */
static void release_caller(engine_t *self, caller_t *caller, call_t *call, int64_t now)
{
    caller->call = NULL;
    if (caller->leaving)
        remove_caller(self, caller, now);
    else if (caller->state == CALLER_ON_CALL) {
        pacing_stats_talk(self->stats, (double)(now - call->bridged_at) / US_PER_S);
        caller->awaiting_disposition = true;
        caller->last_greeted = greeted_in_time(self, call);
        caller->last_put_through_at_answer = call->put_through_at_answer;
        caller->last_was_machine = false;
        caller->last_bridged_at = call->bridged_at;
        set_caller_state(self, caller, CALLER_WRAP_UP, now);
        emit(self, ENGINE_CALLER_WRAP_UP, now, call, caller, OUTCOME_NONE);
    } else if (caller->state == CALLER_PREVIEW_DIALING)
        offer_preview(self, caller, now);
}

static void end_call(engine_t *self, call_t *call, engine_outcome_t outcome, int64_t now)
{
    resolve(self, call, now, false);
    if (call->state == CALL_WAITING)
        wait_remove(self, call);
    timerq_cancel(self->timers, &call->timer);
    idmap_remove(self->calls, call->id);
    if (outcome == OUTCOME_TALKED)
        self->counts.talked++;
    else if (outcome == OUTCOME_MACHINE || outcome == OUTCOME_VOICEMAIL)
        self->counts.machines++;
    else if (outcome == OUTCOME_TIMED_OUT)
        self->counts.timed_out++;
    emit(self, ENGINE_CALL_ENDED, now, call, NULL, outcome);

    caller_t *caller = call->caller;
    if (caller && caller->call == call)
        release_caller(self, caller, call, now);
    free(call);
}

static void on_call_timer(void *arg, int64_t now);

static void arm(engine_t *self, call_t *call, int64_t at)
{
    timerq_cancel(self->timers, &call->timer);
    call->timer = timerq_add(self->timers, at, on_call_timer, call);
}

static void hang_up(engine_t *self, call_t *call, engine_outcome_t outcome, int64_t now)
{
    call->pending = outcome;
    if (call->state == CALL_WAITING)
        wait_remove(self, call);
    if (self->carrier.ops->hang_up(self->carrier.self, call->id, now) < 0) {
        end_call(self, call, outcome, now);
        return;
    }
    call->state = CALL_ENDING;
    arm(self, call, now + seconds(PLAY_TIMEOUT_S));
}

static void play_then_hang_up(engine_t *self, call_t *call, const char *uri, engine_outcome_t outcome, int64_t now)
{
    if (call->state == CALL_WAITING)
        wait_remove(self, call);
    if (!uri || self->carrier.ops->play(self->carrier.self, call->id, uri, true, now) < 0) {
        hang_up(self, call, outcome == OUTCOME_VOICEMAIL ? OUTCOME_MACHINE : outcome, now);
        return;
    }
    call->pending = outcome;
    call->state = CALL_PLAYING;
    arm(self, call, now + seconds(PLAY_TIMEOUT_S));
}

/* ---- claims: answered calls that need a caller ---- */

/* A claim whose hold limit had passed before anyone knew it needed a caller (machine detection
 * answering late, a "person" verdict with no greeting heard) is abandoned whatever pacing does:
 * it counts for compliance but teaches pacing nothing. */
static void claim_settled(engine_t *self, call_t *call, bool abandoned, bool expired_on_arrival, int64_t now)
{
    /* A greeting seen in time proves a person. Without one, an abandoned claim is most likely a
     * machine (no detection, or one that detection missed), and a claim put through is a person
     * as often as callers say claims are. */
    double live = 1.0;
    if (!greeted_in_time(self, call))
        live = abandoned ? pacing_stats_person_share_ungreeted(self->stats) : pacing_stats_person_share(self->stats);
    if (abandoned)
        self->counts.abandoned++;
    pacing_stats_claim_outcome(self->stats, abandoned);
    if (self->policy->ops->claim_outcome && !expired_on_arrival)
        self->policy->ops->claim_outcome(self->policy, now, abandoned, live);
}

static void abandon(engine_t *self, call_t *call, bool expired_on_arrival, int64_t now)
{
    claim_settled(self, call, true, expired_on_arrival, now);
    emit(self, ENGINE_CALL_ABANDONED, now, call, NULL, OUTCOME_NONE);
    play_then_hang_up(self, call, self->config.abandon_uri, OUTCOME_ABANDONED, now);
}

/* Returns false when the carrier refused (the far end is already gone): the claim then ends
 * abandoned and the caller is untouched, for the caller of bridge() to place again. */
static bool bridge(engine_t *self, call_t *call, caller_t *caller, int64_t now)
{
    if (call->state == CALL_WAITING)
        wait_remove(self, call);
    if (self->carrier.ops->bridge(self->carrier.self, call->id, caller->id, now) < 0) {
        claim_settled(self, call, true, false, now);
        end_call(self, call, OUTCOME_ABANDONED, now);
        return false;
    }
    claim_settled(self, call, false, false, now);
    call->state = CALL_BRIDGED;
    call->caller = caller;
    call->bridged_at = now;
    caller->call = call;
    caller->counted_person = false;
    set_caller_state(self, caller, CALLER_ON_CALL, now);
    arm(self, call, now + seconds(self->config.max_call_seconds));
    emit(self, ENGINE_CALL_BRIDGED, now, call, caller, OUTCOME_NONE);
    emit(self, ENGINE_CALLER_ON_CALL, now, call, caller, OUTCOME_NONE);
    return true;
}

static int64_t hold_deadline(const engine_t *self, const call_t *call)
{
    int64_t grace = seconds(self->config.grace_seconds), deadline = call->answered_at + grace;
    if (call->greeting_end_at && call->greeting_end_at + grace > deadline)
        deadline = call->greeting_end_at + grace;
    return deadline;
}

static void claim(engine_t *self, call_t *call, int64_t now)
{
    resolve(self, call, now, true);
    self->counts.claims++;
    emit(self, ENGINE_CALL_ANSWERED, now, call, NULL, OUTCOME_NONE);
    call->deadline = hold_deadline(self, call);
    /* Without a greeting yet, the hold will stretch when it ends: expect the usual greeting. */
    double hold = (double)(call->deadline - now) / US_PER_S;
    if (!call->greeting_end_at && !self->config.detect_machine)
        hold += pacing_stats_mean_greeting(self->stats);
    pacing_stats_hold(self->stats, hold > 0 ? hold : 0);
    if (now > call->deadline) {
        abandon(self, call, true, now);
        return;
    }
    if (call->caller && call->caller->state == CALLER_PREVIEW_DIALING) {
        /* a refusal ends the call, which offers the Preview caller the next contact */
        bridge(self, call, call->caller, now);
        return;
    }
    caller_t *caller = self->ready_head;
    if (caller) {
        ready_remove(self, caller);
        call->put_through_at_answer = screening(self) && !call->screened && now == call->answered_at;
        if (!bridge(self, call, caller, now))
            ready_push_front(self, caller);
        return;
    }
    call->caller = NULL;
    call->state = CALL_WAITING;
    wait_push(self, call);
    arm(self, call, call->deadline);
}

/* A held answer whose greeting did not end in time: most likely a machine, which a caller would
 * only hang up on. It never needed a caller; the chance that it was a person after all is
 * counted as an abandon, and it hears the identification message in case it was. */
static void screen_out(engine_t *self, call_t *call, int64_t now)
{
    resolve(self, call, now, false);
    emit_machine(self, call, call->person, now);
    play_then_hang_up(self, call, self->config.abandon_uri, OUTCOME_MACHINE, now);
}

static void on_call_timer(void *arg, int64_t now)
{
    call_t *call = arg;
    engine_t *self = call->engine;
    call->timer = NULL;
    switch (call->state) {
    case CALL_DIALING:
    case CALL_RINGING:
        /* No final status ever came: the original product left such numbers "ringing" forever. */
        self->carrier.ops->hang_up(self->carrier.self, call->id, now);
        end_call(self, call, OUTCOME_TIMED_OUT, now);
        break;
    case CALL_CLASSIFYING:
        if (call->screened)
            screen_out(self, call, now);
        else
            claim(self, call, now);
        break;
    case CALL_WAITING:
        abandon(self, call, false, now);
        break;
    case CALL_BRIDGED:
    case CALL_THREE_WAY:
        hang_up(self, call, OUTCOME_TALKED, now);
        break;
    case CALL_HANDED_OVER:
        /* no longer ours to hang up: the record ends, the people talk on */
        end_call(self, call, OUTCOME_TRANSFERRED, now);
        break;
    case CALL_PLAYING:
    case CALL_ENDING:
        end_call(self, call, call->pending, now);
        break;
    }
}

/* ---- placing calls ---- */

/* How many dials the calls-per-second cap allows right now. */
static int dials_allowed(const engine_t *self, int64_t now)
{
    if (!self->cps_window)
        return INT32_MAX;
    if (self->config.calls_per_second < 1)
        return now - self->recent_dials[0] >= seconds(1.0 / self->config.calls_per_second) ? 1 : 0;
    int allowed = 0;
    for (uint32_t i = 0; i < self->cps_window; i++)
        allowed += now - self->recent_dials[(self->recent_head + i) % self->cps_window] >= seconds(1.0);
    return allowed;
}

static void count_dial(engine_t *self, int64_t now)
{
    if (!self->cps_window)
        return;
    self->recent_dials[self->recent_head] = now;
    self->recent_head = (self->recent_head + 1) % self->cps_window;
}

/* Returns -1 only when the call could not even be recorded; a carrier refusal is an outcome
 * (failed), reported like any other. */
static int place_call(engine_t *self, const engine_number_t *number, caller_t *preview_caller, int64_t now)
{
    call_t *call = calloc(1, sizeof *call);
    if (!call)
        return -1;
    call->engine = self;
    call->id = self->next_call_id++;
    call->number = *number;
    call->state = CALL_DIALING;
    call->caller = preview_caller;
    call->dialed_at = now;
    call->unresolved_slot = NO_SLOT;
    if (idmap_put(self->calls, call->id, call) < 0 || unresolved_add(self, call) < 0) {
        idmap_remove(self->calls, call->id);
        free(call);
        return -1;
    }
    self->counts.dials++;
    count_dial(self, now);
    if (preview_caller)
        preview_caller->call = call;
    emit(self, ENGINE_CALL_DIALING, now, call, preview_caller, OUTCOME_NONE);
    carrier_dial_t request = {
        .to = number->phone,
        .from = self->config.from,
        .detect_machine = self->config.detect_machine,
    };
    if (self->carrier.ops->dial(self->carrier.self, call->id, &request, now) < 0) {
        end_call(self, call, OUTCOME_FAILED, now);
        return 0;
    }
    arm(self, call, now + seconds(self->config.ring_timeout_seconds + self->config.status_timeout_seconds));
    return 0;
}

static pacing_view_t build_view(engine_t *self, int64_t now)
{
    for (uint32_t i = 0; i < self->n_callers; i++) {
        const caller_t *caller = self->callers[i];
        pacing_caller_state_t state = caller->state == CALLER_READY     ? PACING_CALLER_READY
                                      : caller->state == CALLER_ON_CALL ? PACING_CALLER_ON_CALL
                                      : caller->state == CALLER_WRAP_UP ? PACING_CALLER_WRAP_UP
                                                                        : PACING_CALLER_PREVIEW;
        self->view_callers[i] = (pacing_caller_t){.caller_id = caller->id, .state = state, .since_us = caller->since};
    }
    uint32_t max_lines = (uint32_t)floor(self->config.max_lines_per_caller * self->n_callers);
    return (pacing_view_t){
        .now_us = now,
        .callers = self->view_callers,
        .n_callers = self->n_callers,
        .ready = self->counts.ready,
        .busy = self->counts.on_call + self->counts.wrap_up,
        .dialed_at_us = self->unresolved_at,
        .n_unresolved = self->n_unresolved,
        .waiting = self->counts.waiting,
        .stats = self->stats,
        .abandon_cap = self->config.abandon_cap,
        .grace_seconds = self->config.grace_seconds,
        .max_lines = max_lines,
    };
}

/*
 * A call still going after a machine would have been handed back is a person's, and is counted
 * as one now rather than at its disposition. Callers disposition a machine seconds after it is
 * put through and a person minutes after, so counting each at its disposition made a dialer's
 * first minutes look like mostly machines, and pacing counted on callers coming back from every
 * answer within seconds.
 */
static void count_talking_persons(engine_t *self, int64_t now)
{
    int64_t after = seconds(PERSON_AFTER_HANDLES * pacing_stats_mean_machine_handle(self->stats, MACHINE_HANDLE_UNKNOWN_S));
    for (uint32_t i = 0; i < self->n_callers; i++) {
        caller_t *caller = self->callers[i];
        if (caller->state == CALLER_ON_CALL && caller->call && !caller->counted_person && now - caller->call->bridged_at >= after) {
            caller->counted_person = true;
            pacing_stats_disposition(self->stats, true, greeted_in_time(self, caller->call));
        }
    }
}

static void pace(engine_t *self, int64_t now, pacing_reason_t reason)
{
    if (self->paused || self->config.mode == DIAL_PREVIEW || self->n_callers == 0)
        return;
    count_talking_persons(self, now);
    pacing_view_t view = build_view(self, now);
    int lines = self->policy->ops->lines(self->policy, &view, reason);
    int room = (int)view.max_lines - (int)self->n_unresolved;
    if (lines > room)
        lines = room;
    int allowed = dials_allowed(self, now);
    if (lines > allowed)
        lines = allowed;
    for (int i = 0; i < lines; i++) {
        engine_number_t number;
        if (self->hooks.next_number(self->hooks.ctx, now, &number) < 0)
            break;
        if (place_call(self, &number, NULL, now) < 0)
            break;
    }
}

static void on_tick(void *arg, int64_t now)
{
    engine_t *self = arg;
    self->tick = timerq_add(self->timers, now + seconds(self->config.tick_seconds), on_tick, self);
    pace(self, now, PACING_TICK);
}

/* ---- carrier events ---- */

void engine_carrier_event(void *engine, const carrier_event_t *event)
{
    engine_t *self = engine;
    call_t *call = idmap_get(self->calls, event->call_id);
    if (!call)
        return;
    int64_t now = event->at_us;
    bool unanswered = call->state == CALL_DIALING || call->state == CALL_RINGING;
    switch (event->status) {
    case CARRIER_RINGING:
        if (call->state == CALL_DIALING) {
            call->state = CALL_RINGING;
            emit(self, ENGINE_CALL_RINGING, now, call, NULL, OUTCOME_NONE);
        }
        break;
    case CARRIER_ANSWERED:
        if (!unanswered)
            break;
        call->answered_at = now;
        if (screening(self)) {
            call->person = pacing_stats_person_given_ring(self->stats, ring_seconds(call));
            call->screened = self->policy->ops->screen(self->policy, call->person);
            pacing_stats_answer(self->stats, ring_seconds(call));
        }
        if (self->config.detect_machine) {
            call->state = CALL_CLASSIFYING;
            arm(self, call, now + seconds(CLASSIFY_TIMEOUT_S));
        } else if (call->screened) {
            call->state = CALL_CLASSIFYING;
            arm(self, call, now + seconds(self->config.grace_seconds));
        } else
            claim(self, call, now);
        break;
    case CARRIER_GREETING_ENDED:
        if (!call->answered_at || call->greeting_end_at)
            break;
        call->greeting_end_at = now;
        pacing_stats_greeting(self->stats, (double)(now - call->answered_at) / US_PER_S);
        if (screening(self) && greeted_in_time(self, call))
            pacing_stats_answer_greeted(self->stats, ring_seconds(call));
        if (call->state == CALL_CLASSIFYING && call->screened)
            claim(self, call, now);
        else if (call->state == CALL_WAITING) {
            call->deadline = hold_deadline(self, call);
            arm(self, call, call->deadline);
        }
        break;
    case CARRIER_ANSWERED_HUMAN:
        if (unanswered)
            call->answered_at = now;
        if (unanswered || call->state == CALL_CLASSIFYING)
            claim(self, call, now);
        break;
    case CARRIER_ANSWERED_MACHINE:
        if (!unanswered && call->state != CALL_CLASSIFYING)
            break;
        if (unanswered)
            call->answered_at = now;
        resolve(self, call, now, false);
        emit_machine(self, call, self->config.machine_false_positive_rate, now);
        play_then_hang_up(self, call, self->config.voicemail_uri, OUTCOME_VOICEMAIL, now);
        break;
    case CARRIER_BRIDGED:
    case CARRIER_PLAYED:
        break;
    case CARRIER_COMPLETED:
        switch (call->state) {
        case CALL_BRIDGED:
        case CALL_THREE_WAY:
            end_call(self, call, OUTCOME_TALKED, now);
            break;
        case CALL_HANDED_OVER:
            end_call(self, call, OUTCOME_TRANSFERRED, now);
            break;
        case CALL_WAITING:
            /* the person hung up while nobody was free: still an abandoned live answer */
            wait_remove(self, call);
            call->state = CALL_ENDING;
            claim_settled(self, call, true, false, now);
            emit(self, ENGINE_CALL_ABANDONED, now, call, NULL, OUTCOME_NONE);
            end_call(self, call, OUTCOME_ABANDONED, now);
            break;
        case CALL_PLAYING:
        case CALL_ENDING:
            end_call(self, call, call->pending, now);
            break;
        case CALL_CLASSIFYING:
            end_call(self, call, OUTCOME_HUNG_UP, now);
            break;
        case CALL_DIALING:
        case CALL_RINGING:
            end_call(self, call, OUTCOME_NO_ANSWER, now);
            break;
        }
        break;
    case CARRIER_BUSY:
    case CARRIER_NO_ANSWER:
    case CARRIER_FAILED:
    case CARRIER_CANCELED:
        if (unanswered || call->state == CALL_ENDING) {
            engine_outcome_t outcome = event->status == CARRIER_BUSY        ? OUTCOME_BUSY
                                       : event->status == CARRIER_NO_ANSWER ? OUTCOME_NO_ANSWER
                                       : event->status == CARRIER_FAILED    ? OUTCOME_FAILED
                                                                            : OUTCOME_CANCELED;
            end_call(self, call, call->state == CALL_ENDING ? call->pending : outcome, now);
        }
        break;
    }
}

/* ---- callers ---- */

static void offer_preview(engine_t *self, caller_t *caller, int64_t now)
{
    if (self->paused || self->hooks.next_number(self->hooks.ctx, now, &caller->preview) < 0) {
        /* nothing to preview now: the caller waits on hold and is offered one on a later tick */
        caller->has_preview = false;
        set_caller_state(self, caller, CALLER_PREVIEW, now);
        return;
    }
    caller->has_preview = true;
    set_caller_state(self, caller, CALLER_PREVIEW, now);
    emit(self, ENGINE_CALLER_PREVIEW, now, NULL, caller, OUTCOME_NONE);
}

static void caller_becomes_ready(engine_t *self, caller_t *caller, int64_t now, bool pace_after)
{
    if (self->config.mode == DIAL_PREVIEW) {
        offer_preview(self, caller, now);
        return;
    }
    /* A claim already waiting takes this caller at once: one whose greeting was heard first (a
     * person, surely), else the oldest. A machine left waiting costs nobody anything; a person
     * left waiting is an abandon. */
    while (self->wait_head) {
        call_t *call = self->wait_head, *greeted = NULL;
        if (now > call->deadline) {
            abandon(self, call, false, now);
            continue;
        }
        for (call_t *c = call; c && !greeted; c = c->wait_next)
            if (c->greeting_end_at && now <= c->deadline)
                greeted = c;
        if (bridge(self, greeted ? greeted : call, caller, now))
            return;
    }
    if (caller->state != CALLER_READY)
        set_caller_state(self, caller, CALLER_READY, now);
    else
        caller->since = now;
    ready_push(self, caller);
    emit(self, ENGINE_CALLER_READY, now, NULL, caller, OUTCOME_NONE);
    if (pace_after)
        pace(self, now, PACING_CALLER_FREE);
}

int engine_caller_join(engine_t *self, uint64_t caller_id, int64_t now)
{
    if (idmap_get(self->callers_by_id, caller_id))
        return -1;
    if (self->n_callers == self->callers_capacity) {
        uint32_t capacity = self->callers_capacity ? self->callers_capacity * 2 : 16;
        caller_t **callers = realloc(self->callers, capacity * sizeof *callers);
        if (!callers)
            return -1;
        self->callers = callers;
        pacing_caller_t *view = realloc(self->view_callers, capacity * sizeof *view);
        if (!view)
            return -1;
        self->view_callers = view;
        self->callers_capacity = capacity;
    }
    caller_t *caller = calloc(1, sizeof *caller);
    if (!caller)
        return -1;
    caller->id = caller_id;
    caller->state = CALLER_WRAP_UP;
    caller->since = now;
    if (idmap_put(self->callers_by_id, caller_id, caller) < 0) {
        free(caller);
        return -1;
    }
    caller->slot = self->n_callers;
    self->callers[self->n_callers++] = caller;
    self->counts.callers = self->n_callers;
    self->counts.wrap_up++;
    caller_becomes_ready(self, caller, now, true);
    return 0;
}

int engine_caller_ready(engine_t *self, uint64_t caller_id, int64_t now)
{
    caller_t *caller = idmap_get(self->callers_by_id, caller_id);
    if (!caller || caller->state != CALLER_WRAP_UP)
        return -1;
    pacing_stats_wrap(self->stats, (double)(now - caller->since) / US_PER_S);
    if (caller->last_was_machine)
        pacing_stats_machine_handle(self->stats, (double)(now - caller->last_bridged_at) / US_PER_S);
    caller->last_was_machine = false;
    caller_becomes_ready(self, caller, now, true);
    return 0;
}

int engine_caller_leave(engine_t *self, uint64_t caller_id, int64_t now)
{
    caller_t *caller = idmap_get(self->callers_by_id, caller_id);
    if (!caller || caller->leaving)
        return -1;
    if (caller->has_preview && caller->state == CALLER_PREVIEW && self->hooks.return_number)
        self->hooks.return_number(self->hooks.ctx, &caller->preview);
    if (caller->call) {
        call_t *call = caller->call;
        if (caller->state == CALLER_ON_CALL) {
            caller->leaving = true;
            hang_up(self, call, OUTCOME_TALKED, now);
            return 0;
        }
        /* a Preview dial still ringing: it goes on without its caller, to whoever is free */
        call->caller = NULL;
        caller->call = NULL;
    }
    remove_caller(self, caller, now);
    return 0;
}

int engine_caller_finish(engine_t *self, uint64_t caller_id, int64_t now)
{
    caller_t *caller = idmap_get(self->callers_by_id, caller_id);
    if (!caller || caller->leaving)
        return -1;
    if (caller->state == CALLER_ON_CALL && caller->call) {
        caller->leaving = true;
        return 0;
    }
    return engine_caller_leave(self, caller_id, now);
}

int engine_caller_disposition(engine_t *self, uint64_t caller_id, bool person, int64_t now)
{
    caller_t *caller = idmap_get(self->callers_by_id, caller_id);
    if (!caller || caller->state != CALLER_WRAP_UP || !caller->awaiting_disposition)
        return -1;
    caller->awaiting_disposition = false;
    caller->last_was_machine = !person;
    if (!caller->counted_person)
        pacing_stats_disposition(self->stats, person, caller->last_greeted);
    /* Whether people greet in time, from people put through before their greeting could end:
     * neither screening (which ends late greeters) nor waiting (a greeting extends the hold
     * limit) decided which of them reached a caller. */
    if (person && caller->last_put_through_at_answer)
        pacing_stats_person_greeting(self->stats, caller->last_greeted);
    return 0;
}

/* The call a caller is talking on, in one of `states` (a mask of 1 << call_state_t), or NULL. */
static call_t *caller_call(engine_t *self, uint64_t caller_id, unsigned states)
{
    caller_t *caller = idmap_get(self->callers_by_id, caller_id);
    if (!caller || caller->state != CALLER_ON_CALL || !caller->call)
        return NULL;
    return (states & (1u << caller->call->state)) ? caller->call : NULL;
}

int engine_caller_hang_up(engine_t *self, uint64_t caller_id, int64_t now)
{
    call_t *call = caller_call(self, caller_id, 1u << CALL_BRIDGED | 1u << CALL_THREE_WAY);
    if (!call)
        return -1;
    hang_up(self, call, OUTCOME_TALKED, now);
    return 0;
}

int engine_caller_drop_message(engine_t *self, uint64_t caller_id, const char *audio_uri, int64_t now)
{
    call_t *call = caller_call(self, caller_id, 1u << CALL_BRIDGED);
    if (!call || !audio_uri || self->carrier.ops->play(self->carrier.self, call->id, audio_uri, true, now) < 0)
        return -1;
    call->pending = OUTCOME_VOICEMAIL;
    call->state = CALL_PLAYING;
    arm(self, call, now + seconds(PLAY_TIMEOUT_S));
    return 0;
}

/* Handing the person over ends the caller's part: the call stays in the engine, without its
 * caller, until the carrier reports its end (or max_call_seconds does). */
static void hand_over(engine_t *self, call_t *call, int64_t now)
{
    caller_t *caller = call->caller;
    call->state = CALL_HANDED_OVER;
    call->caller = NULL;
    release_caller(self, caller, call, now);
}

int engine_caller_transfer(engine_t *self, uint64_t caller_id, const char *to, bool warm, int64_t now)
{
    call_t *call = caller_call(self, caller_id, 1u << CALL_BRIDGED);
    if (!call || !to || self->carrier.ops->transfer(self->carrier.self, call->id, to, warm, now) < 0)
        return -1;
    if (warm)
        call->state = CALL_THREE_WAY;
    else
        hand_over(self, call, now);
    return 0;
}

int engine_caller_leave_transfer(engine_t *self, uint64_t caller_id, int64_t now)
{
    call_t *call = caller_call(self, caller_id, 1u << CALL_THREE_WAY);
    if (!call || self->carrier.ops->leave(self->carrier.self, call->id, now) < 0)
        return -1;
    hand_over(self, call, now);
    return 0;
}

int engine_caller_view(const engine_t *self, uint64_t caller_id, engine_caller_view_t *view)
{
    const caller_t *caller = idmap_get(self->callers_by_id, caller_id);
    if (!caller)
        return -1;
    static const engine_caller_state_t states[] = {
        [CALLER_READY] = ENGINE_CALLER_STATE_READY,
        [CALLER_ON_CALL] = ENGINE_CALLER_STATE_ON_CALL,
        [CALLER_WRAP_UP] = ENGINE_CALLER_STATE_WRAP_UP,
        [CALLER_PREVIEW] = ENGINE_CALLER_STATE_PREVIEW,
        [CALLER_PREVIEW_DIALING] = ENGINE_CALLER_STATE_DIALING,
    };
    *view = (engine_caller_view_t){.state = states[caller->state], .since_us = caller->since, .leaving = caller->leaving};
    const call_t *call = caller->call;
    if (call) {
        view->call_id = call->id;
        view->number = call->number;
        view->answered_at_us = call->answered_at;
        view->bridged_at_us = call->bridged_at;
        view->three_way = call->state == CALL_THREE_WAY;
        view->ending = call->state == CALL_PLAYING || call->state == CALL_ENDING;
    } else if (caller->state == CALLER_PREVIEW && caller->has_preview) {
        view->number = caller->preview;
    }
    return 0;
}

int engine_preview_dial(engine_t *self, uint64_t caller_id, int64_t now)
{
    caller_t *caller = idmap_get(self->callers_by_id, caller_id);
    if (!caller || caller->state != CALLER_PREVIEW || !caller->has_preview)
        return -1;
    caller->has_preview = false;
    set_caller_state(self, caller, CALLER_PREVIEW_DIALING, now);
    if (place_call(self, &caller->preview, caller, now) < 0) {
        offer_preview(self, caller, now);
        return -1;
    }
    return 0;
}

int engine_preview_skip(engine_t *self, uint64_t caller_id, int64_t now)
{
    caller_t *caller = idmap_get(self->callers_by_id, caller_id);
    if (!caller || caller->state != CALLER_PREVIEW || !caller->has_preview)
        return -1;
    if (self->hooks.return_number)
        self->hooks.return_number(self->hooks.ctx, &caller->preview);
    offer_preview(self, caller, now);
    return 0;
}

size_t engine_preview_numbers(const engine_t *self, uint64_t *number_ids, size_t max)
{
    size_t n = 0;
    for (uint32_t i = 0; i < self->n_callers && n < max; i++) {
        const caller_t *caller = self->callers[i];
        if (caller->state == CALLER_PREVIEW && caller->has_preview)
            number_ids[n++] = caller->preview.number_id;
    }
    return n;
}

int engine_withdraw_number(engine_t *self, uint64_t number_id, int64_t now)
{
    for (uint32_t i = 0; i < self->n_callers; i++) {
        caller_t *caller = self->callers[i];
        if (caller->state != CALLER_PREVIEW || !caller->has_preview || caller->preview.number_id != number_id)
            continue;
        caller->has_preview = false;
        if (self->hooks.return_number)
            self->hooks.return_number(self->hooks.ctx, &caller->preview);
        offer_preview(self, caller, now);
        return 1;
    }
    return 0;
}

static void retry_previews(engine_t *self, int64_t now)
{
    for (uint32_t i = 0; i < self->n_callers; i++) {
        caller_t *caller = self->callers[i];
        if (caller->state == CALLER_PREVIEW && !caller->has_preview)
            offer_preview(self, caller, now);
    }
}

static void on_preview_tick(void *arg, int64_t now)
{
    engine_t *self = arg;
    self->tick = timerq_add(self->timers, now + seconds(self->config.tick_seconds), on_preview_tick, self);
    retry_previews(self, now);
}

void engine_pause(engine_t *self, bool paused, int64_t now)
{
    self->paused = paused;
    if (!paused && self->config.mode == DIAL_PREVIEW)
        retry_previews(self, now);
    else if (!paused)
        pace(self, now, PACING_TICK);
}

/* ---- lifecycle ---- */

engine_t *engine_new(const engine_config_t *config, carrier_t carrier, timerq_t *timers, pacing_policy_t *policy,
                     const engine_hooks_t *hooks, uint64_t first_call_id, int64_t now_us)
{
    engine_t *self = calloc(1, sizeof *self);
    if (!self)
        goto Error;
    self->config = *config;
    self->carrier = carrier;
    self->timers = timers;
    self->hooks = *hooks;
    self->next_call_id = first_call_id ? first_call_id : 1;
    if (config->calls_per_second > 0) {
        self->cps_window = config->calls_per_second < 1 ? 1 : (uint32_t)floor(config->calls_per_second);
        if (self->cps_window > ENGINE_MAX_CPS)
            self->cps_window = ENGINE_MAX_CPS;
        self->recent_dials = malloc(self->cps_window * sizeof *self->recent_dials);
        if (!self->recent_dials)
            goto Error;
        for (uint32_t i = 0; i < self->cps_window; i++)
            self->recent_dials[i] = now_us - seconds(3600);
    }
    self->policy = policy ? policy : pacing_power_new();
    policy = NULL;
    self->stats = pacing_stats_new();
    self->calls = idmap_new();
    self->callers_by_id = idmap_new();
    if (!self->policy || !self->stats || !self->calls || !self->callers_by_id)
        goto Error;
    self->tick =
        timerq_add(timers, now_us + seconds(config->tick_seconds), config->mode == DIAL_PREVIEW ? on_preview_tick : on_tick, self);
    if (!self->tick)
        goto Error;
    return self;
Error:
    pacing_policy_destroy(&policy);
    engine_destroy(&self);
    return NULL;
}

static void free_call_each(void *ctx, uint64_t id, void *value)
{
    engine_t *self = ctx;
    call_t *call = value;
    timerq_cancel(self->timers, &call->timer);
    free(call);
}

void engine_destroy(engine_t **self_p)
{
    engine_t *self = *self_p;
    if (!self)
        return;
    if (self->calls) {
        idmap_each(self->calls, free_call_each, self);
        idmap_destroy(&self->calls);
    }
    for (uint32_t i = 0; i < self->n_callers; i++)
        free(self->callers[i]);
    idmap_destroy(&self->callers_by_id);
    timerq_cancel(self->timers, &self->tick);
    pacing_policy_destroy(&self->policy);
    pacing_stats_destroy(&self->stats);
    free(self->callers);
    free(self->view_callers);
    free(self->unresolved);
    free(self->unresolved_at);
    free(self->recent_dials);
    free(self);
    *self_p = NULL;
}

const engine_counts_t *engine_counts(const engine_t *self)
{
    return &self->counts;
}

const pacing_stats_t *engine_stats(const engine_t *self)
{
    return self->stats;
}

pacing_policy_t *engine_policy(engine_t *self)
{
    return self->policy;
}

const char *engine_outcome_name(engine_outcome_t outcome)
{
    static const char *names[] = {"none",      "talked", "abandoned", "machine",   "voicemail", "busy",
                                  "no_answer", "failed", "canceled",  "timed_out", "hung_up",   "transferred"};
    return (size_t)outcome < sizeof names / sizeof names[0] ? names[outcome] : "unknown";
}

const char *engine_event_name(engine_event_type_t type)
{
    static const char *names[] = {"call.dialing",   "call.ringing",   "call.answered",  "call.machine",
                                  "call.bridged",   "call.abandoned", "call.ended",     "caller.ready",
                                  "caller.preview", "caller.on_call", "caller.wrap_up", "caller.left"};
    return (size_t)type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

const char *carrier_status_name(carrier_status_t status)
{
    static const char *names[] = {"ringing", "answered",  "answered-human", "answered-machine", "greeting-ended", "bridged",
                                  "played",  "completed", "busy",           "no-answer",        "failed",         "canceled"};
    return (size_t)status < sizeof names / sizeof names[0] ? names[status] : "unknown";
}
