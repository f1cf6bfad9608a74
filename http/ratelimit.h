/*
 * Per-client request rate limiting for the HTTP front end: one token bucket per identity, in one
 * table shared by every event-loop thread. Independent of h2o so that it can be tested alone
 * with an injected clock; api.c applies it to relayed requests.
 *
 * Identity: the credential pair the store actor will authenticate (api_key and api_auth, found
 * exactly where actors/store/auth.c looks for them, see http_rl_credentials), or the client's
 * address (IPv4, or the /64 of IPv6) when there is none. The pair, not the public key alone,
 * so that whoever knows a key but not its secret cannot spend the key's budget; a key has one
 * secret, so for every request that authenticates this is a bucket per key.
 *
 * Bucket: capacity `burst` requests, refilled at `rate` per second, counted in billionths of a
 * request against a nanosecond clock, so refill is exact integer arithmetic: starting full, a
 * bucket admits exactly burst + floor(rate * elapsed) requests, whatever the threads.
 *
 * Table: a fixed array of sets of HTTP_RL_WAYS entries, each set behind its own mutex; an
 * identity's keyed hash (SipHash-2-4, random key per process) picks its set and is its tag.
 * Memory is fixed when the table is made. A new identity takes an empty way, else evicts a full
 * bucket (which loses nothing: it would be recreated full), else the way with the most tokens
 * (losing the least). A key's first sight, the only time it takes a way, is also charged to the
 * client address's bucket, so a client cycling through invented keys is held to the address's
 * rate, and fresh entries (one request short of full) are evicted before drained ones.
 */
#ifndef IMPACT_HTTP_RATELIMIT_H
#define IMPACT_HTTP_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define HTTP_RL_WAYS             8     /* entries per set: the probe bound */
#define HTTP_RL_DEFAULT_CAPACITY 65536 /* identities tracked by the front end: 2 MiB */
#define HTTP_RL_MAX_RATE         1000000
#define HTTP_RL_MAX_BURST        1000000

/* What actors/store/auth.c accepts: longer values are not credentials there, so not here either. */
#define HTTP_RL_KEY_MAX           63
#define HTTP_RL_SECRET_MAX        127
#define HTTP_RL_AUTHORIZATION_MAX 511

typedef struct st_http_rl_t http_rl_t;

/** A monotonic clock in nanoseconds. */
typedef uint64_t (*http_rl_clock_t)(void *arg);

typedef struct {
    uint32_t rate;         /* requests per second, 1 to HTTP_RL_MAX_RATE */
    uint32_t burst;        /* bucket capacity, 1 to HTTP_RL_MAX_BURST */
    size_t capacity;       /* identities tracked, rounded up to a power of two of at least HTTP_RL_WAYS;
                              0: HTTP_RL_DEFAULT_CAPACITY */
    http_rl_clock_t clock; /* NULL: CLOCK_MONOTONIC */
    void *clock_arg;
} http_rl_config_t;

typedef struct {
    bool allowed;
    bool by_address;        /* the client address's bucket decided (no key, or a key's first sight refused) */
    uint32_t remaining;     /* whole requests the bucket would admit now */
    uint32_t reset_s;       /* seconds, rounded up, until the bucket is full again; 0 when full */
    uint32_t retry_after_s; /* refused: seconds, rounded up and at least 1, until one request is admitted */
} http_rl_verdict_t;

typedef struct {
    size_t tracked;          /* identities in the table */
    size_t capacity;         /* the most it can hold */
    uint64_t refused;        /* requests refused */
    uint64_t evicted_full;   /* entries replaced whose bucket was full: nothing lost */
    uint64_t evicted_active; /* entries replaced whose bucket was not full: a set was all in use */
} http_rl_stats_t;

/** A presented credential, the view of one header or the raw query: base NULL when absent. */
typedef struct {
    const char *base;
    size_t len;
} http_rl_view_t;

/** Where a request may carry credentials, as actors/store/auth.c reads them (form bodies aside). */
typedef struct {
    http_rl_view_t api_key, api_auth;     /* Api-Key, Api-Auth: the first of each */
    http_rl_view_t x_api_key, x_api_auth; /* X-Api-Key, X-Api-Auth */
    http_rl_view_t authorization;         /* Authorization */
    http_rl_view_t query;                 /* the raw query, without '?' */
} http_rl_presented_t;

typedef struct {
    char key[HTTP_RL_KEY_MAX + 1];
    char secret[HTTP_RL_SECRET_MAX + 1];
} http_rl_credential_t;

/**
 * A table with fixed memory for `config->capacity` identities.
 * @return NULL when config is out of range or memory is short
 */
http_rl_t *http_rl_new(const http_rl_config_t *config);

/** Frees the table. Idempotent. */
void http_rl_destroy(http_rl_t **self_p);

/**
 * Charges one request. With a key (not NULL) the pair's bucket decides; a pair not in the table
 * is first charged to the address's bucket and, when that one is empty, refused without taking
 * a way. Without a key the address's bucket decides. Thread-safe.
 * @param key, secret as http_rl_credentials leaves them (at most HTTP_RL_KEY_MAX and
 *        HTTP_RL_SECRET_MAX bytes; longer ones are cut); key NULL: none
 * @param peer the client's address; NULL or an unknown family share one bucket
 */
void http_rl_take(http_rl_t *self, const char *key, size_t key_len, const char *secret, size_t secret_len,
                  const struct sockaddr *peer, socklen_t peer_len, http_rl_verdict_t *out);

/** Counters since the table was made (each read on its own, so only roughly consistent). */
void http_rl_stats(const http_rl_t *self, http_rl_stats_t *out);

/**
 * The credential pair the store actor will authenticate a request with, found the way
 * actors/store/auth.c finds it: the Api-Key/Api-Auth headers, else X-Api-Key/X-Api-Auth, else
 * HTTP Basic (a malformed Basic value is no credential at all, as there), else api_key/api_auth
 * in the query. Form bodies are not read. Values are cut at a NUL as the actor's C strings are.
 * @return 0 with `out` filled, -1 when the request carries none the actor would use
 */
int http_rl_credentials(const http_rl_presented_t *in, http_rl_credential_t *out);

/** SipHash-2-4 of `len` bytes under a 16-byte key (exposed for its reference vectors). */
uint64_t http_rl_siphash(const uint8_t key[16], const void *data, size_t len);

#endif
