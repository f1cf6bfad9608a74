/*
 * phone_bench: what one phone_normalize call costs on the input a CSV import meets, against
 * libphonenumber called directly from C++ (lib_baseline.cc) in the same run.
 *
 *   phone_bench [--quick]
 *
 * Scenarios, each a round-robin over ten inputs in mixed notations:
 *   us    US numbers, national and international notation, default region US
 *   gb    UK numbers (London, regional, mobile, freephone), default region GB
 *   bad   refusals: letters (answered before the library) and numbers the library rejects
 *
 * normalize_<scenario> is phone_normalize against baseline_e164 (Parse, IsValidNumber, Format:
 * the same work with no pre-check and no error mapping); the two alternate within every run so
 * drift on a shared machine hits both alike. lib_parse_* and lib_validate_* break the library's
 * share down, and time_zones is phone_time_zones over the us and gb results. One JSON object per
 * line on stdout, each the median over the runs.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phone/phone.h"

int baseline_parse(const char *input, const char *region);
int baseline_parse_validate(const char *input, const char *region);
int baseline_e164(const char *input, const char *region, char *out, size_t size);

#define INPUTS   10
#define MAX_RUNS 15

typedef struct {
    const char *name;
    const char *region;
    const char *inputs[INPUTS];
    int valid; /* every input is valid, or none is */
} scenario_t;

static const scenario_t s_scenarios[] = {
    {"us",
     "US",
     {"+1 (212) 555-0123", "(312) 555-0199", "415.555.0100", "+1 617 555 0123", "713-555-0100", "1 (305) 555 0100", "+12065550100",
      "(602) 555-0100", "+1 404 555 0100", "2145550100"},
     1},
    {"gb",
     "GB",
     {"020 7946 0958", "+44 20 7946 0958", "0161 496 0000", "0121 496 0000", "0113 496 0000", "07400 123456", "+44 7400 123456",
      "0131 496 0000", "029 2018 0000", "0800 123 4567"},
     1},
    {"bad",
     "US",
     {"1-800-FLOWERS", "call me", "+1 555 555 0123", "212 055 0123", "12", "+999 1234567", "n/a", "555-0123",
      "+1 212 555 0123 4567 8901 2345", "212-555-0123 x12"},
     0},
};

typedef int (*call_fn)(const char *input, const char *region, char *out, size_t size);

static volatile uint64_t s_sink; /* keeps the calls from being optimised away */

static int s_normalize(const char *input, const char *region, char *out, size_t size)
{
    phone_error_t error;
    return phone_normalize(input, region, out, size, &error);
}

static int s_parse(const char *input, const char *region, char *out, size_t size)
{
    return baseline_parse(input, region);
}

static int s_parse_validate(const char *input, const char *region, char *out, size_t size)
{
    return baseline_parse_validate(input, region);
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double s_ns_per_call(call_fn fn, const scenario_t *sc, int calls)
{
    char out[PHONE_E164_SIZE];
    uint64_t sink = 0;
    double start = s_now();
    for (int i = 0; i < calls; i++)
        sink += (uint64_t)(fn(sc->inputs[i % INPUTS], sc->region, out, sizeof(out)) + 1);
    double elapsed = s_now() - start;
    s_sink += sink;
    return elapsed * 1e9 / calls;
}

static int s_compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_median(double *values, int n)
{
    qsort(values, (size_t)n, sizeof(values[0]), s_compare_double);
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

/* A figure from a call that gives different answers than the library would be meaningless. */
static int s_check(const scenario_t *sc)
{
    for (int i = 0; i < INPUTS; i++) {
        char ours[PHONE_E164_SIZE], theirs[PHONE_E164_SIZE];
        int rc = s_normalize(sc->inputs[i], sc->region, ours, sizeof(ours));
        int baseline_rc = baseline_e164(sc->inputs[i], sc->region, theirs, sizeof(theirs));
        bool agree = sc->valid ? rc == 0 && baseline_rc == 0 && strcmp(ours, theirs) == 0 : rc == -1;
        if (!agree) {
            fprintf(stderr, "phone_bench: %s: '%s' gives %d (%s), the library %d (%s)\n", sc->name, sc->inputs[i], rc,
                    rc == 0 ? ours : "-", baseline_rc, baseline_rc == 0 ? theirs : "-");
            return -1;
        }
    }
    return 0;
}

static void s_print(const char *name, double ns, const char *baseline, double baseline_ns, int runs, int calls)
{
    printf("{\"name\": \"%s\", \"unit\": \"ns/call\", \"ns_per_call\": %.0f", name, ns);
    if (baseline != NULL)
        printf(", \"baseline\": \"%s\", \"baseline_ns_per_call\": %.0f, \"ratio\": %.3f", baseline, baseline_ns, ns / baseline_ns);
    printf(", \"runs\": %d, \"calls_per_run\": %d, \"statistic\": \"median\"}\n", runs, calls);
}

static void s_bench_scenario(const scenario_t *sc, int runs, int calls)
{
    double ours[MAX_RUNS], theirs[MAX_RUNS], parse[MAX_RUNS], validate[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        ours[r] = s_ns_per_call(s_normalize, sc, calls);
        theirs[r] = s_ns_per_call(baseline_e164, sc, calls);
        parse[r] = s_ns_per_call(s_parse, sc, calls);
        validate[r] = s_ns_per_call(s_parse_validate, sc, calls);
    }
    char name[64];
    snprintf(name, sizeof(name), "normalize_%s", sc->name);
    s_print(name, s_median(ours, runs), "libphonenumber Parse+IsValidNumber+Format", s_median(theirs, runs), runs, calls);
    snprintf(name, sizeof(name), "lib_parse_%s", sc->name);
    s_print(name, s_median(parse, runs), NULL, 0, runs, calls);
    snprintf(name, sizeof(name), "lib_validate_%s", sc->name);
    s_print(name, s_median(validate, runs), "libphonenumber Parse alone", s_median(parse, runs), runs, calls);
}

static void s_bench_time_zones(int runs, int calls)
{
    char numbers[2 * INPUTS][PHONE_E164_SIZE];
    for (int i = 0; i < 2 * INPUTS; i++)
        s_normalize(s_scenarios[i / INPUTS].inputs[i % INPUTS], s_scenarios[i / INPUTS].region, numbers[i], sizeof(numbers[i]));
    double ns[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        const char *zones[PHONE_ZONES_MAX];
        uint64_t sink = 0;
        double start = s_now();
        for (int i = 0; i < calls; i++)
            sink += (uint64_t)phone_time_zones(numbers[i % (2 * INPUTS)], zones, PHONE_ZONES_MAX);
        ns[r] = (s_now() - start) * 1e9 / calls;
        s_sink += sink;
    }
    s_print("time_zones", s_median(ns, runs), NULL, 0, runs, calls);
}

int main(int argc, char **argv)
{
    int runs = 9, calls = 100000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            runs = 3;
            calls = 10000;
        } else {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    size_t count = sizeof(s_scenarios) / sizeof(s_scenarios[0]);
    for (size_t i = 0; i < count; i++)
        if (s_check(&s_scenarios[i]) != 0)
            return 1;
    for (size_t i = 0; i < count; i++)
        s_bench_scenario(&s_scenarios[i], runs, calls);
    s_bench_time_zones(runs, calls * 10);
    return 0;
}
