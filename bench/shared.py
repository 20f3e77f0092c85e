#!/usr/bin/env python3
"""The shared daemon vs project-mode residents: memory for 30 projects, /query latency.

30 small projects (N Markdown files each, distinct files spread over the corpus; N = 20,
or 3 with --quick on rust-book), and in each of R rounds, the two sides in alternating
order, each from no index (state dirs removed before each side):
- residents: `doc-serve --path P start --json` for each project, wait until each has
  indexed its N files (GET /status: index.indexing false, index.files = N), the same few
  GET /query on each, 1 s quiet, then the sum over the 30 PIDs of VmRSS, RssAnon, RssFile,
  Pss (smaps_rollup: shared pages such as the binary's split between the processes) and
  VmHWM from /proc; `stop` each.
- the shared daemon: `doc-serve start --shared --json` (state in the sandbox's
  ~/.doc-serve, shared_config.json {"port": 0}), POST /projects for the 30 roots, wait
  until all are indexed (GET /projects), the same queries under /projects/{id}/query,
  1 s quiet, then the daemon's figures; `stop --shared`.
Also the wall time from the first start to all 30 indexed, and whether both sides gave
the same hits (path and lines) for every query.
Then /query latency on one of the projects, its resident and the daemon (all 30
registered) up at once, in interleaved rounds: p50 of GET with keep-alive by wrk -c1 with
percentiles.lua on one repeated query (queries.lua writes /query at the top of the path,
which cannot reach /projects/{id}/query), and by one http.client keep-alive connection
per side cycling through distinct queries (more than a server keeps answers for, so each
is a search), the two sides alternating request by request.
Prints a Markdown section on stdout.

Usage: bench/shared.py --doc-serve BIN --floor BIN [--corpus DIR] [--quick] [--rounds N] [--results DIR]
"""
import http.client, json, os, shutil, subprocess, sys, time, urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from common import (ROOT, Resident, Sandbox, corpus_files, distinct_queries, logger, med, mib, proc_status,
                    save_json, section_args, section_corpus, wrk)

log = logger("shared")

PROJECTS = 30
QUERIES = [
    "ownership borrowing references",
    "error handling",
    "configuration file",
    "install",
    "test",
    "template",
    "api version",
    "performance",
]
LAT_QUERY = "error handling"
KEYS = ("VmRSS", "RssAnon", "RssFile", "Pss", "VmHWM")
TARGET = 5  # the daemon's VmRSS at most one fifth of the residents' sum


def mem(pid):
    """proc_status plus Pss (kB) from /proc/PID/smaps_rollup."""
    st = proc_status(pid)
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                st["Pss"] = int(line.split()[1])
    return st


def qpath(q, limit=10):
    return f"query?q={urllib.parse.quote_plus(q)}&limit={limit}"


def hits_key(answer):
    return [(h["path"], h["line_start"], h["line_end"], round(h["score"], 5)) for h in answer["hits"]]


def compare(x, y):
    """0: the same hits; 1: the same scores, but another order among equally scored hits
    (or another one of them at the cut-off); 2: different scores."""
    if x == y:
        return 0
    return 1 if [h[3] for h in x] == [h[3] for h in y] else 2


def wait_until(done, what, timeout=300):
    t0 = time.monotonic()
    while True:
        last = done()
        if last is True:
            return
        if time.monotonic() - t0 > timeout:
            sys.exit(f"timed out after {timeout} s waiting for {what}: {last}")
        time.sleep(0.05)


def indexed(index, n):
    return not index["indexing"] and index["files"] == n


def make_projects(sb, corpus, per):
    """PROJECTS roots under the sandbox, each with `per` distinct Markdown files of the
    corpus (spread over it, dealt round-robin), under docs/ with their relative paths."""
    files = [f for f in corpus_files(corpus) if f.endswith(".md")]
    need = PROJECTS * per
    if len(files) < need:
        sys.exit(f"{corpus} has {len(files)} Markdown files, {need} needed")
    picked = files[::len(files) // need][:need]
    roots = []
    for i in range(PROJECTS):
        root = sb.path("projects", f"p{i:02d}")
        for f in picked[i::PROJECTS]:
            dst = os.path.join(root, "docs", os.path.relpath(f, corpus))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(f, dst)
        roots.append(root)
    return roots, sum(os.path.getsize(f) for f in picked)


class Daemon:
    """The shared daemon, spawned by `doc-serve start --shared --json`, stopped by
    `stop --shared`, with a keep-alive client."""

    def __init__(self, bin_, env):
        self.bin, self.env = bin_, env
        out = subprocess.run([bin_, "start", "--shared", "--json"], env=env, cwd=env["HOME"], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        info = json.loads(out)
        if info.get("existing"):
            sys.exit(f"start --shared found a daemon already running: {out}")
        rt = json.load(open(os.path.join(env["HOME"], ".doc-serve/runtime.json")))
        self.pid = int(info.get("pid") or rt["pid"])
        self.port, self.base_url, self.token = rt["port"], rt["base_url"], rt["token"]
        self.auth = f"Authorization: Bearer {self.token}"
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def request(self, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"daemon {method} {path}: {r.status} {data[:300]!r}")
        return json.loads(data)

    def register(self, roots):
        return [self.request("POST", "/projects", {"root": r})["id"] for r in roots]

    def wait_indexed(self, ids, per):
        want = set(ids)

        def done():
            ps = {p["id"]: p for p in self.request("GET", "/projects")["projects"] if p["id"] in want}
            late = [i for i in want if i not in ps or ps[i]["error"] or not indexed(ps[i]["index"], per)]
            if late:
                p = ps.get(late[0], {})
                return f"{len(late)} projects not indexed, e.g. {late[0]}: {p.get('error')} {p.get('index')}"
            q = self.request("GET", "/status")["projects"]["indexing"]
            return True if not q["running"] and not q["queued"] else f"indexing {q}"
        wait_until(done, "the daemon's projects to be indexed")

    def stop(self):
        self.conn.close()
        subprocess.run([self.bin, "stop", "--shared"], env=self.env, cwd=self.env["HOME"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fresh_state(sb, roots):
    """No index on either side: the roots' .claude and the daemon's ~/.doc-serve (only
    its shared_config.json, port 0, is rewritten). Only while nothing runs."""
    for r in roots:
        shutil.rmtree(os.path.join(r, ".claude"), ignore_errors=True)
    state = os.path.join(sb.env["HOME"], ".doc-serve")
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(state, mode=0o700)
    with open(os.path.join(state, "shared_config.json"), "w") as f:
        json.dump({"port": 0}, f)


def residents_side(a, sb, roots, per):
    """-> (memory sums, per-resident VmRSS, seconds to all indexed, answers per project)."""
    res = []
    try:
        t0 = time.monotonic()
        for r in roots:
            res.append(Resident(a.doc_serve, r, sb.env))
        pending = list(res)

        def done():
            pending[:] = [x for x in pending if not indexed(x.request("GET", "/status")["index"], per)]
            return True if not pending else f"{len(pending)} residents not indexed"
        wait_until(done, "the residents to be indexed")
        secs = time.monotonic() - t0
        answers = [[hits_key(x.request("GET", "/" + qpath(q))) for q in QUERIES] for x in res]
        time.sleep(1)
        sts = [mem(x.pid) for x in res]
        return {k: sum(s[k] for s in sts) for k in KEYS}, [s["VmRSS"] for s in sts], secs, answers
    finally:
        for x in res:
            x.stop()


def daemon_side(a, sb, roots, per):
    """-> (memory, VmRSS right after start, seconds to all indexed, answers per project)."""
    t0 = time.monotonic()
    d = Daemon(a.doc_serve, sb.env)
    try:
        base = mem(d.pid)["VmRSS"]
        ids = d.register(roots)
        d.wait_indexed(ids, per)
        secs = time.monotonic() - t0
        answers = [[hits_key(d.request("GET", f"/projects/{i}/" + qpath(q))) for q in QUERIES] for i in ids]
        time.sleep(1)
        st = mem(d.pid)
        return {k: st[k] for k in KEYS}, base, secs, answers, st["Threads"]
    finally:
        d.stop()


def timed_get(conn, path, header):
    t0 = time.perf_counter()
    conn.request("GET", path, headers=header)
    r = conn.getresponse()
    body = r.read()
    dt = time.perf_counter() - t0
    if r.status != 200:
        raise RuntimeError(f"GET {path}: {r.status} {body[:300]!r}")
    return dt


def latency(a, sb, roots, per, rounds, secs, nq):
    """Project 0 on its resident and on the daemon (all roots registered), both up."""
    d = Daemon(a.doc_serve, sb.env)
    res, conns = None, []
    try:
        ids = d.register(roots)
        d.wait_indexed(ids, per)
        res = Resident(a.doc_serve, roots[0], sb.env)
        wait_until(lambda: indexed(res.request("GET", "/status")["index"], per) or "not indexed",
                   "the resident to be indexed")
        prefix = {"resident": "/", "daemon": f"/projects/{ids[0]}/"}
        base = {"resident": res.base_url, "daemon": d.base_url}
        auth = {"resident": res.auth, "daemon": d.auth}
        hdr = {s: {"Authorization": auth[s].split(": ", 1)[1]} for s in auth}
        url = {s: base[s] + prefix[s] + qpath(LAT_QUERY) for s in base}
        same = compare(hits_key(res.request("GET", prefix["resident"] + qpath(LAT_QUERY))),
                       hits_key(d.request("GET", prefix["daemon"] + qpath(LAT_QUERY)))) < 2
        qfile = sb.path("queries.txt")
        distinct_queries(qfile)
        qs = open(qfile).read().split()[:nq]
        paths = {s: [f"{prefix[s]}query?limit=10&q={q}" for q in qs] for s in prefix}
        conns = {s: http.client.HTTPConnection("127.0.0.1", int(base[s].rsplit(":", 1)[1]), timeout=60)
                 for s in base}

        log("warm-up: wrk 1 s per side, one pass of the distinct queries")
        for s in url:
            wrk(url[s], 1, 1, header=auth[s])
            for p in paths[s]:
                timed_get(conns[s], p, hdr[s])
        out = {s: {"wrk": [], "loop": []} for s in url}
        log(f"{rounds} rounds: wrk -c1 {secs} s per side, then {nq} distinct queries per side, alternating")
        for r in range(rounds):
            for s in (("resident", "daemon") if r % 2 == 0 else ("daemon", "resident")):
                w = wrk(url[s], 1, secs, header=auth[s])
                out[s]["wrk"].append({k: w[k] for k in ("p50", "p99", "rps")})
            t = {s: [] for s in url}
            for i in range(nq):
                for s in (("resident", "daemon") if (i + r) % 2 == 0 else ("daemon", "resident")):
                    t[s].append(timed_get(conns[s], paths[s][i], hdr[s]) * 1e6)
            for s in t:
                out[s]["loop"].append(med(t[s]))
        return out, same, ids[0]
    finally:
        for c in (conns.values() if conns else ()):
            c.close()
        if res:
            res.stop()
        d.stop()


def cleanup(a, sb, roots):
    """Whatever may still run after an error: residents with a runtime.json, the daemon."""
    for r in roots:
        if os.path.exists(os.path.join(r, ".claude/doc-serve/runtime.json")):
            subprocess.run([a.doc_serve, "--path", r, "stop"], env=sb.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if os.path.exists(os.path.join(sb.env["HOME"], ".doc-serve/runtime.json")):
        subprocess.run([a.doc_serve, "stop", "--shared"], env=sb.env, cwd=sb.env["HOME"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    a = section_args(rounds=None)
    a.doc_serve = os.path.abspath(a.doc_serve)  # the daemon is started from its HOME
    corpus = section_corpus(a, "Shared daemon")
    if not corpus:
        return
    per, mem_rounds, lat_rounds, secs, nq = (3, 1, 3, 1, 100) if a.quick else (20, 3, 10, 2, 300)
    if a.rounds:
        lat_rounds = a.rounds
    sb = Sandbox("ds-bench-shared-")
    roots = []
    m = {"residents": {k: [] for k in KEYS}, "daemon": {k: [] for k in KEYS}, "resident_rss_each": [],
         "daemon_rss_started": [], "daemon_threads": [], "index_s": {"residents": [], "daemon": []},
         "answers_tie_order": [], "answers_differ": []}
    diffs = []
    try:
        roots, nbytes = make_projects(sb, corpus, per)
        for r in range(mem_rounds):
            got = {}
            for side in (("residents", "daemon") if r % 2 == 0 else ("daemon", "residents")):
                log(f"round {r + 1}/{mem_rounds}: {side}, {PROJECTS} projects x {per} files from no index")
                fresh_state(sb, roots)
                if side == "residents":
                    sums, each, s, got[side] = residents_side(a, sb, roots, per)
                    m["resident_rss_each"] += each
                else:
                    sums, started, s, got[side], threads = daemon_side(a, sb, roots, per)
                    m["daemon_rss_started"].append(started)
                    m["daemon_threads"].append(threads)
                for k in KEYS:
                    m[side][k].append(sums[k])
                m["index_s"][side].append(s)
            if not any(h for proj in got["residents"] for h in proj):
                sys.exit("no query found anything on the residents: empty indexes?")
            cmp = {(i, j): compare(got["residents"][i][j], got["daemon"][i][j])
                   for i in range(PROJECTS) for j in range(len(QUERIES))}
            m["answers_tie_order"].append(list(cmp.values()).count(1))
            m["answers_differ"].append(list(cmp.values()).count(2))
            diffs += [{"round": r + 1, "project": os.path.basename(roots[i]), "query": QUERIES[j],
                       "kind": "tie order" if c == 1 else "scores", "residents": got["residents"][i][j],
                       "daemon": got["daemon"][i][j]} for (i, j), c in cmp.items() if c]
        log("latency: one project on its resident and on the daemon")
        lat, same_lat, lat_id = latency(a, sb, roots, per, lat_rounds, secs, nq)
    finally:
        cleanup(a, sb, roots)
        sb.close()

    ratio = lambda s, key: [d / r for d, r in zip(lat["daemon"][s] if key is None else [x[key] for x in lat["daemon"][s]],
                                               lat["resident"][s] if key is None else [x[key] for x in lat["resident"][s]])]
    wrk_ratio, loop_ratio = ratio("wrk", "p50"), ratio("loop", None)
    save_json(a.results, "shared.json", {
        "corpus": corpus, "projects": PROJECTS, "files_per_project": per, "bytes": nbytes,
        "queries": QUERIES, "memory_rounds": mem_rounds, "memory_kb": m, "latency_rounds": lat_rounds,
        "latency_query": LAT_QUERY, "latency_project": lat_id, "wrk_secs": secs, "distinct_queries": nq,
        "latency_us": lat, "p50_ratio_wrk": wrk_ratio, "p50_ratio_loop": loop_ratio,
        "latency_same_hits": same_lat, "answer_diffs": diffs[:20]})

    R = {k: med(v) for k, v in m["residents"].items()}
    D = {k: med(v) for k, v in m["daemon"].items()}
    rss_ratio = D["VmRSS"] / R["VmRSS"]
    differ, ties, answers = sum(m["answers_differ"]), sum(m["answers_tie_order"]), mem_rounds * PROJECTS * len(QUERIES)
    p = print
    rel = os.path.relpath(corpus, ROOT)
    p(f"\n## Shared daemon vs project-mode residents ({PROJECTS} projects)\n")
    p(f"{PROJECTS} projects of {per} Markdown files each ({PROJECTS * per} distinct files spread over `{rel}`, "
      f"{nbytes / 1e6:.1f} MB in all). Medians of {mem_rounds} round{'s' if mem_rounds > 1 else ''}, the two sides "
      "in alternating order, each from no index: every project indexed, the same "
      f"{len(QUERIES)} GET /query on each, 1 s quiet, then /proc/PID/status (and Pss from smaps_rollup).\n")
    p("| memory | VmRSS | RssAnon | RssFile | Pss | VmHWM |")
    p("|---|---|---|---|---|---|")
    p(f"| {PROJECTS} residents (`doc-serve --path P start`), sum | " + " | ".join(mib(R[k]) for k in KEYS) + " |")
    p(f"| one shared daemon (`start --shared`), {PROJECTS} projects registered | "
      + " | ".join(mib(D[k]) for k in KEYS) + " |")
    p("| daemon / residents | " + " | ".join(f"{D[k] / R[k]:.2f}x" for k in KEYS) + " |")
    p()
    per_daemon = (D["VmRSS"] - med(m["daemon_rss_started"])) / PROJECTS
    p(f"One resident: {mib(med(m['resident_rss_each']))} VmRSS (median of {len(m['resident_rss_each'])}). "
      f"The daemon: {mib(med(m['daemon_rss_started']))} right after start, about {mib(per_daemon)} more per "
      f"project, {med(m['daemon_threads']):.0f} threads. From the first start to all {PROJECTS} indexed: "
      f"{med(m['index_s']['residents']):.2f} s for the residents (started one after the other), "
      f"{med(m['index_s']['daemon']):.2f} s for the daemon (start, then POST /projects for each). "
      + (f"**{differ} of {answers} answers had different scores on the two sides.**" if differ else
         f"Both sides gave the same hits, with the same scores, in all {answers} answers "
         f"({mem_rounds} x {PROJECTS} projects x {len(QUERIES)} queries)" +
         (f"; {ties} of them listed equally scored hits in another order (or another one of them at the cut-off)."
          if ties else ".")) + "\n")
    p(f"Target: the daemon's VmRSS at most one fifth of the {PROJECTS} residents' sum: "
      f"{rss_ratio:.2f}x ({'met' if rss_ratio <= 1 / TARGET else '**not met**'}). VmRSS counts the pages each "
      "process shares with the others (the binary) once per process; Pss splits them.\n")

    W = {s: med([x["p50"] for x in lat[s]["wrk"]]) for s in lat}
    L = {s: med(lat[s]["loop"]) for s in lat}
    p(f"### /query latency, one project on its resident and on the daemon\n")
    p(f"Both up at once (the daemon with all {PROJECTS} projects registered); {lat_rounds} interleaved "
      f"rounds, medians of the per-round p50 and of the per-round ratios.\n")
    p("| GET, keep-alive | resident `/query` | daemon `/projects/{id}/query` | daemon / resident (range over rounds) |")
    p("|---|---|---|---|")
    p(f"| wrk -c1 {secs} s, one repeated query (`{LAT_QUERY}`, from each server's memo) | {W['resident']:.0f} µs | "
      f"{W['daemon']:.0f} µs | {med(wrk_ratio):.2f}x ({min(wrk_ratio):.2f}-{max(wrk_ratio):.2f}) |")
    p(f"| http.client, {nq} distinct queries per round (each a search), alternating | {L['resident']:.0f} µs | "
      f"{L['daemon']:.0f} µs | {med(loop_ratio):.2f}x ({min(loop_ratio):.2f}-{max(loop_ratio):.2f}) |")
    p()
    within = all(min(x) <= 1 <= max(x) or abs(med(x) - 1) <= 0.1 for x in (wrk_ratio, loop_ratio))
    p(f"Target: the same within noise (taken as: the per-round ratios span 1.00, or their median is within 10% "
      f"of it): {'met' if within else '**not met**'}. The http.client figures include the Python client's own "
      "time on both sides." + ("" if same_lat else " **The two sides gave different scores for the query.**") + "\n")


if __name__ == "__main__":
    main()
