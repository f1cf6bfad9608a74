/*
 * A caller session's token as a request presents it: `Authorization: Bearer <token>` (the SDK)
 * or the `impact_caller_session` cookie (the browser app). Both the store (login, the caller's
 * own session) and the campaign's dialer (the desk) authenticate callers with it, and must agree
 * on what a token looks like (docs/adr/0006-caller-sessions.md).
 */
#ifndef IMPACT_ACTORS_CALLER_TOKEN_H
#define IMPACT_ACTORS_CALLER_TOKEN_H

#include "actors/api/api.h"

#define CALLER_TOKEN_COOKIE "impact_caller_session"
#define CALLER_TOKEN_LENGTH 46 /* "cs_" and 43 base64url characters: 32 random bytes */
#define CALLER_TOKEN_DIGEST 32 /* SHA-256, what caller_sessions.token_sha256 keeps */

/* A session not seen this long is ended by its campaign's dialer (docs/adr/0006). */
#define CALLER_HEARTBEAT_TIMEOUT_S 30

/**
 * The SHA-256 of the request's caller token into `digest`. 0, or -1 when the request has none of
 * the right shape (a bearer header wins over the cookie).
 */
int caller_token_digest(const api_request_t *req, unsigned char digest[CALLER_TOKEN_DIGEST]);

#endif
