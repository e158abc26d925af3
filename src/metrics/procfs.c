/*
 * /proc readers (see procfs.h): one parser for /proc/PID/stat, a bounded
 * scan for process trees, and the gateway's own figures.
 */
#include "metrics/procfs.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/limits.h"

/* Longest /proc/PID/stat read: 52 numbers and a 16-byte command name fit easily. */
#define STAT_READ_MAX 1024

static const char *skip_field(const char *p, const char *end)
{
    while (p < end && *p != ' ')
        p++;
    while (p < end && *p == ' ')
        p++;
    return p;
}

/* An unsigned decimal at p (a leading '-' allowed when neg != NULL); 0 or -1. */
static int parse_num(const char *p, const char *end, uint64_t *v, bool *neg)
{
    bool minus = false;
    if (neg && p < end && *p == '-') {
        minus = true;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    uint64_t x = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (x > (UINT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    if (p < end && *p != ' ' && *p != '\n')
        return -1;
    *v = x;
    if (neg)
        *neg = minus;
    return 0;
}

int sr_procfs_parse_stat(const char *buf, size_t n, struct sr_procfs_stat *st)
{
    const char *end = buf + n;
    memset(st, 0, sizeof(*st));
    uint64_t v;
    if (parse_num(buf, end, &v, NULL) < 0 || v > INT32_MAX)
        return -1;
    st->pid = (int)v;
    /* The command name: from the first '(' to the last ')'. */
    const char *open = memchr(buf, '(', n);
    const char *close = NULL;
    for (const char *q = end; q > buf; q--)
        if (q[-1] == ')') {
            close = q - 1;
            break;
        }
    if (!open || !close || close < open || close + 2 >= end || close[1] != ' ')
        return -1;
    const char *p = close + 2;
    st->state = *p; /* field 3 */
    int field = 3;
    while (p < end && field < 24) {
        p = skip_field(p, end);
        field++;
        if (p >= end)
            return -1;
        bool neg = false;
        switch (field) {
        case 4:
            if (parse_num(p, end, &v, NULL) < 0 || v > INT32_MAX)
                return -1;
            st->ppid = (int)v;
            break;
        case 14:
        case 15:
        case 22:
        case 23:
            if (parse_num(p, end, &v, NULL) < 0)
                return -1;
            if (field == 14)
                st->utime = v;
            else if (field == 15)
                st->stime = v;
            else if (field == 22)
                st->starttime = v;
            else
                st->vsize = v;
            break;
        case 24:
            if (parse_num(p, end, &v, &neg) < 0 || v > INT64_MAX)
                return -1;
            st->rss_pages = neg ? -(int64_t)v : (int64_t)v;
            break;
        default:
            break;
        }
    }
    return field == 24 ? 0 : -1;
}

static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap);
    close(fd);
    return n;
}

int sr_procfs_read_stat(pid_t pid, struct sr_procfs_stat *st)
{
    char path[64], buf[STAT_READ_MAX];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    ssize_t n = read_small(path, buf, sizeof(buf));
    if (n <= 0)
        return -1;
    return sr_procfs_parse_stat(buf, (size_t)n, st);
}

struct proc_row {
    int pid, ppid;
    uint64_t rss;
    int root; /* index into roots + 1; 0 not known yet; -1 in no tree */
};

/* Ancestors followed per process: deeper trees than this are not worth a stack. */
#define PROC_DEPTH_MAX 256

static int row_cmp(const void *a, const void *b)
{
    int x = ((const struct proc_row *)a)->pid, y = ((const struct proc_row *)b)->pid;
    return (x > y) - (x < y);
}

void sr_procfs_tree_rss(const pid_t *roots, uint64_t *out, size_t n)
{
    memset(out, 0, n * sizeof(*out));
    if (n == 0)
        return;
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct proc_row *rows = calloc(SR_PROCFS_SCAN_MAX, sizeof(*rows));
    if (!rows) {
        closedir(d);
        return;
    }
    long page = sysconf(_SC_PAGESIZE);
    size_t nrows = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nrows < SR_PROCFS_SCAN_MAX) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        char *stop;
        long pid = strtol(de->d_name, &stop, 10);
        struct sr_procfs_stat st;
        if (*stop || pid <= 0 || sr_procfs_read_stat((pid_t)pid, &st) < 0)
            continue;
        rows[nrows].pid = st.pid;
        rows[nrows].ppid = st.ppid;
        rows[nrows].rss = st.rss_pages > 0 ? (uint64_t)st.rss_pages * (uint64_t)page : 0;
        for (size_t i = 0; i < n; i++)
            if (roots[i] > 0 && st.pid == (int)roots[i])
                rows[nrows].root = (int)i + 1;
        nrows++;
    }
    closedir(d);
    /* Each process joins its nearest ancestor's tree: parents are found by binary search in
     * the rows sorted by pid; -1 marks a process known to be in no tree. */
    qsort(rows, nrows, sizeof(*rows), row_cmp);
    for (size_t i = 0; i < nrows; i++) {
        size_t chain[PROC_DEPTH_MAX];
        size_t depth = 0, at = i;
        int root = 0;
        while (rows[at].root == 0 && depth < PROC_DEPTH_MAX) {
            chain[depth++] = at;
            struct proc_row key = {.pid = rows[at].ppid};
            struct proc_row *parent =
                rows[at].ppid > 0 ? bsearch(&key, rows, nrows, sizeof(*rows), row_cmp) : NULL;
            if (!parent) {
                root = -1;
                break;
            }
            at = (size_t)(parent - rows);
        }
        if (root == 0)
            root = rows[at].root ? rows[at].root : -1;
        for (size_t k = 0; k < depth; k++)
            rows[chain[k]].root = root;
    }
    for (size_t i = 0; i < nrows; i++)
        if (rows[i].root > 0)
            out[rows[i].root - 1] += rows[i].rss;
    free(rows);
}

static double boot_time(void)
{
    char buf[4096];
    ssize_t n = read_small("/proc/stat", buf, sizeof(buf) - 1);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strstr(buf, "\nbtime ");
    return p ? strtod(p + 7, NULL) : 0;
}

int sr_procfs_self(struct sr_procfs_self *out)
{
    struct sr_procfs_stat st;
    memset(out, 0, sizeof(*out));
    if (sr_procfs_read_stat(getpid(), &st) < 0)
        return -1;
    long page = sysconf(_SC_PAGESIZE);
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    out->rss_bytes = st.rss_pages > 0 ? (uint64_t)st.rss_pages * (uint64_t)page : 0;
    out->vsize_bytes = st.vsize;
    out->cpu_seconds = (double)(st.utime + st.stime) / (double)hz;
    out->start_time = boot_time() + (double)st.starttime / (double)hz;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)))
            if (de->d_name[0] != '.')
                out->open_fds++;
        closedir(d);
        if (out->open_fds)
            out->open_fds--; /* the directory stream's own descriptor */
    }
    return 0;
}
