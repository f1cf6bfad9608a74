#include "actors/store/db.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "schemas/migrations.h"

/* Any constant works; it only has to be the same for every impactd that may share a database. */
#define DB_MIGRATION_LOCK_KEY 0x696d70616374LL

static int s_result_error(PGresult *res, PGconn *conn, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s", what, res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    PQclear(res);
    return -1;
}

static int s_exec(PGconn *conn, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
        return s_result_error(res, conn, what, err, errlen);
    PQclear(res);
    return 0;
}

static void s_ignore_notice(void *arg, const char *message) {}

PGconn *db_connect(const char *url, char *err, size_t errlen)
{
    PGconn *conn = PQconnectdb(url);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", conn ? PQerrorMessage(conn) : "out of memory");
        PQfinish(conn);
        return NULL;
    }
    /* Notices (e.g. "relation already exists, skipping") are expected and would clutter stderr. */
    PQsetNoticeProcessor(conn, s_ignore_notice, NULL);
    return conn;
}

int db_schema_version(void)
{
    return schema_migration_count > 0 ? schema_migrations[schema_migration_count - 1].version : 0;
}

static int s_applied_version(PGconn *conn, int *version, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return s_result_error(res, conn, "reading schema_migrations", err, errlen);
    *version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

static int s_apply(PGconn *conn, const schema_migration_t *m, char *err, size_t errlen)
{
    char what[128];
    snprintf(what, sizeof(what), "migration %s", m->name);
    if (s_exec(conn, "BEGIN", what, err, errlen) != 0)
        return -1;
    if (s_exec(conn, m->sql, what, err, errlen) != 0)
        goto Error;
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version, m->name};
    PGresult *res =
        PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        s_result_error(res, conn, what, err, errlen);
        goto Error;
    }
    PQclear(res);
    if (s_exec(conn, "COMMIT", what, err, errlen) != 0)
        goto Error;
    log_info("applied %s", what);
    return 0;
Error:
    PQclear(PQexec(conn, "ROLLBACK"));
    return -1;
}

int db_migrate(PGconn *conn, char *err, size_t errlen)
{
    int applied = 0, current;
    char lock[128];
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_lock(%lld)", DB_MIGRATION_LOCK_KEY);
    if (s_exec(conn, lock, "taking the migration lock", err, errlen) != 0)
        return -1;
    if (s_exec(conn,
               "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
               "applied_at timestamptz NOT NULL DEFAULT now())",
               "creating schema_migrations", err, errlen) != 0 ||
        s_applied_version(conn, &current, err, errlen) != 0)
        goto Error;
    if (current > db_schema_version()) {
        snprintf(err, errlen, "database schema version %d is newer than this binary's %d", current, db_schema_version());
        goto Error;
    }
    for (int i = 0; i < schema_migration_count; i++) {
        if (schema_migrations[i].version <= current)
            continue;
        if (s_apply(conn, &schema_migrations[i], err, errlen) != 0)
            goto Error;
        applied++;
    }
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_unlock(%lld)", DB_MIGRATION_LOCK_KEY);
    PQclear(PQexec(conn, lock));
    return applied;
Error:
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_unlock(%lld)", DB_MIGRATION_LOCK_KEY);
    PQclear(PQexec(conn, lock));
    return -1;
}

int db_account_create(PGconn *conn, const char *name, int64_t *account_id, char *err, size_t errlen)
{
    const char *params[] = {name};
    PGresult *res = PQexecParams(conn, "INSERT INTO accounts (name) VALUES ($1) RETURNING id", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return s_result_error(res, conn, "creating account", err, errlen);
    *account_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

static void s_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

int db_api_key_create(PGconn *conn, int64_t account_id, const char *label, char *api_key, char *api_auth, char *err, size_t errlen)
{
    unsigned char key_bytes[12], secret[32], digest[32];
    unsigned int digest_len = 0;
    if (RAND_bytes(key_bytes, sizeof(key_bytes)) != 1 || RAND_bytes(secret, sizeof(secret)) != 1) {
        snprintf(err, errlen, "no randomness available");
        return -1;
    }
    memcpy(api_key, "ik_", 3);
    s_hex(key_bytes, sizeof(key_bytes), api_key + 3);
    memcpy(api_auth, "ia_", 3);
    s_hex(secret, sizeof(secret), api_auth + 3);
    if (EVP_Digest(api_auth, strlen(api_auth), digest, &digest_len, EVP_sha256(), NULL) != 1 || digest_len != 32) {
        snprintf(err, errlen, "hashing failed");
        return -1;
    }
    char account[24];
    snprintf(account, sizeof(account), "%" PRId64, account_id);
    const char *params[] = {account, api_key, (const char *)digest, label ? label : ""};
    const int lengths[] = {0, 0, 32, 0};
    const int formats[] = {0, 0, 1, 0};
    PGresult *res = PQexecParams(conn, "INSERT INTO api_keys (account_id, api_key, secret_sha256, label) VALUES ($1, $2, $3, $4)",
                                 4, NULL, params, lengths, formats, 0);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return s_result_error(res, conn, "creating API key", err, errlen);
    PQclear(res);
    return 0;
}

int64_t db_account_count(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT count(*) FROM accounts");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return -1;
    }
    int64_t n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}
