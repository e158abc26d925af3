"""Persistence end to end: per-token instances (`serve` without --upstream) and the container
role (`run`) snapshotting a route's SERENA_HOME and workspace to a real store and restoring them on a
fresh disk.

The backend is server-everything (it never touches SERENA_HOME itself), so the state is files the
test writes into the route's home/ and work/ while the instance runs, as Serena would write a memory
or a project file.
Stores: the local directory store and Swift's s3api (strict SigV4), one Swift per session
(s3peers.py), a fresh bucket per test. "Store down" is an S3 endpoint on a port nothing listens on.

Rules as everywhere in tests/system: real processes on 127.0.0.1, each in its own session; every
wait is a poll for an observable state (/status, /health, a file, a real request succeeding),
with a hang guard; nothing asserts how long anything took.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest

import peers
import s3peers
from peers import body_messages, mcp_headers, new_token, open_session, request, rpc

GUARD = 60.0
PREFIX = "e2e/snap-v1"
ROUTE = "gen-1:alpha"
NOTE = "# memory\nThe user prefers tabs. ✓\n"
# Settings from a developer's shell that would change where snapshots go.
STORE_SETTINGS = ("SERENA_R2_STATE_ENABLED", "SERENA_R2_STATE_PREFIX", "SERENA_R2_STATE_PARTITION_MODE",
                  "SERENA_R2_STATE_STRICT", "SERENA_R2_SNAPSHOT_INTERVAL_SECONDS",
                  "SERENA_R2_SNAPSHOT_RETENTION_COUNT", "SERENA_REMOTE_STORE", "SERENA_SNAPSHOT_EXCLUDE",
                  "SERENA_INSTANCE_ID", "CLOUDFLARE_DURABLE_OBJECT_ID", "R2_BUCKET_NAME", "R2_ACCOUNT_ID",
                  "S3_ENDPOINT", "S3_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                  "SERENA_INTERNAL_SECRET", "SERENA_SNAPSHOT_KEY")


# ---------------------------------------------------------------------------------------------
# stores


class FileStore:
    name = "file"
    secret = None

    def __init__(self, root: Path):
        self.root = root
        self.args = ["--store", f"file:{root}"]
        self.env: dict = {}

    def keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith("."))

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


class S3Store:
    def __init__(self, peer: s3peers.S3Peer, tmp: Path):
        self.name = peer.name
        self.args: list[str] = []
        self.env = peer.env(peer.new_bucket("e2e"))
        self.secret = peer.secret
        self.tmp = tmp
        self._n = 0

    def keys(self, prefix: str) -> list[str]:
        _, lines = s3peers.store_tool(self.env, "list", prefix + "/")
        return sorted(o["key"] for o in lines[:-1])

    def read(self, key: str) -> bytes:
        self._n += 1
        f = self.tmp / f"get-{self._n}"
        s3peers.store_tool(self.env, "get", key, f)
        return f.read_bytes()


@pytest.fixture(params=["file", "swift"])
def store(request, tmp_dir):
    if request.param == "file":
        return FileStore(tmp_dir / "store")
    return S3Store(request.getfixturevalue("swift_peer"), tmp_dir)


# ---------------------------------------------------------------------------------------------
# helpers


def gw_env(toks: dict, store_env: dict, **extra) -> dict:
    env = {k: None for k in STORE_SETTINGS}
    env.update({"API_TOKENS_JSON": json.dumps(toks), "SLEEP_AFTER": "2s", "SERENA_STOP_GRACE": "5s",
                "SERENA_R2_STATE_PREFIX": PREFIX, "SERENA_R2_SNAPSHOT_INTERVAL_SECONDS": "0"})
    env.update(store_env)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def partition_of(route: str) -> str:
    """durable-object mode in serve: "r-" and the first 16 hex digits of sha256(route)."""
    return "r-" + hashlib.sha256(route.encode()).hexdigest()[:16]


def echo(port: int, token: str | None, sid: str, rid: int, text: str) -> None:
    h = mcp_headers(token, sid)
    r = request(port, "POST", "/mcp", rpc(rid, "tools/call", {"name": "echo", "arguments": {"message": text}}), h)
    assert r.status == 200, r
    got = [m for m in body_messages(r) if m.get("id") == rid]
    assert got and "".join(c.get("text", "") for c in got[0]["result"]["content"]) == f"Echo: {text}", r


def inst(g, token: str) -> dict:
    doc = g.status(token)
    assert doc["instance"] is not None, doc
    return doc["instance"]


def wait_inst(g, token: str, pred, what: str) -> dict:
    return peers.wait_until(lambda: (i := g.status(token)["instance"]) and pred(i) and i, what, g.proc, guard=GUARD)


def health_raw(port: int) -> peers.Resp:
    r = request(port, "GET", "/health", None, {}, timeout=5)
    assert r.status == 200, r
    return r


def assert_no_secrets(texts: list[str], secrets: list[str]) -> None:
    for s in secrets:
        if not s:
            continue
        for t in texts:
            assert s not in t, f"a secret ({s[:6]}...) appears in gateway output: ...{t[max(0, t.find(s) - 200):t.find(s) + 50]}"


def gateway_texts(g) -> list[str]:
    out = [g.log_text()]
    stdout = Path(str(g.log_path).replace(".log", ".stdout"))
    if stdout.exists():
        out.append(stdout.read_text(errors="replace"))
    return out


# ---------------------------------------------------------------------------------------------
# (a) + (b): sleep snapshots, a wiped disk is restored on wake, unchanged state uploads nothing


def test_sleep_wipe_wake_restores(instance_gateway_factory, tmp_dir, store):
    toks = {"alpha": new_token("alpha")}
    t = toks["alpha"]
    state = tmp_dir / "state"
    g = instance_gateway_factory(state, env=gw_env(toks, store.env), args=store.args)
    part = f"{PREFIX}/{partition_of(ROUTE)}"
    h = g.health()["persistence"]
    assert h["enabled"] is True and h["state"] == "ok" and h["partition_mode"] == "durable-object", h
    assert h["prefix"] == PREFIX, h

    sid = open_session(g.port, t)
    echo(g.port, t, sid, 2, "before sleep")
    home = g.route_dir(ROUTE) / "home"
    assert home.is_dir()
    (home / "memories").mkdir(exist_ok=True)
    (home / "memories" / "style.md").write_text(NOTE)
    (home / "logs").mkdir(exist_ok=True)
    (home / "logs" / "excluded.log").write_text("not in snapshots")
    # The workspace is state too: a project with its git history and Serena's memories, minus
    # what a build recreates.
    work = g.route_dir(ROUTE) / "work"
    proj = work / "proj"
    (proj / ".serena" / "memories").mkdir(parents=True)
    (proj / ".serena" / "memories" / "arch.md").write_text("layers: edge, instances, store\n")
    (proj / ".git" / "objects" / "ab").mkdir(parents=True)
    (proj / ".git" / "objects" / "ab" / "cdef").write_bytes(os.urandom(3000))
    (proj / "main.py").write_text("print('hello')\n")
    (proj / "node_modules" / "left-pad").mkdir(parents=True)
    (proj / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1\n")
    (proj / "__pycache__").mkdir()
    (proj / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0" * 100)
    assert store.keys(part) == [], "a snapshot exists before the first stop"

    # Idle -> sleep -> snapshot in a worker; /status shows it when the worker has reported.
    i1 = wait_inst(g, t, lambda i: i["state"] == "asleep" and i["last_snapshot"], "asleep with a snapshot")
    snap = i1["last_snapshot"]
    assert snap["key"].startswith(part + "/") and snap["key"].endswith(".tree"), snap
    assert snap["size"] > 0 and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", snap["time"]), snap
    keys = store.keys(part)
    assert [k for k in keys if "/packs/" not in k] == sorted([snap["key"], f"{part}/manifest.json"]), keys
    assert any("/packs/" in k for k in keys), keys
    m = json.loads(store.read(f"{part}/manifest.json"))
    assert m["partition"] == partition_of(ROUTE) and m["snapshots"][0]["key"] == snap["key"], m
    assert m["snapshots"][0]["size"] == snap["size"] == len(store.read(snap["key"])), m
    assert re.search(rf"route={re.escape(ROUTE)} snapshot {re.escape(snap['key'])} \(", g.log_text())

    # The disk is wiped (a container's disk after sleep): nothing of the route is left.
    shutil.rmtree(g.route_dir(ROUTE))
    # The next session wakes it: restore first, then the backend starts on the restored home.
    sid2 = open_session(g.port, t)
    echo(g.port, t, sid2, 2, "after wake")
    assert (home / "memories" / "style.md").read_text() == NOTE
    assert not (home / "logs" / "excluded.log").exists(), "an excluded directory came back from the store"
    assert (proj / ".serena" / "memories" / "arch.md").read_text() == "layers: edge, instances, store\n"
    assert (proj / "main.py").read_text() == "print('hello')\n"
    assert len((proj / ".git" / "objects" / "ab" / "cdef").read_bytes()) == 3000
    assert not (proj / "node_modules").exists() and not (proj / "__pycache__").exists(), \
        "build outputs came back from the store"
    i2 = inst(g, t)
    assert i2["persistence"] == f"restored {snap['key']}", i2
    assert i2["state"] in ("idle", "ready"), i2
    # Nothing but the route's own directories next to home (no staging left behind).
    assert sorted(p.name for p in g.route_dir(ROUTE).iterdir() if p.is_dir()) == ["home", "snapcache", "tmp", "work"], \
        list(g.route_dir(ROUTE).iterdir())
    assert g.health()["persistence"]["state"] == "ok"

    # (b) Unchanged state: the next sleep uploads nothing and writes no manifest.
    manifest_before = store.read(f"{part}/manifest.json")
    i3 = wait_inst(g, t, lambda i: i["state"] == "asleep" and (i["persistence"] or "").startswith("unchanged"),
                   "asleep, snapshot skipped")
    assert i3["persistence"] == "unchanged since the last snapshot: nothing uploaded", i3
    assert i3["last_snapshot"] == snap, i3
    assert store.keys(part) == keys
    assert store.read(f"{part}/manifest.json") == manifest_before
    assert f"route={ROUTE} snapshot skipped: unchanged" in g.log_text()

    # A real change is uploaded on the next sleep, as a second snapshot.
    sid3 = open_session(g.port, t)
    echo(g.port, t, sid3, 2, "change")
    (home / "memories" / "style.md").write_text(NOTE + "and spaces in YAML\n")
    i4 = wait_inst(g, t, lambda i: i["state"] == "asleep" and i["last_snapshot"] and i["last_snapshot"] != snap,
                   "a second snapshot")
    nonpack = [k for k in keys if "/packs/" not in k]
    assert [k for k in store.keys(part) if "/packs/" not in k] == sorted(nonpack + [i4["last_snapshot"]["key"]])

    texts = gateway_texts(g) + [json.dumps(g.status(t)), health_raw(g.port).body.decode()]
    assert_no_secrets(texts, [t, store.secret])


# ---------------------------------------------------------------------------------------------
# (c) store down


def down_env(port: int, secret: str) -> dict:
    return {"SERENA_R2_STATE_ENABLED": "1", "S3_ENDPOINT": f"http://{peers.HOST}:{port}", "S3_REGION": "us-east-1",
            "R2_BUCKET_NAME": "nowhere", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEDOWN00000",
            "AWS_SECRET_ACCESS_KEY": secret}


def test_store_down_non_strict_serves_degraded(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha")}
    t = toks["alpha"]
    secret = new_token("aws-secret")  # recorded: test_zz_logs greps every gateway log for it
    port = peers.free_port()  # nothing listens there
    g = instance_gateway_factory(tmp_dir / "state", env=gw_env(toks, down_env(port, secret)))
    assert g.health()["persistence"]["state"] == "ok", "degraded before the store was ever used"
    sid = open_session(g.port, t)
    echo(g.port, t, sid, 2, "served without the store")
    i = inst(g, t)
    assert i["persistence"].startswith("restore failed, started with local state only: "), i
    assert f"127.0.0.1:{port}" in i["persistence"] and "unreachable" in i["persistence"], i
    doc = g.health()
    assert doc["persistence"]["state"] == "degraded" and doc["status"] == "degraded", doc
    assert doc["persistence"]["strict"] is False
    # The snapshot after sleep fails too, and says so; the instance can still be woken.
    wait_inst(g, t, lambda i: i["state"] == "asleep" and (i["persistence"] or "").startswith("snapshot failed"),
              "the failed snapshot reported")
    assert g.health()["persistence"]["state"] == "degraded"
    echo(g.port, t, open_session(g.port, t), 2, "woken again")
    texts = gateway_texts(g) + [json.dumps(g.status(t)), health_raw(g.port).body.decode()]
    assert_no_secrets(texts, [t, secret])


def test_store_down_strict_refuses(instance_gateway_factory, tmp_dir):
    toks = {"alpha": new_token("alpha")}
    t = toks["alpha"]
    secret = new_token("aws-secret")
    port = peers.free_port()
    g = instance_gateway_factory(tmp_dir / "state", env=gw_env(toks, down_env(port, secret),
                                                               SERENA_R2_STATE_STRICT="1"))
    assert g.health()["persistence"]["strict"] is True
    r = request(g.port, "POST", "/mcp", peers.init_body(), mcp_headers(t), timeout=GUARD)
    assert r.status == 503, r
    assert (r.header("content-type") or "").startswith("application/json"), r
    body = r.json()
    assert body.get("jsonrpc") == "2.0" and body.get("id") == 1 and isinstance(body.get("error"), dict), body
    msg = body["error"]["message"]
    assert "could not be restored" in msg and "strict" in msg and f"127.0.0.1:{port}" in msg, msg
    # No backend was started for it, and the refusal is visible in /status and /health.
    assert g.starts(ROUTE) == [], g.log_text()[-2000:]
    assert not (g.route_dir(ROUTE) / "pid").exists()
    i = inst(g, t)
    assert i["state"] == "asleep" and "SERENA_R2_STATE_STRICT=1" in (i["last_error"] or ""), i
    doc = g.health()
    assert doc["persistence"]["state"] == "degraded" and doc["status"] == "degraded", doc
    # Every later request is refused the same way (the restore is tried again each time).
    r2 = request(g.port, "POST", "/mcp", peers.init_body(rid=2), mcp_headers(t), timeout=GUARD)
    assert r2.status == 503 and "could not be restored" in r2.json()["error"]["message"], r2
    assert g.starts(ROUTE) == []
    texts = gateway_texts(g) + [json.dumps(g.status(t)), health_raw(g.port).body.decode(), r.body.decode()]
    assert_no_secrets(texts, [t, secret])


# ---------------------------------------------------------------------------------------------
# (d) the container role: `run` snapshots on SIGTERM, a fresh disk restores


class Run:
    def __init__(self, run_dir: Path, state: Path, env: dict, name: str):
        self.port = peers.free_port()
        self.state = state
        log = run_dir / f"gateway-{name}-{self.port}.log"
        peers.GATEWAY_LOGS.append(log)
        full = {k: None for k in (*STORE_SETTINGS, *peers.INSTANCE_SETTINGS, "API_TOKEN", "API_TOKENS_JSON",
                                  "API_TOKENS_FILE", "MCP_CONTAINER_ROUTE_GENERATION")}
        full.update(env)
        self.proc = peers.Proc(name, [peers.gateway_bin(), "run", "--listen", f"{peers.HOST}:{self.port}",
                                      "--state-dir", state, "--backend-cmd", peers.EVERYTHING_BACKEND_CMD],
                               log, env=full)
        try:
            # Ready: a real initialize through the relay reaches the backend.
            peers.wait_until(lambda: request(self.port, "POST", "/mcp", peers.init_body(), mcp_headers(),
                                             timeout=10).status == 200, f"{name} relays initialize", self.proc,
                             guard=GUARD)
        except BaseException:
            self.proc.stop()
            raise

    def home(self) -> Path:
        homes = list(self.state.glob("routes/*/home"))
        assert len(homes) == 1, homes
        return homes[0]


def test_run_snapshots_on_sigterm_and_restores_on_a_fresh_disk(run_dir, tmp_dir, swift_peer):
    store = S3Store(swift_peer, tmp_dir)
    env = {**store.env, "SERENA_INSTANCE_ID": "do-123", "SERENA_R2_STATE_PREFIX": PREFIX,
           "SERENA_R2_SNAPSHOT_INTERVAL_SECONDS": "0", "SERENA_STOP_GRACE": "5s"}
    part = f"{PREFIX}/do-123"
    r1 = Run(run_dir, tmp_dir / "disk1", env, "run1")
    home = r1.home()
    assert home == peers.route_dir(r1.state, "gen-1:run") / "home"
    (home / "memories").mkdir(exist_ok=True)
    (home / "memories" / "style.md").write_text(NOTE)
    (home.parent / "work" / "created-by-the-client.txt").write_text("kept across containers\n")
    h = json.loads(health_raw(r1.port).body)
    assert h["role"] == "run" and h["persistence"]["enabled"] is True, h
    assert store.keys(part) == []
    r1.proc.send_signal(signal.SIGTERM)
    assert r1.proc.wait(GUARD) == 0, r1.proc.log_text()[-3000:]
    log1 = r1.proc.log_text()
    r1.proc.stop()
    keys = store.keys(part)
    archives = [k for k in keys if k.endswith(".tree")]
    assert len(archives) == 1 and f"{part}/manifest.json" in keys, keys
    m = json.loads(store.read(f"{part}/manifest.json"))
    assert m["partition"] == "do-123" and m["snapshots"][0]["key"] == archives[0], m

    # A new container on an EMPTY disk: the state comes back before the backend starts.
    disk2 = tmp_dir / "disk2"
    disk2.mkdir()
    r2 = Run(run_dir, disk2, env, "run2")
    try:
        assert (r2.home() / "memories" / "style.md").read_text() == NOTE
        assert (r2.home().parent / "work" / "created-by-the-client.txt").read_text() == "kept across containers\n"
        assert f"restored {archives[0]}" in r2.proc.log_text(), r2.proc.log_text()[-3000:]
        texts = [log1, r2.proc.log_text(), health_raw(r2.port).body.decode()]
    finally:
        r2.proc.send_signal(signal.SIGTERM)
        rc = r2.proc.wait(GUARD)
        log2 = r2.proc.log_text()
        r2.proc.stop()
    assert rc == 0, log2[-3000:]
    # Unchanged: the shutdown snapshot of the second container uploaded nothing.
    assert store.keys(part) == keys
    assert "snapshot skipped: unchanged" in log2, log2[-3000:]
    assert_no_secrets(texts, [store.secret])


# ---------------------------------------------------------------------------------------------
# A stop while an interval snapshot is in flight must still end with a snapshot of the final state


def test_stop_during_interval_snapshot_keeps_the_final_state(instance_gateway_factory, gateway_bin, tmp_dir):
    toks = {"alpha": new_token("alpha")}
    t = toks["alpha"]
    store = FileStore(tmp_dir / "store")
    state = tmp_dir / "state"
    home = peers.route_dir(state, ROUTE) / "home"
    # A home that is already on disk (no restore), big enough that a snapshot takes a while.
    # "aa-first.md" sorts first, so a worker whose archive has grown past 1 MiB has read it.
    (home / "big").mkdir(parents=True)
    (home / "aa-first.md").write_text("v1\n")
    for i in range(4):
        with open(home / "big" / f"blob{i}", "wb") as f:
            for _ in range(50):
                f.write(os.urandom(1 << 20))
    g = instance_gateway_factory(state, env=gw_env(toks, {}, SLEEP_AFTER="15m",
                                                   SERENA_R2_SNAPSHOT_INTERVAL_SECONDS="1"),
                                 args=store.args)
    echo(g.port, t, open_session(g.port, t), 2, "running")
    # A pack stored means the worker has read aa-first.md (read first) and megabytes after it.
    part = f"{PREFIX}/{partition_of(ROUTE)}"
    peers.wait_until(lambda: any("/packs/" in k and "#" not in k for k in store.keys(part)),
                     "an interval snapshot past aa-first.md", g.proc, guard=GUARD)
    # The user's last change lands after the worker read the file, then the container stops.
    (home / "aa-first.md").write_text("v2\n")
    os.kill(g.proc.pid, signal.SIGTERM)
    assert g.proc.wait(GUARD) == 0, g.log_text()[-3000:]
    log = g.log_text()
    # The race really happened: the backend stopped before the interval snapshot finished.
    stopped = log.index(f"route={ROUTE} instance stopped")
    snaps = [m.start() for m in re.finditer(rf"route={re.escape(ROUTE)} snapshot {re.escape(PREFIX)}/", log)]
    assert snaps and snaps[-1] > stopped, "the interval snapshot ended before the stop: race not exercised"
    # What a fresh disk gets back must be the state at the stop.
    target = tmp_dir / "fresh" / "home"
    target.parent.mkdir()
    p = peers.run_cmd([gateway_bin, "restore", *store.args, "--prefix", PREFIX, "--partition", partition_of(ROUTE),
                       "--state", target, "--json"], env={"SERENA_R2_STATE_ENABLED": "0", "SERENA_SNAPSHOT_KEY": ""})
    assert p.returncode == 0, p.stderr
    assert (target / "aa-first.md").read_text() == "v2\n", \
        f"the change made before the stop was lost; log:\n{log[-2500:]}"
