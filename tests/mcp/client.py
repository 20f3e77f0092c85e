#!/usr/bin/env python3
"""Drives doc-serve's MCP server with the official MCP Python SDK (PyPI `mcp`).

Run with the venv tests/mcp/setup makes (target/mcp-venv/bin/python). Prints one JSON
object on stdout for tests/integration/mcp.rs to check; exits non-zero on a failure it
can see itself.

  client.py stdio BIN PROJECT        every tool over `doc-serve mcp` (stdio)
  client.py http URL TOKEN           every tool over Streamable HTTP at URL (/mcp)
  client.py bridges BIN PROJECT N    N stdio bridges at once, each searching
  client.py survive BIN PROJECT      a search, the resident SIGKILLed, a search again
  client.py calls stdio BIN PROJECT CALLS | calls http URL TOKEN CALLS
                                     each [tool, arguments] of the JSON list CALLS; the
                                     structured content of each answer (checked against
                                     the tool's outputSchema by the SDK)
  client.py progress BIN PROJECT     a full reindex asking for progress notifications
"""
import asyncio, json, os, signal, sys, time
from contextlib import AsyncExitStack

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError


def text(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def stdio_params(bin_, project):
    env = {k: v for k, v in os.environ.items()}
    return StdioServerParameters(command=bin_, args=["--path", project, "mcp"], env=env)


async def open_stdio(stack, bin_, project):
    read, write = await stack.enter_async_context(stdio_client(stdio_params(bin_, project)))
    session = await stack.enter_async_context(ClientSession(read, write))
    init = await session.initialize()
    return session, init


async def open_http(stack, url, token):
    read, write, _ = await stack.enter_async_context(
        streamablehttp_client(url, headers={"Authorization": f"Bearer {token}"}))
    session = await stack.enter_async_context(ClientSession(read, write))
    init = await session.initialize()
    return session, init


async def exercise(session, init):
    out = {"server": init.serverInfo.name, "protocol": init.protocolVersion,
           "instructions": bool(init.instructions)}
    tools = await session.list_tools()
    out["tools"] = sorted(t.name for t in tools.tools)
    out["described"] = all(len(t.description or "") > 80 and t.inputSchema.get("type") == "object"
                           for t in tools.tools)
    r = await session.call_tool("search_docs", {"query": "installer platform", "limit": 3})
    out["search"] = {"error": r.isError, "text": text(r)}
    r = await session.call_tool("read_doc", {"path": "docs/guide/install.md", "line_start": 1, "line_end": 3})
    out["read_range"] = {"error": r.isError, "text": text(r)}
    r = await session.call_tool("read_doc", {"path": "docs/guide/install.md", "heading": "Linux"})
    out["read_heading"] = {"error": r.isError, "text": text(r)}
    r = await session.call_tool("index_status", {})
    out["status"] = {"error": r.isError, "text": text(r)}
    r = await session.call_tool("reindex", {})
    out["reindex"] = {"error": r.isError, "text": text(r)}
    bad = {}
    for name, args in [("search_docs", {}), ("search_docs", {"query": 5}),
                       ("search_docs", {"query": "x", "limit": -1}),
                       ("read_doc", {"path": "../../etc/passwd"}),
                       ("read_doc", {"path": "docs/guide/install.md", "heading": "No Such Heading"}),
                       ("reindex", {"full": "yes"})]:
        r = await session.call_tool(name, args)
        bad[f"{name} {json.dumps(args)}"] = {"error": r.isError, "text": text(r)}
    out["bad_arguments"] = bad
    try:
        await session.call_tool("no_such_tool", {})
        out["unknown_tool"] = "no error"
    except McpError as e:
        out["unknown_tool"] = f"McpError: {e}"
    # Still serving after all that.
    r = await session.call_tool("search_docs", {"query": "installer"})
    out["after"] = {"error": r.isError, "text": text(r)}
    return out


async def main():
    mode = sys.argv[1]
    async with AsyncExitStack() as stack:
        if mode == "stdio":
            session, init = await open_stdio(stack, sys.argv[2], sys.argv[3])
            out = await exercise(session, init)
        elif mode == "http":
            session, init = await open_http(stack, sys.argv[2], sys.argv[3])
            out = await exercise(session, init)
        elif mode == "calls":
            opener = open_stdio if sys.argv[2] == "stdio" else open_http
            session, _ = await opener(stack, sys.argv[3], sys.argv[4])
            out = []
            for name, args in json.loads(sys.argv[5]):
                r = await session.call_tool(name, args)
                out.append({"error": r.isError, "structured": r.structuredContent, "text": text(r)})
        elif mode == "progress":
            session, _ = await open_stdio(stack, sys.argv[2], sys.argv[3])
            notes = []

            async def note(progress, total, message):
                notes.append([progress, total, message])

            r = await session.call_tool("reindex", {"full": True}, progress_callback=note)
            out = {"error": r.isError, "structured": r.structuredContent, "notes": notes}
        elif mode == "bridges":
            bin_, project, n = sys.argv[2], sys.argv[3], int(sys.argv[4])

            async def one():
                # Each bridge in its own task, entered and left there (anyio's rule).
                async with AsyncExitStack() as own:
                    session, _ = await open_stdio(own, bin_, project)
                    return await session.call_tool("search_docs", {"query": "installer platform", "limit": 3})

            results = await asyncio.gather(*(one() for _ in range(n)))
            out = {"texts": [text(r) for r in results], "errors": [r.isError for r in results]}
        elif mode == "survive":
            bin_, project = sys.argv[2], sys.argv[3]
            # The bridge's log (on stderr) shows its recovery if a test fails.
            os.environ.setdefault("DOC_SERVE_LOG", "doc_serve=debug")
            session, _ = await open_stdio(stack, bin_, project)
            first = await session.call_tool("search_docs", {"query": "installer"})
            runtime = os.path.join(project, ".claude/doc-serve/runtime.json")
            pid = json.load(open(runtime))["pid"]
            os.kill(pid, signal.SIGKILL)
            t0 = time.monotonic()
            # Dead (a zombie, or reaped) before the next call, which must not race it.
            while time.monotonic() - t0 < 10:
                try:
                    state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
                except (OSError, IndexError):
                    break
                if state in ("Z", "X"):
                    break
                time.sleep(0.005)
            second = await session.call_tool("search_docs", {"query": "installer"})
            new_pid = json.load(open(runtime))["pid"] if os.path.exists(runtime) else None
            out = {"first": {"error": first.isError, "text": text(first)},
                   "second": {"error": second.isError, "text": text(second)},
                   "killed": pid, "new_pid": new_pid,
                   "recovery_ms": round((time.monotonic() - t0) * 1000)}
        else:
            sys.exit(f"unknown mode {mode}")
    print(json.dumps(out))


def watchdog(seconds):
    """Past `seconds` (the test would hang until nextest's timeout, showing nothing), print
    where every task waits, and the processes left, then exit 3."""
    import threading, traceback

    loop = asyncio.get_running_loop()

    def fire():
        print(f"client.py: no answer after {seconds} s; tasks:", file=sys.stderr)
        for task in asyncio.all_tasks(loop):
            print(f"--- {task.get_name()}", file=sys.stderr)
            for frame in task.get_stack():
                traceback.print_stack(frame, limit=1, file=sys.stderr)
        os.system("ps -eo pid,ppid,stat,etime,args >&2")
        sys.stderr.flush()
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


async def guarded():
    watchdog(90)
    await main()


if __name__ == "__main__":
    asyncio.run(guarded())
