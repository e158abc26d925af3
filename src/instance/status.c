/*
 * What the instance manager tells about itself: counts by state (/health),
 * each route's record (/status for the caller's own, /instances and the
 * status page of the admin listener for all; times in ISO 8601 UTC), and
 * the reaping of backends a previous gateway left running (pid files with
 * the process's start time).
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
#include "http/util.h"
#include "metrics/procfs.h"

void sr_instances_counts(const struct sr_instances *m, struct sr_inst_counts *c)
{
    memset(c, 0, sizeof(*c));
    time_t now = time(NULL);
    for (struct sr_instance *i = m->list; i; i = i->next) {
        switch (i->state) {
        case ST_STARTING:
            c->starting++;
            break;
        case ST_READY:
            if (i->inflight_posts)
                c->ready++;
            else
                c->idle++;
            break;
        case ST_STOPPING:
            c->stopping++;
            break;
        case ST_FAILED:
            if (now < i->cooldown_until)
                c->failed++;
            else
                c->asleep++;
            break;
        default:
            c->asleep++;
        }
    }
}

const char *sr_instances_store_state(const struct sr_instances *m)
{
    if (!m || !m->o.store)
        return "disabled";
    return m->store_degraded ? "degraded" : "ok";
}

static const char *state_name(const struct sr_instance *i)
{
    switch (i->state) {
    case ST_STARTING:
        return "starting";
    case ST_READY:
        return i->inflight_posts ? "ready" : "idle";
    case ST_STOPPING:
        return "stopping";
    case ST_FAILED:
        return "failed";
    default:
        return "asleep";
    }
}

static void fill_info(const struct sr_instance *i, struct sr_inst_info *o, time_t now)
{
    const struct sr_instances *m = i->m;
    memset(o, 0, sizeof(*o));
    o->route = i->route;
    o->token_name = i->token_name;
    o->generation = i->generation;
    o->state = state_name(i);
    o->project = i->project;
    o->last_error = i->last_error;
    o->log_path = i->log_path;
    o->persistence = i->snap_note;
    o->snap_key = i->snap_created ? i->snap_key : "";
    o->pid = i->child ? (int)sr_child_pid(i->child) : 0;
    o->port = i->child ? i->port : 0;
    o->started = i->started_at;
    o->ready = i->ready_at;
    o->last_activity = i->last_activity;
    o->stopped = i->stopped_at;
    o->snap_time = i->snap_created;
    o->snap_size = i->snap_size;
    o->restarts = i->restarts;
    o->requests_in_flight = i->inflight;
    o->held = i->nwait;
    o->sleep_in = -1;
    if (i->state == ST_READY && !i->inflight_posts && m->o.sleep_after) {
        int64_t left = (int64_t)m->o.sleep_after - (int64_t)(now - i->last_activity);
        o->sleep_in = left > 0 ? left : 0;
    }
}

size_t sr_instances_count(const struct sr_instances *m)
{
    size_t n = 0;
    for (const struct sr_instance *i = m ? m->list : NULL; i; i = i->next)
        n++;
    return n;
}

size_t sr_instances_list(const struct sr_instances *m, struct sr_inst_info *out, size_t cap,
                         bool with_rss)
{
    size_t n = 0;
    time_t now = time(NULL);
    for (const struct sr_instance *i = m ? m->list : NULL; i && n < cap; i = i->next)
        fill_info(i, &out[n++], now);
    if (!with_rss || n == 0)
        return n;
    pid_t *pids = calloc(n, sizeof(*pids));
    uint64_t *rss = calloc(n, sizeof(*rss));
    if (pids && rss) {
        for (size_t k = 0; k < n; k++)
            pids[k] = out[k].pid;
        sr_procfs_tree_rss(pids, rss, n);
        for (size_t k = 0; k < n; k++)
            out[k].rss_bytes = out[k].pid ? rss[k] : 0;
    }
    free(pids);
    free(rss);
    return n;
}

static void json_time(struct sr_jw *w, const char *key, int64_t t)
{
    char iso[32];
    sr_jw_key(w, key);
    if (t <= 0) {
        sr_jw_null(w);
        return;
    }
    sr_time_iso8601(t, iso, sizeof(iso));
    sr_jw_cstr(w, iso);
}

static void json_str_or_null(struct sr_jw *w, const char *key, const char *v)
{
    sr_jw_key(w, key);
    if (v && *v)
        sr_jw_cstr(w, v);
    else
        sr_jw_null(w);
}

void sr_inst_info_json(struct sr_jw *w, const struct sr_inst_info *i)
{
    sr_jw_obj_begin(w);
    sr_jw_key(w, "name");
    sr_jw_cstr(w, i->token_name);
    sr_jw_key(w, "route");
    sr_jw_cstr(w, i->route);
    sr_jw_key(w, "state");
    sr_jw_cstr(w, i->state);
    sr_jw_key(w, "pid");
    if (i->pid)
        sr_jw_int(w, i->pid);
    else
        sr_jw_null(w);
    sr_jw_key(w, "port");
    if (i->port)
        sr_jw_int(w, i->port);
    else
        sr_jw_null(w);
    sr_jw_key(w, "rss_bytes");
    if (i->pid)
        sr_jw_int(w, (int64_t)i->rss_bytes);
    else
        sr_jw_null(w);
    json_str_or_null(w, "project", i->project);
    json_time(w, "started", i->started);
    json_time(w, "ready", i->ready);
    json_time(w, "last_activity", i->last_activity);
    json_time(w, "stopped", i->stopped);
    sr_jw_key(w, "sleep_in_seconds");
    if (i->sleep_in >= 0)
        sr_jw_int(w, i->sleep_in);
    else
        sr_jw_null(w);
    sr_jw_key(w, "restarts");
    sr_jw_int(w, i->restarts);
    sr_jw_key(w, "requests_in_flight");
    sr_jw_int(w, i->requests_in_flight);
    sr_jw_key(w, "held_requests");
    sr_jw_int(w, i->held);
    json_str_or_null(w, "last_error", i->last_error);
    sr_jw_key(w, "last_snapshot");
    if (i->snap_time) {
        sr_jw_obj_begin(w);
        sr_jw_key(w, "key");
        sr_jw_cstr(w, i->snap_key);
        sr_jw_key(w, "size");
        sr_jw_int(w, (int64_t)i->snap_size);
        json_time(w, "time", i->snap_time);
        sr_jw_obj_end(w);
    } else {
        sr_jw_null(w);
    }
    json_str_or_null(w, "persistence", i->persistence);
    json_str_or_null(w, "log", i->log_path);
    sr_jw_obj_end(w);
}

void sr_instances_status(const struct sr_instances *m, const char *route, struct sr_jw *w)
{
    const struct sr_instance *i = sr_inst_find(m, route);
    if (!i) {
        sr_jw_null(w);
        return;
    }
    struct sr_inst_info info;
    fill_info(i, &info, time(NULL));
    if (info.pid) {
        pid_t pid = info.pid;
        sr_procfs_tree_rss(&pid, &info.rss_bytes, 1);
    }
    sr_inst_info_json(w, &info);
}

void sr_inst_job_metrics(const struct sr_instance *inst, bool restore, int status,
                         const struct sr_snapshot_result *r)
{
    enum sr_metrics_snap_result res = status < 0 || !r ? SR_MS_FAILED
                                      : r->skipped     ? SR_MS_SKIPPED
                                      : r->nothing     ? SR_MS_NOTHING
                                                       : SR_MS_OK;
    sr_metrics_snapshot(restore ? SR_MS_RESTORE : SR_MS_SNAPSHOT, res,
                        res == SR_MS_OK ? r->size : 0, sr_now_us() - inst->job_us);
}

int sr_instances_reap_orphans(const char *state_dir)
{
    char routes[PATH_MAX];
    snprintf(routes, sizeof(routes), "%s/routes", state_dir);
    DIR *d = opendir(routes);
    if (!d)
        return 0;
    int killed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof(path), "%s/%s/pid", routes, de->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        int pid = 0;
        unsigned long long start = 0;
        int n = fscanf(f, "%d %llu", &pid, &start);
        fclose(f);
        /* Only a process whose start time matches the record is ours: a reused
         * PID belongs to someone else and is left alone. */
        if (n == 2 && pid > 1 && start != 0 && sr_proc_starttime(pid) == start &&
            !sr_proc_exited(pid)) {
            if (kill(-pid, SIGKILL) == 0 || kill(pid, SIGKILL) == 0) {
                killed++;
                sr_log_event("warn", "killed orphaned backend pid %d left by a previous gateway",
                             pid);
            }
        }
        unlink(path);
    }
    closedir(d);
    return killed;
}
