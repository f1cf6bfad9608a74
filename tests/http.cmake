# http/: the TLS certificate maker on its own, and the front end end to end (child process,
# real broker and worker, shared memory, libcurl over HTTP/1.1, h2c and TLS).
impact_add_test(NAME test_http_tls SOURCES test_http_tls.c LIBS impact_http impact_test_support OpenSSL::Crypto LABELS unit)
impact_add_test(NAME test_http SOURCES test_http.c
    LIBS impact_http impact_broker impact_shm impact_schemas impact_common impact_test_support PkgConfig::CURL
    TIMEOUT 180 LABELS integration)
