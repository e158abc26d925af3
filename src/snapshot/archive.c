/*
 * tar.zst archives of a state directory and their safe extraction (see
 * archive.h).
 *
 * Why our own walk instead of archive_read_disk: the fingerprint must not
 * depend on readdir order or mtimes, links must never be followed, and a
 * symlink that points outside the tree must be left out when writing (the
 * extractor would refuse the whole archive because of it, making the
 * snapshot useless). A small openat() walk with sorted names gives all of
 * that and one place to compute the content hashes.
 *
 * Why our own link check on extraction: libarchive's secure flags refuse
 * writing *through* a symlink and paths with "..", but still create a
 * symlink entry whose target is absolute or climbs out of the tree; a later
 * user of the restored directory could follow it.
 */
#include "snapshot/archive.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include "core/mem.h"

#define IO_CHUNK (128u * 1024u)

/* ---------------------------------------------------------------- hashing */

struct hash {
    EVP_MD_CTX *ctx;
};

static int hash_init(struct hash *h)
{
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(h->ctx);
        h->ctx = NULL;
        return -1;
    }
    return 0;
}

static void hash_update(struct hash *h, const void *p, size_t n)
{
    if (n)
        EVP_DigestUpdate(h->ctx, p, n);
}

static void hash_hex(struct hash *h, char hex[65])
{
    uint8_t d[32];
    unsigned int dl = 0;

    EVP_DigestFinal_ex(h->ctx, d, &dl);
    sr_hex_encode(d, 32, hex);
    hex[64] = '\0';
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

static void hash_free(struct hash *h)
{
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

/*
 * One fingerprint record per entry: path NUL type mode(4 bytes, big endian)
 * detail NUL, where detail is the content's SHA-256 (hex) for a file, the
 * target for a symlink and empty for a directory. The NULs keep records
 * unambiguous whatever bytes a name holds (a name never contains NUL).
 */
static void fp_record(struct hash *fp, const char *path, char type, uint32_t mode,
                      const char *detail)
{
    uint8_t m[5] = {(uint8_t)type, (uint8_t)(mode >> 24), (uint8_t)(mode >> 16),
                    (uint8_t)(mode >> 8), (uint8_t)mode};

    hash_update(fp, path, strlen(path) + 1);
    hash_update(fp, m, sizeof(m));
    hash_update(fp, detail, strlen(detail) + 1);
}

__attribute__((format(printf, 3, 4))) static void errf(char *err, size_t errlen, const char *fmt,
                                                       ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* tar stores directories as "a/b/": record them as the walk names them ("a/b"). */
static void fp_dir_record(struct hash *fp, const char *path, uint32_t mode)
{
    char p[SR_ARCHIVE_MAX_PATH];
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    if (n >= sizeof(p))
        n = sizeof(p) - 1;
    memcpy(p, path, n);
    p[n] = '\0';
    fp_record(fp, p, 'd', mode, "");
}

/* ------------------------------------------------------------ link check */

/*
 * A link target stays inside the tree when it is relative, and its ".."
 * components all come first and climb no higher than the directory holding
 * the link. After the leading ".." we stand on a real directory of the tree
 * (libarchive refuses to extract through a symlink, so the link's parents
 * are real), and from there the target only descends; any symlink it
 * descends through obeys the same rule, so by induction no resolution ever
 * leaves the tree. A ".." after a normal component is refused because that
 * component may itself be a symlink, which makes the climb unpredictable.
 */
bool sr_archive_link_ok(const char *path, const char *target)
{
    if (!target || !*target || target[0] == '/')
        return false;
    /* Depth of the directory holding the link: the number of normal components before the last. */
    int depth = 0;
    const char *p = path;
    while (*p) {
        const char *s = strchr(p, '/');
        size_t n = s ? (size_t)(s - p) : strlen(p);
        if (!s)
            break; /* the last component is the link itself */
        if (n && !(n == 1 && p[0] == '.'))
            depth++;
        p = s + 1;
    }
    bool descended = false;
    p = target;
    while (*p) {
        const char *s = strchr(p, '/');
        size_t n = s ? (size_t)(s - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (descended || --depth < 0)
                return false;
        } else if (n && !(n == 1 && p[0] == '.')) {
            descended = true;
        }
        if (!s)
            break;
        p = s + 1;
    }
    return true;
}

/* An archive path: relative, no "..", not empty, bounded. */
static bool path_ok(const char *path)
{
    if (!path || !*path || path[0] == '/' || strlen(path) >= SR_ARCHIVE_MAX_PATH)
        return false;
    int depth = 0;
    const char *p = path;
    while (*p) {
        const char *s = strchr(p, '/');
        size_t n = s ? (size_t)(s - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return false;
        if (n && ++depth > SR_ARCHIVE_MAX_DEPTH)
            return false;
        if (!s)
            break;
        p = s + 1;
    }
    return true;
}

/* ------------------------------------------------------------------ walk */

struct walk {
    struct hash fp;
    struct archive *a; /* NULL: fingerprint only */
    struct archive_entry *e;
    dev_t dev;
    const char *excludes;
    uint64_t files;
    uint64_t bytes;
    uint64_t total;
    sr_archive_progress_cb progress;
    void *arg;
    char *buf; /* IO_CHUNK */
    char path[SR_ARCHIVE_MAX_PATH];
    char *err;
    size_t errlen;
};

static bool excluded(const char *list, const char *name)
{
    size_t nl = strlen(name);
    const char *p = list;
    while (p && *p) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        /* Tolerate spaces around names ("logs, cache"). */
        const char *b = p;
        while (n && *b == ' ') {
            b++;
            n--;
        }
        while (n && b[n - 1] == ' ')
            n--;
        if (n == nl && memcmp(b, name, n) == 0)
            return true;
        p = c ? c + 1 : NULL;
    }
    return false;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int write_header(struct walk *w, const struct stat *st, uint32_t type, uint32_t mode,
                        int64_t size, const char *target)
{
    if (!w->a)
        return 0;
    archive_entry_clear(w->e);
    archive_entry_copy_pathname(w->e, w->path);
    archive_entry_set_filetype(w->e, type);
    archive_entry_set_perm(w->e, mode);
    archive_entry_set_size(w->e, size);
    archive_entry_set_mtime(w->e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
    if (target)
        archive_entry_copy_symlink(w->e, target);
    if (archive_write_header(w->a, w->e) < ARCHIVE_OK) {
        errf(w->err, w->errlen, "cannot add %s to the archive: %s", w->path,
             archive_error_string(w->a));
        return SR_ARCHIVE_E_IO;
    }
    return 0;
}

static int add_file(struct walk *w, int dfd, const char *name, const struct stat *lst)
{
    int rc = SR_ARCHIVE_E_IO;
    struct hash h = {0};
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        /* Vanished between readdir and open: a live tree changes; leave it out. */
        if (errno == ENOENT) {
            rc = 0;
            goto out;
        }
        errf(w->err, w->errlen, "cannot read %s: %s", w->path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_dev != lst->st_dev || st.st_ino != lst->st_ino) {
        rc = 0; /* replaced by something else since the listing: leave it out */
        goto out;
    }
    uint32_t mode = (uint32_t)st.st_mode & 0777;
    if (hash_init(&h) < 0)
        goto out;
    rc = write_header(w, &st, AE_IFREG, mode, (int64_t)st.st_size, NULL);
    if (rc < 0)
        goto out;
    rc = SR_ARCHIVE_E_IO;
    uint64_t left = (uint64_t)st.st_size;
    while (left) {
        size_t want = left < IO_CHUNK ? (size_t)left : IO_CHUNK;
        ssize_t n = read(fd, w->buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            errf(w->err, w->errlen, "cannot read %s: %s", w->path, strerror(errno));
            goto out;
        }
        if (n == 0) {
            /* The file shrank while we read it: the tar header promised st_size bytes, so
             * pad with zeros (hashed too, so the fingerprint describes the archive). */
            n = (ssize_t)want;
            memset(w->buf, 0, want);
        }
        hash_update(&h, w->buf, (size_t)n);
        if (w->a && archive_write_data(w->a, w->buf, (size_t)n) != n) {
            errf(w->err, w->errlen, "cannot write the archive: %s", archive_error_string(w->a));
            goto out;
        }
        left -= (uint64_t)n;
        w->bytes += (uint64_t)n;
        if (w->progress)
            w->progress(w->arg, w->bytes, w->total);
    }
    char hex[65];
    hash_hex(&h, hex);
    fp_record(&w->fp, w->path, 'f', mode, hex);
    w->files++;
    rc = 0;
out:
    hash_free(&h);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int walk_dir(struct walk *w, int dfd, size_t plen, int depth);

static int add_entry(struct walk *w, int dfd, const char *name, size_t plen, int depth)
{
    struct stat st;
    size_t nl = strlen(name);
    if (plen + (plen ? 1 : 0) + nl + 1 > sizeof(w->path)) {
        errf(w->err, w->errlen, "path too long under %s (limit %d bytes)", w->path,
             SR_ARCHIVE_MAX_PATH);
        return SR_ARCHIVE_E_IO;
    }
    size_t at = plen;
    if (plen)
        w->path[at++] = '/';
    memcpy(w->path + at, name, nl + 1);
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        errf(w->err, w->errlen, "cannot stat %s: %s", w->path, strerror(errno));
        return SR_ARCHIVE_E_IO;
    }
    if (st.st_dev != w->dev)
        return 0; /* another file system mounted inside: not ours to copy */
    if (S_ISREG(st.st_mode))
        return add_file(w, dfd, name, &st);
    if (S_ISLNK(st.st_mode)) {
        char target[SR_ARCHIVE_MAX_PATH];
        ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);
        if (n < 0) {
            if (errno == ENOENT)
                return 0;
            errf(w->err, w->errlen, "cannot read link %s: %s", w->path, strerror(errno));
            return SR_ARCHIVE_E_IO;
        }
        target[n] = '\0';
        /* A link out of the tree would make the extractor refuse the archive; leave it out. */
        if (!sr_archive_link_ok(w->path, target))
            return 0;
        int rc = write_header(w, &st, AE_IFLNK, 0777, 0, target);
        if (rc < 0)
            return rc;
        fp_record(&w->fp, w->path, 'l', 0, target);
        w->files++;
        return 0;
    }
    if (S_ISDIR(st.st_mode)) {
        if (depth + 1 > SR_ARCHIVE_MAX_DEPTH) {
            errf(w->err, w->errlen, "%s is nested too deeply (limit %d levels)", w->path,
                 SR_ARCHIVE_MAX_DEPTH);
            return SR_ARCHIVE_E_IO;
        }
        uint32_t mode = (uint32_t)st.st_mode & 0777;
        int rc = write_header(w, &st, AE_IFDIR, mode, 0, NULL);
        if (rc < 0)
            return rc;
        fp_record(&w->fp, w->path, 'd', mode, "");
        w->files++;
        int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            if (errno == ENOENT)
                return 0;
            errf(w->err, w->errlen, "cannot open %s: %s", w->path, strerror(errno));
            return SR_ARCHIVE_E_IO;
        }
        return walk_dir(w, sub, plen + (plen ? 1 : 0) + nl, depth + 1);
    }
    return 0; /* sockets, fifos, devices: not state worth keeping */
}

/* Walk the directory open at dfd (consumed), whose path is w->path[0..plen). */
static int walk_dir(struct walk *w, int dfd, size_t plen, int depth)
{
    int rc = SR_ARCHIVE_E_IO;
    char **names = NULL;
    size_t n = 0, cap = 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        errf(w->err, w->errlen, "cannot list %s: %s", plen ? w->path : ".", strerror(errno));
        return rc;
    }
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))
            continue;
        if (depth == 0 && excluded(w->excludes, nm))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nn = realloc(names, nc * sizeof(*nn));
            if (!nn)
                goto out;
            names = nn;
            cap = nc;
        }
        names[n] = strdup(nm);
        if (!names[n])
            goto out;
        n++;
    }
    if (errno) {
        w->path[plen] = '\0';
        errf(w->err, w->errlen, "cannot list %s: %s", plen ? w->path : ".", strerror(errno));
        goto out;
    }
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        rc = add_entry(w, dirfd(d), names[i], plen, depth);
        w->path[plen] = '\0';
        if (rc < 0)
            goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

static int walk_root(struct walk *w, const char *dir)
{
    struct stat st;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        errf(w->err, w->errlen, "cannot open the state directory %s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return SR_ARCHIVE_E_IO;
    }
    w->dev = st.st_dev;
    w->path[0] = '\0';
    return walk_dir(w, fd, 0, 0);
}

int sr_archive_fingerprint(const char *dir, const char *excludes, struct sr_archive_info *info,
                           char *err, size_t errlen)
{
    int rc = SR_ARCHIVE_E_IO;
    struct walk *w = calloc(1, sizeof(*w));
    if (!w || !(w->buf = malloc(IO_CHUNK)) || hash_init(&w->fp) < 0) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    w->excludes = excludes ? excludes : SR_ARCHIVE_EXCLUDES;
    w->err = err;
    w->errlen = errlen;
    rc = walk_root(w, dir);
    if (rc < 0)
        goto out;
    memset(info, 0, sizeof(*info));
    hash_hex(&w->fp, info->fingerprint);
    info->files = w->files;
    info->bytes = w->bytes;
out:
    if (w) {
        hash_free(&w->fp);
        free(w->buf);
        free(w);
    }
    return rc;
}

/* ---------------------------------------------------------------- create */

struct sink {
    int fd;
    struct hash h;
    uint64_t size;
    int err; /* errno of a failed write */
};

static la_ssize_t sink_write(struct archive *a, void *arg, const void *buf, size_t n)
{
    struct sink *s = arg;
    const char *p = buf;
    size_t left = n;
    while (left) {
        ssize_t w = write(s->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            s->err = errno;
            archive_set_error(a, errno, "writing the archive: %s", strerror(errno));
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    hash_update(&s->h, buf, n);
    s->size += n;
    return (la_ssize_t)n;
}

/*
 * Compress on a second thread when the machine has one (zstd's own worker
 * threads, as `tar | zstd` gets a second process): reading and hashing the
 * tree then overlap with compression. An older libarchive without the
 * option simply compresses inline.
 */
static int zstd_threads(struct archive *a)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 2)
        return ARCHIVE_OK;
    archive_write_set_filter_option(a, "zstd", "threads", n > 4 ? "4" : (n > 2 ? "2" : "1"));
    return ARCHIVE_OK;
}

int sr_archive_create(const char *dir, const char *excludes, int fd, struct sr_archive_info *info,
                      sr_archive_progress_cb progress, void *arg, uint64_t total, char *err,
                      size_t errlen)
{
    int rc = SR_ARCHIVE_E_IO;
    struct sink sink = {.fd = fd};
    struct archive *a = NULL;
    struct walk *w = calloc(1, sizeof(*w));
    if (!w || !(w->buf = malloc(IO_CHUNK)) || hash_init(&w->fp) < 0 || hash_init(&sink.h) < 0 ||
        !(w->e = archive_entry_new())) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    a = archive_write_new();
    if (!a || archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
        archive_write_set_filter_option(a, "zstd", "compression-level", "3") != ARCHIVE_OK ||
        zstd_threads(a) != ARCHIVE_OK || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        /* Names are bytes on disk and may not be UTF-8: store them as they are, whatever the
         * locale, so every name round-trips. (GNU tar notes "unknown keyword hdrcharset" and
         * still extracts them; bsdtar knows it.) */
        archive_write_set_format_option(a, "pax", "hdrcharset", "BINARY") != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open2(a, &sink, NULL, sink_write, NULL, NULL) != ARCHIVE_OK) {
        errf(err, errlen, "cannot start a tar.zst writer: %s",
             a ? archive_error_string(a) : "out of memory");
        goto out;
    }
    w->a = a;
    w->excludes = excludes ? excludes : SR_ARCHIVE_EXCLUDES;
    w->progress = progress;
    w->arg = arg;
    w->total = total;
    w->err = err;
    w->errlen = errlen;
    rc = walk_root(w, dir);
    if (rc < 0)
        goto out;
    if (archive_write_close(a) != ARCHIVE_OK) {
        errf(err, errlen, "cannot finish the archive: %s", archive_error_string(a));
        rc = SR_ARCHIVE_E_IO;
        goto out;
    }
    memset(info, 0, sizeof(*info));
    hash_hex(&w->fp, info->fingerprint);
    hash_hex(&sink.h, info->sha256);
    info->size = sink.size;
    info->files = w->files;
    info->bytes = w->bytes;
    rc = 0;
out:
    if (a)
        archive_write_free(a);
    hash_free(&sink.h);
    if (w) {
        if (w->e)
            archive_entry_free(w->e);
        hash_free(&w->fp);
        free(w->buf);
        free(w);
    }
    return rc;
}

/* --------------------------------------------------------------- extract */

static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *de;
    bool empty = true;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        if (!(nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))) {
            empty = false;
            break;
        }
    }
    closedir(d);
    return empty;
}

/* Why a write-header failure happened: the disk (IO), or libarchive's own refusal (UNSAFE). */
static int disk_error(struct archive *aw)
{
    switch (archive_errno(aw)) {
    case ENOSPC:
    case EIO:
    case EDQUOT:
    case EROFS:
    case ENOMEM:
        return SR_ARCHIVE_E_IO;
    default:
        return SR_ARCHIVE_E_UNSAFE;
    }
}

/*
 * The symlinks this extraction created, to refuse any later entry (or
 * hardlink target) whose path goes through one. This replaces libarchive's
 * ARCHIVE_EXTRACT_SECURE_SYMLINKS, which lstat()s every component of every
 * entry on disk (33k openat for 5.8k entries: restores were 1.4x slower than
 * tar, bench/snapshot.md). It is equivalent here because extraction starts in
 * a fresh, empty staging directory: the only symlinks that can exist there
 * are the ones the archive itself made, and they are all in this set.
 */
struct pathset {
    char **slot;
    size_t cap, n;
};

static uint64_t path_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static bool pathset_has(const struct pathset *ps, const char *s, size_t n)
{
    if (ps->n == 0)
        return false;
    for (size_t i = path_hash(s, n) & (ps->cap - 1);; i = (i + 1) & (ps->cap - 1)) {
        const char *e = ps->slot[i];
        if (!e)
            return false;
        if (strlen(e) == n && memcmp(e, s, n) == 0)
            return true;
    }
}

static int pathset_add(struct pathset *ps, const char *s)
{
    if ((ps->n + 1) * 2 > ps->cap) {
        size_t ncap = ps->cap ? ps->cap * 2 : 64;
        char **ns = calloc(ncap, sizeof(*ns));
        if (!ns)
            return -1;
        for (size_t i = 0; i < ps->cap; i++) {
            if (!ps->slot[i])
                continue;
            size_t j = path_hash(ps->slot[i], strlen(ps->slot[i])) & (ncap - 1);
            while (ns[j])
                j = (j + 1) & (ncap - 1);
            ns[j] = ps->slot[i];
        }
        free(ps->slot);
        ps->slot = ns;
        ps->cap = ncap;
    }
    size_t n = strlen(s);
    if (pathset_has(ps, s, n))
        return 0;
    size_t j = path_hash(s, n) & (ps->cap - 1);
    while (ps->slot[j])
        j = (j + 1) & (ps->cap - 1);
    ps->slot[j] = strdup(s);
    if (!ps->slot[j])
        return -1;
    ps->n++;
    return 0;
}

static void pathset_free(struct pathset *ps)
{
    for (size_t i = 0; i < ps->cap; i++)
        free(ps->slot[i]);
    free(ps->slot);
    ps->slot = NULL;
    ps->cap = ps->n = 0;
}

/* path without empty and "." components ("./a//b/." -> "a/b"), so one file has one name. */
static void path_norm(const char *path, char *out, size_t cap)
{
    size_t n = 0;
    const char *p = path;
    while (*p) {
        const char *q = p;
        while (*q && *q != '/')
            q++;
        size_t len = (size_t)(q - p);
        if (len && !(len == 1 && p[0] == '.') && n + len + 2 < cap) {
            if (n)
                out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
        }
        p = *q ? q + 1 : q;
    }
    out[n] = '\0';
}

/* True when a proper prefix of path (at a '/') is a symlink this extraction made. */
static bool through_link(const struct pathset *ps, const char *path)
{
    char norm[4096];
    path_norm(path, norm, sizeof(norm));
    for (const char *q = norm; *q; q++)
        if (*q == '/' && pathset_has(ps, norm, (size_t)(q - norm)))
            return true;
    return false;
}

static int extract(struct archive *ar, const char *staging, struct sr_archive_info *info,
                   sr_archive_progress_cb progress, void *arg, uint64_t total, char *err,
                   size_t errlen)
{
    int rc = SR_ARCHIVE_E_IO;
    int cwd = -1;
    bool moved = false;
    struct hash fp = {0}, h = {0};
    struct pathset links = {0};
    uint64_t entries = 0, bytes = 0;
    struct archive *aw = archive_write_disk_new();
    if (!aw || hash_init(&fp) < 0) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    /* SECURE_SYMLINKS is replaced by `links` (see struct pathset). */
    archive_write_disk_set_options(
        aw, ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
                ARCHIVE_EXTRACT_NO_OVERWRITE | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME);
    if (!dir_empty(staging)) {
        errf(err, errlen, "the staging directory %s is missing or not empty", staging);
        goto out;
    }
    cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0 || chdir(staging) < 0) {
        errf(err, errlen, "cannot enter the staging directory %s: %s", staging, strerror(errno));
        goto out;
    }
    moved = true;
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(ar, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_OK) {
            errf(err, errlen, "the archive is damaged: %s", archive_error_string(ar));
            rc = SR_ARCHIVE_E_CORRUPT;
            goto out;
        }
        const char *path = archive_entry_pathname(e);
        const char *hl = archive_entry_hardlink(e);
        unsigned type = archive_entry_filetype(e);
        rc = SR_ARCHIVE_E_UNSAFE;
        if (++entries > SR_ARCHIVE_MAX_ENTRIES) {
            errf(err, errlen, "the archive holds more than %u entries", SR_ARCHIVE_MAX_ENTRIES);
            goto out;
        }
        if (!path_ok(path)) {
            errf(err, errlen, "refused entry '%s': the path is empty, absolute or contains '..'",
                 path ? path : "");
            goto out;
        }
        if (hl) {
            if (!path_ok(hl)) {
                errf(err, errlen, "refused hardlink %s -> %s: the target leaves the tree", path,
                     hl);
                goto out;
            }
        } else if (type == AE_IFLNK) {
            const char *t = archive_entry_symlink(e);
            if (!sr_archive_link_ok(path, t)) {
                errf(err, errlen, "refused symlink %s -> %s: the target leaves the tree", path,
                     t ? t : "");
                goto out;
            }
        } else if (type != AE_IFREG && type != AE_IFDIR) {
            errf(err, errlen, "refused entry %s: only files, directories and symlinks are allowed",
                 path);
            goto out;
        }
        if (through_link(&links, path) || (hl && through_link(&links, hl))) {
            errf(err, errlen, "refused entry %s: cannot extract through a symlink", path);
            goto out;
        }
        /* A hardlink to a symlink is a symlink too. */
        char npath[4096], nhl[4096];
        path_norm(path, npath, sizeof(npath));
        if (hl)
            path_norm(hl, nhl, sizeof(nhl));
        if ((type == AE_IFLNK && !hl) || (hl && pathset_has(&links, nhl, strlen(nhl)))) {
            if (pathset_add(&links, npath) < 0) {
                errf(err, errlen, "out of memory");
                rc = SR_ARCHIVE_E_IO;
                goto out;
            }
        }
        uint32_t mode = type == AE_IFLNK ? 0 : (uint32_t)archive_entry_perm(e) & 0777;
        archive_entry_set_perm(e, type == AE_IFLNK ? 0777 : mode);
        int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        if (size < 0 || (bytes += (uint64_t)size) > SR_ARCHIVE_MAX_BYTES) {
            errf(err, errlen, "the archive holds more than 64 GiB of content");
            goto out;
        }
        /* libarchive's own refusals (through a symlink, "..", absolute) land here too. */
        if (archive_write_header(aw, e) < ARCHIVE_OK) {
            errf(err, errlen, "refused entry %s: %s", path, archive_error_string(aw));
            rc = disk_error(aw);
            goto out;
        }
        if (info && hash_init(&h) < 0)
            goto out;
        const void *blk;
        size_t n;
        la_int64_t off;
        while ((r = archive_read_data_block(ar, &blk, &n, &off)) == ARCHIVE_OK) {
            if (info) /* the content fingerprint is computed only for callers who want it */
                hash_update(&h, blk, n);
            if (archive_write_data_block(aw, blk, n, off) < ARCHIVE_OK) {
                errf(err, errlen, "cannot write %s: %s", path, archive_error_string(aw));
                rc = SR_ARCHIVE_E_IO;
                goto out;
            }
            if (progress)
                progress(arg, (uint64_t)archive_filter_bytes(ar, -1), total);
        }
        if (r != ARCHIVE_EOF) {
            errf(err, errlen, "the archive is damaged: %s", archive_error_string(ar));
            rc = SR_ARCHIVE_E_CORRUPT;
            goto out;
        }
        if (archive_write_finish_entry(aw) < ARCHIVE_OK) {
            errf(err, errlen, "cannot finish %s: %s", path, archive_error_string(aw));
            rc = SR_ARCHIVE_E_IO;
            goto out;
        }
        char hex[65];
        if (!info)
            continue;
        hash_hex(&h, hex);
        if (hl)
            fp_record(&fp, path, 'h', 0, hl);
        else if (type == AE_IFLNK)
            fp_record(&fp, path, 'l', 0, archive_entry_symlink(e));
        else if (type == AE_IFDIR)
            fp_dir_record(&fp, path, mode);
        else
            fp_record(&fp, path, 'f', mode, hex);
    }
    /* Closing applies deferred directory permissions and times. */
    if (archive_write_close(aw) != ARCHIVE_OK) {
        errf(err, errlen, "cannot finish the extraction: %s", archive_error_string(aw));
        goto out;
    }
    if (info) {
        memset(info, 0, sizeof(*info));
        hash_hex(&fp, info->fingerprint);
        info->files = entries;
        info->bytes = bytes;
    }
    rc = 0;
out:
    if (moved && fchdir(cwd) < 0) {
        /* The old directory vanished: go somewhere harmless rather than stay in staging. */
        if (chdir("/") < 0)
            rc = SR_ARCHIVE_E_IO;
    }
    if (cwd >= 0)
        close(cwd);
    hash_free(&h);
    hash_free(&fp);
    pathset_free(&links);
    if (aw)
        archive_write_free(aw);
    return rc;
}

static struct archive *reader(void)
{
    struct archive *ar = archive_read_new();
    /* Only tar inside zstd: every other reader is attack surface we do not need. */
    if (ar && (archive_read_support_filter_zstd(ar) != ARCHIVE_OK ||
               archive_read_support_format_tar(ar) != ARCHIVE_OK)) {
        archive_read_free(ar);
        ar = NULL;
    }
    return ar;
}

int sr_archive_extract(const char *path, const char *staging, struct sr_archive_info *info,
                       sr_archive_progress_cb progress, void *arg, char *err, size_t errlen)
{
    struct stat st;
    struct archive *ar = reader();
    int rc = SR_ARCHIVE_E_IO;
    if (!ar) {
        errf(err, errlen, "cannot start a tar.zst reader");
        return rc;
    }
    if (stat(path, &st) < 0 || archive_read_open_filename(ar, path, IO_CHUNK) != ARCHIVE_OK) {
        errf(err, errlen, "cannot open the archive %s: %s", path, archive_error_string(ar));
        rc = SR_ARCHIVE_E_CORRUPT;
        goto out;
    }
    rc = extract(ar, staging, info, progress, arg, (uint64_t)st.st_size, err, errlen);
out:
    archive_read_free(ar);
    return rc;
}

int sr_archive_extract_mem(const void *data, size_t n, const char *staging,
                           struct sr_archive_info *info, char *err, size_t errlen)
{
    struct archive *ar = reader();
    int rc = SR_ARCHIVE_E_IO;
    if (!ar) {
        errf(err, errlen, "cannot start a tar.zst reader");
        return rc;
    }
    if (archive_read_open_memory(ar, data, n) != ARCHIVE_OK) {
        errf(err, errlen, "not a tar.zst archive: %s", archive_error_string(ar));
        rc = SR_ARCHIVE_E_CORRUPT;
        goto out;
    }
    rc = extract(ar, staging, info, NULL, NULL, n, err, errlen);
out:
    archive_read_free(ar);
    return rc;
}

/* ----------------------------------------------------------------- misc */

int sr_archive_sha256_file(const char *path, char hex[65], uint64_t *size, char *err, size_t errlen)
{
    int rc = SR_ARCHIVE_E_IO;
    struct hash h = {0};
    char *buf = malloc(IO_CHUNK);
    uint64_t total = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || !buf || hash_init(&h) < 0) {
        errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf, IO_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        hash_update(&h, buf, (size_t)n);
        total += (uint64_t)n;
    }
    hash_hex(&h, hex);
    if (size)
        *size = total;
    rc = 0;
out:
    hash_free(&h);
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Remove everything inside the directory open at dfd (consumed). */
static int rm_inside(int dfd, int depth)
{
    int rc = 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))
            continue;
        if (unlinkat(dirfd(d), nm, 0) == 0 || errno == ENOENT)
            continue;
        if (errno != EISDIR && errno != EPERM) {
            rc = -1;
            continue;
        }
        /* A directory: make it writable (an archive may have made it 0500), empty it, remove. */
        fchmodat(dirfd(d), nm, 0700, 0);
        int sub = openat(dirfd(d), nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0 || depth > SR_ARCHIVE_MAX_DEPTH + 8 || rm_inside(sub, depth + 1) < 0 ||
            unlinkat(dirfd(d), nm, AT_REMOVEDIR) < 0)
            rc = -1;
    }
    closedir(d);
    return rc;
}

int sr_archive_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    chmod(path, 0700);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || rm_inside(fd, 0) < 0)
        return -1;
    return rmdir(path);
}
