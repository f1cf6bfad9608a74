#!/usr/bin/env python3
"""Compares two result folders of bench/run.sh, figure by figure: are two invocations the same?

    python3 bench/compare.py RESULTS_A RESULTS_B [--markdown FILE]

Pacing runs in virtual time on fixed seeds, so its figures must repeat exactly. A system figure
(measured on the real clock) agrees when the two runs' spreads overlap, or, for a figure of a
single run, when it differs by at most its benchmark's stated tolerance (TOLERANCE below, the
run-to-run variation these benchmarks show on a shared 2-core machine). Exits 1 when a pacing
figure differs; system figures outside their tolerance are listed, not fatal: they are the
machine's noise to be read, which is what this comparison is for.
"""
import argparse
import json
import pathlib
import re
import sys

# Relative run-to-run difference accepted for single-run figures, per benchmark: what two quick
# runs back to back on a shared 2-core machine showed (bench/README.md). shm measures processes
# contending for one cache line, which the scheduler decides more than the code; latency tails
# (callers, fanout) rest on a few slow events in a quick run.
TOLERANCE = {"api": 0.25, "capacity": 0.5, "fanout": 0.75, "callers": 0.75, "webhooks": 0.25, "import": 0.25,
             "csv": 0.25, "phone": 0.25, "shm": 0.75}
# Pacing figures measured on the real clock (the engine's CPU time), not in virtual time.
PACING_REAL_CLOCK = "capacity:"


def key(name):
    """A figure's name without the measured numbers some names carry, e.g. "(15868 req/s, h2c)"."""
    return re.sub(r"\((\d[\d.,]*) ([^,)]*)(, )?", r"(\2\3", name)


def load(folder):
    results = {}
    for path in pathlib.Path(folder).glob("*.json"):
        data = json.loads(path.read_text())
        results[data["benchmark"]] = {key(m["name"]): m for m in data["metrics"]}
    return results


def headline(m):
    """The figure compared: the ratio against the same-run baseline when there is one."""
    if m.get("ratio") is not None:
        return m["ratio"], m.get("ratio_spread")
    return m.get("value"), m.get("value_spread")


def judge(bench, a, b):
    va, sa = headline(a)
    vb, sb = headline(b)
    if not isinstance(va, (int, float)) or not isinstance(vb, (int, float)):
        return "not numeric", None
    if bench == "pacing" and not a["name"].startswith(PACING_REAL_CLOCK):
        return ("same" if va == vb else "DIFFERENT"), 0.0
    diff = abs(va - vb) / max(abs(va), abs(vb)) if max(abs(va), abs(vb)) > 0 else 0.0
    if sa and sb and sa[0] < sa[1] and sb[0] < sb[1]:  # a single run's spread is a point: tolerance decides
        return ("spreads overlap" if sa[0] <= sb[1] and sb[0] <= sa[1] else "spreads apart"), diff
    return ("within tolerance" if diff <= TOLERANCE.get(bench, 0.5) else "outside tolerance"), diff


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    a, b = load(args.a), load(args.b)
    rows, pacing_differs = [], False
    for bench in sorted(set(a) & set(b)):
        for name in a[bench]:
            if name not in b[bench]:
                rows.append((bench, name, "only in the first", None))
                continue
            verdict, diff = judge(bench, a[bench][name], b[bench][name])
            pacing_differs |= verdict == "DIFFERENT"
            rows.append((bench, name, verdict, diff))
        rows += [(bench, name, "only in the second", None) for name in b[bench] if name not in a[bench]]
    lines = ["| benchmark | figure | verdict | difference |", "|---|---|---|---|"]
    lines += [f"| {bench} | {name} | {verdict} | {'' if diff is None else f'{100 * diff:.1f}%'} |"
              for bench, name, verdict, diff in rows]
    print("\n".join(lines))
    if args.markdown:
        pathlib.Path(args.markdown).write_text("\n".join(lines) + "\n")
    return 1 if pacing_differs else 0


if __name__ == "__main__":
    sys.exit(main())
