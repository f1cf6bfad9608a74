/*
 * PostgreSQL plumbing shared by the store actors and the supervisor: connecting, applying the
 * versioned migrations of schemas/sql/ (compiled into the binary), and creating accounts and API
 * keys.
 */
#ifndef IMPACT_STORE_DB_H
#define IMPACT_STORE_DB_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#define DB_API_KEY_LEN  27 /* "ik_" + 24 hex */
#define DB_API_AUTH_LEN 67 /* "ia_" + 64 hex */

/** Connects and checks the connection; NULL with err filled on failure. */
PGconn *db_connect(const char *url, char *err, size_t errlen);

/**
 * Applies every migration not yet recorded in schema_migrations, each in its own transaction,
 * in version order, under an advisory lock so concurrent starters cannot race. Returns the number
 * applied, or -1 with err filled (the failing migration is rolled back).
 */
int db_migrate(PGconn *conn, char *err, size_t errlen);

/** The highest migration version compiled into this binary. */
int db_schema_version(void);

/** Creates an account. 0 or -1. */
int db_account_create(PGconn *conn, const char *name, int64_t *account_id, char *err, size_t errlen);

/**
 * Creates an API key pair for an account. `api_key` gets DB_API_KEY_LEN+1 bytes, `api_auth`
 * DB_API_AUTH_LEN+1; the secret is only ever returned here, never stored in clear.
 */
int db_api_key_create(PGconn *conn, int64_t account_id, const char *label, char *api_key, char *api_auth, char *err, size_t errlen);

/** Number of accounts, or -1. */
int64_t db_account_count(PGconn *conn);

#endif
