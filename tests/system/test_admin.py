"""The operator's view: the admin listener (/metrics, /instances, the status page), `serena-remote
status`, /status in ISO 8601, the tool= audit field, the snapshot commands finding what `serve`
wrote, and the rough edges a new user hit (check and a backend program that is not on PATH).

Real peers on 127.0.0.1 only: server-everything as the per-token backend, a real Prometheus
(Debian `prometheus`) scraping the admin listener, promtool checking the exposition, headless
Chromium (Debian `chromium`) rendering the status page. Every negative case is here too: the
admin paths are absent on the client listener, a non-loopback admin listener without ADMIN_TOKEN
is refused, a wrong admin token gets 401, a foreign Host gets 403, and no configured token value
appears in metrics, listing, page, CLI output or logs. Nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import urllib.parse
from pathlib import Path

import pytest

import peers
from peers import mcp_headers, new_token, open_session, request, rpc

GUARD = 60.0
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def env_for(toks: dict, **extra) -> dict:
    env = {"API_TOKENS_JSON": json.dumps(toks)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def admin_get(port: int, path: str, headers: dict | None = None) -> peers.Resp:
    return request(port, "GET", path, None, headers if headers is not None else {}, timeout=10)


def raw_status(port: int, path: str, host: str, extra: str = "") -> int:
    """Status of a GET carrying exactly one Host header (http.client would add its own)."""
    got = peers.raw_exchange(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode())
    return int(got.split(b" ", 2)[1])


def echo_call(g, token: str, sid: str, rid: int, text: str) -> None:
    r = request(g.port, "POST", "/mcp", rpc(rid, "tools/call", {"name": "echo", "arguments": {"message": text}}),
                mcp_headers(token, sid))
    assert r.status == 200, r
    assert any(m.get("id") == rid and "result" in m for m in peers.body_messages(r)), r


def no_secret(text: str, secrets: list[str], where: str) -> None:
    for s in secrets:
        assert s not in text, f"{where} shows a token ({s[:10]}...)"


def admin_gateway(factory, tmp_dir: Path, toks: dict, name: str = "admin", state: Path | None = None,
                  env: dict | None = None, args: list | None = None):
    aport = peers.free_port()
    g = factory(state or tmp_dir / "state", env={**env_for(toks), **(env or {})},
                args=["--admin-listen", f"127.0.0.1:{aport}", *(args or [])], name=name)
    g.admin_port = aport
    peers.wait_until(lambda: admin_get(aport, "/metrics").status == 200, "the admin listener", g.proc,
                     guard=peers.START_GUARD)
    return g


def sample(text: str, name: str, labels: dict | None = None) -> float | None:
    """The value of one series in a Prometheus text exposition, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in (labels or {}).items())
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name and (m.group(3) or "") == want:
            return float(m.group(4))
    return None


# ---------------------------------------------------------------------------------------------
# metrics, listing and status on the admin listener; nothing of it on the client listener


def test_admin_listener_metrics_listing_and_client_listener_has_none(instance_gateway_factory, tmp_dir):
    toks = {"alice": new_token("alice"), "bob": new_token("bob")}
    g = admin_gateway(instance_gateway_factory, tmp_dir, toks)
    sid = open_session(g.port, toks["alice"])
    echo_call(g, toks["alice"], sid, 2, "hello")
    # Refusals of three kinds, each counted by its reason.
    assert request(g.port, "POST", "/mcp", peers.init_body(), mcp_headers(None)).status == 401
    assert request(g.port, "POST", "/mcp", peers.init_body(),
                   {**mcp_headers(None), "Authorization": "Basic dXNlcjpwYXNz"}).status == 401
    assert request(g.port, "POST", "/mcp", peers.init_body(), mcp_headers(new_token("nobody"))).status == 401

    r = admin_get(g.admin_port, "/metrics")
    assert r.status == 200, r
    assert r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8", r.headers
    text = r.body.decode()
    calls = sample(text, "serena_remote_requests_total",
                   {"route": "alice", "rpc_method": "tools/call", "status": "200"})
    assert calls == 1, text
    assert sample(text, "serena_remote_requests_total",
                  {"route": "alice", "rpc_method": "initialize", "status": "200"}) == 1, text
    for reason in ("missing", "malformed", "unknown_token"):
        assert sample(text, "serena_remote_auth_failures_total", {"reason": reason}) == 1, (reason, text)
    assert sample(text, "serena_remote_instances", {"state": "idle"}) == 1, text
    assert sample(text, "serena_remote_instance_starts_total", {"route": "alice"}) == 1, text
    assert sample(text, "serena_remote_instance_start_seconds_count") == 1, text
    assert sample(text, "serena_remote_instance_resident_memory_bytes", {"route": "alice"}) > 0, text
    assert sample(text, "process_resident_memory_bytes") > 0, text
    assert sample(text, "serena_remote_request_duration_seconds_count", {"route": "alice"}) >= 3, text
    no_secret(text, list(toks.values()), "/metrics")
    # promtool (Debian prometheus) accepts the exposition as it is.
    p = peers.run_cmd(["promtool", "check", "metrics"], input_=r.body, guard=30)
    assert p.returncode == 0, (p.stdout + p.stderr).decode()

    r = admin_get(g.admin_port, "/instances")
    assert r.status == 200 and r.header("content-type") == "application/json", r
    doc = r.json()
    assert doc["generation"] == "gen-1" and doc["tokens"] == 2 and doc["role"] == "serve", doc
    by = {e["name"]: e for e in doc["instances"]}
    assert sorted(by) == ["alice", "bob"], doc
    a, b = by["alice"], by["bob"]
    pid, _ = g.pidfile("gen-1:alice")
    assert a["route"] == "gen-1:alice" and a["state"] == "idle" and a["pid"] == pid, a
    assert isinstance(a["port"], int) and a["rss_bytes"] > 0, a
    for k in ("started", "ready", "last_activity"):
        assert ISO.match(a[k]), (k, a)
    assert a["ready"] >= a["started"], a
    assert 0 < a["sleep_in_seconds"] <= 900 and a["restarts"] == 0 and a["last_error"] is None, a
    assert a["log"] == str(g.route_dir("gen-1:alice") / "backend.log"), a
    assert b["state"] == "not-started" and b["pid"] is None and b["started"] is None, b
    no_secret(r.body.decode(), list(toks.values()), "/instances")

    # The caller's own /status carries the same record, times in ISO 8601.
    st = g.status(toks["alice"])["instance"]
    assert st["pid"] == pid and st["name"] == "alice" and ISO.match(st["started"]), st
    assert st["ready"] >= st["started"] and st["log"] == a["log"], st

    # None of it on the client listener, with or without a token.
    for path in ("/metrics", "/instances", "/"):
        for hdrs in ({}, {"Authorization": f"Bearer {toks['alice']}"}):
            rc = request(g.port, "GET", path, None, hdrs)
            assert rc.status == 404, (path, rc)
            assert b"serena_remote_" not in rc.body and b"<html" not in rc.body.lower(), rc

    # The admin listener answers only GET/HEAD, only its paths, only loopback Host names.
    assert request(g.admin_port, "POST", "/metrics", b"", {}).status == 405
    assert admin_get(g.admin_port, "/mcp").status == 404
    assert raw_status(g.admin_port, "/metrics", "attacker.example") == 403
    assert raw_status(g.admin_port, "/metrics", f"attacker.example:{g.admin_port}") == 403
    assert raw_status(g.admin_port, "/metrics", f"localhost:{g.admin_port}") == 200
    assert raw_status(g.admin_port, "/", f"[::1]:{g.admin_port}") == 200
    # Two Host headers (a loopback one first, to pass a check that reads only the first): 400.
    assert raw_status(g.admin_port, "/metrics", f"localhost:{g.admin_port}", "Host: attacker.example\r\n") == 400
    assert raw_status(g.port, "/health", f"127.0.0.1:{g.port}", "Host: attacker.example\r\n") == 400

    # tools/call names its tool in the access log, with route, status and duration.
    line = g.wait_log(lambda s: re.search(r"^.* route=gen-1:alice POST /mcp rpc=tools/call tool=echo "
                                          r"status=200 bytes=\d+ ms=[0-9.]+$", s, re.M), "tool= audit line")
    assert line
    no_secret(g.log_text(), list(toks.values()), "the gateway log")


def test_ready_never_before_started_after_a_restart(instance_gateway_factory, tmp_dir):
    toks = {"alice": new_token("alice")}
    g = admin_gateway(instance_gateway_factory, tmp_dir, toks)
    open_session(g.port, toks["alice"])
    pid, _ = g.pidfile("gen-1:alice")
    os.killpg(pid, signal.SIGKILL)
    peers.wait_until(lambda: g.status(toks["alice"])["instance"]["restarts"] == 1, "the crash recorded", g.proc,
                     guard=GUARD)
    crashed = g.status(toks["alice"])["instance"]
    assert crashed["state"] == "asleep" and crashed["pid"] is None and ISO.match(crashed["stopped"]), crashed
    text = admin_get(g.admin_port, "/metrics").body.decode()
    assert sample(text, "serena_remote_instance_crashes_total", {"route": "alice"}) == 1, text
    # A new start: until it is ready, it has no ready time of its own; after, ready >= started.
    open_session(g.port, toks["alice"])
    st = g.status(toks["alice"])["instance"]
    assert st["state"] == "idle" and st["ready"] >= st["started"], st
    assert st["started"] >= crashed["started"], (crashed, st)


def test_json_access_log_names_the_tool(instance_gateway_factory, tmp_dir):
    toks = {"alice": new_token("alice")}
    g = instance_gateway_factory(tmp_dir / "state", env=env_for(toks), args=["--log-format", "json"])
    sid = open_session(g.port, toks["alice"])
    echo_call(g, toks["alice"], sid, 2, "json")

    def tool_line(text):
        for line in text.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("rpc_method") == "tools/call":
                return e
        return None

    e = g.wait_log(tool_line, "a JSON tools/call line")
    e = tool_line(g.log_text())
    assert e["tool"] == "echo" and e["route"] == "gen-1:alice" and e["status"] == 200, e
    assert isinstance(e["duration_ms"], (int, float)), e
    # Lines of other methods carry no tool member.
    others = [json.loads(l) for l in g.log_text().splitlines() if '"rpc_method":"initialize"' in l]
    assert others and all("tool" not in o for o in others), others


# ---------------------------------------------------------------------------------------------
# ADMIN_TOKEN, and the refusal of a listener beyond loopback without one


def test_admin_token_required_and_non_loopback_refused(instance_gateway_factory, gateway_bin, tmp_dir):
    toks = {"alice": new_token("alice")}
    admin_token = new_token("admin")
    aport = peers.free_port()
    g = instance_gateway_factory(tmp_dir / "state", env={**env_for(toks), "ADMIN_TOKEN": admin_token},
                                 args=["--admin-listen", f"127.0.0.1:{aport}"])
    peers.wait_until(lambda: admin_get(aport, "/metrics").status == 401, "the admin listener", g.proc,
                     guard=peers.START_GUARD)
    r = admin_get(aport, "/instances")
    assert r.status == 401 and "ADMIN_TOKEN" in r.json()["error"]["message"], r
    assert admin_get(aport, "/", {"Authorization": f"Bearer {new_token('wrong')}"}).status == 401
    ok = admin_get(aport, "/instances", {"Authorization": f"Bearer {admin_token}"})
    assert ok.status == 200 and ok.json()["instances"][0]["name"] == "alice", ok
    # With the token, a Host that is not loopback is fine (a proxy may forward it).
    assert raw_status(aport, "/metrics", "gateway.internal", f"Authorization: Bearer {admin_token}\r\n") == 200
    no_secret(ok.body.decode() + g.log_text(), [admin_token, toks["alice"]], "the admin listing or log")

    # The CLI: refused without the token, a table with it.
    base = {"SERENA_REMOTE_ADMIN_LISTEN": "", "PATH": os.environ["PATH"]}
    p = peers.run_cmd([gateway_bin, "status", "--admin", f"http://127.0.0.1:{aport}"],
                      env={**base, "ADMIN_TOKEN": ""}, guard=30)
    assert p.returncode == 1 and b"ADMIN_TOKEN" in p.stderr, p
    p = peers.run_cmd([gateway_bin, "status", "--admin", f"http://127.0.0.1:{aport}"],
                      env={**base, "ADMIN_TOKEN": admin_token}, guard=30)
    assert p.returncode == 0 and b"alice" in p.stdout, p
    no_secret((p.stdout + p.stderr).decode(), [admin_token], "serena-remote status")

    # Beyond loopback without ADMIN_TOKEN: serve refuses to start, saying why (nothing binds).
    p = peers.run_cmd([gateway_bin, "serve", "--listen", f"127.0.0.1:{peers.free_port()}",
                       "--state-dir", str(tmp_dir / "state2"), "--backend-cmd", peers.EVERYTHING_BACKEND_CMD,
                       "--admin-listen", f"0.0.0.0:{peers.free_port()}"],
                      env={**env_for(toks), "ADMIN_TOKEN": ""}, guard=30)
    assert p.returncode == 2, p
    assert b"ADMIN_TOKEN" in p.stderr and b"loopback" in p.stderr, p.stderr
    # A short ADMIN_TOKEN is refused without being quoted.
    p = peers.run_cmd([gateway_bin, "check", "--admin-listen", "127.0.0.1:9", "--backend-cmd",
                       peers.EVERYTHING_BACKEND_CMD],
                      env={**env_for(toks), "ADMIN_TOKEN": "short-one"}, guard=30)
    assert p.returncode == 2 and b"ADMIN_TOKEN is invalid" in p.stderr and b"short-one" not in p.stderr, p


# ---------------------------------------------------------------------------------------------
# a real Prometheus scrapes the admin listener


def test_prometheus_scrapes_the_admin_listener(instance_gateway_factory, tmp_dir, run_dir):
    prom = shutil.which("prometheus")
    assert prom, "prometheus is not installed: run scripts/deps.sh (Debian package prometheus)"
    toks = {"alice": new_token("alice")}
    admin_token = new_token("admin")
    aport = peers.free_port()
    g = instance_gateway_factory(tmp_dir / "state", env={**env_for(toks), "ADMIN_TOKEN": admin_token},
                                 args=["--admin-listen", f"127.0.0.1:{aport}"])
    sid = open_session(g.port, toks["alice"])
    echo_call(g, toks["alice"], sid, 2, "scraped")
    pport = peers.free_port()
    pdir = tmp_dir / "prometheus"
    pdir.mkdir(exist_ok=True)
    cfg = pdir / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: serena-remote\n"
        f"    authorization:\n      credentials_file: {pdir / 'admin-token'}\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{aport}']\n")
    (pdir / "admin-token").write_text(admin_token)
    proc = peers.Proc("prometheus", [prom, f"--config.file={cfg}", f"--storage.tsdb.path={pdir / 'data'}",
                                     f"--web.listen-address=127.0.0.1:{pport}", "--log.level=warn"],
                      run_dir / f"prometheus-{pport}.log")
    try:
        peers.wait_until(lambda: request(pport, "GET", "/-/ready", None, {}, timeout=5).status == 200,
                         "prometheus ready", proc)

        def query(q: str) -> list:
            r = request(pport, "GET", "/api/v1/query?query=" + urllib.parse.quote(q), None, {}, timeout=10)
            assert r.status == 200, r
            return r.json()["data"]["result"]

        up = peers.wait_until(lambda: [x for x in query('up{job="serena-remote"}') if x["value"][1] == "1"],
                              "up == 1", proc, guard=GUARD)
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{aport}", up
        got = peers.wait_until(
            lambda: query('serena_remote_requests_total{route="alice",rpc_method="tools/call"}'),
            "a serena_remote series in Prometheus", proc, guard=GUARD)
        assert got[0]["metric"]["status"] == "200" and float(got[0]["value"][1]) >= 1, got
        rss = query("process_resident_memory_bytes")
        assert rss and float(rss[0]["value"][1]) > 0, rss
    finally:
        proc.stop()


# ---------------------------------------------------------------------------------------------
# the status page in headless Chromium


def chromium(args: list, guard: float = 90.0):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is not installed: run scripts/deps.sh (Debian package chromium)"
    return peers.run_cmd([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          "--no-first-run", *args], guard=guard)


def test_status_page_renders_in_chromium(instance_gateway_factory, tmp_dir, run_dir):
    toks = {"alice": new_token("alice"), "bob": new_token("bob")}
    # A state directory whose name holds markup: the log paths on the page must show it as text.
    state = tmp_dir / "st<b>&'x"
    g = admin_gateway(instance_gateway_factory, tmp_dir, toks, state=state)
    open_session(g.port, toks["alice"])
    url = f"http://127.0.0.1:{g.admin_port}/"
    raw = admin_get(g.admin_port, "/")
    assert raw.status == 200 and raw.header("content-type") == "text/html; charset=utf-8", raw
    assert "script-src" not in (raw.header("content-security-policy") or "") and \
        "default-src 'none'" in raw.header("content-security-policy"), raw.headers
    assert b'http-equiv="refresh"' in raw.body and b"<script" not in raw.body, raw.body[:500]
    profile = tmp_dir / "chromium-profile"
    p = chromium([f"--user-data-dir={profile}", "--dump-dom", url])
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    dom = p.stdout.decode()
    assert "<table" in dom and ">alice<" in dom and ">bob<" in dom and "not-started" in dom, dom[:3000]
    assert "st&lt;b&gt;&amp;'x" in dom, dom[:3000]  # escaped text, not an element
    assert "<b>&amp;" not in dom and "<b>&" not in dom, dom[:3000]
    no_secret(dom + raw.body.decode(), list(toks.values()), "the status page")
    shot = run_dir / f"status-page-{g.admin_port}.png"
    p = chromium([f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1400,500",
                  "--hide-scrollbars", url])
    assert p.returncode == 0 and shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p.stderr[-2000:]
    assert shot.stat().st_size > 5000, shot.stat()


# ---------------------------------------------------------------------------------------------
# serena-remote status


def test_status_cli_table_json_and_not_running(instance_gateway_factory, gateway_bin, tmp_dir):
    toks = {"alice": new_token("alice"), "bob": new_token("bob")}
    g = admin_gateway(instance_gateway_factory, tmp_dir, toks)
    open_session(g.port, toks["alice"])
    env = {"ADMIN_TOKEN": "", "PATH": os.environ["PATH"], "SERENA_REMOTE_ADMIN_LISTEN": f"127.0.0.1:{g.admin_port}"}
    p = peers.run_cmd([gateway_bin, "status"], env=env, guard=30)
    assert p.returncode == 0, p
    out = p.stdout.decode()
    lines = out.splitlines()
    head = next(i for i, l in enumerate(lines) if l.startswith("NAME"))
    cols = lines[head]
    # Aligned: every row's STATE and PID start where their headers do.
    for row in lines[head + 1:head + 3]:
        assert row[cols.index("STATE"):].split()[0] in ("idle", "not-started"), (cols, row)
    alice = next(l for l in lines if l.startswith("alice"))
    assert alice.split()[1] == "idle" and alice.split()[2] == str(g.pidfile("gen-1:alice")[0]), out
    assert next(l for l in lines if l.startswith("bob")).split()[1] == "not-started", out
    no_secret(out, list(toks.values()), "serena-remote status")
    p = peers.run_cmd([gateway_bin, "status", "--json", "--admin", f"http://127.0.0.1:{g.admin_port}"],
                      env=env, guard=30)
    assert p.returncode == 0 and [e["name"] for e in json.loads(p.stdout)["instances"]] == ["alice", "bob"], p
    # No gateway there: a clear error, not a stack of noise.
    dead = peers.free_port()
    p = peers.run_cmd([gateway_bin, "status", "--admin", f"http://127.0.0.1:{dead}"], env=env, guard=30)
    assert p.returncode == 1, p
    err = p.stderr.decode()
    assert f"no gateway answers on http://127.0.0.1:{dead}" in err and "serena-remote serve" in err, err
    # Pointed at the client listener by mistake: said so.
    p = peers.run_cmd([gateway_bin, "status", "--admin", f"http://127.0.0.1:{g.port}"], env=env, guard=30)
    assert p.returncode == 1 and b"404" in p.stderr, p


# ---------------------------------------------------------------------------------------------
# the snapshot commands find the gateway's own snapshots, by token name


def test_snapshot_commands_resolve_as_serve_does(instance_gateway_factory, gateway_bin, tmp_dir):
    toks = {"alice": new_token("alice"), "bob": new_token("bob")}
    state = tmp_dir / "state"
    g = instance_gateway_factory(state, env=env_for(toks))
    sid = open_session(g.port, toks["alice"])
    echo_call(g, toks["alice"], sid, 2, "keep me")
    home = g.route_dir("gen-1:alice") / "home"
    (home / "marker.txt").write_text("alice's state\n")
    assert g.stop() == 0  # SIGTERM: the backend stops and is snapshotted
    env = {**env_for(toks), "PATH": os.environ["PATH"]}
    for k in ("SERENA_REMOTE_STORE", "SERENA_INSTANCE_ID"):
        env[k] = ""
    env["SERENA_R2_STATE_PARTITION_MODE"] = "durable-object"
    env["SERENA_R2_STATE_PREFIX"] = "serena-mcp/default/serena-home-snapshots-v1"
    env["SERENA_R2_STATE_ENABLED"] = "0"
    p = peers.run_cmd([gateway_bin, "snapshots", "--state-dir", state], env=env, guard=60)
    assert p.returncode == 0, p
    out = p.stdout.decode()
    lines = out.splitlines()
    cols = next(l for l in lines if l.startswith("NAME"))
    alice = next(l for l in lines if l.startswith("alice"))
    bob = next(l for l in lines if l.startswith("bob"))
    part = "r-" + g.route_dir("gen-1:alice").name  # the same 16 hex digits name both
    assert alice.split()[1] == part and alice.split()[2].endswith(".tree"), out
    assert bob.split()[2] == "(none)", out
    # Columns aligned: SNAPSHOT starts at the same offset in the header and in each row.
    assert alice.index(alice.split()[2]) == cols.index("SNAPSHOT") == bob.index("(none)"), out
    no_secret(out + p.stderr.decode(), list(toks.values()), "serena-remote snapshots")
    p = peers.run_cmd([gateway_bin, "snapshots", "--state-dir", state, "--route", "alice", "--json"], env=env,
                      guard=60)
    assert p.returncode == 0, p
    doc = json.loads(p.stdout)
    (r,) = doc["routes"]
    assert r["name"] == "alice" and r["route"] == "gen-1:alice" and r["partition"] == part, doc
    assert r["source"] == "manifest" and r["snapshots"][0]["size"] > 0, doc
    # restore by token name, from the store serve used by default (<state-dir>/snapshots)
    target = tmp_dir / "restored"
    p = peers.run_cmd([gateway_bin, "restore", "--state-dir", state, "--route", "alice", "--state", target],
                      env=env, guard=60)
    assert p.returncode == 0, p
    assert (target / "marker.txt").read_text() == "alice's state\n"
    # Two routes and no --route: restore asks which one instead of guessing.
    p = peers.run_cmd([gateway_bin, "restore", "--state-dir", state, "--state", tmp_dir / "x"], env=env, guard=60)
    assert p.returncode == 2 and b"--route NAME" in p.stderr and b"alice" in p.stderr, p
    # The wrong state directory: said so, naming the directory it looked in.
    p = peers.run_cmd([gateway_bin, "snapshots", "--state-dir", tmp_dir / "elsewhere"], env=env, guard=60)
    assert p.returncode == 2 and b"no snapshot store at" in p.stderr and b"--state-dir" in p.stderr, p


# ---------------------------------------------------------------------------------------------
# rough edges: check and a backend program that is not on PATH


def test_check_fails_when_the_backend_program_is_missing(gateway_bin, tmp_dir):
    toks = {"alice": new_token("alice")}
    env = {**env_for(toks), "PATH": "/usr/bin:/bin", "SERENA_BACKEND_CMD": "", "SERENA_REMOTE_ADMIN_LISTEN": "off"}
    p = peers.run_cmd([gateway_bin, "check"], env=env, guard=30)
    assert p.returncode == 2, p
    err = p.stderr.decode()
    assert "`serena` is not on PATH" in err and "scripts/serena.sh" in err, err
    assert b"configuration OK" not in p.stdout, p.stdout
    p = peers.run_cmd([gateway_bin, "check", "--backend-cmd", peers.EVERYTHING_BACKEND_CMD], env=env, guard=30)
    assert p.returncode == 0 and b"backend: node (" in p.stdout and b"configuration OK" in p.stdout, p
    p = peers.run_cmd([gateway_bin, "check", "--backend-cmd", "env A=1 sr-no-such-program-x --port {port}"],
                      env=env, guard=30)
    assert p.returncode == 2 and b"`sr-no-such-program-x` is not on PATH" in p.stderr, p


def test_missing_backend_program_is_named_to_the_client(instance_gateway_factory, tmp_dir):
    toks = {"alice": new_token("alice")}
    g = instance_gateway_factory(tmp_dir / "state", backend_cmd="sr-no-such-program-x --port {port}",
                                 env=env_for(toks))
    g.wait_log(lambda s: "program `sr-no-such-program-x` is not on PATH" in s, "the start-up warning")
    r = request(g.port, "POST", "/mcp", peers.init_body(), mcp_headers(toks["alice"]))
    assert r.status == 500, r
    msg = r.json()["error"]["message"]
    assert "`sr-no-such-program-x` was not found on the gateway's PATH" in msg, msg
    assert "next request starts it again" not in msg and ".." not in msg, msg
    st = g.status(toks["alice"])["instance"]
    assert "not found" in st["last_error"] and str(g.route_dir("gen-1:alice")) in st["last_error"], st
