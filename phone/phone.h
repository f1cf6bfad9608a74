/*
 * Phone numbers, for everything that stores or dials one. This folder owns both questions the
 * server asks about a number, so no other code parses notation or guesses a location:
 *
 * - normalisation: what a person or a CSV file wrote, turned into validated E.164 by
 *   libphonenumber (Debian's libphonenumber-dev), whose metadata for every numbering plan is
 *   maintained upstream; nothing here decides by hand which numbers exist;
 * - time zones: the calling-hours rule is judged in the called party's local time, so the zone
 *   lookup is part of compliance. The C++ library has no time-zone mapper, so the same data is
 *   taken from Debian's python3-phonenumbers at build time (gen_tzdata.py) and looked up here.
 *
 * Thread safety: every function may be called from several threads at once. The code here and in
 * phone_shim.cc keeps no state and the zone table is const; libphonenumber, as Debian builds it,
 * creates its PhoneNumberUtil singleton under pthread_once and guards its regular-expression
 * cache with a pthread mutex. The actors that call this are single-threaded anyway.
 */
#ifndef IMPACT_PHONE_H
#define IMPACT_PHONE_H

#include <stddef.h>

/* libphonenumber accepts national numbers of up to 17 digits after a country code of up to 3, and
 * some valid numbers exceed E.164's 15 digits (Japanese 0037 toll-free numbers reach 19), so a
 * normalised number takes up to '+', 20 digits and NUL. */
#define PHONE_E164_SIZE 22
#define PHONE_INPUT_MAX 64 /* bytes of notation accepted; "+1 (212) 555-0123" is 17 */
#define PHONE_ZONES_MAX 64 /* at least as many zones as any prefix has (checked when generated) */

typedef enum {
    PHONE_OK = 0,
    PHONE_EMPTY,         /* nothing but spaces */
    PHONE_TOO_LONG,      /* longer than PHONE_INPUT_MAX bytes */
    PHONE_BAD_CHARACTER, /* letters or symbols other than + - . ( ) / spaces and tabs */
    PHONE_NO_COUNTRY,    /* national notation without a usable default region, or an unknown +code */
    PHONE_NOT_A_NUMBER,  /* libphonenumber cannot read it: too few or too many digits, stray '+' or tabs */
    PHONE_INVALID,       /* readable, but not a number of its numbering plan */
    PHONE_NO_ROOM,       /* the output buffer is smaller than PHONE_E164_SIZE */
} phone_error_t;

/**
 * Normalises `input` to E.164 ("+12125550123") into `e164`, which must hold PHONE_E164_SIZE
 * bytes (checked before anything else, so the answer never depends on the number's length).
 * National notation ("(212) 555-0123", "020 7946 0958") is read in `default_region`, an ISO 3166
 * code such as "US"; with NULL only international notation ("+44 ...") is accepted. An
 * international prefix dialled from the default region ("011 44 ..." from "US") is understood.
 * Letters are refused rather than read as keypad digits, and so are extensions; NULL input counts
 * as empty. North American numbers written as 10 digits, 1 + 10 digits (in "US") or +1 + 10 digits,
 * separators aside, are answered from a table proved against libphonenumber's metadata at build
 * time (gen_nanp.py), well under a microsecond; anything else costs a libphonenumber parse, about
 * 24 µs for a US number and 31 µs for a UK one (phone/README.md).
 * Returns 0, or -1 with *error saying why (phone_error_text turns it into a sentence).
 */
int phone_normalize(const char *input, const char *default_region, char *e164, size_t size, phone_error_t *error);

/** A short sentence completing "phone number ...", for an API error ("is not a valid phone number"). */
const char *phone_error_text(phone_error_t error);

/**
 * The ISO 3166 region of an E.164 number ("US", "GB", "CA") into `out`. Returns 0, or -1 for input
 * that is not a valid E.164 number and for numbers of no region (the +800 and +870 style codes).
 */
int phone_region(const char *e164, char out[3]);

/**
 * The IANA time zones of the E.164 number `e164` ("+" and digits only) by longest-prefix match:
 * "+1212..." is America/New_York alone, while a prefix shared by several zones ("+1907...", Alaska)
 * or a number with no prefix of its own ("+1200...", every NANP zone) gives all of them, and
 * calling hours must then hold in each. Stores at most `max` static strings into `zones` in the
 * data's order and returns how many; 0 when no prefix matches or the input is not E.164. Makes no
 * allocation; a binary search per candidate prefix length.
 */
int phone_time_zones(const char *e164, const char **zones, int max);

#endif
