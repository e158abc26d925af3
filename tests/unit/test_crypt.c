/*
 * Unit tests for encryption at rest: the key list parser (core/keylist.c),
 * the sealed object format (store/crypt.c) and the store's encryption layer
 * on the directory store: round trips of every size around the segment
 * boundaries, ranges, a flipped byte, an object moved to another key, a
 * truncated object, a wrong or missing key, rotation, and plaintext objects
 * with and without "plaintext" in the list.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/keylist.h"
#include "store/crypt.h"
#include "store/store.h"

/* Two keys (32 bytes each) in both base64 alphabets. */
#define K1 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define K2 "_-7t7Ovq6ejn5uXk4-Lh4N_e3dzb2tnY19bV1NPS0dA"

static char root[256];

static int setup(void **state)
{
    char tmpl[] = "/tmp/sr-crypt-test-XXXXXX";

    (void)state;
    if (mkdtemp(tmpl) == NULL)
        return -1;
    snprintf(root, sizeof(root), "%s/objects", tmpl);
    return 0;
}

static struct sr_store *open_store(const char *keys)
{
    struct sr_store_config c = {.kind = "file", .dir = root, .keys = keys};
    struct sr_store *s = NULL;
    char err[256];

    assert_int_equal(sr_store_open(&c, &s, err, sizeof(err)), 0);
    assert_int_equal(sr_store_create(s, err, sizeof(err)), 0);
    return s;
}

static void test_keylist(void **state)
{
    struct sr_keylist k;
    char err[256];

    (void)state;
    assert_int_equal(sr_keylist_parse(&k, K1, strlen(K1), "SERENA_SNAPSHOT_KEY", err, sizeof(err)),
                     0);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.key[0][0], 0);
    assert_int_equal(k.key[0][31], 31);
    assert_false(k.plaintext);
    const char *two = " " K2 " ,\n" K1 "\n,plaintext";
    assert_int_equal(sr_keylist_parse(&k, two, strlen(two), "X", err, sizeof(err)), 0);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.key[0][0], 0xff);
    assert_true(k.plaintext);
    /* Refusals name the position, never the value. */
    const char *bad[] = {"",
                         "plaintext," K1,
                         K1 ",," K2,
                         "AAAA",
                         K1 "AA",
                         K1 ",???",
                         K1 "," K1 "," K1 "," K1 "," K1 "," K1 "," K1 "," K1 "," K1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(
            sr_keylist_parse(&k, bad[i], strlen(bad[i]), "SERENA_SNAPSHOT_KEY", err, sizeof(err)),
            -1);
        assert_non_null(strstr(err, "SERENA_SNAPSHOT_KEY"));
        assert_null(strstr(err, "AAEC"));
        assert_int_equal(k.n, 0);
    }
    assert_int_equal(sr_keylist_parse(&k, K1 ",AAAA", strlen(K1 ",AAAA"), "S", err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "key 2"));
}

static void test_sizes(void **state)
{
    (void)state;
    uint64_t sizes[] = {0,
                        1,
                        SR_CRYPT_SEG - 1,
                        SR_CRYPT_SEG,
                        SR_CRYPT_SEG + 1,
                        3 * SR_CRYPT_SEG,
                        5 * SR_CRYPT_SEG + 17};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t n = 0;
        assert_int_equal(sr_crypt_plain_size(sr_crypt_sealed_size(sizes[i]), &n), 0);
        assert_true(n == sizes[i]);
    }
    uint64_t n;
    assert_int_equal(sr_crypt_plain_size(10, &n), -1);
    assert_int_equal(sr_crypt_plain_size(SR_CRYPT_HEADER + SR_CRYPT_SEG_STORED + SR_CRYPT_TAG, &n),
                     -1);
}

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7 + i / 251);
    return p;
}

static void test_memory_round_trip(void **state)
{
    struct sr_crypt *c;
    char err[256];

    (void)state;
    assert_int_equal(sr_crypt_new(K1, &c, err, sizeof(err)), 0);
    size_t sizes[] = {0, 1, 1000, SR_CRYPT_SEG, SR_CRYPT_SEG + 1, 2 * SR_CRYPT_SEG + 5};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i], sn = (size_t)sr_crypt_sealed_size(n), got = 0;
        uint8_t *in = pattern(n), *sealed = malloc(sn), *out = malloc(sn);
        assert_int_equal(sr_crypt_seal(c, "a/b", in, n, sealed), 0);
        assert_true(sr_crypt_is_sealed(sealed, sn));
        assert_int_equal(sr_crypt_open(c, "a/b", sealed, sn, out, &got, err, sizeof(err)), 0);
        assert_int_equal(got, n);
        assert_memory_equal(out, in, n);
        /* Another key (the object moved or swapped): refused. */
        assert_int_equal(sr_crypt_open(c, "a/c", sealed, sn, out, &got, err, sizeof(err)),
                         SR_STORE_E_CORRUPT);
        /* Any flipped byte after the magic: refused (in the key id: a wrong key). */
        for (size_t at = SR_CRYPT_MAGIC_LEN; at < sn; at += sn / 13 + 1) {
            sealed[at] ^= 0x20;
            int rc = sr_crypt_open(c, "a/b", sealed, sn, out, &got, err, sizeof(err));
            assert_true(rc == SR_STORE_E_CORRUPT || rc == SR_STORE_E_KEY);
            sealed[at] ^= 0x20;
        }
        /* Cut short at a segment boundary, or by one byte: refused. */
        if (n > SR_CRYPT_SEG) {
            assert_int_equal(sr_crypt_open(c, "a/b", sealed, SR_CRYPT_HEADER + SR_CRYPT_SEG_STORED,
                                           out, &got, err, sizeof(err)),
                             SR_STORE_E_CORRUPT);
        }
        assert_int_not_equal(sr_crypt_open(c, "a/b", sealed, sn - 1, out, &got, err, sizeof(err)),
                             0);
        free(in);
        free(sealed);
        free(out);
    }
    sr_crypt_free(c);
}

static void test_range(void **state)
{
    struct sr_crypt *c;
    char err[256];

    (void)state;
    assert_int_equal(sr_crypt_new(K1, &c, err, sizeof(err)), 0);
    size_t n = 3 * SR_CRYPT_SEG + 100, sn = (size_t)sr_crypt_sealed_size(n);
    uint8_t *in = pattern(n), *sealed = malloc(sn), *out = malloc(n);
    assert_int_equal(sr_crypt_seal(c, "k", in, n, sealed), 0);
    uint64_t cases[][2] = {{0, 1},
                           {5, 100},
                           {SR_CRYPT_SEG - 3, 10},
                           {SR_CRYPT_SEG, SR_CRYPT_SEG},
                           {2 * SR_CRYPT_SEG + 50, SR_CRYPT_SEG + 50},
                           {n - 1, 10},
                           {0, n}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t soff, slen;
        size_t got = 0, want = cases[i][0] + cases[i][1] > n ? n - cases[i][0] : cases[i][1];
        sr_crypt_range(cases[i][0], cases[i][1], &soff, &slen);
        size_t have = soff + slen > sn ? sn - soff : slen;
        assert_int_equal(sr_crypt_open_range(c, "k", sealed, sealed + soff, have, cases[i][0],
                                             cases[i][1], out, &got, err, sizeof(err)),
                         0);
        assert_int_equal(got, want);
        assert_memory_equal(out, in + cases[i][0], want);
    }
    free(in);
    free(sealed);
    free(out);
    sr_crypt_free(c);
}

static void put_get(struct sr_store *s, const char *key, const void *data, size_t n)
{
    char err[256], *back = NULL;
    size_t bn = 0;
    assert_int_equal(sr_store_put_bytes(s, key, data, n, err, sizeof(err)), 0);
    assert_int_equal(sr_store_get_bytes(s, key, n, &back, &bn, err, sizeof(err)), 0);
    assert_int_equal(bn, n);
    assert_memory_equal(back, data, n);
    free(back);
}

static char *read_raw(const char *key, size_t *n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, key);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 22);
    *n = fread(buf, 1, 1 << 22, f);
    fclose(f);
    return buf;
}

static void write_raw(const char *key, const void *data, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, key);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void test_store_layer(void **state)
{
    char err[512], *back = NULL;
    size_t bn = 0, rn = 0;
    uint64_t size = 0;
    (void)state;
    struct sr_store *s = open_store(K1);
    assert_true(sr_store_encrypted(s));
    const char *secret = "auth_secret: do-not-store-me-in-the-clear\n";
    put_get(s, "p/config.yml", secret, strlen(secret));
    char *raw = read_raw("p/config.yml", &rn);
    assert_true(sr_crypt_is_sealed(raw, rn));
    assert_null(memmem(raw, rn, "auth_secret", 11));
    free(raw);
    assert_int_equal(sr_store_head(s, "p/config.yml", &size, err, sizeof(err)), 0);
    assert_int_equal(size, strlen(secret));

    /* A file upload and download, across segments. */
    size_t n = 200000;
    uint8_t *big = pattern(n);
    char src[512], dst[512];
    snprintf(src, sizeof(src), "%s/../src.bin", root);
    snprintf(dst, sizeof(dst), "%s/../dst.bin", root);
    FILE *f = fopen(src, "wb");
    fwrite(big, 1, n, f);
    fclose(f);
    assert_int_equal(sr_store_put_file(s, "p/big", src, NULL, err, sizeof(err)), 0);
    assert_int_equal(sr_store_get_file(s, "p/big", dst, err, sizeof(err)), 0);
    f = fopen(dst, "rb");
    uint8_t *got = malloc(n + 1);
    assert_int_equal(fread(got, 1, n + 1, f), n);
    fclose(f);
    assert_memory_equal(got, big, n);
    size_t g = 0;
    assert_int_equal(sr_store_get_range(s, "p/big", 70000, 100000, got, &g, err, sizeof(err)), 0);
    assert_int_equal(g, 100000);
    assert_memory_equal(got, big + 70000, 100000);
    assert_int_equal(sr_store_get_range(s, "p/big", n - 10, 100, got, &g, err, sizeof(err)), 0);
    assert_int_equal(g, 10);

    /* A swapped object: the content of one key copied under another. */
    char *braw = read_raw("p/big", &rn);
    write_raw("p/other", braw, rn);
    assert_int_equal(sr_store_get_file(s, "p/other", dst, err, sizeof(err)), SR_STORE_E_CORRUPT);
    assert_int_equal(access(dst, F_OK), -1);
    assert_int_equal(sr_store_get_range(s, "p/other", 0, 10, got, &g, err, sizeof(err)),
                     SR_STORE_E_CORRUPT);
    /* A flipped byte. */
    braw[rn / 2] ^= 1;
    write_raw("p/big", braw, rn);
    assert_int_equal(sr_store_get_bytes(s, "p/big", n, &back, &bn, err, sizeof(err)),
                     SR_STORE_E_CORRUPT);
    assert_non_null(strstr(err, "damaged"));
    free(braw);

    /* A plaintext object under a key: refused unless "plaintext" is listed. */
    write_raw("p/plain", "{}", 2);
    assert_int_equal(sr_store_get_bytes(s, "p/plain", 10, &back, &bn, err, sizeof(err)),
                     SR_STORE_E_KEY);
    assert_non_null(strstr(err, "plaintext"));
    sr_store_close(s);

    /* No key: the sealed object says so; a wrong key says so; nothing is deleted. */
    s = open_store(NULL);
    assert_int_equal(sr_store_get_bytes(s, "p/config.yml", 1000, &back, &bn, err, sizeof(err)),
                     SR_STORE_E_KEY);
    assert_non_null(strstr(err, "no SERENA_SNAPSHOT_KEY"));
    sr_store_close(s);
    s = open_store(K2);
    assert_int_equal(sr_store_get_bytes(s, "p/config.yml", 1000, &back, &bn, err, sizeof(err)),
                     SR_STORE_E_KEY);
    assert_non_null(strstr(err, "not in SERENA_SNAPSHOT_KEY"));
    assert_null(strstr(err, "AAEC"));
    sr_store_close(s);
    free(read_raw("p/config.yml", &rn));

    /* Rotation: the new key writes, the old one still reads; plaintext when listed. */
    s = open_store(K2 "," K1 ",plaintext");
    assert_int_equal(sr_store_get_bytes(s, "p/config.yml", 1000, &back, &bn, err, sizeof(err)), 0);
    assert_int_equal(bn, strlen(secret));
    free(back);
    assert_int_equal(sr_store_get_bytes(s, "p/plain", 10, &back, &bn, err, sizeof(err)), 0);
    free(back);
    put_get(s, "p/new", "rotated", 7);
    sr_store_close(s);
    s = open_store(K1);
    assert_int_equal(sr_store_get_bytes(s, "p/new", 100, &back, &bn, err, sizeof(err)),
                     SR_STORE_E_KEY);
    sr_store_close(s);
    free(big);
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keylist),           cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_memory_round_trip), cmocka_unit_test(test_range),
        cmocka_unit_test(test_store_layer),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
