/*
 * Shared test plumbing: fresh PostgreSQL databases on the cluster scripts/test.sh starts
 * (IMPACT_TEST_DATABASE_URL), temporary directories, and free TCP ports.
 */
#ifndef IMPACT_TESTS_SUPPORT_H
#define IMPACT_TESTS_SUPPORT_H

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/wire.h"

/**
 * Creates an empty database named <prefix>_<pid>_<n> and returns a malloc'd conninfo string for
 * it. Aborts the test run with a clear message when IMPACT_TEST_DATABASE_URL is not set.
 */
char *support_db_create(const char *prefix);

/** Drops a database made by support_db_create and frees the string. */
void support_db_drop(char **conninfo_p);

/** mkdtemp under /tmp, readable by the postgres user. Returns a malloc'd path. */
char *support_tmpdir(const char *prefix);

/** Removes a directory tree and frees the string. */
void support_rmtree(char **path_p);

/** A TCP port on 127.0.0.1 that was free a moment ago. */
int support_free_port(void);

/**
 * Receives one reply message from the broker that must hold exactly one reply (see
 * brk_client_recv). 0 with the body handed over, -1 otherwise.
 */
int support_recv_one(zsock_t *client, uint64_t *corr, brk_status_t *status, zframe_t **body);

#endif
