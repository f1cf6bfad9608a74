#include "actors/fanout/webhooks.h"

#include <curl/curl.h>
#include <czmq.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/event_json.h"
#include "common/json_writer.h"
#include "common/log.h"
#include "common/netguard.h"
#include "actors/fanout/signer.h"

/* How an outbox retries: back-off from `first_s`, doubling up to `max_s`, until the event is
 * `give_up_s` old. Call-state callbacks are the fast class: their receiver is a program waiting
 * for a call's progress. Webhook endpoints (account and campaign events) are the long class: a
 * receiver that is down for maintenance or a weekend still gets everything once it is back, and a
 * retry every hour at most costs it little while it is down. Their back-off has jitter (each delay
 * between half and all of the doubling), so the endpoints of one outage do not retry in step. */
typedef struct {
    int first_s, max_s, give_up_s;
} retry_class_t;

/* Which outbox a queue comes from: call_events (0008) or webhook_deliveries (0014). */
typedef enum { OUTBOX_CALLS, OUTBOX_ENDPOINTS, OUTBOX_COUNT } outbox_t;

static const retry_class_t s_retry[OUTBOX_COUNT] = {
    [OUTBOX_CALLS] = {.first_s = 1, .max_s = 600, .give_up_s = 86400},
    [OUTBOX_ENDPOINTS] = {.first_s = 5, .max_s = 3600, .give_up_s = 3 * 86400},
};

/* A call (key; stream 0), or an endpoint (key) and one of its streams. */
typedef struct {
    int64_t key, stream;
} queue_key_t;

/* One event to post: a row of the outbox and its document. */
typedef struct item_t {
    struct item_t *next;
    int64_t row;   /* call_events.id or webhook_deliveries.id */
    int64_t event; /* the webhook-id */
    int attempt;   /* the number this attempt will have: the recorded attempts and one */
    char *body;    /* NULL: the event could not be read */
    size_t body_len;
} item_t;

/* The claimed events of one call or stream, posted one at a time, in order. */
typedef struct queue_t {
    struct queue_t *prev_ready, *next_ready; /* in the ready list while `ready` */
    outbox_t outbox;
    queue_key_t key;
    char *url;
    signer_t *signer; /* the account's active secrets, newest first; NULL: none valid */
    item_t *head, *tail;
    int64_t fresh_until; /* zclock_mono ms: nothing starts after */
    int index;           /* in webhooks_t.queues */
    int unsettled;       /* outcomes not recorded yet */
    bool busy;           /* a delivery in flight */
    bool ready;          /* in the ready list: items to post, nothing in flight */
    bool stopped;        /* an outcome other than 2xx: posts nothing more */
} queue_t;

/* A delivery in flight; queue is NULL when the slot is free. Its easy handle is kept from one
 * delivery to the next (libcurl keeps the connections in the multi handle), and so is the room
 * for its headers: libcurl only reads the list, which needs no allocation then. */
typedef struct {
    CURL *easy;
    struct curl_slist headers[5];
    char id_header[48], time_header[48], signature_header[WEBHOOK_SIGNATURES_SIZE + 24];
    queue_t *queue;
    item_t *item;
    int64_t started_us; /* zclock_usecs */
} delivery_t;

/* What one attempt came to, until it is recorded. */
typedef struct {
    queue_t *queue;
    int64_t row;
    int attempt;
    bool delivered, gone;
    long status;      /* 0: no response */
    long retry_after; /* seconds a Retry-After asked for, -1: none */
    int64_t duration_ms;
    int64_t ended_us; /* zclock_usecs */
    char error[256];
} outcome_t;

/* Outcomes to record, and the leases of the queues let go, sent together in one statement. */
typedef struct {
    outcome_t *outcomes;
    size_t n_outcomes, cap_outcomes;
    queue_key_t *releases;
    size_t n_releases, cap_releases;
} batch_t;

/* One outbox's state. */
typedef struct {
    batch_t next;      /* gathering while the statement before runs */
    batch_t sending;   /* in the statement in flight */
    bool want_claim;   /* something may be due: claim when there is room */
    int items;         /* events of this outbox's queues not started yet */
    queue_key_t after; /* claims go round the keys: the next starts after the last one taken */
    int held;          /* queues of this outbox in memory */
} box_t;

/* A socket libcurl wants watched, and for what (CURL_POLL_IN, _OUT, _INOUT). */
typedef struct {
    curl_socket_t fd;
    int what;
} watch_t;

typedef enum { SENT_NOTHING, SENT_SETTLE, SENT_CLAIM, SENT_NEXT_DUE } sent_t;

struct webhooks_t {
    char *database_url;
    char *holder;
    bool allow_private;
    PGconn *conn;       /* NULL or broken: reconnected at the next run */
    int64_t connect_at; /* zclock_mono ms of the next connection attempt */
    sent_t sent;        /* the statement in flight */
    outbox_t sent_box;
    bool sent_from_start; /* the claim in flight started from the first key */
    int sent_asked;       /* queues the claim in flight asked for */
    int64_t sent_at;      /* zclock_mono ms the statement was sent */
    PGresult *last;       /* the in-flight statement's result so far */
    sent_t previous;      /* the kind of the statement before */
    bool closing;         /* records outcomes and gives leases back, claims nothing */
    bool want_next_due;
    int64_t wake_at; /* zclock_mono ms when something may come due */
    box_t box[OUTBOX_COUNT];
    queue_t *queues[OUTBOX_COUNT * WEBHOOKS_QUEUES_MAX];
    int n_queues;
    queue_t *ready_head, *ready_tail;
    CURLM *multi;
    int64_t curl_due; /* zclock_mono ms when libcurl wants its timeout handled; -1: never */
    delivery_t deliveries[WEBHOOKS_IN_FLIGHT];
    int in_flight;
    watch_t watches[WEBHOOKS_SOCKETS_MAX];
    int n_watches;
    int polled_db_fd; /* the database socket in the last poll items, or -1 */
};

/* ---- statements --------------------------------------------------------------------------- */

/* The heads of the calls with pending events (each call's oldest), one index probe per call
 * rather than a read of every pending event: a loose index scan on call_events_pending (0008).
 * A statement starts `heads` with the first head it wants, then this takes one call after the
 * other. */
#define CALL_HEADS_NEXT                                                                                                            \
    " UNION ALL SELECT n.call_id, n.next_attempt_at FROM heads h CROSS JOIN LATERAL (SELECT call_id, next_attempt_at FROM "        \
    "call_events WHERE delivered_at IS NULL AND failed_at IS NULL AND call_id > h.call_id ORDER BY call_id, id LIMIT 1) n"

/* The same for the endpoints' streams, on webhook_deliveries_pending (0014). */
#define STREAM_HEADS_NEXT                                                                                                          \
    " UNION ALL SELECT n.endpoint_id, n.stream, n.next_attempt_at FROM streams h CROSS JOIN LATERAL (SELECT endpoint_id, "         \
    "stream, next_attempt_at FROM webhook_deliveries WHERE state = 'pending' AND (endpoint_id, stream) > (h.endpoint_id, "         \
    "h.stream) ORDER BY endpoint_id, stream, event_id, id LIMIT 1) n"

/* Up to $4 calls whose oldest pending event is due, not held here ($2) nor leased by another
 * deliverer, leased to $3 for $5 seconds, with up to $6 of their pending events each. A
 * concurrent claim of the same call waits for this one's lease row and then finds it taken. The
 * document is assembled here (s_call_document) rather than by json_build_object, which cost the
 * database more than the rest of the claim. A call leased without pending events (delivered
 * meanwhile by a deliverer whose lease ended) comes back with NULL events, to be let go. */
static const char s_claim_calls_sql[] =
    "WITH RECURSIVE heads AS ((SELECT call_id, next_attempt_at FROM call_events WHERE delivered_at IS NULL AND failed_at IS NULL "
    "AND call_id > $1 ORDER BY call_id, id LIMIT 1)" CALL_HEADS_NEXT "), "
    "chosen AS (SELECT call_id FROM heads h WHERE next_attempt_at <= now() AND call_id <> ALL ($2::bigint[]) AND NOT EXISTS "
    "(SELECT 1 FROM call_event_leases l WHERE l.call_id = h.call_id AND l.until > now() AND l.holder <> $3) LIMIT $4), "
    "leased AS (INSERT INTO call_event_leases AS l (call_id, holder, until) SELECT call_id, $3, now() + make_interval(secs => $5) "
    "FROM chosen ON CONFLICT (call_id) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until "
    "WHERE l.until <= now() OR l.holder = EXCLUDED.holder RETURNING call_id) "
    "SELECT c.id, c.call_state_url, s.secrets, e.id, e.attempts, e.type, e.occurred_at AT TIME ZONE 'UTC', e.payload "
    "FROM leased JOIN calls c ON c.id = leased.call_id CROSS JOIN LATERAL (SELECT string_agg(secret, ' ' ORDER BY id DESC) "
    "AS secrets FROM (SELECT id, secret FROM webhook_secrets w WHERE w.account_id = c.account_id AND (w.expires_at IS NULL OR "
    "w.expires_at > now()) ORDER BY id DESC LIMIT $7) newest) s "
    "LEFT JOIN LATERAL (SELECT id, attempts, type, occurred_at, payload FROM call_events e WHERE e.call_id = c.id AND "
    "e.delivered_at IS NULL AND e.failed_at IS NULL ORDER BY e.id LIMIT $6) e ON true ORDER BY c.id, e.id";

/* The endpoints' counterpart: streams of enabled endpoints, with their events' documents. A
 * delivery whose event is gone comes with NULL event columns. */
static const char s_claim_streams_sql[] =
    "WITH RECURSIVE streams AS ((SELECT endpoint_id, stream, next_attempt_at FROM webhook_deliveries WHERE state = 'pending' "
    "AND (endpoint_id, stream) > ($1::bigint, $2::bigint) ORDER BY endpoint_id, stream, event_id, id LIMIT 1)" STREAM_HEADS_NEXT
    "), chosen AS (SELECT endpoint_id, stream FROM streams h WHERE next_attempt_at <= now() AND (endpoint_id, stream) NOT IN "
    "(SELECT * FROM unnest($3::bigint[], $4::bigint[])) AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = h.endpoint_id "
    "AND w.enabled) AND NOT EXISTS (SELECT 1 FROM webhook_stream_leases l WHERE l.endpoint_id = h.endpoint_id AND l.stream = "
    "h.stream AND l.until > now() AND l.holder <> $5) LIMIT $6), "
    "leased AS (INSERT INTO webhook_stream_leases AS l (endpoint_id, stream, holder, until) SELECT endpoint_id, stream, $5, "
    "now() + make_interval(secs => $7) FROM chosen ON CONFLICT (endpoint_id, stream) DO UPDATE SET holder = EXCLUDED.holder, "
    "until = EXCLUDED.until WHERE l.until <= now() OR l.holder = EXCLUDED.holder RETURNING endpoint_id, stream) "
    "SELECT l.endpoint_id, l.stream, w.url, s.secrets, d.id, d.attempts, ev.* FROM leased l JOIN webhook_endpoints w ON "
    "w.id = l.endpoint_id CROSS JOIN LATERAL (SELECT string_agg(secret, ' ' ORDER BY id DESC) AS secrets FROM (SELECT id, "
    "secret FROM webhook_secrets ws WHERE ws.account_id = w.account_id AND (ws.expires_at IS NULL OR ws.expires_at > now()) "
    "ORDER BY id DESC LIMIT $9) newest) s "
    "LEFT JOIN LATERAL (SELECT id, event_id, attempts FROM webhook_deliveries d WHERE d.endpoint_id = l.endpoint_id AND "
    "d.stream = l.stream AND d.state = 'pending' ORDER BY d.event_id, d.id LIMIT $8) d ON true "
    "LEFT JOIN LATERAL (SELECT " EVENT_JSON_COLUMNS " FROM events WHERE events.id = d.event_id) ev ON true "
    "ORDER BY l.endpoint_id, l.stream, d.event_id, d.id";

/* The outcomes of a batch of attempts (arrays, one element per attempt), in one statement, with
 * the leases of the calls let go ($13). Each attempt is logged, with its start (from when it
 * ended, $6 microseconds before this statement was sent, and its duration): a delivery on its
 * event (schemas/sql/0018), a failure in a row of its own. Its event is settled or given its next
 * try: back-off doubles from the class's first delay to its maximum, from the attempt's end; a
 * Retry-After later than that wins; a failure of an event older than the class's give-up age is
 * the last. A 410 Gone settles the call's URL for good: the event fails, so do the call's later
 * pending events, and the call remembers it for the events written later. Returns the events
 * given up.
 *
 * An outcome counts only on a row still at the attempt count it was made at (every recorded
 * outcome moves it, and a row is pending until one ends it), so a batch recorded twice (its
 * result lost with the connection) changes nothing the second time. No two outcomes of a batch
 * are of one event, and the 410's rest are later events than any of the batch's (a call posts
 * nothing after a 410), so no row is updated twice. The update names no condition of the pending
 * index's predicate: right after a burst, its statistics say it holds a row or two, and the
 * planner would drive the update from it, reading every pending event for each outcome; the
 * 410's rest reads it from each 410, in a lateral subquery that OFFSET 0 keeps from being merged
 * into the join. */
static const char s_settle_calls_sql[] =
    "WITH a AS (SELECT a.*, now() - a.since_end * interval '1 microsecond' AS ended FROM unnest($1::bigint[], $2::int[], "
    "$3::int[], $4::text[], $5::int[], $6::bigint[], $7::bool[], $8::int[], $9::bool[]) AS a(id, attempt, status, error, "
    "duration, since_end, delivered, retry_after, gone)), "
    "released AS (DELETE FROM call_event_leases WHERE call_id = ANY ($13::bigint[]) AND holder = $14), "
    "settled AS (UPDATE call_events e SET attempts = a.attempt, delivered_at = CASE WHEN a.delivered THEN now() END, "
    "delivered_attempted_at = CASE WHEN a.delivered THEN a.ended - make_interval(secs => a.duration / 1000.0) END, "
    "delivered_status = CASE WHEN a.delivered THEN a.status END, delivered_duration_ms = CASE WHEN a.delivered THEN a.duration "
    "END, "
    "failed_at = CASE WHEN NOT a.delivered AND (a.gone OR e.created_at < now() - make_interval(secs => $12::int)) THEN now() END, "
    "last_error = CASE WHEN a.delivered THEN e.last_error ELSE a.error END, "
    "next_attempt_at = CASE WHEN a.delivered OR a.gone THEN e.next_attempt_at ELSE a.ended + make_interval(secs => "
    "greatest(least(power(2, least(greatest(a.attempt - 1, 0), 30)) * $10::int, $11::int), coalesce(a.retry_after, 0))) END "
    "FROM a WHERE e.id = a.id AND e.attempts = a.attempt - 1 "
    "RETURNING e.id, e.call_id, a.status, a.error, a.duration, a.ended, a.delivered, a.gone, e.failed_at IS NOT NULL AS failed), "
    "log AS (INSERT INTO call_event_attempts (event_id, attempted_at, http_status, error, duration_ms) "
    "SELECT id, ended - make_interval(secs => duration / 1000.0), status, error, duration FROM settled WHERE NOT delivered), "
    "gone AS (UPDATE calls SET call_state_gone_at = coalesce(call_state_gone_at, now()) "
    "WHERE id IN (SELECT call_id FROM settled WHERE gone)), "
    "rest AS (UPDATE call_events r SET failed_at = now(), "
    "last_error = 'not sent: the call_state_url answered 410 Gone to event ' || later.gone_id FROM (SELECT g.id AS gone_id, "
    "x.id FROM settled g CROSS JOIN LATERAL (SELECT id FROM call_events WHERE call_id = g.call_id AND id > g.id AND "
    "delivered_at IS NULL AND failed_at IS NULL OFFSET 0) x WHERE g.gone) later WHERE r.id = later.id) "
    "SELECT id FROM settled WHERE failed AND NOT gone";

/* The endpoints' counterpart. A 410 Gone disables the endpoint, and its deliveries, this one
 * included, stay pending for an enable to resume. A delivery given up (failing since the give-up
 * age) fails, and disables its endpoint too: a receiver that has answered nothing right for that
 * long is as good as gone, and the rest of its stream would only fail in turn (schemas/sql/0016:
 * the account hears of it). One update per endpoint, whatever several of its streams' outcomes
 * say. Returns the deliveries given up, with their endpoint. */
static const char s_settle_streams_sql[] =
    "WITH a AS (SELECT a.*, now() - a.since_end * interval '1 microsecond' AS ended FROM unnest($1::bigint[], $2::int[], "
    "$3::int[], $4::text[], $5::int[], $6::bigint[], $7::bool[], $8::int[], $9::bool[]) AS a(id, attempt, status, error, "
    "duration, since_end, delivered, retry_after, gone)), "
    "released AS (DELETE FROM webhook_stream_leases l USING unnest($13::bigint[], $14::bigint[]) AS r(endpoint_id, stream) "
    "WHERE l.endpoint_id = r.endpoint_id AND l.stream = r.stream AND l.holder = $15), "
    "s AS (SELECT a.*, NOT a.delivered AND NOT a.gone AND d.created_at < now() - make_interval(secs => $12::int) AS given_up "
    "FROM a JOIN webhook_deliveries d ON d.id = a.id), "
    "settled AS (UPDATE webhook_deliveries d SET attempts = s.attempt, state = CASE WHEN s.delivered THEN 'delivered' "
    "WHEN s.given_up THEN 'failed' ELSE 'pending' END, settled_at = CASE WHEN s.delivered OR s.given_up THEN now() END, "
    "last_error = CASE WHEN s.delivered THEN d.last_error ELSE s.error END, updated_at = now(), "
    "next_attempt_at = CASE WHEN s.delivered OR s.gone THEN now() ELSE s.ended + make_interval(secs => "
    "greatest(least(power(2, least(greatest(s.attempt - 1, 0), 30)) * $10::int, $11::int) * (0.5 + random() / 2), "
    "coalesce(s.retry_after, 0))) END "
    "FROM s WHERE d.id = s.id AND d.attempts = s.attempt - 1 "
    "RETURNING d.id, d.endpoint_id, d.event_id, d.created_at, s.status, s.error, s.duration, s.ended, s.gone, s.given_up), "
    "log AS (INSERT INTO webhook_delivery_attempts (delivery_id, attempted_at, http_status, error, duration_ms) "
    "SELECT id, ended - make_interval(secs => duration / 1000.0), status, error, duration FROM settled), "
    "off AS (SELECT DISTINCT ON (endpoint_id) endpoint_id, gone, CASE WHEN gone THEN "
    "'the receiver answered 410 Gone to event ' || event_id || ' at ' || call_events_time(now()) ELSE "
    "'every attempt to deliver event ' || event_id || ' failed since ' || call_events_time(created_at) || ' (the last: ' || "
    "coalesce(error, 'no answer') || ')' END AS reason FROM settled WHERE gone OR given_up ORDER BY endpoint_id, gone DESC, id), "
    "disabled AS (UPDATE webhook_endpoints w SET enabled = false, disabled_reason = off.reason FROM off "
    "WHERE w.id = off.endpoint_id AND (off.gone OR w.enabled)) "
    "SELECT id, endpoint_id FROM settled WHERE given_up";

/* When the earliest head not held here comes due, in milliseconds from now (NULL: none pending):
 * its retry time, or the end of another deliverer's lease on it. Only heads count: the events
 * queued behind one in back-off are due but may not be sent. */
static const char s_next_due_sql[] =
    "WITH RECURSIVE heads AS ((SELECT call_id, next_attempt_at FROM call_events WHERE delivered_at IS NULL AND failed_at IS NULL "
    "ORDER BY call_id, id LIMIT 1)" CALL_HEADS_NEXT "), streams AS ((SELECT endpoint_id, stream, next_attempt_at FROM "
    "webhook_deliveries WHERE state = 'pending' ORDER BY endpoint_id, stream, event_id, id LIMIT 1)" STREAM_HEADS_NEXT ") "
    "SELECT ceil(extract(epoch FROM least((SELECT min(greatest(h.next_attempt_at, l.until)) FROM heads h LEFT JOIN "
    "call_event_leases l ON l.call_id = h.call_id AND l.holder <> $1 WHERE h.call_id <> ALL ($2::bigint[])), "
    "(SELECT min(greatest(h.next_attempt_at, l.until)) FROM streams h JOIN webhook_endpoints w ON w.id = h.endpoint_id AND "
    "w.enabled LEFT JOIN webhook_stream_leases l ON l.endpoint_id = h.endpoint_id AND l.stream = h.stream AND l.holder <> $1 "
    "WHERE (h.endpoint_id, h.stream) NOT IN (SELECT * FROM unnest($3::bigint[], $4::bigint[])))) - now()) * 1000)";

/* Prepared once per connection: parsing and planning them for every batch was a few percent of
 * the database's time. */
typedef enum { STMT_CLAIM_CALLS, STMT_CLAIM_STREAMS, STMT_SETTLE_CALLS, STMT_SETTLE_STREAMS, STMT_NEXT_DUE, STMT_COUNT } stmt_t;

static const struct {
    const char *name, *sql;
} s_stmt[STMT_COUNT] = {
    [STMT_CLAIM_CALLS] = {"webhooks_claim_calls", s_claim_calls_sql},
    [STMT_CLAIM_STREAMS] = {"webhooks_claim_streams", s_claim_streams_sql},
    [STMT_SETTLE_CALLS] = {"webhooks_settle_calls", s_settle_calls_sql},
    [STMT_SETTLE_STREAMS] = {"webhooks_settle_streams", s_settle_streams_sql},
    [STMT_NEXT_DUE] = {"webhooks_next_due", s_next_due_sql},
};

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

/* ---- growing arrays and statement parameters ----------------------------------------------- */

/* Room for `need` elements of `size` bytes in *data (capacity *cap). 0, or -1 out of memory. */
static int s_reserve(void **data, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t cap_new = *cap ? *cap * 2 : 64;
    while (cap_new < need)
        cap_new *= 2;
    void *grown = realloc(*data, cap_new * size);
    if (grown == NULL)
        return -1;
    *data = grown;
    *cap = cap_new;
    return 0;
}

static void s_batch_swap(batch_t *a, batch_t *b)
{
    batch_t t = *a;
    *a = *b;
    *b = t;
}

/* Appends what `from` holds to `to`. 0, or -1 out of memory (nothing appended). */
static int s_batch_append(batch_t *to, const batch_t *from)
{
    if (s_reserve((void **)&to->outcomes, &to->cap_outcomes, to->n_outcomes + from->n_outcomes, sizeof(outcome_t)) != 0 ||
        s_reserve((void **)&to->releases, &to->cap_releases, to->n_releases + from->n_releases, sizeof(queue_key_t)) != 0)
        return -1;
    if (from->n_outcomes)
        memcpy(to->outcomes + to->n_outcomes, from->outcomes, from->n_outcomes * sizeof(outcome_t));
    if (from->n_releases)
        memcpy(to->releases + to->n_releases, from->releases, from->n_releases * sizeof(queue_key_t));
    to->n_outcomes += from->n_outcomes;
    to->n_releases += from->n_releases;
    return 0;
}

/* A statement parameter being written: text, or failed (out of memory). */
typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} text_t;

static void s_text_add(text_t *t, const char *bytes, size_t len)
{
    if (t->failed || s_reserve((void **)&t->data, &t->cap, t->len + len + 1, 1) != 0) {
        t->failed = true;
        return;
    }
    memcpy(t->data + t->len, bytes, len);
    t->len += len;
    t->data[t->len] = '\0';
}

/* Arrays are written as PostgreSQL reads them: {a,b,...}. Their elements are written without
 * printf, which took a fiftieth of the deliverer's time when it wrote every element. */
static void s_text_open(text_t *t)
{
    s_text_add(t, "{", 1);
}

static void s_text_close(text_t *t)
{
    s_text_add(t, "}", 1);
}

/* One element as it is written (NULL, t, f...). */
static void s_text_word(text_t *t, const char *word)
{
    if (t->len > 1)
        s_text_add(t, ",", 1);
    s_text_add(t, word, strlen(word));
}

static void s_text_int(text_t *t, int64_t v)
{
    char digits[24], *p = digits + sizeof(digits);
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    if (t->len > 1)
        s_text_add(t, ",", 1);
    s_text_add(t, p, (size_t)(digits + sizeof(digits) - p));
}

/* A text element, quoted, or NULL. */
static void s_text_string(text_t *t, const char *value)
{
    if (value == NULL) {
        s_text_word(t, "NULL");
        return;
    }
    s_text_word(t, "\"");
    for (const char *p = value; *p; p++) {
        size_t n = strcspn(p, "\"\\");
        s_text_add(t, p, n);
        p += n;
        if (*p == '\0')
            break;
        s_text_add(t, "\\", 1);
        s_text_add(t, p, 1);
    }
    s_text_add(t, "\"", 1);
}

/* ---- queues -------------------------------------------------------------------------------- */

static void s_items_free(webhooks_t *self, queue_t *q)
{
    while (q->head) {
        item_t *item = q->head;
        q->head = item->next;
        free(item->body);
        free(item);
        self->box[q->outbox].items--;
    }
    q->tail = NULL;
}

static void s_ready_remove(webhooks_t *self, queue_t *q)
{
    if (!q->ready)
        return;
    if (q->prev_ready)
        q->prev_ready->next_ready = q->next_ready;
    else
        self->ready_head = q->next_ready;
    if (q->next_ready)
        q->next_ready->prev_ready = q->prev_ready;
    else
        self->ready_tail = q->prev_ready;
    q->prev_ready = q->next_ready = NULL;
    q->ready = false;
}

/* Queued for a slot, when it has something to post and nothing in flight: first when it is on its
 * way (`first`), last otherwise. A queue that was just answered keeps its place: calls finish one
 * after another and make room for the next claim steadily, where turns in a circle would finish
 * every call at the same moment and leave the slots empty until a claim comes back. */
static void s_ready_add(webhooks_t *self, queue_t *q, bool first)
{
    if (q->ready || q->busy || q->stopped || q->head == NULL)
        return;
    if (first) {
        q->prev_ready = NULL;
        q->next_ready = self->ready_head;
        if (self->ready_head)
            self->ready_head->prev_ready = q;
        else
            self->ready_tail = q;
        self->ready_head = q;
    } else {
        q->prev_ready = self->ready_tail;
        q->next_ready = NULL;
        if (self->ready_tail)
            self->ready_tail->next_ready = q;
        else
            self->ready_head = q;
        self->ready_tail = q;
    }
    q->ready = true;
}

/* Posts nothing more: what it still holds is posted again by a later claim. */
static void s_queue_stop(webhooks_t *self, queue_t *q)
{
    q->stopped = true;
    s_items_free(self, q);
    s_ready_remove(self, q);
}

static void s_queue_let_go(webhooks_t *self, queue_t *q);

/* Stops every stream of endpoint `id` held here (the endpoint is disabled). */
static void s_endpoint_stop(webhooks_t *self, int64_t id)
{
    for (int i = self->n_queues - 1; i >= 0; i--) {
        queue_t *q = self->queues[i];
        if (q->outbox == OUTBOX_ENDPOINTS && q->key.key == id) {
            s_queue_stop(self, q);
            s_queue_let_go(self, q);
        }
    }
}

/* Lets the queue go once nothing of it is in flight or unrecorded and it has nothing more to
 * post: its lease is given back with the next outcomes, and its call or stream may be claimed
 * again (by this deliverer too), so a claim is due. */
static void s_queue_let_go(webhooks_t *self, queue_t *q)
{
    if (q->busy || q->unsettled > 0 || q->head)
        return;
    box_t *box = &self->box[q->outbox];
    batch_t *b = &box->next;
    if (s_reserve((void **)&b->releases, &b->cap_releases, b->n_releases + 1, sizeof(queue_key_t)) == 0)
        b->releases[b->n_releases++] = q->key;
    else
        log_error("webhooks: out of memory: a lease is kept until it ends");
    box->want_claim = true;
    box->held--;
    s_ready_remove(self, q);
    self->queues[q->index] = self->queues[--self->n_queues];
    self->queues[q->index]->index = q->index;
    s_items_free(self, q);
    free(q->url);
    signer_destroy(&q->signer);
    free(q);
}

static queue_t *s_queue_new(webhooks_t *self, outbox_t outbox, queue_key_t key, const char *url, const char *secrets)
{
    queue_t *q = calloc(1, sizeof(*q));
    if (q == NULL || (q->url = strdup(url)) == NULL) {
        free(q);
        return NULL;
    }
    q->signer = secrets ? signer_new(secrets) : NULL;
    q->outbox = outbox;
    q->key = key;
    /* From when the claim was sent: its lease started after that. */
    q->fresh_until = self->sent_at + WEBHOOKS_FRESH_MS;
    q->index = self->n_queues;
    self->queues[self->n_queues++] = q;
    self->box[outbox].held++;
    return q;
}

/* Appends an event to post; `body` is taken (NULL: the event could not be read). */
static int s_queue_item(webhooks_t *self, queue_t *q, int64_t row, int64_t event, int attempts, char *body, size_t body_len)
{
    item_t *item = calloc(1, sizeof(*item));
    if (item == NULL) {
        free(body);
        return -1;
    }
    *item = (item_t){.row = row, .event = event, .attempt = attempts + 1, .body = body, .body_len = body_len};
    if (q->tail)
        q->tail->next = item;
    else
        q->head = item;
    q->tail = item;
    self->box[q->outbox].items++;
    return 0;
}

/* ---- outcomes ------------------------------------------------------------------------------ */

/* Records what `item` of `q` came to and moves the queue on: to its next event after a 2xx, to a
 * stop otherwise. `item` is freed. */
static void s_outcome(webhooks_t *self, queue_t *q, item_t *item, const outcome_t *what)
{
    box_t *box = &self->box[q->outbox];
    q->busy = false;
    batch_t *b = &box->next;
    if (s_reserve((void **)&b->outcomes, &b->cap_outcomes, b->n_outcomes + 1, sizeof(outcome_t)) != 0) {
        log_error("webhooks: %s=%" PRId64 ": outcome not recorded (out of memory): posted again",
                  q->outbox == OUTBOX_CALLS ? "event" : "delivery", item->row);
        s_queue_stop(self, q);
    } else {
        outcome_t *o = &b->outcomes[b->n_outcomes++];
        *o = *what;
        o->queue = q;
        o->row = item->row;
        o->attempt = item->attempt;
        q->unsettled++;
        if (!o->delivered)
            s_queue_stop(self, q);
        /* A 410 from an endpoint ends its other streams here too: they post to the same URL. */
        if (o->gone && q->outbox == OUTBOX_ENDPOINTS)
            s_endpoint_stop(self, q->key.key);
    }
    free(item->body);
    free(item);
    s_ready_add(self, q, true);
    s_queue_let_go(self, q);
}

/* An attempt that could not start is one that failed at once. */
static void s_unsent(webhooks_t *self, queue_t *q, item_t *item, const char *error)
{
    outcome_t o = {.retry_after = -1, .ended_us = zclock_usecs()};
    snprintf(o.error, sizeof(o.error), "%s", error);
    s_outcome(self, q, item, &o);
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

/* POSTs the next event of `q` in slot `d`. */
static void s_start(webhooks_t *self, queue_t *q, delivery_t *d)
{
    item_t *item = q->head;
    q->head = item->next;
    if (q->head == NULL)
        q->tail = NULL;
    self->box[q->outbox].items--;
    q->busy = true;
    if (item->body == NULL) {
        s_unsent(self, q, item, "not sent: the event could not be read (deleted, or out of memory)");
        return;
    }
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, item->event);
    int64_t timestamp = zclock_time() / 1000;
    char signature[WEBHOOK_SIGNATURES_SIZE];
    /* Never unsigned: a delivery without a valid secret waits for one (a rotation makes one). */
    if (q->signer == NULL || signer_sign(q->signer, id, timestamp, item->body, item->body_len, signature, sizeof(signature)) != 0) {
        s_unsent(self, q, item, "not sent: the account has no valid active signing secret");
        return;
    }
    snprintf(d->id_header, sizeof(d->id_header), "webhook-id: %s", id);
    snprintf(d->time_header, sizeof(d->time_header), "webhook-timestamp: %" PRId64, timestamp);
    snprintf(d->signature_header, sizeof(d->signature_header), "webhook-signature: %s", signature);
    /* "Expect:" keeps libcurl from waiting for a 100 Continue before larger bodies. */
    char *lines[] = {(char *)"Content-Type: application/json", d->id_header, d->time_header, d->signature_header,
                     (char *)"Expect:"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        d->headers[i] = (struct curl_slist){lines[i], i + 1 < sizeof(lines) / sizeof(lines[0]) ? &d->headers[i + 1] : NULL};
    if (d->easy == NULL) {
        /* What every delivery of the slot shares is set once, not parsed and copied again for
         * each. */
        if ((d->easy = curl_easy_init()) == NULL) {
            s_unsent(self, q, item, "out of memory");
            return;
        }
        netguard_curl(d->easy, q->url, (long)WEBHOOKS_TIMEOUT_MS, &self->allow_private);
        curl_easy_setopt(d->easy, CURLOPT_HTTPHEADER, d->headers);
        curl_easy_setopt(d->easy, CURLOPT_WRITEFUNCTION, s_discard);
        curl_easy_setopt(d->easy, CURLOPT_PRIVATE, d);
    }
    curl_easy_setopt(d->easy, CURLOPT_URL, q->url);
    /* The body stays with the item until the delivery ends: libcurl need not copy it. */
    curl_easy_setopt(d->easy, CURLOPT_POSTFIELDS, item->body);
    curl_easy_setopt(d->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)item->body_len);
    if (curl_multi_add_handle(self->multi, d->easy) != CURLM_OK) {
        s_unsent(self, q, item, "out of memory");
        return;
    }
    d->queue = q;
    d->item = item;
    d->started_us = zclock_usecs();
    self->in_flight++;
}

/* Frees slot `d` and returns its item. */
static item_t *s_slot_free(webhooks_t *self, delivery_t *d)
{
    item_t *item = d->item;
    curl_multi_remove_handle(self->multi, d->easy);
    d->queue = NULL;
    d->item = NULL;
    self->in_flight--;
    return item;
}

/* Starts the next event of ready queues, in the ready list's order, while there is room in
 * flight. A queue past its freshness is let go instead, with what it still holds. */
static void s_fill(webhooks_t *self)
{
    int64_t now = zclock_mono();
    int slot = 0;
    while (self->in_flight < WEBHOOKS_IN_FLIGHT && self->ready_head) {
        queue_t *q = self->ready_head;
        s_ready_remove(self, q);
        if (now > q->fresh_until) {
            s_queue_stop(self, q);
            s_queue_let_go(self, q);
            continue;
        }
        while (self->deliveries[slot].queue)
            slot++;
        s_start(self, q, &self->deliveries[slot]);
    }
}

/* Turns every delivery libcurl has finished into an outcome. */
static void s_collect(webhooks_t *self)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(self->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        delivery_t *d = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&d);
        CURLcode rc = msg->data.result;
        queue_t *q = d->queue;
        int64_t now = zclock_usecs();
        outcome_t o = {.retry_after = -1, .duration_ms = (now - d->started_us) / 1000, .ended_us = now};
        if (rc == CURLE_OK)
            curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &o.status);
        if (rc != CURLE_OK)
            snprintf(o.error, sizeof(o.error), "%s", netguard_curl_error(rc, self->allow_private));
        else if (o.status >= 200 && o.status < 300)
            o.delivered = true;
        else if (o.status == 410) {
            o.gone = true;
            snprintf(o.error, sizeof(o.error), "HTTP 410 Gone: the receiver wants no more of %s",
                     q->outbox == OUTBOX_CALLS ? "this call's events" : "this endpoint's events");
        } else if ((o.retry_after = s_retry_after(d->easy)) >= 0)
            snprintf(o.error, sizeof(o.error), "HTTP %ld (Retry-After: %ld s)", o.status, o.retry_after);
        else
            snprintf(o.error, sizeof(o.error), "HTTP %ld", o.status);
        s_outcome(self, q, s_slot_free(self, d), &o);
    }
}

/* ---- claiming ------------------------------------------------------------------------------ */

/* A call event's document, as receivers have always had it (the text json_build_object made of
 * it): id, type, occurred_at in UTC with milliseconds, and the payload as PostgreSQL wrote it.
 * `occurred` is the timestamp as ISO text ("YYYY-MM-DD HH:MM:SS[.ffffff]"); the type is one of
 * the four names call_events' check allows, which need no escaping. */
static char *s_call_document(const char *id, const char *type, const char *occurred, const char *payload, size_t payload_len,
                             size_t *len)
{
    if (strlen(occurred) < 19)
        return NULL;
    /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
    char at[25];
    memcpy(at, occurred, 19);
    at[10] = 'T';
    memcpy(at + 19, ".000Z", 6);
    const char *fraction = occurred[19] == '.' ? occurred + 20 : "";
    for (int i = 0; i < 3 && fraction[i] >= '0' && fraction[i] <= '9'; i++)
        at[20 + i] = fraction[i];
    size_t size = strlen(id) + strlen(type) + payload_len + 80;
    char *doc = malloc(size);
    if (doc == NULL)
        return NULL;
    int n = snprintf(doc, size, "{\"id\" : %s, \"type\" : \"%s\", \"occurred_at\" : \"%s\", \"data\" : ", id, type, at);
    memcpy(doc + n, payload, payload_len);
    memcpy(doc + n + payload_len, "}", 2);
    *len = (size_t)n + payload_len + 1;
    return doc;
}

/* The event document exactly as the events API renders it (relative links: the deliverer does
 * not know the address customers reach the API by), from EVENT_JSON_COLUMNS at column `at`. */
static char *s_event_document(const PGresult *res, int row, int at, size_t *len)
{
    event_fields_t e = {
        .id = PQgetvalue(res, row, at),
        .type = PQgetvalue(res, row, at + 1),
        .occurred_at = PQgetvalue(res, row, at + 2),
        .created_at = PQgetvalue(res, row, at + 3),
        .campaign_id = PQgetisnull(res, row, at + 4) ? NULL : PQgetvalue(res, row, at + 4),
        .caller_id = PQgetisnull(res, row, at + 5) ? NULL : PQgetvalue(res, row, at + 5),
        .payload = PQgetvalue(res, row, at + 6),
        .payload_len = (size_t)PQgetlength(res, row, at + 6),
    };
    json_writer_t w;
    json_writer_init(&w);
    event_json_render(&w, "", &e);
    return json_writer_finish(&w, len);
}

static int64_t s_value(const PGresult *res, int row, int column)
{
    return strtoll(PQgetvalue(res, row, column), NULL, 10);
}

/* Queues from a claim's rows: one per call or stream, its events in order. */
static void s_claimed(webhooks_t *self, outbox_t outbox, const PGresult *res)
{
    box_t *box = &self->box[outbox];
    bool calls = outbox == OUTBOX_CALLS;
    int rows = PQntuples(res), taken = 0;
    queue_t *q = NULL;
    for (int r = 0; r < rows; r++) {
        queue_key_t key = {s_value(res, r, 0), calls ? 0 : s_value(res, r, 1)};
        if (q == NULL || q->key.key != key.key || q->key.stream != key.stream) {
            if (q)
                s_queue_let_go(self, q);
            taken++;
            box->after = key;
            /* Never more than asked for, so never past WEBHOOKS_QUEUES_MAX. */
            q = s_queue_new(self, outbox, key, PQgetvalue(res, r, calls ? 1 : 2),
                            PQgetisnull(res, r, calls ? 2 : 3) ? NULL : PQgetvalue(res, r, calls ? 2 : 3));
            if (q == NULL) {
                log_error("webhooks: out of memory: a claimed %s is posted when its lease ends", calls ? "call" : "stream");
                continue;
            }
        }
        if (q == NULL || PQgetisnull(res, r, calls ? 3 : 4))
            continue;
        int64_t row = s_value(res, r, calls ? 3 : 4);
        int attempts = (int)s_value(res, r, calls ? 4 : 5);
        size_t len = 0;
        char *body;
        if (calls)
            body = s_call_document(PQgetvalue(res, r, 3), PQgetvalue(res, r, 5), PQgetvalue(res, r, 6), PQgetvalue(res, r, 7),
                                   (size_t)PQgetlength(res, r, 7), &len);
        else
            body = PQgetisnull(res, r, 6) ? NULL : s_event_document(res, r, 6, &len);
        if (s_queue_item(self, q, row, calls ? row : s_value(res, r, 6), attempts, body, len) != 0) {
            log_error("webhooks: out of memory: the rest of a claimed %s is posted later", calls ? "call" : "stream");
            s_queue_stop(self, q);
        }
        s_ready_add(self, q, false);
    }
    if (q)
        s_queue_let_go(self, q);
    /* Fewer than asked: nothing more is due after the last key; from the first key, nothing more
     * is due at all until the next retry comes due. */
    if (taken < self->sent_asked) {
        box->after = (queue_key_t){0, -1};
        if (self->sent_from_start) {
            box->want_claim = false;
            self->want_next_due = true;
        }
    }
}

/* ---- the database -------------------------------------------------------------------------- */

static bool s_connected(const webhooks_t *self)
{
    return self->conn && PQstatus(self->conn) == CONNECTION_OK;
}

/* Connects and LISTENs; events committed while disconnected are found by the first claim. */
static void s_connect(webhooks_t *self)
{
    int64_t now = zclock_mono();
    if (now < self->connect_at)
        return;
    self->connect_at = now + WEBHOOKS_RECONNECT_MS;
    PQfinish(self->conn);
    self->conn = PQconnectdb(self->database_url);
    /* Outcomes and claims do not wait for the WAL to reach the disk: a crash can lose the last
     * fraction of a second of them, which sends those events again (at least once, deduplicated
     * by webhook-id), never loses one. ISO dates: s_call_document reads them. Every statement
     * here is index lookups by design (heads, keys, ids), but right after a burst of inserts the
     * planner's statistics say the outbox is nearly empty, and it would hash or scan all of it
     * instead, once per statement (a settle of 500 outcomes: 600 ms instead of 10): this
     * connection plans with indexes only. */
    PGresult *res = PQstatus(self->conn) == CONNECTION_OK
                        ? PQexec(self->conn, "SET synchronous_commit = off; SET DateStyle = ISO; SET enable_hashjoin = off; "
                                             "SET enable_mergejoin = off; SET enable_seqscan = off; LISTEN call_events; "
                                             "LISTEN webhook_deliveries")
                        : NULL;
    bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    for (int i = 0; ok && i < STMT_COUNT; i++) {
        res = PQprepare(self->conn, s_stmt[i].name, s_stmt[i].sql, 0, NULL);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    if (!ok) {
        log_warn("webhooks: cannot listen on the database (retrying): %s", PQerrorMessage(self->conn));
        PQfinish(self->conn);
        self->conn = NULL;
        return;
    }
    for (int o = 0; o < OUTBOX_COUNT; o++)
        self->box[o].want_claim = true;
}

/* The statement in flight will not complete: what it was to record is recorded by the next. */
static void s_lost(webhooks_t *self)
{
    if (self->sent == SENT_NEXT_DUE)
        self->want_next_due = true;
    if (self->sent == SENT_SETTLE) {
        box_t *box = &self->box[self->sent_box];
        if (s_batch_append(&box->sending, &box->next) == 0) {
            s_batch_swap(&box->sending, &box->next);
        } else {
            log_error("webhooks: out of memory: %zu outcomes not recorded (posted again)", box->sending.n_outcomes);
            for (size_t i = 0; i < box->sending.n_outcomes; i++)
                if (--box->sending.outcomes[i].queue->unsettled == 0)
                    s_queue_let_go(self, box->sending.outcomes[i].queue);
        }
        box->sending.n_outcomes = 0;
        box->sending.n_releases = 0;
    }
    PQclear(self->last);
    self->last = NULL;
    self->sent = SENT_NOTHING;
    log_warn("webhooks: the database connection broke (reconnecting): %s", self->conn ? PQerrorMessage(self->conn) : "");
    PQfinish(self->conn);
    self->conn = NULL;
}

/* A statement's text parameters: arrays, and numbers (n of them used). s_params_free frees them. */
typedef struct {
    text_t text[11];
    char numbers[8][24];
    int n;
} params_t;

static const char *s_number(params_t *p, int64_t v)
{
    char *out = p->numbers[p->n++];
    snprintf(out, sizeof(p->numbers[0]), "%" PRId64, v);
    return out;
}

static void s_params_free(params_t *p)
{
    for (size_t i = 0; i < sizeof(p->text) / sizeof(p->text[0]); i++)
        free(p->text[i].data);
}

/* The keys of the queues of `outbox` held here, as one or two arrays (keys, streams). */
static void s_held(const webhooks_t *self, outbox_t outbox, text_t *keys, text_t *streams)
{
    const box_t *box = &self->box[outbox];
    s_text_open(keys);
    if (streams)
        s_text_open(streams);
    for (int i = 0; i < self->n_queues; i++) {
        const queue_t *q = self->queues[i];
        if (q->outbox != outbox)
            continue;
        s_text_int(keys, q->key.key);
        if (streams)
            s_text_int(streams, q->key.stream);
    }
    /* Let go, but their leases not given back yet: a claim sent before that could take one
     * again, and then lose the lease to its release. */
    for (size_t i = 0; i < box->next.n_releases; i++) {
        s_text_int(keys, box->next.releases[i].key);
        if (streams)
            s_text_int(streams, box->next.releases[i].stream);
    }
    s_text_close(keys);
    if (streams)
        s_text_close(streams);
}

static int s_send(webhooks_t *self, sent_t kind, outbox_t outbox, stmt_t stmt, int n, const char *const *values)
{
    if (PQsendQueryPrepared(self->conn, s_stmt[stmt].name, n, values, NULL, NULL, 0) != 1) {
        log_error("webhooks: sending a statement: %s", PQerrorMessage(self->conn));
        return -1;
    }
    self->sent = kind;
    self->sent_box = outbox;
    self->sent_at = zclock_mono();
    return 0;
}

/* Sends the outcomes of `outbox` gathered so far, and its leases to give back. */
static void s_send_settle(webhooks_t *self, outbox_t outbox)
{
    box_t *box = &self->box[outbox];
    const retry_class_t *retry = &s_retry[outbox];
    params_t p = {0};
    text_t *t = p.text;
    int64_t now = zclock_usecs();
    for (int i = 0; i < 11; i++)
        s_text_open(&t[i]);
    const batch_t *b = &box->next;
    for (size_t i = 0; i < b->n_outcomes; i++) {
        const outcome_t *o = &b->outcomes[i];
        s_text_int(&t[0], o->row);
        s_text_int(&t[1], o->attempt);
        if (o->status)
            s_text_int(&t[2], o->status);
        else
            s_text_word(&t[2], "NULL");
        s_text_string(&t[3], o->delivered ? NULL : o->error);
        s_text_int(&t[4], o->duration_ms);
        s_text_int(&t[5], now - o->ended_us);
        s_text_word(&t[6], o->delivered ? "t" : "f");
        if (o->retry_after >= 0)
            s_text_int(&t[7], o->retry_after);
        else
            s_text_word(&t[7], "NULL");
        s_text_word(&t[8], o->gone ? "t" : "f");
    }
    for (size_t i = 0; i < b->n_releases; i++) {
        s_text_int(&t[9], b->releases[i].key);
        s_text_int(&t[10], b->releases[i].stream);
    }
    for (int i = 0; i < 11; i++)
        s_text_close(&t[i]);
    bool failed = false;
    for (int i = 0; i < 11; i++)
        failed |= t[i].failed;
    const char *values[15];
    int n = 0;
    for (int i = 0; i < 9; i++)
        values[n++] = t[i].data;
    values[n++] = s_number(&p, retry->first_s);
    values[n++] = s_number(&p, retry->max_s);
    values[n++] = s_number(&p, retry->give_up_s);
    values[n++] = t[9].data;
    if (outbox == OUTBOX_ENDPOINTS)
        values[n++] = t[10].data;
    values[n++] = self->holder;
    if (failed ||
        s_send(self, SENT_SETTLE, outbox, outbox == OUTBOX_CALLS ? STMT_SETTLE_CALLS : STMT_SETTLE_STREAMS, n, values) != 0) {
        /* Kept for the next statement; a failed send means a broken connection. */
        if (failed)
            log_error("webhooks: out of memory writing %zu outcomes: retried", b->n_outcomes);
        s_params_free(&p);
        return;
    }
    s_params_free(&p);
    /* In flight now: new outcomes gather beside it. */
    s_batch_swap(&box->next, &box->sending);
    box->next.n_outcomes = 0;
    box->next.n_releases = 0;
}

/* Whether `outbox` should claim: something may be due, there is room, and what is loaded may run
 * out before a claim comes back (a claim waits for the statement before it, then takes tens of
 * milliseconds when the database is busy): fewer queues have something to post than could fill
 * every slot four times over, or fewer events than sixteen rounds of every slot. Queues that
 * started together finish together, a slot's worth at a time, so a margin of one or two was
 * often used up before the claim came back. */
static bool s_claim_wanted(const webhooks_t *self, outbox_t outbox)
{
    const box_t *box = &self->box[outbox];
    if (self->closing || !box->want_claim || box->held >= WEBHOOKS_QUEUES_MAX)
        return false;
    int loaded = 0;
    for (int i = 0; i < self->n_queues; i++) {
        const queue_t *q = self->queues[i];
        loaded += q->outbox == outbox && !q->stopped && (q->head || q->busy);
    }
    return loaded < 4 * WEBHOOKS_IN_FLIGHT || box->items < 16 * WEBHOOKS_IN_FLIGHT;
}

static void s_send_claim(webhooks_t *self, outbox_t outbox)
{
    box_t *box = &self->box[outbox];
    params_t p = {0};
    int asked = WEBHOOKS_QUEUES_MAX - box->held < WEBHOOKS_CLAIM_MAX ? WEBHOOKS_QUEUES_MAX - box->held : WEBHOOKS_CLAIM_MAX;
    bool from_start = box->after.key == 0 && box->after.stream <= 0;
    const char *values[9];
    int n = 0;
    if (outbox == OUTBOX_CALLS) {
        s_held(self, outbox, &p.text[0], NULL);
        values[n++] = s_number(&p, box->after.key);
        values[n++] = p.text[0].data;
    } else {
        s_held(self, outbox, &p.text[0], &p.text[1]);
        values[n++] = s_number(&p, box->after.key);
        values[n++] = s_number(&p, box->after.stream);
        values[n++] = p.text[0].data;
        values[n++] = p.text[1].data;
    }
    values[n++] = self->holder;
    values[n++] = s_number(&p, asked);
    values[n++] = s_number(&p, WEBHOOKS_LEASE_SECONDS);
    values[n++] = s_number(&p, WEBHOOKS_QUEUE_ITEMS);
    values[n++] = s_number(&p, WEBHOOK_SECRETS_MAX);
    if (p.text[0].failed || p.text[1].failed) {
        log_error("webhooks: out of memory writing a claim");
        s_params_free(&p);
        return;
    }
    if (s_send(self, SENT_CLAIM, outbox, outbox == OUTBOX_CALLS ? STMT_CLAIM_CALLS : STMT_CLAIM_STREAMS, n, values) == 0) {
        self->sent_asked = asked;
        self->sent_from_start = from_start;
    }
    s_params_free(&p);
}

static void s_send_next_due(webhooks_t *self)
{
    params_t p = {0};
    s_held(self, OUTBOX_CALLS, &p.text[0], NULL);
    s_held(self, OUTBOX_ENDPOINTS, &p.text[1], &p.text[2]);
    const char *values[] = {self->holder, p.text[0].data, p.text[1].data, p.text[2].data};
    if (p.text[0].failed || p.text[1].failed || p.text[2].failed)
        log_error("webhooks: out of memory writing a scan");
    else if (s_send(self, SENT_NEXT_DUE, OUTBOX_CALLS, STMT_NEXT_DUE, 4, values) == 0)
        self->want_next_due = false;
    s_params_free(&p);
}

/* Sends what the database is to do next, when nothing is in flight. Claims and outcomes take
 * turns, so neither a stream of outcomes nor of claims holds the other up. */
static void s_pump(webhooks_t *self)
{
    if (!s_connected(self) || self->sent != SENT_NOTHING)
        return;
    int claim = -1, settle = -1;
    for (int o = 0; o < OUTBOX_COUNT; o++) {
        /* the outbox the last statement was not for goes first */
        int b = (self->sent_box + 1 + o) % OUTBOX_COUNT;
        if (claim < 0 && s_claim_wanted(self, (outbox_t)b))
            claim = b;
        if (settle < 0 && (self->box[b].next.n_outcomes > 0 || self->box[b].next.n_releases > 0))
            settle = b;
    }
    if (claim >= 0 && (settle < 0 || self->previous == SENT_SETTLE))
        s_send_claim(self, (outbox_t)claim);
    else if (settle >= 0)
        s_send_settle(self, (outbox_t)settle);
    else if (self->want_next_due && !self->closing)
        s_send_next_due(self);
}

/* Logs what a recorded batch of outcomes came to. `res` lists the rows given up (with their
 * endpoint, for streams). */
static void s_settled(webhooks_t *self, outbox_t outbox, const PGresult *res)
{
    box_t *box = &self->box[outbox];
    bool calls = outbox == OUTBOX_CALLS;
    /* An endpoint disabled for a delivery given up: its other streams stop here. */
    for (int r = 0; res && !calls && r < PQntuples(res); r++)
        s_endpoint_stop(self, s_value(res, r, 1));
    batch_t *b = &box->sending;
    for (size_t i = 0; i < b->n_outcomes; i++) {
        const outcome_t *o = &b->outcomes[i];
        if (o->delivered)
            continue;
        bool given_up = false;
        for (int r = 0; res && r < PQntuples(res) && !given_up; r++)
            given_up = s_value(res, r, 0) == o->row;
        log_warn("webhooks: %s=%" PRId64 " not delivered: %s%s", calls ? "event" : "delivery", o->row, o->error,
                 o->gone    ? (calls ? " (the call's URL is given up)" : " (the endpoint is disabled)")
                 : given_up ? " (too old: given up)"
                            : "");
    }
    /* A queue reaches none unsettled at its last outcome here, and is let go no earlier. */
    for (size_t i = 0; i < b->n_outcomes; i++)
        if (--b->outcomes[i].queue->unsettled == 0)
            s_queue_let_go(self, b->outcomes[i].queue);
    b->n_outcomes = 0;
    /* What was let go may have more due, and may be claimed now. */
    if (b->n_releases > 0)
        box->want_claim = true;
    b->n_releases = 0;
}

/* The statement in flight completed with `res` (its last result). */
static void s_completed(webhooks_t *self, PGresult *res)
{
    sent_t kind = self->sent;
    outbox_t outbox = self->sent_box;
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok && PQstatus(self->conn) != CONNECTION_OK) {
        s_lost(self);
        return;
    }
    self->sent = SENT_NOTHING;
    self->previous = kind;
    if (kind == SENT_SETTLE) {
        if (!ok)
            log_error("webhooks: %zu outcomes not recorded (posted again): %s", self->box[outbox].sending.n_outcomes,
                      PQresultErrorMessage(res));
        s_settled(self, outbox, ok ? res : NULL);
    } else if (kind == SENT_CLAIM) {
        if (ok)
            s_claimed(self, outbox, res);
        else {
            log_error("webhooks: claiming %s: %s", outbox == OUTBOX_CALLS ? "calls' events" : "endpoints' deliveries",
                      PQresultErrorMessage(res));
            self->box[outbox].want_claim = false;
            self->wake_at = zclock_mono() + WEBHOOKS_RECONNECT_MS;
        }
    } else {
        int64_t wait = WEBHOOKS_IDLE_MS;
        if (!ok)
            log_error("webhooks: finding when the next retry is due: %s", PQresultErrorMessage(res));
        else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
            double ms = strtod(PQgetvalue(res, 0, 0), NULL);
            wait = ms <= 0 ? 0 : ms < WEBHOOKS_IDLE_MS ? (int64_t)ms : WEBHOOKS_IDLE_MS;
        }
        self->wake_at = zclock_mono() + wait;
    }
}

/* Reads what the server sent: notifications, and the result of the statement in flight once it
 * is complete. `wait`: blocks until it is (shutting down). */
static void s_read(webhooks_t *self, bool wait)
{
    if (!s_connected(self))
        return;
    if (!wait && !PQconsumeInput(self->conn)) {
        s_lost(self);
        return;
    }
    while (self->sent != SENT_NOTHING && (wait || !PQisBusy(self->conn))) {
        PGresult *res = PQgetResult(self->conn);
        if (res != NULL) {
            PQclear(self->last);
            self->last = res;
            continue;
        }
        res = self->last;
        self->last = NULL;
        if (res == NULL) {
            s_lost(self);
            return;
        }
        s_completed(self, res);
        PQclear(res);
    }
    /* After the results: a notification read along with them is only parsed then. */
    PGnotify *n;
    while (s_connected(self) && (n = PQnotifies(self->conn)) != NULL) {
        self->box[strcmp(n->relname, "call_events") == 0 ? OUTBOX_CALLS : OUTBOX_ENDPOINTS].want_claim = true;
        PQfreemem(n);
    }
}

/* ---- life cycle ---------------------------------------------------------------------------- */

webhooks_t *webhooks_new(const char *database_url, const char *holder, bool allow_private_urls)
{
    webhooks_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->database_url = strdup(database_url);
    self->holder = strdup(holder);
    self->multi = curl_multi_init();
    if (self->database_url == NULL || self->holder == NULL || self->multi == NULL) {
        curl_multi_cleanup(self->multi);
        free(self->holder);
        free(self->database_url);
        free(self);
        return NULL;
    }
    self->allow_private = allow_private_urls;
    self->curl_due = -1;
    self->polled_db_fd = -1;
    self->wake_at = INT64_MAX;
    for (int o = 0; o < OUTBOX_COUNT; o++)
        self->box[o].after = (queue_key_t){0, -1};
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETFUNCTION, s_on_socket);
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERFUNCTION, s_on_timer);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERDATA, self);
    curl_multi_setopt(self->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)WEBHOOKS_IN_FLIGHT);
    curl_multi_setopt(self->multi, CURLMOPT_MAXCONNECTS, (long)WEBHOOKS_IN_FLIGHT);
    return self;
}

void webhooks_destroy(webhooks_t **self_p)
{
    webhooks_t *self = *self_p;
    if (self == NULL)
        return;
    self->closing = true;
    /* Cut off: the receiver may have had it already, and a second copy is what webhook-id
     * de-duplicates. Unrecorded, so it is posted again. */
    for (int i = 0; i < WEBHOOKS_IN_FLIGHT; i++) {
        delivery_t *d = &self->deliveries[i];
        if (d->queue) {
            queue_t *q = d->queue;
            item_t *item = s_slot_free(self, d);
            free(item->body);
            free(item);
            q->busy = false;
        }
        if (d->easy)
            curl_easy_cleanup(d->easy);
    }
    for (int i = self->n_queues - 1; i >= 0; i--) {
        queue_t *q = self->queues[i];
        s_queue_stop(self, q);
        s_queue_let_go(self, q);
    }
    /* What is known is recorded and the leases given back; bounded, in case the database keeps
     * failing. */
    for (int round = 0; round < 8 && s_connected(self); round++) {
        s_read(self, true);
        s_pump(self);
        if (self->sent == SENT_NOTHING)
            break;
    }
    for (int i = self->n_queues - 1; i >= 0; i--) {
        queue_t *q = self->queues[i];
        q->unsettled = 0;
        s_queue_let_go(self, q);
    }
    for (int o = 0; o < OUTBOX_COUNT; o++) {
        box_t *box = &self->box[o];
        free(box->next.outcomes);
        free(box->next.releases);
        free(box->sending.outcomes);
        free(box->sending.releases);
    }
    PQclear(self->last);
    curl_multi_cleanup(self->multi);
    PQfinish(self->conn);
    free(self->holder);
    free(self->database_url);
    free(self);
    *self_p = NULL;
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
            s_read(self, false);
            continue;
        }
        int mask = ((items[i].revents & ZMQ_POLLIN) ? CURL_CSELECT_IN : 0) |
                   ((items[i].revents & ZMQ_POLLOUT) ? CURL_CSELECT_OUT : 0) |
                   ((items[i].revents & ZMQ_POLLERR) ? CURL_CSELECT_ERR : 0);
        int running;
        curl_multi_socket_action(self->multi, items[i].fd, mask, &running);
    }
}

/* Handles libcurl's timer when it is due. Returns whether it was. */
static bool s_curl_timer(webhooks_t *self)
{
    if (self->curl_due < 0 || zclock_mono() < self->curl_due)
        return false;
    int running;
    self->curl_due = -1;
    curl_multi_socket_action(self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    return true;
}

/* libcurl's multi interface runs inside the actor's own poll (its sockets are poll items, its
 * timer bounds the poll's timeout) rather than in curl_multi_poll with a short timeout: the loop
 * then sleeps until something happens, the broker's requests are never held up by deliveries,
 * and no thread is needed. */
int webhooks_run(webhooks_t *self)
{
    s_curl_timer(self);
    if (!s_connected(self)) {
        if (self->conn)
            s_lost(self);
        s_connect(self);
    }
    int64_t now = zclock_mono();
    if (now >= self->wake_at) {
        self->wake_at = INT64_MAX;
        for (int o = 0; o < OUTBOX_COUNT; o++)
            self->box[o].want_claim = true;
    }
    /* A delivery just added wants the timer at once (libcurl starts transfers from it): handled
     * here rather than after another turn of the loop's poll, a few times at most. */
    int rounds = 0;
    do {
        s_collect(self);
        s_fill(self);
    } while (++rounds < 4 && s_curl_timer(self));
    s_pump(self);
    int64_t next = self->wake_at;
    if (!s_connected(self) && self->connect_at < next)
        next = self->connect_at;
    if (self->curl_due >= 0 && self->curl_due < next)
        next = self->curl_due;
    now = zclock_mono();
    if (next - now > WEBHOOKS_IDLE_MS)
        next = now + WEBHOOKS_IDLE_MS;
    return next <= now ? 0 : (int)(next - now);
}
