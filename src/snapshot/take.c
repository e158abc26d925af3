/*
 * Taking a tree snapshot (see snapshot.h and docs/snapshots.md).
 *
 * 1. The newest snapshot's tree (from the local cache when it is that one,
 *    else downloaded): its chunks are what the store already has. Packs it
 *    uses that are mostly garbage, too small and too many, or sealed with
 *    another key than the current one are not reused: their live chunks
 *    are stored again, from the files on disk.
 * 2. Walk home/ and work/ into a tree (scan.c): names, types, modes,
 *    times, sizes; no content yet.
 * 3. A file the cache recorded with the same size, times, inode and change
 *    time keeps its chunks without being read. Nothing else to read and the
 *    same fingerprint as the newest snapshot: skipped, nothing written.
 * 4. Every other file is read in chunks named by their SHA-256; a chunk the
 *    store already has (or that this snapshot met before) is referenced,
 *    any other goes to the packer (pack.c), which compresses, packs and
 *    uploads on its threads.
 * 5. The tree, then the manifest naming it; then retention and garbage
 *    collection (gc.c), and the local cache (cache.c).
 *
 * A file that changes while it is read is read as it is (a later snapshot,
 * after the backend stopped, has its final state); one that vanished or
 * was replaced by something else is left out.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "core/mem.h"
#include "snapshot/cache.h"
#include "snapshot/gc.h"
#include "snapshot/internal.h"
#include "snapshot/pack.h"
#include "snapshot/progress.h"
#include "snapshot/scan.h"

#define fail sr_snap_fail

/* Packs of the previous snapshot below this size are "small"; more than SMALL_MAX of them are
 * merged into fresh packs. A pack whose chunks still in use fill less than half of it is
 * rewritten too. So the packs a snapshot uses stay few and mostly live. */
#define PACK_SMALL     (1024u * 1024u)
#define PACK_SMALL_MAX 16

/* id -> ref index, open addressing. */
struct idmap {
    uint32_t *slot; /* ref index + 1, 0 when empty */
    uint32_t mask;
};

struct take {
    struct sr_store *s;
    const struct sr_snapshot_opts *o;
    const char *home;
    struct sr_tree t;
    struct sr_scan_stat *st;
    struct sr_tree *prev;  /* the newest snapshot's tree, or NULL */
    uint32_t *prev_to_new; /* prev pack index -> t's, UINT32_MAX when abandoned */
    struct idmap known;    /* chunk id -> prev ref, for chunks in kept packs */
    bool *need_read;       /* per entry of t */
    uint8_t *buf;          /* one chunk */
    EVP_MD_CTX *md;
    struct sr_progress bar;
    uint64_t done;
    char path[SR_TREE_PATH_MAX + 4200];
};

/* The file on disk of tree entry i: "home/a/b" is <home>/a/b. */
static void disk_path(struct take *tk, uint32_t i)
{
    const char *p = sr_tree_path(&tk->t, i);
    const char *root = p[0] == 'h' ? tk->home : tk->o->work;
    snprintf(tk->path, sizeof(tk->path), "%s%.*s", root, (int)(tk->t.e[i].plen - 4), p + 4);
}

static void chunk_id(struct take *tk, const uint8_t *data, size_t n, uint8_t id[32])
{
    unsigned int dl = 0;
    EVP_DigestInit_ex(tk->md, EVP_sha256(), NULL);
    EVP_DigestUpdate(tk->md, data, n);
    EVP_DigestFinal_ex(tk->md, id, &dl);
}

typedef int (*chunk_fn)(struct take *tk, uint32_t ri, const uint8_t *data, size_t n, void *arg);

/*
 * Read file entry i chunk by chunk, naming each chunk, and hand it to fn. The entry is marked
 * gone when the file vanished or is no longer the one the walk saw.
 */
static int read_file(struct take *tk, uint32_t i, chunk_fn fn, void *arg, char *err, size_t errlen)
{
    struct sr_tree_entry *e = &tk->t.e[i];
    struct stat st;
    disk_path(tk, i);
    int fd = open(tk->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e2 = errno;
        if (fd >= 0)
            close(fd);
        if (e2 == ENOENT || e2 == ELOOP || e2 == ENOTDIR) {
            e->gone = true;
            return 0;
        }
        return fail(err, errlen, SR_STORE_E_IO, "cannot read %s: %s", tk->path, strerror(e2));
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_dev != tk->st[i].dev ||
        (uint64_t)st.st_ino != tk->st[i].ino) {
        close(fd);
        e->gone = true; /* replaced since the walk: leave it out */
        return 0;
    }
    int rc = 0;
    for (uint32_t k = 0; k < e->nrefs && rc == 0; k++) {
        struct sr_tree_ref *r = &tk->t.r[e->ref0 + k];
        size_t got = 0;
        while (got < r->len) {
            ssize_t n =
                pread(fd, tk->buf + got, r->len - got, (off_t)((uint64_t)k * SR_TREE_CHUNK + got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = fail(err, errlen, SR_STORE_E_IO, "cannot read %s: %s", tk->path,
                          strerror(errno));
                break;
            }
            if (n == 0) {
                /* The file shrank while we read it: the tree promised its size, so the rest is
                 * zeros (named as such: the snapshot describes what it holds). */
                memset(tk->buf + got, 0, r->len - got);
                got = r->len;
                break;
            }
            got += (size_t)n;
        }
        if (rc)
            break;
        chunk_id(tk, tk->buf, r->len, r->id);
        tk->done += r->len;
        sr_progress_update(&tk->bar, tk->done);
        if (fn)
            rc = fn(tk, e->ref0 + k, tk->buf, r->len, arg);
    }
    close(fd);
    return rc;
}

static int read_all(struct take *tk, chunk_fn fn, void *arg, char *err, size_t errlen)
{
    for (uint32_t i = 0; i < tk->t.n; i++) {
        if (tk->t.e[i].type != 'f' || tk->t.e[i].gone || !tk->need_read[i])
            continue;
        int rc = read_file(tk, i, fn, arg, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- chunk maps ---- */

static int idmap_init(struct idmap *m, uint32_t n)
{
    uint32_t cap = 1024;
    while (cap < n * 2u && cap < (1u << 30))
        cap *= 2;
    m->slot = calloc(cap, sizeof(*m->slot));
    m->mask = cap - 1;
    return m->slot ? 0 : -1;
}

static void idmap_free(struct idmap *m)
{
    free(m->slot);
    m->slot = NULL;
}

/* The ref of `refs` with this id, or UINT32_MAX; when absent and add, ri is recorded. */
static uint32_t idmap_find(struct idmap *m, const struct sr_tree_ref *refs, const uint8_t *id,
                           uint32_t ri, bool add)
{
    uint32_t h;
    memcpy(&h, id, sizeof(h));
    for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
        if (m->slot[i] == 0) {
            if (add)
                m->slot[i] = ri + 1;
            return UINT32_MAX;
        }
        uint32_t other = m->slot[i] - 1;
        if (memcmp(refs[other].id, id, 32) == 0)
            return other;
    }
}

struct packing {
    struct sr_packer *p;
    struct idmap seen; /* chunks of this snapshot sent to the packer */
    uint32_t *dup;     /* per ref: the ref whose copy it uses, or UINT32_MAX */
    uint64_t reused;   /* bytes found in the store already */
};

/* A stored chunk's location, from the previous tree into ours. */
static void reuse(struct take *tk, uint32_t ri, const struct sr_tree_ref *from)
{
    struct sr_tree_ref *r = &tk->t.r[ri];
    uint32_t len = r->len;
    uint8_t id[32];
    memcpy(id, r->id, 32);
    *r = *from;
    r->pack = tk->prev_to_new[from->pack];
    r->len = len;
    memcpy(r->id, id, 32);
}

static int to_packer(struct take *tk, uint32_t ri, const uint8_t *data, size_t n, void *arg)
{
    struct packing *pk = arg;
    const uint8_t *id = tk->t.r[ri].id;
    if (tk->prev) {
        uint32_t k = idmap_find(&tk->known, tk->prev->r, id, 0, false);
        if (k != UINT32_MAX) {
            reuse(tk, ri, &tk->prev->r[k]);
            pk->reused += n;
            return 0;
        }
    }
    uint32_t first = idmap_find(&pk->seen, tk->t.r, id, ri, true);
    if (first != UINT32_MAX) {
        pk->dup[ri] = first;
        return 0;
    }
    return sr_packer_add(pk->p, ri, data, n) < 0 ? SR_STORE_E_IO : 0;
}

/* ---- the previous snapshot ---- */

/* Which of prev's packs to keep using, their place in t's pack table, and its chunk map. */
static int plan_reuse(struct take *tk, char *err, size_t errlen)
{
    struct sr_tree *p = tk->prev;
    uint8_t keyid[8];
    double *live = calloc(p->np ? p->np : 1, sizeof(*live));
    tk->prev_to_new = malloc((p->np ? p->np : 1) * sizeof(*tk->prev_to_new));
    if (!live || !tk->prev_to_new || idmap_init(&tk->known, p->nr) < 0) {
        free(live);
        return sr_snap_fail(err, errlen, SR_STORE_E_IO, "out of memory");
    }
    for (uint32_t i = 0; i < p->nr; i++) {
        const struct sr_tree_ref *r = &p->r[i];
        live[r->pack] += (double)r->len * r->frame_len / (r->frame_raw ? r->frame_raw : 1);
    }
    uint32_t small = 0;
    for (uint32_t k = 0; k < p->np; k++)
        small += p->p[k].size < PACK_SMALL;
    sr_store_key_id(tk->s, keyid);
    for (uint32_t k = 0; k < p->np; k++) {
        const struct sr_tree_pack *pk = &p->p[k];
        bool abandon = memcmp(pk->keyid, keyid, 8) != 0 || live[k] * 2 < (double)pk->size ||
                       (small > PACK_SMALL_MAX && pk->size < PACK_SMALL);
        tk->prev_to_new[k] = UINT32_MAX;
        if (abandon)
            continue;
        int64_t idx = sr_tree_add_pack(&tk->t, pk->id, pk->size, pk->keyid);
        if (idx < 0) {
            free(live);
            return sr_snap_fail(err, errlen, SR_STORE_E_IO, "out of memory");
        }
        tk->prev_to_new[k] = (uint32_t)idx;
    }
    for (uint32_t i = 0; i < p->nr; i++)
        if (tk->prev_to_new[p->r[i].pack] != UINT32_MAX)
            idmap_find(&tk->known, p->r, p->r[i].id, i, true);
    free(live);
    return 0;
}

/* Files the cache saw exactly as they are now keep their chunks without being read. */
static void use_cache(struct take *tk, const struct sr_cache *c)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < tk->t.n; i++) {
        struct sr_tree_entry *e = &tk->t.e[i];
        if (e->type != 'f')
            continue;
        int cmp = 1;
        while (j < c->t.n && (cmp = sr_tree_path_cmp(sr_tree_path(&c->t, j), c->t.e[j].plen,
                                                     sr_tree_path(&tk->t, i), e->plen)) < 0)
            j++;
        if (j >= c->t.n || cmp != 0)
            continue;
        const struct sr_tree_entry *ce = &c->t.e[j];
        const struct sr_scan_stat *a = &tk->st[i], *b = &c->st[j];
        if (ce->type != 'f' || !c->trusted[j] || ce->size != e->size || ce->mtime_s != e->mtime_s ||
            ce->mtime_ns != e->mtime_ns || a->dev != b->dev || a->ino != b->ino ||
            a->ctime_s != b->ctime_s || a->ctime_ns != b->ctime_ns)
            continue;
        bool kept = true;
        for (uint32_t k = 0; k < e->nrefs && kept; k++)
            kept = tk->prev_to_new[c->t.r[ce->ref0 + k].pack] != UINT32_MAX;
        if (!kept)
            continue; /* its chunks live in a pack being rewritten: read it */
        for (uint32_t k = 0; k < e->nrefs; k++) {
            memcpy(tk->t.r[e->ref0 + k].id, c->t.r[ce->ref0 + k].id, 32);
            reuse(tk, e->ref0 + k, &c->t.r[ce->ref0 + k]);
        }
        tk->need_read[i] = false;
    }
}

/* Drop the packs no ref uses from t's table (reused packs were added up front). */
static void prune_packs(struct sr_tree *t)
{
    uint32_t *map = calloc(t->np ? t->np : 1, sizeof(*map));
    if (!map)
        return; /* keeping unused entries is harmless */
    for (uint32_t i = 0; i < t->n; i++) {
        const struct sr_tree_entry *e = &t->e[i];
        if (e->gone)
            continue;
        for (uint32_t k = 0; k < e->nrefs; k++)
            map[t->r[e->ref0 + k].pack] = 1;
    }
    uint32_t n = 0;
    for (uint32_t k = 0; k < t->np; k++) {
        if (!map[k])
            continue;
        t->p[n] = t->p[k];
        map[k] = n++ + 1;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        const struct sr_tree_entry *e = &t->e[i];
        if (e->gone)
            continue;
        for (uint32_t k = 0; k < e->nrefs; k++)
            t->r[e->ref0 + k].pack = map[t->r[e->ref0 + k].pack] - 1;
    }
    t->np = n;
    free(map);
}

/* ---- the tree object ---- */

static int encode_tree(const struct sr_tree *t, uint8_t **out, size_t *outlen, char *err,
                       size_t errlen)
{
    uint8_t *raw = NULL;
    size_t rn = 0;
    if (sr_tree_encode(t, &raw, &rn) < 0)
        return fail(err, errlen, SR_STORE_E_IO, "out of memory encoding the tree");
    size_t cap = ZSTD_compressBound(rn);
    uint8_t *z = malloc(cap);
    /* Level 1: a tree is mostly digests, which no level compresses; the paths compress anyway. */
    size_t zn = z ? ZSTD_compress(z, cap, raw, rn, 1) : 0;
    free(raw);
    if (!z || ZSTD_isError(zn)) {
        free(z);
        return fail(err, errlen, SR_STORE_E_IO, "cannot compress the tree");
    }
    *out = z;
    *outlen = zn;
    return 0;
}

static void skipped(struct sr_snapshot_result *r, const struct sr_manifest_entry *e)
{
    r->skipped = true;
    snprintf(r->key, sizeof(r->key), "%s", e->key);
    snprintf(r->sha256, sizeof(r->sha256), "%s", e->sha256);
    r->size = e->size;
    r->total = e->total;
    r->files = e->files;
    r->created = e->created;
    sr_snap_note(r, "unchanged since %s: nothing uploaded", e->key);
}

/* Remember tree object obj (key, sha256) and what the walk saw of its files, for next time. own:
 * obj is tk->t's encoding. */
static void remember(struct take *tk, const char *key, const char *sha256, const uint8_t *obj,
                     size_t n, int64_t since, bool own)
{
    struct sr_tree dt;
    char err[128];
    if (!tk->o->cache)
        return;
    bool gone = false;
    for (uint32_t i = 0; i < tk->t.n && own && !gone; i++)
        gone = tk->t.e[i].gone;
    if (own && !gone) {
        /* Its entries are ours, in our order: no need to decode it again. */
        sr_cache_save(tk->o->cache, key, sha256, obj, n, &tk->t, tk->st, NULL, since);
        return;
    }
    sr_tree_init(&dt);
    if (sr_snap_decode_tree_obj(obj, n, &dt, err, sizeof(err)) == 0) {
        struct sr_scan_stat *st = calloc(dt.n ? dt.n : 1, sizeof(*st));
        bool *has = calloc(dt.n ? dt.n : 1, sizeof(*has));
        if (st && has) {
            sr_cache_align(&dt, &tk->t, tk->st, st, has);
            sr_cache_save(tk->o->cache, key, sha256, obj, n, &dt, st, has, since);
        }
        free(st);
        free(has);
    }
    sr_tree_free(&dt);
}

int sr_snap_take_tree(struct sr_store *s, const struct sr_snapshot_opts *o, const char *home,
                      struct sr_manifest *m, bool found, struct sr_snapshot_result *r, char *err,
                      size_t errlen)
{
    struct take tk = {.s = s, .o = o, .home = home};
    struct packing pk = {0};
    struct sr_cache cache;
    struct sr_tree prev;
    struct sr_manifest_entry *dropped = calloc(SR_MANIFEST_MAX, sizeof(*dropped));
    uint8_t *tree = NULL, *old = NULL;
    size_t treelen = 0, oldlen = 0;
    char fp[65], key[SR_MANIFEST_KEY_MAX], prefix[SR_MANIFEST_KEY_MAX + 8];
    int64_t started = (int64_t)time(NULL);
    const struct sr_manifest_entry *newest = m->n && sr_snap_is_tree(m->e[0].key) ? &m->e[0] : NULL;
    bool was_pending = sr_cache_pending(o->cache);
    bool orphans = !o->cache || was_pending;
    int rc;
    memset(&cache, 0, sizeof(cache));
    sr_tree_init(&tk.t);
    sr_tree_init(&prev);
    tk.buf = malloc(SR_TREE_CHUNK);
    tk.md = EVP_MD_CTX_new();
    if (!dropped || !tk.buf || !tk.md) {
        rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
        goto out;
    }

    /* What the store already holds: the newest tree, from the cache when it is that one. */
    if (newest && sr_cache_load(o->cache, &cache) == 0 && strcmp(cache.key, newest->key) == 0 &&
        strcmp(cache.sha256, newest->sha256) == 0) {
        tk.prev = &cache.t;
    } else if (newest) {
        sr_cache_free(&cache);
        orphans = true; /* a fresh disk, or another writer: look for leftovers too */
        rc = sr_snap_get_tree(s, o->cache, newest->key, newest->sha256, &prev, err, errlen);
        if (rc == 0)
            tk.prev = &prev;
        else if (rc == SR_STORE_E_CORRUPT || rc == SR_STORE_E_NOTFOUND)
            sr_snap_note(r,
                         "the newest snapshot's tree is unusable (%s): everything is stored "
                         "again",
                         err);
        else
            goto out; /* a key we lack, a store that refuses us: never write over it */
    }
    rc = sr_scan(home, o->work, o->excludes, &tk.t, &tk.st, err, errlen);
    if (rc < 0)
        goto out;
    if (tk.t.n == 0) {
        rc = fail(err, errlen, SR_STORE_E_IO, "nothing to snapshot: %s does not exist", home);
        goto out;
    }
    tk.need_read = malloc(tk.t.n * sizeof(*tk.need_read));
    pk.dup = malloc((tk.t.nr ? tk.t.nr : 1) * sizeof(*pk.dup));
    if (!tk.need_read || !pk.dup || idmap_init(&pk.seen, tk.t.nr) < 0) {
        rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < tk.t.n; i++)
        tk.need_read[i] = tk.t.e[i].type == 'f';
    for (uint32_t i = 0; i < tk.t.nr; i++)
        pk.dup[i] = UINT32_MAX;
    if (tk.prev) {
        rc = plan_reuse(&tk, err, errlen);
        if (rc < 0)
            goto out;
        if (cache.loaded)
            use_cache(&tk, &cache);
    }
    bool all_known = true;
    for (uint32_t i = 0; i < tk.t.n && all_known; i++)
        all_known = !tk.need_read[i];
    if (all_known && !o->force && newest) {
        sr_tree_fingerprint(&tk.t, fp);
        if (strcmp(newest->fingerprint, fp) == 0) {
            skipped(r, newest);
            rc = 0;
            goto out;
        }
    }

    /* Read what the cache cannot vouch for; store the chunks the store lacks. */
    sr_cache_pending_set(o->cache, true);
    sr_snap_packs_prefix(o, prefix, sizeof(prefix));
    rc = sr_packer_new(s, prefix, &tk.t, &pk.p, err, errlen);
    if (rc < 0)
        goto out;
    sr_progress_begin(&tk.bar, o->progress, "snapshot", 0);
    rc = read_all(&tk, to_packer, &pk, err, errlen);
    uint32_t npacks = 0;
    uint64_t packbytes = 0;
    char perr[512] = "";
    int prc = sr_packer_finish(pk.p, &npacks, &packbytes, perr, sizeof(perr));
    pk.p = NULL;
    sr_progress_end(&tk.bar, tk.done);
    if (prc < 0) {
        rc = fail(err, errlen, prc, "%s", perr);
        goto out;
    }
    if (rc < 0)
        goto out;
    for (uint32_t i = 0; i < tk.t.nr; i++) {
        uint32_t f = pk.dup[i];
        if (f != UINT32_MAX) {
            uint32_t len = tk.t.r[i].len;
            tk.t.r[i] = tk.t.r[f];
            tk.t.r[i].len = len;
        }
    }
    prune_packs(&tk.t);
    sr_tree_fingerprint(&tk.t, fp);
    if (npacks == 0 && !o->force && newest && strcmp(newest->fingerprint, fp) == 0) {
        /* Read, found unchanged: nothing to write; the cache now vouches for the files. */
        if (o->cache && sr_cache_tree_get(o->cache, newest->sha256, &old, &oldlen) == 0)
            remember(&tk, newest->key, newest->sha256, old, oldlen, started, false);
        if (!was_pending)
            sr_cache_pending_set(o->cache, false);
        skipped(r, newest);
        rc = 0;
        goto out;
    }

    /* The tree, then the manifest naming it. */
    rc = encode_tree(&tk.t, &tree, &treelen, err, errlen);
    if (rc < 0)
        goto out;
    int64_t now = (int64_t)time(NULL);
    rc = sr_snap_new_key(s, o, m, now, SR_SNAP_SUFFIX_TREE, key, sizeof(key), err, errlen);
    if (rc < 0)
        goto out;
    rc = sr_store_put_bytes(s, key, tree, treelen, err, errlen);
    if (rc < 0)
        goto out;
    struct sr_manifest_entry e = {0};
    uint8_t d[32];
    unsigned int dl = 0;
    EVP_Digest(tree, treelen, d, &dl, EVP_sha256(), NULL);
    sr_hex_encode(d, 32, e.sha256);
    e.sha256[64] = '\0';
    snprintf(e.key, sizeof(e.key), "%s", key);
    memcpy(e.fingerprint, fp, sizeof(e.fingerprint));
    e.size = treelen;
    e.created = now;
    for (uint32_t i = 0; i < tk.t.n; i++)
        e.files += !tk.t.e[i].gone && tk.t.e[i].plen > 4; /* members' own entries not counted */
    e.added = treelen + packbytes;
    e.total = treelen;
    for (uint32_t i = 0; i < tk.t.np; i++)
        e.total += tk.t.p[i].size;
    uint32_t ndropped = 0;
    sr_manifest_push(m, &e, o->retention ? o->retention : 1, dropped, &ndropped);
    rc = sr_snap_put_manifest(s, o, m, err, errlen);
    if (rc < 0) {
        /* The tree is stored but unnamed; removing it keeps the store tidy (its packs are
         * collected by the next snapshot, which the pending mark tells to look). */
        char e2[64];
        sr_store_delete(s, key, e2, sizeof(e2));
        goto out;
    }
    snprintf(r->key, sizeof(r->key), "%s", key);
    memcpy(r->sha256, e.sha256, sizeof(r->sha256));
    r->size = e.size;
    r->added = e.added;
    r->total = e.total;
    r->files = e.files;
    r->created = now;
    sr_snap_note(r, "%u new pack(s), %llu bytes already stored", npacks,
                 (unsigned long long)pk.reused);
    remember(&tk, key, e.sha256, tree, treelen, started, true);
    if (ndropped || orphans) {
        sr_snap_gc(s, o, m, &tk.t, dropped, ndropped, found, orphans, started, r);
        sr_cache_tree_prune(o->cache, m);
    }
    sr_cache_pending_set(o->cache, false);
    rc = 0;
out:
    if (pk.p) {
        uint32_t a;
        uint64_t b;
        char e2[64];
        sr_packer_finish(pk.p, &a, &b, e2, sizeof(e2));
    }
    idmap_free(&pk.seen);
    idmap_free(&tk.known);
    free(pk.dup);
    free(tk.need_read);
    free(tk.prev_to_new);
    free(tree);
    free(old);
    free(tk.buf);
    EVP_MD_CTX_free(tk.md);
    free(tk.st);
    sr_tree_free(&tk.t);
    sr_tree_free(&prev);
    sr_cache_free(&cache);
    free(dropped);
    return rc;
}
