/*
 * TLS: the server context and the self-signed development certificate.
 *
 * The certificate is made with the OpenSSL 3 API in-process (no openssl(1) on the path needed),
 * for CN=localhost with the names a developer actually types (localhost, 127.0.0.1, ::1). Files
 * are written to a temporary name and renamed into place, so a crash never leaves a half key
 * that the next start would take for a real one; the key is created 0600 from the first byte.
 */
#include "http/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <h2o.h>

#include "http/http.h"

#define HTTP_TLS_VALID_DAYS 365

/* h2 first; http/1.1 listed so HTTP/1.1-only clients get an ALPN answer too. */
static const h2o_iovec_t s_alpn_protocols[] = {{H2O_STRLIT("h2")}, {H2O_STRLIT("http/1.1")}, {NULL, 0}};

static void s_ssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long code = ERR_get_error();
    char reason[256] = "unknown error";
    if (code != 0)
        ERR_error_string_n(code, reason, sizeof(reason));
    snprintf(err, errlen, "%s: %s", what, reason);
    ERR_clear_error();
}

SSL_CTX *http_tls_context_new(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        s_ssl_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    /* HTTP/2 over TLS needs 1.2 or later (RFC 9113 section 9.2). */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        s_ssl_error(err, errlen, cert_path);
        goto Error;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        s_ssl_error(err, errlen, key_path);
        goto Error;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        s_ssl_error(err, errlen, "the key does not match the certificate");
        goto Error;
    }
    h2o_ssl_register_alpn_protocols(ctx, s_alpn_protocols);
    return ctx;

Error:
    SSL_CTX_free(ctx);
    return NULL;
}

/* mkdir -p of the directory holding `path`, new directories 0700. */
static int s_make_parent_dirs(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
        snprintf(err, errlen, "path too long: %s", path);
        return -1;
    }
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
                return -1;
            }
            *p = saved;
            if (saved == '\0')
                return 0;
        }
    }
}

typedef int (*http_pem_writer_t)(FILE *f, void *obj);

static int s_write_key(FILE *f, void *pkey)
{
    return PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
}

static int s_write_cert(FILE *f, void *x509)
{
    return PEM_write_X509(f, x509);
}

/* Writes `path` through a temporary file created with `mode`, then renames it into place. */
static int s_write_file(const char *path, mode_t mode, http_pem_writer_t writer, void *obj, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "path too long: %s", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd == -1) {
        snprintf(err, errlen, "open %s: %s", tmp, strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        snprintf(err, errlen, "fdopen %s: %s", tmp, strerror(errno));
        close(fd);
        goto Error;
    }
    if (writer(f, obj) != 1) {
        s_ssl_error(err, errlen, tmp);
        fclose(f);
        goto Error;
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        snprintf(err, errlen, "write %s: %s", tmp, strerror(errno));
        fclose(f);
        goto Error;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        snprintf(err, errlen, "write %s: %s", path, strerror(errno));
        goto Error;
    }
    return 0;

Error:
    unlink(tmp);
    return -1;
}

static int s_add_ext(X509 *x509, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x509, x509, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(x509, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

static X509 *s_self_signed(EVP_PKEY *pkey, char *err, size_t errlen)
{
    X509 *x509 = X509_new();
    BIGNUM *serial = NULL;
    unsigned char random[16];
    if (x509 == NULL || RAND_bytes(random, sizeof(random)) != 1)
        goto Error;
    random[0] &= 0x7f; /* a positive serial */
    if ((serial = BN_bin2bn(random, sizeof(random), NULL)) == NULL ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x509)) == NULL)
        goto Error;
    X509_NAME *name = X509_get_subject_name(x509);
    if (X509_set_version(x509, X509_VERSION_3) != 1 || X509_gmtime_adj(X509_getm_notBefore(x509), 0) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x509), 60L * 60 * 24 * HTTP_TLS_VALID_DAYS) == NULL ||
        X509_set_pubkey(x509, pkey) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0) != 1 ||
        X509_set_issuer_name(x509, name) != 1)
        goto Error;
    if (s_add_ext(x509, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        s_add_ext(x509, NID_key_usage, "critical,digitalSignature") != 0 || s_add_ext(x509, NID_ext_key_usage, "serverAuth") != 0 ||
        s_add_ext(x509, NID_subject_key_identifier, "hash") != 0 ||
        s_add_ext(x509, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") != 0)
        goto Error;
    if (X509_sign(x509, pkey, EVP_sha256()) <= 0)
        goto Error;
    BN_free(serial);
    return x509;

Error:
    s_ssl_error(err, errlen, "building the certificate");
    BN_free(serial);
    X509_free(x509);
    return NULL;
}

int http_tls_ensure_cert(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    if (access(cert_path, F_OK) == 0 && access(key_path, F_OK) == 0)
        return 0;
    if (s_make_parent_dirs(cert_path, err, errlen) != 0 || s_make_parent_dirs(key_path, err, errlen) != 0)
        return -1;

    int rc = -1;
    X509 *x509 = NULL;
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    if (pkey == NULL) {
        s_ssl_error(err, errlen, "generating a P-256 key");
        return -1;
    }
    if ((x509 = s_self_signed(pkey, err, errlen)) == NULL)
        goto Exit;
    if (s_write_file(key_path, 0600, s_write_key, pkey, err, errlen) != 0 ||
        s_write_file(cert_path, 0644, s_write_cert, x509, err, errlen) != 0)
        goto Exit;
    rc = 0;

Exit:
    X509_free(x509);
    EVP_PKEY_free(pkey);
    return rc;
}
