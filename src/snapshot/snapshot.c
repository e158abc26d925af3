/*
 * Taking, restoring and listing snapshots (see snapshot.h for the layout
 * and the guarantees).
 *
 * The order of every step is what keeps state safe whatever fails and
 * when: an archive is uploaded and checked before the manifest names it,
 * and older archives are deleted only after the new manifest is stored. A
 * restore builds the new tree beside the old one and swaps with rename(),
 * so the instance sees either the old state or the new, never a mix.
 *
 * Why a HEAD (size) check and no re-download after an upload: S3 stores
 * verify the x-amz-content-sha256 we sign against the bytes they receive
 * and refuse a mismatch, and the file store hashes what it writes before
 * its atomic rename; a re-download of a local file would mostly read the
 * page cache and prove nothing more. The HEAD catches a store that lost or
 * truncated the object; every restore verifies the SHA-256 again and falls
 * back to the previous snapshot when it does not match.
 */
#include "snapshot/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <zstd.h>

#include "core/json.h"
#include "core/mem.h"
#include "snapshot/archive.h"
#include "snapshot/cache.h"
#include "snapshot/internal.h"
#include "snapshot/manifest.h"
#include "snapshot/progress.h"
#include "snapshot/scan.h"

#define SUFFIX SR_SNAP_SUFFIX_TAR

int sr_snap_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
#define fail sr_snap_fail

void sr_snap_note(struct sr_snapshot_result *r, const char *fmt, ...)
{
    size_t used = strlen(r->note);
    va_list ap;
    if (used && used + 2 < sizeof(r->note)) {
        memcpy(r->note + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= sizeof(r->note))
        return;
    va_start(ap, fmt);
    vsnprintf(r->note + used, sizeof(r->note) - used, fmt, ap);
    va_end(ap);
}

/* Map an archive error onto the store's codes (UNSAFE becomes CORRUPT: do not trust it). */
static int from_archive(int rc)
{
    return rc == SR_ARCHIVE_E_UNSAFE ? SR_STORE_E_CORRUPT : rc;
}

static int check_opts(const struct sr_snapshot_opts *o, char *err, size_t errlen)
{
    if (!o->prefix || !sr_manifest_name_ok(o->prefix, true))
        return fail(err, errlen, SR_STORE_E_CONFIG,
                    "the snapshot prefix '%s' is invalid: use [A-Za-z0-9._-] components "
                    "separated by '/' (SERENA_R2_STATE_PREFIX or --prefix)",
                    o->prefix ? o->prefix : "");
    if (!o->partition || !sr_manifest_name_ok(o->partition, false))
        return fail(err, errlen, SR_STORE_E_CONFIG,
                    "the partition name '%s' is invalid: use only [A-Za-z0-9._-] (--partition)",
                    o->partition ? o->partition : "");
    return 0;
}

void sr_snap_manifest_key(const struct sr_snapshot_opts *o, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s/manifest.json", o->prefix, o->partition);
}
#define manifest_key sr_snap_manifest_key

void sr_snap_packs_prefix(const struct sr_snapshot_opts *o, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s/packs/", o->prefix, o->partition);
}

static bool ends_with(const char *s, const char *sfx)
{
    size_t n = strlen(s), k = strlen(sfx);
    return n >= k && strcmp(s + n - k, sfx) == 0;
}

bool sr_snap_is_tree(const char *key)
{
    return ends_with(key, SR_SNAP_SUFFIX_TREE);
}

/*
 * Read the manifest. 0 with *found set when it was read and parsed; 0 with
 * *found false when it is missing or corrupt (the reason goes to r->note);
 * a negative store error when the store itself failed or the manifest
 * cannot be opened with our keys (a wrong key must never look like "no
 * manifest": a snapshot would then replace it).
 */
static int load_manifest(struct sr_store *s, const struct sr_snapshot_opts *o,
                         struct sr_manifest *m, bool *found, struct sr_snapshot_result *r,
                         char *err, size_t errlen)
{
    char mkey[SR_MANIFEST_KEY_MAX + 32];
    char *data = NULL;
    size_t n = 0;
    char why[256];
    *found = false;
    memset(m, 0, sizeof(*m));
    manifest_key(o, mkey, sizeof(mkey));
    int rc = sr_store_get_bytes(s, mkey, SR_MANIFEST_MAX_BYTES, &data, &n, err, errlen);
    if (rc == SR_STORE_E_NOTFOUND) {
        rc = 0;
        goto out;
    }
    if (rc == SR_STORE_E_CORRUPT || (rc == 0 && sr_manifest_parse(m, data, n, why, sizeof(why)))) {
        if (rc != 0)
            snprintf(why, sizeof(why), "the manifest is unreadable: %s", err);
        sr_snap_note(r, "%s: %s", mkey, why);
        memset(m, 0, sizeof(*m));
        rc = 0;
        goto out;
    }
    if (rc < 0)
        goto out;
    *found = true;
out:
    free(data);
    snprintf(m->partition, sizeof(m->partition), "%s", o->partition);
    return rc;
}

static uint32_t key_seq(const char *key)
{
    /* ".../yyyymmddThhmmssZ-<seq>.tar.zst" or ".tree" */
    const char *dash = strrchr(key, '-');
    const char *slash = strrchr(key, '/');
    if (!dash || (slash && dash < slash))
        return 0;
    char *end;
    unsigned long v = strtoul(dash + 1, &end, 10);
    if (end == dash + 1 || (strcmp(end, SUFFIX) != 0 && strcmp(end, SR_SNAP_SUFFIX_TREE) != 0) ||
        v > 99999999ul)
        return 0;
    return (uint32_t)v;
}

/* Creation time encoded in a key, or 0. */
static int64_t key_time(const char *key)
{
    const char *b = strrchr(key, '/');
    b = b ? b + 1 : key;
    struct tm tm = {0};
    const char *e = strptime(b, "%Y%m%dT%H%M%SZ", &tm);
    if (!e || *e != '-')
        return 0;
    return (int64_t)timegm(&tm);
}

int sr_snap_new_key(struct sr_store *s, const struct sr_snapshot_opts *o,
                    const struct sr_manifest *m, int64_t now, const char *suffix, char *key,
                    size_t cap, char *err, size_t errlen)
{
    /* UTC time, then a sequence number that only grows within the partition. */
    time_t t = (time_t)now;
    struct tm tm;
    char stamp[32];
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    uint32_t seq = m->n ? key_seq(m->e[0].key) + 1 : 1;
    /* No probe of the store: an object already under this key was never named by a manifest
     * (a worker killed between its tree and its manifest), so it is garbage to overwrite. */
    (void)s;
    (void)err;
    (void)errlen;
    snprintf(key, cap, "%s/%s/%s-%06u%s", o->prefix, o->partition, stamp, seq, suffix);
    if (!sr_manifest_key_ok(key))
        return fail(err, errlen, SR_STORE_E_CONFIG, "the snapshot key %s is too long", key);
    return 0;
}

int sr_snap_put_manifest(struct sr_store *s, const struct sr_snapshot_opts *o,
                         const struct sr_manifest *m, char *err, size_t errlen)
{
    char mkey[SR_MANIFEST_KEY_MAX + 32];
    size_t mlen = 0;
    char *mbuf = malloc(SR_MANIFEST_MAX_BYTES);
    if (!mbuf)
        return fail(err, errlen, SR_STORE_E_IO, "out of memory");
    if (sr_manifest_write(m, mbuf, SR_MANIFEST_MAX_BYTES, &mlen) < 0) {
        free(mbuf);
        return fail(err, errlen, SR_STORE_E_IO, "the manifest does not fit in 256 KiB");
    }
    manifest_key(o, mkey, sizeof(mkey));
    int rc = sr_store_put_bytes(s, mkey, mbuf, mlen, err, errlen);
    free(mbuf);
    return rc;
}

static int sha_check(const uint8_t *data, size_t n, const char *sha256)
{
    uint8_t d[32];
    unsigned int dl = 0;
    char hex[65];
    EVP_Digest(data, n, d, &dl, EVP_sha256(), NULL);
    sr_hex_encode(d, 32, hex);
    hex[64] = '\0';
    return strcmp(hex, sha256) == 0 ? 0 : -1;
}

int sr_snap_decode_tree_obj(const uint8_t *data, size_t n, struct sr_tree *t, char *err,
                            size_t errlen)
{
    /* Decompressed with a bound, whatever the frame header claims. */
    ZSTD_DStream *ds = ZSTD_createDStream();
    size_t cap = 1u << 20, len = 0;
    uint8_t *out = malloc(cap);
    int rc = SR_STORE_E_CORRUPT;
    if (!ds || !out) {
        rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
        goto out;
    }
    ZSTD_initDStream(ds);
    ZSTD_inBuffer in = {data, n, 0};
    size_t ret = 1;
    while (ret != 0) {
        if (len == cap) {
            if (cap >= SR_TREE_MAX_BYTES) {
                fail(err, errlen, rc, "it decompresses to more than 1 GiB");
                goto out;
            }
            uint8_t *no = realloc(out, cap * 2);
            if (!no) {
                rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
                goto out;
            }
            out = no;
            cap *= 2;
        }
        ZSTD_outBuffer ob = {out, cap, len};
        ret = ZSTD_decompressStream(ds, &ob, &in);
        len = ob.pos;
        if (ZSTD_isError(ret)) {
            fail(err, errlen, rc, "it is damaged: %s", ZSTD_getErrorName(ret));
            goto out;
        }
        if (ret != 0 && in.pos == in.size && ob.pos < ob.size) {
            fail(err, errlen, rc, "it is truncated");
            goto out;
        }
    }
    if (in.pos != in.size) {
        fail(err, errlen, rc, "it has bytes after its end");
        goto out;
    }
    char why[256];
    if (sr_tree_decode(t, out, len, why, sizeof(why)) != 0) {
        fail(err, errlen, rc, "it is not a valid snapshot tree: %s", why);
        goto out;
    }
    rc = 0;
out:
    ZSTD_freeDStream(ds);
    free(out);
    return rc;
}

/* The object of a tree snapshot, from the cache or the store, checked against its digest. */
static int get_tree_obj(struct sr_store *s, const char *cache, const char *key, const char *sha256,
                        uint8_t **data, size_t *n, bool *local, char *err, size_t errlen)
{
    *local = sha256 && sha256[0] && sr_cache_tree_get(cache, sha256, data, n) == 0;
    if (*local)
        return 0;
    int rc = sr_store_get_bytes(s, key, SR_SNAP_TREE_OBJ_MAX, (char **)data, n, err, errlen);
    if (rc < 0)
        return rc;
    if (sha256 && sha256[0] && sha_check(*data, *n, sha256) != 0) {
        free(*data);
        *data = NULL;
        return fail(err, errlen, SR_STORE_E_CORRUPT,
                    "%s is corrupt: its SHA-256 does not match the manifest", key);
    }
    return 0;
}

int sr_snap_get_tree_packs(struct sr_store *s, const char *cache, const char *key,
                           const char *sha256, uint8_t (**ids)[32], uint32_t *np, char *err,
                           size_t errlen)
{
    uint8_t *data = NULL, *out = NULL;
    size_t n = 0, cap = 64 * 1024, len = 0;
    bool local;
    *ids = NULL;
    *np = 0;
    int rc = get_tree_obj(s, cache, key, sha256, &data, &n, &local, err, errlen);
    if (rc < 0)
        return rc;
    /* Only as much of the tree as its pack table needs: it comes first. */
    ZSTD_DStream *ds = ZSTD_createDStream();
    rc = SR_STORE_E_CORRUPT;
    out = malloc(cap);
    if (!ds || !out) {
        rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
        goto out;
    }
    ZSTD_initDStream(ds);
    ZSTD_inBuffer in = {data, n, 0};
    for (;;) {
        ZSTD_outBuffer ob = {out, cap, len};
        size_t ret = ZSTD_decompressStream(ds, &ob, &in);
        len = ob.pos;
        if (ZSTD_isError(ret)) {
            fail(err, errlen, rc, "%s is damaged: %s", key, ZSTD_getErrorName(ret));
            goto out;
        }
        int got = sr_tree_decode_packs(out, len, ids, np);
        if (got == 0) {
            rc = 0;
            goto out;
        }
        if (got < 0 || ret == 0 || (in.pos == in.size && ob.pos < ob.size)) {
            fail(err, errlen, rc, "%s is not a valid snapshot tree", key);
            goto out;
        }
        if (len == cap) {
            if (cap >= SR_TREE_MAX_BYTES) {
                fail(err, errlen, rc, "%s has a pack table larger than 1 GiB", key);
                goto out;
            }
            uint8_t *no = realloc(out, cap * 2);
            if (!no) {
                rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
                goto out;
            }
            out = no;
            cap *= 2;
        }
    }
out:
    ZSTD_freeDStream(ds);
    free(out);
    free(data);
    return rc;
}

int sr_snap_get_tree(struct sr_store *s, const char *cache, const char *key, const char *sha256,
                     struct sr_tree *t, char *err, size_t errlen)
{
    uint8_t *data = NULL;
    size_t n = 0;
    bool local;
    int rc = get_tree_obj(s, cache, key, sha256, &data, &n, &local, err, errlen);
    if (rc < 0)
        return rc;
    char why[300];
    rc = sr_snap_decode_tree_obj(data, n, t, why, sizeof(why));
    if (rc < 0)
        fail(err, errlen, rc, "%s cannot be read: %s", key, why);
    else if (!local && sha256 && sha256[0])
        sr_cache_tree_put(cache, sha256, data, n);
    free(data);
    return rc;
}

/* -------------------------------------------------------------------- take */

int sr_snapshot_take(struct sr_store *s, const struct sr_snapshot_opts *o, const char *home,
                     struct sr_snapshot_result *r, char *err, size_t errlen)
{
    bool found;
    memset(r, 0, sizeof(*r));
    struct sr_manifest *m = calloc(1, sizeof(*m));
    if (!m)
        return fail(err, errlen, SR_STORE_E_IO, "out of memory");
    int rc = check_opts(o, err, errlen);
    if (rc == 0)
        rc = load_manifest(s, o, m, &found, r, err, errlen);
    if (rc == 0)
        rc = sr_snap_take_tree(s, o, home, m, found, r, err, errlen);
    free(m);
    return rc;
}

/* ----------------------------------------------------------------- listing */

struct listing {
    char prefix[SR_MANIFEST_KEY_MAX + 2];
    struct sr_store_object *obj; /* ring of the last SR_MANIFEST_MAX snapshots, in key order */
    uint32_t n;
    uint64_t seen;
};

static int on_object(void *arg, const struct sr_store_object *ob)
{
    struct listing *l = arg;
    size_t pl = strlen(l->prefix);
    size_t kl = strlen(ob->key);
    /* Only snapshots directly in the partition: "<prefix>/<partition>/<name>.tar.zst" or
     * ".tree" (packs live one level down). */
    if (strncmp(ob->key, l->prefix, pl) != 0 || strchr(ob->key + pl, '/') ||
        (!ends_with(ob->key, SUFFIX) && !ends_with(ob->key, SR_SNAP_SUFFIX_TREE)) ||
        !key_seq(ob->key) || !sr_manifest_key_ok(ob->key) || kl >= SR_MANIFEST_KEY_MAX)
        return 0;
    l->obj[l->seen % SR_MANIFEST_MAX] = *ob;
    l->seen++;
    if (l->n < SR_MANIFEST_MAX)
        l->n++;
    return 0;
}

/* Fill m (newest first, without digests) from a listing of the partition. */
static int list_partition(struct sr_store *s, const struct sr_snapshot_opts *o,
                          struct sr_manifest *m, char *err, size_t errlen)
{
    struct listing l = {0};
    l.obj = calloc(SR_MANIFEST_MAX, sizeof(*l.obj));
    if (!l.obj)
        return fail(err, errlen, SR_STORE_E_IO, "out of memory");
    snprintf(l.prefix, sizeof(l.prefix), "%s/%s/", o->prefix, o->partition);
    int rc = sr_store_list(s, l.prefix, on_object, &l, err, errlen);
    if (rc == SR_STORE_E_NOTFOUND)
        rc = 0;
    if (rc == 0) {
        m->n = 0;
        /* Keys sort by time: walk the ring from its newest element backwards. */
        for (uint32_t i = 0; i < l.n; i++) {
            const struct sr_store_object *ob = &l.obj[(l.seen - 1 - i) % SR_MANIFEST_MAX];
            struct sr_manifest_entry *e = &m->e[m->n++];
            memset(e, 0, sizeof(*e));
            snprintf(e->key, sizeof(e->key), "%s", ob->key);
            e->size = ob->size;
            e->created = key_time(ob->key);
            if (!e->created)
                e->created = ob->mtime;
        }
    }
    free(l.obj);
    return rc;
}

/* ---------------------------------------------------------------- restore */

struct dl_watch {
    pthread_t th;
    const char *dir;
    struct sr_progress *bar;
    volatile int stop;
};

/* Bytes of regular files in a directory: the download and the store's temporary file. */
static uint64_t dir_bytes(const char *path)
{
    uint64_t total = 0;
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *de;
    struct stat st;
    while ((de = readdir(d)) != NULL) {
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

/* The store API has no progress hook, so a terminal's download bar samples the file's growth. */
static void *dl_watch_main(void *arg)
{
    struct dl_watch *w = arg;
    while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        sr_progress_update(w->bar, dir_bytes(w->dir));
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int download(struct sr_store *s, const char *key, const char *work, const char *path,
                    uint64_t size, bool progress, char *err, size_t errlen)
{
    struct sr_progress bar;
    struct dl_watch w = {.dir = work, .bar = &bar};
    bool th = false;
    sr_progress_begin(&bar, progress, "downloading", size);
    if (progress && pthread_create(&w.th, NULL, dl_watch_main, &w) == 0)
        th = true;
    int rc = sr_store_get_file(s, key, path, err, errlen);
    if (th) {
        __atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
        pthread_join(w.th, NULL);
    }
    sr_progress_end(&bar, rc == 0 ? dir_bytes(work) : 0);
    return rc;
}

struct extract_progress {
    struct sr_progress bar;
};

static void on_extract_progress(void *arg, uint64_t done, uint64_t total)
{
    (void)total;
    sr_progress_update(&((struct extract_progress *)arg)->bar, done);
}

/* Split home into its parent directory and base name. */
int sr_snap_split(const char *home, char *parent, size_t pcap, char *base, size_t bcap, char *err,
                  size_t errlen)
{
    size_t n = strlen(home);
    while (n > 1 && home[n - 1] == '/')
        n--;
    const char *slash = memrchr(home, '/', n);
    size_t bl = slash ? n - (size_t)(slash - home) - 1 : n;
    const char *b = slash ? slash + 1 : home;
    if (bl == 0 || bl >= bcap || (bl == 1 && b[0] == '.') ||
        (bl == 2 && b[0] == '.' && b[1] == '.'))
        return fail(err, errlen, SR_STORE_E_CONFIG,
                    "the state directory '%s' must name a directory (not '/', '.' or '..')", home);
    memcpy(base, b, bl);
    base[bl] = '\0';
    if (!slash)
        snprintf(parent, pcap, ".");
    else if (slash == home)
        snprintf(parent, pcap, "/");
    else
        snprintf(parent, pcap, "%.*s", (int)(slash - home), home);
    return 0;
}

/* Remove leftovers of restores that were killed: ".<base>.restore-*" and "<base>.old-*". */
void sr_snap_clean_stale(const char *parent, const char *base)
{
    char a[300], b[300], p[4096];
    snprintf(a, sizeof(a), ".%s.restore-", base);
    snprintf(b, sizeof(b), "%s.old-", base);
    DIR *d = opendir(parent);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, a, strlen(a)) == 0 || strncmp(de->d_name, b, strlen(b)) == 0) {
            snprintf(p, sizeof(p), "%s/%s", parent, de->d_name);
            sr_archive_rmtree(p);
        }
    }
    closedir(d);
}

/*
 * Move excluded top-level names of a member (downloaded language servers, logs, a
 * node_modules) between trees; see swap_in. "home/logs" names logs at the top of home;
 * a name without '/' is excluded at any depth, and is kept here when it is at the top.
 */
static void move_excluded(const char *excludes, const char *member, const char *from,
                          const char *to)
{
    char list[2048];
    snprintf(list, sizeof(list), "%s", excludes ? excludes : SR_SNAPSHOT_EXCLUDES);
    size_t ml = strlen(member);
    char *save = NULL;
    for (char *nm = strtok_r(list, ",", &save); nm; nm = strtok_r(NULL, ",", &save)) {
        while (*nm == ' ')
            nm++;
        size_t n = strlen(nm);
        while (n && (nm[n - 1] == ' ' || nm[n - 1] == '/'))
            nm[--n] = '\0';
        if (strchr(nm, '/')) {
            if (strncmp(nm, member, ml) != 0 || nm[ml] != '/')
                continue;
            nm += ml + 1;
        }
        if (!*nm || strchr(nm, '/') || strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
            continue;
        char a[4096], b[4096];
        struct stat st;
        snprintf(a, sizeof(a), "%s/%s", from, nm);
        snprintf(b, sizeof(b), "%s/%s", to, nm);
        if (lstat(a, &st) == 0 && lstat(b, &st) < 0)
            rename(a, b);
    }
}

/*
 * Swap the extracted tree in. Excluded top-level names are not in the
 * archive; when the old home has them (downloaded language servers, logs)
 * they move into the new tree first, so a restore does not throw away
 * hundreds of megabytes that the snapshot deliberately left out.
 */
int sr_snap_swap_in(const char *home, const char *tree, const char *parent, const char *base,
                    const char *excludes, const char *member, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(home, &st) < 0) {
        if (errno != ENOENT)
            return fail(err, errlen, SR_STORE_E_IO, "cannot inspect %s: %s", home, strerror(errno));
        if (rename(tree, home) < 0)
            return fail(err, errlen, SR_STORE_E_IO, "cannot move the restored tree to %s: %s", home,
                        strerror(errno));
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return fail(err, errlen, SR_STORE_E_CONFIG,
                    "%s exists and is not a directory: move it away and retry", home);
    char old[4096];
    snprintf(old, sizeof(old), "%s/%s.old-%lld", parent, base, (long long)time(NULL));
    move_excluded(excludes, member, home, tree);
    if (rename(home, old) < 0) {
        int e = errno;
        move_excluded(excludes, member, tree, home);
        return fail(err, errlen, SR_STORE_E_IO, "cannot move %s aside: %s", home, strerror(e));
    }
    if (rename(tree, home) < 0) {
        int e = errno;
        rename(old, home);
        move_excluded(excludes, member, tree, home);
        return fail(err, errlen, SR_STORE_E_IO, "cannot move the restored tree to %s: %s", home,
                    strerror(e));
    }
    sr_archive_rmtree(old);
    return 0;
}

/* Download, verify and extract one candidate into work/tree. */
static int try_one(struct sr_store *s, const struct sr_snapshot_opts *o,
                   const struct sr_manifest_entry *c, const char *work, struct sr_archive_info *x,
                   char *err, size_t errlen)
{
    char path[4200], tree[4200];
    snprintf(path, sizeof(path), "%s/archive" SUFFIX, work);
    snprintf(tree, sizeof(tree), "%s/tree", work);
    unlink(path);
    sr_archive_rmtree(tree);
    int rc = download(s, c->key, work, path, c->size, o->progress, err, errlen);
    if (rc < 0)
        return rc;
    char hex[65];
    uint64_t size;
    rc = sr_archive_sha256_file(path, hex, &size, err, errlen);
    if (rc < 0)
        return SR_STORE_E_IO;
    if (c->sha256[0] && (strcmp(hex, c->sha256) != 0 || size != c->size))
        return fail(err, errlen, SR_STORE_E_CORRUPT,
                    "%s is corrupt: its SHA-256 or size does not match the manifest", c->key);
    if (mkdir(tree, 0700) < 0)
        return fail(err, errlen, SR_STORE_E_IO, "cannot create %s: %s", tree, strerror(errno));
    struct extract_progress ep;
    sr_progress_begin(&ep.bar, o->progress, "extracting", size);
    /* No content fingerprint here (nobody needs it): the count comes from the manifest. */
    (void)x;
    rc = sr_archive_extract(path, tree, NULL, on_extract_progress, &ep, err, errlen);
    sr_progress_end(&ep.bar, rc == 0 ? size : 0);
    unlink(path);
    if (rc < 0) {
        char why[400];
        snprintf(why, sizeof(why), "%s", err);
        return fail(err, errlen, from_archive(rc), "%s cannot be restored: %s", c->key, why);
    }
    return 0;
}

/* A format 1 snapshot (tar.zst of SERENA_HOME): staged beside home, swapped in. */
static int restore_archive(struct sr_store *s, const struct sr_snapshot_opts *o, const char *home,
                           const char *parent, const char *base, const struct sr_manifest_entry *c,
                           char *err, size_t errlen)
{
    char work[4096], tree[4200];
    struct sr_archive_info x;
    sr_snap_clean_stale(parent, base);
    snprintf(work, sizeof(work), "%s/.%s.restore-XXXXXX", parent, base);
    if (!mkdtemp(work))
        return fail(err, errlen, SR_STORE_E_IO,
                    "cannot create a staging directory next to %s: %s (its parent must be "
                    "writable)",
                    home, strerror(errno));
    int rc = try_one(s, o, c, work, &x, err, errlen);
    snprintf(tree, sizeof(tree), "%s/tree", work);
    if (rc == 0)
        rc = sr_snap_swap_in(home, tree, parent, base, o->excludes, "home", err, errlen);
    sr_archive_rmtree(work);
    return rc;
}

int sr_snapshot_restore(struct sr_store *s, const struct sr_snapshot_opts *o, const char *home,
                        const char *key, struct sr_snapshot_result *r, char *err, size_t errlen)
{
    int rc;
    char parent[4096], base[256];
    struct sr_manifest *m = calloc(1, sizeof(*m));
    bool found = false, listed = false;
    memset(r, 0, sizeof(*r));
    if (!m) {
        rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
        goto out;
    }
    rc = check_opts(o, err, errlen);
    if (rc < 0)
        goto out;
    rc = sr_snap_split(home, parent, sizeof(parent), base, sizeof(base), err, errlen);
    if (rc < 0)
        goto out;
    rc = load_manifest(s, o, m, &found, r, err, errlen);
    if (rc < 0)
        goto out;
    if (!found) {
        rc = list_partition(s, o, m, err, errlen);
        if (rc < 0)
            goto out;
        listed = true;
        if (m->n)
            sr_snap_note(r, "no usable manifest: restoring from a listing of the partition "
                            "(archives cannot be checked against their SHA-256)");
    }
    if (key) {
        /* An explicit key: exactly that snapshot, no fallback. */
        char want[SR_MANIFEST_KEY_MAX + 2];
        snprintf(want, sizeof(want), "%s/%s/", o->prefix, o->partition);
        int i = sr_manifest_find(m, key);
        if (i < 0 && (!sr_manifest_key_ok(key) || strncmp(key, want, strlen(want)) != 0 ||
                      strchr(key + strlen(want), '/'))) {
            rc = fail(err, errlen, SR_STORE_E_NOTFOUND,
                      "%s is not a snapshot of partition %s (see 'serena-remote snapshots')", key,
                      o->partition);
            goto out;
        }
        struct sr_manifest_entry one = {0};
        if (i >= 0) {
            one = m->e[i];
        } else {
            snprintf(one.key, sizeof(one.key), "%s", key);
            one.created = key_time(key);
            if (!listed)
                sr_snap_note(r, "%s is not in the manifest: restoring it unverified", key);
        }
        m->e[0] = one;
        m->n = 1;
    }
    if (m->n == 0) {
        r->nothing = true;
        sr_snap_note(r, "no snapshot of partition %s in %s", o->partition, sr_store_describe(s));
        rc = 0;
        goto out;
    }

    uint32_t i;
    for (i = 0; i < m->n; i++) {
        if (sr_snap_is_tree(m->e[i].key))
            rc = sr_snap_restore_tree(s, o, home, &m->e[i], r, err, errlen);
        else
            rc = restore_archive(s, o, home, parent, base, &m->e[i], err, errlen);
        if (rc == 0)
            break;
        /* Only a bad or missing object is worth trying the next one; a store that refuses
         * us, a key we lack or an unreachable store would refuse the next one too. */
        if (key || (rc != SR_STORE_E_CORRUPT && rc != SR_STORE_E_NOTFOUND))
            goto out;
        sr_snap_note(r, "%s", err);
    }
    if (i == m->n) {
        rc = fail(err, errlen, SR_STORE_E_CORRUPT,
                  "no snapshot of partition %s could be restored (%s); local state left as it "
                  "was",
                  o->partition, r->note);
        goto out;
    }
    const struct sr_manifest_entry *e = &m->e[i];
    if (i > 0) {
        r->fell_back = true;
        sr_snap_note(r, "fell back to the older snapshot %s", e->key);
    }
    snprintf(r->key, sizeof(r->key), "%s", e->key);
    snprintf(r->sha256, sizeof(r->sha256), "%s", e->sha256);
    r->size = e->size;
    r->files = e->files;
    r->created = e->created;
    r->added = e->added;
    r->total = e->total;
    rc = 0;
out:
    free(m);
    return rc;
}

/* ------------------------------------------------------------------- list */

static void human_size(uint64_t n, char *out, size_t cap)
{
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    double v = (double)n;
    int i = 0;
    while (v >= 1024.0 && i < 4) {
        v /= 1024.0;
        i++;
    }
    if (i == 0)
        snprintf(out, cap, "%llu B", (unsigned long long)n);
    else
        snprintf(out, cap, "%.1f %s", v, u[i]);
}

static void human_age(int64_t created, int64_t now, char *out, size_t cap)
{
    int64_t d = created ? now - created : -1;
    if (d < 0)
        snprintf(out, cap, "?");
    else if (d < 120)
        snprintf(out, cap, "%llds", (long long)d);
    else if (d < 7200)
        snprintf(out, cap, "%lldm", (long long)(d / 60));
    else if (d < 2 * 86400)
        snprintf(out, cap, "%lldh", (long long)(d / 3600));
    else
        snprintf(out, cap, "%lldd", (long long)(d / 86400));
}

int sr_snapshot_list(struct sr_store *s, const struct sr_snapshot_opts *o, bool json, char *err,
                     size_t errlen)
{
    int rc;
    bool found;
    struct sr_snapshot_result r;
    struct sr_manifest *m = calloc(1, sizeof(*m));
    char *buf = malloc(SR_MANIFEST_MAX_BYTES);
    memset(&r, 0, sizeof(r));
    if (!m || !buf) {
        rc = fail(err, errlen, SR_STORE_E_IO, "out of memory");
        goto out;
    }
    rc = check_opts(o, err, errlen);
    if (rc < 0)
        goto out;
    rc = load_manifest(s, o, m, &found, &r, err, errlen);
    if (rc < 0)
        goto out;
    if (!found) {
        rc = list_partition(s, o, m, err, errlen);
        if (rc < 0)
            goto out;
    }
    int64_t now = (int64_t)time(NULL);
    if (json) {
        struct sr_jw w;
        size_t len = 0;
        sr_jw_init(&w, buf, SR_MANIFEST_MAX_BYTES);
        sr_jw_obj_begin(&w);
        sr_jw_key(&w, "store");
        sr_jw_cstr(&w, sr_store_describe(s));
        sr_jw_key(&w, "partition");
        sr_jw_cstr(&w, o->partition);
        sr_jw_key(&w, "source");
        sr_jw_cstr(&w, found ? "manifest" : "listing");
        if (r.note[0]) {
            sr_jw_key(&w, "note");
            sr_jw_cstr(&w, r.note);
        }
        sr_jw_key(&w, "snapshots");
        sr_jw_arr_begin(&w);
        for (uint32_t i = 0; i < m->n; i++) {
            const struct sr_manifest_entry *e = &m->e[i];
            sr_jw_obj_begin(&w);
            sr_jw_key(&w, "key");
            sr_jw_cstr(&w, e->key);
            sr_jw_key(&w, "size");
            sr_jw_int(&w, (int64_t)e->size);
            sr_jw_key(&w, "created");
            sr_jw_int(&w, e->created);
            sr_jw_key(&w, "age_seconds");
            sr_jw_int(&w, e->created ? now - e->created : -1);
            if (e->added || e->total) {
                sr_jw_key(&w, "added");
                sr_jw_int(&w, (int64_t)e->added);
                sr_jw_key(&w, "total");
                sr_jw_int(&w, (int64_t)e->total);
            }
            if (found) {
                sr_jw_key(&w, "sha256");
                sr_jw_cstr(&w, e->sha256);
                sr_jw_key(&w, "files");
                sr_jw_int(&w, (int64_t)e->files);
                sr_jw_key(&w, "fingerprint");
                sr_jw_cstr(&w, e->fingerprint);
            }
            sr_jw_obj_end(&w);
        }
        sr_jw_arr_end(&w);
        sr_jw_obj_end(&w);
        if (sr_jw_finish(&w, &len) != 0) {
            rc = fail(err, errlen, SR_STORE_E_IO, "the listing does not fit in 256 KiB");
            goto out;
        }
        fwrite(buf, 1, len, stdout);
        fputc('\n', stdout);
    } else {
        if (r.note[0])
            fprintf(stderr, "note: %s\n", r.note);
        if (m->n == 0) {
            printf("no snapshots of partition %s in %s\n", o->partition, sr_store_describe(s));
        } else {
            printf("%-72s %10s %6s\n", "KEY", "SIZE", "AGE");
            for (uint32_t i = 0; i < m->n; i++) {
                char sz[32], age[32];
                human_size(m->e[i].size, sz, sizeof(sz));
                human_age(m->e[i].created, now, age, sizeof(age));
                printf("%-72s %10s %6s\n", m->e[i].key, sz, age);
            }
            if (!found)
                printf("(from a listing: the manifest is missing)\n");
        }
    }
    fflush(stdout);
    rc = 0;
out:
    free(buf);
    free(m);
    return rc;
}

void sr_snapshot_jw_ascii(struct sr_jw *w, const char *s)
{
    char tmp[1024];
    size_t i = 0;
    for (; s[i] && i + 1 < sizeof(tmp); i++)
        tmp[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    tmp[i] = '\0';
    sr_jw_cstr(w, tmp);
}

void sr_snapshot_result_members(struct sr_jw *w, const struct sr_snapshot_result *r)
{
    sr_jw_key(w, "skipped");
    sr_jw_bool(w, r->skipped);
    sr_jw_key(w, "fell_back");
    sr_jw_bool(w, r->fell_back);
    sr_jw_key(w, "nothing");
    sr_jw_bool(w, r->nothing);
    sr_jw_key(w, "key");
    sr_snapshot_jw_ascii(w, r->key);
    sr_jw_key(w, "sha256");
    sr_snapshot_jw_ascii(w, r->sha256);
    sr_jw_key(w, "size");
    sr_jw_int(w, (int64_t)r->size);
    sr_jw_key(w, "added");
    sr_jw_int(w, (int64_t)r->added);
    sr_jw_key(w, "total");
    sr_jw_int(w, (int64_t)r->total);
    sr_jw_key(w, "files");
    sr_jw_int(w, (int64_t)r->files);
    sr_jw_key(w, "created");
    sr_jw_int(w, r->created);
    sr_jw_key(w, "note");
    sr_snapshot_jw_ascii(w, r->note);
}
