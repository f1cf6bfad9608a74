/*
 * wake_probe: how late a bare process wakes for a deadline on this machine right now, the floor
 * under any real-time decision a dialer makes.
 *
 *   wake_probe SECONDS
 *
 * It sleeps to deadlines 1 to 50 ms ahead (drawn at random, so they do not line up with anyone's
 * timers) with clock_nanosleep on CLOCK_MONOTONIC and records how late each wake-up was, in the
 * same histogram the dialers publish (shm/stats.h). Run beside a loaded instance, it separates
 * what the dialer adds from what the kernel, the hypervisor and the other processes cost any
 * process. Prints one JSON object: count, p50, p99 and max in microseconds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "shm/stats.h"

static int64_t s_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
    char *end = NULL;
    double seconds = argc == 2 ? strtod(argv[1], &end) : 0;
    if (argc != 2 || end == argv[1] || *end != '\0' || !(seconds > 0 && seconds <= 86400)) {
        fprintf(stderr, "usage: wake_probe SECONDS (0 < SECONDS <= 86400)\n");
        return 2;
    }
    static uint32_t buckets[SHM_LATENCY_BUCKETS];
    uint64_t count = 0, max_us = 0;
    uint64_t state = (uint64_t)s_mono_us() | 1;
    int64_t stop = s_mono_us() + (int64_t)(seconds * 1e6);
    while (s_mono_us() < stop) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17; /* xorshift64 */
        int64_t due = s_mono_us() + 1000 + (int64_t)(state % 49000);
        struct timespec at = {.tv_sec = due / 1000000, .tv_nsec = (long)(due % 1000000) * 1000};
        int rc;
        while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL)) == EINTR)
            ;
        if (rc != 0)
            return 1;
        int64_t late = s_mono_us() - due;
        uint64_t us = late > 0 ? (uint64_t)late : 0;
        buckets[shm_latency_bucket(us)]++;
        count++;
        if (us > max_us)
            max_us = us;
    }
    printf("{\"count\": %llu, \"p50\": %llu, \"p99\": %llu, \"max\": %llu}\n", (unsigned long long)count,
           (unsigned long long)shm_latency_quantile(buckets, count, max_us, 0.5),
           (unsigned long long)shm_latency_quantile(buckets, count, max_us, 0.99), (unsigned long long)max_us);
    return 0;
}
