/*
 * The NANP fast path's table, generated into the build directory by gen_nanp.py from the
 * installed libphonenumber's +1 metadata: which six-digit national prefixes (area code and
 * exchange) make every ten-digit number under them valid, every one invalid, or were not proved
 * either way. Ranges sorted by their first prefix, each running to the next one's; the last
 * entry is a sentinel at 1000000.
 */
#ifndef IMPACT_PHONE_NANP_H
#define IMPACT_PHONE_NANP_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PHONE_NANP_INVALID = 0,
    PHONE_NANP_VALID = 1,
    PHONE_NANP_SLOW = 2, /* not proved: ask libphonenumber */
} phone_nanp_outcome_t;

typedef struct {
    uint32_t first; /* six national digits as a number */
    uint8_t outcome;
} phone_nanp_range_t;

extern const phone_nanp_range_t phone_nanp_ranges[];
extern const size_t phone_nanp_range_count; /* without the sentinel */

#endif
