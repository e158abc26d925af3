"""System tests with the real Serena (serena-agent 2.1.0) behind `serena-remote serve`.

No --upstream and no --backend-cmd: every token gets the gateway's default backend, `serena
start-mcp-server ...` found on PATH (the .venv-serena that scripts/serena.sh installs), with the
serena_config.yml the gateway seeds (pyright preinstalled, nothing fetched at run time). Every
token works on its own copy of fixtures/pyproj (lib.py defines greet, main.py calls it).

What is proven, each with real clients and real processes on 127.0.0.1:
- the agent flow initialize → activate_project → find_symbol → find_referencing_symbols works
  through the gateway with the TypeScript SDK client and with mcp-remote (stdio bridge);
- two tokens at once get two different Serena processes, each with its own active project;
- an idle instance goes to sleep (its Serena and pyright are gone) and the next session wakes
  a new Serena on which the flow works again.

Select with `-m serena` (or deselect with `-m "not serena"`). scripts/serena.sh runs once per
session; if it fails the tests fail (nothing is skipped). Every wait is a poll with a hang guard;
nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import peers
from peers import INITIALIZED, body_messages, init_body, mcp_headers, request, rpc

pytestmark = pytest.mark.serena

SERENA_SH = peers.ROOT / "scripts" / "serena.sh"
FIXTURE = peers.HERE / "fixtures" / "pyproj"
FLOW = peers.CLIENTS / "serena_flow.mjs"
GREET_BODY = 'return f"Hello, {name}!"'
OTHER_BODY = 'return f"Howdy, {name}!"'

# Hang guards (seconds), never assertions: a cold Serena's first semantic call can take long on a
# loaded 2-core machine, and two start at once in one test.
GUARD = 120.0


# ---------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="session")
def serena_install() -> dict:
    """Runs scripts/serena.sh (idempotent) once; its `name=path` lines, checked."""
    r = peers.run_cmd([SERENA_SH], guard=900.0)
    assert r.returncode == 0, f"scripts/serena.sh failed ({r.returncode}):\n{r.stderr.decode()[-4000:]}"
    paths = dict(line.split("=", 1) for line in r.stdout.decode().splitlines() if "=" in line)
    for key in ("serena", "pyright_langserver", "tools_dir"):
        assert key in paths, f"scripts/serena.sh did not print {key}=: {r.stdout!r}"
    assert os.access(paths["serena"], os.X_OK), paths
    assert os.access(paths["pyright_langserver"], os.X_OK), paths
    return paths


def project_copy(dest: Path, greet_body: str = GREET_BODY) -> Path:
    """A fresh copy of the fixture project, optionally with another body for greet()."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(FIXTURE, dest)
    lib = dest / "lib.py"
    src = lib.read_text()
    assert GREET_BODY in src, "the fixture changed: lib.py no longer holds greet's known body"
    lib.write_text(src.replace(GREET_BODY, greet_body))
    return dest.resolve()


def procs_referencing(path: Path) -> list[int]:
    """Live processes whose command line or environment mentions path (a Serena started for a
    route has SERENA_HOME/TMPDIR under the route's directory, and so does its pyright)."""
    needle = str(path).encode()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            blob = (d / "cmdline").read_bytes() + b"\0" + (d / "environ").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if needle in blob and peers.proc_running(int(d.name)):
            found.append(int(d.name))
    return found


def start_serena_gateway(run_dir: Path, state_dir: Path, toks: dict, install: dict,
                         env: dict | None = None, name: str = "serena") -> peers.InstanceGateway:
    """`serve` with the default (Serena) backend, found on PATH from .venv-serena."""
    port = peers.free_port()
    log = run_dir / f"gateway-{name}-{port}.log"
    peers.GATEWAY_LOGS.append(log)
    peers.GATEWAY_LOGS.append(run_dir / f"gateway-{name}-{port}.stdout")
    genv = {"API_TOKEN": None, "API_TOKENS_FILE": None, "MCP_CONTAINER_ROUTE_GENERATION": None,
            "ALLOWED_ORIGINS": None, "SERENA_ALLOW_SHELL": None, "SERENA_SANDBOX": None,
            "SERENA_REMOTE_ADMIN_LISTEN": "off"}
    genv.update({k: None for k in peers.INSTANCE_SETTINGS})
    genv["API_TOKENS_JSON"] = json.dumps(toks)
    genv["PATH"] = f"{Path(install['serena']).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    genv["SERENA_TOOLS_DIR"] = install["tools_dir"]
    genv.update(env or {})
    argv = [peers.gateway_bin(), "serve", "--listen", f"{peers.HOST}:{port}", "--state-dir", state_dir]
    proc = peers.Proc(name, argv, log, env=genv, stdout_path=run_dir / f"gateway-{name}-{port}.stdout")
    try:
        peers.wait_until(lambda: peers.health_ok(port), f"gateway {name} /health on {port}", proc)
    except BaseException:
        proc.stop()
        raise
    return peers.InstanceGateway(proc, port, state_dir)


@pytest.fixture
def serena_gateway(run_dir, gateway_bin, serena_install):
    """Factory for Serena-backed gateways. Teardown stops each gateway, then requires that no
    process started for its state dir (Serena, pyright) outlived it; leftovers are killed and
    the test fails."""
    started = []

    def start(state_dir: Path, toks: dict, env: dict | None = None, name: str = "serena"):
        g = start_serena_gateway(run_dir, state_dir, toks, serena_install, env=env, name=name)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()
    leftovers = []
    for g in started:
        try:
            peers.wait_until(lambda: not procs_referencing(g.state_dir), "backends to exit", None,
                             guard=peers.STOP_GUARD)
        except RuntimeError:
            pids = procs_referencing(g.state_dir)
            leftovers += pids
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    assert not leftovers, f"processes outlived their gateway: {leftovers}"


def route_of(g: peers.InstanceGateway, name: str) -> str:
    return f"{g.health()['route_generation']}:{name}"


def run_flow(g: peers.InstanceGateway, token: str, project: Path, *extra: str) -> dict:
    """serena_flow.mjs through the gateway; returns its JSON (which must say ok)."""
    r = peers.run_cmd(["node", FLOW, f"http://{peers.HOST}:{g.port}/mcp", token, project, *extra],
                      env={"SR_CLIENT_GUARD_MS": str(int(GUARD * 1000))}, guard=GUARD + 15)
    lines = r.stdout.decode().strip().splitlines()
    assert lines, f"serena_flow.mjs printed nothing (rc {r.returncode}):\n{r.stderr.decode()[-3000:]}"
    out = json.loads(lines[-1])
    assert r.returncode == 0 and out.get("ok"), f"flow failed: {out}\n{r.stderr.decode()[-3000:]}\n" \
                                                f"gateway log:\n{g.log_text()[-3000:]}"
    return out


def assert_activated(res: dict, project: Path) -> None:
    assert not res["isError"], res
    assert "activated" in res["text"] and str(project) in res["text"], res


def assert_greet(res: dict, body_line: str = GREET_BODY) -> None:
    """find_symbol greet include_body → one Function in lib.py whose body holds body_line."""
    assert not res["isError"], res
    syms = json.loads(res["text"])
    greet = [s for s in syms if s.get("name_path") == "greet"]
    assert len(greet) == 1, syms
    assert greet[0]["kind"] == "Function", greet
    assert greet[0]["relative_path"] == "lib.py", greet
    assert greet[0]["body"].startswith("def greet(name):"), greet
    assert body_line in greet[0]["body"], greet


def assert_refs(res: dict) -> None:
    """find_referencing_symbols greet → the call `greet("world")` inside main.py's main()."""
    assert not res["isError"], res
    refs = json.loads(res["text"])
    assert "main.py" in refs, refs
    around = [e.get("content_around_reference", "") for group in refs["main.py"].values() for e in group]
    assert any('greet("world")' in a for a in around), refs
    assert "lib.py" not in refs, refs  # the definition is not a reference


def tool_result(msg: dict) -> dict:
    """A tools/call response as {isError, text}."""
    assert "result" in msg, msg
    r = msg["result"]
    return {"isError": r.get("isError", False),
            "text": "".join(c.get("text", "") for c in r.get("content", []) if c.get("type") == "text")}


def http_session(g: peers.InstanceGateway, token: str) -> str:
    """initialize + notifications/initialized through the gateway (the first one starts Serena)."""
    r = request(g.port, "POST", "/mcp", init_body(), mcp_headers(token), timeout=GUARD)
    assert r.status == 200, f"{r!r}\n{g.log_text()[-3000:]}"
    sid = r.header("mcp-session-id")
    assert sid, r
    r2 = request(g.port, "POST", "/mcp", INITIALIZED, mcp_headers(token, sid), timeout=GUARD)
    assert r2.status == 202, r2
    return sid


def http_call(g: peers.InstanceGateway, token: str, sid: str, rid: int, name: str, args: dict) -> dict:
    r = request(g.port, "POST", "/mcp", rpc(rid, "tools/call", {"name": name, "arguments": args}),
                mcp_headers(token, sid), timeout=GUARD)
    assert r.status == 200, r
    got = [m for m in body_messages(r) if m.get("id") == rid]
    assert len(got) == 1, r
    return tool_result(got[0])


def wait_pidfile(g: peers.InstanceGateway, route: str) -> tuple[int, int]:
    rec = peers.wait_until(lambda: g.pidfile(route), f"pid file of {route}", g.proc, guard=GUARD)
    assert peers.proc_running(*rec), f"pid file of {route} names a process that is not running: {rec}"
    return rec


def assert_is_serena(pid: int, route_dir: Path) -> None:
    """The process is a Serena MCP server whose SERENA_HOME is that route's home."""
    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"start-mcp-server" in cmd, cmd
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"SERENA_HOME={route_dir}/home".encode() in env, [e for e in env if e.startswith(b"SERENA_HOME")]


class McpRemote:
    """mcp-remote 0.15.1 (stdio ⇄ Streamable HTTP) driven like a desktop client: newline-delimited
    JSON-RPC on stdin, one request at a time, waiting for each answer by id."""

    def __init__(self, url: str, token: str, config_dir: Path, log_path: Path):
        env = dict(os.environ)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
            env.pop(k, None)
        env["NO_PROXY"] = "*"
        env["MCP_REMOTE_CONFIG_DIR"] = str(config_dir)
        argv = ["node", str(peers.MCP_REMOTE), url, str(peers.free_port()), "--transport", "http-only",
                "--header", f"Authorization: Bearer {token}"]
        self.log_path = log_path
        self._err = open(log_path, "ab")
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
                                  env=env, start_new_session=True)
        self.responses: dict = {}
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            try:
                m = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                if isinstance(m, dict) and "id" in m and "method" not in m:
                    self.responses[m["id"]] = m
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def send(self, line: str) -> None:
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def wait_for(self, rid) -> dict:
        deadline = time.monotonic() + GUARD
        with self.cond:
            while rid not in self.responses:
                if not self.reader.is_alive():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.5))
            if rid in self.responses:
                return self.responses[rid]
        raise AssertionError(f"mcp-remote gave no answer to id {rid} (rc {self.p.poll()}):\n"
                             f"{self.log_path.read_text(errors='replace')[-4000:]}")

    def call(self, rid: int, name: str, args: dict) -> dict:
        self.send(rpc(rid, "tools/call", {"name": name, "arguments": args}))
        return tool_result(self.wait_for(rid))

    def close(self) -> int | None:
        """Close stdin (mcp-remote then exits on its own), wait for it, end its group."""
        try:
            self.p.stdin.close()
        except BrokenPipeError:
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


# ---------------------------------------------------------------------------------------------
# tests


def test_sdk_client_flow(serena_gateway, tmp_dir):
    """TypeScript SDK client: initialize → activate_project → find_symbol → find_referencing_symbols."""
    tok = peers.new_token("sdk")
    g = serena_gateway(tmp_dir / "state", {"sdk": tok}, name="serena-sdk")
    project = project_copy(tmp_dir / "proj")
    out = run_flow(g, tok, project)
    assert out["serverInfo"]["name"] == "Serena", out["serverInfo"]
    assert_activated(out["activate"], project)
    assert_greet(out["find"])
    assert_refs(out["refs"])
    assert out.get("deleted") is True, out
    # The backend really is Serena, under this route's directory, with the seeded config
    # pointing at the preinstalled pyright.
    rd = g.route_dir(route_of(g, "sdk"))
    pid, _ = wait_pidfile(g, route_of(g, "sdk"))
    assert_is_serena(pid, rd)
    cfg = (rd / "home" / "serena_config.yml").read_text()
    assert "pyright-langserver" in cfg and str(project) in cfg, cfg


def test_mcp_remote_flow(serena_gateway, tmp_dir):
    """mcp-remote (the stdio bridge desktop clients use): the same flow, one request at a time."""
    tok = peers.new_token("bridge")
    g = serena_gateway(tmp_dir / "state", {"bridge": tok}, name="serena-mcp-remote")
    project = project_copy(tmp_dir / "proj")
    conf = tmp_dir / "mcp-auth"
    conf.mkdir(exist_ok=True)
    mr = McpRemote(f"http://{peers.HOST}:{g.port}/mcp", tok, conf, tmp_dir / "mcp-remote.log")
    try:
        mr.send(init_body(rid=1))
        init = mr.wait_for(1)
        assert init["result"]["serverInfo"]["name"] == "Serena", init
        mr.send(INITIALIZED)
        assert_activated(mr.call(2, "activate_project", {"project": str(project), "session": "sr-mcp-remote"}),
                         project)
        assert_greet(mr.call(3, "find_symbol", {"name_path_pattern": "greet", "include_body": True}))
        assert_refs(mr.call(4, "find_referencing_symbols", {"name_path": "greet", "relative_path": "lib.py"}))
    finally:
        rc = mr.close()
    assert rc == 0, f"mcp-remote exited with {rc}:\n{(tmp_dir / 'mcp-remote.log').read_text()[-3000:]}"


def test_two_tokens_two_serenas_two_projects(serena_gateway, tmp_dir):
    """Two tokens at once: two Serena processes, each with its own active project. The projects
    differ in greet's body, and each token's find_symbol must see its own, also after the other
    token activated its project."""
    ta, tb = peers.new_token("ta"), peers.new_token("tb")
    g = serena_gateway(tmp_dir / "state", {"ta": ta, "tb": tb}, name="serena-two")
    pa = project_copy(tmp_dir / "proj-a")
    pb = project_copy(tmp_dir / "proj-b", OTHER_BODY)

    # Both cold starts at once.
    sids: dict = {}
    errors: list = []

    def open_for(key, tok):
        try:
            sids[key] = http_session(g, tok)
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=open_for, args=(k, t)) for k, t in (("a", ta), ("b", tb))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD + 10)
    assert not errors, errors
    assert set(sids) == {"a", "b"}, sids

    ra, rb = route_of(g, "ta"), route_of(g, "tb")
    pida, pidb = wait_pidfile(g, ra), wait_pidfile(g, rb)
    assert pida[0] != pidb[0], (pida, pidb)
    assert_is_serena(pida[0], g.route_dir(ra))
    assert_is_serena(pidb[0], g.route_dir(rb))

    # Interleaved: A activates, B activates, then each looks up greet.
    assert_activated(http_call(g, ta, sids["a"], 2, "activate_project", {"project": str(pa), "session": "a"}), pa)
    assert_activated(http_call(g, tb, sids["b"], 2, "activate_project", {"project": str(pb), "session": "b"}), pb)
    find = {"name_path_pattern": "greet", "include_body": True}
    ga = http_call(g, ta, sids["a"], 3, "find_symbol", find)
    gb = http_call(g, tb, sids["b"], 3, "find_symbol", find)
    assert_greet(ga, GREET_BODY)
    assert_greet(gb, OTHER_BODY)
    assert OTHER_BODY not in ga["text"] and GREET_BODY not in gb["text"], (ga, gb)
    # Each Serena reports its own project as the active one and knows nothing of the other's
    # (its registered projects live in its own SERENA_HOME).
    ca = http_call(g, ta, sids["a"], 4, "get_current_config", {})
    cb = http_call(g, tb, sids["b"], 4, "get_current_config", {})
    assert "Active project: proj-a\n" in ca["text"] and "proj-b" not in ca["text"], ca
    assert "Active project: proj-b\n" in cb["text"] and "proj-a" not in cb["text"], cb
    cfga = (g.route_dir(ra) / "home" / "serena_config.yml").read_text()
    cfgb = (g.route_dir(rb) / "home" / "serena_config.yml").read_text()
    assert str(pa) in cfga and str(pb) not in cfga, cfga
    assert str(pb) in cfgb and str(pa) not in cfgb, cfgb

    # Still the same two processes, both alive; each token's /status shows only its route.
    assert g.pidfile(ra) == pida and g.pidfile(rb) == pidb
    assert peers.proc_running(*pida) and peers.proc_running(*pidb)
    sa, sb = g.status(ta), g.status(tb)
    assert sa["route"] == ra and sb["route"] == rb, (sa, sb)
    assert sa["instance"]["state"] in ("ready", "idle") and sb["instance"]["state"] in ("ready", "idle"), (sa, sb)


def test_sleep_and_wake(serena_gateway, tmp_dir):
    """SLEEP_AFTER=3s: after the flow the instance sleeps (Serena and its pyright are gone); a new
    client session wakes a new Serena, and activate_project + find_symbol work again."""
    tok = peers.new_token("sleepy")
    g = serena_gateway(tmp_dir / "state", {"sleepy": tok}, env={"SLEEP_AFTER": "3s"}, name="serena-sleep")
    route = route_of(g, "sleepy")
    rd = g.route_dir(route)
    project = project_copy(tmp_dir / "proj")

    out = run_flow(g, tok, project, "--no-refs")
    assert_activated(out["activate"], project)
    assert_greet(out["find"])
    # The pid comes from the gateway's "starting instance" log line: the pid file may already be
    # gone again by the time we would read it (the instance sleeps 3 s after the last POST).
    starts = g.starts(route)
    assert len(starts) == 1, starts
    first = starts[0][1]

    peers.wait_until(lambda: g.status(tok)["instance"]["state"] == "asleep", "instance asleep", g.proc, guard=GUARD)
    assert g.pidfile(route) is None, "pid file left behind by a sleeping instance"
    assert not peers.proc_running(first), f"Serena {first} still runs while its instance is asleep"
    # pyright (own session, PDEATHSIG) follows Serena; nothing else runs for this route.
    peers.wait_until(lambda: not procs_referencing(rd), "no process left for the sleeping route", g.proc,
                     guard=peers.STOP_GUARD)

    out2 = run_flow(g, tok, project, "--no-refs")
    assert_activated(out2["activate"], project)
    assert_greet(out2["find"])
    assert out2["sessionId"] != out["sessionId"], (out2["sessionId"], out["sessionId"])
    starts = g.starts(route)
    assert len(starts) == 2 and starts[1][1] != first, starts
    st = g.status(tok)["instance"]
    assert st["state"] in ("ready", "idle", "asleep") and st["last_error"] is None, st


def test_serena_reports_its_own_version_and_offers_initial_instructions(serena_gateway, tmp_dir):
    """Serena computes its version with `git rev-parse HEAD` in its own install directory; the
    venv lives inside this project's checkout, so without GIT_CEILING_DIRECTORIES it reported
    the gateway's commit (2.1.0-<our hash>-dirty). And the default context (desktop-app) keeps
    initial_instructions, the tool Serena's own connection prompt tells clients to call, which
    also hands out the session id activate_project asks for."""
    toks = {"tv": peers.new_token("tv")}
    g = serena_gateway(tmp_dir / "state", toks)
    sid = http_session(g, toks["tv"])
    r = request(g.port, "POST", "/mcp", rpc(2, "tools/list"), mcp_headers(toks["tv"], sid), timeout=GUARD)
    assert r.status == 200, r
    names = {t["name"] for m in body_messages(r) if m.get("id") == 2 for t in m["result"]["tools"]}
    assert {"initial_instructions", "activate_project", "find_symbol"} <= names, sorted(names)
    manual = http_call(g, toks["tv"], sid, 3, "initial_instructions", {})
    assert not manual["isError"] and "session" in manual["text"].lower(), manual["text"][:500]
    log = g.route_dir(route_of(g, "tv")) / "backend.log"
    line = peers.wait_until(lambda: next((l for l in log.read_text(errors="replace").splitlines()
                                          if "Starting Serena server (version=" in l), None),
                            "Serena's start line", g.proc, guard=GUARD)
    version = line.split("version=", 1)[1].split(",", 1)[0]
    head = peers.run_cmd(["git", "-C", peers.ROOT, "rev-parse", "HEAD"], guard=30).stdout.decode().strip()
    assert head[:8] not in version and "dirty" not in version, line
    assert version == "2.1.0", line
