"""Fixtures for the system tests: real peers and the gateway, all on 127.0.0.1.

Session-scoped: the run directory (tests/system/.tmp/run-*, kept for post-mortems), one
server-everything, one supergateway --stateful + server-filesystem over a temp dir, and one
gateway in front of each (two named tokens). Function-scoped: `gateway_factory` for tests that
need their own gateway (other env, flags, signals), and `instance_gateway_factory` for gateways
that spawn a backend per token; each stops what it started.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402


def pytest_sessionstart(session):
    missing = [p for p in (peers.SERVER_EVERYTHING, peers.SUPERGATEWAY, peers.MCP_REMOTE) if not p.exists()]
    if missing:
        raise pytest.UsageError(f"npm peers missing ({missing[0]}): run scripts/deps.sh first")


@pytest.fixture(scope="session")
def run_dir() -> Path:
    base = Path(os.environ.get("SR_TEST_TMP", peers.HERE / ".tmp"))
    d = base / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    # Keep the last few runs' logs for post-mortems, not every run's.
    for old in sorted(base.glob("run-*"))[:-5]:
        shutil.rmtree(old, ignore_errors=True)
    return d


@pytest.fixture(scope="session")
def gateway_bin() -> Path:
    b = peers.gateway_bin()
    if not os.access(b, os.X_OK):
        pytest.fail(f"gateway binary {b} not found: build it (cmake --build build) or set SR_BIN")
    return b


@pytest.fixture(scope="session")
def everything(run_dir):
    p = peers.start_everything(run_dir)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def fs_root(run_dir) -> Path:
    root = run_dir / "fsroot"
    root.mkdir(exist_ok=True)
    (root / "hello.txt").write_text("hello from fs\n")
    return root


@pytest.fixture(scope="session")
def fsgw(run_dir, fs_root):
    p = peers.start_fs_gateway(run_dir, fs_root)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def tokens() -> dict:
    """Two named tokens, configured on the shared gateways."""
    return {"alice": peers.new_token("alice"), "bob": peers.new_token("bob")}


@pytest.fixture(scope="session")
def gw(run_dir, gateway_bin, everything, tokens):
    """The gateway in front of server-everything, text logs."""
    g = peers.start_gateway(run_dir, everything.port, env={"API_TOKENS_JSON": json.dumps(tokens)},
                            name="everything")
    yield g
    g.stop()


@pytest.fixture(scope="session")
def gw_fs(run_dir, gateway_bin, fsgw, tokens):
    """The gateway in front of supergateway + server-filesystem, JSON logs."""
    g = peers.start_gateway(run_dir, fsgw.port, env={"API_TOKENS_JSON": json.dumps(tokens)},
                            args=["--log-format", "json"], name="fs")
    yield g
    g.stop()


@pytest.fixture
def gateway_factory(run_dir, gateway_bin):
    started = []

    def start(upstream_port: int, env: dict | None = None, args: list | None = None, name: str = "gw"):
        g = peers.start_gateway(run_dir, upstream_port, env=env, args=args, name=name)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


@pytest.fixture
def instance_gateway_factory(run_dir, gateway_bin):
    """`serve` without --upstream (per-token backends); stops what it started, then makes sure
    no backend it spawned outlived it (every route's pid file names a process that is gone)."""
    started = []

    def start(state_dir: Path, backend_cmd: str = peers.EVERYTHING_BACKEND_CMD, env: dict | None = None,
              args: list | None = None, name: str = "inst", port: int | None = None):
        g = peers.start_instance_gateway(run_dir, state_dir, backend_cmd, env=env, args=args, name=name,
                                         port=port)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()
    for g in started:
        for pf in g.state_dir.glob("routes/*/pid"):
            rec = peers.read_pidfile(pf)
            if rec and peers.proc_running(*rec):
                try:
                    os.killpg(rec[0], 9)  # a backend leads its own process group
                except ProcessLookupError:
                    os.kill(rec[0], 9)


@pytest.fixture
def tmp_dir(run_dir, request) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)[:80]
    d = run_dir / "t" / safe
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------------------------------------
# S3 peers for the snapshot and persistence tests: one of each per session (s3peers.py); every
# test takes its own bucket from them.


@pytest.fixture(scope="session")
def swift_peer(run_dir):
    import s3peers
    p = s3peers.start_swift(run_dir)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def s3rver_peer(run_dir):
    import s3peers
    # s3rver never checks signatures; a random secret still proves none is ever printed.
    p = s3peers.start_s3rver(run_dir, peers.new_token("s3rver-secret"))
    yield p
    p.stop()
