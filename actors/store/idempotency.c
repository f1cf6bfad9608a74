#include "actors/store/idempotency.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/problem.h"

/* Content types an answer to POST or PATCH can have, as the static strings api_reply_t keeps. */
static const char *s_static_type(const char *type)
{
    static const char *const known[] = {"application/json", PROBLEM_CONTENT_TYPE};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(type, known[i]) == 0)
            return known[i];
    return "application/octet-stream";
}

/* What makes two requests "the same": method, path, query, content type and body. */
static void s_fingerprint(const api_request_t *req, unsigned char out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    msg_str_t type = msg_pairs_get(&req->msg.headers, "content-type");
    const msg_str_t parts[] = {
        msg_str(req->method),
        msg_str(req->path),
        req->msg.has_query ? req->msg.query : msg_str(""),
        type.ptr ? type : msg_str(""),
        req->msg.has_body ? req->msg.body : msg_str(""),
    };
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        uint32_t len = parts[i].len;
        EVP_DigestUpdate(md, &len, sizeof(len)); /* lengths keep ("ab", "c") apart from ("a", "bc") */
        EVP_DigestUpdate(md, parts[i].ptr, len);
    }
    EVP_DigestFinal_ex(md, out, NULL);
    EVP_MD_CTX_free(md);
}

static bool s_exec_ok(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok;
}

static void s_unavailable(const api_request_t *req, api_reply_t *reply, PGconn *conn)
{
    log_warn("req=%s idempotency: %s", req->request_id, PQerrorMessage(conn));
    api_reply_reset(reply);
    api_reply_problem(reply, req, 503, "unavailable", "Service unavailable",
                      "The database could not complete the request; nothing was changed. Retry with the same key.");
    api_reply_header(reply, "Retry-After", "1");
}

/* Stores the answer in the key's row, inside the request's transaction. */
static bool s_store(PGconn *conn, const char *account, const char *key, const api_reply_t *reply)
{
    char status[16];
    const char *location = NULL;
    snprintf(status, sizeof(status), "%d", reply->status);
    for (int i = 0; i < reply->header_count; i++)
        if (strcmp(reply->header_name[i], "Location") == 0)
            location = reply->header_value[i];
    const char *values[] = {
        account, key, status, reply->content_type ? reply->content_type : "", location, reply->body ? reply->body : ""};
    int lengths[] = {0, 0, 0, 0, 0, (int)reply->body_len};
    int formats[] = {0, 0, 0, 0, 0, 1};
    PGresult *res = PQexecParams(conn,
                                 "UPDATE idempotency_keys SET status = $3, content_type = $4, location = $5, body = $6 "
                                 "WHERE account_id = $1 AND key = $2",
                                 6, NULL, values, lengths, formats, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok;
}

static void s_replay(PGresult *res, const unsigned char *fingerprint, const api_request_t *req, api_reply_t *reply)
{
    if (PQgetlength(res, 0, 0) != 32 || memcmp(PQgetvalue(res, 0, 0), fingerprint, 32) != 0) {
        api_reply_problem(reply, req, 422, "idempotency-key-reused", "Idempotency key reused",
                          "This Idempotency-Key was already used for a different request; use a new key for a new request.");
        return;
    }
    size_t len = (size_t)PQgetlength(res, 0, 4);
    char *body = malloc(len + 1);
    if (body == NULL) {
        api_reply_problem(reply, req, 500, "internal", "Internal error", "out of memory");
        return;
    }
    memcpy(body, PQgetvalue(res, 0, 4), len);
    body[len] = '\0';
    uint32_t status;
    memcpy(&status, PQgetvalue(res, 0, 1), sizeof(status)); /* binary int4 is big-endian */
    api_reply_take(reply, (int)__builtin_bswap32(status), s_static_type(PQgetvalue(res, 0, 2)), body, len);
    if (!PQgetisnull(res, 0, 3))
        api_reply_header(reply, "Location", PQgetvalue(res, 0, 3));
    api_reply_header(reply, "Idempotent-Replayed", "true");
}

void idempotency_run(route_ctx_t *ctx, const auth_account_t *account, const api_request_t *req, api_reply_t *reply, const char *key,
                     void (*handler)(void *arg), void *arg)
{
    PGconn *conn = ctx->conn;
    unsigned char fingerprint[32];
    char account_id[24];
    s_fingerprint(req, fingerprint);
    snprintf(account_id, sizeof(account_id), "%" PRId64, account->account_id);
    if (!s_exec_ok(conn, "BEGIN")) {
        s_unavailable(req, reply, conn);
        return;
    }
    /* A key older than its lifetime is free again: drop it before claiming. Now and then the
     * whole table is purged too, so it does not grow with keys nobody reuses. */
    unsigned char dice;
    if (RAND_bytes(&dice, 1) == 1 && dice == 0)
        s_exec_ok(conn, "DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'");
    const char *values[] = {account_id, key, (const char *)fingerprint};
    int lengths[] = {0, 0, 32};
    int formats[] = {0, 0, 1};
    PGresult *res = PQexecParams(conn,
                                 "DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 "
                                 "AND created_at < now() - interval '24 hours'",
                                 2, NULL, values, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    res = ok ? PQexecParams(conn,
                            "INSERT INTO idempotency_keys (account_id, key, fingerprint) VALUES ($1, $2, $3) "
                            "ON CONFLICT DO NOTHING RETURNING 1",
                            3, NULL, values, lengths, formats, 0)
             : NULL;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        s_unavailable(req, reply, conn);
        s_exec_ok(conn, "ROLLBACK");
        return;
    }
    bool claimed = PQntuples(res) == 1;
    PQclear(res);

    if (!claimed) {
        res = PQexecParams(conn,
                           "SELECT fingerprint, status, content_type, location, body FROM idempotency_keys "
                           "WHERE account_id = $1 AND key = $2",
                           2, NULL, values, NULL, NULL, 1);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            s_replay(res, fingerprint, req, reply);
        else
            s_unavailable(req, reply, conn);
        PQclear(res);
        s_exec_ok(conn, "ROLLBACK");
        return;
    }

    ctx->in_transaction = true;
    handler(arg);
    ctx->in_transaction = false;
    /* A 5xx is not an answer worth keeping: the retry should run again. So is an answer whose
     * statements failed (the transaction is then aborted and the update below fails too). */
    if (reply->status >= 500 || !s_store(conn, account_id, key, reply)) {
        s_exec_ok(conn, "ROLLBACK");
        return;
    }
    if (!s_exec_ok(conn, "COMMIT"))
        s_unavailable(req, reply, conn);
}
