/*
 * libFuzzer harness for the safe extractor (src/snapshot/archive.c): any
 * bytes are fed as a tar.zst into a fresh staging directory inside a
 * private box directory. Whatever the input, nothing may appear in the box
 * beside the staging directory, and no symlink left in the staging tree may
 * be absolute or climb out of it.
 *
 * Inputs starting with 'T' are a raw tar after that byte: the harness wraps
 * them in zstd first, so the mutator reaches the tar reader and our entry
 * checks instead of dying in the decompressor.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>

#include "snapshot/archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char box[64];
static char stage[96];

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Every symlink under dir (relative path rel) must satisfy the link rule. */
static void check_links(const char *dir, const char *rel, int depth)
{
    DIR *d = opendir(dir);
    if (!d || depth > 64) {
        if (d)
            closedir(d);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[4096], r[4096];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        snprintf(r, sizeof(r), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        if (lstat(p, &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            char t[4096];
            ssize_t n = readlink(p, t, sizeof(t) - 1);
            check(n > 0);
            t[n] = '\0';
            check(sr_archive_link_ok(r, t));
        } else if (S_ISDIR(st.st_mode)) {
            check_links(p, r, depth + 1);
        } else {
            check(S_ISREG(st.st_mode));
        }
    }
    closedir(d);
}

/* zstd-compress raw bytes with libarchive's raw writer; returns a malloc'd buffer. */
static uint8_t *wrap(const uint8_t *data, size_t size, size_t *outlen)
{
    size_t cap = size + 1024;
    uint8_t *out = malloc(cap);
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    *outlen = 0;
    archive_write_add_filter_zstd(a);
    archive_write_set_format_raw(a);
    archive_write_set_bytes_in_last_block(a, 1);
    if (out && archive_write_open_memory(a, out, cap, outlen) == ARCHIVE_OK) {
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, (la_int64_t)size);
        if (archive_write_header(a, e) == ARCHIVE_OK)
            archive_write_data(a, data, size);
        archive_write_close(a);
    }
    archive_entry_free(e);
    archive_write_free(a);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    uint8_t *wrapped = NULL;
    if (size > 0 && data[0] == 'T') {
        wrapped = wrap(data + 1, size - 1, &size);
        if (!wrapped)
            return 0;
        data = wrapped;
    }
    if (!box[0]) {
        snprintf(box, sizeof(box), "/tmp/sr-fuzz-extract-XXXXXX");
        check(mkdtemp(box) != NULL);
        snprintf(stage, sizeof(stage), "%s/stage", box);
    }
    sr_archive_rmtree(stage);
    check(mkdir(stage, 0700) == 0);
    sr_archive_extract_mem(data, size, stage, NULL, err, sizeof(err));
    /* Only the staging directory in the box. */
    DIR *d = opendir(box);
    check(d != NULL);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        check(!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
              !strcmp(de->d_name, "stage"));
    closedir(d);
    check_links(stage, "", 0);
    sr_archive_rmtree(stage);
    free(wrapped);
    return 0;
}
