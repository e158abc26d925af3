/*
 * libFuzzer harness for the snapshot tree decoder (src/snapshot/tree.c).
 *
 * An accepted tree must hold only what a restore relies on: entries in
 * strict component order, each under a member or a directory listed before
 * it, refs inside their pack and frame, link targets inside their member.
 * It must re-encode to bytes that decode to the same tree and the same
 * fingerprint, and its pack table must read alone the same (garbage
 * collection's shortcut). A refused one must come back empty with a message.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/archive.h"
#include "snapshot/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sr_tree t, u;
    char err[256];
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    err[0] = '\0';
    int rc = sr_tree_decode(&t, copy, size, err, sizeof(err));
    free(copy);
    uint8_t(*ids)[32] = NULL;
    uint32_t np = 0;
    int prc = sr_tree_decode_packs(data, size, &ids, &np);
    check(prc >= -1 && prc <= 1 && (prc == 0 || ids == NULL));
    if (rc != 0) {
        check(t.n == 0 && t.nr == 0 && t.np == 0 && err[0] != '\0');
        free(ids);
        return 0;
    }
    /* A tree that decodes has a pack table that decodes alone, the same. */
    check(prc == 0 && np == t.np);
    for (uint32_t k = 0; k < np; k++)
        check(memcmp(ids[k], t.p[k].id, 32) == 0);
    free(ids);
    for (uint32_t i = 0; i < t.n; i++) {
        const struct sr_tree_entry *e = &t.e[i];
        const char *p = sr_tree_path(&t, i);
        check(e->plen >= 4 && sr_tree_member(p, 4) && (e->plen == 4 || p[4] == '/'));
        check(e->plen > 4 || e->type == 'd');
        if (i > 0)
            check(sr_tree_path_cmp(sr_tree_path(&t, i - 1), t.e[i - 1].plen, p, e->plen) < 0);
        if (e->type == 'l')
            check(sr_archive_link_ok(p + 5, sr_tree_target(&t, i)));
        for (uint32_t k = 0; k < e->nrefs; k++) {
            const struct sr_tree_ref *r = &t.r[e->ref0 + k];
            check(r->pack < t.np && r->off + (uint64_t)r->len <= r->frame_raw &&
                  r->frame_raw <= SR_TREE_FRAME_MAX &&
                  r->frame_off + r->frame_len <= t.p[r->pack].size);
        }
        check(e->type != 'f' || e->nrefs == sr_tree_nchunks(e->size));
    }
    uint8_t *buf;
    size_t n;
    char fa[65], fb[65];
    check(sr_tree_encode(&t, &buf, &n) == 0);
    check(sr_tree_decode(&u, buf, n, err, sizeof(err)) == 0);
    check(u.n == t.n && u.nr == t.nr && u.np == t.np);
    check(t.nr == 0 || memcmp(u.r, t.r, t.nr * sizeof(*t.r)) == 0);
    sr_tree_fingerprint(&t, fa);
    sr_tree_fingerprint(&u, fb);
    check(strcmp(fa, fb) == 0);
    free(buf);
    sr_tree_free(&t);
    sr_tree_free(&u);
    return 0;
}
