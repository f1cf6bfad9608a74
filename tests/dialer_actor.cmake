# actors/dialer: the dialer process end to end (impactd, PostgreSQL, the broker, kill -9 recovery).
impact_add_test(NAME test_dialer_actor SOURCES test_dialer_actor.c LIBS impact_test_support TIMEOUT 300 LABELS integration)
add_dependencies(test_dialer_actor impactd)
