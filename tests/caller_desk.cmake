# The caller's desk, served by the campaign's dialer: actions, surveys, transfers, refusals, timeouts.
impact_add_test(NAME test_caller_desk SOURCES test_caller_desk.c LIBS impact_test_support TIMEOUT 600 LABELS integration)
add_dependencies(test_caller_desk impactd)
