"""Converts phone_bench's JSON lines into bench/results/phone.json."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import benchlib  # noqa: E402

measurements, runs = benchlib.json_lines(sys.stdin, "phone_bench")
metrics = []
for m in measurements:
    metric = {"name": m["name"], "value": round(m["ns_per_call"] / 1000, 2), "unit": "us/call"}
    if "baseline_ns_per_call" in m:
        metric["baseline"] = round(m["baseline_ns_per_call"] / 1000, 2)
        metric["ratio"] = m["ratio"]
        metric["note"] = "baseline: " + m["baseline"]
    metrics.append(metric)
benchlib.write_result("phone", metrics, runs, notes=[
    "normalize_*: phone_normalize against libphonenumber Parse + IsValidNumber + Format on the raw input, alternating"
    " in every run; ratio is phone_normalize time over the library's (lower is better).",
])
