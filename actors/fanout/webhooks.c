#include "actors/fanout/webhooks.h"

#include <curl/curl.h>
#include <czmq.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/event_json.h"
#include "common/json_writer.h"
#include "common/log.h"
#include "common/netguard.h"
#include "common/webhook_signature.h"

/* How an outbox retries: back-off from `first_s`, doubling up to `max_s`, until the event is
 * `give_up_s` old. Call-state callbacks are the fast class: their receiver is a program waiting
 * for a call's progress. Webhook endpoints (account and campaign events) are the long class: a
 * receiver that is down for maintenance or a weekend still gets everything once it is back, and a
 * retry every hour at most costs it little while it is down. Their back-off has jitter (each delay
 * between half and all of the doubling), so the endpoints of one outage do not retry in step. */
typedef struct {
    int first_s, max_s, give_up_s;
} retry_class_t;

static const retry_class_t s_retry_fast = {.first_s = 1, .max_s = 600, .give_up_s = 86400};
static const retry_class_t s_retry_long = {.first_s = 5, .max_s = 3600, .give_up_s = 3 * 86400};

/* Which outbox a delivery comes from: call_events (0008) or webhook_deliveries (0014). */
typedef enum { OUTBOX_CALLS, OUTBOX_ENDPOINTS, OUTBOX_COUNT } outbox_t;

/* A delivery in flight; easy is NULL when the slot is free. */
typedef struct {
    CURL *easy;
    struct curl_slist *headers;
    outbox_t outbox;
    char row[24];    /* the outbox row; for call_events also the webhook-id */
    int64_t started; /* zclock_mono */
} delivery_t;

/* A socket libcurl wants watched, and for what (CURL_POLL_IN, _OUT, _INOUT). */
typedef struct {
    curl_socket_t fd;
    int what;
} watch_t;

struct webhooks_t {
    char *database_url;
    bool allow_private;
    PGconn *conn;       /* NULL or broken: reconnected at the next run */
    int64_t wake_at;    /* zclock_mono ms of the next claim */
    int64_t connect_at; /* zclock_mono ms of the next connection attempt */
    CURLM *multi;
    int64_t curl_due; /* zclock_mono ms when libcurl wants its timeout handled; -1: never */
    delivery_t deliveries[WEBHOOKS_IN_FLIGHT];
    int in_flight;
    watch_t watches[WEBHOOKS_SOCKETS_MAX];
    int n_watches;
    int polled_db_fd; /* the database socket in the last poll items, or -1 */
};

/* The oldest pending event of each call, when it is due, claimed with a lease: a crashed
 * deliverer's claims come due again when their leases end. The pending re-check in `due` holds
 * when another deliverer settled the row after this statement's snapshot. The account's active
 * secrets, newest first, come along for signing. The heads are computed once (MATERIALIZED):
 * right after a burst of inserts the planner's statistics say the outbox is nearly empty, and it
 * would otherwise re-run the DISTINCT ON for every candidate row, quadratic in pending events. */
static const char s_claim_sql[] =
    "WITH heads AS MATERIALIZED (SELECT DISTINCT ON (call_id) id, next_attempt_at FROM call_events "
    "WHERE delivered_at IS NULL AND failed_at IS NULL ORDER BY call_id, id), "
    "due AS (SELECT e.id FROM call_events e WHERE e.id IN (SELECT id FROM heads WHERE next_attempt_at <= now() ORDER BY id "
    "LIMIT $1) AND e.delivered_at IS NULL AND e.failed_at IS NULL FOR UPDATE OF e SKIP LOCKED) "
    "UPDATE call_events e SET attempts = e.attempts + 1, next_attempt_at = now() + make_interval(secs => $2) "
    "FROM due, calls c WHERE e.id = due.id AND c.id = e.call_id "
    "RETURNING e.id, c.call_state_url, json_build_object('id', e.id, 'type', e.type, 'occurred_at', "
    "call_events_time(e.occurred_at), 'data', e.payload)::text, "
    "(SELECT string_agg(secret, ' ' ORDER BY id DESC) FROM (SELECT id, secret FROM webhook_secrets s "
    "WHERE s.account_id = e.account_id AND (s.expires_at IS NULL OR s.expires_at > now()) ORDER BY id DESC LIMIT $3) newest)";

/* The outcomes of a batch of attempts (a JSON array, one object per attempt), in one statement:
 * each logged (attempted_at is when the attempt started), and its event settled or given its next
 * try. Back-off doubles from the class's first delay to its maximum; a Retry-After later than
 * that wins; a failure of an event older than the class's give-up age is the last. A 410 Gone
 * settles the call's URL for good: the event fails, so do the call's other pending events, and
 * the call remembers it for the events written later. One statement per batch, because a
 * round trip per delivery, not the network, was what bounded the deliveries per second. No two
 * attempts of a batch share a call (a call has one event in flight), so the updates never meet. */
static const char s_settle_sql[] =
    "WITH a AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS a(id bigint, status int, error text, duration int, "
    "delivered bool, retry_after int, gone bool)), "
    "log AS (INSERT INTO call_event_deliveries (event_id, attempted_at, http_status, error, duration_ms) "
    "SELECT id, now() - make_interval(secs => duration / 1000.0), status, error, duration FROM a), "
    "gone_calls AS (SELECT e.call_id, a.id FROM a JOIN call_events e ON e.id = a.id WHERE a.gone), "
    "gone AS (UPDATE calls SET call_state_gone_at = coalesce(call_state_gone_at, now()) "
    "WHERE id IN (SELECT call_id FROM gone_calls)), "
    "rest AS (UPDATE call_events r SET failed_at = now(), "
    "last_error = 'not sent: the call_state_url answered 410 Gone to event ' || g.id "
    "FROM gone_calls g WHERE r.call_id = g.call_id AND r.id <> g.id AND r.delivered_at IS NULL AND r.failed_at IS NULL) "
    "UPDATE call_events e SET delivered_at = CASE WHEN a.delivered THEN now() END, "
    "failed_at = CASE WHEN NOT a.delivered AND (a.gone OR e.created_at < now() - make_interval(secs => $4::int)) "
    "THEN now() END, "
    "last_error = CASE WHEN a.delivered THEN e.last_error ELSE a.error END, "
    "next_attempt_at = CASE WHEN a.delivered OR a.gone THEN e.next_attempt_at ELSE now() + make_interval(secs => "
    "greatest(least(power(2, least(greatest(e.attempts - 1, 0), 30)) * $2::int, $3::int), coalesce(a.retry_after, 0))) END "
    "FROM a WHERE e.id = a.id RETURNING e.id, e.failed_at IS NOT NULL";

/* The head of each pending stream of each enabled endpoint (its lowest event id), like the call
 * events' heads above; the event documents are read afterwards (s_endpoint_bodies). */
static const char s_claim_endpoints_sql[] =
    "WITH heads AS MATERIALIZED (SELECT DISTINCT ON (endpoint_id, stream) id, endpoint_id, next_attempt_at "
    "FROM webhook_deliveries WHERE state = 'pending' ORDER BY endpoint_id, stream, event_id, id), "
    "due AS (SELECT d.id FROM webhook_deliveries d WHERE d.id IN (SELECT h.id FROM heads h JOIN webhook_endpoints w "
    "ON w.id = h.endpoint_id WHERE w.enabled AND h.next_attempt_at <= now() ORDER BY h.next_attempt_at, h.id LIMIT $1) "
    "AND d.state = 'pending' FOR UPDATE OF d SKIP LOCKED) "
    "UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2), "
    "updated_at = now() FROM due, webhook_endpoints w WHERE d.id = due.id AND w.id = d.endpoint_id "
    "RETURNING d.id, w.url, d.event_id, "
    "(SELECT string_agg(secret, ' ' ORDER BY id DESC) FROM (SELECT id, secret FROM webhook_secrets s "
    "WHERE s.account_id = d.account_id AND (s.expires_at IS NULL OR s.expires_at > now()) ORDER BY id DESC LIMIT $3) newest)";

/* The endpoints' counterpart of s_settle_sql. A 410 Gone disables the endpoint, and its
 * deliveries, this one included, stay pending for an enable to resume. A delivery given up
 * (failing since the give-up age) fails, and disables its endpoint too: a receiver that has
 * answered nothing right for that long is as good as gone, and the rest of its stream would only
 * fail in turn (schemas/sql/0016: the account hears of it). */
static const char s_settle_endpoints_sql[] =
    "WITH a AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS a(id bigint, status int, error text, duration int, "
    "delivered bool, retry_after int, gone bool)), "
    "log AS (INSERT INTO webhook_delivery_attempts (delivery_id, attempted_at, http_status, error, duration_ms) "
    "SELECT id, now() - make_interval(secs => duration / 1000.0), status, error, duration FROM a), "
    "gone AS (UPDATE webhook_endpoints w SET enabled = false, disabled_reason = 'the receiver answered 410 Gone to event ' "
    "|| d.event_id || ' at ' || call_events_time(now()) FROM a JOIN webhook_deliveries d ON d.id = a.id "
    "WHERE a.gone AND w.id = d.endpoint_id), "
    "s AS (SELECT a.*, NOT a.delivered AND NOT a.gone AND d.created_at < now() - make_interval(secs => $4::int) AS given_up "
    "FROM a JOIN webhook_deliveries d ON d.id = a.id), "
    "tired AS (UPDATE webhook_endpoints w SET enabled = false, disabled_reason = 'every attempt to deliver event ' || "
    "d.event_id || ' failed since ' || call_events_time(d.created_at) || ' (the last: ' || coalesce(s.error, 'no answer') || ')' "
    "FROM s JOIN webhook_deliveries d ON d.id = s.id WHERE s.given_up AND w.id = d.endpoint_id AND w.enabled) "
    "UPDATE webhook_deliveries d SET state = CASE WHEN s.delivered THEN 'delivered' WHEN s.given_up THEN 'failed' "
    "ELSE 'pending' END, settled_at = CASE WHEN s.delivered OR s.given_up THEN now() END, "
    "last_error = CASE WHEN s.delivered THEN d.last_error ELSE s.error END, updated_at = now(), "
    "next_attempt_at = CASE WHEN s.delivered OR s.gone THEN now() ELSE now() + make_interval(secs => "
    "greatest(least(power(2, least(greatest(d.attempts - 1, 0), 30)) * $2::int, $3::int) * (0.5 + random() / 2), "
    "coalesce(s.retry_after, 0))) END "
    "FROM s WHERE d.id = s.id RETURNING d.id, d.state = 'failed'";

/* When the earliest head of a call or of an endpoint's stream comes due, in milliseconds from now
 * (NULL: none pending). Only heads count: the events queued behind one in back-off are due but
 * may not be sent. */
static const char s_next_sql[] =
    "SELECT ceil(extract(epoch FROM least((SELECT min(e.next_attempt_at) FROM call_events e JOIN (SELECT DISTINCT ON "
    "(call_id) id FROM call_events WHERE delivered_at IS NULL AND failed_at IS NULL ORDER BY call_id, id) AS heads USING (id)), "
    "(SELECT min(d.next_attempt_at) FROM webhook_deliveries d JOIN (SELECT DISTINCT ON (endpoint_id, stream) id, endpoint_id "
    "FROM webhook_deliveries WHERE state = 'pending' ORDER BY endpoint_id, stream, event_id, id) AS heads USING (id) "
    "JOIN webhook_endpoints w ON w.id = heads.endpoint_id WHERE w.enabled)) - now()) * 1000)";

typedef struct {
    bool delivered, gone;
    long status;      /* 0: no response */
    long retry_after; /* seconds a Retry-After asked for, -1: none */
    char error[256];
    int64_t duration_ms;
} attempt_t;

/* ---- libcurl's sockets and timer ------------------------------------------------------------ */

static int s_on_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *socket_arg)
{
    webhooks_t *self = arg;
    int i = 0;
    while (i < self->n_watches && self->watches[i].fd != fd)
        i++;
    if (what == CURL_POLL_REMOVE) {
        if (i < self->n_watches)
            self->watches[i] = self->watches[--self->n_watches];
        return 0;
    }
    if (i == self->n_watches) {
        if (self->n_watches == WEBHOOKS_SOCKETS_MAX) {
            log_error("webhooks: more than %d sockets: one is not watched and its delivery will time out", WEBHOOKS_SOCKETS_MAX);
            return 0;
        }
        self->n_watches++;
    }
    self->watches[i] = (watch_t){fd, what};
    return 0;
}

/* libcurl may not be called back into from here: the timeout is handled by the next run. */
static int s_on_timer(CURLM *multi, long timeout_ms, void *arg)
{
    webhooks_t *self = arg;
    self->curl_due = timeout_ms < 0 ? -1 : zclock_mono() + timeout_ms;
    return 0;
}

static size_t s_discard(char *data, size_t size, size_t n, void *arg)
{
    return size * n;
}

/* ---- life cycle ---------------------------------------------------------------------------- */

webhooks_t *webhooks_new(const char *database_url, bool allow_private_urls)
{
    webhooks_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->database_url = strdup(database_url);
    self->multi = curl_multi_init();
    if (self->database_url == NULL || self->multi == NULL) {
        curl_multi_cleanup(self->multi);
        free(self->database_url);
        free(self);
        return NULL;
    }
    self->allow_private = allow_private_urls;
    self->curl_due = -1;
    self->polled_db_fd = -1;
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETFUNCTION, s_on_socket);
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERFUNCTION, s_on_timer);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERDATA, self);
    curl_multi_setopt(self->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)WEBHOOKS_IN_FLIGHT);
    curl_multi_setopt(self->multi, CURLMOPT_MAXCONNECTS, (long)WEBHOOKS_IN_FLIGHT);
    return self;
}

static bool s_connected(const webhooks_t *self)
{
    return self->conn && PQstatus(self->conn) == CONNECTION_OK;
}

static void s_free_delivery(webhooks_t *self, delivery_t *d)
{
    curl_multi_remove_handle(self->multi, d->easy);
    curl_easy_cleanup(d->easy);
    curl_slist_free_all(d->headers);
    memset(d, 0, sizeof(*d));
    self->in_flight--;
}

void webhooks_destroy(webhooks_t **self_p)
{
    webhooks_t *self = *self_p;
    if (self == NULL)
        return;
    for (int i = 0; i < WEBHOOKS_IN_FLIGHT; i++) {
        delivery_t *d = &self->deliveries[i];
        if (d->easy == NULL)
            continue;
        /* The receiver may have it already: a second copy is what webhook-id de-duplicates. */
        const char *params[] = {d->row};
        if (s_connected(self))
            PQclear(PQexecParams(self->conn,
                                 d->outbox == OUTBOX_CALLS
                                     ? "UPDATE call_events SET attempts = attempts - 1, next_attempt_at = now() WHERE id = $1 "
                                       "AND delivered_at IS NULL AND failed_at IS NULL"
                                     : "UPDATE webhook_deliveries SET attempts = attempts - 1, next_attempt_at = now() "
                                       "WHERE id = $1 AND state = 'pending'",
                                 1, NULL, params, NULL, NULL, 0));
        s_free_delivery(self, d);
    }
    curl_multi_cleanup(self->multi);
    PQfinish(self->conn);
    free(self->database_url);
    free(self);
    *self_p = NULL;
}

/* ---- the database -------------------------------------------------------------------------- */

/* Connects and LISTENs; events committed while disconnected are found by the first scan. */
static void s_connect(webhooks_t *self)
{
    int64_t now = zclock_mono();
    if (now < self->connect_at)
        return;
    self->connect_at = now + WEBHOOKS_RECONNECT_MS;
    PQfinish(self->conn);
    self->conn = PQconnectdb(self->database_url);
    /* Claims and settles do not wait for the WAL to reach the disk: a crash can lose the last
     * fraction of a second of them, which sends those events again (at least once, deduplicated
     * by webhook-id), never loses one. Waiting for every settle's flush would bound deliveries
     * at one per disk flush. */
    PGresult *res = PQstatus(self->conn) == CONNECTION_OK
                        ? PQexec(self->conn, "SET synchronous_commit = off; LISTEN call_events; LISTEN webhook_deliveries")
                        : NULL;
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

static void s_readable(webhooks_t *self)
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

int webhooks_poll_items(webhooks_t *self, zmq_pollitem_t *items, int max)
{
    int n = 0;
    self->polled_db_fd = -1;
    if (s_connected(self) && n < max) {
        self->polled_db_fd = PQsocket(self->conn);
        items[n++] = (zmq_pollitem_t){NULL, self->polled_db_fd, ZMQ_POLLIN, 0};
    }
    for (int i = 0; i < self->n_watches && n < max; i++) {
        short events = (short)(((self->watches[i].what & CURL_POLL_IN) ? ZMQ_POLLIN : 0) |
                               ((self->watches[i].what & CURL_POLL_OUT) ? ZMQ_POLLOUT : 0));
        items[n++] = (zmq_pollitem_t){NULL, self->watches[i].fd, events, 0};
    }
    return n;
}

void webhooks_poll_ready(webhooks_t *self, const zmq_pollitem_t *items, int count)
{
    for (int i = 0; i < count; i++) {
        if (items[i].revents == 0)
            continue;
        if (items[i].fd == self->polled_db_fd) {
            s_readable(self);
            continue;
        }
        int mask = ((items[i].revents & ZMQ_POLLIN) ? CURL_CSELECT_IN : 0) |
                   ((items[i].revents & ZMQ_POLLOUT) ? CURL_CSELECT_OUT : 0) |
                   ((items[i].revents & ZMQ_POLLERR) ? CURL_CSELECT_ERR : 0);
        int running;
        curl_multi_socket_action(self->multi, items[i].fd, mask, &running);
    }
}

/* ---- one delivery -------------------------------------------------------------------------- */

/* Retry-After as delay-seconds or an HTTP-date, in seconds from now within
 * 0..WEBHOOKS_RETRY_AFTER_MAX; -1 when absent or unreadable. */
static long s_retry_after(CURL *easy)
{
    struct curl_header *h;
    if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return -1;
    const char *v = h->value;
    long seconds;
    if (v[0] >= '0' && v[0] <= '9' && v[strspn(v, "0123456789")] == '\0')
        seconds = strlen(v) > 9 ? WEBHOOKS_RETRY_AFTER_MAX : strtol(v, NULL, 10);
    else {
        time_t at = curl_getdate(v, NULL);
        if (at == -1)
            return -1;
        seconds = at <= time(NULL) ? 0 : (long)(at - time(NULL));
    }
    return seconds > WEBHOOKS_RETRY_AFTER_MAX ? WEBHOOKS_RETRY_AFTER_MAX : seconds;
}

static json_t *s_outcome(const char *id, const attempt_t *attempt)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(strtoll(id, NULL, 10)));
    json_object_set_new(o, "status", attempt->status ? json_integer(attempt->status) : json_null());
    json_object_set_new(o, "error", attempt->delivered ? json_null() : json_string(attempt->error));
    json_object_set_new(o, "duration", json_integer(attempt->duration_ms));
    json_object_set_new(o, "delivered", json_boolean(attempt->delivered));
    json_object_set_new(o, "retry_after", attempt->retry_after >= 0 ? json_integer(attempt->retry_after) : json_null());
    json_object_set_new(o, "gone", json_boolean(attempt->gone));
    return o;
}

/* Records the outcomes of `n` attempts (rows ids[i] of the outbox, attempts[i]) in one statement. */
static void s_settle(webhooks_t *self, outbox_t outbox, char (*ids)[24], const attempt_t *attempts, int n)
{
    const retry_class_t *retry = outbox == OUTBOX_CALLS ? &s_retry_fast : &s_retry_long;
    if (n == 0)
        return;
    /* Whatever happens to the record, the calls' next events may be due now. */
    self->wake_at = zclock_mono();
    if (!s_connected(self)) {
        log_error("webhooks: %d outcomes not recorded (posted again when their leases end): no database", n);
        return;
    }
    json_t *batch = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(batch, s_outcome(ids[i], &attempts[i]));
    char *text = json_dumps(batch, JSON_COMPACT);
    json_decref(batch);
    if (text == NULL) {
        log_error("webhooks: %d outcomes not recorded (posted again when their leases end): out of memory", n);
        return;
    }
    char first[16], max[16], give_up[16];
    snprintf(first, sizeof(first), "%d", retry->first_s);
    snprintf(max, sizeof(max), "%d", retry->max_s);
    snprintf(give_up, sizeof(give_up), "%d", retry->give_up_s);
    const char *params[] = {text, first, max, give_up};
    PGresult *res =
        PQexecParams(self->conn, outbox == OUTBOX_CALLS ? s_settle_sql : s_settle_endpoints_sql, 4, NULL, params, NULL, NULL, 0);
    free(text);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_error("webhooks: %d outcomes not recorded (posted again when their leases end): %s", n, PQresultErrorMessage(res));
        PQclear(res);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (attempts[i].delivered)
            continue;
        bool given_up = false;
        for (int r = 0; r < PQntuples(res); r++)
            if (strcmp(PQgetvalue(res, r, 0), ids[i]) == 0)
                given_up = PQgetvalue(res, r, 1)[0] == 't';
        log_warn("webhooks: %s=%s not delivered: %s%s", outbox == OUTBOX_CALLS ? "event" : "delivery", ids[i], attempts[i].error,
                 attempts[i].gone ? (outbox == OUTBOX_CALLS ? " (the call's URL is given up)" : " (the endpoint is disabled)")
                 : given_up       ? " (too old: given up)"
                                  : "");
    }
    PQclear(res);
}

/* A delivery that could not start is an attempt that failed at once. */
static void s_settle_unsent(webhooks_t *self, outbox_t outbox, const char *row, const char *error)
{
    attempt_t attempt = {.retry_after = -1};
    char ids[1][24];
    snprintf(attempt.error, sizeof(attempt.error), "%s", error);
    snprintf(ids[0], sizeof(ids[0]), "%s", row);
    s_settle(self, outbox, ids, &attempt, 1);
}

/* POSTs `body` for outbox row `row`; `id` is its webhook-id (the event's id). */
static void s_start(webhooks_t *self, outbox_t outbox, const char *row, const char *id, const char *url, const char *body,
                    const char *secrets)
{
    delivery_t *d = self->deliveries;
    while (d->easy)
        d++;
    int64_t timestamp = zclock_time() / 1000;
    char signature[WEBHOOK_SIGNATURES_SIZE];
    /* Never unsigned: a delivery without a valid secret waits for one (a rotation makes one). */
    if (secrets == NULL || webhook_sign(secrets, id, timestamp, body, strlen(body), signature, sizeof(signature)) != 0) {
        s_settle_unsent(self, outbox, row, "not sent: the account has no valid active signing secret");
        return;
    }
    char id_header[64], time_header[64], signature_header[sizeof(signature) + 32];
    snprintf(id_header, sizeof(id_header), "webhook-id: %s", id);
    snprintf(time_header, sizeof(time_header), "webhook-timestamp: %" PRId64, timestamp);
    snprintf(signature_header, sizeof(signature_header), "webhook-signature: %s", signature);
    struct curl_slist *headers = NULL;
    /* "Expect:" keeps libcurl from waiting for a 100 Continue before larger bodies. */
    const char *lines[] = {"Content-Type: application/json", id_header, time_header, signature_header, "Expect:"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        struct curl_slist *more = curl_slist_append(headers, lines[i]);
        if (more == NULL) {
            curl_slist_free_all(headers);
            s_settle_unsent(self, outbox, row, "out of memory");
            return;
        }
        headers = more;
    }
    CURL *easy = curl_easy_init();
    if (easy == NULL) {
        curl_slist_free_all(headers);
        s_settle_unsent(self, outbox, row, "out of memory");
        return;
    }
    netguard_curl(easy, url, (long)WEBHOOKS_TIMEOUT_MS, &self->allow_private);
    curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, d);
    if (curl_multi_add_handle(self->multi, easy) != CURLM_OK) {
        curl_easy_cleanup(easy);
        curl_slist_free_all(headers);
        s_settle_unsent(self, outbox, row, "out of memory");
        return;
    }
    *d = (delivery_t){.easy = easy, .headers = headers, .outbox = outbox, .started = zclock_mono()};
    snprintf(d->row, sizeof(d->row), "%s", row);
    self->in_flight++;
}

/* Settles every delivery libcurl has finished, in one statement per outbox. */
static void s_collect(webhooks_t *self)
{
    char ids[OUTBOX_COUNT][WEBHOOKS_IN_FLIGHT][24];
    attempt_t attempts[OUTBOX_COUNT][WEBHOOKS_IN_FLIGHT];
    int counts[OUTBOX_COUNT] = {0};
    int total = 0;
    CURLMsg *msg;
    int left;
    while (total < WEBHOOKS_IN_FLIGHT && (msg = curl_multi_info_read(self->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        delivery_t *d = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&d);
        CURLcode rc = msg->data.result;
        outbox_t outbox = d->outbox;
        int n = counts[outbox];
        attempt_t *a = &attempts[outbox][n];
        *a = (attempt_t){.retry_after = -1, .duration_ms = zclock_mono() - d->started};
        if (rc == CURLE_OK)
            curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &a->status);
        if (rc != CURLE_OK)
            snprintf(a->error, sizeof(a->error), "%s", netguard_curl_error(rc, self->allow_private));
        else if (a->status >= 200 && a->status < 300)
            a->delivered = true;
        else if (a->status == 410) {
            a->gone = true;
            snprintf(a->error, sizeof(a->error), "HTTP 410 Gone: the receiver wants no more of %s",
                     outbox == OUTBOX_CALLS ? "this call's events" : "this endpoint's events");
        } else if ((a->retry_after = s_retry_after(d->easy)) >= 0)
            snprintf(a->error, sizeof(a->error), "HTTP %ld (Retry-After: %ld s)", a->status, a->retry_after);
        else
            snprintf(a->error, sizeof(a->error), "HTTP %ld", a->status);
        snprintf(ids[outbox][n], sizeof(ids[outbox][n]), "%s", d->row);
        s_free_delivery(self, d);
        counts[outbox]++;
        total++;
    }
    for (int o = 0; o < OUTBOX_COUNT; o++)
        s_settle(self, (outbox_t)o, ids[o], attempts[o], counts[o]);
}

/* ---- claiming ------------------------------------------------------------------------------ */

/* The event document exactly as the events API renders it (relative links: the deliverer does
 * not know the address customers reach the API by), from a row of EVENT_JSON_COLUMNS. */
static char *s_event_document(PGresult *res, int row)
{
    event_fields_t e = {
        .id = PQgetvalue(res, row, 0),
        .type = PQgetvalue(res, row, 1),
        .occurred_at = PQgetvalue(res, row, 2),
        .created_at = PQgetvalue(res, row, 3),
        .campaign_id = PQgetisnull(res, row, 4) ? NULL : PQgetvalue(res, row, 4),
        .caller_id = PQgetisnull(res, row, 5) ? NULL : PQgetvalue(res, row, 5),
        .payload = PQgetvalue(res, row, 6),
        .payload_len = (size_t)PQgetlength(res, row, 6),
    };
    json_writer_t w;
    json_writer_init(&w);
    event_json_render(&w, "", &e);
    size_t len;
    return json_writer_finish(&w, &len);
}

/* Claims up to `room` heads of endpoints' streams, reads their events and starts each. Returns
 * the number claimed, -1 when the database failed (the claims then come due when their leases
 * end). */
static int s_claim_endpoints(webhooks_t *self, int room)
{
    char limit[16], lease[16], secrets[16];
    snprintf(limit, sizeof(limit), "%d", room);
    snprintf(lease, sizeof(lease), "%d", WEBHOOKS_LEASE_SECONDS);
    snprintf(secrets, sizeof(secrets), "%d", WEBHOOK_SECRETS_MAX);
    const char *params[] = {limit, lease, secrets};
    PGresult *claimed = PQexecParams(self->conn, s_claim_endpoints_sql, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(claimed) != PGRES_TUPLES_OK) {
        log_error("webhooks: claiming endpoint deliveries: %s", PQresultErrorMessage(claimed));
        PQclear(claimed);
        return -1;
    }
    int n = PQntuples(claimed);
    if (n == 0) {
        PQclear(claimed);
        return 0;
    }
    /* {id,id,...}: at most WEBHOOKS_IN_FLIGHT ids of at most 20 digits. */
    char ids[WEBHOOKS_IN_FLIGHT * 21 + 3];
    size_t used = (size_t)snprintf(ids, sizeof(ids), "{");
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(ids + used, sizeof(ids) - used, "%s%s", i ? "," : "", PQgetvalue(claimed, i, 2));
    snprintf(ids + used, sizeof(ids) - used, "}");
    const char *event_params[] = {ids};
    PGresult *events = PQexecParams(self->conn, "SELECT " EVENT_JSON_COLUMNS " FROM events WHERE id = ANY($1::bigint[])", 1, NULL,
                                    event_params, NULL, NULL, 0);
    if (PQresultStatus(events) != PGRES_TUPLES_OK) {
        log_error("webhooks: reading events to deliver: %s", PQresultErrorMessage(events));
        PQclear(events);
        PQclear(claimed);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const char *row = PQgetvalue(claimed, i, 0), *event = PQgetvalue(claimed, i, 2);
        char *body = NULL;
        for (int r = 0; r < PQntuples(events) && body == NULL; r++)
            if (strcmp(PQgetvalue(events, r, 0), event) == 0)
                body = s_event_document(events, r);
        if (body == NULL)
            s_settle_unsent(self, OUTBOX_ENDPOINTS, row, "not sent: the event could not be read (deleted, or out of memory)");
        else
            s_start(self, OUTBOX_ENDPOINTS, row, event, PQgetvalue(claimed, i, 1), body,
                    PQgetisnull(claimed, i, 3) ? NULL : PQgetvalue(claimed, i, 3));
        free(body);
    }
    PQclear(events);
    PQclear(claimed);
    return n;
}

/* Claims up to the room in flight and starts each. Returns the number claimed, -1 when the
 * database failed. */
static int s_claim(webhooks_t *self)
{
    int room = WEBHOOKS_IN_FLIGHT - self->in_flight;
    char limit[16], lease[16], secrets[16];
    snprintf(limit, sizeof(limit), "%d", room);
    snprintf(lease, sizeof(lease), "%d", WEBHOOKS_LEASE_SECONDS);
    snprintf(secrets, sizeof(secrets), "%d", WEBHOOK_SECRETS_MAX);
    const char *params[] = {limit, lease, secrets};
    PGresult *claimed = PQexecParams(self->conn, s_claim_sql, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(claimed) != PGRES_TUPLES_OK) {
        log_error("webhooks: claiming events: %s", PQresultErrorMessage(claimed));
        PQclear(claimed);
        return -1;
    }
    int n = PQntuples(claimed);
    for (int i = 0; i < n; i++)
        s_start(self, OUTBOX_CALLS, PQgetvalue(claimed, i, 0), PQgetvalue(claimed, i, 0), PQgetvalue(claimed, i, 1),
                PQgetvalue(claimed, i, 2), PQgetisnull(claimed, i, 3) ? NULL : PQgetvalue(claimed, i, 3));
    PQclear(claimed);
    if (n == room)
        return n;
    int more = s_claim_endpoints(self, room - n);
    return more < 0 ? -1 : n + more;
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

/* libcurl's multi interface runs inside the actor's own poll (its sockets are poll items, its
 * timer bounds the poll's timeout) rather than in curl_multi_poll with a short timeout: the loop
 * then sleeps until something happens, the broker's requests are never held up by deliveries,
 * and no thread is needed. */
int webhooks_run(webhooks_t *self)
{
    int64_t now = zclock_mono();
    if (self->curl_due >= 0 && now >= self->curl_due) {
        int running;
        self->curl_due = -1;
        curl_multi_socket_action(self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    if (!s_connected(self))
        s_connect(self);
    s_collect(self);
    now = zclock_mono();
    int64_t next = now + WEBHOOKS_RECONNECT_MS;
    if (s_connected(self)) {
        if (now >= self->wake_at && self->in_flight < WEBHOOKS_IN_FLIGHT) {
            int room = WEBHOOKS_IN_FLIGHT - self->in_flight;
            int claimed = s_claim(self);
            /* A full claim may have left more due: claim again as soon as there is room (a
             * settle wakes it too); otherwise sleep until the next retry. */
            self->wake_at = zclock_mono() + (claimed < 0 ? WEBHOOKS_RECONNECT_MS : claimed == room ? 0 : s_next_due(self));
        }
        next = self->in_flight < WEBHOOKS_IN_FLIGHT ? self->wake_at : now + WEBHOOKS_IDLE_MS;
    }
    if (self->curl_due >= 0 && self->curl_due < next)
        next = self->curl_due;
    now = zclock_mono();
    return next <= now ? 0 : (int)(next - now);
}
