"""Authentication on one keep-alive connection that changes its token between requests.

The edge caches the last token's digest per connection (a speed-up); every request must still be
judged by its own Authorization header: the right route for each token, 401 for a wrong or a
missing one, on the very same TCP connection.
"""

from __future__ import annotations

import http.client
import json

from peers import ACCEPT_BOTH, HOST, init_body, new_token, wait_until


def post(conn: http.client.HTTPConnection, token: str | None) -> tuple[int, str]:
    h = {"Content-Type": "application/json", "Accept": ACCEPT_BOTH}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    conn.request("POST", "/mcp", init_body(), h)
    r = conn.getresponse()
    return r.status, r.read().decode("utf-8", "replace")


def test_one_connection_switching_tokens(everything, gateway_factory):
    a, b = new_token("ka-a"), new_token("ka-b")
    g = gateway_factory(everything.port, env={"API_TOKENS_JSON": json.dumps({"a": a, "b": b})},
                        name="keepalive-auth")
    conn = http.client.HTTPConnection(HOST, g.port, timeout=30)
    conn.connect()
    sock = conn.sock
    wrong = a[:-1] + ("x" if a[-1] != "x" else "y")
    expected = [(a, 200), (wrong, 401), (b, 200), (None, 401), (a, 200), (b, 200), ("", 401)]
    for token, status in expected:
        got, body = post(conn, token)
        assert got == status, (token == a, token == b, got, body)
        assert conn.sock is sock, "the gateway closed the keep-alive connection"
    conn.close()
    # Each accepted request was routed by its own token: a, b, a, b in that order (the access log
    # is written in batches, so wait for all four lines).
    def routes():
        return [line.split("route=")[1].split()[0] for line in g.log_text().splitlines()
                if " POST /mcp " in line and "status=200" in line]
    wait_until(lambda: len(routes()) >= 4, "four access-log lines", g.proc)
    assert routes() == ["gen-1:a", "gen-1:b", "gen-1:a", "gen-1:b"], routes()
