#include "actors/store/auth.h"

#include <czmq.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "common/basic_auth.h"

typedef struct {
    auth_account_t account;
    unsigned char secret_sha256[32];
    int64_t expires_at;
} entry_t;

struct auth_cache_t {
    zhashx_t *entries; /* api_key -> entry_t* */
    EVP_MD *sha256;    /* fetched once: OpenSSL 3 takes locks to look an algorithm up by name */
};

static void s_entry_destroy(void **item)
{
    free(*item);
    *item = NULL;
}

auth_cache_t *auth_cache_new(void)
{
    auth_cache_t *self = calloc(1, sizeof(*self));
    if (self == NULL)
        return NULL;
    self->entries = zhashx_new();
    self->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (self->entries == NULL || self->sha256 == NULL) {
        zhashx_destroy(&self->entries);
        EVP_MD_free(self->sha256);
        free(self);
        return NULL;
    }
    zhashx_set_destructor(self->entries, s_entry_destroy);
    return self;
}

void auth_cache_destroy(auth_cache_t **self_p)
{
    auth_cache_t *self = *self_p;
    if (self == NULL)
        return;
    zhashx_destroy(&self->entries);
    EVP_MD_free(self->sha256);
    free(self);
    *self_p = NULL;
}

/* Pulls the credential pair out of whichever place the client put it. */
static int s_credentials(const api_request_t *req, char *key, size_t key_size, char *secret, size_t secret_size)
{
    if ((api_header(req, "api-key", key, key_size) == 0 && api_header(req, "api-auth", secret, secret_size) == 0) ||
        (api_header(req, "x-api-key", key, key_size) == 0 && api_header(req, "x-api-auth", secret, secret_size) == 0))
        return 0;
    char authorization[512];
    if (api_header(req, "authorization", authorization, sizeof(authorization)) == 0 && strncasecmp(authorization, "Basic ", 6) == 0)
        return basic_auth_decode(authorization, key, key_size, secret, secret_size);
    if (api_param(req, "api_key", key, key_size) == 0 && api_param(req, "api_auth", secret, secret_size) == 0)
        return 0;
    return -1;
}

static int s_unhex(const char *hex, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned int byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
            return -1;
        out[i] = (unsigned char)byte;
    }
    return 0;
}

static auth_result_t s_lookup(auth_cache_t *self, PGconn *conn, const char *key, entry_t **entry_p)
{
    const char *params[] = {key};
    PGresult *res = PQexecParams(conn,
                                 "SELECT a.id, a.name, encode(k.secret_sha256, 'hex') FROM api_keys k JOIN accounts a ON "
                                 "a.id = k.account_id WHERE k.api_key = $1 AND k.revoked_at IS NULL AND a.status = 'active'",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return AUTH_DB_ERROR;
    }
    if (PQntuples(res) != 1 || strlen(PQgetvalue(res, 0, 2)) != 64) {
        PQclear(res);
        return AUTH_INVALID;
    }
    entry_t *entry = calloc(1, sizeof(*entry));
    if (entry == NULL) {
        PQclear(res);
        return AUTH_DB_ERROR;
    }
    entry->account.account_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(entry->account.account_name, sizeof(entry->account.account_name), "%s", PQgetvalue(res, 0, 1));
    s_unhex(PQgetvalue(res, 0, 2), entry->secret_sha256, sizeof(entry->secret_sha256));
    entry->expires_at = zclock_mono() + AUTH_CACHE_TTL_MS;
    PQclear(res);
    /* A full cache is simply emptied: keys in active use come back on their next request. */
    if (zhashx_size(self->entries) >= AUTH_CACHE_MAX)
        zhashx_purge(self->entries);
    zhashx_update(self->entries, key, entry);
    *entry_p = entry;
    return AUTH_OK;
}

auth_result_t auth_check(auth_cache_t *self, PGconn *conn, const api_request_t *req, auth_account_t *account)
{
    char key[64], secret[128];
    if (s_credentials(req, key, sizeof(key), secret, sizeof(secret)) != 0)
        return AUTH_MISSING;

    entry_t *entry = zhashx_lookup(self->entries, key);
    if (entry && entry->expires_at < zclock_mono()) {
        zhashx_delete(self->entries, key);
        entry = NULL;
    }
    if (entry == NULL) {
        auth_result_t rc = s_lookup(self, conn, key, &entry);
        if (rc != AUTH_OK)
            return rc;
    }
    unsigned char digest[32];
    unsigned int digest_len = 0;
    int ok = EVP_Digest(secret, strlen(secret), digest, &digest_len, self->sha256, NULL) == 1 && digest_len == 32 &&
             CRYPTO_memcmp(digest, entry->secret_sha256, sizeof(digest)) == 0;
    OPENSSL_cleanse(secret, sizeof(secret));
    if (!ok)
        return AUTH_INVALID;
    *account = entry->account;
    return AUTH_OK;
}
