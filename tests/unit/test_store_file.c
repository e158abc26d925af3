/*
 * Unit tests for the store interface on the local directory backend: key
 * rules, round trips, atomic replacement, byte-ordered listings with
 * prefixes, bounded reads, digest checks and idempotent deletes.
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

#include "store/store.h"

static char root[256];

static int setup(void **state)
{
    char tmpl[] = "/tmp/sr-store-test-XXXXXX";

    (void)state;
    if (mkdtemp(tmpl) == NULL)
        return -1;
    snprintf(root, sizeof(root), "%s/objects", tmpl);
    return 0;
}

static struct sr_store *open_store(void)
{
    struct sr_store_config c = {.kind = "file", .dir = root};
    struct sr_store *s = NULL;
    char err[256];

    assert_int_equal(sr_store_open(&c, &s, err, sizeof(err)), 0);
    return s;
}

static void test_config_errors(void **state)
{
    struct sr_store_config c = {.kind = "file", .dir = "relative/dir"};
    struct sr_store *s = NULL;
    char err[256];

    (void)state;
    assert_int_equal(sr_store_open(&c, &s, err, sizeof(err)), SR_STORE_E_CONFIG);
    assert_non_null(strstr(err, "absolute"));
    c.dir = NULL;
    assert_int_equal(sr_store_open(&c, &s, err, sizeof(err)), SR_STORE_E_CONFIG);
    c.kind = "ftp";
    assert_int_equal(sr_store_open(&c, &s, err, sizeof(err)), SR_STORE_E_CONFIG);
    assert_non_null(strstr(err, "ftp"));
    assert_null(s);
}

static void test_key_rules(void **state)
{
    static const char *bad[] = {"",    "/abs",   "a/../b",      "..",  "a//b",
                                "a/",  "sp ace", "uni\xc3\xa9", "./a", "a/./b",
                                "a/.", "q?x",    "a#tmp"};
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sr_store_key_check(bad[i], err, sizeof(err)), SR_STORE_E_CONFIG);
    assert_int_equal(sr_store_key_check("snapshots/ws-1/20240101T000000Z-1.tar.zst", err, 256), 0);
    assert_int_equal(sr_store_key_check(".hidden/a_b", err, 256), 0);
    assert_int_equal(sr_store_prefix_check("", err, 256), 0);
    assert_int_equal(sr_store_prefix_check("snap/", err, 256), 0);
    assert_int_equal(sr_store_prefix_check("snap/../", err, 256), SR_STORE_E_CONFIG);
}

static void test_round_trip(void **state)
{
    struct sr_store *s = open_store();
    char err[256];
    char *data = NULL;
    size_t n = 0;
    uint64_t size = 0;
    char bin[300];

    (void)state;
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (char)i;
    assert_int_equal(sr_store_put_bytes(s, "a/b/c.bin", bin, sizeof(bin), err, 256), 0);
    assert_int_equal(sr_store_head(s, "a/b/c.bin", &size, err, 256), 0);
    assert_int_equal(size, sizeof(bin));
    assert_int_equal(sr_store_get_bytes(s, "a/b/c.bin", 1000, &data, &n, err, 256), 0);
    assert_int_equal(n, sizeof(bin));
    assert_memory_equal(data, bin, sizeof(bin));
    free(data);
    /* Replacing is whole-object; too large for max is refused. */
    assert_int_equal(sr_store_put_bytes(s, "a/b/c.bin", "xy", 2, err, 256), 0);
    assert_int_equal(sr_store_get_bytes(s, "a/b/c.bin", 1, &data, &n, err, 256),
                     SR_STORE_E_CORRUPT);
    assert_null(data);
    assert_int_equal(sr_store_get_bytes(s, "a/b/c.bin", 2, &data, &n, err, 256), 0);
    assert_int_equal(n, 2);
    assert_string_equal(data, "xy");
    free(data);
    /* Empty objects. */
    assert_int_equal(sr_store_put_bytes(s, "empty", NULL, 0, err, 256), 0);
    assert_int_equal(sr_store_head(s, "empty", &size, err, 256), 0);
    assert_int_equal(size, 0);
    /* Missing keys, and a directory is not an object. */
    assert_int_equal(sr_store_head(s, "nope", &size, err, 256), SR_STORE_E_NOTFOUND);
    assert_int_equal(sr_store_head(s, "a/b", &size, err, 256), SR_STORE_E_NOTFOUND);
    assert_int_equal(sr_store_get_bytes(s, "nope", 10, &data, &n, err, 256), SR_STORE_E_NOTFOUND);
    assert_int_equal(sr_store_delete(s, "a/b/c.bin", err, 256), 0);
    assert_int_equal(sr_store_delete(s, "a/b/c.bin", err, 256), 0);
    assert_int_equal(sr_store_delete(s, "never/was", err, 256), 0);
    assert_int_equal(sr_store_head(s, "a/b/c.bin", &size, err, 256), SR_STORE_E_NOTFOUND);
    assert_int_equal(strncmp(sr_store_describe(s), "file:/", 6), 0);
    sr_store_close(s);
}

static void test_files_and_digest(void **state)
{
    struct sr_store *s = open_store();
    char err[256];
    char src[300], dst[300];
    FILE *fp;
    struct stat st;
    /* SHA-256 of "hello\n". */
    const char *good = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    const char *bad = "0000000000000000000000000000000000000000000000000000000000000000";

    (void)state;
    snprintf(src, sizeof(src), "%s.src", root);
    snprintf(dst, sizeof(dst), "%s.dst", root);
    fp = fopen(src, "w");
    assert_non_null(fp);
    fputs("hello\n", fp);
    fclose(fp);
    assert_int_equal(sr_store_put_file(s, "f/hello", src, good, err, 256), 0);
    assert_int_equal(sr_store_put_file(s, "f/bad", src, bad, err, 256), SR_STORE_E_CORRUPT);
    assert_non_null(strstr(err, "SHA-256"));
    assert_int_equal(sr_store_get_file(s, "f/bad", dst, err, 256), SR_STORE_E_NOTFOUND);
    assert_int_equal(sr_store_get_file(s, "f/hello", dst, err, 256), 0);
    assert_int_equal(stat(dst, &st), 0);
    assert_int_equal(st.st_size, 6);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(sr_store_put_file(s, "f/x", "/nonexistent/file", NULL, err, 256),
                     SR_STORE_E_IO);
    unlink(src);
    unlink(dst);
    sr_store_close(s);
}

struct collected {
    char keys[32][64];
    int n;
    int stop_after;
};

static int collect(void *arg, const struct sr_store_object *o)
{
    struct collected *c = arg;

    snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", o->key);
    c->n++;
    return c->stop_after > 0 && c->n >= c->stop_after ? 7 : 0;
}

static void test_list_order(void **state)
{
    static const char *keys[] = {"l/a/b", "l/a.txt", "l/a-x", "l/a", "l/ab/c",
                                 "l/b",   "l/A",     "l/a_",  "m/z", "l0"};
    /* Byte order of the full keys, as S3 lists them. */
    static const char *want[] = {"l/A", "l/a-x", "l/a.txt", "l/a/b", "l/a_", "l/ab/c", "l/b"};
    struct sr_store *s = open_store();
    struct collected c;
    char err[256];
    char stray[400];
    FILE *fp;

    (void)state;
    /* "l/a" as a file and "l/a/b" cannot both exist: skip the file. */
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(keys[i], "l/a") != 0)
            assert_int_equal(sr_store_put_bytes(s, keys[i], "x", 1, err, 256), 0);
    }
    assert_int_equal(sr_store_put_bytes(s, "l/a", "x", 1, err, 256), SR_STORE_E_IO);
    /* A leftover temporary file from a crashed writer is never listed. */
    snprintf(stray, sizeof(stray), "%s/l/b.#tmp.1.1", root);
    fp = fopen(stray, "w");
    assert_non_null(fp);
    fclose(fp);

    memset(&c, 0, sizeof(c));
    assert_int_equal(sr_store_list(s, "l/", collect, &c, err, 256), 0);
    assert_int_equal(c.n, 7);
    for (int i = 0; i < c.n; i++)
        assert_string_equal(c.keys[i], want[i]);

    memset(&c, 0, sizeof(c));
    assert_int_equal(sr_store_list(s, "l/a", collect, &c, err, 256), 0);
    assert_int_equal(c.n, 5);
    assert_string_equal(c.keys[0], "l/a-x");
    assert_string_equal(c.keys[4], "l/ab/c");

    memset(&c, 0, sizeof(c));
    assert_int_equal(sr_store_list(s, "", collect, &c, err, 256), 0);
    /* Earlier tests left "empty" and "f/hello" behind. */
    assert_int_equal(c.n, 11);
    for (int i = 1; i < c.n; i++)
        assert_true(strcmp(c.keys[i - 1], c.keys[i]) < 0);
    assert_string_equal(c.keys[9], "l0");
    assert_string_equal(c.keys[10], "m/z");

    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    assert_int_equal(sr_store_list(s, "l/", collect, &c, err, 256), 7);
    assert_int_equal(c.n, 2);

    memset(&c, 0, sizeof(c));
    assert_int_equal(sr_store_list(s, "nothing/here/", collect, &c, err, 256), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(sr_store_list(s, "../", collect, &c, err, 256), SR_STORE_E_CONFIG);
    unlink(stray);
    sr_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors), cmocka_unit_test(test_key_rules),
        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_files_and_digest),
        cmocka_unit_test(test_list_order),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
