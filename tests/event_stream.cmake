# Event streams (issue 5): GET /v1/events/stream against the real impactd, read by libcurl as a
# Server-Sent Events client over HTTP/1.1 and h2c, compared with the events API.
impact_add_test(NAME test_event_stream SOURCES test_event_stream.c LIBS impact_test_support TIMEOUT 600 LABELS integration)
add_dependencies(test_event_stream impactd)
