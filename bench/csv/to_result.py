"""Converts csv_bench's JSON lines into bench/results/csv.json."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import benchlib  # noqa: E402

measurements, runs = benchlib.json_lines(sys.stdin, "csv_bench")
metrics = []
for m in measurements:
    metrics.append({"name": m["name"], "value": m["mb_per_sec"], "unit": "MB/s",
                    "baseline": m["baseline_mb_per_sec"], "ratio": m["ratio"]})
    metrics.append({"name": m["name"] + "_rows", "value": round(m["rows_per_sec"]), "unit": "rows/s"})
benchlib.write_result("csv", metrics, runs, notes=[
    "Baseline: memchr counting the LFs of the same 64 KiB chunks (the least a line reader does);"
    " ratio is baseline time over reader time.",
])
