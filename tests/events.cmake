# Events (issue 5): ordering by the sequencer in SQL under concurrent producers and sequencers,
# every producer against the catalog (schemas/events.json), and the events API end to end
# against the real impactd.
impact_add_test(NAME test_events SOURCES test_events.c LIBS impact_store impact_test_support Threads::Threads
    TIMEOUT 300 LABELS integration)
add_dependencies(test_events impactd)
