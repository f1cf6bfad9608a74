/*
 * Caller sessions (schemas/sql/0013_caller_sessions.sql, docs/adr/0006-caller-sessions.md).
 *
 * POST /v1/caller_sessions is the caller's login and the one request served without an API key:
 * `account_id` with `username` and `password`, or with `pin`. It answers the session with its
 * token, once (the SDK sends it as a bearer token), and sets the same token as an HttpOnly,
 * SameSite=Strict cookie for the browser app. A wrong password or PIN is one 401 whatever was
 * wrong (no telling which usernames exist), and after CALLER_LOGIN_FAILURES_MAX failures for a
 * login name in CALLER_LOGIN_WINDOW_S the next attempts get 429 without a password check.
 *
 * With the account's API key the sessions are listed and read like any resource, and `end`
 * ends one (its dialer hears it through NOTIFY caller_sessions).
 */
#include <argon2.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "actors/api/caller_token.h"
#include "actors/store/input.h"
#include "actors/store/resource.h"
#include "actors/store/resources.h"
#include "common/problem.h"

#define COUNT(a)                  (sizeof(a) / sizeof((a)[0]))
#define STRING_OF(x)              #x
#define STRINGIFY(x)              STRING_OF(x)
#define CALLER_LOGIN_FAILURES_MAX 10
#define CALLER_LOGIN_WINDOW_S     900
#define CALLER_SESSION_LIFETIME_S 43200 /* a working day and a half: then log in again */
#define CALLER_TOKEN_BYTES        32
#define CALLER_LOGIN_NAME_MAX     100 /* callers.username's bound (res_callers.c) */
#define CALLER_PASSWORD_MAX       200

static const field_def_t s_fields[] = {
    {.name = "caller_id", .type = FIELD_INT, .flags = F_READONLY},
    {.name = "campaign_id", .type = FIELD_INT, .flags = F_READONLY, .doc = "The caller's campaign when they logged in"},
    {.name = "via", .type = FIELD_TEXT, .flags = F_READONLY, .doc = "password or pin"},
    {.name = "last_seen_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY},
    {.name = "expires_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY},
    {.name = "ended_at", .type = FIELD_TIMESTAMP, .flags = F_READONLY},
    {.name = "end_reason",
     .type = FIELD_TEXT,
     .flags = F_READONLY,
     .doc = "logged_out, timed_out, expired, ended_by_admin or replaced (a newer login of the same caller)"},
};

/* ---- login ---------------------------------------------------------------------------------- */

static void s_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Checked against when no caller matched: a valid hash with the cost of real ones
 * (actors/store/input.c), so a wrong username takes as long as a wrong password. */
static const char s_no_such_caller[] =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/* A new token ("cs_" and base64url of 32 random bytes) and the bytea literal of its SHA-256. */
static int s_new_token(char *token, size_t token_size, char *digest_literal, size_t literal_size)
{
    unsigned char raw[CALLER_TOKEN_BYTES], digest[SHA256_DIGEST_LENGTH];
    unsigned char encoded[4 * ((CALLER_TOKEN_BYTES + 2) / 3) + 1];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    int n = EVP_EncodeBlock(encoded, raw, sizeof(raw));
    while (n > 0 && encoded[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        encoded[i] = encoded[i] == '+' ? '-' : encoded[i] == '/' ? '_' : encoded[i];
    if ((size_t)n + 4 > token_size || 2 * SHA256_DIGEST_LENGTH + 3 > literal_size)
        return -1;
    snprintf(token, token_size, "cs_%.*s", n, (const char *)encoded);
    SHA256((const unsigned char *)token, strlen(token), digest);
    digest_literal[0] = '\\';
    digest_literal[1] = 'x';
    s_hex(digest, sizeof(digest), digest_literal + 2);
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

typedef struct {
    char account[24];
    char username[CALLER_LOGIN_NAME_MAX + 1];
    char password[CALLER_PASSWORD_MAX + 1];
    char pin[16];
    bool by_pin;
} login_t;

/* A string member of at most max bytes, or an error naming it. 1 when absent. */
static int s_string(json_t *body, const char *name, size_t max, char *out, size_t size, json_t *problem)
{
    json_t *v = json_object_get(body, name);
    if (v == NULL || json_is_null(v))
        return 1;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max || json_string_length(v) >= size) {
        char message[96];
        snprintf(message, sizeof(message), "must be a string of 1 to %zu bytes", max);
        problem_add_error(problem, name, message);
        return -1;
    }
    snprintf(out, size, "%s", json_string_value(v));
    return 0;
}

/* Reads and checks the login's parameters; a 4xx answer when they do not do. */
static int s_login_input(const api_request_t *req, api_reply_t *reply, login_t *login)
{
    input_t in;
    if (input_read(req, reply, &in) != 0)
        return -1;
    json_t *problem = problem_new(422, "invalid-fields", "Invalid fields", NULL, req->path);
    const char *key;
    json_t *value;
    json_object_foreach(in.object, key, value)
    {
        if (strcmp(key, "account_id") != 0 && strcmp(key, "username") != 0 && strcmp(key, "password") != 0 &&
            strcmp(key, "pin") != 0)
            problem_add_error(problem, key, "is not a login parameter (account_id, username, password, pin)");
    }
    json_t *account = json_object_get(in.object, "account_id");
    if (in.from_form && json_is_string(account)) {
        char *end = NULL;
        long long id = strtoll(json_string_value(account), &end, 10);
        if (end && *end == '\0' && id > 0)
            snprintf(login->account, sizeof(login->account), "%lld", id);
    } else if (json_is_integer(account) && json_integer_value(account) > 0) {
        snprintf(login->account, sizeof(login->account), "%" JSON_INTEGER_FORMAT, json_integer_value(account));
    }
    if (login->account[0] == '\0')
        problem_add_error(problem, "account_id", "is required: the id of the caller's account");
    int user = s_string(in.object, "username", CALLER_LOGIN_NAME_MAX, login->username, sizeof(login->username), problem);
    int pass = s_string(in.object, "password", CALLER_PASSWORD_MAX, login->password, sizeof(login->password), problem);
    int pin = s_string(in.object, "pin", 8, login->pin, sizeof(login->pin), problem);
    login->by_pin = pin == 0;
    if (pin == 0 && strspn(login->pin, "0123456789") != strlen(login->pin))
        problem_add_error(problem, "pin", "must be 4 to 8 digits");
    if (pin == 0 && (user == 0 || pass == 0))
        problem_add_error(problem, "pin", "log in with a username and password, or with a PIN, not both");
    else if (pin == 1 && (user == 1 || pass == 1))
        problem_add_error(problem, user == 1 ? "username" : "password", "is required (or log in with a pin)");
    input_free(&in);
    if (json_array_size(json_object_get(problem, "errors")) > 0) {
        json_object_set_new(problem, "detail", json_string("No session was made."));
        api_reply_problem_object(reply, req, problem);
        return -1;
    }
    json_decref(problem);
    return 0;
}

static bool s_ok(PGresult *res, ExecStatusType want, api_reply_t *reply, const api_request_t *req)
{
    if (PQresultStatus(res) == want)
        return true;
    api_reply_problem(reply, req, 503, "unavailable", "Service unavailable", "The database could not be reached.");
    api_reply_header(reply, "Retry-After", "1");
    return false;
}

static void s_refuse(const route_ctx_t *ctx, const api_request_t *req, api_reply_t *reply, const char *params[2])
{
    PQclear(PQexecParams(ctx->conn,
                         "WITH gone AS (DELETE FROM caller_login_failures WHERE failed_at < now() - make_interval(secs => "
                         "$3::int)) INSERT INTO caller_login_failures (account_id, login) VALUES ($1, $2)",
                         3, NULL, (const char *[]){params[0], params[1], STRINGIFY(CALLER_LOGIN_WINDOW_S)}, NULL, NULL, 0));
    api_reply_problem(reply, req, 401, "invalid-credentials", "Invalid credentials",
                      "No active caller of this account has this username and password, or this PIN.");
}

void caller_sessions_login(const route_ctx_t *ctx, const api_request_t *req, api_reply_t *reply)
{
    login_t login = {0};
    if (s_login_input(req, reply, &login) != 0)
        return;
    const char *failure_key[2] = {login.account, login.by_pin ? "pin" : login.username};
    PGresult *res =
        PQexecParams(ctx->conn,
                     "SELECT count(*) FROM caller_login_failures WHERE account_id = $1 AND login = $2 AND "
                     "failed_at > now() - make_interval(secs => $3::int)",
                     3, NULL, (const char *[]){failure_key[0], failure_key[1], STRINGIFY(CALLER_LOGIN_WINDOW_S)}, NULL, NULL, 0);
    if (!s_ok(res, PGRES_TUPLES_OK, reply, req))
        goto Exit;
    bool locked = atoi(PQgetvalue(res, 0, 0)) >= CALLER_LOGIN_FAILURES_MAX;
    PQclear(res);
    res = NULL;
    if (locked) {
        api_reply_problem(reply, req, 429, "too-many-login-failures", "Too many failed logins",
                          "Too many failed logins with this name: wait before trying again.");
        api_reply_header(reply, "Retry-After", STRINGIFY(CALLER_LOGIN_WINDOW_S));
        goto Exit;
    }
    res = PQexecParams(ctx->conn,
                       login.by_pin ? "SELECT id, password_hash, campaign_id FROM callers WHERE account_id = $1 AND pin = $2 "
                                      "AND archived_at IS NULL"
                                    : "SELECT id, password_hash, campaign_id FROM callers WHERE account_id = $1 AND "
                                      "username = $2 AND archived_at IS NULL",
                       2, NULL, (const char *[]){login.account, login.by_pin ? login.pin : login.username}, NULL, NULL, 0);
    if (!s_ok(res, PGRES_TUPLES_OK, reply, req))
        goto Exit;
    /* A missing caller costs a hash check too, so the time taken tells nothing about usernames. */
    const char *hash = PQntuples(res) == 1 ? PQgetvalue(res, 0, 1) : NULL;
    bool good =
        login.by_pin
            ? PQntuples(res) == 1
            : argon2id_verify(hash ? hash : s_no_such_caller, login.password, strlen(login.password)) == ARGON2_OK && hash != NULL;
    if (!good) {
        s_refuse(ctx, req, reply, failure_key);
        goto Exit;
    }
    if (PQgetisnull(res, 0, 2)) {
        api_reply_problem(reply, req, 409, "no-campaign", "No campaign",
                          "This caller is not assigned to a campaign: an administrator assigns one (campaign_id).");
        goto Exit;
    }
    char caller[24], campaign[24], token[64], digest[2 * SHA256_DIGEST_LENGTH + 3];
    snprintf(caller, sizeof(caller), "%s", PQgetvalue(res, 0, 0));
    snprintf(campaign, sizeof(campaign), "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    res = NULL;
    if (s_new_token(token, sizeof(token), digest, sizeof(digest)) != 0) {
        api_reply_problem(reply, req, 500, "internal", "Internal error", "No session token could be made.");
        goto Exit;
    }
    /* One live session per caller: the login replaces the previous one. The replacement is
     * ordered before the insert (its count feeds the insert), so the partial unique index sees the
     * old session already ended. */
    res = PQexecParams(ctx->conn,
                       "WITH replaced AS (UPDATE caller_sessions SET ended_at = now(), end_reason = 'replaced' "
                       "WHERE caller_id = $2 AND ended_at IS NULL RETURNING id) "
                       "INSERT INTO caller_sessions (account_id, caller_id, campaign_id, token_sha256, via, expires_at) "
                       "SELECT $1, $2, $3, $4::bytea, $5, now() + make_interval(secs => $6::int) "
                       "FROM (SELECT count(*) FROM replaced) AS r RETURNING id, "
                       "to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                       6, NULL,
                       (const char *[]){login.account, caller, campaign, digest, login.by_pin ? "pin" : "password",
                                        STRINGIFY(CALLER_SESSION_LIFETIME_S)},
                       NULL, NULL, 0);
    if (!s_ok(res, PGRES_TUPLES_OK, reply, req))
        goto Exit;
    json_t *doc = json_object();
    json_object_set_new(doc, "uri", json_sprintf("%s/v1/caller_sessions/%s", req->base_url, PQgetvalue(res, 0, 0)));
    json_object_set_new(doc, "id", json_integer(strtoll(PQgetvalue(res, 0, 0), NULL, 10)));
    json_object_set_new(doc, "caller_id", json_integer(strtoll(caller, NULL, 10)));
    json_object_set_new(doc, "campaign_id", json_integer(strtoll(campaign, NULL, 10)));
    json_object_set_new(doc, "via", json_string(login.by_pin ? "pin" : "password"));
    json_object_set_new(doc, "token", json_string(token));
    json_object_set_new(doc, "expires_at", json_string(PQgetvalue(res, 0, 1)));
    json_object_set_new(doc, "heartbeat_timeout_seconds", json_integer(CALLER_HEARTBEAT_TIMEOUT_S));
    json_object_set_new(doc, "desk_uri",
                        json_sprintf("%s/v1/campaigns/%s/caller_sessions/%s", req->base_url, campaign, PQgetvalue(res, 0, 0)));
    json_object_set_new(doc, "events_uri", json_sprintf("%s/v1/caller_session/events/stream", req->base_url));
    char cookie[160];
    snprintf(cookie, sizeof(cookie), CALLER_TOKEN_COOKIE "=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict", token,
             CALLER_SESSION_LIFETIME_S);
    api_reply_json(reply, 201, doc);
    api_reply_header(reply, "Set-Cookie", cookie);
    api_reply_header(reply, "Cache-Control", "no-store");
Exit:
    PQclear(res);
    OPENSSL_cleanse(login.password, sizeof(login.password));
}

/* ---- the caller's own session -------------------------------------------------------------- */

/* The caller's view: who they are, their campaign and its script, everything the app shows
 * before the first call, in one statement. Any request of the session counts as seeing it. */
static const char s_view_sql[] =
    "WITH s AS (UPDATE caller_sessions SET last_seen_at = now() WHERE token_sha256 = $1::bytea AND ended_at IS NULL AND "
    "expires_at > now() RETURNING *) "
    "SELECT json_build_object('uri', $2 || '/v1/caller_session', 'id', s.id, 'account_id', s.account_id, 'via', s.via, "
    "'caller', json_build_object('id', c.id, 'name', c.name, 'username', c.username), "
    "'campaign', json_build_object('id', k.id, 'name', k.name, 'dialer_type', k.dialer_type, 'status', k.status), "
    "'last_seen_at', to_char(s.last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
    "'expires_at', to_char(s.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
    "'heartbeat_timeout_seconds', $3::int, "
    "'desk_uri', $2 || '/v1/campaigns/' || s.campaign_id || '/caller_sessions/' || s.id, "
    "'events_uri', $2 || '/v1/caller_session/events/stream', "
    "'script', CASE WHEN sc.id IS NULL THEN NULL ELSE json_build_object('id', sc.id, 'name', sc.name, "
    "'selected_fields', sc.selected_fields, "
    "'texts', (SELECT coalesce(json_agg(json_build_object('id', t.id, 'content', t.content) ORDER BY t.position, t.id), "
    "'[]') FROM script_texts t WHERE t.script_id = sc.id), "
    "'questions', (SELECT coalesce(json_agg(json_build_object('id', q.id, 'text', q.text, 'possible_responses', "
    "(SELECT coalesce(json_agg(json_build_object('id', r.id, 'value', r.value, 'keypad', r.keypad, 'retry', r.retry) "
    "ORDER BY r.position, r.id), '[]') FROM possible_responses r WHERE r.question_id = q.id)) ORDER BY q.position, q.id), "
    "'[]') FROM questions q WHERE q.script_id = sc.id), "
    "'notes', (SELECT coalesce(json_agg(json_build_object('id', n.id, 'label', n.label) ORDER BY n.position, n.id), '[]') "
    "FROM notes n WHERE n.script_id = sc.id), "
    "'transfers', (SELECT coalesce(json_agg(json_build_object('id', x.id, 'label', x.label, 'transfer_type', "
    "x.transfer_type) ORDER BY x.id), '[]') FROM transfers x WHERE x.script_id = sc.id)) END)::text "
    "FROM s JOIN callers c ON c.id = s.caller_id JOIN campaigns k ON k.id = s.campaign_id "
    "LEFT JOIN scripts sc ON sc.id = k.script_id";

/* The bytea literal of the request's token digest. 0, or -1 without a token of the right shape. */
static int s_request_token(const api_request_t *req, char *literal, size_t size)
{
    unsigned char digest[CALLER_TOKEN_DIGEST];
    if (size < 2 * CALLER_TOKEN_DIGEST + 3 || caller_token_digest(req, digest) != 0)
        return -1;
    literal[0] = '\\';
    literal[1] = 'x';
    s_hex(digest, sizeof(digest), literal + 2);
    return 0;
}

static void s_not_in_session(const api_request_t *req, api_reply_t *reply)
{
    api_reply_problem(reply, req, 401, "no-session", "Not logged in",
                      "Send the token of a live caller session (Authorization: Bearer, or the impact_caller_session "
                      "cookie); log in with POST /v1/caller_sessions.");
    api_reply_header(reply, "WWW-Authenticate", "Bearer realm=\"impact\"");
}

void caller_session_serve(const route_ctx_t *ctx, const api_request_t *req, api_reply_t *reply, const char *action)
{
    char digest[2 * SHA256_DIGEST_LENGTH + 3];
    bool logout = strcmp(action, "logout") == 0, events = strcmp(action, "events") == 0;
    const char *method = action[0] && !events ? "POST" : "GET";
    if (strcmp(req->method, method) != 0 && !(method[0] == 'G' && strcmp(req->method, "HEAD") == 0)) {
        api_reply_problem(reply, req, 405, "method-not-allowed", "Method not allowed", "See the Allow header.");
        api_reply_header(reply, "Allow", method[0] == 'P' ? "POST" : "GET, HEAD");
        return;
    }
    if (s_request_token(req, digest, sizeof(digest)) != 0) {
        s_not_in_session(req, reply);
        return;
    }
    PGresult *res;
    if (action[0] == '\0')
        res = PQexecParams(ctx->conn, s_view_sql, 3, NULL,
                           (const char *[]){digest, req->base_url, STRINGIFY(CALLER_HEARTBEAT_TIMEOUT_S)}, NULL, NULL, 0);
    else
        res = PQexecParams(ctx->conn,
                           logout ? "UPDATE caller_sessions SET ended_at = now(), end_reason = 'logged_out' "
                                    "WHERE token_sha256 = $1::bytea AND ended_at IS NULL RETURNING id"
                                  : "UPDATE caller_sessions SET last_seen_at = now() WHERE token_sha256 = $1::bytea AND "
                                    "ended_at IS NULL AND expires_at > now() RETURNING id, account_id, caller_id",
                           1, NULL, (const char *[]){digest}, NULL, NULL, 0);
    if (!s_ok(res, PGRES_TUPLES_OK, reply, req))
        goto Exit;
    if (PQntuples(res) != 1) {
        s_not_in_session(req, reply);
        goto Exit;
    }
    if (events) {
        events_list_for_caller(ctx, req, reply, strtoll(PQgetvalue(res, 0, 1), NULL, 10), strtoll(PQgetvalue(res, 0, 2), NULL, 10));
    } else if (action[0]) {
        api_reply_take(reply, 204, NULL, strdup(""), 0);
        if (logout)
            api_reply_header(reply, "Set-Cookie", CALLER_TOKEN_COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    } else {
        char *body = strdup(PQgetvalue(res, 0, 0));
        if (body)
            api_reply_take(reply, 200, "application/json", body, strlen(body));
        api_reply_header(reply, "Cache-Control", "no-store");
    }
Exit:
    PQclear(res);
}

/* ---- administration ------------------------------------------------------------------------- */

static void s_end(resource_call_t *call)
{
    resource_set_status(call,
                        "UPDATE caller_sessions SET ended_at = now(), end_reason = $3 WHERE account_id = $1 AND id = $2 AND "
                        "ended_at IS NULL AND %s",
                        "ended_by_admin", "true");
}

static const action_def_t s_actions[] = {
    {"end", "End the session: the caller is logged out (a call in progress finishes first)", s_end, "POST"},
};

const resource_def_t res_caller_sessions = {
    .collection = "caller_sessions",
    .singular = "caller_session",
    .table = "caller_sessions",
    .name_column = "'caller session ' || id",
    .fields = s_fields,
    .field_count = COUNT(s_fields),
    .append_only = true,
    .actions = s_actions,
    .action_count = COUNT(s_actions),
};
