/*
 * The embedded PostgreSQL cluster in a temporary data directory: first start (initdb), stop,
 * second start of the same cluster, adoption of a cluster left running, and the /tmp socket
 * directory used when the data directory's path is too long for a socket address.
 */
#include <libpq-fe.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/pgembed.h"
#include "tests/support.h"

static void s_assert_query(const char *url)
{
    PGconn *conn = PQconnectdb(url);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    PGresult *res = PQexec(conn, "SELECT 40 + 2");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "42");
    PQclear(res);
    PQfinish(conn);
}

static bool s_exists(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Set by each test so that teardown stops the cluster and removes it even after a failure. */
static char *s_tmp;
static char s_data_dir[512];

static int s_teardown(void **state)
{
    char err[512];
    pgembed_t *pg = s_data_dir[0] ? pgembed_new(s_data_dir, err, sizeof(err)) : NULL;
    if (pg)
        pgembed_stop(pg, err, sizeof(err));
    pgembed_destroy(&pg);
    s_data_dir[0] = '\0';
    support_rmtree(&s_tmp);
    return 0;
}

static void test_start_stop_restart_and_adopt(void **state)
{
    s_tmp = support_tmpdir("impactd-pg");
    char *data_dir = s_data_dir, err[512];
    snprintf(s_data_dir, sizeof(s_data_dir), "%s/data", s_tmp);

    pgembed_t *pg = pgembed_new(data_dir, err, sizeof(err));
    assert_non_null(pg);
    assert_false(pgembed_running(pg));
    if (pgembed_start(pg, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_true(pgembed_running(pg));
    assert_true(s_exists(data_dir, "pg/data/PG_VERSION"));
    assert_false(s_exists(data_dir, "pg/data.initdb"));
    char socket_dir[600];
    snprintf(socket_dir, sizeof(socket_dir), "%s/pg", data_dir);
    assert_string_equal(pgembed_socket_dir(pg), socket_dir);
    assert_true(s_exists(socket_dir, ".s.PGSQL.5432"));
    assert_non_null(strstr(pgembed_url(pg), "user=postgres"));
    s_assert_query(pgembed_url(pg));

    assert_int_equal(pgembed_stop(pg, err, sizeof(err)), 0);
    assert_false(pgembed_running(pg));
    assert_false(s_exists(socket_dir, ".s.PGSQL.5432"));

    /* The second start reuses the cluster made by the first. */
    if (pgembed_start(pg, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    s_assert_query(pgembed_url(pg));
    pgembed_destroy(&pg);
    assert_null(pg);

    /* A successor finds the cluster running (its owner died) and adopts it. */
    pgembed_t *successor = pgembed_new(data_dir, err, sizeof(err));
    assert_non_null(successor);
    assert_true(pgembed_running(successor));
    if (pgembed_start(successor, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    s_assert_query(pgembed_url(successor));
    assert_int_equal(pgembed_stop(successor, err, sizeof(err)), 0);
    assert_false(pgembed_running(successor));
    assert_int_equal(pgembed_stop(successor, err, sizeof(err)), 0);
    pgembed_destroy(&successor);
    pgembed_destroy(&successor);
}

static void test_long_data_dir_uses_a_short_socket_dir(void **state)
{
    s_tmp = support_tmpdir("impactd-pg");
    char *data_dir = s_data_dir, err[512];
    snprintf(s_data_dir, sizeof(s_data_dir), "%s/%0100d", s_tmp, 0);
    pgembed_t *pg = pgembed_new(data_dir, err, sizeof(err));
    assert_non_null(pg);
    const char *socket_dir = pgembed_socket_dir(pg);
    assert_int_equal(strncmp(socket_dir, "/tmp/impactd-pg-", 16), 0);
    if (pgembed_start(pg, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_true(s_exists(socket_dir, ".s.PGSQL.5432"));
    s_assert_query(pgembed_url(pg));
    assert_int_equal(pgembed_stop(pg, err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(lstat(socket_dir, &st), -1);
    pgembed_destroy(&pg);
}

static void test_rejects_relative_and_quoted_paths(void **state)
{
    char err[512];
    assert_null(pgembed_new("relative/data", err, sizeof(err)));
    assert_non_null(strstr(err, "absolute"));
    assert_null(pgembed_new("/tmp/it's", err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_start_stop_restart_and_adopt, s_teardown),
        cmocka_unit_test_teardown(test_long_data_dir_uses_a_short_socket_dir, s_teardown),
        cmocka_unit_test(test_rejects_relative_and_quoted_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
