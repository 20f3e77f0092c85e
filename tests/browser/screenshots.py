#!/usr/bin/env python3
"""The README's screenshots of the search page, from the same headless Chromium as the
tests: docs/screenshots/search-light.png, search-dark.png and reader.png.

A resident in a temp dir on the rust-book part of ../shared/corpus/docs when present,
else on tests/fixtures/docs; logged in with `doc-serve open --print --json`.

    tests/browser/screenshots.py [--doc-serve target/debug/doc-serve] [--out docs/screenshots]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import cdp  # noqa: E402

WIDTH, HEIGHT = 1200, 760


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--doc-serve", default=os.path.join(ROOT, "target/debug/doc-serve"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/screenshots"))
    ap.add_argument("--query", default=None)
    a = ap.parse_args()

    book = os.path.join(ROOT, "../shared/corpus/docs/rust-book")
    src, query = (book, "borrow checker") if os.path.isdir(book) else (
        os.path.join(ROOT, "tests/fixtures/docs"), "install")
    query = a.query or query
    tmp = tempfile.mkdtemp(prefix="ds-shots-")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": f"{tmp}/home", "XDG_RUNTIME_DIR": f"{tmp}/run"}
    os.makedirs(env["HOME"])
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700)
    project = os.path.join(tmp, "project")
    os.makedirs(os.path.join(project, ".git"))
    shutil.copytree(src, os.path.join(project, "docs"))
    ds = [a.doc_serve, "--path", project]
    os.makedirs(a.out, exist_ok=True)
    try:
        subprocess.run(ds + ["start"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(ds + ["query", "--json", "--", query], env=env, check=True, stdout=subprocess.DEVNULL)
        url = json.loads(subprocess.run(ds + ["open", "--print", "--json"], env=env, check=True,
                                        stdout=subprocess.PIPE, text=True).stdout)["url"]
        with cdp.Browser() as b:
            page = b.new_page()
            page.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
                      deviceScaleFactor=1, mobile=False)
            page.navigate(url)
            page.wait_for("document.getElementById('fresh').textContent.length > 0")
            page.eval("document.getElementById('q').focus()")
            page.type_text(query, between=0.03)
            page.wait_for("document.querySelectorAll('#results .hit').length > 0")
            time.sleep(0.4)
            page.screenshot(os.path.join(a.out, "search-light.png"))
            page.call("Emulation.setEmulatedMedia",
                      features=[{"name": "prefers-color-scheme", "value": "dark"}])
            time.sleep(0.3)
            page.screenshot(os.path.join(a.out, "search-dark.png"))
            page.call("Emulation.setEmulatedMedia", features=[])
            page.press("Enter")
            page.wait_for("!document.getElementById('reader').hidden && "
                          "document.querySelectorAll('#outline li').length > 0")
            time.sleep(1.5)  # past the heading's flash
            page.screenshot(os.path.join(a.out, "reader.png"))
            if page.errors:
                sys.exit(f"console errors: {page.errors}")
    finally:
        subprocess.run(ds + ["stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {a.out}/search-light.png, search-dark.png, reader.png")


if __name__ == "__main__":
    main()
