/*
 * Snapshot trees: building, encoding, decoding with validation, and the
 * content fingerprint (see tree.h).
 *
 * Why a binary format of our own rather than JSON or a tar of stubs: a
 * tree lists every file of a workspace (tens of thousands), is rewritten
 * by every snapshot, and is mostly 32-byte digests; front-coded paths and
 * varints keep it small (a one-file change must add well under 1 MB to the
 * store), and a decoder that checks every field as it goes is short enough
 * to fuzz exhaustively.
 */
#include "snapshot/tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/mem.h"
#include "snapshot/archive.h"

void sr_tree_init(struct sr_tree *t)
{
    memset(t, 0, sizeof(*t));
}

void sr_tree_free(struct sr_tree *t)
{
    free(t->e);
    free(t->r);
    free(t->p);
    free(t->pool);
    memset(t, 0, sizeof(*t));
}

static int grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    uint64_t nc = *cap ? (uint64_t)*cap * 2 : 256;
    while (nc < need)
        nc *= 2;
    if (nc > UINT32_MAX)
        return -1;
    void *np = realloc(*p, (size_t)nc * elem);
    if (!np)
        return -1;
    *p = np;
    *cap = (uint32_t)nc;
    return 0;
}

static int pool_add(struct sr_tree *t, const char *s, size_t n, uint32_t *off)
{
    if (t->plen + n + 1 > UINT32_MAX)
        return -1;
    if (t->plen + n + 1 > t->pcap_bytes) {
        size_t nc = t->pcap_bytes ? t->pcap_bytes * 2 : 65536;
        while (nc < t->plen + n + 1)
            nc *= 2;
        char *np = realloc(t->pool, nc);
        if (!np)
            return -1;
        t->pool = np;
        t->pcap_bytes = nc;
    }
    memcpy(t->pool + t->plen, s, n);
    t->pool[t->plen + n] = '\0';
    *off = (uint32_t)t->plen;
    t->plen += n + 1;
    return 0;
}

int64_t sr_tree_add(struct sr_tree *t, const char *path, size_t plen, char type, uint32_t mode,
                    int64_t mtime_s, uint32_t mtime_ns, uint64_t size, const char *target,
                    size_t tlen)
{
    struct sr_tree_entry e = {0};
    e.type = type;
    e.mode = mode & 0777;
    e.mtime_s = mtime_s;
    e.mtime_ns = mtime_ns;
    if (plen > SR_TREE_PATH_MAX || tlen > SR_TREE_PATH_MAX || t->n >= SR_TREE_MAX_ENTRIES ||
        grow((void **)&t->e, &t->ecap, t->n + 1, sizeof(*t->e)) < 0 ||
        pool_add(t, path, plen, &e.path) < 0)
        return -1;
    e.plen = (uint32_t)plen;
    if (type == 'l' && pool_add(t, target, tlen, &e.target) < 0)
        return -1;
    e.tlen = type == 'l' ? (uint32_t)tlen : 0;
    if (type == 'f') {
        e.size = size;
        e.nrefs = sr_tree_nchunks(size);
        e.ref0 = t->nr;
        if ((uint64_t)t->nr + e.nrefs > UINT32_MAX ||
            grow((void **)&t->r, &t->rcap, t->nr + e.nrefs, sizeof(*t->r)) < 0)
            return -1;
        if (e.nrefs) /* an empty file has none, and no array may exist yet */
            memset(t->r + t->nr, 0, (size_t)e.nrefs * sizeof(*t->r));
        for (uint32_t i = 0; i < e.nrefs; i++) {
            uint64_t left = size - (uint64_t)i * SR_TREE_CHUNK;
            t->r[t->nr + i].len = left < SR_TREE_CHUNK ? (uint32_t)left : SR_TREE_CHUNK;
        }
        t->nr += e.nrefs;
    }
    t->e[t->n] = e;
    return t->n++;
}

int64_t sr_tree_add_pack(struct sr_tree *t, const uint8_t id[32], uint64_t size,
                         const uint8_t keyid[8])
{
    if (t->np >= SR_TREE_MAX_PACKS || grow((void **)&t->p, &t->pcap, t->np + 1, sizeof(*t->p)) < 0)
        return -1;
    memcpy(t->p[t->np].id, id, 32);
    t->p[t->np].size = size;
    memcpy(t->p[t->np].keyid, keyid, 8);
    return t->np++;
}

/* ------------------------------------------------------------ encoding */

struct obuf {
    uint8_t *b;
    size_t n, cap;
    bool oom;
};

static void put(struct obuf *o, const void *p, size_t n)
{
    if (o->oom)
        return;
    if (o->n + n > o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 65536;
        while (nc < o->n + n)
            nc *= 2;
        uint8_t *nb = realloc(o->b, nc);
        if (!nb) {
            o->oom = true;
            return;
        }
        o->b = nb;
        o->cap = nc;
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void put_v(struct obuf *o, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    put(o, b, n);
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

int sr_tree_encode(const struct sr_tree *t, uint8_t **out, size_t *outlen)
{
    struct obuf o = {0};
    put(&o, SR_TREE_MAGIC, sizeof(SR_TREE_MAGIC) - 1);
    put_v(&o, t->np);
    for (uint32_t i = 0; i < t->np; i++) {
        put(&o, t->p[i].id, 32);
        put_v(&o, t->p[i].size);
        put(&o, t->p[i].keyid, 8);
    }
    uint32_t live = 0;
    for (uint32_t i = 0; i < t->n; i++)
        live += !t->e[i].gone;
    put_v(&o, live);
    const char *prev = "";
    size_t prevn = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        const struct sr_tree_entry *e = &t->e[i];
        if (e->gone)
            continue;
        const char *p = sr_tree_path(t, i);
        size_t shared = 0;
        while (shared < prevn && shared < e->plen && prev[shared] == p[shared])
            shared++;
        put_v(&o, shared);
        put_v(&o, e->plen - shared);
        put(&o, p + shared, e->plen - shared);
        uint8_t ty = (uint8_t)e->type;
        put(&o, &ty, 1);
        put_v(&o, e->mode);
        put_v(&o, zigzag(e->mtime_s));
        put_v(&o, e->mtime_ns);
        if (e->type == 'f') {
            put_v(&o, e->size);
            for (uint32_t k = 0; k < e->nrefs; k++) {
                const struct sr_tree_ref *r = &t->r[e->ref0 + k];
                put(&o, r->id, 32);
                put_v(&o, r->pack);
                put_v(&o, r->frame_off);
                put_v(&o, r->frame_len);
                put_v(&o, r->frame_raw);
                put_v(&o, r->off);
            }
        } else if (e->type == 'l') {
            put_v(&o, e->tlen);
            put(&o, sr_tree_target(t, i), e->tlen);
        }
        prev = p;
        prevn = e->plen;
    }
    if (o.oom) {
        free(o.b);
        return SR_TREE_E_NOMEM;
    }
    *out = o.b;
    *outlen = o.n;
    return 0;
}

/* ------------------------------------------------------------ decoding */

struct ibuf {
    const uint8_t *b;
    size_t n, at;
    bool bad;
};

static const uint8_t *take(struct ibuf *in, size_t n)
{
    if (in->bad || n > in->n - in->at) {
        in->bad = true;
        return NULL;
    }
    const uint8_t *p = in->b + in->at;
    in->at += n;
    return p;
}

static uint64_t get_v(struct ibuf *in)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        const uint8_t *p = take(in, 1);
        if (!p)
            return 0;
        if (shift == 63 && (*p & 0x7e)) {
            in->bad = true;
            return 0;
        }
        v |= (uint64_t)(*p & 0x7f) << shift;
        if (!(*p & 0x80))
            return v;
    }
    in->bad = true;
    return 0;
}

__attribute__((format(printf, 3, 4))) static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return SR_TREE_E_CORRUPT;
}

bool sr_tree_member(const char *name, size_t n)
{
    return n == 4 && (memcmp(name, "home", 4) == 0 || memcmp(name, "work", 4) == 0);
}

int sr_tree_path_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    for (size_t i = 0; i < n; i++) {
        unsigned char ca = a[i] == '/' ? 0 : (unsigned char)a[i];
        unsigned char cb = b[i] == '/' ? 0 : (unsigned char)b[i];
        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
    return an == bn ? 0 : (an < bn ? -1 : 1);
}

/* Components non-empty, not "." or "..", no NUL; depth bounded. */
static bool components_ok(const char *p, size_t n)
{
    size_t start = 0;
    int depth = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] == '\0')
            return false;
        if (i == n || p[i] == '/') {
            size_t len = i - start;
            if (len == 0 || (len == 1 && p[start] == '.') ||
                (len == 2 && p[start] == '.' && p[start + 1] == '.'))
                return false;
            if (++depth > SR_TREE_DEPTH_MAX)
                return false;
            start = i + 1;
        }
    }
    return true;
}

int sr_tree_decode(struct sr_tree *t, const uint8_t *data, size_t n, char *err, size_t errlen)
{
    struct ibuf in = {data, n, 0, false};
    int rc = SR_TREE_E_CORRUPT;
    char *path = malloc(SR_TREE_PATH_MAX + 1);
    uint32_t *stack = malloc((SR_TREE_DEPTH_MAX + 2) * sizeof(*stack)); /* dir entry indices */
    uint32_t depth = 0;
    size_t plen = 0;
    uint64_t content = 0;
    sr_tree_init(t);
    if (!path || !stack) {
        rc = SR_TREE_E_NOMEM;
        bad(err, errlen, "out of memory");
        goto out;
    }
    const uint8_t *magic = take(&in, sizeof(SR_TREE_MAGIC) - 1);
    if (!magic || memcmp(magic, SR_TREE_MAGIC, sizeof(SR_TREE_MAGIC) - 1) != 0) {
        bad(err, errlen, "not a snapshot tree (bad magic)");
        goto out;
    }
    uint64_t np = get_v(&in);
    if (in.bad || np > SR_TREE_MAX_PACKS || np > (in.n - in.at) / 41) {
        bad(err, errlen, "bad pack count");
        goto out;
    }
    for (uint64_t i = 0; i < np; i++) {
        const uint8_t *id = take(&in, 32);
        uint64_t size = get_v(&in);
        const uint8_t *kid = take(&in, 8);
        if (in.bad || size > SR_TREE_PACK_MAX) {
            bad(err, errlen, "bad pack %llu", (unsigned long long)i);
            goto out;
        }
        if (sr_tree_add_pack(t, id, size, kid) < 0) {
            rc = SR_TREE_E_NOMEM;
            bad(err, errlen, "out of memory");
            goto out;
        }
    }
    uint64_t ne = get_v(&in);
    if (in.bad || ne > SR_TREE_MAX_ENTRIES || ne > (in.n - in.at) / 5) {
        bad(err, errlen, "bad entry count");
        goto out;
    }
    for (uint64_t i = 0; i < ne; i++) {
        uint64_t shared = get_v(&in), sfx = get_v(&in);
        if (in.bad || shared > plen || sfx > SR_TREE_PATH_MAX - shared) {
            bad(err, errlen, "entry %llu: bad path lengths", (unsigned long long)i);
            goto out;
        }
        const uint8_t *s = take(&in, (size_t)sfx);
        const uint8_t *ty = take(&in, 1);
        uint64_t mode = get_v(&in), ms = get_v(&in), mns = get_v(&in);
        if (in.bad || mode > 0777 || mns > 999999999u) {
            bad(err, errlen, "entry %llu: truncated or bad mode/time", (unsigned long long)i);
            goto out;
        }
        /* path still holds the previous entry's: keep its shared prefix, add the suffix. */
        size_t newlen = (size_t)(shared + sfx);
        memcpy(path + shared, s, (size_t)sfx);
        path[newlen] = '\0';
        if (!components_ok(path, newlen)) {
            bad(err, errlen, "entry %llu: a path is empty or has an empty, '.' or '..' component",
                (unsigned long long)i);
            goto out;
        }
        if (i > 0 && sr_tree_path_cmp(t->pool + t->e[t->n - 1].path, t->e[t->n - 1].plen, path,
                                      newlen) >= 0) {
            bad(err, errlen, "entry %llu (%s): out of order or listed twice", (unsigned long long)i,
                path);
            goto out;
        }
        /* The parent: a directory entry still open on the stack, or none for a member. */
        const char *slash = memrchr(path, '/', newlen);
        size_t parent_len = slash ? (size_t)(slash - path) : 0;
        while (depth > 0) {
            const struct sr_tree_entry *d = &t->e[stack[depth - 1]];
            if (d->plen < newlen && path[d->plen] == '/' &&
                memcmp(t->pool + d->path, path, d->plen) == 0)
                break;
            depth--;
        }
        if (!slash) {
            if (!sr_tree_member(path, newlen) || *ty != 'd') {
                bad(err, errlen, "entry %s: the top level holds only the directories home and work",
                    path);
                goto out;
            }
        } else if (depth == 0 || t->e[stack[depth - 1]].plen != parent_len) {
            bad(err, errlen, "entry %s: its parent is not a directory listed before it", path);
            goto out;
        }
        char type = (char)*ty;
        uint64_t size = 0;
        const uint8_t *target = NULL;
        uint64_t tlen = 0;
        if (type == 'f') {
            size = get_v(&in);
            if (in.bad || size > SR_TREE_MAX_CONTENT || (content += size) > SR_TREE_MAX_CONTENT) {
                bad(err, errlen, "entry %s: bad size", path);
                goto out;
            }
        } else if (type == 'l') {
            tlen = get_v(&in);
            if (in.bad || tlen > SR_TREE_PATH_MAX || !(target = take(&in, (size_t)tlen))) {
                bad(err, errlen, "entry %s: bad link target", path);
                goto out;
            }
            char tbuf[SR_TREE_PATH_MAX + 1];
            memcpy(tbuf, target, (size_t)tlen);
            tbuf[tlen] = '\0';
            /* Relative to the member: a link in home/ stays in home/. */
            const char *within = (const char *)memchr(path, '/', newlen) + 1;
            if (strlen(tbuf) != tlen || !sr_archive_link_ok(within, tbuf)) {
                bad(err, errlen, "entry %s: the link target leaves its directory", path);
                goto out;
            }
        } else if (type != 'd') {
            bad(err, errlen, "entry %s: unknown type", path);
            goto out;
        }
        if (type == 'f' && (uint64_t)sr_tree_nchunks(size) > (in.n - in.at) / 37) {
            bad(err, errlen, "entry %s: truncated", path);
            goto out;
        }
        int64_t idx = sr_tree_add(t, path, newlen, type, (uint32_t)mode, unzigzag(ms),
                                  (uint32_t)mns, size, (const char *)target, (size_t)tlen);
        if (idx < 0) {
            rc = SR_TREE_E_NOMEM;
            bad(err, errlen, "out of memory");
            goto out;
        }
        plen = newlen;
        const struct sr_tree_entry *e = &t->e[idx];
        for (uint32_t k = 0; k < e->nrefs; k++) {
            struct sr_tree_ref *r = &t->r[e->ref0 + k];
            const uint8_t *id = take(&in, 32);
            uint64_t pack = get_v(&in), foff = get_v(&in), flen = get_v(&in), fraw = get_v(&in),
                     off = get_v(&in);
            if (in.bad || pack >= t->np || fraw > SR_TREE_FRAME_MAX || flen == 0 ||
                flen > SR_TREE_FRAME_MAX + SR_TREE_FRAME_MAX / 64 + 1024 || off > fraw ||
                r->len > fraw - off || foff > t->p[pack].size || flen > t->p[pack].size - foff) {
                bad(err, errlen, "entry %s: chunk %u points outside its pack or frame", path, k);
                goto out;
            }
            memcpy(r->id, id, 32);
            r->pack = (uint32_t)pack;
            r->frame_off = foff;
            r->frame_len = (uint32_t)flen;
            r->frame_raw = (uint32_t)fraw;
            r->off = (uint32_t)off;
        }
        if (type == 'd')
            stack[depth++] = (uint32_t)idx;
    }
    if (in.at != in.n) {
        bad(err, errlen, "trailing bytes after the last entry");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        sr_tree_free(t);
    free(path);
    free(stack);
    return rc;
}

int sr_tree_decode_packs(const uint8_t *data, size_t n, uint8_t (**ids)[32], uint32_t *np)
{
    struct ibuf in = {data, n, 0, false};
    *ids = NULL;
    *np = 0;
    size_t ml = sizeof(SR_TREE_MAGIC) - 1;
    if (n < ml)
        return 1;
    if (memcmp(data, SR_TREE_MAGIC, ml) != 0)
        return -1;
    in.at = ml;
    uint64_t cnt = get_v(&in);
    if (in.bad)
        return 1;
    if (cnt > SR_TREE_MAX_PACKS)
        return -1;
    uint8_t(*out)[32] = malloc((cnt ? cnt : 1) * 32);
    if (!out)
        return -1;
    for (uint64_t i = 0; i < cnt; i++) {
        const uint8_t *id = take(&in, 32);
        get_v(&in);
        take(&in, 8);
        if (in.bad) {
            free(out);
            return 1;
        }
        memcpy(out[i], id, 32);
    }
    *ids = out;
    *np = (uint32_t)cnt;
    return 0;
}

void sr_tree_fingerprint(const struct sr_tree *t, char hex[65])
{
    uint8_t d[32];
    unsigned int dl = 0;
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    if (!h || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h);
        memset(hex, '0', 64);
        hex[64] = '\0';
        return;
    }
    static const char tag[] = "serena-remote tree fingerprint v1";
    EVP_DigestUpdate(h, tag, sizeof(tag));
    for (uint32_t i = 0; i < t->n; i++) {
        const struct sr_tree_entry *e = &t->e[i];
        if (e->gone)
            continue;
        uint8_t rec[1 + 4 + 8] = {(uint8_t)e->type, (uint8_t)(e->mode >> 24),
                                  (uint8_t)(e->mode >> 16), (uint8_t)(e->mode >> 8),
                                  (uint8_t)e->mode};
        for (int b = 0; b < 8; b++)
            rec[5 + b] = (uint8_t)(e->size >> (56 - 8 * b));
        EVP_DigestUpdate(h, sr_tree_path(t, i), e->plen + 1); /* with its NUL */
        EVP_DigestUpdate(h, rec, sizeof(rec));
        for (uint32_t k = 0; k < e->nrefs; k++)
            EVP_DigestUpdate(h, t->r[e->ref0 + k].id, 32);
        if (e->type == 'l')
            EVP_DigestUpdate(h, sr_tree_target(t, i), e->tlen + 1);
    }
    EVP_DigestFinal_ex(h, d, &dl);
    EVP_MD_CTX_free(h);
    sr_hex_encode(d, 32, hex);
    hex[64] = '\0';
}
