"""System tests of per-token instances: `serena-remote serve` without --upstream.

Every token route gets its own backend process, here server-everything (fast to start; its
get-env tool shows what the gateway passes down), started by the first request and put to sleep
when idle, capped, drained on a generation change, restarted after a crash, refused during a
crash-loop cool-down, and never left behind as an orphan.

Processes are real, on 127.0.0.1, each in its own session; a backend is identified by the pid
file the gateway writes (`<pid> <starttime>`), so a reused pid is never mistaken for it. Nothing
asserts how long anything took: every wait is a poll with a generous hang guard.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import peers
from peers import (INITIALIZED, Stream, body_messages, init_body, mcp_headers, new_token, open_session,
                   request, rpc)

GUARD = 30.0  # hang guard for polls (seconds); never an assertion about duration


# ---------------------------------------------------------------------------------------------
# helpers


def env_for(toks: dict, **extra) -> dict:
    env = {"API_TOKENS_JSON": json.dumps(toks)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def jsonrpc_error(r: peers.Resp) -> dict:
    """Assert the body is a JSON-RPC error object and return its error member."""
    ct = (r.header("content-type") or "").lower()
    assert ct.startswith("application/json"), f"error reply is not JSON: {r!r}"
    b = r.json()
    assert b.get("jsonrpc") == "2.0" and isinstance(b.get("error"), dict), b
    assert isinstance(b["error"].get("code"), int) and b["error"].get("message"), b
    return b["error"]


def call(port: int, token: str, sid: str, rid: int, name: str, args: dict | None = None,
         timeout: float = peers.IO_GUARD) -> dict:
    """tools/call through the gateway; returns the JSON-RPC response for rid."""
    r = request(port, "POST", "/mcp", rpc(rid, "tools/call", {"name": name, "arguments": args or {}}),
                mcp_headers(token, sid), timeout=timeout)
    assert r.status == 200, r
    got = [m for m in body_messages(r) if m.get("id") == rid]
    assert got, f"no response for id {rid}: {r!r}"
    return got[0]


def text_of(msg: dict) -> str:
    assert "result" in msg, msg
    return "".join(c.get("text", "") for c in msg["result"]["content"])


def echo(port: int, token: str, sid: str, rid: int, text: str) -> None:
    assert text_of(call(port, token, sid, rid, "echo", {"message": text})) == f"Echo: {text}"


def session_and_echo(g, token: str, text: str) -> str:
    sid = open_session(g.port, token)
    echo(g.port, token, sid, 2, text)
    return sid


def wait_pidfile(g, route: str) -> tuple[int, int]:
    rec = peers.wait_until(lambda: g.pidfile(route), f"pid file of {route}", g.proc, guard=GUARD)
    assert peers.proc_running(*rec), f"pid file of {route} names a process that is not running: {rec}"
    return rec


def wait_gone(pid: int, start: int, what: str) -> None:
    peers.wait_until(lambda: not peers.proc_running(pid, start), what, None, guard=GUARD)


def wait_stopped(g, route: str, pid: int, start: int, what: str) -> None:
    """Until the backend's process is gone and the gateway has noticed (its pid file removed)."""
    wait_gone(pid, start, what)
    peers.wait_until(lambda: g.pidfile(route) is None, f"the pid file of {route} removed", g.proc, guard=GUARD)


def wait_state(g, token: str, state: str) -> dict:
    return peers.wait_until(lambda: (s := g.status(token))["instance"] and s["instance"]["state"] == state and s,
                            f"/status state {state}", g.proc, guard=GUARD)


def cmdline(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


class LongCall(threading.Thread):
    """A trigger-long-running-operation POST in a thread; resp or error when it ends."""

    def __init__(self, port: int, token: str, sid: str, rid: int, duration: float):
        super().__init__(daemon=True)
        self.rid = rid
        self.args = (port, "POST", "/mcp",
                     rpc(rid, "tools/call", {"name": "trigger-long-running-operation",
                                             "arguments": {"duration": duration, "steps": 2}}),
                     mcp_headers(token, sid))
        self.resp: peers.Resp | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self):
        try:
            self.resp = request(*self.args, timeout=60)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def finish(self) -> "LongCall":
        self.join(90)
        assert not self.is_alive(), "the long call never ended"
        return self

    def result_text(self) -> str:
        assert self.error is None, f"long call failed: {self.error!r}"
        assert self.resp is not None and self.resp.status == 200, self.resp
        got = [m for m in body_messages(self.resp) if m.get("id") == self.rid]
        assert got, f"long call ended without its response: {self.resp!r}"
        return text_of(got[0])


def wait_in_flight(g, token: str) -> None:
    """Until the gateway counts a POST in flight on token's instance (state "ready", not "idle")."""
    wait_state(g, token, "ready")


# ---------------------------------------------------------------------------------------------
# 1, 12: one backend per token, /status shows only the caller's


def test_two_tokens_two_backends(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha"), "bravo": new_token("bravo")}
    g = instance_gateway_factory(tmp_dir / "state", env=env_for(toks))
    assert g.health()["instances"]["running"] == 0
    assert g.status(toks["alpha"])["instance"] is None, "nothing runs before the first request"
    sa = session_and_echo(g, toks["alpha"], "to alpha")
    sb = session_and_echo(g, toks["bravo"], "to bravo")
    pa, _ = wait_pidfile(g, "gen-1:alpha")
    pb, _ = wait_pidfile(g, "gen-1:bravo")
    assert pa != pb, "two tokens share one backend process"
    for pid in (pa, pb):
        assert str(peers.SERVER_EVERYTHING) in cmdline(pid), cmdline(pid)
    # The pid files name the processes the gateway says it started, on different ports.
    (porta, logpa), = g.starts("gen-1:alpha")
    (portb, logpb), = g.starts("gen-1:bravo")
    assert (logpa, logpb) == (pa, pb) and porta != portb
    for route in ("gen-1:alpha", "gen-1:bravo"):
        d = g.route_dir(route)
        assert (d / "home").is_dir() and (d / "work").is_dir() and (d / "backend.log").is_file(), d
    # Both keep working side by side, each in its own session.
    echo(g.port, toks["alpha"], sa, 3, "alpha again")
    echo(g.port, toks["bravo"], sb, 3, "bravo again")
    # A session of one backend is unknown to the other: they really are separate servers.
    r = request(g.port, "POST", "/mcp", rpc(4, "tools/list"), mcp_headers(toks["bravo"], sa))
    assert r.status in (400, 404), r
    h = g.health()["instances"]
    assert h["running"] == 2 and h["idle"] == 2 and h["failed"] == 0, h


def test_status_shows_only_the_callers_instance(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha"), "bravo": new_token("bravo")}
    g = instance_gateway_factory(tmp_dir / "state", env=env_for(toks))
    session_and_echo(g, toks["alpha"], "a")
    # Before bravo ever ran, its /status is empty, and nothing of alpha shows through.
    rb = request(g.port, "GET", "/status", None, {"Authorization": f"Bearer {toks['bravo']}"})
    assert rb.status == 200, rb
    assert rb.json() == {"route": "gen-1:bravo", "mode": "instances", "instance": None}, rb
    session_and_echo(g, toks["bravo"], "b")
    pb, sb = wait_pidfile(g, "gen-1:bravo")
    (portb, _), = g.starts("gen-1:bravo")
    # Crash bravo so its record carries an error that names its own log path.
    os.killpg(pb, signal.SIGKILL)
    peers.wait_until(lambda: g.status(toks["bravo"])["instance"]["restarts"] >= 1, "bravo's crash recorded",
                     g.proc, guard=GUARD)
    sb_doc = g.status(toks["bravo"])
    assert str(g.route_dir("gen-1:bravo")) in (sb_doc["instance"]["last_error"] or ""), sb_doc
    ra = request(g.port, "GET", "/status", None, {"Authorization": f"Bearer {toks['alpha']}"})
    assert ra.status == 200, ra
    doc = ra.json()
    assert doc["route"] == "gen-1:alpha" and doc["mode"] == "instances", doc
    assert doc["instance"]["state"] == "idle" and doc["instance"]["restarts"] == 0, doc
    assert doc["instance"]["last_error"] is None, doc
    text = ra.body.decode()
    for secret in ("bravo", g.route_dir("gen-1:bravo").name, toks["bravo"]):
        assert secret not in text, f"alpha's /status shows {secret!r} of bravo: {text}"
    numbers = [v for v in doc["instance"].values() if isinstance(v, int)]
    assert pb not in numbers and portb not in numbers, f"alpha's /status shows bravo's pid or port: {doc}"
    # Without a token there is no /status at all.
    assert request(g.port, "GET", "/status", None, {}).status == 401


# ---------------------------------------------------------------------------------------------
# 2: no gateway secret reaches a backend


def test_backend_environment_has_no_gateway_secrets(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha"), "bravo": new_token("bravo")}
    aws_secret = "aws-secret-" + new_token("aws")
    state = tmp_dir / "state"
    snap_key = "c25hcHNob3Qta2V5LWZvci1hLXRlc3Qtb25seS0wMTI="
    g = instance_gateway_factory(state, env=env_for(toks, AWS_SECRET_ACCESS_KEY=aws_secret,
                                                    AWS_ACCESS_KEY_ID="AKIAEXAMPLEKEYID0000",
                                                    SERENA_SNAPSHOT_KEY=snap_key,
                                                    SR_HARMLESS_MARKER="kept-1"))
    sid = open_session(g.port, toks["alpha"])
    text = text_of(call(g.port, toks["alpha"], sid, 2, "get-env"))
    env = json.loads(text)
    # The call really reached a backend whose environment we can see (not a canned answer).
    assert env.get("SR_HARMLESS_MARKER") == "kept-1", sorted(env)
    for key in ("API_TOKENS_JSON", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "SERENA_SNAPSHOT_KEY"):
        assert key not in env, f"{key} reached the backend"
    for value in (*toks.values(), aws_secret, "AKIAEXAMPLEKEYID0000", snap_key):
        assert value not in text, f"a secret value ({value[:8]}...) reached the backend"
    home = g.route_dir("gen-1:alpha") / "home"
    assert os.path.realpath(env.get("SERENA_HOME", "")) == os.path.realpath(home), env.get("SERENA_HOME")
    assert env.get("SERENA_USAGE_REPORTING") == "false", env.get("SERENA_USAGE_REPORTING")
    # Its working directory is the route's work/.
    pid, _ = wait_pidfile(g, "gen-1:alpha")
    assert os.path.realpath(f"/proc/{pid}/cwd") == os.path.realpath(g.route_dir("gen-1:alpha") / "work")


# ---------------------------------------------------------------------------------------------
# 3: requests that arrive during a start are held, and only one backend starts


def test_concurrent_first_requests_start_one_backend(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha")}
    g = instance_gateway_factory(tmp_dir / "state", env=env_for(toks))
    n = 6
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def go(i):
        barrier.wait(GUARD)
        try:
            results[i] = request(g.port, "POST", "/mcp", init_body(rid=i + 1), mcp_headers(toks["alpha"]),
                                 timeout=60)
        except BaseException as e:  # noqa: BLE001
            results[i] = e

    threads = [threading.Thread(target=go, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads), "a held request never got an answer"
    sids = set()
    for i, r in enumerate(results):
        assert isinstance(r, peers.Resp) and r.status == 200, f"request {i}: {r!r}"
        msg = [m for m in body_messages(r) if m.get("id") == i + 1]
        assert msg and "result" in msg[0], r
        sids.add(r.header("mcp-session-id"))
    assert len(sids) == n and None not in sids, sids
    starts = g.starts("gen-1:alpha")
    assert len(starts) == 1, f"expected exactly one backend start, log says {starts}"
    pid, _ = wait_pidfile(g, "gen-1:alpha")
    assert starts[0][1] == pid
    # Each of the held initializes made a usable session on that one backend.
    for k, sid in enumerate(sorted(sids)):
        assert request(g.port, "POST", "/mcp", INITIALIZED, mcp_headers(toks["alpha"], sid)).status == 202
        echo(g.port, toks["alpha"], sid, 10 + k, f"held {k}")
    assert len(g.starts("gen-1:alpha")) == 1


# ---------------------------------------------------------------------------------------------
# 4: sleep when idle; a GET stream is not activity; the next request wakes it


def test_idle_instance_sleeps_and_wakes(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha")}
    t = toks["alpha"]
    g = instance_gateway_factory(tmp_dir / "state", env=env_for(toks, SLEEP_AFTER="3s", SERENA_STOP_GRACE="3s"))
    sid = session_and_echo(g, t, "before sleep")
    pid1, st1 = wait_pidfile(g, "gen-1:alpha")
    # A client keeps a GET stream open for server notifications.
    stream = Stream(g.port, "GET", "/mcp", None, mcp_headers(t, sid, accept="text/event-stream"))
    assert stream.status == 200 and (stream.header("content-type") or "").startswith("text/event-stream")
    assert g.status(t)["instance"]["state"] == "idle", "the instance slept before the stream was open"
    assert g.pidfile("gen-1:alpha") == (pid1, st1)
    outcome: dict = {}

    def drain():
        try:
            outcome["body"] = stream.read_rest()  # raises IncompleteRead if the stream is cut
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    doc = wait_state(g, t, "asleep")
    assert doc["instance"]["restarts"] == 0 and doc["instance"]["last_error"] is None, doc
    assert not g.route_dir("gen-1:alpha").joinpath("pid").exists(), "pid file left after sleep"
    wait_gone(pid1, st1, "the sleeping backend's process to exit")
    assert re.search(r"route=gen-1:alpha instance stopping: idle", g.log_text()), g.log_text()[-2000:]
    g.wait_log(lambda s: "route=gen-1:alpha instance stopped" in s, "instance stopped")
    assert g.health()["instances"]["running"] == 0
    # The edge keeps the client's GET stream open while the instance sleeps, and the open
    # stream does not wake it: still asleep a while later.
    time.sleep(2.0)
    assert reader.is_alive(), f"the GET stream was closed when the instance slept: {outcome!r}"
    assert g.status(t)["instance"]["state"] == "asleep"
    assert not g.route_dir("gen-1:alpha").joinpath("pid").exists()
    # The next request in the same session wakes a fresh backend, where the edge resumes the
    # session: the client's id keeps working.
    r = request(g.port, "POST", "/mcp", rpc(5, "tools/list"), mcp_headers(t, sid))
    assert r.status == 200 and peers.body_messages(r)[0]["result"]["tools"], r
    assert re.search(r"route=gen-1:alpha resumed a client session", g.log_text())
    stream.conn.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader thread; close() alone would not
    reader.join(GUARD)
    stream.close()
    sid2 = session_and_echo(g, t, "after sleep")
    assert sid2 != sid
    pid2, st2 = wait_pidfile(g, "gen-1:alpha")
    assert (pid2, st2) != (pid1, st1)
    assert len(g.starts("gen-1:alpha")) == 2
    assert g.status(t)["instance"]["restarts"] == 0, "a sleep is not a crash"


# ---------------------------------------------------------------------------------------------
# 5: MAX_INSTANCES: an idle instance is evicted, a busy one is not


def test_cap_evicts_idle_and_refuses_when_busy(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha"), "bravo": new_token("bravo")}
    a, b = toks["alpha"], toks["bravo"]
    g = instance_gateway_factory(tmp_dir / "state", env=env_for(toks, MAX_INSTANCES=1, SERENA_STOP_GRACE="3s"))
    assert g.health()["instances"]["max"] == 1
    session_and_echo(g, a, "alpha first")
    pa, sta = wait_pidfile(g, "gen-1:alpha")
    # alpha is idle: bravo's first request evicts it and is served.
    sb = session_and_echo(g, b, "bravo evicts")
    assert re.search(r"route=gen-1:alpha instance stopping: evicted", g.log_text()), g.log_text()[-2000:]
    wait_stopped(g, "gen-1:alpha", pa, sta, "the evicted backend to exit")
    assert g.status(a)["instance"]["state"] == "asleep"
    # bravo now has a POST in flight: alpha cannot have a backend and gets 503 at capacity.
    long = LongCall(g.port, b, sb, 7, 3)
    wait_in_flight(g, b)
    r = request(g.port, "POST", "/mcp", init_body(rid=9), mcp_headers(a))
    assert r.status == 503, r
    assert (r.header("retry-after") or "").strip().isdigit(), r
    err = jsonrpc_error(r)
    assert "capacity" in err["message"].lower(), err
    assert r.json().get("id") == 9, r
    assert "Long running operation completed" in long.finish().result_text()
    assert g.pidfile("gen-1:bravo") is not None, "the busy instance was stopped"
    assert len(g.starts("gen-1:alpha")) == 1, "a backend was started over the cap"
    # Once bravo is idle again, alpha can have the slot.
    session_and_echo(g, a, "alpha back")
    assert re.search(r"route=gen-1:bravo instance stopping: evicted", g.log_text())


# ---------------------------------------------------------------------------------------------
# 6: a new generation drains old instances; new requests get fresh ones


def test_generation_change_drains_and_restarts(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha")}
    t = toks["alpha"]
    envfile = tmp_dir / "gateway.env"
    envfile.write_text("# test\nMCP_CONTAINER_ROUTE_GENERATION=gen-1\n")
    g = instance_gateway_factory(tmp_dir / "state", env=env_for(toks, SERENA_STOP_GRACE="3s",
                                                                 MCP_CONTAINER_ROUTE_GENERATION="gen-env"),
                                 args=["--env-file", str(envfile)])
    assert g.health()["route_generation"] == "gen-1", "the env file overrides the environment"
    sid = session_and_echo(g, t, "gen-1")
    p1, st1 = wait_pidfile(g, "gen-1:alpha")
    long = LongCall(g.port, t, sid, 7, 3)
    wait_in_flight(g, t)
    tmp = envfile.with_suffix(".tmp")
    tmp.write_text("MCP_CONTAINER_ROUTE_GENERATION=gen-2\n")
    tmp.replace(envfile)
    os.kill(g.proc.pid, signal.SIGHUP)
    g.wait_log(lambda s: "generation gen-2 (changed)" in s, "SIGHUP reload with the new generation")
    # The request started before the change finishes on the old instance, and the gateway lives on.
    long.finish()
    peers.wait_until(lambda: "instance stopping: generation changed" in g.log_text() or not g.proc.alive(),
                     "the old instance to start draining", None, guard=GUARD)
    assert g.proc.alive(), ("the gateway died when a draining instance's last POST ended:\n"
                            + g.log_text()[-1500:])
    assert "Long running operation completed" in long.result_text()
    g.wait_log(lambda s: "route=gen-1:alpha instance stopping: generation changed" in s,
               "the old instance to drain")
    wait_stopped(g, "gen-1:alpha", p1, st1, "the old generation's backend to exit")
    # New requests get a fresh backend on the new route.
    doc = g.status(t)
    assert doc["route"] == "gen-2:alpha", doc
    sid2 = session_and_echo(g, t, "gen-2")
    assert sid2 != sid
    p2, st2 = wait_pidfile(g, "gen-2:alpha")
    assert p2 != p1
    assert [pid for _, pid in g.starts("gen-2:alpha")] == [p2]
    assert len(g.starts("gen-1:alpha")) == 1
    assert g.health()["route_generation"] == "gen-2"
    assert g.health()["instances"]["running"] == 1


def test_generation_change_drains_idle_instance_at_once(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha")}
    envfile = tmp_dir / "gateway.env"
    envfile.write_text("MCP_CONTAINER_ROUTE_GENERATION=gen-1\n")
    g = instance_gateway_factory(tmp_dir / "state", env=env_for(toks, SERENA_STOP_GRACE="3s"),
                                 args=["--env-file", str(envfile)])
    session_and_echo(g, toks["alpha"], "gen-1")
    p1, st1 = wait_pidfile(g, "gen-1:alpha")
    envfile.write_text("MCP_CONTAINER_ROUTE_GENERATION=gen-2\n")
    os.kill(g.proc.pid, signal.SIGHUP)
    # No request at all: the idle old-generation instance stops by itself.
    wait_stopped(g, "gen-1:alpha", p1, st1, "the idle old-generation backend to exit")
    g.wait_log(lambda s: "route=gen-1:alpha instance stopping: generation changed" in s, "drain log")
    g.wait_log(lambda s: "route=gen-1:alpha instance stopped" in s, "the old instance stopped")
    assert g.health()["instances"]["running"] == 0
    assert g.status(toks["alpha"]) == {"route": "gen-2:alpha", "mode": "instances", "instance": None}


# ---------------------------------------------------------------------------------------------
# 7, 8: crash and restart; crash loop


def test_crash_under_a_request_then_restart(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha")}
    t = toks["alpha"]
    g = instance_gateway_factory(tmp_dir / "state", env=env_for(toks))
    sid = session_and_echo(g, t, "before crash")
    pid, st = wait_pidfile(g, "gen-1:alpha")
    long = LongCall(g.port, t, sid, 7, 20)
    wait_in_flight(g, t)
    os.kill(pid, signal.SIGKILL)
    long.finish()
    # Either a 502 with a JSON-RPC error (no head sent yet) or a stream that ends without the
    # result; never the result, and never a hang.
    if long.resp is not None and long.resp.status != 200:
        assert long.resp.status == 502, long.resp
        err = jsonrpc_error(long.resp)
        assert long.resp.json().get("id") == 7
        assert "gateway" in err["message"].lower(), err  # says who answered, not a bare code
    elif long.resp is not None:
        assert not [m for m in body_messages(long.resp) if m.get("id") == 7 and "result" in m], long.resp
    else:
        assert long.error is not None
    assert peers.health_ok(g.port) and g.proc.alive(), "the gateway did not survive a backend crash"
    doc = peers.wait_until(lambda: (s := g.status(t))["instance"]["restarts"] >= 1 and s,
                           "the crash in /status", g.proc, guard=GUARD)
    assert doc["instance"]["state"] == "asleep", doc
    assert "exited unexpectedly" in doc["instance"]["last_error"] and "signal 9" in doc["instance"]["last_error"], doc
    assert g.pidfile("gen-1:alpha") is None, "pid file left after a crash"
    g.wait_log(lambda s: re.search(r"route=gen-1:alpha instance exited unexpectedly", s), "crash log line")
    # The next request starts it again (the old session is gone with the process).
    sid2 = session_and_echo(g, t, "after crash")
    assert sid2 != sid
    p2, _ = wait_pidfile(g, "gen-1:alpha")
    assert p2 != pid
    doc = g.status(t)
    assert doc["instance"]["state"] == "idle" and doc["instance"]["restarts"] == 1, doc
    assert g.health()["status"] == "ok", g.health()


def port_open(port: int) -> bool:
    try:
        socket.create_connection((peers.HOST, port), timeout=1).close()
        return True
    except OSError:
        return False


def test_request_right_after_a_backend_died_is_sent_again(instance_gateway_factory, tmp_dir):
    """A request that reaches the gateway in the moment after its backend died (nothing listens
    on the port, the gateway has not yet seen the exit) was never sent: it waits for the restarted
    backend and succeeds in the same session, instead of a 502."""
    toks = {"alpha": new_token("alpha")}
    t = toks["alpha"]
    g = instance_gateway_factory(tmp_dir / "state", env=env_for(toks))
    sid = session_and_echo(g, t, "before")
    for k in range(2):  # three crashes within 60 s would start the crash-loop cool-down
        pid, st = wait_pidfile(g, "gen-1:alpha")
        port = g.status(t)["instance"]["port"]
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, st, "the killed backend to die")
        # Until its port refuses connections (a dying listener may still take one in); the
        # gateway may or may not have seen the exit by now: either way the call must work.
        peers.wait_until(lambda: not port_open(port), "the dead backend's port to refuse", None, guard=GUARD)
        echo(g.port, t, sid, 10 + k, f"right after crash {k}")
    assert g.status(t)["instance"]["restarts"] == 2
    assert peers.health_ok(g.port) and g.proc.alive()


def test_crash_loop_cools_down(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha"), "bravo": new_token("bravo")}
    t = toks["alpha"]
    g = instance_gateway_factory(tmp_dir / "state", backend_cmd='sh -c "exit 3"', env=env_for(toks))
    answers = []
    for i in range(3):
        r = request(g.port, "POST", "/mcp", init_body(rid=i + 1), mcp_headers(t), timeout=60)
        assert r.status in (502, 503), r
        jsonrpc_error(r)
        assert r.json().get("id") == i + 1
        answers.append(r)
    assert answers[0].status == 502 and "exit code 3" in jsonrpc_error(answers[0])["message"], answers[0]
    # Three quick crashes: the gateway stops trying and says why.
    r = request(g.port, "POST", "/mcp", init_body(rid=9), mcp_headers(t))
    assert r.status == 503, r
    assert (r.header("retry-after") or "").strip().isdigit(), r
    msg = jsonrpc_error(r)["message"]
    assert "keeps crashing" in msg and "exit code 3" in msg, msg
    assert len(g.starts("gen-1:alpha")) == 3, "the gateway kept starting a crash-looping backend"
    g.wait_log(lambda s: "route=gen-1:alpha crash loop" in s, "crash loop log line")
    h = g.health()
    assert h["status"] == "degraded" and h["instances"]["failed"] == 1, h
    doc = g.status(t)
    assert doc["instance"]["state"] == "failed" and doc["instance"]["restarts"] == 3, doc
    assert str(g.route_dir("gen-1:alpha") / "backend.log") in doc["instance"]["last_error"], doc
    # Another token is not affected by alpha's cool-down (its backend crashes on its own).
    rb = request(g.port, "POST", "/mcp", init_body(rid=1), mcp_headers(toks["bravo"]), timeout=60)
    assert rb.status == 502, rb
    assert len(g.starts("gen-1:bravo")) == 1


# ---------------------------------------------------------------------------------------------
# 9: a backend that never answers


def test_start_timeout_is_503_naming_the_log(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha")}
    t = toks["alpha"]
    g = instance_gateway_factory(tmp_dir / "state", backend_cmd="sleep 600", env=env_for(toks),
                                 args=["--start-timeout", "2s", "--stop-grace", "2s"])
    r = request(g.port, "POST", "/mcp", init_body(rid=4), mcp_headers(t), timeout=60)
    assert r.status == 503, r
    assert (r.header("retry-after") or "").strip().isdigit(), r
    err = jsonrpc_error(r)
    log_path = str(g.route_dir("gen-1:alpha") / "backend.log")
    assert log_path in err["message"], err
    assert r.json().get("id") == 4
    (_, pid), = g.starts("gen-1:alpha")
    peers.wait_until(lambda: not peers.proc_running(pid), "the never-ready backend to be killed", g.proc, guard=GUARD)
    peers.wait_until(lambda: g.pidfile("gen-1:alpha") is None, "its pid file removed", g.proc, guard=GUARD)
    doc = g.status(t)
    assert doc["instance"]["state"] in ("asleep", "failed"), doc
    assert log_path in (doc["instance"]["last_error"] or ""), doc
    h = g.health()
    assert h["instances"]["running"] == 0 and h["instances"]["starting"] == 0, h


# ---------------------------------------------------------------------------------------------
# 10, 11: no orphans, whatever way the gateway ends


def test_gateway_sigkill_takes_backends_along(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha"), "bravo": new_token("bravo")}
    state = tmp_dir / "state"
    g = instance_gateway_factory(state, env=env_for(toks))
    session_and_echo(g, toks["alpha"], "a")
    session_and_echo(g, toks["bravo"], "b")
    recs = [wait_pidfile(g, "gen-1:alpha"), wait_pidfile(g, "gen-1:bravo")]
    os.kill(g.proc.pid, signal.SIGKILL)
    g.proc.wait()
    for pid, st in recs:
        wait_gone(pid, st, f"backend {pid} to die with its gateway")
    # The pid files are left behind (nobody removed them); a new gateway on the same state dir
    # clears them and serves. (Whether it logs them as killed depends on whether PID 1 has
    # reaped the dead backends yet: see test_reap_does_not_claim_to_kill_a_dead_process.)
    assert all(g.pidfile(r) for r in ("gen-1:alpha", "gen-1:bravo"))
    g2 = instance_gateway_factory(state, env=env_for(toks), name="inst-after")
    assert not list(state.glob("routes/*/pid")), "stale pid files survived a restart"
    session_and_echo(g2, toks["alpha"], "a again")
    p2, _ = wait_pidfile(g2, "gen-1:alpha")
    assert p2 not in [pid for pid, _ in recs]


def test_gateway_sigkill_takes_grandchildren_along(instance_gateway_factory, tmp_dir):
    """A backend's own children (Serena's language servers) are not the gateway's children: the
    backend's wrapper kills the whole process group when the gateway dies, even by SIGKILL."""
    toks = {"alpha": new_token("alpha")}
    state = tmp_dir / "state"
    cmd = ("sh -c 'sleep 600 & echo $! > \"$HOME/grandchild.pid\"; "
           f"exec {peers.EVERYTHING_BACKEND_CMD}'")
    g = instance_gateway_factory(state, backend_cmd=cmd, env=env_for(toks))
    session_and_echo(g, toks["alpha"], "a")
    pid, st = wait_pidfile(g, "gen-1:alpha")
    gc_file = next(state.glob("routes/*/home/grandchild.pid"))
    gc = int(gc_file.read_text())
    gc_st = peers.proc_starttime(gc)
    assert gc_st and peers.proc_running(gc, gc_st)
    os.kill(g.proc.pid, signal.SIGKILL)
    g.proc.wait()
    wait_gone(pid, st, f"backend {pid} to die with its gateway")
    wait_gone(gc, gc_st, f"the backend's child {gc} to die with the gateway")


def test_reap_does_not_claim_to_kill_a_dead_process(instance_gateway_factory, tmp_dir):
    """A backend that died with its gateway stays a zombie until PID 1 reaps it; its /proc entry
    (with the recorded start time) is still there. Reaping must see it is dead, not "kill" it
    and report an orphan that was never running."""
    state = tmp_dir / "state"
    dead = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        st = peers.wait_until(lambda: peers.proc_starttime(dead.pid), "sleep's /proc entry", None)
        os.kill(dead.pid, signal.SIGKILL)
        # Not waited for yet: a zombie, exactly like a backend whose reaper has not run.
        peers.wait_until(lambda: not peers.proc_running(dead.pid), "the process to become a zombie", None)
        assert peers.proc_starttime(dead.pid) == st
        d = state / "routes" / "00000000deadbeef"
        d.mkdir(parents=True)
        (d / "pid").write_text(f"{dead.pid} {st}\n")
        g = instance_gateway_factory(state, env=env_for({"alpha": new_token("alpha")}))
        assert not (d / "pid").exists(), "the stale pid file was not cleared"
        assert "orphaned" not in g.log_text(), (
            "the gateway reported killing an orphan that was already dead (a zombie): "
            + "".join(l for l in g.log_text().splitlines(True) if "orphan" in l))
    finally:
        dead.wait(GUARD)


def test_gateway_reaps_recorded_orphans_only(instance_gateway_factory, run_dir, tmp_dir):
    state = tmp_dir / "state"
    orphan = peers.Proc("orphan", ["sleep", "600"], tmp_dir / "orphan.log")
    stranger = peers.Proc("stranger", ["sleep", "600"], tmp_dir / "stranger.log")
    try:
        for p, name, delta in ((orphan, "0123456789abcdef", 0), (stranger, "fedcba9876543210", 1)):
            st = peers.wait_until(lambda: peers.proc_starttime(p.pid), "sleep's /proc entry", p)
            d = state / "routes" / name
            d.mkdir(parents=True)
            (d / "pid").write_text(f"{p.pid} {st + delta}\n")
        g = instance_gateway_factory(state, env=env_for({"alpha": new_token("alpha")}))
        # The recorded process (right start time) is killed before the gateway serves.
        assert orphan.wait(GUARD) == -signal.SIGKILL
        assert re.search(rf"orphaned backend pid {orphan.pid}\b", g.log_text()), g.log_text()[-2000:]
        assert "reaped 1 orphaned" in g.log_text()
        # A pid whose start time does not match is someone else's process: left alone.
        assert stranger.alive() and peers.proc_running(stranger.pid)
        assert f"pid {stranger.pid}" not in g.log_text()
        assert not list(state.glob("routes/*/pid"))
        assert peers.health_ok(g.port)
    finally:
        orphan.stop()
        stranger.stop()


def test_sigterm_stops_backends_and_exits_0(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha"), "bravo": new_token("bravo")}
    state = tmp_dir / "state"
    g = instance_gateway_factory(state, env=env_for(toks, SERENA_STOP_GRACE="5s"))
    session_and_echo(g, toks["alpha"], "a")
    session_and_echo(g, toks["bravo"], "b")
    recs = [wait_pidfile(g, "gen-1:alpha"), wait_pidfile(g, "gen-1:bravo")]
    os.kill(g.proc.pid, signal.SIGTERM)
    assert g.proc.wait(60) == 0, g.log_text()[-3000:]
    for pid, st in recs:
        assert not peers.proc_running(pid, st), f"backend {pid} outlived the gateway"
    assert not list(state.glob("routes/*/pid")), "pid files left after a clean exit"
    text = g.log_text()
    assert text.count("instance stopping: gateway shutting down") == 2, text[-3000:]
    assert text.count("instance stopped") == 2, text[-3000:]
