/*
 * actors/dialer: the campaign engine against the simulated carrier, in virtual time.
 *
 * Each outcome a phone network can produce is forced by a scenario that makes it certain, and
 * the engine's events, outcomes and caller states are checked against it; then the rules that
 * must hold over whole shifts: Power and Preview never abandon, Predictive stays under its cap,
 * the calls-per-second cap holds, calls whose status never comes are timed out, the longest-
 * waiting caller takes the next answer, and bad requests are refused without changing anything.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/dialer/engine.h"
#include "actors/dialer/idmap.h"
#include "actors/dialer/rng.h"
#include "actors/dialer/scenario.h"
#include "actors/dialer/sim_carrier.h"
#include "actors/dialer/timerq.h"

#define S(x)       ((int64_t)((x)*1000000.0))
#define MAX_EVENTS 4096

/* ---- timerq ---- */

static int64_t fired_at[16];
static int fired_order[16], n_fired;

static void record_fire(void *arg, int64_t now)
{
    fired_order[n_fired] = (int)(intptr_t)arg;
    fired_at[n_fired++] = now;
}

static void test_timerq_orders_and_cancels(void **state)
{
    timerq_t *q = timerq_new();
    n_fired = 0;
    timerq_add(q, 30, record_fire, (void *)3);
    timerq_add(q, 10, record_fire, (void *)1);
    timerq_timer_t *cancelled = timerq_add(q, 20, record_fire, (void *)99);
    timerq_add(q, 10, record_fire, (void *)2); /* same time as 1: fires after it */
    timerq_cancel(q, &cancelled);
    assert_null(cancelled);
    timerq_cancel(q, &cancelled); /* a cleared handle is a no-op */
    assert_int_equal(timerq_next(q), 10);
    assert_int_equal(timerq_run_due(q, 15), 2);
    assert_int_equal(timerq_run_due(q, 100), 1);
    assert_int_equal(n_fired, 3);
    assert_int_equal(fired_order[0], 1);
    assert_int_equal(fired_order[1], 2);
    assert_int_equal(fired_order[2], 3);
    assert_int_equal(timerq_next(q), TIMERQ_NEVER);
    /* many random timers come out sorted */
    rng_t rng;
    rng_seed(&rng, 1, 1);
    for (int i = 0; i < 5000; i++)
        timerq_add(q, (int64_t)(rng_uniform(&rng) * 1e6), record_fire, NULL);
    int64_t last = -1;
    while (timerq_size(q)) {
        int64_t next = timerq_next(q);
        assert_true(next >= last);
        last = next;
        n_fired = 0;
        timerq_run_due(q, next);
    }
    timerq_destroy(&q);
}

/* ---- idmap ---- */

static void test_idmap_survives_churn(void **state)
{
    idmap_t *map = idmap_new();
    assert_int_equal(idmap_put(map, 0, map), -1); /* 0 is not an id */
    for (uint64_t round = 0; round < 20; round++) {
        for (uint64_t id = 1; id <= 2000; id++)
            assert_int_equal(idmap_put(map, id * 7919 + round, (void *)(uintptr_t)id), 0);
        assert_int_equal(idmap_put(map, 7919 + round, map), -1); /* duplicate */
        for (uint64_t id = 1; id <= 2000; id += 2)
            assert_ptr_equal(idmap_remove(map, id * 7919 + round), (void *)(uintptr_t)id);
        for (uint64_t id = 1; id <= 2000; id++)
            assert_ptr_equal(idmap_get(map, id * 7919 + round), id % 2 ? NULL : (void *)(uintptr_t)id);
        for (uint64_t id = 2; id <= 2000; id += 2)
            idmap_remove(map, id * 7919 + round);
        assert_int_equal(idmap_size(map), 0);
    }
    idmap_destroy(&map);
}

/* ---- scenarios ---- */

static void test_scenario_rejects_bad_input(void **state)
{
    scenario_t s;
    char err[256];
    scenario_defaults(&s);
    assert_int_equal(scenario_set(&s, "agents = 10", err, sizeof err), 0);
    assert_int_equal(s.agents, 10);
    assert_int_equal(scenario_set(&s, "amd=true", err, sizeof err), 0);
    assert_true(s.amd);
    const char *bad[] = {"agentz=3",  "agents=0",  "agents=2.5", "p_human=1.5",
                         "hours=abc", "amd=maybe", "no equals",  "talk_mean=nan"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        scenario_t before = s;
        assert_int_equal(scenario_set(&s, bad[i], err, sizeof err), -1);
        assert_memory_equal(&before, &s, sizeof s);
        assert_true(strlen(err) > 0);
    }
    assert_int_equal(scenario_set(&s, "p_machine=0.9", err, sizeof err), 0);
    assert_int_equal(scenario_check(&s, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than 1"));

    char path[] = "/tmp/test_scenario_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# a scenario\nagents = 12 # inline comment\n\np_human = 0.1\nbogus = 1\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    scenario_defaults(&s);
    assert_int_equal(scenario_load(&s, path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":5: unknown scenario key \"bogus\""));
    unlink(path);
    assert_int_equal(scenario_load(&s, "/nonexistent/scenario", err, sizeof err), -1);
}

/* ---- the engine harness ---- */

typedef struct harness_t harness_t;

typedef struct {
    harness_t *h;
    uint64_t caller_id;
} caller_action_t;

#define MAX_CALLERS 128

struct harness_t {
    scenario_t scenario;
    timerq_t *timers;
    sim_carrier_t *sim;
    engine_t *engine;
    engine_event_t events[MAX_EVENTS];
    int n_events;
    uint64_t numbers;
    uint64_t outcomes[16];
    bool auto_wrap;      /* callers finish wrap-up after 5 s */
    bool auto_preview;   /* Preview callers dial after 3 s */
    int64_t max_hold_us; /* longest answer-to-abandon seen */
    int64_t last_on_call_us;
    uint64_t returned;
    int64_t answered_at[1 << 14];
    caller_action_t actions[MAX_CALLERS + 1];
};

static void forward(void *ctx, const carrier_event_t *event)
{
    harness_t *h = ctx;
    if (event->status == CARRIER_ANSWERED && event->call_id < (1 << 14))
        h->answered_at[event->call_id] = event->at_us;
    engine_carrier_event(h->engine, event);
}

static int give_number(void *ctx, int64_t now, engine_number_t *number)
{
    harness_t *h = ctx;
    number->number_id = ++h->numbers;
    snprintf(number->phone, sizeof number->phone, "+1202555%04llu", (unsigned long long)(h->numbers % 10000));
    return 0;
}

static void return_number(void *ctx, const engine_number_t *number)
{
    ((harness_t *)ctx)->returned++;
}

static void wrap_done(void *arg, int64_t now)
{
    caller_action_t *action = arg;
    engine_caller_ready(action->h->engine, action->caller_id, now);
}

static void preview_done(void *arg, int64_t now)
{
    caller_action_t *action = arg;
    engine_preview_dial(action->h->engine, action->caller_id, now);
}

static void on_event(void *ctx, const engine_event_t *event)
{
    harness_t *h = ctx;
    if (h->n_events < MAX_EVENTS)
        h->events[h->n_events++] = *event;
    if (event->type == ENGINE_CALL_ENDED)
        h->outcomes[event->outcome]++;
    if (event->type == ENGINE_CALLER_ON_CALL)
        h->last_on_call_us = event->at_us;
    if (event->type == ENGINE_CALL_ABANDONED && event->call_id < (1 << 14)) {
        int64_t held = event->at_us - h->answered_at[event->call_id];
        if (held > h->max_hold_us)
            h->max_hold_us = held;
    }
    if ((event->type == ENGINE_CALLER_WRAP_UP && h->auto_wrap) || (event->type == ENGINE_CALLER_PREVIEW && h->auto_preview)) {
        assert_true(event->caller_id <= MAX_CALLERS);
        caller_action_t *action = &h->actions[event->caller_id];
        *action = (caller_action_t){h, event->caller_id};
        if (event->type == ENGINE_CALLER_WRAP_UP)
            timerq_add(h->timers, event->at_us + S(5), wrap_done, action);
        else
            timerq_add(h->timers, event->at_us + S(3), preview_done, action);
    }
}

static harness_t *harness_new(const char *const *settings, dial_mode_t mode, pacing_policy_t *policy, bool amd_voicemail)
{
    harness_t *h = calloc(1, sizeof *h);
    assert_non_null(h);
    scenario_defaults(&h->scenario);
    h->scenario.talk_mean = 30;
    char err[256];
    for (; settings && *settings; settings++)
        assert_int_equal(scenario_set(&h->scenario, *settings, err, sizeof err), 0);
    h->timers = timerq_new();
    h->sim = sim_carrier_new(&h->scenario, h->timers, 0, forward, h);
    engine_config_t config;
    engine_config_defaults(&config);
    config.mode = mode;
    config.from = "+12025550100";
    config.detect_machine = h->scenario.amd;
    config.voicemail_uri = amd_voicemail ? "sim:voicemail" : NULL;
    config.abandon_uri = "sim:identification";
    config.calls_per_second = h->scenario.cps;
    engine_hooks_t hooks = {.next_number = give_number, .return_number = return_number, .on_event = on_event, .ctx = h};
    h->engine = engine_new(&config, sim_carrier_carrier(h->sim), h->timers, policy, &hooks, 1, 0);
    assert_non_null(h->engine);
    h->auto_wrap = true;
    return h;
}

static void harness_run(harness_t *h, double until_seconds)
{
    for (int64_t t; (t = timerq_next(h->timers)) <= S(until_seconds);)
        timerq_run_due(h->timers, t);
}

static void harness_destroy(harness_t **h_p)
{
    harness_t *h = *h_p;
    engine_destroy(&h->engine);
    sim_carrier_destroy(&h->sim);
    timerq_destroy(&h->timers);
    free(h);
    *h_p = NULL;
}

/* Index of the first event of a type for a call (0 = any call), or -1. */
static int find_event(const harness_t *h, engine_event_type_t type, uint64_t call_id, int from)
{
    for (int i = from; i < h->n_events; i++)
        if (h->events[i].type == type && (!call_id || h->events[i].call_id == call_id))
            return i;
    return -1;
}

/* ---- one outcome at a time ---- */

static void test_person_answers_and_talks(void **state)
{
    harness_t *h = harness_new((const char *[]){"p_human=1", "p_machine=0", "p_noans=0", NULL}, DIAL_POWER, NULL, false);
    assert_int_equal(engine_caller_join(h->engine, 1, 0), 0);
    harness_run(h, 20);
    /* Power dialed exactly one line for the one caller on hold */
    assert_int_equal(h->events[0].type, ENGINE_CALLER_READY);
    int dialing = find_event(h, ENGINE_CALL_DIALING, 1, 0);
    assert_true(dialing >= 0);
    int ringing = find_event(h, ENGINE_CALL_RINGING, 1, dialing);
    int answered = find_event(h, ENGINE_CALL_ANSWERED, 1, ringing);
    int bridged = find_event(h, ENGINE_CALL_BRIDGED, 1, answered);
    int on_call = find_event(h, ENGINE_CALLER_ON_CALL, 1, bridged);
    assert_true(ringing > dialing && answered > ringing && bridged > answered && on_call > bridged);
    int second = find_event(h, ENGINE_CALL_DIALING, 2, 0);
    assert_true(second == -1 || second > on_call); /* nothing more until the caller is free again */
    assert_int_equal(h->events[bridged].caller_id, 1);
    assert_int_equal(h->events[bridged].number_id, 1);
    assert_int_equal(engine_counts(h->engine)->on_call, 1);
    harness_run(h, 3600);
    assert_true(h->outcomes[OUTCOME_TALKED] > 10);
    assert_int_equal(h->outcomes[OUTCOME_ABANDONED], 0);
    int ended = find_event(h, ENGINE_CALL_ENDED, 1, bridged);
    assert_int_equal(h->events[ended].outcome, OUTCOME_TALKED);
    assert_int_equal(h->events[ended + 1].type, ENGINE_CALLER_WRAP_UP);
    assert_int_equal(sim_carrier_truth(h->sim)->abandoned, 0);
    harness_destroy(&h);
}

static void test_unanswered_outcomes(void **state)
{
    harness_t *h = harness_new((const char *[]){"p_human=0", "p_machine=0", "p_noans=1", NULL}, DIAL_POWER, NULL, false);
    engine_caller_join(h->engine, 1, 0);
    harness_run(h, 26);
    int ended = find_event(h, ENGINE_CALL_ENDED, 1, 0);
    assert_true(ended >= 0);
    assert_int_equal(h->events[ended].outcome, OUTCOME_NO_ANSWER);
    assert_int_equal(h->events[ended].at_us, S(25)); /* released at the ring timeout */
    harness_destroy(&h);

    h = harness_new((const char *[]){"p_human=0", "p_machine=0", "p_noans=0", NULL}, DIAL_POWER, NULL, false);
    engine_caller_join(h->engine, 1, 0);
    harness_run(h, 600);
    assert_true(h->outcomes[OUTCOME_BUSY] > 10);
    assert_true(h->outcomes[OUTCOME_FAILED] > 10);
    assert_int_equal(h->outcomes[OUTCOME_BUSY] + h->outcomes[OUTCOME_FAILED], engine_counts(h->engine)->dials - 1);
    harness_destroy(&h);
}

static void test_machines_with_detection(void **state)
{
    const char *machines[] = {"p_human=0", "p_machine=1", "p_noans=0", "amd=true", "amd_fn=0", NULL};
    harness_t *h = harness_new(machines, DIAL_POWER, NULL, true);
    engine_caller_join(h->engine, 1, 0);
    harness_run(h, 600);
    assert_true(h->outcomes[OUTCOME_VOICEMAIL] > 5);
    assert_int_equal(h->outcomes[OUTCOME_TALKED], 0);
    assert_int_equal(engine_counts(h->engine)->claims, 0); /* no machine ever reached the caller */
    assert_true(find_event(h, ENGINE_CALL_MACHINE, 1, 0) >= 0);
    harness_destroy(&h);

    h = harness_new(machines, DIAL_POWER, NULL, false); /* no voicemail message: hang up */
    engine_caller_join(h->engine, 1, 0);
    harness_run(h, 600);
    assert_true(h->outcomes[OUTCOME_MACHINE] > 5);
    assert_int_equal(h->outcomes[OUTCOME_VOICEMAIL], 0);
    harness_destroy(&h);
}

static void test_lost_status_is_timed_out(void **state)
{
    harness_t *h =
        harness_new((const char *[]){"p_human=0", "p_machine=0", "p_noans=1", "lost_status=1", NULL}, DIAL_POWER, NULL, false);
    engine_caller_join(h->engine, 1, 0);
    harness_run(h, 86);
    /* no final status ever arrives; the engine ends the call after timeout + status wait */
    int ended = find_event(h, ENGINE_CALL_ENDED, 1, 0);
    assert_true(ended >= 0);
    assert_int_equal(h->events[ended].outcome, OUTCOME_TIMED_OUT);
    assert_int_equal(h->events[ended].at_us, S(25 + 60));
    harness_run(h, 3600);
    assert_int_equal(engine_counts(h->engine)->unresolved, 1); /* only the latest dial is still out */
    assert_true(h->outcomes[OUTCOME_TIMED_OUT] >= 40);
    harness_destroy(&h);
}

/* A policy that always wants more lines: every answer beyond the callers must be abandoned,
 * with the identification message, within the hold limit. */
static int greedy_lines(pacing_policy_t *self, const pacing_view_t *view, pacing_reason_t reason)
{
    return 4;
}
static void greedy_destroy(pacing_policy_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}
static const pacing_ops_t greedy_ops = {.name = "greedy", .lines = greedy_lines, .destroy = greedy_destroy};

static void test_abandon_within_the_hold_limit(void **state)
{
    pacing_policy_t *greedy = calloc(1, sizeof *greedy);
    greedy->ops = &greedy_ops;
    harness_t *h = harness_new((const char *[]){"p_human=1", "p_machine=0", "p_noans=0", NULL}, DIAL_PREDICTIVE, greedy, false);
    engine_caller_join(h->engine, 1, 0);
    harness_run(h, 600);
    const engine_counts_t *counts = engine_counts(h->engine);
    assert_true(counts->abandoned > 20);
    /* every abandon ends with the abandoned outcome once its message has played */
    assert_true(h->outcomes[OUTCOME_ABANDONED] + 6 >= counts->abandoned);
    assert_true(h->outcomes[OUTCOME_ABANDONED] <= counts->abandoned);
    /* held at most 2 s after the greeting, and the greeting ends well within 10 s here */
    assert_true(h->max_hold_us > 0);
    assert_true(h->max_hold_us <= S(12));
    /* the engine's abandon count matches the truth: people (all answers here are people)
     * never put through in time, and no more lines than 6 per caller ever rang */
    assert_int_equal(counts->abandoned, sim_carrier_truth(h->sim)->abandoned);
    assert_true(counts->unresolved <= 6);
    harness_destroy(&h);
}

static void test_longest_waiting_caller_is_served_first(void **state)
{
    harness_t *h =
        harness_new((const char *[]){"p_human=1", "p_machine=0", "p_noans=0", "ring_h_cv=0", NULL}, DIAL_POWER, NULL, false);
    engine_caller_join(h->engine, 7, 0);
    engine_caller_join(h->engine, 3, S(0.5));
    harness_run(h, 11);
    /* both lines answer after exactly 10 s; the first answer goes to caller 7, who waited longest */
    int first = find_event(h, ENGINE_CALLER_ON_CALL, 0, 0);
    assert_true(first >= 0);
    assert_int_equal(h->events[first].caller_id, 7);
    int second = find_event(h, ENGINE_CALLER_ON_CALL, 0, first + 1);
    assert_true(second >= 0);
    assert_int_equal(h->events[second].caller_id, 3);
    harness_destroy(&h);
}

/* A carrier that cannot put every answer through (the far end hung up just before): the
 * simulated network, except that every third bridge is refused. */
static carrier_t refusing_inner;
static int bridges_tried;

static int refusing_dial(void *self, uint64_t call_id, const carrier_dial_t *request, int64_t now)
{
    return refusing_inner.ops->dial(refusing_inner.self, call_id, request, now);
}
static int refusing_bridge(void *self, uint64_t call_id, uint64_t caller_id, int64_t now)
{
    if (++bridges_tried % 3 == 0) {
        refusing_inner.ops->hang_up(refusing_inner.self, call_id, now);
        return -1;
    }
    return refusing_inner.ops->bridge(refusing_inner.self, call_id, caller_id, now);
}
static int refusing_play(void *self, uint64_t call_id, const char *uri, bool hang_up_after, int64_t now)
{
    return refusing_inner.ops->play(refusing_inner.self, call_id, uri, hang_up_after, now);
}
static int refusing_transfer(void *self, uint64_t call_id, const char *to, bool warm, int64_t now)
{
    return refusing_inner.ops->transfer(refusing_inner.self, call_id, to, warm, now);
}
static int refusing_leave(void *self, uint64_t call_id, int64_t now)
{
    return refusing_inner.ops->leave(refusing_inner.self, call_id, now);
}
static int refusing_hang_up(void *self, uint64_t call_id, int64_t now)
{
    return refusing_inner.ops->hang_up(refusing_inner.self, call_id, now);
}
static void refusing_destroy(void **self_p) {}
static const carrier_ops_t refusing_ops = {.dial = refusing_dial,
                                           .bridge = refusing_bridge,
                                           .play = refusing_play,
                                           .transfer = refusing_transfer,
                                           .leave = refusing_leave,
                                           .hang_up = refusing_hang_up,
                                           .destroy = refusing_destroy};

static void test_refused_bridge_frees_the_caller(void **state)
{
    harness_t *h = calloc(1, sizeof *h);
    scenario_defaults(&h->scenario);
    char err[256];
    for (const char *const *set = (const char *[]){"p_human=1", "p_machine=0", "p_noans=0", "talk_mean=30", NULL}; *set; set++)
        assert_int_equal(scenario_set(&h->scenario, *set, err, sizeof err), 0);
    h->timers = timerq_new();
    h->sim = sim_carrier_new(&h->scenario, h->timers, 0, forward, h);
    refusing_inner = sim_carrier_carrier(h->sim);
    bridges_tried = 0;
    engine_config_t config;
    engine_config_defaults(&config);
    /* more lines than callers, so answers also wait for callers coming out of wrap-up */
    config.mode = DIAL_PREDICTIVE;
    pacing_policy_t *greedy = calloc(1, sizeof *greedy);
    greedy->ops = &greedy_ops;
    engine_hooks_t hooks = {.next_number = give_number, .on_event = on_event, .ctx = h};
    h->engine = engine_new(&config, (carrier_t){&refusing_ops, NULL}, h->timers, greedy, &hooks, 1, 0);
    h->auto_wrap = true;
    engine_caller_join(h->engine, 1, 0);
    engine_caller_join(h->engine, 2, 0);
    harness_run(h, 3600);
    const engine_counts_t *counts = engine_counts(h->engine);
    /* the callers kept working throughout: each took about a call a minute, every hour long */
    assert_true(bridges_tried > 60);
    assert_true(h->outcomes[OUTCOME_TALKED] > 60);
    assert_true(h->last_on_call_us > S(3400));
    assert_int_equal(counts->ready + counts->on_call + counts->wrap_up, 2);
    harness_destroy(&h);
}

/* ---- whole shifts ---- */

static void test_power_and_preview_never_abandon(void **state)
{
    for (int mode = 0; mode < 2; mode++) {
        harness_t *h = harness_new((const char *[]){"talk_mean=120", NULL}, mode ? DIAL_POWER : DIAL_PREVIEW, NULL, false);
        h->auto_preview = true;
        for (uint64_t id = 1; id <= 10; id++)
            engine_caller_join(h->engine, id, 0);
        harness_run(h, 4 * 3600);
        assert_int_equal(engine_counts(h->engine)->abandoned, 0);
        assert_int_equal(sim_carrier_truth(h->sim)->abandoned, 0);
        assert_true(h->outcomes[OUTCOME_TALKED] > 300);
        harness_destroy(&h);
    }
}

static void test_preview_skip_returns_the_number(void **state)
{
    harness_t *h = harness_new(NULL, DIAL_PREVIEW, NULL, false);
    engine_caller_join(h->engine, 1, 0);
    int preview = find_event(h, ENGINE_CALLER_PREVIEW, 0, 0);
    assert_true(preview >= 0);
    assert_int_equal(h->events[preview].number_id, 1);
    assert_int_equal(engine_preview_skip(h->engine, 1, S(1)), 0);
    assert_int_equal(h->returned, 1);
    preview = find_event(h, ENGINE_CALLER_PREVIEW, 0, preview + 1);
    assert_int_equal(h->events[preview].number_id, 2);
    assert_int_equal(engine_preview_dial(h->engine, 1, S(2)), 0);
    assert_int_equal(engine_preview_dial(h->engine, 1, S(2)), -1); /* already dialing */
    assert_int_equal(engine_counts(h->engine)->dials, 1);
    assert_int_equal(engine_caller_leave(h->engine, 1, S(3)), 0);
    assert_int_equal(engine_counts(h->engine)->callers, 0);
    harness_destroy(&h);
}

/* A number blocked while a Preview caller looks at it is taken away and replaced; nobody else's is. */
static void test_preview_number_blocked_meanwhile_is_withdrawn(void **state)
{
    harness_t *h = harness_new(NULL, DIAL_PREVIEW, NULL, false);
    engine_caller_join(h->engine, 1, 0);
    engine_caller_join(h->engine, 2, 0);
    uint64_t held[4];
    assert_int_equal(engine_preview_numbers(h->engine, held, 4), 2);
    uint64_t blocked = held[0], kept = held[1];
    assert_int_equal(engine_withdraw_number(h->engine, 999, S(1)), 0); /* nobody has it */
    assert_int_equal(engine_withdraw_number(h->engine, blocked, S(1)), 1);
    assert_int_equal(h->returned, 1);
    assert_int_equal(engine_preview_numbers(h->engine, held, 4), 2);
    assert_true(held[0] != blocked && held[1] != blocked);
    assert_true(held[0] == kept || held[1] == kept);
    /* both callers can still dial, and the blocked number is never dialed */
    assert_int_equal(engine_preview_dial(h->engine, 1, S(2)), 0);
    assert_int_equal(engine_preview_dial(h->engine, 2, S(2)), 0);
    for (int i = 0; i < h->n_events; i++)
        if (h->events[i].type == ENGINE_CALL_DIALING)
            assert_true(h->events[i].number_id != blocked);
    harness_destroy(&h);
}

static void test_predictive_stays_under_its_cap(void **state)
{
    harness_t *h = harness_new((const char *[]){"talk_mean=120", NULL}, DIAL_PREDICTIVE, pacing_predictive_new(NULL), false);
    for (uint64_t id = 1; id <= 25; id++)
        engine_caller_join(h->engine, id, 0);
    harness_run(h, 4 * 3600);
    const sim_truth_t *truth = sim_carrier_truth(h->sim);
    assert_true(truth->live_answered > 1000);
    assert_true((double)truth->abandoned / (double)truth->live_answered <= 0.03);
    /* and it does dial ahead: more lines than a Power dialer would have */
    assert_true(engine_counts(h->engine)->dials > 25 * 4 * 80);
    harness_destroy(&h);
}

/* A restarted dialer inherits its window's abandons. Two of them, on the same calls, whose
 * windows hold as many live answers: one had abandoned 3.5% of them (over a 3% cap) and pays
 * the excess back by abandoning fewer of its own than the other, which had abandoned 1.5% and
 * may spend what it saved; both windows end under the cap. */
static void test_predictive_pays_back_an_abandon_history(void **state)
{
    const double history_live = 2000, over = 70, under = 30;
    pacing_predictive_options_t overspent = {.history_live = history_live, .history_abandoned = over};
    pacing_predictive_options_t saved = {.history_live = history_live, .history_abandoned = under};
    harness_t *paying =
        harness_new((const char *[]){"talk_mean=120", NULL}, DIAL_PREDICTIVE, pacing_predictive_new(&overspent), false);
    harness_t *spending =
        harness_new((const char *[]){"talk_mean=120", NULL}, DIAL_PREDICTIVE, pacing_predictive_new(&saved), false);
    for (uint64_t id = 1; id <= 25; id++) {
        engine_caller_join(paying->engine, id, 0);
        engine_caller_join(spending->engine, id, 0);
    }
    harness_run(paying, 3 * 3600);
    harness_run(spending, 3 * 3600);
    const sim_truth_t *p = sim_carrier_truth(paying->sim), *s = sim_carrier_truth(spending->sim);
    assert_true(p->live_answered > 1000 && s->live_answered > 1000);
    double paying_rate = (double)p->abandoned / (double)p->live_answered;
    double spending_rate = (double)s->abandoned / (double)s->live_answered;
    assert_true(paying_rate < spending_rate);
    assert_true((over + (double)p->abandoned) / (history_live + (double)p->live_answered) <= 0.03);
    assert_true((under + (double)s->abandoned) / (history_live + (double)s->live_answered) <= 0.03);
    harness_destroy(&paying);
    harness_destroy(&spending);
}

static void test_calls_per_second_cap(void **state)
{
    harness_t *h = harness_new((const char *[]){"cps=2", NULL}, DIAL_PREDICTIVE, pacing_predictive_new(NULL), false);
    for (uint64_t id = 1; id <= 60; id++)
        engine_caller_join(h->engine, id, 0);
    harness_run(h, 1800);
    /* over every one-second window starting at a dial, at most 2 more dials follow */
    int64_t times[MAX_EVENTS];
    int n = 0;
    for (int i = 0; i < h->n_events; i++)
        if (h->events[i].type == ENGINE_CALL_DIALING)
            times[n++] = h->events[i].at_us;
    assert_true(n > 100);
    for (int i = 0; i + 2 < n; i++)
        assert_true(times[i + 2] - times[i] >= S(1) - 1);
    harness_destroy(&h);
}

/* ---- a person's call controls ---- */

/* One caller (id 1), connected to a person who would talk for an hour, wrap-up by hand. */
static harness_t *s_connected(dial_mode_t mode)
{
    harness_t *h = harness_new((const char *[]){"p_human=1", "p_machine=0", "p_noans=0", "talk_mean=3600", "talk_cv=0", NULL}, mode,
                               NULL, false);
    h->auto_wrap = false;
    assert_int_equal(engine_caller_join(h->engine, 1, 0), 0);
    harness_run(h, 30);
    engine_caller_view_t view;
    assert_int_equal(engine_caller_view(h->engine, 1, &view), 0);
    assert_int_equal(view.state, ENGINE_CALLER_STATE_ON_CALL);
    assert_int_equal(view.call_id, 1);
    assert_true(view.bridged_at_us > 0 && view.number.number_id == 1);
    return h;
}

static engine_caller_state_t s_state(const harness_t *h)
{
    engine_caller_view_t view;
    assert_int_equal(engine_caller_view(h->engine, 1, &view), 0);
    return view.state;
}

static void test_a_caller_hangs_up_and_drops_a_message(void **state)
{
    harness_t *h = s_connected(DIAL_POWER);
    /* nothing that needs another state */
    assert_int_equal(engine_caller_leave_transfer(h->engine, 1, S(31)), -1);
    assert_int_equal(engine_caller_hang_up(h->engine, 2, S(31)), -1);
    assert_int_equal(engine_caller_hang_up(h->engine, 1, S(31)), 0);
    assert_int_equal(engine_caller_hang_up(h->engine, 1, S(31)), -1); /* already ending */
    harness_run(h, 32);
    assert_int_equal(s_state(h), ENGINE_CALLER_STATE_WRAP_UP);
    assert_int_equal(h->outcomes[OUTCOME_TALKED], 1);
    assert_int_equal(engine_caller_disposition(h->engine, 1, false, S(33)), 0);
    assert_int_equal(engine_caller_ready(h->engine, 1, S(33)), 0);
    harness_run(h, 60);
    assert_int_equal(s_state(h), ENGINE_CALLER_STATE_ON_CALL);
    /* a message dropped on the machine the caller hears: the call ends as voicemail */
    assert_int_equal(engine_caller_drop_message(h->engine, 1, NULL, S(61)), -1);
    assert_int_equal(engine_caller_drop_message(h->engine, 1, "message:1", S(61)), 0);
    harness_run(h, 61 + h->scenario.message_seconds + 1);
    assert_int_equal(h->outcomes[OUTCOME_VOICEMAIL], 1);
    assert_int_equal(s_state(h), ENGINE_CALLER_STATE_WRAP_UP);
    harness_destroy(&h);
}

static void test_transfers_hand_the_person_over(void **state)
{
    harness_t *h = s_connected(DIAL_POWER);
    /* cold: the caller is free at once; the call is over for us when the person's leg ends */
    assert_int_equal(engine_caller_transfer(h->engine, 1, "+12025550199", false, S(31)), 0);
    assert_int_equal(s_state(h), ENGINE_CALLER_STATE_WRAP_UP);
    assert_int_equal(h->outcomes[OUTCOME_TRANSFERRED], 0);
    assert_int_equal(engine_caller_ready(h->engine, 1, S(32)), 0);
    harness_run(h, 90);
    assert_int_equal(s_state(h), ENGINE_CALLER_STATE_ON_CALL);
    /* warm: a three-way call the caller stays on until they leave it */
    engine_caller_view_t view;
    assert_int_equal(engine_caller_transfer(h->engine, 1, "", true, S(91)), -1);
    assert_int_equal(engine_caller_transfer(h->engine, 1, "+12025550198", true, S(91)), 0);
    assert_int_equal(engine_caller_view(h->engine, 1, &view), 0);
    assert_true(view.three_way);
    assert_int_equal(engine_caller_transfer(h->engine, 1, "+12025550198", true, S(91)), -1);
    assert_int_equal(engine_caller_drop_message(h->engine, 1, "message:1", S(91)), -1);
    assert_int_equal(engine_caller_leave_transfer(h->engine, 1, S(95)), 0);
    assert_int_equal(s_state(h), ENGINE_CALLER_STATE_WRAP_UP);
    /* both people talk on to the end of their hour, then both calls end as transferred */
    harness_run(h, 2 * 3600);
    assert_int_equal(h->outcomes[OUTCOME_TRANSFERRED], 2);
    assert_int_equal(h->outcomes[OUTCOME_TALKED], 0);
    harness_destroy(&h);
}

static void test_a_caller_who_stops_mid_call_lets_the_person_finish(void **state)
{
    harness_t *h = s_connected(DIAL_POWER);
    assert_int_equal(engine_caller_finish(h->engine, 1, S(31)), 0);
    assert_int_equal(engine_caller_finish(h->engine, 1, S(31)), -1);
    harness_run(h, 600);
    engine_caller_view_t view;
    assert_int_equal(engine_caller_view(h->engine, 1, &view), 0);
    assert_true(view.leaving);
    assert_int_equal(h->outcomes[OUTCOME_TALKED], 0);
    assert_int_equal(find_event(h, ENGINE_CALLER_LEFT, 0, 0), -1);
    harness_run(h, 2 * 3600);
    assert_int_equal(h->outcomes[OUTCOME_TALKED], 1);
    assert_true(find_event(h, ENGINE_CALLER_LEFT, 0, 0) > find_event(h, ENGINE_CALL_ENDED, 1, 0));
    assert_int_equal(engine_caller_view(h->engine, 1, &view), -1);
    assert_int_equal(engine_counts(h->engine)->callers, 0);
    harness_destroy(&h);
}

/* ---- bad requests change nothing ---- */

static void test_bad_requests_are_refused(void **state)
{
    harness_t *h = harness_new(NULL, DIAL_POWER, NULL, false);
    assert_int_equal(engine_caller_join(h->engine, 1, 0), 0);
    engine_counts_t before = *engine_counts(h->engine);
    assert_int_equal(engine_caller_join(h->engine, 1, 0), -1);   /* duplicate */
    assert_int_equal(engine_caller_ready(h->engine, 1, 0), -1);  /* not in wrap-up */
    assert_int_equal(engine_caller_ready(h->engine, 99, 0), -1); /* unknown */
    assert_int_equal(engine_caller_leave(h->engine, 99, 0), -1);
    assert_int_equal(engine_preview_dial(h->engine, 1, 0), -1); /* not previewing */
    assert_int_equal(engine_caller_disposition(h->engine, 1, true, 0), -1);
    /* carrier events for calls that do not exist, or that make no sense now, are ignored */
    engine_carrier_event(h->engine, &(carrier_event_t){.call_id = 12345, .status = CARRIER_COMPLETED, .at_us = 0});
    engine_carrier_event(h->engine, &(carrier_event_t){.call_id = 1, .status = CARRIER_BRIDGED, .at_us = 0});
    engine_carrier_event(h->engine, &(carrier_event_t){.call_id = 1, .status = CARRIER_PLAYED, .at_us = 0});
    assert_memory_equal(&before, engine_counts(h->engine), sizeof before);
    harness_destroy(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timerq_orders_and_cancels),
        cmocka_unit_test(test_idmap_survives_churn),
        cmocka_unit_test(test_scenario_rejects_bad_input),
        cmocka_unit_test(test_person_answers_and_talks),
        cmocka_unit_test(test_unanswered_outcomes),
        cmocka_unit_test(test_machines_with_detection),
        cmocka_unit_test(test_lost_status_is_timed_out),
        cmocka_unit_test(test_abandon_within_the_hold_limit),
        cmocka_unit_test(test_longest_waiting_caller_is_served_first),
        cmocka_unit_test(test_refused_bridge_frees_the_caller),
        cmocka_unit_test(test_power_and_preview_never_abandon),
        cmocka_unit_test(test_preview_skip_returns_the_number),
        cmocka_unit_test(test_preview_number_blocked_meanwhile_is_withdrawn),
        cmocka_unit_test(test_predictive_stays_under_its_cap),
        cmocka_unit_test(test_predictive_pays_back_an_abandon_history),
        cmocka_unit_test(test_calls_per_second_cap),
        cmocka_unit_test(test_a_caller_hangs_up_and_drops_a_message),
        cmocka_unit_test(test_transfers_hand_the_person_over),
        cmocka_unit_test(test_a_caller_who_stops_mid_call_lets_the_person_finish),
        cmocka_unit_test(test_bad_requests_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
