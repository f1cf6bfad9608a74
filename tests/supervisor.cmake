# supervisor/: the child table and embedded PostgreSQL link on their own; the credentials test
# needs the test cluster (scripts/test.sh); the command-line test runs the impactd binary.
impact_add_test(NAME test_supervisor_children SOURCES test_supervisor_children.c LIBS impact_supervisor impact_test_support)
impact_add_test(NAME test_supervisor_pgembed SOURCES test_supervisor_pgembed.c LIBS impact_supervisor impact_test_support
    LABELS postgres)
impact_add_test(NAME test_supervisor_credentials
    SOURCES test_supervisor_credentials.c ${CMAKE_SOURCE_DIR}/supervisor/credentials.c
    LIBS impact_store impact_test_support LABELS postgres)
impact_add_test(NAME test_supervisor_cli SOURCES test_supervisor_cli.c LIBS impact_test_support LABELS postgres integration)
add_dependencies(test_supervisor_cli impactd)
impact_add_test(NAME test_supervisor_instance SOURCES test_supervisor_instance.c ${CMAKE_SOURCE_DIR}/supervisor/instance.c
    LIBS impact_supervisor impact_shm impact_test_support)
