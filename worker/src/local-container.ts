// A stand-in for SerenaContainer when there is no container runtime (wrangler dev --env local,
// tests): the same Durable Object per route, but instead of starting a container it forwards to
// a `serena-remote run` already listening on 127.0.0.1. LOCAL_CONTAINER_URLS maps route names to
// base URLs ({"gen-1:alice": "http://127.0.0.1:18081", "*": "http://127.0.0.1:18080"}). The
// Worker's code path is otherwise identical: it cannot tell the two classes apart. The value
// "unavailable" answers as @cloudflare/containers does when no instance can be had (max_instances
// reached, or still provisioning): a plain-text 503, which the Worker must turn into a JSON-RPC
// error with Retry-After.

import { DurableObject } from "cloudflare:workers";
import type { Env } from "./env";

export class LocalContainer extends DurableObject<Env> {
  override async fetch(req: Request): Promise<Response> {
    const route = this.ctx.id.name ?? "";
    let map: Record<string, string>;
    try {
      map = JSON.parse(this.env.LOCAL_CONTAINER_URLS || "{}");
    } catch (e) {
      return local(500, `LOCAL_CONTAINER_URLS is not valid JSON: ${(e as Error).message}`);
    }
    const base = map[route] ?? map["*"];
    if (!base) return local(503, `no local container for route ${route}: add it to LOCAL_CONTAINER_URLS`);
    if (base === "unavailable")
      return new Response(
        "There is no Container instance available at this time.\nThis is likely because you have reached your max concurrent instance count (set in wrangler config) or are you currently provisioning the Container.",
        { status: 503 }
      );
    const u = new URL(req.url);
    const target = new URL(u.pathname + u.search, base);
    const r = await fetch(target, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      redirect: "manual",
    });
    return new Response(r.body, r);
  }
}

function local(status: number, message: string): Response {
  return new Response(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32000, message } }), {
    status,
    headers: { "content-type": "application/json" },
  });
}
