#!/usr/bin/env bash
# The pacing benchmark: every scenario under scenarios/, every policy family in the same run
# (common random numbers), then the cross-check against the independent Python model.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$BENCH_RESULTS/pacing-raw"
mkdir -p "$out"
rm -f "$out"/*.jsonl

seeds=3
extra=()
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    seeds=1
    extra=(--set hours=1)
fi
policies=(preview progressive ratio:1.1 ratio:1.2 ratio:1.3 ratio:1.4 ratio:1.5 power:2 power:3 power:4 power:6
    adapt:3.0:0:3:HARD adapt:3.0:0:3:AVERAGE impact
    oracle:0.5 oracle:0.6 oracle:0.7 oracle:0.8 oracle:0.9 oracle:1.0 oracle:1.1 oracle:1.2 oracle:1.3 oracle:1.4 oracle:1.6 oracle:2.0 oracle:2.4
    lookahead:0.5 lookahead:0.6 lookahead:0.7 lookahead:0.8 lookahead:0.9 lookahead:1.0 lookahead:1.1 lookahead:1.2 lookahead:1.3
    lookahead:1.4 lookahead:1.6 lookahead:2.0 lookahead:2.4
    predictive predictive:0.02 predictive:0.025 predictive:0.03 predictive:0.035 ceiling)
args=()
for p in "${policies[@]}"; do args+=(--policy "$p"); done

# Two scenarios at a time: the machines have two cores and each run is single-threaded.
ls "$here"/scenarios/*.scn | xargs -P 2 -I{} sh -c \
    'name=$(basename {} .scn); "$0" --scenario {} --seeds '"$seeds"' '"${extra[*]:-}"' "$@" > "'"$out"'/$name.jsonl"' \
    "$BENCH_BIN/pacebench" "${args[@]}"

# Capacity: 1,000 callers in 100 campaigns of 10 on one core, Power as the baseline.
"$BENCH_BIN/pacebench" --campaigns 100 --set agents=10 --set hours="$([ "${BENCH_QUICK:-0}" = 1 ] && echo 0.25 || echo 1)" \
    --policy progressive --policy predictive > "$out/capacity.json"

# The Python model of the same scenario, for the baseline policies it shares with us.
reference="$here/../../../shared/tools/pacesim_reference.py"
if [ -f "$reference" ]; then
    /usr/bin/python3 "$reference" --seeds "$seeds" ${extra[@]+"${extra[@]}"} \
        --policy progressive --policy ratio:1.2 --policy ratio:1.3 > "$out/reference-agents25.jsonl"
fi
/usr/bin/python3 "$here/to_result.py" "$out" "$BENCH_RESULTS" "$seeds"
