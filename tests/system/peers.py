"""Process and HTTP helpers for the system tests: real peers on 127.0.0.1 only.

Rules every helper here keeps (they are why the suite can run on a noisy shared machine):
- every process is started in its own session (setsid(2), via start_new_session) with stdin
  from /dev/null, and its output goes to a file under the run directory;
- "ready" means a real request succeeded (MCP initialize, or the gateway's GET /health), never
  just an open port; a peer that dies while starting fails at once with its log;
- a process is stopped by signalling its whole process group, then waiting for it to exit
  (SIGKILL to the group only if it ignores SIGTERM for long), so no port is reused while its
  previous owner is alive and no child (supergateway's per-session stdio servers) is left;
- ports are picked free from the kernel, one per process; nothing is sent off loopback;
- timeouts exist only as hang guards; no assertion is about how long something took.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
NODE_MODULES = HERE / "node_modules"
CLIENTS = HERE / "clients"
HOST = "127.0.0.1"

SERVER_EVERYTHING = NODE_MODULES / "@modelcontextprotocol/server-everything/dist/index.js"
SERVER_FILESYSTEM = NODE_MODULES / "@modelcontextprotocol/server-filesystem/dist/index.js"
SUPERGATEWAY = NODE_MODULES / "supergateway/dist/index.js"
MCP_REMOTE = NODE_MODULES / "mcp-remote/dist/proxy.js"
INSPECTOR_BUILD = NODE_MODULES / "@modelcontextprotocol/inspector-cli/build"

ACCEPT_BOTH = "application/json, text/event-stream"
PROTO = "2025-06-18"

# Hang guards (seconds). Not assertions: a run that needs them has already gone wrong.
START_GUARD = 30.0
STOP_GUARD = 15.0
IO_GUARD = 30.0

# Every token value any test configures or sends; the last test greps all gateway logs for them.
TOKENS_USED: set[str] = set()
# Every gateway log file written in this run.
GATEWAY_LOGS: list[Path] = []


def new_token(label: str = "tok") -> str:
    """A fresh random token (>= 16 chars, as the gateway requires), remembered for the log grep."""
    t = f"{label}-{secrets.token_urlsafe(24)}"
    TOKENS_USED.add(t)
    return t


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Proc:
    """A child process in its own session and process group, its output in log_path."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict | None = None,
                 cwd: Path | None = None, stdout_path: Path | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.stdout_path = stdout_path
        full_env = dict(os.environ)
        # Never let a proxy setting send loopback traffic elsewhere.
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
            full_env.pop(k, None)
        full_env["NO_PROXY"] = "*"
        if env:
            full_env.update({k: str(v) for k, v in env.items() if v is not None})
            for k, v in env.items():
                if v is None:
                    full_env.pop(k, None)
        self._log = open(log_path, "ab")
        self._out = open(stdout_path, "ab") if stdout_path else self._log
        self.popen = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._log,
            env=full_env, cwd=str(cwd) if cwd else None, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def send_signal(self, sig: int) -> None:
        """Signal the process group (the process is its leader: setsid)."""
        if self.alive():
            os.killpg(self.pid, sig)

    def wait(self, timeout: float = STOP_GUARD) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop the whole group and wait for the leader to exit; returns its exit code."""
        if self.alive():
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=STOP_GUARD)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=STOP_GUARD)
        # Children that outlived the leader (same group) are ended too.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for f in {self._log, self._out}:
            f.close()
        return self.popen.returncode


def wait_until(pred, what: str, proc: Proc | None = None, guard: float = START_GUARD):
    """Poll pred() until it returns a truthy value; fail early if proc dies."""
    deadline = time.monotonic() + guard
    last_err = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} while waiting for {what}:\n"
                               f"{proc.log_text()[-4000:]}")
        try:
            v = pred()
            if v:
                return v
        except (OSError, http.client.HTTPException, ValueError) as e:
            last_err = e
        time.sleep(0.05)
    tail = proc.log_text()[-4000:] if proc else ""
    raise RuntimeError(f"gave up waiting for {what} (last error: {last_err!r})\n{tail}")


# ---------------------------------------------------------------------------------------------
# HTTP on loopback


class Resp:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def sse_events(self) -> list[dict]:
        return parse_sse(self.body)

    def __repr__(self) -> str:
        return f"<Resp {self.status} {self.headers!r} {self.body[:300]!r}>"


def request(port: int, method: str, path: str = "/mcp", body: bytes | str | None = None,
            headers: dict | list | None = None, timeout: float = IO_GUARD) -> Resp:
    """One HTTP/1.1 request to 127.0.0.1:port; headers exactly as given (no defaults added
    except Host, unless given, and Content-Length, which http.client always sends)."""
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        items = list(headers.items() if isinstance(headers, dict) else (headers or []))
        conn.putrequest(method, path, skip_accept_encoding=True,
                        skip_host=any(k.lower() == "host" for k, _ in items))
        for k, v in items:
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        return Resp(r.status, r.getheaders(), data)
    finally:
        conn.close()


def mcp_headers(token: str | None = None, sid: str | None = None, accept: str | None = ACCEPT_BOTH,
                proto: str | None = PROTO, extra: dict | None = None) -> dict:
    h = {"Content-Type": "application/json"}
    if accept is not None:
        h["Accept"] = accept
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if sid is not None:
        h["mcp-session-id"] = sid
        if proto:
            h["mcp-protocol-version"] = proto
    if extra:
        h.update(extra)
    return h


def init_body(rid=1, proto: str = PROTO) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": "initialize",
                       "params": {"protocolVersion": proto, "capabilities": {},
                                  "clientInfo": {"name": "sr-system-test", "version": "0"}}})


INITIALIZED = '{"jsonrpc":"2.0","method":"notifications/initialized"}'


def rpc(rid, method: str, params: dict | None = None) -> str:
    m = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        m["params"] = params
    return json.dumps(m)


def parse_sse(raw: bytes) -> list[dict]:
    """Split an SSE body into events: {'event','id','data','raw'} (LF or CRLF framing)."""
    text = raw.decode()
    events = []
    for block in re.split(r"\r?\n\r?\n", text):
        if not block.strip():
            continue
        ev = {"raw": block, "data": None}
        datas = []
        for line in re.split(r"\r?\n", block):
            if line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            if k == "data":
                datas.append(v)
            elif k in ("event", "id", "retry"):
                ev[k] = v
        if datas:
            ev["data"] = "\n".join(datas)
        events.append(ev)
    return events


def sse_messages(raw: bytes) -> list[dict]:
    """The JSON-RPC messages carried by an SSE body (events with empty data are skipped)."""
    return [json.loads(e["data"]) for e in parse_sse(raw) if e.get("data")]


def body_messages(r: Resp) -> list[dict]:
    ct = (r.header("content-type") or "").lower()
    if ct.startswith("text/event-stream"):
        return sse_messages(r.body)
    return [r.json()]


def open_session(port: int, token: str | None = None, proto: str = PROTO, send_initialized: bool = True) -> str:
    r = request(port, "POST", "/mcp", init_body(proto=proto), mcp_headers(token))
    if r.status != 200:
        raise AssertionError(f"initialize failed: {r!r}")
    sid = r.header("mcp-session-id")
    assert sid, f"initialize answered without mcp-session-id: {r!r}"
    if send_initialized:
        r2 = request(port, "POST", "/mcp", INITIALIZED, mcp_headers(token, sid, proto=proto))
        assert r2.status == 202, r2
    return sid


class Stream:
    """A streaming HTTP response read incrementally (chunked decoding by http.client)."""

    def __init__(self, port: int, method: str, path: str, body: str | bytes | None, headers: dict,
                 timeout: float = IO_GUARD):
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        if isinstance(body, str):
            body = body.encode()
        self.conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers.items():
            self.conn.putheader(k, v)
        if body is not None:
            self.conn.putheader("Content-Length", str(len(body)))
        self.conn.endheaders(body)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.raw = b""
        self._consumed = 0

    def header(self, name: str) -> str | None:
        return self.resp.getheader(name)

    def next_event(self) -> dict | None:
        """Read until one complete SSE event is in the buffer; return it (None at EOF)."""
        while True:
            m = re.search(rb"\r?\n\r?\n", self._pending())
            if m:
                start = self._consumed
                block = self.raw[start:start + m.end()]
                self._consumed = start + m.end()
                evs = parse_sse(block)
                if evs:
                    return evs[0]
                continue
            chunk = self.resp.read1(65536)
            if not chunk:
                return None
            self.raw += chunk

    def _pending(self) -> bytes:
        return self.raw[self._consumed:]

    def read_rest(self) -> bytes:
        self.raw += self.resp.read()
        return self.raw

    def close(self) -> None:
        self.conn.close()


def raw_exchange(port: int, data: bytes, guard: float = 10.0) -> bytes:
    """Send raw bytes, half-close, and read whatever comes back until the peer closes."""
    with socket.create_connection((HOST, port), timeout=guard) as s:
        s.sendall(data)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            got += chunk
        return got


# ---------------------------------------------------------------------------------------------
# Peers


def mcp_initialize_ok(port: int) -> bool:
    """Readiness probe for an MCP server: a real initialize, then DELETE so no session lingers."""
    r = request(port, "POST", "/mcp", init_body(), mcp_headers(), timeout=5)
    if r.status != 200:
        return False
    sid = r.header("mcp-session-id")
    if sid:
        request(port, "DELETE", "/mcp", None, {"mcp-session-id": sid, "mcp-protocol-version": PROTO}, timeout=5)
    return True


class Peer:
    def __init__(self, proc: Proc, port: int, extra=None):
        self.proc = proc
        self.port = port
        self.url = f"http://{HOST}:{port}/mcp"
        self.extra = extra

    def stop(self) -> int | None:
        return self.proc.stop()


def start_everything(run_dir: Path, name: str = "everything") -> Peer:
    port = free_port()
    proc = Proc(name, ["node", SERVER_EVERYTHING, "streamableHttp"], run_dir / f"{name}-{port}.log",
                env={"PORT": port})
    try:
        wait_until(lambda: mcp_initialize_ok(port), f"{name} initialize on {port}", proc)
    except BaseException:
        proc.stop()
        raise
    return Peer(proc, port)


def start_fs_gateway(run_dir: Path, root: Path, name: str = "supergateway-fs") -> Peer:
    port = free_port()
    stdio_cmd = f"node {SERVER_FILESYSTEM} {root}"
    proc = Proc(name, ["node", SUPERGATEWAY, "--stdio", stdio_cmd, "--outputTransport", "streamableHttp",
                       "--port", port, "--stateful", "--healthEndpoint", "/healthz"],
                run_dir / f"{name}-{port}.log")
    try:
        wait_until(lambda: mcp_initialize_ok(port), f"{name} initialize on {port}", proc)
    except BaseException:
        proc.stop()
        raise
    return Peer(proc, port, extra=root)


def gateway_bin() -> Path:
    return Path(os.environ.get("SR_BIN", ROOT / "build" / "serena-remote")).resolve()


class Gateway:
    """A running `serena-remote serve`; stderr (the request log) goes to log_path."""

    def __init__(self, proc: Proc, port: int, upstream_port: int):
        self.proc = proc
        self.port = port
        self.upstream_port = upstream_port
        self.url = f"http://{HOST}:{port}/mcp"
        self.log_path = proc.log_path

    def health(self) -> dict:
        r = request(self.port, "GET", "/health", None, {}, timeout=5)
        assert r.status == 200, r
        return r.json()

    def log_text(self) -> str:
        return self.proc.log_text()

    def wait_log(self, pred, what: str):
        """Wait for the request log to satisfy pred (log lines may be written after the reply)."""
        return wait_until(lambda: pred(self.log_text()), what, None, guard=IO_GUARD)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        return self.proc.stop(sig)


def health_ok(port: int) -> bool:
    r = request(port, "GET", "/health", None, {}, timeout=5)
    if r.status != 200:
        return False
    return isinstance(r.json(), dict)


def start_gateway(run_dir: Path, upstream_port: int, env: dict | None = None, args: list | None = None,
                  name: str = "gateway", port: int | None = None) -> Gateway:
    port = port or free_port()
    log = run_dir / f"gateway-{name}-{port}.log"
    GATEWAY_LOGS.append(log)
    GATEWAY_LOGS.append(run_dir / f"gateway-{name}-{port}.stdout")
    genv = {"API_TOKEN": None, "API_TOKENS_JSON": None, "API_TOKENS_FILE": None,
            "MCP_CONTAINER_ROUTE_GENERATION": None, "ALLOWED_ORIGINS": None,
            # The admin listener's default address is one per machine: tests that want one
            # give their own (--admin-listen wins over this).
            "SERENA_REMOTE_ADMIN_LISTEN": "off", "ADMIN_TOKEN": None}
    genv.update(env or {})
    argv = [gateway_bin(), "serve", "--listen", f"{HOST}:{port}",
            "--upstream", f"http://{HOST}:{upstream_port}/mcp", *(args or [])]
    proc = Proc(name, argv, log, env=genv, stdout_path=run_dir / f"gateway-{name}-{port}.stdout")
    try:
        wait_until(lambda: health_ok(port), f"gateway {name} /health on {port}", proc)
    except BaseException:
        proc.stop()
        raise
    return Gateway(proc, port, upstream_port)


def run_cmd(argv: list, env: dict | None = None, cwd: Path | None = None, input_: bytes | None = None,
            guard: float = 60.0) -> subprocess.CompletedProcess:
    """Run a client to completion in its own session; a hang past the guard kills its group."""
    full_env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        full_env.pop(k, None)
    full_env["NO_PROXY"] = "*"
    if env:
        full_env.update({k: str(v) for k, v in env.items()})
    p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.PIPE if input_ is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env,
                         cwd=str(cwd) if cwd else None, start_new_session=True)
    try:
        out, err = p.communicate(input_, timeout=guard)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise AssertionError(f"{argv[:3]} hung (killed after the {guard}s guard)\nstderr:\n{err.decode()[-3000:]}")
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # leftovers of the client's group, if any
        except (ProcessLookupError, PermissionError):
            pass
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def run_mcp_remote(url: str, token: str | None, config_dir: Path, calls: list[str],
                   guard: float = 45.0) -> dict:
    """Drive mcp-remote (stdio <-> Streamable HTTP) like a desktop client would.

    Sends initialize and waits for its answer (mcp-remote needs that before anything else),
    then notifications/initialized and the given request lines, waits for an answer to each id,
    then closes stdin. Returns {"rc", "responses" (by id), "stderr"}. If initialize gets no
    answer (a refused token), it just waits for mcp-remote to exit on its own.
    """
    import threading
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    env["NO_PROXY"] = "*"
    env["MCP_REMOTE_CONFIG_DIR"] = str(config_dir)
    argv = ["node", str(MCP_REMOTE), url, str(free_port()), "--transport", "http-only"]
    if token is not None:
        argv += ["--header", f"Authorization: Bearer {token}"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, start_new_session=True)
    responses: dict = {}
    cond = threading.Condition()
    err_chunks: list[bytes] = []

    def read_out():
        for line in p.stdout:
            try:
                m = json.loads(line)
            except ValueError:
                continue
            with cond:
                if isinstance(m, dict) and "id" in m:
                    responses[m["id"]] = m
                cond.notify_all()
        with cond:
            cond.notify_all()

    def read_err():
        for chunk in iter(lambda: p.stderr.read1(65536), b""):
            err_chunks.append(chunk)

    t1 = threading.Thread(target=read_out, daemon=True)
    t2 = threading.Thread(target=read_err, daemon=True)
    t1.start()
    t2.start()
    deadline = time.monotonic() + guard

    def wait_for(ids) -> bool:
        with cond:
            while not all(i in responses for i in ids):
                if p.poll() is not None and not t1.is_alive():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                cond.wait(min(left, 0.2))
            return True

    def send(line: str) -> None:
        try:
            p.stdin.write(line.encode() + b"\n")
            p.stdin.flush()
        except BrokenPipeError:
            pass

    hung = False
    try:
        send(init_body(rid=1))
        if wait_for([1]):
            send(INITIALIZED)
            ids = []
            for c in calls:
                send(c)
                ids.append(json.loads(c)["id"])
            wait_for(ids)
            try:
                p.stdin.close()
            except BrokenPipeError:
                pass
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            hung = True
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait()
        t1.join(5)
        t2.join(5)
    return {"rc": p.returncode, "hung": hung, "responses": responses,
            "stderr": b"".join(err_chunks).decode(errors="replace")}


def run_inspector(url: str, token: str | None, method_args: list[str], guard: float = 45.0):
    """inspector-cli 1.0.3, run from its build/ directory (it resolves ../package.json from the cwd)."""
    argv = ["node", "index.js", url, "--transport", "http"]
    if token is not None:
        argv += ["--header", f"Authorization: Bearer {token}"]
    return run_cmd(argv + method_args, cwd=INSPECTOR_BUILD, guard=guard)


ECHO_UPSTREAM = HERE / "stubs" / "echo_upstream.mjs"
# The exact bytes stubs/echo_upstream.mjs writes for "stub/sse-exact" (kept in step with it).
SSE_EXACT = (
    b": ping\r\n\r\n"
    b"id: e1\r\ndata:\r\n\r\n"
    b'event: message\r\nid: e2\r\ndata: {"jsonrpc":"2.0","method":"notifications/message",'
    b'"params":{"level":"info","data":"x"}}\r\n\r\n'
    b"data: line one\ndata: line two\n\n"
    b'event: message\nid: e3\ndata: {"jsonrpc":"2.0","id":7,"result":{"ok":true,"text":"caf\xc3\xa9 \xe2\x9c\x93"}}\n\n'
)


def start_echo_upstream(run_dir: Path, name: str = "echo-upstream") -> Peer:
    port = free_port()
    proc = Proc(name, ["node", ECHO_UPSTREAM], run_dir / f"{name}-{port}.log", env={"PORT": port})

    def ready():
        r = request(port, "GET", "/__log", None, {}, timeout=5)
        return r.status == 200 and isinstance(r.json(), list)

    try:
        wait_until(ready, f"{name} on {port}", proc)
    except BaseException:
        proc.stop()
        raise
    return Peer(proc, port)


def stub_log(port: int) -> list[dict]:
    """Requests the echo upstream received on /mcp; headers as a lower-cased multimap."""
    out = []
    for e in request(port, "GET", "/__log", None, {}).json():
        h: dict[str, list[str]] = {}
        raw = e["headers"]
        for i in range(0, len(raw), 2):
            h.setdefault(raw[i].lower(), []).append(raw[i + 1])
        e["h"] = h
        try:
            e["json"] = json.loads(e["body"]) if e["body"] else None
        except ValueError:
            e["json"] = None
        out.append(e)
    return out


def stub_release(port: int, key: str) -> None:
    r = request(port, "POST", f"/__release?k={key}", b"", {})
    assert r.status == 200, r


# ---------------------------------------------------------------------------------------------
# Per-token instances (serve without --upstream)

# server-everything as a per-route backend: fast to start, and its get-env tool shows what the
# gateway passed down.
EVERYTHING_BACKEND_CMD = f"env PORT={{port}} node {SERVER_EVERYTHING} streamableHttp"

# Settings a developer's shell might carry that would change an instance gateway's behaviour.
INSTANCE_SETTINGS = ("SLEEP_AFTER", "MAX_INSTANCES", "SERENA_START_TIMEOUT", "SERENA_STOP_GRACE",
                     "SERENA_BACKEND_CMD", "SERENA_REMOTE_STATE_DIR", "SERENA_REMOTE_ENV_FILE",
                     "SERENA_REMOTE_UPSTREAM", "SERENA_CONTEXT", "SERENA_PROJECT", "SERENA_HOME",
                     "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SERENA_SNAPSHOT_KEY", "SERENA_READ_ONLY")


def route_dir(state_dir: Path, route: str) -> Path:
    """The directory the gateway keeps for a route: routes/<first 16 hex of sha256(route)>."""
    import hashlib
    return Path(state_dir) / "routes" / hashlib.sha256(route.encode()).hexdigest()[:16]


def proc_starttime(pid: int) -> int | None:
    """/proc/PID/stat field 22 (clock ticks since boot), or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[22 - 3])


def proc_running(pid: int, starttime: int | None = None) -> bool:
    """True while PID is a live (not zombie) process, and the same one when starttime is given."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    fields = raw[raw.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return False
    return starttime is None or int(fields[22 - 3]) == starttime


def read_pidfile(path: Path) -> tuple[int, int] | None:
    """(pid, starttime) from a route's pid file, or None when it is absent."""
    try:
        pid, start = path.read_text().split()
    except FileNotFoundError:
        return None
    return int(pid), int(start)


class InstanceGateway(Gateway):
    """A `serve` without --upstream: every token route gets its own backend under state_dir."""

    def __init__(self, proc: Proc, port: int, state_dir: Path):
        super().__init__(proc, port, 0)
        self.state_dir = Path(state_dir)

    def route_dir(self, route: str) -> Path:
        return route_dir(self.state_dir, route)

    def pidfile(self, route: str) -> tuple[int, int] | None:
        return read_pidfile(self.route_dir(route) / "pid")

    def status(self, token: str) -> dict:
        r = request(self.port, "GET", "/status", None, {"Authorization": f"Bearer {token}"}, timeout=5)
        assert r.status == 200, r
        return r.json()

    def starts(self, route: str) -> list[tuple[int, int]]:
        """(port, pid) of every "starting instance" line logged for route."""
        pat = re.compile(rf"route={re.escape(route)} starting instance on 127\.0\.0\.1:(\d+) \(pid (\d+),")
        return [(int(p), int(q)) for p, q in pat.findall(self.log_text())]


def assert_one_identity(g, credential: str, static: str, other: str) -> None:
    """A credential standing for a static token (an OAuth access token, a JWT) is that token:
    a session opened with it works with the static token, on the same route and the one backend
    instance; another token's requests cannot use that session."""
    sid = open_session(g.port, credential)
    r = request(g.port, "POST", "/mcp", rpc(2, "tools/list"), mcp_headers(static, sid=sid))
    assert r.status == 200, r
    route = g.status(static)["route"]
    assert g.status(credential)["route"] == route
    assert g.status(credential)["instance"]["pid"] == g.status(static)["instance"]["pid"]
    assert len({p for p, _ in g.starts(route)}) == 1
    r = request(g.port, "POST", "/mcp", rpc(3, "tools/list"), mcp_headers(other, sid=sid))
    assert r.status == 404, r


def start_instance_gateway(run_dir: Path, state_dir: Path, backend_cmd: str = EVERYTHING_BACKEND_CMD,
                           env: dict | None = None, args: list | None = None, name: str = "inst",
                           port: int | None = None) -> InstanceGateway:
    port = port or free_port()
    log = run_dir / f"gateway-{name}-{port}.log"
    GATEWAY_LOGS.append(log)
    GATEWAY_LOGS.append(run_dir / f"gateway-{name}-{port}.stdout")
    genv = {"API_TOKEN": None, "API_TOKENS_JSON": None, "API_TOKENS_FILE": None,
            "MCP_CONTAINER_ROUTE_GENERATION": None, "ALLOWED_ORIGINS": None,
            # The admin listener's default address is one per machine: tests that want one
            # give their own (--admin-listen wins over this).
            "SERENA_REMOTE_ADMIN_LISTEN": "off", "ADMIN_TOKEN": None}
    genv.update({k: None for k in INSTANCE_SETTINGS})
    genv.update(env or {})
    argv = [gateway_bin(), "serve", "--listen", f"{HOST}:{port}", "--state-dir", state_dir,
            "--backend-cmd", backend_cmd, *(args or [])]
    proc = Proc(name, argv, log, env=genv, stdout_path=run_dir / f"gateway-{name}-{port}.stdout")
    try:
        wait_until(lambda: health_ok(port), f"gateway {name} /health on {port}", proc)
    except BaseException:
        proc.stop()
        raise
    return InstanceGateway(proc, port, state_dir)
