// The serena-remote Worker: the edge of the Cloudflare deployment.
//
// Every decision (who is this, which route, what is refused, which shim applies, what /health
// says) is made by core.wasm, the same C core `serena-remote serve` runs natively, through its
// one JavaScript binding core-abi.mjs. This file only does the I/O around it: it describes the
// request to the core, hashes the Bearer token with WebCrypto (the core compares digests in
// constant time), and acts on the decision: answer, or forward to the route's container
// (a Durable Object per route running `serena-remote run`).

import coreModule from "./core.wasm";
import { Core, type Decision } from "../core-abi.mjs";
import { type Env, flag, uint } from "./env";

export { SerenaContainer } from "./container";
export { LocalContainer } from "./local-container";

const core = new Core(new WebAssembly.Instance(coreModule, {}));
// Set on the first request: at global scope the Workers clock reads the epoch.
let started = 0;
// The configuration the core was last loaded with (tokens and policy); reloaded when it changes.
let loadedKey: string | null = null;
let loadError: string | null = null;

const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };
const BODY_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** Loads tokens and policy into core.wasm once per isolate and configuration. */
function configure(env: Env): string | null {
  const settings = {
    apiToken: env.API_TOKEN ?? "",
    tokensJson: env.API_TOKENS_JSON ?? "",
    generation: env.MCP_CONTAINER_ROUTE_GENERATION ?? "",
    origins: env.ALLOWED_ORIGINS ?? "",
    bareGet405: !flag(env.SERENA_ALLOW_SSE_GET),
    maxBody: uint(env.MAX_BODY_BYTES, 0),
  };
  const key = JSON.stringify(settings);
  if (key === loadedKey) return loadError;
  loadedKey = key;
  loadError = null;
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
  return loadError;
}

function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Reads at most `max` bytes of the body. Returns null when the body is larger (by Content-Length
 * or by what arrived), so the core answers 413 without the Worker holding an oversized body.
 */
async function readBody(req: Request, max: number): Promise<Uint8Array | null> {
  const declared = req.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) > max) return null;
  if (req.body === null) return new Uint8Array(0);
  const reader = req.body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      return null;
    }
    parts.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** The /health input owned by the Worker: role, instance cap and the persistence settings. */
function healthInput(env: Env, configError: string | null) {
  const enabled = flag(env.SERENA_R2_STATE_ENABLED);
  const credentials =
    !!env.AWS_ACCESS_KEY_ID && !!env.AWS_SECRET_ACCESS_KEY && (!!env.R2_ACCOUNT_ID || !!env.S3_ENDPOINT);
  return {
    status: configError === null ? "ok" : "degraded",
    role: "worker",
    mode: "instances",
    instances: { max: uint(env.MAX_INSTANCES, 8) },
    persistence: {
      enabled,
      store: enabled ? "s3" : "none",
      bucket: env.R2_BUCKET_NAME ?? "",
      prefix: env.SERENA_R2_STATE_PREFIX ?? "",
      partition_mode: env.SERENA_R2_STATE_PARTITION_MODE || "durable-object",
      interval_seconds: uint(env.SERENA_R2_SNAPSHOT_INTERVAL_SECONDS, 180),
      retention_count: uint(env.SERENA_R2_SNAPSHOT_RETENTION_COUNT, 5),
      strict: flag(env.SERENA_R2_STATE_STRICT),
      // The Worker cannot see a container's store; it reports whether the settings are complete.
      state: !enabled ? "disabled" : credentials ? "ok" : "degraded",
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
  if (status === 503) headers["retry-after"] = "5";
  return new Response(body, { status, headers });
}

async function handle(req: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  if (started === 0) started = Date.now();
  const configError = configure(env);
  const url = new URL(req.url);

  const authorization = req.headers.get("authorization");
  const token = authorization === null ? null : core.parseBearer(authorization);
  const digest = token === null ? undefined : hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));

  let body: Uint8Array | null = new Uint8Array(0);
  if (BODY_METHODS.has(req.method)) body = await readBody(req, core.maxBody);
  const d = core.classify({
    method: req.method,
    path: url.pathname,
    headers: req.headers,
    digest,
    body_too_large: body === null,
    body: body ?? undefined,
  });

  switch (d.action) {
    case "reject": {
      const headers: Record<string, string> = { ...JSON_HEADERS };
      if (d.allow !== null) headers["allow"] = d.allow;
      if (d.www_authenticate) headers["www-authenticate"] = 'Bearer realm="serena-remote"';
      return new Response(d.body, { status: d.status, headers });
    }
    case "health":
      return new Response(core.healthText(healthInput(env, configError)), { status: 200, headers: JSON_HEADERS });
    case "status": {
      // The token's own container: its /health (this starts it when it sleeps).
      let instance: unknown;
      try {
        const stub = env.SERENA_CONTAINER.getByName(d.route);
        const r = await stub.fetch(upstreamRequest(req, url, null, d, env, "/health"));
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
    return await stub.fetch(up);
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
