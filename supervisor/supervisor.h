/*
 * The supervisor: what `impactd` with no --role does.
 *
 * Startup: data directory (locked against a second supervisor, leftovers of a crashed one
 * removed), embedded PostgreSQL unless a database URL was given, migrations, the development
 * account on first start, the TLS certificate, a private run directory for the ipc:// sockets, the
 * shared-memory stats region; then the children broker, store.0..N-1, fanout and http, each
 * `impactd --role ...` re-executed from /proc/self/exe with the resolved configuration in its
 * environment. A ready line goes to stdout once the HTTP port accepts connections.
 *
 * Then it watches: children that die are restarted with backoff, and the shared-memory process
 * table shows each child's state. SIGTERM, SIGINT or SIGHUP stop everything in reverse order
 * (http first, broker last), then PostgreSQL, then the shared memory and run directory go.
 */
#ifndef IMPACT_SUPERVISOR_SUPERVISOR_H
#define IMPACT_SUPERVISOR_SUPERVISOR_H

#include "common/config.h"

/** Runs the supervisor until a stop signal. Returns the process exit code (0 after a clean stop). */
int supervisor_run(impact_config_t *config);

/**
 * Prepares the data directory for a command-line tool and its database: creates the directory,
 * makes config->data_dir absolute, and, when config->database_url is empty, points it at the
 * embedded cluster, starting that cluster unless a running supervisor already has it.
 * Returns a handle for supervisor_database_release(), or NULL with err filled.
 */
typedef struct supervisor_database_t supervisor_database_t;
supervisor_database_t *supervisor_database_acquire(impact_config_t *config, char *err, size_t errlen);

/** Stops what supervisor_database_acquire started and frees the handle. Idempotent. */
void supervisor_database_release(supervisor_database_t **self_p);

#endif
