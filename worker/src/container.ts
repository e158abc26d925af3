// One Cloudflare Container per route: a Durable Object (named by the route) whose container runs
// `serena-remote run` as PID 1 (deploy/Dockerfile.cloudflare). The container learns everything it
// needs from its start-up environment: the persistence settings and R2 credentials, its instance
// id (the partition of its snapshots), its route, and the shared secret the Worker sends.

import { Container } from "@cloudflare/containers";
import { type Env, persistenceEnv } from "./env";

/** Settings passed through to `serena-remote run` when set. */
const PASS_THROUGH: (keyof Env)[] = [
  "SERENA_CONTEXT",
  "SERENA_PROJECT",
  "SERENA_ALLOW_SHELL",
  "SERENA_BACKEND_CMD",
  "SERENA_REMOTE_LOG_FORMAT",
  "MCP_CONTAINER_ROUTE_GENERATION",
];

export class SerenaContainer extends Container<Env> {
  defaultPort = 8080;
  sleepAfter: string | number = "15m";

  constructor(ctx: DurableObjectState<{}>, env: Env) {
    super(ctx, env);
    this.sleepAfter = env.SLEEP_AFTER || "15m";
    const vars: Record<string, string> = {
      ...persistenceEnv(env),
      // The real Durable Object id: workerd's CLOUDFLARE_DURABLE_OBJECT_ID is a placeholder locally.
      SERENA_INSTANCE_ID: ctx.id.toString(),
      // The route name ("<generation>:<token name>"), for the "token" partition mode and the logs.
      SERENA_ROUTE: ctx.id.name ?? "",
    };
    for (const k of PASS_THROUGH) {
      const v = env[k];
      if (typeof v === "string" && v !== "") vars[k] = v;
    }
    if (env.SERENA_INTERNAL_SECRET) vars.SERENA_INTERNAL_SECRET = env.SERENA_INTERNAL_SECRET;
    this.envVars = vars;
  }

  override onStop(params: { exitCode: number; reason: string }): void {
    console.log(`container ${this.ctx.id.name ?? this.ctx.id.toString()} stopped: exit ${params.exitCode} (${params.reason})`);
  }

  override onError(error: unknown): never {
    console.error(`container ${this.ctx.id.name ?? this.ctx.id.toString()} failed: ${error}`);
    throw error;
  }
}
