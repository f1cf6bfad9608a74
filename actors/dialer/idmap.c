#include "actors/dialer/idmap.h"

#include <stdlib.h>

typedef struct {
    uint64_t id; /* 0 = empty */
    void *value;
} entry_t;

struct idmap_t {
    entry_t *entries;
    size_t mask; /* capacity - 1; capacity is a power of two */
    size_t count;
};

static size_t home(const idmap_t *self, uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id & self->mask;
}

idmap_t *idmap_new(void)
{
    idmap_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->entries = calloc(16, sizeof(entry_t));
    if (!self->entries) {
        free(self);
        return NULL;
    }
    self->mask = 15;
    return self;
}

void idmap_destroy(idmap_t **self_p)
{
    idmap_t *self = *self_p;
    if (!self)
        return;
    free(self->entries);
    free(self);
    *self_p = NULL;
}

static entry_t *find(const idmap_t *self, uint64_t id)
{
    for (size_t i = home(self, id);; i = (i + 1) & self->mask) {
        entry_t *entry = &self->entries[i];
        if (entry->id == id)
            return entry;
        if (entry->id == 0)
            return NULL;
    }
}

static int grow(idmap_t *self)
{
    size_t capacity = (self->mask + 1) * 2;
    entry_t *old = self->entries, *fresh = calloc(capacity, sizeof(entry_t));
    if (!fresh)
        return -1;
    size_t old_capacity = self->mask + 1;
    self->entries = fresh;
    self->mask = capacity - 1;
    for (size_t i = 0; i < old_capacity; i++) {
        if (!old[i].id)
            continue;
        size_t j = home(self, old[i].id);
        while (fresh[j].id)
            j = (j + 1) & self->mask;
        fresh[j] = old[i];
    }
    free(old);
    return 0;
}

int idmap_put(idmap_t *self, uint64_t id, void *value)
{
    if (id == 0 || find(self, id))
        return -1;
    if ((self->count + 1) * 4 > (self->mask + 1) * 3 && grow(self) < 0)
        return -1;
    size_t i = home(self, id);
    while (self->entries[i].id)
        i = (i + 1) & self->mask;
    self->entries[i] = (entry_t){id, value};
    self->count++;
    return 0;
}

void *idmap_get(const idmap_t *self, uint64_t id)
{
    entry_t *entry = id ? find(self, id) : NULL;
    return entry ? entry->value : NULL;
}

void *idmap_remove(idmap_t *self, uint64_t id)
{
    entry_t *entry = id ? find(self, id) : NULL;
    if (!entry)
        return NULL;
    void *value = entry->value;
    /* Backward-shift: pull later members of the probe run into the hole when their home slot
     * does not lie cyclically between the hole and their current slot. */
    size_t hole = (size_t)(entry - self->entries);
    for (size_t i = (hole + 1) & self->mask; self->entries[i].id; i = (i + 1) & self->mask) {
        size_t want = home(self, self->entries[i].id);
        if (((i - want) & self->mask) >= ((i - hole) & self->mask)) {
            self->entries[hole] = self->entries[i];
            hole = i;
        }
    }
    self->entries[hole] = (entry_t){0, NULL};
    self->count--;
    return value;
}

size_t idmap_size(const idmap_t *self)
{
    return self->count;
}

void idmap_each(const idmap_t *self, void (*fn)(void *ctx, uint64_t id, void *value), void *ctx)
{
    for (size_t i = 0; i <= self->mask; i++)
        if (self->entries[i].id)
            fn(ctx, self->entries[i].id, self->entries[i].value);
}
