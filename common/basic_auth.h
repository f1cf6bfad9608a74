/*
 * HTTP Basic credentials (RFC 7617), as the API reads api_key:api_auth from them. Shared by
 * the actors that authenticate and the front end that rate-limits by key, which must agree on
 * every byte (see common/urlform.h).
 */
#ifndef IMPACT_COMMON_BASIC_AUTH_H
#define IMPACT_COMMON_BASIC_AUTH_H

#include <stddef.h>

/**
 * Decodes an Authorization header value "Basic base64(user:password)" into NUL-terminated
 * user and password. -1 for another scheme, bad base64, no colon, a NUL byte, or a part that
 * does not fit.
 */
int basic_auth_decode(const char *authorization, char *user, size_t user_size, char *password, size_t password_size);

#endif
