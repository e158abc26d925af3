// The one JavaScript binding of core.wasm (see src/core/wasm/api.c for the ABI).
//
// Both the Cloudflare Worker and the Node vector runner import this module,
// so there is exactly one place where JavaScript values become the bytes the
// C core reads. Every call copies its input into the wasm input buffer, calls
// one export and reads the JSON (or the error message) back from the output
// buffer. Errors are thrown as Error objects whose message is the core's.

const ABI_VERSION = 3;
// The headers the core reads. The last three are MCP 2026-07-28's: the core checks them
// against the body. A Headers object joins repeated copies with ", ", which never matches.
const HEADER_NAMES = [
  "origin",
  "accept",
  "mcp-session-id",
  "authorization",
  "mcp-protocol-version",
  "mcp-method",
  "mcp-name",
];
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: false });

function hexToBytes(hex) {
  if (hex.length % 2 !== 0 || /[^0-9a-fA-F]/.test(hex)) throw new Error("body_hex: not hex");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

function bytesOf(v) {
  if (v === undefined || v === null) return new Uint8Array(0);
  if (typeof v === "string") return enc.encode(v);
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  throw new Error("expected a string or bytes");
}

// Picks the headers the core looks at, from a Headers object or a plain object (any case).
function pickHeaders(headers) {
  const out = {};
  if (!headers) return out;
  if (typeof headers.get === "function") {
    for (const name of HEADER_NAMES) {
      const v = headers.get(name);
      if (v !== null) out[name] = v;
    }
    return out;
  }
  for (const [k, v] of Object.entries(headers)) {
    const name = k.toLowerCase();
    if (HEADER_NAMES.includes(name)) out[name] = String(v);
  }
  return out;
}

export class Core {
  // instance: a WebAssembly.Instance of core.wasm (no imports).
  constructor(instance) {
    this.x = instance.exports;
    this.maxBody = 4 * 1024 * 1024;
    if (this.x.sr_abi_version() !== ABI_VERSION)
      throw new Error(`core.wasm ABI ${this.x.sr_abi_version()} is not the expected ${ABI_VERSION}`);
  }

  // source: a WebAssembly.Module (Workers import .wasm as modules) or the file's bytes.
  static async load(source) {
    if (source instanceof WebAssembly.Module) return new Core(new WebAssembly.Instance(source, {}));
    const { instance } = await WebAssembly.instantiate(source, {});
    return new Core(instance);
  }

  // Copies the byte arrays back to back into the input buffer; returns their lengths.
  write(...parts) {
    const total = parts.reduce((n, p) => n + p.length, 0);
    const ptr = this.x.sr_buf(total);
    if (ptr === 0) throw new Error(`input of ${total} bytes exceeds core.wasm's buffer`);
    const mem = new Uint8Array(this.x.memory.buffer);
    let off = ptr;
    for (const p of parts) {
      mem.set(p, off);
      off += p.length;
    }
    return parts.map((p) => p.length);
  }

  output() {
    const mem = new Uint8Array(this.x.memory.buffer);
    const ptr = this.x.sr_out_ptr();
    return dec.decode(mem.subarray(ptr, ptr + this.x.sr_out_len()));
  }

  check(rc) {
    if (rc < 0) throw new Error(this.output());
    return rc;
  }

  // Entries in the loaded token table.
  get tokenCount() {
    return this.x.sr_token_count();
  }

  // API_TOKEN and API_TOKENS_JSON (strings; either may be empty). All-or-nothing.
  loadTokens({ apiToken = "", tokensJson = "" } = {}) {
    const [a, j] = this.write(enc.encode(apiToken), enc.encode(tokensJson));
    this.check(this.x.sr_load_tokens(a, j));
    return this.x.sr_token_count();
  }

  // loopbackListener: the host listens on loopback (never the Worker), so local page origins pass.
  setPolicy({
    generation = "",
    origins = "",
    checkBearer = true,
    bareGet405 = false,
    maxBody = 0,
    loopbackListener = false,
  } = {}) {
    const [g, o] = this.write(enc.encode(generation), enc.encode(origins));
    this.check(
      this.x.sr_set_policy(g, o, checkBearer ? 1 : 0, bareGet405 ? 1 : 0, maxBody >>> 0, loopbackListener ? 1 : 0)
    );
    this.maxBody = maxBody > 0 ? maxBody : 4 * 1024 * 1024;
  }

  // req: {method, path, headers, digest?, body_too_large?, mcp_header_repeated?, body?: string|bytes,
  // body_hex?}. headers: a Headers object or a plain object (any case); only HEADER_NAMES are sent.
  // Returns the decision object (see src/core/describe.h). A Worker that streams bodies should
  // check Content-Length itself and pass body_too_large instead of reading an oversized body.
  classify(req) {
    const desc = {
      method: req.method,
      path: req.path,
      headers: pickHeaders(req.headers),
    };
    if (req.digest !== undefined) desc.digest = req.digest;
    if (req.body_too_large !== undefined) desc.body_too_large = !!req.body_too_large;
    if (req.mcp_header_repeated !== undefined) desc.mcp_header_repeated = !!req.mcp_header_repeated;
    let body = req.body_hex !== undefined ? hexToBytes(req.body_hex) : bytesOf(req.body);
    // A body over the limit is never copied in: the core answers 413 from the flag alone.
    if (body.length > this.maxBody) {
      desc.body_too_large = true;
      body = new Uint8Array(0);
    }
    const [r, b] = this.write(enc.encode(JSON.stringify(desc)), body);
    this.check(this.x.sr_classify_json(r, b));
    return JSON.parse(this.output());
  }

  // The token in an Authorization value, or null when it is not a usable Bearer credential.
  parseBearer(value) {
    const bytes = enc.encode(value);
    this.write(bytes);
    const n = this.x.sr_parse_bearer(bytes.length);
    if (n < 0) return null;
    const off = this.x.sr_bearer_offset();
    return dec.decode(bytes.subarray(off, off + n));
  }

  // The /health document as text, from the host-owned fields (see src/core/describe.h).
  healthText(input = {}) {
    const [n] = this.write(enc.encode(JSON.stringify(input)));
    this.check(this.x.sr_health_json(n));
    return this.output();
  }

  health(input = {}) {
    return JSON.parse(this.healthText(input));
  }

  // The judgement of an opened edge-session plaintext (see src/core/session.h).
  sessionJudge(input) {
    const [n] = this.write(enc.encode(JSON.stringify(input)));
    this.check(this.x.sr_session_judge(n));
    return JSON.parse(this.output());
  }

  // The settings of `serena-remote run` among `settings` ({NAME: "value"}), checked with run's own
  // rules (src/core/runcfg.h): {forward: [names to pass to a container], errors: [messages],
  // persistence: "disabled"|"ok"|"degraded", persistence_missing: "NAME"|""}.
  runSettings(settings) {
    const strings = {};
    for (const [k, v] of Object.entries(settings)) if (typeof v === "string") strings[k] = v;
    const [n] = this.write(enc.encode(JSON.stringify(strings)));
    this.check(this.x.sr_run_settings_check(n));
    return JSON.parse(this.output());
  }

  // ---- an external identity provider's JWTs (docs/oauth.md "External identity provider") ----

  // Checks the settings with serve's rules and sets them up (loaded keys are dropped):
  // {metadata: the RFC 9728 document, skew: seconds, unmapped: [map names no loaded token has]}.
  idpSetup({ issuer = "", jwksUrl = "", claim = "", claimMap = "", publicUrl = "", clockSkew = "", builtin = false } = {}) {
    const lens = this.write(...[issuer, jwksUrl, claim, claimMap, publicUrl, clockSkew].map((v) => enc.encode(v)));
    this.check(this.x.sr_idp_setup(...lens, builtin ? 1 : 0));
    return JSON.parse(this.output());
  }

  // The jwks_uri of the issuer's metadata document (text), whose issuer must be the configured one.
  idpDiscovered(doc) {
    const [n] = this.write(bytesOf(doc));
    this.check(this.x.sr_idp_discovered(n));
    return this.output();
  }

  // Replaces the keys with a JWKS's usable ones (throws and keeps them when it is refused):
  // {keys: [public JWKs for WebCrypto, in the order sr_idp_judge names them], skipped}.
  idpJwks(doc) {
    const [n] = this.write(bytesOf(doc));
    const count = this.check(this.x.sr_idp_jwks(n));
    const { skipped } = JSON.parse(this.output());
    const keys = [];
    for (let i = 0; i < count; i++) {
      this.check(this.x.sr_idp_jwk(i));
      keys.push(JSON.parse(this.output()));
    }
    return { keys, skipped };
  }

  // Header and claims of a Bearer by the rules (now: unix seconds): {jwt: false} when it is not
  // shaped like a JWT, else {jwt: true, alg, keys: [indices that fit its alg and kid],
  // signing_len, sig: the signature's bytes}. Throws the reason of a refusal (never the token).
  idpJudge(token, now) {
    const [n] = this.write(enc.encode(token));
    this.check(this.x.sr_idp_judge(n, now >>> 0));
    const j = JSON.parse(this.output());
    if (j.jwt) j.sig = hexToBytes(j.sig);
    return j;
  }

  // The static token a verified JWT stands for: {name, digest: hex}. Throws the reason.
  idpResolve(token) {
    const [n] = this.write(enc.encode(token));
    this.check(this.x.sr_idp_resolve(n));
    return JSON.parse(this.output());
  }
}
