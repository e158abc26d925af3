/*
 * Restoring a tree snapshot (see snapshot.h and docs/snapshots.md).
 *
 * 1. Download the tree, check it against the manifest's SHA-256, decode and
 *    validate it (tree.c: no "..", no path through a link, links stay in
 *    their member).
 * 2. For each member (home, work) with a place to go: a fresh staging
 *    directory beside it; create every directory (0700 for now), link and
 *    file there. A file already on disk at the same path with the same size
 *    gives every chunk it holds (the local cache vouches for it, or each
 *    chunk is read and checked against its SHA-256): only what the disk
 *    lacks is downloaded.
 * 3. Download what is missing: a whole pack when most of it is needed, else
 *    the frames needed, by range. Two threads decompress each frame, check
 *    every chunk against its SHA-256 and write it into its file. Nothing
 *    unverified reaches a file.
 * 4. Modes and times, children before their directories; then each staged
 *    member is swapped in with rename(), and the local cache remembers the
 *    restored files (a snapshot right after reads none of them).
 *
 * Any failure removes the staging directories and leaves the member as it
 * was; the caller then falls back to an older snapshot.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "core/mem.h"
#include "snapshot/archive.h"
#include "snapshot/cache.h"
#include "snapshot/internal.h"
#include "snapshot/scan.h"
#include "snapshot/pack.h"
#include "snapshot/progress.h"

#define fail            sr_snap_fail
#define PACKS_HELD      3 /* packs downloaded and not yet fully scattered */
#define RESTORE_THREADS 2

struct member {
    const char *target; /* where it goes; NULL: not restored */
    char parent[4096], base[256];
    char work[4200];  /* the staging directory beside target */
    char stage[4300]; /* work/tree: the member being built */
    int fd;           /* of stage, once created */
    bool existed;     /* target was there: its files may give chunks */
};

struct need {
    uint32_t ri, entry, chunk;
};

struct hold {
    uint8_t *data;
    size_t n;
    uint32_t refs;
};

struct job {
    struct hold *h;
    const uint8_t *frame;
    uint32_t len, raw;
    uint32_t first, count; /* needs[first .. first + count) */
    struct job *next;
};

struct rst {
    struct sr_store *s;
    const struct sr_snapshot_opts *o;
    struct sr_tree t;
    struct member mem[2];
    struct need *needs;
    uint32_t nneeds;
    bool *have;            /* per ref: already written from the disk */
    uint8_t *deferred;     /* per entry: a one-chunk file its worker creates, writes and finishes */
    struct sr_cache cache; /* what the disk held at the last snapshot or restore */
    uint64_t local;        /* bytes taken from the disk */
    uint64_t fetched;      /* bytes downloaded */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *q, *qt;
    uint32_t held;
    bool closing, failed;
    int rc;
    char err[512];
    uint64_t written;
    struct sr_progress bar;
};

static int member_of(const struct sr_tree *t, uint32_t i)
{
    return sr_tree_path(t, i)[0] == 'h' ? 0 : 1;
}

/* The path of entry i inside its member's staging directory ("." for the member itself). */
static const char *rel_path(const struct sr_tree *t, uint32_t i)
{
    const struct sr_tree_entry *e = &t->e[i];
    return e->plen > 5 ? sr_tree_path(t, i) + 5 : ".";
}

__attribute__((format(printf, 3, 4))) static void failf(struct rst *x, int rc, const char *fmt, ...)
{
    pthread_mutex_lock(&x->mu);
    if (!x->failed) {
        x->failed = true;
        x->rc = rc;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err, sizeof(x->err), fmt, ap);
        va_end(ap);
    }
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

static void release(struct rst *x, struct hold *h)
{
    pthread_mutex_lock(&x->mu);
    if (--h->refs == 0) {
        free(h->data);
        free(h);
        x->held--;
        pthread_cond_broadcast(&x->cv);
    }
    pthread_mutex_unlock(&x->mu);
}

/* ------------------------------------------------------------- scatter */

static int scatter(struct rst *x, ZSTD_DCtx *dctx, EVP_MD_CTX *md, uint8_t *out,
                   const struct job *j)
{
    size_t n = ZSTD_decompressDCtx(dctx, out, SR_TREE_FRAME_MAX, j->frame, j->len);
    if (ZSTD_isError(n) || n != j->raw) {
        failf(x, SR_STORE_E_CORRUPT, "a frame of the snapshot does not decompress (%s)",
              ZSTD_isError(n) ? ZSTD_getErrorName(n) : "wrong length");
        return -1;
    }
    for (uint32_t k = j->first; k < j->first + j->count; k++) {
        const struct need *nd = &x->needs[k];
        const struct sr_tree_ref *r = &x->t.r[nd->ri];
        uint8_t id[32];
        unsigned int dl = 0;
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        EVP_DigestUpdate(md, out + r->off, r->len);
        EVP_DigestFinal_ex(md, id, &dl);
        if (memcmp(id, r->id, 32) != 0) {
            failf(x, SR_STORE_E_CORRUPT, "a chunk of %.*s does not match its SHA-256",
                  (int)x->t.e[nd->entry].plen, sr_tree_path(&x->t, nd->entry));
            return -1;
        }
        const struct member *m = &x->mem[member_of(&x->t, nd->entry)];
        const struct sr_tree_entry *e = &x->t.e[nd->entry];
        bool once = x->deferred[nd->entry];
        /* A one-chunk file on a fresh disk: created, written and finished here, with one open. */
        int fd = once
                     ? openat(m->fd, rel_path(&x->t, nd->entry),
                              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)
                     : openat(m->fd, rel_path(&x->t, nd->entry), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        off_t at = (off_t)((uint64_t)nd->chunk * SR_TREE_CHUNK);
        size_t done = 0;
        while (fd >= 0 && done < r->len) {
            ssize_t w = pwrite(fd, out + r->off + done, r->len - done, at + (off_t)done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        if (once && fd >= 0 && done == r->len) {
            struct timespec ts[2] = {{e->mtime_s, e->mtime_ns}, {e->mtime_s, e->mtime_ns}};
            if (fchmod(fd, e->mode) < 0 || futimens(fd, ts) < 0)
                done = 0;
        }
        int err = errno;
        if (fd >= 0)
            close(fd);
        if (done < r->len) {
            failf(x, SR_STORE_E_IO, "cannot write %.*s: %s", (int)e->plen,
                  sr_tree_path(&x->t, nd->entry), strerror(err));
            return -1;
        }
        pthread_mutex_lock(&x->mu);
        x->written += r->len;
        pthread_mutex_unlock(&x->mu);
    }
    return 0;
}

static void *worker(void *arg)
{
    struct rst *x = arg;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t *out = malloc(SR_TREE_FRAME_MAX);
    if (!dctx || !md || !out)
        failf(x, SR_STORE_E_IO, "out of memory");
    for (;;) {
        pthread_mutex_lock(&x->mu);
        while (!x->q && !x->closing)
            pthread_cond_wait(&x->cv, &x->mu);
        struct job *j = x->q;
        if (!j) {
            pthread_mutex_unlock(&x->mu);
            break;
        }
        x->q = j->next;
        if (!x->q)
            x->qt = NULL;
        bool skip = x->failed;
        pthread_mutex_unlock(&x->mu);
        if (!skip)
            scatter(x, dctx, md, out, j);
        release(x, j->h);
        free(j);
    }
    ZSTD_freeDCtx(dctx);
    EVP_MD_CTX_free(md);
    free(out);
    return NULL;
}

/* ------------------------------------------------------------- fetch */

static int cmp_need(const void *a, const void *b, void *arg)
{
    const struct sr_tree *t = arg;
    const struct sr_tree_ref *x = &t->r[((const struct need *)a)->ri];
    const struct sr_tree_ref *y = &t->r[((const struct need *)b)->ri];
    if (x->pack != y->pack)
        return x->pack < y->pack ? -1 : 1;
    if (x->frame_off != y->frame_off)
        return x->frame_off < y->frame_off ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

static void enqueue(struct rst *x, struct job *j)
{
    pthread_mutex_lock(&x->mu);
    if (x->qt)
        x->qt->next = j;
    else
        x->q = j;
    x->qt = j;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

/* Download every pack some need points into, and queue its frames for the workers. */
static int fetch(struct rst *x, char *err, size_t errlen)
{
    char prefix[SR_MANIFEST_KEY_MAX + 8], key[1200];
    sr_snap_packs_prefix(x->o, prefix, sizeof(prefix));
    uint32_t i = 0;
    while (i < x->nneeds) {
        uint32_t pack = x->t.r[x->needs[i].ri].pack;
        uint32_t end = i;
        while (end < x->nneeds && x->t.r[x->needs[end].ri].pack == pack)
            end++;
        pthread_mutex_lock(&x->mu);
        while (!x->failed && x->held >= PACKS_HELD)
            pthread_cond_wait(&x->cv, &x->mu);
        bool failed = x->failed;
        pthread_mutex_unlock(&x->mu);
        if (failed)
            return 0;
        const struct sr_tree_pack *p = &x->t.p[pack];
        sr_pack_key(prefix, p->id, key, sizeof(key));
        /* The frames needed: most of the pack, or only some of it? */
        uint64_t want = 0, lastoff = UINT64_MAX;
        for (uint32_t k = i; k < end; k++) {
            const struct sr_tree_ref *r = &x->t.r[x->needs[k].ri];
            if (r->frame_off != lastoff)
                want += r->frame_len;
            lastoff = r->frame_off;
        }
        struct hold *h = calloc(1, sizeof(*h));
        char *data = NULL;
        size_t n = 0;
        int rc;
        if (!h) {
            rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
        } else if (want * 2 >= p->size) {
            rc = sr_store_get_bytes(x->s, key, (size_t)p->size, &data, &n, err, errlen);
            if (rc == 0 && n != p->size)
                rc = fail(err, errlen, SR_STORE_E_CORRUPT,
                          "%s holds %zu bytes, the snapshot expects %llu", key, n,
                          (unsigned long long)p->size);
        } else {
            /* Only the frames needed, each by range, into a buffer laid out like the pack. */
            rc = (data = malloc((size_t)p->size ? (size_t)p->size : 1)) ? 0 : SR_STORE_E_IO;
            lastoff = UINT64_MAX;
            for (uint32_t k = i; k < end && rc == 0; k++) {
                const struct sr_tree_ref *r = &x->t.r[x->needs[k].ri];
                if (r->frame_off == lastoff)
                    continue;
                lastoff = r->frame_off;
                size_t got = 0;
                rc = sr_store_get_range(x->s, key, r->frame_off, r->frame_len, data + r->frame_off,
                                        &got, err, errlen);
                if (rc == 0 && got != r->frame_len)
                    rc = fail(err, errlen, SR_STORE_E_CORRUPT,
                              "%s is shorter than the snapshot expects", key);
            }
            if (rc == SR_STORE_E_IO && !data)
                fail(err, errlen, rc, "out of memory");
            n = (size_t)p->size;
        }
        if (rc < 0) {
            free(data);
            free(h);
            if (rc == SR_STORE_E_NOTFOUND)
                fail(err, errlen, rc, "%s, which the snapshot needs, is missing from the store",
                     key);
            return rc;
        }
        x->fetched += want * 2 >= p->size ? p->size : want;
        h->data = (uint8_t *)data;
        h->n = n;
        h->refs = 1; /* ours, while we queue */
        pthread_mutex_lock(&x->mu);
        x->held++;
        pthread_mutex_unlock(&x->mu);
        /* One job per frame. */
        while (i < end) {
            const struct sr_tree_ref *r = &x->t.r[x->needs[i].ri];
            uint32_t f = i;
            while (f < end && x->t.r[x->needs[f].ri].frame_off == r->frame_off)
                f++;
            struct job *j = calloc(1, sizeof(*j));
            if (!j) {
                release(x, h);
                return fail(err, errlen, SR_STORE_E_IO, "out of memory");
            }
            j->h = h;
            j->frame = h->data + r->frame_off;
            j->len = r->frame_len;
            j->raw = r->frame_raw;
            j->first = i;
            j->count = f - i;
            pthread_mutex_lock(&x->mu);
            h->refs++;
            pthread_mutex_unlock(&x->mu);
            enqueue(x, j);
            i = f;
        }
        release(x, h);
        pthread_mutex_lock(&x->mu);
        sr_progress_update(&x->bar, x->written);
        pthread_mutex_unlock(&x->mu);
    }
    return 0;
}

/* ------------------------------------------------------------- staging */

/* The cache's entry for tree entry i when the file on disk is still the one it recorded. */
static bool vouched(struct rst *x, uint32_t i, const struct stat *st, uint32_t *cj)
{
    const struct sr_cache *c = &x->cache;
    const struct sr_tree_entry *e = &x->t.e[i];
    if (!c->loaded)
        return false;
    /* Binary search: the cache's tree is in component order. */
    uint32_t lo = 0, hi = c->t.n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int cmp = sr_tree_path_cmp(sr_tree_path(&c->t, mid), c->t.e[mid].plen,
                                   sr_tree_path(&x->t, i), e->plen);
        if (cmp == 0) {
            const struct sr_tree_entry *ce = &c->t.e[mid];
            const struct sr_scan_stat *cs = &c->st[mid];
            *cj = mid;
            return c->trusted[mid] && ce->type == 'f' && ce->size == e->size &&
                   ce->mtime_s == (int64_t)st->st_mtim.tv_sec &&
                   ce->mtime_ns == (uint32_t)st->st_mtim.tv_nsec &&
                   cs->dev == (uint64_t)st->st_dev && cs->ino == (uint64_t)st->st_ino &&
                   cs->ctime_s == (int64_t)st->st_ctim.tv_sec &&
                   cs->ctime_ns == (uint32_t)st->st_ctim.tv_nsec;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/*
 * What the disk already holds of file entry i: the file at the same path in the directory being
 * replaced, if it has the same size. Each chunk that is the snapshot's (the cache vouches for the
 * whole file, or the chunk's SHA-256 matches) is copied into the staged file fd and needs no
 * download. Anything unexpected just means the chunk is downloaded.
 */
static void from_disk(struct rst *x, uint32_t i, int fd)
{
    const struct sr_tree_entry *e = &x->t.e[i];
    const struct member *m = &x->mem[member_of(&x->t, i)];
    char path[8400];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", m->target, rel_path(&x->t, i));
    int old = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (old < 0)
        return;
    if (fstat(old, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size) {
        close(old);
        return;
    }
    uint32_t cj = 0;
    bool whole = vouched(x, i, &st, &cj);
    if (whole) {
        const struct sr_tree_entry *ce = &x->cache.t.e[cj];
        for (uint32_t k = 0; k < e->nrefs && whole; k++)
            whole = memcmp(x->cache.t.r[ce->ref0 + k].id, x->t.r[e->ref0 + k].id, 32) == 0;
    }
    uint8_t *buf = malloc(SR_TREE_CHUNK);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    for (uint32_t k = 0; buf && md && k < e->nrefs; k++) {
        const struct sr_tree_ref *r = &x->t.r[e->ref0 + k];
        off_t at = (off_t)((uint64_t)k * SR_TREE_CHUNK);
        size_t got = 0;
        while (got < r->len) {
            ssize_t n = pread(old, buf + got, r->len - got, at + (off_t)got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got != r->len)
            break;
        if (!whole) {
            uint8_t id[32];
            unsigned int dl = 0;
            EVP_DigestInit_ex(md, EVP_sha256(), NULL);
            EVP_DigestUpdate(md, buf, r->len);
            EVP_DigestFinal_ex(md, id, &dl);
            if (memcmp(id, r->id, 32) != 0)
                continue;
        }
        if (pwrite(fd, buf, r->len, at) != (ssize_t)r->len)
            break;
        x->have[e->ref0 + k] = true;
        x->local += r->len;
    }
    EVP_MD_CTX_free(md);
    free(buf);
    close(old);
}

static int create_entries(struct rst *x, char *err, size_t errlen)
{
    for (uint32_t i = 0; i < x->t.n; i++) {
        const struct sr_tree_entry *e = &x->t.e[i];
        struct member *m = &x->mem[member_of(&x->t, i)];
        if (!m->target)
            continue;
        const char *rel = rel_path(&x->t, i);
        int rc = 0;
        if (e->plen == 4) {
            /* The member itself: its staging directory. */
            if (mkdir(m->stage, 0700) < 0 ||
                (m->fd = open(m->stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                rc = -1;
        } else if (e->type == 'd') {
            rc = mkdirat(m->fd, rel, 0700);
        } else if (e->type == 'l') {
            rc = symlinkat(sr_tree_target(&x->t, i), m->fd, rel);
        } else if (e->nrefs == 1 && !m->existed) {
            x->deferred[i] = 1; /* nothing on disk to reuse: its worker creates it */
        } else {
            int fd = openat(m->fd, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (fd < 0 || (e->size && ftruncate(fd, (off_t)e->size) < 0))
                rc = -1;
            else if (e->size)
                from_disk(x, i, fd);
            if (fd >= 0)
                close(fd);
        }
        if (rc < 0)
            return fail(err, errlen, SR_STORE_E_IO, "cannot create %.*s in %s: %s", (int)e->plen,
                        sr_tree_path(&x->t, i), m->work, strerror(errno));
    }
    return 0;
}

/* Modes and times, in reverse order: a directory's after everything inside it. */
static int finish_entries(struct rst *x, char *err, size_t errlen)
{
    for (uint32_t i = x->t.n; i-- > 0;) {
        const struct sr_tree_entry *e = &x->t.e[i];
        const struct member *m = &x->mem[member_of(&x->t, i)];
        if (!m->target || x->deferred[i])
            continue;
        const char *rel = rel_path(&x->t, i);
        struct timespec ts[2] = {{e->mtime_s, e->mtime_ns}, {e->mtime_s, e->mtime_ns}};
        int flags = e->type == 'l' ? AT_SYMLINK_NOFOLLOW : 0;
        if ((e->type != 'l' && fchmodat(m->fd, rel, e->mode, 0) < 0) ||
            utimensat(m->fd, rel, ts, flags) < 0)
            return fail(err, errlen, SR_STORE_E_IO, "cannot set the mode or time of %.*s: %s",
                        (int)e->plen, sr_tree_path(&x->t, i), strerror(errno));
    }
    return 0;
}

/* The restored files, as the local cache's record of the snapshot: a snapshot right after this
 * restore reads none of them. */
static void remember(struct rst *x, const struct sr_snapshot_opts *o, const char *home,
                     const struct sr_manifest_entry *c)
{
    struct sr_tree now;
    struct sr_scan_stat *st = NULL;
    uint8_t *obj = NULL;
    size_t n = 0;
    char err[128];
    if (!o->cache || !c->sha256[0] || sr_cache_tree_get(o->cache, c->sha256, &obj, &n) < 0)
        return;
    sr_tree_init(&now);
    if (sr_scan(home, o->work, o->excludes, &now, &st, err, sizeof(err)) == 0) {
        struct sr_scan_stat *al = calloc(x->t.n ? x->t.n : 1, sizeof(*al));
        bool *has = calloc(x->t.n ? x->t.n : 1, sizeof(*has));
        if (al && has) {
            sr_cache_align(&x->t, &now, st, al, has);
            sr_cache_save(o->cache, c->key, c->sha256, obj, n, &x->t, al, has, INT64_MAX);
        }
        free(al);
        free(has);
    }
    free(st);
    sr_tree_free(&now);
    free(obj);
}

int sr_snap_restore_tree(struct sr_store *s, const struct sr_snapshot_opts *o, const char *home,
                         const struct sr_manifest_entry *c, struct sr_snapshot_result *r, char *err,
                         size_t errlen)
{
    struct rst x = {.s = s, .o = o};
    pthread_t th[RESTORE_THREADS];
    uint32_t nth = 0;
    bool has[2] = {false, false};
    int rc;
    pthread_mutex_init(&x.mu, NULL);
    pthread_cond_init(&x.cv, NULL);
    sr_tree_init(&x.t);
    x.mem[0].fd = x.mem[1].fd = -1;
    rc = sr_snap_get_tree(s, o->cache, c->key, c->sha256, &x.t, err, errlen);
    if (rc < 0)
        goto out;
    for (uint32_t i = 0; i < x.t.n; i++)
        if (x.t.e[i].plen == 4)
            has[member_of(&x.t, i)] = true;
    x.mem[0].target = has[0] ? home : NULL;
    x.mem[1].target = has[1] ? o->work : NULL;
    if (has[1] && !o->work)
        sr_snap_note(r, "%s also holds a workspace (work/), not restored here (no --workspace)",
                     c->key);
    for (int k = 0; k < 2; k++) {
        struct member *m = &x.mem[k];
        if (!m->target)
            continue;
        rc = sr_snap_split(m->target, m->parent, sizeof(m->parent), m->base, sizeof(m->base), err,
                           errlen);
        if (rc < 0)
            goto out;
        struct stat tst;
        m->existed = lstat(m->target, &tst) == 0;
        sr_snap_clean_stale(m->parent, m->base);
        /* Built in a local buffer: gcc's -Wrestrict cannot tell the struct's fields apart. */
        char tmp[sizeof(m->stage)];
        snprintf(tmp, sizeof(m->work), "%s/.%s.restore-XXXXXX", m->parent, m->base);
        memcpy(m->work, tmp, sizeof(m->work));
        if (!mkdtemp(m->work)) {
            rc = fail(err, errlen, SR_STORE_E_IO,
                      "cannot create a staging directory next to %s: %s (its parent must be "
                      "writable)",
                      m->target, strerror(errno));
            m->work[0] = '\0';
            goto out;
        }
        snprintf(tmp, sizeof(tmp), "%s/tree", m->work);
        memcpy(m->stage, tmp, sizeof(m->stage));
    }
    x.have = calloc(x.t.nr ? x.t.nr : 1, sizeof(*x.have));
    x.deferred = calloc(x.t.n ? x.t.n : 1, 1);
    if (!x.have || !x.deferred) {
        rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
        goto out;
    }
    sr_cache_load(o->cache, &x.cache);
    rc = create_entries(&x, err, errlen);
    if (rc < 0)
        goto out;

    /* Every chunk of every restored file, in the order the packs hold them. */
    x.needs = malloc((x.t.nr ? x.t.nr : 1) * sizeof(*x.needs));
    if (!x.needs) {
        rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
        goto out;
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < x.t.n; i++) {
        const struct sr_tree_entry *e = &x.t.e[i];
        if (e->type != 'f' || !x.mem[member_of(&x.t, i)].target)
            continue;
        for (uint32_t k = 0; k < e->nrefs; k++)
            if (!x.have[e->ref0 + k])
                x.needs[x.nneeds++] = (struct need){e->ref0 + k, i, k};
        total += e->size;
    }
    qsort_r(x.needs, x.nneeds, sizeof(*x.needs), cmp_need, &x.t);
    sr_progress_begin(&x.bar, o->progress, "restoring", total);
    for (; nth < RESTORE_THREADS; nth++)
        if (pthread_create(&th[nth], NULL, worker, &x) != 0)
            break;
    if (nth == 0) {
        rc = fail(err, errlen, SR_STORE_E_IO, "cannot start the restore threads");
        goto out;
    }
    rc = fetch(&x, err, errlen);
    if (rc < 0)
        failf(&x, rc, "%s", err);
    pthread_mutex_lock(&x.mu);
    x.closing = true;
    pthread_cond_broadcast(&x.cv);
    pthread_mutex_unlock(&x.mu);
    for (uint32_t i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    nth = 0;
    sr_progress_end(&x.bar, x.written);
    if (x.failed) {
        rc = fail(err, errlen, x.rc, "%s cannot be restored: %s", c->key, x.err);
        goto out;
    }
    rc = finish_entries(&x, err, errlen);
    if (rc < 0)
        goto out;
    for (int k = 0; k < 2; k++) {
        struct member *m = &x.mem[k];
        if (!m->target)
            continue;
        close(m->fd);
        m->fd = -1;
        rc = sr_snap_swap_in(m->target, m->stage, m->parent, m->base, o->excludes,
                             k == 0 ? "home" : "work", err, errlen);
        if (rc < 0)
            goto out;
    }
    remember(&x, o, home, c);
    if (x.local)
        sr_snap_note(r, "%llu bytes were already on disk, %llu downloaded",
                     (unsigned long long)x.local, (unsigned long long)x.fetched);
    rc = 0;
out:
    for (int k = 0; k < 2; k++) {
        if (x.mem[k].fd >= 0)
            close(x.mem[k].fd);
        if (x.mem[k].work[0])
            sr_archive_rmtree(x.mem[k].work);
    }
    free(x.needs);
    free(x.have);
    free(x.deferred);
    sr_cache_free(&x.cache);
    sr_tree_free(&x.t);
    pthread_mutex_destroy(&x.mu);
    pthread_cond_destroy(&x.cv);
    return rc;
}
