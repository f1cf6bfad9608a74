/*
 * shm_bench: seqlock slot writes/s and reads/s across processes, against a plain memcpy into the
 * same slots of the same mapping (no seqlock, no atomics: the fastest a copy can be, and unsafe).
 *
 *   shm_bench [--quick]
 *
 * Each scenario forks its writers and readers, lets them run for a fixed time, and counts what
 * they did; the seqlock run and its memcpy baseline alternate so drift on a shared machine hits
 * both alike. One JSON object per line on stdout: medians over the runs and their ratio.
 *
 *   same_slot_1w1r   one writer and one reader on one slot
 *   same_slot_1w3r   one writer and three readers on one slot (more processes than cores here)
 *   many_slots       two writers over 32 slots each, two readers scanning all 64
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/stats.h"

#define MAX_PROCS     8
#define MAX_RUNS      15
#define SLOTS_MAX     64
#define PAYLOAD_SHIFT 24 /* a campaign slot's payload follows owner, campaign_id and seq (shm/README.md) */

typedef enum { MODE_SEQLOCK, MODE_MEMCPY } bench_mode_t;

typedef struct {
    const char *name;
    int writers;
    int readers;
    int slots_per_writer; /* writers own disjoint slot ranges; readers scan all of them */
} scenario_t;

/* Shared with the children; each counter sits on its own cache line so counting is not the
 * contention being measured. */
typedef struct {
    _Alignas(128) _Atomic int ready;
    _Alignas(128) _Atomic int go;
    _Alignas(128) _Atomic int stop;
    struct {
        _Alignas(128) uint64_t ops;
        uint64_t failed;
        uint64_t sink;
    } counts[MAX_PROCS];
} control_t;

typedef struct {
    shm_region_t *region;
    uint8_t *raw; /* the same object mapped directly, for the memcpy baseline */
    size_t raw_size;
    uint32_t campaign_offset;
    uint32_t slot_size;
    uint32_t slots[SLOTS_MAX]; /* claimed slot indexes, writer w owning [w*k, (w+1)*k) */
    control_t *control;
} bench_t;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void s_sleep_s(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Keeps the compiler from merging or dropping copies whose only reader is another process. */
static void s_clobber(void)
{
    __asm__ __volatile__("" ::: "memory");
}

static void s_fill(shm_campaign_stats_t *s, uint64_t c)
{
    s->updated_unix_ms = (int64_t)c;
    s->callers_on_hold = (uint32_t)c;
    s->callers_on_call = (uint32_t)(c * 3);
    s->dials = c;
    s->answered_human = c / 3;
    s->answer_rate = (double)c;
    s->dial_ratio = (double)(c & 7);
}

static uint8_t *s_payload(const bench_t *b, uint32_t slot)
{
    return b->raw + b->campaign_offset + (size_t)slot * b->slot_size + PAYLOAD_SHIFT;
}

static void s_wait_go(control_t *control)
{
    atomic_fetch_add(&control->ready, 1);
    while (!atomic_load_explicit(&control->go, memory_order_acquire))
        sched_yield();
}

static void s_writer(const bench_t *b, bench_mode_t mode, int index, int first, int count)
{
    control_t *control = b->control;
    uint64_t ops = 0, failed = 0;
    shm_campaign_stats_t stats = {0};
    s_wait_go(control);
    while (!atomic_load_explicit(&control->stop, memory_order_relaxed)) {
        uint32_t slot = b->slots[first + (int)(ops % (uint64_t)count)];
        s_fill(&stats, ops);
        if (mode == MODE_SEQLOCK) {
            if (shm_campaign_write(b->region, slot, &stats) != 0)
                failed++;
        } else {
            memcpy(s_payload(b, slot), &stats, sizeof(stats));
            s_clobber();
        }
        ops++;
    }
    control->counts[index].ops = ops - failed;
    control->counts[index].failed = failed;
    _exit(0);
}

static void s_reader(const bench_t *b, bench_mode_t mode, int index, int count)
{
    control_t *control = b->control;
    uint64_t ops = 0, failed = 0, sink = 0;
    shm_campaign_stats_t stats;
    s_wait_go(control);
    while (!atomic_load_explicit(&control->stop, memory_order_relaxed)) {
        uint32_t slot = b->slots[(ops + failed) % (uint64_t)count];
        if (mode == MODE_SEQLOCK) {
            if (shm_campaign_read(b->region, slot, &stats) != 0) {
                failed++;
                continue;
            }
        } else {
            memcpy(&stats, s_payload(b, slot), sizeof(stats));
            s_clobber();
        }
        sink += stats.dials;
        ops++;
    }
    control->counts[index].ops = ops;
    control->counts[index].failed = failed;
    control->counts[index].sink = sink;
    _exit(0);
}

typedef struct {
    double writes_per_sec;
    double reads_per_sec;
    double failed_reads_per_sec;
} result_t;

static int s_run(const bench_t *b, const scenario_t *sc, bench_mode_t mode, double seconds, result_t *out)
{
    control_t *control = b->control;
    memset(control, 0, sizeof(*control));
    int procs = sc->writers + sc->readers;
    pid_t pids[MAX_PROCS];
    int started = 0;
    for (; started < procs; started++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            goto Error;
        if (pid == 0) {
            if (started < sc->writers)
                s_writer(b, mode, started, started * sc->slots_per_writer, sc->slots_per_writer);
            s_reader(b, mode, started, sc->writers * sc->slots_per_writer);
        }
        pids[started] = pid;
    }
    while (atomic_load(&control->ready) < procs)
        s_sleep_s(0.001);
    double begin = s_now();
    atomic_store_explicit(&control->go, 1, memory_order_release);
    s_sleep_s(seconds);
    atomic_store(&control->stop, 1);
    int failed_children = 0;
    for (int i = 0; i < procs; i++) {
        int status;
        if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed_children++;
    }
    /* Children stop within one operation of the flag; the wait for them is not part of the run. */
    double elapsed = s_now() - begin;
    if (failed_children > 0) {
        fprintf(stderr, "shm_bench: %d benchmark processes failed\n", failed_children);
        return -1;
    }
    uint64_t writes = 0, reads = 0, failed = 0, write_failures = 0;
    for (int i = 0; i < procs; i++) {
        if (i < sc->writers) {
            writes += control->counts[i].ops;
            write_failures += control->counts[i].failed;
        } else {
            reads += control->counts[i].ops;
            failed += control->counts[i].failed;
        }
    }
    if (write_failures > 0) {
        fprintf(stderr, "shm_bench: %llu writes refused\n", (unsigned long long)write_failures);
        return -1;
    }
    out->writes_per_sec = (double)writes / elapsed;
    out->reads_per_sec = (double)reads / elapsed;
    out->failed_reads_per_sec = (double)failed / elapsed;
    return 0;

Error:
    perror("shm_bench: fork");
    atomic_store(&control->go, 1);
    atomic_store(&control->stop, 1);
    for (int i = 0; i < started; i++)
        waitpid(pids[i], NULL, 0);
    return -1;
}

static int s_compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_median(double *values, int n)
{
    qsort(values, (size_t)n, sizeof(double), s_compare);
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

static void s_print(const char *name, const scenario_t *sc, double ops, double baseline, int runs, double seconds,
                    const double *failed)
{
    printf("{\"name\": \"%s\", \"unit\": \"ops/s\", \"ops_per_sec\": %.0f, \"baseline_ops_per_sec\": %.0f, "
           "\"ratio\": %.3f, \"runs\": %d, \"statistic\": \"median\", \"seconds_per_run\": %.2f, "
           "\"writers\": %d, \"readers\": %d, \"slots\": %d",
           name, ops, baseline, baseline > 0 ? ops / baseline : 0.0, runs, seconds, sc->writers, sc->readers,
           sc->writers * sc->slots_per_writer);
    if (failed != NULL)
        printf(", \"failed_reads_per_sec\": %.0f", *failed);
    printf("}\n");
    fflush(stdout);
}

static int s_scenario(const bench_t *b, const scenario_t *sc, int runs, double seconds)
{
    double w[MAX_RUNS], r[MAX_RUNS], f[MAX_RUNS], bw[MAX_RUNS], br[MAX_RUNS];
    for (int i = 0; i < runs; i++) {
        result_t seq, base;
        if (s_run(b, sc, MODE_SEQLOCK, seconds, &seq) != 0 || s_run(b, sc, MODE_MEMCPY, seconds, &base) != 0)
            return -1;
        w[i] = seq.writes_per_sec;
        r[i] = seq.reads_per_sec;
        f[i] = seq.failed_reads_per_sec;
        bw[i] = base.writes_per_sec;
        br[i] = base.reads_per_sec;
    }
    char name[96];
    snprintf(name, sizeof(name), "%s_writes", sc->name);
    s_print(name, sc, s_median(w, runs), s_median(bw, runs), runs, seconds, NULL);
    snprintf(name, sizeof(name), "%s_reads", sc->name);
    double failed = s_median(f, runs);
    s_print(name, sc, s_median(r, runs), s_median(br, runs), runs, seconds, &failed);
    return 0;
}

/* Maps the object a second time, raw, and finds the campaign table from the header (layout in
 * shm/README.md), so the baseline copies into exactly the bytes the seqlock protects. */
static int s_map_raw(bench_t *b, const char *name)
{
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    void *raw = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (raw == MAP_FAILED)
        return -1;
    b->raw = raw;
    b->raw_size = (size_t)st.st_size;
    memcpy(&b->campaign_offset, b->raw + 32, sizeof(uint32_t));
    memcpy(&b->slot_size, b->raw + 36, sizeof(uint32_t));
    uint64_t end = (uint64_t)b->campaign_offset + (uint64_t)SHM_CAMPAIGN_SLOTS * b->slot_size;
    if (end > b->raw_size || b->slot_size < PAYLOAD_SHIFT + sizeof(shm_campaign_stats_t)) {
        errno = EPROTO;
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    const int runs = quick ? 3 : 7;
    const double seconds = quick ? 0.15 : 1.0;
    const scenario_t scenarios[] = {
        {"same_slot_1w1r", 1, 1, 1},
        {"same_slot_1w3r", 1, 3, 1},
        {"many_slots", 2, 2, SLOTS_MAX / 2},
    };

    char name[64];
    snprintf(name, sizeof(name), "/impact-bench-shm-%d", (int)getpid());
    bench_t bench = {0};
    int rc = 1;
    bench.region = shm_region_create(name);
    if (bench.region == NULL) {
        fprintf(stderr, "shm_bench: cannot create %s: %s\n", name, strerror(errno));
        return 1;
    }
    void *control = mmap(NULL, sizeof(control_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (control == MAP_FAILED || s_map_raw(&bench, name) != 0) {
        fprintf(stderr, "shm_bench: cannot map: %s\n", strerror(errno));
        goto Exit;
    }
    bench.control = control;
    for (int i = 0; i < SLOTS_MAX; i++) {
        if (shm_campaign_claim(bench.region, 1 + i, getpid(), &bench.slots[i]) != 0) {
            fprintf(stderr, "shm_bench: cannot claim a slot: %s\n", strerror(errno));
            goto Exit;
        }
    }
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        if (s_scenario(&bench, &scenarios[i], runs, seconds) != 0)
            goto Exit;
    }
    rc = 0;

Exit:
    if (bench.raw != NULL)
        munmap(bench.raw, bench.raw_size);
    if (control != MAP_FAILED)
        munmap(control, sizeof(control_t));
    shm_region_destroy(&bench.region);
    shm_region_unlink(name);
    return rc;
}
