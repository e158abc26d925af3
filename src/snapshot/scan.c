/*
 * The walk of a route's home/ and work/ (see scan.h).
 *
 * It is the same discipline as archive.c's walk for tar.zst snapshots:
 * openat() relative to an open directory, O_NOFOLLOW everywhere, sorted
 * names, the device checked at every step, so that what a backend can do
 * to its own tree while we walk it (swap a directory for a symlink, mount
 * something) can only make us leave an entry out, never read elsewhere.
 */
#include "snapshot/scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "snapshot/archive.h"
#include "store/store.h"

struct walk {
    struct sr_tree *t;
    struct sr_scan_stat *st;
    uint32_t stcap;
    const char *excludes;
    dev_t dev;
    char path[SR_TREE_PATH_MAX + 1];
    size_t member_len; /* "home" or "work": the part before the path within the member */
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return SR_STORE_E_IO;
}

bool sr_scan_excluded(const char *list, const char *path, size_t plen, const char *name)
{
    size_t nl = strlen(name);
    const char *p = list;
    while (p && *p) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        const char *b = p;
        while (n && *b == ' ') {
            b++;
            n--;
        }
        while (n && (b[n - 1] == ' ' || b[n - 1] == '/'))
            n--;
        if (n && memchr(b, '/', n)) {
            if (n == plen && memcmp(b, path, n) == 0)
                return true;
        } else if (n && n == nl && memcmp(b, name, n) == 0) {
            return true;
        }
        p = c ? c + 1 : NULL;
    }
    return false;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int record(struct walk *w, int64_t idx, const struct stat *st)
{
    if ((uint32_t)idx >= w->stcap) {
        uint32_t nc = w->stcap ? w->stcap * 2 : 1024;
        while (nc <= (uint32_t)idx)
            nc *= 2;
        struct sr_scan_stat *ns = realloc(w->st, (size_t)nc * sizeof(*ns));
        if (!ns)
            return -1;
        w->st = ns;
        w->stcap = nc;
    }
    struct sr_scan_stat *s = &w->st[idx];
    s->dev = (uint64_t)st->st_dev;
    s->ino = (uint64_t)st->st_ino;
    s->ctime_s = (int64_t)st->st_ctim.tv_sec;
    s->ctime_ns = (uint32_t)st->st_ctim.tv_nsec;
    return 0;
}

static int add(struct walk *w, size_t plen, char type, const struct stat *st, const char *target,
               size_t tlen)
{
    int64_t idx = sr_tree_add(w->t, w->path, plen, type, (uint32_t)st->st_mode & 0777,
                              (int64_t)st->st_mtim.tv_sec, (uint32_t)st->st_mtim.tv_nsec,
                              type == 'f' ? (uint64_t)st->st_size : 0, target, tlen);
    if (idx < 0 || record(w, idx, st) < 0)
        return fail(w->err, w->errlen, "out of memory listing %s", w->path);
    return 0;
}

static int walk_dir(struct walk *w, int dfd, size_t plen, int depth);

static int entry(struct walk *w, int dfd, const char *name, size_t plen, int depth)
{
    struct stat st;
    size_t nl = strlen(name);
    if (plen + 1 + nl > SR_TREE_PATH_MAX)
        return fail(w->err, w->errlen, "path too long under %.*s (limit %d bytes)", (int)plen,
                    w->path, SR_TREE_PATH_MAX);
    w->path[plen] = '/';
    memcpy(w->path + plen + 1, name, nl + 1);
    size_t len = plen + 1 + nl;
    if (sr_scan_excluded(w->excludes, w->path, len, name))
        return 0;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT
                   ? 0
                   : fail(w->err, w->errlen, "cannot stat %s: %s", w->path, strerror(errno));
    if (st.st_dev != w->dev)
        return 0; /* another file system mounted inside: not ours to copy */
    if (S_ISREG(st.st_mode))
        return add(w, len, 'f', &st, NULL, 0);
    if (S_ISLNK(st.st_mode)) {
        char target[SR_TREE_PATH_MAX + 1];
        ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);
        if (n < 0)
            return errno == ENOENT ? 0
                                   : fail(w->err, w->errlen, "cannot read link %s: %s", w->path,
                                          strerror(errno));
        target[n] = '\0';
        /* A link out of its member would make the restore refuse the tree: leave it out. */
        if (!sr_archive_link_ok(w->path + w->member_len + 1, target))
            return 0;
        return add(w, len, 'l', &st, target, (size_t)n);
    }
    if (!S_ISDIR(st.st_mode))
        return 0; /* sockets, fifos, devices: not state worth keeping */
    if (depth + 1 >= SR_TREE_DEPTH_MAX)
        return fail(w->err, w->errlen, "%s is nested too deeply (limit %d levels)", w->path,
                    SR_TREE_DEPTH_MAX);
    int rc = add(w, len, 'd', &st, NULL, 0);
    if (rc < 0)
        return rc;
    int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0)
        return errno == ENOENT
                   ? 0
                   : fail(w->err, w->errlen, "cannot open %s: %s", w->path, strerror(errno));
    return walk_dir(w, sub, len, depth + 1);
}

/* Walk the directory open at dfd (consumed), whose path is w->path[0..plen). */
static int walk_dir(struct walk *w, int dfd, size_t plen, int depth)
{
    int rc = SR_STORE_E_IO;
    char **names = NULL;
    size_t n = 0, cap = 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return fail(w->err, w->errlen, "cannot list %.*s: %s", (int)plen, w->path, strerror(errno));
    }
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nn = realloc(names, nc * sizeof(*nn));
            if (!nn)
                goto oom;
            names = nn;
            cap = nc;
        }
        if (!(names[n] = strdup(nm)))
            goto oom;
        n++;
    }
    if (errno) {
        rc = fail(w->err, w->errlen, "cannot list %.*s: %s", (int)plen, w->path, strerror(errno));
        goto out;
    }
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        rc = entry(w, dirfd(d), names[i], plen, depth);
        w->path[plen] = '\0';
        if (rc < 0)
            goto out;
    }
    rc = 0;
    goto out;
oom:
    rc = fail(w->err, w->errlen, "out of memory listing %.*s", (int)plen, w->path);
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

static int member(struct walk *w, const char *name, const char *dir)
{
    struct stat st;
    if (!dir)
        return 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail(w->err, w->errlen, "cannot open %s: %s", dir, strerror(e));
    }
    w->dev = st.st_dev;
    w->member_len = strlen(name);
    memcpy(w->path, name, w->member_len + 1);
    int rc = add(w, w->member_len, 'd', &st, NULL, 0);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return walk_dir(w, fd, w->member_len, 0);
}

int sr_scan(const char *home, const char *work, const char *excludes, struct sr_tree *t,
            struct sr_scan_stat **st, char *err, size_t errlen)
{
    struct walk w = {.t = t,
                     .excludes = excludes ? excludes : SR_SNAPSHOT_EXCLUDES,
                     .err = err,
                     .errlen = errlen};
    int rc = member(&w, "home", home);
    if (rc == 0)
        rc = member(&w, "work", work);
    if (rc < 0) {
        free(w.st);
        return rc;
    }
    *st = w.st;
    return 0;
}
