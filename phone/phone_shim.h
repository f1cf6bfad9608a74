/*
 * The C-callable face of libphonenumber's C++ API, used only by phone.c. No exception may cross
 * into C, so every function catches all of them and reports a failure instead.
 */
#ifndef IMPACT_PHONE_SHIM_H
#define IMPACT_PHONE_SHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Outcomes of phone_shim_e164, kept apart so phone.c can tell the caller why. */
typedef enum {
    PHONE_SHIM_OK = 0,
    PHONE_SHIM_NO_COUNTRY, /* libphonenumber's INVALID_COUNTRY_CODE_ERROR */
    PHONE_SHIM_UNPARSABLE, /* any other parse error */
    PHONE_SHIM_INVALID,    /* parsed, but IsValidNumber is false */
    PHONE_SHIM_FAILED,     /* an exception, or no room in out */
} phone_shim_result_t;

/**
 * Parses `input` (national notation read in `region`), validates it and writes its E.164 form
 * into out; one Parse serves both.
 */
phone_shim_result_t phone_shim_e164(const char *input, const char *region, char *out, size_t size);

/** The region code of a valid E.164 number into out. 0, or -1 (also when it does not fit). */
int phone_shim_region(const char *e164, char *out, size_t size);

#ifdef __cplusplus
}
#endif

#endif
