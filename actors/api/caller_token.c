#include "actors/api/caller_token.h"

#include <openssl/sha.h>
#include <string.h>
#include <strings.h>

static const char s_base64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Copies a token candidate of exactly CALLER_TOKEN_LENGTH bytes; anything else leaves it empty. */
static void s_take(char token[CALLER_TOKEN_LENGTH + 1], const char *from, size_t len)
{
    token[0] = '\0';
    if (len == CALLER_TOKEN_LENGTH) {
        memcpy(token, from, len);
        token[len] = '\0';
    }
}

int caller_token_digest(const api_request_t *req, unsigned char digest[CALLER_TOKEN_DIGEST])
{
    char header[1024], token[CALLER_TOKEN_LENGTH + 1] = "";
    if (api_header(req, "authorization", header, sizeof(header)) == 0 && strncasecmp(header, "Bearer ", 7) == 0) {
        s_take(token, header + 7, strlen(header + 7));
    } else if (api_header(req, "cookie", header, sizeof(header)) == 0) {
        char *saved = NULL;
        for (char *part = strtok_r(header, ";", &saved); part; part = strtok_r(NULL, ";", &saved)) {
            part += strspn(part, " ");
            if (strncmp(part, CALLER_TOKEN_COOKIE "=", sizeof(CALLER_TOKEN_COOKIE)) == 0)
                s_take(token, part + sizeof(CALLER_TOKEN_COOKIE), strlen(part + sizeof(CALLER_TOKEN_COOKIE)));
        }
    }
    size_t len = strlen(token);
    if (len != CALLER_TOKEN_LENGTH || strncmp(token, "cs_", 3) != 0 || strspn(token + 3, s_base64url) != len - 3)
        return -1;
    SHA256((const unsigned char *)token, len, digest);
    return 0;
}
