/*
 * Unit tests for request classification (src/core/classify.c) and the JSON
 * descriptions core.wasm uses (src/core/describe.c). The shared vectors in
 * tests/vectors/ cover the decision table; these tests cover what vectors
 * cannot express: policy parsing, scratch and buffer limits, argument
 * checks, that every refusal body is valid JSON without a token name, and
 * the MCP 2026-07-28 edges: bytes a JSON vector cannot carry (NUL inside a
 * header), the Base64 Mcp-Name limit, repeated routing headers and which
 * listen addresses count as loopback.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cmd/config.h"
#include "core/classify.h"
#include "core/describe.h"
#include "core/errors.h"
#include "core/mem.h"
#include "http/util.h"

#define TOK_A "alpha-token-0123456789abcdef"
#define NTOKS 4096

static struct sr_tokens tokens;
static struct sr_policy policy;
static struct sr_json_tok toks[NTOKS];
static struct sr_decision d;

static int setup(void **state)
{
    struct sr_core_err err;
    const char *json = "{\"alice-secret-name\":\"" TOK_A "\"}";

    (void)state;
    sr_tokens_init(&tokens);
    if (sr_tokens_add_json(&tokens, json, strlen(json), NULL, toks, NTOKS, &err) != 0)
        return -1;
    sr_policy_init(&policy, &tokens);
    return 0;
}

/* A POST /mcp with alice's token, a session and the given body. */
static void post(struct sr_request *r, const char *body)
{
    memset(r, 0, sizeof(*r));
    r->method = "POST";
    r->method_len = 4;
    r->path = "/mcp";
    r->path_len = 4;
    r->session_id = "s-1";
    r->session_id_len = 3;
    r->has_authorization = true;
    r->has_bearer = true;
    sr_sha256(TOK_A, strlen(TOK_A), r->digest);
    r->body = body;
    r->body_len = body != NULL ? strlen(body) : 0;
}

static void assert_valid_body(const struct sr_decision *dd)
{
    struct sr_json_doc doc;
    struct sr_json_tok bt[64];

    assert_int_equal(dd->body_len, strlen(dd->body));
    assert_int_equal(sr_json_parse(&doc, dd->body, dd->body_len, bt, 64, NULL), 0);
    assert_non_null(strstr(dd->body, "\"jsonrpc\":\"2.0\""));
    assert_null(strstr(dd->body, "alice-secret-name"));
    assert_null(strstr(dd->body, TOK_A));
}

static void test_policy_defaults(void **state)
{
    struct sr_policy p;

    (void)state;
    sr_policy_init(&p, &tokens);
    assert_string_equal(p.generation, "gen-1");
    assert_int_equal(p.origin_count, 0);
    assert_int_equal(p.max_body, SR_MAX_BODY_DEFAULT);
    assert_true(p.check_bearer);
    assert_false(p.bare_get_405);
    assert_false(p.loopback_listener);
    assert_ptr_equal(p.tokens, &tokens);
}

static void test_origins(void **state)
{
    struct sr_policy p;
    struct sr_core_err err;
    char list[32 * 24 + 64];
    size_t len = 0;
    int i;

    (void)state;
    sr_policy_init(&p, &tokens);
    assert_int_equal(
        sr_policy_set_origins(&p, " https://a.example ,\thttp://localhost:6274", 42, &err), 0);
    assert_int_equal(p.origin_count, 2);
    assert_string_equal(p.origins[0], "https://a.example");
    assert_string_equal(p.origins[1], "http://localhost:6274");
    /* Junk leaves the previous list in place. */
    assert_int_equal(sr_policy_set_origins(&p, "https://b.example/app", 21, &err), -1);
    assert_non_null(strstr(err.msg, "ALLOWED_ORIGINS entry 1"));
    assert_int_equal(p.origin_count, 2);
    assert_string_equal(p.origins[0], "https://a.example");
    assert_int_equal(sr_policy_set_origins(&p, "*", 1, &err), 0);
    assert_int_equal(p.origin_count, 1);
    assert_int_equal(sr_policy_set_origins(&p, "", 0, &err), 0);
    assert_int_equal(p.origin_count, 0);
    assert_int_equal(sr_policy_set_origins(&p, NULL, 0, &err), 0);
    assert_int_equal(sr_policy_set_origins(&p, "https://a.example,", 18, &err), -1);
    assert_non_null(strstr(err.msg, "entry 2"));
    assert_int_equal(sr_policy_set_origins(&p, "https://", 8, &err), -1);
    assert_int_equal(sr_policy_set_origins(&p, "://a", 4, &err), -1);
    assert_int_equal(sr_policy_set_origins(&p, "https://a b", 11, &err), -1);
    for (i = 0; i < SR_ORIGINS_MAX; i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%shttps://h%d.example",
                                i ? "," : "", i);
    assert_int_equal(sr_policy_set_origins(&p, list, len, &err), 0);
    assert_int_equal(p.origin_count, SR_ORIGINS_MAX);
    len += (size_t)snprintf(list + len, sizeof(list) - len, ",https://one-more.example");
    assert_int_equal(sr_policy_set_origins(&p, list, len, &err), -1);
    assert_non_null(strstr(err.msg, "too many"));
}

static void test_generation(void **state)
{
    struct sr_policy p;
    struct sr_core_err err;

    (void)state;
    sr_policy_init(&p, &tokens);
    assert_int_equal(sr_policy_set_generation(&p, "gen-42", 6, &err), 0);
    assert_string_equal(p.generation, "gen-42");
    assert_int_equal(sr_policy_set_generation(&p, "bad gen", 7, &err), -1);
    assert_non_null(strstr(err.msg, "MCP_CONTAINER_ROUTE_GENERATION"));
    assert_string_equal(p.generation, "gen-42");
    assert_int_equal(sr_policy_set_generation(&p, NULL, 0, &err), 0);
    assert_string_equal(p.generation, "gen-1");
}

static void test_forward_and_body(void **state)
{
    struct sr_request r;

    (void)state;
    post(&r, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\"}");
    assert_int_equal(sr_classify(&policy, &r, toks, NTOKS, &d), 0);
    assert_int_equal(d.action, SR_ACT_FORWARD);
    assert_int_equal(d.token_index, 0);
    assert_string_equal(d.route, "gen-1:alice-secret-name");
    assert_string_equal(d.rpc_method, "tools/list");
    assert_string_equal(d.rpc_id, "3");
    assert_true(d.fix_accept);
    assert_int_equal(d.body_len, 0);
}

static void test_scratch_limit(void **state)
{
    struct sr_request r;

    (void)state;
    post(&r, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"},{\"jsonrpc\":\"2.0\",\"id\":2}]");
    assert_int_equal(sr_classify(&policy, &r, toks, 4, &d), 0);
    assert_int_equal(d.action, SR_ACT_REJECT);
    assert_int_equal(d.status, 400);
    assert_non_null(strstr(d.body, "-32600"));
    assert_non_null(strstr(d.body, "(4)"));
    assert_valid_body(&d);
    assert_int_equal(sr_classify(&policy, &r, NULL, 0, &d), 0);
    assert_int_equal(d.status, 400);
}

static void test_long_method_and_id(void **state)
{
    static char body[2048];
    struct sr_request r;
    char longs[400];

    (void)state;
    memset(longs, 'm', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"method\":\"%s\"}", longs,
             longs);
    post(&r, body);
    r.session_id = NULL;
    assert_int_equal(sr_classify(&policy, &r, toks, NTOKS, &d), 0);
    /* Neither fits: both are dropped rather than cut, and the 400 body is still valid. */
    assert_string_equal(d.rpc_method, "");
    assert_string_equal(d.rpc_id, "");
    assert_int_equal(d.status, 400);
    assert_valid_body(&d);
    /* A method of exactly SR_RPC_METHOD_MAX bytes is kept. */
    longs[SR_RPC_METHOD_MAX] = '\0';
    snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\"}", longs);
    post(&r, body);
    assert_int_equal(sr_classify(&policy, &r, toks, NTOKS, &d), 0);
    assert_int_equal(strlen(d.rpc_method), SR_RPC_METHOD_MAX);
}

static void test_every_refusal_body_is_valid(void **state)
{
    static const char *const paths[] = {"/health", "/status", "/mcp", "/.well-known/x", "/x"};
    static const char *const methods[] = {"GET", "POST", "DELETE", "PUT", "HEAD"};
    static const char *const bodies[] = {"", "{", "[]", "1", "{\"id\":\"x\\\"y\",\"method\":1}"};
    struct sr_request r;
    size_t pi, mi, bi;
    int auth;

    (void)state;
    for (pi = 0; pi < 5; pi++)
        for (mi = 0; mi < 5; mi++)
            for (bi = 0; bi < 5; bi++)
                for (auth = 0; auth < 3; auth++) {
                    post(&r, bodies[bi]);
                    r.method = methods[mi];
                    r.method_len = strlen(methods[mi]);
                    r.path = paths[pi];
                    r.path_len = strlen(paths[pi]);
                    r.has_authorization = auth > 0;
                    r.has_bearer = auth > 1;
                    r.session_id = bi % 2 ? "s" : NULL;
                    r.session_id_len = r.session_id ? 1 : 0;
                    assert_int_equal(sr_classify(&policy, &r, toks, NTOKS, &d), 0);
                    if (d.action == SR_ACT_REJECT) {
                        assert_true(d.status >= 400 && d.status < 600);
                        assert_valid_body(&d);
                        assert_true((d.status == 405) == (d.allow != NULL));
                        assert_true((d.status == 401) == d.www_authenticate);
                    } else {
                        assert_int_equal(d.body_len, 0);
                    }
                }
}

static void test_bad_generation_is_500(void **state)
{
    struct sr_policy p;
    struct sr_request r;

    (void)state;
    memcpy(&p, &policy, sizeof(p));
    memcpy(p.generation, "a:b", 4);
    post(&r, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    assert_int_equal(sr_classify(&p, &r, toks, NTOKS, &d), 0);
    assert_int_equal(d.action, SR_ACT_REJECT);
    assert_int_equal(d.status, 500);
    assert_string_equal(d.route, "");
    assert_valid_body(&d);
}

static void test_no_table(void **state)
{
    struct sr_policy p;
    struct sr_request r;

    (void)state;
    sr_policy_init(&p, NULL);
    post(&r, "{}");
    assert_int_equal(sr_classify(&p, &r, toks, NTOKS, &d), 0);
    assert_int_equal(d.status, 401);
    assert_int_equal(sr_classify(NULL, &r, toks, NTOKS, &d), -1);
    assert_int_equal(sr_classify(&p, NULL, toks, NTOKS, &d), -1);
    assert_int_equal(sr_classify(&p, &r, toks, NTOKS, NULL), -1);
}

static int describe(struct sr_request_desc *rd, const char *json, struct sr_json_tok *dt,
                    struct sr_core_err *err)
{
    return sr_describe_request(rd, json, strlen(json), dt, 64, err);
}

static void test_describe_request(void **state)
{
    static struct sr_request_desc rd;
    struct sr_core_err err;
    struct sr_json_tok dt[64];
    uint8_t want[SR_SHA256_LEN];
    const char *ok = "{\"method\":\"POST\",\"path\":\"/mcp\",\"headers\":{\"origin\":\"https://a\","
                     "\"authorization\":\"Bearer " TOK_A "\",\"x-other\":\"1\"},\"extra\":1}";

    (void)state;
    assert_int_equal(sr_describe_request(&rd, ok, strlen(ok), dt, 64, &err), 0);
    assert_int_equal(rd.req.method_len, 4);
    assert_string_equal(rd.req.path, "/mcp");
    assert_string_equal(rd.req.origin, "https://a");
    assert_null(rd.req.accept);
    assert_null(rd.req.session_id);
    assert_true(rd.req.has_authorization);
    assert_true(rd.req.has_bearer);
    sr_sha256(TOK_A, strlen(TOK_A), want);
    assert_memory_equal(rd.req.digest, want, SR_SHA256_LEN);
    /* The decoded header is wiped once hashed. */
    assert_null(memmem(rd.store, sizeof(rd.store), TOK_A, strlen(TOK_A)));

    assert_int_equal(sr_describe_request(&rd, "{\"path\":\"/\"}", 12, dt, 64, &err), -1);
    assert_non_null(strstr(err.msg, "method"));
    assert_int_equal(
        describe(&rd, "{\"method\":\"GET\",\"path\":\"/\",\"headers\":{\"accept\":1}}", dt, &err),
        -1);
    assert_non_null(strstr(err.msg, "accept"));
    assert_int_equal(
        describe(&rd, "{\"method\":\"GET\",\"path\":\"/\",\"digest\":\"ab\"}", dt, &err), -1);
    assert_non_null(strstr(err.msg, "digest"));
    assert_int_equal(sr_describe_request(&rd, "[]", 2, dt, 64, &err), -1);
    assert_int_equal(sr_describe_request(&rd, "{", 1, dt, 64, &err), -1);
}

static void test_describe_decision(void **state)
{
    struct sr_request r;
    char out[SR_DECISION_JSON_MAX];
    int len, cap;

    (void)state;
    post(&r, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    sr_classify(&policy, &r, toks, NTOKS, &d);
    len = sr_describe_decision(&d, out, sizeof(out));
    assert_true(len > 0);
    assert_non_null(strstr(out, "\"shim\":\"initialized\""));
    assert_non_null(strstr(out, "\"status\":202"));
    for (cap = 0; cap <= len; cap++)
        assert_int_equal(sr_describe_decision(&d, out, (size_t)cap), -1);
    assert_int_equal(sr_describe_decision(&d, out, (size_t)len + 1), len);
}

/* A 2026-07-28 POST with alice's token, no session, and the given headers (NULL: absent). */
static void post26(struct sr_request *r, const char *body, const char *method, const char *name)
{
    post(r, body);
    r->session_id = NULL;
    r->session_id_len = 0;
    r->protocol_version = SR_MCP_STATELESS_VERSION;
    r->protocol_version_len = strlen(SR_MCP_STATELESS_VERSION);
    r->mcp_method = method;
    r->mcp_method_len = method != NULL ? strlen(method) : 0;
    r->mcp_name = name;
    r->mcp_name_len = name != NULL ? strlen(name) : 0;
}

static const char *const call_body = "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\","
                                     "\"params\":{\"name\":\"find_symbol\"}}";

static void test_stateless_forward(void **state)
{
    struct sr_request r;

    (void)state;
    post26(&r, call_body, "tools/call", "find_symbol");
    assert_int_equal(sr_classify(&policy, &r, toks, NTOKS, &d), 0);
    assert_int_equal(d.action, SR_ACT_FORWARD);
    assert_true(d.stateless);
    assert_false(d.is_initialize);
    assert_string_equal(d.protocol_version, "2026-07-28");
    assert_string_equal(d.route, "gen-1:alice-secret-name");
    /* A session-era request leaves both unset. */
    post(&r, call_body);
    assert_int_equal(sr_classify(&policy, &r, toks, NTOKS, &d), 0);
    assert_int_equal(d.action, SR_ACT_FORWARD);
    assert_false(d.stateless);
    assert_string_equal(d.protocol_version, "");
}

static void expect_mismatch(struct sr_request *r, const char *why)
{
    assert_int_equal(sr_classify(&policy, r, toks, NTOKS, &d), 0);
    assert_int_equal(d.action, SR_ACT_REJECT);
    assert_int_equal(d.status, 400);
    assert_false(d.stateless);
    assert_non_null(strstr(d.body, "\"code\":-32020"));
    if (why != NULL)
        assert_non_null(strstr(d.body, why));
    assert_valid_body(&d);
}

static void test_stateless_header_bytes(void **state)
{
    struct sr_request r;

    (void)state;
    /* A NUL inside a header is a different value, not the end of one. */
    post26(&r, call_body, "tools/call", "find_symbol");
    r.mcp_method = "tools/call\0";
    r.mcp_method_len = 11;
    expect_mismatch(&r, "Mcp-Method");
    post26(&r, call_body, "tools/call", "find_symbol");
    r.mcp_name = "find_symbol\0x";
    r.mcp_name_len = 13;
    expect_mismatch(&r, "malformed");
    post26(&r, call_body, "tools/call", "find_symbol");
    r.protocol_version = "2026-07-28\0";
    r.protocol_version_len = 11;
    assert_int_equal(sr_classify(&policy, &r, toks, NTOKS, &d), 0);
    assert_int_equal(d.status, 400);
    assert_non_null(strstr(d.body, "-32022"));
    /* Not echoed: the value holds a byte a header may not carry. */
    assert_null(strstr(d.body, "requested"));
    assert_valid_body(&d);
    /* Every copy of a routing header must agree: given twice is refused in either era. */
    post26(&r, call_body, "tools/call", "find_symbol");
    r.mcp_header_repeated = true;
    expect_mismatch(&r, "more than once");
    post(&r, call_body);
    r.mcp_header_repeated = true;
    expect_mismatch(&r, "more than once");
}

/* A tools/call whose name is `n` bytes of 'n', with Mcp-Name Base64-encoded. */
static void b64_name_case(size_t n, bool fits)
{
    static char body[SR_MCP_NAME_MAX + 256];
    static char hdr[SR_MCP_NAME_MAX * 2];
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static uint8_t raw[SR_MCP_NAME_MAX + 8];
    struct sr_request r;
    size_t i, o, len;

    memset(raw, 'n', n);
    len = (size_t)snprintf(body, sizeof(body),
                           "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                           "\"params\":{\"name\":\"%.*s\"}}",
                           (int)n, (const char *)raw);
    assert_true(len < sizeof(body));
    o = (size_t)snprintf(hdr, sizeof(hdr), "=?base64?");
    for (i = 0; i < n; i += 3) {
        uint32_t g = (uint32_t)raw[i] << 16;
        size_t left = n - i;

        if (left > 1)
            g |= (uint32_t)raw[i + 1] << 8;
        if (left > 2)
            g |= raw[i + 2];
        hdr[o++] = alpha[(g >> 18) & 63];
        hdr[o++] = alpha[(g >> 12) & 63];
        hdr[o++] = left > 1 ? alpha[(g >> 6) & 63] : '=';
        hdr[o++] = left > 2 ? alpha[g & 63] : '=';
    }
    memcpy(hdr + o, "?=", 3);
    post26(&r, body, "tools/call", hdr);
    assert_int_equal(sr_classify(&policy, &r, toks, NTOKS, &d), 0);
    if (fits) {
        assert_int_equal(d.action, SR_ACT_FORWARD);
        assert_true(d.stateless);
    } else {
        assert_int_equal(d.status, 400);
        assert_non_null(strstr(d.body, "4096"));
        assert_valid_body(&d);
    }
}

static void test_stateless_name_limit(void **state)
{
    (void)state;
    b64_name_case(1, true);
    b64_name_case(2, true);
    b64_name_case(SR_MCP_NAME_MAX - 1, true);
    b64_name_case(SR_MCP_NAME_MAX, true);
    b64_name_case(SR_MCP_NAME_MAX + 1, false);
    b64_name_case(SR_MCP_NAME_MAX + 3, false);
}

static void test_unsupported_version_body(void **state)
{
    char pv[SR_PROTOCOL_VERSION_MAX + 1];
    struct sr_request r;

    (void)state;
    /* The worst value that is still echoed: 64 quotes, each escaped to two bytes. */
    memset(pv, '"', SR_PROTOCOL_VERSION_MAX);
    pv[SR_PROTOCOL_VERSION_MAX] = '\0';
    post26(&r, call_body, "tools/call", "find_symbol");
    r.protocol_version = pv;
    r.protocol_version_len = SR_PROTOCOL_VERSION_MAX;
    assert_int_equal(sr_classify(&policy, &r, toks, NTOKS, &d), 0);
    assert_int_equal(d.status, 400);
    assert_non_null(strstr(d.body, "\"supported\":[\"2026-07-28\"]"));
    assert_non_null(strstr(d.body, "\"requested\":\"\\\"\\\""));
    assert_non_null(strstr(d.body, "\"id\":9"));
    assert_valid_body(&d);
}

static void test_loopback_origin_bytes(void **state)
{
    struct sr_policy p;
    struct sr_request r;

    (void)state;
    memcpy(&p, &policy, sizeof(p));
    p.loopback_listener = true;
    post(&r, call_body);
    r.origin = "http://localhost:8787";
    r.origin_len = strlen(r.origin);
    assert_int_equal(sr_classify(&p, &r, toks, NTOKS, &d), 0);
    assert_int_equal(d.action, SR_ACT_FORWARD);
    /* A NUL after the host is a byte of the origin, so the origin is foreign. */
    r.origin = "http://localhost\0.evil";
    r.origin_len = 22;
    assert_int_equal(sr_classify(&p, &r, toks, NTOKS, &d), 0);
    assert_int_equal(d.status, 403);
    /* "http://localhost:" with an empty port. */
    r.origin = "http://localhost:8787";
    r.origin_len = 17;
    assert_int_equal(sr_classify(&p, &r, toks, NTOKS, &d), 0);
    assert_int_equal(d.status, 403);
    /* Without the flag the same local page is foreign. */
    r.origin_len = strlen(r.origin);
    assert_int_equal(sr_classify(&policy, &r, toks, NTOKS, &d), 0);
    assert_int_equal(d.status, 403);
}

static void test_listen_is_loopback(void **state)
{
    static const char *const yes[] = {"127.0.0.1:8787", "127.1.2.3:1", "localhost:80", "[::1]:8787",
                                      "[::ffff:127.0.0.1]:9"};
    static const char *const no[] = {"0.0.0.0:8080",   "[::]:8080", "10.0.0.1:80",
                                     "128.0.0.1:1",    "127.0.0.1", "",
                                     "example.com:80", "[::2]:1",   "[::ffff:10.0.0.1]:9"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(sr_hostport_is_loopback(yes[i]));
    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(sr_hostport_is_loopback(no[i]));
    assert_false(sr_hostport_is_loopback(NULL));
}

static void test_describe_stateless(void **state)
{
    static struct sr_request_desc rd;
    struct sr_core_err err;
    struct sr_json_tok dt[64];
    char out[SR_DECISION_JSON_MAX];
    const char *ok = "{\"method\":\"POST\",\"path\":\"/mcp\",\"headers\":{"
                     "\"mcp-protocol-version\":\"2026-07-28\",\"mcp-method\":\"tools/call\","
                     "\"mcp-name\":\"find_symbol\",\"authorization\":\"Bearer " TOK_A "\"},"
                     "\"mcp_header_repeated\":false}";

    (void)state;
    assert_int_equal(describe(&rd, ok, dt, &err), 0);
    assert_string_equal(rd.req.protocol_version, "2026-07-28");
    assert_string_equal(rd.req.mcp_method, "tools/call");
    assert_string_equal(rd.req.mcp_name, "find_symbol");
    assert_false(rd.req.mcp_header_repeated);
    rd.req.body = call_body;
    rd.req.body_len = strlen(call_body);
    sr_classify(&policy, &rd.req, toks, NTOKS, &d);
    assert_true(sr_describe_decision(&d, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "\"stateless\":true"));
    assert_non_null(strstr(out, "\"protocol_version\":\"2026-07-28\""));
    assert_int_equal(
        describe(&rd, "{\"method\":\"GET\",\"path\":\"/\",\"mcp_header_repeated\":1}", dt, &err),
        -1);
    assert_non_null(strstr(err.msg, "mcp_header_repeated"));
    assert_int_equal(describe(&rd,
                              "{\"method\":\"GET\",\"path\":\"/\",\"headers\":{\"mcp-name\":null}}",
                              dt, &err),
                     -1);
    assert_non_null(strstr(err.msg, "mcp-name"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_defaults),
        cmocka_unit_test(test_origins),
        cmocka_unit_test(test_generation),
        cmocka_unit_test(test_forward_and_body),
        cmocka_unit_test(test_scratch_limit),
        cmocka_unit_test(test_long_method_and_id),
        cmocka_unit_test(test_every_refusal_body_is_valid),
        cmocka_unit_test(test_bad_generation_is_500),
        cmocka_unit_test(test_no_table),
        cmocka_unit_test(test_describe_request),
        cmocka_unit_test(test_describe_decision),
        cmocka_unit_test(test_stateless_forward),
        cmocka_unit_test(test_stateless_header_bytes),
        cmocka_unit_test(test_stateless_name_limit),
        cmocka_unit_test(test_unsupported_version_body),
        cmocka_unit_test(test_loopback_origin_bytes),
        cmocka_unit_test(test_listen_is_loopback),
        cmocka_unit_test(test_describe_stateless),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
