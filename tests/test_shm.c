/*
 * The stats region with real processes: forked writers and readers share one region the way the
 * supervisor, dialers and the HTTP front end do. Writers derive every payload field from one
 * counter, so a reader can tell a consistent copy from a mix of two writes. The torture test
 * kills writers with SIGKILL at arbitrary instructions, some of them mid-write, and shows that
 * the supervisor's recovery and a restarted dialer's take-over both repair the slots. Nothing
 * asserts on speed; the bounds on waiting only turn a hang into a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm/stats.h"

/* Header field offsets, from the layout in shm/README.md. */
#define OFF_MAGIC          0
#define OFF_MAJOR          8
#define OFF_MINOR          10
#define OFF_HEADER_SIZE    12
#define OFF_PROC_TABLE     16
#define OFF_CAMPAIGN_TABLE 32
/* Fields of a table descriptor, relative to it. */
#define TABLE_OFFSET    0
#define TABLE_SLOT_SIZE 4
#define TABLE_COUNT     8
#define TABLE_WORDS     12

#define MAX_CHILDREN  32
#define WRITERS       4
#define READERS       2
#define CAMPAIGN_BASE 1000
#define RACERS        8
#define MAX_ROUNDS    400
#define WAIT_MS_MAX   60000

typedef struct {
    char name[64];
    shm_region_t *region;
    pid_t pids[MAX_CHILDREN];
    int npids;
    void *shared; /* anonymous MAP_SHARED block the children report through */
    size_t shared_size;
} fixture_t;

/* What the torture test's children report. */
typedef struct {
    _Atomic int stop;
    _Atomic int64_t slot[WRITERS]; /* slot writer w claimed, -1 until it has */
    _Atomic uint64_t writes[WRITERS];
    _Atomic uint64_t ok[READERS];
    _Atomic uint64_t torn[READERS];
    _Atomic uint64_t bad[READERS];
} torture_t;

/* What the claim race's children report: the slot they got, or -errno. */
typedef struct {
    _Atomic int64_t result[RACERS];
} race_t;

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void s_sleep_us(long us)
{
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, NULL);
}

static int s_setup(void **state)
{
    static int counter;
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->name, sizeof(f->name), "/impact-test-shm-%d-%d", (int)getpid(), ++counter);
    f->region = shm_region_create(f->name);
    if (f->region == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

/* Runs after failures too: no child outlives the test and no object outlives the run. */
static int s_teardown(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < f->npids; i++) {
        kill(f->pids[i], SIGKILL);
        waitpid(f->pids[i], NULL, 0);
    }
    shm_region_destroy(&f->region);
    shm_region_unlink(f->name);
    if (f->shared != NULL)
        munmap(f->shared, f->shared_size);
    free(f);
    return 0;
}

static void *s_shared(fixture_t *f, size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    f->shared = p;
    f->shared_size = size;
    return p;
}

/* fork(); the parent records the child so teardown can kill it. Children must leave by _exit. */
static pid_t s_fork(fixture_t *f)
{
    assert_true(f->npids < MAX_CHILDREN);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0)
        f->pids[f->npids++] = pid;
    return pid;
}

static int s_reap(fixture_t *f, pid_t pid)
{
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    for (int i = 0; i < f->npids; i++) {
        if (f->pids[i] == pid) {
            f->pids[i] = f->pids[--f->npids];
            break;
        }
    }
    return status;
}

static void s_assert_exit_zero(fixture_t *f, pid_t pid)
{
    int status = s_reap(f, pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void s_poke(const char *name, off_t offset, const void *bytes, size_t len)
{
    int fd = shm_open(name, O_RDWR, 0);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, len, offset), (ssize_t)len);
    close(fd);
}

static void s_peek(const char *name, off_t offset, void *bytes, size_t len)
{
    int fd = shm_open(name, O_RDONLY, 0);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, bytes, len, offset), (ssize_t)len);
    close(fd);
}

static void s_poke_u32(const char *name, off_t offset, uint32_t value)
{
    s_poke(name, offset, &value, sizeof(value));
}

static void s_truncate(const char *name, off_t size)
{
    int fd = shm_open(name, O_RDWR, 0);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, size), 0);
    close(fd);
}

/* Opening must fail with `want_errno` and leave nothing behind. */
static void s_assert_open_fails(const char *name, int want_errno)
{
    errno = 0;
    shm_region_t *region = shm_region_open(name, false);
    assert_null(region);
    assert_int_equal(errno, want_errno);
}

/* Every field derives from the counter `c`, so two writes mixed in one copy cannot pass
 * s_consistent. */
static void s_fill(shm_campaign_stats_t *s, int64_t campaign_id, uint64_t c)
{
    s->campaign_id = campaign_id;
    s->updated_unix_ms = (int64_t)c;
    s->callers_on_hold = (uint32_t)c;
    s->callers_on_call = (uint32_t)(c * 3);
    s->callers_wrap_up = (uint32_t)(c ^ 0x5a5a5a5a);
    s->lines_ringing = (uint32_t)(c >> 7);
    s->dials = c * 2;
    s->answered_human = c + 11;
    s->answered_machine = c * 13;
    s->abandoned = ~c;
    s->answer_rate = (double)c;
    s->abandon_rate_24h = (double)c / 4;
    s->abandon_rate_30d = (double)c + 0.5;
    s->dial_ratio = -(double)c;
    s->account_id = (int64_t)(c * 7);
    s->callers_preview = (uint32_t)(c + 5);
    s->paused = (uint32_t)(c & 1);
    s->pacing_threshold = (double)c / 8;
    s->talked = c * 17;
    s->bridge_decisions = c * 19;
    s->bridge_decision_max_us = c + 23;
    for (uint32_t b = 0; b < SHM_LATENCY_BUCKETS; b++)
        s->bridge_decision_buckets[b] = (uint32_t)(c * (b + 1));
}

/* A copy is consistent when it is one whole write of s_fill, or a blank slot (just claimed,
 * released or recovered) carrying only its campaign stamp. */
static bool s_consistent(const shm_campaign_stats_t *s)
{
    shm_campaign_stats_t want = {.campaign_id = s->campaign_id};
    if (memcmp(s, &want, sizeof(want)) == 0)
        return true;
    s_fill(&want, s->campaign_id, (uint64_t)s->updated_unix_ms);
    return memcmp(s, &want, sizeof(want)) == 0;
}

static bool s_blank(const shm_campaign_stats_t *s, int64_t campaign_id)
{
    shm_campaign_stats_t want = {.campaign_id = campaign_id};
    return memcmp(s, &want, sizeof(want)) == 0;
}

static void test_create_open_unlink(void **state)
{
    fixture_t *f = *state;
    errno = 0;
    assert_null(shm_region_create(f->name));
    assert_int_equal(errno, EEXIST);

    shm_region_t *reader = shm_region_open(f->name, false);
    assert_non_null(reader);
    shm_region_t *writer = shm_region_open(f->name, true);
    assert_non_null(writer);

    /* The header sits where shm/README.md says; the corruption tests below rely on it. */
    uint64_t magic = 0;
    uint16_t major = 0;
    s_peek(f->name, OFF_MAGIC, &magic, sizeof(magic));
    s_peek(f->name, OFF_MAJOR, &major, sizeof(major));
    assert_true(magic != 0);
    assert_int_equal(major, SHM_VERSION_MAJOR);

    shm_region_destroy(&reader);
    assert_null(reader);
    shm_region_destroy(&reader);
    shm_region_destroy(&writer);
    shm_region_destroy(NULL);

    assert_int_equal(shm_region_unlink(f->name), 0);
    s_assert_open_fails(f->name, ENOENT);
    assert_int_equal(shm_region_unlink(f->name), 0);
    /* The mapping outlives the name. */
    shm_proc_t proc = {.pid = 7};
    assert_int_equal(shm_proc_write(f->region, 0, &proc), 0);

    errno = 0;
    assert_null(shm_region_open(NULL, false));
    assert_int_equal(errno, EINVAL);
    assert_null(shm_region_create("no-leading-slash/x"));
}

static void test_open_rejects_missing_initialising_and_truncated_regions(void **state)
{
    fixture_t *f = *state;
    char missing[80];
    snprintf(missing, sizeof(missing), "%s-missing", f->name);
    s_assert_open_fails(missing, ENOENT);

    /* A supervisor that died between shm_open and publishing the magic leaves one of these. */
    shm_region_destroy(&f->region);
    assert_int_equal(shm_region_unlink(f->name), 0);
    int fd = shm_open(f->name, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    s_assert_open_fails(f->name, EAGAIN);
    assert_int_equal(ftruncate(fd, 4096), 0);
    s_assert_open_fails(f->name, EAGAIN);
    assert_int_equal(ftruncate(fd, 16), 0);
    s_assert_open_fails(f->name, EPROTO);
    close(fd);
    assert_int_equal(shm_region_unlink(f->name), 0);

    f->region = shm_region_create(f->name);
    assert_non_null(f->region);
    struct stat st;
    fd = shm_open(f->name, O_RDONLY, 0);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    s_truncate(f->name, st.st_size - 1);
    s_assert_open_fails(f->name, EPROTO);
    s_truncate(f->name, st.st_size / 2);
    s_assert_open_fails(f->name, EPROTO);
    s_truncate(f->name, 128);
    s_assert_open_fails(f->name, EPROTO);
}

static void test_open_rejects_other_versions_and_bad_layouts(void **state)
{
    fixture_t *f = *state;
    uint8_t original[128];
    s_peek(f->name, 0, original, sizeof(original));

    uint16_t major = SHM_VERSION_MAJOR + 1;
    s_poke(f->name, OFF_MAJOR, &major, sizeof(major));
    s_assert_open_fails(f->name, EPROTO);
    s_poke(f->name, 0, original, sizeof(original));

    uint64_t magic = UINT64_C(0x1122334455667788);
    s_poke(f->name, OFF_MAGIC, &magic, sizeof(magic));
    s_assert_open_fails(f->name, EPROTO);
    s_poke(f->name, 0, original, sizeof(original));

    struct {
        off_t offset;
        uint32_t value;
    } bad[] = {
        {OFF_HEADER_SIZE, 64},
        {OFF_HEADER_SIZE, 1u << 30},
        {OFF_PROC_TABLE + TABLE_OFFSET, 0},
        {OFF_PROC_TABLE + TABLE_OFFSET, 130},
        {OFF_PROC_TABLE + TABLE_OFFSET, 1u << 30},
        {OFF_PROC_TABLE + TABLE_SLOT_SIZE, 8},
        {OFF_PROC_TABLE + TABLE_SLOT_SIZE, 1u << 20},
        {OFF_PROC_TABLE + TABLE_COUNT, SHM_PROC_SLOTS - 1},
        {OFF_PROC_TABLE + TABLE_WORDS, 0},
        {OFF_CAMPAIGN_TABLE + TABLE_OFFSET, 128}, /* overlaps the process table */
        {OFF_CAMPAIGN_TABLE + TABLE_SLOT_SIZE, UINT32_MAX - 7},
        {OFF_CAMPAIGN_TABLE + TABLE_COUNT, UINT32_MAX},
        {OFF_CAMPAIGN_TABLE + TABLE_WORDS, 1u << 28},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s_poke_u32(f->name, bad[i].offset, bad[i].value);
        s_assert_open_fails(f->name, EPROTO);
        s_poke(f->name, 0, original, sizeof(original));
    }

    /* A newer minor version only appended fields, so it still opens. */
    uint16_t minor = SHM_VERSION_MINOR + 3;
    s_poke(f->name, OFF_MINOR, &minor, sizeof(minor));
    shm_region_t *reader = shm_region_open(f->name, false);
    assert_non_null(reader);
    shm_region_destroy(&reader);
}

/* Minor versions only append payload words. In a region made by an older one the fields it lacks
 * read as zero; in one made by a newer one, writes zero the fields this version does not know, so
 * a newer reader never takes a previous campaign's figures for current ones. */
static void test_payload_words_of_other_minor_versions(void **state)
{
    fixture_t *f = *state;
    s_poke_u32(f->name, OFF_CAMPAIGN_TABLE + TABLE_WORDS, 2);
    shm_region_t *older = shm_region_open(f->name, true);
    assert_non_null(older);
    uint32_t slot;
    assert_int_equal(shm_campaign_claim(older, 5, getpid(), &slot), 0);
    shm_campaign_stats_t in, out;
    s_fill(&in, 5, 99);
    assert_int_equal(shm_campaign_write(older, slot, &in), 0);
    assert_int_equal(shm_campaign_read(older, slot, &out), 0);
    assert_int_equal(out.campaign_id, 5);
    assert_int_equal(out.updated_unix_ms, 99);
    assert_int_equal(out.callers_on_hold, 0);
    assert_int_equal(out.dials, 0);
    assert_int_equal(shm_campaign_release(older, slot), 0);
    shm_region_destroy(&older);

    const uint32_t known = sizeof(shm_campaign_stats_t) / sizeof(uint64_t), newer_words = known + 8;
    uint32_t table;
    s_peek(f->name, OFF_CAMPAIGN_TABLE + TABLE_OFFSET, &table, sizeof(table));
    const off_t extra = (off_t)table + 24 + known * sizeof(uint64_t); /* slot 0's words beyond ours */
    uint8_t garbage[8 * sizeof(uint64_t)], seen[sizeof(garbage)], zero[sizeof(garbage)] = {0};
    memset(garbage, 0xa5, sizeof(garbage));
    s_poke(f->name, extra, garbage, sizeof(garbage));
    s_poke_u32(f->name, OFF_CAMPAIGN_TABLE + TABLE_WORDS, newer_words);
    shm_region_t *newer = shm_region_open(f->name, true);
    assert_non_null(newer);
    assert_int_equal(shm_campaign_claim(newer, 6, getpid(), &slot), 0);
    assert_int_equal(slot, 0);
    s_peek(f->name, extra, seen, sizeof(seen));
    assert_memory_equal(seen, zero, sizeof(zero));
    s_poke(f->name, extra, garbage, sizeof(garbage));
    s_fill(&in, 6, 100);
    assert_int_equal(shm_campaign_write(newer, slot, &in), 0);
    s_peek(f->name, extra, seen, sizeof(seen));
    assert_memory_equal(seen, zero, sizeof(zero));
    assert_int_equal(shm_campaign_read(newer, slot, &out), 0);
    assert_memory_equal(&out, &in, sizeof(in));
    shm_region_destroy(&newer);
}

static void test_process_slots(void **state)
{
    fixture_t *f = *state;
    shm_proc_t in = {.pid = 4242, .state = SHM_PROC_RUNNING, .restarts = 3, .last_exit = -1};
    snprintf(in.role, sizeof(in.role), "store");
    snprintf(in.name, sizeof(in.name), "store.1");
    in.started_unix_ms = 1700000000123;
    in.updated_unix_ms = 1700000000456;
    assert_int_equal(shm_proc_write(f->region, 3, &in), 0);

    shm_proc_t last = in;
    memset(last.role, 'r', sizeof(last.role)); /* no terminator: readers must still get a string */
    memset(last.name, 'n', sizeof(last.name));
    assert_int_equal(shm_proc_write(f->region, SHM_PROC_SLOTS - 1, &last), 0);

    errno = 0;
    assert_int_equal(shm_proc_write(f->region, SHM_PROC_SLOTS, &in), -1);
    assert_int_equal(errno, EINVAL);

    pid_t pid = s_fork(f);
    if (pid == 0) {
        shm_region_t *reader = shm_region_open(f->name, false);
        shm_proc_t out, blank;
        int rc = 0;
        if (reader == NULL)
            _exit(2);
        if (shm_proc_read(reader, 3, &out) != 0 || memcmp(&out, &in, sizeof(out)) != 0)
            rc = 3;
        if (shm_proc_read(reader, SHM_PROC_SLOTS - 1, &out) != 0 || strlen(out.role) != sizeof(out.role) - 1 ||
            strlen(out.name) != sizeof(out.name) - 1 || out.pid != 4242)
            rc = 4;
        if (shm_proc_read(reader, 0, &blank) != 0 || blank.state != SHM_PROC_EMPTY || blank.pid != 0)
            rc = 5;
        if (shm_proc_read(reader, SHM_PROC_SLOTS, &out) != -1 || errno != EINVAL)
            rc = 6;
        /* A read-only mapping refuses writes instead of faulting. */
        if (shm_proc_write(reader, 1, &in) != -1 || errno != EBADF)
            rc = 7;
        shm_region_destroy(&reader);
        _exit(rc);
    }
    s_assert_exit_zero(f, pid);
}

static void test_campaign_claim_write_read_release(void **state)
{
    fixture_t *f = *state;
    uint32_t slot, again;
    assert_int_equal(shm_campaign_claim(f->region, 42, getpid(), &slot), 0);
    assert_int_equal(shm_campaign_claim(f->region, 42, getpid(), &again), 0);
    assert_int_equal(again, slot);
    uint32_t found;
    assert_int_equal(shm_campaign_find(f->region, 42, &found), 0);
    assert_int_equal(found, slot);

    shm_campaign_stats_t in, out;
    assert_int_equal(shm_campaign_read(f->region, slot, &out), 0);
    assert_true(s_blank(&out, 42));
    /* The slot's campaign is stamped on every write, whatever the caller put there. */
    s_fill(&in, 999, 12345);
    assert_int_equal(shm_campaign_write(f->region, slot, &in), 0);
    in.campaign_id = 42;

    pid_t pid = s_fork(f);
    if (pid == 0) {
        shm_region_t *reader = shm_region_open(f->name, false);
        uint32_t at;
        int rc = 0;
        if (reader == NULL)
            _exit(2);
        if (shm_campaign_find(reader, 42, &at) != 0 || at != slot)
            rc = 3;
        else if (shm_campaign_read(reader, at, &out) != 0 || memcmp(&out, &in, sizeof(out)) != 0)
            rc = 4;
        if (shm_campaign_claim(reader, 43, getpid(), &at) != -1 || errno != EBADF)
            rc = 5;
        if (shm_campaign_write(reader, slot, &in) != -1 || errno != EBADF)
            rc = 6;
        shm_region_destroy(&reader);
        _exit(rc);
    }
    s_assert_exit_zero(f, pid);

    assert_int_equal(shm_campaign_release(f->region, slot), 0);
    errno = 0;
    assert_int_equal(shm_campaign_find(f->region, 42, &found), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(shm_campaign_read(f->region, slot, &out), 0);
    assert_true(s_blank(&out, 0));
    errno = 0;
    assert_int_equal(shm_campaign_release(f->region, slot), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(shm_campaign_write(f->region, slot, &in), -1);
    assert_int_equal(errno, EPERM);

    errno = 0;
    assert_int_equal(shm_campaign_claim(f->region, 0, getpid(), &slot), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_campaign_claim(f->region, 1, 0, &slot), -1);
    assert_int_equal(shm_campaign_find(f->region, -1, &slot), -1);
    assert_int_equal(shm_campaign_read(f->region, SHM_CAMPAIGN_SLOTS, &out), -1);
    assert_int_equal(shm_campaign_write(f->region, SHM_CAMPAIGN_SLOTS, &in), -1);
    assert_int_equal(shm_campaign_release(f->region, SHM_CAMPAIGN_SLOTS), -1);
    assert_int_equal(shm_region_recover_pid(f->region, 0), -1);
}

static void test_campaign_full_table(void **state)
{
    fixture_t *f = *state;
    for (uint32_t i = 0; i < SHM_CAMPAIGN_SLOTS; i++) {
        uint32_t slot;
        assert_int_equal(shm_campaign_claim(f->region, 1 + i, getpid(), &slot), 0);
        assert_int_equal(slot, i);
    }
    uint32_t slot;
    errno = 0;
    assert_int_equal(shm_campaign_claim(f->region, SHM_CAMPAIGN_SLOTS + 1, getpid(), &slot), -1);
    assert_int_equal(errno, ENOSPC);
    /* Re-claiming a campaign that holds a slot still works when the table is full. */
    assert_int_equal(shm_campaign_claim(f->region, 7, getpid(), &slot), 0);
    assert_int_equal(slot, 6);

    assert_int_equal(shm_campaign_release(f->region, 500), 0);
    assert_int_equal(shm_campaign_claim(f->region, SHM_CAMPAIGN_SLOTS + 1, getpid(), &slot), 0);
    assert_int_equal(slot, 500);
    assert_int_equal(shm_region_recover_pid(f->region, getpid()), SHM_CAMPAIGN_SLOTS);
    assert_int_equal(shm_campaign_find(f->region, 7, &slot), -1);
    assert_int_equal(shm_region_recover_pid(f->region, getpid()), 0);
}

/* A live process holding a campaign keeps it: neither another process nor a claim made on
 * another pid's behalf gets it. */
static void test_campaign_double_claim_refused(void **state)
{
    fixture_t *f = *state;
    uint32_t slot;
    assert_int_equal(shm_campaign_claim(f->region, 7, getpid(), &slot), 0);

    int hold[2];
    assert_int_equal(pipe(hold), 0);
    pid_t pid = s_fork(f);
    if (pid == 0) {
        close(hold[1]);
        shm_region_t *region = shm_region_open(f->name, true);
        uint32_t at;
        char byte;
        int rc = 0;
        if (region == NULL)
            _exit(2);
        if (shm_campaign_claim(region, 7, getpid(), &at) != -1 || errno != EBUSY)
            rc = 3;
        else if (shm_campaign_claim(region, 8, getpid(), &at) != 0)
            rc = 4;
        /* Stay alive, holding campaign 8, until the parent has tried to take it. */
        else if (read(hold[0], &byte, 1) != 0)
            rc = 5;
        shm_region_destroy(&region);
        _exit(rc);
    }
    close(hold[0]);
    uint32_t theirs = UINT32_MAX;
    for (int i = 0; i < WAIT_MS_MAX && shm_campaign_find(f->region, 8, &theirs) != 0; i++)
        s_sleep_ms(1);
    assert_true(theirs != UINT32_MAX);
    errno = 0;
    assert_int_equal(shm_campaign_claim(f->region, 8, getpid(), &slot), -1);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(shm_campaign_claim(f->region, 7, pid, &slot), -1);
    assert_int_equal(errno, EBUSY);
    close(hold[1]);
    s_assert_exit_zero(f, pid);
}

/* Children released at once race for the last free slots (different campaigns) and then all for
 * one campaign: every slot ends with one owner, and a campaign never with two. */
static void test_campaign_claim_races(void **state)
{
    fixture_t *f = *state;
    race_t *race = s_shared(f, sizeof(race_t));
    const uint32_t free_slots = RACERS / 2;
    for (uint32_t i = 0; i < SHM_CAMPAIGN_SLOTS - free_slots; i++) {
        uint32_t slot;
        assert_int_equal(shm_campaign_claim(f->region, 1 + i, getpid(), &slot), 0);
    }

    for (int same = 0; same < 2; same++) {
        int go[2], done[2];
        assert_int_equal(pipe(go), 0);
        assert_int_equal(pipe(done), 0);
        pid_t pids[RACERS];
        for (int i = 0; i < RACERS; i++) {
            atomic_store(&race->result[i], INT64_MIN);
            pids[i] = s_fork(f);
            if (pids[i] == 0) {
                close(go[1]);
                close(done[1]);
                shm_region_t *region = shm_region_open(f->name, true);
                uint32_t slot;
                char byte;
                if (region == NULL || read(go[0], &byte, 1) != 0)
                    _exit(2);
                int64_t campaign = same ? 50000 : 50000 + i;
                int rc = shm_campaign_claim(region, campaign, getpid(), &slot);
                atomic_store(&race->result[i], rc == 0 ? (int64_t)slot : -(int64_t)errno);
                /* Holders stay alive while the parent checks, so their claims count as live. */
                rc = read(done[0], &byte, 1) == 0 ? 0 : 3;
                shm_region_destroy(&region);
                _exit(rc);
            }
        }
        close(go[0]);
        close(done[0]);
        close(go[1]);
        int winners = 0;
        bool taken[SHM_CAMPAIGN_SLOTS] = {false};
        for (int i = 0; i < RACERS; i++) {
            int64_t result = INT64_MIN;
            for (int t = 0; t < WAIT_MS_MAX && (result = atomic_load(&race->result[i])) == INT64_MIN; t++)
                s_sleep_ms(1);
            assert_true(result != INT64_MIN);
            if (result >= 0) {
                assert_true(result >= SHM_CAMPAIGN_SLOTS - free_slots && result < SHM_CAMPAIGN_SLOTS);
                assert_false(taken[result]);
                taken[result] = true;
                winners++;
                uint32_t found;
                assert_int_equal(shm_campaign_find(f->region, same ? 50000 : 50000 + i, &found), 0);
                assert_int_equal(found, result);
            } else {
                assert_int_equal(-result, same ? EBUSY : ENOSPC);
            }
        }
        if (same)
            assert_true(winners <= 1);
        else
            assert_int_equal(winners, free_slots);
        close(done[1]);
        for (int i = 0; i < RACERS; i++) {
            s_assert_exit_zero(f, pids[i]);
            shm_region_recover_pid(f->region, pids[i]);
        }
    }
}

/* A dialer that died without releasing: its successor takes the stale slot over by itself, or
 * the supervisor frees it first. Either way the slot ends readable and owned once. */
static void test_campaign_stale_slot_take_over_and_recovery(void **state)
{
    fixture_t *f = *state;
    for (int supervisor_first = 0; supervisor_first < 2; supervisor_first++) {
        int64_t campaign = 77 + supervisor_first;
        pid_t pid = s_fork(f);
        if (pid == 0) {
            shm_region_t *region = shm_region_open(f->name, true);
            uint32_t slot;
            shm_campaign_stats_t stats;
            s_fill(&stats, campaign, 5);
            /* Unmapping is not releasing: the slot stays claimed by this pid after it exits. */
            int rc = 0;
            if (region == NULL || shm_campaign_claim(region, campaign, getpid(), &slot) != 0 ||
                shm_campaign_write(region, slot, &stats) != 0)
                rc = 2;
            shm_region_destroy(&region);
            _exit(rc);
        }
        s_assert_exit_zero(f, pid);
        uint32_t stale, slot;
        assert_int_equal(shm_campaign_find(f->region, campaign, &stale), 0);
        shm_campaign_stats_t out;
        assert_int_equal(shm_campaign_read(f->region, stale, &out), 0);
        assert_int_equal(out.updated_unix_ms, 5);

        if (supervisor_first) {
            assert_int_equal(shm_region_recover_pid(f->region, pid), 1);
            assert_int_equal(shm_region_recover_pid(f->region, pid), 0);
            assert_int_equal(shm_campaign_find(f->region, campaign, &slot), -1);
            assert_int_equal(shm_campaign_read(f->region, stale, &out), 0);
            assert_true(s_blank(&out, 0));
        }
        assert_int_equal(shm_campaign_claim(f->region, campaign, getpid(), &slot), 0);
        assert_int_equal(slot, stale);
        assert_int_equal(shm_campaign_read(f->region, slot, &out), 0);
        assert_true(s_blank(&out, campaign));
        /* The dead pid no longer owns anything the supervisor could free under the successor. */
        assert_int_equal(shm_region_recover_pid(f->region, pid), 0);
        assert_int_equal(shm_campaign_find(f->region, campaign, &slot), 0);
        assert_int_equal(slot, stale);
        assert_int_equal(shm_campaign_release(f->region, slot), 0);
    }
}

static void s_writer(const char *name, torture_t *t, int w)
{
    shm_region_t *region = shm_region_open(name, true);
    uint32_t slot;
    if (region == NULL || shm_campaign_claim(region, CAMPAIGN_BASE + w, getpid(), &slot) != 0)
        _exit(2);
    atomic_store(&t->slot[w], (int64_t)slot);
    for (uint64_t c = 1;; c++) {
        shm_campaign_stats_t stats;
        s_fill(&stats, CAMPAIGN_BASE + w, c);
        if (shm_campaign_write(region, slot, &stats) != 0)
            _exit(3);
        if ((c & 1023) == 0)
            atomic_store_explicit(&t->writes[w], c, memory_order_relaxed);
    }
}

static void s_reader(const char *name, torture_t *t, int r)
{
    shm_region_t *region = shm_region_open(name, false);
    if (region == NULL)
        _exit(2);
    while (!atomic_load(&t->stop)) {
        for (int w = 0; w < WRITERS; w++) {
            int64_t slot = atomic_load(&t->slot[w]);
            if (slot < 0)
                continue;
            shm_campaign_stats_t stats;
            if (shm_campaign_read(region, (uint32_t)slot, &stats) != 0)
                atomic_fetch_add_explicit(&t->torn[r], 1, memory_order_relaxed);
            else if (s_consistent(&stats) && (stats.campaign_id == 0 || stats.campaign_id == CAMPAIGN_BASE + w))
                atomic_fetch_add_explicit(&t->ok[r], 1, memory_order_relaxed);
            else
                atomic_fetch_add_explicit(&t->bad[r], 1, memory_order_relaxed);
        }
    }
    shm_region_destroy(&region);
    _exit(0);
}

static pid_t s_spawn_writer(fixture_t *f, torture_t *t, int w)
{
    atomic_store(&t->slot[w], -1);
    pid_t pid = s_fork(f);
    if (pid == 0)
        s_writer(f->name, t, w);
    for (int i = 0; i < WAIT_MS_MAX && atomic_load(&t->slot[w]) < 0; i++)
        s_sleep_ms(1);
    assert_true(atomic_load(&t->slot[w]) >= 0);
    return pid;
}

static uint64_t s_min_ok(torture_t *t)
{
    uint64_t least = UINT64_MAX;
    for (int r = 0; r < READERS; r++) {
        uint64_t ok = atomic_load(&t->ok[r]);
        least = ok < least ? ok : least;
    }
    return least;
}

static void test_torture_writers_readers_and_kill_9(void **state)
{
    fixture_t *f = *state;
    torture_t *t = s_shared(f, sizeof(torture_t));
    unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    srand(seed);

    pid_t writers[WRITERS], readers[READERS];
    for (int w = 0; w < WRITERS; w++) {
        writers[w] = s_spawn_writer(f, t, w);
        assert_int_equal(atomic_load(&t->slot[w]), w);
    }
    for (int r = 0; r < READERS; r++) {
        readers[r] = s_fork(f);
        if (readers[r] == 0)
            s_reader(f->name, t, r);
    }
    for (int i = 0; i < WAIT_MS_MAX && s_min_ok(t) < 1000; i++)
        s_sleep_ms(1);
    assert_true(s_min_ok(t) > 0);

    /* Kill writers at arbitrary instructions until some died mid-write. Even rounds free the dead
     * writer's slot the supervisor's way; odd rounds let its successor take the stale slot over. */
    int rounds = 0, torn_kills = 0;
    while (rounds < MAX_ROUNDS && (torn_kills < 3 || rounds < 4 * WRITERS)) {
        int w = rounds % WRITERS;
        uint32_t slot = (uint32_t)atomic_load(&t->slot[w]);
        s_sleep_us(rand() % 2000);
        assert_int_equal(kill(writers[w], SIGKILL), 0);
        int status = s_reap(f, writers[w]);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);

        shm_campaign_stats_t out;
        if (shm_campaign_read(f->region, slot, &out) != 0) {
            assert_int_equal(errno, EAGAIN);
            torn_kills++;
        } else {
            assert_true(s_consistent(&out));
        }
        if (rounds % 2 == 0) {
            assert_int_equal(shm_region_recover_pid(f->region, writers[w]), 1);
            assert_int_equal(shm_campaign_read(f->region, slot, &out), 0);
            assert_true(s_blank(&out, 0));
            uint32_t found;
            assert_int_equal(shm_campaign_find(f->region, CAMPAIGN_BASE + w, &found), -1);
        }
        writers[w] = s_spawn_writer(f, t, w);
        assert_int_equal(atomic_load(&t->slot[w]), slot);
        rounds++;
    }

    atomic_store(&t->stop, 1);
    uint64_t ok = 0, torn = 0, writes = 0;
    for (int r = 0; r < READERS; r++) {
        s_assert_exit_zero(f, readers[r]);
        assert_int_equal(atomic_load(&t->bad[r]), 0);
        ok += atomic_load(&t->ok[r]);
        torn += atomic_load(&t->torn[r]);
    }
    for (int w = 0; w < WRITERS; w++) {
        writes += atomic_load(&t->writes[w]);
        kill(writers[w], SIGKILL);
        s_reap(f, writers[w]);
        assert_int_equal(shm_region_recover_pid(f->region, writers[w]), 1);
    }
    print_message("seed %u: %d kills, %d mid-write; readers: %llu consistent, %llu unreadable; >= %llu writes\n", seed, rounds,
                  torn_kills, (unsigned long long)ok, (unsigned long long)torn, (unsigned long long)writes);
    assert_true(torn_kills > 0);

    /* Every slot is free, readable and claimable again. */
    for (int w = 0; w < WRITERS; w++) {
        uint32_t slot;
        shm_campaign_stats_t out;
        assert_int_equal(shm_campaign_find(f->region, CAMPAIGN_BASE + w, &slot), -1);
        assert_int_equal(shm_campaign_read(f->region, (uint32_t)w, &out), 0);
        assert_true(s_blank(&out, 0));
        assert_int_equal(shm_campaign_claim(f->region, CAMPAIGN_BASE + w, getpid(), &slot), 0);
        assert_int_equal(slot, w);
    }
}

/* Every value lands in a bucket whose top is at or above it and at most a quarter above it (exact
 * below 8 us), buckets never go backwards, and quantiles read the right bucket. */
static void test_latency_histogram(void **state)
{
    (void)state;
    uint32_t last = 0;
    for (uint64_t us = 0; us < (UINT64_C(1) << 26); us = us < 64 ? us + 1 : us + us / 61) {
        uint32_t b = shm_latency_bucket(us);
        assert_true(b >= last);
        last = b;
        uint64_t top = shm_latency_bucket_max_us(b);
        assert_true(top >= us);
        if (b < SHM_LATENCY_BUCKETS - 1) {
            assert_true(top <= us + us / 4);
            assert_int_equal(shm_latency_bucket(top), b);
            assert_int_equal(shm_latency_bucket(top + 1), b + 1);
        }
        if (us < 8)
            assert_int_equal(top, us);
    }
    assert_int_equal(shm_latency_bucket(UINT64_MAX), SHM_LATENCY_BUCKETS - 1);

    uint32_t buckets[SHM_LATENCY_BUCKETS] = {0};
    for (uint64_t us = 1; us <= 1000; us++) /* 1..1000 us, one each */
        buckets[shm_latency_bucket(us)]++;
    uint64_t p50 = shm_latency_quantile(buckets, 1000, 1000, 0.5);
    uint64_t p99 = shm_latency_quantile(buckets, 1000, 1000, 0.99);
    assert_true(p50 >= 500 && p50 <= 625);
    assert_true(p99 >= 990 && p99 <= 1000); /* capped at the maximum */
    assert_int_equal(shm_latency_quantile(buckets, 0, 0, 0.99), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_open_unlink, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_open_rejects_missing_initialising_and_truncated_regions, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_open_rejects_other_versions_and_bad_layouts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_payload_words_of_other_minor_versions, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_process_slots, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_campaign_claim_write_read_release, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_campaign_full_table, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_campaign_double_claim_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_campaign_claim_races, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_campaign_stale_slot_take_over_and_recovery, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_torture_writers_readers_and_kill_9, s_setup, s_teardown),
        cmocka_unit_test(test_latency_histogram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
