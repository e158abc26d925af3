// The shared vectors (tests/vectors/*.json) against core.wasm running inside workerd (wrangler
// dev), with the same expectations as tests/vectors/run_wasm.mjs: the Worker's core decides every
// case exactly as the native core does.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, WORKER, freePort, stop, wranglerDev, wranglerReady } from "./helpers.mjs";

const dir = join(ROOT, "tests", "vectors");
const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
let port;
let wr;

before(async () => {
  const tmp = mkdtempSync(join(tmpdir(), "sr-vectors-"));
  port = await freePort();
  wr = wranglerDev(["-c", join(WORKER, "test", "vectors", "wrangler.toml")], { port, log: join(tmp, "wrangler.log") });
  await wranglerReady(wr, port, "/");
});

after(async () => {
  stop(wr, "SIGTERM", { group: true });
  await wr?.exited;
});

test("core.wasm is a compiled module inside workerd", async () => {
  const r = await (await fetch(`http://127.0.0.1:${port}/`)).json();
  assert.equal(r.wasmIsModule, true);
  assert.match(r.runtime, /Cloudflare-Workers/);
});

test("the vector files are there", () => {
  assert.ok(files.length >= 5, `found ${files.join(", ")}`);
});

let total = 0;
for (const f of files) {
  test(`vectors ${f} (workerd)`, async () => {
    const r = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: readFileSync(join(dir, f)) });
    assert.equal(r.status, 200, await r.clone().text());
    const { passes, failures } = await r.json();
    total += passes;
    assert.deepEqual(failures, [], `${f}: ${failures.length} case(s) failed`);
    assert.ok(passes > 0, `${f}: no case ran`);
  });
}

test("every vector case ran", () => {
  const expected = files
    .map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")).cases.length)
    .reduce((a, b) => a + b, 0);
  assert.equal(total, expected);
});
