#!/usr/bin/env python3
"""Cold start under socket activation: connect to first answer, doc-serve vs the floor.

Each round starts a fresh `systemd-socket-activate -l 127.0.0.1:PORT --fdname=web -E ...
BIN ...` (the README's "Supervisors" recipe), waits until it listens, then times one
GET /health from connect() to the complete answer: that spans the exec of the server in
the same PID, its start-up and the answer, as the first client of a supervised instance
sees it. Then the process is stopped with SIGTERM to the PID this script started. The
floor (bench/floor) takes the inherited socket the same way. Interleaved: every round
runs each doc-serve project and the floor, in an order that alternates.

doc-serve projects: an empty one (the least doc-serve does), and, when the corpus is
there, a copy of it with its index built beforehand (what a real project's activation
opens and watches). Prints a Markdown section on stdout.

Usage: bench/coldstart.py --doc-serve BIN --floor BIN [--corpus DIR] [--rounds N]
                          [--quick] [--results DIR]
"""
import json, os, socket, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from common import (section_args, ROOT, Sandbox, copy_corpus, free_port, logger, med, pctl,
                    proc_status, save_json, stop_pid, fmt_ms, mib)

log = logger("coldstart")


# Between the first answer and SIGTERM (untimed): a SIGTERM in doc-serve's first
# milliseconds can land before its signal handlers exist; the probe below counts that.
SETTLE_S = 0.1


def activate_once(cmd, env, logfile, expect_pid, settle=SETTLE_S):
    """One fresh activation: (connect-to-answer seconds, VmRSS kB right after, exit code)."""
    port = free_port()
    with open(logfile, "w") as err:
        p = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=web",
                              "-E", "HOME", "-E", "XDG_RUNTIME_DIR", "-E", "PATH"] + cmd,
                             env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 10
        while "Listening on" not in open(logfile).read():  # printed once the socket listens
            if p.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"systemd-socket-activate did not listen: {open(logfile).read()}")
            time.sleep(0.002)
        req = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
        t0 = time.perf_counter()
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(req)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        t1 = time.perf_counter()
        s.close()
        if not data.startswith(b"HTTP/1.1 200"):
            sys.exit(f"no 200 from {cmd[0]}: {data[:300]!r}\n{open(logfile).read()}")
        if expect_pid:
            # The answer must come from the process we started (exec'd in the same PID).
            pid = json.loads(data.split(b"\r\n\r\n", 1)[1])["pid"]
            if pid != p.pid:
                sys.exit(f"/health answered by PID {pid}, expected {p.pid}")
        rss = proc_status(p.pid)["VmRSS"]
        time.sleep(settle)
    finally:
        code = stop_pid(p)
    return t1 - t0, rss, code


def main():
    a = section_args()
    rounds = a.rounds or (3 if a.quick else 30)
    corpus = os.path.abspath(os.path.join(a.corpus, "rust-book") if a.quick else a.corpus)
    print("\n## Cold start under socket activation\n")
    if subprocess.run(["sh", "-c", "command -v systemd-socket-activate"], stdout=subprocess.DEVNULL).returncode:
        print("Skipped: systemd-socket-activate is not installed.\n")
        return
    sb = Sandbox("ds-bench-cold-")
    try:
        empty = sb.path("empty")
        os.makedirs(empty)
        sides = {"floor": ([a.floor], False)}
        serve = lambda proj: [a.doc_serve, "--path", proj, "serve", "--idle-timeout", "60"]
        sides["doc-serve, empty project"] = (serve(empty), True)
        have_corpus = os.path.isdir(corpus)
        if have_corpus:
            proj = sb.path("docs")
            files = copy_corpus(corpus, proj)
            n_files = sum(len(fs) for _, _, fs in os.walk(files))
            subprocess.run([a.doc_serve, "--path", proj, "index"], env=sb.env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            docs_label = f"doc-serve, `{os.path.relpath(corpus, ROOT)}` indexed"
            sides[docs_label] = (serve(proj), True)
        log(f"{rounds} rounds x {len(sides)} activations, interleaved")
        for name, (cmd, pid_check) in sides.items():  # one untimed warm-up each (page cache)
            activate_once(cmd, sb.env, sb.path("warm.log"), pid_check)
        samples = {k: [] for k in sides}
        rss = {k: [] for k in sides}
        codes = {k: set() for k in sides}
        order = list(sides)
        for r in range(rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                cmd, pid_check = sides[name]
                t, kb, code = activate_once(cmd, sb.env, sb.path(f"r{r}.log"), pid_check)
                samples[name].append(t)
                rss[name].append(kb)
                codes[name].add(code)
        probes = 5 if a.quick else 20
        log(f"SIGTERM right after the first answer: {probes} activations")
        killed = sum(activate_once(serve(empty), sb.env, sb.path("probe.log"), True, settle=0)[2] == -15
                     for _ in range(probes))
    finally:
        sb.close()

    save_json(a.results, "coldstart.json", {"samples_s": samples, "rss_kb": rss})
    print(f"Each of {rounds} rounds starts a fresh `systemd-socket-activate -l 127.0.0.1:PORT "
          "--fdname=web -E HOME -E XDG_RUNTIME_DIR -E PATH BIN ...` per row, waits until it "
          "listens, then times one `GET /health` from connect() to the whole answer: the exec "
          "of the server in the activator's PID, its start-up, the answer. doc-serve runs "
          "`serve --idle-timeout 60`; its /health must name the PID that was started. Each "
          "activation is then stopped with SIGTERM to that PID before the next one. The floor "
          "(`bench/floor`) takes the inherited socket (LISTEN_FDS) the same way, so both sides "
          "pay the same activation path. Rows run interleaved, the order alternating each "
          "round; one untimed warm-up activation each first.\n")
    print("| server | median | p90 | min | max | vs floor (median of per-round ratios) | VmRSS after first answer |")
    print("|---|---|---|---|---|---|---|")
    for name, xs in samples.items():
        vs = "" if name == "floor" else f"**{med([x / y for x, y in zip(xs, samples['floor'])]):.1f}x**"
        print(f"| {name} | {fmt_ms(med(xs))} | {fmt_ms(pctl(xs, 90))} | {fmt_ms(min(xs))} | "
              f"{fmt_ms(max(xs))} | {vs} | {mib(med(rss[name]))} |")
    bad = {k: sorted(c - {0}) for k, c in codes.items() if k != "floor" and c - {0}}
    print()
    if have_corpus:
        print(f"The indexed project is a copy of `{os.path.relpath(corpus, ROOT)}` ({n_files} files) whose "
              "index was built by `doc-serve index` beforehand: an activation opens that index, "
              "watches the tree and reconciles the index with the files on disk.")
    else:
        print(f"Skipped the indexed project: no corpus at `{corpus}`.")
    print("No numeric target is set here; the reference is the floor under the same activation. "
          "The next section measures the same path under a real `systemd --user` manager with the "
          "installed units, to the first query answer.")
    print(f"\nEach activation is stopped {SETTLE_S * 1000:.0f} ms after its answer. Probe: of {probes} "
          "activations of the empty project sent SIGTERM as soon as the first answer arrived, "
          f"**{killed}** died by the signal's default action (exit status -15: no clean shutdown, "
          "runtime.json possibly left behind) instead of exiting 0.")
    if bad:
        print("\nExit codes other than 0 after SIGTERM: " + "; ".join(f"{k}: {v}" for k, v in bad.items()) + ".")
    print()


if __name__ == "__main__":
    main()
