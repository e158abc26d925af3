/*
 * A route's persistence: restore on a fresh disk before the backend starts
 * (strict mode refuses the start when that fails), a snapshot after every
 * stop and on the interval while it runs, with the outcome kept for /status
 * and /health. The work itself runs in a snapshot job (a forked worker).
 */
#include "instance/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "core/mem.h"
#include "core/sha256.h"
#include "http/log.h"

static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return true;
    struct dirent *de;
    bool empty = true;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            empty = false;
            break;
        }
    closedir(d);
    return empty;
}

/* The route's snapshot options; dirs (2 x (PATH_MAX + 16) bytes) receives the workspace's path,
 * snapshotted beside home/, and the snapshot cache's (snapcache/, outside what a backend sees). */
static void snap_opts(const struct sr_instance *inst, struct sr_snapshot_opts *o, char *dirs)
{
    const struct sr_inst_opts *mo = &inst->m->o;
    memset(o, 0, sizeof(*o));
    snprintf(dirs, PATH_MAX + 16, "%s/work", inst->dir);
    snprintf(dirs + PATH_MAX + 16, PATH_MAX + 16, "%s/snapcache", inst->dir);
    o->work = dirs;
    o->cache = dirs + PATH_MAX + 16;
    o->prefix = mo->snap_prefix;
    o->partition = inst->partition;
    o->excludes = mo->snap_excludes;
    o->retention = mo->snap_retention;
}

static void snapshot_done(void *arg, int status, const struct sr_snapshot_result *r,
                          const char *err)
{
    struct sr_instance *inst = arg;
    struct sr_instances *m = inst->m;
    inst->job = NULL;
    sr_inst_job_metrics(inst, false, status, r);
    if (status < 0) {
        inst->snap_failed = true;
        m->store_degraded = true;
        snprintf(inst->snap_note, sizeof(inst->snap_note), "snapshot failed: %s", err);
        sr_log_event("warn", "route=%s snapshot failed: %s", inst->route, err);
    } else {
        inst->snap_failed = false;
        m->store_degraded = false;
        if (!r->skipped) {
            inst->snap_created = r->created;
            inst->snap_size = r->size;
            snprintf(inst->snap_key, sizeof(inst->snap_key), "%s", r->key);
        }
        snprintf(inst->snap_note, sizeof(inst->snap_note), "%s",
                 r->skipped ? "unchanged since the last snapshot: nothing uploaded" : r->note);
        if (r->skipped)
            sr_log_event("info", "route=%s snapshot skipped: unchanged since the last one",
                         inst->route);
        else
            sr_log_event("info", "route=%s snapshot %s (%llu bytes, %llu files)", inst->route,
                         r->key, (unsigned long long)r->size, (unsigned long long)r->files);
    }
    if (inst->snap_pending && !inst->child) {
        inst->snap_pending = false;
        sr_inst_snapshot(inst, "stop, after an interval snapshot");
        if (inst->job)
            return; /* its completion continues from here */
    }
    if (inst->state == ST_READY && m->o.snap_interval) {
        struct timeval tv = {(time_t)m->o.snap_interval, 0};
        evtimer_add(inst->snap_timer, &tv);
    }
    if (m->shutting_down) {
        sr_inst_check_shutdown(m);
        return;
    }
    if (inst->waiters && inst->state == ST_ASLEEP)
        sr_inst_start(inst);
}

void sr_inst_snapshot(struct sr_instance *inst, const char *why)
{
    struct sr_instances *m = inst->m;
    char home[PATH_MAX + 8];
    struct sr_snapshot_opts o;
    if (inst->job)
        return;
    snprintf(home, sizeof(home), "%s/home", inst->dir);
    if (dir_empty(home))
        return; /* never started: nothing to keep */
    char dirs[2 * (PATH_MAX + 16)];
    snap_opts(inst, &o, dirs);
    inst->job_is_restore = false;
    inst->job_us = sr_now_us();
    if (sr_snapshot_job_start(m->base, SR_SNAP_TAKE, m->o.store, &o, home, snapshot_done, inst,
                              &inst->job) < 0) {
        inst->job = NULL;
        m->store_degraded = true;
        sr_log_event("warn", "route=%s cannot start a snapshot worker (%s)", inst->route, why);
    }
}

void sr_inst_snap_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sr_instance *inst = arg;
    (void)fd;
    (void)what;
    if (inst->state == ST_READY)
        sr_inst_snapshot(inst, "interval");
}

static void restore_done(void *arg, int status, const struct sr_snapshot_result *r, const char *err)
{
    struct sr_instance *inst = arg;
    struct sr_instances *m = inst->m;
    inst->job = NULL;
    sr_inst_job_metrics(inst, true, status, r);
    if (status < 0) {
        m->store_degraded = true;
        if (m->o.strict) {
            snprintf(inst->last_error, sizeof(inst->last_error),
                     "restore failed and SERENA_R2_STATE_STRICT=1: %.400s", err);
            sr_log_event("error", "route=%s %s", inst->route, inst->last_error);
            inst->state = ST_ASLEEP;
            char msg[640];
            snprintf(msg, sizeof(msg),
                     "The state of this token could not be restored from the snapshot store "
                     "(%.400s), and strict mode keeps its backend from starting without it.",
                     err);
            sr_inst_release_waiters(inst, 503, msg);
            if (m->shutting_down)
                sr_inst_check_shutdown(m);
            return;
        }
        snprintf(inst->snap_note, sizeof(inst->snap_note),
                 "restore failed, started with local state only: %.200s", err);
        sr_log_event("warn", "route=%s %s", inst->route, inst->snap_note);
    } else {
        m->store_degraded = false;
        if (r->nothing)
            snprintf(inst->snap_note, sizeof(inst->snap_note), "no snapshot to restore");
        else
            snprintf(inst->snap_note, sizeof(inst->snap_note), "restored %.150s%s%.80s", r->key,
                     r->fell_back ? " (fell back: " : "", r->fell_back ? r->note : "");
        if (r->fell_back)
            strncat(inst->snap_note, ")", sizeof(inst->snap_note) - strlen(inst->snap_note) - 1);
        sr_log_event(r->fell_back ? "warn" : "info", "route=%s %s", inst->route, inst->snap_note);
    }
    if (m->shutting_down) {
        inst->state = ST_ASLEEP;
        sr_inst_release_waiters(inst, 503, "The gateway is shutting down; retry in a moment.");
        sr_inst_check_shutdown(m);
        return;
    }
    sr_inst_prepare(inst); /* the project's clone if it is missing, then spawn */
}

/* Restore when the disk is fresh (home missing or empty), clone the project if needed, spawn. */
void sr_inst_start(struct sr_instance *inst)
{
    struct sr_instances *m = inst->m;
    char home[PATH_MAX + 8];
    inst->start_us = sr_now_us();
    snprintf(home, sizeof(home), "%s/home", inst->dir);
    if (!m->o.store || inst->job || !dir_empty(home)) {
        if (!inst->job)
            sr_inst_prepare(inst);
        return;
    }
    struct sr_snapshot_opts o;
    char dirs[2 * (PATH_MAX + 16)];
    snap_opts(inst, &o, dirs);
    sr_inst_mkdir_p(inst->dir, 0700);
    inst->job_is_restore = true;
    inst->state = ST_STARTING;
    inst->started_at = time(NULL);
    inst->job_us = sr_now_us();
    sr_log_event("info", "route=%s restoring its state from %s", inst->route, m->o.store->kind);
    if (sr_snapshot_job_start(m->base, SR_SNAP_RESTORE, m->o.store, &o, home, restore_done, inst,
                              &inst->job) < 0) {
        inst->job = NULL;
        restore_done(inst, SR_STORE_E_IO, NULL, "cannot start a restore worker");
    }
}
