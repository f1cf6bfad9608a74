#!/usr/bin/env python3
"""Turns bench/results/<name>.json files into bench/results/REPORT.md.

Each JSON file: {"benchmark", "date", "machine", "quick", "runs", "command", "seeds"?, "notes": [...],
"metrics": [{"name", "value", "unit", "baseline", "ratio", "value_spread"?, "ratio_spread"?,
"target"?, "met"?}]}.

The report opens with every target the issues set, each found among the metrics (TARGETS below)
and marked met, not met, or not measured when its benchmark has not been run; then the software
the figures were measured with; then each benchmark's table and notes.
"""
import json
import pathlib
import re
import subprocess
import sys

# (issue, the target in its words, benchmark, a pattern matching the names of the metrics that
# carry it). A metric's own "met" decides; one target may span several metrics (all must be met).
TARGETS = [
    (2, "broker+actor path at least 50% of the bare h2o handler's requests per second", "api", r"^GET /v1 req/s"),
    (2, "GET /v1 p99 under 5 ms at half of its peak rate", "api", r"^GET /v1 p99 at half peak"),
    (2, "cold start (existing data dir) to serving GET /v1 in under 3 s", "api", r"^cold start"),
    (3, "1,000,000-row CSV import at 40% or more of psql \\copy", "import", r"^import_rows_per_s$"),
    (3, "import memory bounded (streamed, not slurped)", "import", r"^importer_peak_rss_mb$"),
    (3, "a DB-backed GET of one resource: p99 under 5 ms at half of its peak rate", "api",
     r"^GET /v1/campaigns/\{id\} p99"),
    (4, "live talk per agent-hour at or above the lookahead reference at 25 and 100 agents, 90% of it at 10",
     "pacing", r"^agents(10|25|100): ours: predictive \(default\)"),
    (4, "at least 1.3 times the VICIdial replica", "pacing", r"^agents(10|25|100): ours / VICIdial replica"),
    (4, "no scenario ever above its abandon cap", "pacing", r": ours, abandon rate over the whole run$"),
    (4, "pacing benchmark agrees with the Python reference model within 3%", "pacing", r"against the Python model$"),
    (4, "1,000 simulated callers in 100 campaigns in real time, answer-to-bridge p99 under 10 ms", "capacity",
     r"^answer-to-bridge decision p99, 1000 callers"),
    (5, "SSE fan-out to 1,000 subscribers: events per second at least nginx+nchan's", "fanout",
     r"^SSE deliveries per second kept up, 1000 subscribers"),
    (5, "SSE publish-to-receive p99 under 20 ms at 10,000 events per second, 1,000 subscribers", "fanout",
     r"^publish-to-receive p99 at 10,000 deliveries/s, 1000 subscribers"),
    (5, "webhook deliveries per second at 70% or more of a bare libcurl-multi loop", "webhooks",
     r"^call-state webhooks delivered per second"),
    (6, "event-to-screen p99 under 100 ms with 500 concurrent caller sessions", "callers",
     r"^event-to-screen p99, caller\.\* events"),
]

# The software behind the figures: Debian packages by name, then commands' own version lines.
PACKAGES = ["gcc", "cmake", "libh2o-evloop-dev", "libwslay-dev", "libzmq3-dev", "libczmq-dev", "libmsgpack-dev", "libpq-dev",
            "postgresql", "libcurl4-openssl-dev", "libjansson-dev", "nghttp2-client", "wrk", "nginx-light",
            "libnginx-mod-nchan", "nodejs", "python3-matplotlib"]


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def verdict(met):
    return "" if met is None else ("**met**" if met else "**not met**")


def spread(m):
    for key, label in (("ratio_spread", "ratio"), ("value_spread", "value")):
        if m.get(key):
            lo, hi = m[key]
            return f"{label} {fmt(lo)} to {fmt(hi)}"
    return ""


def versions():
    rows = []
    for p in PACKAGES:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", p], capture_output=True, text=True)
        rows.append(f"| {p} | {out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else 'not installed'} |")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    return commit + (" (with uncommitted changes)" if dirty else ""), rows


def targets_section(data):
    lines = ["## Targets", "",
             "Every target the issues set, from the metrics below. A target is met when every metric",
             "that carries it is; \"not measured\" means its benchmark has no result here.", "",
             "| issue | target | measured | verdict |", "|---|---|---|---|"]
    for issue, text, bench, pattern in TARGETS:
        metrics = [m for m in data.get(bench, {}).get("metrics", []) if re.search(pattern, m["name"])]
        if not metrics:
            lines.append(f"| {issue} | {text} | `{bench}`: not measured | |")
            continue
        measured = "; ".join(
            f"{fmt(m.get('value'))} {m.get('unit', '')}".strip()
            + (f" (ratio {fmt(m['ratio'])})" if m.get("ratio") is not None else "")
            + (f" [{m['name'].split(':')[0]}]" if len(metrics) > 1 and ":" in m["name"] else "") for m in metrics)
        verdicts = [m.get("met") for m in metrics]
        met = None if None in verdicts else all(verdicts)
        quick = " (quick run)" if data[bench].get("quick") else ""
        lines.append(f"| {issue} | {text} | `{bench}`{quick}: {measured} | "
                     f"{verdict(met) or ('not judged in a quick run' if quick else 'no verdict recorded')} |")
    return lines


def main(results_dir):
    results = pathlib.Path(results_dir)
    data = {}
    for path in sorted(results.glob("*.json")):
        d = json.loads(path.read_text())
        data[d["benchmark"]] = d
    commit, package_rows = versions()
    lines = ["# Benchmark report", "",
             "Generated by `bench/report.py` from the JSON files beside it (`bench/README.md` explains each",
             "benchmark and how to read it). Every ratio compares two figures measured in the same run on the",
             "same machine; a figure is the median of the stated runs, and the spread is their lowest and",
             "highest.", ""]
    lines += targets_section(data)
    lines += ["", "## Software", "", f"Source: commit {commit or 'unknown'}.", "",
              "| package | version |", "|---|---|"] + package_rows + [""]
    for name, d in data.items():
        lines += [f"## {name}", "",
                  f"{d['date']} on {d['machine']}; {d['runs']} runs each" + (" (quick mode)" if d.get("quick") else "")
                  + (f"; seeds {d['seeds']}" if d.get("seeds") else ""),
                  "", f"Command: `{d.get('command', 'bench/run.sh ' + name)}`", "",
                  "| metric | value | unit | baseline | ratio | spread | target | verdict |",
                  "|---|---|---|---|---|---|---|---|"]
        for m in d["metrics"]:
            lines.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
                m["name"], fmt(m.get("value")), m.get("unit", ""), fmt(m.get("baseline")), fmt(m.get("ratio")),
                spread(m), m.get("target", ""), verdict(m.get("met"))))
        for note in d.get("notes", []):
            lines += ["", note]
        lines.append("")
    (results / "REPORT.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
