# Events survive kill -9 of the fan-out process, of a dialer and of the http process during a busy
# campaign: the events API, a webhook endpoint and a reconnecting event stream all hold every event.
impact_add_test(NAME test_event_durability SOURCES test_event_durability.c
    LIBS impact_test_support impact_test_webhook_receiver TIMEOUT 300 LABELS integration)
add_dependencies(test_event_durability impactd)
