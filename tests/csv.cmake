# common/csv: the streaming CSV reader for list uploads (syntax, per-row errors, limits, chunk
# splits, checkpoints, fuzz).
impact_add_test(NAME test_csv SOURCES test_csv.c LIBS impact_common LABELS unit)
