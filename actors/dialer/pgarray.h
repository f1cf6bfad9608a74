/*
 * pgarray_t: PostgreSQL array literals ("{1,2,NULL}") built in memory, so that a whole batch of
 * rows travels as a handful of array parameters of one statement (unnest on the server) instead
 * of one round trip per row.
 *
 * Text elements are restricted to what the dialer sends (phone numbers, outcome names): letters,
 * digits, '+', '_' and '-'. Anything else makes the array fail rather than be quoted, so no
 * element can ever change the literal's structure.
 */
#ifndef IMPACT_DIALER_PGARRAY_H
#define IMPACT_DIALER_PGARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGARRAY_TEXT_MAX 512

typedef struct {
    char *data;
    size_t len, capacity;
    bool failed; /* out of memory, or a text element outside the allowed characters */
} pgarray_t;

void pgarray_init(pgarray_t *self);
void pgarray_free(pgarray_t *self);

void pgarray_int(pgarray_t *self, int64_t value);
void pgarray_null(pgarray_t *self);
void pgarray_bool(pgarray_t *self, bool value);
/* A share from 0 to 1, to six decimal places (a real column holds no more). */
void pgarray_share(pgarray_t *self, double value);
void pgarray_text(pgarray_t *self, const char *value);
/* A comma-separated list of IANA zone names (possibly empty), as one element. */
void pgarray_zones(pgarray_t *self, const char *value);

/** The finished literal ("{}" when empty), or NULL when it failed. Valid until the next call. */
const char *pgarray_finish(pgarray_t *self);

#endif
