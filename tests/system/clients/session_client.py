"""A long-lived MCP client (Python SDK `mcp` 1.x: streamable_http_client + ClientSession) that
connects ONCE and then runs commands read line by line from stdin, so a test can drive one
client session across backend sleeps, crashes and gateway restarts.

    python session_client.py URL TOKEN

The same line protocol as session_client.mjs (see there); stdout, one JSON document a line:
  after connecting   {"event": "connected", "sessionId", "protocolVersion", "serverInfo", ...state}
  if that fails      {"event": "connect-failed", "error"} and exit 1
  per command        {"tag", "ok": true, "isError", "text", ...state}
                     {"tag", "ok": false, "error", "code", "rpcError", "timedOut", ...state}
  if the SDK's transport dies (it ends its task group on an HTTP error in a POST)
                     {"event": "fatal", "error", ...state} and exit 1
stdin: {"tool": NAME, "args": {...}, "tag": any, "timeout_ms": N} (concurrent), {"op": "state"},
{"op": "close"} or EOF.

"sessionId" is the SDK's get_session_id callback. The SDK takes a session id only from an
initialize response and never re-initializes by itself; every HTTP exchange goes through a
recording httpx transport, so "initializes" (POSTs carrying initialize), the session ids sent
and received, every non-2xx answer ("notOk") and the state of each GET stream ("gets": status,
open, end) show whether the session was ever re-established behind the SDK's back.

Hang guards: each tool call has the SDK's read timeout (timeout_ms, default SR_CLIENT_GUARD_S =
120 s) and an anyio guard 5 s later ({"code": "hang"}); the process exits 3 after
SR_CLIENT_LIFETIME_S (default 900 s). The DELETE on close is off (terminate_on_close=False):
ending the client must not end the session a test may still look at.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta

import anyio
import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

GUARD_S = float(os.environ.get("SR_CLIENT_GUARD_S", "120"))
LIFETIME_S = float(os.environ.get("SR_CLIENT_LIFETIME_S", "900"))

rec: dict = {"initialSessionId": None, "sent": [], "received": [], "initializes": 0, "notOk": [], "gets": []}
get_sid = None


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def state() -> dict:
    sid = get_sid() if get_sid else None
    return {
        "sessionId": sid,
        "initialSessionId": rec["initialSessionId"],
        "sessionIdsSent": rec["sent"],
        "sessionIdsReceived": rec["received"],
        "initializes": rec["initializes"],
        "reinitialized": rec["initializes"] != 1 or len(rec["received"]) > 1 or len(rec["sent"]) > 1
        or (rec["initialSessionId"] is not None and sid != rec["initialSessionId"]),
        "notOk": rec["notOk"],
        "gets": rec["gets"],
    }


def exc_text(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(exc_text(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


class WatchedStream(httpx.AsyncByteStream):
    """A GET response body that records when it ends."""

    def __init__(self, inner, entry: dict):
        self.inner = inner
        self.entry = entry

    async def __aiter__(self):
        try:
            async for chunk in self.inner:
                yield chunk
            self.entry.update(open=False, end="closed by server")
        except BaseException as e:
            if self.entry["open"]:
                self.entry.update(open=False, end=f"error: {exc_text(e)}")
            raise

    async def aclose(self) -> None:
        if self.entry["open"]:
            self.entry.update(open=False, end="closed by client")
        await self.inner.aclose()


class Recording(httpx.AsyncBaseTransport):
    def __init__(self):
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        rpc = None
        if request.method == "POST":
            try:
                body = json.loads(request.content)
                msgs = body if isinstance(body, list) else [body]
                rpc = ",".join(m.get("method", "") for m in msgs if m.get("method")) or "response"
                if any(m.get("method") == "initialize" for m in msgs):
                    rec["initializes"] += 1
            except (ValueError, AttributeError, httpx.RequestNotRead):
                pass
        sid = request.headers.get("mcp-session-id")
        if sid and sid not in rec["sent"]:
            rec["sent"].append(sid)
        resp = await self.inner.handle_async_request(request)
        got = resp.headers.get("mcp-session-id")
        if got and got not in rec["received"]:
            rec["received"].append(got)
        if resp.status_code >= 300:
            rec["notOk"].append({"method": request.method, "rpc": rpc, "status": resp.status_code})
        if request.method == "GET":
            entry = {"status": resp.status_code, "open": resp.status_code < 300, "end": None}
            rec["gets"].append(entry)
            if resp.status_code < 300:
                resp.stream = WatchedStream(resp.stream, entry)
        return resp

    async def aclose(self) -> None:
        await self.inner.aclose()


async def run_tool(session: ClientSession, cmd: dict) -> None:
    t0 = time.monotonic()
    timeout = float(cmd.get("timeout_ms") or GUARD_S * 1000) / 1000
    out: dict
    try:
        with anyio.fail_after(timeout + 5):
            r = await session.call_tool(cmd["tool"], cmd.get("args") or {},
                                        read_timeout_seconds=timedelta(seconds=timeout))
        out = {"ok": True, "isError": bool(r.isError),
               "text": "".join(c.text for c in r.content if getattr(c, "type", None) == "text")}
    except TimeoutError:
        out = {"ok": False, "error": "guard: the call hung", "code": "hang", "rpcError": False, "timedOut": True}
    except McpError as e:
        timed_out = e.error.code == httpx.codes.REQUEST_TIMEOUT
        out = {"ok": False, "error": exc_text(e), "code": e.error.code, "rpcError": not timed_out,
               "timedOut": timed_out}
    except Exception as e:  # noqa: BLE001 - reported to the test
        out = {"ok": False, "error": exc_text(e), "code": None, "rpcError": False, "timedOut": False}
    emit({"tag": cmd.get("tag"), "tool": cmd["tool"], "elapsed_ms": round((time.monotonic() - t0) * 1000),
          **out, **state()})


running = [0]  # tool calls in progress


async def counted(coro) -> None:
    """Runs a tool call counted in running (raised by the caller before start_soon)."""
    try:
        await coro
    finally:
        running[0] -= 1


async def read_lines(send) -> None:
    """stdin lines into a memory stream (a thread: stdin is not async)."""
    async with send:
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                return
            if line.strip():
                try:
                    await send.send(line)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return  # closing: the command loop is gone


async def main(url: str, token: str) -> int:
    global get_sid
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, transport=Recording(),
                             timeout=httpx.Timeout(30, read=300))
    async with http:
        async with streamable_http_client(url, http_client=http, terminate_on_close=False) as (read, write, sid_cb):
            get_sid = sid_cb
            async with ClientSession(read, write) as session:
                try:
                    with anyio.fail_after(GUARD_S):
                        init = await session.initialize()
                except BaseException as e:  # noqa: BLE001
                    emit({"event": "connect-failed", "error": exc_text(e), **state()})
                    return 1
                rec["initialSessionId"] = get_sid()
                emit({"event": "connected", "protocolVersion": init.protocolVersion,
                      "serverInfo": init.serverInfo.model_dump(), **state()})
                send, recv = anyio.create_memory_object_stream[str](100)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read_lines, send)
                    async with recv:
                        async for line in recv:
                            try:
                                cmd = json.loads(line)
                            except ValueError as e:
                                emit({"ok": False, "error": f"bad command: {e}"})
                                continue
                            if cmd.get("op") == "close":
                                break
                            if cmd.get("op") == "state":
                                emit({"tag": cmd.get("tag"), "ok": True, **state()})
                                continue
                            if not cmd.get("tool"):
                                emit({"tag": cmd.get("tag"), "ok": False, "error": "unknown command"})
                                continue
                            running[0] += 1
                            tg.start_soon(counted, run_tool(session, cmd))
                    # close or EOF: let running calls finish, then stop reading stdin.
                    while running[0]:
                        await anyio.sleep(0.05)
                    tg.cancel_scope.cancel()
    emit({"event": "closed", **state()})
    return 0


def entry() -> int:
    if len(sys.argv) != 3:
        print("usage: session_client.py URL TOKEN", file=sys.stderr)
        return 2

    async def guarded() -> int:
        with anyio.move_on_after(LIFETIME_S) as scope:
            return await main(sys.argv[1], sys.argv[2])
        if scope.cancelled_caught:
            emit({"event": "lifetime-guard", "error": f"no close after {LIFETIME_S} s", **state()})
        return 3

    try:
        return anyio.run(guarded)
    except BaseException as e:  # noqa: BLE001 - the SDK's transport died: say so
        emit({"event": "fatal", "error": exc_text(e), **state()})
        return 1


if __name__ == "__main__":
    code = entry()
    sys.stdout.flush()
    os._exit(code)  # the stdin reader thread may still be blocked in readline
