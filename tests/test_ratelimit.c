/*
 * The front end's rate limiter (http/ratelimit.c) on its own, with a clock the tests set: exact
 * admission counts, refill to the nanosecond, the header values, identities (pairs, addresses,
 * first sight charged to the address), the memory bound and what eviction may take, threads on
 * one key, the credential parser against actors/store/auth.c's rules, and the two flags.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "http/ratelimit.h"

#define NS UINT64_C(1000000000)

/* ---- a clock the test moves ------------------------------------------------------------------- */

typedef struct {
    atomic_uint_fast64_t now;
    atomic_uint_fast64_t step; /* added by every reading: time passes as requests arrive */
} test_clock_t;

static uint64_t s_clock(void *arg)
{
    test_clock_t *c = arg;
    return atomic_fetch_add(&c->now, atomic_load(&c->step));
}

static http_rl_t *s_new(test_clock_t *clock, uint32_t rate, uint32_t burst, size_t capacity)
{
    atomic_store(&clock->now, 1000 * NS);
    atomic_store(&clock->step, 0);
    http_rl_config_t config = {.rate = rate, .burst = burst, .capacity = capacity, .clock = s_clock, .clock_arg = clock};
    http_rl_t *rl = http_rl_new(&config);
    assert_non_null(rl);
    return rl;
}

static struct sockaddr_in s_v4(const char *ip)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(40000)};
    assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return sin;
}

static struct sockaddr_in6 s_v6(const char *ip)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(40000)};
    assert_int_equal(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
    return sin6;
}

/* One request with a credential pair from 10.0.0.1. */
static http_rl_verdict_t s_key(http_rl_t *rl, const char *key, const char *secret)
{
    struct sockaddr_in peer = s_v4("10.0.0.1");
    http_rl_verdict_t v;
    http_rl_take(rl, key, strlen(key), secret, strlen(secret), (struct sockaddr *)&peer, sizeof(peer), &v);
    return v;
}

static http_rl_verdict_t s_keyed_from(http_rl_t *rl, const char *key, const struct sockaddr_in *peer)
{
    http_rl_verdict_t v;
    http_rl_take(rl, key, strlen(key), "secret", 6, (const struct sockaddr *)peer, sizeof(*peer), &v);
    return v;
}

static http_rl_verdict_t s_addr(http_rl_t *rl, const void *peer, socklen_t len)
{
    http_rl_verdict_t v;
    http_rl_take(rl, NULL, 0, NULL, 0, peer, len, &v);
    return v;
}

/* Requests admitted for the pair until the first refusal (bounded). */
static unsigned s_drain(http_rl_t *rl, const char *key, const char *secret)
{
    unsigned n = 0;
    while (n < 10000000 && s_key(rl, key, secret).allowed)
        n++;
    return n;
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void test_siphash_reference_vectors(void **state)
{
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    assert_true(http_rl_siphash(key, msg, 0) == UINT64_C(0x726fdb47dd0e0e31));
    assert_true(http_rl_siphash(key, msg, 15) == UINT64_C(0xa129ca6149be45e5));
    assert_true(http_rl_siphash(key, msg, 63) == UINT64_C(0x958a324ceb064572));
}

static void test_config_out_of_range_is_refused(void **state)
{
    const http_rl_config_t bad[] = {
        {.rate = 0, .burst = 1},
        {.rate = 1, .burst = 0},
        {.rate = HTTP_RL_MAX_RATE + 1, .burst = 1},
        {.rate = 1, .burst = HTTP_RL_MAX_BURST + 1},
        {.rate = 1, .burst = 1, .capacity = SIZE_MAX},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(http_rl_new(&bad[i]));
    http_rl_t *rl = http_rl_new(&(http_rl_config_t){.rate = 1, .burst = 1});
    assert_non_null(rl);
    http_rl_stats_t st;
    http_rl_stats(rl, &st);
    assert_int_equal(st.capacity, HTTP_RL_DEFAULT_CAPACITY);
    assert_int_equal(st.tracked, 0);
    http_rl_destroy(&rl);
    assert_null(rl);
    http_rl_destroy(&rl);
}

/* A full bucket admits exactly `burst`, counting Remaining down, then refuses. */
static void test_burst_then_refused(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, 2, 5, 0);
    for (uint32_t i = 0; i < 5; i++) {
        http_rl_verdict_t v = s_key(rl, "ik_a", "ia_a");
        assert_true(v.allowed);
        assert_false(v.by_address);
        assert_int_equal(v.remaining, 4 - i);
        /* (i + 1) requests missing at 2 per second: ceil((i + 1) / 2) seconds to full. */
        assert_int_equal(v.reset_s, (i + 2) / 2);
        assert_int_equal(v.retry_after_s, 0);
    }
    for (int i = 0; i < 3; i++) {
        http_rl_verdict_t v = s_key(rl, "ik_a", "ia_a");
        assert_false(v.allowed);
        assert_false(v.by_address);
        assert_int_equal(v.remaining, 0);
        assert_int_equal(v.reset_s, 3);
        assert_int_equal(v.retry_after_s, 1);
    }
    http_rl_stats_t st;
    http_rl_stats(rl, &st);
    assert_int_equal(st.refused, 3);
    http_rl_destroy(&rl);
}

/* 3 per second is a third of a second per request, which no whole number of nanoseconds is:
 * refill must still be exact, not rounded per step. */
static void test_refill_is_exact(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, 3, 4, 0);
    assert_int_equal(s_drain(rl, "k", "s"), 4);
    atomic_fetch_add(&clock.now, 333333333); /* 0.999999999 of a request */
    assert_false(s_key(rl, "k", "s").allowed);
    atomic_fetch_add(&clock.now, 1);
    assert_true(s_key(rl, "k", "s").allowed);
    assert_false(s_key(rl, "k", "s").allowed);

    /* A thousand small steps add up to exactly what one large step would. */
    for (int i = 0; i < 1000; i++) {
        atomic_fetch_add(&clock.now, 1000000); /* 1 ms: 0.003 of a request */
        s_key(rl, "k", "s");
    }
    /* 3 requests became due during the steps and were taken by them. */
    atomic_fetch_add(&clock.now, 333333334);
    assert_int_equal(s_drain(rl, "k", "s"), 1);

    /* Idle for long: full, never more. */
    atomic_fetch_add(&clock.now, 3600 * NS);
    assert_int_equal(s_drain(rl, "k", "s"), 4);
    /* 3.500000001 requests: 3 now, the rest kept for later. */
    atomic_fetch_add(&clock.now, 1166666667);
    assert_int_equal(s_drain(rl, "k", "s"), 3);
    atomic_fetch_add(&clock.now, 166666666); /* 0.499999998 more: still short */
    assert_false(s_key(rl, "k", "s").allowed);
    atomic_fetch_add(&clock.now, 1);
    assert_true(s_key(rl, "k", "s").allowed);
    http_rl_destroy(&rl);
}

static void test_reset_and_retry_after(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, 1, 10, 0);
    assert_int_equal(s_drain(rl, "k", "s"), 10);
    http_rl_verdict_t v = s_key(rl, "k", "s");
    assert_int_equal(v.reset_s, 10);
    assert_int_equal(v.retry_after_s, 1);
    atomic_fetch_add(&clock.now, 2500000000); /* 2.5 of 10 back */
    v = s_key(rl, "k", "s");
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 1);
    assert_int_equal(v.reset_s, 9); /* 8.5 missing: 8.5 s, rounded up */
    http_rl_destroy(&rl);

    /* A millisecond to the next request still says one second: Retry-After is whole seconds. */
    rl = s_new(&clock, 1000, 1, 0);
    assert_true(s_key(rl, "k", "s").allowed);
    v = s_key(rl, "k", "s");
    assert_false(v.allowed);
    assert_int_equal(v.retry_after_s, 1);
    assert_int_equal(v.reset_s, 1);
    http_rl_destroy(&rl);
}

/* The largest settings and a clock far ahead of the bucket do not overflow. */
static void test_extremes_do_not_overflow(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, HTTP_RL_MAX_RATE, HTTP_RL_MAX_BURST, 0);
    http_rl_verdict_t v = s_key(rl, "k", "s");
    assert_int_equal(v.remaining, HTTP_RL_MAX_BURST - 1);
    atomic_store(&clock.now, UINT64_C(1) << 62);
    v = s_key(rl, "k", "s");
    assert_int_equal(v.remaining, HTTP_RL_MAX_BURST - 1);
    assert_int_equal(v.reset_s, 1);
    http_rl_destroy(&rl);

    rl = s_new(&clock, 1, HTTP_RL_MAX_BURST, 0);
    v = s_key(rl, "k", "s");
    assert_int_equal(v.reset_s, 1);
    atomic_store(&clock.now, UINT64_MAX - 1);
    assert_true(s_key(rl, "k", "s").allowed);
    http_rl_destroy(&rl);
}

/* A clock reading older than the bucket's (a thread that read the clock first but locked last)
 * neither refills nor moves the bucket back. */
static void test_stale_reading_adds_nothing(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, 1, 1, 0);
    assert_true(s_key(rl, "k", "s").allowed);
    atomic_store(&clock.now, 500 * NS);
    assert_false(s_key(rl, "k", "s").allowed);
    atomic_store(&clock.now, 1000 * NS + NS - 1);
    assert_false(s_key(rl, "k", "s").allowed);
    atomic_store(&clock.now, 1001 * NS);
    assert_true(s_key(rl, "k", "s").allowed);
    http_rl_destroy(&rl);
}

/* Each pair is its own bucket: another key, or the same key with another secret, is unaffected. */
static void test_pairs_are_independent(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, 1, 10, 0);
    assert_int_equal(s_drain(rl, "ik_a", "ia_a"), 10);
    assert_true(s_key(rl, "ik_b", "ia_b").allowed);
    /* Knowing a key but not its secret spends nothing of the key's budget, nor is it spent. */
    assert_true(s_key(rl, "ik_a", "wrong").allowed);
    assert_false(s_key(rl, "ik_a", "ia_a").allowed);
    /* The key's length is part of the identity: the same bytes split differently are another pair. */
    assert_true(s_key(rl, "ik_", "aia_a").allowed);
    assert_true(s_key(rl, "ik_a", "").allowed);
    http_rl_destroy(&rl);
}

/* Without a key the address decides: IPv4 by address, IPv4-mapped IPv6 as IPv4, IPv6 by /64. */
static void test_addresses(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, 1, 2, 0);
    struct sockaddr_in a = s_v4("192.0.2.1"), b = s_v4("192.0.2.2");
    struct sockaddr_in6 mapped = s_v6("::ffff:192.0.2.1"), v6a = s_v6("2001:db8:1:2::1"), v6b = s_v6("2001:db8:1:2:ffff::9"),
                        v6c = s_v6("2001:db8:1:3::1");
    http_rl_verdict_t v = s_addr(rl, &a, sizeof(a));
    assert_true(v.allowed);
    assert_true(v.by_address);
    assert_true(s_addr(rl, &mapped, sizeof(mapped)).allowed);
    v = s_addr(rl, &a, sizeof(a));
    assert_false(v.allowed);
    assert_true(v.by_address);
    assert_true(s_addr(rl, &b, sizeof(b)).allowed);

    assert_true(s_addr(rl, &v6a, sizeof(v6a)).allowed);
    assert_true(s_addr(rl, &v6b, sizeof(v6b)).allowed);
    assert_false(s_addr(rl, &v6a, sizeof(v6a)).allowed);
    assert_true(s_addr(rl, &v6c, sizeof(v6c)).allowed);

    /* No address (or a truncated one) is one shared bucket, not a way around the limit. */
    assert_true(s_addr(rl, NULL, 0).allowed);
    assert_true(s_addr(rl, &a, 4).allowed);
    assert_false(s_addr(rl, NULL, 0).allowed);
    http_rl_destroy(&rl);
}

/* A pair's first sight costs its address one request; a refused first sight takes no way, while
 * pairs already known keep working from the same address. */
static void test_first_sight_is_charged_to_the_address(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, 1, 3, 0);
    struct sockaddr_in x = s_v4("198.51.100.7"), y = s_v4("198.51.100.8");
    http_rl_verdict_t v = s_keyed_from(rl, "known", &x);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 2);
    assert_true(s_keyed_from(rl, "invented-1", &x).allowed);
    assert_true(s_keyed_from(rl, "invented-2", &x).allowed);
    http_rl_stats_t before, after;
    http_rl_stats(rl, &before);
    assert_int_equal(before.tracked, 4); /* the address and three pairs */

    for (int i = 0; i < 100; i++) {
        char key[32];
        snprintf(key, sizeof(key), "invented-%d", 3 + i);
        v = s_keyed_from(rl, key, &x);
        assert_false(v.allowed);
        assert_true(v.by_address);
        assert_int_equal(v.retry_after_s, 1);
    }
    http_rl_stats(rl, &after);
    assert_int_equal(after.tracked, before.tracked);

    v = s_keyed_from(rl, "known", &x);
    assert_true(v.allowed);
    assert_false(v.by_address);
    assert_true(s_keyed_from(rl, "invented-200", &y).allowed);
    /* Keyless requests from x share the address's bucket, which the first sights emptied. */
    assert_false(s_addr(rl, &x, sizeof(x)).allowed);
    http_rl_destroy(&rl);
}

/* Memory is fixed: however many identities come, the table holds at most its capacity. */
static void test_table_never_grows(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, 10, 10, 20); /* rounded up to 32: 4 sets of 8 */
    http_rl_stats_t st;
    http_rl_stats(rl, &st);
    assert_int_equal(st.capacity, 32);
    for (uint32_t i = 0; i < 5000; i++) {
        struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        assert_true(s_addr(rl, &peer, sizeof(peer)).allowed);
        atomic_fetch_add(&clock.now, NS / 1000);
        http_rl_stats(rl, &st);
        assert_true(st.tracked <= 32);
    }
    assert_int_equal(st.tracked, 32);
    assert_int_equal(st.evicted_full + st.evicted_active, 5000 - 32);
    /* At 10 per second an entry used once is full again 0.1 s later: with 1 ms between requests
     * most victims are still refilling, so the busiest sets had to evict active entries. */
    assert_true(st.evicted_active > 0);
    http_rl_destroy(&rl);
}

/* Idle (full) buckets are the ones evicted, and evicting them loses nothing. */
static void test_full_buckets_are_evicted_first(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, 1000, 1, 8); /* one set */
    for (uint32_t i = 0; i < 1000; i++) {
        struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i)};
        assert_true(s_addr(rl, &peer, sizeof(peer)).allowed);
        atomic_fetch_add(&clock.now, NS / 1000 * 2); /* 2 ms: each bucket is full again before the next request */
    }
    http_rl_stats_t st;
    http_rl_stats(rl, &st);
    assert_int_equal(st.evicted_full, 1000 - 8);
    assert_int_equal(st.evicted_active, 0);
    http_rl_destroy(&rl);
}

/*
 * A flood of invented pairs from many addresses, all landing in the one set a drained key lives
 * in, replaces the fresh entries (one request short of full) and never the drained one: the
 * key's bucket is not reset, it stays empty.
 */
static void test_flood_cannot_reset_a_drained_key(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, 1, 100, 8); /* one set of 8 ways for everything */
    assert_int_equal(s_drain(rl, "ik_real", "ia_real"), 100);
    for (uint32_t i = 0; i < 20000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "ik_fake_%u", i);
        struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0xc6336400u + i)};
        assert_true(s_keyed_from(rl, key, &peer).allowed);
    }
    http_rl_stats_t st;
    http_rl_stats(rl, &st);
    assert_int_equal(st.tracked, 8);
    assert_true(st.evicted_active > 0);
    http_rl_verdict_t v = s_key(rl, "ik_real", "ia_real");
    assert_false(v.allowed);
    assert_false(v.by_address);
    http_rl_destroy(&rl);
}

/* ---- threads ---------------------------------------------------------------------------------- */

#define S_THREADS  8
#define S_ATTEMPTS 1500

typedef struct {
    http_rl_t *rl;
    pthread_barrier_t *start;
    unsigned admitted;
} hammer_t;

static void *s_hammer(void *arg)
{
    hammer_t *h = arg;
    pthread_barrier_wait(h->start);
    for (int i = 0; i < S_ATTEMPTS; i++)
        if (s_key(h->rl, "ik_hot", "ia_hot").allowed)
            h->admitted++;
    return NULL;
}

static unsigned s_hammer_all(http_rl_t *rl)
{
    pthread_t threads[S_THREADS];
    hammer_t hammers[S_THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, S_THREADS);
    for (int i = 0; i < S_THREADS; i++) {
        hammers[i] = (hammer_t){.rl = rl, .start = &start};
        assert_int_equal(pthread_create(&threads[i], NULL, s_hammer, &hammers[i]), 0);
    }
    unsigned total = 0;
    for (int i = 0; i < S_THREADS; i++) {
        pthread_join(threads[i], NULL);
        total += hammers[i].admitted;
    }
    pthread_barrier_destroy(&start);
    return total;
}

/* Threads on one key while the clock stands still, then after it moved: exactly the burst, then
 * exactly what the elapsed time refilled. */
static void test_threads_on_one_key_stopped_clock(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, 1000, 2000, 0);
    assert_int_equal(s_hammer_all(rl), 2000);
    atomic_fetch_add(&clock.now, 1234567890); /* 1234.56789 requests */
    assert_int_equal(s_hammer_all(rl), 1234);
    atomic_fetch_add(&clock.now, 432110); /* and 0.43211 more: the fraction carried over completes one */
    assert_int_equal(s_hammer_all(rl), 1);
    http_rl_destroy(&rl);
}

/*
 * Threads on one key while every clock reading moves time on, so readings reach the lock out of
 * order. Whatever the interleaving, the bucket's books balance: once it is read at a final time
 * T, burst + floor(rate * (T - T0)) requests were admitted in all, T0 being its first request.
 */
static void test_threads_on_one_key_running_clock(void **state)
{
    test_clock_t clock;
    http_rl_t *rl = s_new(&clock, 1000, 100, 0);
    uint64_t t0 = atomic_load(&clock.now);
    unsigned admitted = s_key(rl, "ik_hot", "ia_hot").allowed;
    atomic_store(&clock.step, 1000); /* 1 us per reading: a thousandth of a request */
    admitted += s_hammer_all(rl);
    atomic_store(&clock.step, 0);
    uint64_t end = atomic_load(&clock.now) + 777777;
    atomic_store(&clock.now, end);
    admitted += s_drain(rl, "ik_hot", "ia_hot");
    assert_int_equal(admitted, 100 + (end - t0) * 1000 / NS);
    /* The readings alone made (S_THREADS * S_ATTEMPTS) us: the refill was real, not just the burst. */
    assert_true(admitted > 100 + 10);
    http_rl_destroy(&rl);
}

/* ---- credentials ------------------------------------------------------------------------------ */

static http_rl_view_t s_view(const char *s)
{
    return (http_rl_view_t){s, s ? strlen(s) : 0};
}

static void s_assert_credentials(const http_rl_presented_t *in, const char *key, const char *secret)
{
    http_rl_credential_t out;
    if (key == NULL) {
        assert_int_equal(http_rl_credentials(in, &out), -1);
        return;
    }
    assert_int_equal(http_rl_credentials(in, &out), 0);
    assert_string_equal(out.key, key);
    assert_string_equal(out.secret, secret);
}

static void test_credentials_where_the_actor_finds_them(void **state)
{
    char long_key[HTTP_RL_KEY_MAX + 2];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    char max_key[HTTP_RL_KEY_MAX + 1];
    memset(max_key, 'k', sizeof(max_key) - 1);
    max_key[sizeof(max_key) - 1] = '\0';

    s_assert_credentials(&(http_rl_presented_t){0}, NULL, NULL);
    s_assert_credentials(&(http_rl_presented_t){.api_key = s_view("ik_h"), .api_auth = s_view("ia_h")}, "ik_h", "ia_h");
    s_assert_credentials(&(http_rl_presented_t){.api_key = s_view(max_key), .api_auth = s_view("ia_h")}, max_key, "ia_h");
    /* A pair goes together: half of one is passed over for the next place. */
    s_assert_credentials(
        &(http_rl_presented_t){.api_key = s_view("ik_h"), .x_api_key = s_view("ik_x"), .x_api_auth = s_view("ia_x")}, "ik_x",
        "ia_x");
    s_assert_credentials(
        &(http_rl_presented_t){
            .api_key = s_view(long_key), .api_auth = s_view("ia_h"), .x_api_key = s_view("ik_x"), .x_api_auth = s_view("ia_x")},
        "ik_x", "ia_x");
    /* Headers before Basic before the query. */
    s_assert_credentials(&(http_rl_presented_t){.api_key = s_view("ik_h"),
                                                .api_auth = s_view("ia_h"),
                                                .authorization = s_view("Basic aWtfYjppYV9i"),
                                                .query = s_view("api_key=ik_q&api_auth=ia_q")},
                         "ik_h", "ia_h");
    s_assert_credentials(
        &(http_rl_presented_t){.authorization = s_view("Basic aWtfYjppYV9i"), .query = s_view("api_key=ik_q&api_auth=ia_q")},
        "ik_b", "ia_b");
    s_assert_credentials(&(http_rl_presented_t){.authorization = s_view("bASIC aWtfYjppYV9i")}, "ik_b", "ia_b");
    /* "ik_b:ia:b": the secret keeps its colon. */
    s_assert_credentials(&(http_rl_presented_t){.authorization = s_view("Basic aWtfYjppYTpi")}, "ik_b", "ia:b");
    /* A malformed Basic value is no credential at all (auth.c stops there), query or not. */
    s_assert_credentials(
        &(http_rl_presented_t){.authorization = s_view("Basic aWtfYjppYV9"), .query = s_view("api_key=q&api_auth=q")}, NULL, NULL);
    s_assert_credentials(&(http_rl_presented_t){.authorization = s_view("Basic "), .query = s_view("api_key=q&api_auth=q")}, NULL,
                         NULL);
    s_assert_credentials(&(http_rl_presented_t){.authorization = s_view("Basic aWtfYg==")}, NULL, NULL); /* no colon */
    /* Another scheme is not Basic: the query is next. */
    s_assert_credentials(&(http_rl_presented_t){.authorization = s_view("Bearer x"), .query = s_view("api_key=ik_q&api_auth=ia_q")},
                         "ik_q", "ia_q");
    /* The query is decoded as the actor decodes it, names included. */
    s_assert_credentials(&(http_rl_presented_t){.query = s_view("a=1&api%5Fkey=ik%5Fq&api_auth=s+1%21")}, "ik_q", "s 1!");
    s_assert_credentials(&(http_rl_presented_t){.query = s_view("api_key&api_auth=x")}, "", "x");
    /* The first api_key decides even when it cannot be decoded. */
    s_assert_credentials(&(http_rl_presented_t){.query = s_view("api_key=%zz&api_key=ik_q&api_auth=ia_q")}, NULL, NULL);
    s_assert_credentials(&(http_rl_presented_t){.query = s_view("api_key=ik_q%00&api_auth=ia_q")}, NULL, NULL);
    s_assert_credentials(&(http_rl_presented_t){.query = s_view("api_key=ik_q")}, NULL, NULL);
    /* A NUL ends the value, as it ends the actor's C string. */
    http_rl_presented_t nul = {.api_key = {"ik_h\0junk", 9}, .api_auth = {"ia_h\0more", 9}};
    s_assert_credentials(&nul, "ik_h", "ia_h");
}

/* ---- the flags -------------------------------------------------------------------------------- */

static int s_parse(impact_config_t *config, const char *a, const char *b)
{
    char *argv[] = {"impactd", (char *)a, (char *)b, NULL};
    int argc = b != NULL ? 3 : a != NULL ? 2 : 1;
    int first;
    char err[160];
    return config_parse(config, argc, argv, &first, err, sizeof(err));
}

static void test_flags_and_environment(void **state)
{
    impact_config_t *config = malloc(sizeof(*config));
    assert_non_null(config);
    unsetenv("IMPACT_RATE_LIMIT");
    unsetenv("IMPACT_RATE_BURST");
    assert_int_equal(s_parse(config, NULL, NULL), 0);
    assert_int_equal(config->rate_limit, 100);
    assert_int_equal(config->rate_burst, 200);

    setenv("IMPACT_RATE_LIMIT", "7", 1);
    setenv("IMPACT_RATE_BURST", "9", 1);
    assert_int_equal(s_parse(config, NULL, NULL), 0);
    assert_int_equal(config->rate_limit, 7);
    assert_int_equal(config->rate_burst, 9);
    assert_int_equal(s_parse(config, "--rate-limit", "0"), 0);
    assert_int_equal(config->rate_limit, 0);
    assert_int_equal(s_parse(config, "--rate-burst=1000000", NULL), 0);
    assert_int_equal(config->rate_burst, 1000000);

    /* What config_export hands to the children reads back the same. */
    assert_int_equal(config_export(config), 0);
    assert_string_equal(getenv("IMPACT_RATE_LIMIT"), "7");
    assert_string_equal(getenv("IMPACT_RATE_BURST"), "1000000");

    assert_int_equal(s_parse(config, "--rate-burst", "0"), -1);
    assert_int_equal(s_parse(config, "--rate-limit", "1000001"), -1);
    assert_int_equal(s_parse(config, "--rate-limit", "-1"), -1);
    setenv("IMPACT_RATE_LIMIT", "fast", 1);
    assert_int_equal(s_parse(config, NULL, NULL), -1);
    unsetenv("IMPACT_RATE_LIMIT");
    unsetenv("IMPACT_RATE_BURST");
    free(config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_reference_vectors),
        cmocka_unit_test(test_config_out_of_range_is_refused),
        cmocka_unit_test(test_burst_then_refused),
        cmocka_unit_test(test_refill_is_exact),
        cmocka_unit_test(test_reset_and_retry_after),
        cmocka_unit_test(test_extremes_do_not_overflow),
        cmocka_unit_test(test_stale_reading_adds_nothing),
        cmocka_unit_test(test_pairs_are_independent),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_first_sight_is_charged_to_the_address),
        cmocka_unit_test(test_table_never_grows),
        cmocka_unit_test(test_full_buckets_are_evicted_first),
        cmocka_unit_test(test_flood_cannot_reset_a_drained_key),
        cmocka_unit_test(test_threads_on_one_key_stopped_clock),
        cmocka_unit_test(test_threads_on_one_key_running_clock),
        cmocka_unit_test(test_credentials_where_the_actor_finds_them),
        cmocka_unit_test(test_flags_and_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
