"""The real Serena with a project per token, and its whole workspace as state.

A token entry names a project by git URL (a local bare repository, file://); the gateway clones it
into the route's workspace before Serena's first start and starts Serena with it, so find_symbol
works with no activate_project. Then the user's work through Serena — a memory (write_memory, kept
in the project's .serena/memories/) and a file (create_text_file) — survives a sleep, a fresh disk
(the route's whole directory deleted) and a wake: memory, file and the active project are all back,
restored from the store (the local directory store, and Swift's S3 API, with SERENA_SNAPSHOT_KEY),
not cloned again. The same holds through `serena-remote run` (the Cloudflare container's shape,
which gets the token's project as SERENA_PROJECT from the Worker) on a new, empty disk.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

import peers
import s3peers
from test_serena import (GUARD, assert_greet, http_call, http_session, project_copy,  # noqa: F401
                         route_of, serena_gateway, serena_install)

pytestmark = pytest.mark.serena

MEMORY = "The user prefers small functions and tabs."
CREATED = "def added_through_serena():\n    return 42\n"


def git(*args, cwd) -> None:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    p = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def bare_repo(tmp: Path) -> Path:
    """fixtures/pyproj as the single commit of a bare repository: the token's project origin."""
    src = project_copy(tmp / "pyproj")
    git("init", "-q", "-b", "main", cwd=src)
    git("add", ".", cwd=src)
    git("commit", "-q", "-m", "import", cwd=src)
    bare = tmp / "pyproj.git"
    git("clone", "-q", "--bare", str(src), str(bare), cwd=tmp)
    shutil.rmtree(src)
    return bare


def work_through_serena(call) -> None:
    """find_symbol with no activation, then a memory and a file written through Serena."""
    assert_greet(call("find_symbol", {"name_path_pattern": "greet", "include_body": True}))
    r = call("write_memory", {"memory_name": "style", "content": MEMORY})
    assert not r["isError"], r
    r = call("create_text_file", {"relative_path": "added.py", "content": CREATED})
    assert not r["isError"], r


def check_back(call) -> None:
    """After a fresh disk: the project is active (find_symbol with no activation), the memory and
    the file are there."""
    assert_greet(call("find_symbol", {"name_path_pattern": "greet", "include_body": True}))
    r = call("read_memory", {"memory_name": "style"})
    assert not r["isError"] and MEMORY in r["text"], r
    r = call("read_file", {"relative_path": "added.py"})
    assert not r["isError"] and "added_through_serena" in r["text"], r


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.mark.parametrize("kind", ["file", "swift"])
def test_token_project_and_workspace_survive_a_fresh_disk(serena_gateway, tmp_dir, request, kind):
    bare = bare_repo(tmp_dir)
    tok = peers.new_token("alice")
    toks = {"alice": {"token": tok, "project": f"file://{bare}"}}
    env = {"SLEEP_AFTER": "3s", "SERENA_R2_SNAPSHOT_INTERVAL_SECONDS": "0", "SERENA_STOP_GRACE": "10s",
           "SERENA_SNAPSHOT_KEY": new_key()}
    if kind == "file":
        env["SERENA_REMOTE_STORE"] = f"file:{tmp_dir / 'store'}"
    else:
        peer = request.getfixturevalue("swift_peer")
        env.update(peer.env(peer.new_bucket("serena")))
    g = serena_gateway(tmp_dir / "state", toks, env=env, name=f"serena-ws-{kind}")
    route = route_of(g, "alice")
    clone = g.route_dir(route) / "work" / "pyproj"

    sid = http_session(g, tok)
    n = iter(range(2, 100))
    work_through_serena(lambda name, args: http_call(g, tok, sid, next(n), name, args))
    assert (clone / ".serena" / "memories" / "style.md").exists(), list(clone.rglob("*"))
    assert (clone / "added.py").read_text() == CREATED

    # Sleep: Serena stops, the snapshot holds home/ and work/ (sealed with the key).
    peers.wait_until(lambda: (i := g.status(tok)["instance"]) and i["state"] == "asleep" and i["last_snapshot"],
                     "asleep with a snapshot", g.proc, guard=GUARD)
    shutil.rmtree(g.route_dir(route))  # a fresh disk

    sid2 = http_session(g, tok)
    n2 = iter(range(2, 100))
    check_back(lambda name, args: http_call(g, tok, sid2, next(n2), name, args))
    log = g.log_text()
    assert log.count(f"route={route} cloning its project") == 1, "cloned again instead of restored"
    assert f"route={route} restored " in log
    assert tok not in log and env["SERENA_SNAPSHOT_KEY"] not in log


def test_through_run_on_a_new_disk(serena_install, gateway_bin, run_dir, tmp_dir, swift_peer):
    bare = bare_repo(tmp_dir)
    store = swift_peer.env(swift_peer.new_bucket("serena-run"))
    env = {**store, "SERENA_INSTANCE_ID": "do-ws", "SERENA_R2_SNAPSHOT_INTERVAL_SECONDS": "0",
           "SERENA_STOP_GRACE": "10s", "SERENA_PROJECT": f"file://{bare}", "SERENA_SNAPSHOT_KEY": new_key(),
           "SERENA_TOOLS_DIR": serena_install["tools_dir"], "SERENA_REMOTE_ADMIN_LISTEN": "off",
           "PATH": f"{Path(serena_install['serena']).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}

    def start(disk: Path, name: str):
        port = peers.free_port()
        log = run_dir / f"gateway-{name}-{port}.log"
        peers.GATEWAY_LOGS.append(log)
        full = {k: None for k in (*peers.INSTANCE_SETTINGS, "API_TOKEN", "API_TOKENS_JSON", "API_TOKENS_FILE",
                                  "MCP_CONTAINER_ROUTE_GENERATION", "SERENA_SANDBOX")}
        full.update(env)
        proc = peers.Proc(name, [gateway_bin, "run", "--listen", f"{peers.HOST}:{port}", "--state-dir", disk],
                          log, env=full)
        g = peers.InstanceGateway(proc, port, disk)
        peers.wait_until(lambda: peers.health_ok(port), f"{name} /health", proc, guard=GUARD)
        return g

    def session(g):
        r = peers.request(g.port, "POST", "/mcp", peers.init_body(), peers.mcp_headers(), timeout=GUARD)
        assert r.status == 200, f"{r!r}\n{g.log_text()[-3000:]}"
        sid = r.header("mcp-session-id")
        r2 = peers.request(g.port, "POST", "/mcp", peers.INITIALIZED, peers.mcp_headers(None, sid), timeout=GUARD)
        assert r2.status == 202, r2
        n = iter(range(2, 100))

        def call(name, args):
            r3 = peers.request(g.port, "POST", "/mcp", peers.rpc(next(n), "tools/call", {"name": name, "arguments": args}),
                               peers.mcp_headers(None, sid), timeout=GUARD)
            assert r3.status == 200, r3
            from test_serena import tool_result
            return tool_result([m for m in peers.body_messages(r3) if "result" in m or "error" in m][0])
        return call

    disk1 = tmp_dir / "disk1"
    g1 = start(disk1, "run-ws1")
    try:
        work_through_serena(session(g1))
        g1.proc.send_signal(signal.SIGTERM)
        assert g1.proc.wait(GUARD) == 0, g1.log_text()[-3000:]
    finally:
        log1 = g1.log_text()
        g1.proc.stop()
    assert "cloning its project" in log1 and "snapshot " in log1, log1[-3000:]

    disk2 = tmp_dir / "disk2"
    disk2.mkdir()
    g2 = start(disk2, "run-ws2")
    try:
        check_back(session(g2))
        log2 = g2.log_text()
        assert "restored " in log2 and "cloning its project" not in log2, log2[-3000:]
    finally:
        g2.proc.send_signal(signal.SIGTERM)
        g2.proc.wait(GUARD)
        g2.proc.stop()
