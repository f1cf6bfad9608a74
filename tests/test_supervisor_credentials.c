/*
 * Development credentials: the env file (mode, contents, atomic replacement) and the first-start
 * bootstrap against a fresh database of the test cluster (scripts/test.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "actors/store/db.h"
#include "supervisor/credentials.h"
#include "tests/support.h"

static char *s_slurp(const char *path)
{
    static char buf[1024];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_file_is_private_and_sourceable(void **state)
{
    char *dir = support_tmpdir("impactd-creds");
    char path[512], key[DB_API_KEY_LEN + 1];
    snprintf(path, sizeof(path), "%s/dev-credentials.env", dir);
    credentials_t creds = {.account_id = 7, .api_key = "ik_0123456789abcdef01234567", .api_auth = "ia_secret"};
    char err[256];
    assert_int_equal(credentials_write_file(path, &creds, err, sizeof(err)), 0);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_string_equal(s_slurp(path), "IMPACT_API_KEY=ik_0123456789abcdef01234567\nIMPACT_API_AUTH=ia_secret\n");
    assert_int_equal(credentials_read_key(path, key, sizeof(key)), 0);
    assert_string_equal(key, "ik_0123456789abcdef01234567");

    /* Rewriting replaces the file whole and leaves no temporary behind. */
    snprintf(creds.api_auth, sizeof(creds.api_auth), "ia_other");
    assert_int_equal(credentials_write_file(path, &creds, err, sizeof(err)), 0);
    assert_non_null(strstr(s_slurp(path), "IMPACT_API_AUTH=ia_other\n"));
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);

    snprintf(tmp, sizeof(tmp), "%s/missing.env", dir);
    assert_int_equal(credentials_read_key(tmp, key, sizeof(key)), -1);
    support_rmtree(&dir);
}

static int64_t s_count(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    int64_t n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

/* Runs the bootstrap with its output captured; returns that output. */
static char *s_bootstrap(PGconn *conn, const char *dir)
{
    static char out[1024];
    char err[512] = "";
    FILE *f = tmpfile();
    assert_non_null(f);
    if (credentials_bootstrap(conn, dir, f, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    rewind(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

static void test_bootstrap_creates_the_development_account_once(void **state)
{
    char *url = support_db_create("sup_creds");
    char *dir = support_tmpdir("impactd-creds");
    char err[512], path[512];
    PGconn *conn = db_connect(url, err, sizeof(err));
    assert_non_null(conn);
    assert_true(db_migrate(conn, err, sizeof(err)) >= 0);
    snprintf(path, sizeof(path), "%s/%s", dir, CREDENTIALS_DEV_FILE);

    char *out = s_bootstrap(conn, dir);
    assert_int_equal(s_count(conn, "SELECT count(*) FROM accounts WHERE name = 'Development'"), 1);
    assert_int_equal(s_count(conn, "SELECT count(*) FROM api_keys"), 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* What was printed is what the file holds. */
    const char *file = s_slurp(path);
    char key_line[64];
    assert_int_equal(sscanf(file, "%63s", key_line), 1);
    assert_non_null(strstr(out, key_line));
    assert_non_null(strstr(out, "IMPACT_API_AUTH=ia_"));
    assert_non_null(strstr(file, "IMPACT_API_AUTH=ia_"));

    /* A later start creates nothing and shows the key but never the secret. */
    char before[256];
    snprintf(before, sizeof(before), "%s", file);
    out = s_bootstrap(conn, dir);
    assert_int_equal(s_count(conn, "SELECT count(*) FROM accounts"), 1);
    assert_string_equal(s_slurp(path), before);
    assert_non_null(strstr(out, key_line + strlen("IMPACT_API_KEY=")));
    assert_null(strstr(out, "ia_"));

    PQfinish(conn);
    support_rmtree(&dir);
    support_db_drop(&url);
}

static void test_accounts_and_keys(void **state)
{
    char *url = support_db_create("sup_keys");
    char err[512];
    PGconn *conn = db_connect(url, err, sizeof(err));
    assert_non_null(conn);
    assert_true(db_migrate(conn, err, sizeof(err)) >= 0);
    credentials_t a, b;
    assert_int_equal(credentials_create_account(conn, "Acme", "ci", &a, err, sizeof(err)), 0);
    assert_int_equal(credentials_create_account(conn, "Beta", NULL, &b, err, sizeof(err)), 0);
    assert_true(a.account_id > 0);
    assert_int_not_equal(a.account_id, b.account_id);
    assert_int_equal(strlen(a.api_key), DB_API_KEY_LEN);
    assert_int_equal(strlen(a.api_auth), DB_API_AUTH_LEN);
    assert_string_not_equal(a.api_key, b.api_key);
    assert_int_equal(s_count(conn, "SELECT count(*) FROM api_keys WHERE label = 'ci'"), 1);

    FILE *f = tmpfile();
    credentials_print(f, &a);
    rewind(f);
    char line[128];
    assert_non_null(fgets(line, sizeof(line), f));
    assert_int_equal(strncmp(line, "IMPACT_ACCOUNT_ID=", 18), 0);
    assert_non_null(fgets(line, sizeof(line), f));
    assert_int_equal(strncmp(line, "IMPACT_API_KEY=ik_", 18), 0);
    assert_non_null(fgets(line, sizeof(line), f));
    assert_int_equal(strncmp(line, "IMPACT_API_AUTH=ia_", 19), 0);
    fclose(f);

    PQfinish(conn);
    support_db_drop(&url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_is_private_and_sourceable),
        cmocka_unit_test(test_bootstrap_creates_the_development_account_once),
        cmocka_unit_test(test_accounts_and_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
