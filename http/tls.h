/*
 * TLS for the front end: the server context (h2 preferred over HTTP/1.1 through ALPN) and the
 * development certificate http_tls_ensure_cert (declared in http/http.h) makes.
 */
#ifndef IMPACT_HTTP_TLS_H
#define IMPACT_HTTP_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/**
 * A server SSL_CTX with the certificate chain and key loaded and ALPN offering h2 then
 * http/1.1 (h2o's own list has no http/1.1, which leaves HTTP/1.1-only clients with no ALPN
 * answer at all). NULL with a message in err on failure. Free with SSL_CTX_free.
 */
SSL_CTX *http_tls_context_new(const char *cert_path, const char *key_path, char *err, size_t errlen);

#endif
