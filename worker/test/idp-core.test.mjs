// core.wasm's identity provider exports (sr_idp_*, through core-abi.mjs), in Node: the rules the
// Worker takes from src/core/jwt.c for what the HTTP tests (oidc.test.mjs) do not reach, and the
// public keys core.wasm hands out importing into WebCrypto and verifying tokens signed here.
// The wasm is the one wrangler bundles (CORE_WASM, else build/core.wasm; see scripts/copy-wasm.mjs).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { generateKeyPairSync, sign, webcrypto } from "node:crypto";
import { join, resolve } from "node:path";
import { Core } from "../core-abi.mjs";
import { ROOT } from "./helpers.mjs";

const core = await Core.load(readFileSync(process.env.CORE_WASM ? resolve(process.env.CORE_WASM) : join(ROOT, "build", "core.wasm")));
core.loadTokens({ tokensJson: JSON.stringify({ alice: "alice-idp-core-0123456789abcdef", bob: "bob-idp-core-0123456789abcdef00" }) });

const ISS = "https://login.example.com/realms/eng";
const PUB = "https://mcp.example.com";
const NOW = 1_900_000_000;
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const pub = (k, extra) => ({ ...k.publicKey.export({ format: "jwk" }), ...extra });
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");

function jwt(header, claims, key = rsa) {
  const si = `${b64(header)}.${b64({ iss: ISS, aud: `${PUB}/mcp`, exp: NOW + 300, sub: "alice", ...claims })}`;
  const s = header.alg === "ES256" ? sign("sha256", Buffer.from(si), { key: key.privateKey, dsaEncoding: "ieee-p1363" }) : sign("sha256", Buffer.from(si), key.privateKey);
  return `${si}.${s.toString("base64url")}`;
}

function setup(opts = {}) {
  return core.idpSetup({ issuer: ISS, publicUrl: PUB, ...opts });
}

function refused(fn, re) {
  assert.throws(fn, (e) => re.test(e.message), re.toString());
}

test("settings: serve's rules and messages; the metadata names the issuer, then the built-in server with OAUTH_ENABLED", () => {
  assert.deepEqual(setup().metadata.authorization_servers, [ISS]);
  assert.deepEqual(setup({ builtin: true }).metadata.authorization_servers, [ISS, PUB]);
  assert.equal(setup().metadata.resource, `${PUB}/mcp`);
  assert.equal(setup().skew, 60);
  assert.equal(setup({ clockSkew: "5m" }).skew, 300);
  assert.deepEqual(setup({ claimMap: '{"a@x":"alice","b@x":"carol"}' }).unmapped, ["carol"]);
  refused(() => setup({ clockSkew: "301s" }), /SERENA_REMOTE_OAUTH_CLOCK_SKEW is invalid/);
  refused(() => setup({ issuer: "http://login.example.com" }), /SERENA_REMOTE_OAUTH_ISSUER is invalid: http is allowed only on a loopback host/);
  refused(() => setup({ issuer: `${ISS}?x=1` }), /SERENA_REMOTE_OAUTH_ISSUER is invalid/);
  refused(() => setup({ jwksUrl: "ftp://x/jwks" }), /SERENA_REMOTE_OAUTH_JWKS_URL is invalid/);
  refused(() => setup({ claimMap: '{"a":"no spaces"}' }), /SERENA_REMOTE_OAUTH_CLAIM_MAP is invalid/);
  refused(() => setup({ publicUrl: "" }), /needs SERENA_REMOTE_PUBLIC_URL/);
  refused(() => setup({ publicUrl: `${PUB}/path` }), /needs SERENA_REMOTE_PUBLIC_URL/);
});

test("discovery: the metadata's issuer must be the configured one and its jwks_uri follow the issuer rules", () => {
  setup();
  assert.equal(core.idpDiscovered(JSON.stringify({ issuer: ISS, jwks_uri: `${ISS}/certs` })), `${ISS}/certs`);
  refused(() => core.idpDiscovered(JSON.stringify({ issuer: `${ISS}/`, jwks_uri: `${ISS}/certs` })), /its issuer is not the configured issuer/);
  refused(() => core.idpDiscovered(JSON.stringify({ issuer: ISS })), /no jwks_uri/);
  refused(() => core.idpDiscovered(JSON.stringify({ issuer: ISS, jwks_uri: "http://evil.example/certs" })), /jwks_uri is refused/);
  refused(() => core.idpDiscovered("[]"), /not a JSON object/);
});

test("the JWKS keeps RSA and P-256 signing keys only, in an order judge's indices name", () => {
  setup();
  const small = generateKeyPairSync("rsa", { modulusLength: 1024 });
  const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
  const r = core.idpJwks(
    JSON.stringify({
      keys: [
        { kty: "oct", k: "c2VjcmV0", kid: "hs" },
        pub(small, { kid: "small" }),
        pub(p384, { kid: "p384" }),
        pub(rsa, { kid: "enc", use: "enc" }),
        pub(ec, { kid: "ec-1", alg: "ES256" }),
        pub(rsa, { kid: "rsa-1" }),
      ],
    })
  );
  assert.equal(r.skipped, 4);
  assert.deepEqual(r.keys.map((k) => k.kty), ["EC", "RSA"]);
  assert.deepEqual(core.idpJudge(jwt({ alg: "ES256", kid: "ec-1" }, {}, ec), NOW).keys, [0]);
  assert.deepEqual(core.idpJudge(jwt({ alg: "RS256", kid: "rsa-1" }, {}), NOW).keys, [1]);
  // Without a kid every key that fits the alg; a kid the JWKS lacks, none; ES256 under the RSA kid, none.
  assert.deepEqual(core.idpJudge(jwt({ alg: "RS256" }, {}), NOW).keys, [1]);
  assert.deepEqual(core.idpJudge(jwt({ alg: "RS256", kid: "enc" }, {}), NOW).keys, []);
  assert.deepEqual(core.idpJudge(jwt({ alg: "ES256", kid: "rsa-1" }, {}, ec), NOW).keys, []);
  refused(() => core.idpJwks('{"nokeys":[]}'), /no keys array/);
  refused(() => core.idpJwks(JSON.stringify({ keys: [], pad: "x".repeat(65 * 1024) })), /larger than 64 KiB/);
});

test("the keys core.wasm hands out import into WebCrypto and verify what judge points at (RS256 and ES256)", async () => {
  setup();
  const { keys } = core.idpJwks(JSON.stringify({ keys: [pub(rsa, { kid: "r" }), pub(ec, { kid: "e" })] }));
  const params = { RSA: [{ name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, { name: "RSASSA-PKCS1-v1_5" }], EC: [{ name: "ECDSA", namedCurve: "P-256" }, { name: "ECDSA", hash: "SHA-256" }] };
  for (const [header, key] of [[{ alg: "RS256", kid: "r" }, rsa], [{ alg: "ES256", kid: "e" }, ec]]) {
    const t = jwt(header, {}, key);
    const j = core.idpJudge(t, NOW);
    assert.equal(j.jwt, true);
    assert.equal(j.keys.length, 1);
    const jwk = keys[j.keys[0]];
    const [imp, ver] = params[jwk.kty];
    const ck = await webcrypto.subtle.importKey("jwk", jwk, imp, false, ["verify"]);
    const data = new TextEncoder().encode(t.slice(0, j.signing_len));
    assert.equal(await webcrypto.subtle.verify(ver, ck, Buffer.from(j.sig), data), true);
    const bad = Buffer.from(j.sig);
    bad[5] ^= 1;
    assert.equal(await webcrypto.subtle.verify(ver, ck, bad, data), false);
  }
});

test("header and claim rules", () => {
  setup({ clockSkew: "0s" });
  core.idpJwks(JSON.stringify({ keys: [pub(rsa, { kid: "r" })] }));
  const ok = (h, c) => assert.equal(core.idpJudge(jwt({ alg: "RS256", kid: "r", ...h }, c), NOW).jwt, true);
  ok({ typ: "at+jwt" }, {});
  ok({ typ: "JWT" }, { aud: ["other", `${PUB}/mcp`] });
  ok({}, { nbf: NOW, iat: NOW });
  assert.deepEqual(core.idpJudge("not-a-jwt-at-all", NOW), { jwt: false });
  const no = (h, c, re) => refused(() => core.idpJudge(jwt({ alg: "RS256", kid: "r", ...h }, c), NOW), re);
  no({ typ: "JOSE" }, {}, /typ is not at\+jwt or JWT/);
  for (const k of ["jku", "jwk", "x5u", "x5c", "crit"]) no({ [k]: k === "crit" ? ["exp"] : "x" }, {}, /the header carries crit, jku, jwk, x5u or x5c/);
  no({ alg: "PS256" }, {}, /the alg is not RS256 or ES256/);
  no({}, { aud: "https://other.example/mcp" }, /aud does not name/);
  no({}, { iss: `${ISS}/` }, /iss is not the configured issuer/);
  no({}, { exp: undefined }, /no exp claim/);
  no({}, { exp: NOW }, /expired \(exp\)/);
  no({}, { nbf: NOW + 1 }, /not yet valid \(nbf\)/);
  no({}, { iat: NOW + 1 }, /issued in the future \(iat\)/);
  no({}, { exp: "soon" }, /not an integer/);
  // The skew widens each bound by as much and no more.
  setup({ clockSkew: "60s" });
  assert.equal(core.idpJudge(jwt({ alg: "RS256" }, { exp: NOW - 59 }), NOW).jwt, true);
  refused(() => core.idpJudge(jwt({ alg: "RS256" }, { exp: NOW - 60 }), NOW), /expired/);
  assert.equal(core.idpJudge(jwt({ alg: "RS256" }, { nbf: NOW + 60 }), NOW).jwt, true);
  refused(() => core.idpJudge(jwt({ alg: "RS256" }, { nbf: NOW + 61 }), NOW), /not yet valid/);
});

test("claim to token: the value itself, or only the map; an array names exactly one token", () => {
  const t = (claims) => jwt({ alg: "RS256" }, claims);
  setup();
  assert.equal(core.idpResolve(t({ sub: "bob" })).name, "bob");
  refused(() => core.idpResolve(t({ sub: "carol" })), /names no configured token/);
  setup({ claimMap: '{"bob@example.com":"bob"}', claim: "email" });
  assert.equal(core.idpResolve(t({ email: "bob@example.com" })).name, "bob");
  // With a map only the map counts, even for a value that is a token's name.
  refused(() => core.idpResolve(t({ email: "alice" })), /names no configured token/);
  refused(() => core.idpResolve(t({})), /lacks the mapped claim/);
  setup({ claim: "groups", claimMap: '{"team-a":"alice","team-b":"bob","team-a2":"alice"}' });
  assert.equal(core.idpResolve(t({ groups: ["x", "team-a", 3, "team-a2"] })).name, "alice");
  refused(() => core.idpResolve(t({ groups: ["team-a", "team-b"] })), /more than one token \(ambiguous\)/);
  refused(() => core.idpResolve(t({ groups: { a: 1 } })), /neither a string nor an array/);
  // The digest is the static token's, as core.wasm matches a Bearer.
  const d = core.idpResolve(t({ groups: ["team-b"] })).digest;
  const r = core.classify({ method: "GET", path: "/status", headers: { authorization: "Bearer x" }, digest: d });
  assert.equal(r.action, "status");
  assert.match(r.route, /:bob$/);
});
