# Call-state webhooks of POST /v1/call: the call_events trigger in SQL, and delivery by the real
# impactd's fan-out process to a local receiver (tests/webhook_receiver.c, built with the endpoints test) that
# fails at first.
impact_add_test(NAME test_call_webhooks SOURCES test_call_webhooks.c LIBS impact_store impact_test_support impact_test_webhook_receiver
    TIMEOUT 300 LABELS integration)
add_dependencies(test_call_webhooks impactd)
