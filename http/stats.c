/*
 * GET /v1/campaigns/{id}/stats: a running campaign's live figures, answered from the dialer's
 * shared-memory slot without a round trip to any actor once the caller's key is known.
 *
 * The front end owns no authentication: the store does (actors/store/auth.c). So the first
 * request with a credential pair is relayed to the store as GET /v1 with the same headers and
 * query; the store's 200 names the key's account, and its refusals (401, 503) are passed through
 * as they are. The pair's account is then remembered in this thread for the store's own cache
 * lifetime, so revoking a key takes at most twice as long to reach stats as the rest of the API;
 * the secret is kept only as its SHA-256 and compared in constant time.
 *
 * The account check is the slot's: the dialer stamps its slot with the campaign's account, and a
 * slot of another account answers exactly like a campaign that is not running (404), so ids of
 * other accounts' campaigns reveal nothing.
 */
#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "http/problem.h"
#include "http/server.h"
#include "shm/stats.h"

#define STATS_CACHE_SLOTS 256  /* per thread; a collision only costs a store round trip */
#define STATS_KEY_TTL_MS  5000 /* the store's AUTH_CACHE_TTL_MS: revocation is seen here as soon as there */

typedef struct {
    char key[HTTP_RL_KEY_MAX + 1];
    unsigned char secret_sha256[32];
    int64_t account_id;
    int64_t expires_ms;
} known_key_t;

static _Thread_local known_key_t s_known[STATS_CACHE_SLOTS];

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_digest(const char *secret, unsigned char out[32])
{
    unsigned int len = 0;
    return EVP_Digest(secret, strlen(secret), out, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

static known_key_t *s_slot_of(const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: keys are random hex, any spread will do */
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return &s_known[h % STATS_CACHE_SLOTS];
}

/* The account of a credential pair seen recently, or 0. */
static int64_t s_known_account(const http_rl_credential_t *cred)
{
    known_key_t *k = s_slot_of(cred->key);
    unsigned char digest[32];
    if (k->expires_ms <= s_mono_ms() || strcmp(k->key, cred->key) != 0 || s_digest(cred->secret, digest) != 0)
        return 0;
    return CRYPTO_memcmp(digest, k->secret_sha256, sizeof(digest)) == 0 ? k->account_id : 0;
}

static void s_remember(const http_rl_credential_t *cred, int64_t account_id)
{
    known_key_t *k = s_slot_of(cred->key);
    if (s_digest(cred->secret, k->secret_sha256) != 0) {
        k->expires_ms = 0;
        return;
    }
    snprintf(k->key, sizeof(k->key), "%s", cred->key);
    k->account_id = account_id;
    k->expires_ms = s_mono_ms() + STATS_KEY_TTL_MS;
}

static http_rl_view_t s_view(msg_str_t s)
{
    return (http_rl_view_t){s.ptr, s.len};
}

static int s_credentials(const msg_api_request_t *m, http_rl_credential_t *cred)
{
    http_rl_presented_t presented = {
        .api_key = s_view(msg_pairs_get(&m->headers, "api-key")),
        .api_auth = s_view(msg_pairs_get(&m->headers, "api-auth")),
        .x_api_key = s_view(msg_pairs_get(&m->headers, "x-api-key")),
        .x_api_auth = s_view(msg_pairs_get(&m->headers, "x-api-auth")),
        .authorization = s_view(msg_pairs_get(&m->headers, "authorization")),
        .query = m->has_query ? s_view(m->query) : (http_rl_view_t){NULL, 0},
    };
    return http_rl_credentials(&presented, cred);
}

int http_stats_match(h2o_iovec_t path, int64_t *campaign_id)
{
    static const char prefix[] = "/v1/campaigns/", suffix[] = "/stats";
    size_t p = sizeof(prefix) - 1, s = sizeof(suffix) - 1;
    if (path.len <= p + s || memcmp(path.base, prefix, p) != 0 || memcmp(path.base + path.len - s, suffix, s) != 0)
        return 0;
    size_t digits = path.len - p - s;
    if (digits > 18 || path.base[p] == '0')
        return 0;
    int64_t id = 0;
    for (size_t i = 0; i < digits; i++) {
        char c = path.base[p + i];
        if (c < '0' || c > '9')
            return 0;
        id = id * 10 + (c - '0');
    }
    *campaign_id = id;
    return 1;
}

static json_t *s_number(double v)
{
    return json_real(v == v ? v : 0.0);
}

static json_t *s_document(h2o_req_t *req, int64_t campaign_id, const shm_campaign_stats_t *st)
{
    char base[300] = "", uri[400];
    if (http_base_url(req, base, sizeof(base)) != 0)
        base[0] = '\0';
    json_t *doc = json_object();
    snprintf(uri, sizeof(uri), "%s/v1/campaigns/%" PRId64 "/stats", base, campaign_id);
    json_object_set_new(doc, "uri", json_string(uri));
    char name[64];
    snprintf(name, sizeof(name), "Live stats of campaign %" PRId64, campaign_id);
    json_object_set_new(doc, "name", json_string(name));
    json_object_set_new(doc, "campaign_id", json_integer(campaign_id));
    json_object_set_new(doc, "status", json_string(st->paused ? "paused" : "running"));
    time_t secs = (time_t)(st->updated_unix_ms / 1000);
    struct tm tm;
    char updated[96] = "";
    if (gmtime_r(&secs, &tm))
        snprintf(updated, sizeof(updated), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(st->updated_unix_ms % 1000));
    json_object_set_new(doc, "updated_at", updated[0] ? json_string(updated) : json_null());
    json_object_set_new(doc, "callers",
                        json_pack("{s:I, s:I, s:I, s:I}", "on_hold", (json_int_t)st->callers_on_hold, "on_call",
                                  (json_int_t)st->callers_on_call, "wrap_up", (json_int_t)st->callers_wrap_up, "preview",
                                  (json_int_t)st->callers_preview));
    json_object_set_new(doc, "lines_ringing", json_integer(st->lines_ringing));
    json_object_set_new(doc, "dials", json_integer((json_int_t)st->dials));
    json_object_set_new(doc, "answers", json_integer((json_int_t)st->answered_human));
    json_object_set_new(doc, "machines", json_integer((json_int_t)st->answered_machine));
    json_object_set_new(doc, "talked", json_integer((json_int_t)st->talked));
    json_object_set_new(doc, "abandoned", json_integer((json_int_t)st->abandoned));
    json_object_set_new(doc, "answer_rate", s_number(st->answer_rate));
    json_object_set_new(doc, "abandon_rate_24h", s_number(st->abandon_rate_24h));
    json_object_set_new(doc, "abandon_rate_30d", s_number(st->abandon_rate_30d));
    json_object_set_new(doc, "dial_ratio", s_number(st->dial_ratio));
    json_object_set_new(doc, "pacing_threshold", s_number(st->pacing_threshold));
    const uint32_t *b = st->bridge_decision_buckets;
    uint64_t n = st->bridge_decisions, max = st->bridge_decision_max_us;
    json_t *buckets = json_array();
    for (uint32_t i = 0; i < SHM_LATENCY_BUCKETS; i++) {
        uint64_t le = shm_latency_bucket_max_us(i); /* the open-ended top bucket ends at the maximum */
        if (b[i])
            json_array_append_new(buckets,
                                  json_pack("{s:I, s:I}", "le", (json_int_t)(le < max ? le : max), "count", (json_int_t)b[i]));
    }
    json_object_set_new(doc, "bridge_decision_us",
                        json_pack("{s:I, s:I, s:I, s:I, s:o}", "count", (json_int_t)n, "p50",
                                  (json_int_t)shm_latency_quantile(b, n, max, 0.5), "p99",
                                  (json_int_t)shm_latency_quantile(b, n, max, 0.99), "max", (json_int_t)max, "buckets", buckets));
    json_object_set_new(doc, "actions", json_array());
    snprintf(uri, sizeof(uri), "%s/v1/campaigns/%" PRId64, base, campaign_id);
    json_object_set_new(doc, "resources", json_pack("[{s:s, s:s}]", "name", "campaign", "uri", uri));
    return doc;
}

/* Answers for `account_id` from the campaign's slot. */
static void s_answer(h2o_req_t *req, int64_t campaign_id, int64_t account_id)
{
    shm_region_t *region = shm_region_open(http_thread_of(req)->settings->shm_name, false);
    if (region == NULL) {
        http_problem_send(req, 503, "stats-unavailable", "Service Unavailable", "the shared statistics are not available");
        return;
    }
    shm_campaign_stats_t st;
    uint32_t slot;
    int found = shm_campaign_find(region, campaign_id, &slot) == 0 && shm_campaign_read(region, slot, &st) == 0 &&
                st.campaign_id == campaign_id && st.account_id == account_id;
    shm_region_destroy(&region);
    if (!found) {
        http_problem_send(req, 404, "no-live-stats", "Not found",
                          "No campaign with this id is running or paused in this account: live stats exist only while it dials.");
        return;
    }
    json_t *doc = s_document(req, campaign_id, &st);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(doc);
    if (text == NULL) {
        http_problem_send(req, 500, "internal-error", "Internal Server Error", "cannot render the stats");
        return;
    }
    h2o_iovec_t body = h2o_iovec_init(text, strlen(text));
    http_response_init(req, 200);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    char *page = http_negotiate(req, &body);
    req->res.content_length = body.len;
    h2o_send_inline(req, body.base, body.len);
    free(page);
    free(text);
}

/* The store's answer to GET /v1 on the caller's behalf: the key's account, or its refusal. */
static void s_on_auth_reply(h2o_req_t *req, const http_reply_t *reply)
{
    msg_api_response_t res = {0};
    char err[160];
    if (reply->kind != HTTP_REPLY_BROKER || reply->status != BRK_STATUS_OK ||
        msg_api_response_decode(reply->body, reply->size, &res, err, sizeof(err)) != 0 || res.status != 200 || !res.has_body) {
        http_api_on_reply(req, reply);
        return;
    }
    json_t *root = json_loadb(res.body.ptr, res.body.len, 0, NULL);
    json_int_t account_id = json_integer_value(json_object_get(json_object_get(root, "account"), "id"));
    json_decref(root);
    int64_t campaign_id = 0;
    size_t path_len = req->query_at < req->path.len ? req->query_at : req->path.len;
    if (account_id <= 0 || !http_stats_match(h2o_iovec_init(req->path.base, path_len), &campaign_id)) {
        http_problem_send(req, 502, "bad-gateway", "Bad Gateway", "the service sent an unexpected answer");
        return;
    }
    msg_api_request_t m = {0};
    http_rl_credential_t cred;
    if (http_api_collect(req, &m) == 0 && s_credentials(&m, &cred) == 0)
        s_remember(&cred, account_id);
    s_answer(req, campaign_id, account_id);
}

void http_stats_serve(h2o_req_t *req, int64_t campaign_id, msg_api_request_t *m)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
        http_problem_send(req, 405, "method-not-allowed", "Method Not Allowed", "stats are read-only");
        return;
    }
    http_rl_credential_t cred;
    int64_t account_id = s_credentials(m, &cred) == 0 ? s_known_account(&cred) : 0;
    if (account_id > 0) {
        s_answer(req, campaign_id, account_id);
        return;
    }
    m->method = msg_str("GET");
    m->path = msg_str("/v1");
    m->has_body = false;
    if (http_api_send(req, m, s_on_auth_reply) != 0)
        log_line(LOG_LEVEL_DEBUG, NULL, "stats: the store could not be asked");
}
