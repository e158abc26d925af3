/*
 * What snapshot.c, take.c and restore.c share (not part of the interface,
 * see snapshot.h): messages, the manifest's key and loading, snapshot key
 * names, and the staging-and-swap steps of a restore.
 */
#ifndef SR_SNAPSHOT_INTERNAL_H
#define SR_SNAPSHOT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "snapshot/manifest.h"
#include "snapshot/snapshot.h"
#include "snapshot/tree.h"

#define SR_SNAP_SUFFIX_TAR   ".tar.zst"
#define SR_SNAP_SUFFIX_TREE  ".tree"
#define SR_SNAP_TREE_OBJ_MAX (256u * 1024u * 1024u) /* a tree object as stored (compressed) */

__attribute__((format(printf, 4, 5))) int sr_snap_fail(char *err, size_t errlen, int code,
                                                       const char *fmt, ...);
/* Append a sentence to r->note ("; " between sentences), truncating quietly. */
__attribute__((format(printf, 2, 3))) void sr_snap_note(struct sr_snapshot_result *r,
                                                        const char *fmt, ...);

/* "<prefix>/<partition>/manifest.json", "<prefix>/<partition>/packs/" */
void sr_snap_manifest_key(const struct sr_snapshot_opts *o, char *out, size_t cap);
void sr_snap_packs_prefix(const struct sr_snapshot_opts *o, char *out, size_t cap);
/* True when key names a tree snapshot (".tree"), false for an archive. */
bool sr_snap_is_tree(const char *key);
/* A free key "<prefix>/<partition>/<UTC stamp>-<seq><suffix>" after the manifest's newest. */
int sr_snap_new_key(struct sr_store *s, const struct sr_snapshot_opts *o,
                    const struct sr_manifest *m, int64_t now, const char *suffix, char *key,
                    size_t cap, char *err, size_t errlen);
/* Write the manifest (after push). */
int sr_snap_put_manifest(struct sr_store *s, const struct sr_snapshot_opts *o,
                         const struct sr_manifest *m, char *err, size_t errlen);

/* A tree object as stored (zstd) into t (freshly initialised); err says why it is not one. */
int sr_snap_decode_tree_obj(const uint8_t *data, size_t n, struct sr_tree *t, char *err,
                            size_t errlen);
/* A snapshot's tree: from the local cache directory (NULL: none) when it holds the object with
 * this SHA-256, else downloaded, checked against it (when given) and kept there. */
int sr_snap_get_tree(struct sr_store *s, const char *cache, const char *key, const char *sha256,
                     struct sr_tree *t, char *err, size_t errlen);

/* Only the pack ids of a snapshot's tree (the start of its object): *ids malloc'd, *np of them. */
int sr_snap_get_tree_packs(struct sr_store *s, const char *cache, const char *key,
                           const char *sha256, uint8_t (**ids)[32], uint32_t *np, char *err,
                           size_t errlen);

/* Split a directory into its parent and base name. */
int sr_snap_split(const char *dir, char *parent, size_t pcap, char *base, size_t bcap, char *err,
                  size_t errlen);
/* Remove leftovers of killed restores beside <parent>/<base>. */
void sr_snap_clean_stale(const char *parent, const char *base);
/*
 * Put the restored tree at `dst` in place of what is there (renamed aside, then removed).
 * Excluded top-level names of the old directory move into the new one first (member: "home"
 * or "work", to match the exclusions' paths).
 */
int sr_snap_swap_in(const char *dst, const char *tree, const char *parent, const char *base,
                    const char *excludes, const char *member, char *err, size_t errlen);

/* take.c, restore.c */
int sr_snap_take_tree(struct sr_store *s, const struct sr_snapshot_opts *o, const char *home,
                      struct sr_manifest *m, bool found, struct sr_snapshot_result *r, char *err,
                      size_t errlen);
int sr_snap_restore_tree(struct sr_store *s, const struct sr_snapshot_opts *o, const char *home,
                         const struct sr_manifest_entry *c, struct sr_snapshot_result *r, char *err,
                         size_t errlen);

#endif
