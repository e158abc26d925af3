/*
 * Unit tests for the freestanding SHA-256: the NIST FIPS 180-4 example
 * vectors, fed whole and in awkward chunk sizes so that the block buffering
 * in sr_sha256_update is exercised at every boundary.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/mem.h"
#include "core/sha256.h"

static void check_hex(const uint8_t digest[SR_SHA256_LEN], const char *want)
{
    char hex[2 * SR_SHA256_LEN + 1];

    sr_hex_encode(digest, SR_SHA256_LEN, hex);
    hex[2 * SR_SHA256_LEN] = '\0';
    assert_string_equal(hex, want);
}

static void check_oneshot(const char *msg, const char *want)
{
    uint8_t d[SR_SHA256_LEN];

    sr_sha256(msg, strlen(msg), d);
    check_hex(d, want);
}

static void test_empty(void **state)
{
    (void)state;
    check_oneshot("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_abc(void **state)
{
    (void)state;
    check_oneshot("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_448_bits(void **state)
{
    (void)state;
    check_oneshot("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_896_bits(void **state)
{
    (void)state;
    check_oneshot("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
                  "klmnopqrlmnopqrsmnopqrstnopqrstu",
                  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* One million 'a', fed in chunks of 1, 3, 7, 63, 64, 65, 127... bytes. */
static void test_million_a_chunked(void **state)
{
    static const size_t sizes[] = {1, 3, 7, 63, 64, 65, 127, 1000, 4099};
    char chunk[4099];
    struct sr_sha256 c;
    uint8_t d[SR_SHA256_LEN];
    size_t done = 0;
    size_t k = 0;

    (void)state;
    memset(chunk, 'a', sizeof(chunk));
    sr_sha256_init(&c);
    while (done < 1000000) {
        size_t n = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];

        if (n > 1000000 - done)
            n = 1000000 - done;
        sr_sha256_update(&c, chunk, n);
        done += n;
    }
    sr_sha256_final(&c, d);
    check_hex(d, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Every message length around the padding boundary, whole versus byte by byte. */
static void test_split_matches_oneshot(void **state)
{
    uint8_t msg[200];

    (void)state;
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 7 + 1);
    for (size_t n = 0; n <= sizeof(msg); n++) {
        uint8_t a[SR_SHA256_LEN];
        uint8_t b[SR_SHA256_LEN];
        struct sr_sha256 c;

        sr_sha256(msg, n, a);
        sr_sha256_init(&c);
        for (size_t i = 0; i < n; i++)
            sr_sha256_update(&c, msg + i, 1);
        sr_sha256_final(&c, b);
        assert_memory_equal(a, b, SR_SHA256_LEN);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_abc),
        cmocka_unit_test(test_448_bits),
        cmocka_unit_test(test_896_bits),
        cmocka_unit_test(test_million_a_chunked),
        cmocka_unit_test(test_split_matches_oneshot),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
