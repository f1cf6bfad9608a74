/*
 * Idempotency-Key for POST and PATCH (draft-ietf-httpapi-idempotency-key-header): the first
 * complete answer to a key is stored and replayed to retries, in the same transaction as the
 * request's own writes.
 *
 * Why a transaction around the whole request: a client retries precisely when it did not see
 * the answer, which includes the case where the server crashed after writing. If the key's row
 * and the request's rows commit together, a retry finds either both (replay) or neither (run
 * again); there is no window in which the work is done but the key is unknown. Concurrent
 * requests with one key serialise on the row's primary key: the second waits for the first to
 * commit, then replays its answer.
 */
#ifndef IMPACT_STORE_IDEMPOTENCY_H
#define IMPACT_STORE_IDEMPOTENCY_H

#include "actors/store/routes.h"

#define IDEMPOTENCY_KEY_MAX   255
#define IDEMPOTENCY_TTL_HOURS 24

/**
 * Runs `handler` for a request under an Idempotency-Key header: replays a stored answer, or
 * runs it inside a transaction (ctx->in_transaction set for its duration) and stores its answer
 * unless it is a 5xx. A key reused with a different request answers 422; a key whose first
 * request is still running cannot be observed (the row lock makes the retry wait).
 */
void idempotency_run(route_ctx_t *ctx, const auth_account_t *account, const api_request_t *req, api_reply_t *reply, const char *key,
                     void (*handler)(void *arg), void *arg);

#endif
