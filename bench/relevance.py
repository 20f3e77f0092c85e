#!/usr/bin/env python3
"""Ranking quality on SciFact (BEIR, train split): nDCG@10 beside the published BM25 table.

Builds a scratch project from ../shared/eval/scifact (one Markdown file per abstract:
the title as the first heading, the text as the body), indexes it with doc-serve, starts
a resident, runs every train query over HTTP with limit 10, maps hit paths back to ids
and computes nDCG@10 with trec_eval's rules (gain = qrel score, log2 discount, ideal from
the qrels, averaged over every query in the qrels file).

Usage: bench/relevance.py [--doc-serve BIN] [--data DIR] [--json]
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

    tmp = tempfile.mkdtemp(prefix="ds-scifact-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOC_SERVE_")}
    env.update(HOME=os.path.join(tmp, "home"), XDG_RUNTIME_DIR=os.path.join(tmp, "run"))
    os.makedirs(env["HOME"]), os.makedirs(env["XDG_RUNTIME_DIR"])
    project = os.path.join(tmp, "project")
    docs = os.path.join(project, "docs")
    os.makedirs(docs)
    with open(os.path.join(data, "corpus.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            with open(os.path.join(docs, f"{d['_id']}.md"), "w") as out:
                out.write(f"# {d['title']}\n\n{d['text']}\n")
    ds = [args.doc_serve, "--path", project]
    try:
        t0 = time.monotonic()
        subprocess.run(ds + ["index"], env=env, check=True, stdout=subprocess.DEVNULL)
        log(f"indexed 5,183 abstracts in {time.monotonic() - t0:.1f} s")
        subprocess.run(ds + ["start"], env=env, check=True, stdout=subprocess.DEVNULL)
        rt = json.load(open(os.path.join(project, ".claude/doc-serve/runtime.json")))
        conn = http.client.HTTPConnection("127.0.0.1", rt["port"])
        headers = {"Authorization": f"Bearer {rt['token']}"}
        scores = []
        for qid, rel in qrels.items():
            q = urllib.parse.quote(queries[qid])
            conn.request("GET", f"/query?q={q}&limit=10", headers=headers)
            resp = json.loads(conn.getresponse().read())
            ranked = [h["path"].rsplit("/", 1)[-1][:-3] for h in resp.get("hits", [])]
            scores.append(ndcg_at_10(ranked, rel))
        ndcg = sum(scores) / len(scores)
    finally:
        subprocess.run(ds + ["stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps({"ndcg_at_10": ndcg, "queries": len(scores), "split": "train"}))
    else:
        print(f"| doc-serve (this build), train split, {len(scores)} queries | {ndcg:.4f} |")


if __name__ == "__main__":
    main()
