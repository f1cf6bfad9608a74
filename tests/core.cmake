impact_add_test(NAME test_schemas SOURCES test_schemas.c LIBS impact_schemas LABELS unit)
impact_add_test(NAME test_broker SOURCES test_broker.c LIBS impact_broker impact_common impact_test_support LABELS unit)
impact_add_test(NAME test_store SOURCES test_store.c LIBS impact_store impact_broker impact_test_support TIMEOUT 180 LABELS unit)
impact_add_test(NAME test_impactd SOURCES test_impactd.c LIBS impact_test_support PkgConfig::CURL PkgConfig::CZMQ PkgConfig::JANSSON Threads::Threads TIMEOUT 600 LABELS integration)
