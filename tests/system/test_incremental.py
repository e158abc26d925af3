"""Incremental snapshots through the CLI against real stores (the stores and helpers of
test_snapshot.py): content-addressed packs shared between the snapshots of a partition, so a one-file
change adds little to the store; a local cache (--cache) so unchanged files are not read again; a
restore that downloads only what the disk lacks; retention and garbage collection that keep every pack
a kept snapshot needs and collect the rest, including what a killed upload left.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time

import pytest

import test_snapshot as ts
from test_snapshot import cli, store  # noqa: F401  (fixtures: the CLI and one test per store)
from test_snapshot import describe, manifest, packs, used_packs

MB = 1000 * 1000


def workspace(root, size_mb: int = 30, seed: int = 7) -> tuple:
    """A route's home/ and work/: Serena's configuration and memories, and a project of source
    files, binary assets and git objects, about size_mb MB in all. Returns (home, work)."""
    rng = random.Random(seed)
    home, work = root / "home", root / "work"
    (home / "memories").mkdir(parents=True)
    (home / "serena_config.yml").write_text("web_dashboard: false\n")
    for i in range(20):
        (home / "memories" / f"m{i}.md").write_text(f"memory {i}\n" * 50)
    proj = work / "proj"
    words = "def class return import self value project symbol file line cache index".split()
    total = 0
    i = 0
    while total < size_mb * MB * 6 // 10:
        d = proj / "src" / f"pkg{i % 23}"
        d.mkdir(parents=True, exist_ok=True)
        text = " ".join(rng.choice(words) for _ in range(rng.randint(200, 3000))) + "\n"
        (d / f"mod_{i:04d}.py").write_text(text)
        total += len(text)
        i += 1
    (proj / "assets").mkdir()
    for k in range(4):
        data = rng.randbytes(size_mb * MB // 10)
        (proj / "assets" / f"blob{k}.bin").write_bytes(data)
    (proj / ".git" / "objects" / "pack").mkdir(parents=True)
    (proj / ".git" / "objects" / "pack" / "pack-1.pack").write_bytes(rng.randbytes(size_mb * MB // 20))
    (proj / ".serena" / "memories").mkdir(parents=True)
    (proj / ".serena" / "memories" / "arch.md").write_text("layers\n")
    return home, work


def take(cli, home, work, cache, *extra) -> dict:
    args = ["--state", str(home), "--workspace", str(work)]
    if cache is not None:
        args += ["--cache", str(cache)]
    return cli.json("snapshot", *args, *extra)


def restore(cli, home, work, cache, *extra) -> dict:
    args = ["--state", str(home), "--workspace", str(work)]
    if cache is not None:
        args += ["--cache", str(cache)]
    return cli.json("restore", *args, *extra)


def stored_bytes(store, keys) -> int:
    return sum(len(store.read(k)) for k in keys)


def test_one_file_change_adds_well_under_a_megabyte(cli, store, tmp_path):
    home, work = workspace(tmp_path / "disk")
    cache = tmp_path / "cache"
    first = take(cli, home, work, cache)
    assert not first["skipped"] and first["added"] > 10 * MB, first
    before = set(store.keys())
    target = work / "proj" / "src" / "pkg3" / "mod_0003.py"
    target.write_text(target.read_text() + "# one more line\n")
    second = take(cli, home, work, cache)
    new = set(store.keys()) - before
    added = stored_bytes(store, new - {ts.MANIFEST})
    assert not second["skipped"], second
    assert added == second["added"] and added < 1 * MB, (added, second)
    assert second["total"] >= first["total"] - 2 * MB, second
    # A machine without the cache (a fresh disk) reads everything, but still stores only what
    # is new: the newest tree says what the store has.
    before = set(store.keys())
    (home / "memories" / "m3.md").write_text("changed on another machine\n")
    third = take(cli, home, work, tmp_path / "other-cache")
    assert third["added"] < 1 * MB, third
    assert stored_bytes(store, set(store.keys()) - before - {ts.MANIFEST}) < 1 * MB
    # And unchanged, with or without the cache: skipped, nothing written.
    before = {k: store.read(k) for k in store.keys()}
    assert take(cli, home, work, cache)["skipped"]
    assert take(cli, home, work, None)["skipped"]
    assert {k: store.read(k) for k in store.keys()} == before


def test_restore_downloads_what_the_disk_lacks(cli, store, tmp_path):
    home, work = workspace(tmp_path / "disk", size_mb=20)
    want_home, want_work = describe(home, exclude=()), describe(work, exclude=())
    take(cli, home, work, tmp_path / "cache")
    # An empty disk: everything is downloaded, and it is all there.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    r = restore(cli, fresh / "home", fresh / "work", fresh / "cache")
    assert describe(fresh / "home", exclude=()) == want_home and describe(fresh / "work", exclude=()) == want_work
    assert "already on disk" not in r["note"], r
    # The same disk with one file changed and one removed: only their chunks are downloaded.
    blob = fresh / "work" / "proj" / "assets" / "blob1.bin"
    blob.write_bytes(b"x" + blob.read_bytes()[1:])
    (fresh / "work" / "proj" / "src" / "pkg1" / "mod_0001.py").unlink()
    r = restore(cli, fresh / "home", fresh / "work", fresh / "cache")
    assert describe(fresh / "work", exclude=()) == want_work
    note = r["note"]
    assert "already on disk" in note, r
    downloaded = int(note.split(" downloaded")[0].rsplit(" ", 1)[1])
    assert 0 < downloaded < 3 * MB, note
    # Nothing changed: nothing downloaded.
    r = restore(cli, fresh / "home", fresh / "work", fresh / "cache")
    assert r["note"].endswith(" 0 downloaded"), r


def test_retention_collects_what_no_kept_snapshot_needs(cli, store, tmp_path):
    home, work = workspace(tmp_path / "disk", size_mb=6)
    cache = tmp_path / "cache"
    keys, trees = [], {}
    for n in range(7):
        (work / "proj" / f"step{n}.txt").write_text(f"step {n}\n" * 1000)
        if n == 2:
            # A large file comes and goes: its packs must go when no kept snapshot has it.
            (work / "proj" / "huge.bin").write_bytes(os.urandom(3 * MB))
        if n == 3:
            (work / "proj" / "huge.bin").unlink()
        r = take(cli, home, work, cache, "--retention", "3")
        keys.append(r["key"])
        trees[r["key"]] = (describe(home, exclude=()), describe(work, exclude=()))
        assert set(packs(store)) == used_packs(store), f"after snapshot {n}"
    assert [s["key"] for s in manifest(store)["snapshots"]] == keys[::-1][:3]
    # huge.bin shared a pack with step2.txt; once that pack was mostly garbage, snapshot 4 stored
    # step2.txt anew, and when snapshot 3 (the last to use the old pack) dropped out, the pack
    # went: what is stored is about what the newest snapshot uses.
    newest = manifest(store)["snapshots"][0]
    assert sum(len(store.read(k)) for k in packs(store)) < newest["total"] + 1 * MB, \
        "huge.bin's packs were kept"
    # Every kept snapshot restores whole, the oldest kept included.
    for key in keys[4:]:
        d = tmp_path / f"r-{key[-12:-5]}"
        d.mkdir()
        restore(cli, d / "home", d / "work", None, "--snapshot", key)
        assert (describe(d / "home", exclude=()), describe(d / "work", exclude=())) == trees[key], key


def test_killed_upload_leaves_no_orphan_with_a_cache(cli, store, tmp_path):
    home, work = workspace(tmp_path / "disk", size_mb=4)
    cache = tmp_path / "cache"
    take(cli, home, work, cache)
    before = set(packs(store))
    big = work / "big"
    big.mkdir()
    for i in range(40):
        (big / f"blob{i}").write_bytes(os.urandom(2 * MB))
    argv = cli.argv("snapshot", "--state", str(home), "--workspace", str(work), "--cache", str(cache))
    proc = subprocess.Popen(argv, env=cli.env(), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not {k for k in packs(store) if "#" not in k} - before and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the snapshot finished before it could be killed"
    assert set(packs(store)) - before, "nothing was uploaded before the kill"
    assert (cache / "pending").exists()
    # The big files are gone again: the next snapshot has little to upload and drops nothing by
    # retention, but the pending mark makes it collect the killed upload's packs.
    shutil.rmtree(big)
    (work / "proj" / "after.txt").write_text("after the kill\n")
    t0 = int(time.time())
    while int(time.time()) <= t0 + 1:
        time.sleep(0.05)
    r = take(cli, home, work, cache)
    assert "collected" in r["note"], r
    assert set(packs(store)) == used_packs(store)
    assert not (cache / "pending").exists()


def test_key_rotation_rewrites_what_the_old_key_sealed(gateway_bin, store, tmp_path):
    import test_encryption as te

    old, new = te.new_key(), te.new_key()
    kc = te.KeyCli(gateway_bin, store, tmp_path, old)
    home, work = workspace(tmp_path / "disk", size_mb=4)
    cache = tmp_path / "cache"
    first = take(kc, home, work, cache)
    (work / "proj" / "x.txt").write_text("rotate\n")
    rotated = kc.with_key(f"{new},{old}")
    r = take(rotated, home, work, cache, "--retention", "1")
    # Everything the newest snapshot uses is now sealed with the new key: the old key can go.
    only_new = kc.with_key(new)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    restore(only_new, fresh / "home", fresh / "work", None)
    assert describe(fresh / "work", exclude=()) == describe(work, exclude=())
    assert r["added"] > first["total"] * 9 // 10, (r, first)
