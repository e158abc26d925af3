/*
 * Walking a route's state into a snapshot tree: home/ and work/ (either may
 * be absent), without reading any file's content.
 *
 * The walk never follows a symlink and never crosses into another file
 * system; it lists names in byte order, depth first, which is the tree's
 * component order. It leaves out sockets, fifos and devices, symlinks whose
 * target leaves their member (the restore would refuse them), and whatever
 * the exclusions name:
 *
 *   SERENA_SNAPSHOT_EXCLUDE  comma list; an entry with a '/' is a path from
 *                            the top ("home/logs"), one without is a name
 *                            excluded at any depth ("node_modules")
 *
 * For every file it records what a later snapshot needs to tell that the
 * file is unchanged without reading it (device, inode, change time).
 */
#ifndef SR_SNAPSHOT_SCAN_H
#define SR_SNAPSHOT_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "snapshot/tree.h"

/* The default exclusions: what the image or a build recreates, and logs. */
#define SR_SNAPSHOT_EXCLUDES                                                                       \
    "home/language_servers,home/logs,home/.cache,node_modules,.venv,__pycache__"

struct sr_scan_stat {
    uint64_t dev, ino;
    int64_t ctime_s;
    uint32_t ctime_ns;
};

/*
 * Walk home and work (NULL or missing: left out) into t (freshly
 * initialised); *st gets one record per entry (malloc'd, parallel to
 * t->e). excludes NULL means SR_SNAPSHOT_EXCLUDES, "" excludes nothing.
 * 0, or a negative SR_STORE_E_* with err.
 */
int sr_scan(const char *home, const char *work, const char *excludes, struct sr_tree *t,
            struct sr_scan_stat **st, char *err, size_t errlen);

/* True when `path` (from the top, e.g. "work/p/node_modules", name its last component) is
 * excluded by the list. */
bool sr_scan_excluded(const char *excludes, const char *path, size_t plen, const char *name);

#endif
