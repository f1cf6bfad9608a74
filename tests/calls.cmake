# The brief's minimal API (POST /v1/call), end to end against the real impactd, and customer URLs
# refused when given and when posted to (a local receiver that must see nothing).
impact_add_test(NAME test_call_api SOURCES test_call_api.c LIBS impact_test_support impact_test_webhook_receiver TIMEOUT 300 LABELS integration)
# A call's phone_numbers_url paged by the running dialer from a local scripted feed.
impact_add_test(NAME test_call_feed SOURCES test_call_feed.c LIBS impact_test_support impact_test_http TIMEOUT 300 LABELS integration)
