#!/usr/bin/env python3
"""Memory on the big corpus: resident VmRSS idle and after 10,000 queries; peak while indexing.

On a scratch copy of the corpus, in each of R rounds:
- full index, interleaved with tantivy-cli on the same files: peak RSS of
  `doc-serve index --full` (into an empty data dir) and of `tantivy index`, from wait4's
  ru_maxrss (the kernel's VmHWM of the finished process);
- a resident's first index: `doc-serve start` with no index, wait for its start-up
  reconciliation to finish, then VmHWM and VmRSS;
- a resident on the built index: VmRSS idle (start-up reconciliation done, 1 s quiet),
  then after N GET /query requests on two keep-alive connections cycling through a few
  different queries, and VmHWM at the end;
- the floor (bench/floor), idle, for reference.
VmRSS is split into RssAnon (heap) and RssFile (mapped files: the binary, the index's
mmapped segments). Prints a Markdown section on stdout.

Usage: bench/memory.py --doc-serve BIN --floor BIN [--corpus DIR] [--quick] [--results DIR]
"""
import os, shutil, subprocess, sys, threading, time, urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from common import (section_args, section_corpus, ROOT, Floor, Resident, Sandbox, copy_corpus, corpus_files, du,
                    logger, med, mib, proc_status, run_peak, save_json, tantivy_index, write_tantivy_docs)

log = logger("memory")

QUERIES = [
    "ownership borrowing references",
    "kubernetes pod scheduling",
    "opentelemetry collector exporter",
    "hugo template shortcode",
    '"trait object" safety',
    "error handling -panic",
    "metrics histogram path:docs/otel-docs",
    "async runtime",
]


def load(res, n, conns=2):
    """n GET /query over `conns` keep-alive connections (one thread each), cycling through
    QUERIES; returns the hit counts of each connection."""
    paths = [f"/query?q={urllib.parse.quote(q)}&limit=10" for q in QUERIES]
    hits, errors = [0] * conns, []

    def worker(c):
        client = res.client()
        try:
            for i in range(c, n, conns):
                hits[c] += len(client.request("GET", paths[i % len(paths)])["hits"])
        except Exception as e:  # reported below: the run is not valid
            errors.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"/query failed under load: {errors[0]}")
    return hits


def main():
    a = section_args(rounds=False)
    corpus = section_corpus(a, "Memory")
    if not corpus:
        return
    rounds, nreq = (1, 500) if a.quick else (3, 10_000)
    print("\n## Memory\n")
    sb = Sandbox("ds-bench-mem-")
    keys = ("ds_index_peak", "tv_index_peak", "first_hwm", "first_rss", "idle_rss", "idle_anon",
            "idle_file", "loaded_rss", "loaded_anon", "loaded_file", "loaded_hwm", "floor_rss", "threads")
    m = {k: [] for k in keys}
    try:
        proj = sb.path("project")
        docs = copy_corpus(corpus, proj)
        files = corpus_files(docs)
        mb = sum(os.path.getsize(f) for f in files) / 1e6
        jsonl = sb.path("docs.jsonl")
        write_tantivy_docs(files, jsonl)
        ds = [a.doc_serve, "--path", proj]
        data = os.path.join(proj, ".claude/doc-serve/data")
        subprocess.run(ds + ["index"], env=sb.env, check=True, stdout=subprocess.DEVNULL)  # warm the page cache
        for r in range(rounds):
            log(f"round {r + 1}/{rounds}: full index vs tantivy-cli (peak RSS)")
            for side in (("ds", "tv") if r % 2 == 0 else ("tv", "ds")):
                if side == "ds":
                    shutil.rmtree(data, ignore_errors=True)
                    m["ds_index_peak"].append(run_peak(ds + ["index", "--full"], env=sb.env)[1])
                else:
                    idx = sb.path(f"tv{r}")
                    m["tv_index_peak"].append(tantivy_index(jsonl, idx)[1])
                    shutil.rmtree(idx)

            log(f"round {r + 1}/{rounds}: a resident's first index")
            shutil.rmtree(data, ignore_errors=True)
            res = Resident(a.doc_serve, proj, sb.env)
            try:
                res.settle()
                st = res.status()
                m["first_hwm"].append(st["VmHWM"])
                m["first_rss"].append(st["VmRSS"])
            finally:
                res.stop()

            log(f"round {r + 1}/{rounds}: resident on the built index, idle then {nreq} /query")
            res = Resident(a.doc_serve, proj, sb.env)
            try:
                res.settle()
                time.sleep(1)
                st = res.status()
                m["idle_rss"].append(st["VmRSS"]), m["idle_anon"].append(st["RssAnon"]), m["idle_file"].append(st["RssFile"])
                if not sum(load(res, nreq)):
                    sys.exit("no query found anything: the resident's index is empty?")
                st = res.status()
                m["loaded_rss"].append(st["VmRSS"]), m["loaded_anon"].append(st["RssAnon"])
                m["loaded_file"].append(st["RssFile"]), m["loaded_hwm"].append(st["VmHWM"])
                m["threads"].append(st["Threads"])
            finally:
                res.stop()
            index_size = du(data)

            fl = Floor(a.floor)
            try:
                time.sleep(1)
                m["floor_rss"].append(proc_status(fl.pid)["VmRSS"])
            finally:
                fl.stop()
    finally:
        sb.close()

    save_json(a.results, "memory.json", m)
    M = {k: med(v) for k, v in m.items()}
    rel = os.path.relpath(corpus, ROOT)
    print(f"Corpus: a copy of `{rel}` ({len(files)} files, {mb:.1f} MB; index {index_size / 1e6:.1f} MB on disk). "
          f"Medians of {rounds} round{'s' if rounds > 1 else ''}; VmRSS and VmHWM from /proc/PID/status, "
          "split into RssAnon (heap) and RssFile (mapped files: the binary and the index's mmapped "
          "segments).\n")
    print("| resident | VmRSS | RssAnon | RssFile | vs floor idle |")
    print("|---|---|---|---|---|")
    print(f"| idle, index built, start-up reconciliation done | {mib(M['idle_rss'])} | {mib(M['idle_anon'])} | "
          f"{mib(M['idle_file'])} | {M['idle_rss'] / M['floor_rss']:.1f}x |")
    print(f"| after {nreq:,} GET /query ({len(QUERIES)} different queries, 2 keep-alive connections) | {mib(M['loaded_rss'])} | "
          f"{mib(M['loaded_anon'])} | {mib(M['loaded_file'])} | {M['loaded_rss'] / M['floor_rss']:.1f}x |")
    print(f"| peak (VmHWM) over that life | {mib(M['loaded_hwm'])} | | | |")
    print(f"| the floor, idle | {mib(M['floor_rss'])} | | | 1.0x |")
    print()
    print("| peak RSS while indexing | doc-serve | tantivy-cli | ratio |")
    print("|---|---|---|---|")
    print(f"| full index, one process (`doc-serve index --full` / `tantivy index`) | {mib(M['ds_index_peak'])} | "
          f"{mib(M['tv_index_peak'])} | {M['ds_index_peak'] / M['tv_index_peak']:.2f}x |")
    print(f"| a resident's first index (VmHWM once done; VmRSS then {mib(M['first_rss'])}) | "
          f"{mib(M['first_hwm'])} | | |")
    print()
    print("No numeric memory target is set; the references are the floor (idle) and tantivy-cli "
          "(peak while indexing the same files, in the same rounds, interleaved). Queries: "
          + ", ".join(f"`{q}`" for q in QUERIES) + f"; the resident ran {M['threads']:.0f} threads.\n")


if __name__ == "__main__":
    main()
