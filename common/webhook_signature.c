#include "common/webhook_signature.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET_PREFIX     "whsec_"
#define SECRET_BASE64_MAX ((WEBHOOK_KEY_MAX + 2) / 3 * 4)

static bool s_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* EVP_DecodeBlock skips whitespace and decodes padding as zero bytes: the text is checked to be
 * plain padded base64 first, so one key has exactly one spelling. */
static int s_key(const char *text, size_t len, unsigned char *key, size_t *key_len)
{
    size_t prefix = strlen(SECRET_PREFIX);
    if (len <= prefix || memcmp(text, SECRET_PREFIX, prefix) != 0)
        return -1;
    text += prefix;
    len -= prefix;
    if (len % 4 != 0 || len > SECRET_BASE64_MAX)
        return -1;
    size_t padding = text[len - 1] == '=' ? (text[len - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < len - padding; i++)
        if (!s_base64_char(text[i]))
            return -1;
    unsigned char decoded[SECRET_BASE64_MAX / 4 * 3];
    int n = EVP_DecodeBlock(decoded, (const unsigned char *)text, (int)len);
    if (n < 0 || (size_t)n < padding)
        return -1;
    *key_len = (size_t)n - padding;
    if (*key_len < WEBHOOK_KEY_MIN || *key_len > WEBHOOK_KEY_MAX)
        return -1;
    memcpy(key, decoded, *key_len);
    return 0;
}

int webhook_secret_key(const char *secret, unsigned char *key, size_t *key_len)
{
    return s_key(secret, strlen(secret), key, key_len);
}

int webhook_sign(const char *secrets, const char *id, int64_t timestamp, const char *body, size_t body_len, char *out, size_t size)
{
    char head[128];
    int head_len = snprintf(head, sizeof(head), "%s.%" PRId64 ".", id, timestamp);
    if (head_len < 0 || (size_t)head_len >= sizeof(head) || size == 0)
        return -1;
    /* HMAC() takes one buffer: the signed content is assembled once for every secret. */
    unsigned char *content = malloc((size_t)head_len + body_len + 1);
    if (content == NULL)
        return -1;
    memcpy(content, head, (size_t)head_len);
    memcpy(content + head_len, body, body_len);
    int rc = 0, count = 0;
    size_t used = 0;
    out[0] = '\0';
    for (const char *s = secrets; rc == 0;) {
        size_t len = strcspn(s, " ");
        unsigned char key[WEBHOOK_KEY_MAX], mac[EVP_MAX_MD_SIZE];
        size_t key_len;
        unsigned int mac_len = 0;
        char encoded[EVP_MAX_MD_SIZE / 3 * 4 + 8];
        if (++count > WEBHOOK_SECRETS_MAX || s_key(s, len, key, &key_len) != 0 ||
            HMAC(EVP_sha256(), key, (int)key_len, content, (size_t)head_len + body_len, mac, &mac_len) == NULL) {
            rc = -1;
            break;
        }
        EVP_EncodeBlock((unsigned char *)encoded, mac, (int)mac_len);
        int n = snprintf(out + used, size - used, "%sv1,%s", used ? " " : "", encoded);
        if (n < 0 || (size_t)n >= size - used)
            rc = -1;
        else
            used += (size_t)n;
        if (s[len] == '\0')
            break;
        s += len + 1;
    }
    free(content);
    if (rc != 0)
        out[0] = '\0';
    return rc;
}
