// One Cloudflare Container per route: a Durable Object (named by the route) whose container runs
// `serena-remote run` as PID 1 (deploy/Dockerfile.cloudflare). The container learns everything it
// needs from its start-up environment: every `run` setting the Worker has that is set (the
// persistence settings and R2 credentials, SERENA_CONTEXT, SERENA_BACKEND_CMD, ...: the list is
// run's own, src/core/runcfg.c, through core.wasm), its instance id (the partition of its
// snapshots), its route, the shared secret the Worker sends, and the key that seals its clients'
// session ids.
//
// Session ids are opened by the container's `serena-remote run` (the same C edge as `serve`), so
// the key must outlive the container: a container's disk is new after every sleep. Each route gets
// its own key, so an id issued by one token's container never opens in another's: derived from
// SERENA_SESSION_KEY and the route name when that secret is set (the same key on every deploy),
// else 32 random bytes kept in this Durable Object's storage.

import { Container } from "@cloudflare/containers";
import { containerSettings } from "./core";
import type { Env } from "./env";

export class SerenaContainer extends Container<Env> {
  defaultPort = 8080;
  sleepAfter: string | number = "15m";

  constructor(ctx: DurableObjectState<{}>, env: Env) {
    super(ctx, env);
    this.sleepAfter = env.SLEEP_AFTER || "15m";
    const vars: Record<string, string> = {
      ...containerSettings(env).vars,
      // The token's own project, context and read-only mode, when its entry names them.
      ...tokenSettings(env, ctx.id.name ?? ""),
      // The real Durable Object id: workerd's CLOUDFLARE_DURABLE_OBJECT_ID is a placeholder locally.
      SERENA_INSTANCE_ID: ctx.id.toString(),
      // The route name ("<generation>:<token name>"), for the "token" partition mode and the logs.
      SERENA_ROUTE: ctx.id.name ?? "",
    };
    this.envVars = vars;
    // Before any request can start the container: its environment must hold the key.
    ctx.blockConcurrencyWhile(async () => {
      vars.SERENA_SESSION_KEY = await routeSessionKey(ctx, env);
    });
  }

  override onStop(params: { exitCode: number; reason: string }): void {
    console.log(`container ${this.ctx.id.name ?? this.ctx.id.toString()} stopped: exit ${params.exitCode} (${params.reason})`);
  }

  override onError(error: unknown): never {
    console.error(`container ${this.ctx.id.name ?? this.ctx.id.toString()} failed: ${error}`);
    throw error;
  }
}

/**
 * A token entry's own settings as `run`'s environment: {"name": {"token", "project", "context",
 * "read_only"}} in API_TOKENS_JSON (already validated by core.wasm, src/core/tokens.c) gives the
 * route "<generation>:name" its SERENA_PROJECT, SERENA_CONTEXT and SERENA_READ_ONLY.
 */
export function tokenSettings(env: Env, route: string): Record<string, string> {
  const name = route.slice(route.indexOf(":") + 1);
  let table: unknown;
  try {
    table = JSON.parse(env.API_TOKENS_JSON ?? "");
  } catch {
    return {};
  }
  if (!table || typeof table !== "object" || Array.isArray(table)) return {};
  const entry = (table as Record<string, unknown>)[name];
  if (!entry || typeof entry !== "object" || Array.isArray(entry)) return {};
  const e = entry as Record<string, unknown>;
  const out: Record<string, string> = {};
  if (typeof e.project === "string") out.SERENA_PROJECT = e.project;
  if (typeof e.context === "string") out.SERENA_CONTEXT = e.context;
  if (e.read_only === true) out.SERENA_READ_ONLY = "1";
  return out;
}

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The session key of this route's container (base64url of 32 bytes). */
export async function routeSessionKey(ctx: DurableObjectState<{}>, env: Env): Promise<string> {
  const route = ctx.id.name ?? ctx.id.toString();
  if (env.SERENA_SESSION_KEY) {
    const master = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(env.SERENA_SESSION_KEY),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"]
    );
    const mac = await crypto.subtle.sign("HMAC", master, new TextEncoder().encode(`serena-remote session key v1\0${route}`));
    return base64url(new Uint8Array(mac));
  }
  const kept = await ctx.storage.get<string>("session-key");
  if (kept) return kept;
  const key = base64url(crypto.getRandomValues(new Uint8Array(32)));
  await ctx.storage.put("session-key", key);
  return key;
}
