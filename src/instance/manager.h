/*
 * Per-route backend instances: started on demand, held requests released
 * when ready, put to sleep when idle, capped, restarted after a crash,
 * drained on a generation change, stopped on shutdown.
 *
 * Life cycle of one route's instance:
 *
 *   (absent) -> STARTING -> READY -> STOPPING -> ASLEEP -> STARTING ...
 *                  |          |                    ^
 *                  +----------+-> (crash) ---------+   (3 crashes in 60 s: FAILED, cool-down)
 *
 * Every route gets its own directory under <state-dir>/routes/<hash>/ with
 * home/ (SERENA_HOME), work/ (the working directory), backend.log (capped)
 * and pid (for reaping orphans after a gateway crash). Directory names are a
 * hash of the route, never raw input.
 *
 * Ownership: the manager owns its instances. An acquire that returns
 * SR_INST_QUEUED calls its callback exactly once later, unless the wait is
 * cancelled first; callbacks never run from inside sr_instances_acquire.
 */
#ifndef SR_INSTANCE_MANAGER_H
#define SR_INSTANCE_MANAGER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include <event2/event.h>

#include "core/json.h"
#include "http/upstream.h"
#include "store/store.h"

struct sr_instances;
struct sr_instance;
struct sr_inst_wait;

struct sr_inst_opts {
    const char *state_dir;
    const char *backend_cmd; /* template: {port} {home} {workdir} {route} */
    const char *self_exe;
    const char *seed_config; /* text written to home/<seed_name> on first start, or NULL */
    const char *seed_name;   /* e.g. "serena_config.yml" */
    /* SERENA_TOOLS_DIR: the entries of its language_servers/static are linked into home/ at each
     * start (instance/lstools.h), or NULL. */
    const char *tools_dir;
    /* Each backend output line also goes to the gateway's own log (route-prefixed, capped), and
     * errors quote the backend's last line instead of pointing at backend.log (run: the file is
     * inside the container). */
    bool output_to_log;
    uint32_t max_instances;
    uint32_t sleep_after;   /* seconds; 0: never (run: the platform sleeps the container) */
    uint32_t start_timeout; /* seconds */
    uint32_t stop_grace;    /* seconds between SIGTERM and SIGKILL */
    const char *sandbox;    /* NULL or "bwrap" */
    /*
     * Persistence (NULL store: off). home/ is restored from the newest
     * snapshot before a start when it is missing or empty (a fresh disk),
     * snapshotted after every stop (sleep, eviction, crash, shutdown) and
     * every snap_interval seconds while running.
     */
    const struct sr_store_config *store;
    const char *snap_prefix;
    const char *snap_excludes; /* NULL: the snapshot layer's default */
    uint32_t snap_retention;
    uint32_t snap_interval;     /* seconds; 0: only on stop */
    const char *partition_mode; /* "durable-object" | "token" | "shared" */
    const char *instance_id;    /* durable-object partition of `run`, or NULL */
    bool strict;                /* a failed restore keeps the instance from starting */
    /*
     * The project a backend starts with ({project_args} in backend_cmd
     * expands to --project '<it>'): the route's remembered project (the last
     * one activated successfully, sr_instance_set_project), else its token's
     * project (sr_instances_set_tokens), else this default (SERENA_PROJECT,
     * may be NULL). A project that is a git URL (core/project.h) is cloned
     * into the route's work/ before its first start.
     */
    const char *default_project;
    /* {context}: the token's Serena context, else this one (SERENA_CONTEXT). */
    const char *default_context;
    /* {mode_args}: every backend without editing tools (SERENA_READ_ONLY), besides tokens
     * marked read_only. */
    bool read_only;
    /* Told when a route's backend becomes ready (ready) or stops (!ready): the edge re-attaches
     * or parks its clients' GET streams. May be NULL. */
    void (*on_state)(void *arg, const char *route, struct sr_instance *inst, bool ready);
    void *state_arg;
};

/* Ready (0): *up is usable now. Queued (1): the callback runs later. */
#define SR_INST_READY_NOW 0
#define SR_INST_QUEUED    1

/*
 * The outcome of a queued acquire: up and inst non-NULL when the instance
 * is ready; otherwise status (503/502) and a message for the client.
 */
typedef void (*sr_inst_cb)(void *arg, struct sr_upstream *up, struct sr_instance *inst, int status,
                           const char *msg);

int sr_instances_new(struct event_base *base, const struct sr_inst_opts *o,
                     struct sr_instances **out, char *err, size_t errlen);
/* Kills whatever still runs. Accepts NULL. */
void sr_instances_free(struct sr_instances *m);

/*
 * Get the instance of `route` (starting it if needed). Returns
 * SR_INST_READY_NOW with *up and *inst set, SR_INST_QUEUED with *wait set, or
 * a negative value with *status, *retry_after (seconds, 0 for the default)
 * and msg filled (503 at capacity or in a crash-loop cool-down).
 */
int sr_instances_acquire(struct sr_instances *m, const char *route, const char *token_name,
                         const char *generation, sr_inst_cb cb, void *arg, struct sr_upstream **up,
                         struct sr_instance **inst, struct sr_inst_wait **wait, int *status,
                         unsigned *retry_after, char *msg, size_t msglen);
/* Start a route's backend now (run: the container exists for one route). */
void sr_instances_prestart(struct sr_instances *m, const char *route, const char *token_name,
                           const char *generation);

/* The tokens' own settings (project, context, read-only), copied; again after a reload. The
 * table may be freed after the call. */
struct sr_tokens;
void sr_instances_set_tokens(struct sr_instances *m, const struct sr_tokens *t);

/* Forget a queued acquire (the client went away); its callback will not run. */
void sr_instances_cancel_wait(struct sr_inst_wait *w);

/* Bracket every relayed request; POSTs are activity, GET streams are not. */
void sr_instance_request_begin(struct sr_instance *inst, bool is_post);
void sr_instance_request_end(struct sr_instance *inst, bool is_post);

/*
 * Each start of a route's backend is a new incarnation (unique within the
 * gateway): a backend session recorded for another incarnation is gone.
 */
uint64_t sr_instance_incarnation(const struct sr_instance *inst);
/* The route's instance when its backend is ready (nothing is started), else NULL. */
struct sr_instance *sr_instances_ready(struct sr_instances *m, const char *route);
struct sr_upstream *sr_instance_upstream(const struct sr_instance *inst);

/*
 * Remember `project` (what activate_project was given, and succeeded with)
 * as the route's project: kept in the route's home (so snapshots carry it)
 * and passed to every later start of its backend. Refused (-1) when it
 * holds control characters or is too long.
 */
int sr_instance_set_project(struct sr_instance *inst, const char *project, size_t n);
/* The route's remembered project, or NULL. */
const char *sr_instance_project(const struct sr_instance *inst);

/* A new generation: instances of other generations drain and stop. */
void sr_instances_set_generation(struct sr_instances *m, const char *generation);

/* Stop everything (SIGTERM, grace, SIGKILL); done runs once all have exited. */
void sr_instances_shutdown(struct sr_instances *m, void (*done)(void *arg), void *arg);

struct sr_inst_counts {
    uint32_t starting, ready, idle, stopping, failed, asleep;
};
/* "disabled" (no store), "ok", or "degraded" (the last restore or snapshot failed). */
const char *sr_instances_store_state(const struct sr_instances *m);
void sr_instances_counts(const struct sr_instances *m, struct sr_inst_counts *c);

/*
 * One route's record, as /status, the admin listener's /instances and its
 * status page show it. Strings point into the manager: valid until the next
 * call that changes it. Times are unix seconds, 0 for never.
 */
struct sr_inst_info {
    const char *route, *token_name, *generation;
    const char *state;      /* starting, ready, idle, stopping, failed, asleep */
    const char *project;    /* "" when none is remembered */
    const char *last_error; /* "" when none */
    const char *log_path;
    const char *persistence; /* the last restore's or snapshot's outcome, "" when none */
    const char *snap_key;    /* "" when no snapshot was taken by this gateway */
    int pid;                 /* the backend process, 0 when none runs */
    unsigned port;           /* 0 when none */
    uint64_t rss_bytes;      /* the backend's process tree, 0 when none runs */
    int64_t started, ready, last_activity, stopped, snap_time;
    int64_t sleep_in; /* seconds until it sleeps if no POST arrives; -1: not counting down */
    uint32_t restarts, requests_in_flight, held;
    uint64_t snap_size;
};

/*
 * Up to cap records, in no particular order; rss_bytes filled (one /proc
 * scan for all) when with_rss. Returns how many were written.
 */
size_t sr_instances_list(const struct sr_instances *m, struct sr_inst_info *out, size_t cap,
                         bool with_rss);
/* Instances the manager keeps a record of (running or not). */
size_t sr_instances_count(const struct sr_instances *m);

/* One record as a JSON object (times in ISO 8601 UTC, null for never). */
void sr_inst_info_json(struct sr_jw *w, const struct sr_inst_info *i);

/* Write the "instance" value of /status for `route` (null when it never ran). */
void sr_instances_status(const struct sr_instances *m, const char *route, struct sr_jw *w);

/* Kill backends left behind by a gateway that died (pid files in the state dir). Returns how many.
 */
int sr_instances_reap_orphans(const char *state_dir);

#endif
