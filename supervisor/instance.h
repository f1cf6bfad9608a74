/*
 * instance_t: one supervisor per data directory, and cleanup after one that died.
 *
 * The supervisor holds an exclusive flock on DATA_DIR/impactd.lock for its whole life and writes
 * into it what it creates outside the data directory (its run directory and shared-memory
 * object). The kernel drops the lock when the process dies, however it dies, so a successor
 * that gets the lock and still finds a record knows its predecessor never cleaned up and removes
 * those leftovers. The file itself stays (removing a lock file while others may open it is racy).
 */
#ifndef IMPACT_SUPERVISOR_INSTANCE_H
#define IMPACT_SUPERVISOR_INSTANCE_H

#include <stdbool.h>
#include <stddef.h>

#define INSTANCE_LOCK_FILE "impactd.lock"

typedef struct instance_t instance_t;

/**
 * Takes the lock of `data_dir`. NULL with err filled on failure; `*busy` tells whether the reason
 * is another live supervisor holding it (err then names its pid).
 */
instance_t *instance_lock(const char *data_dir, bool *busy, char *err, size_t errlen);

/**
 * Removes the run directory and shared-memory object a dead predecessor recorded, then records
 * our pid in their place (what instance_lock reports to whoever tries next). 0 or -1.
 */
int instance_claim(instance_t *self);

/** Records what we create outside the data directory. `own_run_dir`: we made the run dir and may remove it. 0 or -1. */
int instance_record(instance_t *self, const char *run_dir, bool own_run_dir, const char *shm_name);

/** Clears the record (a clean exit leaves nothing to clean) and releases the lock. Idempotent. */
void instance_destroy(instance_t **self_p);

#endif
