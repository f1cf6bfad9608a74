/*
 * The baseline pacing policies of bench/pacing, run through the same engine as the product's.
 *
 * None of these ships: they exist to be compared against. Each follows its source as described
 * in ../shared/research/pacing-and-peers.md (VICIdial) and original-impact-dialing.md (the
 * original product), and the lookahead reference of the Python model in
 * ../shared/tools/pacesim_reference.py, which alone is allowed to peek at the simulation's truth.
 */
#ifndef IMPACT_BENCH_PACING_POLICIES_H
#define IMPACT_BENCH_PACING_POLICIES_H

#include "actors/dialer/pacing.h"
#include "actors/dialer/scenario.h"

/* VICIdial RATIO: round(R x (ready + busy)) - (unresolved + waiting + busy). */
pacing_policy_t *bench_ratio_new(double ratio);

/* Five9-style POWER callsAgentRatio: R lines per ready caller. */
pacing_policy_t *bench_lines_per_ready_new(double ratio);

/* VICIdial ADAPT_HARD_LIMIT (average = false) or ADAPT_AVERAGE (true) replica. */
pacing_policy_t *bench_adapt_new(double max_level, double dl_diff_target, double drop_percent, bool average);

/* What the benchmark tells the privileged policies about the simulation. */
typedef struct {
    const scenario_t *scenario;
    /* when each caller will be free, by caller id (1..agents); 0 when ready */
    const int64_t *free_at_us;
} bench_truth_t;

/* The lookahead reference: true parameters and exact finish times; s is its aggressiveness.
 * Without `finish_times` it is the same rule knowing of its callers only what a real dialer
 * does (learned talk and wrap-up times, how long each has been at it), which measures what the
 * reference's knowledge of the future is worth. */
pacing_policy_t *bench_oracle_new(double s, const bench_truth_t *truth, bool finish_times);

/* One finished dial, as the original product's simulator saw attempts. */
typedef struct {
    int64_t ended_at_us;
    double conversation_s; /* 0 when nobody talked */
} bench_attempt_t;

typedef struct {
    const bench_attempt_t *attempts;
    size_t n_attempts;
} bench_history_t;

/* The original Impact Dialing formula: a dial factor from a periodic simulated sweep. */
pacing_policy_t *bench_impact_new(const bench_history_t *history, uint64_t seed);

#endif
