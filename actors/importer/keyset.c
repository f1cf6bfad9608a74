#include "actors/importer/keyset.h"

#include <stdlib.h>

#define SHARD_BITS   6 /* log2(KEYSET_SHARDS) */
#define SHARD_FIRST  64
#define LOAD_PERCENT 85 /* linear probing: about 4 probes to find a key and 9 to miss at the usual load */

typedef struct {
    void *keys; /* uint64_t keys, or uint32_t fingerprints; 0 marks an empty slot */
    int64_t *values;
    uint32_t cap, count;
} shard_t;

struct keyset_t {
    shard_t shards[KEYSET_SHARDS];
    keyset_kind_t kind;
    size_t count;
};

/* The finalizer of MurmurHash3: a bijection of 64-bit words that spreads phone numbers, which
 * share long prefixes, over shards and slots. */
static uint64_t s_mix(uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    key *= 0xc4ceb9fe1a85ec53ULL;
    key ^= key >> 33;
    return key;
}

/* What a slot holds for `key`: the key itself, or 32 bits of its hash (never 0, which marks an
 * empty slot). The shard comes from the hash's top bits and the fingerprint from the 32 below
 * them, so keys in one shard differ in all 32: a false hit is one lookup in 2^32 / the shard's
 * count, not 2^26 / it. */
static uint64_t s_stored(const keyset_t *self, uint64_t hash, uint64_t key)
{
    if (self->kind != KEYSET_FINGERPRINTS)
        return key;
    uint32_t fingerprint = (uint32_t)(hash >> (64 - SHARD_BITS - 32));
    return fingerprint ? fingerprint : 1;
}

static uint64_t s_at(const keyset_t *self, const shard_t *shard, uint32_t i)
{
    return self->kind == KEYSET_FINGERPRINTS ? ((const uint32_t *)shard->keys)[i] : ((const uint64_t *)shard->keys)[i];
}

/* The slot holding `stored`, or the empty one where it would go. The home slot comes from what
 * the slot holds, so a shard of fingerprints can be rebuilt without the keys. Capacities need
 * not be powers of two (the hash is mapped onto them by multiplication), so a shard grows by a
 * quarter instead of doubling. */
static uint32_t s_find(const keyset_t *self, const shard_t *shard, uint64_t stored)
{
    uint32_t i = (uint32_t)(((s_mix(stored) & 0xffffffffu) * shard->cap) >> 32);
    for (uint64_t at; (at = s_at(self, shard, i)) != 0 && at != stored;)
        i = i + 1 == shard->cap ? 0 : i + 1;
    return i;
}

static void s_put_at(const keyset_t *self, shard_t *shard, uint32_t i, uint64_t stored)
{
    if (self->kind == KEYSET_FINGERPRINTS)
        ((uint32_t *)shard->keys)[i] = (uint32_t)stored;
    else
        ((uint64_t *)shard->keys)[i] = stored;
}

static int s_grow(const keyset_t *self, shard_t *shard, int index)
{
    /* Shards start between SHARD_FIRST and a quarter more, spread by their index, so their
     * growth points are spread over a whole step instead of all falling on the same count. */
    uint64_t cap =
        shard->cap ? (uint64_t)shard->cap + shard->cap / 4 : SHARD_FIRST + SHARD_FIRST / 4 * (uint64_t)index / KEYSET_SHARDS;
    if (cap > UINT32_MAX)
        return -1;
    shard_t grown = {.cap = (uint32_t)cap, .count = shard->count};
    grown.keys = calloc(grown.cap, self->kind == KEYSET_FINGERPRINTS ? sizeof(uint32_t) : sizeof(uint64_t));
    if (grown.keys == NULL || (self->kind == KEYSET_WITH_VALUES && (grown.values = calloc(grown.cap, sizeof(int64_t))) == NULL)) {
        free(grown.keys);
        return -1;
    }
    for (uint32_t i = 0; i < shard->cap; i++) {
        uint64_t stored = s_at(self, shard, i);
        if (stored == 0)
            continue;
        uint32_t j = s_find(self, &grown, stored);
        s_put_at(self, &grown, j, stored);
        if (grown.values)
            grown.values[j] = shard->values[i];
    }
    free(shard->keys);
    free(shard->values);
    *shard = grown;
    return 0;
}

keyset_t *keyset_new(keyset_kind_t kind)
{
    keyset_t *self = calloc(1, sizeof(*self));
    if (self)
        self->kind = kind;
    return self;
}

void keyset_destroy(keyset_t **self_p)
{
    keyset_t *self = *self_p;
    if (self == NULL)
        return;
    for (int s = 0; s < KEYSET_SHARDS; s++) {
        free(self->shards[s].keys);
        free(self->shards[s].values);
    }
    free(self);
    *self_p = NULL;
}

bool keyset_has(const keyset_t *self, uint64_t key, int64_t *value)
{
    uint64_t hash = s_mix(key);
    const shard_t *shard = &self->shards[hash >> (64 - SHARD_BITS)];
    if (key == 0 || shard->count == 0)
        return false;
    uint32_t i = s_find(self, shard, s_stored(self, hash, key));
    if (s_at(self, shard, i) == 0)
        return false;
    if (value && shard->values)
        *value = shard->values[i];
    return true;
}

int keyset_put(keyset_t *self, uint64_t key, int64_t value)
{
    if (key == 0)
        return -1;
    uint64_t hash = s_mix(key);
    int index = (int)(hash >> (64 - SHARD_BITS));
    shard_t *shard = &self->shards[index];
    if ((uint64_t)(shard->count + 1) * 100 > (uint64_t)shard->cap * LOAD_PERCENT && s_grow(self, shard, index) != 0)
        return -1;
    uint64_t stored = s_stored(self, hash, key);
    uint32_t i = s_find(self, shard, stored);
    if (s_at(self, shard, i) == 0) {
        s_put_at(self, shard, i, stored);
        shard->count++;
        self->count++;
    }
    if (shard->values)
        shard->values[i] = value;
    return 0;
}

size_t keyset_count(const keyset_t *self)
{
    return self->count;
}

size_t keyset_bytes(const keyset_t *self)
{
    size_t slot = self->kind == KEYSET_FINGERPRINTS ? 4 : self->kind == KEYSET_WITH_VALUES ? 16 : 8;
    size_t bytes = 0;
    for (int s = 0; s < KEYSET_SHARDS; s++)
        bytes += (size_t)self->shards[s].cap * slot;
    return bytes;
}
