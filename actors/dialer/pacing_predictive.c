#include "actors/dialer/pacing.h"

#include <math.h>
#include <stdlib.h>

/*
 * The predictive engine.
 *
 * Each decision projects, second by second over the next horizon, the supply of callers (those
 * on hold, plus every busy caller's probability of being free by then, from the learned talk
 * and wrap-up distributions conditioned on how long they have been at it) and the demand
 * (answered calls waiting, plus every unresolved dial's probability of turning into a call
 * needing a caller by then, conditioned on how long it has rung). Both are sums of independent
 * Bernoulli variables, approximated as normal.
 *
 * A new dial is placed while its marginal abandon probability stays under a threshold lambda:
 * the probability that, at the moment its claim would arrive or at any later moment of the
 * horizon, claims outnumber callers (then this claim, or one it displaces, is abandoned). This
 * is the Lagrangian form of "maximise talk time subject to an abandon rate": a dial is worth
 * placing if its expected cost in abandons is below the price lambda, and lambda is the one
 * number feedback adjusts. It adapts by stochastic approximation: every claim put through nudges
 * log(lambda) up by eta*target, every abandon pulls it down by eta*(1 - target), each weighted
 * by the probability that a person answered, so it settles where the abandon rate of live
 * answers equals the target whatever the model's biases.
 *
 * The target follows a budget: the campaign may end its window at the cap minus a margin that
 * shrinks as live answers accumulate (1.645 standard errors of a rate measured on that many
 * answers, so the realised rate is under the cap with 95% confidence), and the target is the
 * rate that lands it there. With little data the dialer keeps well under the cap; what it saves
 * then, it may spend later. Until it has seen enough dials to estimate answer rates at all, it dials as
 * Power does.
 *
 * Without machine detection at the carrier, it screens answers (pacing_ops_t.screen): one that
 * rang as long as machines do is held for its greeting and ended if none comes in time, instead
 * of taking a caller for a machine's handle time. Those never become claims, so the projection
 * counts only answers that need a caller, and each adds the chance that it was a person to the
 * abandons that steer lambda.
 */

#define HORIZON_DEFAULT_S 40.0
#define MAX_STEPS         128
#define WARMUP_DIALS      30.0
#define TALKS_MATURE      6.0
#define LAMBDA_INITIAL    0.08
#define LAMBDA_MIN        1e-4
#define LAMBDA_MAX        0.9
#define ETA               0.1
#define MARGIN_Z          1.645
#define MARGIN_MIN_CLAIMS 150.0
#define BUDGET_STRETCH    300.0
#define VARIANCE_FLOOR    0.05

typedef struct {
    pacing_policy_t base;
    pacing_predictive_options_t options;
    double log_lambda;
    double cap;                        /* the campaign's cap, as last seen in a view */
    double live_claims, live_abandons; /* estimated live answers, and abandoned ones, so far */
    double supply_mean[MAX_STEPS], supply_var[MAX_STEPS], supply_skew[MAX_STEPS];
    double demand_mean[MAX_STEPS], demand_var[MAX_STEPS], demand_skew[MAX_STEPS];
    double fresh[MAX_STEPS]; /* P(a fresh dial has claimed by step k) */
    double shortfall[MAX_STEPS];
    double machine_share; /* of claims, from callers' dispositions */
    int returning_after;  /* steps until a machine's caller is free again */
} predictive_t;

/* The abandon rate the window may end at, with `n` live answers in it: the cap less 1.645
 * standard errors, so the realised rate is under the cap with 95% confidence. */
static double allowed_rate(double cap, double n)
{
    if (n < MARGIN_MIN_CLAIMS)
        n = MARGIN_MIN_CLAIMS;
    double allowed = cap - MARGIN_Z * sqrt(cap * (1.0 - cap) / n);
    return allowed > cap * 0.1 ? allowed : cap * 0.1;
}

/* The rate to aim at from now on: the one that, held over the next stretch of answers, lands
 * the campaign exactly on its allowed rate. Abandons saved while data was scarce (when the
 * allowed rate was low) are spent later instead of being lost; abandons over budget are
 * paid back. Never above the cap itself, never below a tenth of it. The stretch is as long as
 * the history (at least BUDGET_STRETCH answers): a shorter one makes the target chase every
 * chance run of abandons, and a target that swings spends the same abandons for less talk
 * than a steady one (bench/pacing: 0.4-0.9% more talk at every team size with n rather than n/4). */
static double target_rate(const predictive_t *self, double cap)
{
    if (self->options.target > 0)
        return self->options.target;
    double n = self->live_claims, stretch = n > BUDGET_STRETCH ? n : BUDGET_STRETCH;
    double target = (allowed_rate(cap, n + stretch) * (n + stretch) - self->live_abandons) / stretch;
    return target > cap ? cap : target < cap * 0.1 ? cap * 0.1 : target;
}

static double normal_cdf(double x)
{
    return 0.5 * erfc(-x / M_SQRT2);
}

/* Adds independent Bernoulli variables: mean, variance and third cumulant. */
/* P(X <= x) for a zero-mean sum with the given variance and third cumulant: the normal law with
 * Edgeworth's first correction, which matters in the tail where decisions are made and where
 * sums of a few dozen lopsided Bernoulli variables are far from symmetric. */
static double lower_tail(double x, double var, double skew)
{
    double sd = sqrt(var), z = x / sd, gamma = skew / (var * sd);
    double p = normal_cdf(z) - gamma / 6.0 * (z * z - 1.0) * exp(-z * z / 2.0) / sqrt(2.0 * M_PI);
    return p < 0 ? 0 : p > 1 ? 1 : p;
}

static void add_row(double *mean, double *var, double *skew, const double *row, int n)
{
    for (int k = 0; k < n; k++) {
        double p = row[k];
        mean[k] += p;
        var[k] += p * (1.0 - p);
        skew[k] += p * (1.0 - p) * (1.0 - 2.0 * p);
    }
}

static void project(predictive_t *self, const pacing_view_t *view, int steps, int grace_steps)
{
    const pacing_stats_t *stats = view->stats;
    int supply_steps = steps + grace_steps;
    double row[MAX_STEPS];
    for (int k = 0; k < supply_steps; k++) {
        self->supply_mean[k] = 0;
        self->supply_var[k] = 0;
        self->supply_skew[k] = 0;
    }
    /* Talk times are learned from calls that ended, and in a dialer's first minutes the calls
     * that have ended are the short ones (machines, hang-ups): every caller on a call then looked
     * due back within seconds, and the engine dialed two lines per caller and abandoned a third
     * of the people it reached (bench/pacing, 100 callers, at every start and restart) before
     * paying for it with an hour of timid dialing. Until TALKS_MATURE times as many calls have
     * ended as are going on, the learned times say little of the long ones, and busy callers are
     * counted on as Power counts on them: not at all. */
    uint32_t talking = 0;
    for (uint32_t i = 0; i < view->n_callers; i++)
        talking += view->callers[i].state == PACING_CALLER_ON_CALL;
    bool times_known = (double)pacing_stats_talks(stats) >= TALKS_MATURE * talking;
    for (uint32_t i = 0; i < view->n_callers; i++) {
        const pacing_caller_t *caller = &view->callers[i];
        double elapsed = (double)(view->now_us - caller->since_us) / 1e6;
        if (!times_known && caller->state != PACING_CALLER_READY)
            continue;
        switch (caller->state) {
        case PACING_CALLER_READY:
            for (int k = 0; k < supply_steps; k++)
                self->supply_mean[k] += 1.0;
            break;
        case PACING_CALLER_ON_CALL:
            pacing_stats_free_from_talk_row(stats, elapsed, supply_steps, row);
            add_row(self->supply_mean, self->supply_var, self->supply_skew, row, supply_steps);
            break;
        case PACING_CALLER_WRAP_UP:
            pacing_stats_free_from_wrap_row(stats, elapsed, supply_steps, row);
            add_row(self->supply_mean, self->supply_var, self->supply_skew, row, supply_steps);
            break;
        case PACING_CALLER_PREVIEW:
            break;
        }
    }
    for (int k = 0; k < steps; k++) {
        self->demand_mean[k] = view->waiting;
        self->demand_var[k] = 0;
        self->demand_skew[k] = 0;
    }
    pacing_stats_claim_row(stats, 0, steps, self->fresh);
    for (uint32_t j = 0; j < view->n_unresolved; j++) {
        pacing_stats_claim_row(stats, (double)(view->now_us - view->dialed_at_us[j]) / 1e6, steps, row);
        add_row(self->demand_mean, self->demand_var, self->demand_skew, row, steps);
    }
}

/* Marginal abandon probability of one more dial when `extra` new dials are already planned.
 *
 * A claim that turns out to be a machine hands its caller back after a short handle time, so
 * claims made `returning_after` steps before a moment add a machine share of supply back. */
static double marginal_abandon(predictive_t *self, int steps, int grace_steps, int extra)
{
    for (int k = 0; k < steps; k++) {
        double q = self->fresh[k];
        int at = k + grace_steps, earlier = at - self->returning_after;
        double back = 0, back_var = 0;
        if (self->machine_share > 0 && earlier >= 0 && earlier < steps) {
            double claims = self->demand_mean[earlier] + extra * self->fresh[earlier];
            back = self->machine_share * claims;
            back_var = back * (1.0 - self->machine_share);
        }
        double slack = self->supply_mean[at] + back - self->demand_mean[k] - extra * q;
        double var = self->supply_var[at] + back_var + self->demand_var[k] + extra * q * (1.0 - q) + VARIANCE_FLOOR;
        double skew = self->supply_skew[at] - self->demand_skew[k] - extra * q * (1.0 - q) * (1.0 - 2.0 * q);
        self->shortfall[k] = lower_tail(0.5 - slack, var, skew);
    }
    /* A claim arriving at k suffers if the campaign is short then or at any later step. */
    double worst = 0, expected = 0;
    for (int k = steps - 1; k >= 1; k--) {
        if (self->shortfall[k] > worst)
            worst = self->shortfall[k];
        expected += (self->fresh[k] - self->fresh[k - 1]) * worst;
    }
    double claim = self->fresh[steps - 1];
    return claim > 0 ? expected / claim : 1.0;
}

static int predictive_lines(pacing_policy_t *base, const pacing_view_t *view, pacing_reason_t reason)
{
    predictive_t *self = (predictive_t *)base;
    self->cap = view->abandon_cap;
    int power = (int)view->ready - (int)view->n_unresolved - (int)view->waiting;
    if (pacing_stats_dial_weight(view->stats) < WARMUP_DIALS || pacing_stats_claim_probability(view->stats) <= 0)
        return power;

    int steps = (int)ceil(self->options.horizon_seconds) + 1;
    int grace_steps = (int)floor(pacing_stats_mean_hold(view->stats, view->grace_seconds));
    if (grace_steps < 0)
        grace_steps = 0;
    if (steps + grace_steps > MAX_STEPS)
        steps = MAX_STEPS - grace_steps;
    project(self, view, steps, grace_steps);
    self->machine_share = 1.0 - pacing_stats_person_share(view->stats);
    self->returning_after = (int)ceil(pacing_stats_mean_machine_handle(view->stats, MAX_STEPS));

    double lambda = exp(self->log_lambda);
    int room = (int)view->max_lines - (int)view->n_unresolved;
    int n = 0;
    while (n < room && marginal_abandon(self, steps, grace_steps, n) <= lambda)
        n++;
    return n > power ? n : power;
}

/* Weighting each step by the probability that a person answered makes the fixed point the rate
 * of abandoned people among people, the quantity the rule caps, rather than among all answers. */
static void predictive_claim_outcome(pacing_policy_t *base, int64_t now_us, bool abandoned, double live)
{
    predictive_t *self = (predictive_t *)base;
    double target = target_rate(self, self->cap);
    self->live_claims += live;
    if (abandoned)
        self->live_abandons += live;
    self->log_lambda += abandoned ? -ETA * live * (1.0 - target) : ETA * live * target;
    if (self->log_lambda < log(LAMBDA_MIN))
        self->log_lambda = log(LAMBDA_MIN);
    if (self->log_lambda > log(LAMBDA_MAX))
        self->log_lambda = log(LAMBDA_MAX);
}

/* Screens an answer when, should it not be greeted in time, a person would be behind it less
 * often than twice the abandon rate aimed at: ending those costs few abandons and spares callers
 * the machines (bench/pacing, 10 to 100 callers: talk is flat from 2 to 3 times the target and
 * lower at 1 or 1.5 times, where more machines reach callers). Tied to the target, screening
 * spends less of a budget that is tight. */
static bool predictive_screen(pacing_policy_t *base, double person)
{
    const predictive_t *self = (const predictive_t *)base;
    return person < 2.0 * target_rate(self, self->cap);
}

static void predictive_destroy(pacing_policy_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

static const pacing_ops_t predictive_ops = {
    .name = "predictive",
    .lines = predictive_lines,
    .claim_outcome = predictive_claim_outcome,
    .screen = predictive_screen,
    .destroy = predictive_destroy,
};

pacing_policy_t *pacing_predictive_new(const pacing_predictive_options_t *options)
{
    predictive_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base.ops = &predictive_ops;
    if (options)
        self->options = *options;
    if (self->options.horizon_seconds <= 0)
        self->options.horizon_seconds = HORIZON_DEFAULT_S;
    self->log_lambda = log(LAMBDA_INITIAL);
    self->cap = 0.03;
    if (self->options.history_live > 0 && self->options.history_abandoned >= 0 &&
        self->options.history_abandoned <= self->options.history_live) {
        self->live_claims = self->options.history_live;
        self->live_abandons = self->options.history_abandoned;
    }
    return &self->base;
}

double pacing_predictive_threshold(const pacing_policy_t *policy)
{
    return exp(((const predictive_t *)policy)->log_lambda);
}
