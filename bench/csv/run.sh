#!/usr/bin/env bash
# The streaming CSV reader on a generated lead list versus memchr counting its lines.
set -euo pipefail
here=$(dirname "$0")
args=()
[ "${BENCH_QUICK:-0}" = 1 ] && args+=(--quick)
"$BENCH_BIN/csv_bench" "${args[@]}" | python3 "$here/to_result.py"
