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
 *   sr_abi_version()            -> 2 (2: sr_set_policy took loopback_listener; requests and
 *                               decisions gained the MCP 2026-07-28 fields)
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
 */
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/auth.h"
#include "core/classify.h"
#include "core/describe.h"
#include "core/health.h"
#include "core/mem.h"
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
#define SR_WASM_ABI       2

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
