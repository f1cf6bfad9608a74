"""Helpers shared by the benchmark drivers: starting impactd, machine description, results."""
import datetime
import json
import os
import pathlib
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUICK = os.environ.get("BENCH_QUICK", "0") == "1"
BIN = pathlib.Path(os.environ.get("BENCH_BIN", ROOT / "build" / "bin"))
RESULTS = pathlib.Path(os.environ.get("BENCH_RESULTS", ROOT / "bench" / "results"))


def machine():
    model = "unknown cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(values):
    return statistics.median(values) if values else None


def spread(values):
    """The lowest and highest of a figure's runs, reported beside its median (a metric's
    "value_spread" or "ratio_spread")."""
    return [round(min(values), 3), round(max(values), 3)] if values else None


class Impactd:
    """One impactd instance with its own data dir and ports, the embedded PostgreSQL included."""

    def __init__(self, data_dir=None, env=None):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="impact-bench.", dir="/tmp")
        os.chmod(self.data_dir, 0o755)
        self.port = free_port()
        self.tls_port = free_port()
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.log = open(os.path.join(self.data_dir, "impactd.log"), "ab")

    def start(self):
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(BIN / "impactd"), "--data-dir", self.data_dir, "--listen", f"127.0.0.1:{self.port}",
             "--tls-listen", f"127.0.0.1:{self.tls_port}"],
            env=self.env, stdout=self.log, stderr=self.log)
        return started

    def credentials(self, timeout=60):
        path = os.path.join(self.data_dir, "dev-credentials.env")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                values = dict(line.strip().split("=", 1) for line in open(path) if "=" in line)
                if "IMPACT_API_KEY" in values and "IMPACT_API_AUTH" in values:
                    return values["IMPACT_API_KEY"], values["IMPACT_API_AUTH"]
            time.sleep(0.05)
        raise RuntimeError("impactd wrote no credentials; see " + path)

    def url(self, path, tls=False):
        return f"https://127.0.0.1:{self.tls_port}{path}" if tls else f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, headers=None):
        request = urllib.request.Request(self.url(path), headers=headers or {})
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()

    def wait_ready(self, path, headers, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status, body = self.get(path, headers)
                if status == 200:
                    return body
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("impactd exited early; see " + self.log.name)
            time.sleep(0.01)
        raise RuntimeError(f"{path} not ready after {timeout}s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def api(server, key, auth, method, path, body=None, content_type="application/json"):
    """One API request with the account's key; a dict or list body is sent as JSON, bytes as they
    are. Answers the parsed JSON (None for an empty body)."""
    headers = {"Api-Key": key, "Api-Auth": auth}
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    req = urllib.request.Request(server.url(path), data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.loads(response.read() or b"null")


def psql(server, sql):
    """Runs `sql` in the instance's embedded PostgreSQL; answers its unaligned output."""
    out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-h", os.path.join(server.data_dir, "pg"), "-p", "5432",
                          "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def afternoon_zone():
    """A fixed-offset zone where it is about two in the afternoon now: calling hours are judged on
    the real clock in each number's zone, so benchmarks put their numbers there (the one step the
    API does not offer) and run at any hour."""
    offset = 14 - time.gmtime().tm_hour  # hours east of UTC where it is about 14:00 now
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # POSIX sign: Etc/GMT-3 is UTC+3


def json_lines(stream, program):
    """The JSON objects a C benchmark printed one per line (other lines skipped), and the number
    of runs they report; exits naming `program` when it printed none."""
    measurements = [json.loads(line) for line in (raw.strip() for raw in stream) if line.startswith("{")]
    if not measurements:
        raise SystemExit(f"{program} printed no measurements")
    return measurements, max(m.get("runs", 0) for m in measurements)


def write_result(name, metrics, runs, notes=()):
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": name,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "quick": QUICK,
        "runs": runs,
        "command": "bench/run.sh" + (" --quick" if QUICK else "") + f" {name}",
        "metrics": metrics,
        "notes": list(notes),
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    for m in metrics:
        print(f"  {m['name']}: {m.get('value')} {m.get('unit', '')}"
              + (f" (baseline {m['baseline']}, ratio {m['ratio']:.3f})" if m.get("ratio") is not None else ""))


NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"


def ensure_nchan(bench):
    """nginx with the nchan module, installed when missing (the event benchmarks' peer)."""
    if not os.path.exists(NCHAN_MODULE) or shutil.which("nginx") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "nginx-light", "libnginx-mod-nchan"],
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if not os.path.exists(NCHAN_MODULE):
        raise SystemExit(f"bench/{bench}: the baseline needs nginx with nchan ({NCHAN_MODULE}): "
                         "apt-get install nginx-light libnginx-mod-nchan")


class Nchan:
    """A private nginx with nchan: POST /pub/<channel> publishes, GET /sub/<channel> is an
    EventSource. One worker per core, as impactd runs one HTTP thread per core."""

    def __init__(self, connections=4096, buffer=64):
        self.dir = tempfile.mkdtemp(prefix="impact-bench-nchan.", dir="/tmp")
        self.port = free_port()
        self.nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"""load_module {NCHAN_MODULE};
daemon on; worker_processes {os.cpu_count()}; worker_rlimit_nofile {2 * connections + 1024};
pid {self.dir}/nginx.pid; error_log {self.dir}/error.log warn;
events {{ worker_connections {connections + 512}; }}
http {{
  access_log off; keepalive_requests 100000000;
  client_body_temp_path {self.dir}/body; proxy_temp_path {self.dir}/proxy;
  fastcgi_temp_path {self.dir}/fastcgi; uwsgi_temp_path {self.dir}/uwsgi; scgi_temp_path {self.dir}/scgi;
  server {{
    listen 127.0.0.1:{self.port} backlog=4096;
    location ~ ^/pub/(\\w+)$ {{ nchan_publisher; nchan_channel_id $1; nchan_message_buffer_length {buffer}; }}
    location ~ ^/sub/(\\w+)$ {{ nchan_subscriber eventsource; nchan_channel_id $1; }}
  }}
}}
""")
        subprocess.run([self.nginx, "-c", self.conf, "-p", self.dir], check=True)

    def pids(self):
        """The master and its workers (forked after the pid file is written: waited for)."""
        master = int(open(os.path.join(self.dir, "nginx.pid")).read())
        deadline = time.monotonic() + 10
        while len(descendants(master)) < os.cpu_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        return [master] + descendants(master)

    def stop(self):
        subprocess.run([self.nginx, "-c", self.conf, "-p", self.dir, "-s", "stop"], capture_output=True)
        time.sleep(0.5)
        shutil.rmtree(self.dir, ignore_errors=True)


def descendants(pid):
    """Every process below `pid`, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
