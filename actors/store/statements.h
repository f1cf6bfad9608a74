/*
 * Prepared statements, per connection, keyed by their SQL text. The resource engine builds its
 * SQL from static descriptions, so the same few hundred texts recur; preparing each once saves
 * PostgreSQL parsing and planning it on every request, which was most of a single-resource
 * GET's database time. Texts that would make the set unbounded (values written into the SQL)
 * must not come here: values go in parameters.
 *
 * The cache belongs to one connection: after PQreset the server has forgotten the statements,
 * so stmt_cache_clear must follow every reset.
 */
#ifndef IMPACT_STORE_STATEMENTS_H
#define IMPACT_STORE_STATEMENTS_H

#include <libpq-fe.h>

#define STMT_CACHE_SLOTS 512 /* beyond this many texts, statements run unprepared */

typedef struct stmt_cache_t stmt_cache_t;

stmt_cache_t *stmt_cache_new(void);
void stmt_cache_destroy(stmt_cache_t **self_p);

/** Forgets every statement (the connection was reset). */
void stmt_cache_clear(stmt_cache_t *self);

/**
 * Runs `sql` with text parameters as a prepared statement, preparing it on first use. The
 * result is as PQexecParams would give it (an error result when preparing fails).
 */
PGresult *stmt_exec(stmt_cache_t *self, PGconn *conn, const char *sql, int nparams, const char *const *params);

#endif
