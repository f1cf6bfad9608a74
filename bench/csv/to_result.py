"""Converts csv_bench's JSON lines into bench/results/csv.json."""
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import benchlib  # noqa: E402

metrics, runs = [], 0
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    m = json.loads(line)
    runs = m.get("runs", runs)
    metrics.append({"name": m["name"], "value": m["mb_per_sec"], "unit": "MB/s",
                    "baseline": m["baseline_mb_per_sec"], "ratio": m["ratio"]})
    metrics.append({"name": m["name"] + "_rows", "value": round(m["rows_per_sec"]), "unit": "rows/s"})
if not metrics:
    sys.exit("csv_bench printed no measurements")
benchlib.write_result("csv", metrics, runs, notes=[
    "Baseline: memchr counting the LFs of the same 64 KiB chunks (the least a line reader does);"
    " ratio is baseline time over reader time.",
])
