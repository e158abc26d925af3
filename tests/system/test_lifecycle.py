"""Gateway life cycle: one gateway per state directory, and SIGTERM with idle streams open.

- A second `serve` (or `run`) on a state directory a live gateway holds exits 2 naming that
  gateway (pid, listen address) and touches nothing: the first one's backends keep running and
  it keeps serving the same sessions.
- The lock goes with its holder, however it ends (SIGTERM, or SIGKILL: the kernel drops a flock
  when the process dies): the next gateway on the directory starts and serves.
- With --upstream the state directory is never used, so no lock is taken.
- SIGTERM closes an idle client's open GET /mcp stream at once instead of draining it for the
  whole --drain-timeout.

Timeouts here are hang guards only; nothing asserts how long something took.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading

import pytest

import peers
from peers import Stream, mcp_headers, new_token, open_session, request, rpc

GUARD = 30.0  # hang guard for polls (seconds)


def env_for(toks: dict, **extra) -> dict:
    env = {"API_TOKENS_JSON": json.dumps(toks)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def echo(port: int, token: str, sid: str, rid: int, text: str) -> None:
    r = request(port, "POST", "/mcp", rpc(rid, "tools/call", {"name": "echo", "arguments": {"message": text}}),
                mcp_headers(token, sid))
    assert r.status == 200, r
    got = [m for m in peers.body_messages(r) if m.get("id") == rid]
    assert got and "result" in got[0], r
    assert "".join(c.get("text", "") for c in got[0]["result"]["content"]) == f"Echo: {text}", got[0]


def wait_pidfile(g, route: str) -> tuple[int, int]:
    rec = peers.wait_until(lambda: g.pidfile(route), f"pid file of {route}", g.proc, guard=GUARD)
    assert peers.proc_running(*rec), f"pid file of {route} names a process that is not running: {rec}"
    return rec


def contender(role: str, state, toks: dict, port: int) -> subprocess.CompletedProcess:
    """A second gateway on the same state directory, run to completion (it must not start)."""
    env = dict(os.environ)
    for k in peers.INSTANCE_SETTINGS + ("API_TOKEN", "API_TOKENS_FILE", "MCP_CONTAINER_ROUTE_GENERATION",
                                        "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env.pop(k, None)
    env["API_TOKENS_JSON"] = json.dumps(toks)
    argv = [peers.gateway_bin(), role, "--listen", f"{peers.HOST}:{port}", "--state-dir", state,
            "--backend-cmd", peers.EVERYTHING_BACKEND_CMD]
    p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        out, err = p.communicate(timeout=GUARD)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise AssertionError(f"a second `{role}` on a held state directory kept running:\n{err.decode()[-3000:]}")
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # anything it might have started
        except (ProcessLookupError, PermissionError):
            pass
    return subprocess.CompletedProcess(argv, p.returncode, out.decode(errors="replace"),
                                       err.decode(errors="replace"))


def lock_record(state) -> dict:
    text = (state / "gateway.lock").read_text()
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


# ---------------------------------------------------------------------------------------------
# One gateway per state directory


@pytest.mark.parametrize("role", ["serve", "run"])
def test_second_gateway_on_held_state_dir_exits_and_kills_nothing(instance_gateway_factory, tmp_dir, role):
    toks = {"alpha": new_token("alpha")}
    t = toks["alpha"]
    state = tmp_dir / "state"
    g = instance_gateway_factory(state, env=env_for(toks))
    sid = open_session(g.port, t)
    echo(g.port, t, sid, 2, "before")
    pid, st = wait_pidfile(g, "gen-1:alpha")
    rec = lock_record(state)
    assert rec == {"pid": str(g.proc.pid), "listen": f"{peers.HOST}:{g.port}"}, rec
    assert oct((state / "gateway.lock").stat().st_mode & 0o777) == "0o600"

    port2 = peers.free_port()
    res = contender(role, state, toks, port2)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert f"pid {g.proc.pid}" in res.stderr and f"{peers.HOST}:{g.port}" in res.stderr, res.stderr
    assert "--state-dir" in res.stderr, f"the message does not say what to do: {res.stderr}"
    assert "orphan" not in res.stderr and "listening on http" not in res.stderr, res.stderr
    assert t not in res.stderr + res.stdout, "a token was printed"
    with pytest.raises(OSError):
        request(port2, "GET", "/health", None, {}, timeout=2)

    # Nothing of the first gateway's was touched: same backend, same pid file, same session.
    assert peers.proc_running(pid, st), "the second gateway killed the first one's backend"
    assert g.pidfile("gen-1:alpha") == (pid, st)
    assert g.proc.alive() and peers.health_ok(g.port)
    echo(g.port, t, sid, 3, "after")
    assert lock_record(state) == rec, "the second gateway rewrote the holder's lock record"
    assert "orphaned" not in g.log_text()
    assert len(g.starts("gen-1:alpha")) == 1


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_next_gateway_starts_once_the_holder_is_gone(instance_gateway_factory, tmp_dir, how):
    toks = {"alpha": new_token("alpha")}
    t = toks["alpha"]
    state = tmp_dir / "state"
    g = instance_gateway_factory(state, env=env_for(toks, SERENA_STOP_GRACE="5s"))
    sid = open_session(g.port, t)
    echo(g.port, t, sid, 2, "first")
    pid, st = wait_pidfile(g, "gen-1:alpha")
    os.kill(g.proc.pid, how)
    rc = g.proc.wait(60)
    assert rc == (0 if how == signal.SIGTERM else -signal.SIGKILL), (rc, g.log_text()[-3000:])
    # SIGKILL: the backend dies with its gateway (PR_SET_PDEATHSIG); SIGTERM: it was stopped.
    peers.wait_until(lambda: not peers.proc_running(pid, st), "the first gateway's backend to die", None,
                     guard=GUARD)

    g2 = instance_gateway_factory(state, env=env_for(toks), name="inst-next")
    assert lock_record(state) == {"pid": str(g2.proc.pid), "listen": f"{peers.HOST}:{g2.port}"}
    assert not any(pf.exists() and peers.read_pidfile(pf)[0] == pid for pf in state.glob("routes/*/pid"))
    sid2 = open_session(g2.port, t)
    echo(g2.port, t, sid2, 2, "second")
    pid2, st2 = wait_pidfile(g2, "gen-1:alpha")
    assert (pid2, st2) != (pid, st)


def test_upstream_mode_takes_no_lock(gateway_factory, everything, tmp_dir):
    """--upstream never uses the state directory for instances: no lock, two gateways side by side."""
    state = tmp_dir / "unused-state"
    toks = {"alpha": new_token("alpha")}
    args = ["--state-dir", str(state)]
    g1 = gateway_factory(everything.port, env={"API_TOKENS_JSON": json.dumps(toks)}, args=args, name="up1")
    g2 = gateway_factory(everything.port, env={"API_TOKENS_JSON": json.dumps(toks)}, args=args, name="up2")
    assert g1.proc.alive() and g2.proc.alive()
    assert peers.health_ok(g1.port) and peers.health_ok(g2.port)
    assert not (state / "gateway.lock").exists(), "an --upstream gateway locked the state directory"


# ---------------------------------------------------------------------------------------------
# SIGTERM: idle streams are closed at once, only real requests are drained


def test_sigterm_closes_an_idle_get_stream_at_once(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha")}
    t = toks["alpha"]
    state = tmp_dir / "state"
    drain_timeout = 30
    exit_guard = 10.0  # well under the drain timeout: waiting for the idle stream would overrun it
    g = instance_gateway_factory(state, env=env_for(toks, SERENA_STOP_GRACE="3s"),
                                 args=["--drain-timeout", f"{drain_timeout}s"])
    sid = open_session(g.port, t)
    echo(g.port, t, sid, 2, "hello")
    # An idle client: its GET stream for server notifications is open, nothing else is in flight.
    stream = Stream(g.port, "GET", "/mcp", None, mcp_headers(t, sid, accept="text/event-stream"))
    assert stream.status == 200 and (stream.header("content-type") or "").startswith("text/event-stream")
    outcome: dict = {}

    def read_all():
        try:
            outcome["body"] = stream.read_rest()  # IncompleteRead if cut instead of ended
        except (OSError, http.client.HTTPException) as e:
            outcome["error"] = e

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    os.kill(g.proc.pid, signal.SIGTERM)
    try:
        rc = g.proc.wait(exit_guard)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"SIGTERM with one idle GET stream open: the gateway was still draining after "
                             f"the {exit_guard}s guard (drain timeout {drain_timeout}s)\n{g.log_text()[-3000:]}")
    finally:
        reader.join(GUARD)
        stream.close()
    assert rc == 0, g.log_text()[-3000:]
    assert not reader.is_alive(), "the GET stream stayed open after the gateway exited"
    assert "error" not in outcome, f"the GET stream was cut, not ended: {outcome['error']!r}"
    assert "drain timeout" not in g.log_text(), g.log_text()[-3000:]
