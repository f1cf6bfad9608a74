/*
 * http_tls_ensure_cert: makes a usable self-signed certificate (names, validity, key match) in a
 * directory that does not exist yet, keeps the key private, leaves an existing pair alone and
 * replaces a half pair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/http.h"
#include "tests/support.h"

typedef struct {
    char *dir;
    char cert[256];
    char key[256];
} fixture_t;

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->dir = support_tmpdir("impact-tls");
    snprintf(f->cert, sizeof(f->cert), "%s/a/b/cert.pem", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/a/keys/key.pem", f->dir);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    support_rmtree(&f->dir);
    free(f);
    return 0;
}

static X509 *s_load_cert(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    X509 *x509 = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x509);
    return x509;
}

static EVP_PKEY *s_load_key(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    EVP_PKEY *pkey = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(pkey);
    return pkey;
}

static void test_makes_a_usable_certificate(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    assert_int_equal(http_tls_ensure_cert(f->cert, f->key, err, sizeof(err)), 0);

    struct stat st;
    assert_int_equal(stat(f->key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    X509 *x509 = s_load_cert(f->cert);
    EVP_PKEY *pkey = s_load_key(f->key);
    assert_int_equal(X509_check_private_key(x509, pkey), 1);
    assert_int_equal(X509_verify(x509, pkey), 1);

    char cn[64] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(x509), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, "localhost");
    assert_int_equal(X509_check_host(x509, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(x509, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x509, "::1", 0), 1);
    assert_int_equal(X509_check_host(x509, "example.com", 0, 0, NULL), 0);

    /* Valid from about now for a year. */
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x509), X509_get0_notAfter(x509)), 1);
    assert_int_equal(days, 365);
    assert_true(X509_cmp_current_time(X509_get0_notBefore(x509)) <= 0);

    X509_free(x509);
    EVP_PKEY_free(pkey);
}

static void test_keeps_an_existing_pair(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    assert_int_equal(http_tls_ensure_cert(f->cert, f->key, err, sizeof(err)), 0);
    X509 *before = s_load_cert(f->cert);
    assert_int_equal(http_tls_ensure_cert(f->cert, f->key, err, sizeof(err)), 0);
    X509 *after = s_load_cert(f->cert);
    assert_int_equal(X509_cmp(before, after), 0);
    X509_free(before);
    X509_free(after);
}

static void test_replaces_a_half_pair(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    assert_int_equal(http_tls_ensure_cert(f->cert, f->key, err, sizeof(err)), 0);
    X509 *before = s_load_cert(f->cert);
    assert_int_equal(unlink(f->key), 0);
    assert_int_equal(http_tls_ensure_cert(f->cert, f->key, err, sizeof(err)), 0);
    X509 *after = s_load_cert(f->cert);
    EVP_PKEY *pkey = s_load_key(f->key);
    assert_int_not_equal(X509_cmp(before, after), 0);
    assert_int_equal(X509_check_private_key(after, pkey), 1);
    X509_free(before);
    X509_free(after);
    EVP_PKEY_free(pkey);
}

static void test_reports_an_unwritable_place(void **state)
{
    char err[256] = "";
    assert_int_equal(http_tls_ensure_cert("/proc/impact/cert.pem", "/proc/impact/key.pem", err, sizeof(err)), -1);
    assert_true(strlen(err) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_makes_a_usable_certificate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_keeps_an_existing_pair, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_replaces_a_half_pair, s_setup, s_teardown),
        cmocka_unit_test(test_reports_an_unwritable_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
