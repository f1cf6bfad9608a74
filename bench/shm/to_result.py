"""Converts shm_bench's JSON lines into bench/results/shm.json."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import benchlib  # noqa: E402

measurements, runs = benchlib.json_lines(sys.stdin, "shm_bench")
metrics = []
for m in measurements:
    metrics.append({"name": m["name"], "value": round(m["ops_per_sec"]), "unit": "ops/s",
                    "baseline": round(m["baseline_ops_per_sec"]), "ratio": m["ratio"]})
benchlib.write_result("shm", metrics, runs, notes=[
    "Baseline: an unsynchronised memcpy of the same payload into the same mapping (no consistency).",
])
