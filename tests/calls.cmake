# The brief's minimal API (POST /v1/call), end to end against the real impactd.
impact_add_test(NAME test_call_api SOURCES test_call_api.c LIBS impact_test_support TIMEOUT 300 LABELS integration)
