# Standard Webhooks signing and the fan-out's signer (the same signatures, keys prepared once), and
# the delivery of call-state webhooks by the real impactd's fan-out process: signed with the
# account's secrets, concurrent across calls, in order within one, honouring Retry-After and 410
# Gone, through a kill -9 and a cut database connection.
impact_add_test(NAME test_webhook_signature SOURCES test_webhook_signature.c LIBS impact_webhook_signer LABELS unit)
impact_add_test(NAME test_webhook_delivery SOURCES test_webhook_delivery.c LIBS impact_test_support OpenSSL::Crypto Threads::Threads
    TIMEOUT 300 LABELS integration)
add_dependencies(test_webhook_delivery impactd)
