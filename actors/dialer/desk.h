/*
 * desk_t: the people working a campaign, served by the campaign's dialer (docs/caller-api.md,
 * docs/adr/0006-caller-sessions.md).
 *
 * A caller logs in through the store, which makes a caller session; everything they do at their
 * desk afterwards (start dialing, Preview dial and skip, hang up, drop the voicemail message,
 * transfer, submit results and continue or stop) is a request to this process, because the
 * engine here decides who takes the next live answer and no second copy of a caller's state may
 * disagree with it. The desk checks each request's token against the session (read from
 * PostgreSQL once per session, then cached), turns actions into engine operations, answers the
 * desk as it is afterwards, and publishes the caller's transitions and submitted surveys as
 * events.
 *
 * Nothing here waits for PostgreSQL except a session's first request: surveys, events and the
 * sessions' bookkeeping go through the dialer's statement queue, and a survey is sent only once
 * the call log has nothing unwritten, so the call's end always commits before its survey.
 *
 * No phantom callers: the session rows' last_seen_at (kept fresh by any request of the session,
 * here or at the store, and by its event stream) is swept every few seconds; a session not seen
 * for CALLER_HEARTBEAT_TIMEOUT_S is ended, and its caller leaves the engine once any call in
 * progress ends, never hanging up on the person.
 */
#ifndef IMPACT_DIALER_DESK_H
#define IMPACT_DIALER_DESK_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "actors/api/api.h"
#include "actors/dialer/call_log.h"
#include "actors/dialer/dbq.h"
#include "actors/dialer/engine.h"

typedef struct desk_t desk_t;

/* Campaign clock to wall clock (microseconds since the Unix epoch). */
typedef int64_t(desk_wall_fn)(void *ctx, int64_t at_us);

typedef struct {
    int64_t account_id, campaign_id;
    dial_mode_t mode;
    const char *voicemail_uri; /* what drop_voicemail plays; NULL: the campaign has no message */
    int recycle_hours, max_attempts;
    PGconn *conn; /* a session's first request reads it here, synchronously */
    dbq_t *db;    /* everything else */
    call_log_t *log;
    engine_t *engine;
    desk_wall_fn *wall;
    void *wall_ctx;
} desk_config_t;

/** A desk for the campaign: reads its script (responses, notes, transfers) at once. NULL on failure. */
desk_t *desk_new(const desk_config_t *config);
void desk_destroy(desk_t **self_p);

/**
 * Answers a request for /v1/campaigns/{campaign}/caller_sessions/{session}[/{action}]; `rest` is
 * the path after "caller_sessions/". Every outcome is a reply.
 */
void desk_serve(desk_t *self, const api_request_t *req, api_reply_t *reply, const char *rest, int64_t now_us);

/** Feed every engine event about a caller who is a person here. */
void desk_event(desk_t *self, const engine_event_t *event);

/** A session of this campaign ended elsewhere (logout, a newer login, an administrator, the sweep). */
void desk_session_ended(desk_t *self, int64_t session_id, int64_t now_us);

/** The campaign was paused or resumed: the desk says so. */
void desk_set_paused(desk_t *self, bool paused);

/** Each turn of the loop: sends surveys whose calls are written, sweeps sessions now and then. */
void desk_service(desk_t *self, int64_t now_us);

/** A clean stop: every caller leaves the engine (their sessions stay; they start again later). */
void desk_leave_all(desk_t *self, int64_t now_us);

#endif
