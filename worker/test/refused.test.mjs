// A Worker whose configuration is wrong says so: /health is degraded with the reason, and a
// client gets a JSON-RPC error naming it, while no container is started or contacted.
//
// Three `wrangler dev --env local` runs: (1) a token and a container setting `serena-remote run`
// would refuse (the same rule, from core.wasm); (2) no container available, as the container
// library answers at max_instances (LocalContainer's "unavailable"); (3) no token at all.
// Otherwise LOCAL_CONTAINER_URLS points at a port where nothing listens, so a request that
// reached a container would be a 502.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, stop, wranglerDev, wranglerReady } from "./helpers.mjs";

const TOKEN = "refused-e2e-token-0123456789abcdef";
const running = [];

after(async () => {
  for (const w of running) stop(w, "SIGTERM", { group: true });
  await Promise.all(running.map((w) => w.exited));
});

async function worker(devVars, vars) {
  const tmp = mkdtempSync(join(tmpdir(), "sr-refused-"));
  const port = await freePort();
  const nowhere = await freePort();
  writeFileSync(join(tmp, "dev.vars"), devVars);
  const args = ["--env", "local", "--env-file", join(tmp, "dev.vars"), "--persist-to", join(tmp, "state")];
  for (const [k, v] of Object.entries({ LOCAL_CONTAINER_URLS: JSON.stringify({ "*": `http://127.0.0.1:${nowhere}` }), ...vars }))
    args.push("--var", `${k}:${v}`);
  const w = wranglerDev(args, { port, log: join(tmp, "wrangler.log") });
  running.push(w);
  await wranglerReady(w, port);
  return port;
}

test("a container setting run would refuse: /health degraded with the reason, clients get a JSON-RPC 500 naming it", async () => {
  const port = await worker(`API_TOKENS_JSON=${JSON.stringify({ dev: TOKEN })}\n`, {
    SERENA_R2_SNAPSHOT_RETENTION_COUNT: "0",
    SERENA_R2_STATE_PARTITION_MODE: "per-token",
  });
  const h = await (await fetch(`http://127.0.0.1:${port}/health`)).json();
  assert.equal(h.status, "degraded", JSON.stringify(h));
  assert.match(h.reason, /SERENA_R2_SNAPSHOT_RETENTION_COUNT=0 is invalid: expected a count from 1 to 1000/);
  assert.match(h.reason, /SERENA_R2_STATE_PARTITION_MODE=per-token is invalid: expected durable-object, token or shared/);
  // The Worker cannot count its containers: it says so instead of reporting 0.
  assert.equal(h.instances.counts_known, false);
  assert.equal(h.instances.running, null);
  const r = await fetch(`http://127.0.0.1:${port}/mcp`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 5,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "sr-refused", version: "1" } },
    }),
  });
  const body = await r.json();
  assert.equal(r.status, 500, JSON.stringify(body));
  assert.equal(body.id, 5);
  assert.match(body.error.message, /so no container is started: .*SERENA_R2_SNAPSHOT_RETENTION_COUNT=0 is invalid/);
});

test("no container available (max_instances): a JSON-RPC 503 with Retry-After, not the library's plain text", async () => {
  const port = await worker(`API_TOKENS_JSON=${JSON.stringify({ dev: TOKEN })}\n`, {
    LOCAL_CONTAINER_URLS: JSON.stringify({ "*": "unavailable" }),
  });
  const r = await fetch(`http://127.0.0.1:${port}/mcp`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 6,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "sr-refused", version: "1" } },
    }),
  });
  assert.equal(r.status, 503);
  assert.match(r.headers.get("content-type") ?? "", /application\/json/);
  assert.match(r.headers.get("retry-after") ?? "", /^\d+$/);
  const body = await r.json();
  assert.equal(body.id, 6);
  assert.match(body.error.message, /No container is available for this token right now.*max_instances/);
});

test("no token configured: /health is degraded and says so", async () => {
  const port = await worker("SERENA_INTERNAL_SECRET=refused-internal-0123456789\n", {});
  const h = await (await fetch(`http://127.0.0.1:${port}/health`)).json();
  assert.equal(h.token_count, 0);
  assert.equal(h.status, "degraded", JSON.stringify(h));
  assert.match(h.reason, /no token configured: set API_TOKEN or API_TOKENS_JSON/);
  assert.ok(!JSON.stringify(h).includes("refused-internal-0123456789"), "no secret in /health");
});
