#include "actors/dialer/pacing_stats.h"

#include <math.h>
#include <stdlib.h>

/* Half-lives, in samples. Dial outcomes move fastest (a new list, a new hour); talk and wrap
 * times are properties of the script and the people and drift slowly. */
#define DIAL_HALF_LIFE 400.0
#define TIME_HALF_LIFE 300.0

/* Below this much (decayed) evidence a distribution is not trusted and the caller-freeing
 * estimates answer 0: pacing then assumes nobody frees up, which is what Power dialing does. */
#define MIN_TIME_WEIGHT 20.0

/* Answers by ring time: one-second bins up to a minute, forgotten over about 2,000 answers
 * (about an hour of 25 callers: a bin holds a hundred or so). Below ANSWER_MIN answers, or
 * PERSON_MIN people put through at answer, nothing is inferred from ring times. */
#define ANSWER_BINS      64
#define ANSWER_HALF_LIFE 2000.0
#define ANSWER_MIN       100.0
#define PERSON_MIN       50.0

typedef struct {
    int bins;
    double bin_s;
    double growth; /* weight multiplier per sample: forgetting without touching every bin */
    double weight; /* weight of the next sample */
    double total, sum;
    double *mass;
    double *cumulative; /* cumulative[i] = mass of bins below i, rebuilt when dirty */
    bool dirty;
} hist_t;

struct pacing_stats_t {
    /* Dial to resolution, split by whether a caller was needed. The two forget together, on
     * one clock (dial_weight), so their masses stay comparable. */
    hist_t claim, other;
    double dial_weight, dial_growth;
    hist_t talk, wrap;
    double greeting_sum, greeting_weight, hold_sum, hold_weight, machine_sum, machine_weight;
    double dispositions, persons, ungreeted, ungreeted_persons;
    double answered[ANSWER_BINS], greeted[ANSWER_BINS], answered_all, greeted_all, answer_weight;
    double people_at_answer, late_greeters; /* pacing_stats_person_greeting */
    uint64_t claims, abandons, talks;
};

static int hist_init(hist_t *h, int bins, double bin_s, double half_life)
{
    *h = (hist_t){.bins = bins, .bin_s = bin_s, .growth = pow(2.0, 1.0 / half_life), .weight = 1.0, .dirty = true};
    h->mass = calloc((size_t)bins, sizeof(double));
    h->cumulative = calloc((size_t)bins + 1, sizeof(double));
    return h->mass && h->cumulative ? 0 : -1;
}

static void hist_free(hist_t *h)
{
    free(h->mass);
    free(h->cumulative);
}

static void hist_rescale(hist_t *h, double scale)
{
    for (int i = 0; i < h->bins; i++)
        h->mass[i] *= scale;
    h->total *= scale;
    h->sum *= scale;
    h->dirty = true;
}

/* Adds x with weight w without advancing the forgetting clock. */
static void hist_put(hist_t *h, double x, double w)
{
    if (!(x >= 0))
        x = 0;
    int bin = (int)(x / h->bin_s);
    if (bin >= h->bins)
        bin = h->bins - 1;
    h->mass[bin] += w;
    h->total += w;
    h->sum += w * x;
    h->dirty = true;
}

static void hist_add(hist_t *h, double x)
{
    hist_put(h, x, h->weight);
    h->weight *= h->growth;
    if (h->weight > 1e12) {
        hist_rescale(h, 1.0 / h->weight);
        h->weight = 1.0;
    }
}

/* Evidence in units of "recent samples": the total divided by the current sample weight. */
static double hist_evidence(const hist_t *h)
{
    return h->total / h->weight;
}

static void hist_refresh(hist_t *h)
{
    if (!h->dirty)
        return;
    h->cumulative[0] = 0;
    for (int i = 0; i < h->bins; i++)
        h->cumulative[i + 1] = h->cumulative[i] + h->mass[i];
    h->dirty = false;
}

/* Mass at or below x, linear within a bin. The caller refreshed the histogram. */
static double hist_mass_below(const hist_t *h, double x)
{
    if (x <= 0)
        return 0;
    double position = x / h->bin_s;
    if (position >= h->bins)
        return h->cumulative[h->bins];
    int bin = (int)position;
    return h->cumulative[bin] + h->mass[bin] * (position - bin);
}

static double hist_cdf(const hist_t *h, double x)
{
    return h->total > 0 ? hist_mass_below(h, x) / h->total : 0;
}

pacing_stats_t *pacing_stats_new(void)
{
    pacing_stats_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    if (hist_init(&self->claim, PACING_RING_BINS, PACING_RING_BIN_S, DIAL_HALF_LIFE) < 0 ||
        hist_init(&self->other, PACING_RING_BINS, PACING_RING_BIN_S, DIAL_HALF_LIFE) < 0 ||
        hist_init(&self->talk, PACING_TALK_BINS, 1.0, TIME_HALF_LIFE) < 0 ||
        hist_init(&self->wrap, PACING_WRAP_BINS, 1.0, TIME_HALF_LIFE) < 0) {
        pacing_stats_destroy(&self);
        return NULL;
    }
    self->dial_weight = 1.0;
    self->dial_growth = pow(2.0, 1.0 / DIAL_HALF_LIFE);
    self->answer_weight = 1.0;
    return self;
}

void pacing_stats_destroy(pacing_stats_t **self_p)
{
    pacing_stats_t *self = *self_p;
    if (!self)
        return;
    hist_free(&self->claim);
    hist_free(&self->other);
    hist_free(&self->talk);
    hist_free(&self->wrap);
    free(self);
    *self_p = NULL;
}

void pacing_stats_dial_resolved(pacing_stats_t *self, double seconds, bool claim)
{
    hist_put(claim ? &self->claim : &self->other, seconds, self->dial_weight);
    self->dial_weight *= self->dial_growth;
    if (self->dial_weight > 1e12) {
        hist_rescale(&self->claim, 1.0 / self->dial_weight);
        hist_rescale(&self->other, 1.0 / self->dial_weight);
        self->dial_weight = 1.0;
    }
}

void pacing_stats_talk(pacing_stats_t *self, double seconds)
{
    hist_add(&self->talk, seconds);
    self->talks++;
}

void pacing_stats_wrap(pacing_stats_t *self, double seconds)
{
    hist_add(&self->wrap, seconds);
}

void pacing_stats_greeting(pacing_stats_t *self, double seconds)
{
    self->greeting_sum = self->greeting_sum * 0.99 + seconds;
    self->greeting_weight = self->greeting_weight * 0.99 + 1.0;
}

void pacing_stats_hold(pacing_stats_t *self, double seconds)
{
    self->hold_sum = self->hold_sum * 0.99 + seconds;
    self->hold_weight = self->hold_weight * 0.99 + 1.0;
}

void pacing_stats_claim_outcome(pacing_stats_t *self, bool abandoned)
{
    self->claims++;
    if (abandoned)
        self->abandons++;
}

/* Decayed counts (about the last 500 dispositions) with a uniform prior, so a campaign with few
 * dispositions counts every unknown answer as a person: the safe side of the rule. */
void pacing_stats_disposition(pacing_stats_t *self, bool person, bool greeted_in_time)
{
    const double keep = 0.998;
    self->dispositions = self->dispositions * keep + 1;
    self->persons = self->persons * keep + person;
    if (!greeted_in_time) {
        self->ungreeted = self->ungreeted * keep + 1;
        self->ungreeted_persons = self->ungreeted_persons * keep + person;
    }
}

/* The prior weighs like 5 dispositions, all persons: estimates start at 1 and come down only
 * as evidence accumulates. */
#define PERSON_PRIOR 5.0
#define ANSWER_PRIOR 5.0

double pacing_stats_person_share(const pacing_stats_t *self)
{
    return (self->persons + PERSON_PRIOR) / (self->dispositions + PERSON_PRIOR);
}

double pacing_stats_person_share_ungreeted(const pacing_stats_t *self)
{
    return (self->ungreeted_persons + PERSON_PRIOR) / (self->ungreeted + PERSON_PRIOR);
}

static int answer_bin(double ring_seconds)
{
    int bin = ring_seconds > 0 ? (int)ring_seconds : 0;
    return bin < ANSWER_BINS ? bin : ANSWER_BINS - 1;
}

void pacing_stats_answer(pacing_stats_t *self, double ring_seconds)
{
    self->answered[answer_bin(ring_seconds)] += self->answer_weight;
    self->answered_all += self->answer_weight;
    self->answer_weight *= pow(2.0, 1.0 / ANSWER_HALF_LIFE);
    if (self->answer_weight > 1e12) {
        for (int i = 0; i < ANSWER_BINS; i++) {
            self->answered[i] /= self->answer_weight;
            self->greeted[i] /= self->answer_weight;
        }
        self->answered_all /= self->answer_weight;
        self->greeted_all /= self->answer_weight;
        self->answer_weight = 1.0;
    }
}

/* Weighted like the answer it completes, a moment ago on the forgetting clock. */
void pacing_stats_answer_greeted(pacing_stats_t *self, double ring_seconds)
{
    self->greeted[answer_bin(ring_seconds)] += self->answer_weight;
    self->greeted_all += self->answer_weight;
}

void pacing_stats_person_greeting(pacing_stats_t *self, bool greeted_in_time)
{
    const double keep = 0.998;
    self->people_at_answer = self->people_at_answer * keep + 1;
    self->late_greeters = self->late_greeters * keep + !greeted_in_time;
}

/* With g the share of answers greeted in time at this ring time (its bin, leaning on the share
 * over all ring times like a few answers would) and u the share of people who greet late: the
 * answers greeted in time are people (a machine's message runs on), so the people not greeted
 * in time are g u / (1 - u), out of 1 - g answers not greeted in time. u starts at a half, worth
 * a few people: the safe side. */
double pacing_stats_person_given_ring(const pacing_stats_t *self, double ring_seconds)
{
    if (self->answered_all / self->answer_weight < ANSWER_MIN || self->people_at_answer < PERSON_MIN)
        return 1.0;
    int bin = answer_bin(ring_seconds);
    double share = self->greeted_all / self->answered_all;
    double g = (self->greeted[bin] / self->answer_weight + ANSWER_PRIOR * share) /
               (self->answered[bin] / self->answer_weight + ANSWER_PRIOR);
    double u = (self->late_greeters + PERSON_PRIOR * 0.5) / (self->people_at_answer + PERSON_PRIOR);
    if (g >= 1.0 || u > 0.5)
        return 1.0; /* a carrier that reports no greetings (or late ones) tells nobody apart */
    double person = g * u / ((1.0 - u) * (1.0 - g));
    return person < 1.0 ? person : 1.0;
}

double pacing_stats_dial_weight(const pacing_stats_t *self)
{
    return (self->claim.total + self->other.total) / self->dial_weight;
}

uint64_t pacing_stats_claims(const pacing_stats_t *self)
{
    return self->claims;
}

uint64_t pacing_stats_abandons(const pacing_stats_t *self)
{
    return self->abandons;
}

uint64_t pacing_stats_talks(const pacing_stats_t *self)
{
    return self->talks;
}

double pacing_stats_claim_probability(const pacing_stats_t *self)
{
    double total = self->claim.total + self->other.total;
    return total > 0 ? self->claim.total / total : 0;
}

void pacing_stats_claim_row(const pacing_stats_t *self, double elapsed, int n, double *row)
{
    pacing_stats_t *mutable = (pacing_stats_t *)self;
    hist_refresh(&mutable->claim);
    hist_refresh(&mutable->other);
    double total = self->claim.total + self->other.total;
    double claimed = hist_mass_below(&self->claim, elapsed);
    double unresolved = total - claimed - hist_mass_below(&self->other, elapsed);
    for (int k = 0; k < n; k++) {
        double p = unresolved > total * 1e-9 ? (hist_mass_below(&self->claim, elapsed + k) - claimed) / unresolved : 0;
        row[k] = p < 0 ? 0 : p > 1 ? 1 : p;
    }
}

void pacing_stats_free_from_wrap_row(const pacing_stats_t *self, double elapsed, int n, double *row)
{
    pacing_stats_t *mutable = (pacing_stats_t *)self;
    bool known = hist_evidence(&self->wrap) >= MIN_TIME_WEIGHT;
    if (known)
        hist_refresh(&mutable->wrap);
    double before = known ? hist_cdf(&self->wrap, elapsed) : 0, survive = 1.0 - before;
    for (int k = 0; k < n; k++) {
        double p = !known ? 0 : survive <= 1e-9 ? 1.0 : (hist_cdf(&self->wrap, elapsed + k) - before) / survive;
        row[k] = p < 0 ? 0 : p > 1 ? 1 : p;
    }
}

/* Talk ends at some second s in (0, k] and wrap-up within the remaining k - s: a one-second
 * convolution of the two histograms, conditioned on the talk having lasted `elapsed`. */
void pacing_stats_free_from_talk_row(const pacing_stats_t *self, double elapsed, int n, double *row)
{
    pacing_stats_t *mutable = (pacing_stats_t *)self;
    if (hist_evidence(&self->talk) < MIN_TIME_WEIGHT || hist_evidence(&self->wrap) < MIN_TIME_WEIGHT || n > 256) {
        for (int k = 0; k < n; k++)
            row[k] = 0;
        return;
    }
    hist_refresh(&mutable->talk);
    hist_refresh(&mutable->wrap);
    double ends[256], wrapped[256];
    double before = hist_cdf(&self->talk, elapsed), survive = 1.0 - before, previous = before;
    for (int s = 1; s < n; s++) {
        double now = hist_cdf(&self->talk, elapsed + s);
        ends[s] = now - previous; /* talk ends in (s - 1, s], on average half a second early */
        previous = now;
        wrapped[s - 1] = hist_cdf(&self->wrap, s - 0.5);
    }
    for (int k = 0; k < n; k++) {
        double p = 0;
        for (int s = 1; s <= k; s++)
            p += ends[s] * wrapped[k - s];
        p = survive <= 1e-9 ? (k ? wrapped[k - 1] : 0) : p / survive;
        row[k] = p < 0 ? 0 : p > 1 ? 1 : p;
    }
}

double pacing_stats_mean_greeting(const pacing_stats_t *self)
{
    return self->greeting_weight > 0 ? self->greeting_sum / self->greeting_weight : 0;
}

void pacing_stats_machine_handle(pacing_stats_t *self, double seconds)
{
    self->machine_sum = self->machine_sum * 0.99 + seconds;
    self->machine_weight = self->machine_weight * 0.99 + 1.0;
}

double pacing_stats_mean_machine_handle(const pacing_stats_t *self, double fallback)
{
    return self->machine_weight > 0 ? self->machine_sum / self->machine_weight : fallback;
}

double pacing_stats_mean_hold(const pacing_stats_t *self, double fallback)
{
    return self->hold_weight > 0 ? self->hold_sum / self->hold_weight : fallback;
}

double pacing_stats_mean_talk(const pacing_stats_t *self)
{
    return self->talk.total > 0 ? self->talk.sum / self->talk.total : 0;
}

double pacing_stats_mean_wrap(const pacing_stats_t *self)
{
    return self->wrap.total > 0 ? self->wrap.sum / self->wrap.total : 0;
}
