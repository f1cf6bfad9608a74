#!/usr/bin/env python3
"""API request path: GET /v1 through http -> broker -> store actor, against a bare h2o handler
answering the same bytes from the same binary (GET /bench/bare), in the same run.

Measures peak requests/s over HTTP/1.1 (wrk), h2c and h2 over TLS (h2load), latency p50/p99 at
half of each path's own peak (h2load --rps with a per-request log), and cold start of an
existing data dir to the first 200 on GET /v1.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import benchlib  # noqa: E402

RUNS = 1 if benchlib.QUICK else 3
REQUESTS = 20000 if benchlib.QUICK else 200000
DURATION = 2 if benchlib.QUICK else 8
CLIENTS = 10


def h2load(url, headers, extra=()):
    args = ["h2load", "-c", str(CLIENTS), "-t", "1"] + list(extra)
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=300).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    ok = re.search(r"status codes: (\d+) 2xx", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if ok is None or done is None or int(ok.group(1)) != int(done.group(1)):
        raise RuntimeError("non-2xx responses:\n" + out)
    return rps


def wrk(url, headers):
    args = ["wrk", "-t", "1", "-c", str(CLIENTS), "-d", f"{DURATION}s"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=300).stdout
    if "Non-2xx" in out:
        raise RuntimeError("non-2xx responses:\n" + out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def latency_at(url, headers, rate):
    """p50/p99 in ms at `rate` total requests/s spread over CLIENTS connections."""
    with tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log") as log:
        per_client = max(1, int(rate / CLIENTS))
        h2load(url, headers, ["-D", str(DURATION), "--rps", str(per_client), "-m", "1", "--log-file", log.name])
        durations = sorted(int(line.split()[2]) for line in open(log.name) if line.strip())
    if not durations:
        raise RuntimeError("no latency samples")
    pick = lambda q: durations[min(len(durations) - 1, int(q * len(durations)))] / 1000.0  # noqa: E731
    return pick(0.50), pick(0.99)


def main():
    for tool in ("h2load", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: scripts/setup.sh installs it")
    # One key at ~60k req/s would be refused by the default limit (100/s, burst 200). A limit far
    # above the load keeps the limiter on the measured path without it ever refusing.
    server = benchlib.Impactd(env={"IMPACT_RATE_LIMIT": "1000000", "IMPACT_RATE_BURST": "1000000"})
    try:
        server.start()
        key, auth = server.credentials()
        headers = {"api-key": key, "api-auth": auth}
        body = server.wait_ready("/v1", headers)
        server.stop()

        bare = pathlib.Path(server.data_dir) / "bare.json"
        bare.write_bytes(body)
        server.env["IMPACT_BENCH_BARE_FILE"] = str(bare)
        started = server.start()
        server.wait_ready("/v1", headers)
        cold_start_ms = (time.monotonic() - started) * 1000
        assert server.get("/bench/bare")[1] == body, "bare handler must answer the same bytes"

        metrics = []
        peaks = {}
        for proto, runner in (
            ("h2c", lambda u: h2load(u, headers, ["-n", str(REQUESTS), "-m", "10"])),
            ("h2-tls", lambda u: h2load(u, headers, ["-n", str(REQUESTS), "-m", "10"])),
            ("http1.1", lambda u: wrk(u, headers)),
        ):
            tls = proto == "h2-tls"
            # each run of ours beside a run of the baseline, so every pair shares the machine's mood
            pairs = [(runner(server.url("/v1", tls)), runner(server.url("/bench/bare", tls))) for _ in range(RUNS)]
            api = benchlib.median([a for a, _ in pairs])
            base = benchlib.median([b for _, b in pairs])
            peaks[proto] = (api, base)
            metrics.append({"name": f"GET /v1 req/s ({proto})", "value": round(api), "unit": "req/s",
                            "baseline": round(base), "ratio": api / base, "ratio_spread": benchlib.spread([a / b for a, b in pairs]),
                            "target": ">= 0.5", "met": api / base >= 0.5})

        api_peak, bare_peak = peaks["h2c"]
        p50, p99 = latency_at(server.url("/v1"), headers, api_peak / 2)
        b50, b99 = latency_at(server.url("/bench/bare"), headers, bare_peak / 2)
        metrics += [
            {"name": f"GET /v1 p50 at half peak ({round(api_peak / 2)} req/s, h2c)", "value": p50, "unit": "ms",
             "baseline": b50, "ratio": p50 / b50 if b50 else None},
            {"name": f"GET /v1 p99 at half peak ({round(api_peak / 2)} req/s, h2c)", "value": p99, "unit": "ms",
             "baseline": b99, "ratio": p99 / b99 if b99 else None, "target": "< 5 ms", "met": p99 < 5},
            {"name": "cold start to first 200 on GET /v1 (existing data dir)", "value": round(cold_start_ms),
             "unit": "ms", "target": "< 3000 ms", "met": cold_start_ms < 3000},
        ]
        # A DB-backed read: one campaign, read through the store's resource engine and PostgreSQL.
        request = urllib.request.Request(server.url("/v1/campaigns"), data=json.dumps({"name": "Bench"}).encode(),
                                         headers=dict(headers, **{"content-type": "application/json"}), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            campaign = json.loads(response.read())["id"]
        path = f"/v1/campaigns/{campaign}"
        db_runs = [h2load(server.url(path), headers, ["-n", str(REQUESTS), "-m", "10"]) for _ in range(RUNS)]
        db_peak = benchlib.median(db_runs)
        d50, d99 = latency_at(server.url(path), headers, db_peak / 2)
        metrics += [
            {"name": "GET /v1/campaigns/{id} req/s (h2c, PostgreSQL read)", "value": round(db_peak), "unit": "req/s",
             "baseline": round(api_peak), "ratio": db_peak / api_peak, "value_spread": benchlib.spread(db_runs)},
            {"name": f"GET /v1/campaigns/{{id}} p99 at half peak ({round(db_peak / 2)} req/s, h2c)", "value": d99,
             "unit": "ms", "target": "< 5 ms", "met": d99 < 5},
            {"name": f"GET /v1/campaigns/{{id}} p50 at half peak ({round(db_peak / 2)} req/s, h2c)", "value": d50, "unit": "ms"},
        ]
        benchlib.write_result("api", metrics, RUNS, notes=[
            f"Load generators (h2load, wrk; {CLIENTS} connections, 1 thread) share the machine's cores with impactd.",
            "The bare baseline's latency is measured at half of the bare path's own peak rate.",
        ])
    finally:
        server.stop()
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(server.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
