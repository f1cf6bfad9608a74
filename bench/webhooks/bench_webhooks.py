"""Webhook delivery: the fan-out process's call-state webhooks against a bare libcurl-multi loop.

The receiver is nginx (Debian's nginx-light, installed by this benchmark if missing) answering
200 and logging, for every request, the call it was for, the webhook-id and the status. Events
are written straight into the call_events outbox in one transaction, the way the producers'
triggers write them (N calls x E events each), and the fan-out process is timed from the commit
until the last is delivered: claiming from the outbox, signing, posting (64 in flight, one per
call, in order per call), logging each attempt and settling each event. The baseline posts the
same number of bodies of the same size to the same nginx with bin/curl_blast, at the same
concurrency. Ratio: ours per second over the bare loop's (issue 5 asks for at least 0.7).

The time is the database's: from just before the commit to the latest delivered_at of the
round's events (when the last outcome was recorded). The end is found by following nginx's log
and then asking the database once: polling the outbox while it is being delivered would load the
PostgreSQL being measured (a count over 20,000 events every 50 ms took a tenth of its CPU). The
CPU time each process took in the round (the fan-out process, PostgreSQL, nginx; curl_blast and
nginx for the bare loop) is reported per delivery, to show where the time goes.

Then a second round checks what cannot be timed: the receiver is down (connection refused), then
answers 500, then recovers; every event must be delivered exactly once as 2xx, in order per call.
"""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import benchlib  # noqa: E402

CALLS = 200 if benchlib.QUICK else 1000
EVENTS_PER_CALL = 10 if benchlib.QUICK else 20
CONCURRENCY = 64  # the fan-out process's bound (actors/fanout/webhooks.c)
ROUNDS = 1 if benchlib.QUICK else 5
OUTAGE_CALLS, OUTAGE_EVENTS = 50, 10
LOG_FORMAT = "$arg_call $http_webhook_id $status"


def ensure_nginx():
    if shutil.which("nginx") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "nginx-light"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    return shutil.which("nginx") or "/usr/sbin/nginx"


class Receiver:
    """A private nginx: answers `status` to POST /hook and logs each request."""

    def __init__(self, nginx):
        self.nginx = nginx
        self.dir = tempfile.mkdtemp(prefix="impact-bench-nginx.", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port = benchlib.free_port()
        self.log = os.path.join(self.dir, "hooks.log")
        self.running = False

    def _config(self, status):
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(f"""daemon on; worker_processes 1; pid {self.dir}/nginx.pid; error_log {self.dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  log_format hooks '{LOG_FORMAT}';
  client_body_temp_path {self.dir}/body; proxy_temp_path {self.dir}/proxy;
  fastcgi_temp_path {self.dir}/fastcgi; uwsgi_temp_path {self.dir}/uwsgi; scgi_temp_path {self.dir}/scgi;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{self.port};
    access_log {self.log} hooks;
    location /hook {{ return {status}; }}
  }}
}}
""")
        return path

    def start(self, status=200):
        subprocess.run([self.nginx, "-c", self._config(status), "-p", self.dir], check=True)
        self.running = True

    def answer(self, status):
        subprocess.run([self.nginx, "-c", self._config(status), "-p", self.dir, "-s", "reload"], check=True)
        time.sleep(0.5)  # the old worker finishes and the new one takes over

    def stop(self):
        if self.running:
            subprocess.run([self.nginx, "-c", os.path.join(self.dir, "nginx.conf"), "-p", self.dir, "-s", "stop"])
            self.running = False
            time.sleep(0.3)

    def lines(self):
        if not os.path.exists(self.log):
            return []
        return [line.split() for line in open(self.log) if line.strip()]

    def clear(self):
        open(self.log, "w").close()
        if self.running:
            subprocess.run([self.nginx, "-c", os.path.join(self.dir, "nginx.conf"), "-p", self.dir, "-s", "reopen"])


def make_calls(server, campaign, url, count):
    """Calls of an admin campaign (they are the outbox's delivery keys), all posting to `url`."""
    first = benchlib.psql(server, f"INSERT INTO calls (account_id, campaign_id, call_state_url, numbers_given) "
                         f"SELECT account_id, id, '{url}?call=' || g, 1 FROM campaigns, generate_series(1, {count}) g "
                         f"WHERE id = {campaign} RETURNING id").split()
    return [int(x) for x in first]


def write_events(server, calls, per_call):
    """Writes the events in one transaction; answers the database's clock just before the commit."""
    ids = ",".join(str(c) for c in calls)
    return benchlib.psql(server, "BEGIN; "
                        "INSERT INTO call_events (account_id, call_id, campaign_id, attempt_id, type, payload, occurred_at) "
                        "SELECT c.account_id, c.id, c.campaign_id, c.id * 100 + g, "
                        "(ARRAY['call.dialing','call.answered','call.bridged','call.ended'])[1 + g % 4], "
                        "jsonb_build_object('call_id', c.id, 'uri', '/v1/calls/' || c.id, 'phone', '+12125550100', "
                        "'from', '+12125550142', 'dialed_at', call_events_time(now()), 'step', g), now() "
                        f"FROM calls c, generate_series(1, {per_call}) g WHERE c.id IN ({ids}) ORDER BY c.id, g; "
                        "NOTIFY call_events; SELECT clock_timestamp(); COMMIT")


class Session:
    """One psql process kept open: polling by starting psql every few milliseconds took a quarter
    of the machine's CPU from what is being measured."""

    def __init__(self, server):
        sock = os.path.join(server.data_dir, "pg")
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-h", sock, "-p", "5432", "-U", "postgres", "-d",
                                      "postgres"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def value(self, sql):
        self.proc.stdin.write(sql + ";\n\\echo __end\n")
        self.proc.stdin.flush()
        lines = []
        for line in self.proc.stdout:
            if line.strip() == "__end":
                return lines[0].strip() if lines else None
            lines.append(line)
        raise RuntimeError("psql ended")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def wait_delivered(session, calls, timeout=600):
    ids = ",".join(str(c) for c in calls)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if int(session.value(f"SELECT count(*) FROM call_events WHERE call_id IN ({ids}) AND delivered_at IS NULL")) == 0:
            return time.monotonic()
        time.sleep(0.05)
    raise RuntimeError("webhooks not delivered in time")


def wait_received(receiver, count, timeout=600):
    """Follows nginx's log until `count` requests were answered 2xx (it reads only what was added)."""
    deadline, seen, offset = time.monotonic() + timeout, 0, 0
    while time.monotonic() < deadline:
        if os.path.exists(receiver.log):
            with open(receiver.log) as f:
                f.seek(offset)
                chunk = f.read()
            complete = chunk[:chunk.rfind("\n") + 1]
            offset += len(complete)
            seen += sum(1 for line in complete.splitlines() if line.rsplit(" ", 1)[-1].startswith("2"))
            if seen >= count:
                return
        time.sleep(0.02)
    raise RuntimeError("webhooks not received in time")


def timed_delivery(session, receiver, calls, per_call, started):
    """Seconds from `started` (the database's clock before the commit) to the last outcome recorded."""
    wait_received(receiver, len(calls) * per_call)
    wait_delivered(session, calls)
    ids = ",".join(str(c) for c in calls)
    return float(session.value(f"SELECT extract(epoch FROM max(delivered_at) - '{started}'::timestamptz) FROM call_events "
                               f"WHERE call_id IN ({ids})"))


def cpu_seconds(pids):
    """User and system CPU seconds the processes have used so far (those still running)."""
    total = 0.0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def process_groups(server, receiver):
    """The processes whose CPU each round reports: the fan-out process, PostgreSQL, nginx."""
    fanout, postgres = [], []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{pid}/cmdline").read().split("\0")
        except OSError:
            continue
        if "--role" in cmdline and "fanout" in cmdline and int(pid) in benchlib.descendants(server.proc.pid):
            fanout.append(int(pid))
        elif cmdline[0].endswith("postgres") and any(server.data_dir in arg for arg in cmdline):
            postgres = [int(pid)] + benchlib.descendants(int(pid))
    nginx = int(open(os.path.join(receiver.dir, "nginx.pid")).read())
    return {"fan-out": fanout, "PostgreSQL": postgres, "nginx": [nginx] + benchlib.descendants(nginx)}


def check_receiver(lines, calls, per_call):
    """Every event delivered once as 2xx, in increasing id order per call. Returns a problem or None."""
    ok = [(int(call), int(wid)) for call, wid, status in lines if status.startswith("2") and wid != "-"]
    seen, last = set(), {}
    for call, wid in ok:
        if wid in seen:
            return f"event {wid} delivered twice"
        seen.add(wid)
        if last.get(call, 0) > wid:
            return f"call {call}: event {wid} delivered after {last[call]}"
        last[call] = wid
    if len(seen) != len(calls) * per_call:
        return f"{len(seen)} events delivered, {len(calls) * per_call} written"
    return None


def main():
    nginx = ensure_nginx()
    receiver = Receiver(nginx)
    receiver.start()
    server = benchlib.Impactd(env={"IMPACT_RATE_LIMIT": "0", "IMPACT_ALLOW_PRIVATE_URLS": "1"})
    server.start()
    ours, bare, cpu, problems = [], [], [], []
    try:
        key, auth = server.credentials()
        server.wait_ready("/v1", {"Api-Key": key, "Api-Auth": auth})
        campaign = int(benchlib.psql(server, "INSERT INTO campaigns (account_id, name) SELECT id, 'Webhook bench' FROM accounts "
                                    "ORDER BY id LIMIT 1 RETURNING id").split()[0])
        url = f"http://127.0.0.1:{receiver.port}/hook"
        sample = benchlib.psql(server, "SELECT json_build_object('id', 1000000, 'type', 'call.answered', 'occurred_at', "
                              "call_events_time(now()), 'data', jsonb_build_object('call_id', 1, 'uri', '/v1/calls/1', "
                              "'phone', '+12125550100', 'from', '+12125550142', 'dialed_at', call_events_time(now()), "
                              "'step', 1))::text")
        body_path = os.path.join(receiver.dir, "body.json")
        with open(body_path, "w") as f:
            f.write(sample)
        total = CALLS * EVENTS_PER_CALL
        session = Session(server)
        for _ in range(ROUNDS):
            calls = make_calls(server, campaign, url, CALLS)
            receiver.clear()
            groups = process_groups(server, receiver)
            before = {name: cpu_seconds(pids) for name, pids in groups.items()}
            started = write_events(server, calls, EVENTS_PER_CALL)
            ours.append(total / timed_delivery(session, receiver, calls, EVENTS_PER_CALL, started))
            spent = {name: (cpu_seconds(pids) - before[name]) * 1e6 / total for name, pids in groups.items()}
            problem = check_receiver(receiver.lines(), calls, EVENTS_PER_CALL)
            if problem:
                problems.append(problem)
            nginx_before, children_before = cpu_seconds(groups["nginx"]), resource.getrusage(resource.RUSAGE_CHILDREN)
            result = subprocess.run([str(benchlib.BIN / "curl_blast"), f"{url}?call=0", str(total), str(CONCURRENCY),
                                     body_path], check=True, capture_output=True, text=True)
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            bare.append(json.loads(result.stdout)["per_second"])
            spent["curl_blast"] = (children.ru_utime + children.ru_stime - children_before.ru_utime
                                   - children_before.ru_stime) * 1e6 / total
            spent["nginx (bare)"] = (cpu_seconds(groups["nginx"]) - nginx_before) * 1e6 / total
            cpu.append(spent)
            print(f"  round: ours {ours[-1]:.0f}/s, bare libcurl multi {bare[-1]:.0f}/s; CPU us per delivery: "
                  + ", ".join(f"{name} {value:.1f}" for name, value in spent.items()))

        # The receiver down, then failing, then back: nothing lost, nothing twice, order kept.
        calls = make_calls(server, campaign, url, OUTAGE_CALLS)
        receiver.stop()
        receiver.clear()
        write_events(server, calls, OUTAGE_EVENTS)
        time.sleep(5)
        receiver.start(status=500)
        time.sleep(5)
        receiver.answer(200)
        recovered = time.monotonic()
        drained = wait_delivered(session, calls)
        attempts = int(benchlib.psql(server, "SELECT count(*) FROM call_event_deliveries d JOIN call_events e ON e.id = d.event_id "
                                    f"WHERE e.call_id IN ({','.join(str(c) for c in calls)})"))
        session.close()
        problem = check_receiver(receiver.lines(), calls, OUTAGE_EVENTS)
        if problem:
            problems.append("outage: " + problem)
        print(f"  outage: {OUTAGE_CALLS * OUTAGE_EVENTS} events, {attempts} attempts, drained {drained - recovered:.1f} s "
              f"after recovery; {problem or 'every event once, in order per call'}")
    finally:
        server.stop()
        receiver.stop()

    median_ours, median_bare = benchlib.median(ours), benchlib.median(bare)
    ratios = [o / b for o, b in zip(ours, bare)]
    metrics = [
        {"name": f"call-state webhooks delivered per second ({CALLS} calls x {EVENTS_PER_CALL} events, signed, "
                 f"{CONCURRENCY} in flight, in order per call)",
         "value": round(median_ours), "unit": "deliveries/s", "baseline": round(median_bare),
         "ratio": round(median_ours / median_bare, 3), "ratio_spread": benchlib.spread(ratios),
         "target": ">= 0.7 of a bare libcurl-multi loop",
         "met": median_ours / median_bare >= 0.7 and not problems},
        {"name": "receiver down 5 s, then 500 for 5 s, then up: time to deliver the rest after recovery",
         "value": round(drained - recovered, 1), "unit": "s"},
    ]
    notes = [f"rounds: ours {[round(x) for x in ours]}, bare {[round(x) for x in bare]} per second; the median is kept.",
             "CPU microseconds per delivery, median of the rounds: " + ", ".join(
                 f"{name} {benchlib.median([c[name] for c in cpu]):.1f}" for name in cpu[0]) + ".",
             f"outage round: {OUTAGE_CALLS * OUTAGE_EVENTS} events took {attempts} attempts; "
             + ("; ".join(problems) if problems else "every event delivered exactly once as 2xx, in order per call.")]
    benchlib.write_result("webhooks", metrics, ROUNDS, notes)
    if problems:
        raise SystemExit("webhook delivery lost, repeated or reordered events: " + "; ".join(problems))


if __name__ == "__main__":
    main()
