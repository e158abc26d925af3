// SERENA_ALLOW_SSE_GET=1: a bare GET /mcp (the standing SSE stream) is passed through the Worker
// and LocalContainer to `serena-remote run` and its backend (server-everything), and the stream's
// head arrives while the stream stays open.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SERENA_REMOTE, SERVER_EVERYTHING, answers, freePort, startDetached, stop, waitUntil, wranglerDev, wranglerReady } from "./helpers.mjs";

const TOKEN = "sse-token-0123456789abcdef";
let run;
let wr;
let wport;

before(async () => {
  const tmp = mkdtempSync(join(tmpdir(), "sr-sse-"));
  const rport = await freePort();
  run = startDetached(SERENA_REMOTE, ["run", "--listen", `127.0.0.1:${rport}`, "--state-dir", join(tmp, "state"), "--store", "none"], {
    cwd: tmp,
    log: join(tmp, "run.log"),
    env: { SERENA_BACKEND_CMD: `env PORT={port} ${process.execPath} ${SERVER_EVERYTHING} streamableHttp`, SERENA_INTERNAL_SECRET: "" },
  });
  await waitUntil("run /health", async () => (await answers(`http://127.0.0.1:${rport}/health`)).ok, { proc: run });
  wport = await freePort();
  writeFileSync(join(tmp, "dev.vars"), `API_TOKEN=${TOKEN}\n`);
  wr = wranglerDev(
    [
      "--env", "local", "--env-file", join(tmp, "dev.vars"), "--persist-to", join(tmp, "wrangler-state"),
      "--var", `LOCAL_CONTAINER_URLS:${JSON.stringify({ "*": `http://127.0.0.1:${rport}` })}`,
      "--var", "SERENA_ALLOW_SSE_GET:1",
    ],
    { port: wport, log: join(tmp, "wrangler.log") }
  );
  await wranglerReady(wr, wport);
});

after(async () => {
  stop(run);
  stop(wr, "SIGTERM", { group: true });
  await Promise.all([run?.exited, wr?.exited]);
});

test("with SERENA_ALLOW_SSE_GET=1 a GET /mcp stream is passed through (singleton token)", async () => {
  const h = { authorization: `Bearer ${TOKEN}`, accept: "application/json, text/event-stream", "content-type": "application/json" };
  const init = await fetch(`http://127.0.0.1:${wport}/mcp`, {
    method: "POST",
    headers: h,
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "sse", version: "1" } } }),
  });
  assert.equal(init.status, 200, await init.clone().text());
  await init.text();
  const sid = init.headers.get("mcp-session-id");
  assert.ok(sid);
  const health = await (await fetch(`http://127.0.0.1:${wport}/health`)).json();
  assert.equal(health.route_strategy, "singleton");
  const ac = new AbortController();
  const r = await fetch(`http://127.0.0.1:${wport}/mcp`, {
    headers: { authorization: `Bearer ${TOKEN}`, accept: "text/event-stream", "mcp-session-id": sid },
    signal: ac.signal,
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /text\/event-stream/);
  ac.abort();
});
