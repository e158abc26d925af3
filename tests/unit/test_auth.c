/*
 * Unit tests for the strict Authorization parser (src/core/auth.c): the
 * accepted shape, every way a header can fail to be one Bearer token68, and
 * the returned span pointing into the caller's header.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/auth.h"
#include "core/limits.h"

static int parse(const char *h, const char **tok, size_t *len)
{
    return sr_auth_parse_bearer(h, strlen(h), tok, len);
}

static void test_accepts(void **state)
{
    const char *tok = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(parse("Bearer abc", &tok, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(tok, "abc", 3);
    assert_int_equal(parse("bEaReR   a-._~+/Z09==  \t", &tok, &len), 0);
    assert_int_equal(len, 12);
    assert_memory_equal(tok, "a-._~+/Z09==", 12);
    assert_int_equal(parse("BEARER x", &tok, &len), 0);
    assert_int_equal(len, 1);
}

static void test_span_points_into_header(void **state)
{
    const char *h = "Bearer  tok123";
    const char *tok = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(parse(h, &tok, &len), 0);
    assert_ptr_equal(tok, h + 8);
    assert_int_equal(len, 6);
}

static void test_refuses(void **state)
{
    static const char *const bad[] = {
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Bearer\tabc",
        "Bearerabc",
        " Bearer abc",
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        "Bearer abc def",
        "Bearer abc,def",
        "Bearer abc, Bearer def",
        "Bearer \"abc\"",
        "Bearer abc=def",
        "Bearer =abc",
        "Bearer ====",
        "Bearer abc\r\n",
        "Bearer abc\x01",
        "Bearer ab\xc3\xa9",
        "Bearer sha256:abcd",
        "Bearer: abc",
        "Token abc",
        "Bearerx abc",
    };
    const char *tok = NULL;
    size_t len = 0, i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &tok, &len) != -1)
            fail_msg("accepted header #%zu", i);
    }
}

static void test_embedded_nul(void **state)
{
    const char h[] = "Bearer abc\0def";
    const char *tok = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(sr_auth_parse_bearer(h, sizeof(h) - 1, &tok, &len), -1);
    /* The length given is the length used: a shorter n ends before the NUL. */
    assert_int_equal(sr_auth_parse_bearer(h, 10, &tok, &len), 0);
    assert_int_equal(len, 3);
}

static void test_length_limit(void **state)
{
    static char h[7 + SR_TOKEN_MAX_LEN + 2];
    const char *tok = NULL;
    size_t len = 0;

    (void)state;
    memcpy(h, "Bearer ", 7);
    memset(h + 7, 'a', SR_TOKEN_MAX_LEN + 1);
    assert_int_equal(sr_auth_parse_bearer(h, 7 + SR_TOKEN_MAX_LEN, &tok, &len), 0);
    assert_int_equal(len, SR_TOKEN_MAX_LEN);
    assert_int_equal(sr_auth_parse_bearer(h, 7 + SR_TOKEN_MAX_LEN + 1, &tok, &len), -1);
}

static void test_null_arguments(void **state)
{
    const char *tok = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(sr_auth_parse_bearer(NULL, 0, &tok, &len), -1);
    assert_int_equal(sr_auth_parse_bearer("Bearer abc", 10, NULL, &len), -1);
    assert_int_equal(sr_auth_parse_bearer("Bearer abc", 10, &tok, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),      cmocka_unit_test(test_span_points_into_header),
        cmocka_unit_test(test_refuses),      cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_length_limit), cmocka_unit_test(test_null_arguments),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
