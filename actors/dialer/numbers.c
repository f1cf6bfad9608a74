#include "actors/dialer/numbers.h"

#include <czmq.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/dialer/pgarray.h"
#include "common/log.h"

/* After a refill that found nothing, the next waits this long: an exhausted list (or one outside
 * its calling hours) costs one query per interval, not one per pacing tick. */
#define NUMBERS_IDLE_MS  5000
#define NUMBERS_ERROR_MS 1000

typedef struct {
    engine_number_t number;
    int64_t valid_until_ms; /* monotonic: the calling window closes then */
} queued_t;

/* A claim runs in up to three statements: never-dialed numbers from the cursor, the same from the
 * start of the list when the cursor found none, then due retries for what is still wanted. */
typedef enum { CLAIM_IDLE, CLAIM_FIRST, CLAIM_FIRST_AGAIN, CLAIM_RETRIES } claim_stage_t;

struct numbers_t {
    PGconn *conn;
    dbq_t *db;
    int64_t campaign_id;
    int batch;
    queued_t *queue; /* queue[head .. head+count) */
    size_t head, count;
    uint64_t *returned; /* number ids to release */
    size_t n_returned, returned_capacity;
    int64_t first_cursor; /* never-dialed numbers are scanned in id order from here */
    int64_t next_refill_ms;
    bool starved; /* the engine asked and found nothing */
    claim_stage_t stage;
    int want, got;                 /* of the claim in progress */
    bool failed;                   /* a statement failed since numbers_sync last said so */
    bool dry;                      /* the last claim found nothing */
    numbers_withdraw_fn *withdraw; /* of the re-check in flight: for blocked numbers held elsewhere */
    void *withdraw_ctx;
};

/* A release in flight: its ids are remembered again if it fails. */
typedef struct {
    numbers_t *numbers;
    size_t count;
    uint64_t ids[];
} release_t;

/* Never-dialed numbers first, in import order from the cursor; then due retries, oldest first.
 * The claim, the attempt count and the recycle delay commit together, before any dial. */
static const char s_claim_sql[] =
    "WITH c AS (SELECT calling_hours_start AS hs, calling_hours_end AS he, time_zone AS tz, recycle_rate_hours AS r, "
    "max_attempts AS m FROM campaigns WHERE id = $1 AND status <> 'stopped'), "
    "picked AS (SELECT n.id, dialer_window_left(n.time_zones, c.tz, c.hs, c.he) AS left_s FROM numbers n, c "
    "WHERE n.campaign_id = $1 AND %s AND NOT n.blocked AND n.removed_at IS NULL "
    "AND dialer_window_left(n.time_zones, c.tz, c.hs, c.he) > 0 ORDER BY %s LIMIT $3 FOR UPDATE OF n SKIP LOCKED) "
    "UPDATE numbers n SET attempts = n.attempts + 1, last_dialed_at = now(), status = 'dialing', "
    "next_attempt_at = now() + make_interval(hours => c.r) FROM picked, c WHERE n.id = picked.id "
    "RETURNING n.id, n.phone, picked.left_s";

/* Gives numbers back: the claim's attempt is undone and the dial state rebuilt from the attempts
 * actually made. Only numbers still 'dialing' qualify, so releasing twice changes nothing. */
static const char s_release_sql[] =
    "WITH c AS (SELECT recycle_rate_hours AS r FROM campaigns WHERE id = $2) "
    "UPDATE numbers n SET attempts = n.attempts - 1, last_dialed_at = h.last_dialed, "
    "next_attempt_at = CASE WHEN n.attempts - 1 = 0 THEN NULL "
    "ELSE coalesce(h.last_ended + make_interval(hours => c.r), now()) END, "
    "status = CASE WHEN n.attempts - 1 = 0 THEN 'not_called' ELSE 'retry' END "
    "FROM c, unnest($1::bigint[]) AS r(id) LEFT JOIN LATERAL (SELECT max(a.dialed_at) AS last_dialed, "
    "max(a.ended_at) AS last_ended FROM call_attempts a WHERE a.number_id = r.id) h ON true "
    "WHERE n.id = r.id AND n.campaign_id = $2 AND n.status = 'dialing' AND n.attempts > 0";

numbers_t *numbers_new(PGconn *conn, dbq_t *db, int64_t campaign_id, int batch)
{
    if (batch < 1 || batch > NUMBERS_BATCH_MAX)
        return NULL;
    numbers_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->conn = conn;
    self->db = db;
    self->campaign_id = campaign_id;
    self->batch = batch;
    self->queue = calloc((size_t)batch, sizeof(*self->queue));
    if (self->queue == NULL) {
        free(self);
        return NULL;
    }
    return self;
}

void numbers_destroy(numbers_t **self_p)
{
    numbers_t *self = *self_p;
    if (self == NULL)
        return;
    free(self->queue);
    free(self->returned);
    free(self);
    *self_p = NULL;
}

static int s_remember_return(numbers_t *self, uint64_t number_id)
{
    if (self->n_returned == self->returned_capacity) {
        size_t capacity = self->returned_capacity ? self->returned_capacity * 2 : 64;
        uint64_t *grown = realloc(self->returned, capacity * sizeof(*grown));
        if (grown == NULL)
            return -1;
        self->returned = grown;
        self->returned_capacity = capacity;
    }
    self->returned[self->n_returned++] = number_id;
    return 0;
}

int numbers_take(numbers_t *self, engine_number_t *number)
{
    int64_t now = zclock_mono();
    while (self->count > 0) {
        queued_t *q = &self->queue[self->head];
        self->head++;
        self->count--;
        if (q->valid_until_ms > now) {
            *number = q->number;
            return 0;
        }
        s_remember_return(self, q->number.number_id);
    }
    self->starved = true;
    return -1;
}

void numbers_give_back(numbers_t *self, const engine_number_t *number)
{
    if (s_remember_return(self, number->number_id) != 0)
        log_warn("number=%" PRIu64 " cannot be remembered for release; it waits one recycle interval", number->number_id);
}

/* Releases the numbers of the array literal `ids` synchronously (start-up only). 0 or -1. */
static int s_release_now(PGconn *conn, int64_t campaign_id, const char *ids)
{
    char campaign[24];
    snprintf(campaign, sizeof(campaign), "%" PRId64, campaign_id);
    const char *params[] = {ids, campaign};
    PGresult *res = PQexecParams(conn, s_release_sql, 2, NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc != 0)
        log_warn("releasing numbers: %s", PQresultErrorMessage(res));
    PQclear(res);
    return rc;
}

static void s_on_released(void *ctx, const PGresult *res, int64_t now_us)
{
    release_t *release = ctx;
    numbers_t *self = release->numbers;
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        log_warn("releasing numbers: %s", res ? PQresultErrorMessage(res) : "connection lost");
        self->failed = true;
        for (size_t i = 0; i < release->count; i++)
            s_remember_return(self, release->ids[i]);
    }
    free(release);
}

/* Sends the release of every number given back. 0 or -1 (they stay remembered). */
static int s_flush_returns(numbers_t *self)
{
    if (self->n_returned == 0)
        return 0;
    release_t *release = malloc(sizeof(*release) + self->n_returned * sizeof(uint64_t));
    pgarray_t ids;
    pgarray_init(&ids);
    for (size_t i = 0; i < self->n_returned; i++)
        pgarray_int(&ids, (int64_t)self->returned[i]);
    const char *literal = pgarray_finish(&ids);
    char campaign[24];
    snprintf(campaign, sizeof(campaign), "%" PRId64, self->campaign_id);
    const char *params[] = {literal, campaign};
    int rc = -1;
    if (release && literal) {
        release->numbers = self;
        release->count = self->n_returned;
        memcpy(release->ids, self->returned, self->n_returned * sizeof(uint64_t));
        rc = dbq_send(self->db, s_release_sql, 2, params, s_on_released, release);
    }
    if (rc == 0)
        self->n_returned = 0;
    else
        free(release);
    pgarray_free(&ids);
    return rc;
}

int numbers_recover(PGconn *conn, int64_t campaign_id)
{
    char campaign[24];
    snprintf(campaign, sizeof(campaign), "%" PRId64, campaign_id);
    const char *params[] = {campaign};
    /* next_attempt_at IS NOT NULL lets the planner use numbers_due: every claim sets it */
    PGresult *res = PQexecParams(conn,
                                 "SELECT coalesce(array_agg(id), '{}') FROM numbers WHERE campaign_id = $1 AND status = 'dialing' "
                                 "AND next_attempt_at IS NOT NULL",
                                 1, NULL, params, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        rc = s_release_now(conn, campaign_id, PQgetvalue(res, 0, 0));
    else
        log_error("finding claimed numbers: %s", PQresultErrorMessage(res));
    PQclear(res);
    return rc;
}

static dbq_done_fn s_on_claimed;

/* Sends one statement of the claim in progress, for what is still wanted. */
static int s_claim(numbers_t *self)
{
    bool first_dials = self->stage != CLAIM_RETRIES;
    /* Both forms take the same three parameters; retries ignore the cursor, but a parameter the
     * statement never mentions would have no type. */
    char sql[sizeof(s_claim_sql) + 256];
    snprintf(sql, sizeof(sql), s_claim_sql,
             first_dials ? "n.attempts = 0 AND n.id > $2"
                         : "n.status = 'retry' AND n.next_attempt_at <= now() AND n.attempts < c.m AND $2::bigint >= 0",
             first_dials ? "n.id" : "n.next_attempt_at");
    char campaign[24], cursor[24], count[16];
    snprintf(campaign, sizeof(campaign), "%" PRId64, self->campaign_id);
    snprintf(cursor, sizeof(cursor), "%" PRId64, self->first_cursor);
    snprintf(count, sizeof(count), "%d", self->want - self->got);
    const char *params[] = {campaign, cursor, count};
    return dbq_send(self->db, sql, 3, params, s_on_claimed, self);
}

static int s_compare_ids(const void *a, const void *b)
{
    uint64_t x = ((const queued_t *)a)->number.number_id, y = ((const queued_t *)b)->number.number_id;
    return x < y ? -1 : x > y;
}

/* The claim ends: with nothing found, the next waits a while; after an error, a little less. */
static void s_claim_done(numbers_t *self, bool ok)
{
    int64_t now = zclock_mono();
    self->stage = CLAIM_IDLE;
    if (!ok) {
        self->failed = true;
        self->next_refill_ms = now + NUMBERS_ERROR_MS;
        return;
    }
    self->starved = false;
    self->dry = self->got == 0;
    if (self->got == 0)
        self->next_refill_ms = now + NUMBERS_IDLE_MS;
}

/* Appends one statement's rows to the queue (its room was made when the claim began: the engine
 * only takes from the queue meanwhile), then goes on to the claim's next statement. */
static void s_on_claimed(void *ctx, const PGresult *res, int64_t now_us)
{
    numbers_t *self = ctx;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("claiming numbers: %s", res ? PQresultErrorMessage(res) : "connection lost");
        s_claim_done(self, false);
        return;
    }
    int rows = PQntuples(res);
    int64_t now = zclock_mono();
    size_t first = self->count;
    bool first_dials = self->stage != CLAIM_RETRIES;
    for (int i = 0; i < rows; i++) {
        queued_t *q = &self->queue[self->head + self->count];
        const char *phone = PQgetvalue(res, i, 1);
        q->number.number_id = strtoull(PQgetvalue(res, i, 0), NULL, 10);
        q->valid_until_ms = now + (int64_t)floor(strtod(PQgetvalue(res, i, 2), NULL) * 1000.0);
        if (strlen(phone) >= sizeof(q->number.phone)) {
            /* not E.164: never dial it, and give it back so it is not left claimed */
            s_remember_return(self, q->number.number_id);
            continue;
        }
        snprintf(q->number.phone, sizeof(q->number.phone), "%s", phone);
        if (first_dials && (int64_t)q->number.number_id > self->first_cursor)
            self->first_cursor = (int64_t)q->number.number_id;
        self->count++;
    }
    /* RETURNING follows no order: first dials are queued by id (the cursor needs the highest) */
    if (first_dials)
        qsort(self->queue + self->head + first, self->count - first, sizeof(*self->queue), s_compare_ids);
    self->got += rows;
    if (self->stage == CLAIM_FIRST && rows == 0 && self->first_cursor > 0) {
        /* Reached the end of the list: start over, so numbers skipped for their calling hours
         * are found once their window opens. */
        self->first_cursor = 0;
        self->stage = CLAIM_FIRST_AGAIN;
    } else if (self->stage != CLAIM_RETRIES && self->got < self->want) {
        self->stage = CLAIM_RETRIES;
    } else {
        s_claim_done(self, true);
        return;
    }
    if (s_claim(self) != 0)
        s_claim_done(self, false);
}

int numbers_sync(numbers_t *self)
{
    int rc = s_flush_returns(self);
    if (self->failed) {
        self->failed = false;
        rc = -1;
    }
    int64_t now = zclock_mono();
    bool low = self->count * 2 < (size_t)self->batch;
    if (self->stage != CLAIM_IDLE || !(low || self->starved) || now < self->next_refill_ms)
        return rc;
    /* compact: the claim fills the queue at its end */
    memmove(self->queue, self->queue + self->head, self->count * sizeof(*self->queue));
    self->head = 0;
    self->want = self->batch - (int)self->count;
    self->got = 0;
    self->stage = CLAIM_FIRST;
    if (s_claim(self) != 0) {
        s_claim_done(self, false);
        return -1;
    }
    return rc;
}

/* Drops the queued numbers the answer names and has the others (held by Preview callers)
 * withdrawn; the queue may have moved on meanwhile, so each is looked up again (one taken since
 * was dialed before the block reached this dialer, as it would have been a moment earlier). */
static void s_on_rechecked(void *ctx, const PGresult *res, int64_t now_us)
{
    numbers_t *self = ctx;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_warn("re-checking blocked numbers: %s", res ? PQresultErrorMessage(res) : "connection lost");
        self->failed = true;
        return;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        uint64_t blocked = strtoull(PQgetvalue(res, r, 0), NULL, 10);
        bool queued = false;
        for (size_t i = 0; i < self->count && !queued; i++) {
            queued_t *q = &self->queue[self->head + i];
            if (q->number.number_id != blocked)
                continue;
            queued = true;
            s_remember_return(self, blocked);
            memmove(q, q + 1, (self->count - i - 1) * sizeof(*q));
            self->count--;
        }
        if (queued || (self->withdraw && self->withdraw(self->withdraw_ctx, blocked, now_us) > 0))
            log_info("number=%" PRIu64 " blocked after it was claimed: not dialed", blocked);
    }
}

int numbers_recheck_blocked(numbers_t *self, const uint64_t *held, size_t n_held, numbers_withdraw_fn *withdraw, void *ctx)
{
    if (self->count == 0 && n_held == 0)
        return 0;
    self->withdraw = withdraw;
    self->withdraw_ctx = ctx;
    pgarray_t ids;
    pgarray_init(&ids);
    for (size_t i = 0; i < self->count; i++)
        pgarray_int(&ids, (int64_t)self->queue[self->head + i].number.number_id);
    for (size_t i = 0; i < n_held; i++)
        pgarray_int(&ids, (int64_t)held[i]);
    const char *params[] = {pgarray_finish(&ids)};
    int rc = params[0]
                 ? dbq_send(self->db, "SELECT id FROM numbers WHERE id = ANY($1::bigint[]) AND (blocked OR removed_at IS NOT NULL)",
                            1, params, s_on_rechecked, self)
                 : -1;
    pgarray_free(&ids);
    return rc;
}

int numbers_release(numbers_t *self, int64_t now_us)
{
    if (dbq_drain(self->db, now_us) != 0)
        return -1;
    for (size_t i = 0; i < self->count; i++)
        if (s_remember_return(self, self->queue[self->head + i].number.number_id) != 0)
            return -1;
    self->count = 0;
    self->head = 0;
    if (s_flush_returns(self) != 0 || dbq_drain(self->db, now_us) != 0)
        return -1;
    return self->n_returned == 0 ? 0 : -1;
}

int numbers_add(numbers_t *self, int64_t account_id, const char (*phones)[PHONE_E164_SIZE], size_t count, int64_t now_us)
{
    if (dbq_drain(self->db, now_us) != 0)
        return -1;
    pgarray_t list, zones;
    pgarray_init(&list);
    pgarray_init(&zones);
    for (size_t i = 0; i < count; i++) {
        const char *found[8];
        char joined[PGARRAY_TEXT_MAX];
        size_t used = 0;
        joined[0] = '\0';
        int n = phone_time_zones(phones[i], found, 8);
        for (int z = 0; z < n && used < sizeof(joined); z++)
            used += (size_t)snprintf(joined + used, sizeof(joined) - used, "%s%s", z ? "," : "", found[z]);
        pgarray_text(&list, phones[i]);
        pgarray_zones(&zones, joined);
    }
    char account[24], campaign[24];
    snprintf(account, sizeof(account), "%" PRId64, account_id);
    snprintf(campaign, sizeof(campaign), "%" PRId64, self->campaign_id);
    const char *params[] = {account, campaign, pgarray_finish(&list), pgarray_finish(&zones)};
    int added = -1;
    if (params[2] && params[3]) {
        PGresult *res =
            PQexecParams(self->conn, "SELECT numbers_add($1, $2, $3::text[], $4::text[])", 4, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            added = atoi(PQgetvalue(res, 0, 0));
        else
            log_warn("adding numbers: %s", PQresultErrorMessage(res));
        PQclear(res);
    } else
        log_warn("adding numbers: a number or its time zones cannot be written");
    pgarray_free(&list);
    pgarray_free(&zones);
    if (added > 0) {
        /* new numbers: claim them now, not after the idle wait of an empty claim */
        self->next_refill_ms = 0;
    }
    return added;
}

bool numbers_dry(const numbers_t *self)
{
    return self->dry && self->count == 0;
}

size_t numbers_queued(const numbers_t *self)
{
    return self->count;
}
