# Phone number normalisation and time-zone lookup (phone/).
impact_add_test(NAME test_phone SOURCES test_phone.c LIBS impact_phone LABELS unit TIMEOUT 300)
