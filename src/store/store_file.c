/*
 * The local directory store: each key is a file under one directory.
 *
 * It is the embedded default (<state-dir>/snapshots) and the store that
 * tests and self-hosted backups use, so it keeps the same promises as S3:
 * an object appears whole or not at all (we write a temporary file in the
 * same directory, fsync it, rename it over the key and fsync the directory),
 * listings come in byte order of the full key, and deleting a missing key
 * succeeds. Temporary files carry a '#', which no key may contain, so a
 * listing never shows a half-written object and no key can collide with one.
 */
#include "store/store_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

struct sr_store_file {
    struct sr_store base; /* first, so a struct sr_store * converts back */
    char dir[PATH_MAX];
};

/* One directory entry while a directory is sorted for listing. */
struct file_ent {
    char sortname[NAME_MAX + 2]; /* the name, plus '/' for a directory */
    bool dir;
};

static unsigned file_tmp_seq;

static struct sr_store_file *file_of(struct sr_store *s)
{
    return (struct sr_store_file *)s;
}

static int file_path(struct sr_store_file *f, const char *key, char *buf, size_t len, char *err,
                     size_t errlen)
{
    int n = snprintf(buf, len, "%s/%s", f->dir, key);

    if (n < 0 || (size_t)n >= len)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the path for key %s under %s is too long", key, f->dir);
    return 0;
}

/* The temporary sibling of path: unique per process and call, never a valid key. */
static int tmp_path(const char *path, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s.#tmp.%ld.%u", path, (long)getpid(), ++file_tmp_seq);

    return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Creates every missing directory between the store root and the object's file. */
static int make_parents(struct sr_store_file *f, const char *path, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    size_t root = strlen(f->dir);

    snprintf(buf, sizeof(buf), "%s", path);
    if (mkdir(f->dir, 0700) != 0 && errno != EEXIST)
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot create the store directory %s: %s",
                             f->dir, strerror(errno));
    for (char *p = buf + root + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot create directory %s: %s", buf,
                                 strerror(errno));
        *p = '/';
    }
    return 0;
}

static int write_all(int fd, const void *data, size_t n)
{
    const char *p = data;

    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Makes a rename durable: the directory entry itself must reach the disk. */
static void fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    char *slash;
    int fd;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (slash == NULL)
        return;
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/*
 * Writes dst atomically from either an open file (src_fd >= 0) or bytes, and
 * returns the SHA-256 of what was written in hex when hex is non-NULL. On
 * success the data sits, flushed, in the temporary file named in tmp, and the
 * caller publishes it (or unlinks it); on failure nothing is left behind.
 */
static int write_atomic(const char *dst, int src_fd, const void *data, size_t n, char hex[65],
                        char tmp[PATH_MAX], char *err, size_t errlen)
{
    char buf[65536];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = NULL;
    int fd = -1;
    int rc = SR_STORE_E_IO;

    if (tmp_path(dst, tmp, PATH_MAX) != 0)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG, "the path %s is too long", dst);
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot start SHA-256 (out of memory?)");
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc =
            sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (src_fd >= 0) {
        for (;;) {
            ssize_t r = read(src_fd, buf, sizeof(buf));

            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot read the source file: %s",
                                   strerror(errno));
                goto out;
            }
            if (r == 0)
                break;
            EVP_DigestUpdate(ctx, buf, (size_t)r);
            if (write_all(fd, buf, (size_t)r) != 0) {
                rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot write %s: %s", tmp,
                                   strerror(errno));
                goto out;
            }
        }
    } else {
        EVP_DigestUpdate(ctx, data, n);
        if (write_all(fd, data, n) != 0) {
            rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot write %s: %s", tmp,
                               strerror(errno));
            goto out;
        }
    }
    if (fsync(fd) != 0) {
        rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot flush %s to disk: %s", tmp,
                           strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    if (hex != NULL) {
        for (unsigned i = 0; i < mdlen && i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        hex[64] = '\0';
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(ctx);
    if (rc != 0)
        unlink(tmp);
    return rc;
}

/* Publishes tmp as dst (the last step of write_atomic's callers). */
static int publish(const char *tmp, const char *dst, char *err, size_t errlen)
{
    if (rename(tmp, dst) != 0) {
        int e = errno;

        unlink(tmp);
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot rename into %s: %s", dst,
                             strerror(e));
    }
    fsync_parent(dst);
    return 0;
}

static int put_common(struct sr_store *s, const char *key, int src_fd, const void *data, size_t n,
                      const char *want_hex, char *err, size_t errlen)
{
    struct sr_store_file *f = file_of(s);
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    char hex[65];
    int rc;

    rc = file_path(f, key, path, sizeof(path), err, errlen);
    if (rc != 0)
        return rc;
    rc = make_parents(f, path, err, errlen);
    if (rc != 0)
        return rc;
    rc = write_atomic(path, src_fd, data, n, hex, tmp, err, errlen);
    if (rc != 0)
        return rc;
    if (want_hex != NULL && strcasecmp(want_hex, hex) != 0) {
        unlink(tmp);
        return sr_store_fail(err, errlen, SR_STORE_E_CORRUPT,
                             "the upload of %s has SHA-256 %s, not the %.64s we were given (did "
                             "the file change while it was uploaded?)",
                             key, hex, want_hex);
    }
    return publish(tmp, path, err, errlen);
}

static int file_put_file(struct sr_store *s, const char *key, const char *path,
                         const char *sha256_hex, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot open %s to upload it: %s", path,
                             strerror(errno));
    rc = put_common(s, key, fd, NULL, 0, sha256_hex, err, errlen);
    close(fd);
    return rc;
}

static int file_put_bytes(struct sr_store *s, const char *key, const void *data, size_t n,
                          char *err, size_t errlen)
{
    return put_common(s, key, -1, data, n, NULL, err, errlen);
}

/* Opens an object for reading; a missing key (or a directory) is SR_STORE_E_NOTFOUND. */
static int open_object(struct sr_store_file *f, const char *key, int *fd, struct stat *st,
                       char *err, size_t errlen)
{
    char path[PATH_MAX];
    int rc = file_path(f, key, path, sizeof(path), err, errlen);

    *fd = -1;
    if (rc != 0)
        return rc;
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (*fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
            return sr_store_fail(err, errlen, SR_STORE_E_NOTFOUND, "no object %s in %s", key,
                                 f->base.desc);
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot open %s: %s", path,
                             strerror(errno));
    }
    if (fstat(*fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(*fd);
        *fd = -1;
        return sr_store_fail(err, errlen, SR_STORE_E_NOTFOUND, "no object %s in %s", key,
                             f->base.desc);
    }
    return 0;
}

static int file_get_file(struct sr_store *s, const char *key, const char *path, char *err,
                         size_t errlen)
{
    char tmp[PATH_MAX];
    struct stat st;
    int fd;
    int rc = open_object(file_of(s), key, &fd, &st, err, errlen);

    if (rc != 0)
        return rc;
    rc = write_atomic(path, fd, NULL, 0, NULL, tmp, err, errlen);
    if (rc == 0)
        rc = publish(tmp, path, err, errlen);
    close(fd);
    return rc;
}

static int file_get_bytes(struct sr_store *s, const char *key, size_t max, char **data, size_t *n,
                          char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t have = 0;
    int fd;
    int rc = open_object(file_of(s), key, &fd, &st, err, errlen);

    if (rc != 0)
        return rc;
    if ((uint64_t)st.st_size > max) {
        rc = sr_store_fail(err, errlen, SR_STORE_E_CORRUPT,
                           "object %s is %lld bytes, more than the %zu expected here", key,
                           (long long)st.st_size, max);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "out of memory reading %s", key);
        goto out;
    }
    /* Read up to the size seen, never more: the buffer is sized from it. */
    while (have < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + have, (size_t)st.st_size - have);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot read object %s: %s", key,
                               strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        have += (size_t)r;
    }
    buf[have] = '\0';
    *data = buf;
    *n = have;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

static int file_get_range(struct sr_store *s, const char *key, uint64_t off, size_t n, void *buf,
                          size_t *got, char *err, size_t errlen)
{
    struct stat st;
    int fd;
    int rc = open_object(file_of(s), key, &fd, &st, err, errlen);

    *got = 0;
    if (rc != 0)
        return rc;
    while (*got < n) {
        ssize_t r = pread(fd, (char *)buf + *got, n - *got, (off_t)(off + *got));

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot read object %s: %s", key,
                               strerror(errno));
            break;
        }
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    close(fd);
    return rc;
}

static int file_head(struct sr_store *s, const char *key, uint64_t *size, char *err, size_t errlen)
{
    struct stat st;
    int fd;
    int rc = open_object(file_of(s), key, &fd, &st, err, errlen);

    if (rc != 0)
        return rc;
    *size = (uint64_t)st.st_size;
    close(fd);
    return 0;
}

static int file_del(struct sr_store *s, const char *key, char *err, size_t errlen)
{
    struct sr_store_file *f = file_of(s);
    char path[PATH_MAX];
    int rc = file_path(f, key, path, sizeof(path), err, errlen);

    if (rc != 0)
        return rc;
    if (unlink(path) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot delete %s: %s", path,
                             strerror(errno));
    }
    fsync_parent(path);
    return 0;
}

static int ent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct file_ent *)a)->sortname, ((const struct file_ent *)b)->sortname);
}

static bool name_ok(const char *name)
{
    if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        char ch = *p;

        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/*
 * A temporary file of a writer that is gone (killed mid-upload): removed
 * while listing, so that a snapshot's collection of what a killed upload
 * left covers this store's own half-written files too. Only when the pid in
 * its name names no process: an upload in progress keeps its file.
 */
static void sweep_tmp(int dfd, const char *name)
{
    const char *t = strstr(name, ".#tmp.");
    char *end;
    if (t == NULL)
        return;
    errno = 0;
    long pid = strtol(t + 6, &end, 10);
    if (errno != 0 || end == t + 6 || *end != '.' || pid <= 0)
        return;
    if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        unlinkat(dfd, name, 0);
}

/*
 * Lists one directory. Sorting a directory's entries by name, with '/'
 * appended to subdirectories, yields the byte order of full keys: every key
 * below "a" starts with "a/", so comparing "a/" against a sibling file name
 * decides exactly as comparing the full keys would. The walk therefore
 * streams keys in order while holding only one directory per level.
 */
static int walk(struct sr_store_file *f, const char *keybase, const char *prefix,
                sr_store_list_cb cb, void *arg, int depth, char *err, size_t errlen)
{
    char dpath[PATH_MAX];
    struct file_ent *ents = NULL;
    size_t n = 0, cap = 0;
    size_t plen = strlen(prefix);
    DIR *d = NULL;
    struct dirent *de;
    int rc = 0;

    if (depth > SR_STORE_DEPTH_MAX)
        return sr_store_fail(err, errlen, SR_STORE_E_IO,
                             "the store directory is nested deeper than %d levels under %s",
                             SR_STORE_DEPTH_MAX, f->dir);
    snprintf(dpath, sizeof(dpath), "%s/%s", f->dir, keybase);
    d = opendir(dpath);
    if (d == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot list %s: %s", dpath,
                             strerror(errno));
    }
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        bool isdir;

        if (!name_ok(de->d_name)) {
            sweep_tmp(dirfd(d), de->d_name);
            continue;
        }
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            isdir = true;
        else if (S_ISREG(st.st_mode))
            isdir = false;
        else
            continue;
        if (n == cap) {
            size_t ncap = cap == 0 ? 64 : cap * 2;
            struct file_ent *ne;

            if (ncap > SR_STORE_DIR_ENTRIES_MAX) {
                rc = sr_store_fail(err, errlen, SR_STORE_E_IO,
                                   "directory %s holds more than %u entries", dpath,
                                   SR_STORE_DIR_ENTRIES_MAX);
                goto out;
            }
            ne = realloc(ents, ncap * sizeof(*ents));
            if (ne == NULL) {
                rc = sr_store_fail(err, errlen, SR_STORE_E_IO, "out of memory listing %s", dpath);
                goto out;
            }
            ents = ne;
            cap = ncap;
        }
        snprintf(ents[n].sortname, sizeof(ents[n].sortname), "%s%s", de->d_name, isdir ? "/" : "");
        ents[n].dir = isdir;
        n++;
    }
    closedir(d);
    d = NULL;
    if (n > 0)
        qsort(ents, n, sizeof(*ents), ent_cmp);
    for (size_t i = 0; i < n; i++) {
        char full[SR_STORE_KEY_MAX + 2];
        size_t flen;
        int k = snprintf(full, sizeof(full), "%s%s", keybase, ents[i].sortname);

        if (k < 0 || (size_t)k > SR_STORE_KEY_MAX)
            continue;
        flen = (size_t)k;
        if (ents[i].dir) {
            /* Descend only where a key below could still start with the prefix. */
            size_t m = flen < plen ? flen : plen;

            if (strncmp(full, prefix, m) != 0)
                continue;
            rc = walk(f, full, prefix, cb, arg, depth + 1, err, errlen);
            if (rc != 0)
                goto out;
        } else {
            struct sr_store_object o;
            struct stat st;
            char opath[PATH_MAX];

            if (flen < plen || strncmp(full, prefix, plen) != 0)
                continue;
            snprintf(opath, sizeof(opath), "%s/%s", f->dir, full);
            if (stat(opath, &st) != 0)
                continue; /* deleted while we listed */
            memset(&o, 0, sizeof(o));
            snprintf(o.key, sizeof(o.key), "%s", full);
            o.size = (uint64_t)st.st_size;
            o.mtime = (int64_t)st.st_mtime;
            rc = cb(arg, &o);
            if (rc != 0)
                goto out;
        }
    }
out:
    if (d != NULL)
        closedir(d);
    free(ents);
    return rc;
}

static int file_list(struct sr_store *s, const char *prefix, sr_store_list_cb cb, void *arg,
                     char *err, size_t errlen)
{
    char base[SR_STORE_KEY_MAX + 1];
    const char *slash = strrchr(prefix, '/');
    size_t blen = slash != NULL ? (size_t)(slash - prefix) + 1 : 0;

    /* Start at the deepest directory the prefix names in full. */
    memcpy(base, prefix, blen);
    base[blen] = '\0';
    return walk(file_of(s), base, prefix, cb, arg, 0, err, errlen);
}

static void file_close(struct sr_store *s)
{
    free(s);
}

static int file_create(struct sr_store *s, char *err, size_t errlen)
{
    struct sr_store_file *f = file_of(s);

    if (mkdir(f->dir, 0700) != 0 && errno != EEXIST)
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "cannot create the store directory %s: %s",
                             f->dir, strerror(errno));
    return 0;
}

static const struct sr_store_ops file_ops = {
    .create = file_create,
    .put_file = file_put_file,
    .put_bytes = file_put_bytes,
    .get_file = file_get_file,
    .get_bytes = file_get_bytes,
    .get_range = file_get_range,
    .head = file_head,
    .list = file_list,
    .del = file_del,
    .close = file_close,
};

int sr_store_file_open(const struct sr_store_config *c, struct sr_store **out, char *err,
                       size_t errlen)
{
    struct sr_store_file *f;
    struct stat st;
    size_t n;

    if (c->dir == NULL || c->dir[0] == '\0')
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the file store needs a directory: use --store file:/abs/dir");
    if (c->dir[0] != '/')
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the file store directory \"%.200s\" is not an absolute path", c->dir);
    n = strlen(c->dir);
    while (n > 1 && c->dir[n - 1] == '/')
        n--;
    if (n == 1)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the file store directory cannot be / itself: name a directory");
    if (n + 2 + SR_STORE_KEY_MAX + 32 >= PATH_MAX)
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the file store directory path is too long (%zu bytes)", n);
    if (stat(c->dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return sr_store_fail(err, errlen, SR_STORE_E_CONFIG,
                             "the file store path %.200s exists but is not a directory", c->dir);
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return sr_store_fail(err, errlen, SR_STORE_E_IO, "out of memory");
    f->base.ops = &file_ops;
    memcpy(f->dir, c->dir, n);
    f->dir[n] = '\0';
    snprintf(f->base.desc, sizeof(f->base.desc), "file:%s", f->dir);
    *out = &f->base;
    return 0;
}
