"""A backend's output in the gateway's own log (SERENA_BACKEND_OUTPUT), and errors that quote it.

`run` is the PID 1 of a container: its backend.log sits inside the container, where nobody
reading an error can open it. So `run` (by default) and `serve --backend-output log` copy every
line the backend writes into their own log, prefixed with the route and cut to bounded lines,
and the errors clients and /status get quote the backend's last line instead of naming a file.
`serve` by default keeps the output in <route>/backend.log only, and its errors name that file.
"""

from __future__ import annotations

import json

import peers
from peers import init_body, mcp_headers, new_token, request

GUARD = 60.0
# Prints two lines (one with an escape sequence and one far too long), then fails.
CRASH = ("sh -c 'echo hello from the backend; printf \"\\033[1mbold\\n\"; "
         "head -c 3000 /dev/zero | tr \"\\0\" x; echo; echo it broke >&2; exit 3'")


def error_of(r: peers.Resp) -> str:
    b = r.json()
    assert b.get("jsonrpc") == "2.0" and isinstance(b.get("error"), dict), r
    return b["error"]["message"]


def test_run_copies_backend_output_to_its_log_and_quotes_it(run_dir, tmp_dir):
    port = peers.free_port()
    log = run_dir / f"run-output-{port}.log"
    peers.GATEWAY_LOGS.append(log)
    env = {k: None for k in (*peers.INSTANCE_SETTINGS, "API_TOKEN", "API_TOKENS_JSON", "API_TOKENS_FILE",
                             "SERENA_BACKEND_OUTPUT", "SERENA_R2_STATE_ENABLED")}
    proc = peers.Proc("run-output", [peers.gateway_bin(), "run", "--listen", f"{peers.HOST}:{port}",
                                     "--state-dir", tmp_dir / "state", "--store", "none",
                                     "--backend-cmd", CRASH], log, env=env)
    try:
        peers.wait_until(lambda: peers.health_ok(port), "run /health", proc)
        r = request(port, "POST", "/mcp", init_body(), mcp_headers(), timeout=GUARD)
        assert r.status in (502, 503), r
        msg = error_of(r)
        assert 'its last output: "it broke"' in msg and "gateway's log" in msg, msg
        assert "backend.log" not in msg and str(tmp_dir) not in msg, msg
        peers.wait_until(lambda: "backend: it broke" in proc.log_text(), "the output in run's log", proc)
        text = proc.log_text()
        assert "route=gen-1:run backend: hello from the backend" in text, text[-3000:]
        assert "route=gen-1:run backend: ?[1mbold" in text, text[-3000:]  # no raw escape sequence
        long = [line for line in text.splitlines() if "backend: xxxx" in line]
        assert long and all(len(line) < 800 and line.endswith("[line cut]") for line in long), long
        h = json.loads(request(port, "GET", "/health").body)
        assert h["role"] == "run"
    finally:
        proc.stop()


def test_serve_keeps_output_in_the_file_unless_asked(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha")}
    env = {"API_TOKENS_JSON": json.dumps(toks)}
    g = instance_gateway_factory(tmp_dir / "state", backend_cmd=CRASH, env=env, name="out-file")
    r = request(g.port, "POST", "/mcp", init_body(), mcp_headers(toks["alpha"]), timeout=GUARD)
    msg = error_of(r)
    assert str(g.route_dir("gen-1:alpha") / "backend.log") in msg and "it broke" in msg, msg
    assert "backend: hello" not in g.log_text()
    assert "hello from the backend" in (g.route_dir("gen-1:alpha") / "backend.log").read_text()

    g2 = instance_gateway_factory(tmp_dir / "state2", backend_cmd=CRASH, env=env, name="out-log",
                                  args=["--backend-output", "log"])
    r = request(g2.port, "POST", "/mcp", init_body(), mcp_headers(toks["alpha"]), timeout=GUARD)
    assert "it broke" in error_of(r)
    peers.wait_until(lambda: "route=gen-1:alpha backend: hello from the backend" in g2.log_text(),
                     "the output in serve's log", g2.proc)
