/*
 * What the instance manager's files share (not part of its interface, see
 * manager.h): the records of the manager and of each route's instance, and
 * the steps of the life cycle that live in different files.
 *
 *   manager.c  life cycle: acquire, spawn, readiness probe, sleep, crash,
 *              eviction, generation change, shutdown
 *   command.c  the backend's command line, sandbox, environment, and the
 *              route's remembered project
 *   persist.c  restore before a start, snapshots after a stop and on the
 *              interval
 *   status.c   counts, /status documents, orphan reaping
 */
#ifndef SR_INSTANCE_INTERNAL_H
#define SR_INSTANCE_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>

#include <event2/event.h>

#include "core/limits.h"
#include "instance/manager.h"
#include "http/util.h"
#include "instance/spawn.h"
#include "metrics/metrics.h"
#include "snapshot/snapshot.h"

#define HOLD_MAX       64              /* requests held per starting instance */
#define CRASH_WINDOW   60              /* seconds */
#define CRASH_LIMIT    3               /* crashes within the window: cool down */
#define CRASH_COOLDOWN 60              /* seconds */
#define LOG_CAP        (1024u * 1024u) /* backend.log rotates above this */
#define ECHO_CAP       (256u * 1024u)  /* output_to_log: bytes of a start echoed to our log */
#define PROBE_FIRST_MS 25              /* a refused connect costs microseconds: poll often */
#define PROBE_MAX_MS   200             /* after PROBE_FAST_S of waiting */
#define PROBE_FAST_S   10
#define PROJECT_FILE   ".serena-remote-project" /* in home/: snapshots carry it */

enum inst_state { ST_ASLEEP, ST_STARTING, ST_READY, ST_STOPPING, ST_FAILED };

struct sr_inst_wait {
    struct sr_instance *inst;
    sr_inst_cb cb;
    void *arg;
    struct sr_inst_wait *prev, *next;
};

struct sr_instance {
    struct sr_instances *m;
    struct sr_instance *next;
    char route[SR_ROUTE_MAX + 1];
    char generation[SR_GENERATION_MAX + 1];
    char dir[PATH_MAX];
    char log_path[PATH_MAX];
    enum inst_state state;
    struct sr_child *child;
    struct sr_upstream *up;
    struct sr_up_req *probe;
    struct event *timer; /* probe, sleep, grace or cool-down, by state */
    struct event *start_deadline;
    unsigned probe_ms;
    uint16_t port;
    bool draining;
    bool timed_out;
    bool term_sent;
    uint32_t inflight_posts, inflight;
    uint32_t restarts;
    time_t started_at, ready_at, last_activity, stopped_at;
    uint64_t start_us; /* monotonic: when the current start began (restore included) */
    uint64_t job_us;   /* monotonic: when the running snapshot job began */
    time_t crash_times[CRASH_LIMIT];
    time_t cooldown_until;
    char last_error[1024]; /* a path to the log may be long: the message keeps all of it */
    char last_output[256]; /* the backend's last output line when it stopped or timed out */
    struct sr_inst_wait *waiters;
    uint32_t nwait;
    /* Persistence. */
    char token_name[SR_TOKEN_NAME_MAX + 1];
    char partition[96];
    struct sr_snapshot_job *job; /* a restore or snapshot in flight */
    bool job_is_restore;
    bool snap_pending; /* the backend stopped during an interval snapshot: take another */
    struct event *snap_timer;
    int64_t snap_created;
    uint64_t snap_size;
    char snap_key[256];
    char snap_note[256];
    bool snap_failed;
    /* Continuity. */
    uint64_t incarnation;
    char project[SR_PROJECT_MAX + 1]; /* remembered project, "" when none */
    bool project_loaded;
};

/* A token's settings, copied from the token table (sr_instances_set_tokens). */
struct sr_inst_token {
    char name[SR_TOKEN_NAME_MAX + 1];
    char *project; /* its project spec, or NULL */
    char context[SR_TOKEN_NAME_MAX + 1];
    bool read_only;
};

struct sr_instances {
    struct event_base *base;
    struct sr_inst_opts o;
    struct sr_inst_token *tok;
    uint32_t ntok;
    char state_dir[PATH_MAX];
    struct sr_instance *list;
    void (*shutdown_done)(void *arg);
    void *shutdown_arg;
    bool shutting_down;
    bool store_degraded;
    uint64_t incarnations;
};

/* manager.c */
struct sr_instance *sr_inst_find(const struct sr_instances *m, const char *route);
void sr_inst_spawn(struct sr_instance *inst);
void sr_inst_stop(struct sr_instance *inst, const char *why);
void sr_inst_release_waiters(struct sr_instance *inst, int status, const char *msg);
void sr_inst_check_shutdown(struct sr_instances *m);
int sr_inst_mkdir_p(const char *path, mode_t mode);

/* command.c: the command line with {port} {home} {workdir} {route} {project_args} expanded
 * (values shell-quoted), wrapped in bwrap when the sandbox is on; the backend's environment
 * (the gateway's secrets removed), freed with sr_inst_free_env. */
int sr_inst_expand_cmd(struct sr_instance *inst, char *out, size_t cap);
int sr_inst_sandbox_wrap(const struct sr_instance *inst, char *cmd, size_t cap);
char **sr_inst_build_env(const struct sr_instance *inst);
void sr_inst_free_env(char **env);

/* status.c: a snapshot job (restore or not) ended with status and r (NULL when it never ran):
 * its outcome, duration (since job_us) and archive size go to the metrics. */
void sr_inst_job_metrics(const struct sr_instance *inst, bool restore, int status,
                         const struct sr_snapshot_result *r);

/* workspace.c: the route's project (its token's, else SERENA_PROJECT), where it is on disk, and
 * its clone before the first start (then spawn). */
const struct sr_inst_token *sr_inst_token(const struct sr_instance *inst);
const char *sr_inst_spec(const struct sr_instance *inst);
int sr_inst_spec_path(const struct sr_instance *inst, const char *spec, char *out, size_t cap);
void sr_inst_prepare(struct sr_instance *inst);
void sr_inst_tokens_free(struct sr_instances *m);

/* persist.c: start (restoring first on a fresh disk), snapshot, the interval timer. */
void sr_inst_start(struct sr_instance *inst);
void sr_inst_snapshot(struct sr_instance *inst, const char *why);
void sr_inst_snap_timer_cb(evutil_socket_t fd, short what, void *arg);

#endif
