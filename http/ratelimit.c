/*
 * The rate limiter's table and buckets (see ratelimit.h for the model).
 *
 * A bucket counts billionths of a request. Since a rate of r requests per second is then
 * exactly r billionths per nanosecond, a refill is elapsed_ns * rate with no rounding anywhere,
 * and both terms stay far from overflow: a refill is computed only up to the bucket's deficit,
 * which is at most HTTP_RL_MAX_BURST * 1e9.
 *
 * Entries are never deleted, only replaced, so a set's free ways are always its last ones and a
 * lookup stops at the first free way. Each set has its own mutex on the same cache lines as its
 * entries: a request costs one hash, one lock and the lines of one set; only requests for
 * identities in the same set ever wait for each other.
 */
#include "http/ratelimit.h"

#include <endian.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "common/basic_auth.h"
#include "common/urlform.h"
#include <time.h>
#include <unistd.h>

#define HTTP_RL_UNIT         UINT64_C(1000000000) /* one request, in the billionths buckets count */
#define HTTP_RL_NS           UINT64_C(1000000000) /* nanoseconds per second */
#define HTTP_RL_MAX_CAPACITY ((size_t)1 << 24)

typedef struct {
    uint64_t id;     /* the identity's hash; 0: free */
    uint64_t tokens; /* billionths of a request as of `last` */
    uint64_t last;   /* the clock reading of the last refill */
} http_rl_entry_t;

typedef struct {
    _Alignas(64) pthread_mutex_t lock;
    http_rl_entry_t ways[HTTP_RL_WAYS];
} http_rl_set_t;

struct st_http_rl_t {
    uint64_t rate;     /* requests per second, which is billionths of a request per nanosecond */
    uint64_t capacity; /* burst * HTTP_RL_UNIT */
    http_rl_clock_t clock;
    void *clock_arg;
    uint8_t seed[16];
    size_t set_mask;
    http_rl_set_t *sets;
    atomic_size_t tracked;
    atomic_uint_fast64_t refused, evicted_full, evicted_active;
};

/* ---- SipHash-2-4 ------------------------------------------------------------------------------ */

#define HTTP_RL_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
/* A macro over the caller's v0..v3 rather than a function over an array: the compiler then keeps
 * the state in registers, which makes the hash several times faster. */
#define HTTP_RL_SIPROUND                                                                                                           \
    do {                                                                                                                           \
        v0 += v1;                                                                                                                  \
        v1 = HTTP_RL_ROTL(v1, 13);                                                                                                 \
        v1 ^= v0;                                                                                                                  \
        v0 = HTTP_RL_ROTL(v0, 32);                                                                                                 \
        v2 += v3;                                                                                                                  \
        v3 = HTTP_RL_ROTL(v3, 16);                                                                                                 \
        v3 ^= v2;                                                                                                                  \
        v0 += v3;                                                                                                                  \
        v3 = HTTP_RL_ROTL(v3, 21);                                                                                                 \
        v3 ^= v0;                                                                                                                  \
        v2 += v1;                                                                                                                  \
        v1 = HTTP_RL_ROTL(v1, 17);                                                                                                 \
        v1 ^= v2;                                                                                                                  \
        v2 = HTTP_RL_ROTL(v2, 32);                                                                                                 \
    } while (0)

static uint64_t s_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}

uint64_t http_rl_siphash(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t k0 = s_le64(key), k1 = s_le64(key + 8);
    uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575), v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261), v3 = k1 ^ UINT64_C(0x7465646279746573);
    size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = s_le64(in + i);
        v3 ^= m;
        HTTP_RL_SIPROUND;
        HTTP_RL_SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = 0; i < len % 8; i++)
        last |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= last;
    HTTP_RL_SIPROUND;
    HTTP_RL_SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    HTTP_RL_SIPROUND;
    HTTP_RL_SIPROUND;
    HTTP_RL_SIPROUND;
    HTTP_RL_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- identities ------------------------------------------------------------------------------- */

/* 0 marks a free way, so no identity may hash to it. */
static uint64_t s_tag(uint64_t hash)
{
    return hash != 0 ? hash : 1;
}

/* The pair's identity. The key's length goes first so that no other split of the same bytes
 * names the same pair. */
static uint64_t s_key_id(const http_rl_t *self, const char *key, size_t key_len, const char *secret, size_t secret_len)
{
    uint8_t buf[2 + HTTP_RL_KEY_MAX + HTTP_RL_SECRET_MAX];
    key_len = key_len < HTTP_RL_KEY_MAX ? key_len : HTTP_RL_KEY_MAX;
    secret_len = secret_len < HTTP_RL_SECRET_MAX ? secret_len : HTTP_RL_SECRET_MAX;
    buf[0] = 'K';
    buf[1] = (uint8_t)key_len;
    memcpy(buf + 2, key, key_len);
    if (secret_len != 0)
        memcpy(buf + 2 + key_len, secret, secret_len);
    return s_tag(http_rl_siphash(self->seed, buf, 2 + key_len + secret_len));
}

/* The address's identity: IPv4 (IPv4-mapped IPv6 included) by address, other IPv6 by its /64,
 * since one host is commonly given a whole /64 and could otherwise take a bucket per address. */
static uint64_t s_addr_id(const http_rl_t *self, const struct sockaddr *peer, socklen_t peer_len)
{
    uint8_t buf[2 + 8] = {'A', 0};
    size_t n = 2;
    if (peer != NULL && peer->sa_family == AF_INET && peer_len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in sin;
        memcpy(&sin, peer, sizeof(sin));
        buf[1] = 4;
        memcpy(buf + 2, &sin.sin_addr, 4);
        n = 6;
    } else if (peer != NULL && peer->sa_family == AF_INET6 && peer_len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, peer, sizeof(sin6));
        if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
            buf[1] = 4;
            memcpy(buf + 2, sin6.sin6_addr.s6_addr + 12, 4);
            n = 6;
        } else {
            buf[1] = 6;
            memcpy(buf + 2, sin6.sin6_addr.s6_addr, 8);
            n = 10;
        }
    }
    return s_tag(http_rl_siphash(self->seed, buf, n));
}

/* ---- buckets ---------------------------------------------------------------------------------- */

static uint64_t s_ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* The bucket's tokens at `now`. A reading older than the bucket's own (another thread read the
 * clock later but locked first) adds nothing. */
static uint64_t s_tokens_at(const http_rl_t *self, const http_rl_entry_t *e, uint64_t now)
{
    if (now <= e->last)
        return e->tokens;
    uint64_t deficit = self->capacity - e->tokens;
    /* elapsed * rate >= deficit, asked without the multiplication that could overflow */
    if (now - e->last >= s_ceil_div(deficit, self->rate))
        return self->capacity;
    return e->tokens + (now - e->last) * self->rate;
}

static void s_refill(const http_rl_t *self, http_rl_entry_t *e, uint64_t now)
{
    e->tokens = s_tokens_at(self, e, now);
    if (now > e->last)
        e->last = now;
}

static uint32_t s_seconds(uint64_t billionths, uint64_t rate)
{
    uint64_t s = s_ceil_div(billionths, rate * HTTP_RL_NS);
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* Takes one request from a refilled bucket, or refuses it, and describes the bucket after. */
static void s_charge(http_rl_t *self, http_rl_entry_t *e, http_rl_verdict_t *out)
{
    out->allowed = e->tokens >= HTTP_RL_UNIT;
    if (out->allowed)
        e->tokens -= HTTP_RL_UNIT;
    out->remaining = (uint32_t)(e->tokens / HTTP_RL_UNIT);
    out->reset_s = s_seconds(self->capacity - e->tokens, self->rate);
    out->retry_after_s = 0;
    if (!out->allowed) {
        uint32_t s = s_seconds(HTTP_RL_UNIT - e->tokens, self->rate);
        out->retry_after_s = s < 1 ? 1 : s;
        atomic_fetch_add_explicit(&self->refused, 1, memory_order_relaxed);
    }
}

/* ---- the table -------------------------------------------------------------------------------- */

static http_rl_entry_t *s_find(http_rl_set_t *set, uint64_t id)
{
    for (size_t i = 0; i < HTTP_RL_WAYS && set->ways[i].id != 0; i++)
        if (set->ways[i].id == id)
            return &set->ways[i];
    return NULL;
}

/* The way a new identity takes: a free one, else the bucket with the most tokens at `now` (a full
 * one loses nothing; any other loses the least), the least recently refilled among equals. */
static http_rl_entry_t *s_victim(http_rl_t *self, http_rl_set_t *set, uint64_t now)
{
    http_rl_entry_t *best = NULL;
    uint64_t best_tokens = 0;
    for (size_t i = 0; i < HTTP_RL_WAYS; i++) {
        http_rl_entry_t *e = &set->ways[i];
        if (e->id == 0) {
            atomic_fetch_add_explicit(&self->tracked, 1, memory_order_relaxed);
            return e;
        }
        uint64_t tokens = s_tokens_at(self, e, now);
        if (best == NULL || tokens > best_tokens || (tokens == best_tokens && e->last < best->last)) {
            best = e;
            best_tokens = tokens;
        }
    }
    atomic_fetch_add_explicit(best_tokens == self->capacity ? &self->evicted_full : &self->evicted_active, 1, memory_order_relaxed);
    return best;
}

/* Charges `id`'s bucket, giving it a way (starting full) when it has none and `insert` is set.
 * False when it has none and may not get one. */
static bool s_take(http_rl_t *self, uint64_t id, uint64_t now, bool insert, http_rl_verdict_t *out)
{
    http_rl_set_t *set = &self->sets[id & self->set_mask];
    pthread_mutex_lock(&set->lock);
    http_rl_entry_t *e = s_find(set, id);
    if (e == NULL && insert) {
        e = s_victim(self, set, now);
        *e = (http_rl_entry_t){.id = id, .tokens = self->capacity, .last = now};
    }
    if (e != NULL) {
        s_refill(self, e, now);
        s_charge(self, e, out);
    }
    pthread_mutex_unlock(&set->lock);
    return e != NULL;
}

static uint64_t s_monotonic_ns(void *arg)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * HTTP_RL_NS + (uint64_t)ts.tv_nsec;
}

http_rl_t *http_rl_new(const http_rl_config_t *config)
{
    size_t want = config->capacity != 0 ? config->capacity : HTTP_RL_DEFAULT_CAPACITY;
    if (config->rate < 1 || config->rate > HTTP_RL_MAX_RATE || config->burst < 1 || config->burst > HTTP_RL_MAX_BURST ||
        want > HTTP_RL_MAX_CAPACITY)
        return NULL;
    size_t num_sets = 1;
    while (num_sets * HTTP_RL_WAYS < want)
        num_sets <<= 1;

    http_rl_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->rate = config->rate;
    self->capacity = (uint64_t)config->burst * HTTP_RL_UNIT;
    self->clock = config->clock != NULL ? config->clock : s_monotonic_ns;
    self->clock_arg = config->clock_arg;
    self->set_mask = num_sets - 1;
    /* A seed an attacker could guess would let them aim invented identities at one set. */
    if (getrandom(self->seed, sizeof(self->seed), 0) != (ssize_t)sizeof(self->seed) ||
        (self->sets = aligned_alloc(_Alignof(http_rl_set_t), num_sets * sizeof(http_rl_set_t))) == NULL) {
        free(self);
        return NULL;
    }
    memset(self->sets, 0, num_sets * sizeof(http_rl_set_t));
    for (size_t i = 0; i < num_sets; i++)
        pthread_mutex_init(&self->sets[i].lock, NULL);
    return self;
}

void http_rl_destroy(http_rl_t **self_p)
{
    http_rl_t *self = *self_p;
    if (self == NULL)
        return;
    for (size_t i = 0; i <= self->set_mask; i++)
        pthread_mutex_destroy(&self->sets[i].lock);
    free(self->sets);
    free(self);
    *self_p = NULL;
}

void http_rl_take(http_rl_t *self, const char *key, size_t key_len, const char *secret, size_t secret_len,
                  const struct sockaddr *peer, socklen_t peer_len, http_rl_verdict_t *out)
{
    uint64_t now = self->clock(self->clock_arg);
    out->by_address = true;
    if (key == NULL) {
        s_take(self, s_addr_id(self, peer, peer_len), now, true, out);
        return;
    }
    uint64_t id = s_key_id(self, key, key_len, secret, secret_len);
    if (!s_take(self, id, now, false, out)) {
        /* First sight: invented pairs cost the address, and a refused one takes no way. The two
         * sets are locked one after the other, never together, so no lock order is needed; a
         * thread that inserted the same pair meanwhile is found by the second take. */
        s_take(self, s_addr_id(self, peer, peer_len), now, true, out);
        if (!out->allowed)
            return;
        s_take(self, id, now, true, out);
    }
    out->by_address = false;
}

void http_rl_stats(const http_rl_t *self, http_rl_stats_t *out)
{
    out->tracked = atomic_load_explicit(&self->tracked, memory_order_relaxed);
    out->capacity = (self->set_mask + 1) * HTTP_RL_WAYS;
    out->refused = atomic_load_explicit(&self->refused, memory_order_relaxed);
    out->evicted_full = atomic_load_explicit(&self->evicted_full, memory_order_relaxed);
    out->evicted_active = atomic_load_explicit(&self->evicted_active, memory_order_relaxed);
}

/* ---- credentials, as actors/store/auth.c finds them ------------------------------------------- */

/* api_header's copy: the value must fit with its NUL; the actor then reads it as a C string. */
static int s_copy(http_rl_view_t v, char *out, size_t size)
{
    if (v.base == NULL || v.len >= size)
        return -1;
    memcpy(out, v.base, v.len);
    out[v.len] = '\0';
    return 0;
}

int http_rl_credentials(const http_rl_presented_t *in, http_rl_credential_t *out)
{
    if ((s_copy(in->api_key, out->key, sizeof(out->key)) == 0 && s_copy(in->api_auth, out->secret, sizeof(out->secret)) == 0) ||
        (s_copy(in->x_api_key, out->key, sizeof(out->key)) == 0 && s_copy(in->x_api_auth, out->secret, sizeof(out->secret)) == 0))
        return 0;
    char authorization[HTTP_RL_AUTHORIZATION_MAX + 1];
    if (s_copy(in->authorization, authorization, sizeof(authorization)) == 0 && strncasecmp(authorization, "Basic ", 6) == 0)
        return basic_auth_decode(authorization, out->key, sizeof(out->key), out->secret, sizeof(out->secret));
    if (urlform_param(in->query.base, in->query.len, "api_key", out->key, sizeof(out->key)) == 0 &&
        urlform_param(in->query.base, in->query.len, "api_auth", out->secret, sizeof(out->secret)) == 0)
        return 0;
    return -1;
}
