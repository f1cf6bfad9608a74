/*
 * Resource handlers of the store actor. Every resource answers with the brief's common shape:
 * `uri` (absolute), `name`, `actions` (what can be done next: name, method, uri, parameters)
 * and `resources` (related collections: name, uri).
 */
#ifndef IMPACT_STORE_RESOURCES_H
#define IMPACT_STORE_RESOURCES_H

#include "actors/store/routes.h"

/** GET /v1: the root resource, the entry point for exploring the API. */
void resource_root(const route_ctx_t *ctx, const auth_account_t *account, const api_request_t *req, api_reply_t *reply);

/** POST /v1/caller_sessions: a caller's login (username and password, or PIN), the one request
 *  served without an API key (res_caller_sessions.c). */
void caller_sessions_login(const route_ctx_t *ctx, const api_request_t *req, api_reply_t *reply);

/** /v1/caller_session[/action]: the caller's own session, by its token rather than an API key.
 *  `action` "" is GET (the caller, the campaign and its script; counts as a heartbeat), "events"
 *  is GET (their events, what the caller's event stream reads), "heartbeat" and "logout" are POST. */
void caller_session_serve(const route_ctx_t *ctx, const api_request_t *req, api_reply_t *reply, const char *action);

/** GET /v1/caller_session/events: the caller's own events (events.caller_id), with the filters and
 *  pages of GET /v1/events (res_events.c); the session is authenticated by the caller. */
void events_list_for_caller(const route_ctx_t *ctx, const api_request_t *req, api_reply_t *reply, int64_t account_id,
                            int64_t caller_id);

#endif
