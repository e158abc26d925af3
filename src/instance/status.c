/*
 * What the instance manager tells about itself: counts by state (/health),
 * one route's record (/status), and the reaping of backends a previous
 * gateway left running (pid files with the process's start time).
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

void sr_instances_status(const struct sr_instances *m, const char *route, struct sr_jw *w)
{
    const struct sr_instance *i = sr_inst_find(m, route);
    if (!i) {
        sr_jw_null(w);
        return;
    }
    sr_jw_obj_begin(w);
    sr_jw_key(w, "state");
    sr_jw_cstr(w, state_name(i));
    sr_jw_key(w, "started");
    sr_jw_int(w, (int64_t)i->started_at);
    sr_jw_key(w, "ready");
    sr_jw_int(w, (int64_t)i->ready_at);
    sr_jw_key(w, "last_activity");
    sr_jw_int(w, (int64_t)i->last_activity);
    sr_jw_key(w, "restarts");
    sr_jw_int(w, i->restarts);
    sr_jw_key(w, "requests_in_flight");
    sr_jw_int(w, i->inflight);
    sr_jw_key(w, "project");
    if (i->project[0])
        sr_jw_cstr(w, i->project);
    else
        sr_jw_null(w);
    sr_jw_key(w, "last_error");
    if (i->last_error[0])
        sr_jw_cstr(w, i->last_error);
    else
        sr_jw_null(w);
    sr_jw_key(w, "last_snapshot");
    if (i->snap_created) {
        sr_jw_obj_begin(w);
        sr_jw_key(w, "time");
        sr_jw_int(w, i->snap_created);
        sr_jw_key(w, "size");
        sr_jw_int(w, (int64_t)i->snap_size);
        sr_jw_key(w, "key");
        sr_jw_cstr(w, i->snap_key);
        sr_jw_obj_end(w);
    } else {
        sr_jw_null(w);
    }
    sr_jw_key(w, "persistence");
    if (i->snap_note[0])
        sr_jw_cstr(w, i->snap_note);
    else
        sr_jw_null(w);
    sr_jw_obj_end(w);
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
