"""Helpers shared by the Python benchmarks in bench/ (cold start, memory, scale, search).

Everything here runs doc-serve in an isolated HOME and XDG_RUNTIME_DIR under a temp dir,
talks to it over loopback only, and stops only the processes it started, by PID.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

LIB = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(LIB)
ROOT = os.path.dirname(BENCH)
DEFAULT_CORPUS = os.path.join(ROOT, "../shared/corpus/docs")
PCTL_LUA = os.path.join(LIB, "percentiles.lua")


def logger(tag):
    def log(msg):
        print(f"[bench {tag} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
    return log


def section_args(rounds=None, scales=False):
    """The arguments every section script takes (bench/run passes them all), plus
    --rounds (default `rounds`) and --scales where a section has them."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--doc-serve", required=True)
    ap.add_argument("--floor", required=True)
    ap.add_argument("--corpus", default=DEFAULT_CORPUS)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--results", help="write this section's raw figures (JSON) here")
    if rounds is not False:
        ap.add_argument("--rounds", type=int, default=rounds)
    if scales:
        ap.add_argument("--scales")
    return ap.parse_args()


def section_corpus(a, title):
    """The corpus a section runs on (its rust-book part with --quick), or None after
    printing the section's heading and why it is skipped."""
    corpus = os.path.abspath(os.path.join(a.corpus, "rust-book") if a.quick else a.corpus)
    if os.path.isdir(corpus):
        return corpus
    print(f"\n## {title}\n\nSkipped: no corpus at `{corpus}`.\n")
    return None


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def pctl(xs, p):
    """The p-th percentile (0-100) of xs, nearest rank."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))]


def mib(kb):
    return f"{kb / 1024:.1f} MiB"


def fmt_ms(s):
    """Seconds as ms or s, three significant figures or so."""
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    ms = s * 1000
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def fmt_us(us):
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} µs"


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


class Sandbox:
    """A temp dir with its own HOME and XDG_RUNTIME_DIR; removed by close()."""

    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("TMPDIR"))
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("DOC_SERVE_", "LISTEN_")) and k != "NOTIFY_SOCKET"}
        self.env.update(HOME=os.path.join(self.dir, "home"), XDG_RUNTIME_DIR=os.path.join(self.dir, "run"))
        os.makedirs(self.env["HOME"])
        os.makedirs(self.env["XDG_RUNTIME_DIR"], mode=0o700)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def run_peak(cmd, env=None, stdin=None):
    """Runs cmd to completion; returns (wall seconds, peak RSS in kB from wait4's ru_maxrss)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stderr.close()
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({p.returncode}): {err.decode(errors='replace')[-2000:]}")
    return wall, ru.ru_maxrss


def timed(cmd, env=None):
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.monotonic() - t0


def proc_status(pid):
    """VmRSS, VmHWM, RssAnon, RssFile (kB) and Threads of a live process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[k] = int(v.split()[0])
    return out


def tantivy_meta(path):
    """An empty tantivy-cli index (title + body, en_stem, stored), as bench/search.py uses."""
    field = lambda n: {"name": n, "type": "text", "options": {"indexing": {"record": "position",
        "fieldnorms": True, "tokenizer": "en_stem"}, "stored": True, "fast": False}}
    os.makedirs(path)
    with open(os.path.join(path, "meta.json"), "w") as f:
        json.dump({"index_settings": {"docstore_compression": "lz4", "docstore_blocksize": 16384},
                   "segments": [], "schema": [field("title"), field("body")], "opstamp": 0}, f)


def write_tantivy_docs(files, out_path):
    """One JSON document per file (title = file name, body = text), for `tantivy index`."""
    with open(out_path, "w") as out:
        for f in files:
            out.write(json.dumps({"title": os.path.basename(f), "body": open(f, errors="replace").read()}) + "\n")


def tantivy_index(docs_jsonl, idx):
    """`tantivy index` into a fresh index at idx: (seconds, peak RSS kB)."""
    tantivy_meta(idx)
    with open(docs_jsonl) as stdin:
        return run_peak(["tantivy", "index", "-i", idx], stdin=stdin)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Resident:
    """A doc-serve resident started with `doc-serve start --json`, stopped by `stop`
    (which signals only the PID it can prove is its own), with a keep-alive client."""

    def __init__(self, bin_, project, env):
        self.cmd = [bin_, "--path", project]
        self.env = env
        out = subprocess.run(self.cmd + ["start", "--json"], env=env, check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        info = json.loads(out)
        rt = json.load(open(os.path.join(project, ".claude/doc-serve/runtime.json")))
        self.pid = int(info.get("pid") or rt["pid"])
        self.port = rt["port"]
        self.base_url = rt["base_url"]
        self.token = rt["token"]
        self.auth = f"Authorization: Bearer {self.token}"
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def request(self, method, path, body=None):
        return _request(self.conn, self.token, method, path, body)

    def client(self):
        """Another keep-alive connection to the resident (for concurrent load)."""
        return _Client(self.port, self.token)

    def settle(self):
        """Returns once the start-up reconciliation is done: a POST /index queues behind it
        on the single indexer thread, and answers only when its own (no-op) pass is done."""
        return self.request("POST", "/index", {"full": False})

    def status(self):
        return proc_status(self.pid)

    def stop(self):
        self.conn.close()
        subprocess.run(self.cmd + ["stop"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _request(conn, token, method, path, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data)


class _Client:
    def __init__(self, port, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.token = token

    def request(self, method, path, body=None):
        return _request(self.conn, self.token, method, path, body)

    def close(self):
        self.conn.close()


class Floor:
    """bench/floor bound to an OS-assigned port; killed by its PID."""

    def __init__(self, bin_):
        self.p = subprocess.Popen([bin_], stdout=subprocess.PIPE, text=True)
        self.pid = self.p.pid
        self.port = int(self.p.stdout.readline().strip())
        self.url = f"http://127.0.0.1:{self.port}/health"

    def stop(self):
        self.p.kill()
        self.p.wait()


WRK_UNIT = {"us": 1, "ms": 1000, "s": 1_000_000}


QUERIES_LUA = os.path.join(LIB, "queries.lua")
# Distinct queries for queries.lua: every pair of these words, more than the resident
# keeps answers for (64), so a cycle through them never repeats a kept answer.
QUERY_WORDS = ("error handling trait lifetime closure iterator thread async macro module "
               "cargo test string vector pattern match struct enum generic reference "
               "config metrics exporter collector span sampling").split()


def took_ms(port, token, queries_file):
    """The search's own time inside a resident: each reply's took_ms (µs) over the queries of
    `queries_file` (see distinct_queries), asked in turn on one keep-alive connection, twice; the
    second pass is kept, each of its queries last asked a whole cycle (more than the resident's
    64 remembered answers) before. Returns (took µs, reply bytes), one each a query."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    with open(queries_file) as f:
        qs = f.read().split()
    try:
        for _ in range(2):
            took, size = [], []
            for q in qs:
                conn.request("GET", f"/query?limit=10&q={q}", headers={"Authorization": f"Bearer {token}"})
                body = conn.getresponse().read()
                took.append(json.loads(body)["took_ms"] * 1000)
                size.append(len(body))
    finally:
        conn.close()
    return took, size


def distinct_queries(path):
    """Writes the queries for queries.lua into path; returns their count."""
    qs = [f"{a}+{b}" for i, a in enumerate(QUERY_WORDS) for b in QUERY_WORDS[i + 1:]]
    with open(path, "w") as f:
        f.write("\n".join(qs) + "\n")
    return len(qs)


def wrk(url, conns, secs, header=None, queries=None):
    """wrk --latency with bench/lib/percentiles.lua, or with queries.lua cycling through
    the queries file `queries` (url is then the base URL). Returns p50 and p99 (µs),
    requests/s and 'dist': {percentile: µs} from wrk's full latency histogram."""
    script = QUERIES_LUA if queries else PCTL_LUA
    cmd = ["wrk", f"-c{conns}", f"-t{1 if conns == 1 else 2}", f"-d{secs}s", "--latency", "-s", script, url]
    if header:
        cmd[1:1] = ["-H", header]
    env = dict(os.environ, WRK_PCTL=PCTL_LUA, WRK_QUERIES=queries or "")
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=env).stdout
    if re.search(r"Non-2xx|Socket errors", out):
        sys.exit(f"wrk saw errors against {url}:\n{out}")
    lat = {m.group(1): float(m.group(2)) * WRK_UNIT[m.group(3)]
           for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    dist = {float(p): float(v) for p, v in re.findall(r"^PCTL (\S+) (\S+)$", out, re.M)}
    return {"p50": lat["50"], "p99": lat["99"], "rps": rps, "dist": dist}


def median_dist(dists):
    """Per percentile, the median across runs."""
    keys = sorted(set().union(*dists)) if dists else []
    return {k: med([d[k] for d in dists if k in d]) for k in keys}


def save_json(results_dir, name, data):
    if results_dir:
        os.makedirs(results_dir, exist_ok=True)
        with open(os.path.join(results_dir, name), "w") as f:
            json.dump(data, f, indent=1)


def corpus_files(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


def copy_corpus(src, project):
    shutil.copytree(src, os.path.join(project, "docs"))
    return os.path.join(project, "docs")


def stop_pid(p, timeout=10):
    """SIGTERM to a child we started (a Popen), SIGKILL if it lingers; returns its exit code."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode
