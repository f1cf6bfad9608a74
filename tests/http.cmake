# http/: the TLS certificate maker on its own, and the front end end to end (child process,
# real broker and worker, shared memory, libcurl over HTTP/1.1, h2c and TLS).
impact_add_test(NAME test_http_tls SOURCES test_http_tls.c LIBS impact_http impact_test_support OpenSSL::Crypto LABELS unit)
impact_add_test(NAME test_http SOURCES test_http.c
    LIBS impact_http impact_broker impact_shm impact_schemas impact_common impact_test_support PkgConfig::CURL
    TIMEOUT 180 LABELS integration)
# The browser view (http/html.c): pages, escaping, negotiation, refusals and a fuzz run.
impact_add_test(NAME test_html SOURCES test_html.c LIBS impact_http OpenSSL::Crypto PkgConfig::JANSSON LABELS unit)
# The browser view end to end: Debian's chromium driven by playwright-core (tests/browser, its
# node_modules installed by scripts/setup.sh) against the real impactd and the test cluster.
add_test(NAME browser_explore COMMAND node ${CMAKE_SOURCE_DIR}/tests/browser/explore.test.mjs)
set_tests_properties(browser_explore PROPERTIES TIMEOUT 600 LABELS integration
    ENVIRONMENT "IMPACTD_BIN=${CMAKE_BINARY_DIR}/bin/impactd;IMPACT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
# The front end's rate limiter alone (injected clock, threads on one key, eviction, credentials),
# and end to end against the real impactd with a small limit.
impact_add_test(NAME test_ratelimit SOURCES test_ratelimit.c LIBS impact_http impact_common Threads::Threads LABELS unit)
impact_add_test(NAME test_ratelimit_http SOURCES test_ratelimit_http.c LIBS impact_test_support OpenSSL::Crypto PkgConfig::CURL PkgConfig::JANSSON
    TIMEOUT 300 LABELS integration)
