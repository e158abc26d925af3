/*
 * tar.zst archives of a state directory, and their safe extraction.
 *
 * Creating walks the tree itself (depth first, names in byte order, never
 * following a symlink, never crossing into another file system), writes a
 * pax-restricted tar compressed with zstd level 3, and computes on the way
 * the archive's SHA-256 and size, the number of entries and the content
 * fingerprint: a SHA-256 over every included entry's (path, type, mode,
 * content hash or link target). Modification times are not in the
 * fingerprint, so an unchanged tree always gives the same one.
 *
 * Extracting reads only tar inside zstd (no other format or filter is
 * compiled into the reader), writes into a fresh, empty staging directory
 * with libarchive's secure flags, and refuses on its own any entry that is
 * not a regular file, directory or symlink, and any symlink or hardlink
 * whose target is absolute or climbs out of the tree.
 *
 * Ownership: callers own every buffer and path; nothing is kept between
 * calls. sr_archive_extract* change the process's working directory for the
 * duration of the call (libarchive's disk writer resolves paths against it)
 * and restore it before returning: call them only from a worker process or
 * a CLI, never from the gateway.
 */
#ifndef SR_SNAPSHOT_ARCHIVE_H
#define SR_SNAPSHOT_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Bounds on what one archive may hold; extraction refuses more. */
#define SR_ARCHIVE_MAX_ENTRIES (2u * 1000u * 1000u)
#define SR_ARCHIVE_MAX_BYTES   (64ull * 1024u * 1024u * 1024u) /* uncompressed content */
#define SR_ARCHIVE_MAX_PATH    4096
#define SR_ARCHIVE_MAX_DEPTH   256
#define SR_ARCHIVE_EXCLUDES    "language_servers,logs"

/* Errors (negative): the same values as SR_STORE_E_* where they mean the same. */
#define SR_ARCHIVE_E_IO      (-1) /* reading the tree or writing the output failed */
#define SR_ARCHIVE_E_CORRUPT (-5) /* not a tar.zst, truncated, or damaged */
#define SR_ARCHIVE_E_UNSAFE  (-6) /* an entry would escape the tree or is of a refused type */

struct sr_archive_info {
    char sha256[65];      /* of the archive bytes (create only), lower-case hex */
    char fingerprint[65]; /* of the content, lower-case hex */
    uint64_t size;        /* archive bytes (create only) */
    uint64_t files;       /* entries: regular files, directories and symlinks */
    uint64_t bytes;       /* regular-file content bytes */
};

/* Called now and then with content bytes done so far and the expected total (0 if unknown). */
typedef void (*sr_archive_progress_cb)(void *arg, uint64_t done, uint64_t total);

/*
 * Fingerprint `dir` without writing anything (same walk, same excludes as
 * sr_archive_create). excludes: comma list of top-level names; NULL means
 * SR_ARCHIVE_EXCLUDES, "" excludes nothing. Fills fingerprint, files, bytes.
 */
int sr_archive_fingerprint(const char *dir, const char *excludes, struct sr_archive_info *info,
                           char *err, size_t errlen);

/*
 * Write the tar.zst of `dir` to the already open file descriptor `fd` (not
 * closed; the caller fsyncs if it wants). progress may be NULL; total is the
 * expected content bytes for it (from sr_archive_fingerprint, or 0).
 */
int sr_archive_create(const char *dir, const char *excludes, int fd, struct sr_archive_info *info,
                      sr_archive_progress_cb progress, void *arg, uint64_t total, char *err,
                      size_t errlen);

/*
 * Extract the tar.zst at `path` into `staging`, which must exist and be
 * empty. On failure the staging directory may hold a partial tree: the
 * caller removes it. info may be NULL; when given, files and fingerprint
 * describe what was extracted (sha256 and size are left empty).
 */
int sr_archive_extract(const char *path, const char *staging, struct sr_archive_info *info,
                       sr_archive_progress_cb progress, void *arg, char *err, size_t errlen);
/* The same from memory (tests, fuzzing). */
int sr_archive_extract_mem(const void *data, size_t n, const char *staging,
                           struct sr_archive_info *info, char *err, size_t errlen);

/* True when a link target, found in the entry at `path`, stays inside the tree (see archive.c). */
bool sr_archive_link_ok(const char *path, const char *target);

/* SHA-256 (hex) and size of a file. */
int sr_archive_sha256_file(const char *path, char hex[65], uint64_t *size, char *err,
                           size_t errlen);

/* Remove a directory tree without following symlinks; a missing path succeeds. */
int sr_archive_rmtree(const char *path);

#endif
