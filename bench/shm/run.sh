#!/usr/bin/env bash
# Seqlock stats slots across processes versus a plain memcpy into the same mapping.
set -euo pipefail
here=$(dirname "$0")
args=()
[ "${BENCH_QUICK:-0}" = 1 ] && args+=(--quick)
"$BENCH_BIN/shm_bench" "${args[@]}" | python3 "$here/to_result.py"
