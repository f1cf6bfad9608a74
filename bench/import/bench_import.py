#!/usr/bin/env python3
"""List import through the API against psql \\copy of the same file, in the same run.

The file is a realistic lead list: US numbers in mixed notations with a share of duplicates and
of invalid numbers, names, e-mail, a custom id and a custom field. The import is timed from the
import request to the list's completed status (normalising, de-duplicating within the campaign,
marking blocked numbers, deriving time zones, writing numbers and leads); the baseline loads the
same file with psql \\copy into a plain table of text columns in the same PostgreSQL. The ratio
is baseline time / import time (issue 3 asks for at least 0.4). The importer's peak resident
memory shows whether the file was streamed.
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

ROWS = 100_000 if benchlib.QUICK else 1_000_000
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
    _, body = server.get("/v1/health")
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


def main():
    workdir = tempfile.mkdtemp(prefix="impact-bench-import.", dir="/tmp")
    csv_path = os.path.join(workdir, "leads.csv")
    write_csv(csv_path, ROWS)
    os.chmod(workdir, 0o755)
    os.chmod(csv_path, 0o644)
    size = os.path.getsize(csv_path)
    print(f"  {ROWS} rows, {size / 1e6:.1f} MB")

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

    ratio = copy_seconds / import_seconds
    print(f"  upload {upload_seconds:.2f}s in {part} parts, import {import_seconds:.2f}s, psql \\copy {copy_seconds:.2f}s")
    metrics = [
        {"name": "import_rows_per_s", "value": round(ROWS / import_seconds), "unit": "rows/s",
         "baseline": round(ROWS / copy_seconds), "ratio": ratio, "target": ">= 0.4 of psql \\copy"},
        {"name": "import_seconds", "value": round(import_seconds, 2), "unit": "s"},
        {"name": "copy_seconds", "value": round(copy_seconds, 2), "unit": "s"},
        {"name": "upload_seconds", "value": round(upload_seconds, 2), "unit": "s", "note": f"{part} parts of 1 MB over HTTP/1.1"},
        {"name": "importer_peak_rss_mb", "value": round(rss, 1) if rss else None, "unit": "MiB",
         "note": f"file {size / 1e6:.0f} MB"},
        {"name": "rows_imported", "value": state["rows_imported"], "unit": "rows"},
        {"name": "rows_invalid", "value": state["rows_invalid"], "unit": "rows"},
        {"name": "rows_duplicate", "value": state["rows_duplicate"], "unit": "rows"},
    ]
    benchlib.write_result("import", metrics, runs=1, notes=[
        f"{ROWS} rows, {size / 1e6:.1f} MB; baseline: psql \\copy into a plain table of text columns, same PostgreSQL",
        "import time: from POST /import to status completed, polled every 50 ms",
    ])


if __name__ == "__main__":
    main()
