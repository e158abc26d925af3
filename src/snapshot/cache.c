/*
 * The local snapshot cache (see cache.h).
 *
 * state is: "SRCACHE2\n" | key NUL | sha256 (64 hex) NUL | u32 entries | per entry: u64 dev |
 * u64 ino | i64 ctime s | u32 ctime ns | u8 trusted. Integers little endian. The tree object it
 * describes is trees/<sha256>. Both are written to a temporary file renamed over the old one.
 */
#include "snapshot/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "core/mem.h"
#include "snapshot/internal.h"

#define MAGIC "SRCACHE2\n"

static void sha_hex(const uint8_t *p, size_t n, char hex[65])
{
    uint8_t d[32];
    unsigned int dl = 0;
    EVP_Digest(p, n, d, &dl, EVP_sha256(), NULL);
    sr_hex_encode(d, 32, hex);
    hex[64] = '\0';
}

static int read_all(const char *path, size_t max, uint8_t **out, size_t *n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        close(fd);
        return -1;
    }
    uint8_t *b = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (b && got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!b || got != (size_t)st.st_size) {
        free(b);
        return -1;
    }
    *out = b;
    *n = got;
    return 0;
}

static int write_atomic(const char *path, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.#tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    const uint8_t *parts[2] = {a, b};
    size_t lens[2] = {an, bn};
    for (int i = 0; i < 2; i++) {
        size_t done = 0;
        while (done < lens[i]) {
            ssize_t w = write(fd, parts[i] + done, lens[i] - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                close(fd);
                unlink(tmp);
                return -1;
            }
            done += (size_t)w;
        }
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#define REC 29 /* dev 8, ino 8, ctime s 8, ctime ns 4, trusted 1 */

void sr_cache_free(struct sr_cache *c)
{
    sr_tree_free(&c->t);
    free(c->st);
    free(c->trusted);
    memset(c, 0, sizeof(*c));
}

int sr_cache_load(const char *dir, struct sr_cache *c)
{
    char path[4200], err[256];
    uint8_t *b = NULL;
    size_t n = 0;
    memset(c, 0, sizeof(*c));
    if (!dir)
        return -1;
    snprintf(path, sizeof(path), "%s/state", dir);
    if (read_all(path, SR_CACHE_STATE_MAX, &b, &n) < 0)
        return -1;
    size_t at = sizeof(MAGIC) - 1;
    if (n < at || memcmp(b, MAGIC, at) != 0)
        goto bad;
    const uint8_t *nul = memchr(b + at, 0, n - at);
    if (!nul || (size_t)(nul - (b + at)) >= sizeof(c->key))
        goto bad;
    memcpy(c->key, b + at, (size_t)(nul - (b + at)) + 1);
    at = (size_t)(nul - b) + 1;
    if (n - at < 65 || b[at + 64] != 0)
        goto bad;
    memcpy(c->sha256, b + at, 65);
    at += 65;
    uint8_t *obj = NULL;
    size_t olen = 0;
    if (n - at < 4 || sr_cache_tree_get(dir, c->sha256, &obj, &olen) < 0)
        goto bad;
    /* Decoded like any tree from the store (decompressed with the same bounds). */
    int drc = sr_snap_decode_tree_obj(obj, olen, &c->t, err, sizeof(err));
    free(obj);
    if (drc != 0)
        goto bad;
    uint32_t ne = get32(b + at);
    at += 4;
    if (ne != c->t.n || (n - at) / REC != ne || (n - at) % REC != 0)
        goto bad;
    c->st = calloc(ne ? ne : 1, sizeof(*c->st));
    c->trusted = calloc(ne ? ne : 1, 1);
    if (!c->st || !c->trusted)
        goto bad;
    for (uint32_t i = 0; i < ne; i++, at += REC) {
        c->st[i].dev = get64(b + at);
        c->st[i].ino = get64(b + at + 8);
        c->st[i].ctime_s = (int64_t)get64(b + at + 16);
        c->st[i].ctime_ns = get32(b + at + 24);
        c->trusted[i] = b[at + 28] == 1;
    }
    free(b);
    c->loaded = true;
    return 0;
bad:
    free(b);
    sr_cache_free(c);
    return -1;
}

static void mkdirs(const char *dir)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/trees", dir);
    mkdir(p, 0700);
}

void sr_cache_tree_put(const char *dir, const char *sha256, const uint8_t *obj, size_t n)
{
    char path[4200];
    if (!dir)
        return;
    mkdirs(dir);
    snprintf(path, sizeof(path), "%s/trees/%s", dir, sha256);
    if (access(path, F_OK) != 0)
        write_atomic(path, obj, n, NULL, 0);
}

int sr_cache_tree_get(const char *dir, const char *sha256, uint8_t **obj, size_t *n)
{
    char path[4200], hex[65];
    if (!dir || !sr_manifest_hex_ok(sha256))
        return -1;
    snprintf(path, sizeof(path), "%s/trees/%s", dir, sha256);
    if (read_all(path, SR_SNAP_TREE_OBJ_MAX, obj, n) < 0)
        return -1;
    sha_hex(*obj, *n, hex);
    if (strcmp(hex, sha256) != 0) {
        free(*obj);
        *obj = NULL;
        unlink(path);
        return -1;
    }
    return 0;
}

void sr_cache_tree_prune(const char *dir, const struct sr_manifest *m)
{
    char path[4200];
    if (!dir)
        return;
    snprintf(path, sizeof(path), "%s/trees", dir);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        bool kept = false;
        for (uint32_t i = 0; i < m->n && !kept; i++)
            kept = strcmp(m->e[i].sha256, de->d_name) == 0;
        if (!kept)
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

void sr_cache_align(const struct sr_tree *dst, const struct sr_tree *src,
                    const struct sr_scan_stat *st, struct sr_scan_stat *out, bool *has)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < dst->n; i++) {
        const struct sr_tree_entry *d = &dst->e[i];
        has[i] = false;
        int c = 1;
        while (j < src->n && (c = sr_tree_path_cmp(sr_tree_path(src, j), src->e[j].plen,
                                                   sr_tree_path(dst, i), d->plen)) < 0)
            j++;
        if (j >= src->n || c != 0)
            continue;
        const struct sr_tree_entry *e = &src->e[j];
        if (d->type == 'f' && e->type == 'f' && !e->gone && e->size == d->size &&
            e->mtime_s == d->mtime_s && e->mtime_ns == d->mtime_ns) {
            out[i] = st[j];
            has[i] = true;
        }
    }
}

void sr_cache_save(const char *dir, const char *key, const char *sha256, const uint8_t *obj,
                   size_t n, const struct sr_tree *t, const struct sr_scan_stat *st,
                   const bool *has_st, int64_t since)
{
    if (!dir)
        return;
    mkdirs(dir);
    sr_cache_tree_put(dir, sha256, obj, n);
    size_t kl = strlen(key);
    size_t hn = sizeof(MAGIC) - 1 + kl + 1 + 65;
    size_t tail = 4 + (size_t)t->n * REC;
    uint8_t *h = malloc(hn + tail);
    if (!h)
        return;
    size_t at = 0;
    memcpy(h, MAGIC, sizeof(MAGIC) - 1);
    at += sizeof(MAGIC) - 1;
    memcpy(h + at, key, kl + 1);
    at += kl + 1;
    memcpy(h + at, sha256, 65);
    at += 65;
    put32(h + at, t->n);
    at += 4;
    for (uint32_t i = 0; i < t->n; i++, at += REC) {
        const struct sr_tree_entry *e = &t->e[i];
        bool ok = st && (!has_st || has_st[i]) && e->type == 'f';
        memset(h + at, 0, REC);
        if (!ok)
            continue;
        put64(h + at, st[i].dev);
        put64(h + at + 8, st[i].ino);
        put64(h + at + 16, (uint64_t)st[i].ctime_s);
        put32(h + at + 24, st[i].ctime_ns);
        /* Racy: changed within a second of the walk, a later change could share its times. */
        int64_t changed = e->mtime_s > st[i].ctime_s ? e->mtime_s : st[i].ctime_s;
        h[at + 28] = since == INT64_MAX || changed < since - 1 ? 1 : 0;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/state", dir);
    write_atomic(path, h, at, NULL, 0);
    free(h);
}

void sr_cache_pending_set(const char *dir, bool on)
{
    char path[4200];
    if (!dir)
        return;
    mkdirs(dir);
    snprintf(path, sizeof(path), "%s/pending", dir);
    if (on) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    } else {
        unlink(path);
    }
}

bool sr_cache_pending(const char *dir)
{
    char path[4200];
    if (!dir)
        return false;
    snprintf(path, sizeof(path), "%s/pending", dir);
    return access(path, F_OK) == 0;
}
