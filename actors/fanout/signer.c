#include "actors/fanout/signer.h"

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct signer_t {
    EVP_MAC *hmac;
    EVP_MAC_CTX *secrets[WEBHOOK_SECRETS_MAX]; /* each keyed with its secret, in the order given */
    int count;
};

void signer_destroy(signer_t **self_p)
{
    signer_t *self = *self_p;
    if (self == NULL)
        return;
    for (int i = 0; i < self->count; i++)
        EVP_MAC_CTX_free(self->secrets[i]);
    EVP_MAC_free(self->hmac);
    free(self);
    *self_p = NULL;
}

signer_t *signer_new(const char *secrets)
{
    signer_t *self = calloc(1, sizeof(*self));
    if (self == NULL || (self->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
        goto Error;
    OSSL_PARAM sha256[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    for (const char *s = secrets;;) {
        size_t len = strcspn(s, " ");
        char secret[128];
        unsigned char key[WEBHOOK_KEY_MAX];
        size_t key_len;
        if (self->count == WEBHOOK_SECRETS_MAX || len >= sizeof(secret))
            goto Error;
        memcpy(secret, s, len);
        secret[len] = '\0';
        EVP_MAC_CTX *ctx = webhook_secret_key(secret, key, &key_len) == 0 ? EVP_MAC_CTX_new(self->hmac) : NULL;
        if (ctx == NULL)
            goto Error;
        self->secrets[self->count++] = ctx;
        if (!EVP_MAC_init(ctx, key, key_len, sha256))
            goto Error;
        if (s[len] == '\0')
            break;
        s += len + 1;
    }
    return self;
Error:
    signer_destroy(&self);
    return NULL;
}

int signer_sign(signer_t *self, const char *id, int64_t timestamp, const char *body, size_t body_len, char *out, size_t size)
{
    char head[128];
    int head_len = snprintf(head, sizeof(head), "%s.%" PRId64 ".", id, timestamp);
    if (head_len < 0 || (size_t)head_len >= sizeof(head) || size == 0)
        return -1;
    size_t used = 0;
    for (int i = 0; i < self->count; i++) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        size_t mac_len;
        char encoded[EVP_MAX_MD_SIZE / 3 * 4 + 8];
        /* Without a key, EVP_MAC_init starts a new message with the key already set. */
        if (!EVP_MAC_init(self->secrets[i], NULL, 0, NULL) ||
            !EVP_MAC_update(self->secrets[i], (unsigned char *)head, (size_t)head_len) ||
            !EVP_MAC_update(self->secrets[i], (const unsigned char *)body, body_len) ||
            !EVP_MAC_final(self->secrets[i], mac, &mac_len, sizeof(mac)))
            goto Error;
        EVP_EncodeBlock((unsigned char *)encoded, mac, (int)mac_len);
        int n = snprintf(out + used, size - used, "%sv1,%s", used ? " " : "", encoded);
        if (n < 0 || (size_t)n >= size - used)
            goto Error;
        used += (size_t)n;
    }
    return 0;
Error:
    out[0] = '\0';
    return -1;
}
