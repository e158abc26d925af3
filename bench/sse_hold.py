#!/usr/bin/env python3
"""Opens N idle MCP SSE streams (GET /mcp) through the gateway and holds them.

Prints "READY ok=<n> failed=<m>" once every stream has its response head (or
failed), then keeps the sockets open until it is terminated. Stdlib only.
Usage: BENCH_TOKEN=... sse_hold.py HOST PORT N
"""
import asyncio
import os
import signal
import sys

CONNECT_AT_ONCE = 100  # stay well inside the listen backlog


async def open_stream(host, port, token, i, gate, held):
    async with gate:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write((f"GET /mcp HTTP/1.1\r\nHost: {host}:{port}\r\n"
                          f"Authorization: Bearer {token}\r\n"
                          f"mcp-session-id: {os.environ.get('BENCH_SSE_SID') or f'bench-{i}'}\r\n"
                          "Accept: text/event-stream\r\n\r\n").encode())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
            return f"error: {e!r}"
        status = head.split(b" ", 2)[1]
        if status != b"200":
            writer.close()
            return f"status {status.decode()}"
        held.append(writer)
        return None


async def main(host, port, n):
    token = os.environ.get("BENCH_TOKEN", "")
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    held = []
    results = await asyncio.gather(*(open_stream(host, port, token, i, gate, held) for i in range(n)))
    failures = [r for r in results if r]
    print(f"READY ok={len(held)} failed={len(failures)}", flush=True)
    if failures:
        print("first failure:", failures[0], file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    for w in held:
        w.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
