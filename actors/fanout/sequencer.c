#include "actors/fanout/sequencer.h"

#include <czmq.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct sequencer_t {
    char *database_url;
    PGconn *conn;       /* NULL or broken: reconnected at the next run */
    int64_t wake_at;    /* zclock_mono ms of the next run */
    int64_t connect_at; /* zclock_mono ms of the next connection attempt */
};

sequencer_t *sequencer_new(const char *database_url)
{
    sequencer_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
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

/* Connects and LISTENs; what producers committed meanwhile is numbered by the first run. */
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
    if (!ok) {
        log_warn("sequencer: cannot listen on the database (retrying): %s", PQerrorMessage(self->conn));
        PQfinish(self->conn);
        self->conn = NULL;
        return;
    }
    self->wake_at = now;
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

/* One numbering transaction: the count moved, or -1 when the database failed. */
static int s_batch(sequencer_t *self)
{
    char max[16];
    snprintf(max, sizeof(max), "%d", SEQUENCER_BATCH);
    const char *params[] = {max};
    PGresult *res = PQexecParams(self->conn, "SELECT events_sequence($1)", 1, NULL, params, NULL, NULL, 0);
    int moved = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        moved = atoi(PQgetvalue(res, 0, 0));
    else
        log_error("sequencer: numbering events: %s", PQresultErrorMessage(res));
    PQclear(res);
    return moved;
}

int sequencer_run(sequencer_t *self)
{
    if (!s_connected(self)) {
        s_connect(self);
        if (!s_connected(self))
            return SEQUENCER_RECONNECT_MS;
    }
    int64_t now = zclock_mono();
    if (now < self->wake_at)
        return (int)(self->wake_at - now);
    int64_t deadline = now + SEQUENCER_RUN_MS;
    int moved;
    do
        moved = s_batch(self);
    while (moved == SEQUENCER_BATCH && zclock_mono() < deadline);
    /* A full last batch means more is waiting: run again as soon as the broker has been served. */
    int wait = moved < 0 ? SEQUENCER_RECONNECT_MS : moved == SEQUENCER_BATCH ? 0 : SEQUENCER_TICK_MS;
    self->wake_at = zclock_mono() + wait;
    return wait;
}
