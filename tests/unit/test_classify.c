/*
 * Unit tests for request classification (src/core/classify.c) and the JSON
 * descriptions core.wasm uses (src/core/describe.c). The shared vectors in
 * tests/vectors/ cover the decision table; these tests cover what vectors
 * cannot express: policy parsing, scratch and buffer limits, argument
 * checks, and that every refusal body is valid JSON without a token name.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/classify.h"
#include "core/describe.h"
#include "core/errors.h"
#include "core/mem.h"

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
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
