/*
 * The impactd command line, run as a real process (IMPACTD_BIN): --version, usage errors, and
 * accounts/keys created in a fresh data directory whose embedded cluster is started for the
 * command and stopped after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/server.h"
#include "tests/support.h"

static void s_assert_exit(int status, int code)
{
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), code);
}

static void test_version(void **state)
{
    char out[256];
    s_assert_exit(test_impactd_run((const char *const[]){"--version", NULL}, out, sizeof(out)), 0);
    assert_string_equal(out, "impactd " IMPACT_VERSION "\n");
}

static void test_usage_errors_exit_2(void **state)
{
    char out[256];
    s_assert_exit(test_impactd_run((const char *const[]){"--no-such-flag", NULL}, out, sizeof(out)), 2);
    s_assert_exit(test_impactd_run((const char *const[]){"--store-workers", "zero", NULL}, out, sizeof(out)), 2);
    s_assert_exit(test_impactd_run((const char *const[]){"frobnicate", NULL}, out, sizeof(out)), 2);
    s_assert_exit(test_impactd_run((const char *const[]){"accounts", "create", NULL}, out, sizeof(out)), 2);
    s_assert_exit(test_impactd_run((const char *const[]){"keys", "create", NULL}, out, sizeof(out)), 2);
    s_assert_exit(test_impactd_run((const char *const[]){"--role", "nope", NULL}, out, sizeof(out)), 2);
    s_assert_exit(test_impactd_run((const char *const[]){"--role", "store", "--index", "99", NULL}, out, sizeof(out)), 2);
    s_assert_exit(test_impactd_run((const char *const[]){"--role", NULL}, out, sizeof(out)), 2);
    assert_string_equal(out, "");
}

static const char *s_value(const char *out, const char *name, char *buf, size_t size)
{
    const char *line = strstr(out, name);
    assert_non_null(line);
    line += strlen(name);
    size_t n = strcspn(line, "\n");
    assert_true(n < size);
    memcpy(buf, line, n);
    buf[n] = '\0';
    return buf;
}

static void test_accounts_and_keys_with_the_embedded_cluster(void **state)
{
    char *tmp = support_tmpdir("impactd-cli");
    char data_dir[512], out[1024], id[32], key1[64], key2[64], auth[128], pidfile[600];
    snprintf(data_dir, sizeof(data_dir), "%s/data", tmp);

    s_assert_exit(
        test_impactd_run((const char *const[]){"--data-dir", data_dir, "accounts", "create", "Acme", NULL}, out, sizeof(out)), 0);
    s_value(out, "IMPACT_ACCOUNT_ID=", id, sizeof(id));
    s_value(out, "IMPACT_API_KEY=", key1, sizeof(key1));
    s_value(out, "IMPACT_API_AUTH=", auth, sizeof(auth));
    assert_int_equal(strncmp(key1, "ik_", 3), 0);
    assert_int_equal(strncmp(auth, "ia_", 3), 0);

    s_assert_exit(
        test_impactd_run((const char *const[]){"--data-dir", data_dir, "keys", "create", "--account", id, "--label", "ci", NULL},
                         out, sizeof(out)),
        0);
    s_value(out, "IMPACT_API_KEY=", key2, sizeof(key2));
    assert_string_not_equal(key1, key2);

    /* The cluster was started for each command and is stopped again. */
    snprintf(pidfile, sizeof(pidfile), "%s/pg/data/postmaster.pid", data_dir);
    assert_int_equal(access(pidfile, F_OK), -1);

    s_assert_exit(
        test_impactd_run((const char *const[]){"--data-dir", data_dir, "keys", "create", "--account", "x", NULL}, out, sizeof(out)),
        2);
    s_assert_exit(test_impactd_run((const char *const[]){"--data-dir", data_dir, "keys", "create", "--account", "999", NULL}, out,
                                   sizeof(out)),
                  1);
    assert_int_equal(access(pidfile, F_OK), -1);
    support_rmtree(&tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_usage_errors_exit_2),
        cmocka_unit_test(test_accounts_and_keys_with_the_embedded_cluster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
