// The Worker in front of the real container image: wrangler dev --env local (Worker + core.wasm)
// -> LocalContainer -> the image of deploy/Dockerfile.cloudflare, run with podman on the host's
// network (its port on 127.0.0.1), PID 1 `serena-remote run`, Serena 2.1.0 inside.
//
//   client --Bearer--> wrangler dev --getByName(route)--> LocalContainer --X-Serena-Internal-Secret-->
//          podman container: serena-remote run --> Serena
//
// deploy/local-image.sh builds the image (cached: make test has just built it for
// tests/system/test_container.py) and runs podman. The container gets the environment a
// SerenaContainer would give it: the Worker's own settings filtered by core.wasm (the `run`
// settings that are set), its instance id and the internal secret. Skipped, with the reason,
// where podman cannot run.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Core } from "../core-abi.mjs";
import { ROOT, answers, freePort, waitUntil, wranglerDev, wranglerReady, stop } from "./helpers.mjs";

const IMAGE_SH = join(ROOT, "deploy", "local-image.sh");
const TOKEN = "container-e2e-token-0123456789abcdef";
const SECRET = "container-e2e-internal-0123456789";
const ACCEPT = "application/json, text/event-stream";

function sh(args, timeout = 120_000) {
  return spawnSync(IMAGE_SH, args, { encoding: "utf8", timeout });
}

const check = sh(["check"], 180_000);
const skip = check.status === 3 ? check.stdout.trim() : false;
if (!skip && check.status !== 0) throw new Error(`local-image.sh check failed (${check.status}): ${check.stdout}${check.stderr}`);

let image;
let name;
let wr;
let wport;
let rport;

before(async () => {
  if (skip) return;
  const b = sh(["build"], 3_600_000);
  assert.equal(b.status, 0, `image build failed:\n${(b.stderr ?? "").slice(-4000)}`);
  image = /^image (\S+)$/m.exec(b.stdout)[1];
  const tmp = mkdtempSync(join(tmpdir(), "sr-container-e2e-"));
  rport = await freePort();
  // What SerenaContainer passes: the run settings among the Worker's vars (core.wasm decides).
  const workerVars = {
    SERENA_R2_STATE_ENABLED: "0",
    SERENA_R2_SNAPSHOT_INTERVAL_SECONDS: "0",
    SERENA_CONTEXT: "agent",
    SERENA_INTERNAL_SECRET: SECRET,
    API_TOKENS_JSON: JSON.stringify({ dev: TOKEN }),
    ALLOWED_ORIGINS: "",
  };
  const core = await Core.load(readFileSync(process.env.CORE_WASM || join(ROOT, "build", "core.wasm")));
  const checked = core.runSettings(workerVars);
  assert.deepEqual(checked.errors, []);
  assert.ok(!checked.forward.includes("API_TOKENS_JSON") && checked.forward.includes("SERENA_CONTEXT"), checked.forward.join());
  const env = Object.fromEntries(checked.forward.map((k) => [k, workerVars[k]]));
  env.SERENA_INSTANCE_ID = "do-container-e2e";
  const envFile = join(tmp, "container.env");
  writeFileSync(envFile, Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(""), { mode: 0o600 });
  name = `sr-worker-e2e-${process.pid}`;
  const r = sh(["podman", "run", "-d", "--name", name, "--network", "host", "--env-file", envFile, image, "--listen", `127.0.0.1:${rport}`, "--state-dir", "/app/state"]);
  assert.equal(r.status, 0, r.stderr);
  await waitUntil(
    "container /health",
    async () => (await answers(`http://127.0.0.1:${rport}/health`, { headers: { "x-serena-internal-secret": SECRET } })).ok,
    { deadlineMs: 120_000 }
  );
  wport = await freePort();
  writeFileSync(join(tmp, "dev.vars"), `API_TOKENS_JSON=${workerVars.API_TOKENS_JSON}\nSERENA_INTERNAL_SECRET=${SECRET}\n`);
  wr = wranglerDev(
    ["--env", "local", "--env-file", join(tmp, "dev.vars"), "--persist-to", join(tmp, "wrangler-state"), "--var", `LOCAL_CONTAINER_URLS:${JSON.stringify({ "*": `http://127.0.0.1:${rport}` })}`],
    { port: wport, log: join(tmp, "wrangler.log") }
  );
  await wranglerReady(wr, wport);
});

after(async () => {
  if (name) sh(["podman", "rm", "-f", "-t", "5", name]);
  stop(wr, "SIGTERM", { group: true });
  await wr?.exited;
});

async function post(body, { sid, token = TOKEN } = {}) {
  const headers = { "content-type": "application/json", accept: ACCEPT };
  if (token) headers.authorization = `Bearer ${token}`;
  if (sid) headers["mcp-session-id"] = sid;
  const r = await fetch(`http://127.0.0.1:${wport}/mcp`, { method: "POST", headers, body: JSON.stringify(body) });
  const text = await r.text();
  let msg = null;
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith("data:") && line.slice(5).trim() !== "") {
      const m = JSON.parse(line.slice(5));
      if (m.id === body.id) msg = m;
    }
  }
  if (msg === null && text.startsWith("{")) msg = JSON.parse(text);
  return { r, msg, text };
}

const INIT = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "sr-container-e2e", version: "1" } },
};

test("Serena in the image answers through Worker -> LocalContainer -> container", { skip }, async () => {
  const init = await post(INIT);
  assert.equal(init.r.status, 200, init.text);
  assert.match(init.msg.result.serverInfo.name, /serena/i, init.text);
  const sid = init.r.headers.get("mcp-session-id");
  assert.ok(sid);
  assert.equal((await post({ jsonrpc: "2.0", method: "notifications/initialized" }, { sid })).r.status, 202);
  const list = await post({ jsonrpc: "2.0", id: 2, method: "tools/list" }, { sid });
  assert.equal(list.r.status, 200, list.text);
  const names = list.msg.result.tools.map((t) => t.name);
  assert.ok(names.includes("find_symbol"), names.join(", "));
  assert.ok(!names.includes("execute_shell_command"), "the shell tool is off by default");
});

test("a wrong token never reaches the container; /status reaches it", { skip }, async () => {
  const bad = await post(INIT, { token: "wrong-token-0123456789abcdef" });
  assert.equal(bad.r.status, 401, bad.text);
  const s = await fetch(`http://127.0.0.1:${wport}/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(s.status, 200);
  const doc = await s.json();
  assert.equal(doc.instance.role, "run", JSON.stringify(doc));
  assert.equal(doc.instance.status, "ok", JSON.stringify(doc));
});

test("a container refuses a request that did not come through the Worker", { skip }, async () => {
  const r = await fetch(`http://127.0.0.1:${rport}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: ACCEPT },
    body: JSON.stringify(INIT),
  });
  assert.equal(r.status, 401, await r.text());
});

test("SIGTERM to the container: PID 1 exits 0", { skip }, async () => {
  assert.equal(sh(["podman", "kill", "--signal", "TERM", name]).status, 0);
  const w = sh(["podman", "wait", name], 120_000);
  assert.equal(w.status, 0, w.stderr);
  assert.equal(w.stdout.trim().split("\n").pop(), "0");
});
