#!/usr/bin/env python3
"""The search page in headless Chromium: one scenario, one JSON result on stdout.

    page_test.py search --base http://127.0.0.1:PORT --code CODE [--query install]
    page_test.py xss    --base URL --code CODE --code2 CODE [--query payload]
    page_test.py login  --base URL [--code CODE] --used-code C --expired-code C
    page_test.py daemon --base URL --code CODE --pick PROJECT_ID --query WORD
    page_test.py dark   --base URL --code CODE

Prints {"scenario", "ok", "failures": [...], "errors": [...], ...} and exits 0 when ok.
Run by tests/integration/page.rs, which starts the servers and makes the codes.
"""

import argparse
import json
import sys
import time
from urllib.parse import urlsplit

sys.path.insert(0, __import__("os").path.dirname(__file__))
import cdp  # noqa: E402

# What must never appear in the results or the reader.
DANGER = (
    "script, img, iframe, svg, style, object, embed, link, meta, base, form, frame, "
    "a[href^='javascript:' i], a[href^='data:' i]"
)
COUNT_DANGER = f"""(() => {{
  const roots = [document.getElementById('results'), document.getElementById('reader')];
  let n = 0;
  for (const r of roots) {{
    n += r.querySelectorAll("{DANGER}").length;
    for (const e of r.querySelectorAll('*'))
      for (const a of e.attributes) if (/^on/i.test(a.name) || a.name === 'style') n++;
  }}
  return n;
}})()"""


class Result:
    def __init__(self):
        self.r = {"scenario": "", "ok": True, "failures": [], "errors": []}
        self.page = None  # the page in use, for its errors when a step times out

    def check(self, cond, what):
        if not cond:
            self.r["ok"] = False
            self.r["failures"].append(what)
        return cond

    def note(self, key, value):
        self.r[key] = value

    def page_errors(self, page, allow=()):
        """Console errors, exceptions, CSP reports and dialogs of `page` fail the run."""
        errs = [e for e in page.errors if not any(a in e for a in allow)]
        self.r["errors"] += errs
        self.check(not errs, f"{len(errs)} console errors")
        self.check(not page.dialogs, f"dialogs opened: {page.dialogs}")

    def done(self):
        print(json.dumps(self.r, indent=1))
        sys.exit(0 if self.r["ok"] else 1)


def logged_in(page, base, code):
    RESULT.page = page
    page.navigate(f"{base}/#code={code}")
    page.wait_for("document.getElementById('fresh').textContent.length > 0")


def search_for(page, query):
    page.eval("document.getElementById('q').focus()")
    page.type_text(query, between=0.03)
    page.wait_for(
        f"document.getElementById('q').value === {json.dumps(query)} && "
        "document.querySelectorAll('#results .hit').length > 0"
    )


def scenario_search(a, res):
    with cdp.Browser() as b:
        page = b.new_page()
        logged_in(page, a.base, a.code)
        res.check("code=" not in page.eval("location.href"), "the code stays in the address")
        search_for(page, a.query)
        first = page.eval(
            """(() => { const h = document.querySelector('#results .hit');
              return { path: h.querySelector('.path').textContent,
                       trail: h.querySelector('.trail')?.textContent || '',
                       marks: [...h.querySelectorAll('mark')].map(m => m.textContent) }; })()"""
        )
        res.note("first_hit", first)
        res.check(":" in first["path"] and first["path"].rsplit(":", 1)[1].isdigit(), "path:line")
        res.check(first["trail"], "a heading trail")
        stem = a.query.split()[-1][:4].lower()
        res.check(any(stem in m.lower() for m in first["marks"]), f"<mark> holds {stem!r}")
        # ArrowDown then Enter: the second hit (the first is selected already).
        page.press("ArrowDown")
        page.press("Enter")
        page.wait_for("!document.getElementById('reader').hidden && "
                      "document.querySelectorAll('#outline li').length > 0")
        page.wait_for("document.querySelector('#doc-body [data-line]') !== null")
        time.sleep(0.2)
        view = page.eval(
            """(() => { const s = new URLSearchParams(location.hash.slice(1)).get('sec');
              const cur = document.querySelector('#outline li.current');
              const hs = [...document.querySelectorAll('#doc-body h1,#doc-body h2,#doc-body h3,#doc-body h4,#doc-body h5,#doc-body h6')];
              // The heading of the section; in a text-format doc, the block at the hit's line.
              const line = Number(new URLSearchParams(location.hash.slice(1)).get('line') || 0);
              const blocks = [...document.querySelectorAll('#doc-body [data-line]')]
                .filter(e => Number(e.dataset.line) <= line);
              const h = hs.find(h => h.dataset.section === s) ||
                        hs.find(h => cur && h.textContent === cur.textContent) || blocks.pop();
              const r = h ? h.getBoundingClientRect() : null;
              return { sec: s, heading: h ? h.textContent : null,
                       top: r ? r.top : null, height: innerHeight,
                       outline: document.querySelectorAll('#outline li').length,
                       current: [...document.querySelectorAll('#outline li')].findIndex(li => li.classList.contains('current')) }; })()"""
        )
        res.note("reader", view)
        res.check(view["heading"] is not None, "the section's heading is in the reader")
        res.check(view["top"] is not None and 0 <= view["top"] < view["height"], "the heading is in view")
        res.check(view["outline"] >= 2, "the outline lists the sections")
        page.eval("document.activeElement.blur()")
        page.type_char("]")
        time.sleep(0.1)
        after = page.eval("[...document.querySelectorAll('#outline li')].findIndex(li => li.classList.contains('current'))")
        res.check(view["current"] < 0 or after == min(view["current"] + 1, view["outline"] - 1), "] goes to the next section")
        page.type_char("/")
        time.sleep(0.1)
        focus = page.eval("[document.activeElement.id, document.getElementById('q').value, document.getElementById('reader').hidden]")
        res.check(focus[0] == "q" and focus[1] == a.query, f"/ focuses the search box: {focus}")
        res.page_errors(page)


def scenario_xss(a, res):
    for bypass in (False, True):
        with cdp.Browser() as b:
            page = b.new_page()
            tag = "without CSP" if bypass else "with CSP"
            if bypass:
                page.call("Page.setBypassCSP", enabled=True)
            page.eval("window.__pwned = undefined")
            logged_in(page, a.base, a.code2 if bypass else a.code)
            search_for(page, a.query)
            time.sleep(0.2)
            res.check(page.eval(COUNT_DANGER) == 0, f"{tag}: no live markup in the results")
            text = page.eval("document.getElementById('results').textContent")
            res.check("<script>" in text, f"{tag}: the literal <script> is shown in the results")
            n = page.eval("document.querySelectorAll('#results .hit').length")
            opened = 0
            for i in range(n):
                page.eval(f"document.querySelectorAll('#results .hit')[{i}].click()")
                page.wait_for("!document.getElementById('reader').hidden && "
                              "!document.getElementById('doc-body').textContent.startsWith('loading')")
                time.sleep(0.1)
                opened += 1
                res.check(page.eval(COUNT_DANGER) == 0, f"{tag}: no live markup in reader {i}")
                links = page.eval("document.querySelectorAll('#doc-body a').length")
                for k in range(links):
                    href = page.eval(f"document.querySelectorAll('#doc-body a')[{k}]?.href || ''")
                    res.check(urlsplit(href).scheme in ("http", "https", "mailto", ""), f"{tag}: href {href}")
                    host = urlsplit(href).hostname
                    if href.startswith("mailto:") or (
                        href.startswith("http") and host not in ("127.0.0.1", "localhost")
                    ):
                        continue  # never leave loopback; mailto: would launch a mail client
                    page.eval(f"document.querySelectorAll('#doc-body a')[{k}]?.click()")
                    time.sleep(0.05)
                page.eval("history.back()")
                time.sleep(0.2)
                page.wait_for("document.querySelectorAll('#results .hit').length > 0")
            reader_text = page.eval("document.getElementById('doc-body').textContent")
            res.note(f"opened {tag}", opened)
            res.check(opened > 0, f"{tag}: a hit was opened")
            res.check("<script>" in text + reader_text, f"{tag}: <script> is text")
            res.check(page.eval("window.__pwned === undefined"), f"{tag}: window.__pwned stays undefined")
            res.page_errors(page)


def scenario_login(a, res):
    origin = urlsplit(a.base)
    with cdp.Browser() as b:
        page = b.new_page()
        page.navigate(f"{a.base}/")
        page.wait_for("!document.getElementById('login').hidden")
        time.sleep(0.3)
        api = [u for u in page.requests if not (urlsplit(u).path == "/" or urlsplit(u).path.startswith("/ui/"))]
        res.check(not api, f"no API request without a code: {api}")
        res.page_errors(page)
        for code, says in ((a.used_code, "already used"), (a.expired_code, "expired"), ("00" * 16, "not valid")):
            page = b.new_page()
            page.navigate(f"{a.base}/#code={code}")
            text = page.wait_for(
                "!document.getElementById('login').hidden && document.getElementById('login-why').textContent"
            )
            res.check(says in text, f"code {code[:6]}…: {says!r} in {text!r}")
            res.check("code=" not in page.eval("location.href"), "the code leaves the address")
            # The refused POST /login is the one error the browser logs.
            res.page_errors(page, allow=("status of 401",))
        if not a.code:
            return  # a good code is tried by the other scenarios
        page = b.new_page()
        page.navigate(f"{a.base}/#code={a.code}")
        page.wait_for("document.getElementById('fresh').textContent.length > 0")
        res.check("code=" not in page.eval("location.href"), "the code leaves the address after login")
        res.check(page.eval("!!sessionStorage.getItem('doc-serve.session')"), "the session is stored")
        res.check(not page.eval("document.cookie"), "no cookie")
        res.check(all(urlsplit(u).netloc == origin.netloc for u in page.requests), "only its own origin")
        res.page_errors(page)


def scenario_redirect(a, res):
    """The 0600 file `doc-serve open` hands the browser (file://) lands on the page,
    signed in, with the code gone from the address."""
    with cdp.Browser() as b:
        page = b.new_page()
        RESULT.page = page
        page.navigate(f"file://{a.file}")
        page.wait_for("location.protocol === 'http:' && (document.getElementById('fresh')?.textContent.length || 0) > 0")
        res.check(page.eval("location.href").startswith(a.base + "/"), "it lands on the page")
        res.check("code=" not in page.eval("location.href"), "the code leaves the address")
        res.check(page.eval("!!sessionStorage.getItem('doc-serve.session')"), "the session is stored")
        res.page_errors(page)


def scenario_daemon(a, res):
    with cdp.Browser() as b:
        page = b.new_page()
        logged_in(page, a.base, a.code)
        options = page.wait_for(
            "(() => { const s = document.getElementById('project');"
            " return !s.hidden && s.options.length >= 2 && [...s.options].map(o => o.value); })()"
        )
        res.note("projects", options)
        res.check(a.pick in options, f"{a.pick} is in the picker")
        page.eval(
            f"(() => {{ const s = document.getElementById('project'); s.value = {json.dumps(a.pick)};"
            " s.dispatchEvent(new Event('change')); })()"
        )
        page.wait_for(f"location.hash.includes({json.dumps('project=' + a.pick)})")
        search_for(page, a.query)
        paths = page.eval("[...document.querySelectorAll('#results .path')].map(p => p.textContent)")
        res.note("paths", paths)
        res.check(bool(paths), "the chosen project answers")
        if a.expect_path:
            res.check(any(a.expect_path in p for p in paths), f"{a.expect_path} is among the hits")
        res.page_errors(page)


RESULT = Result()


def luminance(css):
    nums = [float(x) for x in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]
    return sum(nums) / (3 * 255)


def scenario_dark(a, res):
    with cdp.Browser() as b:
        page = b.new_page()
        logged_in(page, a.base, a.code)
        light = page.eval("getComputedStyle(document.body).backgroundColor")
        page.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": "dark"}])
        time.sleep(0.1)
        dark = page.eval("getComputedStyle(document.body).backgroundColor")
        res.note("background", {"light": light, "dark": dark})
        res.check(luminance(light) > 0.8, f"light background {light}")
        res.check(luminance(dark) < 0.2, f"dark background {dark}")
        res.page_errors(page)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", choices=["search", "xss", "login", "daemon", "dark", "redirect"])
    p.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--code", help="a fresh login code (login: optional)")
    p.add_argument("--code2", help="a second fresh code (xss: the run without CSP)")
    p.add_argument("--used-code", help="login: a code already redeemed")
    p.add_argument("--expired-code", help="login: a code past its time")
    p.add_argument("--pick", help="daemon: the project id to choose")
    p.add_argument("--expect-path", help="daemon: a path the chosen project's hits hold")
    p.add_argument("--query", default="install")
    p.add_argument("--file", help="redirect: the file `doc-serve open` handed the browser")
    a = p.parse_args()
    a.base = a.base.rstrip("/")
    if not a.code and a.scenario not in ("login", "redirect"):
        p.error("--code is required")
    res = RESULT
    res.r["scenario"] = a.scenario
    try:
        globals()[f"scenario_{a.scenario}"](a, res)
    except cdp.CdpError as e:
        res.check(False, f"browser: {e}")
        if res.page:
            res.r["errors"] += res.page.errors
    res.done()


if __name__ == "__main__":
    main()
