"""Snapshots through the CLI (`serena-remote snapshot | restore | snapshots`) against real stores.

Every test runs once per store in STORES: the local-directory store, Swift's s3api (strict: it
verifies SigV4) and s3rver (lenient), each behind the same small interface (args, env, read,
write, delete, keys). The S3 peers are started once per session (s3peers.py, conftest.py) and each
test gets a fresh bucket, so the layout constants below hold for every store.

No timed asserts: the kill -9 test waits for the temporary archive to appear before killing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

import s3peers

PREFIX = "t/snap-v1"
PARTITION = "p1"
PART = f"{PREFIX}/{PARTITION}"
MANIFEST = f"{PART}/manifest.json"


class FileStore:
    """`--store file:/abs/dir`: objects are files under the directory, named by their keys."""

    name = "file"

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.args = ["--store", f"file:{root}"]
        self.env: dict[str, str] = {}

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        p = self.root / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def keys(self, prefix: str = PART) -> list[str]:
        base = self.root / prefix
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))


class S3Store:
    """SERENA_R2_STATE_ENABLED=1 with S3_ENDPOINT etc.: a fresh bucket on a session-wide peer,
    read and written directly with build/store_tool (our store, already tested on its own)."""

    def __init__(self, peer: s3peers.S3Peer, tmp: Path):
        self.name = peer.name
        self.peer = peer
        self.bucket = peer.new_bucket("snap")
        self.args: list[str] = []
        self.env = peer.env(self.bucket)
        self.secret = peer.secret
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self._n = 0

    def _file(self) -> Path:
        self._n += 1
        return self.tmp / f"obj-{self._n}"

    def tool(self, *args, check: bool = True):
        return s3peers.store_tool(self.env, *args, check=check)

    def read(self, key: str) -> bytes:
        f = self._file()
        self.tool("get", key, f)
        return f.read_bytes()

    def write(self, key: str, data: bytes) -> None:
        f = self._file()
        f.write_bytes(data)
        self.tool("put", key, f, hashlib.sha256(data).hexdigest())

    def delete(self, key: str) -> None:
        self.tool("delete", key)

    def keys(self, prefix: str = PART) -> list[str]:
        _, lines = self.tool("list", prefix + "/")
        return sorted(o["key"] for o in lines[:-1])


STORES = {
    "file": lambda request, tmp: FileStore(tmp / "store-file"),
    "swift": lambda request, tmp: S3Store(request.getfixturevalue("swift_peer"), tmp / "store-swift"),
    "s3rver": lambda request, tmp: S3Store(request.getfixturevalue("s3rver_peer"), tmp / "store-s3rver"),
}


@pytest.fixture(params=sorted(STORES))
def store(request, tmp_path):
    return STORES[request.param](request, tmp_path)


class Cli:
    def __init__(self, bin_: Path, store, tmp: Path):
        self.bin = bin_
        self.store = store
        self.tmp = tmp / "tmpdir"
        self.tmp.mkdir(exist_ok=True)

    def env(self) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith(("SERENA_", "R2_", "S3_", "AWS_", "CLOUDFLARE_"))}
        e.update(self.store.env)
        e["TMPDIR"] = str(self.tmp)
        return e

    def argv(self, cmd: str, *extra: str) -> list[str]:
        return [str(self.bin), cmd, *self.store.args, "--prefix", PREFIX, "--partition", PARTITION, *extra]

    def run(self, cmd: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(self.argv(cmd, *extra), env=self.env(), capture_output=True, text=True, timeout=600)
        secret = getattr(self.store, "secret", None)
        assert not secret or secret not in p.stdout + p.stderr, f"{cmd} printed the store's secret"
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} {extra} failed ({p.returncode}): {p.stderr}")
        return p

    def json(self, cmd: str, *extra: str) -> dict:
        return json.loads(self.run(cmd, "--json", *extra).stdout)


@pytest.fixture
def cli(gateway_bin, store, tmp_path):
    return Cli(gateway_bin, store, tmp_path)


def make_tree(home: Path, small: int = 1500) -> None:
    home.mkdir(parents=True, exist_ok=True)
    for i in range(small):
        d = home / "projects" / f"p{i % 20}" / "memories"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"note-{i}.md").write_text(f"memory {i}\n" * (i % 7))
    for i in range(20):
        (home / f"empty-{i}").write_bytes(b"")
    deep = home
    for i in range(40):
        deep = deep / f"level{i}"
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_text("deep")
    (home / "ünïcødé-名前.yml").write_text("名前: ✓\n")
    (home / "日本").mkdir()
    (home / "日本" / "ファイル.txt").write_bytes(os.urandom(3000))
    (home / "link-to-file").symlink_to("projects/p1/memories/note-1.md")
    (home / "projects" / "p2" / "up").symlink_to("../p3")
    (home / "dangling").symlink_to("does-not-exist-yet")
    (home / "serena_config.yml").write_text("web_dashboard: false\n")
    (home / "language_servers").mkdir()
    (home / "language_servers" / "big.bin").write_bytes(b"\0" * 10000)
    (home / "logs").mkdir()
    (home / "logs" / "a.log").write_text("log")


def describe(root: Path, exclude=("language_servers", "logs")) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in exclude]
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = str(rel_dir / n)
            if rel_dir == Path(".") and n in exclude:
                continue
            if p.is_symlink():
                out[rel] = ("l", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("d", p.stat().st_mode & 0o777)
            else:
                out[rel] = ("f", p.stat().st_mode & 0o777, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def manifest(store) -> dict:
    return json.loads(store.read(MANIFEST))


def archives(store) -> list[str]:
    """The snapshots themselves (format 2 trees; format 1 archives)."""
    return [k for k in store.keys() if k.endswith((".tree", ".tar.zst"))]


def packs(store) -> list[str]:
    return [k for k in store.keys() if "/packs/" in k]


def _varint(b: bytes, at: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        c = b[at]
        at += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, at


def tree_packs(data: bytes) -> set[str]:
    """The pack names a stored (unencrypted) tree uses: its pack table (docs/snapshots.md)."""
    raw = subprocess.run(["zstd", "-d", "-c", "-q"], input=data, capture_output=True, check=True).stdout
    assert raw[:8] == b"SRTREE1\n", raw[:8]
    n, at = _varint(raw, 8)
    out = set()
    for _ in range(n):
        out.add(raw[at:at + 32].hex())
        _, at = _varint(raw, at + 32)
        at += 8
    return out


def used_packs(store) -> set[str]:
    """Every pack a snapshot named in the manifest uses, as store keys."""
    used = set()
    for s in manifest(store)["snapshots"]:
        if s["key"].endswith(".tree"):
            used |= {f"{PART}/packs/{h}" for h in tree_packs(store.read(s["key"]))}
    return used


def test_round_trip(cli, store, tmp_path):
    home = tmp_path / "home"
    make_tree(home)
    want = describe(home)
    r = cli.json("snapshot", "--state", str(home))
    assert not r["skipped"] and r["key"].startswith(PART + "/") and len(r["sha256"]) == 64
    assert r["files"] == len(want) and r["key"].endswith(".tree")
    m = manifest(store)
    assert m["format"] == 2 and m["partition"] == PARTITION and m["snapshots"][0]["key"] == r["key"]
    assert hashlib.sha256(store.read(r["key"])).hexdigest() == r["sha256"]
    # Everything stored is the tree, the manifest and the packs the tree names.
    assert set(store.keys()) == {r["key"], MANIFEST} | used_packs(store)
    assert r["added"] == r["total"] == len(store.read(r["key"])) + sum(len(store.read(k)) for k in packs(store))

    restored = tmp_path / "elsewhere" / "home"
    restored.parent.mkdir()
    r2 = cli.json("restore", "--state", str(restored))
    assert r2["key"] == r["key"] and not r2["fell_back"]
    assert describe(restored) == want
    # Nothing is left beside the restored directory (staging, old copies, downloads).
    assert [p.name for p in restored.parent.iterdir()] == ["home"]

    # Restoring over an existing home replaces its content, keeps excluded names.
    (home / "projects" / "p1" / "memories" / "note-1.md").write_text("changed")
    (home / "extra").write_text("gone after restore")
    cli.run("restore", "--state", str(home))
    assert describe(home) == want
    assert (home / "language_servers" / "big.bin").stat().st_size == 10000
    assert sorted(p.name for p in home.parent.iterdir() if p.name.startswith((".home", "home."))) == []

    listing = cli.run("snapshots").stdout
    assert r["key"] in listing and "AGE" in listing


def test_unchanged_is_skipped_and_force_takes_one(cli, store, tmp_path):
    home = tmp_path / "home"
    make_tree(home, small=50)
    first = cli.json("snapshot", "--state", str(home))
    objects = store.keys()
    m = store.read(MANIFEST)
    # Touching mtimes (and excluded names) changes nothing.
    os.utime(home / "serena_config.yml", (1, 1))
    (home / "logs" / "b.log").write_text("more")
    again = cli.json("snapshot", "--state", str(home))
    assert again["skipped"] and again["key"] == first["key"]
    assert store.keys() == objects and store.read(MANIFEST) == m
    assert "nothing uploaded" in cli.run("snapshot", "--state", str(home)).stdout
    forced = cli.json("snapshot", "--state", str(home), "--force")
    assert not forced["skipped"] and forced["key"] != first["key"]
    assert [s["key"] for s in manifest(store)["snapshots"]] == [forced["key"], first["key"]]
    # A real change is taken without --force.
    (home / "serena_config.yml").write_text("web_dashboard: true\n")
    assert not cli.json("snapshot", "--state", str(home))["skipped"]


def test_retention(cli, store, tmp_path):
    home = tmp_path / "home"
    make_tree(home, small=10)
    keys = [cli.json("snapshot", "--state", str(home), "--force", "--retention", "3")["key"] for _ in range(5)]
    assert len(set(keys)) == 5
    assert [s["key"] for s in manifest(store)["snapshots"]] == keys[::-1][:3]
    assert archives(store) == sorted(keys[2:])
    # No pack is left that no kept snapshot uses, and none a kept one uses is gone.
    assert set(packs(store)) == used_packs(store)


def test_flipped_byte_falls_back(cli, store, tmp_path):
    home = tmp_path / "home"
    make_tree(home, small=10)
    old = cli.json("snapshot", "--state", str(home))["key"]
    want = describe(home)
    (home / "new-file").write_text("only in the newest")
    new = cli.json("snapshot", "--state", str(home))["key"]
    data = bytearray(store.read(new))
    data[len(data) // 2] ^= 0x01
    store.write(new, bytes(data))
    target = tmp_path / "r" / "home"
    target.parent.mkdir()
    r = cli.json("restore", "--state", str(target))
    assert r["fell_back"] and r["key"] == old
    assert new in r["note"] and "corrupt" in r["note"]
    assert describe(target) == want
    # On the terminal path the note goes to stderr.
    p = cli.run("restore", "--state", str(target))
    assert "fell back" in p.stderr
    # An explicit key is never silently replaced by another.
    p = cli.run("restore", "--state", str(target), "--snapshot", new, check=False)
    assert p.returncode == 1 and "corrupt" in p.stderr


def test_kill_9_mid_snapshot(cli, store, tmp_path):
    home = tmp_path / "home"
    make_tree(home, small=10)
    first = cli.json("snapshot", "--state", str(home))["key"]
    big = home / "big"
    big.mkdir()
    for i in range(60):
        (big / f"blob{i}").write_bytes(os.urandom(2 * 1024 * 1024))
    before = set(packs(store))
    proc = subprocess.Popen(cli.argv("snapshot", "--state", str(home)), env=cli.env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Wait until the worker has uploaded a pack of the new content, then kill its process group.
    deadline = time.monotonic() + 120
    while not {k for k in packs(store) if "#" not in k} - before and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the snapshot finished before it could be killed"
    orphans = set(packs(store)) - before
    assert orphans, "nothing was uploaded before the kill"
    m = manifest(store)
    assert m["snapshots"][0]["key"] == first
    present = set(store.keys())
    assert all(s["key"] in present for s in m["snapshots"])
    restored = tmp_path / "r" / "home"
    restored.parent.mkdir()
    assert cli.json("restore", "--state", str(restored))["key"] == first
    # The next snapshot works, and collects what the killed one left: packs older than its own
    # start that no kept snapshot uses (store times have one-second resolution, and S3 stores
    # may round them up: start the next one two seconds boundaries later than the orphans).
    t0 = int(time.time())
    while int(time.time()) <= t0 + 1:
        time.sleep(0.05)
    nxt = cli.json("snapshot", "--state", str(home))
    assert not nxt["skipped"] and nxt["key"] in set(store.keys())
    assert set(packs(store)) == used_packs(store), "orphans of the killed upload are still stored"
    assert "collected" in nxt["note"], nxt


def craft(entries) -> bytes:
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            if kind == "f":
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            elif kind == "l":
                ti.type = tarfile.SYMTYPE
                ti.linkname = data
                t.addfile(ti)
            elif kind == "h":
                ti.type = tarfile.LNKTYPE
                ti.linkname = data
                t.addfile(ti)
    return subprocess.run(["zstd", "-q", "-c"], input=b.getvalue(), capture_output=True, check=True).stdout


def publish(store, key: str, data: bytes) -> None:
    """Put an archive into the store and name it in a valid manifest, as if we had made it."""
    store.write(key, data)
    entry = {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "created": int(time.time()),
             "files": 1, "fingerprint": "0" * 64}
    store.write(MANIFEST, json.dumps({"format": 1, "partition": PARTITION, "snapshots": [entry]}).encode())


@pytest.mark.parametrize("case", ["dotdot", "symlink_abs", "symlink_up", "through_link", "hardlink_out"])
def test_hostile_archive_refused(cli, store, tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    entries = {
        "dotdot": [("ok.txt", "f", b"ok"), ("../escape.txt", "f", b"x")],
        "symlink_abs": [("esc", "l", str(outside))],
        "symlink_up": [("d/esc", "l", "../../outside")],
        "through_link": [("esc", "l", str(outside)), ("esc/through.txt", "f", b"y")],
        "hardlink_out": [("h", "h", "/etc/passwd")],
    }[case]
    key = f"{PART}/20200101T000000Z-000001.tar.zst"
    publish(store, key, craft(entries))
    home = tmp_path / "state" / "home"
    home.mkdir(parents=True)
    (home / "keep.txt").write_text("local state")
    before = sorted(p.name for p in tmp_path.iterdir())
    p = cli.run("restore", "--state", str(home), check=False)
    assert p.returncode == 1, p.stdout
    assert "refused" in p.stderr or "leaves the tree" in p.stderr or "contains '..'" in p.stderr, p.stderr
    # Nothing outside: the state's parent holds only home, the rest of tmp_path is unchanged.
    assert [x.name for x in home.parent.iterdir()] == ["home"]
    assert (home / "keep.txt").read_text() == "local state"
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "state" / "escape.txt").exists()


def test_format_1_snapshot_still_restores(cli, store, tmp_path):
    """A store written by an earlier build (a tar.zst of SERENA_HOME named in a format 1 manifest):
    its snapshot restores, the next snapshot is a tree beside it, and retention removes it in turn."""
    key = f"{PART}/20200101T000000Z-000001.tar.zst"
    publish(store, key, craft([("serena_config.yml", "f", b"web_dashboard: false\n"),
                               ("memories/old.md", "f", b"from the old format\n")]))
    home = tmp_path / "state" / "home"
    home.parent.mkdir()
    r = cli.json("restore", "--state", str(home))
    assert r["key"] == key and not r["fell_back"], r
    assert (home / "memories" / "old.md").read_text() == "from the old format\n"
    (home / "memories" / "new.md").write_text("written after the upgrade\n")
    nxt = cli.json("snapshot", "--state", str(home), "--retention", "2")
    assert nxt["key"].endswith("-000002.tree"), nxt
    m = manifest(store)
    assert m["format"] == 2 and [s["key"] for s in m["snapshots"]] == [nxt["key"], key]
    # The old snapshot can still be restored by name, and falls out with retention.
    target = tmp_path / "r" / "home"
    target.parent.mkdir()
    assert cli.json("restore", "--state", str(target), "--snapshot", key)["key"] == key
    assert not (target / "memories" / "new.md").exists()
    (home / "memories" / "newer.md").write_text("x\n")
    cli.json("snapshot", "--state", str(home), "--retention", "2")
    assert key not in store.keys() and all(k.endswith(".tree") for k in archives(store))


def test_manifest_missing_falls_back_to_listing(cli, store, tmp_path):
    home = tmp_path / "home"
    make_tree(home, small=10)
    cli.json("snapshot", "--state", str(home))
    (home / "later").write_text("newer")
    newest = cli.json("snapshot", "--state", str(home))["key"]
    want = describe(home)
    store.delete(MANIFEST)
    target = tmp_path / "r" / "home"
    target.parent.mkdir()
    r = cli.json("restore", "--state", str(target))
    assert r["key"] == newest and "listing" in r["note"]
    assert describe(target) == want
    listed = cli.json("snapshots")
    assert listed["source"] == "listing" and listed["snapshots"][0]["key"] == newest
    # A corrupt manifest is treated the same way.
    store.write(MANIFEST, b'{"format":1,"partition":"p1","snapshots":[{"key":"../../etc"}]}')
    r = cli.json("restore", "--state", str(target))
    assert r["key"] == newest and "corrupt" in r["note"]


def test_nothing_to_restore(cli, store, tmp_path):
    home = tmp_path / "home"
    p = cli.run("restore", "--state", str(home))
    assert "nothing to restore" in p.stdout
    assert not home.exists()
    assert cli.json("restore", "--state", str(home))["nothing"] is True
    assert "no snapshots" in cli.run("snapshots").stdout


def test_usage_errors(cli, gateway_bin, tmp_path):
    p = subprocess.run([str(gateway_bin), "snapshot"], capture_output=True, text=True, env=cli.env())
    assert p.returncode == 2 and "--state" in p.stderr
    # Without S3/R2 and --store, the default store is serve's, <state-dir>/snapshots: a state
    # directory without one is named, with what to pass instead.
    nowhere = tmp_path / "no-state-here"
    p = subprocess.run([str(gateway_bin), "snapshots", "--state-dir", str(nowhere)], capture_output=True,
                       text=True, env={k: v for k, v in cli.env().items() if k != "SERENA_R2_STATE_ENABLED"})
    assert p.returncode == 2 and "--store" in p.stderr and str(nowhere / "snapshots") in p.stderr, p.stderr
    p = cli.run("snapshot", "--state", str(tmp_path), "--retention", "0", check=False)
    assert p.returncode == 2 and "retention" in p.stderr
    p = cli.run("snapshot", "--state", str(tmp_path), "--partition", "a/b", check=False)
    assert p.returncode == 2 and "partition" in p.stderr
