# The admin REST API (issue 3), end to end against the real impactd.
impact_add_test(NAME test_admin_api SOURCES test_admin_api.c LIBS impact_store impact_test_support Threads::Threads TIMEOUT 300 LABELS integration)
# actors/importer/keyset: the campaign's phones and custom_ids an import keeps in memory.
impact_add_test(NAME test_import_keyset SOURCES test_import_keyset.c LIBS impact_importer LABELS unit)
impact_add_test(NAME test_import SOURCES test_import.c LIBS impact_test_support impact_test_webhook_receiver Threads::Threads TIMEOUT 600 LABELS integration)
