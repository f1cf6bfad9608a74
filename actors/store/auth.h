/*
 * API key authentication for the store actor.
 *
 * Credentials are an `api_key` (public id) and an `api_auth` (secret), accepted as
 *   - headers Api-Key / Api-Auth (X-Api-Key / X-Api-Auth too),
 *   - Authorization: Basic base64(api_key:api_auth),
 *   - query or form parameters api_key / api_auth (so the API can be explored from an address bar).
 * Only SHA-256(api_auth) is stored; the comparison is constant-time. Verified keys are cached
 * briefly per process so a busy key costs no query per request; revocation takes effect within
 * AUTH_CACHE_TTL_MS.
 */
#ifndef IMPACT_STORE_AUTH_H
#define IMPACT_STORE_AUTH_H

#include <libpq-fe.h>
#include <stdint.h>

#include "actors/api/api.h"

#define AUTH_CACHE_TTL_MS 5000
#define AUTH_CACHE_MAX    10000

typedef enum {
    AUTH_OK = 0,
    AUTH_MISSING = -1,  /* no credentials given: 401 */
    AUTH_INVALID = -2,  /* unknown key, wrong secret, revoked key or suspended account: 401 */
    AUTH_DB_ERROR = -3, /* could not check: 503 */
} auth_result_t;

typedef struct {
    int64_t account_id;
    char account_name[201];
} auth_account_t;

typedef struct auth_cache_t auth_cache_t;

auth_cache_t *auth_cache_new(void);
void auth_cache_destroy(auth_cache_t **self_p);

/** Authenticates the request's credentials. `conn` is used only on a cache miss. */
auth_result_t auth_check(auth_cache_t *self, PGconn *conn, const api_request_t *req, auth_account_t *account);

#endif
