// The serena-remote Worker: the edge of the Cloudflare deployment.
//
// Every decision (who is this, which route, what is refused, which shim applies, what /health
// says) is made by core.wasm, the same C core `serena-remote serve` runs natively, through its
// one JavaScript binding core-abi.mjs. This file only does the I/O around it: it describes the
// request to the core, hashes the Bearer token with WebCrypto (the core compares digests in
// constant time), and acts on the decision: answer, or forward to the route's container
// (a Durable Object per route running `serena-remote run`).

import type { Decision } from "../core-abi.mjs";
import { readBody } from "./body";
import { containerSettings, core, stringSettings } from "./core";
import { type Env, flag, uint } from "./env";
import { type IdpSetup, idpBearer, idpSetup, isMetadataPath, metadataResponse } from "./idp";
import { type OAuthSetup, challenge, isOAuthPath, oauthRoute, oauthSetup, resolveAccessToken, revokeGrant, routeName } from "./oauth";

export { SerenaContainer } from "./container";
export { LocalContainer } from "./local-container";

// Set on the first request: at global scope the Workers clock reads the epoch.
let started = 0;
// The configuration the core was last loaded with (tokens, policy, container settings); reloaded
// when it changes.
let loadedKey: string | null = null;

/** What is wrong with this Worker's configuration, as /health and refused clients are told. */
interface ConfigState {
  /** API_TOKEN / API_TOKENS_JSON refused: no token matches until it is fixed. */
  tokenError: string | null;
  /** Settings every container would refuse (run's own rules): no container is started. */
  runErrors: string[];
  /** Persistence on but incomplete: containers start with local state only. */
  persistence: "disabled" | "ok" | "degraded";
  persistenceMissing: string;
}
let state: ConfigState = { tokenError: null, runErrors: [], persistence: "disabled", persistenceMissing: "" };

const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };
const BODY_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * Loads tokens and policy into core.wasm and checks the settings containers will get, once per
 * isolate and configuration.
 */
function configure(env: Env): ConfigState {
  const settings = {
    apiToken: env.API_TOKEN ?? "",
    tokensJson: env.API_TOKENS_JSON ?? "",
    generation: env.MCP_CONTAINER_ROUTE_GENERATION ?? "",
    origins: env.ALLOWED_ORIGINS ?? "",
    bareGet405: !flag(env.SERENA_ALLOW_SSE_GET),
    maxBody: uint(env.MAX_BODY_BYTES, 0),
  };
  const key = JSON.stringify([settings, stringSettings(env)]);
  if (key === loadedKey) return state;
  loadedKey = key;
  let loadError: string | null = null;
  try {
    core.loadTokens({ apiToken: settings.apiToken, tokensJson: settings.tokensJson });
    core.setPolicy({
      generation: settings.generation,
      origins: settings.origins,
      checkBearer: true,
      bareGet405: settings.bareGet405,
      maxBody: settings.maxBody,
    });
  } catch (e) {
    // Fail closed: an empty table matches no token, so nothing is forwarded until this is fixed.
    loadError = (e as Error).message;
    console.error(`serena-remote worker: configuration refused, no token will match: ${loadError}`);
    try {
      core.loadTokens({});
    } catch {
      /* an empty load cannot fail */
    }
  }
  const c = containerSettings(env);
  for (const e of c.errors) console.error(`serena-remote worker: container setting refused, no container will start: ${e}`);
  if (c.persistence === "degraded")
    console.error(
      `serena-remote worker: SERENA_R2_STATE_ENABLED=1 but ${c.persistenceMissing} is not set: containers start with local state only`
    );
  state = { tokenError: loadError, runErrors: c.errors, persistence: c.persistence, persistenceMissing: c.persistenceMissing };
  return state;
}

/** Why /health says degraded ("" when it does not), most serious first. */
function degradedReason(s: ConfigState, oauth: OAuthSetup, idp: IdpSetup): string {
  const why: string[] = [];
  if (oauth.error !== null) why.push(`OAuth sign-in is enabled (OAUTH_ENABLED=1) but not usable, so no request is accepted: ${oauth.error}`);
  if (idp.error !== null)
    why.push(`JWTs from an identity provider are configured (SERENA_REMOTE_OAUTH_ISSUER) but not usable, so no request is accepted: ${idp.error}`);
  if (s.runErrors.length > 0) why.push(`container settings refused, no container is started: ${s.runErrors.join("; ")}`);
  if (s.tokenError !== null) why.push(`token configuration refused, no token matches: ${s.tokenError}`);
  else if (core.tokenCount === 0)
    why.push("no token configured: set API_TOKEN or API_TOKENS_JSON (wrangler secret put), so no request is accepted");
  if (s.persistence === "degraded")
    why.push(`SERENA_R2_STATE_ENABLED=1 but ${s.persistenceMissing} is not set: containers start with local state only (no snapshots)`);
  return why.join("; ");
}

function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The /health input owned by the Worker: role, instance cap and the persistence settings. */
function healthInput(env: Env, s: ConfigState, oauth: OAuthSetup, idp: IdpSetup) {
  const enabled = flag(env.SERENA_R2_STATE_ENABLED);
  const reason = degradedReason(s, oauth, idp);
  return {
    status: reason === "" ? "ok" : "degraded",
    reason,
    role: "worker",
    mode: "instances",
    // Each container reports only itself (/status); the Worker cannot count them.
    instances: { max: uint(env.MAX_INSTANCES, 8), unknown: true },
    persistence: {
      enabled,
      store: enabled ? "s3" : "none",
      bucket: env.R2_BUCKET_NAME ?? "",
      prefix: env.SERENA_R2_STATE_PREFIX ?? "",
      partition_mode: env.SERENA_R2_STATE_PARTITION_MODE || "durable-object",
      interval_seconds: uint(env.SERENA_R2_SNAPSHOT_INTERVAL_SECONDS, 180),
      retention_count: uint(env.SERENA_R2_SNAPSHOT_RETENTION_COUNT, 5),
      strict: flag(env.SERENA_R2_STATE_STRICT),
      encrypted: enabled && !!env.SERENA_SNAPSHOT_KEY,
      // The Worker cannot see a container's store; it reports whether the settings are complete.
      state: s.persistence,
    },
    uptime_seconds: Math.floor((Date.now() - started) / 1000),
  };
}

/** The request the container receives: Host rewritten, client credentials and Origin removed. */
function upstreamRequest(req: Request, url: URL, body: Uint8Array | null, d: Decision, env: Env, path?: string) {
  const h = new Headers(req.headers);
  for (const name of ["authorization", "origin", "cookie", "host", "content-length", "x-serena-internal-secret"])
    h.delete(name);
  if (d.fix_accept) h.set("accept", "application/json, text/event-stream");
  if (env.SERENA_INTERNAL_SECRET) h.set("x-serena-internal-secret", env.SERENA_INTERNAL_SECRET);
  const method = path === undefined ? req.method : "GET";
  return new Request(`http://container${path ?? url.pathname + url.search}`, {
    method,
    headers: h,
    body: BODY_METHODS.has(method) && body !== null && body.byteLength > 0 ? body : undefined,
    redirect: "manual",
  });
}

/** A JSON-RPC error for failures of the container path itself (same shape as serve's relay). */
function transportError(status: number, rpcId: string, message: string): Response {
  const body = `{"jsonrpc":"2.0","id":${rpcId === "" ? "null" : rpcId},"error":{"code":-32000,"message":${JSON.stringify(message)}}}`;
  const headers: Record<string, string> = { ...JSON_HEADERS };
  if (status === 503 || status === 429) headers["retry-after"] = "10";
  return new Response(body, { status, headers });
}

/**
 * The container library answers in plain text when it cannot give a container (503 at
 * max_instances or while provisioning, 429 when rate limited, 500 when the start failed):
 * clients get a JSON-RPC error naming the reason instead, with Retry-After where waiting helps.
 * Everything `serena-remote run` itself answers passes unchanged.
 */
async function containerAnswer(r: Response, rpcId: string): Promise<Response> {
  const type = r.headers.get("content-type") ?? "";
  if (r.status < 429 || /json|event-stream/i.test(type)) return r;
  const text = (await r.text()).split("\n")[0].slice(0, 300);
  if (r.status === 503)
    return transportError(
      503,
      rpcId,
      "No container is available for this token right now: every one of max_instances is busy, or the containers are still being provisioned after a deploy. Retry after the Retry-After delay; if it persists, raise max_instances (and MAX_INSTANCES) in wrangler.toml."
    );
  if (r.status === 429) return transportError(429, rpcId, `Container starts are rate limited: ${text}. Retry after the Retry-After delay.`);
  return transportError(502, rpcId, `The container for this token could not be started (${text}). Retry; if it persists, check 'wrangler tail' and /status.`);
}

async function handle(req: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  if (started === 0) started = Date.now();
  const config = configure(env);
  const url = new URL(req.url);
  const oauth = oauthSetup(env);
  const idp = idpSetup(env);
  // With an external issuer, the protected resource metadata names it (idp.ts), whether or not the
  // built-in server is on too.
  if (idp.enabled && isMetadataPath(url.pathname)) return metadataResponse(req, idp);
  // The authorization server's endpoints (docs/oauth.md); the rest goes through core.wasm.
  if (oauth.enabled && isOAuthPath(url.pathname)) return oauthRoute(req, env, ctx, url, oauth);
  // A token in a URL ends up in logs and histories: refused even when it is valid.
  if ((oauth.enabled || idp.enabled) && url.pathname !== "/health" && url.searchParams.has("access_token"))
    return transportError(400, "", "Tokens in the query string (access_token) are refused: send the token in the Authorization header (Authorization: Bearer <token>).");
  // Where a 401 sends clients to sign in: the resource metadata, when an issuer or the built-in
  // server is usable.
  const signIn = (oauth.enabled && oauth.error === null) || (idp.enabled && idp.error === null);
  const metadataUrl = oauth.enabled ? oauth.metadataUrl : idp.metadataUrl;

  const authorization = req.headers.get("authorization");
  const token = authorization === null ? null : core.parseBearer(authorization);
  const digest = token === null ? undefined : hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));

  let body: Uint8Array | null = new Uint8Array(0);
  if (BODY_METHODS.has(req.method)) body = await readBody(req, core.maxBody);
  const describe = (dg: string | undefined, headers: Headers = req.headers) =>
    core.classify({
      method: req.method,
      path: url.pathname,
      headers,
      digest: dg,
      body_too_large: body === null,
      body: body ?? undefined,
    });
  let d = describe(digest);

  // A Bearer that is no static token may be an OAuth access token: it then stands for the static
  // token its grant is bound to, and the request is classified again exactly as if that token had
  // been sent, so every rule of the core applies. A grant whose token was removed or changed
  // (the core no longer knows it, or knows it under another name) is refused and revoked. The
  // library's tokens carry ':' (not a token68 character), so the core does not parse them.
  const credential = token ?? (authorization === null ? null : (/^Bearer +([\x21-\x7e]+) *$/i.exec(authorization)?.[1] ?? null));
  // A JWT from the external issuer (idp.ts) stands for the static token its claim names, and the
  // request is classified again with that token's digest. Anything not shaped like a JWT may be a
  // built-in access token.
  let jwt: "not-jwt" | "refused" | "bound" = "not-jwt";
  if (idp.enabled && idp.error === null && token !== null && d.action === "reject" && d.www_authenticate) {
    const v = await idpBearer(idp, token, ctx);
    jwt = v.kind;
    if (v.kind === "bound") {
      const headers = new Headers(req.headers);
      headers.set("authorization", "Bearer idp-jwt");
      d = describe(v.digest, headers);
    }
  }
  if (jwt === "not-jwt" && oauth.enabled && oauth.error === null && credential !== null && d.action === "reject" && d.www_authenticate) {
    const r = await resolveAccessToken(oauth, env, credential);
    if (r.kind === "bound") {
      // The core sees a well-formed Authorization header and judges the bound token's digest.
      const headers = new Headers(req.headers);
      headers.set("authorization", "Bearer oauth-access-token");
      const bound = describe(r.digest, headers);
      const unbound =
        (bound.action === "reject" && bound.www_authenticate) ||
        ((bound.action === "forward" || bound.action === "status") && routeName(bound.route) !== r.name);
      if (unbound) {
        ctx.waitUntil(
          revokeGrant(oauth, env, r.grantId, r.name).catch((e) =>
            console.error(`serena-remote worker: revoking an unbound OAuth grant failed: ${(e as Error).message}`)
          )
        );
        const body = `{"jsonrpc":"2.0","id":${d.rpc_id === "" ? "null" : d.rpc_id},"error":{"code":-32001,"message":"Unauthorized: this OAuth sign-in was made with a serena-remote token that is no longer configured (removed or changed), so it has ended. Sign in again."}}`;
        return new Response(body, { status: 401, headers: { ...JSON_HEADERS, "www-authenticate": challenge(metadataUrl, true) } });
      }
      d = bound;
    }
  }

  switch (d.action) {
    case "reject": {
      const headers: Record<string, string> = { ...JSON_HEADERS };
      if (d.allow !== null) headers["allow"] = d.allow;
      if (d.www_authenticate)
        headers["www-authenticate"] = signIn ? challenge(metadataUrl, authorization !== null) : 'Bearer realm="serena-remote"';
      return new Response(d.body, { status: d.status, headers });
    }
    case "health":
      return new Response(core.healthText(healthInput(env, config, oauth, idp)), { status: 200, headers: JSON_HEADERS });
    case "status":
    case "forward":
      if (oauth.error !== null)
        return transportError(
          500,
          d.rpc_id ?? "",
          `OAuth sign-in is enabled (OAUTH_ENABLED=1) but not usable, so no request is accepted: ${oauth.error}. Fix it in wrangler.toml [vars] and deploy again.`
        );
      if (idp.error !== null)
        return transportError(
          500,
          d.rpc_id ?? "",
          `JWTs from an identity provider are configured (SERENA_REMOTE_OAUTH_ISSUER) but not usable, so no request is accepted: ${idp.error}. Fix it in wrangler.toml [vars] and deploy again.`
        );
      // A container would refuse these settings and exit: say so instead of starting one.
      if (config.runErrors.length > 0)
        return transportError(
          500,
          d.rpc_id ?? "",
          `This Worker's container settings are invalid, so no container is started: ${config.runErrors.join("; ")}. Fix them in wrangler.toml [vars] or with 'wrangler secret put', then deploy again.`
        );
      break;
  }

  switch (d.action) {
    case "status": {
      // The token's own container: its /health (this starts it when it sleeps).
      let instance: unknown;
      try {
        const stub = env.SERENA_CONTAINER.getByName(d.route);
        const r = await containerAnswer(await stub.fetch(upstreamRequest(req, url, null, d, env, "/health")), "");
        instance = r.ok ? await r.json() : { state: "unavailable", http_status: r.status, detail: await r.text() };
      } catch (e) {
        instance = { state: "unreachable", detail: (e as Error).message };
      }
      return new Response(JSON.stringify({ route: d.route, mode: "instances", instance }), {
        status: 200,
        headers: JSON_HEADERS,
      });
    }
    case "forward":
      break;
  }

  const stub = env.SERENA_CONTAINER.getByName(d.route);
  const up = upstreamRequest(req, url, body, d, env);
  if (d.shim === "initialized") {
    // Answer at once and deliver in the background: the notification has no reply to wait for.
    ctx.waitUntil(
      stub
        .fetch(up)
        .then((r) => r.body?.cancel())
        .catch((e) => console.error(`initialized delivery to ${d.route} failed: ${(e as Error).message}`))
    );
    return new Response(null, { status: 202 });
  }
  try {
    return await containerAnswer(await stub.fetch(up), d.rpc_id);
  } catch (e) {
    return transportError(
      502,
      d.rpc_id,
      `Bad gateway: the container for this token did not answer (${(e as Error).message}). Retry; if it persists, check 'wrangler tail' and /status.`
    );
  }
}

export default {
  async fetch(req: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    try {
      return await handle(req, env, ctx);
    } catch (e) {
      // A failure of the glue itself: say what happened without any request data.
      console.error(`serena-remote worker: ${(e as Error).stack ?? e}`);
      return transportError(500, "", `Internal error in the serena-remote Worker: ${(e as Error).message}`);
    }
  },
} satisfies ExportedHandler<Env>;
