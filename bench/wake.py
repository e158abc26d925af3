#!/usr/bin/env python3
"""Wake to first answer in an existing client session, against a fresh client on a fresh Serena.

Run by bench/wake.sh (which installs Serena first); stdlib only, helpers shared with
bench/cold_start.py. Everything on 127.0.0.1 with ports from the kernel; every process started
in its own session (setsid) and stopped by its PID (its process group), waiting for it to exit.

One gateway (real Serena backend, SLEEP_AFTER=2s) with two tokens, each with its own copy of
tests/system/fixtures/pyproj (lib.py defines greet, main.py calls it). The call is always
find_symbol {name_path_pattern: greet, include_body: true}; a round counts only if its answer
is greet from lib.py (a wake that lost the project answers "No active project" and fails).

ROUNDS interleaved rounds (the order of the three paths rotates each round); before each
measurement every instance is asleep and no Serena runs, so each path starts from nothing:
  wake    token "wake": one client session, set up once (initialize, notifications/initialized,
          activate_project), kept across rounds. Its instance is asleep. Timed: POST tools/call
          find_symbol with the session's id → the answer fully read. The gateway spawns Serena
          (with the route's project), re-initializes a backend session with the client's
          recorded initialize, and relays the call.
  fresh   token "fresh", instance asleep: a new client. Timed: POST initialize → 200,
          notifications/initialized → 202, activate_project → answer, find_symbol → answer.
          (What a client has to do itself when its session is gone.) Its session is deleted
          afterwards, outside the clock.
  direct  no gateway: spawn `/bin/sh -c "exec serena start-mcp-server ..."` (the gateway's
          command line) on its own SERENA_HOME (seeded from the gateway's config, reused across
          rounds), poll-connect + POST initialize every POLL_MS until 200, then the same three
          requests as fresh. Timed: spawn → find_symbol's answer.
Reported: each path's median and rounds; the gateway's extra time = median(wake) − median(direct)
(the target: ≤ 150 ms) and median(wake) − median(fresh); for each wake round, the split taken
from the gateway's log (spawn → ready → session resumed → answer).

Prints a Markdown report on stdout; progress on stderr.
"""

from __future__ import annotations

import http.client as httpc
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cold_start as cs  # noqa: E402 - shared helpers (needs SR_SERENA_BIN, set by wake.sh)

ROOT = cs.ROOT
FIXTURE = ROOT / "tests/system/fixtures/pyproj"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
POLL_MS = cs.POLL_MS
TARGET_MS = 150.0
HOST = cs.HOST
GUARD = cs.GUARD
PROTO = "2025-06-18"
FIND = {"name_path_pattern": "greet", "include_body": True}


def log(msg: str) -> None:
    print(f"wake: {msg}", file=sys.stderr, flush=True)


def post(port: int, body: dict, token: str | None = None, sid: str | None = None,
         timeout: float = GUARD) -> tuple[int, dict, bytes]:
    """POST /mcp; (status, lower-cased headers, body fully read)."""
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    if sid:
        h["mcp-session-id"] = sid
        h["mcp-protocol-version"] = PROTO
    c = httpc.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("POST", "/mcp", body=json.dumps(body).encode(), headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def delete(port: int, token: str | None, sid: str) -> None:
    h = {"mcp-session-id": sid, "mcp-protocol-version": PROTO}
    if token:
        h["Authorization"] = f"Bearer {token}"
    c = httpc.HTTPConnection(HOST, port, timeout=GUARD)
    try:
        c.request("DELETE", "/mcp", headers=h)
        c.getresponse().read()
    finally:
        c.close()


def messages(headers: dict, body: bytes) -> list[dict]:
    if headers.get("content-type", "").startswith("text/event-stream"):
        out = []
        for block in re.split(r"\r?\n\r?\n", body.decode()):
            data = [ln[5:].lstrip() for ln in re.split(r"\r?\n", block) if ln.startswith("data:")]
            if data and "".join(data).strip():
                out.append(json.loads("\n".join(data)))
        return out
    return [json.loads(body)] if body.strip() else []


def init_msg(rid: int) -> dict:
    return {"jsonrpc": "2.0", "id": rid, "method": "initialize",
            "params": {"protocolVersion": PROTO, "capabilities": {},
                       "clientInfo": {"name": "sr-bench-wake", "version": "0"}}}


def tool_msg(rid: int, name: str, args: dict) -> dict:
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": name, "arguments": args}}


INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


class Fail(Exception):
    pass


def tool(port: int, token: str | None, sid: str, rid: int, name: str, args: dict) -> str:
    st, h, b = post(port, tool_msg(rid, name, args), token, sid)
    if st != 200:
        raise Fail(f"{name}: HTTP {st}: {b[:200]!r}")
    got = [m for m in messages(h, b) if m.get("id") == rid]
    if not got or "result" not in got[0]:
        raise Fail(f"{name}: no result: {got or b[:200]!r}")
    r = got[0]["result"]
    text = "".join(c.get("text", "") for c in r.get("content", []) if c.get("type") == "text")
    if r.get("isError"):
        raise Fail(f"{name}: tool error: {text[:200]}")
    return text


def check_greet(text: str) -> None:
    try:
        syms = json.loads(text)
    except ValueError:
        raise Fail(f"find_symbol: not JSON: {text[:200]}") from None
    if not any(s.get("name_path") == "greet" and s.get("relative_path") == "lib.py" for s in syms):
        raise Fail(f"find_symbol: no greet in lib.py: {text[:200]}")


def handshake(port: int, token: str | None, project: Path) -> str:
    """initialize + initialized + activate_project; returns the session id."""
    st, h, b = post(port, init_msg(1), token)
    if st != 200 or not h.get("mcp-session-id"):
        raise Fail(f"initialize: HTTP {st}: {b[:200]!r}")
    sid = h["mcp-session-id"]
    st, _, b = post(port, INITIALIZED, token, sid)
    if st != 202:
        raise Fail(f"notifications/initialized: HTTP {st}: {b[:200]!r}")
    tool(port, token, sid, 2, "activate_project", {"project": str(project), "session": "sr-bench-wake"})
    return sid


def asleep(port: int, token: str) -> bool:
    inst = cs.status(port, token)["instance"]
    return inst is None or inst.get("state") == "asleep"


def procs_under(path: Path) -> list[int]:
    """Live processes whose command line or environment mention path (Serena and its pyright)."""
    needle = str(path).encode()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            blob = (d / "cmdline").read_bytes() + b"\0" + (d / "environ").read_bytes()
            stat = (d / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if needle in blob and stat[stat.rindex(")") + 2] not in "ZX":
            found.append(int(d.name))
    return found


def quiet(port: int, tokens: list[str], work: Path) -> None:
    """Every instance asleep and no Serena or pyright left, of the gateway's routes or of the
    direct runs (not the whole work dir: the gateway's own command line names it)."""
    cs.wait_until(lambda: all(asleep(port, t) for t in tokens), "every instance asleep")
    cs.wait_until(lambda: not procs_under(work / "state-wake" / "routes") and not procs_under(work / "direct"),
                  "no Serena left running")


# ---------------------------------------------------------------------------------------------
# the three paths


def wake_round(port: int, token: str, sid: str, rid: int, glog: Path) -> tuple[float, dict]:
    mark = glog.stat().st_size
    t0 = time.perf_counter()
    text = tool(port, token, sid, rid, "find_symbol", FIND)
    ms = (time.perf_counter() - t0) * 1000
    check_greet(text)
    time.sleep(0.1)  # the gateway's log lines may be written just after the reply
    lines = glog.read_bytes()[mark:].decode(errors="replace").splitlines()

    def at(pat: str) -> float | None:
        return next((cs.log_ms(x) for x in lines if pat in x and cs.TS.match(x)), None)

    return ms, {"start": at(" starting instance "), "ready": at(" instance ready "),
                "resumed": at(" resumed a client session")}


def fresh_round(port: int, token: str, project: Path) -> float:
    t0 = time.perf_counter()
    sid = handshake(port, token, project)
    text = tool(port, token, sid, 3, "find_symbol", FIND)
    ms = (time.perf_counter() - t0) * 1000
    check_greet(text)
    delete(port, token, sid)
    return ms


def direct_round(home_dir: Path, project: Path) -> float:
    port = cs.free_port()
    env = cs.base_env()
    env.update({"SERENA_HOME": str(home_dir / "home"), "HOME": str(home_dir / "home"),
                "TMPDIR": str(home_dir / "tmp"), "SERENA_USAGE_REPORTING": "false"})
    line = "exec " + cs.SERENA_CMD.replace("{port}", str(port))
    t0 = time.perf_counter()
    p = cs.Proc(["/bin/sh", "-c", line], env, home_dir / "backend.log", cwd=home_dir / "work")
    try:
        deadline = time.monotonic() + GUARD
        while True:
            if p.p.poll() is not None:
                raise Fail(f"direct Serena exited ({p.p.returncode}), see {home_dir}/backend.log")
            if time.monotonic() > deadline:
                raise Fail("direct Serena never answered")
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                sid = handshake(port, None, project)
                break
            except (OSError, httpc.HTTPException):
                time.sleep(POLL_MS / 1000)
        text = tool(port, None, sid, 3, "find_symbol", FIND)
        ms = (time.perf_counter() - t0) * 1000
        check_greet(text)
        return ms
    finally:
        p.stop()


# ---------------------------------------------------------------------------------------------


def run(work: Path) -> dict:
    toks = {"wake": f"bench-{secrets.token_urlsafe(18)}", "fresh": f"bench-{secrets.token_urlsafe(18)}"}
    projects = {}
    for k in ("wake", "fresh", "direct"):
        projects[k] = work / f"proj-{k}"
        shutil.copytree(FIXTURE, projects[k])
    g, port = cs.start_gateway(work, "wake", toks, {"SLEEP_AFTER": "2s"}, [])
    glog = work / "gateway-wake.log"
    res = {"wake": [], "fresh": [], "direct": [], "split": [], "fail": {"wake": [], "fresh": [], "direct": []}}
    try:
        # Set-up and warm-up (not measured): the wake client's session with its project active
        # and one call; one fresh round; the direct home seeded from the gateway's config and
        # one direct round (registers the project there, warms the page cache).
        log("set-up: the wake client's session")
        wake_sid = handshake(port, toks["wake"], projects["wake"])
        check_greet(tool(port, toks["wake"], wake_sid, 3, "find_symbol", FIND))
        log("warm-up: fresh")
        fresh_round(port, toks["fresh"], projects["fresh"])
        quiet(port, list(toks.values()), work)
        gen = json.loads(cs.req(port, "GET", "/health")[1])["route_generation"]
        seed = cs.route_dir(work / "state-wake", f"{gen}:fresh") / "home" / "serena_config.yml"
        direct_home = work / "direct"
        for sub in ("home", "work", "tmp"):
            (direct_home / sub).mkdir(parents=True)
        shutil.copy(seed, direct_home / "home" / "serena_config.yml")
        log("warm-up: direct")
        direct_round(direct_home, projects["direct"])
        log("warm-up: wake")
        quiet(port, list(toks.values()), work)
        try:
            wake_round(port, toks["wake"], wake_sid, 4, glog)
        except Fail as e:
            log(f"warm-up wake failed: {e}")
        rid = 10
        order = ["wake", "fresh", "direct"]
        for i in range(1, ROUNDS + 1):
            got = {}
            for k in order[i % 3:] + order[: i % 3]:
                quiet(port, list(toks.values()), work)
                try:
                    if k == "wake":
                        rid += 1
                        ms, split = wake_round(port, toks["wake"], wake_sid, rid, glog)
                        res["split"].append(split)
                    elif k == "fresh":
                        ms = fresh_round(port, toks["fresh"], projects["fresh"])
                    else:
                        ms = direct_round(direct_home, projects["direct"])
                    res[k].append(ms)
                    got[k] = f"{ms:.0f} ms"
                except Fail as e:
                    res["fail"][k].append(str(e))
                    got[k] = f"FAILED ({e})"
            log(f"round {i}: " + ", ".join(f"{k} {v}" for k, v in got.items()))
    finally:
        g.stop()
    return res


def report(res: dict) -> str:
    fmt = lambda xs: ", ".join(f"{x:.0f}" for x in xs)  # noqa: E731
    med = {k: statistics.median(res[k]) if res[k] else None for k in ("wake", "fresh", "direct")}
    what = {
        "wake": "existing session, instance asleep: POST tools/call find_symbol → answer (the gateway "
                "spawns Serena with the route's project, re-initializes, relays the call)",
        "fresh": "new client through the gateway, instance asleep: initialize + initialized + "
                 "activate_project + find_symbol",
        "direct": "new client on Serena started directly: spawn + initialize (polled) + initialized + "
                  "activate_project + find_symbol",
    }
    out = ["| path | what is timed | median | rounds (ms) | failed rounds |", "|---|---|---:|---|---:|"]
    for k in ("wake", "fresh", "direct"):
        m = f"**{med[k]:.0f} ms**" if med[k] is not None else "—"
        out.append(f"| {k} | {what[k]} | {m} | {fmt(res[k])} | {len(res['fail'][k])} |")
    out.append("")
    if med["wake"] is not None and med["direct"] is not None:
        d = med["wake"] - med["direct"]
        out.append(f"- **The gateway's extra time: {d:+.0f} ms** (median wake − median direct; "
                   f"target ≤ +{TARGET_MS:.0f} ms: {'met' if d <= TARGET_MS else 'NOT met'})")
    if med["wake"] is not None and med["fresh"] is not None:
        d = med["wake"] - med["fresh"]
        out.append(f"- Wake in the session against a new client through the same gateway: {d:+.0f} ms "
                   f"(median wake − median fresh: what continuity costs, or saves, against the client "
                   f"setting itself up again)")
    for k in ("wake", "fresh", "direct"):
        if res["fail"][k]:
            out.append(f"- {k}: {len(res['fail'][k])} round(s) failed; first: {res['fail'][k][0]}")
    splits = [s for s in res["split"] if all(s.get(x) for x in ("start", "ready", "resumed"))]
    if splits:
        sp = [s["ready"] - s["start"] for s in splits]
        rs = [s["resumed"] - s["ready"] for s in splits]
        rest = [w - (s["resumed"] - s["start"]) for w, s in zip(res["wake"], splits)]
        out.append(f"- Wake rounds from the gateway's log: spawn → instance ready {fmt(sp)} ms; ready → session "
                   f"resumed (re-initialize) {fmt(rs)} ms; the rest (accept, a snapshot restore before the "
                   f"spawn if there is one, the call itself) {fmt(rest)} ms")
    elif res["split"]:
        out.append("- The gateway's log had no 'resumed a client session' line for the wake rounds: no split")
    return "\n".join(out)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="sr-wake-"))
    keep = os.environ.get("BENCH_KEEP") == "1"
    # Private copies: a rebuild during the run must not swap the binary under us; the snapshot
    # helper must sit beside it.
    for b in (cs.BIN, cs.BIN.with_name("serena-remote-snapshot")):
        if b.exists():
            shutil.copy2(b, work / b.name)
    cs.BIN = work / "serena-remote"
    try:
        res = run(work)
    finally:
        if keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(res))


if __name__ == "__main__":
    main()
