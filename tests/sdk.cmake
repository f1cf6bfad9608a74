# The JavaScript SDK (sdk/js): its own checks, and its clients against the real impactd.
add_test(NAME sdk_js COMMAND node --test ${CMAKE_SOURCE_DIR}/sdk/js/test/)
set_tests_properties(sdk_js PROPERTIES TIMEOUT 600 LABELS integration
    ENVIRONMENT "IMPACTD_BIN=${CMAKE_BINARY_DIR}/bin/impactd;IMPACT_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
