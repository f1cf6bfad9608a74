/*
 * pgembed_t: a private PostgreSQL cluster in DATA_DIR/pg, for running impactd without a database
 * server of its own.
 *
 * The cluster uses the Debian server binaries (/usr/lib/postgresql/<major>/bin, the major the
 * cluster was made with, else the highest installed), trust authentication and a unix socket
 * only (listen_addresses=''), in DATA_DIR/pg itself, or, when that path would not fit in a
 * socket address, in /tmp/impactd-pg-<hash of the data dir>. Nothing else can reach it: the
 * socket directory is private to the cluster's owner (and root).
 *
 * When running as root, initdb and pg_ctl run as the postgres user (initdb refuses root), so the
 * cluster's directories belong to postgres and every parent of DATA_DIR must be traversable by it.
 * Otherwise they run as the current user. Either way the database user is "postgres".
 */
#ifndef IMPACT_SUPERVISOR_PGEMBED_H
#define IMPACT_SUPERVISOR_PGEMBED_H

#include <stdbool.h>
#include <stddef.h>

#define PGEMBED_PORT 5432

typedef struct pgembed_t pgembed_t;

/** Resolves paths and binaries for a cluster under `data_dir` (absolute). NULL with err filled on failure. */
pgembed_t *pgembed_new(const char *data_dir, char *err, size_t errlen);

/** Frees the object; the cluster is left as it is. Idempotent. */
void pgembed_destroy(pgembed_t **self_p);

/**
 * Makes the cluster on first use (initdb), then starts it and waits until it accepts
 * connections. A cluster that is already running with this socket directory and port (left by a
 * supervisor that died) is adopted as it is; one running with other settings is restarted.
 * 0 or -1 with err filled (the server log's path included).
 */
int pgembed_start(pgembed_t *self, char *err, size_t errlen);

/** Stops the cluster (fast shutdown: sessions are cut, nothing is lost) and removes a /tmp socket dir. 0 or -1. */
int pgembed_stop(pgembed_t *self, char *err, size_t errlen);

/** True if the postmaster of this cluster is running. */
bool pgembed_running(pgembed_t *self);

/** The libpq connection string: "host=<socket dir> port=5432 user=postgres dbname=postgres". */
const char *pgembed_url(const pgembed_t *self);

/** The socket directory (DATA_DIR/pg, or the /tmp fallback). */
const char *pgembed_socket_dir(const pgembed_t *self);

#endif
