#include "actors/fanout/sequencer.h"

#include <czmq.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/event_json.h"
#include "common/log.h"

/* What to publish: the events after the last one published, oldest first, a page at a time. */
#define PUBLISH_SQL "SELECT " EVENT_JSON_COLUMNS ", account_id FROM events WHERE id > $1 ORDER BY id LIMIT $2"

/* Both statements run for every event that is published, and are prepared once per connection:
 * parsing and planning them each time was a third of a millisecond of every event's way from its
 * commit to the subscribers, as long as the numbering itself. */
#define NUMBER_STATEMENT  "number"
#define PUBLISH_STATEMENT "publish"

struct sequencer_t {
    char *database_url;
    PGconn *conn;       /* NULL or broken: reconnected at the next run */
    int64_t wake_at;    /* zclock_mono ms of the next run */
    int64_t connect_at; /* zclock_mono ms of the next connection attempt */
    zsock_t *pub;       /* borrowed; NULL: nothing is published */
    int64_t published;  /* the last id published; -1 until read at connection */
    int64_t tick_at;    /* zclock_mono ms of the next tick message */
};

sequencer_t *sequencer_new(const char *database_url, zsock_t *pub)
{
    sequencer_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->pub = pub;
    self->published = -1;
    self->database_url = strdup(database_url);
    if (self->database_url == NULL) {
        free(self);
        return NULL;
    }
    return self;
}

void sequencer_destroy(sequencer_t **self_p)
{
    sequencer_t *self = *self_p;
    if (self == NULL)
        return;
    PQfinish(self->conn);
    free(self->database_url);
    free(self);
    *self_p = NULL;
}

static bool s_connected(const sequencer_t *self)
{
    return self->conn && PQstatus(self->conn) == CONNECTION_OK;
}

/* Connects, LISTENs and prepares; what producers committed meanwhile is numbered by the first run. */
static void s_connect(sequencer_t *self)
{
    int64_t now = zclock_mono();
    if (now < self->connect_at)
        return;
    self->connect_at = now + SEQUENCER_RECONNECT_MS;
    PQfinish(self->conn);
    self->conn = PQconnectdb(self->database_url);
    PGresult *res = PQstatus(self->conn) == CONNECTION_OK ? PQexec(self->conn, "LISTEN event_inbox") : NULL;
    bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (ok) {
        res = PQprepare(self->conn, NUMBER_STATEMENT, "SELECT events_sequence($1)", 1, NULL);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    if (ok) {
        res = PQprepare(self->conn, PUBLISH_STATEMENT, PUBLISH_SQL, 2, NULL);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
    }
    if (!ok) {
        log_warn("sequencer: cannot listen on the database or prepare its statements (retrying): %s", PQerrorMessage(self->conn));
        PQfinish(self->conn);
        self->conn = NULL;
        return;
    }
    self->wake_at = now;
    /* Live from here on: what was numbered while nobody published is in the database. */
    res = PQexec(self->conn, "SELECT last_id FROM events_sequencer");
    self->published = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    PQclear(res);
}

int sequencer_socket(sequencer_t *self)
{
    return s_connected(self) ? PQsocket(self->conn) : -1;
}

void sequencer_readable(sequencer_t *self)
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

static void s_put_int64(unsigned char *p, const char *text)
{
    uint64_t v = text ? (uint64_t)strtoll(text, NULL, 10) : 0;
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

/* One event as its two frames; false when it could not be (logged and skipped: readers have it). */
static bool s_publish_row(sequencer_t *self, PGresult *res, int row)
{
    const char *type = PQgetvalue(res, row, 1);
    if (strlen(type) > EVENTS_PUB_TYPE_MAX) {
        log_error("sequencer: event %s has a type too long to publish", PQgetvalue(res, row, 0));
        return false;
    }
    event_fields_t e = {
        .id = PQgetvalue(res, row, 0),
        .type = type,
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
    char *doc = json_writer_finish(&w, &len);
    if (doc == NULL || len > EVENTS_PUB_DOC_MAX) {
        log_error("sequencer: event %s not published: %s", e.id, doc ? "document too large" : "out of memory");
        free(doc);
        json_writer_reset(&w);
        return false;
    }
    unsigned char header[EVENTS_PUB_HEADER_SIZE] = {0};
    s_put_int64(header, e.id);
    s_put_int64(header + 8, PQgetvalue(res, row, 7));
    s_put_int64(header + 16, e.campaign_id);
    s_put_int64(header + 24, e.caller_id);
    memcpy(header + 32, type, strlen(type));
    zmsg_t *msg = zmsg_new();
    bool ok =
        msg && zmsg_addmem(msg, header, sizeof(header)) == 0 && zmsg_addmem(msg, doc, len) == 0 && zmsg_send(&msg, self->pub) == 0;
    zmsg_destroy(&msg);
    free(doc);
    return ok;
}

/* Publishes the rows of one publishing query (PUBLISH_SQL): the count read, or -1 when it failed. */
static int s_publish_rows(sequencer_t *self, PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_error("sequencer: reading events to publish: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(self->conn));
        return -1;
    }
    int rows = PQntuples(res);
    for (int row = 0; row < rows; row++) {
        s_publish_row(self, res, row);
        self->published = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    }
    return rows;
}

/* Publishes what was numbered since the last id published, a bounded query at a time. A PUB
 * socket never blocks: at its high-water mark it drops, which subscribers see as a gap. */
static void s_publish(sequencer_t *self)
{
    if (self->pub == NULL || self->published < 0)
        return;
    int rows;
    do {
        char after[24], limit[16];
        snprintf(after, sizeof(after), "%lld", (long long)self->published);
        snprintf(limit, sizeof(limit), "%d", SEQUENCER_PUBLISH_MAX);
        const char *params[] = {after, limit};
        PGresult *res = PQexecPrepared(self->conn, PUBLISH_STATEMENT, 2, params, NULL, NULL, 0);
        rows = s_publish_rows(self, res);
        PQclear(res);
    } while (rows == SEQUENCER_PUBLISH_MAX);
}

/* The results of one pipelined query and the sync after it: the query's result (NULL if the
 * connection failed before it came), with the end of its results and the sync consumed. */
static PGresult *s_pipeline_take(PGconn *conn, bool *synced)
{
    PGresult *res = PQgetResult(conn);
    if (res != NULL)
        PQclear(PQgetResult(conn)); /* the NULL that ends the query's results */
    PGresult *sync = PQgetResult(conn);
    *synced = *synced && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    return res;
}

/*
 * One numbering transaction and, in the same round trip, the read of what to publish after it.
 * The two statements travel together, each in its own implicit transaction (a sync after each),
 * so the backend runs the read the moment the numbering commits, instead of waiting for this
 * process to wake up, see the count and ask: on a loaded machine each of those wake-ups is a
 * scheduling delay on the way from a producer's commit to the subscribers' sockets.
 * Returns the count numbered (-1 when the database failed); `read` gets the rows published (-1
 * when nothing was read).
 */
static int s_batch(sequencer_t *self, int *read)
{
    char max[16], after[24], limit[16];
    snprintf(max, sizeof(max), "%d", SEQUENCER_BATCH);
    snprintf(after, sizeof(after), "%lld", (long long)self->published);
    snprintf(limit, sizeof(limit), "%d", SEQUENCER_PUBLISH_MAX);
    const char *number_params[] = {max}, *publish_params[] = {after, limit};
    bool publishing = self->pub != NULL && self->published >= 0;
    PGconn *conn = self->conn;
    *read = -1;
    bool sent = PQenterPipelineMode(conn) == 1 &&
                PQsendQueryPrepared(conn, NUMBER_STATEMENT, 1, number_params, NULL, NULL, 0) == 1 && PQpipelineSync(conn) == 1 &&
                (!publishing || (PQsendQueryPrepared(conn, PUBLISH_STATEMENT, 2, publish_params, NULL, NULL, 0) == 1 &&
                                 PQpipelineSync(conn) == 1));
    int moved = -1;
    bool synced = sent;
    if (sent) {
        PGresult *res = s_pipeline_take(conn, &synced);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            moved = atoi(PQgetvalue(res, 0, 0));
        else
            log_error("sequencer: numbering events: %s", res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
        PQclear(res);
        if (publishing) {
            res = s_pipeline_take(conn, &synced);
            *read = s_publish_rows(self, res);
            PQclear(res);
        }
    }
    /* A pipeline left half read would answer the next statement with this one's results. */
    if (!synced || PQexitPipelineMode(conn) != 1) {
        log_error("sequencer: pipeline to the database failed (reconnecting): %s", PQerrorMessage(conn));
        PQfinish(self->conn);
        self->conn = NULL;
        return -1;
    }
    return moved;
}

/* The tick message: where the published stream stands (sequencer.h). */
static void s_tick(sequencer_t *self)
{
    int64_t now = zclock_mono();
    if (self->pub == NULL || self->published < 0 || now < self->tick_at)
        return;
    self->tick_at = now + SEQUENCER_TICK_MS;
    unsigned char frame[EVENTS_PUB_TICK_SIZE];
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)self->published);
    s_put_int64(frame, id);
    zmsg_t *msg = zmsg_new();
    if (msg && zmsg_addmem(msg, frame, sizeof(frame)) == 0)
        zmsg_send(&msg, self->pub);
    zmsg_destroy(&msg);
}

int sequencer_run(sequencer_t *self)
{
    if (!s_connected(self)) {
        s_connect(self);
        if (!s_connected(self))
            return SEQUENCER_RECONNECT_MS;
    }
    s_tick(self);
    int64_t now = zclock_mono();
    if (now < self->wake_at)
        return (int)(self->wake_at - now);
    int64_t deadline = now + SEQUENCER_RUN_MS;
    int moved, read;
    do
        moved = s_batch(self, &read);
    while (moved == SEQUENCER_BATCH && zclock_mono() < deadline);
    /* Another sequencer may have numbered events too: publishing reads events, not what moved
     * here, and a full read means more is waiting. */
    if (moved >= 0 && (read < 0 || read == SEQUENCER_PUBLISH_MAX))
        s_publish(self);
    /* A notification that arrived while a statement ran was read along with its results: the
     * socket will not turn readable for it, and without this look it would wait for the tick. */
    bool notified = false;
    for (PGnotify *n; s_connected(self) && (n = PQnotifies(self->conn)) != NULL; notified = true)
        PQfreemem(n);
    /* A full last batch means more is waiting: run again as soon as the broker has been served. */
    int wait = moved < 0 ? SEQUENCER_RECONNECT_MS : moved == SEQUENCER_BATCH || notified ? 0 : SEQUENCER_TICK_MS;
    self->wake_at = zclock_mono() + wait;
    return wait;
}
