/*
 * phone/: normalisation to E.164 through libphonenumber in the notations people type, refusal
 * of what is not a valid number (with the reason), regions, and the time zones of a number from
 * the table generated out of python3-phonenumbers. The numbers are ones libphonenumber 8.12.57
 * (Debian 12) holds valid or invalid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phone/phone.h"
#include "phone/phone_nanp.h"
#include "phone/phone_shim.h"

static void s_assert_e164(const char *input, const char *region, const char *want)
{
    char out[PHONE_E164_SIZE];
    phone_error_t error = PHONE_INVALID;
    if (phone_normalize(input, region, out, sizeof(out), &error) != 0)
        fail_msg("'%s' (%s) refused: %s", input, region ? region : "no region", phone_error_text(error));
    assert_int_equal(error, PHONE_OK);
    assert_string_equal(out, want);
}

static void s_assert_refused(const char *input, const char *region, phone_error_t want)
{
    char out[PHONE_E164_SIZE];
    phone_error_t error = PHONE_OK;
    assert_int_equal(phone_normalize(input, region, out, sizeof(out), &error), -1);
    if (error != want)
        fail_msg("'%s': error %d (%s), wanted %d (%s)", input, error, phone_error_text(error), want, phone_error_text(want));
}

static void test_us_notations_normalise_to_e164(void **state)
{
    s_assert_e164("+1 (212) 555-0123", "US", "+12125550123");
    s_assert_e164("+12125550123", "US", "+12125550123");
    s_assert_e164("(212) 555-0123", "US", "+12125550123");
    s_assert_e164("212.555.0123", "US", "+12125550123");
    s_assert_e164("212/555-0123", "US", "+12125550123");
    s_assert_e164("1-212-555-0123", "US", "+12125550123");
    s_assert_e164("\t 2125550123  ", "US", "+12125550123");
    s_assert_e164("+1 808 555 0100", "US", "+18085550100");
    s_assert_e164("1 800 555 0199", "US", "+18005550199");
    s_assert_e164("(416) 555-0123", "US", "+14165550123"); /* Canada shares +1 */
    /* International notation ignores the default region, or its absence. */
    s_assert_e164("+1 212 555 0123", "GB", "+12125550123");
    s_assert_e164("+1 212 555 0123", NULL, "+12125550123");
}

static void test_gb_and_other_notations_normalise_to_e164(void **state)
{
    s_assert_e164("020 7946 0958", "GB", "+442079460958");
    s_assert_e164("07400 123456", "GB", "+447400123456");
    s_assert_e164("+44 20 7946 0958", "US", "+442079460958");
    s_assert_e164("+44 (0)20 7946 0958", "US", "+442079460958");
    s_assert_e164("011 44 20 7946 0958", "US", "+442079460958"); /* international prefix from the US */
    s_assert_e164("00 33 1 42 68 53 00", "GB", "+33142685300");  /* and from the UK */
    s_assert_e164("+33 1 42 68 53 00", "US", "+33142685300");
    s_assert_e164("+49 30 901820", "US", "+4930901820");
    s_assert_e164("+61 2 9374 4000", "US", "+61293744000");
    s_assert_e164("+91 98765 43210", "US", "+919876543210");
    /* Valid numbers longer than E.164's 15 digits fit PHONE_E164_SIZE. */
    s_assert_e164("+49 30 1234567890123", "US", "+49301234567890123");
    s_assert_e164("+81 0037 1234567890123", "US", "+8100371234567890123");
}

static void test_what_is_not_a_valid_number_is_refused_with_its_reason(void **state)
{
    s_assert_refused("", "US", PHONE_EMPTY);
    s_assert_refused(" \t ", "US", PHONE_EMPTY);
    s_assert_refused(NULL, "US", PHONE_EMPTY);
    s_assert_refused("call me", "US", PHONE_BAD_CHARACTER);
    s_assert_refused("1-800-FLOWERS", "US", PHONE_BAD_CHARACTER); /* libphonenumber alone would accept it */
    s_assert_refused("212-555-0123 x12", "US", PHONE_BAD_CHARACTER);
    s_assert_refused("212;555;0123", "US", PHONE_BAD_CHARACTER);
    s_assert_refused("--", "US", PHONE_NOT_A_NUMBER);
    s_assert_refused("1", "US", PHONE_NOT_A_NUMBER);
    s_assert_refused("+1 212 555 0123 4567 8901 2345", "US", PHONE_NOT_A_NUMBER);
    s_assert_refused("+999 1234567", "US", PHONE_NO_COUNTRY);
    s_assert_refused("2125550123", NULL, PHONE_NO_COUNTRY);
    s_assert_refused("2125550123", "XX", PHONE_NO_COUNTRY);
    s_assert_refused("12", "US", PHONE_INVALID);
    s_assert_refused("+1 555 555 0123", "US", PHONE_INVALID); /* no such area code */
    s_assert_refused("+1 212 055 0123", "US", PHONE_INVALID); /* exchanges never start with 0 */
    s_assert_refused("020 7946 0958", "US", PHONE_INVALID);   /* a London number read as American */
    for (int e = PHONE_OK; e <= PHONE_NO_ROOM; e++)
        assert_true(strlen(phone_error_text((phone_error_t)e)) > 0);
}

static void test_input_length_is_bounded(void **state)
{
    /* Padding with spaces to exactly PHONE_INPUT_MAX bytes is still read; one more byte is not. */
    char edge[PHONE_INPUT_MAX + 2];
    memset(edge, ' ', sizeof(edge) - 1);
    memcpy(edge, "+12125550123", 12);
    edge[PHONE_INPUT_MAX] = '\0';
    s_assert_e164(edge, "US", "+12125550123");
    edge[PHONE_INPUT_MAX] = ' ';
    edge[PHONE_INPUT_MAX + 1] = '\0';
    s_assert_refused(edge, "US", PHONE_TOO_LONG);

    size_t huge = 1 << 20;
    char *digits = malloc(huge + 1);
    assert_non_null(digits);
    memset(digits, '1', huge);
    digits[huge] = '\0';
    s_assert_refused(digits, "US", PHONE_TOO_LONG);
    free(digits);
}

static void test_small_buffers_are_refused_not_overrun(void **state)
{
    char out[PHONE_E164_SIZE + 1];
    phone_error_t error = PHONE_OK;
    /* Even where the number itself would fit, so the outcome never depends on its length. */
    for (size_t size = 0; size < PHONE_E164_SIZE; size++) {
        memset(out, 'x', sizeof(out));
        assert_int_equal(phone_normalize("+12125550123", "US", out, size, &error), -1);
        assert_int_equal(error, PHONE_NO_ROOM);
        for (size_t i = 0; i < sizeof(out); i++)
            assert_int_equal(out[i], 'x');
    }
    assert_int_equal(phone_normalize("+8100371234567890123", "US", out, PHONE_E164_SIZE, &error), 0);
    assert_int_equal(out[PHONE_E164_SIZE], 'x');
}

/* phone_normalize hands libphonenumber the input without its separators, because that parses
 * twice as fast; this holds it to giving exactly what the untouched string gives, over generated
 * notations around real and random digits (separators anywhere, one or two '+', tabs). */
static uint32_t s_random(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

static phone_error_t s_library_answer(const char *input, const char *region, char *e164)
{
    switch (phone_shim_e164(input, region != NULL ? region : "ZZ", e164, PHONE_E164_SIZE)) {
    case PHONE_SHIM_OK:
        return PHONE_OK;
    case PHONE_SHIM_NO_COUNTRY:
        return PHONE_NO_COUNTRY;
    case PHONE_SHIM_INVALID:
        return PHONE_INVALID;
    default:
        return PHONE_NOT_A_NUMBER;
    }
}

static void test_separators_never_change_the_answer(void **state)
{
    static const char *const bases[] = {"12125550123",
                                        "2125550123",
                                        "442079460958",
                                        "02079460958",
                                        "011442079460958",
                                        "00442079460958",
                                        "447400123456",
                                        "07400123456",
                                        "33142685300",
                                        "12",
                                        "123",
                                        "1"};
    static const char *const regions[] = {"US", "GB", "FR", NULL};
    static const char separators[] = " -.()/\t";
    uint32_t seed = 20261128;
    for (int round = 0; round < 3000; round++) {
        char digits[24];
        if (round % 3 == 0) {
            int n = 1 + (int)(s_random(&seed) % 17);
            for (int i = 0; i < n; i++)
                digits[i] = (char)('0' + s_random(&seed) % 10);
            digits[n] = '\0';
        } else {
            snprintf(digits, sizeof(digits), "%s", bases[s_random(&seed) % (sizeof(bases) / sizeof(bases[0]))]);
        }
        char input[PHONE_INPUT_MAX + 1];
        size_t n = 0;
        int pluses = (int)(s_random(&seed) % 4); /* 0 or 1 mostly, sometimes 2 */
        for (const char *d = digits;; d++) {
            while (s_random(&seed) % 4 == 0 && n < 40)
                input[n++] = separators[s_random(&seed) % (sizeof(separators) - 1)];
            if (pluses > 0 && (d == digits || pluses > 1) && s_random(&seed) % 2 == 0 && n < 40) {
                input[n++] = '+';
                pluses--;
            }
            if (*d == '\0')
                break;
            input[n++] = *d;
        }
        input[n] = '\0';
        const char *region = regions[s_random(&seed) % (sizeof(regions) / sizeof(regions[0]))];

        char ours[PHONE_E164_SIZE], theirs[PHONE_E164_SIZE];
        phone_error_t error;
        int rc = phone_normalize(input, region, ours, sizeof(ours), &error);
        phone_error_t want = s_library_answer(input, region, theirs);
        if (error != want || (rc == 0 && strcmp(ours, theirs) != 0))
            fail_msg("'%s' (%s): %s %s, untouched %s %s", input, region ? region : "no region", phone_error_text(error),
                     rc == 0 ? ours : "", phone_error_text(want), want == PHONE_OK ? theirs : "");
    }
}

static void s_assert_region(const char *e164, const char *want)
{
    char region[3] = "";
    if (phone_region(e164, region) != 0)
        fail_msg("%s: no region, wanted %s", e164, want);
    assert_string_equal(region, want);
}

/* The NANP fast path (phone/gen_nanp.py's proved table) against libphonenumber itself, on random
 * ten-digit national numbers in the shapes it takes, and in shapes it must leave to the library. */
static void test_nanp_fast_path_agrees_with_libphonenumber(void **state)
{
    assert_true(phone_nanp_range_count > 0); /* the proof ran and proved something */
    srand(20260311);
    static const char *const shapes[][2] = {{"%s", "US"},     {"1%s", "US"}, {"+1%s", "US"},           {"+1%s", NULL},
                                            {"+1%s", "GB"},   {"%s", "CA"},  {"(%.3s) %.3s-%s", "US"}, {"1%s", "GB"},
                                            {"011 1%s", "US"}};
    /* Sized for the valgrind run, where each library call costs about a millisecond. */
    int valid = 0;
    for (int i = 0; i < 1500; i++) {
        char nsn[11], input[40], ours[PHONE_E164_SIZE] = "", theirs[PHONE_E164_SIZE] = "";
        /* Mostly 2-9 first, the only ones the table holds; some 0 and 1 to see them passed on. */
        nsn[0] = (char)('0' + (i % 10 == 0 ? rand() % 2 : 2 + rand() % 8));
        for (int d = 1; d < 10; d++)
            nsn[d] = (char)('0' + rand() % 10);
        nsn[10] = '\0';
        for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
            if (k == 6)
                snprintf(input, sizeof(input), shapes[k][0], nsn, nsn + 3, nsn + 6);
            else
                snprintf(input, sizeof(input), shapes[k][0], nsn);
            phone_error_t error = PHONE_OK;
            phone_normalize(input, shapes[k][1], ours, sizeof(ours), &error);
            phone_error_t want = s_library_answer(input, shapes[k][1], theirs);
            if (error != want || (want == PHONE_OK && strcmp(ours, theirs) != 0))
                fail_msg("'%s' (%s): %d %s, libphonenumber %d %s", input, shapes[k][1] ? shapes[k][1] : "no region", error, ours,
                         want, theirs);
            valid += k == 0 && error == PHONE_OK;
        }
    }
    assert_true(valid > 375); /* the random numbers did reach valid prefixes */
}

static void test_regions(void **state)
{
    s_assert_region("+12125550123", "US");
    s_assert_region("+442079460958", "GB");
    s_assert_region("+14165550123", "CA");
    s_assert_region("+33142685300", "FR");
    char region[3];
    assert_int_equal(phone_region("+80012345678", region), -1); /* valid, but of no region */
    assert_int_equal(phone_region("+15555550123", region), -1); /* no NANP region has area code 555 */
    assert_int_equal(phone_region("2125550123", region), -1);   /* not E.164 */
    assert_int_equal(phone_region("not a number", region), -1);
}

static void s_assert_zone(const char *e164, const char *want)
{
    const char *zones[PHONE_ZONES_MAX];
    int n = phone_time_zones(e164, zones, PHONE_ZONES_MAX);
    if (n != 1 || strcmp(zones[0], want) != 0)
        fail_msg("%s: %d zones, first %s; wanted only %s", e164, n, n > 0 ? zones[0] : "-", want);
}

static bool s_has_zone(const char **zones, int n, const char *zone)
{
    for (int i = 0; i < n; i++)
        if (strcmp(zones[i], zone) == 0)
            return true;
    return false;
}

static void test_time_zones_by_longest_prefix(void **state)
{
    s_assert_zone("+12125550123", "America/New_York");
    s_assert_zone("+14155550100", "America/Los_Angeles");
    s_assert_zone("+18085550100", "Pacific/Honolulu");
    s_assert_zone("+13125550199", "America/Chicago");
    s_assert_zone("+442079460958", "Europe/London"); /* "442" beats "44", which has four zones */

    /* A prefix in several zones gives all of them; calling hours must hold in each. */
    const char *zones[PHONE_ZONES_MAX];
    int n = phone_time_zones("+19075550100", zones, PHONE_ZONES_MAX); /* Alaska */
    assert_int_equal(n, 2);
    assert_true(s_has_zone(zones, n, "America/Anchorage"));
    assert_true(s_has_zone(zones, n, "America/Adak"));
    n = phone_time_zones("+447400123456", zones, PHONE_ZONES_MAX); /* UK mobiles: London and the islands */
    assert_true(n > 1);
    assert_true(s_has_zone(zones, n, "Europe/London"));
    /* An area code without a prefix of its own gets every zone of the numbering plan. */
    n = phone_time_zones("+12005550100", zones, PHONE_ZONES_MAX);
    assert_true(n >= 30);
    assert_true(s_has_zone(zones, n, "Pacific/Honolulu"));
    assert_true(s_has_zone(zones, n, "America/New_York"));

    /* max bounds what is stored. */
    assert_int_equal(phone_time_zones("+19075550100", zones, 1), 1);
    assert_int_equal(phone_time_zones("+19075550100", zones, 0), 0);

    /* Unknown or malformed input has no zone rather than a guess. */
    assert_int_equal(phone_time_zones("+999", zones, PHONE_ZONES_MAX), 0);
    assert_int_equal(phone_time_zones("12125550123", zones, PHONE_ZONES_MAX), 0);
    assert_int_equal(phone_time_zones("+", zones, PHONE_ZONES_MAX), 0);
    assert_int_equal(phone_time_zones("+1 212 555 0123", zones, PHONE_ZONES_MAX), 0);
    assert_int_equal(phone_time_zones("+121255501230000000000", zones, PHONE_ZONES_MAX), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_us_notations_normalise_to_e164),
        cmocka_unit_test(test_gb_and_other_notations_normalise_to_e164),
        cmocka_unit_test(test_what_is_not_a_valid_number_is_refused_with_its_reason),
        cmocka_unit_test(test_input_length_is_bounded),
        cmocka_unit_test(test_small_buffers_are_refused_not_overrun),
        cmocka_unit_test(test_separators_never_change_the_answer),
        cmocka_unit_test(test_nanp_fast_path_agrees_with_libphonenumber),
        cmocka_unit_test(test_regions),
        cmocka_unit_test(test_time_zones_by_longest_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
