# Webhook endpoints fed from the events table, delivered by the real impactd's fan-out process to
# a local receiver: ordered per stream through outages, filtered, signed, disabled by 410 Gone,
# replayed, and logged attempt by attempt.
add_library(impact_test_webhook_receiver STATIC webhook_receiver.c)
target_include_directories(impact_test_webhook_receiver PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(impact_test_webhook_receiver PUBLIC PkgConfig::JANSSON OpenSSL::Crypto Threads::Threads)
impact_add_test(NAME test_webhook_endpoints SOURCES test_webhook_endpoints.c
    LIBS impact_test_support impact_test_webhook_receiver TIMEOUT 300 LABELS integration)
add_dependencies(test_webhook_endpoints impactd)
