/*
 * The importer's key sets (actors/importer/keyset.h): membership and values against a plain
 * reference over a million keys with the shapes imports give them (phone numbers sharing long
 * prefixes, hashes), growth shard by shard, and the memory bound the importer's limits rest on.
 */
#include "actors/importer/keyset.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#define PHONES 1000000

/* North American numbers in a few area codes, as lists have them: keys differing only in their
 * last digits, which a weak slot function would pile into a few neighbourhoods. */
static uint64_t s_phone(uint64_t i)
{
    static const uint64_t areas[] = {1212, 1415, 1312, 1617};
    return areas[i % 4] * 10000000ULL + 2000000ULL + i / 4;
}

static void test_values_follow_their_keys(void **state)
{
    (void)state;
    keyset_t *set = keyset_new(KEYSET_WITH_VALUES);
    assert_non_null(set);
    for (uint64_t i = 0; i < PHONES; i++)
        assert_int_equal(keyset_put(set, s_phone(i), (int64_t)i + 1), 0);
    assert_int_equal(keyset_count(set), PHONES);
    for (uint64_t i = 0; i < PHONES; i++) {
        int64_t value = 0;
        assert_true(keyset_has(set, s_phone(i), &value));
        assert_int_equal(value, (int64_t)i + 1);
    }
    /* neighbours of every key that were never added */
    for (uint64_t i = PHONES; i < PHONES + 100000; i++)
        assert_false(keyset_has(set, s_phone(i), NULL));
    /* replacing a value neither adds a key nor loses one */
    assert_int_equal(keyset_put(set, s_phone(7), -8), 0);
    int64_t value = 0;
    assert_true(keyset_has(set, s_phone(7), &value));
    assert_int_equal(value, -8);
    assert_int_equal(keyset_count(set), PHONES);
    /* 16 bytes a key and at most half as much again, so a campaign at the importer's limit stays
     * bounded (import.h) */
    assert_true(keyset_bytes(set) <= (size_t)PHONES * 16 * 3 / 2);
    assert_true(keyset_bytes(set) >= (size_t)PHONES * 16);
    keyset_destroy(&set);
    assert_null(set);
    keyset_destroy(&set);
}

static void test_plain_set_of_hashes(void **state)
{
    (void)state;
    keyset_t *set = keyset_new(KEYSET_EXACT);
    assert_non_null(set);
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        assert_int_equal(keyset_put(set, x, 0), 0);
        assert_int_equal(keyset_put(set, x, 0), 0); /* a second put of the same key changes nothing */
    }
    assert_int_equal(keyset_count(set), 200000);
    assert_true(keyset_bytes(set) <= (size_t)200000 * 8 * 3 / 2);
    x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t untouched = 5;
        assert_true(keyset_has(set, x, &untouched));
        assert_int_equal(untouched, 5); /* a plain set has no value to give */
    }
    keyset_destroy(&set);
}

/* Fingerprints: 4 bytes a key; what was added is always found, and what was not is almost never
 * "found" (a false hit costs the importer a slower path, never a wrong answer). */
static void test_fingerprints(void **state)
{
    (void)state;
    keyset_t *set = keyset_new(KEYSET_FINGERPRINTS);
    assert_non_null(set);
    for (uint64_t i = 0; i < PHONES; i++)
        assert_int_equal(keyset_put(set, s_phone(i), 0), 0);
    assert_true(keyset_count(set) > PHONES - 1000); /* equal fingerprints count once */
    for (uint64_t i = 0; i < PHONES; i++)
        assert_true(keyset_has(set, s_phone(i), NULL));
    int false_hits = 0;
    for (uint64_t i = PHONES; i < 2 * PHONES; i++)
        false_hits += keyset_has(set, s_phone(i), NULL);
    /* each lookup meets its shard's PHONES / 64 fingerprints: about PHONES * PHONES / 64 / 2^32, 4 */
    assert_true(false_hits < 40);
    assert_true(keyset_bytes(set) <= (size_t)PHONES * 4 * 3 / 2);
    keyset_destroy(&set);
}

static void test_zero_is_not_a_key(void **state)
{
    (void)state;
    keyset_t *set = keyset_new(KEYSET_WITH_VALUES);
    assert_non_null(set);
    assert_false(keyset_has(set, 0, NULL));
    assert_int_equal(keyset_put(set, 0, 1), -1);
    assert_int_equal(keyset_count(set), 0);
    assert_false(keyset_has(set, 0, NULL));
    assert_false(keyset_has(set, 12125550142ULL, NULL));
    assert_int_equal(keyset_bytes(set), 0);
    keyset_destroy(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_follow_their_keys),
        cmocka_unit_test(test_plain_set_of_hashes),
        cmocka_unit_test(test_fingerprints),
        cmocka_unit_test(test_zero_is_not_a_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
