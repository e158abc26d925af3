// The real backend through the whole Cloudflare path: wrangler dev --env local (Worker +
// core.wasm) -> LocalContainer -> `serena-remote run` with its default backend, Serena 2.1.0
// (scripts/serena.sh installs it in .venv-serena, pyright in .serena-tools). Skipped, with the
// reason, when that install is absent.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, SERENA_REMOTE, answers, freePort, startDetached, stop, waitUntil, wranglerDev, wranglerReady } from "./helpers.mjs";

const VENV_BIN = join(ROOT, ".venv-serena", "bin");
const TOOLS = join(ROOT, ".serena-tools");
const installed = existsSync(join(VENV_BIN, "serena")) && existsSync(join(TOOLS, "node_modules", ".bin", "pyright-langserver"));
const skip = installed ? false : "Serena is not installed (run scripts/serena.sh)";
const TOKEN = "serena-e2e-token-0123456789abcdef";
const SECRET = "serena-e2e-internal-0123456789";
const ACCEPT = "application/json, text/event-stream";

let run;
let wr;
let wport;

before(async () => {
  if (!installed) return;
  const tmp = mkdtempSync(join(tmpdir(), "sr-serena-"));
  const rport = await freePort();
  run = startDetached(SERENA_REMOTE, ["run", "--listen", `127.0.0.1:${rport}`, "--state-dir", join(tmp, "state"), "--store", `file:${join(tmp, "store")}`], {
    cwd: tmp,
    log: join(tmp, "run.log"),
    env: {
      PATH: `${VENV_BIN}:${process.env.PATH}`,
      SERENA_TOOLS_DIR: TOOLS,
      SERENA_INSTANCE_ID: "do-serena-0001",
      SERENA_INTERNAL_SECRET: SECRET,
      SERENA_BACKEND_CMD: "",
    },
  });
  await waitUntil("run /health", async () => (await answers(`http://127.0.0.1:${rport}/health`, { headers: { "x-serena-internal-secret": SECRET } })).ok, { proc: run });
  wport = await freePort();
  writeFileSync(join(tmp, "dev.vars"), `API_TOKENS_JSON=${JSON.stringify({ dev: TOKEN })}\nSERENA_INTERNAL_SECRET=${SECRET}\n`);
  wr = wranglerDev(
    ["--env", "local", "--env-file", join(tmp, "dev.vars"), "--persist-to", join(tmp, "wrangler-state"), "--var", `LOCAL_CONTAINER_URLS:${JSON.stringify({ "*": `http://127.0.0.1:${rport}` })}`],
    { port: wport, log: join(tmp, "wrangler.log") }
  );
  await wranglerReady(wr, wport);
});

after(async () => {
  stop(run);
  stop(wr, "SIGTERM", { group: true });
  await Promise.all([run?.exited, wr?.exited]);
});

async function post(body, sid) {
  const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", accept: ACCEPT };
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

test("Serena answers through Worker -> LocalContainer -> serena-remote run", { skip }, async () => {
  const init = await post({
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "sr-serena-e2e", version: "1" } },
  });
  assert.equal(init.r.status, 200, init.text);
  assert.match(init.msg.result.serverInfo.name, /serena/i, init.text);
  const sid = init.r.headers.get("mcp-session-id");
  assert.ok(sid);
  const note = await post({ jsonrpc: "2.0", method: "notifications/initialized" }, sid);
  assert.equal(note.r.status, 202);
  const list = await post({ jsonrpc: "2.0", id: 2, method: "tools/list" }, sid);
  assert.equal(list.r.status, 200, list.text);
  const names = list.msg.result.tools.map((t) => t.name);
  assert.ok(names.includes("find_symbol"), names.join(", "));
  assert.ok(!names.includes("execute_shell_command"), "the shell tool is off by default");
});

test("SIGTERM: run stops Serena and exits 0", { skip }, async () => {
  stop(run, "SIGTERM");
  const { code, signal } = await run.exited;
  assert.equal(signal, null);
  assert.equal(code, 0);
});
