# Event streams as WebSockets: GET /v1/events/stream and a caller's stream upgraded over HTTP/1.1
# against the real impactd, read by a plain-socket client in the test (OpenSSL for the accept key).
impact_add_test(NAME test_event_websocket SOURCES test_event_websocket.c LIBS impact_test_support OpenSSL::Crypto TIMEOUT 600
    LABELS integration)
add_dependencies(test_event_websocket impactd)
