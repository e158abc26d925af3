/*
 * Snapshots of an instance's SERENA_HOME to an object store, and restores.
 *
 * Layout in the store:
 *   <prefix>/<partition>/<UTC yyyymmddThhmmssZ>-<seq>.tar.zst   the archives
 *   <prefix>/<partition>/manifest.json                          the index
 * The manifest ({"format":1,"partition":..,"snapshots":[{key, sha256, size,
 * created, files, fingerprint}, ...newest first]}) is written only after the
 * archive is uploaded and verified; older archives beyond the retention
 * count are deleted only after that. So the manifest never names a missing
 * object, and a crash at any point leaves the previous snapshot intact.
 *
 * The content fingerprint is a SHA-256 over every included entry's path,
 * type, mode and content: when it equals the newest snapshot's, a snapshot
 * is skipped (zero bytes uploaded) unless forced.
 *
 * Restore downloads the newest archive (falling back to a listing when the
 * manifest is missing), verifies its SHA-256, extracts it into a fresh
 * temporary directory with libarchive's secure flags plus our own check that
 * no link points outside, then swaps it in with rename(). A corrupt or
 * missing archive falls back to the previous one.
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
    const char *excludes;  /* SERENA_SNAPSHOT_EXCLUDE: comma list of top-level names; default
                              "language_servers,logs" */
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
    uint64_t size; /* archive bytes */
    uint64_t files;
    int64_t created; /* unix seconds */
    char note[512];  /* what happened, for logs and /status (e.g. why it fell back) */
};

/* Take a snapshot of `home`. 0 or a negative SR_STORE_E_* with err. */
int sr_snapshot_take(struct sr_store *s, const struct sr_snapshot_opts *o, const char *home,
                     struct sr_snapshot_result *r, char *err, size_t errlen);

/* Restore into `home` (replaced atomically); key NULL means the newest. */
int sr_snapshot_restore(struct sr_store *s, const struct sr_snapshot_opts *o, const char *home,
                        const char *key, struct sr_snapshot_result *r, char *err, size_t errlen);

/* List the partition's snapshots (newest first) as JSON or a table on stdout. */
int sr_snapshot_list(struct sr_store *s, const struct sr_snapshot_opts *o, bool json, char *err,
                     size_t errlen);

struct sr_jw;
/* The result's members (skipped, fell_back, nothing, key, sha256, size, files, created, note)
 * into an open JSON object; strings are reduced to printable ASCII so they always serialize. */
void sr_snapshot_result_members(struct sr_jw *w, const struct sr_snapshot_result *r);
/* A string value reduced to printable ASCII (messages may hold cut-off names). */
void sr_snapshot_jw_ascii(struct sr_jw *w, const char *s);

/* ---- jobs: the same work in a forked worker, reported to the event loop ---- */

enum sr_snapshot_op { SR_SNAP_TAKE, SR_SNAP_RESTORE };

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
