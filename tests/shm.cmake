# shm/: the stats region with real forked writers and readers, including writers killed mid-write.
impact_add_test(NAME test_shm SOURCES test_shm.c LIBS impact_shm impact_common TIMEOUT 300)
