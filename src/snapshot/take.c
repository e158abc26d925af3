/*
 * Taking a tree snapshot (see snapshot.h and docs/snapshots.md).
 *
 * 1. Walk home/ and work/ into a tree (scan.c): names, types, modes,
 *    times, sizes; no content yet.
 * 2. Read every file in chunks and name each chunk by its SHA-256; the
 *    tree's fingerprint follows. Equal to the newest snapshot's: skipped.
 * 3. Read again into the packer (pack.c), which compresses, packs and
 *    uploads on its threads; a chunk met twice in the tree is stored once.
 * 4. Upload the tree, then the manifest naming it; then retention and
 *    garbage collection (gc.c).
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
#include "snapshot/gc.h"
#include "snapshot/internal.h"
#include "snapshot/pack.h"
#include "snapshot/progress.h"
#include "snapshot/scan.h"

#define fail sr_snap_fail

struct take {
    struct sr_store *s;
    const struct sr_snapshot_opts *o;
    const char *home;
    struct sr_tree t;
    struct sr_scan_stat *st;
    uint8_t *buf; /* one chunk */
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
        if (tk->t.e[i].type != 'f' || tk->t.e[i].gone)
            continue;
        int rc = read_file(tk, i, fn, arg, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- chunks met more than once in the tree: stored once ---- */

struct seen {
    uint32_t *slot; /* ref index + 1, 0 when empty */
    uint32_t mask;
    uint32_t *dup; /* per ref: the ref whose copy it uses, or UINT32_MAX */
};

static int seen_init(struct seen *sn, uint32_t nrefs)
{
    uint32_t cap = 1024;
    while (cap < nrefs * 2u && cap < (1u << 30))
        cap *= 2;
    sn->slot = calloc(cap, sizeof(*sn->slot));
    sn->dup = malloc((nrefs ? nrefs : 1) * sizeof(*sn->dup));
    sn->mask = cap - 1;
    if (!sn->slot || !sn->dup)
        return -1;
    for (uint32_t i = 0; i < nrefs; i++)
        sn->dup[i] = UINT32_MAX;
    return 0;
}

static void seen_free(struct seen *sn)
{
    free(sn->slot);
    free(sn->dup);
}

/* The first ref with this id, or UINT32_MAX after recording ri as the first. */
static uint32_t seen_first(struct seen *sn, const struct sr_tree *t, uint32_t ri)
{
    const uint8_t *id = t->r[ri].id;
    uint32_t h;
    memcpy(&h, id, sizeof(h));
    for (uint32_t i = h & sn->mask;; i = (i + 1) & sn->mask) {
        if (sn->slot[i] == 0) {
            sn->slot[i] = ri + 1;
            return UINT32_MAX;
        }
        uint32_t other = sn->slot[i] - 1;
        if (memcmp(t->r[other].id, id, 32) == 0)
            return other;
    }
}

struct packing {
    struct sr_packer *p;
    struct seen seen;
};

static int to_packer(struct take *tk, uint32_t ri, const uint8_t *data, size_t n, void *arg)
{
    struct packing *pk = arg;
    uint32_t first = seen_first(&pk->seen, &tk->t, ri);
    if (first != UINT32_MAX) {
        pk->seen.dup[ri] = first;
        return 0;
    }
    return sr_packer_add(pk->p, ri, data, n) < 0 ? SR_STORE_E_IO : 0;
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
    size_t zn = z ? ZSTD_compress(z, cap, raw, rn, SR_PACK_ZSTD_LEVEL) : 0;
    free(raw);
    if (!z || ZSTD_isError(zn)) {
        free(z);
        return fail(err, errlen, SR_STORE_E_IO, "cannot compress the tree");
    }
    *out = z;
    *outlen = zn;
    return 0;
}

int sr_snap_take_tree(struct sr_store *s, const struct sr_snapshot_opts *o, const char *home,
                      struct sr_manifest *m, bool found, struct sr_snapshot_result *r, char *err,
                      size_t errlen)
{
    struct take tk = {.s = s, .o = o, .home = home};
    struct packing pk = {0};
    struct sr_manifest_entry *dropped = calloc(SR_MANIFEST_MAX, sizeof(*dropped));
    uint8_t *tree = NULL;
    size_t treelen = 0;
    char fp[65], key[SR_MANIFEST_KEY_MAX], prefix[SR_MANIFEST_KEY_MAX + 8];
    int64_t started = (int64_t)time(NULL);
    int rc;
    sr_tree_init(&tk.t);
    tk.buf = malloc(SR_TREE_CHUNK);
    tk.md = EVP_MD_CTX_new();
    if (!dropped || !tk.buf || !tk.md) {
        rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
        goto out;
    }
    rc = sr_scan(home, o->work, o->excludes, &tk.t, &tk.st, err, errlen);
    if (rc < 0)
        goto out;
    if (tk.t.n == 0) {
        rc = fail(err, errlen, SR_STORE_E_IO, "nothing to snapshot: %s does not exist", home);
        goto out;
    }

    /* Name every chunk, then compare the content with the newest snapshot's. */
    sr_progress_begin(&tk.bar, o->progress, "reading", 0);
    rc = read_all(&tk, NULL, NULL, err, errlen);
    sr_progress_end(&tk.bar, tk.done);
    if (rc < 0)
        goto out;
    sr_tree_fingerprint(&tk.t, fp);
    if (!o->force && m->n && strcmp(m->e[0].fingerprint, fp) == 0) {
        const struct sr_manifest_entry *e = &m->e[0];
        r->skipped = true;
        snprintf(r->key, sizeof(r->key), "%s", e->key);
        snprintf(r->sha256, sizeof(r->sha256), "%s", e->sha256);
        r->size = e->size;
        r->total = e->total;
        r->files = e->files;
        r->created = e->created;
        sr_snap_note(r, "unchanged since %s: nothing uploaded", e->key);
        rc = 0;
        goto out;
    }

    /* Pack and upload the content. */
    sr_snap_packs_prefix(o, prefix, sizeof(prefix));
    if (seen_init(&pk.seen, tk.t.nr) < 0) {
        rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
        goto out;
    }
    rc = sr_packer_new(s, prefix, &tk.t, &pk.p, err, errlen);
    if (rc < 0)
        goto out;
    tk.done = 0;
    sr_progress_begin(&tk.bar, o->progress, "uploading", 0);
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
        uint32_t f = pk.seen.dup[i];
        if (f != UINT32_MAX) {
            uint8_t id[32];
            memcpy(id, tk.t.r[i].id, 32);
            uint32_t len = tk.t.r[i].len;
            tk.t.r[i] = tk.t.r[f];
            memcpy(tk.t.r[i].id, id, 32);
            tk.t.r[i].len = len;
        }
    }
    sr_tree_fingerprint(&tk.t, fp); /* what was read the second time */

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
         * collected by the next snapshot). */
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
    sr_snap_note(r, "%u new pack(s)", npacks);
    sr_snap_gc(s, o, m, &tk.t, dropped, ndropped, found, started, r);
    rc = 0;
out:
    if (pk.p) {
        uint32_t a;
        uint64_t b;
        char e2[64];
        sr_packer_finish(pk.p, &a, &b, e2, sizeof(e2));
    }
    seen_free(&pk.seen);
    free(tree);
    free(tk.buf);
    EVP_MD_CTX_free(tk.md);
    free(tk.st);
    sr_tree_free(&tk.t);
    free(dropped);
    return rc;
}
