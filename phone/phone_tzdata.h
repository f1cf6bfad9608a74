/*
 * The prefix-to-time-zone table that gen_tzdata.py generates into the build directory from
 * Debian's python3-phonenumbers (phonenumbers.tzdata). Prefixes are E.164 digits without '+',
 * sorted by strcmp for bsearch; each names a run of indexes into phone_tz_names, so a zone name
 * shared by hundreds of prefixes is stored once.
 */
#ifndef IMPACT_PHONE_TZDATA_H
#define IMPACT_PHONE_TZDATA_H

#include <stddef.h>
#include <stdint.h>

#define PHONE_TZ_PREFIX_MAX 8 /* digits in the longest prefix; the generated file checks it */

typedef struct {
    const char *prefix;
    uint16_t first; /* index into phone_tz_lists */
    uint16_t count;
} phone_tz_prefix_t;

extern const char *const phone_tz_names[];
extern const uint16_t phone_tz_lists[];
extern const phone_tz_prefix_t phone_tz_prefixes[];
extern const size_t phone_tz_prefix_count;

#endif
