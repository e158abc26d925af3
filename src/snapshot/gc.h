/*
 * Retention and garbage collection of a partition, after a new manifest is
 * stored (see snapshot.h for the order of writes).
 *
 * What is deleted: the snapshots the manifest no longer names because of
 * the retention count (`dropped`), and — only when the manifest was read
 * before the snapshot, so that we know what it named — every pack that no
 * kept snapshot's tree uses and every tree the manifest does not name. A
 * pack a dropped snapshot used goes at once; any other (and any unnamed
 * tree) only when it is older than `started` (the snapshot's own start):
 * what a killed upload left behind is collected by the next snapshot, while
 * what another writer is uploading right now is not. A kept tree that cannot be
 * read stops the collection of packs altogether (never delete what a kept
 * snapshot may need).
 */
#ifndef SR_SNAPSHOT_GC_H
#define SR_SNAPSHOT_GC_H

#include <stdint.h>
#include <stdbool.h>

#include "snapshot/manifest.h"
#include "snapshot/snapshot.h"
#include "snapshot/tree.h"
#include "store/store.h"

/*
 * m: the manifest as stored (newest first); newest: the tree of m->e[0] when it is a tree
 * snapshot we have in memory (its packs need no download), else NULL. orphans: list the
 * partition for what no snapshot names (after a killed upload, or when we cannot know);
 * otherwise only the dropped snapshots' packs are candidates, and no listing is made.
 * Failures only add notes to r: the snapshot itself is already safe.
 */
void sr_snap_gc(struct sr_store *s, const struct sr_snapshot_opts *o, const struct sr_manifest *m,
                const struct sr_tree *newest, const struct sr_manifest_entry *dropped,
                uint32_t ndropped, bool manifest_was_read, bool orphans, int64_t started,
                struct sr_snapshot_result *r);

#endif
