"""A real MCP client: the Python SDK's (`mcp` 1.x) streamablehttp_client + ClientSession.

    python py_client.py URL [--token T] [--tool NAME] [--args JSON]

Runs one session (initialize, notifications/initialized, tools/list, tools/call, and on exit
the DELETE that terminate_on_close sends) and prints one JSON document on stdout. Exit 0 with
{"ok": true, ...} on success, exit 1 with {"ok": false, "error": ...} on failure. A guard
(SR_CLIENT_GUARD_S, default 30 s) turns a hang into a failure with exit 1.
"""

import argparse
import json
import os
import sys

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


def exc_text(e: BaseException) -> str:
    # anyio task groups wrap the real cause in ExceptionGroups; show the leaves.
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(exc_text(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


async def run(a: argparse.Namespace, out: dict) -> None:
    headers = {"Authorization": f"Bearer {a.token}"} if a.token is not None else {}
    async with streamablehttp_client(a.url, headers=headers) as (read, write, get_sid):
        async with ClientSession(read, write) as s:
            init = await s.initialize()
            out["protocolVersion"] = init.protocolVersion
            out["serverInfo"] = init.serverInfo.model_dump()
            out["sessionId"] = get_sid()
            tools = await s.list_tools()
            out["tools"] = [t.name for t in tools.tools]
            r = await s.call_tool(a.tool, json.loads(a.args))
            out["call"] = {
                "content": [c.model_dump(mode="json") for c in r.content],
                "isError": bool(r.isError),
            }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--token")
    p.add_argument("--tool", default="echo")
    p.add_argument("--args", default='{"message": "via python"}')
    a = p.parse_args()
    out: dict = {"ok": False}
    guard = float(os.environ.get("SR_CLIENT_GUARD_S", "30"))

    async def guarded() -> None:
        with anyio.fail_after(guard):
            await run(a, out)

    try:
        anyio.run(guarded)
        out["ok"] = True
    except BaseException as e:  # noqa: BLE001 - report every failure as JSON
        out["error"] = exc_text(e)
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
