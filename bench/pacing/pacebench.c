/*
 * pacebench: the pacing benchmark (bench/ section 1).
 *
 * Runs one campaign shift in virtual time for each policy and seed: the product's engine
 * (actors/dialer/engine.c) with the policy under test, the simulated carrier, and simulated
 * callers who wrap up and preview as the scenario says. Scores come from the simulation's
 * truth (who really answered, who was really abandoned), never from what the engine believes.
 *
 *   pacebench [--scenario FILE] [--set key=value ...] [--seeds N] --policy SPEC [--policy SPEC ...]
 *   pacebench --campaigns N [...]   capacity: N campaigns on one core, CPU and decision times
 *
 * Policies: preview, progressive (alias power), ratio:R, power:R, adapt:MAX:DIFF:DROP[:HARD|AVERAGE],
 * oracle:S, lookahead:S, impact, predictive[:TARGET], ceiling. Prints one JSON line per policy, pooled over
 * the seeds 0..N-1 (the same seeds for every policy: common random numbers).
 */
#include "actors/dialer/engine.h"
#include "actors/dialer/idmap.h"
#include "actors/dialer/rng.h"
#include "actors/dialer/sim_carrier.h"
#include "bench/pacing/policies.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define US_PER_S     1000000.0
#define MAX_POLICIES 128

typedef struct run_t run_t;

typedef struct {
    run_t *run;
    uint64_t id;
    timerq_timer_t *action; /* wrap-up end or preview decision */
    double pending_wrap;
    bool pending_person; /* the caller heard a person on the call they are taking */
    int64_t busy_since, ready_since, joined_at, left_at;
    bool busy, present;
} sim_caller_t;

struct run_t {
    scenario_t scenario;
    timerq_t *timers;
    sim_carrier_t *sim;
    engine_t *engine;
    int64_t end_us;
    rng_t caller_rng;
    sim_caller_t *callers;
    int64_t *free_at; /* truth for the lookahead reference, by caller id */
    bench_truth_t truth;
    bench_history_t history;
    size_t history_capacity;
    idmap_t *bridged_at; /* call id -> bridged time + 1 (as a pointer-sized integer) */
    uint64_t next_number;
    double busy_seconds, staffed_seconds;
    double *waits;
    size_t n_waits, waits_capacity;
    uint64_t *minute_live, *minute_abandoned;
    size_t n_minutes;
    timerq_timer_t *minute_timer, *logout_timer;
};

typedef struct {
    double talk_seconds, busy_seconds, staffed_seconds;
    uint64_t live, abandoned, amd_fp, dials, connected;
    double worst_hour;
    double *waits;
    size_t n_waits, waits_capacity;
    double threshold;
    uint64_t seen_claims, seen_abandoned; /* what the engine itself counted */
} totals_t;

static int64_t seconds(double s)
{
    return (int64_t)(s * US_PER_S);
}

static int append_double(double **array, size_t *n, size_t *capacity, double value)
{
    if (*n == *capacity) {
        size_t grown = *capacity ? *capacity * 2 : 1024;
        double *bigger = realloc(*array, grown * sizeof *bigger);
        if (!bigger)
            return -1;
        *array = bigger;
        *capacity = grown;
    }
    (*array)[(*n)++] = value;
    return 0;
}

/* ---- simulated callers ---- */

static void end_busy(run_t *run, sim_caller_t *caller, int64_t now)
{
    if (!caller->busy)
        return;
    int64_t to = now < run->end_us ? now : run->end_us;
    if (to > caller->busy_since)
        run->busy_seconds += (double)(to - caller->busy_since) / US_PER_S;
    caller->busy = false;
}

static void on_wrap_done(void *arg, int64_t now)
{
    sim_caller_t *caller = arg;
    caller->action = NULL;
    engine_caller_ready(caller->run->engine, caller->id, now);
}

static void on_preview_done(void *arg, int64_t now)
{
    sim_caller_t *caller = arg;
    caller->action = NULL;
    engine_preview_dial(caller->run->engine, caller->id, now);
}

static void on_engine_event(void *ctx, const engine_event_t *event)
{
    run_t *run = ctx;
    int64_t now = event->at_us;
    sim_caller_t *caller = event->caller_id && event->caller_id <= run->scenario.agents ? &run->callers[event->caller_id] : NULL;
    switch (event->type) {
    case ENGINE_CALLER_ON_CALL: {
        sim_bridge_truth_t truth;
        if (!caller || sim_carrier_bridge_truth(run->sim, event->call_id, &truth) < 0)
            break;
        caller->pending_wrap = truth.wrap_seconds;
        caller->pending_person = truth.kind == SIM_HUMAN;
        run->free_at[caller->id] = truth.ends_at_us + seconds(truth.wrap_seconds);
        /* straight from wrap-up to a call that was waiting: no wait, and busy throughout */
        double wait = caller->ready_since >= 0 ? (double)(now - caller->ready_since) / US_PER_S : 0;
        if (now < run->end_us)
            append_double(&run->waits, &run->n_waits, &run->waits_capacity, wait);
        end_busy(run, caller, now);
        caller->ready_since = -1;
        caller->busy = true;
        caller->busy_since = now;
        idmap_put(run->bridged_at, event->call_id, (void *)(intptr_t)(now + 1));
        break;
    }
    case ENGINE_CALLER_WRAP_UP:
        if (caller)
            engine_caller_disposition(run->engine, caller->id, caller->pending_person, now);
        if (caller)
            caller->action = timerq_add(run->timers, now + seconds(caller->pending_wrap), on_wrap_done, caller);
        break;
    case ENGINE_CALLER_READY:
        if (caller) {
            end_busy(run, caller, now);
            caller->ready_since = now;
            run->free_at[caller->id] = 0;
        }
        break;
    case ENGINE_CALLER_PREVIEW:
        if (caller) {
            end_busy(run, caller, now);
            double think = rng_lognormal(&run->caller_rng, run->scenario.preview_mean, run->scenario.preview_cv);
            caller->action = timerq_add(run->timers, now + seconds(think), on_preview_done, caller);
        }
        break;
    case ENGINE_CALLER_LEFT:
        if (caller) {
            end_busy(run, caller, now);
            timerq_cancel(run->timers, &caller->action);
            caller->present = false;
            caller->left_at = now;
        }
        break;
    case ENGINE_CALL_ENDED: {
        intptr_t bridged = (intptr_t)idmap_remove(run->bridged_at, event->call_id);
        double talk = bridged ? (double)(now - (bridged - 1)) / US_PER_S : 0;
        if (run->history.n_attempts == run->history_capacity) {
            size_t grown = run->history_capacity ? run->history_capacity * 2 : 4096;
            bench_attempt_t *bigger = realloc((void *)run->history.attempts, grown * sizeof *bigger);
            if (!bigger)
                break;
            run->history.attempts = bigger;
            run->history_capacity = grown;
        }
        ((bench_attempt_t *)run->history.attempts)[run->history.n_attempts++] =
            (bench_attempt_t){.ended_at_us = now, .conversation_s = talk};
        break;
    }
    default:
        break;
    }
}

/* In capacity mode: how long the engine takes to act on each answer (put it through, queue it
 * or abandon it), in microseconds of this process's CPU-bound wall time. */
static double *decision_us;
static size_t n_decisions, decisions_capacity;

static double monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The carrier is made before the engine it reports to, so its sink goes through the run. */
static void forward_to_engine(void *ctx, const carrier_event_t *event)
{
    run_t *run = ctx;
    bool measured = decisions_capacity && (event->status == CARRIER_ANSWERED || event->status == CARRIER_ANSWERED_HUMAN);
    double started = measured ? monotonic_us() : 0;
    engine_carrier_event(run->engine, event);
    if (measured)
        append_double(&decision_us, &n_decisions, &decisions_capacity, monotonic_us() - started);
}

static int next_number(void *ctx, int64_t now, engine_number_t *number)
{
    run_t *run = ctx;
    number->number_id = ++run->next_number;
    snprintf(number->phone, sizeof number->phone, "+1555%07llu", (unsigned long long)(run->next_number % 10000000));
    return 0;
}

static void on_minute(void *arg, int64_t now)
{
    run_t *run = arg;
    const sim_truth_t *truth = sim_carrier_truth(run->sim);
    run->minute_live[run->n_minutes] = truth->live_answered;
    run->minute_abandoned[run->n_minutes] = truth->abandoned;
    run->n_minutes++;
    run->minute_timer = timerq_add(run->timers, now + seconds(60), on_minute, run);
}

static void on_logout(void *arg, int64_t now)
{
    run_t *run = arg;
    run->logout_timer = NULL;
    uint32_t leaving = (uint32_t)floor(run->scenario.logout_fraction * run->scenario.agents);
    for (uint32_t id = 1; id <= leaving; id++)
        engine_caller_leave(run->engine, id, now);
}

/* Worst abandon rate over any 60-minute window with at least 20 live answers. */
static double worst_hour(const run_t *run)
{
    double worst = 0;
    for (size_t i = 60; i < run->n_minutes; i++) {
        uint64_t live = run->minute_live[i] - run->minute_live[i - 60];
        uint64_t abandoned = run->minute_abandoned[i] - run->minute_abandoned[i - 60];
        if (live >= 20 && (double)abandoned / (double)live > worst)
            worst = (double)abandoned / (double)live;
    }
    return worst;
}

/* ---- policies ---- */

typedef struct {
    char spec[64];
    dial_mode_t mode;
} policy_spec_t;

static int parse_policy(const char *text, policy_spec_t *spec)
{
    if (strlen(text) >= sizeof spec->spec)
        return -1;
    strcpy(spec->spec, text);
    if (strcmp(text, "preview") == 0)
        spec->mode = DIAL_PREVIEW;
    else if (strcmp(text, "progressive") == 0 || strcmp(text, "power") == 0)
        spec->mode = DIAL_POWER;
    else if (strncmp(text, "ratio:", 6) == 0 || strncmp(text, "power:", 6) == 0 || strncmp(text, "adapt", 5) == 0 ||
             strncmp(text, "oracle:", 7) == 0 || strncmp(text, "lookahead:", 10) == 0 || strcmp(text, "impact") == 0 ||
             strncmp(text, "predictive", 10) == 0 || strcmp(text, "ceiling") == 0)
        spec->mode = DIAL_PREDICTIVE;
    else
        return -1;
    return 0;
}

static pacing_policy_t *make_policy(const policy_spec_t *spec, run_t *run, uint64_t seed)
{
    const char *s = spec->spec;
    if (spec->mode != DIAL_PREDICTIVE)
        return NULL;
    if (strncmp(s, "ratio:", 6) == 0)
        return bench_ratio_new(atof(s + 6));
    if (strncmp(s, "power:", 6) == 0)
        return bench_lines_per_ready_new(atof(s + 6));
    if (strncmp(s, "oracle:", 7) == 0)
        return bench_oracle_new(atof(s + 7), &run->truth, true);
    if (strncmp(s, "lookahead:", 10) == 0)
        return bench_oracle_new(atof(s + 10), &run->truth, false);
    if (strcmp(s, "impact") == 0)
        return bench_impact_new(&run->history, seed);
    if (strncmp(s, "adapt", 5) == 0) {
        double max_level = 3.0, diff = 0.0, drop = 3.0;
        char mode[16] = "HARD";
        sscanf(s, "adapt:%lf:%lf:%lf:%15s", &max_level, &diff, &drop, mode);
        return bench_adapt_new(max_level, diff, drop, strcmp(mode, "AVERAGE") == 0);
    }
    pacing_predictive_options_t options = {0};
    if (s[10] == ':')
        options.target = atof(s + 11);
    return pacing_predictive_new(&options);
}

/* Sets up one campaign on a timer queue it shares with others (capacity mode) or owns alone. */
static int run_open(run_t *run, const scenario_t *scenario, const policy_spec_t *spec, uint64_t seed, timerq_t *timers)
{
    *run = (run_t){.scenario = *scenario, .timers = timers};
    run->scenario.seed = seed;
    run->end_us = seconds(scenario->hours * 3600.0);
    run->callers = calloc(scenario->agents + 1, sizeof *run->callers);
    run->free_at = calloc(scenario->agents + 1, sizeof *run->free_at);
    run->bridged_at = idmap_new();
    size_t minutes = (size_t)(scenario->hours * 60) + 2;
    run->minute_live = calloc(minutes, sizeof *run->minute_live);
    run->minute_abandoned = calloc(minutes, sizeof *run->minute_abandoned);
    run->truth = (bench_truth_t){.scenario = &run->scenario, .free_at_us = run->free_at};
    rng_seed(&run->caller_rng, seed, 0xca11e5);
    if (!run->callers || !run->free_at || !run->bridged_at || !run->minute_live || !run->minute_abandoned)
        return -1;
    run->sim = sim_carrier_new(&run->scenario, timers, 0, forward_to_engine, run);
    if (!run->sim)
        return -1;
    sim_carrier_set_horizon(run->sim, run->end_us);
    engine_config_t config;
    engine_config_defaults(&config);
    config.mode = spec->mode;
    config.from = "+15550000000";
    config.detect_machine = scenario->amd;
    config.machine_false_positive_rate = scenario->amd ? scenario->amd_fp : 0;
    config.voicemail_uri = scenario->amd ? "sim:voicemail" : NULL;
    config.abandon_uri = "sim:identification";
    config.ring_timeout_seconds = scenario->ring_timeout;
    config.grace_seconds = scenario->grace;
    config.max_lines_per_caller = scenario->max_lines_per_agent;
    config.calls_per_second = scenario->cps;
    engine_hooks_t hooks = {.next_number = next_number, .on_event = on_engine_event, .ctx = run};
    run->engine = engine_new(&config, sim_carrier_carrier(run->sim), timers, make_policy(spec, run, seed), &hooks, 1, 0);
    if (!run->engine)
        return -1;
    for (uint32_t id = 1; id <= scenario->agents; id++)
        run->callers[id] = (sim_caller_t){.run = run, .id = id, .ready_since = -1, .present = true};
    for (uint32_t id = 1; id <= scenario->agents; id++)
        engine_caller_join(run->engine, id, 0);
    run->minute_timer = timerq_add(timers, seconds(60), on_minute, run);
    if (scenario->logout_at_hours > 0 && scenario->logout_fraction > 0)
        run->logout_timer = timerq_add(timers, seconds(scenario->logout_at_hours * 3600.0), on_logout, run);
    return 0;
}

static void run_close(run_t *run)
{
    engine_destroy(&run->engine);
    sim_carrier_destroy(&run->sim);
    if (run->timers) {
        timerq_cancel(run->timers, &run->minute_timer);
        timerq_cancel(run->timers, &run->logout_timer);
        for (uint32_t id = 1; run->callers && id <= run->scenario.agents; id++)
            timerq_cancel(run->timers, &run->callers[id].action);
    }
    idmap_destroy(&run->bridged_at);
    free(run->callers);
    free(run->free_at);
    free(run->minute_live);
    free(run->minute_abandoned);
    free(run->waits);
    free((void *)run->history.attempts);
}

static void run_score(run_t *run, const policy_spec_t *spec, totals_t *totals)
{
    for (uint32_t id = 1; id <= run->scenario.agents; id++) {
        sim_caller_t *caller = &run->callers[id];
        end_busy(run, caller, run->end_us);
        int64_t until = caller->present ? run->end_us : caller->left_at;
        run->staffed_seconds += (double)until / US_PER_S;
    }
    const sim_truth_t *truth = sim_carrier_truth(run->sim);
    totals->talk_seconds += truth->live_talk_seconds;
    totals->busy_seconds += run->busy_seconds;
    totals->staffed_seconds += run->staffed_seconds;
    totals->live += truth->live_answered;
    totals->abandoned += truth->abandoned;
    totals->amd_fp += truth->amd_false_positives;
    totals->dials += truth->dials;
    totals->connected += truth->connected;
    double worst = worst_hour(run);
    if (worst > totals->worst_hour)
        totals->worst_hour = worst;
    for (size_t i = 0; i < run->n_waits; i++)
        append_double(&totals->waits, &totals->n_waits, &totals->waits_capacity, run->waits[i]);
    totals->seen_claims += engine_counts(run->engine)->claims;
    totals->seen_abandoned += engine_counts(run->engine)->abandoned;
    if (strncmp(spec->spec, "predictive", 10) == 0)
        totals->threshold += pacing_predictive_threshold(engine_policy(run->engine));
}

static int run_one(const scenario_t *scenario, const policy_spec_t *spec, uint64_t seed, totals_t *totals)
{
    timerq_t *timers = timerq_new();
    run_t run;
    int rc = -1;
    if (timers && run_open(&run, scenario, spec, seed, timers) == 0) {
        for (int64_t t; (t = timerq_next(timers)) <= run.end_us;)
            timerq_run_due(timers, t);
        run_score(&run, spec, totals);
        rc = 0;
    }
    if (timers)
        run_close(&run);
    timerq_destroy(&timers);
    return rc;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double percentile(double *values, size_t n, double p);

/* Capacity mode: many campaigns on one timer queue and one core, as one machine would run
 * them, timing the whole simulation and each answer's decision. The simulated carrier and
 * callers run in the same process and are counted too, so the figures are an upper bound of
 * what the engine itself costs. */
static int run_capacity(const scenario_t *scenario, const policy_spec_t *spec, int campaigns)
{
    timerq_t *timers = timerq_new();
    run_t *runs = calloc((size_t)campaigns, sizeof *runs);
    if (!timers || !runs || append_double(&decision_us, &n_decisions, &decisions_capacity, 0) < 0)
        return -1;
    n_decisions = 0;
    int rc = 0;
    for (int c = 0; c < campaigns && rc == 0; c++)
        rc = run_open(&runs[c], scenario, spec, (uint64_t)c, timers);
    double started = cpu_seconds();
    int64_t end = seconds(scenario->hours * 3600.0);
    for (int64_t t; rc == 0 && (t = timerq_next(timers)) <= end;)
        timerq_run_due(timers, t);
    double cpu = cpu_seconds() - started, virtual_seconds = scenario->hours * 3600.0;
    uint64_t dials = 0;
    for (int c = 0; c < campaigns; c++) {
        if (runs[c].sim)
            dials += sim_carrier_truth(runs[c].sim)->dials;
        run_close(&runs[c]);
    }
    if (rc == 0) {
        double callers = (double)campaigns * scenario->agents;
        printf("{\"policy\":\"%s\",\"campaigns\":%d,\"callers\":%.0f,\"virtual_seconds\":%.0f,\"cpu_seconds\":%.3f,"
               "\"core_share_in_real_time\":%.4f,\"callers_per_core\":%.0f,\"dials_per_cpu_second\":%.0f,"
               "\"answers\":%zu,\"answer_decision_p50_us\":%.1f,\"answer_decision_p99_us\":%.1f,\"answer_decision_max_us\":%.1f}\n",
               spec->spec, campaigns, callers, virtual_seconds, cpu, cpu / virtual_seconds, callers * virtual_seconds / cpu,
               (double)dials / cpu, n_decisions, percentile(decision_us, n_decisions, 0.5),
               percentile(decision_us, n_decisions, 0.99), percentile(decision_us, n_decisions, 1.0));
    }
    free(runs);
    timerq_destroy(&timers);
    free(decision_us);
    decision_us = NULL;
    n_decisions = decisions_capacity = 0;
    return rc;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double *values, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(values, n, sizeof *values, compare_doubles);
    size_t index = (size_t)floor(p * (double)(n - 1) + 0.5);
    return values[index];
}

/* Upper end of the 95% Wilson score interval of a rate: the figure the headline is held to. */
static double wilson_upper(uint64_t hits, uint64_t n)
{
    if (n == 0)
        return 0;
    double z = 1.96, p = (double)hits / (double)n, nn = (double)n;
    double centre = p + z * z / (2 * nn), spread = z * sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn));
    return (centre + spread) / (1 + z * z / nn);
}

static void print_result(const scenario_t *scenario, const policy_spec_t *spec, int seeds, totals_t *t)
{
    double agent_hours = t->staffed_seconds / 3600.0;
    printf("{\"policy\":\"%s\",\"agents\":%u,\"p_human\":%g,\"amd\":%s,\"hours\":%g,\"seeds\":%d,", spec->spec, scenario->agents,
           scenario->p_human, scenario->amd ? "true" : "false", scenario->hours, seeds);
    if (strcmp(spec->spec, "ceiling") == 0) {
        double ceiling = 60.0 * scenario->talk_mean / (scenario->talk_mean + scenario->wrap_mean);
        printf("\"live_talk_min_per_agent_hour\":%.2f,\"occupancy\":1,\"abandon_rate\":0,\"abandon_ub95\":0}\n", ceiling);
        return;
    }
    double abandon = t->live ? (double)t->abandoned / (double)t->live : 0;
    double excl = t->live ? (double)(t->abandoned - t->amd_fp) / (double)t->live : 0;
    printf("\"live_talk_min_per_agent_hour\":%.2f,\"occupancy\":%.4f,\"abandon_rate\":%.4f,\"abandon_ub95\":%.4f,"
           "\"abandon_rate_excl_amd_fp\":%.4f,\"worst_hour_abandon\":%.4f,\"wait_p50_s\":%.1f,\"wait_p95_s\":%.1f,"
           "\"dials_per_agent_hour\":%.1f,\"live_answers\":%llu,\"abandoned\":%llu",
           t->talk_seconds / 60.0 / agent_hours, t->busy_seconds / t->staffed_seconds, abandon, wilson_upper(t->abandoned, t->live),
           excl, t->worst_hour, percentile(t->waits, t->n_waits, 0.5), percentile(t->waits, t->n_waits, 0.95),
           (double)t->dials / agent_hours, (unsigned long long)t->live, (unsigned long long)t->abandoned);
    printf(",\"engine_abandon_rate\":%.4f", t->seen_claims ? (double)t->seen_abandoned / (double)t->seen_claims : 0);
    if (strncmp(spec->spec, "predictive", 10) == 0)
        printf(",\"final_threshold\":%.4f", t->threshold / seeds);
    printf("}\n");
}

static void usage(void)
{
    fprintf(stderr, "usage: pacebench [--scenario FILE] [--set key=value ...] [--seeds N | --campaigns N] --policy SPEC ...\n");
}

int main(int argc, char **argv)
{
    scenario_t scenario;
    scenario_defaults(&scenario);
    policy_spec_t specs[MAX_POLICIES];
    int n_specs = 0, seeds = 3, campaigns = 1;
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--scenario") == 0 && value) {
            if (scenario_load(&scenario, value, err, sizeof err) < 0) {
                fprintf(stderr, "pacebench: %s\n", err);
                return 2;
            }
        } else if (strcmp(arg, "--set") == 0 && value) {
            if (scenario_set(&scenario, value, err, sizeof err) < 0) {
                fprintf(stderr, "pacebench: %s\n", err);
                return 2;
            }
        } else if (strcmp(arg, "--seeds") == 0 && value) {
            seeds = atoi(value);
            if (seeds < 1 || seeds > 1000) {
                fprintf(stderr, "pacebench: --seeds must be 1..1000\n");
                return 2;
            }
        } else if (strcmp(arg, "--campaigns") == 0 && value) {
            campaigns = atoi(value);
            if (campaigns < 1 || campaigns > 10000) {
                fprintf(stderr, "pacebench: --campaigns must be 1..10000\n");
                return 2;
            }
        } else if (strcmp(arg, "--policy") == 0 && value) {
            if (n_specs == MAX_POLICIES || parse_policy(value, &specs[n_specs]) < 0) {
                fprintf(stderr, "pacebench: unknown policy \"%s\"\n", value);
                return 2;
            }
            n_specs++;
        } else {
            usage();
            return 2;
        }
        i++;
    }
    if (n_specs == 0 || scenario_check(&scenario, err, sizeof err) < 0) {
        if (n_specs)
            fprintf(stderr, "pacebench: %s\n", err);
        else
            usage();
        return 2;
    }
    for (int p = 0; p < n_specs && campaigns > 1; p++)
        if (strcmp(specs[p].spec, "ceiling") != 0 && run_capacity(&scenario, &specs[p], campaigns) < 0) {
            fprintf(stderr, "pacebench: out of memory\n");
            return 1;
        }
    for (int p = 0; p < n_specs && campaigns == 1; p++) {
        totals_t totals = {0};
        if (strcmp(specs[p].spec, "ceiling") != 0)
            for (int seed = 0; seed < seeds; seed++)
                if (run_one(&scenario, &specs[p], (uint64_t)seed, &totals) < 0) {
                    fprintf(stderr, "pacebench: out of memory\n");
                    return 1;
                }
        print_result(&scenario, &specs[p], seeds, &totals);
        free(totals.waits);
        fflush(stdout);
    }
    return 0;
}
