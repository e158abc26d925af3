// Shared helpers of the Worker tests: free loopback ports, detached processes stopped by PID,
// readiness by real requests, and wrangler through the pinned Node 22.
//
// Every process is started detached (its own process group) on 127.0.0.1 and stopped by the
// PID this file recorded, never by name. Waiting is always for a real answer (a request that
// succeeds, a process that exits); the deadlines only bound a hang.

import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const WORKER = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const ROOT = resolve(WORKER, "..");
export const WRANGLER = join(WORKER, "node_modules", "wrangler", "bin", "wrangler.js");
export const SERENA_REMOTE = process.env.SERENA_REMOTE_BIN || join(ROOT, "build", "serena-remote");
export const SERVER_EVERYTHING = join(
  ROOT,
  "tests/system/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
);

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/**
 * Starts `cmd args` detached with stdout+stderr to `log`. Returns {pid, child, exited, log}:
 * `exited` resolves to {code, signal} when the process ends.
 */
export function startDetached(cmd, args, { env = {}, cwd = WORKER, log }) {
  const fd = openSync(log, "a");
  const child = spawn(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  const exited = new Promise((res) => child.once("exit", (code, signal) => res({ code, signal })));
  return { pid: child.pid, child, exited, log };
}

/** Sends `signal` to the process (group: true = its whole process group). Ignores a gone process. */
export function stop(proc, signal = "SIGTERM", { group = false } = {}) {
  if (!proc || !proc.pid) return;
  try {
    process.kill(group ? -proc.pid : proc.pid, signal);
  } catch (e) {
    if (e.code !== "ESRCH") throw e;
  }
}

/** Resolves to the first successful answer of `probe()` (a truthy value); fails when `proc` exits first. */
export async function waitUntil(what, probe, { proc, deadlineMs = 90_000 } = {}) {
  const end = Date.now() + deadlineMs;
  let last = "";
  let gone = null;
  proc?.exited.then((x) => (gone = x));
  for (;;) {
    if (gone) throw new Error(`${what}: the process exited (${JSON.stringify(gone)}) first; log:\n${tail(proc.log)}`);
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end)
      throw new Error(`${what}: no answer within ${deadlineMs} ms (${last})${proc ? "; log:\n" + tail(proc.log) : ""}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function tail(file, n = 40) {
  if (!file || !existsSync(file)) return "(no log)";
  return readFileSync(file, "utf8").split("\n").slice(-n).join("\n");
}

/** GET url -> Response when it answers at all (any status). */
export async function answers(url, init) {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  return r;
}

/**
 * `serena-remote run` on 127.0.0.1:port standing for the container of token `name` (behind
 * LocalContainer): server-everything backends, state in dir/state-<name>, the Worker's internal
 * secret and route generation, SERENA_INSTANCE_ID `do-<name>-<tag>` (what get-env shows). Resolves
 * to the detached process once its /health answers.
 */
export async function startLocalRun({ name, port, dir, secret, generation, tag }) {
  const proc = startDetached(SERENA_REMOTE, ["run", "--listen", `127.0.0.1:${port}`, "--state-dir", join(dir, `state-${name}`)], {
    cwd: dir,
    log: join(dir, `run-${name}.log`),
    env: {
      SERENA_BACKEND_CMD: `env PORT={port} ${process.execPath} ${SERVER_EVERYTHING} streamableHttp`,
      SERENA_INSTANCE_ID: `do-${name}-${tag}`,
      SERENA_INTERNAL_SECRET: secret,
      MCP_CONTAINER_ROUTE_GENERATION: generation,
      SERENA_SESSION_KEY: randomBytes(32).toString("base64url"),
    },
  });
  await waitUntil(
    `run ${name} /health`,
    async () => (await answers(`http://127.0.0.1:${port}/health`, { headers: { "x-serena-internal-secret": secret } })).ok,
    { proc }
  );
  return proc;
}

/** `wrangler dev` on 127.0.0.1:port, detached, with telemetry off and no interactive session. */
export function wranglerDev(args, { port, log, env = {} }) {
  return startDetached(
    process.execPath,
    [WRANGLER, "dev", ...args, "--ip", "127.0.0.1", "--port", String(port), "--show-interactive-dev-session=false"],
    { env: { WRANGLER_SEND_METRICS: "false", CI: "1", ...env }, log }
  );
}

/** Waits until wrangler dev answers GET path (any HTTP status counts). */
export function wranglerReady(proc, port, path = "/health") {
  return waitUntil(`wrangler dev on ${port}`, async () => (await answers(`http://127.0.0.1:${port}${path}`)).status > 0, {
    proc,
    deadlineMs: 120_000,
  });
}

/**
 * One MCP POST to `endpoint` (a full /mcp URL); token null sends no Authorization. Returns
 * {status, headers, msg (the JSON-RPC reply to body.id, from JSON or SSE, or null), text}.
 */
export async function mcpPost(endpoint, token, body, { sid, headers = {} } = {}) {
  const h = { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers };
  if (token !== null) h.authorization = `Bearer ${token}`;
  if (sid) h["mcp-session-id"] = sid;
  const r = await fetch(endpoint, { method: "POST", headers: h, body: JSON.stringify(body) });
  const text = await r.text();
  let msg = null;
  if ((r.headers.get("content-type") ?? "").includes("text/event-stream")) {
    for (const line of text.split(/\r?\n/)) {
      if (!line.startsWith("data:") || line.slice(5).trim() === "") continue;
      const m = JSON.parse(line.slice(5));
      if (m.id === body.id) msg = m;
    }
  } else if (text !== "") {
    msg = JSON.parse(text);
  }
  return { status: r.status, headers: r.headers, msg, text };
}

/** An MCP initialize request (protocol 2025-06-18) from a client named `name`. */
export function initRequest(name) {
  return {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name, version: "1" } },
  };
}
