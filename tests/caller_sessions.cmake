# Caller sessions: logins without an API key, replacement, lockout, administration.
impact_add_test(NAME test_caller_sessions SOURCES test_caller_sessions.c LIBS impact_test_support TIMEOUT 300 LABELS integration)
add_dependencies(test_caller_sessions impactd)
