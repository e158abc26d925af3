#!/usr/bin/env python3
"""A loopback HTTP proxy that adds `Authorization: Bearer <token>` to every request.

The MCP conformance suite (@modelcontextprotocol/conformance) has no option for extra request
headers, and the gateway refuses requests without a token, so test_conformance.py puts this in
front of the gateway. It is deliberately transparent otherwise: the request line, Host, Origin
and every other header reach the gateway as sent (the DNS-rebinding scenario depends on Host
and Origin arriving unchanged), and the response is relayed byte for byte as it arrives, so SSE
streams are not buffered.

One request per connection: the proxy asks the gateway for `Connection: close`, pipes both
directions until the gateway closes, then closes the client, whose client library sees the
gateway's `Connection: close` and does not reuse the socket.

Usage: SR_PROXY_TOKEN=<token> auth_proxy.py LISTEN_PORT UPSTREAM_PORT
Both ports are on 127.0.0.1; nothing else is ever contacted. The token is read from the
environment so that it does not appear in the process list.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

HOST = "127.0.0.1"
HEAD_MAX = 64 * 1024  # the gateway's own limit on a request head is smaller
IO_GUARD = 600.0  # seconds without a byte in either direction before a connection is dropped
DROP = (b"authorization", b"connection", b"keep-alive", b"proxy-connection")


def rewrite_head(head: bytes, token: bytes) -> bytes:
    """The request head with Authorization replaced and Connection: close, else unchanged."""
    lines = head.split(b"\r\n")
    out = [lines[0]]
    for line in lines[1:]:
        name = line.split(b":", 1)[0].strip().lower()
        if line and name not in DROP:
            out.append(line)
    out.append(b"Authorization: Bearer " + token)
    out.append(b"Connection: close")
    return b"\r\n".join(out) + b"\r\n\r\n"


def pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy src to dst until src ends; then half-close dst so the peer sees the end."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve_one(client: socket.socket, upstream_port: int, token: bytes) -> None:
    up = None
    try:
        client.settimeout(IO_GUARD)
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = client.recv(65536)
            if not data or len(buf) > HEAD_MAX:
                return
            buf += data
        head, rest = buf.split(b"\r\n\r\n", 1)
        up = socket.create_connection((HOST, upstream_port), timeout=IO_GUARD)
        up.sendall(rewrite_head(head, token) + rest)
        back = threading.Thread(target=pipe, args=(up, client), daemon=True)
        back.start()
        pipe(client, up)
        back.join(IO_GUARD)
    except OSError:
        pass
    finally:
        for s in (up, client):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: SR_PROXY_TOKEN=<token> auth_proxy.py LISTEN_PORT UPSTREAM_PORT", file=sys.stderr)
        return 2
    token = os.environ.get("SR_PROXY_TOKEN", "").encode()
    if not token:
        print("auth_proxy.py: SR_PROXY_TOKEN is empty; set it to the gateway token to add", file=sys.stderr)
        return 2
    listen_port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((HOST, listen_port))
    srv.listen(128)
    print(f"auth_proxy: 127.0.0.1:{listen_port} -> 127.0.0.1:{upstream_port}", file=sys.stderr, flush=True)
    while True:
        client, _ = srv.accept()
        threading.Thread(target=serve_one, args=(client, upstream_port, token), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
