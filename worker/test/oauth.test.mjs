// Sign in with OAuth on the Worker (OAUTH_ENABLED=1, docs/oauth.md "On Cloudflare"), over HTTP
// in workerd: `wrangler dev --env local` with its simulated OAUTH_KV, two `serena-remote run`
// processes (alice's and bob's containers, server-everything backends) behind LocalContainer.
//
// The whole flow: registration, the consent page (a wrong token, then the right one), the code,
// tokens, an MCP session with the access token reaching alice's container and nothing else,
// refresh with rotation, a rotated refresh token presented again ending the sign-in, revocation;
// two real clients (the TypeScript MCP SDK, mcp-remote with a scripted browser) signing in by
// themselves. Refusals: no PKCE, plain PKCE, a wrong verifier, a code used twice, a wrong
// redirect URI, a wrong resource, a token in the query string, a forged CSRF value or Origin,
// Deny. Then the Worker restarts with alice's token moved to another name and bob's changed:
// both grants are refused (and revoked), and the consent page's rate limit holds. A second
// Worker with a bad public URL fails closed.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import {
  ROOT,
  WORKER,
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

const TOKENS = { alice: "alice-oauth-token-0123456789abcdef", bob: "bob-oauth-token-0123456789abcdef-b" };
const SECRET = "oauth-internal-secret-0123456789";
const GEN = "gen-oauth";
const ACCEPT = "application/json, text/event-stream";
const REDIRECT = "http://127.0.0.1:9/callback";

const tmp = mkdtempSync(join(tmpdir(), "sr-oauth-"));
const runs = {};
const workers = [];
let wr;
let wport;
let PUB;

async function startRun(name) {
  const r = runs[name];
  r.proc = await startLocalRun({ name, port: r.port, dir: tmp, secret: SECRET, generation: GEN, tag: "oauth" });
}

/** wrangler dev --env local on `port` with OAuth on; tokens from `tokens`, KV kept in tmp. */
async function startWorker(port, tokens, vars = {}, dir = tmp) {
  const devVars = join(dir, `dev-${port}-${workers.length}.vars`);
  writeFileSync(devVars, `API_TOKENS_JSON=${JSON.stringify(tokens)}\nSERENA_INTERNAL_SECRET=${SECRET}\n`);
  const urls = {
    [`${GEN}:alice`]: `http://127.0.0.1:${runs.alice.port}`,
    [`${GEN}:bob`]: `http://127.0.0.1:${runs.bob.port}`,
    // Where alice's token goes after the restart (another name): bob's run stands in.
    [`${GEN}:carol`]: `http://127.0.0.1:${runs.bob.port}`,
  };
  const all = {
    LOCAL_CONTAINER_URLS: JSON.stringify(urls),
    MCP_CONTAINER_ROUTE_GENERATION: GEN,
    OAUTH_ENABLED: "1",
    SERENA_REMOTE_PUBLIC_URL: `http://127.0.0.1:${port}`,
    ...vars,
  };
  const args = ["--env", "local", "--env-file", devVars, "--persist-to", join(dir, "wrangler-state")];
  for (const [k, v] of Object.entries(all)) args.push("--var", `${k}:${v}`);
  const w = wranglerDev(args, { port, log: join(dir, `wrangler-${workers.length}.log`) });
  workers.push(w);
  await wranglerReady(w, port);
  return w;
}

before(async () => {
  assert.ok(existsSync(SERENA_REMOTE), `${SERENA_REMOTE} missing: cmake --build build`);
  assert.ok(existsSync(SERVER_EVERYTHING), `${SERVER_EVERYTHING} missing: scripts/deps.sh installs the test peers`);
  for (const name of ["alice", "bob"]) {
    runs[name] = { port: await freePort() };
    await startRun(name);
  }
  wport = await freePort();
  PUB = `http://127.0.0.1:${wport}`;
  wr = await startWorker(wport, TOKENS);
});

after(async () => {
  for (const r of Object.values(runs)) stop(r.proc);
  for (const w of workers) stop(w, "SIGTERM", { group: true });
  await Promise.all([...workers.map((w) => w.exited), ...Object.values(runs).map((r) => r.proc?.exited)]);
});

const url = (path) => `${PUB}${path}`;
const state = {}; // shared by the tests, in order
const b64url = (buf) => Buffer.from(buf).toString("base64url");

function pkce() {
  const verifier = b64url(randomBytes(32));
  return { verifier, challenge: b64url(createHash("sha256").update(verifier).digest()) };
}

async function register(name = "sr-oauth-test", redirect = REDIRECT) {
  const r = await fetch(url("/oauth/register"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      client_name: name,
      redirect_uris: [redirect],
      token_endpoint_auth_method: "none",
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
    }),
  });
  const j = await r.json();
  assert.equal(r.status, 201, JSON.stringify(j));
  assert.ok(j.client_id, JSON.stringify(j));
  return j.client_id;
}

function authorizeUrl(clientId, challenge, extra = {}) {
  const q = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: REDIRECT,
    state: "st-" + randomBytes(6).toString("hex"),
    code_challenge: challenge,
    code_challenge_method: "S256",
    resource: url("/mcp"),
    ...extra,
  });
  for (const [k, v] of Object.entries(extra)) if (v === undefined) q.delete(k);
  return url(`/oauth/authorize?${q}`);
}

const unescape = (v) => v.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

/** The consent page: {status, headers, html, fields (its hidden inputs), cookie (to send back)}. */
async function consentPage(authUrl) {
  const r = await fetch(authUrl, { redirect: "manual" });
  const html = await r.text();
  const cookie = r.headers
    .getSetCookie()
    .map((c) => c.split(";")[0])
    .join("; ");
  const fields = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields[m[1]] = unescape(m[2]);
  return { status: r.status, headers: r.headers, html, fields, cookie };
}

async function submit(page, fields, { cookie = page.cookie, origin = PUB } = {}) {
  const headers = { "content-type": "application/x-www-form-urlencoded", cookie };
  if (origin !== null) headers.origin = origin;
  const r = await fetch(url("/oauth/authorize"), {
    method: "POST",
    redirect: "manual",
    headers,
    body: new URLSearchParams({ ...page.fields, ...fields }),
  });
  return { status: r.status, headers: r.headers, html: await r.text(), location: r.headers.get("location") };
}

async function tokenRequest(fields) {
  const r = await fetch(url("/oauth/token"), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null, text };
}

/**
 * The client most tests sign in with: registrations are rate limited per address (10 a minute),
 * and every test here comes from the same one.
 */
async function sharedClient() {
  state.shared ??= await register("sr-oauth-shared");
  return state.shared;
}

/** Register, consent with `token`, and return {clientId, code, verifier, location}. */
async function signIn(token, { clientId, extra = {} } = {}) {
  clientId ??= await sharedClient();
  const { verifier, challenge } = pkce();
  const page = await consentPage(authorizeUrl(clientId, challenge, extra));
  assert.equal(page.status, 200, page.html);
  const r = await submit(page, { token, action: "allow" });
  assert.equal(r.status, 302, r.html);
  const loc = new URL(r.location);
  return { clientId, code: loc.searchParams.get("code"), verifier, location: loc };
}

async function exchange(s, extra = {}) {
  return tokenRequest({
    grant_type: "authorization_code",
    code: s.code,
    redirect_uri: REDIRECT,
    client_id: s.clientId,
    code_verifier: s.verifier,
    resource: url("/mcp"),
    ...extra,
  });
}

const mcp = (token, body, opts) => mcpPost(url("/mcp"), token, body, opts);

const INIT = initRequest("sr-oauth");

/** The SERENA_INSTANCE_ID of the container `token` reaches (server-everything's get-env). */
async function instanceOf(token) {
  const r = await mcp(token, INIT);
  assert.equal(r.status, 200, r.text);
  const sid = r.headers.get("mcp-session-id");
  const e = await mcp(token, { jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: "get-env", arguments: {} } }, { sid });
  assert.equal(e.status, 200, e.text);
  return JSON.parse(e.msg.result.content[0].text).SERENA_INSTANCE_ID;
}


test("metadata: RFC 9728 at both places, RFC 8414, and every 401 points at it", async () => {
  for (const path of ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]) {
    const r = await fetch(url(path));
    assert.equal(r.status, 200, path);
    const m = await r.json();
    assert.equal(m.resource, url("/mcp"), path);
    assert.deepEqual(m.authorization_servers, [PUB], path);
  }
  const r = await fetch(url("/.well-known/oauth-authorization-server"));
  assert.equal(r.status, 200);
  const m = await r.json();
  assert.equal(m.issuer, PUB);
  assert.equal(m.authorization_endpoint, url("/oauth/authorize"));
  assert.equal(m.token_endpoint, url("/oauth/token"));
  assert.equal(m.registration_endpoint, url("/oauth/register"));
  assert.equal(m.revocation_endpoint, url("/oauth/token"));
  assert.deepEqual(m.code_challenge_methods_supported, ["S256"]);
  assert.equal(m.authorization_response_iss_parameter_supported, true);
  // Browser-based clients may read the metadata and use the token endpoint (no ambient credential).
  const cors = await fetch(url("/oauth/token"), {
    method: "OPTIONS",
    headers: { origin: "https://inspector.example", "access-control-request-method": "POST" },
  });
  assert.equal(cors.status, 204);
  assert.equal(cors.headers.get("access-control-allow-origin"), "https://inspector.example");

  const want = `Bearer realm="serena-remote", resource_metadata="${url("/.well-known/oauth-protected-resource/mcp")}"`;
  const none = await mcp(null, INIT);
  assert.equal(none.status, 401, none.text);
  assert.equal(none.headers.get("www-authenticate"), want);
  const wrong = await mcp("not-a-token-0123456789abcdef", INIT);
  assert.equal(wrong.status, 401, wrong.text);
  assert.equal(wrong.headers.get("www-authenticate"), `${want}, error="invalid_token"`);

  const h = await (await fetch(url("/health"))).json();
  assert.equal(h.status, "ok", JSON.stringify(h));
});

test("static tokens keep working beside OAuth", async () => {
  assert.equal(await instanceOf(TOKENS.bob), "do-bob-oauth");
});

test("flow: consent page names the client (unverified) and the redirect host, with its protective headers", async () => {
  state.clientId = await register("Example <b>Client</b>");
  const { verifier, challenge } = pkce();
  state.verifier = verifier;
  state.authUrl = authorizeUrl(state.clientId, challenge, { state: "flow-state-1" });
  const page = await consentPage(state.authUrl);
  assert.equal(page.status, 200, page.html);
  assert.match(page.html, /Example &lt;b&gt;Client&lt;\/b&gt;/);
  assert.ok(!page.html.includes("<b>Client</b>"), "the client's name is escaped");
  assert.match(page.html, /unverified/);
  assert.match(page.html, /<strong>127\.0\.0\.1<\/strong>/);
  assert.equal(page.headers.get("cache-control"), "no-store");
  assert.equal(page.headers.get("x-frame-options"), "DENY");
  assert.match(page.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
  assert.equal(page.headers.get("referrer-policy"), "no-referrer");
  assert.match(page.cookie, /sr_oauth_csrf=/);
  assert.ok(page.fields.csrf && page.fields.request, "the form carries the request and a CSRF value");
  assert.equal(page.cookie, `sr_oauth_csrf=${page.fields.csrf}`);
  state.page = page;
});

test("flow: a wrong token gives the page again with 401 and nothing echoed", async () => {
  const wrong = "wrong-token-that-must-not-be-echoed-42";
  const r = await submit(state.page, { token: wrong, action: "allow" });
  assert.equal(r.status, 401, r.html);
  assert.ok(!r.html.includes(wrong), "the wrong token is not in the page");
  assert.match(r.html, /not a serena-remote token/);
  assert.equal(r.location, null);
  assert.equal(r.headers.get("x-frame-options"), "DENY");
});

test("flow: the right token redirects with code, state and iss; the code gives tokens for <public>/mcp", async () => {
  const r = await submit(state.page, { token: TOKENS.alice, action: "allow" });
  assert.equal(r.status, 302, r.html);
  const loc = new URL(r.location);
  assert.equal(`${loc.origin}${loc.pathname}`, REDIRECT);
  assert.equal(loc.searchParams.get("state"), "flow-state-1");
  assert.equal(loc.searchParams.get("iss"), PUB);
  const code = loc.searchParams.get("code");
  assert.ok(code);
  const t = await exchange({ clientId: state.clientId, code, verifier: state.verifier });
  assert.equal(t.status, 200, t.text);
  assert.equal(t.json.token_type.toLowerCase(), "bearer");
  assert.equal(t.json.resource, url("/mcp"));
  assert.ok(t.json.access_token && t.json.refresh_token);
  assert.ok(!t.json.access_token.includes(TOKENS.alice));
  // The operator sees the sign-in by token name in `wrangler tail`, and never a token.
  await waitUntil("the sign-in is logged", async () => readFileSync(wr.log, "utf8").includes(`sign-in authorized for token alice (client ${state.clientId})`), { deadlineMs: 30_000 });
  state.tokens = t.json;
  state.code = code;
});

test("flow: the access token reaches the container of the token entered, and /status names its route", async () => {
  assert.equal(await instanceOf(state.tokens.access_token), "do-alice-oauth");
  const s = await fetch(url("/status"), { headers: { authorization: `Bearer ${state.tokens.access_token}` } });
  assert.equal(s.status, 200);
  assert.equal((await s.json()).route, `${GEN}:alice`);
});

test("flow: the core still judges an OAuth request (the session rule after authentication, a foreign Origin)", async () => {
  // tools/list without a session: the core answers 401 without a credential, and with a known
  // token goes on to its session rule (400): the access token stood for alice's token.
  const list = { jsonrpc: "2.0", id: 3, method: "tools/list" };
  const anon = await mcp(null, list);
  assert.equal(anon.status, 401, anon.text);
  const noSession = await mcp(state.tokens.access_token, list);
  assert.equal(noSession.status, 400, noSession.text);
  assert.match(noSession.msg.error.message, /session/i);
  const r = await fetch(url("/mcp"), {
    method: "POST",
    headers: { authorization: `Bearer ${state.tokens.access_token}`, "content-type": "application/json", accept: ACCEPT, origin: "https://evil.example" },
    body: JSON.stringify(INIT),
  });
  assert.equal(r.status, 403, await r.text());
});

test("flow: refresh rotates; the previous refresh token is refused once its successor was used, and that reuse ends the sign-in", async () => {
  const refresh = (rt) => tokenRequest({ grant_type: "refresh_token", refresh_token: rt, client_id: state.clientId, resource: url("/mcp") });
  const rt1 = state.tokens.refresh_token;
  const a = await refresh(rt1);
  assert.equal(a.status, 200, a.text);
  assert.notEqual(a.json.refresh_token, rt1, "a new refresh token");
  assert.notEqual(a.json.access_token, state.tokens.access_token, "a new access token");
  assert.equal(await instanceOf(a.json.access_token), "do-alice-oauth");
  const b = await refresh(a.json.refresh_token);
  assert.equal(b.status, 200, b.text);
  assert.equal(await instanceOf(b.json.access_token), "do-alice-oauth");
  // rt1 again, after its successor was used: someone kept a copy. Refused, and the sign-in ends.
  const reused = await refresh(rt1);
  assert.equal(reused.status, 400, reused.text);
  assert.equal(reused.json.error, "invalid_grant");
  const newest = await refresh(b.json.refresh_token);
  assert.equal(newest.json?.error, "invalid_grant", newest.text);
  assert.equal((await mcp(b.json.access_token, INIT)).status, 401);
});

test("flow: a refresh token that was never issued is refused without ending the sign-in; the previous one works until its successor is used", async () => {
  const s = await signIn(TOKENS.alice);
  const t = (await exchange(s)).json;
  const [user, grant] = t.refresh_token.split(":");
  const forged = await tokenRequest({ grant_type: "refresh_token", refresh_token: `${user}:${grant}:${b64url(randomBytes(24))}`, client_id: s.clientId });
  assert.equal(forged.json?.error, "invalid_grant", forged.text);
  const ok = await tokenRequest({ grant_type: "refresh_token", refresh_token: t.refresh_token, client_id: s.clientId });
  assert.equal(ok.status, 200, ok.text);
  // The library's grace: until its successor is used, the previous refresh token still works (a
  // client that lost the answer retries), and that is no reuse.
  const retry = await tokenRequest({ grant_type: "refresh_token", refresh_token: t.refresh_token, client_id: s.clientId });
  assert.equal(retry.status, 200, retry.text);
  assert.equal((await mcp(retry.json.access_token, INIT)).status, 200);
  state.clientId = s.clientId;
  state.tokens = retry.json;
});

test("flow: revoking the access token ends it alone; revoking the refresh token ends the sign-in", async () => {
  const revoke = (token) =>
    fetch(url("/oauth/token"), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token, client_id: state.clientId }),
    });
  const { access_token: at, refresh_token: rt } = state.tokens;
  assert.equal((await revoke(at)).status, 200);
  assert.equal((await mcp(at, INIT)).status, 401);
  const again = await tokenRequest({ grant_type: "refresh_token", refresh_token: rt, client_id: state.clientId });
  assert.equal(again.status, 200, again.text);
  assert.equal((await mcp(again.json.access_token, INIT)).status, 200);
  assert.equal((await revoke(again.json.refresh_token)).status, 200);
  const after = await mcp(again.json.access_token, INIT);
  assert.equal(after.status, 401, after.text);
  assert.match(after.headers.get("www-authenticate") ?? "", /error="invalid_token"/);
  const refused = await tokenRequest({ grant_type: "refresh_token", refresh_token: again.json.refresh_token, client_id: state.clientId });
  assert.equal(refused.json?.error, "invalid_grant", refused.text);
});

test("a real client: the TypeScript MCP SDK signs in by itself (discovery from the 401, registration, consent, its own refresh)", async () => {
  // The system tests' SDK client (its scripted browser fills serve's form contract, which the
  // Worker's consent page keeps), pointed at the Worker.
  const client = join(ROOT, "tests/system/clients/ts_oauth_client.mjs");
  assert.ok(existsSync(client), `${client} missing`);
  const out = await new Promise((res) =>
    execFile(process.execPath, [client, url("/mcp")], { env: { ...process.env, SR_CONSENT_TOKEN: TOKENS.alice } }, (err, stdout, stderr) =>
      res({ err, stdout, stderr })
    )
  );
  const last = out.stdout.trim().split("\n").pop() ?? "";
  const j = JSON.parse(last || "{}");
  assert.equal(j.ok, true, `${last}\n${out.stderr.slice(-2000)}`);
  assert.ok(j.tools.length > 0 && j.tools_after_refresh === j.tools.length, last);
  assert.equal(j.iss, PUB);
  assert.equal(j.refresh, "AUTHORIZED");
  assert.equal(j.rotated, true);
  assert.ok(!out.stdout.includes(TOKENS.alice) && !out.stderr.includes(TOKENS.alice));
});

/**
 * mcp-remote (stdio <-> Streamable HTTP) without --header, as a desktop client runs it: its
 * browser (xdg-open's BROWSER) is the system tests' scripted one, started once mcp-remote's
 * callback listens (test/clients/deferred_browser.py). Sends initialize, then
 * tools/list; resolves {responses (by id), stderr, log} once both are answered or it exits.
 */
async function mcpRemote(endpoint, token) {
  const dir = mkdtempSync(join(tmpdir(), "sr-oauth-mcp-remote-"));
  const env = { ...process.env, MCP_REMOTE_CONFIG_DIR: dir, BROWSER: join(WORKER, "test/clients/deferred_browser.py"),
    SR_CONSENT_TOKEN: token, SR_CONSENT_LOG: join(dir, "consent.log"), NO_PROXY: "*" };
  for (const k of ["DISPLAY", "WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP", "DESKTOP_SESSION", "DBUS_SESSION_BUS_ADDRESS",
    "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"])
    delete env[k];
  const proxy = join(ROOT, "tests/system/node_modules/mcp-remote/dist/proxy.js");
  const child = spawn(process.execPath, [proxy, endpoint, String(await freePort()), "--transport", "http-only"], {
    env, detached: true, stdio: ["pipe", "pipe", "pipe"],
  });
  const exited = new Promise((res) => child.once("exit", res));
  const responses = {};
  let stderr = "";
  let buf = "";
  let wake = () => {};
  child.stderr.on("data", (c) => (stderr += c));
  child.stdout.on("data", (c) => {
    buf += c;
    for (let i; (i = buf.indexOf("\n")) >= 0; buf = buf.slice(i + 1)) {
      try {
        const m = JSON.parse(buf.slice(0, i));
        if (m && m.id !== undefined) responses[m.id] = m;
      } catch {
        /* not a message */
      }
    }
    wake();
  });
  let gone = false;
  exited.then(() => {
    gone = true;
    wake();
  });
  const answered = async (id) => {
    while (!(id in responses) && !gone) await new Promise((r) => (wake = r));
    return id in responses;
  };
  // Bounds a hang only: a client that never answers is stopped, and the test fails for it.
  const guard = setTimeout(() => stop({ pid: child.pid }, "SIGTERM", { group: true }), 90_000);
  try {
    child.stdin.write(JSON.stringify(initRequest("sr-oauth-mcp-remote")) + "\n");
    if (await answered(1)) {
      child.stdin.write(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) + "\n");
      child.stdin.write(JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }) + "\n");
      await answered(2);
    }
  } finally {
    clearTimeout(guard);
    stop({ pid: child.pid }, "SIGTERM", { group: true });
    await exited;
  }
  const log = existsSync(env.SR_CONSENT_LOG) ? readFileSync(env.SR_CONSENT_LOG, "utf8") : "";
  return { responses, stderr, log };
}

test("a real client: mcp-remote without --header signs in through the consent page by itself", async () => {
  assert.ok(existsSync(join(ROOT, "tests/system/node_modules/mcp-remote/dist/proxy.js")), "scripts/deps.sh installs mcp-remote");
  const out = await mcpRemote(url("/mcp"), TOKENS.alice);
  assert.ok(out.responses[2]?.result?.tools?.length > 0, `${JSON.stringify(out.responses)}\n${out.log}\n${out.stderr.slice(-3000)}`);
  assert.match(out.log, /callback: 200/);
  assert.ok(!out.stderr.includes(TOKENS.alice) && !out.log.includes(TOKENS.alice), "the token is in no output");
});

test("the MCP conformance suite's authorization-server scenarios pass against the Worker", async (t) => {
  const suite = join(ROOT, "tests/system/node_modules/@modelcontextprotocol/conformance/dist/index.js");
  assert.ok(existsSync(suite), "scripts/deps.sh installs the conformance suite (npm ci in tests/system)");
  const cb = await freePort();
  const clientId = await register("conformance", `http://127.0.0.1:${cb}/callback`);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/proxy/i.test(k)));
  const p = spawn(process.execPath, [suite, "authorization", "--url", PUB, "--client-id", clientId, "--resource", url("/mcp"),
    "-p", String(cb), "-o", join(tmp, "conformance")], { env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise((res) => p.once("exit", res));
  let out = "";
  let wake = () => {};
  for (const s of [p.stdout, p.stderr]) s.on("data", (c) => ((out += c), wake()));
  // Bounds a hang only: a suite that never finishes is stopped, and the test fails for it.
  const guard = setTimeout(() => stop({ pid: p.pid }, "SIGTERM", { group: true }), 120_000);
  try {
    // The suite prints the authorization URL for a person; the scripted browser is that person.
    const prefix = `${PUB}/oauth/authorize?`;
    let gone = false;
    exited.then(() => ((gone = true), wake()));
    while (!out.split("\n").some((l) => l.startsWith(prefix)) && !gone) await new Promise((r) => (wake = r));
    const at = out.split("\n").find((l) => l.startsWith(prefix));
    assert.ok(at, out);
    const browser = await new Promise((res) =>
      execFile("python3", [join(ROOT, "tests/system/clients/consent_browser.py"), at.trim()],
        { env: { ...env, SR_CONSENT_TOKEN: TOKENS.alice } }, (err) => res(err === null)));
    assert.ok(browser, "the scripted browser reached the suite's callback");
    await exited;
  } finally {
    clearTimeout(guard);
    stop({ pid: p.pid }, "SIGTERM", { group: true });
    await exited;
  }
  for (const line of out.split("\n").filter((l) => /: \d+ passed, \d+ failed/.test(l))) t.diagnostic(line.trim());
  assert.match(out, /authorization-server-metadata-endpoint: \d+ passed, 0 failed/, out);
  assert.match(out, /authorization-code-grant: 1 passed, 0 failed/, out);
  assert.match(out, /Total: \d+ passed, 0 failed/, out);
});

test("refused: a form whose carried request was changed (an unregistered redirect URI) is not honoured", async () => {
  const clientId = await sharedClient();
  const page = await consentPage(authorizeUrl(clientId, pkce().challenge));
  assert.equal(page.status, 200, page.html);
  const q = new URLSearchParams(page.fields.request);
  q.set("redirect_uri", "https://evil.example/cb");
  const r = await submit(page, { request: q.toString(), token: TOKENS.alice, action: "allow" });
  assert.equal(r.status, 400, r.html);
  assert.equal(r.location, null);
});

test("refused: no PKCE, plain PKCE (redirected with invalid_request and iss)", async () => {
  const clientId = await sharedClient();
  for (const extra of [{ code_challenge: undefined, code_challenge_method: undefined }, { code_challenge_method: "plain" }]) {
    const r = await fetch(authorizeUrl(clientId, pkce().challenge, extra), { redirect: "manual" });
    assert.equal(r.status, 302, `${JSON.stringify(extra)}: ${await r.text()}`);
    const loc = new URL(r.headers.get("location"));
    assert.equal(loc.searchParams.get("error"), "invalid_request", loc.href);
    assert.equal(loc.searchParams.get("iss"), PUB);
  }
});

test("refused: a wrong verifier, then a code used twice (which also ends what it gave)", async () => {
  const s = await signIn(TOKENS.alice);
  const bad = await exchange({ ...s, verifier: pkce().verifier });
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.json.error, "invalid_grant");

  const s2 = await signIn(TOKENS.alice);
  const first = await exchange(s2);
  assert.equal(first.status, 200, first.text);
  const second = await exchange(s2);
  assert.equal(second.status, 400, second.text);
  assert.equal(second.json.error, "invalid_grant");
  assert.equal((await mcp(first.json.access_token, INIT)).status, 401, "the replayed code's tokens are revoked");
});

test("refused: a redirect URI that was not registered (error page, no redirect) or differs at the token endpoint", async () => {
  const clientId = await sharedClient();
  const r = await fetch(authorizeUrl(clientId, pkce().challenge, { redirect_uri: "https://evil.example/cb" }), { redirect: "manual" });
  assert.equal(r.status, 400, await r.text());
  assert.equal(r.headers.get("location"), null);

  const s = await signIn(TOKENS.alice, { clientId });
  const t = await exchange(s, { redirect_uri: "http://127.0.0.1:9/other" });
  assert.equal(t.status, 400, t.text);
  assert.equal(t.json.error, "invalid_grant");
});

test("refused: a resource other than <public>/mcp, at authorization and at the token endpoint", async () => {
  const clientId = await sharedClient();
  const r = await fetch(authorizeUrl(clientId, pkce().challenge, { resource: url("/other") }), { redirect: "manual" });
  assert.equal(r.status, 302, await r.text());
  assert.equal(new URL(r.headers.get("location")).searchParams.get("error"), "invalid_target");

  const s = await signIn(TOKENS.alice, { clientId });
  const t = await exchange(s, { resource: "https://elsewhere.example/mcp" });
  assert.equal(t.status, 400, t.text);
  assert.equal(t.json.error, "invalid_target");
});

test("refused: a token in the query string, even a valid one", async () => {
  const s = await signIn(TOKENS.alice);
  const t = await exchange(s);
  assert.equal(t.status, 200, t.text);
  for (const tok of [t.json.access_token, TOKENS.alice]) {
    const r = await fetch(url(`/mcp?access_token=${encodeURIComponent(tok)}`), {
      method: "POST",
      headers: { "content-type": "application/json", accept: ACCEPT },
      body: JSON.stringify(INIT),
    });
    const text = await r.text();
    assert.equal(r.status, 400, text);
    assert.ok(!text.includes(tok), "the token is not echoed");
  }
  state.alice = { ...t.json, clientId: s.clientId }; // for the configuration change below
});

test("refused: a forged CSRF value, a missing cookie, a foreign Origin; Deny sends access_denied", async () => {
  const clientId = await sharedClient();
  const page = await consentPage(authorizeUrl(clientId, pkce().challenge, { state: "deny-state" }));
  assert.equal(page.status, 200, page.html);
  const forged = await submit(page, { csrf: b64url(randomBytes(32)), token: TOKENS.alice, action: "allow" });
  assert.equal(forged.status, 403, forged.html);
  const noCookie = await submit(page, { token: TOKENS.alice, action: "allow" }, { cookie: "" });
  assert.equal(noCookie.status, 403, noCookie.html);
  const foreign = await submit(page, { token: TOKENS.alice, action: "allow" }, { origin: "https://evil.example" });
  assert.equal(foreign.status, 403, foreign.html);
  for (const r of [forged, noCookie, foreign]) assert.equal(r.location, null);

  const deny = await submit(page, { action: "deny" });
  assert.equal(deny.status, 302, deny.html);
  const loc = new URL(deny.location);
  assert.equal(loc.searchParams.get("error"), "access_denied");
  assert.equal(loc.searchParams.get("state"), "deny-state");
  assert.equal(loc.searchParams.get("iss"), PUB);
  assert.equal(loc.searchParams.get("code"), null);
});

test("after a configuration change: a grant whose token moved to another name, or changed, is refused and revoked", async () => {
  const s = await signIn(TOKENS.bob);
  const bob = { ...(await exchange(s)).json, clientId: s.clientId };
  assert.equal(await instanceOf(bob.access_token), "do-bob-oauth");
  assert.equal(await instanceOf(state.alice.access_token), "do-alice-oauth");
  // A third sign-in (bob's, through another client) that is not used on /mcp after the change.
  const s3 = await signIn(TOKENS.bob, { clientId: await register("sr-oauth-idle") });
  const idle = { ...(await exchange(s3)).json, clientId: s3.clientId };
  assert.ok(idle.refresh_token, "the idle sign-in has a refresh token");

  // Same port (the public URL, and so the tokens' resource, stays) and the same KV.
  stop(wr, "SIGTERM", { group: true });
  await wr.exited;
  wr = await startWorker(wport, { carol: TOKENS.alice, bob: "bob-oauth-token-CHANGED-0123456789abcdef" });

  for (const [who, t] of [["alice (now carol's token)", state.alice], ["bob (changed)", bob]]) {
    const r = await mcp(t.access_token, INIT);
    assert.equal(r.status, 401, `${who}: ${r.text}`);
    assert.match(r.msg.error.message, /no longer configured/, who);
    assert.match(r.headers.get("www-authenticate") ?? "", /error="invalid_token"/);
  }
  // The idle sign-in's refresh is refused at the token endpoint at once (and its grant revoked).
  const r3 = await tokenRequest({ grant_type: "refresh_token", refresh_token: idle.refresh_token, client_id: idle.clientId });
  assert.equal(r3.status, 400, r3.text);
  assert.equal(r3.json.error, "invalid_grant");
  assert.match(r3.json.error_description, /no longer configured/);
  assert.equal((await mcp(idle.access_token, INIT)).status, 401);
  // The static token itself works under its new name.
  assert.equal((await mcp(TOKENS.alice, INIT)).status, 200);
  // The refused grants were revoked (in the background): their refresh tokens stop working too.
  for (const t of [state.alice, bob])
    await waitUntil(
      "the unbound grant is revoked",
      async () => {
        const r = await tokenRequest({ grant_type: "refresh_token", refresh_token: t.refresh_token, client_id: t.clientId });
        return r.status === 400 && r.json?.error === "invalid_grant";
      },
      { deadlineMs: 30_000 }
    );
});

test("the consent page is rate limited: after 5 wrong tokens from one address it answers 429", async () => {
  // A fresh isolate (the restart above): no wrong token counted yet.
  const clientId = await sharedClient();
  const page = await consentPage(authorizeUrl(clientId, pkce().challenge));
  assert.equal(page.status, 200, page.html);
  for (let i = 0; i < 5; i++) {
    const r = await submit(page, { token: `wrong-${i}-0123456789abcdef`, action: "allow" });
    assert.equal(r.status, 401, `attempt ${i + 1}: ${r.html}`);
  }
  const r = await submit(page, { token: TOKENS.alice, action: "allow" });
  assert.equal(r.status, 429, r.html);
  assert.match(r.headers.get("retry-after") ?? "", /^\d+$/);
  assert.equal(r.location, null, "not even the right token goes through while limited");
});

test("registration is rate limited: 10 a minute from one address, then 429 with Retry-After", async () => {
  // Same fresh isolate: the tests since the restart registered nothing.
  for (let i = 0; i < 10; i++) await register(`sr-oauth-flood-${i}`);
  const r = await fetch(url("/oauth/register"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client_name: "one too many", redirect_uris: [REDIRECT], token_endpoint_auth_method: "none" }),
  });
  assert.equal(r.status, 429, await r.text());
  assert.match(r.headers.get("retry-after") ?? "", /^\d+$/);
});

test("OAuth on with a bad public URL fails closed: /health degraded, OAuth endpoints and /mcp refused with the reason", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sr-oauth-bad-"));
  const port = await freePort();
  await startWorker(port, TOKENS, { SERENA_REMOTE_PUBLIC_URL: "http://mcp.example.com" }, dir);
  const base = `http://127.0.0.1:${port}`;
  const h = await (await fetch(`${base}/health`)).json();
  assert.equal(h.status, "degraded", JSON.stringify(h));
  assert.match(h.reason, /SERENA_REMOTE_PUBLIC_URL is refused: it must be https/);
  const m = await fetch(`${base}/.well-known/oauth-authorization-server`);
  assert.equal(m.status, 500);
  assert.match((await m.json()).error_description, /SERENA_REMOTE_PUBLIC_URL is refused/);
  const r = await fetch(`${base}/mcp`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.alice}`, "content-type": "application/json", accept: ACCEPT },
    body: JSON.stringify(INIT),
  });
  const body = await r.json();
  assert.equal(r.status, 500, JSON.stringify(body));
  assert.match(body.error.message, /SERENA_REMOTE_PUBLIC_URL is refused/);
});

test("no token appears in the Worker's log: static tokens, codes, access or refresh tokens", async () => {
  const log = workers.map((w) => readFileSync(w.log, "utf8")).join("\n");
  assert.match(log, /sign-in authorized for token/);
  for (const v of [...Object.values(TOKENS), state.code, state.alice?.access_token, state.alice?.refresh_token].filter(Boolean))
    assert.ok(!log.includes(v), `a secret (${v.slice(0, 6)}...) is in the log`);
  assert.ok(!/[A-Za-z0-9._-]+:[A-Za-z0-9]{16}:[A-Za-z0-9]{20,}/.test(log), "no token of the library's form is in the log");
});
