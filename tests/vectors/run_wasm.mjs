// Runs the shared test vectors against core.wasm through worker/core-abi.mjs.
//
// Usage: node run_wasm.mjs build/core.wasm tests/vectors/*.json
// Same files, same expectations as run_vectors.c (the native runner): a
// difference between the two builds of the core is a failure in one of them.

import { readFileSync } from "node:fs";
import { Core } from "../../worker/core-abi.mjs";

// True when every field of `want` is present and equal in `got` (objects recurse, arrays exact).
function subset(want, got) {
  if (want === null || typeof want !== "object") return want === got;
  if (Array.isArray(want)) {
    return Array.isArray(got) && got.length === want.length && want.every((w, i) => subset(w, got[i]));
  }
  if (got === null || typeof got !== "object" || Array.isArray(got)) return false;
  return Object.entries(want).every(([k, v]) => k in got && subset(v, got[k]));
}

const [wasmPath, ...files] = process.argv.slice(2);
if (!wasmPath || files.length === 0) {
  console.error("usage: node run_wasm.mjs core.wasm FILE.json...");
  process.exit(2);
}
const core = await Core.load(readFileSync(wasmPath));
let passes = 0;
let failures = 0;

function fail(file, name, why, got) {
  failures++;
  console.error(`FAIL ${file}: ${name}: ${why}${got !== undefined ? "\n     got: " + got : ""}`);
}

function loadConfig(cfg = {}) {
  let tokensJson = "";
  if (typeof cfg.tokens_json === "string") tokensJson = cfg.tokens_json;
  else if (cfg.tokens_json !== undefined) tokensJson = JSON.stringify(cfg.tokens_json);
  core.loadTokens({ apiToken: cfg.api_token ?? "", tokensJson });
  const p = cfg.policy ?? {};
  core.setPolicy({
    generation: p.generation ?? "",
    origins: p.origins ?? "",
    checkBearer: p.check_bearer ?? true,
    bareGet405: p.bare_get_405 ?? false,
    maxBody: p.max_body ?? 0,
    loopbackListener: p.loopback_listener ?? false,
  });
}

function forbidden(c, text) {
  return (c.forbid ?? []).some((s) => s.length > 0 && text.includes(s));
}

for (const file of files) {
  const doc = JSON.parse(readFileSync(file, "utf8"));
  for (const c of doc.cases) {
    const name = c.name ?? "(unnamed)";
    let cfgError = null;
    try {
      // Reset first so that a failed load cannot leave the previous case's table in place.
      core.loadTokens({});
      loadConfig(c.config ?? doc.config);
    } catch (e) {
      cfgError = e.message;
    }
    if (c.expect_config_error !== undefined) {
      if (cfgError === null) fail(file, name, "config loaded but an error was expected");
      else if (!cfgError.includes(c.expect_config_error))
        fail(file, name, "config error lacks the expected text", cfgError);
      else if (forbidden(c, cfgError)) fail(file, name, "config error contains a forbidden string", cfgError);
      else passes++;
      continue;
    }
    if (cfgError !== null) {
      fail(file, name, "config refused", cfgError);
      continue;
    }
    if (c.request !== undefined) {
      let d;
      try {
        d = core.classify(c.request);
      } catch (e) {
        fail(file, name, "request description refused", e.message);
        continue;
      }
      const text = JSON.stringify(d);
      const { body_contains, body_json, ...fields } = c.expect ?? {};
      const bad = Object.entries(fields).find(([k, v]) => !(k in d) || !subset(v, d[k]));
      if (bad) fail(file, name, `field "${bad[0]}" differs`, text);
      else if (body_contains !== undefined && !d.body.includes(body_contains))
        fail(file, name, "body lacks body_contains", text);
      else if (body_json !== undefined && !subset(body_json, JSON.parse(d.body)))
        fail(file, name, "body differs from body_json", text);
      else if (forbidden(c, text)) fail(file, name, "decision contains a forbidden string", text);
      else passes++;
    } else if (c.health !== undefined) {
      const text = core.healthText(c.health);
      if (!subset(c.expect_health ?? {}, JSON.parse(text))) fail(file, name, "health document differs", text);
      else if (forbidden(c, text)) fail(file, name, "health document contains a forbidden string", text);
      else passes++;
    } else if (c.session !== undefined) {
      let j;
      try {
        j = core.sessionJudge(c.session);
      } catch (e) {
        fail(file, name, "session description refused", e.message);
        continue;
      }
      if (!subset(c.expect_session ?? {}, j)) fail(file, name, "session judgement differs", JSON.stringify(j));
      else passes++;
    } else {
      fail(file, name, "case has no request, health, session or expect_config_error");
    }
  }
}
console.log(`vectors (wasm): ${passes} passed, ${failures} failed`);
process.exit(failures === 0 && passes > 0 ? 0 : 1);
