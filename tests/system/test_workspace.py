"""A project per token, through `serve` with per-token backends: token entries written as objects
({"token", "project", "context", "read_only"}), a git project cloned from a local bare repository
(file://) into the route's workspace before its backend's first start, off the event loop; a failed
clone answers 503 with git's reason and is tried again on the next request; the backend starts with
the project, the token's context and, for a read-only token, a mode without editing tools; the
project the route last activated wins over its token's. The clone is part of the workspace: it comes
back with the route's state on a fresh disk, with the user's changes, and is not cloned again.

The backend is server-everything behind a wrapper that records the arguments the gateway gave it
(args.txt in the route's directory). Real Serena with a token's project: test_serena.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import peers
from peers import mcp_headers, new_token, open_session, request

GUARD = 60.0


def git(*args, cwd=None) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(cwd or "/tmp"), "PATH": "/usr/bin:/bin"}
    p = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def origin(tmp: Path, name: str = "origin") -> Path:
    """A bare repository with a main branch (main.py) and a feature branch (feature.py)."""
    src = tmp / f"{name}-src"
    src.mkdir()
    git("init", "-q", "-b", "main", cwd=src)
    (src / "main.py").write_text("def greet():\n    return 'hello'\n")
    git("add", ".", cwd=src)
    git("commit", "-q", "-m", "first", cwd=src)
    git("checkout", "-q", "-b", "feature", cwd=src)
    (src / "feature.py").write_text("FEATURE = True\n")
    git("add", ".", cwd=src)
    git("commit", "-q", "-m", "feature", cwd=src)
    git("checkout", "-q", "main", cwd=src)
    bare = tmp / f"{name}.git"
    git("clone", "-q", "--bare", str(src), str(bare), cwd=tmp)
    return bare


def recording_cmd(tmp: Path) -> str:
    """server-everything, after writing the arguments it was given to args.txt beside home/."""
    script = tmp / "record-args.sh"
    script.write_text('port=$1; out="$2/../args.txt"; shift 2\n'
                      'printf \'%s\\n\' "$@" > "$out"\n'
                      f'PORT=$port exec node {peers.SERVER_EVERYTHING} streamableHttp\n')
    return f"sh {script} {{port}} {{home}} {{context}} {{project_args}} {{mode_args}}"


def args_of(g, route: str) -> list[str]:
    return (g.route_dir(route) / "args.txt").read_text().split("\n")[:-1]


def wait_args(g, route: str) -> list[str]:
    return peers.wait_until(lambda: (g.route_dir(route) / "args.txt").exists() and args_of(g, route),
                            f"{route}'s backend started", g.proc, guard=GUARD)


def test_token_projects_contexts_and_read_only(instance_gateway_factory, tmp_dir):
    bare = origin(tmp_dir)
    plain = tmp_dir / "plain-project"
    plain.mkdir()
    toks = {n: new_token(n) for n in ("alice", "bob", "carol", "dave")}
    table = {"alice": {"token": toks["alice"], "project": f"file://{bare}#feature", "context": "ide",
                       "read_only": True},
             "bob": {"token": toks["bob"], "project": str(plain)},
             "carol": toks["carol"],
             "dave": {"token": toks["dave"], "project": f"file://{tmp_dir}/later.git"}}
    env = {"API_TOKENS_JSON": json.dumps(table), "SLEEP_AFTER": "15m", "SERENA_CONTEXT": "agent"}
    g = instance_gateway_factory(tmp_dir / "state", backend_cmd=recording_cmd(tmp_dir), env=env)

    # alice: cloned at the feature branch, started with it, her context and the read-only mode.
    open_session(g.port, toks["alice"])
    args = wait_args(g, "gen-1:alice")
    work = g.route_dir("gen-1:alice") / "work"
    clone = work / "origin"
    assert args[0] == "ide", args
    assert args[1:3] == ["--project", str(clone)], args
    assert args[3] == "--add-mode" and args[4].endswith("/home/serena-remote-read-only.yml"), args
    assert (clone / "feature.py").read_text() == "FEATURE = True\n"
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=clone) == "feature"
    assert (clone / ".git").is_dir(), "the clone keeps its history"
    mode = Path(args[4]).read_text()
    assert "replace_symbol_body" in mode and "write_memory" in mode and "find_symbol" not in mode
    assert not list(work.glob(".origin.clone-*")), "the clone's staging directory was left"
    assert "route=gen-1:alice cloning its project" in g.log_text()
    assert "route=gen-1:alice project cloned at" in g.log_text()

    # bob: a path on this machine, the default context, no mode.
    open_session(g.port, toks["bob"])
    assert wait_args(g, "gen-1:bob") == ["agent", "--project", str(plain)]
    # carol: a plain token: no project.
    open_session(g.port, toks["carol"])
    assert wait_args(g, "gen-1:carol") == ["agent"]

    # dave: the repository does not exist yet: 503 naming the reason, nothing started, and the
    # next request tries again.
    for _ in range(2):
        r = request(g.port, "POST", "/mcp", peers.init_body(), mcp_headers(toks["dave"]), timeout=GUARD)
        assert r.status == 503, r
        msg = r.json()["error"]["message"]
        assert "could not be cloned" in msg and "later.git" in msg and "tries again" in msg, msg
        assert toks["dave"] not in msg
    assert g.log_text().count("route=gen-1:dave cloning its project") == 2
    assert not (g.route_dir("gen-1:dave") / "args.txt").exists()
    assert not (g.route_dir("gen-1:dave") / "work" / "later").exists()
    shutil.copytree(bare, tmp_dir / "later.git")
    open_session(g.port, toks["dave"])
    assert wait_args(g, "gen-1:dave")[1:3] == ["--project", str(g.route_dir("gen-1:dave") / "work" / "later")]
    assert (g.route_dir("gen-1:dave") / "work" / "later" / "main.py").exists()
    texts = [g.log_text()]
    for t in toks.values():
        assert all(t not in x for x in texts)


def test_clone_is_state_and_activation_wins(instance_gateway_factory, tmp_dir):
    bare = origin(tmp_dir)
    tok = new_token("alice")
    table = {"alice": {"token": tok, "project": f"file://{bare}"}}
    store = tmp_dir / "store"
    env = {"API_TOKENS_JSON": json.dumps(table), "SLEEP_AFTER": "2s", "SERENA_STOP_GRACE": "5s",
           "SERENA_R2_SNAPSHOT_INTERVAL_SECONDS": "0"}
    g = instance_gateway_factory(tmp_dir / "state", backend_cmd=recording_cmd(tmp_dir), env=env,
                                 args=["--store", f"file:{store}"])
    route = "gen-1:alice"
    open_session(g.port, tok)
    wait_args(g, route)
    clone = g.route_dir(route) / "work" / "origin"
    (clone / "notes.md").write_text("written through the backend\n")
    (clone / "main.py").write_text("def greet():\n    return 'changed'\n")
    # Sleep: the snapshot holds the clone with the changes; then a fresh disk.
    peers.wait_until(lambda: (i := g.status(tok)["instance"]) and i["state"] == "asleep" and i["last_snapshot"],
                     "asleep with a snapshot", g.proc, guard=GUARD)
    shutil.rmtree(g.route_dir(route))
    open_session(g.port, tok)
    args = wait_args(g, route)
    assert args[1:3] == ["--project", str(clone)], args
    assert (clone / "notes.md").read_text() == "written through the backend\n"
    assert "changed" in (clone / "main.py").read_text()
    assert (clone / ".git").is_dir()
    assert g.log_text().count(f"route={route} cloning its project") == 1, "cloned again after a restore"
    # The project the route activated itself (what the edge remembers when activate_project
    # succeeds: .serena-remote-project in home/) wins over its token's, until the next activation.
    other = g.route_dir(route) / "work" / "other"
    other.mkdir()
    (g.route_dir(route) / "home" / ".serena-remote-project").write_text(f"{other}\n")
    g.stop()
    (g.route_dir(route) / "args.txt").unlink()
    g2 = instance_gateway_factory(tmp_dir / "state", backend_cmd=recording_cmd(tmp_dir), env=env,
                                  args=["--store", f"file:{store}"], name="inst2")
    open_session(g2.port, tok)
    assert wait_args(g2, route)[1:3] == ["--project", str(other)]
