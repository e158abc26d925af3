// The Worker's bindings and settings (wrangler.toml [vars] and secrets), in one type.

export interface Env {
  /** Durable Object namespace of the per-route containers (SerenaContainer, or LocalContainer in env.local). */
  SERENA_CONTAINER: DurableObjectNamespace;

  // Tokens (secrets): API_TOKEN (singleton route) and/or API_TOKENS_JSON ({"name":"token"} or ["token"]);
  // an entry may be {"token", "project", "context", "read_only"} (the container gets its settings).
  API_TOKEN?: string;
  API_TOKENS_JSON?: string;

  // Routing and edge policy.
  MCP_CONTAINER_ROUTE_GENERATION?: string;
  ALLOWED_ORIGINS?: string;
  SERENA_ALLOW_SSE_GET?: string;
  MAX_BODY_BYTES?: string;
  MAX_INSTANCES?: string;
  SLEEP_AFTER?: string;

  // Persistence, handed to each container as its environment.
  SERENA_R2_STATE_ENABLED?: string;
  SERENA_R2_STATE_PREFIX?: string;
  SERENA_R2_STATE_PARTITION_MODE?: string;
  SERENA_R2_STATE_STRICT?: string;
  SERENA_R2_SNAPSHOT_INTERVAL_SECONDS?: string;
  SERENA_R2_SNAPSHOT_RETENTION_COUNT?: string;
  R2_BUCKET_NAME?: string;
  R2_ACCOUNT_ID?: string;
  S3_ENDPOINT?: string;
  S3_REGION?: string;
  AWS_ACCESS_KEY_ID?: string;
  AWS_SECRET_ACCESS_KEY?: string;
  /** Secret: base64 key(s) encrypting every object the containers' snapshots store (the first encrypts). */
  SERENA_SNAPSHOT_KEY?: string;

  // Container settings passed through as they are.
  SERENA_CONTEXT?: string;
  SERENA_PROJECT?: string;
  SERENA_ALLOW_SHELL?: string;
  SERENA_READ_ONLY?: string;
  SERENA_BACKEND_CMD?: string;
  SERENA_REMOTE_LOG_FORMAT?: string;

  /**
   * Optional secret: the master key of client session ids. Each container gets a key derived from
   * it and its route; without it each Durable Object keeps a random key of its own in its storage.
   */
  SERENA_SESSION_KEY?: string;

  /** Shared secret the Worker sends to `serena-remote run` in X-Serena-Internal-Secret (secret). */
  SERENA_INTERNAL_SECRET?: string;

  // Sign in with OAuth (docs/oauth.md, "On Cloudflare"): "1" turns it on; off by default.
  OAUTH_ENABLED?: string;
  /** The issuer and origin of the resource <url>/mcp: https (http only on a loopback host), no path. */
  SERENA_REMOTE_PUBLIC_URL?: string;
  /** KV namespace of @cloudflare/workers-oauth-provider (clients, grants, tokens); needed only with OAuth on. */
  OAUTH_KV?: KVNamespace;

  // JWT access tokens from an external identity provider (docs/oauth.md, "External identity
  // provider"): serve's settings and rules. The issuer needs SERENA_REMOTE_PUBLIC_URL.
  /** The issuer, exactly as tokens carry it in iss: https (http only on a loopback host). */
  SERENA_REMOTE_OAUTH_ISSUER?: string;
  /** Its JWKS; unset: the jwks_uri of its OpenID / RFC 8414 metadata. */
  SERENA_REMOTE_OAUTH_JWKS_URL?: string;
  /** The top-level claim naming the token (default sub). */
  SERENA_REMOTE_OAUTH_CLAIM?: string;
  /** JSON {"claim value": "token name"}; with it, only the map counts. */
  SERENA_REMOTE_OAUTH_CLAIM_MAP?: string;
  /** Tolerance on exp, nbf and iat (default 60s, at most 5m). */
  SERENA_REMOTE_OAUTH_CLOCK_SKEW?: string;

  /** env.local only: JSON map route name -> base URL of a `serena-remote run` on 127.0.0.1 ("*" = any route). */
  LOCAL_CONTAINER_URLS?: string;
}

/** "1", "true", "yes", "on" (any case) are true; everything else is false. */
export function flag(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());
}

/** A non-negative integer setting, or `def` when absent or not a number. */
export function uint(v: string | undefined, def: number): number {
  if (v === undefined || !/^\s*\d+\s*$/.test(v)) return def;
  return Number.parseInt(v, 10);
}
