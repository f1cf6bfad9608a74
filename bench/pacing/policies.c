#include "bench/pacing/policies.h"

#include "actors/dialer/rng.h"

#include <math.h>
#include <stdlib.h>

#define US_PER_S 1000000.0

static void free_policy(pacing_policy_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

/* ---- fixed ratio (VICIdial RATIO) ---- */

typedef struct {
    pacing_policy_t base;
    double ratio;
} ratio_t;

static int ratio_lines(pacing_policy_t *base, const pacing_view_t *view, pacing_reason_t reason)
{
    const ratio_t *self = (const ratio_t *)base;
    int goal = (int)lround(self->ratio * (view->ready + view->busy));
    return goal - (int)(view->n_unresolved + view->waiting + view->busy);
}

static const pacing_ops_t ratio_ops = {.name = "ratio", .lines = ratio_lines, .destroy = free_policy};

pacing_policy_t *bench_ratio_new(double ratio)
{
    ratio_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base.ops = &ratio_ops;
    self->ratio = ratio;
    return &self->base;
}

/* ---- lines per ready caller (Five9 POWER callsAgentRatio) ---- */

static int per_ready_lines(pacing_policy_t *base, const pacing_view_t *view, pacing_reason_t reason)
{
    const ratio_t *self = (const ratio_t *)base;
    return (int)lround(self->ratio * view->ready) - (int)(view->n_unresolved + view->waiting);
}

static const pacing_ops_t per_ready_ops = {.name = "power-ratio", .lines = per_ready_lines, .destroy = free_policy};

pacing_policy_t *bench_lines_per_ready_new(double ratio)
{
    ratio_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base.ops = &per_ready_ops;
    self->ratio = ratio;
    return &self->base;
}

/* ---- VICIdial ADAPT replica ---- */

#define ADAPT_SAMPLES 15

typedef struct {
    pacing_policy_t base;
    double max_level, diff_target, drop_percent;
    bool average;
    double level;
    double ready[ADAPT_SAMPLES], waiting[ADAPT_SAMPLES], total[ADAPT_SAMPLES];
    int n_samples, next_sample_slot;
    int64_t next_sample_us, next_adjust_us, next_loop_us;
    uint64_t dials_seen;
} adapt_t;

static void adapt_sample(adapt_t *self, const pacing_view_t *view)
{
    /* AST_VDadapt.pl samples every second and keeps the last 15 samples */
    while (view->now_us >= self->next_sample_us) {
        int slot = self->next_sample_slot;
        self->ready[slot] = view->ready;
        self->waiting[slot] = view->waiting;
        self->total[slot] = view->n_callers;
        self->next_sample_slot = (slot + 1) % ADAPT_SAMPLES;
        if (self->n_samples < ADAPT_SAMPLES)
            self->n_samples++;
        self->next_sample_us += (int64_t)US_PER_S;
    }
    /* every 15 s: level *= 1 + (avg ready - avg waiting + target) / avg agents */
    if (view->now_us < self->next_adjust_us || self->n_samples == 0)
        return;
    self->next_adjust_us += (int64_t)(15 * US_PER_S);
    double r = 0, w = 0, t = 0;
    for (int i = 0; i < self->n_samples; i++) {
        r += self->ready[i];
        w += self->waiting[i];
        t += self->total[i];
    }
    r /= self->n_samples;
    w /= self->n_samples;
    t /= self->n_samples;
    double level = self->level * (1.0 + (t > 0 ? (r - w + self->diff_target) / t : 0));
    if (level > self->max_level)
        level = self->max_level;
    /* the drop rule, over the whole run ("today"), once more than 50 calls were placed */
    uint64_t claims = pacing_stats_claims(view->stats), drops = pacing_stats_abandons(view->stats);
    double dials = pacing_stats_dial_weight(view->stats);
    if (dials > 50 && claims > 0 && 100.0 * (double)drops / (double)claims > self->drop_percent)
        level = self->average ? level / 2.0 : 1.0;
    self->level = level < 1.0 ? 1.0 : level;
}

static int adapt_lines(pacing_policy_t *base, const pacing_view_t *view, pacing_reason_t reason)
{
    adapt_t *self = (adapt_t *)base;
    adapt_sample(self, view);
    /* AST_VDauto_dial.pl places calls every 2.5 s */
    if (reason == PACING_TICK) {
        if (view->now_us < self->next_loop_us)
            return 0;
        self->next_loop_us = view->now_us + (int64_t)(2.5 * US_PER_S);
    }
    int goal = (int)lround(self->level * (view->ready + view->busy));
    return goal - (int)(view->n_unresolved + view->waiting + view->busy);
}

static const pacing_ops_t adapt_ops = {.name = "adapt", .lines = adapt_lines, .destroy = free_policy};

pacing_policy_t *bench_adapt_new(double max_level, double dl_diff_target, double drop_percent, bool average)
{
    adapt_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base.ops = &adapt_ops;
    self->max_level = max_level;
    self->diff_target = dl_diff_target;
    self->drop_percent = drop_percent;
    self->average = average;
    self->level = 1.0;
    self->next_adjust_us = (int64_t)(15 * US_PER_S);
    return &self->base;
}

/* ---- the lookahead reference ---- */

typedef struct {
    pacing_policy_t base;
    double s;
    const bench_truth_t *truth;
    bool finish_times;      /* knows when each caller will be free; else only what the dialer learned */
    double mu[3], sigma[3]; /* log-normal parameters: human ring, machine ring, failure */
} oracle_t;

static void lognormal_params(double mean, double cv, double *mu, double *sigma)
{
    double s2 = log(1.0 + cv * cv);
    *mu = log(mean) - s2 / 2.0;
    *sigma = sqrt(s2);
}

static double lognormal_survival(double x, double mu, double sigma)
{
    if (x <= 0)
        return 1.0;
    if (sigma <= 0)
        return x < exp(mu) ? 1.0 : 0.0;
    return 0.5 * erfc((log(x) - mu) / sigma / M_SQRT2);
}

/* P(a dial still ringing after `elapsed` will need a caller), from the true parameters. */
static double oracle_claim_given_ringing(const oracle_t *self, double elapsed, double p_human)
{
    const scenario_t *s = self->truth->scenario;
    double sh = lognormal_survival(elapsed, self->mu[0], self->sigma[0]);
    double sm = lognormal_survival(elapsed, self->mu[1], self->sigma[1]);
    double sf = lognormal_survival(elapsed, self->mu[2], self->sigma[2]);
    double sn = elapsed < s->ring_timeout ? 1.0 : 0.0;
    double pf = 1.0 - p_human - s->p_machine - s->p_noans;
    double ph = p_human * sh, pm = s->p_machine * sm;
    double den = ph + pm + s->p_noans * sn + pf * sf;
    if (den <= 0)
        return 0;
    double wh = s->amd ? 1.0 - s->amd_fp : 1.0, wm = s->amd ? s->amd_fn : 1.0;
    return (wh * ph + wm * pm) / den;
}

static int oracle_lines(pacing_policy_t *base, const pacing_view_t *view, pacing_reason_t reason)
{
    const oracle_t *self = (const oracle_t *)base;
    const scenario_t *s = self->truth->scenario;
    double tau = s->ring_h_mean;
    int64_t horizon = view->now_us + (int64_t)(tau * US_PER_S);
    /* Without finish times, a busy caller counts as the chance that the learned talk and wrap-up
     * times free them within the horizon, given how long they have been at it. */
    int steps = (int)ceil(tau) + 1;
    double free_by = 0, row[64];
    if (steps > 64)
        steps = 64;
    for (uint32_t i = 0; i < view->n_callers; i++) {
        const pacing_caller_t *caller = &view->callers[i];
        bool busy = caller->state == PACING_CALLER_ON_CALL || caller->state == PACING_CALLER_WRAP_UP;
        if (caller->state == PACING_CALLER_READY)
            free_by += 1;
        else if (busy && self->finish_times)
            free_by += self->truth->free_at_us[caller->caller_id] <= horizon;
        else if (busy) {
            double elapsed = (double)(view->now_us - caller->since_us) / US_PER_S;
            if (caller->state == PACING_CALLER_ON_CALL)
                pacing_stats_free_from_talk_row(view->stats, elapsed, steps, row);
            else
                pacing_stats_free_from_wrap_row(view->stats, elapsed, steps, row);
            free_by += row[steps - 1];
        }
    }
    /* the oracle knows the live rate even after it drifts */
    double p_human = scenario_p_human_at(s, (double)view->now_us / 3600e6);
    double expected = view->waiting;
    for (uint32_t j = 0; j < view->n_unresolved; j++)
        expected += oracle_claim_given_ringing(self, (double)(view->now_us - view->dialed_at_us[j]) / US_PER_S, p_human);
    double fresh = oracle_claim_given_ringing(self, 0, p_human);
    if (fresh <= 0)
        return 0;
    return (int)floor((self->s * free_by - expected) / fresh);
}

static const pacing_ops_t oracle_ops = {.name = "oracle", .lines = oracle_lines, .destroy = free_policy};

pacing_policy_t *bench_oracle_new(double s, const bench_truth_t *truth, bool finish_times)
{
    oracle_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base.ops = &oracle_ops;
    self->s = s;
    self->truth = truth;
    self->finish_times = finish_times;
    const scenario_t *sc = truth->scenario;
    lognormal_params(sc->ring_h_mean, sc->ring_h_cv, &self->mu[0], &self->sigma[0]);
    lognormal_params(sc->ring_m_mean, sc->ring_m_cv, &self->mu[1], &self->sigma[1]);
    lognormal_params(sc->fail_mean, sc->fail_cv, &self->mu[2], &self->sigma[2]);
    return &self->base;
}

/* ---- the original Impact Dialing formula ---- */

#define IMPACT_LOOKBACK_S   (30 * 60)
#define IMPACT_SIM_TICKS    240
#define IMPACT_INCREMENT    6
#define IMPACT_WRAP_S       5
#define IMPACT_LIMIT        4.0 /* TwilioLimit: most lines per available caller */
#define IMPACT_ACCEPTABLE   0.03
#define IMPACT_MAX_SIM_LINE 4096

typedef struct {
    pacing_policy_t base;
    const bench_history_t *history;
    rng_t rng;
    double best_dials;
    int64_t next_sim_us;
    int sim_on_call[4096], sim_wrap[4096];
    int line_ring[IMPACT_MAX_SIM_LINE];
    double line_talk[IMPACT_MAX_SIM_LINE];
} impact_t;

/* simulated_values.rb: replay recent attempts through simulated callers for six dial factors
 * and keep the one with the best utilisation whose simulated abandon rate is acceptable. */
static void impact_simulate(impact_t *self, const pacing_view_t *view)
{
    const bench_history_t *h = self->history;
    int64_t cutoff = view->now_us - (int64_t)(IMPACT_LOOKBACK_S * US_PER_S);
    size_t first = h->n_attempts;
    while (first > 0 && h->attempts[first - 1].ended_at_us >= cutoff)
        first--;
    size_t n = h->n_attempts - first, answered = 0;
    for (size_t i = first; i < h->n_attempts; i++)
        answered += h->attempts[i].conversation_s > 0;
    self->best_dials = 1.0;
    int callers = (int)view->n_callers;
    if (callers > 4096)
        callers = 4096;
    if (view->busy < 5 || n < 50 || answered == 0)
        return;
    double answer_rate = (double)n / (double)answered; /* dials per answer */
    double best_utilisation = -1;
    for (int i = 1; i <= IMPACT_INCREMENT; i++) {
        double dials = answer_rate * i / IMPACT_INCREMENT;
        if (dials < 1)
            dials = 1;
        int lines = 0;
        long on_hold_time = 0, on_call_time = 0, sim_answered = 0, sim_abandoned = 0;
        for (int c = 0; c < callers; c++)
            self->sim_on_call[c] = self->sim_wrap[c] = 0;
        for (int tick = 0; tick < IMPACT_SIM_TICKS; tick++) {
            int on_hold = 0;
            for (int c = 0; c < callers; c++) {
                if (self->sim_on_call[c] > 0) {
                    on_call_time++;
                    if (--self->sim_on_call[c] == 0)
                        self->sim_wrap[c] = IMPACT_WRAP_S;
                } else if (self->sim_wrap[c] > 0)
                    self->sim_wrap[c]--;
                else {
                    on_hold++;
                    on_hold_time++;
                }
            }
            for (int l = 0; l < lines;) {
                if (--self->line_ring[l] > 0) {
                    l++;
                    continue;
                }
                if (self->line_talk[l] > 0) {
                    sim_answered++;
                    int taken = -1;
                    for (int c = 0; c < callers && taken < 0; c++)
                        if (self->sim_on_call[c] == 0 && self->sim_wrap[c] == 0)
                            taken = c;
                    if (taken >= 0)
                        self->sim_on_call[taken] = (int)ceil(self->line_talk[l]);
                    else
                        sim_abandoned++;
                }
                self->line_ring[l] = self->line_ring[lines - 1];
                self->line_talk[l] = self->line_talk[lines - 1];
                lines--;
            }
            int to_dial = (int)floor(on_hold * dials) - lines;
            for (int k = 0; k < to_dial && lines < IMPACT_MAX_SIM_LINE; k++) {
                const bench_attempt_t *a = &h->attempts[first + (size_t)(rng_uniform(&self->rng) * (double)n)];
                self->line_talk[lines] = a->conversation_s;
                self->line_ring[lines] = a->conversation_s > 0 ? 10 : 15;
                lines++;
            }
        }
        double utilisation = on_call_time + on_hold_time > 0 ? (double)on_call_time / (double)(on_call_time + on_hold_time) : 0;
        bool acceptable = sim_answered == 0 || (double)sim_abandoned / (double)sim_answered < IMPACT_ACCEPTABLE;
        if (acceptable && utilisation > best_utilisation) {
            best_utilisation = utilisation;
            self->best_dials = dials > IMPACT_LIMIT ? IMPACT_LIMIT : dials;
        }
    }
}

static int impact_lines(pacing_policy_t *base, const pacing_view_t *view, pacing_reason_t reason)
{
    impact_t *self = (impact_t *)base;
    if (view->now_us >= self->next_sim_us) {
        impact_simulate(self, view);
        self->next_sim_us = view->now_us + (int64_t)(60 * US_PER_S);
    }
    const bench_history_t *h = self->history;
    double factor = self->best_dials;
    bool recent = h->n_attempts > 0 && h->attempts[h->n_attempts - 1].ended_at_us >= view->now_us - (int64_t)(600 * US_PER_S);
    uint64_t claims = pacing_stats_claims(view->stats), abandons = pacing_stats_abandons(view->stats);
    if (!recent)
        factor = 1.0;
    else if (claims > 0 && (double)abandons / (double)claims > IMPACT_ACCEPTABLE)
        factor = 0.75 * factor < 1.0 ? 1.0 : 0.75 * factor;
    int available = (int)view->ready, deductibles = (int)(view->n_unresolved + view->waiting);
    int n = (int)(factor * available - deductibles);
    if (n > IMPACT_LIMIT * available)
        n = available - deductibles;
    return n;
}

static const pacing_ops_t impact_ops = {.name = "impact", .lines = impact_lines, .destroy = free_policy};

pacing_policy_t *bench_impact_new(const bench_history_t *history, uint64_t seed)
{
    impact_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base.ops = &impact_ops;
    self->history = history;
    self->best_dials = 1.0;
    rng_seed(&self->rng, seed, 7);
    return &self->base;
}
