// Sign in with OAuth on the Worker (OAUTH_ENABLED=1; docs/oauth.md, "On Cloudflare").
//
// The authorization server is Cloudflare's @cloudflare/workers-oauth-provider, with its records in
// the OAUTH_KV namespace: metadata (RFC 8414), dynamic registration, the token endpoint (codes with
// PKCE, rotating refresh tokens, RFC 7009 revocation) and access-token validation are its own.
// This file adds what is serena-remote's: the public URL rules, the consent page where a person
// proves who they are with one of the configured static tokens (matched by core.wasm, as a Bearer
// is), and the binding of every grant to that token, so an OAuth access token stands for exactly
// that static token when index.ts classifies the request.

import type { AuthRequest, OAuthAuthorizationServer, OAuthResourceServer } from "@cloudflare/workers-oauth-provider";
import { core } from "./core";
import { type Env, flag } from "./env";

/** Access tokens live an hour, grants (refresh tokens) 30 days, unused registrations 30 days. */
const ACCESS_TTL = 3600;
const REFRESH_TTL = 30 * 24 * 3600;
const CLIENT_TTL = 30 * 24 * 3600;
/** Per minute and per isolate (docs/oauth.md): wrong tokens on the consent page, registrations. */
const LIMIT_WINDOW_MS = 60_000;
const CONSENT_BODY_MAX = 16 * 1024;
const CSRF_COOKIE = "sr_oauth_csrf";

export interface OAuthSetup {
  enabled: boolean;
  /** Why OAuth cannot run (fail closed), or null. */
  error: string | null;
  /** The issuer: scheme, host and optional port. */
  publicUrl: string;
  /** The one resource tokens are issued for: <public url>/mcp. */
  resource: string;
  /** RFC 9728 metadata of that resource. */
  metadataUrl: string;
}

/** What grants carry in their props (encrypted by the library with a key wrapped by the token). */
interface Binding {
  /** The static token's name (also the grant's userId). */
  name: string;
  /** SHA-256 of the static token (hex), as core.wasm matches it. */
  digest: string;
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Why `v` cannot be the public URL, or null: https (http on a loopback host), the origin only. */
export function publicUrlProblem(v: string): string | null {
  if (v === "") return "it is not set";
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return "it is not an absolute URL";
  }
  if (u.protocol !== "https:" && !(u.protocol === "http:" && LOOPBACK.has(u.hostname)))
    return "it must be https (http only on localhost, 127.0.0.1 or [::1])";
  if (u.username !== "" || u.password !== "") return "it must not carry user information";
  if (u.origin !== v)
    return "it must be the origin only (scheme, lowercase host, optional port), without a path, query or trailing '/'";
  return null;
}

export function oauthSetup(env: Env): OAuthSetup {
  const enabled = flag(env.OAUTH_ENABLED);
  const publicUrl = (env.SERENA_REMOTE_PUBLIC_URL ?? "").trim();
  let error: string | null = null;
  if (enabled) {
    const why = publicUrlProblem(publicUrl);
    if (why !== null) error = `SERENA_REMOTE_PUBLIC_URL is refused: ${why}`;
    else if (env.OAUTH_KV === undefined || typeof env.OAUTH_KV.get !== "function")
      error = "the OAUTH_KV binding (a KV namespace) is missing: add [[kv_namespaces]] binding = \"OAUTH_KV\" to wrangler.toml";
  }
  return {
    enabled,
    error,
    publicUrl,
    resource: `${publicUrl}/mcp`,
    metadataUrl: `${publicUrl}/.well-known/oauth-protected-resource/mcp`,
  };
}

/** The WWW-Authenticate of a 401 from /mcp or /status while OAuth (built-in or an issuer's) is on. */
export function challenge(metadataUrl: string, credentialSent: boolean): string {
  let v = `Bearer realm="serena-remote", resource_metadata="${metadataUrl}"`;
  if (credentialSent) v += ', error="invalid_token"';
  return v;
}

// ---- the library, loaded only when OAuth is on --------------------------------------------

type Lib = typeof import("@cloudflare/workers-oauth-provider");
let lib: Lib | null = null;
let servers: { key: string; as: OAuthAuthorizationServer<Env>; rs: OAuthResourceServer<Env, Binding> } | null = null;

async function library(s: OAuthSetup) {
  // Imported on first use: the module warns at load that CIMD is off, which a Worker without
  // OAuth should not log.
  lib ??= await import("@cloudflare/workers-oauth-provider");
  if (servers?.key !== s.publicUrl) {
    const as = new lib.OAuthAuthorizationServer<Env>({
      issuer: s.publicUrl,
      resources: [s.resource],
      authorizeEndpoint: "/oauth/authorize",
      tokenEndpoint: "/oauth/token",
      clientRegistrationEndpoint: "/oauth/register",
      accessTokenTTL: ACCESS_TTL,
      refreshTokenTTL: REFRESH_TTL,
      clientRegistrationTTL: CLIENT_TTL,
      onError: ({ status, code, description }) => console.warn(`serena-remote worker: oauth ${status} ${code}: ${description}`),
      // A code or refresh token whose static token was removed, changed or renamed is refused,
      // and the library then revokes its grant (the same check as on /mcp, at the token endpoint).
      tokenExchangeCallback: ({ props }) => {
        const b = props as Partial<Binding> | undefined;
        if (typeof b?.digest !== "string" || typeof b?.name !== "string" || boundName(b.digest) !== b.name)
          throw new lib!.OAuthError("invalid_grant", {
            description: "The serena-remote token this sign-in was made with is no longer configured (removed or changed): sign in again",
          });
      },
    });
    // Only its RFC 9728 document is used: /mcp itself is index.ts's (core.wasm classifies it).
    const rs = new lib.OAuthResourceServer<Env, Binding>({
      resourceMetadata: { resource: s.resource, authorization_servers: [s.publicUrl], resource_name: "serena-remote" },
      validateToken: () => async () => null,
      handler: { fetch: () => new Response(null, { status: 404 }) },
    });
    servers = { key: s.publicUrl, as, rs };
  }
  return { lib, ...servers };
}

// ---- /mcp and /status: an access token stands for its static token ------------------------

export type Resolved =
  | { kind: "none" }
  | { kind: "bound"; digest: string; name: string; grantId: string };

/**
 * Looks `token` (a Bearer that matched no static token) up as an access token for the resource.
 * "none": not a live access token of this server. "bound": the static token it stands for.
 */
export async function resolveAccessToken(s: OAuthSetup, env: Env, token: string): Promise<Resolved> {
  const { as } = await library(s);
  const v = await as.validateToken<Binding>(s.resource, token, env);
  if (v === null || typeof v.props?.digest !== "string" || typeof v.props?.name !== "string") return { kind: "none" };
  return { kind: "bound", digest: v.props.digest, name: v.props.name, grantId: token.split(":")[1] ?? "" };
}

/** Ends a grant whose static token is gone or changed, so it stays ended if the token returns. */
export async function revokeGrant(s: OAuthSetup, env: Env, grantId: string, name: string): Promise<void> {
  const { as } = await library(s);
  await as.getOAuthApi(env).revokeGrant(grantId, name);
}

/**
 * The name under which core.wasm knows the static token of this SHA-256 digest (constant-time
 * match, as for a Bearer), or null when no configured token has it.
 */
function boundName(digest: string): string | null {
  // The core wants an Authorization header to be present; it judges the digest alone.
  const d = core.classify({ method: "GET", path: "/status", headers: { authorization: "Bearer oauth-binding" }, digest });
  return d.action === "status" ? routeName(d.route) : null;
}

/** The token name of a route "<generation>:<name>" (names never contain ':'). */
export function routeName(route: string): string {
  return route.slice(route.lastIndexOf(":") + 1);
}

// ---- the OAuth endpoints ------------------------------------------------------------------

const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };

function oauthError(status: number, error: string, description: string): Response {
  return new Response(JSON.stringify({ error, error_description: description }), { status, headers: JSON_HEADERS });
}

/** Whether `path` belongs to the authorization server (answered here while OAuth is on). */
export function isOAuthPath(path: string): boolean {
  return path.startsWith("/oauth/") || path.startsWith("/.well-known/oauth-");
}

/** Answers /.well-known/oauth-* and /oauth/* while OAuth is on. */
export async function oauthRoute(req: Request, env: Env, ctx: ExecutionContext, url: URL, s: OAuthSetup): Promise<Response> {
  if (s.error !== null)
    return oauthError(500, "server_error", `OAuth sign-in is enabled (OAUTH_ENABLED=1) but not usable: ${s.error}. Fix it in wrangler.toml [vars] and deploy again.`);
  const path = url.pathname;
  // The library matches its endpoints on the issuer's origin: one place for all of them.
  if (url.origin !== s.publicUrl)
    return oauthError(404, "not_found", `The OAuth endpoints of this server are at ${s.publicUrl} (SERENA_REMOTE_PUBLIC_URL).`);
  const { as, rs } = await library(s);
  if (path === "/.well-known/oauth-protected-resource" || path === "/.well-known/oauth-protected-resource/mcp") {
    // One document, at both places (RFC 9728's path-suffixed URL, and the root some clients try).
    const at = new URL(url);
    at.pathname = "/.well-known/oauth-protected-resource/mcp";
    return rs.fetch(new Request(at, req), env, ctx);
  }
  if (path === "/oauth/authorize") return consent(req, env, url, s);
  if (path === "/oauth/token" && req.method === "POST") return tokenEndpoint(req, env, ctx, as);
  if (path === "/oauth/register" && req.method === "POST") return register(req, env, ctx, as);
  if (path === "/.well-known/oauth-authorization-server" || path === "/oauth/token" || path === "/oauth/register")
    return as.fetch(req, env, ctx);
  return oauthError(404, "not_found", `No OAuth endpoint at ${path}: see ${s.publicUrl}/.well-known/oauth-authorization-server`);
}

// ---- refresh token reuse ------------------------------------------------------------------

/** KV key of an issued refresh token (by its SHA-256): which sign-in (user, grant) it belongs to. */
async function issuedKey(refreshToken: string): Promise<string> {
  return `sr-refresh:${hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(refreshToken)))}`;
}

/**
 * The library's token endpoint, plus serve's reuse rule. The library rotates refresh tokens but
 * keeps the previous one usable until its successor is used, and refuses older ones without
 * ending the sign-in. Here every refresh token it issues is remembered (by hash, for the grant's
 * lifetime), and one it issued that it now refuses as invalid_grant (a rotated token presented
 * after its successor was used, or by another client: someone kept a copy) ends the whole
 * sign-in, as in serve.
 */
async function tokenEndpoint(req: Request, env: Env, ctx: ExecutionContext, as: OAuthAuthorizationServer<Env>): Promise<Response> {
  const form = /^application\/x-www-form-urlencoded\b/i.test(req.headers.get("content-type") ?? "")
    ? new URLSearchParams(await req.clone().text())
    : null;
  const res = await as.fetch(req, env, ctx);
  const grantType = form?.get("grant_type");
  if (grantType !== "authorization_code" && grantType !== "refresh_token") return res;
  const kv = env.OAUTH_KV as KVNamespace;
  if (res.status === 200) {
    const issued = ((await res.clone().json()) as { refresh_token?: unknown }).refresh_token;
    if (typeof issued === "string") {
      const [userId, grantId] = issued.split(":");
      await kv.put(await issuedKey(issued), JSON.stringify({ userId, grantId }), { expirationTtl: REFRESH_TTL });
    }
    return res;
  }
  const presented = form?.get("refresh_token");
  if (grantType === "refresh_token" && res.status === 400 && presented) {
    const err = ((await res.clone().json().catch(() => ({}))) as { error?: unknown }).error;
    const key = await issuedKey(presented);
    const known = err === "invalid_grant" ? await kv.get<{ userId: string; grantId: string }>(key, "json") : null;
    if (known !== null) {
      await as.getOAuthApi(env).revokeGrant(known.grantId, known.userId);
      await kv.delete(key);
      console.warn("serena-remote worker: oauth: a refresh token it issued was refused (presented again after its successor, by another client, or its sign-in ended): the sign-in is revoked");
    }
  }
  return res;
}

// ---- the consent page ---------------------------------------------------------------------

/**
 * Events per client address and in all within a minute, in this isolate's memory only (a Worker
 * runs many isolates: the bound is per isolate). Past a bound, `wait` says how many seconds are
 * left of the minute.
 */
class MinuteLimit {
  private start = 0;
  private total = 0;
  private readonly perClient = new Map<string, number>();
  constructor(private readonly maxPerClient: number, private readonly maxTotal: number) {}

  private roll(now: number) {
    if (now - this.start >= LIMIT_WINDOW_MS) {
      this.start = now;
      this.total = 0;
      this.perClient.clear();
    }
  }

  /** Seconds until `client` may go on, or 0. */
  wait(client: string, now: number): number {
    this.roll(now);
    if (this.total >= this.maxTotal || (this.perClient.get(client) ?? 0) >= this.maxPerClient)
      return Math.max(1, Math.ceil((this.start + LIMIT_WINDOW_MS - now) / 1000));
    return 0;
  }

  count(client: string, now: number) {
    this.roll(now);
    this.total++;
    // Bounded: past 10000 addresses only the total counts.
    if (this.perClient.has(client) || this.perClient.size < 10_000) this.perClient.set(client, (this.perClient.get(client) ?? 0) + 1);
  }
}

/** serve's bounds: 5 wrong tokens per address or 30 in all; 10 registrations per address or 60. */
const wrongTokens = new MinuteLimit(5, 30);
const registrations = new MinuteLimit(10, 60);

function clientAddress(req: Request): string {
  return req.headers.get("cf-connecting-ip") ?? "unknown";
}

/** Dynamic registration, bounded per address and in all, so a flood of registrations churns only itself. */
async function register(req: Request, env: Env, ctx: ExecutionContext, as: OAuthAuthorizationServer<Env>): Promise<Response> {
  const client = clientAddress(req);
  const now = Date.now();
  const wait = registrations.wait(client, now);
  if (wait > 0)
    return new Response(JSON.stringify({ error: "too_many_requests", error_description: `Too many registrations; retry after ${wait} seconds.` }), {
      status: 429,
      headers: { ...JSON_HEADERS, "retry-after": String(wait), "access-control-allow-origin": "*" },
    });
  registrations.count(client, now);
  return as.fetch(req, env, ctx);
}

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

function pageHeaders(extra?: Headers): Headers {
  const h = new Headers(extra);
  h.set("content-type", "text/html; charset=utf-8");
  h.set("cache-control", "no-store");
  h.set("x-frame-options", "DENY");
  h.set("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
  h.set("referrer-policy", "no-referrer");
  h.set("x-content-type-options", "nosniff");
  return h;
}

const STYLE =
  "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}" +
  "input[type=password]{width:100%;padding:.4rem;margin:.4rem 0 1rem}button{padding:.4rem 1rem;margin-right:.5rem}" +
  ".warn{color:#8a4b00}.err{color:#b00020}";

function messagePage(status: number, title: string, text: string, extra?: Headers): Response {
  const h = pageHeaders(extra);
  const body = `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>${STYLE}</style></head><body><h1>${esc(title)}</h1><p>${esc(text)}</p></body></html>`;
  return new Response(body, { status, headers: h });
}

/**
 * The consent form. Its contract is serve's (scripted browsers work with both): hidden inputs,
 * `token`, and `action` = allow | deny, posted to /oauth/authorize. `request` carries the
 * authorization request's query, validated again when the form comes back.
 */
function formPage(status: number, request: string, d: { clientName: string; redirectHost: string }, csrf: string, error: string, extra?: Headers): Response {
  const body =
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in to serena-remote</title><style>${STYLE}</style></head><body>` +
    `<h1>Sign in to serena-remote</h1>` +
    `<p>The application <strong>${esc(d.clientName)}</strong> <span class="warn">(name given by the application itself, unverified)</span> ` +
    `asks to use your serena-remote instance. After you allow it, your browser goes back to <strong>${esc(d.redirectHost)}</strong>.</p>` +
    `<p>Enter your serena-remote token: the application gets access to that token's instance, and never sees the token.</p>` +
    (error ? `<p class="err">${esc(error)}</p>` : "") +
    `<form method="post" action="/oauth/authorize">\n` +
    `<input type="hidden" name="request" value="${esc(request)}">\n` +
    `<input type="hidden" name="csrf" value="${esc(csrf)}">\n` +
    `<label for="token">serena-remote token</label><input type="password" id="token" name="token" autocomplete="off" autofocus>` +
    `<button type="submit" name="action" value="allow">Allow</button><button type="submit" name="action" value="deny" formnovalidate>Deny</button>` +
    `</form></body></html>`;
  return new Response(body, { status, headers: pageHeaders(extra) });
}

function readCookie(req: Request, name: string): string | null {
  for (const part of (req.headers.get("cookie") ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return null;
}

function randomValue(): string {
  const b = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Constant-time comparison of two strings (their lengths are not secret). */
function same(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return d === 0;
}

function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function readForm(req: Request): Promise<URLSearchParams | null> {
  if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers.get("content-type") ?? "")) return null;
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > CONSENT_BODY_MAX) return null;
  const text = await req.text();
  if (text.length > CONSENT_BODY_MAX) return null;
  return new URLSearchParams(text);
}

/**
 * The configured static token `typed` is, judged by core.wasm from its SHA-256 digest (constant
 * time against every entry, as for a Bearer): its name and digest, or null.
 */
async function matchStaticToken(typed: string): Promise<Binding | null> {
  if (typed === "") return null;
  const digest = hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(typed)));
  const name = boundName(digest);
  return name === null ? null : { name, digest };
}

async function consent(req: Request, env: Env, url: URL, s: OAuthSetup): Promise<Response> {
  const { lib, as } = await library(s);
  const api = as.getOAuthApi(env);
  if (req.method !== "GET" && req.method !== "POST")
    return new Response(null, { status: 405, headers: { allow: "GET, POST", "cache-control": "no-store" } });
  const client = clientAddress(req);
  const now = Date.now();
  const wait = wrongTokens.wait(client, now);
  if (wait > 0)
    return messagePage(429, "Too many attempts", `Too many wrong tokens were entered. Try again in ${wait} seconds.`, new Headers({ "retry-after": String(wait) }));

  // POST: the form. A browser's Origin, when sent, must be ours; the form's random value must be
  // the cookie set with the page (CSRF), before anything else is looked at.
  let form: URLSearchParams | null = null;
  let query = url.search.slice(1);
  if (req.method === "POST") {
    const origin = req.headers.get("origin");
    if (origin !== null && origin !== s.publicUrl) return messagePage(403, "Refused", "This form was sent from another site.");
    form = await readForm(req);
    if (form === null) return messagePage(400, "Refused", "The form could not be read.");
    const cookie = readCookie(req, CSRF_COOKIE);
    const csrf = form.get("csrf") ?? "";
    if (cookie === null || csrf === "" || !same(csrf, cookie))
      return messagePage(403, "Refused", "This form does not belong to this browser session. Start the sign-in again from the application.");
    query = form.get("request") ?? "";
  }

  // The authorization request (from the URL, or as the form carried it back), validated by the
  // library each time; its errors go back to the client only once client and redirect URI are
  // trusted, else they are shown here.
  let areq: AuthRequest;
  try {
    areq = await api.parseAuthRequest(new Request(new URL(`/oauth/authorize?${query}`, s.publicUrl)));
    if (!areq.codeChallenge || areq.codeChallengeMethod !== "S256")
      return Response.redirect(
        lib.authorizationErrorRedirect(areq, "invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256"),
        302
      );
  } catch (e) {
    if (e instanceof lib.AuthorizationError && e.redirectTo) return Response.redirect(e.redirectTo, 302);
    if (e instanceof lib.AuthorizationError) return messagePage(400, "This sign-in request cannot be used", e.description);
    if (e instanceof lib.CimdFetchError) return messagePage(400, "This sign-in request cannot be used", "The application could not be verified.");
    throw e;
  }
  const described = await api.describeConsent(areq);

  if (form === null) {
    const csrf = randomValue();
    const cookie = `${CSRF_COOKIE}=${csrf}; Path=/oauth/authorize; HttpOnly; SameSite=Strict${url.protocol === "https:" ? "; Secure" : ""}`;
    return formPage(200, query, described, csrf, "", new Headers({ "set-cookie": cookie }));
  }
  if (form.get("action") === "deny") return Response.redirect(lib.authorizationErrorRedirect(areq, "access_denied"), 302);
  const bound = await matchStaticToken(form.get("token") ?? "");
  if (bound === null) {
    wrongTokens.count(client, now);
    return formPage(401, query, described, form.get("csrf") ?? "", "That is not a serena-remote token of this server. Try again.");
  }
  const { redirectTo } = await api.completeAuthorization({
    request: areq,
    userId: bound.name,
    metadata: {},
    // Scopes mean nothing here: access is the whole route of the token entered.
    scope: areq.scope,
    props: bound,
  });
  // The token's name, never its value (serve logs the same).
  console.log(`serena-remote worker: oauth: sign-in authorized for token ${bound.name} (client ${areq.clientId})`);
  return new Response(null, { status: 302, headers: { location: redirectTo, "cache-control": "no-store" } });
}
