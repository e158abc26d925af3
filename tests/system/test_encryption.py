"""Encryption at rest (SERENA_SNAPSHOT_KEY) through the snapshot CLI against real stores: the local
directory store, Swift's s3api and s3rver (the stores and helpers of test_snapshot.py).

What must hold: every object the snapshots write is sealed (AES-256-GCM, our header), so none of them
decompresses or contains a byte of the state in the clear; a missing or wrong key is refused with a
message that says so and the store is left exactly as it was; keys rotate (the first encrypts, every
listed one decrypts); a flipped byte and an object swapped for another are detected, and a restore falls
back to the previous snapshot. No key at all: the store keeps working unencrypted and says so.
"""

from __future__ import annotations

import base64
import os
import subprocess

import pytest

import test_snapshot as ts
from test_snapshot import PART, describe, make_tree
from test_snapshot import cli, store  # noqa: F401  (fixtures: the CLI and one test per store)

MAGIC = b"srenc-v1"
SECRET_LINE = "auth_secret: 6f1d2c3b-never-in-the-clear-2f9a"


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


class KeyCli(ts.Cli):
    """The CLI with SERENA_SNAPSHOT_KEY set (None: unset)."""

    def __init__(self, bin_, store, tmp, key: str | None):
        super().__init__(bin_, store, tmp)
        self.key = key

    def env(self) -> dict[str, str]:
        e = super().env()
        if self.key is not None:
            e["SERENA_SNAPSHOT_KEY"] = self.key
        return e

    def with_key(self, key: str | None) -> "KeyCli":
        return KeyCli(self.bin, self.store, self.tmp.parent, key)


@pytest.fixture
def kcli(gateway_bin, store, tmp_path):
    return KeyCli(gateway_bin, store, tmp_path, new_key())


def state_tree(home) -> None:
    make_tree(home, small=60)
    (home / "serena_config.yml").write_text(f"web_dashboard: false\n{SECRET_LINE}\n")
    (home / "memories.md").write_text("The user prefers tabs. " * 200)


def snapshot_of(store) -> dict[str, bytes]:
    return {k: store.read(k) for k in store.keys()}


def assert_all_sealed(objects: dict[str, bytes]) -> None:
    assert objects, "nothing was stored"
    for key, data in objects.items():
        assert data.startswith(MAGIC), f"{key} is not encrypted: {data[:16]!r}"
        for plain in (SECRET_LINE.encode(), b"The user prefers tabs", b"web_dashboard", b"serena_config",
                      b"memories", b'"snapshots"', b"\x28\xb5\x2f\xfd"):
            assert plain not in data, f"{key} holds {plain!r} in the clear"
        # Not a compressed stream either, from any offset a reader might try.
        p = subprocess.run(["zstd", "-d", "-c", "-q"], input=data, capture_output=True)
        assert p.returncode != 0, f"{key} decompresses"


def test_everything_stored_is_sealed_and_round_trips(kcli, store, tmp_path):
    home = tmp_path / "home"
    state_tree(home)
    want = describe(home)
    r = kcli.json("snapshot", "--state", str(home))
    assert not r["skipped"]
    assert_all_sealed(snapshot_of(store))
    target = tmp_path / "r" / "home"
    target.parent.mkdir()
    assert kcli.json("restore", "--state", str(target))["key"] == r["key"]
    assert describe(target) == want
    assert (target / "serena_config.yml").read_text().endswith(SECRET_LINE + "\n")
    # Unchanged: skipped (the sealed manifest was read), nothing new written.
    before = snapshot_of(store)
    assert kcli.json("snapshot", "--state", str(home))["skipped"]
    assert snapshot_of(store) == before
    listing = kcli.run("snapshots").stdout
    assert r["key"] in listing


def test_missing_or_wrong_key_is_refused_and_nothing_changes(kcli, store, tmp_path):
    home = tmp_path / "home"
    state_tree(home)
    kcli.json("snapshot", "--state", str(home))
    (home / "later.md").write_text("a second snapshot")
    kcli.json("snapshot", "--state", str(home))
    before = snapshot_of(store)
    target = tmp_path / "r" / "home"
    target.mkdir(parents=True)
    (target / "local.txt").write_text("local state")
    for key, says in ((None, "no SERENA_SNAPSHOT_KEY is set"), (new_key(), "not in SERENA_SNAPSHOT_KEY")):
        other = kcli.with_key(key)
        p = other.run("restore", "--state", str(target), check=False)
        assert p.returncode == 1 and says in p.stderr, p.stderr
        assert "nothing was changed" in p.stderr, p.stderr
        assert kcli.key not in p.stderr + p.stdout
        # A snapshot with the wrong key must not replace the manifest (nor anything else).
        (home / "changed.md").write_text(f"changed {key is None}")
        p = other.run("snapshot", "--state", str(home), check=False)
        assert p.returncode == 1 and says in p.stderr, p.stderr
        p = other.run("snapshots", check=False)
        assert p.returncode == 1 and says in p.stderr, p.stderr
        assert snapshot_of(store) == before, "a refused key changed the store"
        assert (target / "local.txt").read_text() == "local state"
    # The right key still restores everything.
    assert kcli.json("restore", "--state", str(target))["key"] == manifest_key(kcli)


def manifest_key(cli) -> str:
    return cli.json("snapshots")["snapshots"][0]["key"]


def test_rotation(kcli, store, tmp_path):
    home = tmp_path / "home"
    state_tree(home)
    old_key = kcli.key
    first = kcli.json("snapshot", "--state", str(home))["key"]
    new = new_key()
    rotated = kcli.with_key(f"{new},{old_key}")
    # The old snapshots still read under the new list.
    target = tmp_path / "r" / "home"
    target.parent.mkdir()
    assert rotated.json("restore", "--state", str(target))["key"] == first
    (home / "after-rotation.md").write_text("written under the new key")
    second = rotated.json("snapshot", "--state", str(home))["key"]
    assert_all_sealed(snapshot_of(store))
    # The new key alone opens the newest snapshot; the old key alone does not.
    only_new = kcli.with_key(new)
    assert only_new.json("restore", "--state", str(target))["key"] == second
    assert (target / "after-rotation.md").exists()
    p = kcli.with_key(old_key).run("restore", "--state", str(target), "--snapshot", second, check=False)
    assert p.returncode == 1 and "not in SERENA_SNAPSHOT_KEY" in p.stderr, p.stderr


def newest_objects(store, older: set[str]) -> list[str]:
    return sorted(k for k in store.keys() if k not in older and not k.endswith("manifest.json"))


@pytest.mark.parametrize("damage", ["flip", "swap"])
def test_tampering_is_detected_and_falls_back(kcli, store, tmp_path, damage):
    home = tmp_path / "home"
    state_tree(home)
    first = kcli.json("snapshot", "--state", str(home))["key"]
    want = describe(home)
    older = set(store.keys())
    (home / "only-in-newest.md").write_text("newest " * 5000)
    second = kcli.json("snapshot", "--state", str(home))["key"]
    victims = newest_objects(store, older)
    assert victims, store.keys()
    if damage == "flip":
        for k in victims:
            data = bytearray(store.read(k))
            data[len(data) // 2] ^= 0x01
            store.write(k, bytes(data))
    else:
        # Each new object replaced by an older, valid object of the same partition: every byte
        # is genuine ciphertext under the right key, only at the wrong place.
        donor = sorted(k for k in older if not k.endswith("manifest.json"))[0]
        for k in victims:
            store.write(k, store.read(donor))
    target = tmp_path / "r" / "home"
    target.parent.mkdir()
    r = kcli.json("restore", "--state", str(target))
    assert r["fell_back"] and r["key"] == first, r
    assert "does not decrypt" in r["note"] or "corrupt" in r["note"] or "damaged" in r["note"], r
    assert describe(target) == want
    p = kcli.run("restore", "--state", str(target), "--snapshot", second, check=False)
    assert p.returncode == 1, p.stdout


def test_plaintext_store_and_migration(cli, kcli, store, tmp_path):
    home = tmp_path / "home"
    state_tree(home)
    # No key: unencrypted objects, as before.
    plain = cli.json("snapshot", "--state", str(home))["key"]
    assert not any(d.startswith(MAGIC) for d in snapshot_of(store).values())
    # A key now: the unencrypted snapshot is refused as unauthenticated...
    target = tmp_path / "r" / "home"
    target.parent.mkdir()
    p = kcli.run("restore", "--state", str(target), check=False)
    assert p.returncode == 1 and "without encryption" in p.stderr and "plaintext" in p.stderr, p.stderr
    # ...unless "plaintext" is listed after the key: it reads, and what it writes is sealed.
    mig = kcli.with_key(f"{kcli.key},plaintext")
    assert mig.json("restore", "--state", str(target))["key"] == plain
    (home / "new.md").write_text("migrated")
    newest = mig.json("snapshot", "--state", str(home))["key"]
    objs = snapshot_of(store)
    assert objs[f"{PART}/manifest.json"].startswith(MAGIC)
    assert kcli.json("restore", "--state", str(target))["key"] == newest
    assert (target / "new.md").read_text() == "migrated"


# ---------------------------------------------------------------------------------------------
# the gateway: snapshots after sleep are sealed, /health and `check` say whether they are


def test_gateway_seals_snapshots_and_reports_it(instance_gateway_factory, gateway_bin, tmp_dir):
    import json

    import peers
    import test_persistence as tp

    toks = {"alpha": peers.new_token("alpha")}
    t = toks["alpha"]
    key = new_key()
    store = tp.FileStore(tmp_dir / "store")
    g = instance_gateway_factory(tmp_dir / "state", env=tp.gw_env(toks, {}, SERENA_SNAPSHOT_KEY=key),
                                 args=store.args)
    assert g.health()["persistence"]["encrypted"] is True
    tp.echo(g.port, t, peers.open_session(g.port, t), 2, "hello")
    home = g.route_dir(tp.ROUTE) / "home"
    (home / "serena_config.yml").write_text(f"{SECRET_LINE}\n")
    tp.wait_inst(g, t, lambda i: i["state"] == "asleep" and i["last_snapshot"], "asleep with a snapshot")
    part = f"{tp.PREFIX}/{tp.partition_of(tp.ROUTE)}"
    objs = {k: store.read(k) for k in store.keys(part)}
    assert_all_sealed(objs)
    # A fresh disk comes back from the sealed snapshot.
    import shutil

    shutil.rmtree(g.route_dir(tp.ROUTE))
    tp.echo(g.port, t, peers.open_session(g.port, t), 2, "after wake")
    assert (home / "serena_config.yml").read_text() == f"{SECRET_LINE}\n"
    texts = tp.gateway_texts(g) + [json.dumps(g.status(t)), tp.health_raw(g.port).body.decode()]
    tp.assert_no_secrets(texts, [t, key])
    g.stop()

    # Without a key: unencrypted, and both /health and `check` say so.
    g2 = instance_gateway_factory(tmp_dir / "state2", env=tp.gw_env(toks, {}), args=store.args)
    assert g2.health()["persistence"]["encrypted"] is False
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERENA_", "API_TOKEN"))}
    env["API_TOKENS_JSON"] = json.dumps(toks)
    p = subprocess.run([str(gateway_bin), "check", "--state-dir", str(tmp_dir / "c")], env=env,
                       capture_output=True, text=True)
    assert "NOT encrypted at rest" in p.stdout, p.stdout + p.stderr
    env["SERENA_SNAPSHOT_KEY"] = key
    p = subprocess.run([str(gateway_bin), "check", "--state-dir", str(tmp_dir / "c")], env=env,
                       capture_output=True, text=True)
    assert "encrypted at rest (AES-256-GCM" in p.stdout and key not in p.stdout + p.stderr, p.stdout
    env["SERENA_SNAPSHOT_KEY"] = "not-a-key"
    p = subprocess.run([str(gateway_bin), "check", "--state-dir", str(tmp_dir / "c")], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 2 and "SERENA_SNAPSHOT_KEY: key 1 is not 32 bytes" in p.stderr, p.stderr
    assert "not-a-key" not in p.stderr
