/*
 * Unit tests for src/snapshot/archive.c: the link rule, the content
 * fingerprint (stable across mtimes, sensitive to content, mode, names and
 * link targets, blind to excluded names), round trips through a real
 * tar.zst, and refusal of hostile archives crafted with libarchive's own
 * writer (.., absolute paths, escaping symlinks and hardlinks, devices and
 * fifos) with nothing written outside the staging directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <dirent.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>

#include "snapshot/archive.h"

static char root[256];

static void put(const char *rel, const char *content)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void mk(const char *rel)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static void lnk(const char *target, const char *rel)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    assert_int_equal(symlink(target, p), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/sr-test-archive-XXXXXX");
    assert_non_null(mkdtemp(root));
    mk("home");
    mk("home/a");
    mk("home/a/b");
    put("home/a/b/f.txt", "hello");
    put("home/empty", "");
    put("home/\xc3\xbcn\xc3\xaf.txt", "unicode");
    lnk("a/b/f.txt", "home/link");
    lnk("../f.txt", "home/a/b/up");
    mk("home/logs");
    put("home/logs/x.log", "log");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sr_archive_rmtree(root);
    return 0;
}

static void fingerprint(const char *rel, const char *excl, char out[65])
{
    char p[512], err[256];
    struct sr_archive_info i;
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    assert_int_equal(sr_archive_fingerprint(p, excl, &i, err, sizeof(err)), 0);
    memcpy(out, i.fingerprint, 65);
}

static void test_link_rule(void **state)
{
    (void)state;
    assert_true(sr_archive_link_ok("link", "a/b/f.txt"));
    assert_true(sr_archive_link_ok("a/b/up", "../f.txt"));
    assert_true(sr_archive_link_ok("a/b/up", "../../x"));
    assert_true(sr_archive_link_ok("a/self", "."));
    assert_true(sr_archive_link_ok("a/l", ".."));
    assert_false(sr_archive_link_ok("a/b/up", "../../../x"));
    assert_false(sr_archive_link_ok("link", "../x"));
    assert_false(sr_archive_link_ok("link", "/etc/passwd"));
    assert_false(sr_archive_link_ok("link", ""));
    assert_false(sr_archive_link_ok("a/l", "b/../../x"));
    assert_false(sr_archive_link_ok("a/l", "b/.."));
    assert_false(sr_archive_link_ok("./l", "./../x"));
}

static void test_fingerprint_stable_and_sensitive(void **state)
{
    (void)state;
    char a[65], b[65], c[65];
    fingerprint("home", NULL, a);
    /* A new mtime alone changes nothing. */
    char p[512];
    snprintf(p, sizeof(p), "%s/home/a/b/f.txt", root);
    struct timeval tv[2] = {{1000, 0}, {1000, 0}};
    assert_int_equal(utimes(p, tv), 0);
    fingerprint("home", NULL, b);
    assert_string_equal(a, b);
    /* Excluded names are invisible. */
    put("home/logs/y.log", "more");
    fingerprint("home", NULL, b);
    assert_string_equal(a, b);
    /* Content, mode, new files and link targets all count. */
    put("home/a/b/f.txt", "hellO");
    fingerprint("home", NULL, b);
    assert_string_not_equal(a, b);
    put("home/a/b/f.txt", "hello");
    fingerprint("home", NULL, c);
    assert_string_equal(a, c);
    assert_int_equal(chmod(p, 0600), 0);
    fingerprint("home", NULL, b);
    assert_string_not_equal(a, b);
    assert_int_equal(chmod(p, 0644), 0);
    fingerprint("home", "", b); /* nothing excluded: logs count now */
    assert_string_not_equal(a, b);
    fingerprint("home", NULL, c);
    assert_string_equal(a, c);
}

static void test_round_trip(void **state)
{
    (void)state;
    char home[512], out[512], stage[512], err[256];
    struct sr_archive_info ci, xi;
    snprintf(home, sizeof(home), "%s/home", root);
    snprintf(out, sizeof(out), "%s/a.tar.zst", root);
    snprintf(stage, sizeof(stage), "%s/stage", root);
    /* A link out of the tree is left out when writing (the extractor would refuse it). */
    lnk("/etc/passwd", "home/escape");
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(sr_archive_create(home, NULL, fd, &ci, NULL, NULL, 0, err, sizeof(err)), 0);
    close(fd);
    assert_int_equal(ci.files, 7); /* a, a/b, a/b/f.txt, a/b/up, empty, link, unicode */
    assert_int_equal(strlen(ci.sha256), 64);
    char hex[65];
    uint64_t size;
    assert_int_equal(sr_archive_sha256_file(out, hex, &size, err, sizeof(err)), 0);
    assert_string_equal(hex, ci.sha256);
    assert_int_equal(size, ci.size);
    struct sr_archive_info fi;
    assert_int_equal(sr_archive_fingerprint(home, NULL, &fi, err, sizeof(err)), 0);
    assert_string_equal(fi.fingerprint, ci.fingerprint);

    assert_int_equal(mkdir(stage, 0700), 0);
    assert_int_equal(sr_archive_extract(out, stage, &xi, NULL, NULL, err, sizeof(err)), 0);
    assert_string_equal(xi.fingerprint, ci.fingerprint);
    assert_int_equal(sr_archive_fingerprint(stage, NULL, &fi, err, sizeof(err)), 0);
    assert_string_equal(fi.fingerprint, ci.fingerprint);
    char buf[64] = "";
    snprintf(out, sizeof(out), "%s/link", stage);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "hello");
    /* A non-empty staging directory is refused. */
    snprintf(out, sizeof(out), "%s/a.tar.zst", root);
    assert_int_not_equal(sr_archive_extract(out, stage, NULL, NULL, NULL, err, sizeof(err)), 0);
    sr_archive_rmtree(stage);
    unlink(out);
}

/* ----- hostile archives, written with libarchive directly ----- */

struct mem {
    char buf[64 * 1024];
    size_t len;
};

static la_ssize_t mem_write(struct archive *a, void *arg, const void *p, size_t n)
{
    struct mem *m = arg;
    (void)a;
    if (m->len + n > sizeof(m->buf))
        return -1;
    memcpy(m->buf + m->len, p, n);
    m->len += n;
    return (la_ssize_t)n;
}

/* One entry (and optionally a file after it, to see if it lands through a link). */
static void hostile(struct mem *m, const char *path, unsigned type, const char *link, bool hard,
                    const char *then)
{
    struct archive *a = archive_write_new();
    archive_write_add_filter_zstd(a);
    archive_write_set_format_pax_restricted(a);
    archive_write_set_bytes_in_last_block(a, 1);
    m->len = 0;
    assert_int_equal(archive_write_open2(a, m, NULL, mem_write, NULL, NULL), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, 0644);
    if (link && hard)
        archive_entry_set_hardlink(e, link);
    else if (link)
        archive_entry_set_symlink(e, link);
    if (type == AE_IFCHR)
        archive_entry_set_rdev(e, makedev(1, 3));
    archive_entry_set_size(e, type == AE_IFREG && !hard ? 1 : 0);
    assert_true(archive_write_header(a, e) >= ARCHIVE_WARN);
    if (type == AE_IFREG && !hard)
        archive_write_data(a, "x", 1);
    if (then) {
        archive_entry_clear(e);
        archive_entry_set_pathname(e, then);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, 1);
        archive_write_header(a, e);
        archive_write_data(a, "y", 1);
    }
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
}

static int count_entries(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "%s", dir);
    int n = 0;
    DIR *d = opendir(cmd);
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void refused(const char *path, unsigned type, const char *link, bool hard, const char *then)
{
    static struct mem m;
    char box[512], stage[512], err[256];
    snprintf(box, sizeof(box), "%s/box", root);
    snprintf(stage, sizeof(stage), "%s/box/stage", root);
    sr_archive_rmtree(box);
    assert_int_equal(mkdir(box, 0700), 0);
    assert_int_equal(mkdir(stage, 0700), 0);
    hostile(&m, path, type, link, hard, then);
    int rc = sr_archive_extract_mem(m.buf, m.len, stage, NULL, err, sizeof(err));
    if (rc != SR_ARCHIVE_E_UNSAFE)
        fprintf(stderr, "entry %s: rc %d (%s)\n", path, rc, err);
    assert_int_equal(rc, SR_ARCHIVE_E_UNSAFE);
    /* Nothing beside the staging directory, and no link left in it. */
    assert_int_equal(count_entries(box), 1);
    struct stat st;
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", stage, path);
    if (path[0] != '/' && strncmp(path, "..", 2) != 0)
        assert_true(lstat(p, &st) < 0 || !S_ISLNK(st.st_mode));
    sr_archive_rmtree(box);
}

static void test_hostile(void **state)
{
    (void)state;
    refused("../escape.txt", AE_IFREG, NULL, false, NULL);
    refused("a/../../escape.txt", AE_IFREG, NULL, false, NULL);
    refused("/tmp/sr-abs-escape.txt", AE_IFREG, NULL, false, NULL);
    refused("esc", AE_IFLNK, "/tmp", false, "esc/through.txt");
    refused("esc", AE_IFLNK, "..", false, "esc/through.txt");
    refused("d/esc", AE_IFLNK, "x/../../..", false, NULL);
    refused("hl", AE_IFREG, "/etc/passwd", true, NULL);
    refused("hl", AE_IFREG, "../outside", true, NULL);
    refused("dev", AE_IFCHR, NULL, false, NULL);
    refused("fifo", AE_IFIFO, NULL, false, NULL);
    struct stat st;
    assert_true(lstat("/tmp/sr-abs-escape.txt", &st) < 0);
}

/* Several entries in one archive: {path, type, link target or NULL}. */
struct ent {
    const char *path;
    unsigned type;
    const char *link;
};

static void refused_chain(const struct ent *list, size_t n, const char *outside)
{
    static struct mem m;
    char box[512], stage[512], err[256];
    snprintf(box, sizeof(box), "%s/box", root);
    snprintf(stage, sizeof(stage), "%s/box/stage/in", root);
    sr_archive_rmtree(box);
    assert_int_equal(mkdir(box, 0700), 0);
    snprintf(err, sizeof(err), "%s/box/stage", root);
    assert_int_equal(mkdir(err, 0700), 0);
    assert_int_equal(mkdir(stage, 0700), 0);
    struct archive *a = archive_write_new();
    archive_write_add_filter_zstd(a);
    archive_write_set_format_pax_restricted(a);
    archive_write_set_bytes_in_last_block(a, 1);
    m.len = 0;
    assert_int_equal(archive_write_open2(a, &m, NULL, mem_write, NULL, NULL), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    for (size_t i = 0; i < n; i++) {
        archive_entry_clear(e);
        archive_entry_set_pathname(e, list[i].path);
        archive_entry_set_filetype(e, list[i].type);
        archive_entry_set_perm(e, 0755);
        if (list[i].link)
            archive_entry_set_symlink(e, list[i].link);
        archive_entry_set_size(e, list[i].type == AE_IFREG ? 1 : 0);
        assert_true(archive_write_header(a, e) >= ARCHIVE_WARN);
        if (list[i].type == AE_IFREG)
            archive_write_data(a, "z", 1);
    }
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    int rc = sr_archive_extract_mem(m.buf, m.len, stage, NULL, err, sizeof(err));
    if (rc != SR_ARCHIVE_E_UNSAFE)
        fprintf(stderr, "chain: rc %d (%s)\n", rc, err);
    assert_int_equal(rc, SR_ARCHIVE_E_UNSAFE);
    /* Nothing landed next to the staging directory. */
    char p[600];
    struct stat st;
    snprintf(p, sizeof(p), "%s/box/stage/%s", root, outside);
    assert_true(lstat(p, &st) < 0);
    sr_archive_rmtree(box);
}

/* Each link is inside the tree by itself; chained, the last one resolves above it. Writing
 * through any symlink is refused (our own check, replacing SECURE_SYMLINKS). */
static void test_hostile_link_chains(void **state)
{
    (void)state;
    const struct ent up_chain[] = {
        {"a", AE_IFDIR, NULL},
        {"a/b", AE_IFLNK, ".."},
        {"a/c", AE_IFLNK, "b/.."},
        {"a/c/evil.txt", AE_IFREG, NULL},
    };
    refused_chain(up_chain, 4, "evil.txt");
    const struct ent dot_names[] = {
        {"./s", AE_IFLNK, "."},
        {"s//evil.txt", AE_IFREG, NULL},
    };
    refused_chain(dot_names, 2, "evil.txt");
}

static void test_garbage(void **state)
{
    (void)state;
    char stage[512], err[256];
    snprintf(stage, sizeof(stage), "%s/g", root);
    assert_int_equal(mkdir(stage, 0700), 0);
    assert_int_equal(sr_archive_extract_mem("not an archive", 14, stage, NULL, err, sizeof(err)),
                     SR_ARCHIVE_E_CORRUPT);
    sr_archive_rmtree(stage);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_rule),
        cmocka_unit_test(test_fingerprint_stable_and_sensitive),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_hostile_link_chains),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
