# Events survive kill -9 of the fan-out process and of a dialer during a busy campaign.
impact_add_test(NAME test_event_durability SOURCES test_event_durability.c LIBS impact_test_support TIMEOUT 300 LABELS integration)
add_dependencies(test_event_durability impactd)
