/*
 * Seeded pseudo-random numbers for the simulated carrier and the pacing benchmark.
 *
 * xoshiro256** seeded through splitmix64: fast, statistically strong and, unlike rand(),
 * identical on every libc, so a scenario run with a given seed reproduces exactly anywhere.
 * Nothing here is for secrets.
 */
#ifndef IMPACT_DIALER_RNG_H
#define IMPACT_DIALER_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_t;

/* Seeds a generator from one 64-bit value and a stream number, so that independent streams
 * (one per dial, for common random numbers across policies) come from one scenario seed. */
void rng_seed(rng_t *rng, uint64_t seed, uint64_t stream);

uint64_t rng_next(rng_t *rng);

/* Uniform in [0, 1). */
double rng_uniform(rng_t *rng);

/* Log-normal with the given mean and coefficient of variation (standard deviation / mean), the
 * parametrisation the scenario files use. A cv of 0 returns the mean. */
double rng_lognormal(rng_t *rng, double mean, double cv);

#endif
