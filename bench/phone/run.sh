#!/usr/bin/env bash
# phone_normalize per call against libphonenumber called directly, in the same run.
set -euo pipefail
here=$(dirname "$0")
args=()
[ "${BENCH_QUICK:-0}" = 1 ] && args+=(--quick)
"$BENCH_BIN/phone_bench" "${args[@]}" | python3 "$here/to_result.py"
