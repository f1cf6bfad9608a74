#include "common/basic_auth.h"

#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

int basic_auth_decode(const char *authorization, char *user, size_t user_size, char *password, size_t password_size)
{
    unsigned char decoded[384];
    if (strncasecmp(authorization, "Basic ", 6) != 0)
        return -1;
    const char *b64 = authorization + 6;
    size_t b64_len = strlen(b64);
    if (b64_len == 0 || b64_len % 4 != 0 || b64_len / 4 * 3 >= sizeof(decoded))
        return -1;
    int n = EVP_DecodeBlock(decoded, (const unsigned char *)b64, (int)b64_len);
    if (n < 0)
        return -1;
    /* EVP_DecodeBlock counts padding as output bytes; strip them. */
    while (n > 0 && b64_len > 0 && b64[b64_len - 1] == '=') {
        n--;
        b64_len--;
    }
    decoded[n] = '\0';
    char *colon = memchr(decoded, ':', (size_t)n);
    if (colon == NULL || strlen((char *)decoded) != (size_t)n)
        return -1;
    *colon = '\0';
    size_t user_len = strlen((char *)decoded), password_len = strlen(colon + 1);
    if (user_len >= user_size || password_len >= password_size)
        return -1;
    memcpy(user, decoded, user_len + 1);
    memcpy(password, colon + 1, password_len + 1);
    return 0;
}
