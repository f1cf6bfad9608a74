#include "phone/phone.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phone/phone_nanp.h"
#include "phone/phone_shim.h"
#include "phone/phone_tzdata.h"

#define E164_DIGITS_MAX (PHONE_E164_SIZE - 2)

/* What people write around digits besides '+' and tabs. Everything else is refused before
 * libphonenumber sees it: its lenient parser would read words as keypad digits ("1-800-FLOWERS")
 * and cut off extensions, and garbage is answered without the cost of a parse. */
#define SEPARATORS " -.()/"

typedef struct {
    char compact[PHONE_INPUT_MAX + 1]; /* the input without SEPARATORS */
    int digits;
    int pluses;
} scan_t;

static bool s_scan(const char *input, size_t len, scan_t *scan)
{
    size_t n = 0;
    scan->digits = scan->pluses = 0;
    for (size_t i = 0; i < len; i++) {
        char c = input[i];
        if (c >= '0' && c <= '9')
            scan->digits++;
        else if (c == '+')
            scan->pluses++;
        else if (strchr(SEPARATORS, c))
            continue;
        else if (c != '\t')
            return false;
        scan->compact[n++] = c;
    }
    scan->compact[n] = '\0';
    return true;
}

/* libphonenumber's Parse takes about twice as long on "+1 (212) 555-0123" as on "+12125550123"
 * (every separator goes through its ICU regular expressions and normaliser) and, for what s_scan
 * lets through, gives the same answer for both. In its Parse (8.12.57): separators at either end
 * are trimmed; extensions and RFC 3966 forms need letters, '#', ',' or ';'; its viability pattern,
 * `\d{2}|[+]*(?:[separators]*\d){3,}[separators\d]*`, allows a separator anywhere after a leading
 * run of '+' once there are three digits, which is why the two cases it tells apart (a second '+'
 * after a separator, and "1 2" against "12") keep their separators; and everything after that works
 * on digits alone. Tabs are no separator to it, so they stay. test_phone checks the equivalence
 * on generated input against the untouched string. */
static const char *s_parse_input(const char *input, const scan_t *scan)
{
    return scan->digits >= 3 && scan->pluses <= 1 ? scan->compact : input;
}

static int s_compare_range(const void *key, const void *entry)
{
    uint32_t prefix = *(const uint32_t *)key;
    const phone_nanp_range_t *range = entry;
    return prefix < range->first ? -1 : prefix >= range[1].first ? 1 : 0;
}

/* North American numbers in the three shapes lists hold them, "NXXNXXXXXX" and "1NXXNXXXXXX" read
 * in the US, and "+1NXXNXXXXXX" from anywhere, are answered from the table gen_nanp.py proved
 * against libphonenumber's own +1 metadata, which costs a bsearch instead of a parse (about 25 us).
 * gen_nanp.py also checks the parsing rules that make these shapes mean national number NXXNXXXXXX
 * of +1; anything else, and prefixes it could not prove, go to libphonenumber. True when decided,
 * with *error PHONE_OK (e164 written) or PHONE_INVALID. */
static bool s_nanp(const scan_t *scan, const char *default_region, char *e164, phone_error_t *error)
{
    const char *c = scan->compact;
    size_t len = strlen(c);
    bool us = default_region != NULL && strcmp(default_region, "US") == 0;
    const char *nsn = len == 12 && c[0] == '+' && c[1] == '1' ? c + 2
                      : us && len == 11 && c[0] == '1'        ? c + 1
                      : us && len == 10                       ? c
                                                              : NULL;
    if (nsn == NULL || strspn(nsn, "0123456789") != 10 || nsn[0] < '2')
        return false;
    uint32_t prefix = 0;
    for (int i = 0; i < 6; i++)
        prefix = prefix * 10 + (uint32_t)(nsn[i] - '0');
    const phone_nanp_range_t *range =
        bsearch(&prefix, phone_nanp_ranges, phone_nanp_range_count, sizeof(phone_nanp_ranges[0]), s_compare_range);
    if (range == NULL || range->outcome == PHONE_NANP_SLOW)
        return false;
    *error = range->outcome == PHONE_NANP_VALID ? PHONE_OK : PHONE_INVALID;
    if (*error == PHONE_OK) {
        e164[0] = '+';
        e164[1] = '1';
        memcpy(e164 + 2, nsn, 11);
    }
    return true;
}

static phone_error_t s_normalize(const char *input, const char *default_region, char *e164, size_t size)
{
    if (size < PHONE_E164_SIZE)
        return PHONE_NO_ROOM;
    if (input == NULL)
        return PHONE_EMPTY;
    size_t len = strnlen(input, PHONE_INPUT_MAX + 1);
    if (len > PHONE_INPUT_MAX)
        return PHONE_TOO_LONG;
    scan_t scan;
    if (!s_scan(input, len, &scan))
        return PHONE_BAD_CHARACTER;
    if (scan.digits == 0) /* libphonenumber needs at least two digits: the parse could only fail */
        return strspn(input, " \t") == len ? PHONE_EMPTY : PHONE_NOT_A_NUMBER;
    phone_error_t fast;
    if (s_nanp(&scan, default_region, e164, &fast))
        return fast;
    const char *region = default_region != NULL ? default_region : "ZZ";
    switch (phone_shim_e164(s_parse_input(input, &scan), region, e164, size)) {
    case PHONE_SHIM_OK:
        return PHONE_OK;
    case PHONE_SHIM_NO_COUNTRY:
        return PHONE_NO_COUNTRY;
    case PHONE_SHIM_INVALID:
        return PHONE_INVALID;
    case PHONE_SHIM_UNPARSABLE:
    case PHONE_SHIM_FAILED:
        break;
    }
    return PHONE_NOT_A_NUMBER;
}

int phone_normalize(const char *input, const char *default_region, char *e164, size_t size, phone_error_t *error)
{
    *error = s_normalize(input, default_region, e164, size);
    return *error == PHONE_OK ? 0 : -1;
}

const char *phone_error_text(phone_error_t error)
{
    switch (error) {
    case PHONE_OK:
        return "is a valid phone number";
    case PHONE_EMPTY:
        return "must not be empty";
    case PHONE_TOO_LONG:
        return "is longer than 64 characters";
    case PHONE_BAD_CHARACTER:
        return "may contain only digits, spaces, '+', '-', '.', '/' and parentheses";
    case PHONE_NO_COUNTRY:
        return "needs a valid country code (write it with a leading '+')";
    case PHONE_NOT_A_NUMBER:
        return "cannot be read as a phone number: too few or too many digits, or misplaced separators";
    case PHONE_INVALID:
        return "is not a valid phone number in its country's numbering plan";
    case PHONE_NO_ROOM:
        break;
    }
    return "could not be stored";
}

int phone_region(const char *e164, char out[3])
{
    return phone_shim_region(e164, out, 3);
}

static int s_compare_prefix(const void *key, const void *entry)
{
    return strcmp(key, ((const phone_tz_prefix_t *)entry)->prefix);
}

int phone_time_zones(const char *e164, const char **zones, int max)
{
    if (e164[0] != '+')
        return 0;
    const char *digits = e164 + 1;
    size_t len = strspn(digits, "0123456789");
    if (len == 0 || len > E164_DIGITS_MAX || digits[len] != '\0')
        return 0;
    char prefix[PHONE_TZ_PREFIX_MAX + 1];
    for (size_t n = len < PHONE_TZ_PREFIX_MAX ? len : PHONE_TZ_PREFIX_MAX; n > 0; n--) {
        memcpy(prefix, digits, n);
        prefix[n] = '\0';
        const phone_tz_prefix_t *hit =
            bsearch(prefix, phone_tz_prefixes, phone_tz_prefix_count, sizeof(phone_tz_prefixes[0]), s_compare_prefix);
        if (hit == NULL)
            continue;
        int count = max < 0 ? 0 : hit->count < max ? hit->count : max;
        for (int i = 0; i < count; i++)
            zones[i] = phone_tz_names[phone_tz_lists[hit->first + i]];
        return count;
    }
    return 0;
}
