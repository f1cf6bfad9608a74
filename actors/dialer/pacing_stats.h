/*
 * What a campaign has learned about its calls and its callers, from events alone.
 *
 * Everything here is observable by a real dialer: how long after a dial calls resolved and
 * whether they needed a caller (a "claim": a live answer, or any answer without machine
 * detection), how long callers talked and wrapped up, how often live answers were abandoned.
 * The pacing policies read it; the engine feeds it.
 *
 * Each distribution is a histogram with exponential forgetting (a half-life counted in samples),
 * so a campaign that moves to a new list or a new hour of the day is relearned within a few
 * hundred calls instead of being averaged into its past. Forgetting is implemented by giving
 * each new sample more weight than the last (and rescaling rarely), which costs O(1) per
 * sample instead of O(bins).
 */
#ifndef IMPACT_DIALER_PACING_STATS_H
#define IMPACT_DIALER_PACING_STATS_H

#include <stdbool.h>
#include <stdint.h>

#define PACING_RING_BINS  128 /* half-second bins: dial to resolution, up to 64 s */
#define PACING_RING_BIN_S 0.5
#define PACING_TALK_BINS  3600 /* one-second bins up to an hour; longer talks fall in the last */
#define PACING_WRAP_BINS  600

typedef struct pacing_stats_t pacing_stats_t;

pacing_stats_t *pacing_stats_new(void);
void pacing_stats_destroy(pacing_stats_t **self_p);

/* A dial resolved after `seconds`; `claim` says whether it needed a caller. */
void pacing_stats_dial_resolved(pacing_stats_t *self, double seconds, bool claim);
void pacing_stats_talk(pacing_stats_t *self, double seconds);
void pacing_stats_wrap(pacing_stats_t *self, double seconds);
void pacing_stats_greeting(pacing_stats_t *self, double seconds);
/* How long a claim may wait for a caller before the hold limit: the grace after the greeting,
 * less whatever of it answering-machine detection already used. */
void pacing_stats_hold(pacing_stats_t *self, double seconds);
/* A claim was put through to a caller (abandoned = false) or not (true). */
void pacing_stats_claim_outcome(pacing_stats_t *self, bool abandoned);

/*
 * Who answered. Without machine detection an answered call may be a machine, and the US rule
 * counts only people. Callers tell (a disposition) for the calls they take; for calls nobody
 * took, the only evidence is whether the answerer finished a short greeting within the hold
 * limit, which people do and machines, reciting their message, do not. The two rates below
 * are learned from callers' dispositions and estimate, for a claim, how likely a person is
 * behind it: the "reasoned estimate" regulators accept for machine-detection errors.
 */
void pacing_stats_disposition(pacing_stats_t *self, bool person, bool greeted_in_time);

/*
 * The ring time of an answer, too. People pick up sooner than machines do, so among answers
 * that rang about as long, the share whose greeting ended in time says how many are people; and
 * the people put through before their greeting could end (greeted in time or not, by
 * disposition) say how many people greet late. Together: how likely a person is behind an
 * answer that rang that long and was not greeted in time. Machine detection at the carrier
 * does not need these.
 */
void pacing_stats_answer(pacing_stats_t *self, double ring_seconds);
/* An answer reported with pacing_stats_answer whose greeting ended in time. */
void pacing_stats_answer_greeted(pacing_stats_t *self, double ring_seconds);
/* A person (by disposition) put through the moment they answered: greeted in time or not. */
void pacing_stats_person_greeting(pacing_stats_t *self, bool greeted_in_time);
/* P(person | an answer after `ring_seconds` not greeted in time); 1 while either half of the
 * evidence is thin: the safe side. */
double pacing_stats_person_given_ring(const pacing_stats_t *self, double ring_seconds);

/* A caller's whole time on a machine put through to them: talk plus wrap-up. */
void pacing_stats_machine_handle(pacing_stats_t *self, double seconds);
/* Its mean, or `fallback` before any. */
double pacing_stats_mean_machine_handle(const pacing_stats_t *self, double fallback);
/* P(person | a claim), and P(person | a claim whose greeting did not end in time). */
double pacing_stats_person_share(const pacing_stats_t *self);
double pacing_stats_person_share_ungreeted(const pacing_stats_t *self);

/* Samples behind the dial-resolution estimate (decayed weight, not a count). */
double pacing_stats_dial_weight(const pacing_stats_t *self);
uint64_t pacing_stats_claims(const pacing_stats_t *self);
uint64_t pacing_stats_abandons(const pacing_stats_t *self);
uint64_t pacing_stats_talks(const pacing_stats_t *self);

/* Probability that a fresh dial becomes a claim. */
double pacing_stats_claim_probability(const pacing_stats_t *self);

/* The projections below fill row[k], k = 0 .. n-1, with a probability "within k seconds from
 * now"; one call computes a whole horizon, which is what pacing needs and much cheaper than n
 * separate calls. */

/* P(a dial unresolved after `elapsed` seconds becomes a claim within k seconds). */
void pacing_stats_claim_row(const pacing_stats_t *self, double elapsed, int n, double *row);

/* P(a caller talking for `elapsed` seconds is free, talk and wrap-up over, within k seconds).
 * Zero while talk or wrap-up times are not yet known: pacing then counts on nobody. */
void pacing_stats_free_from_talk_row(const pacing_stats_t *self, double elapsed, int n, double *row);

/* The same for a caller `elapsed` seconds into wrap-up. */
void pacing_stats_free_from_wrap_row(const pacing_stats_t *self, double elapsed, int n, double *row);

double pacing_stats_mean_greeting(const pacing_stats_t *self);
/* The mean of pacing_stats_hold, or `fallback` before any claim. */
double pacing_stats_mean_hold(const pacing_stats_t *self, double fallback);
double pacing_stats_mean_talk(const pacing_stats_t *self);
double pacing_stats_mean_wrap(const pacing_stats_t *self);

#endif
