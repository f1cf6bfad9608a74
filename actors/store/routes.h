/*
 * The store's API surface: authentication first, then the path is matched against every
 * resource description (actors/store/resource.h) and the method picks the generic handler or
 * the resource's action.
 */
#ifndef IMPACT_STORE_ROUTES_H
#define IMPACT_STORE_ROUTES_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "actors/api/api.h"
#include "actors/store/auth.h"
#include "actors/store/statements.h"

/* The limits a client must respect, set by the front end's configuration; the root resource
 * states them so a client can learn them instead of discovering them by failing. */
typedef struct {
    size_t max_body_bytes;
    int rate_limit, rate_burst; /* per key; rate_limit 0: none */
    bool allow_private_urls;    /* customer URLs may name private addresses (tests, local demos) */
} route_limits_t;

typedef struct {
    PGconn *conn;
    const route_limits_t *limits;
    auth_cache_t *auth;
    stmt_cache_t *stmts; /* the connection's prepared statements */
    bool in_transaction; /* the request already runs in a transaction (Idempotency-Key) */
} route_ctx_t;

/** Fills `reply` for `req`: always a complete answer (2xx, problem, or 503 on database failure). */
void routes_dispatch(const route_ctx_t *ctx, const api_request_t *req, api_reply_t *reply);

typedef void(routes_describe_fn)(void *arg, const char *method, const char *pattern);

/**
 * Calls fn for every (method, path pattern) the store answers, patterns written as in OpenAPI
 * ("/v1/scripts/{script_id}/questions/{id}"). HEAD is implied by GET and not listed. The
 * OpenAPI agreement test compares this list with schemas/openapi.yaml both ways.
 */
void routes_describe(routes_describe_fn *fn, void *arg);

#endif
