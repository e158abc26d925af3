/*
 * Unit tests for snapshot trees (src/snapshot/tree.c) and the walk's
 * exclusions (src/snapshot/scan.c): encode/decode round trips, the
 * fingerprint's indifference to times and packs, and every refusal of the
 * decoder (order, duplicates, parents, members, "..", links out of their
 * member, refs out of their pack or frame, truncation, trailing bytes).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "snapshot/scan.h"
#include "snapshot/tree.h"

static void add(struct sr_tree *t, const char *path, char type, uint64_t size, const char *target)
{
    assert_true(sr_tree_add(t, path, strlen(path), type, 0644, 1700000000, 5, size, target,
                            target ? strlen(target) : 0) >= 0);
}

/* A valid tree: two members, a file of three chunks, a link, a nested directory. */
static void sample(struct sr_tree *t)
{
    uint8_t id[32] = {1}, kid[8] = {2};
    sr_tree_init(t);
    assert_true(sr_tree_add_pack(t, id, 10u * 1024 * 1024, kid) == 0);
    add(t, "home", 'd', 0, NULL);
    add(t, "home/a", 'f', 2 * SR_TREE_CHUNK + 10, NULL);
    add(t, "home/d", 'd', 0, NULL);
    add(t, "home/d/l", 'l', 0, "../a");
    add(t, "home/d-x", 'f', 0, NULL);
    add(t, "work", 'd', 0, NULL);
    add(t, "work/p", 'd', 0, NULL);
    add(t, "work/p/.git", 'd', 0, NULL);
    add(t, "work/p/x.py", 'f', 5, NULL);
    for (uint32_t i = 0; i < t->nr; i++) {
        struct sr_tree_ref *r = &t->r[i];
        r->id[0] = (uint8_t)i;
        r->pack = 0;
        r->frame_off = (uint64_t)i * SR_TREE_CHUNK;
        r->frame_len = 1000;
        r->frame_raw = SR_TREE_CHUNK;
        r->off = 0;
    }
}

static void test_round_trip(void **state)
{
    struct sr_tree t, u;
    uint8_t *buf;
    size_t n;
    char err[256], fa[65], fb[65];
    (void)state;
    sample(&t);
    assert_int_equal(t.nr, 4);
    assert_int_equal(t.r[2].len, 10);
    assert_int_equal(sr_tree_encode(&t, &buf, &n), 0);
    assert_int_equal(sr_tree_decode(&u, buf, n, err, sizeof(err)), 0);
    assert_int_equal(u.n, t.n);
    assert_int_equal(u.nr, t.nr);
    assert_int_equal(u.np, 1);
    for (uint32_t i = 0; i < t.n; i++) {
        assert_int_equal(u.e[i].plen, t.e[i].plen);
        assert_memory_equal(sr_tree_path(&u, i), sr_tree_path(&t, i), t.e[i].plen);
        assert_int_equal(u.e[i].type, t.e[i].type);
        assert_int_equal(u.e[i].size, t.e[i].size);
        assert_int_equal(u.e[i].mtime_ns, 5);
    }
    assert_memory_equal(u.r, t.r, t.nr * sizeof(*t.r));
    assert_string_equal(sr_tree_target(&u, 3), "../a");
    sr_tree_fingerprint(&t, fa);
    sr_tree_fingerprint(&u, fb);
    assert_string_equal(fa, fb);
    /* Times and pack placement are not content. */
    u.e[1].mtime_s++;
    u.r[0].frame_off++;
    sr_tree_fingerprint(&u, fb);
    assert_string_equal(fa, fb);
    /* A chunk, a mode, a target are. */
    u.r[1].id[5] ^= 1;
    sr_tree_fingerprint(&u, fb);
    assert_string_not_equal(fa, fb);
    /* The pack table alone, from the start of the encoding (what garbage collection reads). */
    uint8_t(*ids)[32] = NULL;
    uint32_t np = 0;
    assert_int_equal(sr_tree_decode_packs(buf, n, &ids, &np), 0);
    assert_int_equal(np, 1);
    assert_memory_equal(ids[0], t.p[0].id, 32);
    free(ids);
    assert_int_equal(sr_tree_decode_packs(buf, 20, &ids, &np), 1);
    assert_int_equal(sr_tree_decode_packs((const uint8_t *)"NOTATREE", 8, &ids, &np), -1);
    /* Every prefix of the encoding is refused, and so are trailing bytes. */
    for (size_t k = 0; k < n; k += (k < 64 ? 1 : 97)) {
        struct sr_tree v;
        assert_int_equal(sr_tree_decode(&v, buf, k, err, sizeof(err)), SR_TREE_E_CORRUPT);
        assert_int_equal(v.n, 0);
    }
    uint8_t *more = malloc(n + 1);
    memcpy(more, buf, n);
    more[n] = 0;
    struct sr_tree v;
    assert_int_equal(sr_tree_decode(&v, more, n + 1, err, sizeof(err)), SR_TREE_E_CORRUPT);
    free(more);
    free(buf);
    sr_tree_free(&t);
    sr_tree_free(&u);
}

/* Encode a tree built by `build` and expect the decoder to refuse it with `why` in the message. */
static void refused(void (*build)(struct sr_tree *), const char *why)
{
    struct sr_tree t, u;
    uint8_t *buf;
    size_t n;
    char err[256] = "";
    sample(&t);
    build(&t);
    assert_int_equal(sr_tree_encode(&t, &buf, &n), 0);
    assert_int_equal(sr_tree_decode(&u, buf, n, err, sizeof(err)), SR_TREE_E_CORRUPT);
    if (!strstr(err, why))
        fail_msg("expected '%s' in '%s'", why, err);
    free(buf);
    sr_tree_free(&t);
}

static void swap01(struct sr_tree *t)
{
    struct sr_tree_entry e = t->e[2];
    t->e[2] = t->e[4];
    t->e[4] = e;
}
static void dup_path(struct sr_tree *t)
{
    t->e[4] = t->e[2];
}
static void orphan(struct sr_tree *t)
{
    add(t, "work/q/x", 'f', 0, NULL);
}
static void through_link(struct sr_tree *t)
{
    /* "home/d/l" is a link: nothing may be listed under it. */
    t->n = 4;
    add(t, "home/d/l/x", 'f', 0, NULL);
}
static void not_member(struct sr_tree *t)
{
    add(t, "zzz", 'd', 0, NULL);
}
static void member_file(struct sr_tree *t)
{
    t->e[0].type = 'f';
}
static void dotdot(struct sr_tree *t)
{
    add(t, "work/p/..", 'd', 0, NULL);
}
static void link_out(struct sr_tree *t)
{
    add(t, "work/p/z", 'l', 0, "../../home/a");
}
static void link_abs(struct sr_tree *t)
{
    add(t, "work/p/z", 'l', 0, "/etc/passwd");
}
static void bad_pack(struct sr_tree *t)
{
    t->r[1].pack = 7;
}
static void outside_frame(struct sr_tree *t)
{
    t->r[1].off = SR_TREE_CHUNK - 5;
}
static void outside_pack(struct sr_tree *t)
{
    t->r[3].frame_off = t->p[0].size - 10;
}

static void test_refusals(void **state)
{
    (void)state;
    refused(swap01, "out of order");
    refused(dup_path, "out of order");
    refused(orphan, "parent");
    refused(through_link, "parent");
    refused(not_member, "top level");
    refused(member_file, "top level");
    refused(dotdot, "'..'");
    refused(link_out, "leaves");
    refused(link_abs, "leaves");
    refused(bad_pack, "outside");
    refused(outside_frame, "outside");
    refused(outside_pack, "outside");
}

static void test_order(void **state)
{
    (void)state;
    /* '/' sorts before every byte: a directory's contents come before its siblings. */
    assert_true(sr_tree_path_cmp("a/x", 3, "a-b", 3) < 0);
    assert_true(sr_tree_path_cmp("a", 1, "a/x", 3) < 0);
    assert_true(sr_tree_path_cmp("a/x", 3, "a/x", 3) == 0);
    assert_true(sr_tree_path_cmp("b", 1, "a/zzz", 5) > 0);
}

static void test_excludes(void **state)
{
    (void)state;
    const char *l = "home/logs, node_modules ,.venv/";
    assert_true(sr_scan_excluded(l, "home/logs", 9, "logs"));
    assert_false(sr_scan_excluded(l, "work/logs", 9, "logs"));
    assert_false(sr_scan_excluded(l, "home/x/logs", 11, "logs"));
    assert_true(sr_scan_excluded(l, "work/p/node_modules", 19, "node_modules"));
    assert_true(sr_scan_excluded(l, "home/node_modules", 17, "node_modules"));
    assert_true(sr_scan_excluded(l, "work/.venv", 10, ".venv"));
    assert_false(sr_scan_excluded(l, "work/venv", 9, "venv"));
    assert_false(sr_scan_excluded("", "home/logs", 9, "logs"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_excludes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
