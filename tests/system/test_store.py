"""System tests of the object stores (src/store/) against real stores on 127.0.0.1.

Peers: OpenStack Swift with s3api (strict: verifies SigV4, rejects a wrong secret; started by
swift_s3.sh), s3rver 3.7.1 (lenient: never verifies SigV4 signatures, so a wrong secret is
accepted there, which test_wrong_secret documents), and the local directory store. Each store is
driven through build/store_tool (tests/system/store_tool.c), which prints one JSON object per
line. Every call checks that the secret never appears in anything the tool prints.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import peers

STORE_TOOL = Path(os.environ.get("SR_STORE_TOOL", peers.ROOT / "build" / "store_tool")).resolve()
S3RVER = peers.NODE_MODULES / "s3rver/bin/s3rver.js"
SWIFT_SH = peers.HERE / "swift_s3.sh"
BUCKET = "snapshots"
SIG_ERROR = "the store rejected our signature: check AWS_SECRET_ACCESS_KEY and the clock"
# Every secret any test hands to store_tool: none may ever be printed.
SECRETS = {"testing", "S3RVER-secret-never-printed", "wrong-secret-Xy7Qz3"}


class Store:
    def __init__(self, name: str, env: dict | None = None, file_dir: Path | None = None,
                 data_dir: Path | None = None, secret: str | None = None):
        self.name = name
        self.env = env or {}
        self.file_dir = file_dir
        self.data_dir = data_dir  # s3rver's data directory, for writing objects directly
        self.secret = secret

    def run(self, *args, env: dict | None = None, check: bool = True, timeout: float = 120):
        """Runs store_tool; returns (exit code, [JSON objects])."""
        argv = [str(STORE_TOOL)]
        if self.file_dir is not None:
            argv += ["--store", f"file:{self.file_dir}"]
        argv += [str(a) for a in args]
        full = {k: v for k, v in os.environ.items()
                if not k.startswith(("AWS_", "S3_", "R2_", "SR_STORE_")) and "proxy" not in k.lower()}
        full.update(self.env)
        full.update(env or {})
        p = subprocess.run(argv, env=full, capture_output=True, timeout=timeout)
        out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        for s in SECRETS | ({full.get("AWS_SECRET_ACCESS_KEY")} - {None, ""}):
            assert s not in out, f"a secret was printed by store_tool {args}: {out}"
        lines = [json.loads(line) for line in p.stdout.decode().splitlines() if line.strip()]
        if check:
            assert p.returncode == 0 and lines and lines[-1].get("ok"), f"{args} -> {out}"
        return p.returncode, lines

    def last(self, *args, **kw) -> dict:
        return self.run(*args, check=False, **kw)[1][-1]


def wait_port(port: int, guard: float = 20.0) -> None:
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((peers.HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def tool():
    if not os.access(STORE_TOOL, os.X_OK):
        pytest.fail(f"{STORE_TOOL} not found: cmake --build build (target store_tool)")
    return STORE_TOOL


@pytest.fixture(scope="module")
def s3rver(run_dir, tool):
    if not S3RVER.exists():
        pytest.fail("s3rver missing: run scripts/deps.sh (npm install in tests/system)")
    data = run_dir / "s3rver-data"
    data.mkdir(exist_ok=True)
    port = peers.free_port()
    # The legacy provider: s3rver's continuation tokens use DES, which OpenSSL 3 refuses.
    proc = peers.Proc("s3rver", ["node", S3RVER, "-d", data, "-a", peers.HOST, "-p", port,
                                 "--configure-bucket", BUCKET, "--silent"],
                      run_dir / "s3rver.log", env={"NODE_OPTIONS": "--openssl-legacy-provider"})
    wait_port(port)
    st = Store("s3rver", {"S3_ENDPOINT": f"http://{peers.HOST}:{port}", "S3_REGION": "us-east-1",
                          "R2_BUCKET_NAME": BUCKET, "AWS_ACCESS_KEY_ID": "S3RVER",
                          "AWS_SECRET_ACCESS_KEY": "S3RVER-secret-never-printed"},
               data_dir=data / BUCKET)
    # s3rver ignores the secret; the probe proves it answers signed requests.
    peers.wait_until(lambda: st.run("probe", check=False)[0] == 0, "s3rver answers", proc)
    yield st
    proc.stop()


@pytest.fixture(scope="module")
def swift(run_dir, tool):
    if shutil.which("swift-proxy-server") is None or shutil.which("memcached") is None:
        pytest.fail("Swift missing: run scripts/deps.sh (swift-proxy swift-object ... memcached)")
    base = run_dir / "swift"
    port, mport = peers.free_port(), peers.free_port()
    # Backends use port+10..12; pick a port whose neighbours are free too.
    for _ in range(20):
        if all(_free(port + d) for d in (10, 11, 12)):
            break
        port = peers.free_port()
    subprocess.run([str(SWIFT_SH), "start", str(base), str(port), str(mport)], check=True,
                   timeout=120, capture_output=True)
    st = Store("swift", {"S3_ENDPOINT": f"http://{peers.HOST}:{port}", "S3_REGION": "us-east-1",
                         "R2_BUCKET_NAME": BUCKET, "AWS_ACCESS_KEY_ID": "test:tester",
                         "AWS_SECRET_ACCESS_KEY": "testing"})
    try:
        st.run("create")
        yield st
    finally:
        subprocess.run([str(SWIFT_SH), "stop", str(base)], timeout=60)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((peers.HOST, port))
            return True
        except OSError:
            return False


@pytest.fixture
def filestore(run_dir, tool, request):
    d = run_dir / f"filestore-{request.node.name}".replace("[", "-").replace("]", "")
    return Store("file", file_dir=d)


@pytest.fixture(params=["file", "s3rver", "swift"])
def store(request):
    return request.getfixturevalue({"file": "filestore", "s3rver": "s3rver", "swift": "swift"}[request.param])


def uniq(label: str) -> str:
    return f"t/{label}-{os.getpid()}-{time.monotonic_ns()}"


def test_round_trip_binary(store, tmp_path):
    base = uniq("rt")
    blobs = {"empty": b"", "bytes": bytes(range(256)) * 3, "big": os.urandom(5 * 1024 * 1024 + 17)}
    for name, data in blobs.items():
        src = tmp_path / f"{name}.in"
        src.write_bytes(data)
        key = f"{base}/{name}.bin"
        store.run("put", key, src, hashlib.sha256(data).hexdigest())
        assert store.last("head", key) == {"ok": True, "size": len(data)}
        dst = tmp_path / f"{name}.out"
        store.run("get", key, dst)
        assert dst.read_bytes() == data
        assert dst.stat().st_mode & 0o777 == 0o600
        # No temporary file is left next to the download.
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(f"{name}.out")) == [f"{name}.out"]
    # Without a digest given, the tool hashes the file itself.
    store.run("put", f"{base}/nodigest", tmp_path / "bytes.in")
    assert store.last("head", f"{base}/nodigest")["size"] == 768
    # Small objects in memory: exact bytes back, and the bound is enforced.
    store.run("put-bytes", f"{base}/m.json", '{"v":1,"s":"\\u00e9"}')
    got = store.last("get-bytes", f"{base}/m.json", 1000)
    assert got["ok"] and got["text"] == '{"v":1,"s":"\\u00e9"}'
    over = store.last("get-bytes", f"{base}/m.json", 5)
    assert over["ok"] is False and over["code"] == -5 and "expected here" in over["error"]


def test_replace_is_whole(store, tmp_path):
    key = uniq("replace") + "/obj"
    store.run("put-bytes", key, "first version")
    store.run("put-bytes", key, "v2")
    assert store.last("get-bytes", key, 100)["text"] == "v2"
    assert store.last("head", key)["size"] == 2


def test_wrong_digest(store, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"hello\n")
    res = store.last("put", uniq("digest") + "/x", src, "0" * 64)
    if store.name == "s3rver":
        # s3rver only checks that the header is well-formed, not that it matches the body.
        assert res["ok"] is True
    else:
        assert res["ok"] is False and res["code"] == -5, res
        assert "SHA-256" in res["error"] or "different bytes" in res["error"]


def test_missing_and_delete(store):
    key = uniq("del") + "/obj"
    for cmd in (("head", key), ("get-bytes", key, 10)):
        res = store.last(*cmd)
        assert res["ok"] is False and res["code"] == -2 and key in res["error"], res
    store.run("delete", key)  # missing: succeeds
    store.run("put-bytes", key, "x")
    store.run("delete", key)
    store.run("delete", key)
    assert store.last("head", key)["code"] == -2


def test_list_order_and_prefix(store):
    base = uniq("order")
    keys = [f"{base}/b", f"{base}/a-x", f"{base}/a.txt", f"{base}/a/b", f"{base}/A", f"{base}/ab/c",
            f"{base}x/other"]
    for k in reversed(keys):
        store.run("put-bytes", k, k)
    _, lines = store.run("list", base + "/")
    got = [o["key"] for o in lines[:-1]]
    want = sorted(k for k in keys if k.startswith(base + "/"))
    if store.name == "s3rver":
        # s3rver walks its directory tree, so "a/b" comes before "a-x"; S3, R2 and Swift list in
        # byte order of the full key, as the file store does. The store passes the order through.
        assert sorted(got) == want, got
    else:
        assert got == want, got
    assert lines[-1]["count"] == 6
    assert all(o["size"] == len(o["key"]) for o in lines[:-1])
    _, lines = store.run("list", base + "/a")
    got = [o["key"] for o in lines[:-1]]
    want = [f"{base}/a-x", f"{base}/a.txt", f"{base}/a/b", f"{base}/ab/c"]
    assert (sorted(got) if store.name == "s3rver" else got) == want
    _, lines = store.run("list", uniq("nothing") + "/")
    assert lines == [{"ok": True, "count": 0}]


def test_pagination_over_1000(store):
    n = 1100
    base = uniq("page")
    keys = [f"{base}/obj-{i:05d}" for i in range(n)]
    if store.name == "s3rver":
        # s3rver keeps each object as files; writing them directly is much faster than PUTs.
        for k in keys:
            p = store.data_dir / f"{k}._S3rver_object"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(k.encode())
            Path(f"{p}.md5").write_text(hashlib.md5(k.encode()).hexdigest())
            (store.data_dir / f"{k}._S3rver_metadata.json").write_text('{"content-type":"binary/octet-stream"}')
    elif store.name == "file":
        for k in keys:
            p = store.file_dir / k
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(k.encode())
    else:
        with ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda k: store.run("put-bytes", k, k), keys))
    _, lines = store.run("list", base + "/", timeout=300)
    got = [o["key"] for o in lines[:-1]]
    assert lines[-1]["count"] == n
    assert got == keys  # every key exactly once, in order, across pages
    assert all(o["size"] == len(o["key"]) for o in lines[:-1])


def test_wrong_secret(s3rver, swift):
    bad = {"AWS_SECRET_ACCESS_KEY": "wrong-secret-Xy7Qz3"}
    for cmd in (("list", ""), ("put-bytes", uniq("badsig") + "/x", "data"), ("get-bytes", "t/none", 9)):
        res = swift.last(*cmd, env=bad)
        assert res["ok"] is False and res["code"] == -3, res
        assert SIG_ERROR in res["error"], res
    # HEAD answers carry no body, so the reason is less specific, but still names what to check.
    res = swift.last("head", "t/none", env=bad)
    assert res["code"] == -3 and "AWS_SECRET_ACCESS_KEY" in res["error"]
    # s3rver never verifies SigV4 signatures: the same wrong secret is accepted there.
    assert s3rver.last("list", "", env=bad)["ok"] is True


def test_unknown_access_key_and_bucket(store):
    if store.name == "file":
        pytest.skip("no credentials or buckets")
    res = store.last("list", "", env={"AWS_ACCESS_KEY_ID": "nobody:nobody"})
    assert res["ok"] is False and res["code"] == -3, res
    if store.name == "swift":
        # Swift's tempauth reports an unknown access key as a signature mismatch.
        assert SIG_ERROR in res["error"], res
    else:
        assert "check AWS_ACCESS_KEY_ID" in res["error"], res
    res = store.last("list", "", env={"R2_BUCKET_NAME": "no-such-bucket-here"})
    assert res["ok"] is False and res["code"] == -2, res
    assert '"no-such-bucket-here" does not exist' in res["error"] and "R2_BUCKET_NAME" in res["error"]


def test_wrong_region_on_swift(swift):
    res = swift.last("list", "", env={"S3_REGION": "eu-west-1"})
    assert res["ok"] is False and res["code"] == -4 and "S3_REGION" in res["error"], res


def test_store_down(tool):
    port = peers.free_port()  # nothing listens there
    st = Store("down", {"S3_ENDPOINT": f"http://{peers.HOST}:{port}", "R2_BUCKET_NAME": BUCKET,
                        "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "wrong-secret-Xy7Qz3",
                        "SR_STORE_RETRIES": "3"})
    t0 = time.monotonic()
    res = st.last("head", "t/x")
    took = time.monotonic() - t0
    assert res["ok"] is False and res["code"] == -1, res
    assert "unreachable" in res["error"] and "after 3 attempts" in res["error"], res
    assert f"127.0.0.1:{port}" in res["error"]
    # Two backoffs of at least 100 ms and 200 ms (jittered halves of 200 and 400), and bounded.
    assert 0.3 <= took < 10, took


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers every request with a fixed status and an S3 error document; counts requests."""

    status = 503
    code = "SlowDown"
    count = 0

    def _answer(self):
        type(self).count += 1
        body = (f"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>{self.code}</Code>"
                f"<Message>test</Message></Error>").encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, *a):
        pass


@pytest.mark.parametrize("status,code,attempts,want", [
    (503, "SlowDown", 4, -1), (500, "InternalError", 4, -1), (429, "TooManyRequests", 4, -1),
    (400, "InvalidRequest", 1, -1), (403, "SignatureDoesNotMatch", 1, -3),
])
def test_retries_only_transient(tool, status, code, attempts, want):
    handler = type("H", (_Flaky,), {"status": status, "code": code, "count": 0})
    srv = http.server.ThreadingHTTPServer((peers.HOST, 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        st = Store("flaky", {"S3_ENDPOINT": f"http://{peers.HOST}:{srv.server_address[1]}",
                             "R2_BUCKET_NAME": BUCKET, "AWS_ACCESS_KEY_ID": "k",
                             "AWS_SECRET_ACCESS_KEY": "wrong-secret-Xy7Qz3", "SR_STORE_RETRIES": "4"})
        res = st.last("get-bytes", "t/x", 100)
        assert res["ok"] is False and res["code"] == want, res
        assert handler.count == attempts, (handler.count, res)
        if attempts > 1:
            assert f"after {attempts} attempts" in res["error"] and code in res["error"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_config_errors(tool, tmp_path):
    base = {"S3_ENDPOINT": "http://127.0.0.1:9", "R2_BUCKET_NAME": BUCKET,
            "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "wrong-secret-Xy7Qz3"}
    cases = [({"R2_BUCKET_NAME": ""}, "R2_BUCKET_NAME"), ({"S3_ENDPOINT": ""}, "S3_ENDPOINT"),
             ({"S3_ENDPOINT": "ftp://x"}, "https://"), ({"S3_ENDPOINT": "http://h/bucket"}, "no path"),
             ({"AWS_ACCESS_KEY_ID": ""}, "AWS_ACCESS_KEY_ID"),
             ({"AWS_SECRET_ACCESS_KEY": ""}, "AWS_SECRET_ACCESS_KEY")]
    for over, word in cases:
        res = Store("cfg", {**base, **over}).last("list")
        assert res["ok"] is False and res["code"] == -4 and word in res["error"], (over, res)
    res = Store("cfg", file_dir=Path("relative/dir")).last("list")
    assert res["code"] == -4 and "absolute" in res["error"]
    st = Store("cfg", file_dir=tmp_path / "fs")
    for key in ("../x", "/abs", "a//b", "a b", "a/./b"):
        res = st.last("put-bytes", key, "x")
        assert res["ok"] is False and res["code"] == -4, (key, res)
    assert not (tmp_path / "x").exists()
