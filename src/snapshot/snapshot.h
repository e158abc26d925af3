/*
 * Snapshots of a route's state (its SERENA_HOME and its workspace) to an
 * object store, and restores. The format and its guarantees are written
 * down in docs/snapshots.md; in short:
 *
 *   <prefix>/<partition>/manifest.json              the index, newest first
 *   <prefix>/<partition>/<stamp>-<seq>.tree         one snapshot: every entry of
 *                                                   home/ and work/ and where its
 *                                                   content is (tree.h)
 *   <prefix>/<partition>/packs/<sha256>             content: zstd frames of chunks,
 *                                                   shared by the snapshots (pack.h)
 *   <prefix>/<partition>/<stamp>-<seq>.tar.zst      format 1 snapshots (SERENA_HOME
 *                                                   only), still restored
 *
 * Order of writes: packs, then the tree, then the manifest naming it; only
 * then are snapshots beyond the retention count, and packs no kept snapshot
 * uses, deleted. So the manifest never names a missing object, and a worker
 * killed at any point leaves the previous snapshot intact.
 *
 * A snapshot whose content fingerprint (paths, types, modes, content
 * digests; not times) equals the newest one's is skipped unless forced.
 *
 * A restore verifies the tree against the manifest's SHA-256 and every
 * chunk against its own, builds home/ and work/ in staging directories
 * beside them, then swaps them in with rename(). A corrupt or missing
 * snapshot falls back to the previous one.
 *
 * These functions block: run them in a worker (sr_snapshot_job_*) or a CLI.
 */
#ifndef SR_SNAPSHOT_SNAPSHOT_H
#define SR_SNAPSHOT_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include <event2/event.h>

#include "store/store.h"

struct sr_snapshot_opts {
    const char *prefix;    /* SERENA_R2_STATE_PREFIX */
    const char *partition; /* resolved partition name ([A-Za-z0-9._-]) */
    const char *work;      /* the workspace snapshotted beside home (work/), NULL for none */
    const char *cache;     /* local cache directory (cache.h), NULL for none */
    const char *spec;      /* SR_SNAP_CLONE: the project spec to clone */
    const char *excludes;  /* SERENA_SNAPSHOT_EXCLUDE (scan.h); NULL: SR_SNAPSHOT_EXCLUDES */
    uint32_t retention;    /* SERENA_R2_SNAPSHOT_RETENTION_COUNT */
    bool force;            /* take even when the fingerprint is unchanged */
    bool progress;         /* draw a progress bar on stderr (CLI on a terminal) */
};

struct sr_snapshot_result {
    bool skipped;   /* unchanged: nothing uploaded */
    bool fell_back; /* restore used an older snapshot than the newest */
    bool nothing;   /* restore: the store holds no snapshot for this partition */
    char key[512];
    char sha256[65];
    uint64_t size;  /* tree (or archive) bytes */
    uint64_t added; /* bytes this snapshot added to the store (tree and new packs) */
    uint64_t total; /* bytes of the tree and of every pack it uses */
    uint64_t files;
    int64_t created; /* unix seconds */
    char note[512];  /* what happened, for logs and /status (e.g. why it fell back) */
};

/* Take a snapshot of `home` (and o->work). 0 or a negative SR_STORE_E_* with err. */
int sr_snapshot_take(struct sr_store *s, const struct sr_snapshot_opts *o, const char *home,
                     struct sr_snapshot_result *r, char *err, size_t errlen);

/* Restore into `home` and o->work (each replaced atomically); key NULL means the newest. */
int sr_snapshot_restore(struct sr_store *s, const struct sr_snapshot_opts *o, const char *home,
                        const char *key, struct sr_snapshot_result *r, char *err, size_t errlen);

/* List the partition's snapshots (newest first) as JSON or a table on stdout. */
int sr_snapshot_list(struct sr_store *s, const struct sr_snapshot_opts *o, bool json, char *err,
                     size_t errlen);

struct sr_jw;
/* The result's members (skipped, fell_back, nothing, key, sha256, size, added, total, files,
 * created, note)
 * into an open JSON object; strings are reduced to printable ASCII so they always serialize. */
void sr_snapshot_result_members(struct sr_jw *w, const struct sr_snapshot_result *r);
/* A string value reduced to printable ASCII (messages may hold cut-off names). */
void sr_snapshot_jw_ascii(struct sr_jw *w, const char *s);

/* ---- jobs: the same work in a forked worker, reported to the event loop ---- */

/* SR_SNAP_CLONE: clone o->spec (a git project spec, core/project.h) into `home` (the
 * destination directory), in the same worker process (clone.h); no store is opened. */
enum sr_snapshot_op { SR_SNAP_TAKE, SR_SNAP_RESTORE, SR_SNAP_CLONE };

struct sr_snapshot_job;

/* status: 0 or SR_STORE_E_*; r and err valid only during the call. */
typedef void (*sr_snapshot_job_cb)(void *arg, int status, const struct sr_snapshot_result *r,
                                   const char *err);

/*
 * Fork a worker that opens the store from `c` and runs `op` on `home`, then
 * reports over a pipe. The loop never blocks. A failed start calls no callback.
 * c, o and home are read only by the worker (copied by fork): they need not
 * outlive this call. The callback runs exactly once, from the loop, after the
 * worker has exited and been reaped; the job is already freed by then (do not
 * cancel it from the callback). A worker killed or crashed reports
 * SR_STORE_E_IO with how it ended. The worker's pid is registered with
 * sr_child_track so a PID 1 reaper leaves it to us.
 */
int sr_snapshot_job_start(struct event_base *base, enum sr_snapshot_op op,
                          const struct sr_store_config *c, const struct sr_snapshot_opts *o,
                          const char *home, sr_snapshot_job_cb cb, void *arg,
                          struct sr_snapshot_job **out);
/* The worker binary: SERENA_REMOTE_SNAPSHOT_BIN, else serena-remote-snapshot beside the
 * running binary. 0 or -1. */
int sr_snapshot_bin(char *out, size_t cap);

/* The request document a job hands its worker (bounded: it must fit a pipe's buffer). */
#define SR_SNAPSHOT_JOB_REQUEST_MAX 16384
#define SR_SNAPSHOT_JOB_LINE_MAX    4096 /* the worker's one result line */
#define SR_SNAPSHOT_JOB_RESULT_FD   3
#define SR_SNAPSHOT_JOB_REQUEST_FD  4

/*
 * The worker's side, in serena-remote-snapshot: `serena-remote-snapshot
 * __job` reads the request on fd 4, runs it and writes the result line on
 * fd 3. Returns the process exit status.
 */
int sr_snapshot_worker_main(void);

/* Kill the worker (SIGKILL) and forget it: no callback. */
void sr_snapshot_job_cancel(struct sr_snapshot_job *j);
/* The worker's process id (for logs and tests). */
int sr_snapshot_job_pid(const struct sr_snapshot_job *j);

#endif
