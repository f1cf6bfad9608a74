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

#include "tests/support.h"

/* Runs impactd with `args` (NULL-terminated), stdout captured into out; returns the wait status. */
static int s_impactd(char *out, size_t size, const char *args[])
{
    const char *bin = getenv("IMPACTD_BIN");
    assert_non_null(bin);
    char *argv[16] = {"impactd"};
    for (int i = 0; args[i] && i < 14; i++)
        argv[i + 1] = (char *)args[i];
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(bin, argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < size && (r = read(fds[0], out + n, size - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void s_assert_exit(int status, int code)
{
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), code);
}

static void test_version(void **state)
{
    char out[256];
    s_assert_exit(s_impactd(out, sizeof(out), (const char *[]){"--version", NULL}), 0);
    assert_string_equal(out, "impactd " IMPACT_VERSION "\n");
}

static void test_usage_errors_exit_2(void **state)
{
    char out[256];
    s_assert_exit(s_impactd(out, sizeof(out), (const char *[]){"--no-such-flag", NULL}), 2);
    s_assert_exit(s_impactd(out, sizeof(out), (const char *[]){"--store-workers", "zero", NULL}), 2);
    s_assert_exit(s_impactd(out, sizeof(out), (const char *[]){"frobnicate", NULL}), 2);
    s_assert_exit(s_impactd(out, sizeof(out), (const char *[]){"accounts", "create", NULL}), 2);
    s_assert_exit(s_impactd(out, sizeof(out), (const char *[]){"keys", "create", NULL}), 2);
    s_assert_exit(s_impactd(out, sizeof(out), (const char *[]){"--role", "nope", NULL}), 2);
    s_assert_exit(s_impactd(out, sizeof(out), (const char *[]){"--role", "store", "--index", "99", NULL}), 2);
    s_assert_exit(s_impactd(out, sizeof(out), (const char *[]){"--role", NULL}), 2);
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

    s_assert_exit(s_impactd(out, sizeof(out), (const char *[]){"--data-dir", data_dir, "accounts", "create", "Acme", NULL}), 0);
    s_value(out, "IMPACT_ACCOUNT_ID=", id, sizeof(id));
    s_value(out, "IMPACT_API_KEY=", key1, sizeof(key1));
    s_value(out, "IMPACT_API_AUTH=", auth, sizeof(auth));
    assert_int_equal(strncmp(key1, "ik_", 3), 0);
    assert_int_equal(strncmp(auth, "ia_", 3), 0);

    s_assert_exit(s_impactd(out, sizeof(out),
                            (const char *[]){"--data-dir", data_dir, "keys", "create", "--account", id, "--label", "ci", NULL}),
                  0);
    s_value(out, "IMPACT_API_KEY=", key2, sizeof(key2));
    assert_string_not_equal(key1, key2);

    /* The cluster was started for each command and is stopped again. */
    snprintf(pidfile, sizeof(pidfile), "%s/pg/data/postmaster.pid", data_dir);
    assert_int_equal(access(pidfile, F_OK), -1);

    s_assert_exit(s_impactd(out, sizeof(out), (const char *[]){"--data-dir", data_dir, "keys", "create", "--account", "x", NULL}),
                  2);
    s_assert_exit(s_impactd(out, sizeof(out), (const char *[]){"--data-dir", data_dir, "keys", "create", "--account", "999", NULL}),
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
