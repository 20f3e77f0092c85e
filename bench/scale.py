#!/usr/bin/env python3
"""Scale: the key search figures at 1x, 4x and 16x the corpus, side by side per scale.

A corpus of N x is N copies of the base corpus in a temp dir: copy 0 is the text as it
is, copy k >= 1 swaps its own pair of letters (say b<->m, both cases) throughout, so
every word holding either letter becomes a new word in each copy (the vocabulary grows)
while the other words are shared (their postings grow). At each scale, interleaved:
- full index: `doc-serve index --full` into an empty data dir vs `tantivy index`
  (tantivy-cli, title + body, en_stem) on the same files: time, size on disk, peak RSS;
- one-shot: `doc-serve query` (standalone: no resident runs) vs `rg -i -l`;
- GET /query at 1 connection (wrk, keep-alive) on a resident vs the floor (bench/floor).
The temp dir of each scale is deleted before the next is built. Prints a Markdown
section on stdout; with --results, writes scale.json for the plots.

Usage: bench/scale.py --doc-serve BIN --floor BIN [--corpus DIR] [--scales 1,4,16]
                      [--quick] [--results DIR]
"""
import itertools, json, os, random, shutil, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from common import (section_args, section_corpus, ROOT, Floor, Resident, Sandbox, corpus_files, distinct_queries, du,
                    fmt_ms, fmt_us, logger, med, mib, pctl, run_peak, save_json, tantivy_index, timed, took_ms, wrk)

log = logger("scale")

# Copy k >= 1 swaps one pair of letters (both cases) throughout: every word holding either
# letter becomes a new word (vocabulary grows), every other word is shared with the
# other copies (postings grow). 91 distinct pairs, in a fixed shuffled order.
PAIRS = list(itertools.combinations(b"bcdfghklmpuvwy", 2))
random.Random(7).shuffle(PAIRS)
QUERY = "ownership borrowing references"
ONE_SHOT_WORD = "borrowing"


def swap_table(k):
    a, b = PAIRS[(k - 1) % len(PAIRS)]
    A, B = a - 32, b - 32
    return bytes.maketrans(bytes([a, b, A, B]), bytes([b, a, B, A]))


def build_corpus(base, dest, copies, jsonl):
    """Writes `copies` altered copies of base under dest and one JSON line per file to jsonl.
    Works on bytes: an ASCII byte never occurs inside a UTF-8 multi-byte sequence."""
    files = [(os.path.relpath(f, base), open(f, "rb").read()) for f in corpus_files(base)]
    n_bytes = 0
    with open(jsonl, "w") as out:
        for k in range(copies):
            table = swap_table(k) if k else None
            for rel, data in files:
                text = data.translate(table) if table else data
                path = os.path.join(dest, f"copy{k:02d}", rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as fh:
                    fh.write(text)
                n_bytes += len(text)
                out.write(json.dumps({"title": os.path.basename(rel), "body": text.decode(errors="replace")}) + "\n")
    return len(files) * copies, n_bytes / 1e6


def measure(a, base, scale, plan):
    """Every figure at one scale; the scale's temp dir is removed before returning."""
    sb = Sandbox(f"ds-bench-scale{scale}x-")
    try:
        proj = sb.path("project")
        docs = os.path.join(proj, "docs")
        jsonl = sb.path("docs.jsonl")
        t0 = time.monotonic()
        n_files, mb = build_corpus(base, docs, scale, jsonl)
        os.sync()  # no write-back of the fresh copies during the timed runs
        log(f"{scale}x: built {n_files} files, {mb:.0f} MB in {time.monotonic() - t0:.0f} s; "
            f"index: {plan['index']} rounds")
        ds = [a.doc_serve, "--path", proj]
        data = os.path.join(proj, ".claude/doc-serve/data")
        r = {"scale": scale, "files": n_files, "mb": mb, "rounds": dict(plan),
             "ds_index_s": [], "tv_index_s": [], "ds_peak_kb": [], "tv_peak_kb": []}
        for i in range(plan["index"]):
            for side in (("ds", "tv") if i % 2 == 0 else ("tv", "ds")):
                if side == "ds":
                    shutil.rmtree(data, ignore_errors=True)
                    t, peak = run_peak(ds + ["index", "--full"], env=sb.env)
                else:
                    idx = sb.path("tv")
                    t, peak = tantivy_index(jsonl, idx)
                    r["tv_size"] = du(idx)
                    shutil.rmtree(idx)
                r[f"{side}_index_s"].append(t)
                r[f"{side}_peak_kb"].append(peak)
        r["ds_size"] = du(data)
        os.remove(jsonl)

        log(f"{scale}x: one-shot, {plan['shots']} runs each")
        cmds = {"ds": ds + ["query", "--json", ONE_SHOT_WORD], "rg": ["rg", "-i", "-l", ONE_SHOT_WORD, docs]}
        r["ds_shot_s"], r["rg_shot_s"] = [], []
        timed(cmds["ds"], env=sb.env), timed(cmds["rg"])  # warm-up
        for i in range(plan["shots"]):
            for k in (("ds", "rg") if i % 2 == 0 else ("rg", "ds")):
                r[f"{k}_shot_s"].append(timed(cmds[k], env=sb.env))

        log(f"{scale}x: GET /query at 1 connection, {plan['query']} rounds of {plan['secs']} s per side")
        res = Resident(a.doc_serve, proj, sb.env)
        floor = None
        try:
            res.settle()
            st = res.status()
            r["idle_rss_kb"], r["idle_anon_kb"], r["idle_file_kb"] = st["VmRSS"], st["RssAnon"], st["RssFile"]
            floor = Floor(a.floor)
            q_url = res.base_url + "/query?q=" + QUERY.replace(" ", "+") + "&limit=10"
            queries = sb.path("queries.txt")
            r["distinct_queries"] = distinct_queries(queries)
            runs = {"ds": lambda secs: wrk(q_url, 1, secs, res.auth),
                    "distinct": lambda secs: wrk(res.base_url, 1, secs, res.auth, queries),
                    "floor": lambda secs: wrk(floor.url, 1, secs)}
            for run in runs.values():
                run(1)
            for side in runs:
                r[f"{side}_p50_us"] = []
            for i in range(plan["query"]):
                for side in (list(runs) if i % 2 == 0 else list(reversed(runs))):
                    r[f"{side}_p50_us"].append(runs[side](plan["secs"])["p50"])
            r["took_us"], _ = took_ms(res.port, res.token, queries)
        finally:
            if floor:
                floor.stop()
            res.stop()
        return r
    finally:
        sb.close()


def main():
    a = section_args(rounds=False, scales=True)
    base = section_corpus(a, "Scale")
    if not base:
        return
    scales = [int(s) for s in (a.scales or ("1,2" if a.quick else "1,4,16")).split(",")]
    print("\n## Scale\n")
    # Rounds per scale: fewer where one round takes long (a 16x full index is tens of seconds).
    def plan(s):
        if a.quick:
            return {"index": 1, "shots": 3, "query": 1, "secs": 1}
        return {"index": 3 if s <= 4 else 2, "shots": 11 if s == 1 else 7 if s <= 4 else 5, "query": 3, "secs": 2}
    rows = [measure(a, base, s, plan(s)) for s in scales]
    save_json(a.results, "scale.json", rows)

    rel = os.path.relpath(base, ROOT)
    print(f"Base corpus: `{rel}`. A corpus of N x holds N copies of it, built in a temp dir and deleted "
          "after: copy 0 as it is, copy k with its own pair of letters swapped throughout (both cases; "
          "a fixed pair per k, e.g. b and m), so every word holding either letter is a new word in each copy "
          "(the vocabulary grows) while the other words are shared (their postings grow). Each scale runs its comparisons interleaved "
          "(the order alternating by round) and reports medians; ratios are the median of the per-round "
          "ratios (both sides ran back to back). Rounds per scale are in the last column: "
          "fewer full-index rounds at 16x (one doc-serve full index there takes minutes on a 2-core "
          "machine), to keep the whole bench/run near 20 minutes.\n")
    print("### Full index\n")
    print("| scale | files | MB | doc-serve | tantivy-cli | time ratio | doc-serve size | tantivy-cli size "
          "| size ratio | peak RSS doc-serve | peak RSS tantivy-cli | rounds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    mbf = lambda x: f"{x:.1f}" if x < 10 else f"{x:.0f}"
    # Ratios are taken per round (both sides ran back to back), then the median of those.
    paired = lambda r, a, b: med([x / y for x, y in zip(r[a], r[b])])
    for r in rows:
        d, t = med(r["ds_index_s"]), med(r["tv_index_s"])
        print(f"| {r['scale']}x | {r['files']:,} | {mbf(r['mb'])} | {fmt_ms(d)} ({r['mb'] / d:.1f} MB/s) | "
              f"{fmt_ms(t)} ({r['mb'] / t:.1f} MB/s) | **{paired(r, 'ds_index_s', 'tv_index_s'):.2f}x** | {mbf(r['ds_size'] / 1e6)} MB | "
              f"{mbf(r['tv_size'] / 1e6)} MB | {r['ds_size'] / r['tv_size']:.2f}x | {mib(med(r['ds_peak_kb']))} | "
              f"{mib(med(r['tv_peak_kb']))} | {r['rounds']['index']} |")
    print("\nTargets at 16x: no slower than tantivy-cli (time ratio at most 1.0x) and a peak RSS no "
          "higher than tantivy-cli's; at 1x and 4x, a time ratio under 1.0x. Size: at most 1.5x "
          "(as in the Search section). Peak RSS: the process's ru_maxrss (VmHWM) from wait4.\n")
    print("### Queries\n")
    print("| scale | /query p50, 1 conn | distinct /query p50 | took_ms p50 (p99) | floor p50 | vs floor | `doc-serve query` | `rg -i -l` | vs rg | "
          "resident VmRSS (anon + file) | rounds (wrk / one-shot) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        dq, fq = med(r["ds_p50_us"]), med(r["floor_p50_us"])
        ds1, rg1 = med(r["ds_shot_s"]), med(r["rg_shot_s"])
        took = f"{fmt_us(med(r['took_us']))} ({fmt_us(pctl(r['took_us'], 99))})"
        print(f"| {r['scale']}x | {fmt_us(dq)} | {fmt_us(med(r['distinct_p50_us']))} | {took} | {fmt_us(fq)} | "
              f"**{paired(r, 'ds_p50_us', 'floor_p50_us'):.1f}x** | {fmt_ms(ds1)} | {fmt_ms(rg1)} | "
              f"**{paired(r, 'ds_shot_s', 'rg_shot_s'):.2f}x** | {mib(r['idle_rss_kb'])} ({mib(r['idle_anon_kb'])} + {mib(r['idle_file_kb'])}) | {r['rounds']['query']} x {r['rounds']['secs']} s / "
              f"{r['rounds']['shots']} |")
    first, last = rows[0], rows[-1]
    grow = lambda k: med(last[k]) / med(first[k])
    print(f"\n/query: `{QUERY}`, limit 10, keep-alive, answered from the resident's memo after the first time; "
          f"target p50 at most 3x the floor (as in the Search section). Distinct: a cycle of the "
          f"{rows[0]['distinct_queries']} two-word queries of the Search section, each one searched. took_ms: "
          "the search inside the resident, those queries asked in turn on one connection (second of two "
          f"passes). One-shot: `doc-serve query --json {ONE_SHOT_WORD}` with no resident running (it opens "
          f"the index in its own process) vs `rg -i -l {ONE_SHOT_WORD}` over the same files (no "
          "numeric target; ripgrep is the reference). Resident VmRSS: after its start-up reconciliation, before the load; RssAnon (heap) + RssFile (mapped files, mostly the index's segments).\n")
    if len(rows) > 1:
        print(f"From {first['scale']}x to {last['scale']}x ({last['mb'] / first['mb']:.1f}x the bytes): doc-serve's "
              f"full index took {grow('ds_index_s'):.1f}x as long (tantivy-cli {grow('tv_index_s'):.1f}x), "
              f"/query p50 grew {grow('ds_p50_us'):.1f}x (distinct {grow('distinct_p50_us'):.1f}x, took_ms "
              f"{grow('took_us'):.1f}x), `doc-serve query` {grow('ds_shot_s'):.1f}x and "
              f"`rg -i` {grow('rg_shot_s'):.1f}x.\n")


if __name__ == "__main__":
    main()
