#!/usr/bin/env python3
"""List import through the API against psql \\copy of the same file, in the same run.

The file is a realistic lead list: US numbers in mixed notations with a share of duplicates and
of invalid numbers, names, e-mail, a custom id and a custom field. The import is timed from the
import request to the list's completed status (normalising, de-duplicating within the campaign,
marking blocked numbers, deriving time zones, writing numbers and leads); the baseline loads the
same file with psql \\copy into a plain table of text columns in the same PostgreSQL. The ratio
is baseline time / import time (issue 3 asks for at least 0.4). The importer's peak resident
memory at two list sizes, ten times apart, shows whether the file was streamed.
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib  # noqa: E402

# Two list sizes, ten times apart: the headline is the larger; the smaller shows how time and the
# importer's memory grow with the list (memory must not grow with it: the file is streamed).
SIZES = (10_000, 100_000) if benchlib.QUICK else (100_000, 1_000_000)
RSS_GROWTH_MAX = 2.0
PART_BYTES = 1_000_000  # under the default 1 MiB body limit
AREA_CODES = ["212", "415", "312", "617", "202", "305", "713", "206", "303", "404", "602", "808", "907", "512", "615"]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Ritchie"]


def write_csv(path, rows):
    rng = random.Random(7)
    with open(path, "w") as f:
        f.write("Phone,First Name,Last Name,Email,Voter ID,Ward\n")
        previous = []
        for i in range(rows):
            r = rng.random()
            if r < 0.01 and previous:
                phone = rng.choice(previous)  # a duplicate within the file
            elif r < 0.015:
                phone = "555-01" + str(i % 100)  # not a number
            else:
                npa, nxx, line = rng.choice(AREA_CODES), rng.randint(200, 999), rng.randint(0, 9999)
                style = i % 4
                phone = (f"({npa}) {nxx}-{line:04d}", f"{npa}.{nxx}.{line:04d}", f"+1 {npa} {nxx} {line:04d}",
                         f"1{npa}{nxx}{line:04d}")[style]
                if len(previous) < 1000:
                    previous.append(phone)
            first, last = rng.choice(FIRST), rng.choice(LAST)
            f.write(f'{phone},{first},"{last}, Jr.",{first.lower()}.{i}@example.org,V{i:07d},{i % 40}\n')


def request(server, key, auth, method, path, body=None, content_type=None):
    headers = {"Api-Key": key, "Api-Auth": auth}
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(server.url(path), data=body, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.loads(response.read() or b"null")


def importer_pid(server):
    try:
        _, body = server.get("/v1/health")
    except urllib.error.HTTPError as e:  # 503 "degraded" while processes start: the list is there too
        body = e.read()
    for proc in json.loads(body)["processes"]:
        if proc["name"] == "importer":
            return proc["pid"]
    return None


def peak_rss_mb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def psql_copy(data_dir, csv_path):
    sock = os.path.join(data_dir, "pg")
    base = ["psql", "-X", "-q", "-h", sock, "-p", "5432", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1"]
    subprocess.run(base + ["-c", "DROP TABLE IF EXISTS bench_plain; CREATE TABLE bench_plain (phone text, first_name text, "
                                 "last_name text, email text, custom_id text, ward text)"], check=True)
    started = time.monotonic()
    subprocess.run(base + ["-c", f"\\copy bench_plain FROM '{csv_path}' CSV HEADER"], check=True)
    elapsed = time.monotonic() - started
    subprocess.run(base + ["-c", "DROP TABLE bench_plain"], check=True)
    return elapsed


def measure(rows):
    """One list of `rows` rows uploaded and imported by a fresh impactd, and loaded by psql \\copy beside it."""
    workdir = tempfile.mkdtemp(prefix="impact-bench-import.", dir="/tmp")
    csv_path = os.path.join(workdir, "leads.csv")
    write_csv(csv_path, rows)
    os.chmod(workdir, 0o755)
    os.chmod(csv_path, 0o644)
    size = os.path.getsize(csv_path)
    print(f"  {rows} rows, {size / 1e6:.1f} MB")

    server = benchlib.Impactd(env={"IMPACT_RATE_LIMIT": "0"})
    server.start()
    try:
        key, auth = server.credentials()
        server.wait_ready("/v1", {"Api-Key": key, "Api-Auth": auth})
        campaign = request(server, key, auth, "POST", "/v1/campaigns", json.dumps({"name": "Bench"}).encode(),
                           "application/json")
        request(server, key, auth, "POST", "/v1/custom_fields", json.dumps({"name": "ward"}).encode(), "application/json")
        lst = request(server, key, auth, "POST", "/v1/lists", json.dumps({
            "name": "Bench list", "campaign_id": campaign["id"],
            "column_map": {"Phone": "phone", "First Name": "first_name", "Last Name": "last_name", "Email": "email",
                           "Voter ID": "custom_id", "Ward": "ward"}}).encode(), "application/json")
        upload_started = time.monotonic()
        with open(csv_path, "rb") as f:
            part = 0
            while True:
                chunk = f.read(PART_BYTES)
                if not chunk:
                    break
                part += 1
                request(server, key, auth, "POST", f"/v1/lists/{lst['id']}/upload?part={part}", chunk, "text/csv")
        upload_seconds = time.monotonic() - upload_started

        import_started = time.monotonic()
        request(server, key, auth, "POST", f"/v1/lists/{lst['id']}/import")
        while True:
            state = request(server, key, auth, "GET", f"/v1/lists/{lst['id']}")
            if state["status"] in ("completed", "failed"):
                break
            time.sleep(0.05)
        import_seconds = time.monotonic() - import_started
        rss = peak_rss_mb(importer_pid(server))
        if state["status"] != "completed":
            raise RuntimeError(f"import failed: {state.get('failure')}")
        copy_seconds = psql_copy(server.data_dir, csv_path)
    finally:
        server.stop()

    print(f"  upload {upload_seconds:.2f}s in {part} parts, import {import_seconds:.2f}s, psql \\copy {copy_seconds:.2f}s")
    return {"rows": rows, "size": size, "parts": part, "upload_seconds": upload_seconds,
            "import_seconds": import_seconds, "copy_seconds": copy_seconds, "rss": rss, "state": state}


def main():
    small, large = (measure(n) for n in SIZES)
    ratio = large["copy_seconds"] / large["import_seconds"]
    grew = large["rss"] / small["rss"] if large["rss"] and small["rss"] else None
    metrics = [
        {"name": "import_rows_per_s", "value": round(large["rows"] / large["import_seconds"]), "unit": "rows/s",
         "baseline": round(large["rows"] / large["copy_seconds"]), "ratio": ratio, "target": ">= 0.4 of psql \\copy",
         "met": ratio >= 0.4},
        {"name": "import_seconds", "value": round(large["import_seconds"], 2), "unit": "s"},
        {"name": "copy_seconds", "value": round(large["copy_seconds"], 2), "unit": "s"},
        {"name": "upload_seconds", "value": round(large["upload_seconds"], 2), "unit": "s",
         "note": f"{large['parts']} parts of 1 MB over HTTP/1.1"},
        {"name": "importer_peak_rss_mb", "value": round(large["rss"], 1) if large["rss"] else None, "unit": "MiB",
         "baseline": round(small["rss"], 1) if small["rss"] else None, "ratio": round(grew, 3) if grew else None,
         "target": f"under {RSS_GROWTH_MAX}x the figure at {small['rows']:,} rows (streamed, not slurped)",
         "met": grew is not None and grew < RSS_GROWTH_MAX},
        {"name": "rows_imported", "value": large["state"]["rows_imported"], "unit": "rows"},
        {"name": "rows_invalid", "value": large["state"]["rows_invalid"], "unit": "rows"},
        {"name": "rows_duplicate", "value": large["state"]["rows_duplicate"], "unit": "rows"},
    ]
    curve = [(m["rows"], round(m["import_seconds"], 2), round(m["copy_seconds"], 2), round(m["rss"], 1) if m["rss"] else None)
             for m in (small, large)]
    benchlib.write_result("import", metrics, runs=1, notes=[
        f"{large['rows']} rows, {large['size'] / 1e6:.1f} MB; baseline: psql \\copy into a plain table of text columns, "
        "same PostgreSQL",
        "import time: from POST /import to status completed, polled every 50 ms",
        "cost against list size (rows, import s, \\copy s, importer peak RSS MiB): "
        + "; ".join(f"{r:,} rows: {i} s, {c} s, {m} MiB" for r, i, c, m in curve),
    ])


if __name__ == "__main__":
    main()
