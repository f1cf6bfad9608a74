/*
 * A set of non-zero 64-bit keys, each with an optional 64-bit value, sized for a campaign's
 * millions of phones (with their number ids) or custom_id hashes during a list import.
 *
 * Memory is what an import's footprint grows with. The keys live in KEYSET_SHARDS
 * open-addressing shards, each growing on its own by a quarter: a single table doubling at a
 * million keys held the old and the new arrays at once, three times the keys' size, and sat half
 * empty afterwards. Shards start at staggered sizes, so they do not all grow at the same count
 * and the set's size follows its count smoothly, at about 1.3 times the keys' own size (1.18 to
 * 1.47). A set of fingerprints keeps 4 bytes a key instead of 8, for sets where a false "seen
 * before" only costs a slower path.
 */
#ifndef IMPACT_IMPORTER_KEYSET_H
#define IMPACT_IMPORTER_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYSET_SHARDS 64

typedef struct keyset_t keyset_t;

typedef enum {
    KEYSET_EXACT,        /* keys only */
    KEYSET_WITH_VALUES,  /* keys, each with a value */
    KEYSET_FINGERPRINTS, /* 32-bit fingerprints of the keys: keyset_has() may answer true for a key
                            never added, about once in 2^32 / count lookups */
} keyset_kind_t;

/** An empty set. NULL when out of memory. */
keyset_t *keyset_new(keyset_kind_t kind);

void keyset_destroy(keyset_t **self_p);

/** True when `key` is in the set; its value goes to `value` when both exist. */
bool keyset_has(const keyset_t *self, uint64_t key, int64_t *value);

/** Adds `key` or replaces its value. Key 0 is refused. 0, or -1 when out of memory. */
int keyset_put(keyset_t *self, uint64_t key, int64_t value);

/** Keys in the set. */
size_t keyset_count(const keyset_t *self);

/** Bytes the set's tables take (for tests and logs). */
size_t keyset_bytes(const keyset_t *self);

#endif
