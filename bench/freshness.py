#!/usr/bin/env python3
"""Freshness: from a file written to its words found by /query, on a running resident.

Copies a corpus into a scratch project (so nothing is written into the shared corpus),
starts a resident, waits for its first index, then N times writes a new Markdown file
holding a unique word and polls /query (every 2 ms, keep-alive) until the word is found.
Reports p50/p95/max in milliseconds as JSON. The default debounce (200 ms) is part of
what is measured, as a user would see it.

Usage: bench/freshness.py --corpus DIR [--doc-serve BIN] [--runs N]
"""
import argparse, http.client, json, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--doc-serve", default=os.path.join(ROOT, "target/release/doc-serve"))
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ds-fresh-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOC_SERVE_")}
    env.update(HOME=os.path.join(tmp, "home"), XDG_RUNTIME_DIR=os.path.join(tmp, "run"))
    os.makedirs(env["HOME"]), os.makedirs(env["XDG_RUNTIME_DIR"])
    project = os.path.join(tmp, "project")
    shutil.copytree(args.corpus, os.path.join(project, "docs"))
    ds = [args.doc_serve, "--path", project]
    try:
        subprocess.run(ds + ["index"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(ds + ["start"], env=env, check=True, stdout=subprocess.DEVNULL)
        rt = json.load(open(os.path.join(project, ".claude/doc-serve/runtime.json")))
        conn = http.client.HTTPConnection("127.0.0.1", rt["port"])
        headers = {"Authorization": f"Bearer {rt['token']}"}

        def hits(word):
            conn.request("GET", f"/query?q={word}&limit=1", headers=headers)
            return json.loads(conn.getresponse().read())["hits"]

        while True:  # the start-up reconciliation must be done before we time anything
            conn.request("GET", "/status", headers=headers)
            s = json.loads(conn.getresponse().read())["index"]
            if not s["indexing"] and not s["pending_changes"]:
                break
            time.sleep(0.05)
        samples = []
        for i in range(args.runs):
            word = f"freshword{i}x{os.getpid()}"
            path = os.path.join(project, "docs", f"fresh-{i}.md")
            t0 = time.monotonic()
            with open(path, "w") as f:
                f.write(f"# Fresh {i}\n\nThe word {word} is new.\n")
            while not hits(word):
                if time.monotonic() - t0 > 10:
                    sys.exit(f"{word} not visible after 10 s")
                time.sleep(0.002)
            samples.append((time.monotonic() - t0) * 1000)
            time.sleep(0.3)  # let the watcher go quiet between samples
    finally:
        subprocess.run(ds + ["stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
    print(json.dumps({"runs": len(samples), "p50_ms": statistics.median(samples), "p95_ms": p95, "max_ms": samples[-1]}))


if __name__ == "__main__":
    main()
