/*
 * Unit tests for the freestanding memory helpers: hex, base64url (RFC 4648
 * vectors in the URL alphabet, without padding), plain and constant-time
 * equality, and ASCII case-insensitive comparison.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/mem.h"

static void test_copy_set_len(void **state)
{
    char buf[16];

    (void)state;
    sr_mem_set(buf, 'x', sizeof(buf));
    sr_mem_copy(buf, "hello", 5);
    assert_memory_equal(buf, "helloxxxxxxxxxxx", 16);
    sr_mem_copy(buf, "zz", 0);
    assert_int_equal(buf[0], 'h');
    assert_int_equal(sr_str_len(""), 0);
    assert_int_equal(sr_str_len("serena"), 6);
}

static void test_hex(void **state)
{
    const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    uint8_t out[6];
    char hex[12];

    (void)state;
    sr_hex_encode(in, sizeof(in), hex);
    assert_memory_equal(hex, "00017f80abff", 12);
    assert_int_equal(sr_hex_decode("00017f80abff", 6, out), 0);
    assert_memory_equal(out, in, 6);
    assert_int_equal(sr_hex_decode("00017F80ABFF", 6, out), 0);
    assert_memory_equal(out, in, 6);
    assert_int_equal(sr_hex_decode("0g", 1, out), -1);
    assert_int_equal(sr_hex_decode("g0", 1, out), -1);
    assert_int_equal(sr_hex_decode(" 1", 1, out), -1);
    assert_int_equal(sr_hex_decode("", 0, out), 0);
}

static void check_b64(const char *in, const char *want)
{
    char out[64];
    size_t n = strlen(in);
    size_t got = sr_base64url_encode((const uint8_t *)in, n, out);

    assert_true(got <= ((n + 2) / 3) * 4);
    assert_int_equal(got, strlen(want));
    assert_memory_equal(out, want, got);
}

static void test_base64url_rfc4648(void **state)
{
    (void)state;
    check_b64("", "");
    check_b64("f", "Zg");
    check_b64("fo", "Zm8");
    check_b64("foo", "Zm9v");
    check_b64("foob", "Zm9vYg");
    check_b64("fooba", "Zm9vYmE");
    check_b64("foobar", "Zm9vYmFy");
}

static void test_base64url_alphabet(void **state)
{
    /* These bytes use indices 62 and 63: "+" and "/" in standard base64, "-" and "_" here. */
    const uint8_t in[] = {0xfb, 0xef, 0xbe, 0xfb, 0xef, 0xbe, 0xff};
    char out[16];
    size_t n;

    (void)state;
    n = sr_base64url_encode(in, sizeof(in), out);
    assert_int_equal(n, 10);
    assert_memory_equal(out, "--------_w", 10);
    for (size_t i = 0; i < n; i++)
        assert_true(out[i] != '+' && out[i] != '/' && out[i] != '=');
}

static void test_eq(void **state)
{
    (void)state;
    assert_true(sr_mem_eq("abc", "abc", 3));
    assert_false(sr_mem_eq("abc", "abd", 3));
    assert_true(sr_mem_eq("x", "y", 0));
    assert_true(sr_mem_eq_ct("abc", "abc", 3));
    assert_false(sr_mem_eq_ct("abc", "abd", 3));
    assert_false(sr_mem_eq_ct("xbc", "abc", 3));
    assert_true(sr_mem_eq_ct("x", "y", 0));
    /* A difference in a single bit of the last byte of a long buffer is found. */
    {
        uint8_t a[4096];
        uint8_t b[4096];

        memset(a, 0x5a, sizeof(a));
        memset(b, 0x5a, sizeof(b));
        assert_true(sr_mem_eq_ct(a, b, sizeof(a)));
        b[4095] ^= 0x01;
        assert_false(sr_mem_eq_ct(a, b, sizeof(a)));
        assert_false(sr_mem_eq(a, b, sizeof(a)));
    }
}

static void test_ascii_ieq(void **state)
{
    (void)state;
    assert_true(sr_ascii_ieq("Bearer", 6, "bearer", 6));
    assert_true(sr_ascii_ieq("CONTENT-type", 12, "content-TYPE", 12));
    assert_true(sr_ascii_ieq("", 0, "", 0));
    assert_false(sr_ascii_ieq("Bearer", 6, "Bearer ", 7));
    assert_false(sr_ascii_ieq("abc", 3, "abd", 3));
    /* Only ASCII letters fold: '@' and '`' are not the case pair of anything. */
    assert_false(sr_ascii_ieq("@", 1, "`", 1));
    assert_false(sr_ascii_ieq("[", 1, "{", 1));
    /* Bytes above 0x7f compare exactly. */
    assert_false(sr_ascii_ieq("\xc3\xa9", 2, "\xc3\x89", 2));
    assert_true(sr_ascii_ieq("\xc3\xa9", 2, "\xc3\xa9", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_set_len),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_base64url_rfc4648),
        cmocka_unit_test(test_base64url_alphabet),
        cmocka_unit_test(test_eq),
        cmocka_unit_test(test_ascii_ieq),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
