/*
 * Unit tests for the token table (src/core/tokens.c): the singleton entry,
 * object and array forms, sha256: values, every refusal (with the entry
 * named and the value never quoted), all-or-nothing updates, matching and
 * the strategy names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/mem.h"
#include "core/sha256.h"
#include "core/tokens.h"

#define TOK_A   "alpha-token-0123456789abcdef"
#define TOK_B   "bravoTOKEN0123456789+/=="
#define TOK_S   "singleton-secret-0123456789"
#define SCRATCH SR_TOKENS_SCRATCH

static struct sr_json_tok scratch[SCRATCH];

static int add_json(struct sr_tokens *t, const char *json, struct sr_core_err *err)
{
    return sr_tokens_add_json(t, json, strlen(json), "API_TOKENS_JSON", scratch, SCRATCH, err);
}

static int32_t match(const struct sr_tokens *t, const char *tok)
{
    uint8_t d[SR_SHA256_LEN];

    sr_sha256(tok, strlen(tok), d);
    return sr_tokens_match(t, d);
}

static void digest_hex(const char *tok, char out[65])
{
    uint8_t d[SR_SHA256_LEN];

    sr_sha256(tok, strlen(tok), d);
    sr_hex_encode(d, SR_SHA256_LEN, out);
    out[64] = '\0';
}

static void test_singleton(void **state)
{
    static struct sr_tokens t;
    struct sr_core_err err;

    (void)state;
    sr_tokens_init(&t);
    assert_string_equal(sr_tokens_strategy(&t), "none");
    assert_int_equal(match(&t, TOK_S), -1);
    assert_int_equal(sr_tokens_add_singleton(&t, TOK_S, strlen(TOK_S), &err), 0);
    assert_int_equal(t.count, 1);
    assert_string_equal(t.e[0].name, "singleton");
    assert_int_equal(t.e[0].singleton, 1);
    assert_int_equal(match(&t, TOK_S), 0);
    assert_int_equal(match(&t, TOK_A), -1);
    assert_string_equal(sr_tokens_strategy(&t), "singleton");
    /* A second API_TOKEN would be a second "singleton". */
    assert_int_equal(sr_tokens_add_singleton(&t, TOK_A, strlen(TOK_A), &err), -1);
    assert_non_null(strstr(err.msg, "API_TOKEN: name is already used"));
    assert_int_equal(t.count, 1);
}

static void test_object_and_mixed(void **state)
{
    static struct sr_tokens t;
    struct sr_core_err err;

    (void)state;
    sr_tokens_init(&t);
    assert_int_equal(add_json(&t, "{\"alice\":\"" TOK_A "\",\"bob\":\"" TOK_B "\"}", &err), 0);
    assert_int_equal(t.count, 2);
    assert_string_equal(t.e[0].name, "alice");
    assert_string_equal(t.e[1].name, "bob");
    assert_int_equal(t.e[1].singleton, 0);
    assert_string_equal(sr_tokens_strategy(&t), "per-token");
    assert_int_equal(match(&t, TOK_B), 1);
    assert_int_equal(sr_tokens_add_singleton(&t, TOK_S, strlen(TOK_S), &err), 0);
    assert_string_equal(sr_tokens_strategy(&t), "mixed");
    assert_int_equal(match(&t, TOK_S), 2);
    assert_int_equal(match(&t, TOK_A), 0);
}

static void test_array_names_and_sha256(void **state)
{
    static struct sr_tokens t;
    struct sr_core_err err;
    char hex[65], json[256], name[19];

    (void)state;
    digest_hex(TOK_A, hex);
    snprintf(json, sizeof(json), "[\"sha256:%s\", \"%s\"]", hex, TOK_B);
    sr_tokens_init(&t);
    assert_int_equal(add_json(&t, json, &err), 0);
    snprintf(name, sizeof(name), "t-%.16s", hex);
    assert_string_equal(t.e[0].name, name);
    assert_int_equal(match(&t, TOK_A), 0);
    assert_int_equal(match(&t, TOK_B), 1);
    /* Upper-case hex is the same digest: a duplicate. */
    for (size_t i = 0; i < 64; i++)
        if (hex[i] >= 'a' && hex[i] <= 'f')
            hex[i] = (char)(hex[i] - 'a' + 'A');
    snprintf(json, sizeof(json), "{\"again\":\"sha256:%s\"}", hex);
    assert_int_equal(add_json(&t, json, &err), -1);
    assert_string_equal(err.msg, "API_TOKENS_JSON entry \"again\": token is the same as another "
                                 "entry's; every entry needs its own token");
}

static void test_errors_name_entry_not_value(void **state)
{
    static const struct {
        const char *json;
        const char *want;
        const char *secret;
    } cases[] = {
        {"{\"ci\":\"sh0rtT0ken\"}",
         "API_TOKENS_JSON entry \"ci\": token is shorter than 16 characters", "sh0rtT0ken"},
        {"[\"" TOK_A "\",\"sh0rtT0ken\"]", "API_TOKENS_JSON[1]: token is shorter", "sh0rtT0ken"},
        {"{\"ci\":\"\"}", "API_TOKENS_JSON entry \"ci\": token is empty", NULL},
        {"{\"ci\":\"with space 0123456789\"}", "entry \"ci\": token contains a character",
         "with space"},
        {"{\"ci\":\"line\\nbreak0123456789\"}", "token contains a character", "break0123"},
        {"{\"bad name\":\"" TOK_A "\"}", "API_TOKENS_JSON member 0: name must match", TOK_A},
        {"{\"ci\":42}", "entry \"ci\": value must be a string", NULL},
        {"{\"ci\":\"sha256:abc\"}", "needs exactly 64 hex digits", NULL},
        {"{\"ci\":\"" TOK_A "\"", "API_TOKENS_JSON: not valid JSON", TOK_A},
        {"{\"ci\":\"" TOK_A "\",\"ci\":\"" TOK_B "\"}", "not valid JSON", TOK_B},
        {"{\"a\":\"" TOK_A "\",\"b\":\"" TOK_A "\"}", "entry \"b\": token is the same", TOK_A},
        {"\"" TOK_A "\"", "must be a JSON object", TOK_A},
        {"{}", "holds no tokens", NULL},
        {"[]", "holds no tokens", NULL},
        {"null", "must be a JSON object", NULL},
    };
    static struct sr_tokens t;
    struct sr_core_err err;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sr_tokens_init(&t);
        memset(err.msg, 0, sizeof(err.msg));
        if (add_json(&t, cases[i].json, &err) != -1)
            fail_msg("case %zu accepted", i);
        if (strstr(err.msg, cases[i].want) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].want);
        if (cases[i].secret != NULL && strstr(err.msg, cases[i].secret) != NULL)
            fail_msg("case %zu: message quotes the value: %s", i, err.msg);
        assert_int_equal(t.count, 0);
    }
}

static void test_all_or_nothing(void **state)
{
    static struct sr_tokens t, before;
    struct sr_core_err err;

    (void)state;
    sr_tokens_init(&t);
    assert_int_equal(sr_tokens_add_singleton(&t, TOK_S, strlen(TOK_S), &err), 0);
    memcpy(&before, &t, sizeof(t));
    /* The first entry is fine, the second is not: neither may stay. */
    assert_int_equal(add_json(&t, "{\"alice\":\"" TOK_A "\",\"bob\":\"short\"}", &err), -1);
    assert_memory_equal(&t, &before, sizeof(t));
    assert_int_equal(match(&t, TOK_A), -1);
    /* A duplicate of an existing entry fails the same way. */
    assert_int_equal(add_json(&t, "[\"" TOK_A "\",\"" TOK_S "\"]", &err), -1);
    assert_non_null(strstr(err.msg, "API_TOKENS_JSON[1]"));
    assert_memory_equal(&t, &before, sizeof(t));
}

static void test_table_full(void **state)
{
    static struct sr_tokens t;
    static char json[SR_TOKENS_MAX * 80 + 64];
    struct sr_core_err err;
    size_t len = 0;
    char tok[32], hex[65];
    int i;

    (void)state;
    json[len++] = '[';
    for (i = 0; i < SR_TOKENS_MAX; i++) {
        snprintf(tok, sizeof(tok), "filler-token-%06d", i);
        digest_hex(tok, hex);
        len +=
            (size_t)snprintf(json + len, sizeof(json) - len, "%s\"sha256:%s\"", i ? "," : "", hex);
    }
    json[len++] = ']';
    json[len] = '\0';
    sr_tokens_init(&t);
    assert_int_equal(add_json(&t, json, &err), 0);
    assert_int_equal(t.count, SR_TOKENS_MAX);
    assert_int_equal(match(&t, "filler-token-000255"), 255);
    assert_int_equal(match(&t, "filler-token-000000"), 0);
    assert_int_equal(match(&t, "filler-token-000256"), -1);
    assert_int_equal(sr_tokens_add_singleton(&t, TOK_S, strlen(TOK_S), &err), -1);
    assert_non_null(strstr(err.msg, "table is full"));
    assert_int_equal(t.count, SR_TOKENS_MAX);
}

static void test_limits_and_arguments(void **state)
{
    static struct sr_tokens t;
    static char big[SR_TOKENS_JSON_MAX + 2];
    struct sr_core_err err;
    struct sr_json_tok small[2];
    uint8_t zero[SR_SHA256_LEN];

    (void)state;
    sr_tokens_init(&t);
    memset(big, ' ', sizeof(big));
    big[0] = '[';
    big[sizeof(big) - 1] = ']';
    assert_int_equal(
        sr_tokens_add_json(&t, big, sizeof(big), "API_TOKENS_FILE /etc/x", scratch, SCRATCH, &err),
        -1);
    assert_string_equal(err.msg, "API_TOKENS_FILE /etc/x: is larger than 256 KiB");
    /* Too few scratch tokens is an error, never a partial table. */
    assert_int_equal(
        sr_tokens_add_json(&t, "[\"" TOK_A "\",\"" TOK_B "\"]", 2 + 2 * 28, NULL, small, 2, &err),
        -1);
    assert_int_equal(t.count, 0);
    assert_int_equal(sr_tokens_add_singleton(NULL, TOK_A, strlen(TOK_A), &err), -1);
    assert_int_equal(sr_tokens_add_singleton(&t, NULL, 0, &err), -1);
    assert_int_equal(sr_tokens_add_json(&t, NULL, 0, NULL, scratch, SCRATCH, &err), -1);
    memset(zero, 0, sizeof(zero));
    assert_int_equal(sr_tokens_match(NULL, zero), -1);
    assert_string_equal(sr_tokens_strategy(NULL), "none");
    /* err may be NULL. */
    assert_int_equal(sr_tokens_add_singleton(&t, "short", 5, NULL), -1);
}

static void test_entry_objects(void **state)
{
    struct sr_tokens t;
    struct sr_core_err err;
    size_t n = 0;
    char hex[65];

    (void)state;
    digest_hex(TOK_B, hex);
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"alice\": {\"token\": \"" TOK_A "\", \"project\": "
             "\"file:///srv/git/proj.git#main\", \"context\": \"ide\", \"read_only\": true},"
             " \"bob\": \"sha256:%s\", \"carol\": {\"token\": \"" TOK_S "\"}}",
             hex);
    sr_tokens_init(&t);
    assert_int_equal(add_json(&t, json, &err), 0);
    assert_int_equal(t.count, 3);
    assert_int_equal(match(&t, TOK_A), 0);
    assert_int_equal(match(&t, TOK_B), 1);
    assert_int_equal(match(&t, TOK_S), 2);
    const char *p = sr_tokens_project(&t, 0, &n);
    assert_int_equal(n, strlen("file:///srv/git/proj.git#main"));
    assert_memory_equal(p, "file:///srv/git/proj.git#main", n);
    assert_string_equal(t.e[0].context, "ide");
    assert_int_equal(t.e[0].read_only, 1);
    assert_null(sr_tokens_project(&t, 1, &n));
    assert_int_equal(t.e[2].read_only, 0);
    assert_string_equal(t.e[2].context, "");

    /* Refusals name the entry and what is wrong, never a token; the table is left as it was. */
    struct {
        const char *json, *want;
    } cases[] = {
        {"{\"x\": {\"project\": \"/srv\"}}", "entry \"x\": has no \"token\""},
        {"{\"x\": {\"token\": \"" TOK_A "x\", \"owner\": \"me\"}}", "entry \"x\": has a member"},
        {"{\"x\": {\"" TOK_A "\": 1}}", "entry \"x\": has a member other"},
        {"{\"x\": {\"token\": \"" TOK_A "x\", \"project\": \"ssh://-oProxyCommand=x/y\"}}",
         "entry \"x\": project URL has an invalid host"},
        {"{\"x\": {\"token\": \"" TOK_A "x\", \"project\": \"https://a/b#--upload-pack=c\"}}",
         "entry \"x\": project ref"},
        {"{\"x\": {\"token\": \"" TOK_A "x\", \"project\": \"ext::sh\"}}",
         "entry \"x\": project URL uses git's transport"},
        {"{\"x\": {\"token\": \"" TOK_A "x\", \"project\": 7}}", "\"project\" must be a string"},
        {"{\"x\": {\"token\": \"" TOK_A "x\", \"context\": \"a b\"}}", "\"context\" must be"},
        {"{\"x\": {\"token\": \"" TOK_A "x\", \"read_only\": \"yes\"}}", "\"read_only\" must be"},
        {"{\"x\": {\"token\": 12}}", "entry \"x\": value must be a string"},
        {"{\"x\": {\"token\": \"short\"}}", "entry \"x\": token is shorter"},
        {"[{\"token\": \"" TOK_A "x\"}]", "API_TOKENS_JSON[0]: value must be a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sr_tokens before;
        memcpy(&before, &t, sizeof(t));
        err.msg[0] = '\0';
        assert_int_equal(add_json(&t, cases[i].json, &err), -1);
        if (!strstr(err.msg, cases[i].want))
            fail_msg("case %zu: expected '%s' in '%s'", i, cases[i].want, err.msg);
        assert_null(strstr(err.msg, TOK_A));
        assert_memory_equal(&before, &t, sizeof(t));
    }
}

static void test_token_lengths(void **state)
{
    static struct sr_tokens t;
    static char tok[SR_TOKEN_MAX_LEN + 2];
    struct sr_core_err err;

    (void)state;
    sr_tokens_init(&t);
    assert_int_equal(sr_tokens_add_singleton(&t, "0123456789abcde", 15, &err), -1);
    assert_int_equal(sr_tokens_add_singleton(&t, "0123456789abcdef", 16, &err), 0);
    sr_tokens_init(&t);
    memset(tok, 'z', sizeof(tok));
    assert_int_equal(sr_tokens_add_singleton(&t, tok, SR_TOKEN_MAX_LEN + 1, &err), -1);
    assert_non_null(strstr(err.msg, "longer than 4096"));
    assert_int_equal(sr_tokens_add_singleton(&t, tok, SR_TOKEN_MAX_LEN, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_singleton),
        cmocka_unit_test(test_object_and_mixed),
        cmocka_unit_test(test_array_names_and_sha256),
        cmocka_unit_test(test_errors_name_entry_not_value),
        cmocka_unit_test(test_all_or_nothing),
        cmocka_unit_test(test_table_full),
        cmocka_unit_test(test_limits_and_arguments),
        cmocka_unit_test(test_token_lengths),
        cmocka_unit_test(test_entry_objects),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
