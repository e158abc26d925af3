/*
 * Unit tests for src/snapshot/manifest.c: a written manifest parses back to
 * the same entries; retention drops the oldest; and every kind of damage
 * (bad JSON, wrong format, wrong types, bad digests, hostile keys, a key
 * named twice, too many entries) makes the whole manifest corrupt rather
 * than half-read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "snapshot/manifest.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static struct sr_manifest m, m2;
static char buf[SR_MANIFEST_MAX_BYTES];

static void entry(struct sr_manifest_entry *e, int i)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->key, sizeof(e->key), "p/shared/20260101T00000%dZ-%06d.tar.zst", i % 10, i);
    memcpy(e->sha256, HEX_A, 65);
    memcpy(e->fingerprint, HEX_B, 65);
    e->size = 1000u + (uint64_t)i;
    e->files = (uint64_t)i;
    e->created = 1700000000 + i;
}

static void test_round_trip_and_retention(void **state)
{
    (void)state;
    struct sr_manifest_entry e, dropped[SR_MANIFEST_MAX];
    uint32_t nd;
    size_t len;
    char err[256];
    memset(&m, 0, sizeof(m));
    snprintf(m.partition, sizeof(m.partition), "shared");
    for (int i = 1; i <= 7; i++) {
        entry(&e, i);
        sr_manifest_push(&m, &e, 5, dropped, &nd);
        assert_int_equal(nd, i > 5 ? 1 : 0);
        if (nd)
            assert_int_equal(dropped[0].files, (uint64_t)(i - 5));
    }
    assert_int_equal(m.n, 5);
    assert_int_equal(m.e[0].files, 7);
    assert_int_equal(sr_manifest_write(&m, buf, sizeof(buf), &len), 0);
    assert_int_equal(sr_manifest_parse(&m2, buf, len, err, sizeof(err)), 0);
    assert_int_equal(m2.n, 5);
    assert_string_equal(m2.partition, "shared");
    for (uint32_t i = 0; i < m.n; i++) {
        assert_string_equal(m2.e[i].key, m.e[i].key);
        assert_string_equal(m2.e[i].sha256, m.e[i].sha256);
        assert_int_equal(m2.e[i].size, m.e[i].size);
        assert_int_equal(m2.e[i].created, m.e[i].created);
    }
    assert_int_equal(sr_manifest_find(&m2, m.e[2].key), 2);
    assert_int_equal(sr_manifest_find(&m2, "nope"), -1);
    /* Lowering the retention drops several at once. */
    entry(&e, 8);
    sr_manifest_push(&m, &e, 2, dropped, &nd);
    assert_int_equal(m.n, 2);
    assert_int_equal(nd, 4);
    /* Too small a buffer is an error, not a truncated manifest. */
    assert_int_equal(sr_manifest_write(&m, buf, 40, &len), SR_MANIFEST_E_SPACE);
}

static void corrupt(const char *doc)
{
    char err[256] = "";
    assert_int_equal(sr_manifest_parse(&m, doc, strlen(doc), err, sizeof(err)),
                     SR_MANIFEST_E_CORRUPT);
    assert_int_equal(m.n, 0);
    assert_non_null(strstr(err, "corrupt"));
}

#define ENTRY(key, sha)                                                                            \
    "{\"key\":\"" key "\",\"sha256\":\"" sha "\",\"size\":1,\"created\":2,\"files\":3,"            \
    "\"fingerprint\":\"" HEX_B "\"}"

static void test_accepts(void **state)
{
    (void)state;
    char err[256];
    const char *ok =
        "{\"format\":1,\"partition\":\"p-1.x_y\",\"future\":[1,{}],\"snapshots\":[" ENTRY(
            "a/p-1.x_y/1.tar.zst", HEX_A) "," ENTRY("a/p-1.x_y/0.tar.zst", HEX_A) "]}";
    assert_int_equal(sr_manifest_parse(&m, ok, strlen(ok), err, sizeof(err)), 0);
    assert_int_equal(m.n, 2);
    assert_string_equal(m.e[1].key, "a/p-1.x_y/0.tar.zst");
    const char *empty = "{\"format\":1,\"partition\":\"p\",\"snapshots\":[]}";
    assert_int_equal(sr_manifest_parse(&m, empty, strlen(empty), err, sizeof(err)), 0);
    assert_int_equal(m.n, 0);
}

static void test_rejects(void **state)
{
    (void)state;
    corrupt("");
    corrupt("[]");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[]");
    corrupt("{\"format\":3,\"partition\":\"p\",\"snapshots\":[]}");
    corrupt("{\"format\":\"1\",\"partition\":\"p\",\"snapshots\":[]}");
    corrupt("{\"format\":1,\"partition\":\"a/b\",\"snapshots\":[]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":{}}");
    corrupt("{\"format\":1,\"format\":1,\"partition\":\"p\",\"snapshots\":[]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[1]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[" ENTRY("../x.tar.zst", HEX_A) "]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[" ENTRY("/abs.tar.zst", HEX_A) "]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[" ENTRY("a//b", HEX_A) "]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[" ENTRY("a b", HEX_A) "]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[" ENTRY("a\\u0000b", HEX_A) "]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[" ENTRY("k", "ABCD") "]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[" ENTRY(
        "k", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") "]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[" ENTRY("k", HEX_A) "," ENTRY(
        "k", HEX_A) "]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[{\"key\":\"k\",\"sha256\":\"" HEX_A
            "\",\"size\":-1,\"created\":2,\"files\":3,\"fingerprint\":\"" HEX_B "\"}]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[{\"key\":\"k\",\"sha256\":\"" HEX_A
            "\",\"size\":1.5,\"created\":2,\"files\":3,\"fingerprint\":\"" HEX_B "\"}]}");
    corrupt("{\"format\":1,\"partition\":\"p\",\"snapshots\":[{\"key\":\"k\",\"sha256\":\"" HEX_A
            "\",\"size\":1,\"created\":2,\"files\":3}]}");
    /* More entries than SR_MANIFEST_MAX. */
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                          "{\"format\":1,\"partition\":\"p\","
                          "\"snapshots\":[");
    for (int i = 0; i <= SR_MANIFEST_MAX; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                              "%s{\"key\":\"k%d\",\"sha256\":\"" HEX_A
                              "\",\"size\":1,\"created\":2,\"files\":3,\"fingerprint\":\"" HEX_B
                              "\"}",
                              i ? "," : "", i);
    snprintf(buf + n, sizeof(buf) - n, "]}");
    corrupt(buf);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(sr_manifest_key_ok("serena-mcp/default/v1/p/20260101T000000Z-000001.tar.zst"));
    assert_false(sr_manifest_key_ok("a/./b"));
    assert_false(sr_manifest_key_ok("a/"));
    assert_false(sr_manifest_key_ok(""));
    assert_true(sr_manifest_name_ok("shared", false));
    assert_false(sr_manifest_name_ok("a/b", false));
    assert_false(sr_manifest_name_ok("..", false));
    assert_true(sr_manifest_hex_ok(HEX_A));
    assert_false(sr_manifest_hex_ok(HEX_A "a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_retention),
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
