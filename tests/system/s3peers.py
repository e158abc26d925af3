"""S3 peers shared by the snapshot and persistence tests: one Swift (s3api) and one s3rver per
test session (session fixtures `swift_peer` and `s3rver_peer` in conftest.py), and a small client
over build/store_tool to read and write their objects directly.

Swift is the strict peer (it verifies SigV4: tempauth key "test:tester", secret "testing");
s3rver never checks signatures. Each test takes its own bucket (`S3Peer.new_bucket`), so tests
sharing a peer never see each other's objects. Same rules as peers.py: 127.0.0.1 only, setsid,
ready means a real signed request succeeded, stopped by PID with a wait for exit.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import peers

STORE_TOOL = Path(os.environ.get("SR_STORE_TOOL", peers.ROOT / "build" / "store_tool")).resolve()
S3RVER = peers.NODE_MODULES / "s3rver/bin/s3rver.js"
SWIFT_SH = peers.HERE / "swift_s3.sh"
SWIFT_SECRET = "testing"  # fixed by swift_s3.sh's tempauth configuration
_bucket_seq = itertools.count(1)


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "S3_", "R2_", "SR_STORE_", "SERENA_", "CLOUDFLARE_"))
            and "proxy" not in k.lower()}


def store_tool(env: dict, *args, check: bool = True, timeout: float = 120) -> tuple[int, list[dict]]:
    """Runs build/store_tool with exactly env's S3 settings; returns (exit code, JSON lines)."""
    if not os.access(STORE_TOOL, os.X_OK):
        raise AssertionError(f"{STORE_TOOL} not found: cmake --build build (target store_tool)")
    full = _clean_env()
    full.update(env)
    p = subprocess.run([str(STORE_TOOL), *[str(a) for a in args]], env=full, capture_output=True, timeout=timeout)
    lines = [json.loads(line) for line in p.stdout.decode().splitlines() if line.strip()]
    if check and not (p.returncode == 0 and lines and lines[-1].get("ok")):
        raise AssertionError(f"store_tool {args[:2]} failed ({p.returncode}): {p.stdout!r} {p.stderr!r}")
    return p.returncode, lines


class S3Peer:
    """A running S3 service: its settings (env) and how to stop it."""

    def __init__(self, name: str, port: int, access_key: str, secret: str, stop):
        self.name = name
        self.port = port
        self.access_key = access_key
        self.secret = secret
        self._stop = stop

    def env(self, bucket: str) -> dict:
        """The settings serena-remote needs for this peer and bucket (SERENA_R2_STATE_ENABLED=1)."""
        return {"SERENA_R2_STATE_ENABLED": "1", "S3_ENDPOINT": f"http://{peers.HOST}:{self.port}",
                "S3_REGION": "us-east-1", "R2_BUCKET_NAME": bucket, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret}

    def new_bucket(self, label: str = "b") -> str:
        """Creates a fresh bucket (PUT Bucket through our own store) and returns its name."""
        name = f"{label}-{os.getpid()}-{next(_bucket_seq)}".lower()
        store_tool(self.env(name), "create")
        return name

    def stop(self) -> None:
        self._stop()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((peers.HOST, port))
            return True
        except OSError:
            return False


def start_swift(run_dir: Path) -> S3Peer:
    if shutil.which("swift-proxy-server") is None or shutil.which("memcached") is None:
        raise AssertionError("Swift missing: run scripts/deps.sh (swift-proxy swift-object ... memcached)")
    base = run_dir / "swift-session"
    port, mport = peers.free_port(), peers.free_port()
    # Backends use port+10..12: pick a port whose neighbours are free too.
    for _ in range(20):
        if all(_port_free(port + d) for d in (10, 11, 12)):
            break
        port = peers.free_port()
    # swift_s3.sh waits for a signed ListBuckets to answer 200 before it returns.
    p = subprocess.run([str(SWIFT_SH), "start", str(base), str(port), str(mport)], timeout=120,
                       capture_output=True, text=True)
    if p.returncode != 0:
        subprocess.run([str(SWIFT_SH), "stop", str(base)], timeout=60)
        raise AssertionError(f"swift did not start: {p.stderr}")
    return S3Peer("swift", port, "test:tester", SWIFT_SECRET,
                  lambda: subprocess.run([str(SWIFT_SH), "stop", str(base)], timeout=60))


def start_s3rver(run_dir: Path, secret: str) -> S3Peer:
    if not S3RVER.exists():
        raise AssertionError("s3rver missing: run scripts/deps.sh (npm install in tests/system)")
    data = run_dir / "s3rver-session"
    data.mkdir(exist_ok=True)
    port = peers.free_port()
    # The legacy provider: s3rver's continuation tokens use DES, which OpenSSL 3 refuses.
    proc = peers.Proc("s3rver", ["node", S3RVER, "-d", data, "-a", peers.HOST, "-p", port, "--silent"],
                      run_dir / "s3rver-session.log", env={"NODE_OPTIONS": "--openssl-legacy-provider"})
    peer = S3Peer("s3rver", port, "S3RVER", secret, proc.stop)
    try:
        # Ready: a signed PUT Bucket succeeds (s3rver ignores the secret, but parses the request).
        peers.wait_until(lambda: store_tool(peer.env("ready"), "create", check=False)[0] == 0,
                         "s3rver answers a signed request", proc)
    except BaseException:
        proc.stop()
        raise
    return peer
