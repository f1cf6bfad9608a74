# ImpactDialer end to end: Debian's chromium (playwright-core, tests/browser) drives the caller
# app at /app/ against the real impactd; screenshots of each state go to the build directory.
add_test(NAME browser_caller_app COMMAND node ${CMAKE_SOURCE_DIR}/tests/browser/caller_app.test.mjs)
set_tests_properties(browser_caller_app PROPERTIES TIMEOUT 900 LABELS integration
    ENVIRONMENT "IMPACTD_BIN=${CMAKE_BINARY_DIR}/bin/impactd;IMPACT_SOURCE_DIR=${CMAKE_SOURCE_DIR};IMPACT_TEST_OUTPUT=${CMAKE_BINARY_DIR}/test-output/caller_app")
