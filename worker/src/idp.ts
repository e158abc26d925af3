// JWT access tokens from an external identity provider (SERENA_REMOTE_OAUTH_ISSUER; docs/oauth.md,
// "External identity provider" and "On Cloudflare"), as `serve` accepts them.
//
// core.wasm decides everything it decides for serve (src/core/jwt.c through the sr_idp_* exports):
// the settings, the issuer's metadata, the JWKS and which of its keys are usable, a token's header
// and claims by the rules, which keys fit its alg and kid, and which static token its claim names.
// This file does the I/O around it: fetching documents (GET, no redirects, 10 s, 64 KiB), the
// signatures (WebCrypto), and the key cache of this isolate with serve's refresh rules. A verified
// JWT is then handed back as the digest of the static token it stands for, and index.ts has
// core.wasm classify the request again, exactly as if that token had been sent.
//
// Tokens never reach the log: a refusal logs its reason only.

import { readBody } from "./body";
import { core } from "./core";
import { type Env, flag } from "./env";

/** serve's numbers (src/core/limits.h): refresh every 10 minutes; 30 s between refreshes for an
 * unknown kid, and between attempts while no JWKS could be loaded; fetches bounded. */
const REFRESH_MS = 600_000;
const RETRY_MS = 30_000;
const FETCH_TIMEOUT_MS = 10_000;
const DOC_MAX = 64 * 1024;

export interface IdpSetup {
  /** SERENA_REMOTE_OAUTH_ISSUER is set. */
  enabled: boolean;
  /** Why the settings cannot be used (fail closed), or null. */
  error: string | null;
  /** The RFC 9728 document naming the issuer (and the built-in server with OAUTH_ENABLED=1). */
  metadata: string;
  /** Where that document is, for WWW-Authenticate. */
  metadataUrl: string;
}

export type IdpVerdict = { kind: "not-jwt" } | { kind: "refused" } | { kind: "bound"; digest: string; name: string };

interface Cache {
  issuer: string;
  /** Configured, or discovered from the issuer's metadata ("" until known). */
  jwksUrl: string;
  /** The usable keys, in core.wasm's order (the indices sr_idp_judge names); null: import failed. */
  keys: Promise<CryptoKey | null>[];
  /** When a JWKS was last loaded (ms), 0 never. */
  loadedAt: number;
  /** When the last fetch started (ms). */
  triedAt: number;
  /** When an unknown kid last caused a refresh (ms). */
  unknownAt: number;
  refreshing: Promise<void> | null;
}

let setupKey: string | null = null;
let setup: IdpSetup = { enabled: false, error: null, metadata: "", metadataUrl: "" };
let cache: Cache | null = null;

function log(level: "log" | "warn" | "error", msg: string) {
  console[level](`serena-remote worker: OAuth issuer: ${msg}`);
}

/** The settings, checked by core.wasm with serve's rules, once per isolate and configuration. */
export function idpSetup(env: Env): IdpSetup {
  const issuer = (env.SERENA_REMOTE_OAUTH_ISSUER ?? "").trim();
  const settings = {
    issuer,
    jwksUrl: (env.SERENA_REMOTE_OAUTH_JWKS_URL ?? "").trim(),
    claim: (env.SERENA_REMOTE_OAUTH_CLAIM ?? "").trim(),
    claimMap: (env.SERENA_REMOTE_OAUTH_CLAIM_MAP ?? "").trim(),
    publicUrl: (env.SERENA_REMOTE_PUBLIC_URL ?? "").trim(),
    clockSkew: (env.SERENA_REMOTE_OAUTH_CLOCK_SKEW ?? "").trim(),
    builtin: flag(env.OAUTH_ENABLED),
  };
  // The token table is part of the key: the map's names are checked against it.
  const key = JSON.stringify([settings, env.API_TOKEN ?? "", env.API_TOKENS_JSON ?? ""]);
  if (key === setupKey) return setup;
  setupKey = key;
  cache = null;
  if (issuer === "") {
    setup = { enabled: false, error: null, metadata: "", metadataUrl: "" };
    return setup;
  }
  const metadataUrl = `${settings.publicUrl}/.well-known/oauth-protected-resource/mcp`;
  try {
    const r = core.idpSetup(settings);
    for (const name of r.unmapped)
      log("warn", `SERENA_REMOTE_OAUTH_CLAIM_MAP names token ${name}, which is not configured: JWTs mapped to it are refused`);
    setup = { enabled: true, error: null, metadata: JSON.stringify(r.metadata), metadataUrl };
    cache = { issuer, jwksUrl: settings.jwksUrl, keys: [], loadedAt: 0, triedAt: 0, unknownAt: 0, refreshing: null };
  } catch (e) {
    const error = (e as Error).message;
    log("error", `settings refused, no request is accepted: ${error}`);
    setup = { enabled: true, error, metadata: "", metadataUrl };
  }
  return setup;
}

/** Whether `path` is the protected resource metadata, which names the issuer when one is set. */
export function isMetadataPath(path: string): boolean {
  return path === "/.well-known/oauth-protected-resource" || path === "/.well-known/oauth-protected-resource/mcp";
}

/** The RFC 9728 document, as serve answers it (GET/HEAD, CORS, cacheable for 5 minutes). */
export function metadataResponse(req: Request, s: IdpSetup): Response {
  const cors = { "access-control-allow-origin": "*" };
  if (req.method === "OPTIONS")
    return new Response(null, {
      status: 204,
      headers: {
        ...cors,
        "access-control-allow-methods": "GET, OPTIONS",
        "access-control-allow-headers": "MCP-Protocol-Version",
        "access-control-max-age": "86400",
      },
    });
  if (req.method !== "GET" && req.method !== "HEAD")
    return new Response('{"error":"invalid_request"}', {
      status: 405,
      headers: { ...cors, allow: "GET, OPTIONS", "content-type": "application/json" },
    });
  if (s.error !== null)
    return new Response(JSON.stringify({ error: "server_error", error_description: `SERENA_REMOTE_OAUTH_ISSUER is set but not usable: ${s.error}` }), {
      status: 500,
      headers: { "content-type": "application/json", "cache-control": "no-store" },
    });
  return new Response(req.method === "HEAD" ? null : s.metadata, {
    status: 200,
    headers: { ...cors, "content-type": "application/json", "cache-control": "max-age=300" },
  });
}

/** GET `url` -> its body (at most 64 KiB, 200 only, no redirects, 10 s), or throws why not. */
async function fetchDoc(url: string): Promise<string> {
  const r = await fetch(url, {
    headers: { accept: "application/json" },
    redirect: "manual",
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  if (r.status !== 200) {
    await r.body?.cancel();
    throw new Error(r.status >= 300 && r.status < 400 ? `HTTP ${r.status} (redirects are not followed)` : `HTTP ${r.status}`);
  }
  const body = await readBody(r, DOC_MAX);
  if (body === null) {
    await r.body?.cancel().catch(() => {});
    throw new Error("larger than 64 KiB");
  }
  return new TextDecoder().decode(body);
}

/** The issuer's metadata URLs: OpenID Connect Discovery's, then RFC 8414's (well-known segment
 * between the host and the issuer's path). */
function metadataUrls(issuer: string): string[] {
  const base = issuer.endsWith("/") ? issuer.slice(0, -1) : issuer;
  const slash = base.indexOf("/", base.indexOf("://") + 3);
  const host = slash < 0 ? base : base.slice(0, slash);
  const path = slash < 0 ? "" : base.slice(slash);
  return [`${base}/.well-known/openid-configuration`, `${host}/.well-known/oauth-authorization-server${path}`];
}

function importKey(jwk: JsonWebKey): Promise<CryptoKey | null> {
  const alg = jwk.kty === "RSA" ? { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } : { name: "ECDSA", namedCurve: "P-256" };
  return crypto.subtle.importKey("jwk", jwk, alg, false, ["verify"]).catch(() => null);
}

/** One refresh of the JWKS (discovering its URL first when needed); a failure keeps the keys. */
async function load(c: Cache): Promise<void> {
  c.triedAt = Date.now();
  if (c.jwksUrl === "") {
    for (const url of metadataUrls(c.issuer)) {
      try {
        const doc = await fetchDoc(url);
        if (cache !== c) return;
        c.jwksUrl = core.idpDiscovered(doc);
        log("log", `jwks_uri ${c.jwksUrl} (from the issuer's metadata)`);
        break;
      } catch (e) {
        log("warn", `no jwks_uri from ${url}: ${(e as Error).message}`);
      }
    }
    if (c.jwksUrl === "") return;
  }
  let doc: string;
  try {
    doc = await fetchDoc(c.jwksUrl);
  } catch (e) {
    log("error", `cannot fetch the JWKS ${c.jwksUrl}: ${(e as Error).message} (keys kept: ${c.keys.length})`);
    return;
  }
  // A newer configuration replaced this cache (and core.wasm's keys) meanwhile: drop the answer.
  if (cache !== c) return;
  try {
    // core.wasm's keys and these are replaced together, in one synchronous step, so the indices
    // sr_idp_judge gives always name the same keys here.
    const { keys, skipped } = core.idpJwks(doc);
    c.keys = keys.map(importKey);
    c.loadedAt = Date.now();
    const usable = (await Promise.all(c.keys)).filter((k) => k !== null).length;
    log("log", `JWKS from ${c.jwksUrl}: ${usable} usable key(s), ${skipped + keys.length - usable} left out`);
  } catch (e) {
    log("error", `the JWKS at ${c.jwksUrl} is refused: ${(e as Error).message} (keys kept: ${c.keys.length})`);
  }
}

/** Starts a refresh unless one is under way; resolves when it is over. */
function refresh(c: Cache): Promise<void> {
  c.refreshing ??= load(c).finally(() => {
    c.refreshing = null;
  });
  return c.refreshing;
}

function refuse(why: string): IdpVerdict {
  log("log", `JWT refused: ${why}`);
  return { kind: "refused" };
}

/**
 * Judges a Bearer that matched no static token: "not-jwt" when it is not shaped like a JWT (it may
 * be a built-in access token), "refused" (reason logged), or the static token it stands for.
 * A request whose kid the keys lack waits for one refresh (at most once per 30 s) and is judged
 * again, as in serve; so does one that arrives before any JWKS was loaded.
 */
export async function idpBearer(s: IdpSetup, token: string, ctx: ExecutionContext): Promise<IdpVerdict> {
  const c = cache;
  if (!s.enabled || s.error !== null || c === null) return { kind: "not-jwt" };
  const now = Date.now();
  if (c.loadedAt === 0) {
    // No JWKS yet: wait for one (a failed attempt is retried after 30 s, not at every request).
    if (c.refreshing !== null || now - c.triedAt >= RETRY_MS) await refresh(c);
  } else if (now - c.loadedAt >= REFRESH_MS) {
    ctx.waitUntil(refresh(c));
  }
  let refreshed = false;
  for (;;) {
    let j;
    try {
      j = core.idpJudge(token, Math.floor(Date.now() / 1000));
    } catch (e) {
      return refuse((e as Error).message);
    }
    if (!j.jwt) return { kind: "not-jwt" };
    // Taken in the same synchronous step as the judgement: the indices name these keys.
    const keys = c.keys;
    if (j.keys.length === 0) {
      if (refreshed) return refuse("no key of the JWKS fits its kid and alg");
      if (c.refreshing !== null) {
        await c.refreshing; // a refresh is under way: its keys may fit
      } else {
        const t = Date.now();
        if (c.unknownAt !== 0 && t - c.unknownAt < RETRY_MS)
          return refuse("no key of the JWKS fits its kid and alg (refreshed for an unknown kid less than 30 s ago)");
        c.unknownAt = t;
        log("log", "a JWT names a key the JWKS lacks: refreshing it");
        await refresh(c);
      }
      refreshed = true;
      continue;
    }
    const data = new TextEncoder().encode(token.slice(0, j.signing_len));
    const algo = j.alg === "RS256" ? { name: "RSASSA-PKCS1-v1_5" } : { name: "ECDSA", hash: "SHA-256" };
    let ok = false;
    for (const i of j.keys) {
      const key = await keys[i];
      if (key === null || key === undefined) continue;
      if (await crypto.subtle.verify(algo, key, j.sig, data).catch(() => false)) {
        ok = true;
        break;
      }
    }
    if (!ok) return refuse("the signature does not verify");
    try {
      const r = core.idpResolve(token);
      return { kind: "bound", digest: r.digest, name: r.name };
    } catch (e) {
      return refuse((e as Error).message);
    }
  }
}
