/*
 * dbq_t: the dialer's statements to PostgreSQL, sent without waiting for their results.
 *
 * Why: the dialer's loop is a real-time loop. A person who answers must be put through to a
 * caller within two seconds of their greeting, and the decision is made by the same thread that
 * writes the call log and claims numbers. A synchronous query blocks that thread for as long as
 * PostgreSQL takes to commit; with a hundred campaigns committing ten times a second each, that
 * is milliseconds at a time, and the answers due meanwhile wait. So the hot statements (the
 * group commit of attempts, claims of numbers, releases) are queued here and sent one at a time
 * on the dialer's one connection; the loop polls the connection's socket and dbq_service()
 * delivers each result to its callback. Statements run in the order they were queued, which is
 * what the write-ahead rule needs: an attempt's row commits before anything queued after it.
 *
 * Rare statements that need their answer at once (start-up, stop, a customer's feed page) call
 * dbq_drain() first and then use the connection synchronously.
 */
#ifndef IMPACT_DIALER_DBQ_H
#define IMPACT_DIALER_DBQ_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#define DBQ_PARAMS_MAX 24

typedef struct dbq_t dbq_t;

/* A statement's result: `res` is its last result (check PQresultStatus), or NULL when the
 * connection failed before it completed. The callback must not PQclear it. now_us is what the
 * caller of dbq_service passed. */
typedef void(dbq_done_fn)(void *ctx, const PGresult *res, int64_t now_us);

/** A queue sending on `conn` (borrowed; it stays in blocking mode: only the reading is deferred). */
dbq_t *dbq_new(PGconn *conn);

/** Fails what is still queued (callbacks see NULL) and frees the queue. */
void dbq_destroy(dbq_t **self_p);

/**
 * Queues a statement of up to DBQ_PARAMS_MAX text parameters (NULL: SQL NULL); the text and
 * parameters are copied. It is sent at once when nothing is in flight. 0, or -1 (out of memory, or
 * too many parameters) with nothing queued and no callback to come.
 */
int dbq_send(dbq_t *self, const char *sql, int nparams, const char *const *params, dbq_done_fn *done, void *ctx);

/**
 * Reads what the server sent, delivers every completed result (in queue order) and sends the
 * next statement. Call it when the connection's socket is readable, and after queueing. A broken
 * connection fails every queued statement; the owner resets it.
 */
void dbq_service(dbq_t *self, int64_t now_us);

/** Fails every queued statement (callbacks see NULL): before the owner resets the connection,
 *  which discards whatever was in flight. */
void dbq_abort(dbq_t *self, int64_t now_us);

/** Blocks until every queued statement completed (or failed). 0, or -1 when the connection broke. */
int dbq_drain(dbq_t *self, int64_t now_us);

/** Statements queued or in flight. */
size_t dbq_pending(const dbq_t *self);

#endif
