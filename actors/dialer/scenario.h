/*
 * A calling scenario: how the simulated phone network and the simulated callers behave.
 *
 * The parameters and their defaults are those of bench/ section 1 (and of the independent
 * Python model in ../shared/tools/pacesim_reference.py, whose key names they share so that one
 * scenario file drives both). Durations are in seconds; probabilities are per dial.
 *
 * Scenario files are text, one `key = value` per line, `#` starts a comment. Unknown keys and
 * out-of-range values are errors (named in the message), not silently ignored, so a typo
 * cannot make a benchmark measure something else than it says.
 */
#ifndef IMPACT_DIALER_SCENARIO_H
#define IMPACT_DIALER_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    /* the shift */
    uint32_t agents;
    double hours;
    uint64_t seed;

    /* what a dial reaches: p_fail is 1 - the other three */
    double p_human, p_machine, p_noans;
    double ring_h_mean, ring_h_cv; /* until a person picks up */
    double ring_m_mean, ring_m_cv; /* until a machine picks up */
    double ring_timeout;           /* no-answer release */
    double fail_mean, fail_cv;     /* busy, invalid or SIT tone */
    double greet_mean, greet_cv;   /* the person's "hello?" */
    double grace;                  /* the 2-second rule after the greeting */

    /* what callers spend */
    double talk_mean, talk_cv;
    double wrap_mean, wrap_cv;
    double machine_handle, machine_wrap; /* a machine put through to a caller */
    double preview_mean, preview_cv;

    /* answering-machine detection at the carrier */
    bool amd;
    double amd_post; /* decision this long after the greeting ends */
    double amd_fp;   /* people classified as machines */
    double amd_fn;   /* machines classified as people */

    /* variants */
    double drift_at_hours, drift_p_human; /* the live rate changes (a new list, a new hour) */
    double logout_at_hours, logout_fraction;
    double cps;             /* carrier calls per second, 0 = unlimited */
    double lost_status;     /* probability a final status callback never arrives */
    double message_seconds; /* length of the abandonment / voicemail messages */
    double max_lines_per_agent;
} scenario_t;

/* The defaults of bench/ section 1. */
void scenario_defaults(scenario_t *scenario);

/* Applies one `key=value` (or `key = value`). Returns 0, or -1 with a message in err. */
int scenario_set(scenario_t *scenario, const char *assignment, char *err, size_t err_size);

/* Applies every line of a scenario file. Returns 0, or -1 with the file, line and reason in
 * err. Files larger than 64 KiB are refused. */
int scenario_load(scenario_t *scenario, const char *path, char *err, size_t err_size);

/* Cross-field checks (probabilities sum to at most 1, ...). Returns 0 or -1 with err. */
int scenario_check(const scenario_t *scenario, char *err, size_t err_size);

/* The probability of a human at a given time of the shift, after any drift. */
double scenario_p_human_at(const scenario_t *scenario, double hours_into_shift);

#endif
