# actors/dialer: the engine library (timers, id map, scenarios, the simulated carrier, the call
# and caller state machines, pacing) in virtual time.
impact_add_test(NAME test_dialer_engine SOURCES test_dialer_engine.c LIBS impact_dialer_engine LABELS unit TIMEOUT 300)
# A customer's number feed, fetched with real libcurl from a local scripted HTTP server.
add_library(impact_test_http STATIC http_script.c)
target_link_libraries(impact_test_http PUBLIC Threads::Threads)
impact_add_test(NAME test_feed SOURCES test_feed.c LIBS impact_dialer_feed impact_test_http LABELS unit TIMEOUT 300)
