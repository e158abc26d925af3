// A test-only Worker that runs the shared vectors (tests/vectors/*.json) against core.wasm inside
// workerd, through the same core-abi.mjs binding and the same wasm module import as the Worker.
// POST a vector file's JSON; the answer is {passes, failures: [{name, why, got}]}. The matching
// rules are those of tests/vectors/run_wasm.mjs (subset comparison, body_contains, body_json,
// forbid, expect_config_error).

import coreModule from "../../src/core.wasm";
import { Core } from "../../core-abi.mjs";

function subset(want, got) {
  if (want === null || typeof want !== "object") return want === got;
  if (Array.isArray(want)) {
    return Array.isArray(got) && got.length === want.length && want.every((w, i) => subset(w, got[i]));
  }
  if (got === null || typeof got !== "object" || Array.isArray(got)) return false;
  return Object.entries(want).every(([k, v]) => k in got && subset(v, got[k]));
}

function runFile(core, doc) {
  const failures = [];
  let passes = 0;
  const fail = (name, why, got) => failures.push({ name, why, got });
  const forbidden = (c, text) => (c.forbid ?? []).some((s) => s.length > 0 && text.includes(s));
  const loadConfig = (cfg = {}) => {
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
  };
  for (const c of doc.cases) {
    const name = c.name ?? "(unnamed)";
    let cfgError = null;
    try {
      core.loadTokens({});
      loadConfig(c.config ?? doc.config);
    } catch (e) {
      cfgError = e.message;
    }
    if (c.expect_config_error !== undefined) {
      if (cfgError === null) fail(name, "config loaded but an error was expected");
      else if (!cfgError.includes(c.expect_config_error)) fail(name, "config error lacks the expected text", cfgError);
      else if (forbidden(c, cfgError)) fail(name, "config error contains a forbidden string", cfgError);
      else passes++;
      continue;
    }
    if (cfgError !== null) {
      fail(name, "config refused", cfgError);
      continue;
    }
    if (c.request !== undefined) {
      let d;
      try {
        d = core.classify(c.request);
      } catch (e) {
        fail(name, "request description refused", e.message);
        continue;
      }
      const text = JSON.stringify(d);
      const { body_contains, body_json, ...fields } = c.expect ?? {};
      const bad = Object.entries(fields).find(([k, v]) => !(k in d) || !subset(v, d[k]));
      if (bad) fail(name, `field "${bad[0]}" differs`, text);
      else if (body_contains !== undefined && !d.body.includes(body_contains)) fail(name, "body lacks body_contains", text);
      else if (body_json !== undefined && !subset(body_json, JSON.parse(d.body))) fail(name, "body differs from body_json", text);
      else if (forbidden(c, text)) fail(name, "decision contains a forbidden string", text);
      else passes++;
    } else if (c.health !== undefined) {
      const text = core.healthText(c.health);
      if (!subset(c.expect_health ?? {}, JSON.parse(text))) fail(name, "health document differs", text);
      else if (forbidden(c, text)) fail(name, "health document contains a forbidden string", text);
      else passes++;
    } else if (c.session !== undefined) {
      let j;
      try {
        j = core.sessionJudge(c.session);
      } catch (e) {
        fail(name, "session description refused", e.message);
        continue;
      }
      if (!subset(c.expect_session ?? {}, j)) fail(name, "session judgement differs", JSON.stringify(j));
      else passes++;
    } else {
      fail(name, "case has no request, health, session or expect_config_error");
    }
  }
  return { passes, failures };
}

export default {
  async fetch(req) {
    if (req.method !== "POST") {
      return Response.json({
        runtime: typeof navigator !== "undefined" ? navigator.userAgent : "unknown",
        wasmIsModule: coreModule instanceof WebAssembly.Module,
      });
    }
    // A fresh instance per file, as each runner process starts from a fresh one.
    const core = new Core(new WebAssembly.Instance(coreModule, {}));
    return Response.json(runFile(core, await req.json()));
  },
};
