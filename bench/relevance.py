#!/usr/bin/env python3
"""Ranking quality on SciFact (BEIR, train split): nDCG@10 beside the published BM25 table.

Builds a scratch project from ../shared/eval/scifact (one Markdown file per abstract:
the title as the first heading, the text as the body), indexes it with doc-serve, starts
a resident, runs every train query over HTTP with limit 10, maps hit paths back to ids
and computes nDCG@10 with trec_eval's rules (gain = qrel score, log2 discount, ideal from
the qrels, averaged over every query in the qrels file).

With --model DIR (an embedding model directory, e.g. target/models/all-MiniLM-L6-v2,
which tests/embed/setup installs) the resident embeds the abstracts first and every
mode in --modes is measured; --fusion also scores reciprocal rank fusion with other
constants offline, from each query's lexical and semantic top 100 (how the engine's
constants were chosen).

Usage: bench/relevance.py [--doc-serve BIN] [--data DIR] [--model DIR] [--modes M,M]
                          [--fusion] [--json]
Prints a Markdown table row set (or JSON) on stdout; progress on stderr.
"""
import argparse, http.client, json, math, os, shutil, subprocess, sys, tempfile, time, urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def log(msg):
    print(f"[relevance] {msg}", file=sys.stderr, flush=True)


def ndcg_at_10(ranked, relevant):
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--doc-serve", default=os.path.join(ROOT, "target/release/doc-serve"))
    ap.add_argument("--data", default=os.path.join(ROOT, "../shared/eval/scifact"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--model", help="embedding model directory: measure semantic and hybrid too")
    ap.add_argument("--modes", default="lexical,semantic,hybrid")
    ap.add_argument("--fusion", action="store_true", help="also try other fusion constants offline")
    ap.add_argument("--project", help="keep the scratch project here, and reuse it (and its vectors) when it exists")
    args = ap.parse_args()
    data = os.path.abspath(args.data)
    if not os.path.isdir(data):
        sys.exit(f"no SciFact data at {data}")

    qrels = {}
    with open(os.path.join(data, "qrels-train.tsv")) as f:
        next(f)
        for line in f:
            qid, did, score = line.split()
            qrels.setdefault(qid, {})[did] = int(score)
    queries = {}
    with open(os.path.join(data, "queries-train.jsonl")) as f:
        for line in f:
            q = json.loads(line)
            queries[q["_id"]] = q["text"]

    # --project keeps the scratch project (and its vectors) for the next run.
    tmp = args.project or tempfile.mkdtemp(prefix="ds-scifact-")
    reuse = bool(args.project) and os.path.isdir(os.path.join(tmp, "project"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOC_SERVE_")}
    env.update(HOME=os.path.join(tmp, "home"), XDG_RUNTIME_DIR=os.path.join(tmp, "run"))
    os.makedirs(env["HOME"], exist_ok=True), os.makedirs(env["XDG_RUNTIME_DIR"], exist_ok=True)
    project = os.path.join(tmp, "project")
    docs = os.path.join(project, "docs")
    os.makedirs(docs, exist_ok=True)
    with open(os.path.join(data, "corpus.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            with open(os.path.join(docs, f"{d['_id']}.md"), "w") as out:
                out.write(f"# {d['title']}\n\n{d['text']}\n")
    ds = [args.doc_serve, "--path", project]
    modes = args.modes.split(",") if args.model else ["lexical"]
    if args.model and not reuse:
        subprocess.run(ds + ["init"], env=env, check=True, stdout=subprocess.DEVNULL)
        cfg_path = os.path.join(project, ".claude/doc-serve/config.json")
        cfg = json.load(open(cfg_path))
        cfg["embedding_model"] = os.path.abspath(args.model)
        cfg["embedding_threads"] = os.cpu_count() or 1
        json.dump(cfg, open(cfg_path, "w"))
    results = {}
    lists = {}
    try:
        t0 = time.monotonic()
        subprocess.run(ds + ["index"], env=env, check=True, stdout=subprocess.DEVNULL)
        log(f"indexed 5,183 abstracts in {time.monotonic() - t0:.1f} s")
        subprocess.run(ds + ["start"], env=env, check=True, stdout=subprocess.DEVNULL)
        rt = json.load(open(os.path.join(project, ".claude/doc-serve/runtime.json")))
        conn = http.client.HTTPConnection("127.0.0.1", rt["port"])
        headers = {"Authorization": f"Bearer {rt['token']}"}

        def get(path):
            conn.request("GET", path, headers=headers)
            return json.loads(conn.getresponse().read())

        if args.model:
            t0 = time.monotonic()
            while True:
                e = get("/status")["index"].get("embedding") or {}
                if e.get("error"):
                    sys.exit(f"the model cannot be used: {e['error']}")
                done, total = e.get("embedded", [0, 0])
                if total and done == total and not e.get("embedding"):
                    break
                time.sleep(2)
            log(f"embedded {total} sections in {time.monotonic() - t0:.0f} s")
        for mode in modes:
            scores = []
            for qid, rel in qrels.items():
                q = urllib.parse.quote(queries[qid])
                limit = 100 if args.fusion and mode != "hybrid" else 10
                resp = get(f"/query?q={q}&limit={limit}&mode={mode}")
                ranked = [h["path"].rsplit("/", 1)[-1][:-3] for h in resp.get("hits", [])]
                lists.setdefault(mode, {})[qid] = ranked
                scores.append(ndcg_at_10(ranked, rel))
            results[mode] = sum(scores) / len(scores)
            log(f"{mode}: nDCG@10 {results[mode]:.4f}")
        ndcg = results["lexical"] if "lexical" in results else next(iter(results.values()))
    finally:
        subprocess.run(ds + ["stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not args.project:
            shutil.rmtree(tmp, ignore_errors=True)
    fusion = {}
    if args.fusion and "lexical" in lists and "semantic" in lists:
        # Reciprocal rank fusion over documents, as the engine fuses sections.
        for k in (10, 20, 40, 60, 100):
            for w in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0):
                s = []
                for qid, rel in qrels.items():
                    score = {}
                    for side, weight in (("lexical", 1.0), ("semantic", w)):
                        seen = set()
                        for rank, doc in enumerate(lists[side][qid], 1):
                            if doc not in seen:
                                seen.add(doc)
                                score[doc] = score.get(doc, 0) + weight / (k + rank)
                    fused = sorted(score, key=lambda d: -score[d])
                    s.append(ndcg_at_10(fused, rel))
                fusion[f"k={k} w_vector={w}"] = sum(s) / len(s)
        for name, v in sorted(fusion.items(), key=lambda kv: -kv[1])[:8]:
            log(f"fusion {name}: {v:.4f}")
    n = len(qrels)
    if args.json:
        print(json.dumps({"ndcg_at_10": ndcg, "modes": results, "fusion": fusion,
                          "queries": n, "split": "train"}))
    elif args.model:
        for mode, v in results.items():
            print(f"| doc-serve (this build), {mode}, {os.path.basename(args.model.rstrip('/'))}, train split, {n} queries | {v:.4f} |")
    else:
        print(f"| doc-serve (this build), train split, {n} queries | {ndcg:.4f} |")


if __name__ == "__main__":
    main()
