#!/usr/bin/env python3
"""Turn the raw results of bench/run into BENCHMARKS.md.

Usage: report.py RESULTS_DIR OUT.md

RESULTS_DIR holds what bench/run measured, nothing else: meta.tsv (run parameters and
tool versions), start.tsv, rss.tsv and wrk/<side>_c<conns>_r<round>.txt. Every figure in
the output is computed here from those files: medians across samples or rounds, and
doc-serve/floor ratios taken per round (both sides ran back to back) and then the median
of those. A section whose raw files are missing is left out, so a later benchmark adds
one function below and one line in SECTIONS. (The Python sections - search, cold start,
memory, scale, plots - print their own Markdown; bench/run appends it after this.)
"""

import csv
import datetime
import os
import platform
import re
import statistics
import sys
from pathlib import Path

SIDES = ("doc-serve", "floor")
TARGET_RATIO = 1.5  # issue 2: /health within 1.5x of the floor


# ------------------------------------------------------------------ small helpers

def median(xs):
    return statistics.median(xs) if xs else float("nan")


def p90(xs):
    if len(xs) < 2:
        return xs[0] if xs else float("nan")
    return statistics.quantiles(xs, n=10, method="inclusive")[8]


def spread(xs, fmt):
    """'median (min-max)' for per-round figures, so the noise is visible."""
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return fmt(xs[0])
    return f"{fmt(median(xs))} ({fmt(min(xs))}-{fmt(max(xs))})"


def us(x):
    if x >= 1000:
        return f"{x / 1000:.2f} ms"
    return f"{x:.0f} µs" if x >= 100 else f"{x:.1f} µs"


def ms(x):
    return f"{x:.1f} ms" if x >= 10 else f"{x:.2f} ms"


def ratio(x):
    return f"{x:.2f}x"


def kib(x):
    return f"{x / 1024:.1f} MiB"


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


# ------------------------------------------------------------------ the machine

def machine(meta):
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    rows = [
        ("date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ("nproc", len(os.sched_getaffinity(0))),
        ("CPU", cpu),
        ("memory", mem),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("load average before / after", f"{meta.get('loadavg_before', '?')} / {meta.get('loadavg_after', '?')}"),
        ("doc-serve", f"{meta.get('doc_serve_version') or '?'} ({meta.get('doc_serve_commit', '?')})"),
        ("rustc", meta.get("rustc", "?")),
        ("load generator", meta.get("wrk", "?")),
        ("index baseline", meta.get("tantivy_cli", "?")),
        ("grep baseline", meta.get("ripgrep", "?")),
        ("whole bench/run (after the builds)", f"{meta['wall_minutes']} min" if "wall_minutes" in meta else "?"),
    ]
    out = ["## Machine", ""] + table(("", ""), rows)
    try:
        busy = float(meta["loadavg_before"].split()[0]) > 1.0
    except (KeyError, ValueError, IndexError):
        busy = False
    if busy:
        out += ["", "The machine was not idle when this ran (1-minute load average above 1): "
                    "absolute figures are noisy; the paired ratios are the figures to trust."]
    return out


# ------------------------------------------------------------------ a. start to ready

def section_start(res, meta):
    path = res / "start.tsv"
    if not path.exists():
        return None
    rows = read_tsv(path)
    t = {s: [int(r["us"]) / 1000 for r in rows if r["side"] == s] for s in SIDES}
    rss = {s: [int(r["rss_kb"]) for r in rows if r["side"] == s] for s in SIDES}
    # The two samples of one pair ran back to back: their ratio is the least noisy figure.
    by_pair = {}
    for r in rows:
        by_pair.setdefault(r["pair"], {})[r["side"]] = int(r["us"])
    pairs = [p["doc-serve"] / p["floor"] for p in by_pair.values() if len(p) == 2 and p["floor"] > 0]
    out = ["### Start to ready", "",
           "`doc-serve --path P start --json` on a fresh project P (an empty git repo) until it "
           "returns, which it does once its detached resident answers /health; `stop` follows, "
           "untimed. The floor: spawn it, read its port from stdout, first GET /health answers.",
           ""]
    out += table(
        ("", "median", "p90", "min", "max", "samples"),
        [(label, ms(median(t[s])), ms(p90(t[s])), ms(min(t[s])), ms(max(t[s])), len(t[s]))
         for s, label in (("doc-serve", "`doc-serve start --json`"),
                          ("floor", "floor: spawn to first answer"))],
    )
    out += ["", f"doc-serve/floor, median of {len(pairs)} back-to-back pairs: "
                f"**{ratio(median(pairs))}** (p90 {ratio(p90(pairs))}). "
                f"Median VmRSS right after start: doc-serve {kib(median(rss['doc-serve']))}, "
                f"floor {kib(median(rss['floor']))}."]
    return out


# ------------------------------------------------------------------ b. GET /health under load

WRK_UNITS = {"us": 1, "ms": 1e3, "s": 1e6}


def wrk_duration(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * WRK_UNITS[m.group(2)]


def parse_wrk(path):
    text = path.read_text()
    dist = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", text, re.M))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "p50": wrk_duration(dist["50"]),
        "p99": wrk_duration(dist["99"]),
        "max": wrk_duration(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", text).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "requests": int(re.search(r"(\d+) requests in", text).group(1)),
        "errors": errors + (int(m.group(1)) if m else 0),
    }


def section_health(res, meta):
    runs = {}
    for f in sorted((res / "wrk").glob("*.txt")):
        side, conns, rnd = re.fullmatch(r"(.+)_c(\d+)_r(\d+)\.txt", f.name).groups()
        runs.setdefault(int(conns), {}).setdefault(side, {})[int(rnd)] = parse_wrk(f)
    if not runs:
        return None
    out = ["### GET /health, keep-alive", "",
           f"wrk --latency, {meta.get('load_secs', '?')} s per run, {meta.get('rounds', '?')} rounds; "
           "in each round both sides run back to back (the order alternates). Figures are medians "
           "across rounds, with (min-max) across rounds; the latency percentiles are wrk's per run.",
           ""]
    rows, verdicts, notes = [], [], []
    for conns in sorted(runs):
        threads = 1 if conns == 1 else 2
        by = runs[conns]
        for side in SIDES:
            rs = list(by.get(side, {}).values())
            rows.append((f"{conns} (-t{threads})", side,
                         spread([r["p50"] for r in rs], us), spread([r["p99"] for r in rs], us),
                         us(median([r["max"] for r in rs])),
                         spread([r["rps"] for r in rs], lambda x: f"{x:,.0f}"),
                         sum(r["errors"] for r in rs)))
            bad = sum(r["errors"] for r in rs)
            if bad:
                notes.append(f"- {side} at {conns} connections: {bad} socket errors or non-2xx answers.")
        common = sorted(set(by.get("doc-serve", {})) & set(by.get("floor", {})))
        per = {k: [by["doc-serve"][r][k] / by["floor"][r][k] for r in common] for k in ("p50", "p99", "rps")}
        rows.append((f"{conns}", "**doc-serve/floor**", spread(per["p50"], ratio),
                     spread(per["p99"], ratio), "", spread(per["rps"], ratio), ""))
        verdicts.append(f"{conns} connection{'s' if conns > 1 else ''}: p50 {ratio(median(per['p50']))}, "
                        f"p99 {ratio(median(per['p99']))} "
                        f"({'within' if median(per['p50']) <= TARGET_RATIO else 'NOT within'} "
                        f"{TARGET_RATIO}x at p50)")
    out += table(("connections", "server", "p50", "p99", "max (median)", "requests/s", "errors"), rows)
    out += ["", f"Target (issue 2): within {TARGET_RATIO}x of the floor. " + "; ".join(verdicts) + "."]
    if notes:
        out += [""] + notes
    return out


# ------------------------------------------------------------------ c. idle RSS

def section_rss(res, meta):
    path = res / "rss.tsv"
    if not path.exists():
        return None
    rows = read_tsv(path)

    def pick(side, phase, key):
        return [int(r[key]) for r in rows if r["side"] == side and r["phase"] == phase]

    start = {}
    if (res / "start.tsv").exists():
        for r in read_tsv(res / "start.tsv"):
            start.setdefault(r["side"], []).append(int(r["rss_kb"]))
    out = ["### Resident memory", "",
           "VmRSS from /proc/PID/status: right after start (median over the start samples), "
           "idle 1 s after start (the /health resident, before any load), and after each round "
           "of load (median over rounds); VmHWM is the peak at the end.", ""]
    table_rows, vals = [], {}
    for side in SIDES:
        v = (median(start.get(side, [])), median(pick(side, "idle", "rss_kb")),
             median(pick(side, "loaded", "rss_kb")), max(pick(side, "loaded", "hwm_kb") or [0]))
        vals[side] = v
        threads = max(pick(side, "loaded", "threads") or [0])
        table_rows.append((side,) + tuple(kib(x) for x in v) + (threads,))
    table_rows.append(("**doc-serve/floor**",)
                      + tuple(ratio(a / b) if b else "n/a" for a, b in zip(vals["doc-serve"], vals["floor"]))
                      + ("",))
    out += table(("", "after start", "idle before load", "after load", "peak (VmHWM)", "threads"), table_rows)
    return out


SECTIONS = [section_start, section_health, section_rss]


def main():
    res, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    meta = {r[0]: r[1] for r in csv.reader(open(res / "meta.tsv"), delimiter="\t") if len(r) == 2}
    quick = meta.get("mode") == "quick"
    lines = ["# Benchmarks", "",
             "Written by `bench/run`; do not edit by hand. Every comparison runs both sides in the "
             "same run, interleaved, on the same machine, and reports medians and ratios. The floor "
             "is `bench/floor`, a minimal hyper 1.x + tokio hello-world (HTTP/1.1, keep-alive) "
             "answering every request with `{\"status\":\"ok\"}` (it can also take its listening "
             "socket from systemd, for the cold-start comparison). Sections: core server (start, "
             "/health, memory), search (index vs tantivy-cli, /query vs the floor, one-shot vs "
             "ripgrep, freshness, relevance), cold start under socket activation, memory on the "
             "big corpus, scale (1x, 4x, 16x), plots."]
    if quick:
        lines += ["", "**Quick mode (`bench/run --quick`): too short to mean anything; it only "
                      "proves the bench still works.**"]
    lines += [""] + machine(meta) + ["", "## Core server", ""]
    for section in SECTIONS:
        body = section(res, meta)
        if body:
            lines += body + [""]
    out_path.write_text("\n".join(lines).rstrip() + "\n")


if __name__ == "__main__":
    main()
