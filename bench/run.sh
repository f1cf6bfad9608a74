#!/usr/bin/env bash
# Runs the benchmarks and writes bench/results/*.json and bench/results/REPORT.md.
#   bench/run.sh [--quick] [name ...]   (BENCH_RESULTS=DIR writes elsewhere, for trial runs)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
names=()
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        -*) echo "usage: $0 [--quick] [benchmark ...]" >&2; exit 2 ;;
        *) names+=("$arg") ;;
    esac
done
if [ ${#names[@]} -eq 0 ]; then
    for dir in bench/*/; do
        [ -x "$dir/run.sh" ] && names+=("$(basename "$dir")")
    done
fi

scripts/setup.sh release
# Debian's python3 first: the packages setup.sh installs (matplotlib, yaml) are its, and a
# python3 of pyenv or a virtualenv earlier in PATH would not see them.
export PATH="/usr/bin:$PATH"
export BENCH_QUICK=$quick BENCH_BIN="$PWD/build/bin" BENCH_RESULTS="${BENCH_RESULTS:-$PWD/bench/results}"
mkdir -p "$BENCH_RESULTS"
for name in "${names[@]}"; do
    [ -x "bench/$name/run.sh" ] || { echo "no benchmark named $name" >&2; exit 2; }
    echo "== bench $name (quick=$quick)"
    "bench/$name/run.sh"
done
python3 bench/report.py "$BENCH_RESULTS"
echo "report: $BENCH_RESULTS/REPORT.md"
