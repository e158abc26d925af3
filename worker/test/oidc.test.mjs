// JWT access tokens from an external identity provider on the Worker (SERENA_REMOTE_OAUTH_ISSUER,
// docs/oauth.md "External identity provider" and "On Cloudflare"), over HTTP in workerd
// (`wrangler dev --env local`), against a real OpenID provider: the npm oidc-provider
// (tests/system/oidc_provider.mjs) on 127.0.0.1, which publishes its discovery document and JWKS
// (one RSA and one P-256 key) and issues JWT access tokens by the client_credentials grant with a
// resource indicator (aud = the resource asked for, sub = the client's id). A second provider with
// the same keys issues tokens that differ only in iss. Two `serena-remote run` processes stand for
// alice's and bob's containers (LocalContainer).
//
// Worker A: the issuer alone, sub mapped to token names, no clock skew, the JWKS found by
// discovery. Worker B: a groups claim, the built-in server on as well, and a JWKS that holds only
// the RSA key until the test publishes the EC one. Two whose JWKS URL answers a redirect or more
// than 64 KiB. Worker C: an issuer the rules refuse (fails closed). Every refusal is a 401 with
// error="invalid_token" and its reason in the log, never the token.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { generateKeyPairSync, createHmac, sign } from "node:crypto";
import { join } from "node:path";
import {
  ROOT,
  SERENA_REMOTE,
  SERVER_EVERYTHING,
  answers,
  freePort,
  initRequest,
  mcpPost,
  startDetached,
  startLocalRun,
  stop,
  waitUntil,
  wranglerDev,
  wranglerReady,
} from "./helpers.mjs";

const TOKENS = { alice: "alice-oidc-token-0123456789abcdef", bob: "bob-oidc-token-0123456789abcdef-b" };
const SECRET = "oidc-internal-secret-0123456789";
const GEN = "gen-oidc";
const MAP = { alice: "alice", "alice-es": "alice", bob: "bob" };
const PROVIDER = join(ROOT, "tests/system/oidc_provider.mjs");
const INIT = initRequest("sr-oidc-test");

const tmp = mkdtempSync(join(tmpdir(), "sr-oidc-"));
const runs = {};
const procs = [];
const workers = [];
let idp; // the provider
let other; // another issuer, same keys
const A = {};
const B = {};
const used = []; // every JWT sent, for the log check at the end

async function startProvider(name) {
  const port = await freePort();
  const p = startDetached(process.execPath, [PROVIDER, String(port), join(tmp, "oidc-keys.json"), "http://127.0.0.1:1/mcp"], {
    cwd: join(ROOT, "tests/system"),
    log: join(tmp, `${name}.log`),
  });
  procs.push(p);
  const issuer = `http://127.0.0.1:${port}`;
  await waitUntil(`${name} discovery`, async () => (await answers(`${issuer}/.well-known/openid-configuration`)).ok, { proc: p });
  return {
    issuer,
    async token(client, resource) {
      const r = await fetch(`${issuer}/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "client_credentials", client_id: client, client_secret: `secret-${client}`, resource }),
      });
      const j = await r.json();
      assert.equal(r.status, 200, JSON.stringify(j));
      used.push(j.access_token);
      return j.access_token;
    },
    async fetches() {
      return (await (await fetch(`${issuer}/test/jwks-fetches`)).json()).fetches;
    },
  };
}

async function startRun(name) {
  const r = (runs[name] = { port: await freePort() });
  r.proc = await startLocalRun({ name, port: r.port, dir: tmp, secret: SECRET, generation: GEN, tag: "oidc" });
  procs.push(r.proc);
}

/** wrangler dev --env local with an issuer; fills w.{port,pub,proc}. */
async function startWorker(w, vars) {
  w.port = await freePort();
  w.pub = `http://127.0.0.1:${w.port}`;
  const n = workers.length;
  const devVars = join(tmp, `dev-${n}.vars`);
  writeFileSync(devVars, `API_TOKENS_JSON=${JSON.stringify(TOKENS)}\nSERENA_INTERNAL_SECRET=${SECRET}\n`);
  const all = {
    LOCAL_CONTAINER_URLS: JSON.stringify({
      [`${GEN}:alice`]: `http://127.0.0.1:${runs.alice.port}`,
      [`${GEN}:bob`]: `http://127.0.0.1:${runs.bob.port}`,
    }),
    MCP_CONTAINER_ROUTE_GENERATION: GEN,
    SERENA_REMOTE_PUBLIC_URL: w.pub,
    SERENA_REMOTE_OAUTH_ISSUER: idp.issuer,
    SERENA_REMOTE_OAUTH_CLAIM_MAP: JSON.stringify(MAP),
    ...vars,
  };
  const args = ["--env", "local", "--env-file", devVars, "--persist-to", join(tmp, `wrangler-state-${n}`)];
  for (const [k, v] of Object.entries(all)) args.push("--var", `${k}:${v}`);
  w.proc = wranglerDev(args, { port: w.port, log: join(tmp, `wrangler-${n}.log`) });
  workers.push(w.proc);
  await wranglerReady(w.proc, w.port);
}

before(async () => {
  assert.ok(existsSync(SERENA_REMOTE), `${SERENA_REMOTE} missing: cmake --build build`);
  assert.ok(existsSync(SERVER_EVERYTHING), `${SERVER_EVERYTHING} missing: scripts/deps.sh installs the test peers`);
  assert.ok(existsSync(join(ROOT, "tests/system/node_modules/oidc-provider")), "oidc-provider missing: scripts/deps.sh installs the test peers");
  idp = await startProvider("oidc");
  other = await startProvider("oidc-other");
  await startRun("alice");
  await startRun("bob");
  await startWorker(A, { SERENA_REMOTE_OAUTH_CLOCK_SKEW: "0s" });
});

after(async () => {
  for (const w of workers) stop(w, "SIGTERM", { group: true });
  for (const p of procs) stop(p);
  await Promise.all([...workers, ...procs].map((p) => p.exited));
});

const b64 = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const parts = (jwt) => {
  const [h, p, s] = jwt.split(".");
  return { h: JSON.parse(Buffer.from(h, "base64url")), p: JSON.parse(Buffer.from(p, "base64url")), s, hb: h, pb: p };
};

// Keys the issuer never published: tokens signed with them are made here.
const rogueRsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
const rogueEc = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;

function signed(header, payload, key = rogueRsa) {
  const si = `${b64(header)}.${b64(payload)}`;
  const s =
    header.alg === "ES256"
      ? sign("sha256", Buffer.from(si), { key, dsaEncoding: "ieee-p1363" })
      : sign("sha256", Buffer.from(si), key);
  const t = `${si}.${s.toString("base64url")}`;
  used.push(t);
  return t;
}

async function mcp(w, token, body, opts) {
  return mcpPost(`${w.pub}/mcp`, token, body, opts);
}

/** The SERENA_INSTANCE_ID of the container `token` reaches: an MCP session, then get-env. */
async function instanceOf(w, token) {
  const r = await mcp(w, token, INIT);
  assert.equal(r.status, 200, r.text);
  const sid = r.headers.get("mcp-session-id");
  const e = await mcp(w, token, { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "get-env", arguments: {} } }, { sid });
  assert.equal(e.status, 200, e.text);
  return JSON.parse(e.msg.result.content[0].text).SERENA_INSTANCE_ID;
}

const logOf = (w) => readFileSync(w.proc.log, "utf8");
const count = (text, s) => text.split(s).length - 1;
/** Waits until w's log (written by wrangler a moment after the Worker logs) matches re. */
const logged = (w, re) => waitUntil(`the log line ${re}`, () => re.test(logOf(w)), { deadlineMs: 20_000 });

/** A 401 naming invalid_token and the metadata, and one more log line with this reason. */
async function assertRefused(w, token, reason) {
  const line = `JWT refused: ${reason}`;
  const seen = count(logOf(w), line);
  const r = await fetch(`${w.pub}/status`, { headers: { authorization: `Bearer ${token}` } });
  const body = await r.text();
  assert.equal(r.status, 401, body);
  assert.equal(
    r.headers.get("www-authenticate"),
    `Bearer realm="serena-remote", resource_metadata="${w.pub}/.well-known/oauth-protected-resource/mcp", error="invalid_token"`
  );
  assert.ok(!body.includes(token));
  await waitUntil(`the log line "${line}"`, () => count(logOf(w), line) > seen, { deadlineMs: 20_000 });
}

test("metadata: the RFC 9728 document names the issuer; the built-in server is not there; 401s point at it", async () => {
  for (const path of ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]) {
    const r = await fetch(`${A.pub}${path}`);
    assert.equal(r.status, 200, path);
    assert.equal(r.headers.get("access-control-allow-origin"), "*");
    const doc = await r.json();
    assert.equal(doc.resource, `${A.pub}/mcp`);
    assert.deepEqual(doc.authorization_servers, [idp.issuer]);
  }
  assert.notEqual((await fetch(`${A.pub}/.well-known/oauth-authorization-server`)).status, 200);
  assert.notEqual((await fetch(`${A.pub}/oauth/register`, { method: "POST", body: "{}" })).status, 201);
  const none = await mcp(A, null, INIT);
  assert.equal(none.status, 401, none.text);
  assert.equal(none.headers.get("www-authenticate"), `Bearer realm="serena-remote", resource_metadata="${A.pub}/.well-known/oauth-protected-resource/mcp"`);
  const h = await (await fetch(`${A.pub}/health`)).json();
  assert.equal(h.status, "ok", JSON.stringify(h));
});

test("RS256 and ES256 JWTs reach the mapped token's container; static tokens still work", async () => {
  const rs = await idp.token("alice", `${A.pub}/mcp`);
  const es = await idp.token("alice-es", `${A.pub}/mcp`);
  assert.equal(parts(rs).h.alg, "RS256");
  assert.equal(parts(es).h.alg, "ES256");
  assert.equal(parts(rs).p.sub, "alice");
  assert.equal(await instanceOf(A, rs), "do-alice-oidc");
  assert.equal(await instanceOf(A, es), "do-alice-oidc");
  assert.equal(await instanceOf(A, await idp.token("bob", `${A.pub}/mcp`)), "do-bob-oidc");
  assert.equal(await instanceOf(A, TOKENS.alice), "do-alice-oidc");
  assert.equal(await instanceOf(A, TOKENS.bob), "do-bob-oidc");
  // One identity: a session opened with alice's static token is the JWT's too; bob's is not.
  const a = await mcp(A, TOKENS.alice, INIT);
  const list = { jsonrpc: "2.0", id: 2, method: "tools/list" };
  const withJwt = await mcp(A, rs, list, { sid: a.headers.get("mcp-session-id") });
  assert.equal(withJwt.status, 200, withJwt.text);
  assert.ok(withJwt.msg.result.tools.length > 0);
  const b = await mcp(A, TOKENS.bob, INIT);
  const foreign = await mcp(A, rs, list, { sid: b.headers.get("mcp-session-id") });
  assert.equal(foreign.status, 404, foreign.text);
  const s = await (await fetch(`${A.pub}/status`, { headers: { authorization: `Bearer ${es}` } })).json();
  assert.equal(s.route, `${GEN}:alice`);
  // A wrong static token is still refused.
  const wrong = await mcp(A, "not-a-token-0123456789abcdef", INIT);
  assert.equal(wrong.status, 401);
});

test("refused: wrong aud, wrong iss, alg none, HS256, tampered signature or payload, a claim naming no token", async () => {
  const good = await idp.token("alice", `${A.pub}/mcp`);
  const { h, p, s, hb, pb } = parts(good);
  await assertRefused(A, await idp.token("alice", "http://127.0.0.1:1/mcp"), "aud does not name");
  // Same keys and kid, same claims but iss.
  const foreign = await other.token("alice", `${A.pub}/mcp`);
  assert.equal(parts(foreign).h.kid, h.kid);
  await assertRefused(A, foreign, "iss is not the configured issuer");
  const none = `${b64({ alg: "none", typ: "at+jwt" })}.${pb}.`;
  used.push(none);
  await assertRefused(A, none, "alg none");
  const hsIn = `${b64({ alg: "HS256", kid: h.kid })}.${pb}`;
  const hs = `${hsIn}.${createHmac("sha256", "secret").update(hsIn).digest("base64url")}`;
  used.push(hs);
  await assertRefused(A, hs, "alg HS*");
  const flipped = `${hb}.${pb}.${s.slice(0, 10)}${s[10] === "A" ? "B" : "A"}${s.slice(11)}`;
  used.push(flipped);
  await assertRefused(A, flipped, "the signature does not verify");
  const asBob = `${hb}.${b64({ ...p, sub: "bob" })}.${s}`;
  used.push(asBob);
  await assertRefused(A, asBob, "the signature does not verify");
  await assertRefused(A, await idp.token("nobody", `${A.pub}/mcp`), "the mapped claim names no configured token");
  // ...and the valid token still works after all that.
  assert.equal(await instanceOf(A, good), "do-alice-oidc");
});

test("refused: expired and not yet valid (signed here: the claims are judged before the key)", async () => {
  const { p } = parts(await idp.token("alice", `${A.pub}/mcp`));
  const now = Math.floor(Date.now() / 1000);
  await assertRefused(A, signed({ alg: "RS256", typ: "at+jwt", kid: "rsa-1" }, { ...p, iat: now - 7200, exp: now - 3600 }), "expired (exp)");
  await assertRefused(A, signed({ alg: "RS256", typ: "at+jwt", kid: "rsa-1" }, { ...p, nbf: now + 3600, exp: now + 7200 }), "not yet valid (nbf)");
  await assertRefused(A, signed({ alg: "ES256", kid: "ec-1", crit: ["x"] }, p, rogueEc), "the header carries crit");
});

test("an unknown kid refreshes the JWKS once and is still refused; later unknown kids cost no fetch", async () => {
  const { p } = parts(await idp.token("alice", `${A.pub}/mcp`));
  const before = await idp.fetches();
  await assertRefused(A, signed({ alg: "RS256", typ: "at+jwt", kid: "rogue-0" }, p), "no key of the JWKS fits");
  assert.equal(await idp.fetches(), before + 1);
  await logged(A, /a JWT names a key the JWKS lacks: refreshing it/);
  for (let i = 1; i <= 3; i++) await assertRefused(A, signed({ alg: "RS256", typ: "at+jwt", kid: `rogue-${i}` }, p), "no key of the JWKS fits");
  assert.equal(await idp.fetches(), before + 1);
  // Under the issuer's own kid, a key it never published fails the signature.
  await assertRefused(A, signed({ alg: "RS256", typ: "at+jwt", kid: "rsa-1" }, p), "the signature does not verify");
  assert.equal(await instanceOf(A, await idp.token("alice-es", `${A.pub}/mcp`)), "do-alice-oidc");
});

test("a token in the query string is refused with 400, even a valid one", async () => {
  const good = await idp.token("alice", `${A.pub}/mcp`);
  const r = await fetch(`${A.pub}/mcp?access_token=${good}`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify(INIT),
  });
  assert.equal(r.status, 400, await r.text());
});

test("a groups claim names one token, two are ambiguous; with OAUTH_ENABLED=1 the built-in server is listed after the issuer", async () => {
  await startWorker(B, {
    SERENA_REMOTE_OAUTH_CLAIM: "groups",
    SERENA_REMOTE_OAUTH_CLAIM_MAP: JSON.stringify({ "team-a": "alice", "team-b": "bob", "team-c": "carol" }),
    SERENA_REMOTE_OAUTH_JWKS_URL: `${idp.issuer}/test/jwks-view`,
    OAUTH_ENABLED: "1",
  });
  const grouped = await idp.token("grouped", `${B.pub}/mcp`);
  assert.deepEqual(parts(grouped).p.groups, ["unrelated", "team-a"]);
  assert.equal(await instanceOf(B, grouped), "do-alice-oidc");
  await logged(B, /SERENA_REMOTE_OAUTH_CLAIM_MAP names token carol, which is not configured/);
  await assertRefused(B, await idp.token("two-groups", `${B.pub}/mcp`), "the mapped claim names more than one token (ambiguous)");
  const doc = await (await fetch(`${B.pub}/.well-known/oauth-protected-resource/mcp`)).json();
  assert.deepEqual(doc.authorization_servers, [idp.issuer, B.pub]);
  const as = await (await fetch(`${B.pub}/.well-known/oauth-authorization-server`)).json();
  assert.equal(as.issuer, B.pub);
  assert.equal(await instanceOf(B, TOKENS.bob), "do-bob-oidc");
});

test("a key published after the JWKS was loaded: the request waits for the refresh and is judged again with it", async () => {
  // B's JWKS (/test/jwks-view) holds only the RSA key until now.
  await logged(B, /1 usable key\(s\)/);
  assert.equal((await fetch(`${idp.issuer}/test/publish-all`, { method: "POST" })).status, 200);
  const before = await idp.fetches();
  // An ES256 token (kid ec-1) without a groups claim: once the new key verifies it, the claim is
  // what is refused, so the reason shows the request was judged again with the new key.
  await assertRefused(B, await idp.token("alice-es", `${B.pub}/mcp`), "the token lacks the mapped claim");
  assert.equal(await idp.fetches(), before + 1);
  await logged(B, /2 usable key\(s\)/);
});

test("the JWKS fetch follows no redirect and reads at most 64 KiB: such a JWKS loads no key", async () => {
  // Served from this process on 127.0.0.1: a redirect to the issuer's real JWKS, and that JWKS
  // padded past 64 KiB and sent in chunks without a Content-Length.
  const jwks = await (await fetch(`${idp.issuer}/jwks`)).json();
  const stub = createServer((req, res) => {
    if (req.url === "/redirect") {
      res.writeHead(302, { location: `${idp.issuer}/jwks` });
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.write(JSON.stringify({ ...jwks, pad: "x".repeat(70 * 1024) }).slice(0, -1));
    res.end("}");
  });
  const port = await new Promise((res) => stub.listen(0, "127.0.0.1", () => res(stub.address().port)));
  try {
    for (const [path, reason] of [
      ["/redirect", "HTTP 302 (redirects are not followed)"],
      ["/big", "larger than 64 KiB"],
    ]) {
      const W = {};
      await startWorker(W, { SERENA_REMOTE_OAUTH_JWKS_URL: `http://127.0.0.1:${port}${path}` });
      await assertRefused(W, await idp.token("alice", `${W.pub}/mcp`), "no key of the JWKS fits its kid and alg");
      await logged(W, new RegExp(`cannot fetch the JWKS http://127\\.0\\.0\\.1:${port}${path}: ${reason.replace(/[()]/g, "\\$&")}`));
      stop(W.proc, "SIGTERM", { group: true });
    }
  } finally {
    await new Promise((res) => stub.close(res));
  }
});

test("an issuer the rules refuse fails closed: /health degraded, /mcp and the metadata answer 500 naming it", async () => {
  const C = {};
  await startWorker(C, { SERENA_REMOTE_OAUTH_ISSUER: "http://idp.example.com" });
  const h = await (await fetch(`${C.pub}/health`)).json();
  assert.equal(h.status, "degraded", JSON.stringify(h));
  assert.match(h.reason, /SERENA_REMOTE_OAUTH_ISSUER is invalid: http is allowed only on a loopback host/);
  const r = await mcp(C, TOKENS.alice, INIT);
  assert.equal(r.status, 500, r.text);
  assert.match(r.msg.error.message, /SERENA_REMOTE_OAUTH_ISSUER is invalid/);
  const m = await fetch(`${C.pub}/.well-known/oauth-protected-resource`);
  assert.equal(m.status, 500);
});

test("no JWT, signature or static token appears in the Workers' logs", () => {
  const log = workers.map((w) => readFileSync(w.log, "utf8")).join("\n");
  assert.match(log, /JWT refused: /);
  assert.ok(used.length > 10);
  for (const t of used) {
    assert.ok(!log.includes(t), `a JWT (${t.slice(0, 12)}...) is in the log`);
    const sig = t.split(".")[2];
    if (sig) assert.ok(!log.includes(sig), "a signature is in the log");
  }
  for (const v of Object.values(TOKENS)) assert.ok(!log.includes(v), "a static token is in the log");
});
