#!/usr/bin/env python3
"""Search by meaning, approximate against exact: the HNSW index a resident builds past
`ann_min_sections` vectors, against comparing every vector, on the same project, the
same vectors and the same queries.

Builds a scratch project of the corpus with `embedding_model` set (or reuses one with
--project), indexes it, starts a resident and waits until every section is embedded
(about an hour for the whole corpus on 2 cores: see "Embedding throughput"), then
stops it. Then, in rounds, the resident is started again with `ann_min_sections` set
so that it compares every vector (exact), then so that it builds the graph (its build
time from the resident's log); each asks every query twice with
GET /query?mode=semantic&limit=10 (the first asking makes and keeps the query's
vector; the second is timed: took_ms, the search inside the resident). recall@10: of
the exact search's hits, the share the approximate one returned too (by section id),
averaged over the queries. VmRSS of each resident after its queries.

Queries: the paraphrased questions (bench/questions/*.jsonl) and --queries headings
drawn from the corpus with a fixed seed.

Usage: bench/ann.py [--doc-serve BIN] [--corpus DIR] [--model DIR] [--project DIR]
                    [--queries N] [--rounds R] [--json] [--section]
"""
import argparse, glob, json, os, random, re, shutil, statistics, subprocess, sys, tempfile, time, urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))
import common  # noqa: E402

log = common.logger("ann")
EXACT = 10**12


def headings(corpus, n, seed=27):
    found = []
    for path in common.corpus_files(corpus):
        if not path.endswith((".md", ".markdown")):
            continue
        with open(path, errors="replace") as f:
            found += [m.group(1).strip() for m in re.finditer(r"^#{1,6} +(.{8,80})$", f.read(), re.M)]
    found = sorted(set(found))
    random.Random(seed).shuffle(found)
    return found[:n]


def questions():
    qs = []
    for path in sorted(glob.glob(os.path.join(HERE, "questions/*.jsonl"))):
        with open(path) as f:
            qs += [json.loads(line)["q"] for line in f if line.strip()]
    return qs


def configure(project, **keys):
    path = os.path.join(project, ".claude/doc-serve/config.json")
    cfg = json.load(open(path))
    cfg.update(keys)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)


def embedding(res):
    return res.request("GET", "/status")["index"].get("embedding") or {}


def wait_embedded(res, timeout):
    t0 = last = time.monotonic()
    while True:
        e = embedding(res)
        if e.get("error"):
            sys.exit(f"the embedding model cannot be used: {e['error']}")
        done, total = e.get("embedded", [0, 0])
        if total and done >= total and not e.get("embedding"):
            return total
        if time.monotonic() - t0 > timeout:
            sys.exit(f"not embedded after {timeout} s ({done}/{total})")
        if time.monotonic() - last > 60:
            log(f"embedding: {done}/{total}")
            last = time.monotonic()
        time.sleep(2)


def ask(res, queries):
    """{query: [ids]} and the took_ms of each second asking."""
    hits, took = {}, []
    for q in queries:
        path = "/query?" + urllib.parse.urlencode({"q": q, "mode": "semantic", "limit": 10})
        res.request("GET", path)
        r = res.request("GET", path)
        hits[q] = [h["id"] for h in r["hits"]]
        took.append(r["took_ms"])
    return hits, took


def build_seconds(project):
    """The last 'approximate index ... built in X s' of the resident's log."""
    text = open(os.path.join(project, ".claude/doc-serve/logs/serve.log"), errors="replace").read()
    found = re.findall(r"approximate index of (\d+) vectors built in ([\d.]+) s", text)
    return (int(found[-1][0]), float(found[-1][1])) if found else (None, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--doc-serve", default=os.path.join(ROOT, "target/release/doc-serve"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "../shared/corpus/docs"))
    ap.add_argument("--model", default=os.path.join(ROOT, "target/models/all-MiniLM-L6-v2"))
    ap.add_argument("--project", help="keep the scratch project (and its vectors) here; reused when it exists")
    ap.add_argument("--queries", type=int, default=300, help="headings drawn from the corpus, beside the questions")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--embed-timeout", type=int, default=4 * 3600)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--section", action="store_true")
    args = ap.parse_args()
    for p in (args.doc_serve, args.model, args.corpus):
        if not os.path.exists(p):
            sys.exit(f"not found: {p}")
    args.model = os.path.abspath(args.model)
    box = common.Sandbox("ds-bench-ann-")
    env = box.env
    project = os.path.abspath(args.project) if args.project else box.path("project")
    ds = [args.doc_serve, "--path", project]
    try:
        if not os.path.isdir(os.path.join(project, ".claude/doc-serve")):
            shutil.copytree(args.corpus, project, symlinks=False, ignore_dangling_symlinks=True)
            subprocess.run(ds + ["init"], env=env, check=True, stdout=subprocess.DEVNULL)
            configure(project, embedding_model=args.model)
            subprocess.run(ds + ["index"], env=env, check=True, stdout=subprocess.DEVNULL)
        configure(project, embedding_model=args.model, ann_min_sections=EXACT)
        res = common.Resident(args.doc_serve, project, env)
        try:
            sections = wait_embedded(res, args.embed_timeout)
        finally:
            res.stop()
        queries = questions() + headings(args.corpus, args.queries)
        log(f"{sections} sections embedded; {len(queries)} queries, {args.rounds} rounds")
        rounds = []
        for r in range(args.rounds):
            row = {}
            for side, minimum in (("exact", EXACT), ("approximate", 0)):
                configure(project, ann_min_sections=minimum)
                res = common.Resident(args.doc_serve, project, env)
                try:
                    wait_embedded(res, args.embed_timeout)
                    if side == "approximate":
                        t0 = time.monotonic()
                        while not embedding(res).get("approximate"):
                            if time.monotonic() - t0 > 3600:
                                sys.exit("no approximate index after an hour")
                            time.sleep(0.5)
                    hits, took = ask(res, queries)
                    row[side] = {"hits": hits, "took_p50": statistics.median(took),
                                 "took_p99": common.pctl(took, 99), "rss_kib": res.status()["VmRSS"]}
                    if side == "approximate":
                        row[side]["graph"], row[side]["build_s"] = build_seconds(project)
                finally:
                    res.stop()
            exact, approx = row["exact"]["hits"], row["approximate"]["hits"]
            row["recall"] = statistics.mean(len(set(exact[q]) & set(approx[q])) / len(exact[q])
                                            for q in queries if exact[q])
            row["same_first"] = statistics.mean(float(bool(exact[q]) and approx[q][:1] == exact[q][:1])
                                                for q in queries if exact[q])
            log(f"round {r + 1}: recall@10 {row['recall']:.4f}, took p50 exact {row['exact']['took_p50']:.2f} ms, "
                f"approximate {row['approximate']['took_p50']:.2f} ms, graph built in {row['approximate']['build_s']} s")
            for side in ("exact", "approximate"):
                del row[side]["hits"]
            rounds.append(row)
    finally:
        if not args.project:
            box.close()
    med = lambda f: statistics.median(f(r) for r in rounds)
    out = {"sections": sections, "queries": len(queries), "rounds": rounds,
           "recall": med(lambda r: r["recall"]), "same_first": med(lambda r: r["same_first"])}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    if args.section:
        print("\n## Search by meaning: approximate against exact\n")
        print(f"The same resident binary on the same project ({sections} sections of "
              f"`{os.path.relpath(args.corpus, ROOT)}` embedded by `{os.path.basename(args.model)}`), started "
              f"with `ann_min_sections` above its vector count (every vector compared) and at 0 (the HNSW "
              f"graph, built in the background), {len(queries)} queries (the paraphrased questions and headings "
              f"drawn from the corpus), each asked twice with `mode=semantic&limit=10`, the second timed; "
              f"{len(rounds)} rounds, medians (bench/ann.py). recall@10: of the exact search's hits, the share "
              f"the approximate search returned too.\n")
    print("| | exact | approximate |\n|---|---|---|")
    print(f"| took_ms p50 | {med(lambda r: r['exact']['took_p50']):.2f} | {med(lambda r: r['approximate']['took_p50']):.2f} |")
    print(f"| took_ms p99 | {med(lambda r: r['exact']['took_p99']):.2f} | {med(lambda r: r['approximate']['took_p99']):.2f} |")
    print(f"| resident VmRSS | {common.mib(med(lambda r: r['exact']['rss_kib']))} | "
          f"{common.mib(med(lambda r: r['approximate']['rss_kib']))} |")
    print(f"| recall@10 | 1 | {out['recall']:.4f} |")
    print(f"| same first hit | 1 | {out['same_first']:.4f} |")
    print(f"| graph build | | {med(lambda r: r['approximate']['build_s'] or 0):.1f} s "
          f"({rounds[-1]['approximate']['graph']} vectors, `embedding_threads` default) |")


if __name__ == "__main__":
    main()
