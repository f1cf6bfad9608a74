# actors/dialer: the engine library (timers, id map, scenarios, the simulated carrier, the call
# and caller state machines, pacing) in virtual time.
impact_add_test(NAME test_dialer_engine SOURCES test_dialer_engine.c LIBS impact_dialer_engine LABELS unit TIMEOUT 300)
