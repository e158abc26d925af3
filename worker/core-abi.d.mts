// Types of core-abi.mjs (the one JavaScript binding of core.wasm) for the TypeScript Worker.

export interface Decision {
  action: "reject" | "health" | "status" | "forward";
  status: number;
  allow: string | null;
  www_authenticate: boolean;
  token_index: number;
  route: string;
  shim: "initialized" | null;
  fix_accept: boolean;
  is_initialize: boolean;
  /** A 2026-07-28 request: forwarded without a session; no session rule, no shims. */
  stateless: boolean;
  /** The MCP-Protocol-Version the core recognised, "" when absent or refused. */
  protocol_version: string;
  rpc_method: string;
  rpc_id: string;
  body: string;
}

export interface ClassifyInput {
  method: string;
  path: string;
  headers?: Headers | Record<string, string>;
  digest?: string;
  body_too_large?: boolean;
  /** One of mcp-protocol-version, mcp-method, mcp-name came more than once. */
  mcp_header_repeated?: boolean;
  body?: string | Uint8Array | ArrayBuffer;
  body_hex?: string;
}

export interface HealthInput {
  status?: string;
  reason?: string;
  role?: string;
  mode?: string;
  instances?: {
    max?: number;
    unknown?: boolean;
    starting?: number;
    ready?: number;
    idle?: number;
    stopping?: number;
    failed?: number;
  };
  persistence?: {
    enabled?: boolean;
    store?: string;
    bucket?: string;
    prefix?: string;
    partition_mode?: string;
    interval_seconds?: number;
    retention_count?: number;
    strict?: boolean;
    state?: string;
  };
  uptime_seconds?: number;
}

export class Core {
  constructor(instance: WebAssembly.Instance);
  static load(source: WebAssembly.Module | BufferSource): Promise<Core>;
  maxBody: number;
  readonly tokenCount: number;
  loadTokens(opts?: { apiToken?: string; tokensJson?: string }): number;
  setPolicy(opts?: {
    generation?: string;
    origins?: string;
    checkBearer?: boolean;
    bareGet405?: boolean;
    maxBody?: number;
    loopbackListener?: boolean;
  }): void;
  classify(req: ClassifyInput): Decision;
  parseBearer(value: string): string | null;
  healthText(input?: HealthInput): string;
  health(input?: HealthInput): Record<string, unknown>;
  sessionJudge(input: { plain: string; name: string; now: number; max_age: number }): {
    result: "ok" | "forged" | "foreign" | "expired";
    reinit: string | null;
    protocol: string;
  };
  runSettings(settings: Record<string, unknown>): {
    forward: string[];
    errors: string[];
    persistence: "disabled" | "ok" | "degraded";
    persistence_missing: string;
  };
  idpSetup(opts: {
    issuer: string;
    jwksUrl?: string;
    claim?: string;
    claimMap?: string;
    publicUrl: string;
    clockSkew?: string;
    builtin?: boolean;
  }): { metadata: Record<string, unknown>; skew: number; unmapped: string[] };
  idpDiscovered(doc: string | Uint8Array): string;
  idpJwks(doc: string | Uint8Array): { keys: JsonWebKey[]; skipped: number };
  idpJudge(
    token: string,
    now: number
  ): { jwt: false } | { jwt: true; alg: "RS256" | "ES256"; keys: number[]; signing_len: number; sig: Uint8Array };
  idpResolve(token: string): { name: string; digest: string };
}
