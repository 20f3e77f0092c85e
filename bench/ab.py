#!/usr/bin/env python3
"""Paired A/B of two doc-serve binaries on one corpus, in one run; prints a Markdown
section on stdout (and writes it to --out).

Each binary gets its own sandbox (HOME, XDG_RUNTIME_DIR, project and state dir), its
project's docs/ a tree of hard links to the corpus (the same files, read in place: a
symlink out of the project root is not walked, see README "What is indexed"), its own
index and its own resident. Then, in R rounds, each measurement is taken on A and B back
to back, the order flipping every round:
- GET /query at 1 connection with keep-alive (wrk), one repeated query (answered from
  the resident's memo after the first time), as bench/search.py does;
- the same with the distinct two-word queries of bench/search.py (every one searched);
- took_ms (the search inside the resident) over those queries asked in turn on one
  keep-alive connection, two passes, the second kept, as bench/search.py does;
- MCP `search_docs` tool calls through `doc-serve mcp` from the official MCP Python SDK,
  with bench/clients.py's worker (one session per binary), beside its in-process
  keep-alive GET /query (not reported), and with bare JSON-RPC lines on another
  `doc-serve mcp` (no SDK), which tells the bridge and resident from the client.
- with --index-rounds N: `index --full` from no index, on --index-scale K copies of the
  corpus (bench/scale.py's copies, built once in a temp dir), each binary in a project of
  its own (hard links to those files), N rounds with the order flipping: wall time and
  peak RSS (ru_maxrss from wait4).
Reported: per metric, the median over rounds of the per-round figures, their min-max, and
new/old both as a ratio of those medians and as the median (min-max) of the per-round
ratios, and in how many rounds B's figure was the larger.

Usage: bench/ab.py --a OLD_BIN --b NEW_BIN [--a-label old] [--b-label new] [--rounds 12]
                   [--secs 4] [--mcp-calls 100] [--index-rounds 0] [--index-scale 1]
                   [--corpus DIR] [--out FILE] [--json FILE]
"""
import argparse, http.client, json, os, shutil, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, HERE)
import common  # noqa: E402
import clients  # noqa: E402
import scale  # noqa: E402

log = common.logger("ab")
REPEATED = "ownership+borrowing+references"


def link_corpus(corpus, project):
    """project/docs as hard links to the corpus files: no bytes copied."""
    docs = os.path.join(project, "docs")
    try:
        shutil.copytree(corpus, docs, copy_function=os.link)
    except (OSError, shutil.Error) as e:
        sys.exit(f"cannot hard-link {corpus} into {docs} ({e}): the temp dir must be on the corpus's "
                 "file system (set TMPDIR)")
    return docs


class RawMcp:
    """`doc-serve mcp` driven with bare JSON-RPC lines (no SDK): what the bridge and the
    resident take for a search_docs call, without the SDK client's own work."""

    def __init__(self, bin_, project, env):
        self.p = subprocess.Popen([bin_, "--path", project, "mcp"], env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.id = 0
        self.rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                "clientInfo": {"name": "bench-ab", "version": "0"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.args = {"name": "search_docs", "arguments": {"query": clients.MCP_QUERY, "limit": clients.MCP_LIMIT}}
        self.reply_bytes = len(self.rpc("tools/call", self.args))

    def send(self, obj):
        self.p.stdin.write(json.dumps(obj) + "\n")
        self.p.stdin.flush()

    def rpc(self, method, params, check=True):
        self.id += 1
        self.send({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params})
        line = self.p.stdout.readline()
        if check:
            self.check(method, line)
        return line

    @staticmethod
    def check(method, line):
        reply = json.loads(line) if line else {}
        if "result" not in reply or reply["result"].get("isError"):
            raise RuntimeError(f"`doc-serve mcp` {method}: {line[:300]!r}")

    def block(self, k):
        """k timed calls; the replies are checked after the clock stops."""
        ts, lines = [], []
        for _ in range(k):
            t0 = time.perf_counter()
            lines.append(self.rpc("tools/call", self.args, check=False))
            ts.append(time.perf_counter() - t0)
        for line in lines:
            self.check("tools/call", line)
        return ts

    def close(self):
        try:
            self.p.stdin.close()
            self.p.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            pass
        common.stop_pid(self.p)


def index_rounds(sides, corpus, copies, rounds, per):
    """`index --full` from no index on `copies` copies of the corpus, each side in its own
    project, the order flipping every round: seconds and peak RSS (kB) into per. Returns the
    number of files and MB indexed."""
    box = common.Sandbox("ds-bench-ab-index-")
    try:
        base = box.path("corpus")
        files, mb = scale.build_corpus(corpus, base, copies, os.devnull)
        os.sync()  # no write-back of the fresh copies during the timed runs
        projects = {s.label: box.path(f"project-{i}") for i, s in enumerate(sides)}
        for proj in projects.values():
            link_corpus(base, proj)
        log(f"{rounds} rounds of index --full on {files} files, {mb:.0f} MB")
        for r in range(rounds):
            for s in (sides if r % 2 == 0 else sides[::-1]):
                proj = projects[s.label]
                shutil.rmtree(os.path.join(proj, ".claude/doc-serve/data"), ignore_errors=True)
                t, peak = common.run_peak([s.bin, "--path", proj, "index", "--full"], env=s.box.env)
                per[s.label]["index_s"].append(t)
                per[s.label]["index_peak"].append(peak)
        return files, mb
    finally:
        box.close()


class Side:
    def __init__(self, label, bin_, corpus, queries):
        self.label, self.bin = label, os.path.abspath(bin_)
        self.box = common.Sandbox(f"ds-bench-ab-{label}-")
        # The MCP worker's keep-alive GET connection waits a whole round between blocks;
        # the resident's header read timeout (request_timeout_seconds, default 10) would
        # close it meanwhile.
        self.box.env["DOC_SERVE_REQUEST_TIMEOUT_SECONDS"] = "3600"
        self.project = self.box.path("project")
        link_corpus(corpus, self.project)
        self.queries = queries
        self.resident = self.worker = self.raw = None
        self.version = subprocess.run([self.bin, "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()

    def start(self, mcp_warm):
        env = self.box.env
        t0 = time.monotonic()
        subprocess.run([self.bin, "--path", self.project, "index"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.index_s = time.monotonic() - t0
        self.resident = common.Resident(self.bin, self.project, env)
        self.resident.settle()
        conn = http.client.HTTPConnection("127.0.0.1", self.resident.port, timeout=60)
        conn.request("GET", f"/query?q={REPEATED}&limit=10", headers={"Authorization": f"Bearer {self.resident.token}"})
        body = conn.getresponse().read()
        conn.close()
        self.repeated_hits = len(json.loads(body)["hits"])
        self.repeated_bytes = len(body)
        if mcp_warm:
            self.worker = clients.McpWorker(self.bin, self.project, self.resident, env)
            check = self.worker.ask(f"warm {mcp_warm}")
            if not check["mcp_chars"] or not check["http_hits"]:
                sys.exit(f"{self.label}: MCP or HTTP search returned nothing: {check}")
            self.mcp_chars = check["mcp_chars"]
        self.raw = RawMcp(self.bin, self.project, env)
        self.raw.block(mcp_warm or 20)

    def wrk_repeated(self, secs):
        url = self.resident.base_url + f"/query?q={REPEATED}&limit=10"
        return common.wrk(url, 1, secs, self.resident.auth)

    def wrk_distinct(self, secs):
        return common.wrk(self.resident.base_url, 1, secs, self.resident.auth, self.queries)

    def took(self):
        """took_ms (µs) of each distinct query, second of two passes; and reply sizes."""
        return common.took_ms(self.resident.port, self.resident.token, self.queries)

    def close(self):
        if self.worker:
            self.worker.close()
        if self.raw:
            self.raw.close()
        if self.resident:
            self.resident.stop()
        else:
            subprocess.run([self.bin, "--path", self.project, "stop"], env=self.box.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.box.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="the old binary")
    ap.add_argument("--b", required=True, help="the new binary")
    ap.add_argument("--a-label", default="old")
    ap.add_argument("--b-label", default="new")
    ap.add_argument("--corpus", default=common.DEFAULT_CORPUS)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--secs", type=int, default=4, help="seconds per wrk run")
    ap.add_argument("--mcp-calls", type=int, default=100, help="MCP calls per binary per round")
    ap.add_argument("--index-rounds", type=int, default=0, help="rounds of index --full per binary")
    ap.add_argument("--index-scale", type=int, default=1, help="copies of the corpus to index (bench/scale.py's)")
    ap.add_argument("--out", help="also write the Markdown here")
    ap.add_argument("--json", help="write every per-round figure here")
    a = ap.parse_args()
    corpus = os.path.abspath(a.corpus)
    if not os.path.isdir(corpus):
        sys.exit(f"no corpus at {corpus}: pass --corpus DIR")
    no_mcp = clients.mcp_available()
    if no_mcp:
        log(f"MCP skipped: {no_mcp}")

    tmp = common.Sandbox("ds-bench-ab-")
    queries = tmp.path("queries.txt")
    n_queries = common.distinct_queries(queries)
    files = common.corpus_files(corpus)
    mb = sum(os.path.getsize(f) for f in files) / 1e6
    sides = []
    load = [os.getloadavg()[0]]
    t_start = time.monotonic()
    try:
        for label, bin_ in ((a.a_label, a.a), (a.b_label, a.b)):
            s = Side(label, bin_, corpus, queries)
            sides.append(s)
            log(f"{label}: index + start on {len(files)} files, {mb:.1f} MB")
            s.start(0 if no_mcp else 20)
        A, B = sides
        for s in sides:  # warm-up, not kept
            s.wrk_repeated(1), s.wrk_distinct(1), s.took()
        metrics = ["rep_p50", "rep_p99", "rep_rps", "dist_p50", "dist_p99", "dist_rps",
                   "took_p50", "took_p99", "raw_p50", "raw_p90", "mcp_p50", "mcp_p90", "index_s", "index_peak"]
        per = {s.label: {m: [] for m in metrics} for s in sides}
        size = {s.label: [] for s in sides}
        log(f"{a.rounds} rounds: wrk c1 repeated + distinct ({a.secs} s each), took_ms over {n_queries} "
            f"queries, {a.mcp_calls} MCP calls; per binary, order flipping each round")
        for r in range(a.rounds):
            order = (A, B) if r % 2 == 0 else (B, A)
            for s in order:
                w = s.wrk_repeated(a.secs)
                per[s.label]["rep_p50"].append(w["p50"]), per[s.label]["rep_p99"].append(w["p99"])
                per[s.label]["rep_rps"].append(w["rps"])
            for s in order:
                w = s.wrk_distinct(a.secs)
                per[s.label]["dist_p50"].append(w["p50"]), per[s.label]["dist_p99"].append(w["p99"])
                per[s.label]["dist_rps"].append(w["rps"])
            for s in order:
                took, sz = s.took()
                per[s.label]["took_p50"].append(common.med(took))
                per[s.label]["took_p99"].append(common.pctl(took, 99))
                size[s.label] += sz
            for s in order:
                ts = s.raw.block(a.mcp_calls)
                per[s.label]["raw_p50"].append(common.med(ts) * 1e6)
                per[s.label]["raw_p90"].append(common.pctl(ts, 90) * 1e6)
            if not no_mcp:
                for s in order:
                    b = s.worker.ask(f"block {a.mcp_calls}")
                    per[s.label]["mcp_p50"].append(common.med(b["mcp"]) * 1e6)
                    per[s.label]["mcp_p90"].append(common.pctl(b["mcp"], 90) * 1e6)
            load.append(os.getloadavg()[0])
            log(f"round {r + 1}/{a.rounds}: distinct p50 {A.label} {per[A.label]['dist_p50'][-1]:.0f} µs, "
                f"{B.label} {per[B.label]['dist_p50'][-1]:.0f} µs; load {load[-1]:.2f}")
        if a.index_rounds:
            index_files, index_mb = index_rounds(sides, corpus, a.index_scale, a.index_rounds, per)
            load.append(os.getloadavg()[0])
    finally:
        for s in sides:
            s.close()
        tmp.close()
    wall = time.monotonic() - t_start

    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rounds": a.rounds, "secs": a.secs, "mcp_calls": a.mcp_calls, "per_round": per,
                       "load": load}, f, indent=1)

    med = common.med
    def fmt(m, v):
        if m == "index_s":
            return f"{v:.2f} s"
        if m == "index_peak":
            return common.mib(v)
        return f"{v:.0f}" if m.endswith("rps") else common.fmt_us(v)
    rows = [("GET /query c1, one repeated query (memo): p50", "rep_p50"), ("… p99", "rep_p99"),
            ("… requests/s", "rep_rps"),
            (f"GET /query c1, {n_queries} distinct queries: p50", "dist_p50"), ("… p99", "dist_p99"),
            ("… requests/s", "dist_rps"),
            ("took_ms in the resident, distinct queries: p50", "took_p50"), ("… p99", "took_p99"),
            ("MCP search_docs via `doc-serve mcp`, bare JSON-RPC client: p50", "raw_p50"), ("… p90", "raw_p90")]
    if not no_mcp:
        rows += [("MCP search_docs via `doc-serve mcp`, MCP Python SDK client: p50", "mcp_p50"), ("… p90", "mcp_p90")]
    if a.index_rounds:
        rows += [(f"index --full, {a.index_scale}x the corpus: time", "index_s"), ("… peak RSS", "index_peak")]
    la, lb = A.label, B.label
    out = []
    p = out.append
    p(f"\n## Paired A/B: {la} vs {lb} (corpus: `{os.path.relpath(corpus, ROOT)}`, {len(files)} files, {mb:.1f} MB)\n")
    p(f"`{la}`: {A.bin} ({A.version}); `{lb}`: {B.bin} ({B.version}). {a.rounds} rounds; in each, every "
      f"measurement is taken on both binaries back to back, the first one alternating round by round. "
      f"Per binary: median over rounds of the per-round figure, and (min-max) of the per-round figures; "
      f"{lb}/{la} as the ratio of those medians, as the median (min-max) of the {a.rounds} per-round ratios, "
      f"and in how many rounds {lb}'s figure was the larger.\n")
    p(f"| metric | {la} | {lb} | {lb}/{la} | per-round {lb}/{la} | rounds {lb} > {la} |\n|---|---|---|---|---|---|")
    for name, m in rows:
        xa, xb = per[la][m], per[lb][m]
        ratios = [y / x for x, y in zip(xa, xb) if x]
        p(f"| {name} | {fmt(m, med(xa))} ({fmt(m, min(xa))}-{fmt(m, max(xa))}) | "
          f"{fmt(m, med(xb))} ({fmt(m, min(xb))}-{fmt(m, max(xb))}) | {med(xb) / med(xa):.2f}x | "
          f"{med(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) | {sum(r > 1 for r in ratios)}/{len(ratios)} |")
    p(f"\nwrk, 1 connection, keep-alive, {a.secs} s per run. Repeated: `{REPEATED.replace('+', ' ')}`, "
      f"limit 10 ({la}: {A.repeated_hits} hits, {A.repeated_bytes / 1000:.1f} kB; {lb}: {B.repeated_hits} hits, "
      f"{B.repeated_bytes / 1000:.1f} kB). Distinct: bench/search.py's cycle of {n_queries} two-word queries, "
      f"limit 10 (reply median {la} {med(size[la]) / 1000:.2f} kB, {lb} {med(size[lb]) / 1000:.2f} kB). "
      f"took_ms: the {n_queries} queries in turn on one connection, second of two passes.")
    p(f"MCP, bare client: this script writes each tools/call line to `doc-serve mcp` and reads the reply line, "
      f"{a.mcp_calls} calls per round, same arguments as below (reply {la} {A.raw.reply_bytes} B, "
      f"{lb} {B.raw.reply_bytes} B).")
    if not no_mcp:
        p(f"MCP, SDK client: bench/clients.py's worker, one SDK session per binary, `search_docs` "
          f"{{\"query\": \"{clients.MCP_QUERY}\", \"limit\": {clients.MCP_LIMIT}}} (answered from the memo), "
          f"{a.mcp_calls} calls per round (alternating, in that worker, with as many GETs of the same "
          f"search, not reported: they pay for the SDK's work on the calls beside them); text content {la} {A.mcp_chars} chars, {lb} {B.mcp_chars} chars.")
    else:
        p(f"MCP skipped: {no_mcp}.")
    if a.index_rounds:
        p(f"Full index: `index --full` from no index on {a.index_scale} copies of the corpus (bench/scale.py's: "
          f"{index_files} files, {index_mb:.0f} MB), each binary in a project of its own, {a.index_rounds} rounds; "
          "peak RSS is ru_maxrss from wait4.")
    p(f"Load average (1 min) during the run: {min(load):.2f}-{max(load):.2f} on {os.cpu_count()} CPUs; "
      f"wall {wall / 60:.1f} min.\n")
    text = "\n".join(out)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text.lstrip("\n") + "\n")


if __name__ == "__main__":
    main()
