#include "actors/fanout/webhooks.h"

#include <curl/curl.h>
#include <czmq.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/netguard.h"

struct webhooks_t {
    char *database_url;
    bool allow_private;
    PGconn *conn;       /* NULL or broken: reconnected at the next run */
    int64_t wake_at;    /* zclock_mono ms of the next run */
    int64_t connect_at; /* zclock_mono ms of the next connection attempt */
};

/* The oldest pending event of each call, when it is due, claimed with a lease: a crashed
 * deliverer's claims come due again when their leases end. The pending re-check in `due` holds
 * when another deliverer settled the row after this statement's snapshot. */
static const char s_claim_sql[] =
    "WITH heads AS (SELECT DISTINCT ON (call_id) id FROM call_events WHERE delivered_at IS NULL AND failed_at IS NULL "
    "ORDER BY call_id, id), "
    "due AS (SELECT e.id FROM call_events e JOIN heads USING (id) WHERE e.next_attempt_at <= now() AND e.delivered_at IS NULL "
    "AND e.failed_at IS NULL ORDER BY e.id LIMIT $1 FOR UPDATE OF e SKIP LOCKED) "
    "UPDATE call_events e SET attempts = e.attempts + 1, next_attempt_at = now() + make_interval(secs => $2) "
    "FROM due, calls c WHERE e.id = due.id AND c.id = e.call_id "
    "RETURNING e.id, c.call_state_url, json_build_object('id', e.id, 'type', e.type, 'occurred_at', "
    "call_events_time(e.occurred_at), 'data', e.payload)::text";

/* One attempt's outcome: logged, and the event settled or given its next try. Back-off doubles
 * from 1 s (attempt 1) and stays at 10 minutes; a failure of a day-old event is the last. */
static const char s_settle_sql[] =
    "WITH log AS (INSERT INTO call_event_deliveries (event_id, http_status, error, duration_ms) VALUES ($1, $2, $3, $4)) "
    "UPDATE call_events SET delivered_at = CASE WHEN $5 THEN now() END, "
    "failed_at = CASE WHEN NOT $5 AND created_at < now() - interval '24 hours' THEN now() END, "
    "last_error = CASE WHEN $5 THEN last_error ELSE $3 END, "
    "next_attempt_at = CASE WHEN $5 THEN next_attempt_at "
    "ELSE now() + make_interval(secs => least(power(2, least(greatest(attempts - 1, 0), 10)), 600)) END "
    "WHERE id = $1 RETURNING failed_at IS NOT NULL";

/* When the earliest head of a call comes due, in milliseconds from now (NULL: none pending). Only
 * heads count: the events queued behind one in back-off are due but may not be sent. */
static const char s_next_sql[] =
    "SELECT ceil(extract(epoch FROM min(e.next_attempt_at) - now()) * 1000) FROM call_events e JOIN (SELECT DISTINCT ON "
    "(call_id) id FROM call_events WHERE delivered_at IS NULL AND failed_at IS NULL ORDER BY call_id, id) AS heads USING (id)";

typedef struct {
    bool delivered;
    long status; /* 0: no response */
    char error[256];
    int64_t duration_ms;
} attempt_t;

webhooks_t *webhooks_new(const char *database_url, bool allow_private_urls)
{
    webhooks_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->database_url = strdup(database_url);
    if (self->database_url == NULL) {
        free(self);
        return NULL;
    }
    self->allow_private = allow_private_urls;
    return self;
}

void webhooks_destroy(webhooks_t **self_p)
{
    webhooks_t *self = *self_p;
    if (self == NULL)
        return;
    PQfinish(self->conn);
    free(self->database_url);
    free(self);
    *self_p = NULL;
}

static bool s_connected(const webhooks_t *self)
{
    return self->conn && PQstatus(self->conn) == CONNECTION_OK;
}

/* Connects and LISTENs; events committed while disconnected are found by the first scan. */
static void s_connect(webhooks_t *self)
{
    int64_t now = zclock_mono();
    if (now < self->connect_at)
        return;
    self->connect_at = now + WEBHOOKS_RECONNECT_MS;
    PQfinish(self->conn);
    self->conn = PQconnectdb(self->database_url);
    PGresult *res = PQstatus(self->conn) == CONNECTION_OK ? PQexec(self->conn, "LISTEN call_events") : NULL;
    bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        log_warn("webhooks: cannot listen on the database (retrying): %s", PQerrorMessage(self->conn));
        PQfinish(self->conn);
        self->conn = NULL;
        return;
    }
    self->wake_at = now;
}

int webhooks_socket(webhooks_t *self)
{
    return s_connected(self) ? PQsocket(self->conn) : -1;
}

void webhooks_readable(webhooks_t *self)
{
    if (!s_connected(self))
        return;
    PQconsumeInput(self->conn);
    PGnotify *n;
    while ((n = PQnotifies(self->conn)) != NULL) {
        PQfreemem(n);
        self->wake_at = zclock_mono();
    }
}

static size_t s_discard(char *data, size_t size, size_t n, void *arg)
{
    return size * n;
}

static void s_post(webhooks_t *self, const char *id, const char *url, const char *body, attempt_t *attempt)
{
    memset(attempt, 0, sizeof(*attempt));
    int64_t started = zclock_mono();
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        snprintf(attempt->error, sizeof(attempt->error), "out of memory");
        return;
    }
    char id_header[64], time_header[64];
    snprintf(id_header, sizeof(id_header), "Webhook-Id: %s", id);
    snprintf(time_header, sizeof(time_header), "Webhook-Timestamp: %" PRId64, zclock_time() / 1000);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, id_header);
    headers = curl_slist_append(headers, time_header);
    netguard_curl(curl, url, (long)WEBHOOKS_TIMEOUT_MS, &self->allow_private);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_discard);
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &attempt->status);
    if (rc != CURLE_OK)
        snprintf(attempt->error, sizeof(attempt->error), "%s", netguard_curl_error(rc, self->allow_private));
    else if (attempt->status < 200 || attempt->status >= 300)
        snprintf(attempt->error, sizeof(attempt->error), "HTTP %ld", attempt->status);
    else
        attempt->delivered = true;
    attempt->duration_ms = zclock_mono() - started;
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
}

static void s_settle(webhooks_t *self, const char *id, const attempt_t *attempt)
{
    char status[16], duration[24];
    snprintf(status, sizeof(status), "%ld", attempt->status);
    snprintf(duration, sizeof(duration), "%" PRId64, attempt->duration_ms);
    const char *params[] = {id, attempt->status ? status : NULL, attempt->delivered ? NULL : attempt->error, duration,
                            attempt->delivered ? "true" : "false"};
    PGresult *res = PQexecParams(self->conn, s_settle_sql, 5, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        log_error("webhooks: event=%s outcome not recorded (it is posted again when its lease ends): %s", id,
                  PQresultErrorMessage(res));
    else if (!attempt->delivered)
        log_warn("webhooks: event=%s not delivered: %s%s", id, attempt->error,
                 PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't' ? " (a day old: given up)" : "");
    PQclear(res);
}

/* Gives claims back when the process must stop or the loop must serve the broker: without
 * this they would wait for their leases to end. */
static void s_release(webhooks_t *self, PGresult *claimed, int from)
{
    int n = PQntuples(claimed);
    if (from >= n)
        return;
    size_t size = (size_t)(n - from) * 21 + 3, used = 1;
    char *ids = malloc(size);
    if (ids == NULL)
        return; /* the leases end by themselves */
    ids[0] = '{';
    for (int i = from; i < n; i++)
        used += (size_t)snprintf(ids + used, size - used, "%s%s", i > from ? "," : "", PQgetvalue(claimed, i, 0));
    snprintf(ids + used, size - used, "}");
    const char *params[] = {ids};
    PQclear(PQexecParams(self->conn,
                         "UPDATE call_events SET attempts = attempts - 1, next_attempt_at = now() WHERE id = ANY ($1::bigint[]) "
                         "AND delivered_at IS NULL AND failed_at IS NULL",
                         1, NULL, params, NULL, NULL, 0));
    free(ids);
}

/* True when the pipe has a message (the actor's $TERM) or the run's time is up. */
static bool s_must_yield(zsock_t *pipe, int64_t deadline)
{
    return zclock_mono() >= deadline || (zsock_events(pipe) & ZMQ_POLLIN);
}

/* One batch: claim, post, settle. Posts are sequential, each bounded by WEBHOOKS_TIMEOUT_MS, and
 * none starts after the deadline; concurrent delivery (curl multi) comes with the event
 * machinery of issue 5. Returns the number of events posted, or -1 when the database failed. */
static int s_turn(webhooks_t *self, zsock_t *pipe, int64_t deadline)
{
    char batch[16], lease[16];
    snprintf(batch, sizeof(batch), "%d", WEBHOOKS_BATCH);
    snprintf(lease, sizeof(lease), "%d", WEBHOOKS_LEASE_SECONDS);
    const char *params[] = {batch, lease};
    PGresult *claimed = PQexecParams(self->conn, s_claim_sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(claimed) != PGRES_TUPLES_OK) {
        log_error("webhooks: claiming events: %s", PQresultErrorMessage(claimed));
        PQclear(claimed);
        return -1;
    }
    int n = PQntuples(claimed), posted = 0;
    for (; posted < n && !s_must_yield(pipe, deadline); posted++) {
        attempt_t attempt;
        s_post(self, PQgetvalue(claimed, posted, 0), PQgetvalue(claimed, posted, 1), PQgetvalue(claimed, posted, 2), &attempt);
        s_settle(self, PQgetvalue(claimed, posted, 0), &attempt);
    }
    s_release(self, claimed, posted);
    PQclear(claimed);
    return posted;
}

/* Milliseconds until the earliest pending event is due, at most WEBHOOKS_IDLE_MS. */
static int s_next_due(webhooks_t *self)
{
    PGresult *res = PQexec(self->conn, s_next_sql);
    int wait = WEBHOOKS_IDLE_MS;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        double ms = strtod(PQgetvalue(res, 0, 0), NULL);
        wait = ms <= 0 ? 0 : ms < WEBHOOKS_IDLE_MS ? (int)ms : WEBHOOKS_IDLE_MS;
    }
    PQclear(res);
    return wait;
}

int webhooks_run(webhooks_t *self, zsock_t *pipe)
{
    if (!s_connected(self)) {
        s_connect(self);
        if (!s_connected(self))
            return WEBHOOKS_RECONNECT_MS;
    }
    int64_t now = zclock_mono();
    if (now < self->wake_at)
        return (int)(self->wake_at - now);
    int64_t deadline = now + WEBHOOKS_RUN_MS;
    int posted = 0;
    while (!s_must_yield(pipe, deadline) && (posted = s_turn(self, pipe, deadline)) > 0)
        ;
    if (posted < 0) {
        self->wake_at = zclock_mono() + WEBHOOKS_RECONNECT_MS;
        return WEBHOOKS_RECONNECT_MS;
    }
    /* Cut short with work left: run again at once; otherwise sleep until the next retry. */
    int wait = posted > 0 ? 0 : s_next_due(self);
    self->wake_at = zclock_mono() + wait;
    return wait;
}
