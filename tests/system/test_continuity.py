"""Continuity: one client session survives everything that ends the backend's session.

The gateway hands each client its own session id (`sr1.` + a sealed string) and maps it to the
current backend session. Whatever ends that backend session — the instance slept, Serena or its
pyright was killed, the gateway restarted on the same state dir, the route generation changed —
the next request re-initializes a backend with the client's recorded initialize params and the
project the client activated, and succeeds. The client never sees a 404, never re-initializes,
and its session id never changes.

What is proven, with real clients and real processes on 127.0.0.1:
- test_one_session_survives_everything[ts|py|mcp-remote] (real Serena, marked `serena`): ONE
  client session (the TypeScript SDK, the Python SDK, and one mcp-remote process as a stdio bridge)
  calls activate_project once, then after each of sleep, kill -9 of Serena, kill -9 of pyright,
  SIGTERM + restart of the gateway (same state dir and port), and a generation change (env file +
  SIGHUP) runs find_symbol and find_referencing_symbols successfully, without activate_project,
  with the same session id. The SDK clients report every session id they sent or received and
  every initialize they POSTed; for mcp-remote (whose session id is internal) the proof is the
  gateway's request log (no new initialize, no error status for the route) and mcp-remote's own
  log (it says when it re-initializes behind its client's back).
- test_idle_get_stream_lets_the_instance_sleep[ts|py] (server-everything backend): a connected
  client whose SDK holds the standalone GET stream open lets its instance sleep; the instance
  stays asleep (no backend process, no new start) while the stream stays open; the next call
  wakes it in the same session; SIGTERM with that idle client connected exits 0 without waiting
  for the stream (a 30 s drain timeout against a 10 s hang guard).
- test_backend_killed_mid_call_fails_the_call[raw|ts|py] (server-everything): a backend killed
  during a 30 s tool call ends the client's response stream with a JSON-RPC error for that
  request id, well inside a 15 s hang guard (the clients' own timeout is 60 s); the next call in
  the same session works on a new backend.
- test_foreign_session_ids_are_404 (stubs/recording_backend.mjs as the per-route backend, which
  logs every request it gets): forged `sr1.` ids, a tampered real id, alice's id with bob's
  token, the backend's own session id and plain garbage get 404 with a JSON-RPC error body on
  POST, GET and DELETE; none of those requests reaches a backend, bob's backend is never started,
  and alice's session still works afterwards.
- test_deleted_session_is_404 (server-everything): after DELETE, the id gets 404 everywhere.

Every wait is a poll with a hang guard; nothing asserts how long anything took (the two 10-15 s
guards above are hang guards against 30-60 s alternatives, not timings).

Run: .venv/bin/python -m pytest tests/system/test_continuity.py -q -x (about 2.5 minutes; the
Serena scenario alone: -m serena, the rest: -m "not serena"). conftest.py keeps only the newest
five run directories under tests/system/.tmp, so when other runs share the machine give this one
its own base (SR_TEST_TMP=/tmp/somewhere): otherwise a concurrent run may delete the state dir
under a running Serena.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import peers
import test_serena as ts
from peers import Stream, body_messages, mcp_headers, new_token, open_session, request, rpc
from test_serena import serena_install  # noqa: F401 - the session fixture (runs scripts/serena.sh)

SESSION_TS = peers.CLIENTS / "session_client.mjs"
SESSION_PY = peers.CLIENTS / "session_client.py"
PYTHON = peers.ROOT / ".venv" / "bin" / "python"
RECORDING_BACKEND = peers.HERE / "stubs" / "recording_backend.mjs"

GUARD = 120.0  # hang guard for one Serena call (a cold start and the first semantic call)
POLL_GUARD = 60.0  # hang guard for polls on processes and states
KILL_GUARD = 15.0  # a killed backend's pending call must fail inside this (the client waits 60 s)
SIGTERM_GUARD = 10.0  # SIGTERM with idle clients must not wait for them (drain timeout: 30 s)
FIND = {"name_path_pattern": "greet", "include_body": True}
REFS = {"name_path": "greet", "relative_path": "lib.py"}
LONG = "trigger-long-running-operation"
HTTP_ERRORS = (http.client.HTTPException, ConnectionError)  # a response stream cut short


# ---------------------------------------------------------------------------------------------
# clients


class SessionClient:
    """clients/session_client.mjs or .py: connects once, then runs JSON commands from stdin."""

    def __init__(self, kind: str, url: str, token: str, log_path: Path):
        argv = {"ts": ["node", SESSION_TS], "py": [PYTHON, SESSION_PY]}[kind] + [url, token]
        env = dict(os.environ)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
            env.pop(k, None)
        env.update({"NO_PROXY": "*", "SR_CLIENT_GUARD_MS": str(int(GUARD * 1000)), "SR_CLIENT_GUARD_S": str(GUARD)})
        self.kind = kind
        self.log_path = log_path
        self._err = open(log_path, "ab")
        self.p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self._err, env=env, start_new_session=True)
        self.lines: list[dict] = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self._tag = 0
        self.sid0: str | None = None

    def _read(self):
        for raw in self.p.stdout:
            try:
                m = json.loads(raw)
            except ValueError:
                continue
            with self.cond:
                self.lines.append(m)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def _why_dead(self) -> str:
        ends = [m for m in self.lines if m.get("event") in ("fatal", "connect-failed", "lifetime-guard", "closed")]
        return (f"{self.kind} client exited (rc {self.p.poll()}); its last words: {ends[-1:] or self.lines[-1:]}\n"
                f"stderr:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def wait_line(self, pred, what: str, guard: float = GUARD) -> dict:
        deadline = time.monotonic() + guard
        with self.cond:
            while True:
                for m in self.lines:
                    if pred(m):
                        return m
                if not self.reader.is_alive():
                    raise AssertionError(f"no {what}: {self._why_dead()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within the {guard:.0f} s guard (client still running; "
                                         f"last line: {self.lines[-1:]})")
                self.cond.wait(min(left, 0.2))

    def send(self, cmd: dict) -> object:
        self._tag += 1
        cmd = {"tag": self._tag, **cmd}
        self.p.stdin.write((json.dumps(cmd) + "\n").encode())
        self.p.stdin.flush()
        return cmd["tag"]

    def connect(self) -> str:
        m = self.wait_line(lambda m: m.get("event") in ("connected", "connect-failed", "fatal"), "connect result")
        assert m["event"] == "connected", f"{self.kind} client could not connect: {m}"
        self.sid0 = m["sessionId"]
        assert self.sid0, m
        return self.sid0

    def result(self, tag, guard: float = GUARD) -> dict:
        return self.wait_line(lambda m: m.get("tag") == tag, f"answer to command {tag}", guard)

    def tool(self, name: str, args: dict, timeout_ms: int | None = None, guard: float = GUARD) -> dict:
        tag = self.send({"tool": name, "args": args, **({"timeout_ms": timeout_ms} if timeout_ms else {})})
        return self.result(tag, guard)

    def call(self, name: str, args: dict) -> dict:
        """A tool call that must get a tools/call result: {isError, text}."""
        m = self.tool(name, args)
        assert m["ok"], f"{self.kind} client: {name} failed: {m.get('error')} (code {m.get('code')}); " \
                        f"non-2xx seen: {m.get('notOk')}; GET streams: {m.get('gets')}"
        return {"isError": m["isError"], "text": m["text"]}

    def state(self) -> dict:
        return self.result(self.send({"op": "state"}))

    def assert_same_session(self, where: str) -> None:
        s = self.state()
        problems = []
        if s["sessionId"] != self.sid0:
            problems.append(f"session id now {s['sessionId']!r}, was {self.sid0!r}")
        if s["initializes"] != 1:
            problems.append(f"{s['initializes']} initialize requests sent")
        if s["sessionIdsReceived"] not in ([self.sid0], []) or s["sessionIdsSent"] not in ([self.sid0], []):
            problems.append(f"session ids received {s['sessionIdsReceived']}, sent {s['sessionIdsSent']}")
        if s["notOk"]:
            problems.append(f"non-2xx answers seen by the client: {s['notOk']}")
        assert not problems, f"{self.kind} client, {where}: " + "; ".join(problems)

    def close(self) -> int | None:
        try:
            self.send({"op": "close"})
            self.p.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            rc = self.p.wait(timeout=peers.STOP_GUARD)
        except subprocess.TimeoutExpired:
            rc = None
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.p.wait()
        self.reader.join(5)
        self._err.close()
        return rc


class RemoteClient:
    """One mcp-remote process for a whole scenario, driven with raw JSON-RPC lines (the
    test_serena.McpRemote driver). Its session id stays inside it: the session is judged by
    its log (it logs when it re-initializes on its own) and by the gateway's request log."""

    REINIT = re.compile(r"session expired|re-initializ|reinitializ|SSE stream reconnected", re.I)

    def __init__(self, url: str, token: str, tmp_dir: Path):
        conf = tmp_dir / "mcp-auth"
        conf.mkdir(exist_ok=True)
        self.kind = "mcp-remote"
        self.mr = ts.McpRemote(url, token, conf, tmp_dir / "mcp-remote.log")
        self.rid = 1
        self.sid0 = None

    def connect(self) -> None:
        self.mr.send(peers.init_body(rid=1))
        init = self.mr.wait_for(1)
        assert "result" in init, f"mcp-remote: initialize failed: {init}"
        self.mr.send(peers.INITIALIZED)
        return None

    def call(self, name: str, args: dict) -> dict:
        self.rid += 1
        return self.mr.call(self.rid, name, args)

    def assert_same_session(self, where: str) -> None:
        text = self.mr.log_path.read_text(errors="replace")
        bad = [line for line in text.splitlines() if self.REINIT.search(line)]
        assert not bad, f"mcp-remote, {where}: it re-established its session itself: {bad[:5]}"

    def close(self) -> int | None:
        return self.mr.close()


def open_client(kind: str, url: str, token: str, tmp_dir: Path):
    if kind == "mcp-remote":
        return RemoteClient(url, token, tmp_dir)
    return SessionClient(kind, url, token, tmp_dir / f"client-{kind}.log")


# ---------------------------------------------------------------------------------------------
# gateways and processes


def log_of(g: peers.Gateway) -> str:
    """A gateway's request log, also after it was stopped (Proc.log_text needs an open file)."""
    try:
        return Path(g.log_path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


MCP_LINE = re.compile(r"route=(\S+) (POST|GET|DELETE) /mcp rpc=(\S+) status=(\d+)")


def mcp_lines(gws: list, name: str) -> list[tuple[str, str, str, int]]:
    """(route, method, rpc, status) of every /mcp request logged for the token named name."""
    out = []
    for g in gws:
        for m in MCP_LINE.finditer(log_of(g)):
            if m.group(1).endswith(f":{name}"):
                out.append((m.group(1), m.group(2), m.group(3), int(m.group(4))))
    return out


def write_env(path: Path, generation: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"# test_continuity\nMCP_CONTAINER_ROUTE_GENERATION={generation}\n")
    tmp.replace(path)


def start_serena_gw(run_dir: Path, state_dir: Path, toks: dict, install: dict, env: dict, args: list,
                    port: int, name: str) -> peers.InstanceGateway:
    """test_serena.start_serena_gateway with a given port and extra arguments (a restart must
    come back on the same port, and the generation comes from --env-file)."""
    log = run_dir / f"gateway-{name}-{port}.log"
    peers.GATEWAY_LOGS.append(log)
    peers.GATEWAY_LOGS.append(run_dir / f"gateway-{name}-{port}.stdout")
    genv = {"API_TOKEN": None, "API_TOKENS_FILE": None, "MCP_CONTAINER_ROUTE_GENERATION": None,
            "ALLOWED_ORIGINS": None, "SERENA_ALLOW_SHELL": None, "SERENA_SANDBOX": None}
    genv.update({k: None for k in peers.INSTANCE_SETTINGS})
    genv["API_TOKENS_JSON"] = json.dumps(toks)
    genv["PATH"] = f"{Path(install['serena']).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    genv["SERENA_TOOLS_DIR"] = install["tools_dir"]
    genv.update(env)
    argv = [peers.gateway_bin(), "serve", "--listen", f"{peers.HOST}:{port}", "--state-dir", state_dir, *args]
    proc = peers.Proc(name, argv, log, env=genv, stdout_path=run_dir / f"gateway-{name}-{port}.stdout")
    try:
        peers.wait_until(lambda: peers.health_ok(port), f"gateway {name} /health on {port}", proc)
    except BaseException:
        proc.stop()
        raise
    return peers.InstanceGateway(proc, port, state_dir)


@pytest.fixture
def serena_gws(run_dir, gateway_bin, serena_install):  # noqa: F811 - serena_install is the fixture
    """Starts Serena-backed gateways; teardown stops them and requires that no process started
    for their state dirs (Serena, pyright) outlived them (leftovers are killed, the test fails)."""
    started: list[peers.InstanceGateway] = []

    def start(state_dir: Path, toks: dict, env: dict, args: list, port: int, name: str):
        g = start_serena_gw(run_dir, state_dir, toks, serena_install, env, args, port, name)
        started.append(g)
        return g

    start.started = started
    yield start
    for g in started:
        g.stop()
    leftovers = []
    for d in {g.state_dir for g in started}:
        try:
            peers.wait_until(lambda: not ts.procs_referencing(d), "backends to exit", None, guard=peers.STOP_GUARD)
        except RuntimeError:
            for pid in ts.procs_referencing(d):
                leftovers.append(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    assert not leftovers, f"processes outlived their gateway: {leftovers}"


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def pyright_pids(route_dir: Path) -> list[int]:
    """pyright processes (the Node langserver) started for a route: found through /proc like
    test_serena.procs_referencing (Serena's environment, which pyright inherits, names the route)."""
    return [pid for pid in ts.procs_referencing(route_dir) if b"pyright" in cmdline(pid)]


def wait_gone(pids, what: str) -> None:
    peers.wait_until(lambda: not any(peers.proc_running(p) for p in pids), what, None, guard=POLL_GUARD)


def in_flight(g: peers.InstanceGateway, token: str) -> bool:
    inst = g.status(token)["instance"]
    return bool(inst) and inst.get("requests_in_flight", 0) >= 1


def jsonrpc_error(r: peers.Resp) -> dict:
    ct = (r.header("content-type") or "").lower()
    assert ct.startswith("application/json"), f"error reply is not JSON: {r!r}"
    b = r.json()
    assert b.get("jsonrpc") == "2.0" and isinstance(b.get("error"), dict), b
    assert isinstance(b["error"].get("code"), int) and b["error"].get("message"), b
    return b["error"]


# ---------------------------------------------------------------------------------------------
# one session across sleep, crashes, restart and a generation change (real Serena)


@pytest.mark.serena
@pytest.mark.parametrize("kind", ["ts", "py", "mcp-remote"])
def test_one_session_survives_everything(kind, serena_gws, tmp_dir):
    name = "cont"
    tok = new_token(name)
    toks = {name: tok}
    state = tmp_dir / "state"
    envfile = tmp_dir / "gateway.env"
    write_env(envfile, "gen-1")
    port = peers.free_port()
    env = {"SLEEP_AFTER": "6s", "SERENA_STOP_GRACE": "5s"}
    args = ["--env-file", str(envfile)]
    g = serena_gws(state, toks, env, args, port, f"cont-{kind}")
    gws = [g]
    project = ts.project_copy(tmp_dir / "proj")
    client = open_client(kind, g.url, tok, tmp_dir)
    try:
        sid0 = client.connect()
        assert sid0 is None or sid0.startswith("sr1."), \
            f"{kind}: the session id the gateway handed out is not its own (no 'sr1.' prefix): {sid0!r}"
        ts.assert_activated(client.call("activate_project", {"project": str(project), "session": f"cont-{kind}"}),
                            project)
        # Everything the client sent so far is its setup; from here on, nothing it sends may be an
        # initialize, and nothing the route answers may be an error.
        setup = mcp_lines(gws, name)
        inits0 = sum(1 for line in setup if line[2] == "initialize")
        route = ts.route_of(g, name)
        rd = g.route_dir(route)

        def check(where: str) -> None:
            """find_symbol and find_referencing_symbols work, and the session is the one from the
            start; every failure found is reported together (a failed call and its cause, e.g. a
            re-initialization, are then in one message)."""
            errors = []
            for what, args, verify in (("find_symbol", FIND, ts.assert_greet), ("find_referencing_symbols", REFS,
                                                                                ts.assert_refs)):
                try:
                    verify(client.call(what, args))
                except AssertionError as e:
                    errors.append(f"{what}: {e}")
            try:
                client.assert_same_session(where)
            except AssertionError as e:
                errors.append(str(e))
            lines = mcp_lines(gws, name)[len(setup):]  # gateways in start order: setup comes first
            inits = sum(1 for line in mcp_lines(gws, name) if line[2] == "initialize")
            if inits != inits0:
                errors.append(f"the gateway's log shows {inits - inits0} more initialize from the client")
            bad = [line for line in lines if line[3] >= 400]
            if bad:
                errors.append(f"the gateway answered the client with errors: {bad}")
            if errors:
                raise AssertionError(f"[{kind}] {where}:\n  " + "\n  ".join(errors)
                                     + f"\n--- gateway log (tail):\n{log_of(gws[-1])[-3000:]}")

        def running_serena() -> tuple[int, int]:
            """The route's Serena; if the instance fell asleep meanwhile, a call wakes it."""
            rec = g.pidfile(route)
            if rec is None or not peers.proc_running(*rec):
                ts.assert_greet(client.call("find_symbol", FIND))
                rec = ts.wait_pidfile(g, route)
            ts.assert_is_serena(rec[0], rd)
            return rec

        check("right after activate_project")

        # 1. sleep: no Serena (nor pyright) is left for the route
        peers.wait_until(lambda: g.status(tok)["instance"]["state"] == "asleep", "instance asleep", g.proc,
                         guard=POLL_GUARD)
        peers.wait_until(lambda: not ts.procs_referencing(rd), "no process left for the sleeping route", g.proc,
                         guard=POLL_GUARD)
        n = len(g.starts(route))
        check("after sleep")
        assert len(g.starts(route)) == n + 1, "the call after sleep did not start a new Serena"

        # 2. kill -9 of Serena
        pid, st = running_serena()
        crashes = g.status(tok)["instance"]["restarts"]
        os.kill(pid, signal.SIGKILL)
        wait_gone([pid], "the killed Serena to die")
        # The crash as the gateway saw it: a request sent in the instant before the gateway learns
        # of the exit can meet a dying listener, which is no question of sessions (a port that
        # refuses is handled: test_instances' sent-again test).
        peers.wait_until(lambda: g.status(tok)["instance"]["restarts"] > crashes, "the gateway to see the crash",
                         g.proc, guard=POLL_GUARD)
        check("after kill -9 of Serena")
        new = ts.wait_pidfile(g, route)
        assert new != (pid, st), "still the killed Serena in the pid file"

        # 3. kill -9 of pyright
        running_serena()
        killed = peers.wait_until(lambda: pyright_pids(rd), "pyright running for the route", g.proc, guard=POLL_GUARD)
        for p in killed:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_gone(killed, "the killed pyright to die")
        check("after kill -9 of pyright")
        now = pyright_pids(rd)
        assert now and not set(now) & set(killed), f"no new pyright after the kill: killed {killed}, now {now}"

        # 4. SIGTERM + restart of the gateway on the same state dir and port
        os.kill(g.proc.pid, signal.SIGTERM)
        try:
            rc = g.proc.wait(peers.STOP_GUARD)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the gateway did not exit on SIGTERM:\n{log_of(g)[-3000:]}") from None
        assert rc == 0, f"the gateway exited {rc} on SIGTERM:\n{log_of(g)[-3000:]}"
        peers.wait_until(lambda: not ts.procs_referencing(rd), "the stopped gateway's Serena to exit", None,
                         guard=POLL_GUARD)
        g = serena_gws(state, toks, env, args, port, f"cont-{kind}-restarted")
        gws.append(g)
        check("after SIGTERM and a restart of the gateway")
        assert g.starts(route), "the restarted gateway served the call without a Serena of its own"

        # 5. generation change: env file + SIGHUP
        write_env(envfile, "gen-2")
        os.kill(g.proc.pid, signal.SIGHUP)
        g.wait_log(lambda s: "generation gen-2 (changed)" in s, "SIGHUP reload with the new generation")
        peers.wait_until(lambda: g.pidfile(route) is None and not ts.procs_referencing(rd),
                         "the old generation's instance to drain", g.proc, guard=POLL_GUARD)
        check("after a generation change")
        route2 = ts.route_of(g, name)
        assert route2 == f"gen-2:{name}", route2
        assert len(g.starts(route2)) == 1, g.starts(route2)
    finally:
        rc = client.close()
    assert rc == 0, f"{kind} client exited {rc} at the end"


# ---------------------------------------------------------------------------------------------
# (a) an idle client's GET stream neither keeps the instance awake nor wakes it


@pytest.mark.parametrize("kind", ["ts", "py"])
def test_idle_get_stream_lets_the_instance_sleep(kind, instance_gateway_factory, tmp_dir):
    tok = new_token("idle")
    g = instance_gateway_factory(tmp_dir / "state",
                                 env={"API_TOKENS_JSON": json.dumps({"idle": tok}), "SLEEP_AFTER": "2s",
                                      "SERENA_STOP_GRACE": "3s"},
                                 args=["--drain-timeout", "30s"])
    route = "gen-1:idle"
    c = SessionClient(kind, g.url, tok, tmp_dir / f"client-{kind}.log")
    try:
        sid = c.connect()
        r = c.tool("echo", {"message": "before sleep"})
        assert r["ok"] and r["text"] == "Echo: before sleep", r
        # The SDK opens the standalone GET stream by itself after initialize.
        peers.wait_until(lambda: any(x["open"] for x in c.state()["gets"]), "the client's GET stream open", None,
                         guard=POLL_GUARD)
        pid, st = ts.wait_pidfile(g, route)
        peers.wait_until(lambda: g.status(tok)["instance"]["state"] == "asleep", "instance asleep", g.proc,
                         guard=POLL_GUARD)
        wait_gone([pid], "the sleeping backend to exit")
        assert len(g.starts(route)) == 1
        # It stays asleep while the client sits there with its stream: poll for a while (several
        # SLEEP_AFTERs and the SDKs' reconnect delays), then look once more.
        hold = time.monotonic() + 6.0
        while time.monotonic() < hold:
            inst = g.status(tok)["instance"]
            assert inst["state"] == "asleep" and g.pidfile(route) is None, \
                f"the idle client woke its instance: {inst}\n{g.log_text()[-2000:]}"
            assert len(g.starts(route)) == 1, f"a backend was started for an idle client:\n{g.log_text()[-2000:]}"
            time.sleep(0.25)
        assert not ts.procs_referencing(g.route_dir(route)), "a backend process runs for the sleeping route"
        s = c.state()
        assert s["notOk"] == [], f"the client saw errors while its instance slept: {s['notOk']} {s['gets']}"
        assert len(s["gets"]) == 1 and s["gets"][0]["open"], \
            f"the client's GET stream was not kept open while the instance slept: {s['gets']}"
        # The next call wakes the instance, in the same session.
        r = c.tool("echo", {"message": "after sleep"})
        assert r["ok"] and r["text"] == "Echo: after sleep", r
        c.assert_same_session("after waking")
        assert len(g.starts(route)) == 2
        # SIGTERM while the idle client is connected: the gateway does not wait for its stream.
        os.kill(g.proc.pid, signal.SIGTERM)
        try:
            rc = g.proc.wait(SIGTERM_GUARD)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"SIGTERM with an idle client connected: no exit within the {SIGTERM_GUARD:.0f} s "
                                 f"guard (drain timeout 30 s)\n{g.log_text()[-2000:]}") from None
        assert rc == 0, g.log_text()[-2000:]
        assert sid
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# (b) a backend that dies under a tool call ends that call with a JSON-RPC error


def kill_backend(g: peers.InstanceGateway, route: str) -> int:
    pid, st = ts.wait_pidfile(g, route)
    os.kill(pid, signal.SIGKILL)
    return pid


def saw_crash(g, tok: str) -> None:
    """Until the gateway has seen its backend's crash: a request sent in the instant before can
    meet a dying listener that takes the connection and resets it (a 502 that is no question of
    sessions; a port that already refuses is handled, see test_instances)."""
    peers.wait_until(lambda: g.status(tok)["instance"]["restarts"] >= 1, "the gateway to see the crash", g.proc,
                     guard=POLL_GUARD)


@pytest.mark.parametrize("kind", ["raw", "ts", "py"])
def test_backend_killed_mid_call_fails_the_call(kind, instance_gateway_factory, tmp_dir):
    tok = new_token("crash")
    g = instance_gateway_factory(tmp_dir / "state", env={"API_TOKENS_JSON": json.dumps({"crash": tok})})
    route = "gen-1:crash"
    long_args = {"duration": 30, "steps": 30}
    if kind == "raw":
        sid = open_session(g.port, tok)
        body = rpc(7, "tools/call", {"name": LONG, "arguments": long_args, "_meta": {"progressToken": "p7"}})
        s = Stream(g.port, "POST", "/mcp", body, mcp_headers(tok, sid), timeout=KILL_GUARD)
        try:
            assert s.status == 200 and (s.header("content-type") or "").startswith("text/event-stream"), s.status
            # The first progress event: the call runs on the backend.
            while True:
                ev = s.next_event()
                assert ev is not None, f"the stream ended before any progress: {s.raw!r}"
                if ev.get("data") and json.loads(ev["data"]).get("method") == "notifications/progress":
                    break
            pid = kill_backend(g, route)
            msgs = []
            try:
                while True:
                    ev = s.next_event()
                    if ev is None:
                        break
                    if ev.get("data"):
                        msgs.append(json.loads(ev["data"]))
                        if msgs[-1].get("id") == 7:
                            break
            except (socket.timeout, TimeoutError):
                raise AssertionError(f"no answer for id 7 within {KILL_GUARD:.0f} s after the backend was killed "
                                     f"(the stream stayed open); got {msgs}") from None
            except HTTP_ERRORS as e:
                raise AssertionError(f"the stream broke without a JSON-RPC error for id 7 ({e!r}); "
                                     f"got {msgs}") from None
        finally:
            s.close()
        final = [m for m in msgs if m.get("id") == 7]
        assert final and "error" in final[0] and "result" not in final[0], \
            f"the stream ended without a JSON-RPC error for id 7: {msgs}\n{g.log_text()[-2000:]}"
        assert isinstance(final[0]["error"].get("code"), int) and final[0]["error"].get("message"), final[0]
        wait_gone([pid], "the killed backend to die")
        saw_crash(g, tok)
        # The same session goes on, on a new backend.
        r = request(g.port, "POST", "/mcp", rpc(8, "tools/call", {"name": "echo", "arguments": {"message": "on"}}),
                    mcp_headers(tok, sid), timeout=GUARD)
        assert r.status == 200, f"{r!r}\n{g.log_text()[-2000:]}"
        got = [m for m in body_messages(r) if m.get("id") == 8]
        assert got and "result" in got[0], r
        return
    c = SessionClient(kind, g.url, tok, tmp_dir / f"client-{kind}.log")
    try:
        c.connect()
        assert c.tool("echo", {"message": "warm"})["ok"]
        tag = c.send({"tool": LONG, "args": long_args, "timeout_ms": 60000})
        peers.wait_until(lambda: in_flight(g, tok), "the long call in flight", g.proc, guard=POLL_GUARD)
        kill_backend(g, route)
        try:
            m = c.result(tag, guard=KILL_GUARD)
        except AssertionError as e:
            raise AssertionError(f"{kind}: the call on the killed backend got no answer within {KILL_GUARD:.0f} s "
                                 f"(its own timeout is 60 s): {e}\n{g.log_text()[-2000:]}") from None
        assert not m["ok"], f"the call on a killed backend succeeded: {m}"
        assert m["rpcError"] and not m["timedOut"], \
            f"{kind}: not a JSON-RPC error for the call's id: {m.get('error')} (code {m.get('code')})"
        saw_crash(g, tok)
        r = c.tool("echo", {"message": "after the crash"})
        assert r["ok"] and r["text"] == "Echo: after the crash", r
        c.assert_same_session("after the backend crash")
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# (c) session ids the gateway did not issue to this token: 404, and nothing reaches a backend


def header(entry: dict, name: str) -> str | None:
    raw = entry["headers"]
    for i in range(0, len(raw), 2):
        if raw[i].lower() == name:
            return raw[i + 1]
    return None


def test_foreign_session_ids_are_404(instance_gateway_factory, tmp_dir):
    ta, tb = new_token("alice"), new_token("bob")
    g = instance_gateway_factory(tmp_dir / "state", backend_cmd=f"env PORT={{port}} node {RECORDING_BACKEND}",
                                 env={"API_TOKENS_JSON": json.dumps({"alice": ta, "bob": tb})})
    problems: list[str] = []
    sid = open_session(g.port, ta)
    if not sid.startswith("sr1."):
        problems.append(f"alice's session id is not the gateway's own (no 'sr1.' prefix): {sid!r}")
    r = request(g.port, "POST", "/mcp", rpc(2, "tools/call", {"name": "echo", "arguments": {"message": "mine"}}),
                mcp_headers(ta, sid))
    assert r.status == 200, r
    (backend_port, _), = g.starts("gen-1:alice")
    before = request(backend_port, "GET", "/__log", None, {}).json()
    relayed = [e for e in before if '"mine"' in e["body"]]
    assert relayed, f"alice's call never reached her backend: {before}"
    backend_sid = header(relayed[-1], "mcp-session-id")  # the backend's own id for alice's session
    assert backend_sid, relayed[-1]
    inner = sid[4:] if sid.startswith("sr1.") else sid
    mid = len(inner) // 2
    tampered = sid[: len(sid) - len(inner)] + inner[:mid] + ("A" if inner[mid] != "A" else "B") + inner[mid + 1:]
    cases = [
        ("a forged sr1. id", ta, "sr1." + secrets.token_urlsafe(48)),
        ("a forged sr1. id (short)", ta, "sr1.x"),
        ("alice's id with one character changed", ta, tampered),
        ("alice's id with bob's token", tb, sid),
        ("the backend's own session id", ta, backend_sid),
        ("plain garbage", ta, "not-a-session-" + secrets.token_hex(8)),
    ]
    for label, tok, bad in cases:
        for method, body, accept in (("POST", rpc(9, "tools/call", {"name": "echo", "arguments": {"message": label}}),
                                      peers.ACCEPT_BOTH),
                                     ("GET", None, "text/event-stream"),
                                     ("DELETE", None, None)):
            try:
                resp = request(g.port, method, "/mcp", body, mcp_headers(tok, bad, accept=accept), timeout=10)
            except (socket.timeout, TimeoutError):
                problems.append(f"{label}: {method} hung (no answer within the 10 s guard)")
                continue
            if resp.status != 404:
                problems.append(f"{label}: {method} answered {resp.status}, not 404: {resp.body[:200]!r}")
                continue
            try:
                jsonrpc_error(resp)
            except AssertionError as e:
                problems.append(f"{label}: {method} 404 without a JSON-RPC error body: {e}")
    after = request(backend_port, "GET", "/__log", None, {}).json()
    for e in after[len(before):]:
        problems.append(f"a request with a foreign session id reached alice's backend: {e['method']} "
                        f"mcp-session-id={header(e, 'mcp-session-id')!r} body={e['body'][:120]!r}")
    if g.starts("gen-1:bob"):
        problems.append(f"a backend was started for bob by a foreign session id: {g.starts('gen-1:bob')}")
    if g.status(tb)["instance"] is not None:
        problems.append(f"bob's route has an instance: {g.status(tb)['instance']}")
    # alice's real session is unharmed (the foreign DELETEs above did not end it).
    r = request(g.port, "POST", "/mcp", rpc(10, "tools/call", {"name": "echo", "arguments": {"message": "still"}}),
                mcp_headers(ta, sid))
    if r.status != 200:
        problems.append(f"alice's own session no longer works after the foreign requests: {r!r}")
    assert not problems, "\n".join(problems) + f"\n--- gateway log (tail):\n{g.log_text()[-2500:]}"


# ---------------------------------------------------------------------------------------------
# (d) DELETE ends the session for good


def test_deleted_session_is_404(instance_gateway_factory, tmp_dir):
    tok = new_token("del")
    g = instance_gateway_factory(tmp_dir / "state", env={"API_TOKENS_JSON": json.dumps({"del": tok})})
    sid = open_session(g.port, tok)
    r = request(g.port, "POST", "/mcp", rpc(2, "tools/call", {"name": "echo", "arguments": {"message": "x"}}),
                mcp_headers(tok, sid))
    assert r.status == 200, r
    r = request(g.port, "DELETE", "/mcp", None, mcp_headers(tok, sid, accept=None))
    assert r.status in (200, 204), r
    for method, body, accept in (("POST", rpc(3, "tools/list"), peers.ACCEPT_BOTH),
                                 ("GET", None, "text/event-stream"),
                                 ("DELETE", None, None)):
        r = request(g.port, method, "/mcp", body, mcp_headers(tok, sid, accept=accept), timeout=10)
        assert r.status == 404, f"{method} with a deleted session id: {r!r}"
        jsonrpc_error(r)
    # A new session is a new id, and works.
    sid2 = open_session(g.port, tok)
    assert sid2 != sid
    r = request(g.port, "POST", "/mcp", rpc(4, "tools/list"), mcp_headers(tok, sid2))
    assert r.status == 200, r
    assert sid.startswith("sr1.") and sid2.startswith("sr1."), \
        f"the session ids are not the gateway's own (no 'sr1.' prefix): {sid!r}, {sid2!r}"
    # A restart remembers which id was ended (<state-dir>/sessions.ended); the other resumes.
    g.stop()
    g = instance_gateway_factory(tmp_dir / "state", env={"API_TOKENS_JSON": json.dumps({"del": tok})},
                                 name="inst-again")
    r = request(g.port, "POST", "/mcp", rpc(5, "tools/list"), mcp_headers(tok, sid), timeout=10)
    assert r.status == 404, f"a deleted session id after a restart: {r!r}"
    r = request(g.port, "POST", "/mcp", rpc(6, "tools/list"), mcp_headers(tok, sid2))
    assert r.status == 200, r
