/*
 * Unit tests for the OAuth rules without I/O (src/core/oauth.c): form
 * parsing (escapes, repeats, limits), redirect URI rules and loopback port
 * matching (RFC 8252), PKCE inputs, the public URL, the metadata documents
 * and dynamic client registration bodies.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/oauth.h"
#include "core/sha256.h"

static struct sr_json_tok toks[1024];

static int get(const char *form, const char *key, char *out, size_t cap)
{
    return sr_form_get(form, strlen(form), key, out, cap, NULL);
}

static void test_form(void **state)
{
    char v[32];
    (void)state;
    assert_int_equal(get("a=1&b=x%20y+z&c", "b", v, sizeof(v)), 1);
    assert_string_equal(v, "x y z");
    assert_int_equal(get("a=1&b=2", "c", v, sizeof(v)), 0);
    assert_int_equal(get("a=1&c", "c", v, sizeof(v)), 1);
    assert_string_equal(v, "");
    assert_int_equal(get("a=1&a=2", "a", v, sizeof(v)), -1); /* repeated */
    assert_int_equal(get("a=%2", "a", v, sizeof(v)), -1);    /* short escape */
    assert_int_equal(get("a=%zz", "a", v, sizeof(v)), -1);   /* bad escape */
    assert_int_equal(get("a=%00", "a", v, sizeof(v)), -1);   /* NUL */
    assert_int_equal(get("a=0123456789", "a", v, 10), -1);   /* too long */
    assert_int_equal(get("%61=1", "a", v, sizeof(v)), 1);    /* encoded key */
    assert_int_equal(get("", "a", v, sizeof(v)), 0);
    assert_int_equal(get("&&a=1&&", "a", v, sizeof(v)), 1);
    assert_true(sr_form_has("x=1&access_token=", 17, "access_token"));
    assert_true(sr_form_has("ACCESS_TOKEN=1", 14, "access_token"));
    assert_false(sr_form_has("my_access_token=1", 17, "access_token"));

    char enc[64];
    size_t n;
    assert_int_equal(sr_form_encode("a b&c=d/é", strlen("a b&c=d/é"), enc, sizeof(enc), &n), 0);
    assert_string_equal(enc, "a%20b%26c%3Dd%2F%C3%A9");
    char back[64];
    assert_int_equal(sr_form_decode(enc, n, back, sizeof(back), NULL), 0);
    assert_string_equal(back, "a b&c=d/é");
    assert_int_equal(sr_form_encode("abc", 3, enc, 3, &n), -1);
}

static int redir(const char *u)
{
    const char *why = NULL;
    return sr_oauth_redirect_check(u, strlen(u), &why);
}

static void test_redirect(void **state)
{
    (void)state;
    assert_int_equal(redir("https://claude.ai/api/mcp/auth_callback"), 0);
    assert_int_equal(redir("https://chatgpt.com/connector_platform_oauth_redirect"), 0);
    assert_int_equal(redir("http://localhost:3334/oauth/callback"), 0);
    assert_int_equal(redir("http://127.0.0.1/cb"), 0);
    assert_int_equal(redir("http://[::1]:8080/cb?x=1"), 0);
    assert_int_equal(redir("http://example.com/cb"), -1);
    assert_int_equal(redir("http://localhost.example.com/cb"), -1);
    assert_int_equal(redir("https://a.example/cb#f"), -1);
    assert_int_equal(redir("https://u@a.example/cb"), -1);
    assert_int_equal(redir("https:///cb"), -1);
    assert_int_equal(redir("https://a.example:0/cb"), -1);
    assert_int_equal(redir("https://a.example:65536/cb"), -1);
    assert_int_equal(redir("https://a.example:/cb"), -1);
    assert_int_equal(redir("https://a.example/c b"), -1);
    assert_int_equal(redir("https://a.example/\"><script>"), -1);
    assert_int_equal(redir("javascript:alert(1)"), -1);
    assert_int_equal(redir("myapp://cb"), -1);
    assert_int_equal(redir(""), -1);

    const char *r = "http://localhost:3334/oauth/callback";
#define M(a, b) sr_oauth_redirect_match(a, strlen(a), b, strlen(b))
    assert_true(M(r, r));
    assert_true(M(r, "http://localhost:50000/oauth/callback"));
    assert_true(M(r, "http://localhost/oauth/callback"));
    assert_false(M(r, "http://localhost:50000/oauth/other"));
    assert_false(M(r, "http://127.0.0.1:3334/oauth/callback"));
    assert_false(M("https://a.example/cb", "https://a.example:444/cb"));
    assert_false(M("https://a.example/cb", "https://a.example/cb2"));
    assert_true(M("https://a.example/cb", "https://a.example/cb"));
#undef M

    const char *host;
    size_t hl;
    assert_int_equal(sr_oauth_uri_host(r, strlen(r), &host, &hl), 0);
    assert_int_equal(hl, strlen("localhost:3334"));
    assert_memory_equal(host, "localhost:3334", hl);
}

static void test_pkce(void **state)
{
    (void)state;
    /* RFC 7636 appendix B. */
    const char *verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const char *challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    uint8_t d[SR_SHA256_LEN];
    assert_true(sr_oauth_verifier_ok(verifier, strlen(verifier)));
    assert_false(sr_oauth_verifier_ok("short", 5));
    assert_false(sr_oauth_verifier_ok("dBjftJeZ4CVP+mB92K27uhbUJU1p1r_wW1gFWFOEjXk", 43));
    assert_true(sr_oauth_challenge_ok(challenge, strlen(challenge)));
    assert_false(sr_oauth_challenge_ok("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c", 42));
    sr_sha256(verifier, strlen(verifier), d);
    assert_true(sr_oauth_challenge_match(d, challenge, strlen(challenge)));
    d[0] ^= 1;
    assert_false(sr_oauth_challenge_match(d, challenge, strlen(challenge)));
}

static void test_public_url_and_metadata(void **state)
{
    (void)state;
    const char *why;
#define P(u) sr_oauth_public_url_check(u, strlen(u), &why)
    assert_int_equal(P("https://mcp.example.com"), 0);
    assert_int_equal(P("https://mcp.example.com:8443"), 0);
    assert_int_equal(P("http://127.0.0.1:8787"), 0);
    assert_int_equal(P("http://mcp.example.com"), -1);
    assert_int_equal(P("https://mcp.example.com/"), -1);
    assert_int_equal(P("https://mcp.example.com/mcp"), -1);
    assert_int_equal(P("https://mcp.example.com?x"), -1);
#undef P
    char doc[2048];
    int n = sr_oauth_resource_metadata("https://h.example", doc, sizeof(doc));
    assert_true(n > 0);
    assert_non_null(strstr(doc, "\"resource\":\"https://h.example/mcp\""));
    assert_non_null(strstr(doc, "\"authorization_servers\":[\"https://h.example\"]"));
    n = sr_oauth_server_metadata("https://h.example", false, doc, sizeof(doc));
    assert_true(n > 0);
    assert_non_null(strstr(doc, "\"issuer\":\"https://h.example\""));
    assert_non_null(strstr(doc, "\"token_endpoint\":\"https://h.example/oauth/token\""));
    assert_non_null(strstr(doc, "\"code_challenge_methods_supported\":[\"S256\"]"));
    assert_int_equal(sr_oauth_server_metadata("https://h.example", true, doc, 16), -1);
}

static int reg(const char *body, struct sr_oauth_reg *r, const char **error)
{
    const char *why;
    return sr_oauth_registration_parse(body, strlen(body), toks, 1024, r, error, &why);
}

static void test_registration(void **state)
{
    (void)state;
    static struct sr_oauth_reg r;
    const char *error;
    assert_int_equal(reg("{\"client_name\":\"Claude\",\"redirect_uris\":[\"https://claude.ai/api/"
                         "mcp/auth_callback\"],\"grant_types\":[\"authorization_code\",\"refresh_"
                         "token\"],\"response_types\":[\"code\"],\"token_endpoint_auth_method\":"
                         "\"client_secret_post\",\"scope\":\"claudeai\"}",
                         &r, &error),
                     0);
    assert_string_equal(r.name, "Claude");
    assert_int_equal(r.nredirect, 1);
    assert_string_equal(r.redirect[0], "https://claude.ai/api/mcp/auth_callback");
    assert_int_equal(
        reg("{\"redirect_uris\":[\"http://localhost:1/a\",\"http://127.0.0.1:2/b\"]}", &r, &error),
        0);
    assert_int_equal(r.nredirect, 2);
    assert_string_equal(r.name, "");

    assert_int_equal(reg("{}", &r, &error), -1);
    assert_string_equal(error, "invalid_redirect_uri");
    assert_int_equal(reg("{\"redirect_uris\":\"https://a.example/cb\"}", &r, &error), -1);
    assert_int_equal(reg("{\"redirect_uris\":[\"http://a.example/cb\"]}", &r, &error), -1);
    assert_string_equal(error, "invalid_redirect_uri");
    assert_int_equal(reg("{\"redirect_uris\":[\"https://a/1\",\"https://a/2\",\"https://a/3\","
                         "\"https://a/4\",\"https://a/5\"]}",
                         &r, &error),
                     -1);
    assert_int_equal(
        reg("{\"redirect_uris\":[\"https://a/1\"],\"grant_types\":[\"implicit\"]}", &r, &error),
        -1);
    assert_string_equal(error, "invalid_client_metadata");
    assert_int_equal(
        reg("{\"redirect_uris\":[\"https://a/1\"],\"response_types\":[\"token\"]}", &r, &error),
        -1);
    assert_int_equal(
        reg("{\"redirect_uris\":[\"https://a/1\"],\"client_name\":\"a\\nb\"}", &r, &error), -1);
    assert_int_equal(reg("{\"redirect_uris\":[\"https://a/1\"],\"client_name\":7}", &r, &error),
                     -1);
    assert_int_equal(reg("[1]", &r, &error), -1);
    assert_int_equal(reg("{\"redirect_uris\":[\"https://a/1\"],\"redirect_uris\":[]}", &r, &error),
                     -1);
}

static void test_cimd(void **state)
{
    (void)state;
    static struct sr_oauth_reg r;
    const char *why;
    static const char *const good[] = {"https://app.example/client.json",
                                       "https://app.example:8443/a/b/c?x=1",
                                       "https://app.example/.well-known/oauth-client"};
    static const char *const bad[] = {"http://app.example/client.json", "https://app.example",
                                      "https://app.example/",           "https://app.example?x",
                                      "https://app.example/a/../b",     "https://app.example/./b",
                                      "https://app.example/b/..",       "https://u@app.example/b",
                                      "https://app.example/b#f",        "https:///b",
                                      "https://app.example/a b",        "client-id"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(sr_oauth_cimd_url_check(good[i], strlen(good[i]), &why), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(sr_oauth_cimd_url_check(bad[i], strlen(bad[i]), &why), -1);
        assert_non_null(why);
    }
    assert_true(sr_oauth_is_url_client("https://a/b", 11));
    assert_false(sr_oauth_is_url_client("abcdefghijklmnopqrstuv", 22));

    const char *url = "https://app.example/client.json";
    const char *doc = "{\"client_id\":\"https://app.example/client.json\",\"client_name\":\"App\","
                      "\"redirect_uris\":[\"http://127.0.0.1/cb\"],"
                      "\"token_endpoint_auth_method\":\"none\"}";
    assert_int_equal(sr_oauth_cimd_parse(doc, strlen(doc), url, strlen(url), toks, 1024, &r, &why),
                     0);
    assert_string_equal(r.name, "App");
    assert_int_equal(r.nredirect, 1);
    /* client_id compared byte for byte, no normalization. */
    const char *other = "https://APP.example/client.json";
    assert_int_equal(
        sr_oauth_cimd_parse(doc, strlen(doc), other, strlen(other), toks, 1024, &r, &why), -1);
    assert_non_null(strstr(why, "not exactly"));
    static const char *const refused[] = {
        "{\"client_id\":\"https://app.example/client.json\",\"redirect_uris\":[\"http://"
        "127.0.0.1/cb\"],\"client_secret\":\"x\"}",
        "{\"client_id\":\"https://app.example/client.json\",\"redirect_uris\":[\"http://"
        "127.0.0.1/cb\"],\"token_endpoint_auth_method\":\"private_key_jwt\"}",
        "{\"client_id\":\"https://app.example/client.json\"}",
        "{\"redirect_uris\":[\"http://127.0.0.1/cb\"]}",
        "{\"client_id\":7,\"redirect_uris\":[\"http://127.0.0.1/cb\"]}",
        "[]",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        assert_int_equal(sr_oauth_cimd_parse(refused[i], strlen(refused[i]), url, strlen(url), toks,
                                             1024, &r, &why),
                         -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form),         cmocka_unit_test(test_redirect),
        cmocka_unit_test(test_pkce),         cmocka_unit_test(test_public_url_and_metadata),
        cmocka_unit_test(test_registration), cmocka_unit_test(test_cimd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
