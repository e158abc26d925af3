/*
 * Retention and garbage collection (see gc.h).
 */
#include "snapshot/gc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "snapshot/internal.h"
#include "snapshot/pack.h"

struct idset {
    uint8_t (*id)[32];
    size_t n, cap;
};

static int idset_add(struct idset *s, const uint8_t id[32])
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        uint8_t(*ni)[32] = realloc(s->id, nc * 32);
        if (!ni)
            return -1;
        s->id = ni;
        s->cap = nc;
    }
    memcpy(s->id[s->n++], id, 32);
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

static bool idset_has(const struct idset *s, const uint8_t id[32])
{
    return s->n && bsearch(id, s->id, s->n, 32, cmp_id) != NULL;
}

struct orphans {
    const struct sr_snapshot_opts *o;
    const struct sr_manifest *m;
    const struct idset *used;
    const struct idset *released; /* packs of the snapshots retention dropped */
    int64_t started;
    char part[SR_MANIFEST_KEY_MAX + 2];
    char packs[SR_MANIFEST_KEY_MAX + 8];
    char (*doomed)[SR_MANIFEST_KEY_MAX];
    size_t n, cap;
    bool oom;
};

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void doom(struct orphans *g, const char *key)
{
    if (g->oom)
        return;
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 64;
        char(*nd)[SR_MANIFEST_KEY_MAX] = realloc(g->doomed, nc * SR_MANIFEST_KEY_MAX);
        if (!nd) {
            g->oom = true;
            return;
        }
        g->doomed = nd;
        g->cap = nc;
    }
    snprintf(g->doomed[g->n++], SR_MANIFEST_KEY_MAX, "%s", key);
}

static int on_object(void *arg, const struct sr_store_object *ob)
{
    struct orphans *g = arg;
    size_t pl = strlen(g->packs), tl = strlen(g->part);
    bool doomed = false;
    /* Young (or of unknown age): maybe another writer's upload in progress. */
    bool old = ob->mtime != 0 && ob->mtime < g->started;
    if (strncmp(ob->key, g->packs, pl) == 0) {
        const char *h = ob->key + pl;
        uint8_t id[32];
        /* A pack a dropped snapshot used is nobody's upload in progress, whatever its age. */
        if (strlen(h) == 64 && all_hex(h, 64) && sr_hex_decode(h, 32, id) == 0 &&
            !idset_has(g->used, id) && (old || idset_has(g->released, id)))
            doomed = true;
    } else if (old && strncmp(ob->key, g->part, tl) == 0 && !strchr(ob->key + tl, '/')) {
        size_t kl = strlen(ob->key);
        if (kl > 5 && strcmp(ob->key + kl - 5, SR_SNAP_SUFFIX_TREE) == 0 &&
            sr_manifest_find(g->m, ob->key) < 0)
            doomed = true;
    }
    if (doomed)
        doom(g, ob->key);
    return 0;
}

void sr_snap_gc(struct sr_store *s, const struct sr_snapshot_opts *o, const struct sr_manifest *m,
                const struct sr_tree *newest, const struct sr_manifest_entry *dropped,
                uint32_t ndropped, bool manifest_was_read, bool orphans, int64_t started,
                struct sr_snapshot_result *r)
{
    char err[512];
    /* The packs the dropped snapshots used (their trees are read before they go). */
    struct idset released = {0};
    for (uint32_t i = 0; i < ndropped && manifest_was_read; i++) {
        struct sr_tree t;
        if (!sr_snap_is_tree(dropped[i].key) ||
            sr_snap_get_tree(s, o->cache, dropped[i].key, dropped[i].sha256, &t, err, sizeof(err)) <
                0)
            continue; /* its packs are collected once they are older than a snapshot's start */
        for (uint32_t k = 0; k < t.np; k++)
            idset_add(&released, t.p[k].id);
        sr_tree_free(&t);
    }
    if (released.n)
        qsort(released.id, released.n, 32, cmp_id);
    /* The snapshots retention dropped: their trees or archives (their packs follow below). */
    for (uint32_t i = 0; i < ndropped; i++) {
        if (sr_store_delete(s, dropped[i].key, err, sizeof(err)) < 0)
            sr_snap_note(r, "retention could not delete %s (%s); it stays in the store",
                         dropped[i].key, err);
    }
    if (ndropped)
        sr_snap_note(r, "retention removed %u older snapshot(s)", ndropped);
    if (!manifest_was_read) {
        free(released.id);
        return; /* we do not know what the store held: collect nothing */
    }

    /* Every pack a kept snapshot uses. */
    struct idset used = {0};
    bool ok = true;
    for (uint32_t i = 0; i < m->n && ok; i++) {
        const struct sr_manifest_entry *e = &m->e[i];
        if (!sr_snap_is_tree(e->key))
            continue;
        struct sr_tree t;
        const struct sr_tree *tp = NULL;
        if (i == 0 && newest) {
            tp = newest;
        } else if (sr_snap_get_tree(s, o->cache, e->key, e->sha256, &t, err, sizeof(err)) == 0) {
            tp = &t;
        } else {
            sr_snap_note(r,
                         "unused packs were not collected: the kept snapshot %s cannot be read "
                         "(%s)",
                         e->key, err);
            ok = false;
            break;
        }
        for (uint32_t k = 0; k < tp->np && ok; k++)
            if (idset_add(&used, tp->p[k].id) < 0)
                ok = false;
        if (tp != newest)
            sr_tree_free(&t);
    }
    if (!ok) {
        free(used.id);
        free(released.id);
        return;
    }
    if (used.n)
        qsort(used.id, used.n, 32, cmp_id);
    struct orphans g = {.o = o, .m = m, .used = &used, .released = &released, .started = started};
    snprintf(g.part, sizeof(g.part), "%s/%s/", o->prefix, o->partition);
    sr_snap_packs_prefix(o, g.packs, sizeof(g.packs));
    int rc = 0;
    if (orphans) {
        rc = sr_store_list(s, g.part, on_object, &g, err, sizeof(err));
    } else {
        /* Nothing unknown to look for: the dropped snapshots' packs no kept one uses. */
        char key[SR_MANIFEST_KEY_MAX + 8];
        for (size_t i = 0; i < released.n; i++) {
            if (i && memcmp(released.id[i], released.id[i - 1], 32) == 0)
                continue;
            if (!idset_has(&used, released.id[i])) {
                sr_pack_key(g.packs, released.id[i], key, sizeof(key));
                doom(&g, key);
            }
        }
    }
    if (rc < 0 && rc != SR_STORE_E_NOTFOUND) {
        sr_snap_note(r, "unused packs were not collected: the partition cannot be listed (%s)",
                     err);
    } else {
        uint32_t packs = 0, trees = 0, failed = 0;
        for (size_t i = 0; i < g.n; i++) {
            if (sr_store_delete(s, g.doomed[i], err, sizeof(err)) < 0)
                failed++;
            else if (strncmp(g.doomed[i], g.packs, strlen(g.packs)) == 0)
                packs++;
            else
                trees++;
        }
        if (packs || trees)
            sr_snap_note(r, "collected %u unused pack(s) and %u unlisted tree(s)", packs, trees);
        if (failed)
            sr_snap_note(r, "%u unused object(s) could not be deleted; the next snapshot retries",
                         failed);
    }
    free(g.doomed);
    free(used.id);
    free(released.id);
}
