#!/usr/bin/env python3
"""Embedding throughput: `doc-serve model embed` vs ONNX Runtime, the same model on the same sections.

Sections: every Markdown file of the corpus (../shared/corpus/docs) split at its ATX
headings outside code fences (front matter dropped); each section's text is what
doc-serve embeds for it (section_text in src/embed/store.rs): the title (the file's
first heading, or its name), " > " and the heading trail, a newline, the body. For the
one-text-a-line protocol every line break becomes a space, for both sides alike. By
default N sections (--sections, 1000) are drawn with a seeded random sample (--seed).

Sides, each a child process reading the same texts on stdin and printing one JSON vector
a line: `doc-serve model embed --model DIR --threads T --json`, and bench/lib/ort_embed.py
(PyPI onnxruntime, intra_op_num_threads T, inter_op 1) on an ONNX graph of the same
model.safetensors (bench/lib/bert_onnx.py), doing the same chunking (1024 texts), cut,
tokenization, length sort, batching, pooling and normalisation as doc-serve. With
--baseline BIN, a second doc-serve binary is a third side (a before/after pair).
bench/embed-setup installs the venv and the graph under target/ (run from here; quiet
when all is there).

Rounds (--rounds, 3) at each thread count (--threads, 1,2), the sides in turn, each
taking each place in the order. Each run: sections/s from the embedding time the side
reports on stderr (loading, reading and writing not counted), and from the process's
wall time; peak RSS (ru_maxrss of the child, from wait4) and CPU seconds (user + system:
steadier than time on a shared machine; ONNX Runtime's threads spin while they wait,
which counts here). Medians over rounds; doc-serve / ONNX Runtime as the ratio of the
medians and as the median of each round's ratio (the two ran back to back). Every run's
vectors are checked against ONNX Runtime's first: a max abs difference over 1e-4 stops
the bench (the sides would not be doing the same work).

--whole: every section of the corpus instead of a sample, one round at 2 threads unless
told otherwise: the time to embed the whole corpus and the peak RSS while doing it,
measured, not extrapolated.

Usage: bench/embed.py [--doc-serve BIN] [--baseline BIN] [--corpus DIR] [--model DIR]
                      [--sections N] [--seed S] [--rounds R] [--threads 1,2] [--whole]
                      [--json] [--section]
Prints Markdown (or JSON) on stdout; progress on stderr.
"""
import argparse, json, os, random, re, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_PY = os.path.join(ROOT, "target/bench-embed/venv/bin/python")
DEFAULT_MODEL = os.path.join(ROOT, "target/models/all-MiniLM-L6-v2")
TOLERANCE = 1e-4


def log(msg):
    print(f"[embed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- sections

ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def split_sections(text, name):
    """[(title, trail, body)] of one Markdown file: split at ATX headings outside fences."""
    lines = text.split("\n")
    if lines and lines[0].strip() in ("---", "+++"):
        close = lines[0].strip()
        for i in range(1, len(lines)):
            if lines[i].strip() == close:
                lines = lines[i + 1:]
                break
    sections, trail, body, fence, title = [], [], [], None, None
    for line in lines:
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):].strip():
                fence = None
        elif m:
            fence = m.group(1)
        else:
            h = ATX.match(line)
            if h:
                sections.append((list(trail), body))
                level, heading = len(h.group(1)), (h.group(2) or "").strip()
                trail = [t for t in trail if t[0] < level] + [(level, heading)]
                title = title or heading
                body = []
                continue
        body.append(line)
    sections.append((list(trail), body))
    title = title or os.path.splitext(os.path.basename(name))[0]
    out = []
    for trail, body in sections:
        body = "\n".join(body).strip()
        if not trail and not body:
            continue
        out.append((title, [h for _, h in trail], body))
    return out


def section_text(title, headings, body):
    """As src/embed/store.rs: title, then " > " and each heading other than the title,
    a newline, the body."""
    text = title
    for h in headings:
        if h != title:
            text += (" > " if text else "") + h
    if text:
        text += "\n"
    return text + body


def one_line(text):
    """The text on one line: every line break (and NUL) becomes a space."""
    return re.sub(r"[\r\n\x00]", " ", text)


def corpus_sections(corpus):
    texts = []
    for dirpath, dirnames, files in os.walk(corpus):
        dirnames.sort()
        for f in sorted(files):
            if not f.endswith((".md", ".markdown")):
                continue
            path = os.path.join(dirpath, f)
            with open(path, encoding="utf-8", errors="replace") as fh:
                raw = fh.read()
            for title, trail, body in split_sections(raw, f):
                t = one_line(section_text(title, trail, body))
                if t.strip():
                    texts.append(t)
    return texts


# ---------------------------------------------------------------- running a side

def summary_seconds(stderr):
    """The embedding seconds a side reports: a JSON line with "seconds", or "in 12.3 s"."""
    for line in reversed(stderr.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                d = json.loads(line)
            except ValueError:
                continue
            for k in ("seconds", "secs", "elapsed_s", "elapsed"):
                if isinstance(d.get(k), (int, float)):
                    return float(d[k])
        m = re.search(r"\bin ([0-9]+(?:\.[0-9]+)?) ?(ms|s|sec|seconds)\b", line)
        if m:
            return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    return None


def run_side(cmd, env, texts_file, out_file, err_file):
    """Runs cmd with texts_file on stdin; (wall s, maxrss KiB, cpu s, reported s)."""
    with open(texts_file, "rb") as fin, open(out_file, "wb") as fout, open(err_file, "wb") as ferr:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    err = open(err_file, encoding="utf-8", errors="replace").read()
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed (exit {p.returncode}):\n{err[-2000:]}")
    return wall, ru.ru_maxrss, ru.ru_utime + ru.ru_stime, summary_seconds(err)


def load_vectors(path, n, who):
    import numpy as np
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                sys.exit(f"{who}: output line {i} is not a JSON array: {e}")
    if len(rows) != n:
        sys.exit(f"{who}: {len(rows)} vectors for {n} texts")
    return np.asarray(rows, dtype=np.float64)


class Sides:
    def __init__(self, args, tmp, texts_file, n):
        self.args, self.tmp, self.texts_file, self.n = args, tmp, texts_file, n
        self.reference = None  # ONNX Runtime's first vectors
        self.max_diff = 0.0
        self.runs = 0

    def command(self, side, threads):
        a = self.args
        if side in ("doc-serve", "baseline"):
            binary = a.doc_serve if side == "doc-serve" else a.baseline
            return [binary, "model", "embed", "--model", a.model, "--threads", str(threads), "--json"], dict(os.environ)
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        return [VENV_PY, os.path.join(HERE, "lib/ort_embed.py"), "--model", a.model, "--onnx", a.onnx,
                "--threads", str(threads)], env

    def run(self, side, threads):
        self.runs += 1
        cmd, env = self.command(side, threads)
        out = os.path.join(self.tmp, f"{side}-{threads}.jsonl")
        wall, rss, cpu, secs = run_side(cmd, env, self.texts_file, out, out + ".err")
        self.check(side, out)
        os.remove(out)
        return {"wall_s": wall, "embed_s": secs, "maxrss_kib": rss, "cpu_s": cpu}

    def check(self, side, out):
        v = load_vectors(out, self.n, side)
        if self.reference is None:
            assert side == "onnxruntime", "ONNX Runtime runs first"
            self.reference = v
        else:
            self.compare(side, v)

    def compare(self, side, v):
        import numpy as np
        diff = np.abs(v - self.reference)
        worst = float(diff.max()) if diff.size else 0.0
        self.max_diff = max(self.max_diff, worst)
        if worst > TOLERANCE:
            row = int(diff.max(axis=1).argmax())
            sys.exit(f"FAILED: {side}'s vectors differ from ONNX Runtime's by {worst:.2e} (> {TOLERANCE}) "
                     f"at text {row + 1} of {os.path.join(self.tmp, 'texts.txt')}: the two sides are not "
                     "running the same model on the same input")


def median_of(runs, key):
    xs = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(xs) if xs else None


def measure(args, texts, tmp):
    texts_file = os.path.join(tmp, "texts.txt")
    with open(texts_file, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(t + "\n" for t in texts))
    sides = Sides(args, tmp, texts_file, len(texts))
    names = ["onnxruntime", "doc-serve"] + (["baseline"] if args.baseline else [])
    results = {t: {name: [] for name in names} for t in args.threads}
    k = 0  # ONNX Runtime first: its vectors are the reference the others are checked against
    for r in range(1, args.rounds + 1):
        for t in args.threads:
            # Each side takes each place in turn.
            order = names[k % len(names):] + names[:k % len(names)]
            k += 1
            for side in order:
                run = sides.run(side, t)
                results[t][side].append(run)
                rate = len(texts) / run["embed_s"] if run["embed_s"] else float("nan")
                log(f"round {r}/{args.rounds}, {t} thread(s), {side}: {rate:.1f} sections/s "
                    f"(embedding {run['embed_s'] or float('nan'):.2f} s, process {run['wall_s']:.2f} s, "
                    f"CPU {run['cpu_s']:.1f} s, peak RSS {run['maxrss_kib'] / 1024:.0f} MiB)")
    return results, sides.max_diff


def ratios(a, b, key):
    """(ratio of the medians of n/key, median of the per-round ratios) of side a to side b."""
    ma, mb = median_of(a, key), median_of(b, key)
    if not ma or not mb:
        return None, None
    paired = [y[key] / x[key] for x, y in zip(a, b) if x.get(key) and y.get(key)]
    return mb / ma, statistics.median(paired)


def summarise(results, n):
    out = {}
    for t, by in results.items():
        row = {}
        for side, runs in by.items():
            es, ws = median_of(runs, "embed_s"), median_of(runs, "wall_s")
            row[side] = {
                "sections_per_s": n / es if es else None,
                "sections_per_s_wall": n / ws,
                "embed_s": es, "wall_s": ws,
                "maxrss_mib": median_of(runs, "maxrss_kib") / 1024,
                "cpu_s": median_of(runs, "cpu_s"),
                "rounds": runs,
            }
        d, o = by["doc-serve"], by["onnxruntime"]
        row["ratio"], row["ratio_paired"] = ratios(d, o, "embed_s")
        row["ratio_wall"], _ = ratios(d, o, "wall_s")
        if "baseline" in by:
            row["vs_baseline"], row["vs_baseline_paired"] = ratios(d, by["baseline"], "embed_s")
        out[t] = row
    return out


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def report(args, summary, meta):
    n = meta["sections"]
    if args.section:
        what = (f"all {n} sections of `{meta['corpus']}`" if args.whole else
                f"{n} sections drawn at random (seed {args.seed}) from the {meta['corpus_sections']} of `{meta['corpus']}`")
        print("\n## Embedding throughput\n")
        print(f"`doc-serve model embed` against ONNX Runtime {meta['onnxruntime']} (PyPI, CPU, "
              "intra-op threads = the thread count, inter-op 1) running the same model "
              f"(`{os.path.basename(args.model)}`: its model.safetensors written as an ONNX graph by "
              f"bench/lib/bert_onnx.py) on the same texts: {what}, each as doc-serve embeds a section (title, "
              "heading trail, body; line breaks as spaces). Both sides chunk (1024 texts), cut, tokenize, sort "
              "by length, batch (at most 16 x 256 tokens, 64 texts), pool and normalise alike; every run's "
              f"vectors match ONNX Runtime's within {meta['max_abs_diff']:.1e} (the bench fails over "
              f"{TOLERANCE}). {args.rounds} round(s), the sides taking turns; medians (bench/embed.py). "
              "Sections/s counts the embedding time the side reports; \"process\" its whole run, model "
              "loading included; in brackets, the median of each round's ratio (sides run back to back). "
              "CPU s: user + system of the whole process (ONNX Runtime's threads spin while they wait). "
              "Peak RSS: ru_maxrss of the child."
              + (f" Baseline: `{os.path.basename(args.baseline)}`, another doc-serve binary." if args.baseline
                 else "") + "\n")
    base = bool(args.baseline)
    print("| threads | doc-serve sections/s | ONNX Runtime sections/s | doc-serve / ORT (paired) | "
          + ("baseline sections/s | doc-serve / baseline (paired) | " if base else "")
          + "process sections/s: doc-serve / ORT | CPU s: doc-serve / ORT | peak RSS: doc-serve / ORT |")
    print("|---|---|---|---|" + ("---|---|" if base else "") + "---|---|---|")
    for t, row in summary.items():
        d, o = row["doc-serve"], row["onnxruntime"]
        cells = [str(t), fmt(d["sections_per_s"], ".1f"), fmt(o["sections_per_s"], ".1f"),
                 f"{fmt(row['ratio'], '.2f')}x ({fmt(row['ratio_paired'], '.2f')}x)"]
        if base:
            b = row["baseline"]
            cells += [fmt(b["sections_per_s"], ".1f"),
                      f"{fmt(row['vs_baseline'], '.2f')}x ({fmt(row['vs_baseline_paired'], '.2f')}x)"]
        cells += [f"{d['sections_per_s_wall']:.1f} / {o['sections_per_s_wall']:.1f}",
                  f"{d['cpu_s']:.1f} / {o['cpu_s']:.1f}",
                  f"{d['maxrss_mib']:.0f} / {o['maxrss_mib']:.0f} MiB"]
        print("| " + " | ".join(cells) + " |")
    print()
    if args.whole:
        for t, row in summary.items():
            d, o = row["doc-serve"], row["onnxruntime"]
            print(f"Whole corpus ({n} sections) at {t} thread(s): doc-serve {d['wall_s'] / 60:.1f} min "
                  f"(embedding {fmt(d['embed_s'] and d['embed_s'] / 60, '.1f')} min), peak RSS "
                  f"{d['maxrss_mib']:.0f} MiB; ONNX Runtime {o['wall_s'] / 60:.1f} min, peak RSS "
                  f"{o['maxrss_mib']:.0f} MiB.\n")
    else:
        print(f"Time to embed the whole corpus ({meta['corpus_sections']} sections): measured with "
              "`bench/embed.py --whole` (about 40 minutes a side), not extrapolated here.\n")
    if any(r["ratio"] is None for r in summary.values()):
        print("doc-serve's summary gave no embedding time: only the process figures compare.\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--doc-serve", default=os.path.join(ROOT, "target/release/doc-serve"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "../shared/corpus/docs"))
    ap.add_argument("--model", default=DEFAULT_MODEL, help="model directory (both sides load it)")
    ap.add_argument("--sections", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--threads")
    ap.add_argument("--whole", action="store_true", help="every section of the corpus, measured")
    ap.add_argument("--baseline", help="another doc-serve binary, run as a third side (a before/after pair)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--section", action="store_true", help="a report section: heading and method around the table")
    args = ap.parse_args()
    args.doc_serve = os.path.abspath(args.doc_serve)
    args.corpus = os.path.abspath(args.corpus)
    args.model = os.path.abspath(args.model)
    if args.baseline:
        args.baseline = os.path.abspath(args.baseline)
        if not os.access(args.baseline, os.X_OK):
            sys.exit(f"--baseline {args.baseline}: not an executable")
    args.rounds = args.rounds or (1 if args.whole else 3)
    try:
        args.threads = [int(t) for t in (args.threads or ("2" if args.whole else "1,2")).split(",")]
    except ValueError:
        sys.exit(f"--threads takes thread counts separated by commas, as 1,2: not {args.threads!r}")
    if args.rounds < 1 or args.sections < 1 or any(t < 1 for t in args.threads):
        sys.exit("--rounds, --sections and every --threads count must be at least 1")

    if not os.path.isdir(args.corpus):
        if args.section:
            print(f"\n## Embedding throughput\n\nSkipped: no corpus at `{args.corpus}`.\n")
        log(f"no corpus at {args.corpus}: skipped")
        return
    if not os.access(args.doc_serve, os.X_OK):
        sys.exit(f"no doc-serve binary at {args.doc_serve}: run `cargo build --release` or pass --doc-serve")
    setup = [os.path.join(HERE, "embed-setup")] + ([] if args.model == DEFAULT_MODEL else [args.model])
    if subprocess.run(setup).returncode != 0:
        sys.exit("bench/embed-setup failed")
    args.onnx = os.path.join(ROOT, "target/bench-embed", os.path.basename(args.model) + ".onnx")
    if os.path.realpath(sys.prefix) != os.path.realpath(os.path.dirname(os.path.dirname(VENV_PY))):
        # numpy (the vector check) is in the bench venv: go on there.
        os.execv(VENV_PY, [VENV_PY, os.path.abspath(__file__)] + sys.argv[1:])
    import onnxruntime

    all_texts = corpus_sections(args.corpus)
    if not all_texts:
        sys.exit(f"no Markdown sections under {args.corpus}")
    texts = all_texts if args.whole else random.Random(args.seed).sample(all_texts, min(args.sections, len(all_texts)))
    log(f"{len(texts)} of {len(all_texts)} sections; threads {args.threads}; {args.rounds} round(s)")
    tmp = tempfile.mkdtemp(prefix="ds-embed-")
    try:
        results, max_diff = measure(args, texts, tmp)
    except SystemExit:
        log(f"kept {tmp} (the texts and each side's stderr)")
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    summary = summarise(results, len(texts))
    meta = {"sections": len(texts), "corpus_sections": len(all_texts), "corpus": os.path.relpath(args.corpus, ROOT),
            "seed": None if args.whole else args.seed, "max_abs_diff": max_diff,
            "onnxruntime": onnxruntime.__version__, "model": args.model, "rounds": args.rounds,
            "whole": args.whole}
    if args.json:
        print(json.dumps({"meta": meta, "threads": {str(t): r for t, r in summary.items()}}, indent=2))
        return
    report(args, summary, meta)


if __name__ == "__main__":
    main()
