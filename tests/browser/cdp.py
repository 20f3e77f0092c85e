"""A small Chrome DevTools Protocol client over --remote-debugging-pipe (stdlib only).

Chromium reads commands on fd 3 and writes replies and events on fd 4, as JSON
messages each ended by a NUL byte. No debugging port is opened, so no other local user
can reach the browser. Shared by the page tests, bench/page.py and the screenshots.

    with Browser() as b:
        page = b.new_page()
        page.navigate("http://127.0.0.1:PORT/")
        page.eval("document.title")
"""

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time

FLAGS = [
    "--headless",
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--window-size=1280,900",
]


def find_chromium():
    """The browser binary: Debian's real one, else `chromium` on PATH, else None.

    /usr/bin/chromium is a shell wrapper; it ends in exec, which keeps fds 3 and 4, but
    the binary itself avoids its CHROMIUM_FLAGS and temp-profile handling.
    """
    for p in ("/usr/lib/chromium/chromium",):
        if os.access(p, os.X_OK):
            return p
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class CdpError(Exception):
    pass


class Browser:
    def __init__(self, binary=None, extra_flags=()):
        binary = binary or find_chromium()
        if not binary:
            raise CdpError("chromium is not installed (apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="ds-chromium-")
        flags = FLAGS + [f"--user-data-dir={self.profile}", *extra_flags]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium refuses to run as root otherwise
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()

        def fds():
            # Move both ends above 4 first: one may already be 3 or 4, and dup2(fd, fd)
            # would leave it close-on-exec.
            import fcntl

            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, *flags, "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.profile, "stderr.log"), "wb"),
            preexec_fn=fds,
            # close_fds would run after preexec_fn and close 3 and 4 again; every other
            # fd Python opens is close-on-exec already (PEP 446).
            close_fds=False,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self.out = os.fdopen(to_child_w, "wb", buffering=0)
        self.inp = os.fdopen(from_child_r, "rb", buffering=0)
        self.next_id = 0
        self.lock = threading.Lock()
        self.waiting = {}  # id -> queue for its reply
        self.sessions = {}  # sessionId -> Page
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()
        self.call("Target.setDiscoverTargets", discover=False)

    def _read(self):
        buf = b""
        while True:
            chunk = self.inp.read(1 << 16)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    q = self.waiting.pop(msg["id"], None)
                    if q:
                        q.put(msg)
                else:
                    page = self.sessions.get(msg.get("sessionId"))
                    if page:
                        page._event(msg)
        self.closed = True
        for q in list(self.waiting.values()):
            q.put({"error": {"message": "browser closed"}})

    def call(self, method, session=None, timeout=30, **params):
        with self.lock:
            self.next_id += 1
            mid = self.next_id
            q = queue.Queue()
            self.waiting[mid] = q
            msg = {"id": mid, "method": method, "params": params}
            if session:
                msg["sessionId"] = session
            self.out.write(json.dumps(msg).encode() + b"\0")
        try:
            reply = q.get(timeout=timeout)
        except queue.Empty:
            raise CdpError(f"{method}: no reply in {timeout} s") from None
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def new_page(self):
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        sid = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self, sid, target)
        self.sessions[sid] = page
        page.start()
        return page

    def close(self):
        try:
            if not self.closed:
                self.call("Browser.close", timeout=5)
        except CdpError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


KEYS = {
    "ArrowDown": ("ArrowDown", 40),
    "ArrowUp": ("ArrowUp", 38),
    "Enter": ("Enter", 13),
    "Escape": ("Escape", 27),
    "Tab": ("Tab", 9),
    "Backspace": ("Backspace", 8),
}


class Page:
    """One tab. Records errors, dialogs and network requests as they come."""

    def __init__(self, browser, session, target):
        self.b = browser
        self.session = session
        self.target = target
        self.events = queue.Queue()
        self.errors = []  # console errors, exceptions, failed loads, CSP reports
        self.warnings = []
        self.dialogs = []
        self.requests = []  # URLs, in order
        self.finished = {}  # requestId -> encodedDataLength
        self.responses = {}  # requestId -> (url, status)
        self.listeners = []

    def start(self):
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method, timeout=30, **params):
        return self.b.call(method, session=self.session, timeout=timeout, **params)

    def _event(self, msg):
        m, p = msg["method"], msg.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            self.errors.append(f"exception: {text}")
        elif m == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            if p["type"] in ("error", "assert"):
                self.errors.append(f"console.{p['type']}: {text}")
            elif p["type"] == "warning":
                self.warnings.append(text)
        elif m == "Log.entryAdded":
            e = p["entry"]
            if e["level"] == "error":
                self.errors.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}")
            elif e["level"] == "warning":
                self.warnings.append(e.get("text"))
        elif m == "Page.javascriptDialogOpening":
            self.dialogs.append(p.get("message"))
            threading.Thread(
                target=lambda: self.call("Page.handleJavaScriptDialog", accept=False), daemon=True
            ).start()
        elif m == "Network.requestWillBeSent":
            self.requests.append(p["request"]["url"])
        elif m == "Network.responseReceived":
            self.responses[p["requestId"]] = (p["response"]["url"], p["response"]["status"])
        elif m == "Network.loadingFinished":
            self.finished[p["requestId"]] = p.get("encodedDataLength", 0)
        self.events.put(msg)

    def wait_event(self, method, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"no {method} in {timeout} s")
            try:
                msg = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if msg["method"] == method:
                return msg.get("params", {})

    def navigate(self, url, timeout=15):
        self._drain()
        r = self.call("Page.navigate", url=url)
        if r.get("errorText"):
            raise CdpError(f"navigate {url}: {r['errorText']}")
        self.wait_event("Page.loadEventFired", timeout)

    def reload(self, timeout=15):
        self._drain()
        self.call("Page.reload")
        self.wait_event("Page.loadEventFired", timeout)

    def _drain(self):
        while not self.events.empty():
            self.events.get_nowait()

    def eval(self, expr, timeout=30):
        """Evaluates `expr` (awaiting a promise) and returns its value as JSON."""
        r = self.call(
            "Runtime.evaluate",
            timeout=timeout,
            expression=expr,
            awaitPromise=True,
            returnByValue=True,
            userGesture=True,
        )
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CdpError(f"eval: {d.get('exception', {}).get('description') or d.get('text')}")
        return r["result"].get("value")

    def wait_for(self, expr, timeout=10, interval=0.02):
        """Polls `expr` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.eval(expr)
            if v:
                return v
            if time.monotonic() > deadline:
                raise CdpError(f"timed out waiting for: {expr}")
            time.sleep(interval)

    def type_char(self, ch):
        self.call("Input.dispatchKeyEvent", type="keyDown", key=ch, text=ch, unmodifiedText=ch)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=ch)

    def type_text(self, text, between=0.0):
        for ch in text:
            self.type_char(ch)
            if between:
                time.sleep(between)

    def press(self, name):
        key, code = KEYS[name]
        extra = {"text": "\r"} if name == "Enter" else {}
        self.call(
            "Input.dispatchKeyEvent",
            type="rawKeyDown",
            key=key,
            code=key,
            windowsVirtualKeyCode=code,
            nativeVirtualKeyCode=code,
        )
        if extra:
            self.call("Input.dispatchKeyEvent", type="char", key=key, **extra)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=key, windowsVirtualKeyCode=code)

    def screenshot(self, path):
        import base64

        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
