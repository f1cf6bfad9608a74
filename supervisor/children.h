/*
 * children_t: the supervisor's table of child processes.
 *
 * Each entry is a program and its arguments (impactd itself with --role, or anything else in the
 * tests). The table forks and execs them, reaps them when told a SIGCHLD arrived, restarts the
 * ones that died with exponential backoff, and stops them all in reverse order of addition.
 * It owns no signal handling and no timer: the caller's loop calls children_reap() after SIGCHLD,
 * children_tick() whenever children_timeout_ms() expires, and children_stop_all() at shutdown.
 *
 * Life of an entry:
 *
 *   STARTING --(alive for running_after_ms)--> RUNNING
 *   STARTING/RUNNING --(exits on its own)--> BACKOFF --(delay expires)--> STARTING
 *   any --(children_stop_all)--> STOPPING --(exits, SIGKILL after stop_timeout_ms)--> STOPPED
 *
 * Entries added with children_spawn (a dialer per running campaign) come and go while the table
 * runs: such an entry starts at once, is restarted like any other when it dies, and is removed
 * when it exits with status 0 (its work is over) or by children_remove. A removed entry's slot
 * is free for the next children_spawn.
 *
 * The backoff delay starts at backoff_initial_ms and doubles with every quick death up to
 * backoff_max_ms; a child that stayed up for backoff_reset_ms starts over at the initial delay.
 *
 * Every state change is reported to the caller's event function with the entry's shm_proc_t
 * record (the supervisor copies it into the shared-memory process table), together with the pid
 * that just died, if any.
 */
#ifndef IMPACT_SUPERVISOR_CHILDREN_H
#define IMPACT_SUPERVISOR_CHILDREN_H

#include <stdint.h>
#include <sys/types.h>

#include "shm/stats.h"

#define CHILDREN_MAX SHM_PROC_SLOTS

typedef struct children_t children_t;

typedef struct {
    int64_t backoff_initial_ms; /* first restart delay */
    int64_t backoff_max_ms;     /* the doubling stops here */
    int64_t backoff_reset_ms;   /* a child that lived this long restarts after backoff_initial_ms */
    int64_t running_after_ms;   /* STARTING becomes RUNNING once the child has lived this long */
    int64_t stop_timeout_ms;    /* SIGTERM, then SIGKILL after this long */
} children_policy_t;

/** 100 ms doubling to 10 s, reset after 30 s up, RUNNING after 1 s, SIGKILL 5 s after SIGTERM. */
extern const children_policy_t children_default_policy;

/**
 * Called on every state change of entry `index`. `died` is the pid of the process that just
 * exited (its resources are the caller's to reclaim), or 0.
 */
typedef void(children_event_fn)(uint32_t index, const shm_proc_t *proc, pid_t died, void *arg);

/** A table with `policy` (copied; NULL for the default). `on_event` may be NULL. */
children_t *children_new(const children_policy_t *policy, children_event_fn *on_event, void *arg);

/** Kills (SIGKILL) and reaps whatever is still running, then frees the table. Idempotent. */
void children_destroy(children_t **self_p);

/**
 * Adds an entry: `role` and `name` as shown in logs and the process table ("store", "store.1"),
 * `path` the program to exec, `argv` its NULL-terminated argument vector (argv[0] included).
 * Everything is copied. Returns the entry's index (also its process-table slot) or -1.
 */
int children_add(children_t *self, const char *role, const char *name, const char *path, char *const argv[]);

/** Starts every entry that has not been started yet, in the order they were added. 0 or -1. */
int children_start_all(children_t *self);

/**
 * Adds an entry and starts it at once (a failed start is retried with backoff). Unlike
 * children_add, the entry ends when its process exits with status 0. Names are unique among
 * entries in use. Returns the entry's index (a free slot is reused), or -1 with errno EEXIST
 * (the name is in use, maybe still being removed), ENOSPC (table full), EINVAL (stopping, or a
 * role or name too long) or ENOMEM.
 */
int children_spawn(children_t *self, const char *role, const char *name, const char *path, char *const argv[]);

/**
 * Removes the entry named `name`: a running process gets SIGTERM (SIGKILL after
 * stop_timeout_ms) and the entry goes once it has exited; an entry with no process goes at once.
 * Its event reports state SHM_PROC_EMPTY. 0, or -1 with errno ENOENT.
 */
int children_remove(children_t *self, const char *name);

/** The index of the entry in use named `name`, or -1. */
int children_find(const children_t *self, const char *name);

/** Collects every exited child without blocking and schedules restarts. Returns how many exited. */
int children_reap(children_t *self);

/** Restarts entries whose backoff expired and promotes STARTING entries to RUNNING. */
void children_tick(children_t *self);

/** Milliseconds until children_tick() has something to do; -1 when nothing is pending. */
int children_timeout_ms(const children_t *self);

/**
 * Stops every entry, highest index first (dynamic entries, added after the fixed ones, go
 * first); consecutive entries of the same role (a pool) are signalled together. Each group gets SIGTERM, then SIGKILL after
 * stop_timeout_ms. Returns when all are reaped; nothing is restarted afterwards.
 */
void children_stop_all(children_t *self);

/** Number of entry slots used so far (indexes 0..count-1; removed entries read as SHM_PROC_EMPTY). */
int children_count(const children_t *self);

/** A copy of entry `index`'s record (pid 0 while not running). 0 or -1 for a bad index. */
int children_get(const children_t *self, int index, shm_proc_t *out);

/** The delay of the restart currently pending for `index` (or the last one scheduled), in ms. */
int64_t children_backoff_ms(const children_t *self, int index);

#endif
