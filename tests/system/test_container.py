"""The real container image (deploy/Dockerfile.cloudflare), built with podman and run.

deploy/local-image.sh builds the image from a debootstrapped debian:bookworm (made once per
machine and cached under /var/cache/serena-remote/podman with podman's layers), with the
repository root as its context exactly as `wrangler deploy` sends it. Every container here runs
on the host's network, listening on a free 127.0.0.1 port; S3 is Swift's s3api on 127.0.0.1.

What is proven:
- GET /health answers; `serena-remote run` is PID 1 and runs as a non-root user;
- an MCP session through the real Serena inside the image: initialize, tools/list (no shell
  tool), and find_symbol in a Python, a TypeScript and a Go project mounted into the container,
  with pyright, typescript-language-server and gopls preinstalled (nothing downloaded: the npm in
  the image refuses to install, Go has no module proxy);
- SIGTERM: exit 0 with the final snapshot written to the S3 store; a second container with an
  empty disk and the same instance id restores that state before Serena starts;
- strict mode with a store that is down: the backend is never started, clients get 503 naming
  the reason, /health says degraded.

If podman cannot build or run containers on this machine, every test is skipped with the reason
(`deploy/local-image.sh check`); nothing passes silently. Timings (image build, cold start:
container start to the first MCP answer) are printed and written to <run dir>/container.txt,
never asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

import peers
import s3peers
from peers import INITIALIZED, body_messages, init_body, mcp_headers, request, rpc

IMAGE_SH = peers.ROOT / "deploy" / "local-image.sh"
FIXTURES = peers.HERE / "fixtures"
UID = 10001  # the image's `serena` user
# Hang guards (seconds), never assertions: Serena and three language servers start cold inside a
# container on a loaded 2-core machine.
GUARD = 300.0
BUILD_GUARD = 3600.0
SECRET_HEADER = "X-Serena-Internal-Secret"


def report(run_dir: Path, line: str) -> None:
    print(f"container: {line}", flush=True)
    with open(run_dir / "container.txt", "a") as f:
        f.write(line + "\n")


def podman(*args, guard: float = 120.0, check: bool = True):
    r = peers.run_cmd([IMAGE_SH, "podman", *args], guard=guard)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(map(str, args[:3]))} failed ({r.returncode}): "
                             f"{r.stderr.decode()[-2000:]}")
    return r


@pytest.fixture(scope="module")
def image(run_dir) -> str:
    r = peers.run_cmd([IMAGE_SH, "check"], guard=180.0)
    if r.returncode == 3:
        pytest.skip(r.stdout.decode().strip())
    assert r.returncode == 0, f"local-image.sh check failed ({r.returncode}): {r.stdout!r} {r.stderr!r}"
    report(run_dir, r.stdout.decode().strip())
    t0 = time.monotonic()
    r = peers.run_cmd([IMAGE_SH, "build"], guard=BUILD_GUARD)
    assert r.returncode == 0, f"image build failed:\n{r.stderr.decode()[-5000:]}"
    out = dict(line.split(" ", 1) for line in r.stdout.decode().splitlines() if " " in line)
    report(run_dir, f"built {out['image']} with podman from deploy/Dockerfile.cloudflare in "
                    f"{time.monotonic() - t0:.0f}s (layers cached between runs); size {out['size']}")
    return out["image"]


class Container:
    """One `podman run -d` of the image on the host network; stopped and removed by close()."""

    seq = 0

    def __init__(self, image: str, tmp: Path, env: dict, mounts: dict | None = None, label: str = "c"):
        Container.seq += 1
        self.name = f"sr-test-{os.getpid()}-{Container.seq}-{label}"
        self.port = peers.free_port()
        self.secret = peers.new_token("internal")
        envf = tmp / f"{self.name}.env"
        envf.write_text("".join(f"{k}={v}\n" for k, v in {**env, "SERENA_INTERNAL_SECRET": self.secret}.items()))
        envf.chmod(0o600)
        vols = []
        for src, dst in (mounts or {}).items():
            vols += ["-v", f"{src}:{dst}"]
        self.t0 = time.monotonic()
        podman("run", "-d", "--name", self.name, "--network", "host", "--env-file", envf, *vols, image,
               "--listen", f"{peers.HOST}:{self.port}", "--state-dir", "/app/state")
        self.closed = False

    def headers(self, sid: str | None = None) -> dict:
        return mcp_headers(sid=sid, extra={SECRET_HEADER: self.secret})

    def logs(self) -> str:
        r = podman("logs", self.name, check=False)
        return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")

    def exec(self, *cmd: str) -> str:
        return podman("exec", self.name, *cmd).stdout.decode()

    def running(self) -> bool:
        r = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return r.stdout.decode().strip() == "true"

    def health(self) -> dict:
        return request(self.port, "GET", "/health", timeout=10).json()

    def wait_health(self) -> None:
        def ok():
            try:
                return request(self.port, "GET", "/health", timeout=5).status == 200
            except OSError:
                assert self.running(), f"container exited:\n{self.logs()[-3000:]}"
                return False
        peers.wait_until(ok, f"{self.name} /health", guard=GUARD)

    def sigterm(self) -> int:
        """SIGTERM to PID 1, then its exit code."""
        podman("kill", "--signal", "TERM", self.name)
        r = podman("wait", self.name, guard=GUARD)
        return int(r.stdout.decode().strip().splitlines()[-1])

    def close(self) -> None:
        if not self.closed:
            podman("rm", "-f", "-t", "5", self.name, check=False)
            self.closed = True


class Session:
    """A client's MCP session through the container's gateway."""

    def __init__(self, c: Container):
        self.c = c
        self.rid = 1
        r = request(c.port, "POST", "/mcp", init_body(), c.headers(), timeout=GUARD)
        assert r.status == 200, r
        self.init = body_messages(r)[0]
        self.sid = r.header("mcp-session-id")
        assert self.sid and "result" in self.init, r
        r = request(c.port, "POST", "/mcp", INITIALIZED, c.headers(self.sid), timeout=GUARD)
        assert r.status == 202, r

    def rpc(self, method: str, params: dict | None = None) -> dict:
        self.rid += 1
        r = request(self.c.port, "POST", "/mcp", rpc(self.rid, method, params), self.c.headers(self.sid),
                    timeout=GUARD)
        assert r.status == 200, r
        msgs = [m for m in body_messages(r) if m.get("id") == self.rid]
        assert msgs, r
        return msgs[0]

    def call(self, tool: str, args: dict) -> dict:
        m = self.rpc("tools/call", {"name": tool, "arguments": args})
        assert "result" in m, m
        res = m["result"]
        text = "".join(c.get("text", "") for c in res.get("content", []) if c.get("type") == "text")
        assert not res.get("isError"), f"{tool} {args}: {text[:2000]}\n{self.c.logs()[-3000:]}"
        return {"text": text}


def project_copy(tmp: Path, name: str) -> Path:
    """A writable copy of a fixture project owned by the image's user (Serena writes .serena/)."""
    dst = tmp / "projects" / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(FIXTURES / name, dst)
    for p in [dst, *dst.rglob("*")]:
        os.chown(p, UID, UID)
    os.chown(dst.parent, UID, UID)
    return dst


def backend_log(c: Container) -> str:
    return c.exec("sh", "-c", "cat /app/state/routes/*/backend.log 2>/dev/null || true")


# ---------------------------------------------------------------------------------------------


def test_image_serena_pid1_non_root_and_find_symbol_in_three_languages(image, run_dir, tmp_dir):
    projects = {name: project_copy(tmp_dir, name) for name in ("pyproj", "tsproj", "goproj")}
    c = Container(image, tmp_dir, {"SERENA_R2_STATE_ENABLED": "0", "SERENA_REMOTE_STORE": "none"},
                  mounts={str(p): f"/projects/{n}" for n, p in projects.items()}, label="serena")
    try:
        # Cold start: from `podman run` to the first MCP answers: initialize, then tools/list (which
        # only Serena can answer).
        c.wait_health()
        s = Session(c)
        t_init = time.monotonic() - c.t0
        tools = [t["name"] for t in s.rpc("tools/list")["result"]["tools"]]
        t_list = time.monotonic() - c.t0
        report(run_dir, f"cold start (podman run -> first MCP answers through the image's gateway): "
                        f"initialize {t_init:.1f}s, tools/list from Serena {t_list:.1f}s")
        assert "find_symbol" in tools and "execute_shell_command" not in tools, tools
        h = c.health()
        assert h["role"] == "run" and h["status"] == "ok", h

        # PID 1 is serena-remote run, as the image's non-root user.
        cmdline = c.exec("cat", "/proc/1/cmdline").split("\0")
        assert cmdline[0] == "/usr/local/bin/serena-remote" and cmdline[1] == "run", cmdline
        status = c.exec("cat", "/proc/1/status")
        uids = [line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")][0]
        assert set(uids) == {str(UID)}, status
        assert c.exec("id", "-un").strip() == "serena"

        assert "serena" in json.dumps(s.init["result"].get("serverInfo", {})).lower(), s.init

        # Project -> (symbol, file, body start, the preinstalled server Serena runs for it).
        expect = {"pyproj": ("greet", "lib.py", "def greet(name):", "/opt/serena/tools/node_modules/.bin/pyright-langserver"),
                  "tsproj": ("greet", "lib.ts", "export function greet(name: string)", "typescript-language-server"),
                  "goproj": ("Greet", "lib.go", "func Greet(name string) string", "gopls")}
        for name, (sym, path, head, server) in expect.items():
            t0 = time.monotonic()
            act = s.call("activate_project", {"project": f"/projects/{name}", "session": "container-test"})
            assert f"/projects/{name}" in act["text"], act
            res = s.call("find_symbol", {"name_path_pattern": sym, "include_body": True})
            syms = json.loads(res["text"])
            found = [x for x in syms if x.get("name_path") == sym and x.get("relative_path") == path]
            assert len(found) == 1, f"{name}: {syms}\n{backend_log(c)[-4000:]}"
            assert found[0]["body"].startswith(head), found
            # Serena stops a project's language server when another project is activated: look now.
            ps = c.exec("sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo")
            assert server in ps, f"{server} is not running for {name}: {ps[:3000]}"
            report(run_dir, f"find_symbol {sym} in /projects/{name}: {time.monotonic() - t0:.1f}s "
                            f"(activate_project + the language server's cold start)")

        # Nothing was downloaded or installed at run time: the language servers Serena used are
        # the preinstalled ones.
        log = backend_log(c)
        for bad in ("Installing", "Downloading", "npm is not available", "uvx"):
            assert bad not in log, f"{bad!r} in the backend log:\n{log[-4000:]}"
        links = c.exec("sh", "-c", "ls -l /app/state/routes/*/home/language_servers/static/")
        assert "TypeScriptLanguageServer -> /opt/serena/tools/language_servers/static/" in links, links

        assert c.sigterm() == 0, c.logs()[-3000:]
    finally:
        c.close()


def test_sigterm_snapshots_to_s3_and_a_fresh_container_restores(image, run_dir, tmp_dir, swift_peer):
    bucket = swift_peer.new_bucket("img")
    env = {**swift_peer.env(bucket), "SERENA_INSTANCE_ID": f"do-img-{os.getpid()}",
           "SERENA_R2_SNAPSHOT_INTERVAL_SECONDS": "0", "SERENA_R2_STATE_STRICT": "1"}
    prefix = "serena-mcp/default/serena-home-snapshots-v1"
    part = f"{prefix}/{env['SERENA_INSTANCE_ID']}"

    def keys() -> list[str]:
        _, lines = s3peers.store_tool(swift_peer.env(bucket), "list", part + "/")
        return sorted(o["key"] for o in lines[:-1])

    note = f"remember me {os.getpid()}\n"
    c1 = Container(image, tmp_dir, env, label="snap1")
    try:
        c1.wait_health()
        Session(c1)
        assert c1.health()["persistence"]["enabled"] is True
        c1.exec("sh", "-c", f"mkdir -p /app/state/routes/*/home/memories && "
                            f"printf %s '{note}' > $(echo /app/state/routes/*/home)/memories/note.md")
        assert keys() == []
        assert c1.sigterm() == 0, c1.logs()[-3000:]
        log1 = c1.logs()
    finally:
        c1.close()
    ks = keys()
    archives = [k for k in ks if k.endswith(".tree")]
    assert len(archives) == 1 and f"{part}/manifest.json" in ks, f"{ks}\n{log1[-3000:]}"

    # Same instance id, a new container: its disk is empty; the state is back before Serena starts.
    c2 = Container(image, tmp_dir, env, label="snap2")
    try:
        c2.wait_health()
        Session(c2)
        got = c2.exec("sh", "-c", "cat /app/state/routes/*/home/memories/note.md")
        assert got == note, got
        log2 = c2.logs()
        restored = log2.find(f"restored {archives[0]}")
        started = log2.find("starting instance")
        assert restored >= 0 and started > restored, log2[-3000:]
        assert c2.sigterm() == 0, c2.logs()[-3000:]
    finally:
        c2.close()
    for text in (log1, log2):
        assert swift_peer.secret not in text


def test_strict_with_the_store_down_refuses_to_start_serena(image, tmp_dir):
    port = peers.free_port()  # nothing listens there
    env = {"SERENA_R2_STATE_ENABLED": "1", "S3_ENDPOINT": f"http://{peers.HOST}:{port}",
           "S3_REGION": "us-east-1", "R2_BUCKET_NAME": "nowhere", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEDOWN00000",
           "AWS_SECRET_ACCESS_KEY": peers.new_token("aws"), "SERENA_INSTANCE_ID": "do-down",
           "SERENA_R2_STATE_STRICT": "1"}
    c = Container(image, tmp_dir, env, label="strict")
    try:
        c.wait_health()
        r = request(c.port, "POST", "/mcp", init_body(), c.headers(), timeout=GUARD)
        assert r.status == 503, r
        msg = r.json()["error"]["message"]
        assert "could not be restored" in msg and "strict" in msg, msg
        assert r.header("retry-after"), r
        h = c.health()
        assert h["status"] == "degraded" and h["persistence"]["state"] == "degraded", h
        ps = c.exec("sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo")
        assert "start-mcp-server" not in ps, ps
        assert env["AWS_SECRET_ACCESS_KEY"] not in c.logs() + r.body.decode()
        assert c.sigterm() == 0
    finally:
        c.close()
