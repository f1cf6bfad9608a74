/*
 * For end-to-end tests that watch campaigns dial: impactd started with a short scenario run
 * fast (its dialers' clock sped up), a connection to its database, SQL polled until the
 * dialers have done something, and numbers moved into calling hours whatever the time of day.
 */
#ifndef IMPACT_TESTS_DIALING_H
#define IMPACT_TESTS_DIALING_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "tests/server.h"

/* Five simulated callers with short calls and wrap-ups, so many attempts fit in a few seconds at 20x. */
#define TEST_SCENARIO_SHORT_CALLS "agents = 5\ntalk_mean = 10\nwrap_mean = 2\nring_h_mean = 5\nring_m_mean = 8\nring_timeout = 12\n"

typedef struct {
    test_server_t *server;
    PGconn *db;
    char *dir; /* holds the scenario file */
} test_dialing_t;

/**
 * Writes `scenario` (scenario-file text) to a temporary file, starts impactd with it at 20x
 * speed, no rate limit and, when allow_private, customer URLs on this machine allowed, and
 * connects to its database.
 */
void test_dialing_start(test_dialing_t *t, const char *scenario, bool allow_private);
void test_dialing_stop(test_dialing_t *t);

/** The single integer `sql` yields; fails the test on an error. */
int64_t test_db_count(PGconn *db, const char *sql);

/** Runs `sql`; fails the test on an error. */
void test_db_exec(PGconn *db, const char *sql);

/**
 * Polls `sql` every 100 ms until it yields at least `want` (or exactly `want`) and returns it;
 * after `seconds` the server's log is printed and the test fails. The bound only turns a hang
 * into a failure: nothing asserts how fast the server is.
 */
int64_t test_db_wait_at_least(test_dialing_t *t, const char *sql, int64_t want, int seconds);
void test_db_wait_equal(test_dialing_t *t, const char *sql, int64_t want, int seconds);

/** The process `name` ("fanout", "dialer:42") in /v1/health: *pid (0 when there is none), its
 *  restarts and state. */
void test_process(test_dialing_t *t, const char *name, int *pid, int *restarts, char *state, size_t state_size);

/** Waits until `name` runs with a pid other than `not_pid` (0: any) and returns its pid. */
int test_wait_process(test_dialing_t *t, const char *name, int not_pid);

/** A campaign made through the API, with a caller id; returns its id. */
int64_t test_campaign_create(test_dialing_t *t, const char *name, const char *dialer_type);

/** POSTs the campaign's action ("start", "pause", "stop"), which must answer 200. */
void test_campaign_action(test_dialing_t *t, int64_t campaign, const char *action);

/** Uploads and imports `count` numbers (+1212555xxxx from 1000 + first, first + count <= 8999)
 *  into the campaign through the API, and waits until the import completed. */
void test_campaign_import(test_dialing_t *t, int64_t campaign, int first, int count);

/**
 * Calling hours are judged in each number's zone on the real clock: gives the campaign's
 * numbers the fixed-offset zone where it is now about two in the afternoon.
 */
void test_move_into_calling_hours(PGconn *db, int64_t campaign);

#endif
