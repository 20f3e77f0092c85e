#!/usr/bin/env python3
"""Client benchmarks, side by side in one run; prints a Markdown section on stdout.

One resident (`doc-serve index`, then `doc-serve start`) on a copy of the corpus, and in
interleaved rounds on it:
- One-shot: `doc-serve query WORD` (a process that delegates to the resident over HTTP),
  `rg -i -l WORD` over the same files and a one-shot curl to the resident's /query;
  process start to exit, median and p90 per command, ratio vs rg.
- MCP: `search_docs` tool calls through the stdio bridge (`doc-serve mcp`) from the
  official MCP Python SDK in one session, wall time per call in the client, beside the
  floor for the same round trip: GET /query on the resident over one keep-alive
  http.client connection, same query and limit, same number of requests.

The MCP client runs under target/mcp-venv/bin/python (made by tests/mcp/setup): this
script re-runs itself there as a worker (`--mcp-worker`) that keeps one session open and
runs a block of calls each time it is asked on stdin, answering one JSON line per block.

Usage: bench/clients.py --doc-serve BIN --floor BIN [--corpus DIR] [--quick] [--results DIR]
"""
import json, os, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))
import common  # noqa: E402

log = common.logger("clients")
WORD = "borrowing"
MCP_QUERY = "ownership borrowing"
MCP_LIMIT = 5
VENV_PY = os.path.join(ROOT, "target/mcp-venv/bin/python")
MCP_SETUP = os.path.join(ROOT, "tests/mcp/setup")


# ---------------------------------------------------------------- the MCP worker (venv)

def mcp_worker(bin_, project, port, token):
    """Runs under the venv: one stdio MCP session plus one keep-alive HTTP connection.
    stdin: `warm K` | `block K` | `quit`; stdout: one JSON line per command."""
    import http.client
    import anyio
    from contextlib import AsyncExitStack
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    args = {"query": MCP_QUERY, "limit": MCP_LIMIT}
    path = f"/query?q={MCP_QUERY.replace(' ', '+')}&limit={MCP_LIMIT}"
    headers = {"Authorization": f"Bearer {token}"}

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    async def main():
        async with AsyncExitStack() as stack:
            params = StdioServerParameters(command=bin_, args=["--path", project, "mcp"], env=dict(os.environ))
            read, write = await stack.enter_async_context(stdio_client(params))
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            stack.callback(conn.close)

            async def call_mcp():
                t0 = time.perf_counter()
                r = await session.call_tool("search_docs", args)
                dt = time.perf_counter() - t0
                if r.isError:
                    raise RuntimeError(f"search_docs failed: {r.content}")
                return dt, r

            def call_http():
                t0 = time.perf_counter()
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                dt = time.perf_counter() - t0
                if resp.status != 200:
                    raise RuntimeError(f"GET {path}: {resp.status} {body[:300]!r}")
                return dt, body

            while True:
                line = (await anyio.to_thread.run_sync(sys.stdin.readline)).split()
                if not line or line[0] == "quit":
                    break
                cmd, k = line[0], int(line[1])
                if cmd == "warm":
                    for _ in range(k):
                        _, r = await call_mcp()
                        _, body = call_http()
                    text = "\n".join(c.text for c in r.content if getattr(c, "type", "") == "text")
                    reply({"mcp_chars": len(text), "http_hits": len(json.loads(body).get("hits", []))})
                elif cmd == "block":
                    out = {"mcp": [], "http": []}
                    for i in range(k):
                        for side in (("mcp", "http") if i % 2 == 0 else ("http", "mcp")):
                            out[side].append((await call_mcp())[0] if side == "mcp" else call_http()[0])
                    reply(out)

    anyio.run(main)


class McpWorker:
    """The worker process above, started under the venv's Python and driven line by line."""

    def __init__(self, bin_, project, resident, env):
        self.p = subprocess.Popen([VENV_PY, os.path.abspath(__file__), "--mcp-worker", bin_, project,
                                   str(resident.port)],
                                  env=dict(env, BENCH_CLIENTS_TOKEN=resident.token), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = self.p.stdout.readline()
        if not out:
            raise RuntimeError(f"MCP worker ended (exit {self.p.wait()}) on `{line}`")
        return json.loads(out)

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
            self.p.wait(timeout=15)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        common.stop_pid(self.p)


def mcp_available():
    """None when the venv has the SDK (made by tests/mcp/setup if need be), else why not."""
    ok = lambda: os.path.exists(VENV_PY) and subprocess.run(
        [VENV_PY, "-c", "import mcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if ok():
        return None
    if not os.path.exists(MCP_SETUP):
        return "no target/mcp-venv and no tests/mcp/setup to make it"
    log("running tests/mcp/setup (the MCP Python SDK venv)")
    if subprocess.run([MCP_SETUP], stdout=sys.stderr).returncode != 0 or not ok():
        return "tests/mcp/setup failed to make target/mcp-venv"
    return None


# ---------------------------------------------------------------- main

def main():
    a = common.section_args(rounds=False)
    corpus = common.section_corpus(a, "Clients")
    if not corpus:
        return
    shots, n_mcp, warm = (5, 30, 5) if a.quick else (31, 300, 20)
    # One block of MCP/HTTP calls after each round of one-shots: n_mcp calls in `shots` blocks.
    blocks = [n_mcp // shots + (1 if i < n_mcp % shots else 0) for i in range(shots)]
    no_mcp = mcp_available()

    box = common.Sandbox("ds-bench-clients-")
    env = box.env
    project = box.path("project")
    common.copy_corpus(corpus, project)
    files = common.corpus_files(os.path.join(project, "docs"))
    mb = sum(os.path.getsize(f) for f in files) / 1e6
    ds = [a.doc_serve, "--path", project]
    resident = worker = None
    try:
        log(f"index + start on {len(files)} files, {mb:.1f} MB")
        subprocess.run(ds + ["index"], env=env, check=True, stdout=subprocess.DEVNULL)
        resident = common.Resident(a.doc_serve, project, env)
        resident.settle()
        cmds = {
            "doc-serve query": ds + ["query", WORD],
            "rg -i -l": ["rg", "-i", "-l", WORD, os.path.join(project, "docs")],
            "curl /query": ["curl", "-fsS", "-H", resident.auth, resident.base_url + f"/query?q={WORD}"],
        }
        for c in cmds.values():  # warm the page cache and check each works
            subprocess.run(c, env=env, check=True, stdout=subprocess.DEVNULL)
        if not no_mcp:
            log(f"MCP session via `doc-serve mcp`, {warm} warm-up calls")
            worker = McpWorker(a.doc_serve, project, resident, env)
            check = worker.ask(f"warm {warm}")
            if not check["mcp_chars"] or not check["http_hits"]:
                sys.exit(f"MCP or HTTP search returned nothing: {check}")

        log(f"{shots} rounds: one-shots x {len(cmds)}, then {n_mcp // shots}-{-(-n_mcp // shots)} MCP/HTTP pairs")
        shot = {k: [] for k in cmds}
        calls = {"mcp": [], "http": []}
        for i in range(shots):
            for k in (list(cmds) if i % 2 else list(reversed(cmds))):
                shot[k].append(common.timed(cmds[k], env=env))
            if worker:
                b = worker.ask(f"block {blocks[i]}")
                calls["mcp"] += b["mcp"]
                calls["http"] += b["http"]
    finally:
        if worker:
            worker.close()
        if resident:
            resident.stop()
        else:
            subprocess.run(ds + ["stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        box.close()

    med, p90 = common.med, (lambda xs: common.pctl(xs, 90))
    ms = lambda s: f"{s * 1000:.2f} ms"
    common.save_json(a.results, "clients.json", {
        "corpus": corpus, "files": len(files), "mb": mb, "word": WORD, "shots": shots,
        "one_shot_s": shot, "mcp_query": {"query": MCP_QUERY, "limit": MCP_LIMIT}, "mcp_calls": n_mcp,
        "mcp_skipped": no_mcp, "call_s": calls if not no_mcp else None,
        "summary": {**{k: {"p50": med(v), "p90": p90(v)} for k, v in shot.items()},
                    **({f"{k} call": {"p50": med(v), "p90": p90(v)} for k, v in calls.items()} if not no_mcp else {})}})

    p = print
    p(f"\n## Clients (corpus: `{os.path.relpath(corpus, ROOT)}`, {len(files)} files, {mb:.1f} MB)\n")
    p("How the command line and an AI assistant reach a running resident: each figure is wall")
    p("time seen by the client, on one resident (`doc-serve index`, then `doc-serve start`), in")
    p(f"{shots} interleaved rounds (each round: the one-shot commands in alternating order, then a")
    p("block of MCP calls and keep-alive GETs, alternating).\n")
    p(f"### One-shot commands ({shots} runs each)\n")
    p("| command | p50 | p90 | p50 vs rg -i |\n|---|---|---|---|")
    rg = med(shot["rg -i -l"])
    for k, v in shot.items():
        p(f"| `{k}` | {ms(med(v))} | {ms(p90(v))} | {med(v) / rg:.2f}x |")
    p(f"\nProcess start to exit, output to /dev/null. `doc-serve query {WORD}` delegates to the")
    p(f"resident over HTTP; `rg -i -l {WORD}` reads the same files; `curl /query` is one request")
    p(f"to the resident. Target: `doc-serve query` p50 at most 5 ms (here {ms(med(shot['doc-serve query']))}).\n")
    p("### MCP tool call through the stdio bridge\n")
    if no_mcp:
        p(f"Skipped: {no_mcp}.\n")
        return
    m, h = calls["mcp"], calls["http"]
    p(f"| client | calls | p50 | p90 | p50 vs the floor |\n|---|---|---|---|---|")
    p(f"| MCP `tools/call` search_docs via `doc-serve mcp` | {len(m)} | {ms(med(m))} | {ms(p90(m))} | {med(m) / med(h):.2f}x |")
    p(f"| floor: GET /query, keep-alive (http.client) | {len(h)} | {ms(med(h))} | {ms(p90(h))} | 1.00x |")
    p(f"\nOne session of the official MCP Python SDK (`ClientSession` over `stdio_client`) on")
    p(f"`doc-serve mcp`: `search_docs` {{\"query\": \"{MCP_QUERY}\", \"limit\": {MCP_LIMIT}}}, {warm} warm-up")
    p("calls, then time.perf_counter around each `await session.call_tool(...)` (which includes the")
    p("SDK's own encoding, parsing and result validation). The floor is the same search as a GET on")
    p("the resident over one reused connection, from the same Python process, so the ratio is what")
    p("the bridge and the MCP client add. The resident keeps its recent answers, so both sides are")
    p(f"answered from that memo after the first call. Target: MCP tool call p50 at most 2 ms (here {ms(med(m))}).\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--mcp-worker":
        mcp_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), os.environ.pop("BENCH_CLIENTS_TOKEN"))
    else:
        main()
