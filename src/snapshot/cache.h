/*
 * What this machine remembers of a partition between snapshots: its local
 * cache directory (a route's <route dir>/snapcache, or the CLI's --cache).
 *
 *   state        the newest snapshot this machine took or restored: its key,
 *                its tree object (as stored, compressed) and, for each of
 *                the tree's entries, the file's device, inode and change
 *                time when it was read, and whether that may be trusted
 *   trees/<sha>  tree objects by the SHA-256 of their bytes (immutable), so
 *                garbage collection reads the kept snapshots' trees locally
 *   pending      present while a snapshot is uploading: the next snapshot
 *                then looks for orphans even if retention dropped nothing
 *
 * A file whose path, size, modification time, device, inode and change time
 * all equal the cached ones, and which was not modified in the last second
 * before it was recorded (git's "racy" rule: a later change within the same
 * timestamp tick would be invisible), is not read again: its chunks are the
 * cached ones. Everything here is an optimisation: a missing, stale or
 * damaged cache only means files are read and trees downloaded again.
 */
#ifndef SR_SNAPSHOT_CACHE_H
#define SR_SNAPSHOT_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "snapshot/manifest.h"
#include "snapshot/scan.h"
#include "snapshot/tree.h"

#define SR_CACHE_STATE_MAX (1200u * 1024u * 1024u)

struct sr_cache {
    char key[SR_MANIFEST_KEY_MAX];
    char sha256[65];
    struct sr_tree t;        /* decoded */
    struct sr_scan_stat *st; /* per entry of t */
    uint8_t *trusted;        /* per entry of t */
    bool loaded;
};

/* Load dir/state into c (freshly zeroed). 0 when loaded, -1 when absent or unusable. */
int sr_cache_load(const char *dir, struct sr_cache *c);
void sr_cache_free(struct sr_cache *c);

/*
 * out[i], has[i] for each entry i of dst: the stat src's walk recorded for the same path, when
 * src holds it as a file of the same size and modification time (both trees in component
 * order: one merge).
 */
void sr_cache_align(const struct sr_tree *dst, const struct sr_tree *src,
                    const struct sr_scan_stat *st, struct sr_scan_stat *out, bool *has);

/*
 * Save dir/state: key, the tree object (obj, as stored) and t decoded from it, with st/has
 * aligned to t's entries (sr_cache_align). An entry is trusted when it has a stat and did not
 * change within a second before `since` (when its walk started; INT64_MAX trusts all). Also
 * keeps obj under dir/trees/. Atomic; failures are ignored (the cache is an optimisation).
 */
void sr_cache_save(const char *dir, const char *key, const char *sha256, const uint8_t *obj,
                   size_t n, const struct sr_tree *t, const struct sr_scan_stat *st,
                   const bool *has_st, int64_t since);

/* The tree object with this SHA-256 from dir/trees, verified (malloc'd). 0 or -1. */
int sr_cache_tree_get(const char *dir, const char *sha256, uint8_t **obj, size_t *n);
void sr_cache_tree_put(const char *dir, const char *sha256, const uint8_t *obj, size_t n);
/* Remove dir/trees/ files the manifest no longer names. */
void sr_cache_tree_prune(const char *dir, const struct sr_manifest *m);

void sr_cache_pending_set(const char *dir, bool on);
bool sr_cache_pending(const char *dir);

#endif
