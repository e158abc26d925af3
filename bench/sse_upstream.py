#!/usr/bin/env python3
"""A quiet MCP upstream for the memory benchmark (stdlib only).

GET /mcp answers 200 text/event-stream (chunked, like uvicorn) and then sends
nothing until the peer closes, so each open stream costs the gateway only its
idle per-connection state. POST answers a fixed JSON-RPC result; DELETE 200.
Usage: sse_upstream.py PORT
"""
import asyncio
import sys

JSON = b'{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}'


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method = lines[0].split(" ", 1)[0]
            length = 0
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            if length:
                await reader.readexactly(length)
            if method == "GET":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
                await writer.drain()
                await reader.read()  # stay quiet until the gateway closes the stream
                return
            body = JSON if method == "POST" else b""
            # A session id, as an MCP server sends on initialize: the gateway maps its own to it.
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"mcp-session-id: sse-bench-session\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
