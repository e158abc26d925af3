// End to end without Docker or an account: `wrangler dev --env local` runs this Worker with
// core.wasm; each route's Durable Object is LocalContainer, which forwards to one of two
// `serena-remote run` processes on 127.0.0.1 (the container's PID 1, here a plain process), each
// with server-everything as its backend and a local-directory store standing in for R2.
//
//   client --Bearer--> wrangler dev (Worker + core.wasm) --getByName(route)--> LocalContainer
//          --X-Serena-Internal-Secret--> serena-remote run (A or B) --> server-everything
//
// Checked: two tokens reach two different `run` processes (server-everything's get-env tool shows
// each run's SERENA_INSTANCE_ID), wrong or missing tokens get 401, /health shows generation,
// strategy and persistence settings, notifications/initialized is answered 202 at once and still
// delivered, a bare GET /mcp gets 405, /status reaches the token's own container, and a SIGTERM to
// `run` writes a final snapshot that the next `run` restores.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import {
  SERENA_REMOTE,
  SERVER_EVERYTHING,
  WORKER,
  answers,
  freePort,
  initRequest,
  mcpPost,
  startDetached,
  stop,
  tail,
  waitUntil,
  wranglerDev,
  wranglerReady,
} from "./helpers.mjs";

const TOKENS = { alice: "alice-token-0123456789abcdef", bob: "bob-token-0123456789abcdef-b" };
const SECRET = "internal-secret-0123456789";
const GEN = "gen-e2e";
const ACCEPT = "application/json, text/event-stream";

const tmp = mkdtempSync(join(tmpdir(), "sr-e2e-"));
const store = join(tmp, "store");
const runs = {}; // name -> {port, proc, stateDir, instanceId}
let wr;
let wport;
let runHelp = "";

function runArgs(r) {
  const args = ["run", "--listen", `127.0.0.1:${r.port}`, "--state-dir", r.stateDir];
  if (runHelp.includes("--store")) args.push("--store", `file:${store}`);
  return args;
}

async function startRun(name) {
  const r = runs[name];
  r.proc = startDetached(SERENA_REMOTE, runArgs(r), {
    cwd: tmp,
    log: join(tmp, `run-${name}.log`),
    env: {
      SERENA_BACKEND_CMD: `env PORT={port} ${process.execPath} ${SERVER_EVERYTHING} streamableHttp`,
      SERENA_INSTANCE_ID: r.instanceId,
      SERENA_INTERNAL_SECRET: SECRET,
      MCP_CONTAINER_ROUTE_GENERATION: GEN,
      // What SerenaContainer derives per route: each container its own session key, kept across
      // its sleeps.
      SERENA_SESSION_KEY: r.sessionKey,
    },
  });
  await waitUntil(
    `run ${name} /health`,
    async () => (await answers(`http://127.0.0.1:${r.port}/health`, { headers: { "x-serena-internal-secret": SECRET } })).ok,
    { proc: r.proc }
  );
}

before(async () => {
  assert.ok(existsSync(SERENA_REMOTE), `${SERENA_REMOTE} missing: cmake --build build`);
  assert.ok(existsSync(SERVER_EVERYTHING), `${SERVER_EVERYTHING} missing: scripts/deps.sh installs the test peers`);
  runHelp = spawnSync(SERENA_REMOTE, ["run", "--help"], { encoding: "utf8" }).stdout ?? "";
  mkdirSync(store, { recursive: true });
  for (const name of ["alice", "bob"]) {
    runs[name] = {
      port: await freePort(),
      stateDir: join(tmp, `state-${name}`),
      instanceId: `do-${name}-0001`,
      sessionKey: randomBytes(32).toString("base64url"),
    };
    await startRun(name);
  }
  wport = await freePort();
  const vars = join(tmp, "dev.vars");
  writeFileSync(vars, `API_TOKENS_JSON=${JSON.stringify(TOKENS)}\nSERENA_INTERNAL_SECRET=${SECRET}\n`);
  const urls = {
    [`${GEN}:alice`]: `http://127.0.0.1:${runs.alice.port}`,
    [`${GEN}:bob`]: `http://127.0.0.1:${runs.bob.port}`,
  };
  wr = wranglerDev(
    [
      "--env",
      "local",
      "--env-file",
      vars,
      "--persist-to",
      join(tmp, "wrangler-state"),
      "--var",
      `LOCAL_CONTAINER_URLS:${JSON.stringify(urls)}`,
      "--var",
      `MCP_CONTAINER_ROUTE_GENERATION:${GEN}`,
      "--var",
      "SERENA_R2_STATE_ENABLED:1",
      "--var",
      "R2_BUCKET_NAME:e2e-bucket",
      "--var",
      "SERENA_R2_SNAPSHOT_INTERVAL_SECONDS:77",
    ],
    { port: wport, log: join(tmp, "wrangler.log") }
  );
  await wranglerReady(wr, wport);
});

after(async () => {
  for (const r of Object.values(runs)) stop(r.proc);
  stop(wr, "SIGTERM", { group: true });
  await Promise.all([wr?.exited, ...Object.values(runs).map((r) => r.proc?.exited)]);
});

const url = (path) => `http://127.0.0.1:${wport}${path}`;

/** One MCP POST through the Worker (helpers.mjs mcpPost). */
const mcp = (token, body, opts) => mcpPost(url("/mcp"), token, body, opts);

const INIT = initRequest("sr-e2e");

async function session(token) {
  const r = await mcp(token, INIT);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.msg?.result?.serverInfo?.name, "mcp-servers/everything", r.text);
  const sid = r.headers.get("mcp-session-id");
  assert.ok(sid, "initialize returned a session id");
  return sid;
}

/** server-everything's get-env: the backend's environment, as JSON. */
async function backendEnv(token, sid) {
  const r = await mcp(token, { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "get-env", arguments: {} } }, { sid });
  assert.equal(r.status, 200, r.text);
  return JSON.parse(r.msg.result.content[0].text);
}

test("/health is answered by the Worker from core.wasm: generation, strategy, persistence settings", async () => {
  const r = await fetch(url("/health"));
  assert.equal(r.status, 200);
  const h = await r.json();
  assert.equal(h.role, "worker");
  assert.equal(h.route_generation, GEN);
  assert.equal(h.route_strategy, "per-token");
  assert.equal(h.token_count, 2);
  assert.equal(h.instances.max, 8);
  assert.equal(h.persistence.enabled, true);
  assert.equal(h.persistence.store, "s3");
  assert.equal(h.persistence.bucket, "e2e-bucket");
  assert.equal(h.persistence.prefix, "serena-mcp/default/serena-home-snapshots-v1");
  assert.equal(h.persistence.partition_mode, "durable-object");
  assert.equal(h.persistence.interval_seconds, 77);
  assert.equal(h.persistence.retention_count, 5);
  // Enabled without R2 credentials: the containers would run local-only, and /health says so.
  assert.equal(h.persistence.state, "degraded");
  assert.equal(h.status, "degraded");
  assert.match(h.reason, /SERENA_R2_STATE_ENABLED=1 but R2_ACCOUNT_ID or S3_ENDPOINT is not set: containers start with local state only/);
  // Each container reports only itself: the Worker does not pretend to count them.
  assert.equal(h.instances.counts_known, false);
  assert.equal(h.instances.running, null);
  const text = JSON.stringify(h);
  for (const [name, tok] of Object.entries(TOKENS)) {
    assert.ok(!text.includes(tok), "no token in /health");
    assert.ok(!text.includes(name), "no token name in /health");
  }
});

test("a wrong or missing token gets 401 with WWW-Authenticate, and nothing reaches a container", async () => {
  const logs = () => Object.values(runs).map((r) => readFileSync(r.proc.log, "utf8"));
  const before = logs();
  for (const token of ["wrong-token-0123456789abcdef", null]) {
    const r = await mcp(token, INIT);
    assert.equal(r.status, 401, r.text);
    assert.match(r.headers.get("www-authenticate") ?? "", /^Bearer /);
    assert.equal(r.msg.error.code, -32001);
  }
  // Every `run` logs each request it serves: neither saw these.
  assert.deepEqual(logs(), before);
});

test("OAuth is off by default: no authorization server, and 401s name no metadata", async () => {
  for (const path of ["/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource/mcp", "/oauth/register"]) {
    const r = await fetch(url(path), { method: path === "/oauth/register" ? "POST" : "GET" });
    assert.equal(r.status, 404, path);
    assert.doesNotMatch(await r.text(), /authorization_endpoint|authorization_servers|client_id/, path);
  }
  const r = await mcp(null, INIT);
  assert.equal(r.status, 401);
  assert.equal(r.headers.get("www-authenticate"), 'Bearer realm="serena-remote"');
});

test("two tokens reach two different `serena-remote run` processes", async () => {
  const ids = {};
  for (const name of ["alice", "bob"]) {
    const sid = await session(TOKENS[name]);
    const env = await backendEnv(TOKENS[name], sid);
    ids[name] = env.SERENA_INSTANCE_ID;
  }
  assert.equal(ids.alice, runs.alice.instanceId);
  assert.equal(ids.bob, runs.bob.instanceId);
  assert.notEqual(ids.alice, ids.bob);
});

test("no token and no internal secret reach the backend", async () => {
  const sid = await session(TOKENS.alice);
  const env = await backendEnv(TOKENS.alice, sid);
  for (const k of ["API_TOKEN", "API_TOKENS_JSON", "SERENA_INTERNAL_SECRET"]) assert.ok(!(k in env), `${k} reached the backend`);
  const text = JSON.stringify(env);
  for (const v of [...Object.values(TOKENS), SECRET]) assert.ok(!text.includes(v), `a secret (${v.slice(0, 8)}...) reached the backend`);
});

test("notifications/initialized is answered 202 at once and delivered in the background", async () => {
  const sid = await session(TOKENS.bob);
  const before = readFileSync(runs.bob.proc.log, "utf8").split("notifications/initialized").length;
  const r = await mcp(TOKENS.bob, { jsonrpc: "2.0", method: "notifications/initialized" }, { sid });
  assert.equal(r.status, 202);
  assert.equal(r.text, "");
  // The delivery (ctx.waitUntil) shows in bob's run log as a relayed request.
  await waitUntil("initialized delivered to run bob", async () => {
    return readFileSync(runs.bob.proc.log, "utf8").split("notifications/initialized").length > before;
  }, { deadlineMs: 30_000 });
  // The session goes on.
  const env = await backendEnv(TOKENS.bob, sid);
  assert.equal(env.SERENA_INSTANCE_ID, runs.bob.instanceId);
});

test("a bare GET /mcp gets 405 with Allow (an open stream would keep the container awake)", async () => {
  const sid = await session(TOKENS.alice);
  const r = await fetch(url("/mcp"), {
    headers: { authorization: `Bearer ${TOKENS.alice}`, accept: "text/event-stream", "mcp-session-id": sid },
  });
  assert.equal(r.status, 405, await r.text());
  assert.match(r.headers.get("allow") ?? "", /POST/);
});

test("an incomplete Accept is completed for Serena (fix_accept)", async () => {
  for (const accept of ["*/*", "application/json"]) {
    const r = await mcp(TOKENS.alice, INIT, { headers: { accept } });
    assert.equal(r.status, 200, `${accept}: ${r.text}`);
    assert.equal(r.msg?.result?.serverInfo?.name, "mcp-servers/everything");
  }
});

test("a foreign Origin gets 403", async () => {
  const r = await mcp(TOKENS.alice, INIT, { headers: { origin: "https://evil.example" } });
  assert.equal(r.status, 403, r.text);
});

test("/status reaches the token's own container", async () => {
  const r = await fetch(url("/status"), { headers: { authorization: `Bearer ${TOKENS.alice}` } });
  assert.equal(r.status, 200);
  const s = await r.json();
  assert.equal(s.route, `${GEN}:alice`);
  assert.equal(s.instance.role, "run", JSON.stringify(s));
});

test("a container refuses requests that did not come through the Worker (internal secret)", async () => {
  const r = await fetch(`http://127.0.0.1:${runs.alice.port}/mcp`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: ACCEPT },
    body: JSON.stringify(INIT),
  });
  assert.equal(r.status, 401, await r.text());
});

function archives(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const e of readdirSync(dir, { recursive: true })) {
    const p = join(dir, String(e));
    // A snapshot is a .tree (incremental snapshots) or, in the earlier format, a .tar.zst.
    if ((p.endsWith(".tree") || p.endsWith(".tar.zst")) && statSync(p).isFile()) out.push(p);
  }
  return out;
}

test("SIGTERM to run writes a final snapshot, and the next run restores it", async (t) => {
  if (!runHelp.includes("--store")) {
    t.skip("`serena-remote run --help` has no --store yet: snapshot persistence is not in this build");
    return;
  }
  const a = runs.alice;
  const sid = await session(TOKENS.alice);
  const home = (await backendEnv(TOKENS.alice, sid)).SERENA_HOME;
  assert.ok(home && existsSync(home), `backend SERENA_HOME ${home}`);
  const marker = `marker ${Date.now()}`;
  writeFileSync(join(home, "sr-e2e-marker.txt"), marker);
  const before = archives(store).length;

  stop(a.proc, "SIGTERM");
  const { code, signal } = await a.proc.exited;
  assert.equal(signal, null, tail(a.proc.log));
  assert.equal(code, 0, tail(a.proc.log));
  assert.ok(archives(store).length > before, `a snapshot appeared in ${store}:\n${tail(a.proc.log)}`);

  // A fresh disk, as a container gets after sleep: same instance id, same store, same port.
  a.stateDir = join(tmp, "state-alice-2");
  await startRun("alice");
  const sid2 = await session(TOKENS.alice);
  const home2 = (await backendEnv(TOKENS.alice, sid2)).SERENA_HOME;
  assert.ok(home2.startsWith(a.stateDir), `${home2} is under the new state dir`);
  assert.equal(readFileSync(join(home2, "sr-e2e-marker.txt"), "utf8"), marker);
  // The client's first session survived the container's sleep: the new `run` re-initialized it on
  // the new backend, and the client's id is unchanged.
  const again = await mcp(TOKENS.alice, { jsonrpc: "2.0", id: 8, method: "tools/list" }, { sid });
  assert.equal(again.status, 200, again.text);
  assert.ok(again.msg?.result?.tools?.length > 0, again.text);
  assert.equal(again.headers.get("mcp-session-id") ?? sid, sid);
});

test("session ids are the edge's own: sealed, bound to their container, refused elsewhere", async () => {
  const sid = await session(TOKENS.alice);
  assert.match(sid, /^sr1\./);
  // Another token's container holds another key: alice's id does not open there.
  const foreign = await mcp(TOKENS.bob, { jsonrpc: "2.0", id: 9, method: "tools/list" }, { sid });
  assert.equal(foreign.status, 404, foreign.text);
  assert.match(foreign.msg.error.message, /Session not found/);
  // A forged id gets 404 too; DELETE ends the session.
  const forged = await mcp(TOKENS.alice, { jsonrpc: "2.0", id: 10, method: "tools/list" }, { sid: sid.slice(0, -4) + "AAAA" });
  assert.equal(forged.status, 404, forged.text);
  const del = await fetch(url("/mcp"), {
    method: "DELETE",
    headers: { authorization: `Bearer ${TOKENS.alice}`, "mcp-session-id": sid, accept: ACCEPT },
  });
  assert.equal(del.status, 200, await del.text());
  const after = await mcp(TOKENS.alice, { jsonrpc: "2.0", id: 11, method: "tools/list" }, { sid });
  assert.equal(after.status, 404, after.text);
});
