#!/usr/bin/env python3
"""Paraphrased questions over the doc corpora: hit@1 and MRR@10 for each search mode.

Each file in bench/questions/ (NAME.jsonl) holds questions asked in a user's own words,
avoiding the words of the sections that answer them, one JSON object a line:
{"q": "...", "files": ["path/relative/to/the/corpus/root.md", ...]}, every file that
answers listed. NAME is a directory of the corpus (../shared/corpus/docs/NAME).

For each set: copies the corpus into a scratch project in a temp dir (HOME and XDG_* there,
DOC_SERVE_* unset), `doc-serve init`, writes `embedding_model` into the project's
config.json when --model is given, `doc-serve index`, `doc-serve start`; with a model,
waits until GET /status says every section is embedded (`index.embedded`: [done, total];
no such key, no wait). Then, for each mode, GET /query?q=...&limit=10&mode=MODE for every
question. hit@1: the first hit's file answers. MRR@10: 1/rank of the first hit whose file
answers (ranks count hits as returned, 0 when none of the 10 does), averaged over the set.

A mode whose request is refused (400) is reported unavailable, not as zero. A binary
without modes refuses the `mode` parameter itself: its only search is lexical, so lexical
is then asked without it (and the report says so). Without --model only lexical runs.

Usage: bench/paraphrase.py [--doc-serve BIN] [--corpus DIR] [--modes M,M] [--model PATH]
                           [--json] [-v] [QUESTIONS.jsonl ...]
Prints a Markdown table (or JSON) on stdout; progress on stderr.
"""
import argparse, statistics, glob, http.client, json, os, shutil, subprocess, sys, tempfile, time, urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODES = ("lexical", "semantic", "hybrid")


def log(msg):
    print(f"[paraphrase] {msg}", file=sys.stderr, flush=True)


def load_questions(path):
    qs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    d = json.loads(line)
                except ValueError as e:
                    sys.exit(f"{path}:{n}: not JSON: {e}")
                if not isinstance(d, dict) or not d.get("q") or not isinstance(d.get("files"), list) or not d["files"]:
                    sys.exit(f"{path}:{n}: each line needs \"q\" and a non-empty \"files\"")
                qs.append(d)
    return qs


def scores(ranked, answers):
    """(hit@1, reciprocal rank within the top 10) for one question."""
    for i, path in enumerate(ranked[:10]):
        if path in answers:
            return (1.0 if i == 0 else 0.0), 1.0 / (i + 1)
    return 0.0, 0.0


class Resident:
    """A started doc-serve over one scratch project; query() returns (status, reply)."""

    def __init__(self, ds, env, project):
        self.ds, self.env, self.project = ds, env, project
        self.embed_seconds = None
        subprocess.run(ds + ["start"], env=env, check=True, stdout=subprocess.DEVNULL)
        rt = json.load(open(os.path.join(project, ".claude/doc-serve/runtime.json")))
        self.conn = http.client.HTTPConnection("127.0.0.1", rt["port"], timeout=120)
        self.headers = {"Authorization": f"Bearer {rt['token']}"}

    def get(self, path):
        self.conn.request("GET", path, headers=self.headers)
        resp = self.conn.getresponse()
        body = resp.read()
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, {"message": body.decode(errors="replace")[:200]}

    def query(self, q, mode):
        params = {"q": q, "limit": 10}
        if mode:
            params["mode"] = mode
        return self.get("/query?" + urllib.parse.urlencode(params))

    def wait_embedded(self, timeout):
        """Until /status says [done, total] with done == total; None when it has no such key."""
        t0 = last_log = time.monotonic()
        while True:
            status, st = self.get("/status")
            index = st.get("index") or {} if status == 200 else {}
            embedding = index.get("embedding") or {}
            if embedding.get("error"):
                sys.exit(f"the embedding model cannot be used: {embedding['error']}")
            emb = embedding.get("embedded")
            if not (isinstance(emb, list) and len(emb) == 2):
                log("/status has no index.embedded: not waiting for embeddings")
                return None
            done, total = emb
            now = time.monotonic()
            if done >= total and not index.get("indexing") and not embedding.get("embedding"):
                log(f"embedded {done}/{total} sections in {now - t0:.0f} s")
                self.embed_seconds = now - t0
                return emb
            if now - t0 > timeout:
                log(f"gave up waiting for embeddings after {timeout} s at {done}/{total}")
                return emb
            if now - last_log >= 15:
                log(f"embedding: {done}/{total}")
                last_log = now
            time.sleep(1)


def run_mode(res, questions, mode, verbose):
    """{"hit_at_1", "mrr_at_10", "ranks", ...} or {"unavailable": why}."""
    asked, note = mode, None
    hits1, rrs, ranks, walls, tooks = [], [], [], [], []
    for i, item in enumerate(questions):
        t0 = time.perf_counter()
        status, reply = res.query(item["q"], asked)
        walls.append((time.perf_counter() - t0) * 1000)
        tooks.append(reply.get("took_ms", 0) if isinstance(reply, dict) else 0)
        if status == 400 and i == 0 and mode == "lexical" and "mode" in reply.get("message", ""):
            # No modes in this binary: the search it has is the lexical one.
            asked, note = None, "this binary takes no mode parameter; its only search is lexical"
            status, reply = res.query(item["q"], asked)
        if status == 400:
            return {"unavailable": f"{reply.get('code', '400')}: {reply.get('message', '')}"}
        if status != 200:
            sys.exit(f"/query answered {status} for mode {mode}: {reply}")
        ran = reply.get("mode")
        if asked and ran and ran != mode:
            note = f"asked {mode}, the reply says {ran} ran"
        ranked = [h["path"] for h in reply.get("hits", [])]
        h1, rr = scores(ranked, set(item["files"]))
        hits1.append(h1), rrs.append(rr)
        ranks.append(round(1 / rr) if rr else None)
        if verbose:
            log(f"  {mode} rank {ranks[-1] or '-'}: {item['q']}  -> {ranked[0] if ranked else 'no hit'}")
    # Each question again: its vector is now one of the recent ones.
    again = []
    for item in questions:
        t0 = time.perf_counter()
        res.query(item["q"], asked)
        again.append((time.perf_counter() - t0) * 1000)
    p50 = lambda xs: statistics.median(xs) if xs else None
    out = {"hit_at_1": sum(hits1) / len(hits1), "mrr_at_10": sum(rrs) / len(rrs), "ranks": ranks,
           "first_ms_p50": p50(walls), "took_ms_p50": p50(tooks), "again_ms_p50": p50(again)}
    if note:
        out["note"] = note
    return out


def run_set(args, qfile, modes):
    name = os.path.basename(qfile)[: -len(".jsonl")]
    src = os.path.join(args.corpus, name)
    questions = load_questions(qfile)
    if not os.path.isdir(src):
        log(f"{name}: no corpus at {src}, skipped")
        return name, {"questions": len(questions), "skipped": f"no corpus at {src}"}
    missing = sorted({f for q in questions for f in q["files"] if not os.path.isfile(os.path.join(src, f))})
    if missing:
        sys.exit(f"{qfile}: answer files not in {src}: {', '.join(missing)}")
    tmp = tempfile.mkdtemp(prefix=f"ds-paraphrase-{name}-")
    home = os.path.join(tmp, "home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOC_SERVE_")}
    env.update(HOME=home, XDG_RUNTIME_DIR=os.path.join(tmp, "run"), XDG_CONFIG_HOME=os.path.join(home, ".config"),
               XDG_DATA_HOME=os.path.join(home, ".local/share"), XDG_STATE_HOME=os.path.join(home, ".local/state"),
               XDG_CACHE_HOME=os.path.join(home, ".cache"))
    os.makedirs(home), os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700)
    project = os.path.join(tmp, "project")
    # Hit paths are relative to the project root, so the corpus root is the project root.
    shutil.copytree(src, project, symlinks=False, ignore_dangling_symlinks=True)
    ds = [args.doc_serve, "--path", project]
    res = None
    try:
        subprocess.run(ds + ["init"], env=env, check=True, stdout=subprocess.DEVNULL)
        if args.model:
            cfg_path = os.path.join(project, ".claude/doc-serve/config.json")
            cfg = json.load(open(cfg_path))
            cfg["embedding_model"] = args.model
            with open(cfg_path, "w") as f:
                json.dump(cfg, f, indent=2)
        t0 = time.monotonic()
        subprocess.run(ds + ["index"], env=env, check=True, stdout=subprocess.DEVNULL)
        log(f"{name}: indexed in {time.monotonic() - t0:.1f} s; {len(questions)} questions")
        res = Resident(ds, env, project)
        embedded = res.wait_embedded(args.embed_timeout) if args.model else None
        out = {"questions": len(questions), "modes": {}}
        if embedded is not None:
            out["embedded"] = embedded
            out["embed_seconds"] = res.embed_seconds
            # What the vectors cost: the store's size, and the resident's memory.
            data = os.path.join(project, ".claude/doc-serve/data")
            out["store_bytes"] = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)
                                     if f.startswith("vectors-"))
            rt = json.load(open(os.path.join(project, ".claude/doc-serve/runtime.json")))
            with open(f"/proc/{rt['pid']}/status") as f:
                out["resident_rss_kib"] = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        # Hybrid before semantic: its first asking makes each query's vector (semantic's
        # then finds it kept).
        for mode in sorted(MODES, key=["lexical", "hybrid", "semantic"].index):
            if mode not in args.modes:
                continue
            if mode != "lexical" and not args.model:
                out["modes"][mode] = {"skipped": "no --model"}
                continue
            log(f"{name}: {mode}")
            out["modes"][mode] = run_mode(res, questions, mode, args.verbose)
    finally:
        subprocess.run(ds + ["stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
    return name, out


def cell(m):
    if m is None:
        return "not asked", "not asked"
    if "skipped" in m:
        return "not measured yet", "not measured yet"
    if "unavailable" in m:
        return "unavailable", "unavailable"
    return f"{m['hit_at_1']:.2f}", f"{m['mrr_at_10']:.2f}"


def print_section_head(args, results):
    sets = ", ".join(f"`bench/questions/{n}.jsonl` ({r['questions']} over `{n}`)" for n, r in results.items())
    print(f"\n## Paraphrased questions (corpus: `{os.path.relpath(args.corpus, ROOT)}`)\n")
    print(f"Questions put in a user's own words, written by hand from the files that answer them and "
          f"avoiding the words of those files' headings and text (\"my phone photos show up lying on their "
          f"side\" for `images.AutoOrient`), every answering file listed: {sets}. Each corpus is indexed in "
          "a scratch project and each question asked with `GET /query?limit=10&mode=MODE` "
          "(bench/paraphrase.py). hit@1: the first hit's file answers; MRR@10: the mean of 1/rank of the "
          "first hit whose file answers (0 when none of the 10 does)."
          + (f" Embedding model: `{args.model}`." if args.model else "") + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--doc-serve", default=os.path.join(ROOT, "target/release/doc-serve"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "../shared/corpus/docs"))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--model", help="embedding_model for the scratch projects (a model directory or a known name)")
    ap.add_argument("--embed-timeout", type=int, default=3600, help="most seconds to wait for embeddings")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true", help="each question's rank on stderr")
    ap.add_argument("--section", action="store_true", help="a report section: heading and method around the table")
    ap.add_argument("questions", nargs="*", help="question files (default: bench/questions/*.jsonl)")
    args = ap.parse_args()
    args.corpus = os.path.abspath(args.corpus)
    args.doc_serve = os.path.abspath(args.doc_serve)
    if not os.access(args.doc_serve, os.X_OK):
        sys.exit(f"no doc-serve binary at {args.doc_serve}: run `cargo build --release` or pass --doc-serve")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        sys.exit(f"unknown mode(s) {', '.join(unknown)}; the modes are {', '.join(MODES)}")
    if args.model and os.path.exists(args.model):
        args.model = os.path.abspath(args.model)
    if not args.model and args.modes != ["lexical"]:
        log("no --model: only lexical runs (semantic and hybrid need an embedding model)")
    files = args.questions or sorted(glob.glob(os.path.join(HERE, "questions", "*.jsonl")))
    if not files:
        sys.exit("no question files")
    results = dict(run_set(args, f, args.modes) for f in files)

    if args.json:
        print(json.dumps({"model": args.model, "sets": results}, indent=2))
        return
    if args.section:
        print_section_head(args, results)
    print("| set | questions | " + " | ".join(f"{m} hit@1 | {m} MRR@10" for m in MODES) + " |")
    print("|---|---|" + "---|---|" * len(MODES))
    for name, r in results.items():
        if "skipped" in r:
            print(f"| {name} | {r['questions']} | " + " | ".join(["no corpus"] * 2 * len(MODES)) + " |")
            continue
        row = [c for m in MODES for c in cell(r["modes"].get(m))]
        print(f"| {name} | {r['questions']} | " + " | ".join(row) + " |")
    notes = sorted({f"{m}: {v['note']}" for r in results.values() for m, v in r.get("modes", {}).items() if "note" in v}
                   | {f"{m}: {v['unavailable']}" for r in results.values() for m, v in r.get("modes", {}).items()
                      if "unavailable" in v})
    for n in notes:
        print(f"\n{n}")
    print("\nLatency over HTTP, p50 ms (first asking: hybrid makes the query's vector, semantic then finds "
          "it kept; again: every vector is kept):\n")
    print("| set | " + " | ".join(f"{m} first | {m} again" for m in MODES) + " |")
    print("|---|" + "---|---|" * len(MODES))
    for name, r in results.items():
        row = []
        for m in MODES:
            v = r.get("modes", {}).get(m) or {}
            row += [f"{v['first_ms_p50']:.1f}" if v.get("first_ms_p50") else "-",
                    f"{v['again_ms_p50']:.1f}" if v.get("again_ms_p50") else "-"]
        print(f"| {name} | " + " | ".join(row) + " |")
    costs = [(n, r) for n, r in results.items() if r.get("store_bytes")]
    if costs:
        print("\nWhat the vectors cost:\n")
        print("| set | sections embedded | embedding took | vector store | per 10k sections | resident RSS after |")
        print("|---|---|---|---|---|---|")
        for name, r in costs:
            n = r["embedded"][1]
            print(f"| {name} | {n} | {r['embed_seconds']:.0f} s | {r['store_bytes'] / 1e6:.2f} MB | "
                  f"{r['store_bytes'] / n * 1e4 / 1e6:.2f} MB | {r['resident_rss_kib'] / 1024:.0f} MiB |")
    if not args.model and args.modes != ["lexical"]:
        print("\nsemantic and hybrid: not measured yet (no embedding model given).")


if __name__ == "__main__":
    main()
