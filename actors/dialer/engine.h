/*
 * The campaign engine: one running campaign's callers, calls and pacing, with no I/O of its own.
 *
 * It owns the call state machine (dialing, ringing, answered, waiting for a caller, bridged,
 * abandoned with the identification message, machine handling, ended with an outcome), the
 * callers' states (ready: on hold, on call, wrap-up, preview) with the longest-waiting caller
 * taking the next live answer, the deadlines of the 2-second rule, and the timeouts that end
 * calls whose status never arrives. It asks its pacing policy how many lines to dial, caps the
 * answer, takes numbers from a number source and places calls through a carrier.
 *
 * Everything happens on the caller's timer queue and through callbacks: the dialer actor wires
 * it to the real clock, PostgreSQL and the real carrier; tests and bench/pacing wire it to
 * virtual time and the simulated carrier. Outcomes and state changes leave as engine events,
 * which the actor persists and publishes.
 */
#ifndef IMPACT_DIALER_ENGINE_H
#define IMPACT_DIALER_ENGINE_H

#include "actors/dialer/carrier.h"
#include "actors/dialer/pacing.h"
#include "actors/dialer/timerq.h"

typedef enum { DIAL_PREVIEW, DIAL_POWER, DIAL_PREDICTIVE } dial_mode_t;

#define ENGINE_MAX_CPS 1000

typedef struct {
    dial_mode_t mode;
    const char *from;          /* caller id presented on every call */
    bool detect_machine;       /* ask the carrier for answering-machine detection */
    const char *voicemail_uri; /* left on machines when detection is on; NULL: hang up on them */
    const char *abandon_uri;   /* the identification message for live answers nobody took */
    double ring_timeout_seconds;
    double grace_seconds; /* hold limit after the greeting: 2 s in the US */
    double max_lines_per_caller;
    double calls_per_second; /* 0: no cap; else at most this many dials in any second (up to ENGINE_MAX_CPS) */
    double abandon_cap;      /* e.g. 0.03 */
    /* The share of people that machine detection takes for machines (and so hangs up on or
     * leaves a message for): a reasoned estimate, as the UK regulator requires; pacing budgets
     * for them as abandons. 0 when detection is off or the estimate is unknown. */
    double machine_false_positive_rate;
    double tick_seconds;           /* how often pacing is reconsidered, besides caller events */
    double status_timeout_seconds; /* a dial with no final status this long after its ring timeout is ended */
    double max_call_seconds;       /* a bridged call with no end this long is hung up */
} engine_config_t;

/* The defaults: Predictive, 25 s ring timeout, 2 s grace, 3% cap, 6 lines per caller. */
void engine_config_defaults(engine_config_t *config);

typedef struct {
    uint64_t number_id;
    char phone[20]; /* E.164 */
} engine_number_t;

typedef enum {
    ENGINE_CALL_DIALING,
    ENGINE_CALL_RINGING,
    ENGINE_CALL_ANSWERED, /* a live answer (or any answer without detection) needs a caller */
    ENGINE_CALL_MACHINE,  /* detection says machine */
    ENGINE_CALL_BRIDGED,
    ENGINE_CALL_ABANDONED, /* nobody was free in time: identification message played */
    ENGINE_CALL_ENDED,     /* final, with an outcome */
    ENGINE_CALLER_READY,
    ENGINE_CALLER_PREVIEW,
    ENGINE_CALLER_ON_CALL,
    ENGINE_CALLER_WRAP_UP,
    ENGINE_CALLER_LEFT,
} engine_event_type_t;

typedef enum {
    OUTCOME_NONE,
    OUTCOME_TALKED, /* put through to a caller and ended normally */
    OUTCOME_ABANDONED,
    OUTCOME_MACHINE,   /* a machine; hung up on */
    OUTCOME_VOICEMAIL, /* a machine; message left */
    OUTCOME_BUSY,
    OUTCOME_NO_ANSWER,
    OUTCOME_FAILED,
    OUTCOME_CANCELED,    /* hung up by us while ringing (campaign stopped) */
    OUTCOME_TIMED_OUT,   /* the carrier never reported an end */
    OUTCOME_HUNG_UP,     /* answered, then hung up before a person or a machine was recognised */
    OUTCOME_TRANSFERRED, /* a caller handed the person to a transfer target */
} engine_outcome_t;

typedef struct {
    engine_event_type_t type;
    int64_t at_us;
    uint64_t call_id;   /* 0 for caller-only events */
    uint64_t caller_id; /* 0 when no caller is involved */
    uint64_t number_id;
    engine_outcome_t outcome; /* for ENGINE_CALL_ENDED */
    /* For ENGINE_CALL_MACHINE: the chance that the answer, ended as a machine without a caller
     * (machine detection's verdict, or screened out by its ring time), was a person after all.
     * The abandon rate counts it as that much of a live answer and of an abandon. */
    double person_share;
} engine_event_t;

typedef struct {
    /* Fills *number with the next number to dial; returns 0, or -1 when none is available now. */
    int (*next_number)(void *ctx, int64_t now_us, engine_number_t *number);
    /* Optional: a number taken with next_number will not be dialed after all (a Preview caller
     * skipped it or left). */
    void (*return_number)(void *ctx, const engine_number_t *number);
    void (*on_event)(void *ctx, const engine_event_t *event);
    void *ctx;
} engine_hooks_t;

/* Counters since the engine started, for stats and tests. */
typedef struct {
    uint32_t callers, ready, on_call, wrap_up, preview;
    uint32_t unresolved, waiting;
    uint64_t dials, claims, abandoned, talked, machines, timed_out;
    double person_shares; /* summed person_share of ENGINE_CALL_MACHINE events */
} engine_counts_t;

typedef struct engine_t engine_t;

/* The engine borrows the carrier and timers and takes ownership of policy (which may be NULL
 * in Preview and Power, where the engine uses its exact rules). Call ids are allocated from
 * first_call_id upwards. */
engine_t *engine_new(const engine_config_t *config, carrier_t carrier, timerq_t *timers, pacing_policy_t *policy,
                     const engine_hooks_t *hooks, uint64_t first_call_id, int64_t now_us);
void engine_destroy(engine_t **self_p);

/* The carrier's sink: feed every carrier event here. Events for unknown calls are ignored. */
void engine_carrier_event(void *engine, const carrier_event_t *event);

/* Callers. Each returns 0, or -1 (unknown caller, wrong state, duplicate id). */
int engine_caller_join(engine_t *self, uint64_t caller_id, int64_t now_us);
int engine_caller_ready(engine_t *self, uint64_t caller_id, int64_t now_us); /* wrap-up done */
int engine_caller_leave(engine_t *self, uint64_t caller_id, int64_t now_us);
/* Leaves once the call in progress ends (at once when not on a call): a caller who stops, or
 * whose browser went away, never hangs up on the person they are talking to. */
int engine_caller_finish(engine_t *self, uint64_t caller_id, int64_t now_us);
/* The caller's verdict on the call they just finished, while in wrap-up: a person or an
 * answering machine. It teaches the engine how many unknown answers are people (see
 * pacing_stats_disposition). */
int engine_caller_disposition(engine_t *self, uint64_t caller_id, bool person, int64_t now_us);
int engine_preview_dial(engine_t *self, uint64_t caller_id, int64_t now_us);

/* A caller's own call controls; each returns 0, or -1 when the caller is not connected to a call
 * in a state that allows it (or the carrier refused). Hanging up sends the caller to wrap-up
 * when the carrier confirms. Dropping a message plays `audio_uri` (the campaign's voicemail) to
 * the machine the caller is connected to and hangs up after it: the call ends as voicemail. A
 * cold transfer hands the person to `to` and sends the caller to wrap-up at once; a warm one adds
 * `to` to the call, and the caller stays until leave_transfer (or hangs up on everyone). A
 * transferred call ends as transferred when the carrier reports its end. */
int engine_caller_hang_up(engine_t *self, uint64_t caller_id, int64_t now_us);
int engine_caller_drop_message(engine_t *self, uint64_t caller_id, const char *audio_uri, int64_t now_us);
int engine_caller_transfer(engine_t *self, uint64_t caller_id, const char *to, bool warm, int64_t now_us);
int engine_caller_leave_transfer(engine_t *self, uint64_t caller_id, int64_t now_us);

typedef enum {
    ENGINE_CALLER_STATE_READY, /* on hold */
    ENGINE_CALLER_STATE_PREVIEW,
    ENGINE_CALLER_STATE_DIALING, /* a Preview dial is ringing */
    ENGINE_CALLER_STATE_ON_CALL,
    ENGINE_CALLER_STATE_WRAP_UP,
} engine_caller_state_t;

/* What a caller sees: their state since when, and the call or the Preview contact. */
typedef struct {
    engine_caller_state_t state;
    int64_t since_us;
    bool leaving;           /* left while on a call: gone when it ends */
    uint64_t call_id;       /* 0 without a call */
    engine_number_t number; /* the call's number, or the contact previewed (number_id 0: none) */
    int64_t answered_at_us, bridged_at_us;
    bool three_way; /* a warm transfer's target is on the call */
    bool ending;    /* hung up or a message is playing: the end is on its way */
} engine_caller_view_t;

/* Fills *view for a caller in the engine. 0, or -1 for an unknown caller. */
int engine_caller_view(const engine_t *self, uint64_t caller_id, engine_caller_view_t *view);
int engine_preview_skip(engine_t *self, uint64_t caller_id, int64_t now_us);

/* The numbers Preview callers are looking at (at most `max`), for a re-check against blocked
 * numbers: a caller may look at a contact for minutes before dialing. Returns how many. */
size_t engine_preview_numbers(const engine_t *self, uint64_t *number_ids, size_t max);

/* A number that must not be dialed (blocked since it was claimed): the caller previewing it is
 * offered the next one and the number goes back. 1 when a caller had it, else 0. */
int engine_withdraw_number(engine_t *self, uint64_t number_id, int64_t now_us);

/* Stops placing new calls (calls in flight finish normally), or resumes. */
void engine_pause(engine_t *self, bool paused, int64_t now_us);

const engine_counts_t *engine_counts(const engine_t *self);
const pacing_stats_t *engine_stats(const engine_t *self);
pacing_policy_t *engine_policy(engine_t *self);

const char *engine_outcome_name(engine_outcome_t outcome);
const char *engine_event_name(engine_event_type_t type);

#endif
