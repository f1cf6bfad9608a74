#include "actors/dialer/call_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/dialer/dbq.h"
#include "actors/dialer/idmap.h"
#include "actors/dialer/pgarray.h"
#include "common/log.h"

typedef struct {
    uint64_t call_id, number_id, caller_id;
    char phone[20];
    int64_t dialed_us, answered_us, bridged_us, ended_us; /* Unix microseconds; 0: not yet */
    engine_outcome_t outcome;
    bool abandoned;
    double person_share; /* ended as a machine: the chance it was a person (engine_event_t) */
    bool dirty;          /* listed in self->dirty */
    bool sending;        /* in the write in flight */
    bool committed;      /* its row exists */
    bool held;           /* dialed by the engine, not yet by the carrier: waits for its row */
    bool detect_machine;
    double ring_timeout_seconds;
} attempt_t;

struct call_log_t {
    dbq_t *db;
    call_log_config_t config;
    char from[32];
    idmap_t *calls;  /* call id -> attempt_t, until its end is committed */
    uint64_t *dirty; /* call ids with unwritten changes, in order */
    size_t n_dirty, dirty_capacity;
    uint64_t sending[CALL_LOG_BATCH]; /* call ids of the write in flight */
    size_t n_sending;
    size_t n_held;     /* attempts whose dial waits for their row */
    bool write_failed; /* the last write completed failed */
    carrier_t inner;
    carrier_sink_fn *sink;
    void *sink_ctx;
};

static const char s_flush_sql[] =
    "WITH u AS (SELECT * FROM unnest($4::bigint[], $5::bigint[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], "
    "$10::bigint[], $11::bigint[], $12::text[], $13::bool[], $14::real[]) "
    "AS u(call_id, number_id, phone, caller_id, dialed, answered, bridged, ended, outcome, abandoned, person_share)), "
    "a AS (INSERT INTO call_attempts AS t (call_id, account_id, campaign_id, number_id, phone, from_number, caller_id, "
    "dialed_at, answered_at, bridged_at, ended_at, outcome, abandoned, person_share) "
    "SELECT call_id, $1, $2, number_id, phone, $3, caller_id, to_timestamp(dialed / 1e6::float8), "
    "to_timestamp(answered / 1e6::float8), to_timestamp(bridged / 1e6::float8), to_timestamp(ended / 1e6::float8), outcome, "
    "abandoned, person_share FROM u "
    "ON CONFLICT (call_id) DO UPDATE SET caller_id = coalesce(EXCLUDED.caller_id, t.caller_id), "
    "answered_at = coalesce(EXCLUDED.answered_at, t.answered_at), bridged_at = coalesce(EXCLUDED.bridged_at, t.bridged_at), "
    "ended_at = coalesce(EXCLUDED.ended_at, t.ended_at), outcome = coalesce(EXCLUDED.outcome, t.outcome), "
    "abandoned = EXCLUDED.abandoned OR t.abandoned, person_share = greatest(EXCLUDED.person_share, t.person_share) "
    "RETURNING t.number_id, t.outcome, t.ended_at), "
    "f AS (SELECT number_id, outcome, ended_at, outcome = 'talked' OR (outcome = 'voicemail' AND NOT $17::bool) AS done "
    "FROM a WHERE outcome IS NOT NULL) "
    "UPDATE numbers n SET last_outcome = f.outcome, "
    "status = CASE WHEN f.done THEN 'done' WHEN f.outcome = 'failed' THEN 'failed' WHEN n.attempts >= $16::int THEN 'done' "
    "ELSE 'retry' END, "
    "next_attempt_at = CASE WHEN f.done OR f.outcome = 'failed' OR n.attempts >= $16::int THEN NULL "
    "ELSE f.ended_at + make_interval(hours => $15::int) END "
    "FROM f WHERE n.id = f.number_id AND n.status = 'dialing'";

call_log_t *call_log_new(dbq_t *db, const call_log_config_t *config)
{
    call_log_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->db = db;
    self->config = *config;
    snprintf(self->from, sizeof(self->from), "%s", config->from ? config->from : "");
    self->config.from = self->from;
    self->calls = idmap_new();
    if (self->calls == NULL) {
        free(self);
        return NULL;
    }
    return self;
}

static void s_free_each(void *ctx, uint64_t id, void *value)
{
    free(value);
}

void call_log_destroy(call_log_t **self_p)
{
    call_log_t *self = *self_p;
    if (self == NULL)
        return;
    idmap_each(self->calls, s_free_each, NULL);
    idmap_destroy(&self->calls);
    free(self->dirty);
    free(self);
    *self_p = NULL;
}

int call_log_reserve_ids(PGconn *conn, uint64_t *first)
{
    PGresult *res = PQexec(conn, "SELECT nextval('call_id_blocks')");
    int rc = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        *first = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        rc = *first > 0 ? 0 : -1;
    } else {
        log_error("reserving call ids: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
    return rc;
}

int call_log_recover(PGconn *conn, int64_t campaign_id)
{
    char campaign[24];
    snprintf(campaign, sizeof(campaign), "%" PRId64, campaign_id);
    const char *params[] = {campaign};
    /* The dial of an open attempt may have rung: its number waits a full recycle interval from
     * that dial, whatever its claim said. */
    PGresult *res = PQexecParams(
        conn,
        "WITH c AS (SELECT recycle_rate_hours AS r, max_attempts AS m FROM campaigns WHERE id = $1), "
        "closed AS (UPDATE call_attempts SET ended_at = now(), outcome = 'timed_out' WHERE campaign_id = $1 AND ended_at IS NULL "
        "RETURNING number_id, dialed_at), "
        "n AS (UPDATE numbers n SET last_outcome = 'timed_out', status = CASE WHEN n.attempts >= c.m THEN 'done' ELSE 'retry' END, "
        "next_attempt_at = CASE WHEN n.attempts >= c.m THEN NULL "
        "ELSE greatest(n.next_attempt_at, closed.dialed_at + make_interval(hours => c.r)) END "
        "FROM closed, c WHERE n.id = closed.number_id) "
        "SELECT count(*) FROM closed",
        1, NULL, params, NULL, NULL, 0);
    int closed = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        closed = atoi(PQgetvalue(res, 0, 0));
    else
        log_error("recovering open attempts: %s", PQresultErrorMessage(res));
    PQclear(res);
    return closed;
}

static int s_push(uint64_t **array, size_t *n, size_t *capacity, uint64_t value)
{
    if (*n == *capacity) {
        size_t grown = *capacity ? *capacity * 2 : 64;
        uint64_t *bigger = realloc(*array, grown * sizeof(*bigger));
        if (bigger == NULL)
            return -1;
        *array = bigger;
        *capacity = grown;
    }
    (*array)[(*n)++] = value;
    return 0;
}

static void s_mark_dirty(call_log_t *self, attempt_t *attempt)
{
    if (attempt->dirty)
        return;
    if (s_push(&self->dirty, &self->n_dirty, &self->dirty_capacity, attempt->call_id) != 0) {
        log_error("call=%" PRIu64 " out of memory buffering its attempt", attempt->call_id);
        return;
    }
    attempt->dirty = true;
}

void call_log_event(call_log_t *self, const engine_event_t *event, int64_t wall_us)
{
    if (event->call_id == 0)
        return;
    attempt_t *attempt = idmap_get(self->calls, event->call_id);
    if (attempt == NULL) {
        if (event->type != ENGINE_CALL_DIALING)
            return;
        attempt = calloc(1, sizeof(*attempt));
        if (attempt == NULL || idmap_put(self->calls, event->call_id, attempt) != 0) {
            log_error("call=%" PRIu64 " cannot be recorded", event->call_id);
            free(attempt);
            return;
        }
        attempt->call_id = event->call_id;
        attempt->number_id = event->number_id;
        attempt->dialed_us = wall_us;
    }
    switch (event->type) {
    case ENGINE_CALL_MACHINE:
        attempt->person_share = event->person_share;
        /* fall through */
    case ENGINE_CALL_ANSWERED:
        if (attempt->answered_us == 0)
            attempt->answered_us = wall_us;
        break;
    case ENGINE_CALL_BRIDGED:
        attempt->bridged_us = wall_us;
        attempt->caller_id = event->caller_id;
        break;
    case ENGINE_CALL_ABANDONED:
        attempt->abandoned = true;
        break;
    case ENGINE_CALL_ENDED:
        attempt->ended_us = wall_us;
        attempt->outcome = event->outcome;
        if (event->outcome == OUTCOME_ABANDONED)
            attempt->abandoned = true;
        break;
    default:
        break;
    }
    s_mark_dirty(self, attempt);
}

bool call_log_urgent(const call_log_t *self)
{
    return self->n_sending == 0 && (self->n_held > 0 || self->n_dirty >= CALL_LOG_BATCH);
}

size_t call_log_dirty(const call_log_t *self)
{
    return self->n_dirty;
}

static void s_time(pgarray_t *array, int64_t us)
{
    if (us)
        pgarray_int(array, us);
    else
        pgarray_null(array);
}

/* Writes the first `n` dirty rows. 0 or -1. */
static dbq_done_fn s_on_written;

/* Sends the first n dirty attempts as one statement. */
static int s_write(call_log_t *self, size_t n)
{
    enum { CALL, NUMBER, PHONE, CALLER, DIALED, ANSWERED, BRIDGED, ENDED, OUTCOME, ABANDONED, PERSON_SHARE, COLUMNS };
    pgarray_t columns[COLUMNS];
    for (int c = 0; c < COLUMNS; c++)
        pgarray_init(&columns[c]);
    for (size_t i = 0; i < n; i++) {
        const attempt_t *a = idmap_get(self->calls, self->dirty[i]);
        pgarray_int(&columns[CALL], (int64_t)a->call_id);
        pgarray_int(&columns[NUMBER], (int64_t)a->number_id);
        pgarray_text(&columns[PHONE], a->phone[0] ? a->phone : "unknown");
        if (a->caller_id)
            pgarray_int(&columns[CALLER], (int64_t)a->caller_id);
        else
            pgarray_null(&columns[CALLER]);
        s_time(&columns[DIALED], a->dialed_us);
        s_time(&columns[ANSWERED], a->answered_us);
        s_time(&columns[BRIDGED], a->bridged_us);
        s_time(&columns[ENDED], a->ended_us);
        if (a->ended_us)
            pgarray_text(&columns[OUTCOME], engine_outcome_name(a->outcome));
        else
            pgarray_null(&columns[OUTCOME]);
        pgarray_bool(&columns[ABANDONED], a->abandoned);
        pgarray_share(&columns[PERSON_SHARE], a->person_share);
    }
    char account[24], campaign[24], recycle[16], max[16];
    snprintf(account, sizeof(account), "%" PRId64, self->config.account_id);
    snprintf(campaign, sizeof(campaign), "%" PRId64, self->config.campaign_id);
    snprintf(recycle, sizeof(recycle), "%d", self->config.recycle_hours);
    snprintf(max, sizeof(max), "%d", self->config.max_attempts);
    const char *params[17] = {account, campaign, self->from};
    int rc = -1;
    for (int c = 0; c < COLUMNS; c++)
        if ((params[3 + c] = pgarray_finish(&columns[c])) == NULL) {
            log_error("call attempts batch has a malformed value; dropped");
            goto Exit;
        }
    params[14] = recycle;
    params[15] = max;
    params[16] = self->config.call_back_after_voicemail ? "t" : "f";
    rc = dbq_send(self->db, s_flush_sql, 17, params, s_on_written, self);
    if (rc != 0)
        log_warn("writing call attempts: out of memory");
Exit:
    for (int c = 0; c < COLUMNS; c++)
        pgarray_free(&columns[c]);
    return rc;
}

/* The carrier refused a held dial once it was placed: the engine hears it as a failed call. */
static void s_place(call_log_t *self, uint64_t call_id, int64_t now_us)
{
    attempt_t *attempt = idmap_get(self->calls, call_id);
    if (attempt == NULL || !attempt->held)
        return;
    attempt->held = false;
    self->n_held--;
    carrier_dial_t request = {.to = attempt->phone,
                              .from = self->from,
                              .ring_timeout_seconds = attempt->ring_timeout_seconds,
                              .detect_machine = attempt->detect_machine};
    if (self->inner.ops->dial(self->inner.self, call_id, &request, now_us) != 0)
        self->sink(self->sink_ctx, &(carrier_event_t){.call_id = call_id, .status = CARRIER_FAILED, .at_us = now_us});
}

/*
 * A write completed. Committed rows release their held dials; a failed write leaves its attempts
 * to be written again (the statement is idempotent: rows are upserted, times coalesced). Placing a
 * dial can end its call at once through the sink, which marks the attempt dirty again, so an
 * attempt is forgotten only when its end is committed and nothing about it is left unwritten.
 */
static void s_on_written(void *ctx, const PGresult *res, int64_t now_us)
{
    call_log_t *self = ctx;
    bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_warn("writing call attempts: %s", res ? PQresultErrorMessage(res) : "connection lost");
    self->write_failed = !ok;
    size_t n = self->n_sending;
    self->n_sending = 0;
    for (size_t i = 0; i < n; i++) {
        attempt_t *attempt = idmap_get(self->calls, self->sending[i]);
        attempt->sending = false;
        if (ok)
            attempt->committed = true;
        else
            s_mark_dirty(self, attempt);
    }
    for (size_t i = 0; ok && i < n; i++) {
        attempt_t *attempt = idmap_get(self->calls, self->sending[i]);
        if (attempt->held)
            s_place(self, attempt->call_id, now_us);
        if (attempt->ended_us && !attempt->dirty && !attempt->held) {
            idmap_remove(self->calls, attempt->call_id);
            free(attempt);
        }
    }
}

int call_log_flush(call_log_t *self)
{
    int rc = self->write_failed ? -1 : 0;
    if (self->n_sending > 0 || self->n_dirty == 0)
        return rc;
    size_t n = self->n_dirty < CALL_LOG_BATCH ? self->n_dirty : CALL_LOG_BATCH;
    if (s_write(self, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        attempt_t *attempt = idmap_get(self->calls, self->dirty[i]);
        attempt->dirty = false;
        attempt->sending = true;
        self->sending[i] = attempt->call_id;
    }
    self->n_sending = n;
    memmove(self->dirty, self->dirty + n, (self->n_dirty - n) * sizeof(*self->dirty));
    self->n_dirty -= n;
    return rc;
}

int call_log_flush_all(call_log_t *self, int64_t now_us)
{
    while (self->n_dirty > 0 || self->n_sending > 0) {
        if (call_log_flush(self) != 0 || dbq_drain(self->db, now_us) != 0 || self->write_failed)
            return -1;
    }
    return 0;
}

typedef struct {
    call_log_t *self;
    int64_t wall_us;
    engine_outcome_t outcome;
    int ended;
} end_all_t;

static void s_end_each(void *ctx, uint64_t id, void *value)
{
    end_all_t *all = ctx;
    attempt_t *attempt = value;
    if (attempt->held) {
        attempt->held = false;
        all->self->n_held--;
    }
    if (attempt->ended_us)
        return;
    attempt->ended_us = all->wall_us;
    /* a conversation cut short still reached its person */
    attempt->outcome = attempt->bridged_us ? OUTCOME_TALKED : all->outcome;
    all->ended++;
    s_mark_dirty(all->self, attempt);
}

int call_log_end_all(call_log_t *self, engine_outcome_t outcome, int64_t wall_us)
{
    end_all_t all = {.self = self, .wall_us = wall_us, .outcome = outcome};
    idmap_each(self->calls, s_end_each, &all);
    return all.ended;
}

/* ---- the write-ahead carrier ---- */

static int s_gate_dial(void *handle, uint64_t call_id, const carrier_dial_t *request, int64_t now_us)
{
    call_log_t *self = handle;
    attempt_t *attempt = idmap_get(self->calls, call_id);
    if (attempt == NULL || strlen(request->to) >= sizeof(attempt->phone))
        return -1;
    snprintf(attempt->phone, sizeof(attempt->phone), "%s", request->to);
    attempt->detect_machine = request->detect_machine;
    attempt->ring_timeout_seconds = request->ring_timeout_seconds;
    attempt->held = true;
    self->n_held++;
    s_mark_dirty(self, attempt);
    return 0;
}

static int s_gate_bridge(void *handle, uint64_t call_id, uint64_t caller_id, int64_t now_us)
{
    call_log_t *self = handle;
    return self->inner.ops->bridge(self->inner.self, call_id, caller_id, now_us);
}

static int s_gate_play(void *handle, uint64_t call_id, const char *audio_uri, bool hang_up_after, int64_t now_us)
{
    call_log_t *self = handle;
    return self->inner.ops->play(self->inner.self, call_id, audio_uri, hang_up_after, now_us);
}

static int s_gate_transfer(void *handle, uint64_t call_id, const char *to, bool warm, int64_t now_us)
{
    call_log_t *self = handle;
    return self->inner.ops->transfer(self->inner.self, call_id, to, warm, now_us);
}

static int s_gate_leave(void *handle, uint64_t call_id, int64_t now_us)
{
    call_log_t *self = handle;
    return self->inner.ops->leave(self->inner.self, call_id, now_us);
}

/* A dial still held never reached the carrier: refusing the hang-up makes the engine end the
 * call itself, and the held dial is dropped. */
static int s_gate_hang_up(void *handle, uint64_t call_id, int64_t now_us)
{
    call_log_t *self = handle;
    attempt_t *attempt = idmap_get(self->calls, call_id);
    if (attempt && attempt->held) {
        attempt->held = false;
        self->n_held--;
        return -1;
    }
    return self->inner.ops->hang_up(self->inner.self, call_id, now_us);
}

static const carrier_ops_t s_gate_ops = {
    .dial = s_gate_dial,
    .bridge = s_gate_bridge,
    .play = s_gate_play,
    .transfer = s_gate_transfer,
    .leave = s_gate_leave,
    .hang_up = s_gate_hang_up,
    .destroy = NULL, /* a view: the log and the inner carrier are destroyed by their owner */
};

carrier_t call_log_carrier(call_log_t *self, carrier_t inner, carrier_sink_fn *sink, void *sink_ctx)
{
    self->inner = inner;
    self->sink = sink;
    self->sink_ctx = sink_ctx;
    return (carrier_t){.ops = &s_gate_ops, .self = self};
}
