# actors/dialer: the engine library (timers, id map, scenarios, the simulated carrier, the call
# and caller state machines, pacing) in virtual time.
impact_add_test(NAME test_dialer_engine SOURCES test_dialer_engine.c LIBS impact_dialer_engine LABELS unit TIMEOUT 300)
# A customer's number feed, fetched with real libcurl from a local scripted HTTP server.
impact_add_test(NAME test_feed SOURCES test_feed.c LIBS impact_dialer_feed Threads::Threads LABELS unit TIMEOUT 300)
