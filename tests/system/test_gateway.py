"""Black-box system tests of `serena-remote serve` with real MCP peers and clients, loopback only.

Upstreams: server-everything (streamableHttp), supergateway --stateful + server-filesystem, and
stubs/echo_upstream.mjs where a test must see what arrived upstream or needs exact bytes.
Clients: the TS SDK (clients/sdk_client.mjs), the Python SDK (clients/py_client.py), mcp-remote
(stdio) and inspector-cli 1.0.3. No assertion depends on how long anything takes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading

import pytest

import peers
from peers import (ACCEPT_BOTH, INITIALIZED, Stream, init_body, mcp_headers, new_token, open_session,
                   request, rpc)

NODE = "node"
SDK_CLIENT = peers.CLIENTS / "sdk_client.mjs"
PY_CLIENT = peers.CLIENTS / "py_client.py"
PYTHON = peers.ROOT / ".venv" / "bin" / "python"

peers.TOKENS_USED.add("wrong-token-value-xxxxxxxx")

UUID_RE = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(params=["everything", "filesystem"])
def target(request, gw, gw_fs, fs_root, everything, fsgw):
    """(gateway, upstream peer, tool, args, expected text) for each real upstream."""
    if request.param == "everything":
        return dict(kind="everything", gw=gw, up=everything, tool="echo",
                    args={"message": "through the gateway"}, expect="Echo: through the gateway",
                    list_has="trigger-long-running-operation")
    return dict(kind="filesystem", gw=gw_fs, up=fsgw, tool="read_text_file",
                args={"path": str(fs_root / "hello.txt")}, expect="hello from fs",
                list_has="read_text_file")


def jsonrpc_error(r: peers.Resp) -> dict:
    """Assert the body is a JSON-RPC error object and return its error member."""
    ct = (r.header("content-type") or "").lower()
    assert ct.startswith("application/json"), f"error reply is not JSON: {r!r}"
    b = r.json()
    assert b.get("jsonrpc") == "2.0" and isinstance(b.get("error"), dict), b
    assert isinstance(b["error"].get("code"), int) and b["error"].get("message"), b
    return b["error"]


def sdk(url: str, token: str | None, *extra: str, guard: float = 60.0) -> tuple[int, dict, str]:
    argv = [NODE, SDK_CLIENT, url] + (["--token", token] if token is not None else []) + list(extra)
    p = peers.run_cmd(argv, guard=guard)
    try:
        out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        out = {"unparsable": p.stdout.decode()[-2000:]}
    return p.returncode, out, p.stderr.decode()


def pyclient(url: str, token: str | None, *extra: str) -> tuple[int, dict, str]:
    argv = [PYTHON, PY_CLIENT, url] + (["--token", token] if token is not None else []) + list(extra)
    p = peers.run_cmd(argv, guard=60)
    try:
        out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        out = {"unparsable": p.stdout.decode()[-2000:]}
    return p.returncode, out, p.stderr.decode()


def text_of(content: list) -> str:
    return "".join(c.get("text", "") for c in content)


# ---------------------------------------------------------------------------------------------
# Real clients through the gateway


def test_sdk_client_full_session(target, tokens):
    g = target["gw"]
    extra = ["--tool", target["tool"], "--args", json.dumps(target["args"])]
    if target["kind"] == "everything":
        extra += ["--long", "--get-push"]
    rc, out, err = sdk(g.url, tokens["alice"], *extra)
    assert rc == 0 and out.get("ok"), f"{out}\n{err[-2000:]}"
    assert target["list_has"] in out["tools"]
    assert target["expect"] in text_of(out["call"]["content"])
    reqs = [(q["method"], q.get("rpc"), q["status"]) for q in out["requests"]]
    assert ("POST", "initialize", 200) in reqs
    assert ("POST", "notifications/initialized", 202) in reqs
    assert ("POST", "tools/list", 200) in reqs
    assert out["get"]["status"] == 200 and out["get"]["contentType"].startswith("text/event-stream"), out["get"]
    assert ("DELETE", None, 200) in reqs and out.get("deleted")
    if target["kind"] == "everything":
        assert [p["progress"] for p in out["progress"]] == [1, 2, 3]
        assert "completed" in text_of(out["long"])
        # A message the server pushed on the standalone GET stream came through the gateway.
        assert "SessionId" in out["pushed"]["data"]
    # The DELETE ended the edge session: its id is refused from now on (and never mapped).
    r = request(g.port, "POST", "/mcp", rpc(9, "tools/list"),
                mcp_headers(tokens["alice"], out["sessionId"], proto=out["protocolVersion"]))
    assert r.status == 404 and "ended with DELETE" in r.body.decode(), r


def test_python_client(target, tokens):
    rc, out, err = pyclient(target["gw"].url, tokens["bob"], "--tool", target["tool"], "--args",
                            json.dumps(target["args"]))
    assert rc == 0 and out.get("ok"), f"{out}\n{err[-2000:]}"
    assert target["list_has"] in out["tools"]
    assert target["expect"] in text_of(out["call"]["content"])
    assert out["sessionId"]


def test_mcp_remote(target, tokens, tmp_dir):
    calls = [rpc(2, "tools/list"), rpc(3, "tools/call", {"name": target["tool"], "arguments": target["args"]})]
    r = peers.run_mcp_remote(target["gw"].url, tokens["alice"], tmp_dir / "mcp-auth", calls)
    assert not r["hung"], r["stderr"][-3000:]
    res = r["responses"]
    assert "result" in res.get(1, {}), f"no initialize result: {res}\n{r['stderr'][-3000:]}"
    assert target["list_has"] in [t["name"] for t in res[2]["result"]["tools"]]
    assert target["expect"] in text_of(res[3]["result"]["content"])
    assert r["rc"] == 0, r["stderr"][-3000:]


def test_inspector_cli(target, tokens):
    p = peers.run_inspector(target["gw"].url, tokens["bob"], ["--method", "tools/list"])
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    assert target["list_has"] in [t["name"] for t in json.loads(p.stdout)["tools"]]
    args = [f"{k}={v}" for k, v in target["args"].items()]
    p = peers.run_inspector(target["gw"].url, tokens["bob"],
                            ["--method", "tools/call", "--tool-name", target["tool"], "--tool-arg", *args])
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    assert target["expect"] in text_of(json.loads(p.stdout)["content"])


@pytest.mark.parametrize("client", ["sdk", "python", "mcp-remote", "inspector"])
@pytest.mark.parametrize("how", ["missing", "wrong"])
def test_clients_fail_cleanly_without_valid_token(gw, client, how, tmp_dir):
    token = None if how == "missing" else new_token("wrong")
    if client == "sdk":
        rc, out, err = sdk(gw.url, token)
        assert rc == 1 and not out.get("ok") and out.get("code") == 401, out
    elif client == "python":
        rc, out, err = pyclient(gw.url, token)
        assert rc == 1 and not out.get("ok") and "401" in out.get("error", ""), out
    elif client == "mcp-remote":
        r = peers.run_mcp_remote(gw.url, token, tmp_dir / "mcp-auth", [rpc(2, "tools/list")])
        assert not r["hung"], r["stderr"][-3000:]
        assert r["rc"] != 0, r
        assert not any("result" in m for m in r["responses"].values()), r["responses"]
    else:
        p = peers.run_inspector(gw.url, token, ["--method", "tools/list"])
        assert p.returncode != 0
        assert b'"tools"' not in p.stdout


def test_two_tokens_at_once(run_dir, gateway_factory, everything):
    toks = {"carol": new_token("carol"), "dave": new_token("dave")}
    g = gateway_factory(everything.port, env={"API_TOKENS_JSON": json.dumps(toks),
                                              "MCP_CONTAINER_ROUTE_GENERATION": "gen-7"},
                        args=["--log-format", "json"], name="two-tokens")
    procs = {}
    for name, tok in toks.items():
        argv = [NODE, str(SDK_CLIENT), g.url, "--token", tok, "--long"]
        procs[name] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
    results = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=60)
        results[name] = (p.returncode, json.loads(out.decode().strip().splitlines()[-1]), err.decode())
    for name, (rc, out, err) in results.items():
        assert rc == 0 and out["ok"], f"{name}: {out}\n{err[-2000:]}"
    assert results["carol"][1]["sessionId"] != results["dave"][1]["sessionId"]

    def routes(text):
        rs = set()
        for line in text.splitlines():
            if line.strip():
                e = json.loads(line)
                if "status" in e:
                    rs.add(e.get("route"))
        return rs if {"gen-7:carol", "gen-7:dave"} <= rs else None

    rs = g.wait_log(routes, "log lines for both routes")
    assert {"gen-7:carol", "gen-7:dave"} <= rs


def test_json_log_format(gw_fs, tokens):
    rc, out, err = sdk(gw_fs.url, tokens["alice"], "--tool", "list_allowed_directories", "--args", "{}")
    assert rc == 0 and out["ok"], out

    def entries(text):
        es = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except ValueError:
                raise AssertionError(f"--log-format json wrote a line that is not JSON: {line!r}")
            assert isinstance(e, dict), line
            es.append(e)
        reqs = [e for e in es if e.get("rpc_method") == "tools/call"]
        return reqs or None

    reqs = gw_fs.wait_log(entries, "a JSON log line for tools/call")
    e = reqs[-1]
    for k in ("time", "route", "method", "rpc_method", "status", "bytes", "duration_ms"):
        assert k in e, f"log entry lacks {k}: {e}"
    assert e["route"] == "gen-1:alice" and e["method"] == "POST" and e["status"] == 200
    assert isinstance(e["bytes"], int) and e["bytes"] > 0
    assert isinstance(e["duration_ms"], (int, float)) and e["duration_ms"] >= 0


def test_text_log_has_a_line_per_request(gw, tokens):
    marker_sid = open_session(gw.port, tokens["bob"])
    r = request(gw.port, "POST", "/mcp", rpc(5, "tools/list"), mcp_headers(tokens["bob"], marker_sid))
    assert r.status == 200
    lines = gw.wait_log(lambda t: [ln for ln in t.splitlines() if "gen-1:bob" in ln and "tools/list" in ln] or None,
                        "a text log line for tools/list")
    assert "200" in lines[-1] and "POST" in lines[-1]
    request(gw.port, "DELETE", "/mcp", None, mcp_headers(tokens["bob"], marker_sid))


# ---------------------------------------------------------------------------------------------
# Shims


def test_initialized_is_202_and_reaches_upstream(gw, tokens):
    """server-everything registers its capability-dependent tools (trigger-sampling-request for a
    client that declares sampling) only when notifications/initialized arrives; so tools/list
    shows whether the gateway really delivered the notification it answered 202 for."""
    t = tokens["alice"]
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": peers.PROTO, "capabilities": {"sampling": {}},
                                  "clientInfo": {"name": "sr-test", "version": "0"}}})
    r = request(gw.port, "POST", "/mcp", body, mcp_headers(t))
    assert r.status == 200, r
    sid = r.header("mcp-session-id")

    def tools():
        r = request(gw.port, "POST", "/mcp", rpc(2, "tools/list"), mcp_headers(t, sid))
        assert r.status == 200, r
        return [x["name"] for x in peers.body_messages(r)[0]["result"]["tools"]]

    assert "trigger-sampling-request" not in tools()  # control: not before initialized
    r = request(gw.port, "POST", "/mcp", INITIALIZED, mcp_headers(t, sid))
    assert r.status == 202, r
    assert r.body.strip() == b"", r
    # Delivered in the background: wait (guarded) until the upstream shows it processed it.
    peers.wait_until(lambda: "trigger-sampling-request" in tools(), "upstream to process notifications/initialized")
    request(gw.port, "DELETE", "/mcp", None, mcp_headers(t, sid))


def test_initialized_shim_delivers_exact_body_upstream(gateway_factory, run_dir):
    up = peers.start_echo_upstream(run_dir, "echo-init")
    try:
        tok = new_token("init")
        g = gateway_factory(up.port, env={"API_TOKEN": tok}, name="init-shim")
        sid = open_session(g.port, tok, send_initialized=False)
        r = request(g.port, "POST", "/mcp", INITIALIZED, mcp_headers(tok, sid))
        assert r.status == 202, r
        got = peers.wait_until(
            lambda: [e for e in peers.stub_log(up.port) if e["json"] == json.loads(INITIALIZED)],
            "notifications/initialized upstream")
        e = got[0]
        # The client holds the edge's own session id; upstream sees only its own session.
        assert sid.startswith("sr1.")
        assert e["h"].get("mcp-session-id") == ["stub-session-1"]
        assert "authorization" not in e["h"]
    finally:
        up.stop()


@pytest.mark.parametrize("accept", ["*/*", None, "application/json"])
def test_accept_rewrite(gw, everything, tokens, accept):
    body = init_body()
    direct = request(everything.port, "POST", "/mcp", body, mcp_headers(accept=accept))
    assert direct.status == 406, direct  # the peer really refuses it, so the shim matters
    r = request(gw.port, "POST", "/mcp", body, mcp_headers(tokens["alice"], accept=accept))
    assert r.status == 200, r
    sid = r.header("mcp-session-id")
    assert sid and peers.body_messages(r)[0]["result"]["serverInfo"]["name"] == "mcp-servers/everything"
    request(gw.port, "DELETE", "/mcp", None, mcp_headers(tokens["alice"], sid))


def test_accept_rewrite_exact_header_upstream(gateway_factory, run_dir):
    up = peers.start_echo_upstream(run_dir, "echo-accept")
    try:
        tok = new_token("acc")
        g = gateway_factory(up.port, env={"API_TOKEN": tok}, name="accept")
        sid = open_session(g.port, tok)
        for i, (sent, want) in enumerate([("*/*", ACCEPT_BOTH), (None, ACCEPT_BOTH),
                                          ("text/event-stream, application/json", "text/event-stream, application/json")]):
            r = request(g.port, "POST", "/mcp", rpc(100 + i, "stub/echo"), mcp_headers(tok, sid, accept=sent))
            assert r.status == 200, r
            hdrs = r.json()["result"]["headers"]
            got = [hdrs[j + 1] for j in range(0, len(hdrs), 2) if hdrs[j].lower() == "accept"]
            assert got == [want], f"sent Accept {sent!r}, upstream got {got}"
    finally:
        up.stop()


@pytest.mark.parametrize("method,body", [("POST", rpc(3, "tools/list")), ("GET", None), ("DELETE", None),
                                         ("POST", rpc(4, "tools/call", {"name": "echo", "arguments": {"message": "x"}}))])
def test_missing_session_is_400(gw, tokens, method, body):
    h = mcp_headers(tokens["alice"])
    if method == "GET":
        h["Accept"] = "text/event-stream"
    r = request(gw.port, method, "/mcp", body, h)
    assert r.status == 400, r
    jsonrpc_error(r)


def test_relay_headers_host_and_secrets(gateway_factory, run_dir):
    up = peers.start_echo_upstream(run_dir, "echo-relay")
    try:
        tok = new_token("relay")
        g = gateway_factory(up.port, env={"API_TOKEN": tok, "ALLOWED_ORIGINS": "http://good.example"},
                            name="relay")
        sid = open_session(g.port, tok)
        h = mcp_headers(tok, sid, extra={"Origin": "http://good.example", "Last-Event-ID": "ev-42",
                                         "Host": "public.example:443"})
        r = request(g.port, "POST", "/mcp", rpc(11, "stub/echo"), h)
        assert r.status == 200, r
        assert r.header("x-stub") == "kept"
        e = [x for x in peers.stub_log(up.port) if x["json"] and x["json"].get("id") == 11][-1]["h"]
        assert e["host"] == [f"127.0.0.1:{up.port}"]
        assert "authorization" not in e and "origin" not in e
        assert sid.startswith("sr1.") and e["mcp-session-id"] == ["stub-session-1"]
        assert e["mcp-protocol-version"] == [peers.PROTO]
        assert e["last-event-id"] == ["ev-42"]
        assert e["content-type"] == ["application/json"]
        # Upstream statuses are relayed unchanged...
        for code in (409, 415):
            r = request(g.port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": code, "method": "stub/status",
                                                            "params": {"code": code}}), mcp_headers(tok, sid))
            assert r.status == code, r
            assert f"stub status {code}".encode() in r.body
        # ...but a 404 on a mapped session means the upstream lost it: the edge re-initializes
        # the upstream session and sends the request once more; a second 404 is answered by the
        # edge itself (the stub's text never reaches the client).
        n_init = len([x for x in peers.stub_log(up.port) if x["json"].get("method") == "initialize"])
        r = request(g.port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 404, "method": "stub/status",
                                                        "params": {"code": 404}}), mcp_headers(tok, sid))
        assert r.status == 404 and b"stub status" not in r.body, r
        log = peers.stub_log(up.port)
        assert len([x for x in log if x["json"].get("method") == "initialize"]) == n_init + 1
        assert len([x for x in log if x["json"].get("method") == "stub/status" and x["json"]["id"] == 404]) == 2
    finally:
        up.stop()


# ---------------------------------------------------------------------------------------------
# Limits and refusals


def big_request(port: int, head: bytes, body: bytes) -> tuple[int | None, bytes]:
    """Send head+body while reading the reply concurrently (the gateway may answer before it has
    read everything); return (status or None, raw reply)."""
    s = socket.create_connection((peers.HOST, port), timeout=peers.IO_GUARD)

    def send():
        try:
            s.sendall(head + body)
        except OSError:
            pass

    t = threading.Thread(target=send, daemon=True)
    t.start()
    got = b""
    try:
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    finally:
        s.close()
        t.join(peers.IO_GUARD)
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", got)
    return (int(m.group(1)) if m else None), got


def test_body_over_limit_is_413(gw, tokens):
    sid = open_session(gw.port, tokens["alice"])
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "echo", "arguments": {"message": "a" * (5 * 1024 * 1024)}}}).encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nAuthorization: Bearer {tokens['alice']}\r\n"
            f"Content-Type: application/json\r\nAccept: {ACCEPT_BOTH}\r\nmcp-session-id: {sid}\r\n"
            f"mcp-protocol-version: {peers.PROTO}\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
    status, raw = big_request(gw.port, head, payload)
    assert status == 413, raw[:500]
    # Chunked, so the size is only known while reading.
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 65536]), payload[i:i + 65536])
                      for i in range(0, len(payload), 65536)) + b"0\r\n\r\n"
    head_c = head.replace(f"Content-Length: {len(payload)}\r\n".encode(), b"Transfer-Encoding: chunked\r\n")
    status, raw = big_request(gw.port, head_c, chunks)
    assert status == 413, raw[:500]
    # Control: a 1 MiB body goes through.
    r = request(gw.port, "POST", "/mcp", json.dumps(
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "echo", "arguments": {"message": "b" * (1024 * 1024)}}}),
        mcp_headers(tokens["alice"], sid))
    assert r.status == 200, r
    request(gw.port, "DELETE", "/mcp", None, mcp_headers(tokens["alice"], sid))
    assert peers.health_ok(gw.port)


@pytest.mark.parametrize("what", ["413-body", "431-headers"])
def test_error_reply_reaches_a_client_that_writes_first(gw, tokens, what):
    """Python's http.client (like urllib3/requests) writes the whole request before reading.
    When the gateway refuses early it must still let that client read the reply: close only
    after draining what the client is still sending (lingering close, RFC 9112 9.6), or the
    kernel answers the unread data with a RST and the client sees ECONNRESET, not the status."""
    t = tokens["alice"]
    sid = open_session(gw.port, t)
    want = 413 if what == "413-body" else 431
    outcomes = []
    for _ in range(10):
        h = mcp_headers(t, sid)
        body = rpc(1, "tools/list")
        if want == 413:
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                               "params": {"x": "a" * (5 * 1024 * 1024)}})
        else:
            h["X-Filler"] = "f" * (20 * 1024)
        try:
            outcomes.append(request(gw.port, "POST", "/mcp", body, h).status)
        except (ConnectionResetError, BrokenPipeError) as e:
            outcomes.append(type(e).__name__)
    request(gw.port, "DELETE", "/mcp", None, mcp_headers(t, sid))
    assert outcomes == [want] * 10, outcomes


def test_max_body_flag(gateway_factory, everything):
    tok = new_token("maxb")
    g = gateway_factory(everything.port, env={"API_TOKEN": tok}, args=["--max-body", "2048"], name="maxbody")
    sid = open_session(g.port, tok)
    small = rpc(1, "tools/call", {"name": "echo", "arguments": {"message": "s" * 1500}})
    big = rpc(2, "tools/call", {"name": "echo", "arguments": {"message": "b" * 3000}})
    assert request(g.port, "POST", "/mcp", small, mcp_headers(tok, sid)).status == 200
    r = request(g.port, "POST", "/mcp", big, mcp_headers(tok, sid))
    assert r.status == 413, r


@pytest.mark.parametrize("shape", ["one-big-header", "many-headers"])
def test_headers_over_16k_are_431(gw, tokens, shape):
    if shape == "one-big-header":
        filler = "X-Filler: " + "f" * (20 * 1024) + "\r\n"
    else:
        filler = "".join(f"X-Filler-{i}: " + "f" * 512 + "\r\n" for i in range(40))
    body = init_body().encode()
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nAuthorization: Bearer {tokens['alice']}\r\n"
            f"Content-Type: application/json\r\nAccept: {ACCEPT_BOTH}\r\n{filler}"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    status, raw = big_request(gw.port, head, body)
    assert status == 431, f"no 431 (connection reset before a reply?): {raw[:300]!r}"
    assert peers.health_ok(gw.port)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "HEAD", "OPTIONS"])
def test_other_methods_are_405_with_allow(gw, tokens, method):
    r = request(gw.port, method, "/mcp", "{}" if method in ("PUT", "PATCH") else None,
                mcp_headers(tokens["alice"]))
    assert r.status == 405, r
    allow = {m.strip().upper() for m in (r.header("allow") or "").split(",")}
    assert {"GET", "POST", "DELETE"} <= allow, r.headers


def test_origin_not_allowed_is_403(gw, tokens):
    r = request(gw.port, "POST", "/mcp", init_body(), mcp_headers(tokens["alice"], extra={"Origin": "http://evil.example"}))
    assert r.status == 403, r
    jsonrpc_error(r)


def test_allowed_origins(gateway_factory, everything):
    tok = new_token("orig")
    g = gateway_factory(everything.port, env={"API_TOKEN": tok},
                        args=["--allowed-origins", "http://good.example,https://also.example"], name="origins")
    for origin, want in [("http://good.example", 200), ("https://also.example", 200),
                         ("http://evil.example", 403), ("http://good.example.evil", 403)]:
        r = request(g.port, "POST", "/mcp", init_body(), mcp_headers(tok, extra={"Origin": origin}))
        assert r.status == want, (origin, r)
        sid = r.header("mcp-session-id")
        if sid:
            request(g.port, "DELETE", "/mcp", None, mcp_headers(tok, sid))


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token-value-xxxxxxxx", "Basic YWxpY2U6c2VjcmV0", "Bearer",
                                  "Bearer  {alice}x", "{alice}"])
def test_unauthorized_is_401(gw, tokens, auth):
    h = mcp_headers()
    if auth is not None:
        a = auth.replace("{alice}", tokens["alice"])
        h["Authorization"] = a
    r = request(gw.port, "POST", "/mcp", init_body(), h)
    assert r.status == 401, r
    assert (r.header("www-authenticate") or "").lower().startswith("bearer"), r.headers
    jsonrpc_error(r)


def test_bearer_scheme_is_case_insensitive(gw, tokens):
    r = request(gw.port, "POST", "/mcp", init_body(),
                {**mcp_headers(), "Authorization": f"bEaReR {tokens['alice']}"})
    assert r.status == 200, r
    request(gw.port, "DELETE", "/mcp", None, mcp_headers(tokens["alice"], r.header("mcp-session-id")))


def test_broken_json_is_400(gw, tokens):
    sid = open_session(gw.port, tokens["alice"])
    for body in ("{bad", '{"jsonrpc":"2.0","id":1,"method":"tools/list"', "\xff\xfe", ""):
        r = request(gw.port, "POST", "/mcp", body.encode("latin-1"), mcp_headers(tokens["alice"], sid))
        assert r.status == 400, (body, r)
        jsonrpc_error(r)
    request(gw.port, "DELETE", "/mcp", None, mcp_headers(tokens["alice"], sid))


@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
                                  "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"])
def test_well_known_is_404_json(gw, path):
    r = request(gw.port, "GET", path, None, {})
    assert r.status == 404, r
    assert (r.header("content-type") or "").startswith("application/json"), r
    r.json()


def test_health_document_has_no_secrets(gw, tokens):
    r = request(gw.port, "GET", "/health", None, {})
    assert r.status == 200 and (r.header("content-type") or "").startswith("application/json"), r
    h = r.json()
    for k in ("status", "version", "route_generation", "route_strategy", "token_count", "instances", "persistence"):
        assert k in h, f"/health lacks {k}: {h}"
    assert h["token_count"] == 2 and h["route_generation"] == "gen-1"
    for name, tok in tokens.items():
        assert tok.encode() not in r.body and name.encode() not in r.body, r.body
        assert hashlib.sha256(tok.encode()).hexdigest().encode() not in r.body


# ---------------------------------------------------------------------------------------------
# Malformed HTTP over a raw socket


MALFORMED = {
    "garbage-request-line": b"\x16\x03\x01\x02\x00garbage here\r\n\r\n",
    "no-version": b"GET /mcp\r\n\r\n",
    "bad-version": b"GET /mcp HTTP/7.1\r\nHost: x\r\n\r\n",
    "header-without-colon": b"GET /health HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n",
    "bad-chunked": (b"POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
    "chunk-size-overflow": (b"POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\nContent-Type: application/json\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{}\r\n0\r\n\r\n"),
    "cl-and-te": (b"POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
    "negative-content-length": (b"POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\n"
                                b"Content-Length: -5\r\n\r\n{}"),
    "double-content-length": (b"POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\n"
                              b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}"),
    "nul-in-header": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_http(gw, tokens, case):
    data = MALFORMED[case].replace(b"{alice}", tokens["alice"].encode())
    got = peers.raw_exchange(gw.port, data)
    if got:
        m = re.match(rb"HTTP/1\.[01] (\d{3})", got)
        assert m, f"{case}: reply is not HTTP: {got[:200]!r}"
        code = int(m.group(1))
        # 505 is the precise answer to an unknown HTTP version (RFC 9110 15.6.6).
        assert 400 <= code < 500 or (case == "bad-version" and code == 505), f"{case}: {got[:300]!r}"
    assert gw.proc.alive()
    assert peers.health_ok(gw.port)


# ---------------------------------------------------------------------------------------------
# SSE: unbuffered, byte for byte


def test_sse_progress_arrives_before_the_result(gw, tokens):
    t = tokens["alice"]
    sid = open_session(gw.port, t)
    body = json.dumps({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
                       "params": {"name": "trigger-long-running-operation", "arguments": {"duration": 3, "steps": 3},
                                  "_meta": {"progressToken": "p-42"}}})
    s = Stream(gw.port, "POST", "/mcp", body, mcp_headers(t, sid))
    try:
        assert s.status == 200 and s.header("content-type").startswith("text/event-stream")
        ev = s.next_event()
        while ev is not None and not ev.get("data"):
            ev = s.next_event()
        assert ev is not None, "stream ended before any event"
        first = json.loads(ev["data"])
        # What we hold now is everything the gateway has passed on so far: a buffering gateway
        # hands over the result in the same read as the first progress event.
        assert first.get("method") == "notifications/progress", first
        assert b'"result"' not in s.raw, s.raw
        rest = s.read_rest()
    finally:
        s.close()
    msgs = peers.sse_messages(rest)
    assert [m["params"]["progress"] for m in msgs if m.get("method") == "notifications/progress"] == [1, 2, 3]
    assert msgs[-1].get("id") == 42 and "result" in msgs[-1]
    request(gw.port, "DELETE", "/mcp", None, mcp_headers(t, sid))


def test_sse_server_request_roundtrip_is_unbuffered(gw, tokens):
    """Deterministic: the tool's result cannot exist until we answer the sampling request the
    server sends on the same stream, so a buffering gateway makes this block (until the guard)."""
    t = tokens["bob"]
    r = request(gw.port, "POST", "/mcp", json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": peers.PROTO, "capabilities": {"sampling": {}},
                    "clientInfo": {"name": "sr-test", "version": "0"}}}), mcp_headers(t))
    sid = r.header("mcp-session-id")
    assert request(gw.port, "POST", "/mcp", INITIALIZED, mcp_headers(t, sid)).status == 202
    peers.wait_until(lambda: "trigger-sampling-request" in [
        x["name"] for x in peers.body_messages(request(gw.port, "POST", "/mcp", rpc(2, "tools/list"),
                                                       mcp_headers(t, sid)))[0]["result"]["tools"]],
        "conditional tools")
    s = Stream(gw.port, "POST", "/mcp", rpc(3, "tools/call", {"name": "trigger-sampling-request",
                                                              "arguments": {"prompt": "ping", "maxTokens": 5}}),
               mcp_headers(t, sid))
    try:
        ev = s.next_event()
        while ev is not None and not ev.get("data"):
            ev = s.next_event()
        assert ev is not None
        req = json.loads(ev["data"])
        assert req.get("method") == "sampling/createMessage", req
        answer = json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": {
            "role": "assistant", "content": {"type": "text", "text": "pong-from-test"}, "model": "none"}})
        r = request(gw.port, "POST", "/mcp", answer, mcp_headers(t, sid))
        assert r.status == 202, r
        rest = s.read_rest()
    finally:
        s.close()
    final = peers.sse_messages(rest)[-1]
    assert final["id"] == 3 and "pong-from-test" in text_of(final["result"]["content"])
    request(gw.port, "DELETE", "/mcp", None, mcp_headers(t, sid))


@pytest.mark.parametrize("proto", ["2025-06-18", "2025-11-25"])
def test_sse_bytes_match_upstream(gw, everything, tokens, proto):
    """Same exchange direct and through the gateway: bodies equal once the random ids (UUIDs)
    are masked. At 2025-11-25 the replies start with a priming event whose data is empty."""
    t = tokens["alice"]

    def exchange(port, token):
        r1 = request(port, "POST", "/mcp", init_body(proto=proto), mcp_headers(token, proto=proto))
        sid = r1.header("mcp-session-id")
        assert r1.status == 200 and sid, r1
        assert request(port, "POST", "/mcp", INITIALIZED, mcp_headers(token, sid, proto=proto)).status == 202
        r2 = request(port, "POST", "/mcp", rpc(2, "tools/list"), mcp_headers(token, sid, proto=proto))
        r3 = request(port, "POST", "/mcp", rpc(3, "tools/call", {"name": "echo", "arguments": {"message": "bytes"}}),
                     mcp_headers(token, sid, proto=proto))
        request(port, "DELETE", "/mcp", None, mcp_headers(token, sid, proto=proto))
        return [r1, r2, r3]

    direct = exchange(everything.port, None)
    via = exchange(gw.port, t)
    for d, v in zip(direct, via):
        assert v.status == d.status == 200
        assert v.header("content-type") == d.header("content-type") == "text/event-stream"
        assert UUID_RE.sub(b"<uuid>", v.body) == UUID_RE.sub(b"<uuid>", d.body)
        # Framing: every event is "event: message\nid: <uuid>\ndata: <json>\n\n" (or a priming
        # "id: <uuid>\ndata: \n\n" at 2025-11-25).
        framed = re.fullmatch(rb"((id: [0-9a-f-]{36}\ndata: \n\n)|(event: message\nid: [0-9a-f-]{36}\ndata: \{.*\}\n\n))+",
                              v.body, re.S)
        assert framed, v.body[:400]
    if proto == "2025-11-25":
        assert via[2].body.startswith(b"id: ") and b"\ndata: \n\n" in via[2].body


def test_sse_exact_bytes_crlf_comments_empty_data(gateway_factory, run_dir):
    up = peers.start_echo_upstream(run_dir, "echo-sse")
    try:
        tok = new_token("sse")
        g = gateway_factory(up.port, env={"API_TOKEN": tok}, name="sse-exact")
        sid = open_session(g.port, tok)
        r = request(g.port, "POST", "/mcp", rpc(7, "stub/sse-exact"), mcp_headers(tok, sid))
        assert r.status == 200 and r.header("content-type") == "text/event-stream", r
        assert r.body == peers.SSE_EXACT
        # Held stream: the final event exists only after the test releases it.
        s = Stream(g.port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 8, "method": "stub/sse-held",
                                                       "params": {"key": "k8"}}), mcp_headers(tok, sid))
        try:
            ev = s.next_event()
            assert ev and json.loads(ev["data"])["method"] == "notifications/progress"
            peers.stub_release(up.port, "k8")
            ev = s.next_event()
            assert ev and json.loads(ev["data"])["result"] == {"released": "k8"}
        finally:
            s.close()
    finally:
        up.stop()


def test_client_disconnect_cancels_upstream(gateway_factory, run_dir):
    up = peers.start_echo_upstream(run_dir, "echo-cancel")
    try:
        tok = new_token("cancel")
        g = gateway_factory(up.port, env={"API_TOKEN": tok}, name="cancel")
        sid = open_session(g.port, tok)
        s = Stream(g.port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 9, "method": "stub/sse-held",
                                                       "params": {"key": "k9"}}), mcp_headers(tok, sid))
        ev = s.next_event()
        assert ev and json.loads(ev["data"])["method"] == "notifications/progress"
        s.resp.close()
        s.close()
        peers.wait_until(lambda: "k9" in request(up.port, "GET", "/__status", None, {}).json()["aborted"],
                         "the upstream request to be cancelled after the client went away")
        assert peers.health_ok(g.port)
    finally:
        up.stop()


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_slow_reader_backpressure(gateway_factory, run_dir):
    """A client that stops reading must stall the upstream (bounded memory), and the whole
    stream must arrive intact once it reads again."""
    total = 96 * 1024 * 1024
    up = peers.start_echo_upstream(run_dir, "echo-flood")
    try:
        tok = new_token("flood")
        g = gateway_factory(up.port, env={"API_TOKEN": tok}, name="flood")
        sid = open_session(g.port, tok)
        s = Stream(g.port, "POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 10, "method": "stub/flood",
                                                       "params": {"total": total}}), mcp_headers(tok, sid))
        try:
            assert s.status == 200
            # Not reading. Watch the upstream until its writes stop advancing (it is blocked on
            # backpressure) -- or until it has written everything, which means the gateway
            # swallowed the stream into memory.
            last, same, peak = -1, 0, 0
            while same < 10:
                st = request(up.port, "GET", "/__status", None, {}).json()["flood"]
                peak = max(peak, rss_kib(g.proc.pid))
                assert not st["done"], f"upstream wrote all {total} bytes to a client that read nothing"
                assert peak < 64 * 1024, f"gateway RSS grew to {peak} KiB behind a stalled reader"
                same = same + 1 if st["written"] == last else 0
                last = st["written"]
                peers.time.sleep(0.2)
            assert last < total // 2, last
            got = s.read_rest()
        finally:
            s.close()
        body = got
        assert len(body) == total, (len(body), total)
        assert body.count(b"\n\n") == total // 65536
    finally:
        up.stop()


def test_upstream_connections_are_reused(gateway_factory, run_dir):
    up = peers.start_echo_upstream(run_dir, "echo-pool")
    try:
        tok = new_token("pool")
        g = gateway_factory(up.port, env={"API_TOKEN": tok}, name="pool")
        sid = open_session(g.port, tok)
        for i in range(6):
            assert request(g.port, "POST", "/mcp", rpc(200 + i, "stub/echo"), mcp_headers(tok, sid)).status == 200
        ports = [e["remotePort"] for e in peers.stub_log(up.port)
                 if e["json"] and isinstance(e["json"].get("id"), int) and e["json"]["id"] >= 200]
        assert len(ports) == 6
        assert len(set(ports)) < 6, f"every request opened a new upstream connection: {ports}"
    finally:
        up.stop()


# ---------------------------------------------------------------------------------------------
# Upstream failures, signals


def test_upstream_down_is_502(gateway_factory):
    tok = new_token("down")
    dead = peers.free_port()  # nothing listens there
    g = gateway_factory(dead, env={"API_TOKEN": tok}, name="down")
    r = request(g.port, "POST", "/mcp", init_body(), mcp_headers(tok))
    assert r.status == 502, r
    err = jsonrpc_error(r)
    assert tok not in json.dumps(err)
    assert peers.health_ok(g.port)


def test_upstream_dies_mid_session_is_502(gateway_factory, run_dir):
    up = peers.start_everything(run_dir, "everything-dies")
    tok = new_token("dies")
    try:
        g = gateway_factory(up.port, env={"API_TOKEN": tok}, name="dies")
        sid = open_session(g.port, tok)
        assert request(g.port, "POST", "/mcp", rpc(2, "tools/list"), mcp_headers(tok, sid)).status == 200
    finally:
        up.stop()
    r = request(g.port, "POST", "/mcp", rpc(3, "tools/list"), mcp_headers(tok, sid))
    assert r.status == 502, r
    jsonrpc_error(r)


def test_sigterm_finishes_in_flight_then_exits_0(gateway_factory, everything):
    tok = new_token("term")
    g = gateway_factory(everything.port, env={"API_TOKEN": tok}, name="sigterm")
    sid = open_session(g.port, tok)
    body = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                       "params": {"name": "trigger-long-running-operation", "arguments": {"duration": 2, "steps": 2},
                                  "_meta": {"progressToken": "t5"}}})
    s = Stream(g.port, "POST", "/mcp", body, mcp_headers(tok, sid))
    try:
        ev = s.next_event()
        while ev is not None and not ev.get("data"):
            ev = s.next_event()
        assert ev and json.loads(ev["data"]).get("method") == "notifications/progress"
        g.proc.send_signal(signal.SIGTERM)
        rest = s.read_rest()
    finally:
        s.close()
    final = peers.sse_messages(rest)[-1]
    assert final.get("id") == 5 and "result" in final, rest[-500:]
    assert g.proc.wait() == 0, g.log_text()[-2000:]


def test_sigterm_idle_exits_0(gateway_factory, everything):
    tok = new_token("term2")
    g = gateway_factory(everything.port, env={"API_TOKEN": tok}, name="sigterm-idle")
    sid = open_session(g.port, tok)
    request(g.port, "DELETE", "/mcp", None, mcp_headers(tok, sid))
    g.proc.send_signal(signal.SIGTERM)
    assert g.proc.wait() == 0, g.log_text()[-2000:]


def write_json_atomic(path, obj):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj))
    tmp.replace(path)


def test_sighup_rereads_tokens_file_and_keeps_streams(gateway_factory, everything, tmp_dir):
    keep, drop, add = new_token("keep"), new_token("drop"), new_token("add")
    f = tmp_dir / "tokens.json"
    write_json_atomic(f, {"keep": keep, "drop": drop})
    g = gateway_factory(everything.port, env={"API_TOKENS_FILE": f}, name="sighup")
    assert g.health()["token_count"] == 2
    sid = open_session(g.port, keep)
    gh = mcp_headers(keep, sid)
    gh["Accept"] = "text/event-stream"
    stream = Stream(g.port, "GET", "/mcp", None, gh)
    try:
        assert stream.status == 200, stream.status
        r = request(g.port, "POST", "/mcp", init_body(), mcp_headers(add))
        assert r.status == 401  # control: not yet known
        write_json_atomic(f, {"keep": keep, "add": add})
        g.proc.send_signal(signal.SIGHUP)

        def add_works():
            r = request(g.port, "POST", "/mcp", init_body(), mcp_headers(add))
            if r.status == 200:
                request(g.port, "DELETE", "/mcp", None, mcp_headers(add, r.header("mcp-session-id")))
                return True
            return False

        peers.wait_until(add_works, "the added token to work after SIGHUP", g.proc)
        r = request(g.port, "POST", "/mcp", init_body(), mcp_headers(drop))
        assert r.status == 401, r
        assert g.proc.alive()
        # The GET stream opened before SIGHUP still carries what the server pushes.
        r = request(g.port, "POST", "/mcp", rpc(3, "tools/call", {"name": "toggle-simulated-logging", "arguments": {}}),
                    mcp_headers(keep, sid))
        assert r.status == 200, r
        ev = stream.next_event()
        while ev is not None and not ev.get("data"):
            ev = stream.next_event()
        assert ev is not None, "GET stream closed after SIGHUP"
        assert json.loads(ev["data"])["method"] == "notifications/message"
        request(g.port, "POST", "/mcp", rpc(4, "tools/call", {"name": "toggle-simulated-logging", "arguments": {}}),
                mcp_headers(keep, sid))
    finally:
        stream.close()
    request(g.port, "DELETE", "/mcp", None, mcp_headers(keep, sid))


def test_sha256_token_form(gateway_factory, everything):
    tok = new_token("hashed")
    g = gateway_factory(everything.port, env={"API_TOKENS_JSON": json.dumps(
        {"hashed": "sha256:" + hashlib.sha256(tok.encode()).hexdigest()})}, name="sha256")
    r = request(g.port, "POST", "/mcp", init_body(), mcp_headers(tok))
    assert r.status == 200, r
    request(g.port, "DELETE", "/mcp", None, mcp_headers(tok, r.header("mcp-session-id")))
    assert request(g.port, "POST", "/mcp", init_body(),
                   mcp_headers("sha256:" + hashlib.sha256(tok.encode()).hexdigest())).status == 401


def test_array_tokens_and_singleton(gateway_factory, everything):
    a, b, single = new_token("arr"), new_token("arr"), new_token("single")
    g = gateway_factory(everything.port, env={"API_TOKENS_JSON": json.dumps([a, b]), "API_TOKEN": single},
                        args=["--log-format", "json"], name="array")
    for tok in (a, b, single):
        r = request(g.port, "POST", "/mcp", init_body(), mcp_headers(tok))
        assert r.status == 200, r
        request(g.port, "DELETE", "/mcp", None, mcp_headers(tok, r.header("mcp-session-id")))
    want = {"gen-1:t-" + hashlib.sha256(a.encode()).hexdigest()[:16],
            "gen-1:t-" + hashlib.sha256(b.encode()).hexdigest()[:16], "gen-1:singleton"}

    def routes(text):
        rs = {json.loads(ln).get("route") for ln in text.splitlines() if ln.strip()}
        return rs if want <= rs else None

    g.wait_log(routes, "routes of array entries and the singleton")


# ---------------------------------------------------------------------------------------------
# Subcommands


def run_bin(*args, env=None):
    base = {"API_TOKEN": "", "API_TOKENS_JSON": "", "API_TOKENS_FILE": ""}
    base.update(env or {})
    e = {k: v for k, v in base.items() if v != ""}
    full = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "API_TOKENS_JSON", "API_TOKENS_FILE")}
    full.update(e)
    p = subprocess.run([str(peers.gateway_bin()), *args], env=full, capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def test_check_masks_secrets(gateway_bin):
    a, b, s = new_token("chk"), new_token("chk"), new_token("chk")
    # A backend whose program is on PATH: check also fails when it is not (test_admin.py).
    rc, out, err = run_bin("check", "--backend-cmd", peers.EVERYTHING_BACKEND_CMD,
                           env={"API_TOKENS_JSON": json.dumps({"one": a, "two": b}), "API_TOKEN": s})
    assert rc == 0, out + err
    assert out.strip(), "check printed nothing"
    for t in (a, b, s):
        assert t not in out and t not in err
    assert "gen-1" in out + err


def test_check_refuses_short_token(gateway_bin):
    short = "Zq9xK"
    rc, out, err = run_bin("check", env={"API_TOKENS_JSON": json.dumps({"shorty": short})})
    assert rc != 0
    msg = out + err
    assert short not in msg
    assert "shorty" in msg, f"the error should name the entry: {msg!r}"


def test_serve_refuses_short_token(gateway_bin, everything):
    p = peers.run_cmd([gateway_bin, "serve", "--listen", f"127.0.0.1:{peers.free_port()}",
                       "--upstream", everything.url], env={"API_TOKEN": "Zq9xK"}, guard=20)
    assert p.returncode != 0
    assert b"Zq9xK" not in p.stdout + p.stderr


def test_check_refuses_bad_json(gateway_bin):
    rc, out, err = run_bin("check", env={"API_TOKENS_JSON": '{"a": '})
    assert rc != 0 and (out + err).strip()


def test_token_subcommand(gateway_bin):
    outs = []
    for _ in range(2):
        rc, out, err = run_bin("token")
        assert rc == 0, err
        m = re.search(r"sha256:([0-9a-f]{64})", out)
        assert m, out
        toks = [t for t in re.findall(r"(?<![A-Za-z0-9_:-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])", out)]
        assert toks, f"no 43-char base64url token in {out!r}"
        assert hashlib.sha256(toks[0].encode()).hexdigest() == m.group(1)
        outs.append(toks[0])
    assert outs[0] != outs[1]


def test_help_and_version(gateway_bin, gw):
    rc, out, err = run_bin("--help")
    assert rc == 0 and "serve" in out + err
    rc, out, err = run_bin("serve", "--help")
    assert rc == 0 and "--upstream" in out + err
    rc, out, err = run_bin("--version")
    assert rc == 0 and gw.health()["version"] in out + err
