/*
 * application/x-www-form-urlencoded: query strings and form bodies. One implementation for the
 * whole server, because the HTTP front end (rate limiting by key, links that keep credentials)
 * must read api_key and api_auth exactly as the actors that authenticate them do: if two
 * decoders disagreed, a request could be limited as one key and served as another.
 */
#ifndef IMPACT_COMMON_URLFORM_H
#define IMPACT_COMMON_URLFORM_H

#include <stddef.h>

#define URLFORM_NAME_MAX 127 /* bytes of a decoded name that can match */

/**
 * Decodes `len` bytes ('+' is a space, %XX a byte) into out, NUL-terminated. -1 on a short or
 * non-hex escape, a NUL byte, or no room.
 */
int urlform_decode(const char *in, size_t len, char *out, size_t size);

/**
 * The value of `name` in an &-separated list, decoded into out. The first item whose decoded
 * name matches decides, even if its value cannot be decoded (a later duplicate never overrides
 * it). 0 if found and decoded, -1 otherwise. `list` may be NULL.
 */
int urlform_param(const char *list, size_t len, const char *name, char *out, size_t size);

/**
 * Appends "&name=value" to the text in `out` (NUL-terminated, `size` bytes), the value
 * percent-encoded but for RFC 3986's unreserved characters and those in `plain` (say "," for a
 * comma-separated list, which then reads as it was written). The pair is cut short, never
 * overflowed, when `out` runs out of room: callers size `out` for the longest values they accept.
 */
void urlform_append(char *out, size_t size, const char *name, const char *value, const char *plain);

#endif
