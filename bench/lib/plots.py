#!/usr/bin/env python3
"""SVG plots from bench/run's raw results, written by hand (no plotting library).

Usage: plots.py RESULTS_DIR PLOT_DIR OUT.md
Reads query-latency.json (bench/search.py) and scale.json (bench/scale.py) when present,
writes query-latency.svg and scale.svg into PLOT_DIR, and prints a Markdown section that
links them relative to OUT.md's directory. A plot whose data is missing is left out.
"""
import json
import math
import os
import sys
from html import escape

COLORS = {"doc-serve": "#1f6feb", "floor": "#6e7781", "tantivy-cli": "#cf222e", "rg": "#8250df",
          "one-shot": "#1a7f37"}
FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


def nice_log_ticks(lo, hi, fmt, mults=None):
    """1-2-5 ticks per decade (only 1s when the range spans more than three decades)."""
    if mults is None:
        mults = (1,) if math.log10(hi / lo) > 3 else (1, 2, 5)
    ticks = []
    e = math.floor(math.log10(lo))
    while 10 ** e <= hi * 1.0001:
        for m in mults:
            v = m * 10 ** e
            if lo * 0.9999 <= v <= hi * 1.0001:
                ticks.append((v, fmt(v)))
        e += 1
    return ticks


class Panel:
    """One set of axes at (x, y) of size (w, h) inside an SVG; log or linear on each axis."""

    def __init__(self, x, y, w, h, xr, yr, xlog=False, ylog=False):
        self.x, self.y, self.w, self.h = x, y, w, h
        self.xr, self.yr, self.xlog, self.ylog = xr, yr, xlog, ylog
        self.out = []

    def _t(self, v, r, log):
        if log:
            v, r = math.log10(v), (math.log10(r[0]), math.log10(r[1]))
        return (v - r[0]) / (r[1] - r[0])

    def px(self, v):
        return self.x + self._t(v, self.xr, self.xlog) * self.w

    def py(self, v):
        return self.y + self.h - self._t(v, self.yr, self.ylog) * self.h

    def axes(self, title, xlabel, ylabel, xticks, yticks):
        o = self.out
        o.append(f'<rect x="{self.x}" y="{self.y}" width="{self.w}" height="{self.h}" fill="none" stroke="#d0d7de"/>')
        for v, label in xticks:
            X = self.px(v)
            o.append(f'<line x1="{X:.1f}" y1="{self.y}" x2="{X:.1f}" y2="{self.y + self.h}" stroke="#eaeef2"/>')
            o.append(f'<text x="{X:.1f}" y="{self.y + self.h + 16}" font-size="11" text-anchor="middle" {FONT}>'
                     f'{escape(label)}</text>')
        for v, label in yticks:
            Y = self.py(v)
            o.append(f'<line x1="{self.x}" y1="{Y:.1f}" x2="{self.x + self.w}" y2="{Y:.1f}" stroke="#eaeef2"/>')
            o.append(f'<text x="{self.x - 6}" y="{Y + 4:.1f}" font-size="11" text-anchor="end" {FONT}>'
                     f'{escape(label)}</text>')
        o.append(f'<text x="{self.x + self.w / 2}" y="{self.y - 10}" font-size="13" font-weight="bold" '
                 f'text-anchor="middle" {FONT}>{escape(title)}</text>')
        o.append(f'<text x="{self.x + self.w / 2}" y="{self.y + self.h + 34}" font-size="12" '
                 f'text-anchor="middle" {FONT}>{escape(xlabel)}</text>')
        cx, cy = self.x - 52, self.y + self.h / 2
        o.append(f'<text x="{cx}" y="{cy}" font-size="12" text-anchor="middle" transform="rotate(-90 {cx} {cy})" '
                 f'{FONT}>{escape(ylabel)}</text>')

    def series(self, pts, color, dash=None, marker=True):
        pts = [(x, y) for x, y in pts if y and y > 0]
        if not pts:
            return
        d = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in pts)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        self.out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"{extra}/>')
        if marker:
            for x, y in pts:
                self.out.append(f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="3" fill="{color}"/>')

    def legend(self, items):
        for i, (label, color, dash) in enumerate(items):
            X, Y = self.x + 10, self.y + 16 + i * 17
            extra = f' stroke-dasharray="{dash}"' if dash else ""
            self.out.append(f'<line x1="{X}" y1="{Y - 4}" x2="{X + 24}" y2="{Y - 4}" stroke="{color}" '
                            f'stroke-width="2"{extra}/>')
            self.out.append(f'<text x="{X + 30}" y="{Y}" font-size="11" {FONT}>{escape(label)}</text>')


def svg(width, height, panels, caption):
    body = "\n".join(line for p in panels for line in p.out)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">\n<rect width="100%" height="100%" fill="white"/>\n{body}\n'
            f'<text x="10" y="{height - 8}" font-size="10" fill="#57606a" {FONT}>{escape(caption)}</text>\n</svg>\n')


def fmt_us(v):
    if v >= 1000:
        ms = v / 1000
        return f"{ms:g} ms"
    return f"{v:g} µs"


def fmt_s(v):
    if v >= 1:
        return f"{v:g} s"
    return f"{v * 1000:g} ms" if v >= 1e-3 else f"{v * 1e6:g} µs"


def nines(p):
    return -math.log10(1 - min(p, 99.99) / 100)


def latency_plot(data, path):
    med = data["median"]
    keys = [(c, s) for c in (1, 16) for s in ("ds", "dsx", "floor")]
    vals = [v for c, s in keys for p, v in med.get(f"{s}_c{c}", {}).items() if float(p) < 100 and v > 0]
    if not vals:
        return False
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    panels = []
    xticks = [(nines(p), label) for p, label in ((0, "0"), (50, "50"), (90, "90"), (99, "99"),
                                                 (99.9, "99.9"), (99.99, "99.99"))]
    for i, c in enumerate((1, 16)):
        pn = Panel(80 + i * 420, 40, 340, 270, (0, nines(99.99)), (lo, hi), ylog=True)
        pn.axes(f"GET /query, {c} connection{'s' if c > 1 else ''}", "percentile (%)", "latency",
                xticks, nice_log_ticks(lo, hi, fmt_us))
        series = (("dsx", "/query, distinct", "doc-serve", None), ("ds", "/query, repeated", "doc-serve", "2 3"),
                  ("floor", "floor /health", "floor", "6 4"))
        for s, _, color, dash in series:
            d = med.get(f"{s}_c{c}", {})
            pts = sorted((nines(float(p)), v) for p, v in d.items() if float(p) < 100)
            pn.series(pts, COLORS[color], dash)
        pn.legend([(label, COLORS[color], dash) for s, label, color, dash in series if med.get(f"{s}_c{c}")])
        panels.append(pn)
    cap = (f"wrk latency percentiles, median per percentile over {data['rounds']} run{'s' if data['rounds'] != 1 else ''} of {data['secs']} s; "
           f"query: {data['query']}")
    open(path, "w").write(svg(860, 370, panels, cap))
    return True


def scale_plot(rows, path):
    if len(rows) < 2:
        return False
    med = lambda xs: sorted(xs)[len(xs) // 2] if len(xs) % 2 else sum(sorted(xs)[len(xs) // 2 - 1:len(xs) // 2 + 1]) / 2
    xs = [r["scale"] for r in rows]
    xr = (min(xs) / 1.3, max(xs) * 1.3)
    xticks = [(x, f"{x}x") for x in xs]
    idx = {k: [(r["scale"], med(r[k])) for r in rows] for k in ("ds_index_s", "tv_index_s")}
    all_i = [v for pts in idx.values() for _, v in pts]
    lo, hi = 10 ** math.floor(math.log10(min(all_i))), 10 ** math.ceil(math.log10(max(all_i) * 3))  # room for the legend
    p1 = Panel(80, 40, 340, 270, xr, (lo, hi), xlog=True, ylog=True)
    p1.axes("Full index time", "corpus scale", "seconds", xticks, nice_log_ticks(lo, hi, fmt_s))
    p1.series(idx["ds_index_s"], COLORS["doc-serve"])
    p1.series(idx["tv_index_s"], COLORS["tantivy-cli"], "6 4")
    p1.legend([("doc-serve index --full", COLORS["doc-serve"], None),
               ("tantivy-cli index", COLORS["tantivy-cli"], "6 4")])
    q = {"/query p50, keep-alive (doc-serve)": ([(r["scale"], med(r["ds_p50_us"]) / 1e6) for r in rows], COLORS["doc-serve"], None),
         "floor p50 (GET /health)": ([(r["scale"], med(r["floor_p50_us"]) / 1e6) for r in rows], COLORS["floor"], "2 3"),
         "doc-serve query (one-shot)": ([(r["scale"], med(r["ds_shot_s"])) for r in rows], COLORS["one-shot"], None),
         "rg -i -l (one-shot)": ([(r["scale"], med(r["rg_shot_s"])) for r in rows], COLORS["rg"], "6 4")}
    all_q = [v for pts, _, _ in q.values() for _, v in pts if v > 0]
    lo, hi = 10 ** math.floor(math.log10(min(all_q))), 10 ** math.ceil(math.log10(max(all_q) * 3))
    p2 = Panel(500, 40, 340, 270, xr, (lo, hi), xlog=True, ylog=True)
    p2.axes("Query latency", "corpus scale", "seconds (log)", xticks,
            nice_log_ticks(lo, hi, fmt_s))
    for label, (pts, color, dash) in q.items():
        p2.series(pts, color, dash)
    p2.legend([(label, color, dash) for label, (_, color, dash) in q.items()])
    sizes = ", ".join("%dx = %.0f MB" % (r["scale"], r["mb"]) for r in rows)
    cap = f"medians per scale; corpus sizes {sizes}"
    open(path, "w").write(svg(880, 370, [p1, p2], cap))
    return True


def main():
    res, plot_dir, out_md = sys.argv[1:4]
    os.makedirs(plot_dir, exist_ok=True)
    rel = lambda f: os.path.relpath(os.path.join(plot_dir, f), os.path.dirname(os.path.abspath(out_md)))
    lines = ["\n## Plots\n"]
    made = False
    qp = os.path.join(res, "query-latency.json")
    if os.path.exists(qp) and latency_plot(json.load(open(qp)), os.path.join(plot_dir, "query-latency.svg")):
        lines.append(f"![GET /query latency by percentile, doc-serve vs the floor]({rel('query-latency.svg')})\n")
        lines.append("GET /query latency distribution (the Search section's runs): doc-serve's /query vs the "
                     "floor's /health at 1 and 16 connections, from wrk's latency histogram, the median per "
                     "percentile across rounds. Log scale.\n")
        made = True
    sp = os.path.join(res, "scale.json")
    if os.path.exists(sp) and scale_plot(json.load(open(sp)), os.path.join(plot_dir, "scale.svg")):
        lines.append(f"![Full index time and query latency vs corpus scale]({rel('scale.svg')})\n")
        lines.append("The scale curve (the Scale section's figures): full index time, doc-serve vs tantivy-cli, "
                     "and query latency, doc-serve's /query and one-shot `doc-serve query` vs `rg -i -l`, at "
                     "each corpus scale. Log-log.\n")
        made = True
    if not made:
        lines.append("Skipped: no latency or scale data in this run.\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
