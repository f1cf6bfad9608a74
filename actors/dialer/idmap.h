/*
 * A map from nonzero 64-bit ids to pointers: calls by call id, callers by caller id.
 *
 * Open addressing with linear probing and backward-shift deletion (no tombstones), so a map
 * that sees millions of inserts and removals over a shift never degrades. The map does not own
 * the values.
 */
#ifndef IMPACT_DIALER_IDMAP_H
#define IMPACT_DIALER_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct idmap_t idmap_t;

idmap_t *idmap_new(void);
void idmap_destroy(idmap_t **self_p);

/* Returns 0, or -1 when id is 0, already present, or memory runs out. */
int idmap_put(idmap_t *self, uint64_t id, void *value);
void *idmap_get(const idmap_t *self, uint64_t id);
/* Returns the removed value, or NULL. */
void *idmap_remove(idmap_t *self, uint64_t id);
size_t idmap_size(const idmap_t *self);

/* Visits every entry in an unspecified order; the callback must not change the map. */
void idmap_each(const idmap_t *self, void (*fn)(void *ctx, uint64_t id, void *value), void *ctx);

#endif
