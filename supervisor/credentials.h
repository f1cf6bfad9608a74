/*
 * Accounts and API keys made from the command line, and the development account a fresh
 * installation gets so that the API can be tried at once.
 *
 * The development credentials are kept in DATA_DIR/dev-credentials.env (mode 0600), a file a
 * shell can source:
 *
 *   IMPACT_API_KEY=ik_...
 *   IMPACT_API_AUTH=ia_...
 *
 * The secret exists only in that file and in the output of the command that made it: the
 * database keeps a hash.
 */
#ifndef IMPACT_SUPERVISOR_CREDENTIALS_H
#define IMPACT_SUPERVISOR_CREDENTIALS_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "actors/store/db.h"

#define CREDENTIALS_DEV_FILE    "dev-credentials.env"
#define CREDENTIALS_DEV_ACCOUNT "Development"

typedef struct {
    int64_t account_id;
    char api_key[DB_API_KEY_LEN + 1];
    char api_auth[DB_API_AUTH_LEN + 1];
} credentials_t;

/** Creates an account named `name` and its first API key (label may be NULL). 0 or -1 with err filled. */
int credentials_create_account(PGconn *conn, const char *name, const char *label, credentials_t *out, char *err, size_t errlen);

/** Writes the IMPACT_API_KEY / IMPACT_API_AUTH lines to `path` (mode 0600, replaced atomically). 0 or -1. */
int credentials_write_file(const char *path, const credentials_t *creds, char *err, size_t errlen);

/** Reads IMPACT_API_KEY back from a credentials file into `api_key` (DB_API_KEY_LEN+1 bytes). 0 or -1. */
int credentials_read_key(const char *path, char *api_key, size_t size);

/** Prints the IMPACT_ACCOUNT_ID, IMPACT_API_KEY and IMPACT_API_AUTH lines to `out`. */
void credentials_print(FILE *out, const credentials_t *creds);

/**
 * The supervisor's first-start step. With no account in the database, creates the development
 * account and its key, writes DATA_DIR/dev-credentials.env and prints the credentials to `out`;
 * otherwise prints where the development key is (the key, never the secret) if that file exists.
 * 0 or -1 with err filled.
 */
int credentials_bootstrap(PGconn *conn, const char *data_dir, FILE *out, char *err, size_t errlen);

#endif
