"""Converts shm_bench's JSON lines into bench/results/shm.json."""
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
    metrics.append({"name": m["name"], "value": round(m["ops_per_sec"]), "unit": "ops/s",
                    "baseline": round(m["baseline_ops_per_sec"]), "ratio": m["ratio"]})
if not metrics:
    sys.exit("shm_bench printed no measurements")
benchlib.write_result("shm", metrics, runs, notes=[
    "Baseline: an unsynchronised memcpy of the same payload into the same mapping (no consistency).",
])
