/*
 * The store's API surface: authentication first, then a table of (method, path pattern,
 * handler). Each resource adds its rows to the table in routes.c and its handlers in a file of
 * its own.
 */
#ifndef IMPACT_STORE_ROUTES_H
#define IMPACT_STORE_ROUTES_H

#include <libpq-fe.h>

#include "actors/api/api.h"
#include "actors/store/auth.h"

typedef struct {
    PGconn *conn;
    auth_cache_t *auth;
} route_ctx_t;

/** Fills `reply` for `req`: always a complete answer (2xx, problem, or 503 on database failure). */
void routes_dispatch(const route_ctx_t *ctx, const api_request_t *req, api_reply_t *reply);

#endif
