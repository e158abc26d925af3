"""`serve --sandbox bwrap`: token A's backend cannot read token B's files.

The backend is server-filesystem (through supergateway) rooted at "/", so it would read any file
the process can see. With the sandbox, another route's home/ (and the gateway's token file in the
state dir) are simply not there; its own home/ is readable and writable. The same scenario without
the sandbox reads B's file, which shows the test can fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

import peers
from peers import new_token, open_session
from test_instances import call, env_for, wait_pidfile

FS_BACKEND = (f"node {peers.SUPERGATEWAY} --stdio 'node {peers.SERVER_FILESYSTEM} /' "
              "--outputTransport streamableHttp --port {port} --stateful")


def bwrap_works() -> bool:
    if not shutil.which("bwrap"):
        return False
    return subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"],
                          capture_output=True).returncode == 0


def read_file(g, token: str, sid: str, rid: int, path: str) -> tuple[bool, str]:
    """(ok, text) of server-filesystem's read_text_file through the gateway."""
    msg = call(g.port, token, sid, rid, "read_text_file", {"path": path})
    if "error" in msg:
        return (False, json.dumps(msg["error"]))
    res = msg["result"]
    text = "".join(c.get("text", "") for c in res.get("content", []))
    return (not res.get("isError", False), text)


def scenario(instance_gateway_factory, tmp_dir, sandbox: bool):
    toks = {"alpha": new_token("alpha"), "bravo": new_token("bravo")}
    state = tmp_dir / ("state-sandbox" if sandbox else "state-open")
    args = ["--sandbox", "bwrap"] if sandbox else []
    g = instance_gateway_factory(state, FS_BACKEND, env=env_for(toks), args=args,
                                 name="sandbox" if sandbox else "open")
    sa = open_session(g.port, toks["alpha"])
    sb = open_session(g.port, toks["bravo"])
    wait_pidfile(g, "gen-1:alpha")
    wait_pidfile(g, "gen-1:bravo")
    secret_b = g.route_dir("gen-1:bravo") / "home" / "secret-of-bravo.txt"
    secret_b.write_text("bravo's private notes\n")
    own_a = g.route_dir("gen-1:alpha") / "home" / "mine.txt"
    own_a.write_text("alpha's own notes\n")
    return g, toks, sa, sb, secret_b, own_a


@pytest.mark.skipif(not bwrap_works(), reason="bwrap cannot create a sandbox here (user namespaces)")
def test_sandboxed_instance_cannot_read_another_routes_files(instance_gateway_factory, tmp_dir):
    g, toks, sa, _sb, secret_b, own_a = scenario(instance_gateway_factory, tmp_dir, sandbox=True)
    ok, text = read_file(g, toks["alpha"], sa, 10, str(own_a))
    assert ok and "alpha's own notes" in text, text
    ok, text = read_file(g, toks["alpha"], sa, 11, str(secret_b))
    assert not ok and "bravo's private notes" not in text, text
    # The gateway's other state (here the other route's directory) is hidden as a whole.
    ok, text = read_file(g, toks["alpha"], sa, 12, str(secret_b.parent.parent / "backend.log"))
    assert not ok, text
    # And it can still write its own home (Serena keeps its state there).
    msg = call(g.port, toks["alpha"], sa, 13, "write_file",
               {"path": str(own_a.parent / "written.txt"), "content": "x"})
    assert "result" in msg and not msg["result"].get("isError", False), msg
    assert (own_a.parent / "written.txt").read_text() == "x"


def test_without_sandbox_the_same_read_succeeds(instance_gateway_factory, tmp_dir):
    """The control: without --sandbox, A's backend can read B's file, so the test above can fail."""
    g, toks, sa, _sb, secret_b, _own = scenario(instance_gateway_factory, tmp_dir, sandbox=False)
    ok, text = read_file(g, toks["alpha"], sa, 10, str(secret_b))
    assert ok and "bravo's private notes" in text, text
