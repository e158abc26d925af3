/*
 * The core.wasm ABI: how the Cloudflare Worker calls the C core.
 *
 * WebAssembly and JavaScript share only linear memory and numbers, so every
 * call passes bytes through two static buffers: the host writes its input at
 * sr_buf(n), calls a function with lengths, and reads the answer (JSON, or an
 * English error message when the function returned -1) from
 * sr_out_ptr()/sr_out_len(). Static arenas are fine here because a wasm
 * instance is single-threaded; the native core itself keeps no state.
 * worker/core-abi.mjs is the one JavaScript binding of this ABI.
 *
 * Exports (all lengths in bytes; every function returns -1 on error with the
 * message in the output buffer):
 *   sr_abi_version()            -> 3 (2: sr_set_policy took loopback_listener; requests and
 *                               decisions gained the MCP 2026-07-28 fields; 3: the sr_idp_*
 *                               exports)
 *   sr_buf(n)                   -> pointer to the input buffer, or 0 when n > sr_buf_cap()
 *   sr_buf_cap()                -> input capacity (4 MiB + 64 KiB)
 *   sr_out_ptr(), sr_out_len()  -> the last output
 *   sr_load_tokens(a, j)        input: API_TOKEN (a bytes) then API_TOKENS_JSON (j bytes); either
 *                               may be 0. Replaces the table only on success -> 0 | -1.
 *   sr_set_policy(g, o, check_bearer, bare_get_405, max_body, loopback_listener)
 *                               input: generation (g bytes; 0 = "gen-1") then ALLOWED_ORIGINS
 *                               (o bytes); max_body 0 = 4 MiB, at most 4 MiB; flags 0 or 1
 *                               -> 0 | -1.
 *   sr_classify_json(r, b)      input: a request description (r bytes of JSON, see
 *                               core/describe.h) followed by the raw body (b bytes)
 *                               -> length of the decision JSON in the output | -1.
 *   sr_parse_bearer(n)          input: an Authorization value -> token length | -1;
 *                               sr_bearer_offset() -> where the token starts in the input.
 *   sr_health_json(n)           input: health input JSON (core/describe.h) -> length of the
 *                               /health document in the output | -1. Version, generation,
 *                               strategy and token count come from the loaded state.
 *   sr_token_count()            -> entries in the loaded table.
 *   sr_session_judge(n)         input: an opened session plaintext described in JSON
 *                               (core/session.h) -> length of the judgement in the output | -1.
 *   sr_run_settings_check(n)    input: {"NAME": "value", ...} (the Worker's settings) -> length
 *                               of {"forward","errors","persistence","persistence_missing"}
 *                               (core/runcfg.h) in the output | -1.
 *
 * An external identity provider's JWTs (core/jwt.h, docs/oauth.md "External identity provider";
 * the host fetches documents and verifies signatures with WebCrypto):
 *   sr_idp_setup(i, j, c, m, p, s, builtin)
 *                               input: SERENA_REMOTE_OAUTH_ISSUER (i bytes), _JWKS_URL (j),
 *                               _CLAIM (c; 0 = "sub"), _CLAIM_MAP (m), SERENA_REMOTE_PUBLIC_URL
 *                               (p), _CLOCK_SKEW (s; 0 = "60s"); builtin: OAUTH_ENABLED. Checked
 *                               with serve's rules; keys are dropped -> length of
 *                               {"metadata": RFC 9728 document, "skew": seconds, "unmapped":
 *                               [map names no loaded token has]} | -1.
 *   sr_idp_discovered(n)        input: the issuer's metadata document -> length of its jwks_uri
 *                               (checked; its issuer must be the configured one) | -1.
 *   sr_idp_jwks(n)              input: a JWKS -> number of usable keys, which replace the loaded
 *                               ones; output {"keys": n, "skipped": m} | -1 (keys kept).
 *   sr_idp_jwk(i)               -> length of key i as a public JWK for WebCrypto | -1.
 *   sr_idp_judge(n, now)        input: a Bearer token; now: unix seconds -> length of
 *                               {"jwt": false} (not shaped like a JWT) or {"jwt": true, "alg",
 *                               "keys": [indices of loaded keys that fit its alg and kid],
 *                               "signing_len", "sig": hex} once the header and claims pass the
 *                               rules | -1 with the reason (never the token).
 *   sr_idp_resolve(n)           input: the same token (its signature verified) -> length of
 *                               {"name", "digest": hex} of the static token its claim names
 *                               | -1 with the reason.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/auth.h"
#include "core/classify.h"
#include "core/describe.h"
#include "core/duration.h"
#include "core/health.h"
#include "core/jwt.h"
#include "core/mem.h"
#include "core/oauth.h"
#include "core/runcfg.h"
#include "core/session.h"
#include "core/text.h"
#include "core/tokens.h"

#ifndef SR_VERSION
#define SR_VERSION "0.0.0"
#endif

#define SR_EXPORT(name) __attribute__((export_name(name), visibility("default")))

#define SR_WASM_IN_MAX    (SR_MAX_BODY_DEFAULT + 64u * 1024u)
#define SR_WASM_OUT_MAX   (16u * 1024u)
#define SR_WASM_DESC_TOKS 1024u
#define SR_WASM_ABI       3

static char in_buf[SR_WASM_IN_MAX];
static char out_buf[SR_WASM_OUT_MAX];
static uint32_t out_len;
static struct sr_json_tok body_toks[SR_JSON_MAX_TOKENS];
static struct sr_json_tok desc_toks[SR_WASM_DESC_TOKS];
static struct sr_tokens table, staging;
static struct sr_policy policy;
static bool policy_ready;
static struct sr_request_desc rdesc;
static struct sr_decision decision;
static struct sr_health_desc hdesc;
static uint32_t bearer_off;

/* The policy borrows the live table; set it up on first use. */
static void ensure_policy(void)
{
    if (!policy_ready) {
        sr_tokens_init(&table);
        sr_policy_init(&policy, &table);
        policy_ready = true;
    }
}

static int32_t fail(const char *msg)
{
    struct sr_text t;

    sr_text_init(&t, out_buf, sizeof(out_buf));
    sr_text_put(&t, msg);
    out_len = (uint32_t)t.len;
    return -1;
}

SR_EXPORT("sr_abi_version") int32_t sr_abi_version(void);
int32_t sr_abi_version(void)
{
    return SR_WASM_ABI;
}

SR_EXPORT("sr_buf") char *sr_buf(uint32_t n);
char *sr_buf(uint32_t n)
{
    return n <= sizeof(in_buf) ? in_buf : NULL;
}

SR_EXPORT("sr_buf_cap") uint32_t sr_buf_cap(void);
uint32_t sr_buf_cap(void)
{
    return (uint32_t)sizeof(in_buf);
}

SR_EXPORT("sr_out_ptr") char *sr_out_ptr(void);
char *sr_out_ptr(void)
{
    return out_buf;
}

SR_EXPORT("sr_out_len") uint32_t sr_out_len(void);
uint32_t sr_out_len(void)
{
    return out_len;
}

SR_EXPORT("sr_token_count") uint32_t sr_token_count(void);
uint32_t sr_token_count(void)
{
    ensure_policy();
    return table.count;
}

SR_EXPORT("sr_load_tokens") int32_t sr_load_tokens(uint32_t api_len, uint32_t json_len);
int32_t sr_load_tokens(uint32_t api_len, uint32_t json_len)
{
    struct sr_core_err err;
    int rc = 0;

    ensure_policy();
    out_len = 0;
    if (api_len > sizeof(in_buf) || json_len > sizeof(in_buf) - api_len)
        return fail("sr_load_tokens: input larger than the buffer");
    sr_tokens_init(&staging);
    err.msg[0] = '\0';
    if (api_len > 0)
        rc = sr_tokens_add_singleton(&staging, in_buf, api_len, &err);
    if (rc == 0 && json_len > 0)
        rc = sr_tokens_add_json(&staging, in_buf + api_len, json_len, "API_TOKENS_JSON", body_toks,
                                SR_JSON_MAX_TOKENS, &err);
    /* The input held plaintext tokens: wipe it whatever happened. */
    sr_mem_set(in_buf, 0, (size_t)api_len + json_len);
    if (rc != 0) {
        sr_tokens_init(&staging);
        return fail(err.msg);
    }
    sr_mem_copy(&table, &staging, sizeof(table));
    sr_tokens_init(&staging);
    return 0;
}

SR_EXPORT("sr_set_policy")
int32_t sr_set_policy(uint32_t gen_len, uint32_t origins_len, uint32_t check_bearer,
                      uint32_t bare_get_405, uint32_t max_body, uint32_t loopback_listener);
int32_t sr_set_policy(uint32_t gen_len, uint32_t origins_len, uint32_t check_bearer,
                      uint32_t bare_get_405, uint32_t max_body, uint32_t loopback_listener)
{
    struct sr_policy next;
    struct sr_core_err err;

    ensure_policy();
    out_len = 0;
    if (gen_len > sizeof(in_buf) || origins_len > sizeof(in_buf) - gen_len)
        return fail("sr_set_policy: input larger than the buffer");
    sr_policy_init(&next, &table);
    err.msg[0] = '\0';
    if (sr_policy_set_generation(&next, in_buf, gen_len, &err) != 0)
        return fail(err.msg);
    if (sr_policy_set_origins(&next, in_buf + gen_len, origins_len, &err) != 0)
        return fail(err.msg);
    if (max_body > SR_MAX_BODY_DEFAULT)
        return fail("max_body: core.wasm accepts bodies of at most 4 MiB");
    next.max_body = max_body == 0 ? SR_MAX_BODY_DEFAULT : max_body;
    next.check_bearer = check_bearer != 0;
    next.bare_get_405 = bare_get_405 != 0;
    next.loopback_listener = loopback_listener != 0;
    sr_mem_copy(&policy, &next, sizeof(policy));
    return 0;
}

SR_EXPORT("sr_classify_json") int32_t sr_classify_json(uint32_t req_len, uint32_t body_len);
int32_t sr_classify_json(uint32_t req_len, uint32_t body_len)
{
    struct sr_core_err err;
    int len;

    ensure_policy();
    out_len = 0;
    if (req_len > sizeof(in_buf) || body_len > sizeof(in_buf) - req_len)
        return fail("sr_classify_json: input larger than the buffer");
    err.msg[0] = '\0';
    if (sr_describe_request(&rdesc, in_buf, req_len, desc_toks, SR_WASM_DESC_TOKS, &err) != 0) {
        sr_mem_set(in_buf, 0, req_len);
        return fail(err.msg);
    }
    /* The description may hold an Authorization header; it is not needed any more. */
    sr_mem_set(in_buf, 0, req_len);
    rdesc.req.body = in_buf + req_len;
    rdesc.req.body_len = body_len;
    sr_classify(&policy, &rdesc.req, body_toks, SR_JSON_MAX_TOKENS, &decision);
    len = sr_describe_decision(&decision, out_buf, sizeof(out_buf));
    if (len < 0)
        return fail("sr_classify_json: decision larger than the output buffer");
    out_len = (uint32_t)len;
    return len;
}

SR_EXPORT("sr_parse_bearer") int32_t sr_parse_bearer(uint32_t n);
int32_t sr_parse_bearer(uint32_t n)
{
    const char *tok = NULL;
    size_t tl = 0;

    out_len = 0;
    if (n > sizeof(in_buf) || sr_auth_parse_bearer(in_buf, n, &tok, &tl) != 0)
        return -1;
    bearer_off = (uint32_t)(tok - in_buf);
    return (int32_t)tl;
}

SR_EXPORT("sr_bearer_offset") uint32_t sr_bearer_offset(void);
uint32_t sr_bearer_offset(void)
{
    return bearer_off;
}

SR_EXPORT("sr_health_json") int32_t sr_health_json(uint32_t n);
int32_t sr_health_json(uint32_t n)
{
    struct sr_core_err err;
    int len;

    ensure_policy();
    out_len = 0;
    if (n > sizeof(in_buf))
        return fail("sr_health_json: input larger than the buffer");
    err.msg[0] = '\0';
    if (sr_describe_health(&hdesc, in_buf, n, desc_toks, SR_WASM_DESC_TOKS, &err) != 0)
        return fail(err.msg);
    hdesc.h.version = SR_VERSION;
    hdesc.h.generation = policy.generation;
    hdesc.h.strategy = sr_tokens_strategy(&table);
    hdesc.h.token_count = table.count;
    len = sr_health_write(&hdesc.h, out_buf, sizeof(out_buf));
    if (len < 0)
        return fail("sr_health_json: document larger than the output buffer");
    out_len = (uint32_t)len;
    return len;
}

SR_EXPORT("sr_session_judge") int32_t sr_session_judge(uint32_t n);
int32_t sr_session_judge(uint32_t n)
{
    int len;

    out_len = 0;
    if (n > sizeof(in_buf))
        return fail("sr_session_judge: input larger than the buffer");
    len = sr_session_judge_json(in_buf, n, body_toks, SR_JSON_MAX_TOKENS, out_buf, sizeof(out_buf));
    if (len < 0)
        return fail("sr_session_judge: not a session description");
    out_len = (uint32_t)len;
    return len;
}

/* One decoded setting value at a time (SERENA_BACKEND_CMD may be long). */
static char rc_scratch[16u * 1024u];

SR_EXPORT("sr_run_settings_check") int32_t sr_run_settings_check(uint32_t n);
int32_t sr_run_settings_check(uint32_t n)
{
    struct sr_core_err err;
    int len;

    out_len = 0;
    if (n > sizeof(in_buf))
        return fail("sr_run_settings_check: input larger than the buffer");
    err.msg[0] = '\0';
    len = sr_rc_check_json(in_buf, n, desc_toks, SR_WASM_DESC_TOKS, rc_scratch, sizeof(rc_scratch),
                           out_buf, sizeof(out_buf), &err);
    if (len < 0)
        return fail(err.msg);
    out_len = (uint32_t)len;
    return len;
}

/* ---- an external identity provider's JWTs ------------------------------------------------- */

static struct {
    bool ready;
    char issuer[SR_OAUTH_URI_MAX + 1];
    char claim[SR_JWT_CLAIM_MAX + 1];
    char resource[SR_OAUTH_PUBLIC_URL_MAX + 8];
    uint32_t skew;
    struct sr_claim_map map;
    struct sr_jwks keys;
} idp;
static struct sr_claim_map idp_map_next;
static struct sr_jwks idp_jwks_next;
static struct sr_jwt idp_jwt;
static struct sr_json_tok idp_toks[SR_JWKS_TOKS];
static char idp_doc[4096];

/* s[0..n) copied NUL-terminated into out[cap]; false when it does not fit or holds a NUL. */
static bool idp_copy(char *out, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0')
            return false;
    sr_mem_copy(out, s, n);
    out[n] = '\0';
    return true;
}

static int32_t idp_fail2(const char *a, const char *b)
{
    struct sr_text t;

    sr_text_init(&t, out_buf, sizeof(out_buf));
    sr_text_put(&t, a);
    sr_text_put(&t, b);
    out_len = (uint32_t)t.len;
    return -1;
}

static int32_t idp_out(struct sr_jw *w)
{
    size_t n = 0;

    if (sr_jw_finish(w, &n) != 0)
        return fail("sr_idp: answer larger than the output buffer");
    out_len = (uint32_t)n;
    return (int32_t)n;
}

SR_EXPORT("sr_idp_setup")
int32_t sr_idp_setup(uint32_t il, uint32_t jl, uint32_t cl, uint32_t ml, uint32_t pl, uint32_t sl,
                     uint32_t builtin);
int32_t sr_idp_setup(uint32_t il, uint32_t jl, uint32_t cl, uint32_t ml, uint32_t pl, uint32_t sl,
                     uint32_t builtin)
{
    const char *why = "";
    const char *iss = in_buf, *jwks = iss + il, *claim = jwks + jl, *map = claim + cl;
    const char *pub = map + ml, *skew = pub + pl;
    char pubz[SR_OAUTH_PUBLIC_URL_MAX + 1];
    uint32_t sec = SR_IDP_SKEW_DEFAULT;
    struct sr_jw w;

    ensure_policy();
    out_len = 0;
    idp.ready = false;
    idp.keys.n = 0;
    if ((uint64_t)il + jl + cl + ml + pl + sl > sizeof(in_buf))
        return fail("sr_idp_setup: input larger than the buffer");
    if (sl > 0 && (sr_duration_parse(skew, sl, &sec) < 0 || sec > SR_IDP_SKEW_MAX))
        return fail("SERENA_REMOTE_OAUTH_CLOCK_SKEW is invalid: expected a duration from 0s to 5m");
    if (sr_idp_issuer_check(iss, il, &why) < 0 ||
        !idp_copy(idp.issuer, sizeof(idp.issuer), iss, il))
        return idp_fail2("SERENA_REMOTE_OAUTH_ISSUER is invalid: ", why);
    if (jl > 0 && sr_idp_issuer_check(jwks, jl, &why) < 0)
        return idp_fail2("SERENA_REMOTE_OAUTH_JWKS_URL is invalid: ", why);
    if (cl == 0)
        claim = "sub", cl = 3;
    if (!idp_copy(idp.claim, sizeof(idp.claim), claim, cl))
        return fail("SERENA_REMOTE_OAUTH_CLAIM is invalid: expected a claim name such as sub, "
                    "email or groups");
    idp_map_next.n = 0;
    if (ml > 0 && sr_claim_map_parse(map, ml, idp_toks, SR_JWKS_TOKS, &idp_map_next, &why) < 0)
        return idp_fail2("SERENA_REMOTE_OAUTH_CLAIM_MAP is invalid: ", why);
    if (pl == 0 || sr_oauth_public_url_check(pub, pl, &why) < 0 ||
        !idp_copy(pubz, sizeof(pubz), pub, pl))
        return fail("SERENA_REMOTE_OAUTH_ISSUER needs SERENA_REMOTE_PUBLIC_URL (https://<host>, "
                    "no path): JWT access tokens must name <public-url>/mcp in aud");
    sr_mem_copy(&idp.map, &idp_map_next, sizeof(idp.map));
    sr_mem_copy(idp.resource, pubz, pl);
    sr_mem_copy(idp.resource + pl, "/mcp", 5);
    idp.skew = sec;
    int n =
        sr_oauth_resource_metadata_with(pubz, idp.issuer, builtin != 0, idp_doc, sizeof(idp_doc));
    if (n < 0)
        return fail("sr_idp_setup: metadata larger than its buffer");
    sr_jw_init(&w, out_buf, sizeof(out_buf));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "metadata");
    sr_jw_raw(&w, idp_doc, (size_t)n);
    sr_jw_key(&w, "skew");
    sr_jw_int(&w, sec);
    sr_jw_key(&w, "unmapped");
    sr_jw_arr_begin(&w);
    for (uint32_t m = 0; m < idp.map.n; m++) {
        bool found = false;
        for (uint32_t i = 0; i < table.count && !found; i++)
            found = sr_str_len(table.e[i].name) == sr_str_len(idp.map.e[m].name) &&
                    sr_mem_eq(table.e[i].name, idp.map.e[m].name, sr_str_len(table.e[i].name));
        if (!found)
            sr_jw_cstr(&w, idp.map.e[m].name);
    }
    sr_jw_arr_end(&w);
    sr_jw_obj_end(&w);
    idp.ready = true;
    return idp_out(&w);
}

SR_EXPORT("sr_idp_discovered") int32_t sr_idp_discovered(uint32_t n);
int32_t sr_idp_discovered(uint32_t n)
{
    struct sr_json_doc d;
    size_t len = 0;
    const char *why = "";

    out_len = 0;
    if (!idp.ready)
        return fail("sr_idp_discovered: no issuer is set up");
    if (n > sizeof(in_buf))
        return fail("sr_idp_discovered: input larger than the buffer");
    if (sr_json_parse(&d, in_buf, n, idp_toks, SR_JWKS_TOKS, NULL) != 0 ||
        d.toks[0].type != SR_JSON_OBJECT)
        return fail("not a JSON object");
    int32_t iss = sr_json_obj_get(&d, 0, "issuer", 6);
    if (iss < 0 || d.toks[iss].type != SR_JSON_STRING ||
        !sr_json_str_eq(&d, (uint32_t)iss, idp.issuer, sr_str_len(idp.issuer)))
        return fail("its issuer is not the configured issuer");
    int32_t ju = sr_json_obj_get(&d, 0, "jwks_uri", 8);
    if (ju < 0 || d.toks[ju].type != SR_JSON_STRING ||
        sr_json_str_decode(&d, (uint32_t)ju, out_buf, SR_OAUTH_URI_MAX, &len) != 0)
        return fail("it has no jwks_uri");
    out_buf[len] = '\0';
    if (sr_str_len(out_buf) != len || sr_idp_issuer_check(out_buf, len, &why) != 0) {
        out_len = 0;
        return idp_fail2("its jwks_uri is refused: ", why);
    }
    out_len = (uint32_t)len;
    return (int32_t)len;
}

SR_EXPORT("sr_idp_jwks") int32_t sr_idp_jwks(uint32_t n);
int32_t sr_idp_jwks(uint32_t n)
{
    const char *why = "";
    struct sr_jw w;

    out_len = 0;
    if (!idp.ready)
        return fail("sr_idp_jwks: no issuer is set up");
    if (n > SR_JWKS_MAX)
        return fail("larger than 64 KiB");
    if (sr_jwks_parse(in_buf, n, idp_toks, SR_JWKS_TOKS, &idp_jwks_next, &why) != 0)
        return fail(why);
    sr_mem_copy(&idp.keys, &idp_jwks_next, sizeof(idp.keys));
    sr_jw_init(&w, out_buf, sizeof(out_buf));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "keys");
    sr_jw_int(&w, idp.keys.n);
    sr_jw_key(&w, "skipped");
    sr_jw_int(&w, idp.keys.skipped);
    sr_jw_obj_end(&w);
    if (idp_out(&w) < 0)
        return -1;
    return (int32_t)idp.keys.n;
}

static void jw_b64(struct sr_jw *w, const char *key, const uint8_t *b, size_t n)
{
    static char enc[((SR_JWK_RSA_N_MAX + 2) / 3) * 4];

    sr_jw_key(w, key);
    sr_jw_str(w, enc, sr_base64url_encode(b, n, enc));
}

SR_EXPORT("sr_idp_jwk") int32_t sr_idp_jwk(uint32_t i);
int32_t sr_idp_jwk(uint32_t i)
{
    struct sr_jw w;

    out_len = 0;
    if (!idp.ready || i >= idp.keys.n)
        return fail("sr_idp_jwk: no such key");
    const struct sr_jwk *k = &idp.keys.k[i];
    sr_jw_init(&w, out_buf, sizeof(out_buf));
    sr_jw_obj_begin(&w);
    if (k->kty == SR_JWK_RSA) {
        sr_jw_key(&w, "kty");
        sr_jw_cstr(&w, "RSA");
        jw_b64(&w, "n", k->n, k->n_len);
        jw_b64(&w, "e", k->e, k->e_len);
    } else {
        sr_jw_key(&w, "kty");
        sr_jw_cstr(&w, "EC");
        sr_jw_key(&w, "crv");
        sr_jw_cstr(&w, "P-256");
        jw_b64(&w, "x", k->x, sizeof(k->x));
        jw_b64(&w, "y", k->y, sizeof(k->y));
    }
    sr_jw_obj_end(&w);
    return idp_out(&w);
}

static const char *alg_name(int alg)
{
    return alg == SR_JWT_RS256 ? "RS256" : alg == SR_JWT_ES256 ? "ES256" : "none";
}

SR_EXPORT("sr_idp_judge") int32_t sr_idp_judge(uint32_t n, uint32_t now);
int32_t sr_idp_judge(uint32_t n, uint32_t now)
{
    static char sig_hex[2 * SR_JWT_SIG_MAX];
    const char *why = "";
    struct sr_jw w;
    struct sr_jwt *j = &idp_jwt;
    int rc;

    out_len = 0;
    if (!idp.ready)
        return fail("sr_idp_judge: no issuer is set up");
    if (n > sizeof(in_buf))
        return fail("sr_idp_judge: input larger than the buffer");
    sr_jw_init(&w, out_buf, sizeof(out_buf));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "jwt");
    if (!sr_jwt_shaped(in_buf, n)) {
        sr_mem_set(in_buf, 0, n);
        sr_jw_bool(&w, false);
        sr_jw_obj_end(&w);
        return idp_out(&w);
    }
    rc = sr_jwt_parse(in_buf, n, idp.claim, idp_toks, SR_JWT_TOKS, j, &why);
    if (rc == 0)
        rc = sr_jwt_check(j, idp.issuer, idp.resource, (int64_t)now, idp.skew, &why);
    sr_mem_set(in_buf, 0, n);
    if (rc != 0)
        return fail(why);
    sr_jw_bool(&w, true);
    sr_jw_key(&w, "alg");
    sr_jw_cstr(&w, alg_name(j->alg));
    sr_jw_key(&w, "keys");
    sr_jw_arr_begin(&w);
    for (uint32_t i = 0; i < idp.keys.n; i++) {
        const struct sr_jwk *k = &idp.keys.k[i];
        if (!sr_jwk_fits(k, j->alg))
            continue;
        if (j->has_kid && (!k->has_kid || sr_str_len(k->kid) != sr_str_len(j->kid) ||
                           !sr_mem_eq(k->kid, j->kid, sr_str_len(j->kid))))
            continue;
        sr_jw_int(&w, i);
    }
    sr_jw_arr_end(&w);
    sr_jw_key(&w, "signing_len");
    sr_jw_int(&w, (int64_t)j->signing_len);
    sr_hex_encode(j->sig, j->sig_len, sig_hex);
    sr_jw_key(&w, "sig");
    sr_jw_str(&w, sig_hex, 2 * j->sig_len);
    sr_jw_obj_end(&w);
    return idp_out(&w);
}

SR_EXPORT("sr_idp_resolve") int32_t sr_idp_resolve(uint32_t n);
int32_t sr_idp_resolve(uint32_t n)
{
    char hex[2 * SR_SHA256_LEN];
    const char *why = "";
    struct sr_jw w;
    struct sr_jwt *j = &idp_jwt;
    int32_t idx = -1;

    ensure_policy();
    out_len = 0;
    if (!idp.ready)
        return fail("sr_idp_resolve: no issuer is set up");
    if (n > sizeof(in_buf))
        return fail("sr_idp_resolve: input larger than the buffer");
    if (sr_jwt_parse(in_buf, n, idp.claim, idp_toks, SR_JWT_TOKS, j, &why) == 0)
        idx = sr_jwt_resolve(j, &idp.map, &table, &why);
    sr_mem_set(in_buf, 0, n);
    if (idx < 0)
        return fail(why);
    sr_hex_encode(table.e[idx].digest, SR_SHA256_LEN, hex);
    sr_jw_init(&w, out_buf, sizeof(out_buf));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "name");
    sr_jw_cstr(&w, table.e[idx].name);
    sr_jw_key(&w, "digest");
    sr_jw_str(&w, hex, sizeof(hex));
    sr_jw_obj_end(&w);
    return idp_out(&w);
}
