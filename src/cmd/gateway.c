/*
 * `serena-remote serve` (the self-hosted gateway) and `serena-remote run`
 * (the PID 1 of a Cloudflare Container, behind the Worker): one wiring,
 * two roles.
 *
 * Wiring only: configuration -> token table and policy -> upstream or
 * instances -> HTTP server with the edge handler, plus the signals: SIGHUP
 * reloads the environment file, tokens and generation without touching open
 * connections; SIGTERM/SIGINT stop accepting, let in-flight requests finish
 * for at most --drain-timeout, stop the instances, then exit 0.
 *
 * What `run` changes: it listens on 0.0.0.0:8080 and keeps state in
 * /app/state by default, checks no Bearer token (the Worker did; an optional
 * shared secret header proves a request came through it), serves exactly
 * one route whose backend starts at boot, and never puts it to sleep itself
 * (the platform sleeps the whole container).
 *
 * One gateway per state directory: without --upstream, serve and run hold an
 * exclusive flock on <state-dir>/gateway.lock for their whole life, taken
 * before anything in the directory is touched. A second gateway on the same
 * directory would otherwise reap the first one's live backends as orphans;
 * it now exits 2 naming the holder (the file records its pid and listen
 * address). The kernel drops the lock when the holder exits, however it
 * exits; the descriptor is close-on-exec, so backends never hold it. With
 * --upstream the state directory is never used and no lock is taken.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cmd/cmd.h"
#include "cmd/config.h"
#include "http/admin.h"
#include "http/edge.h"
#include "http/fetch.h"
#include "http/log.h"
#include "http/server.h"
#include "http/upstream.h"
#include "http/util.h"
#include "instance/manager.h"
#include "instance/program.h"
#include "instance/seed.h"
#include "metrics/metrics.h"
#include "instance/spawn.h"
#include "store/store.h"
#include "core/route.h"

struct serve {
    bool run;         /* the `run` role */
    const char *name; /* "serve" or "run", for messages */
    struct event_base *base;
    struct sr_config cfg;
    struct sr_edge edge;
    struct sr_sessions *sessions;
    struct sr_server *server;
    struct sr_admin admin;
    struct sr_server *admin_server; /* --admin-listen; NULL when off */
    struct sr_upstream *upstream;
    struct sr_instances *instances;
    char *backend_cmd;
    char *seed;
    struct sr_store_config store;
    bool has_store;
    char degraded[512]; /* run: why it serves with less than was asked for ("" when not) */
    char store_buf[4096];
    char self_exe[4096];
    struct event *drain_timer;
    uint64_t drain_deadline_us;
    bool draining;
    int lock_fd; /* <state-dir>/gateway.lock, held until exit; -1 with --upstream */
};

/* ---- the state directory's lock ----------------------------------------- */

#define LOCK_FILE "gateway.lock"
/* What the lock file holds: "pid N\nlisten ADDR\n". */
#define LOCK_INFO_MAX 256
/* The holder writes its record right after taking the lock; a reader that finds
 * it empty or half-written looks again this many times, LOCK_READ_PAUSE_MS apart. */
#define LOCK_READ_TRIES    25
#define LOCK_READ_PAUSE_MS 20

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Replaces the lock file's record with ours. Best effort: the lock is what
 * counts, the record only makes the second gateway's message useful. */
static void lock_write(int fd, const char *listen)
{
    char buf[LOCK_INFO_MAX];
    int n = snprintf(buf, sizeof(buf), "pid %ld\nlisten %s\n", (long)getpid(), listen);
    if (n < 0 || n >= (int)sizeof(buf))
        return;
    if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) == n)
        return;
    sr_log_event("warn", "cannot record this gateway in %s: %s", LOCK_FILE, strerror(errno));
}

/* The holder's record: 0 with pid and listen filled, -1 when it is not (yet) complete. */
static int lock_read(int fd, long *pid, char *listen, size_t cap)
{
    char buf[LOCK_INFO_MAX];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *nl = strchr(buf, '\n');
    char *lp = nl ? nl + 1 : NULL;
    char *end = lp ? strchr(lp, '\n') : NULL;
    if (!end || strncmp(buf, "pid ", 4) != 0 || strncmp(lp, "listen ", 7) != 0)
        return -1;
    char *stop;
    errno = 0;
    *pid = strtol(buf + 4, &stop, 10);
    if (errno || stop != nl || *pid <= 0)
        return -1;
    *end = '\0';
    snprintf(listen, cap, "%s", lp + 7);
    return 0;
}

/*
 * Takes the state directory's lock (creating the directory 0700 if needed)
 * and records us in it. 0, or -1 with a message in err: another gateway
 * holds it (named), or the file cannot be opened or locked.
 */
static int lock_state_dir(struct serve *s, const char *state_dir, const char *listen, char *err,
                          size_t errlen)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", state_dir, LOCK_FILE) >= (int)sizeof(path)) {
        snprintf(err, errlen, "the state directory path %s is too long; use a shorter --state-dir",
                 state_dir);
        return -1;
    }
    if (mkdir_p(state_dir, 0700) < 0) {
        snprintf(err, errlen,
                 "cannot create the state directory %s: %s (check --state-dir and its parent's "
                 "permissions)",
                 state_dir, strerror(errno));
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen,
                 "cannot open the lock file %s: %s (the state directory must be writable by "
                 "this user)",
                 path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        if (e != EWOULDBLOCK) {
            snprintf(err, errlen,
                     "cannot lock %s: %s (the state directory must be on a file system that "
                     "supports flock)",
                     path, strerror(e));
            close(fd);
            return -1;
        }
        long pid = 0;
        char addr[LOCK_INFO_MAX];
        int got = -1;
        for (int i = 0; i < LOCK_READ_TRIES && (got = lock_read(fd, &pid, addr, sizeof(addr))) < 0;
             i++) {
            struct timespec ts = {0, LOCK_READ_PAUSE_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        close(fd);
        if (got == 0)
            snprintf(err, errlen,
                     "another gateway (pid %ld, listening on %s) is using the state directory "
                     "%s; nothing was changed. Stop that gateway first, or give this one its "
                     "own --state-dir.",
                     pid, addr, state_dir);
        else
            snprintf(err, errlen,
                     "another gateway is using the state directory %s (it holds %s, which does "
                     "not name it yet); nothing was changed. Stop that gateway first, or give "
                     "this one its own --state-dir.",
                     state_dir, path);
        return -1;
    }
    s->lock_fd = fd;
    lock_write(fd, listen);
    return 0;
}

static void fill_health(struct serve *s)
{
    struct sr_health *h = &s->edge.health;
    const struct sr_config *c = &s->cfg;
    h->status = "ok";
    h->version = SR_VERSION;
    h->role = s->name;
    h->upstream_mode = s->upstream ? "upstream" : "instances";
    h->max_instances = s->upstream ? 0 : (s->run ? 1 : c->max_instances);
    h->p_enabled = s->has_store;
    h->p_store = s->has_store ? s->store.kind : "none";
    h->p_bucket = s->has_store && s->store.bucket ? s->store.bucket : "";
    h->p_prefix = sr_config_get(c, SR_SET_R2_PREFIX);
    h->p_partition = sr_config_get(c, SR_SET_R2_PARTITION);
    h->p_interval = c->r2_interval;
    h->p_retention = c->r2_retention;
    h->p_strict = c->r2_strict;
    h->p_encrypted = s->has_store && sr_config_get(c, SR_SET_SNAPSHOT_KEY) &&
                     *sr_config_get(c, SR_SET_SNAPSHOT_KEY);
    h->p_state = sr_instances_store_state(s->instances);
    h->reason = s->degraded;
    if (s->degraded[0]) {
        h->status = "degraded";
        h->p_enabled = true;
        h->p_state = "degraded";
    }
}

/* The store settings point into the configuration, which SIGHUP replaces: keep copies
 * (a new store needs a restart). */
static void own_store(struct sr_store_config *sc)
{
    const char **ss[] = {&sc->kind,   &sc->dir,        &sc->endpoint,   &sc->region,
                         &sc->bucket, &sc->access_key, &sc->secret_key, &sc->keys};
    for (size_t i = 0; i < sizeof(ss) / sizeof(ss[0]); i++)
        *ss[i] = *ss[i] ? strdup(*ss[i]) : NULL;
}

static void free_store(struct sr_store_config *sc)
{
    const char **ss[] = {&sc->kind,   &sc->dir,        &sc->endpoint,   &sc->region,
                         &sc->bucket, &sc->access_key, &sc->secret_key, &sc->keys};
    for (size_t i = 0; i < sizeof(ss) / sizeof(ss[0]); i++) {
        if (*ss[i])
            memset((char *)*ss[i], 0, strlen(*ss[i]));
        free((char *)*ss[i]);
        *ss[i] = NULL;
    }
}

/* ---- the admin listener ------------------------------------------------- */

static bool admin_on(const struct serve *s)
{
    const char *a = sr_config_get(&s->cfg, SR_SET_ADMIN_LISTEN);
    return a && *a && strcmp(a, "off") != 0;
}

/*
 * The admin settings, checked before anything starts: a valid address, a
 * valid ADMIN_TOKEN, and no listener beyond loopback without one. Turns the
 * metrics on when the listener will be there to read them.
 */
static int admin_check(struct serve *s, char *err, size_t errlen)
{
    const char *listen = sr_config_get(&s->cfg, SR_SET_ADMIN_LISTEN);
    const char *token = sr_config_get(&s->cfg, SR_SET_ADMIN_TOKEN);
    bool on = admin_on(s);
    sr_metrics_enable(on, s->run);
    if (!on)
        return 0;
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (sr_parse_hostport(listen, &ss, &sslen) < 0) {
        snprintf(err, errlen,
                 "--admin-listen %s is not a valid address: use host:port (e.g. 127.0.0.1:8788), "
                 "or off",
                 listen);
        return -1;
    }
    if (token && *token && sr_admin_set_token(&s->admin, token, err, errlen) < 0)
        return -1;
    if (!s->admin.has_token && !sr_hostport_is_loopback(listen)) {
        snprintf(err, errlen,
                 "--admin-listen %s is not a loopback address, and without ADMIN_TOKEN anyone who "
                 "can reach it would see every route and its metrics: set ADMIN_TOKEN "
                 "(`serena-remote token` makes one), or listen on 127.0.0.1",
                 listen);
        return -1;
    }
    return 0;
}

static int admin_start(struct serve *s, char *err, size_t errlen)
{
    if (!admin_on(s))
        return 0;
    s->admin.edge = &s->edge;
    s->admin.client = s->server;
    s->admin.role = s->name;
    s->admin.listen = sr_server_address(s->server);
    struct sr_server_opts ao = {
        .listen = sr_config_get(&s->cfg, SR_SET_ADMIN_LISTEN),
        .max_body = 0,
        .handler = sr_admin_handle,
        .handler_arg = &s->admin,
        .no_metrics = true,
    };
    char why[400];
    if (sr_server_new(s->base, &ao, &s->admin_server, why, sizeof(why)) < 0) {
        /* The default address is one per machine: a second gateway (another state directory)
         * still starts, without its admin listener. An address someone chose must work. */
        if (s->cfg.source[SR_SET_ADMIN_LISTEN] == SR_SRC_DEFAULT) {
            sr_metrics_enable(false, s->run);
            sr_log_event("warn",
                         "admin listener not started: %s (another gateway on this machine has "
                         "the default address?); give this one its own --admin-listen, or off",
                         why);
            return 0;
        }
        snprintf(err, errlen,
                 "the admin listener (--admin-listen / SERENA_REMOTE_ADMIN_LISTEN) could not "
                 "start: %s; choose another address, or `off`",
                 why);
        return -1;
    }
    sr_log_event("info", "admin listener on http://%s: /metrics, /instances, / (status page)%s",
                 sr_server_address(s->admin_server),
                 s->admin.has_token ? ", ADMIN_TOKEN required" : "");
    return 0;
}

/* SERENA_BACKEND_OUTPUT: log, file, or auto (log for run, whose backend.log is in the
 * container, file for serve). */
static bool backend_output_to_log(const struct serve *s)
{
    const char *v = sr_config_get(&s->cfg, SR_SET_BACKEND_OUTPUT);
    if (v && strcmp(v, "log") == 0)
        return true;
    if (v && strcmp(v, "file") == 0)
        return false;
    return s->run;
}

/* serve: a backend command whose program is not on PATH fails at every start; say so now. */
static void warn_missing_program(const char *cmd)
{
    char prog[256], where[PATH_MAX];
    if (sr_program_of(cmd, strlen(cmd), prog, sizeof(prog)) < 0 ||
        sr_program_find(prog, NULL, where, sizeof(where)) == 0)
        return;
    sr_log_event("warn",
                 "the backend command's program `%s` is not on PATH: every backend start will "
                 "fail until it is (%s)",
                 prog,
                 strcmp(prog, "serena") == 0
                     ? "run scripts/serena.sh and put .venv-serena/bin on PATH, as make run does, "
                       "or set SERENA_BACKEND_CMD"
                     : "install it, or give its full path in SERENA_BACKEND_CMD");
}

static void instances_stopped(void *arg)
{
    struct serve *s = arg;
    event_base_loopbreak(s->base);
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct serve *s = arg;
    (void)fd;
    (void)what;
    uint32_t active = sr_server_active_requests(s->server);
    /* Done when no request is in flight and every answer has left: a response that ended a
     * moment ago may still sit in its connection's output buffer. */
    size_t unsent = sr_server_unsent(s->server);
    if ((active == 0 && unsent == 0) || sr_now_us() >= s->drain_deadline_us) {
        if (active || unsent)
            sr_log_event("warn",
                         "drain timeout: closing %u request(s) still in flight, %zu bytes unsent",
                         active, unsent);
        if (s->instances) {
            /* Streams are closed, backends get SIGTERM (then SIGKILL after the grace). */
            sr_instances_shutdown(s->instances, instances_stopped, s);
            return;
        }
        event_base_loopbreak(s->base);
        return;
    }
    struct timeval tv = {0, 50000};
    evtimer_add(s->drain_timer, &tv);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct serve *s = arg;
    (void)what;
    if (s->draining) {
        sr_log_event("warn", "second signal: exiting now");
        event_base_loopbreak(s->base);
        return;
    }
    s->draining = true;
    sr_server_stop_accepting(s->server);
    /* Open GET streams hold no work: waiting for them would only spend the whole
     * drain timeout on clients that never hang up by themselves. */
    sr_server_close_idle_streams(s->server);
    sr_log_event("info",
                 "%s: no longer accepting, idle streams closed; letting %u request(s) finish "
                 "(up to %us)",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", sr_server_active_requests(s->server),
                 s->cfg.drain_timeout);
    s->drain_deadline_us = sr_now_us() + (uint64_t)s->cfg.drain_timeout * 1000000u;
    drain_check(-1, 0, s);
}

static void on_child(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    sr_reap_strays();
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct serve *s = arg;
    char err[512];
    (void)sig;
    (void)what;
    /* Build everything new first; keep the old configuration on any error. */
    struct sr_config n;
    memset(&n, 0, sizeof(n));
    for (int i = 0; i < SR_SET_COUNT; i++)
        n.flag_value[i] = s->cfg.flag_value[i] ? strdup(s->cfg.flag_value[i]) : NULL;
    if (sr_config_reload(&n, err, sizeof(err)) < 0) {
        sr_log_event("error", "SIGHUP: configuration not reloaded: %s", err);
        sr_config_free(&n);
        return;
    }
    struct sr_tokens *t = sr_config_tokens(&n, err, sizeof(err));
    if (!t) {
        sr_log_event("error", "SIGHUP: tokens not reloaded: %s", err);
        sr_config_free(&n);
        return;
    }
    struct sr_policy p = s->edge.policy;
    if (sr_config_policy(&n, &p, err, sizeof(err)) < 0) {
        sr_log_event("error", "SIGHUP: configuration not reloaded: %s", err);
        free(t);
        sr_config_free(&n);
        return;
    }
    /* The listener is not rebound on SIGHUP: whether it is loopback stays what it was. */
    p.loopback_listener = s->edge.policy.loopback_listener;
    char oldgen[SR_GENERATION_MAX + 1];
    snprintf(oldgen, sizeof(oldgen), "%s", s->edge.policy.generation);
    s->edge.policy = p;
    sr_edge_set_tokens(&s->edge, t);
    if (s->instances)
        sr_instances_set_tokens(s->instances, t); /* projects, contexts: for the next starts */
    if (s->instances && strcmp(oldgen, p.generation) != 0)
        sr_instances_set_generation(s->instances, p.generation);
    /* Settings that need a restart (listen, TLS, upstream) keep their old values. */
    sr_config_free(&s->cfg);
    s->cfg = n;
    fill_health(s);
    sr_log_event("info", "SIGHUP: reloaded %u token(s), generation %s%s", t->count, p.generation,
                 strcmp(oldgen, p.generation) ? " (changed)" : "");
}

/* run's own defaults (the container's port and state directory; no admin listener). */
#define RUN_LISTEN       "0.0.0.0:8080"
#define RUN_STATE_DIR    "/app/state"
#define RUN_ADMIN_LISTEN "off"

static void run_help(void)
{
    printf("Usage: serena-remote run [options]\n\n"
           "The PID 1 of a Cloudflare Container behind the serena-remote Worker: listens on\n"
           "0.0.0.0:8080 at once (GET /health answers while the backend starts), starts one\n"
           "backend (Serena, or SERENA_BACKEND_CMD) and relays /mcp to it with the same\n"
           "relay and shims as serve. No Bearer check: the Worker authenticated the caller;\n"
           "when SERENA_INTERNAL_SECRET is set, requests must carry it in the\n"
           "X-Serena-Internal-Secret header. SIGTERM: stop accepting, finish in-flight\n"
           "requests, stop the backend, exit 0. State: --state-dir (default /app/state),\n"
           "one gateway per directory (a second one exits 2 naming the first).\n"
           "The admin listener is off by default here; --admin-listen 127.0.0.1:8788 turns it\n"
           "on inside the container (metrics, /instances, status page).\n\n");
    sr_config_print_help_role(RUN_LISTEN, RUN_STATE_DIR, RUN_ADMIN_LISTEN);
}

static void serve_help(void)
{
    printf("Usage: serena-remote serve [options]\n\n"
           "Runs the gateway: clients call POST/GET/DELETE /mcp with Authorization: Bearer\n"
           "<token>; GET /health needs no token, GET /status shows the caller's instance.\n"
           "Without --upstream every token gets its own backend (Serena by default), started\n"
           "on demand, put to sleep after SLEEP_AFTER without a POST. With --upstream every\n"
           "route is relayed to that one Streamable HTTP MCP server.\n\n"
           "Signals: SIGHUP re-reads --env-file, API_TOKENS_FILE and the generation;\n"
           "SIGTERM/SIGINT stop accepting, close idle GET streams at once and let in-flight\n"
           "requests finish.\n\n"
           "Without --upstream, one gateway per --state-dir: it holds <state-dir>/gateway.lock,\n"
           "and a second one on the same directory exits 2 naming the first (pid, address).\n\n"
           "The admin listener (--admin-listen, default 127.0.0.1:8788, `off` to disable)\n"
           "serves GET /metrics (Prometheus), /instances (JSON) and / (a status page); never\n"
           "on the client listener. Beyond loopback it needs ADMIN_TOKEN (Bearer).\n"
           "`serena-remote status` prints its listing.\n\n");
    sr_config_print_help();
}

static int gateway_main(bool run, int argc, char **argv)
{
    static struct serve s; /* the edge holds large static-sized tables */
    char err[512];
    bool help;
    int rc = 1;
    s.run = run;
    s.name = run ? "run" : "serve";
    s.lock_fd = -1;
    if (sr_config_load(&s.cfg, argc, argv, &help, err, sizeof(err)) < 0) {
        fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
        sr_config_free(&s.cfg);
        return 2;
    }
    if (help) {
        if (run)
            run_help();
        else
            serve_help();
        sr_config_free(&s.cfg);
        return 0;
    }
    if (run) {
        /* PID 1 in a container; elsewhere the subreaper bit gives the same duty: processes
         * orphaned inside the backend's tree come to us and are reaped (on_child). */
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        sr_config_role_defaults(&s.cfg, RUN_LISTEN, RUN_STATE_DIR, RUN_ADMIN_LISTEN);
        if (sr_config_get(&s.cfg, SR_SET_UPSTREAM)) {
            fprintf(stderr, "serena-remote run: --upstream is for serve; run starts its own "
                            "backend (SERENA_BACKEND_CMD)\n");
            sr_config_free(&s.cfg);
            return 2;
        }
    }
    sr_log_set_format(s.cfg.log_json ? SR_LOG_JSON : SR_LOG_TEXT);
    /* Before anything starts (run starts its backend at once): a refused admin setting must
     * not leave one behind, and its start is counted. */
    if (admin_check(&s, err, sizeof(err)) < 0) {
        fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
        sr_config_free(&s.cfg);
        return 2;
    }
    struct sr_tokens *t;
    if (run) {
        /* The Worker authenticated the caller; the table stays empty. */
        t = calloc(1, sizeof(*t));
        if (t)
            sr_tokens_init(t);
    } else {
        t = sr_config_tokens(&s.cfg, err, sizeof(err));
    }
    if (!t) {
        fprintf(stderr, "serena-remote %s: %s\n", s.name, run ? "out of memory" : err);
        sr_config_free(&s.cfg);
        return 2;
    }
    sr_policy_init(&s.edge.policy, t);
    s.edge.policy.check_bearer = !run;
    const char *secret = sr_config_get(&s.cfg, SR_SET_INTERNAL_SECRET);
    if (run && secret && *secret)
        sr_edge_set_internal_secret(&s.edge, secret);
    if (sr_config_policy(&s.cfg, &s.edge.policy, err, sizeof(err)) < 0) {
        fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
        free(t);
        sr_config_free(&s.cfg);
        return 2;
    }
    sr_edge_set_tokens(&s.edge, t);
    const char *up = sr_config_get(&s.cfg, SR_SET_UPSTREAM);
    const char *state_dir = sr_config_get(&s.cfg, SR_SET_STATE_DIR);
    /* Only the instances keep files in the state directory: an --upstream gateway never
     * touches it (two may share one). The lock comes before anything there is read or
     * changed: orphan reaping, the instances' directories. */
    bool uses_state_dir = !up;
    if (uses_state_dir) {
        const char *listen = sr_config_get(&s.cfg, SR_SET_LISTEN);
        if (lock_state_dir(&s, state_dir, listen, err, sizeof(err)) < 0) {
            fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
            rc = 2;
            goto out;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    s.base = event_base_new();
    if (!s.base) {
        fprintf(stderr, "serena-remote %s: cannot create the event loop\n", s.name);
        goto out;
    }
    if (up) {
        if (sr_upstream_new(s.base, up, &s.upstream, err, sizeof(err)) < 0) {
            fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
            rc = 2;
            goto out;
        }
        s.edge.upstream = s.upstream;
    } else {
        if (sr_self_path("", s.self_exe, sizeof(s.self_exe)) < 0) {
            fprintf(stderr, "serena-remote %s: cannot find its own binary: %s\n", s.name,
                    strerror(errno));
            goto out;
        }
        s.backend_cmd = sr_config_backend_cmd(&s.cfg);
        warn_missing_program(s.backend_cmd);
        /* pyright's home: SERENA_TOOLS_DIR, else <repo>/.serena-tools next to build/. */
        char tools[4096];
        const char *td = sr_config_get(&s.cfg, SR_SET_TOOLS_DIR);
        if (td)
            snprintf(tools, sizeof(tools), "%s", td);
        else if (sr_self_path("../.serena-tools", tools, sizeof(tools)) < 0)
            tools[0] = '\0';
        s.seed = sr_seed_serena_config(tools, s.cfg.allow_shell, err, sizeof(err));
        if (!s.seed) {
            fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
            rc = 2;
            goto out;
        }
        if (strcmp(sr_config_get(&s.cfg, SR_SET_SANDBOX), "bwrap") == 0 &&
            sr_sandbox_probe(err, sizeof(err)) < 0) {
            fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
            rc = 2;
            goto out;
        }
        int hs =
            sr_config_store(&s.cfg, &s.store, s.store_buf, sizeof(s.store_buf), err, sizeof(err));
        if (hs < 0 && run && s.cfg.r2_enabled && !s.cfg.r2_strict) {
            /* The documented degraded mode: a container whose persistence settings are incomplete
             * starts with local state only and says so (log, /health), rather than exiting and
             * being restarted by the platform for ever. Strict mode refuses below instead. */
            snprintf(s.degraded, sizeof(s.degraded),
                     "%s: started with local state only (no restore, no snapshots)", err);
            sr_log_event("warn", "%s", s.degraded);
            hs = 0;
        }
        if (hs < 0) {
            fprintf(stderr, "serena-remote %s: %s%s\n", s.name, err,
                    run && s.cfg.r2_strict ? " (SERENA_R2_STATE_STRICT=1: not starting without it)"
                                           : "");
            rc = 2;
            goto out;
        }
        s.has_store = hs > 0;
        if (s.has_store)
            own_store(&s.store);
        /* run: the Durable Object's partition (the snapshot commands resolve it the same way). */
        const char *iid = run ? sr_config_instance_id(&s.cfg) : NULL;
        /* Under the lock: whatever the pid files name was left by a gateway that is gone. */
        int reaped = sr_instances_reap_orphans(state_dir);
        if (reaped)
            sr_log_event("warn", "reaped %d orphaned backend(s) from a previous run", reaped);
        struct sr_inst_opts io = {
            .state_dir = state_dir,
            .backend_cmd = s.backend_cmd,
            .self_exe = s.self_exe,
            .seed_config = s.seed,
            .seed_name = "serena_config.yml",
            .tools_dir = tools[0] ? tools : NULL,
            .output_to_log = backend_output_to_log(&s),
            .max_instances = s.cfg.max_instances,
            .sleep_after = run ? 0 : s.cfg.sleep_after,
            .start_timeout = s.cfg.start_timeout,
            .stop_grace = s.cfg.stop_grace,
            .store = s.has_store ? &s.store : NULL,
            .snap_prefix = sr_config_get(&s.cfg, SR_SET_R2_PREFIX),
            .snap_excludes = sr_config_get(&s.cfg, SR_SET_SNAPSHOT_EXCLUDE),
            .snap_retention = s.cfg.r2_retention,
            .snap_interval = s.cfg.r2_interval,
            .partition_mode = sr_config_get(&s.cfg, SR_SET_R2_PARTITION),
            .instance_id = iid,
            .strict = s.cfg.r2_strict,
            .default_project = sr_config_get(&s.cfg, SR_SET_SERENA_PROJECT),
            .default_context = sr_config_get(&s.cfg, SR_SET_SERENA_CONTEXT),
            .read_only = s.cfg.read_only,
            .on_state = sr_edge_instance_state,
            .state_arg = &s.edge,
            .sandbox = strcmp(sr_config_get(&s.cfg, SR_SET_SANDBOX), "bwrap") == 0 ? "bwrap" : NULL,
        };
        if (sr_instances_new(s.base, &io, &s.instances, err, sizeof(err)) < 0) {
            fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
            goto out;
        }
        s.edge.instances = s.instances;
        sr_instances_set_tokens(s.instances, s.edge.tokens);
        if (run) {
            /* The container exists for one token: start its backend now, not on the first
             * request, so the platform's readiness window is spent starting Serena. */
            char route[SR_ROUTE_MAX + 1];
            sr_route_name(s.edge.policy.generation, "run", route, sizeof(route));
            sr_instances_prestart(s.instances, route, "run", s.edge.policy.generation);
        }
    }
    /* After the lock: the session key lives in the state directory (unless the environment
     * gives it, as several replicas and the Worker must share one). */
    s.edge.base = s.base;
    if (sr_sessions_new(sr_config_get(&s.cfg, SR_SET_STATE_DIR),
                        sr_config_get(&s.cfg, SR_SET_SESSION_KEY), s.cfg.session_max_age,
                        &s.sessions, err, sizeof(err)) < 0) {
        fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
        rc = 2;
        goto out;
    }
    s.edge.sessions = s.sessions;
    /* OAuth (docs/oauth.md): grants live in <state-dir>/oauth.state; in `run` the Worker
     * authenticates, so there is nothing to sign in to. */
    if (s.cfg.oauth_enabled && !run) {
        s.edge.oauth = sr_oauth_new(sr_config_get(&s.cfg, SR_SET_PUBLIC_URL),
                                    sr_config_get(&s.cfg, SR_SET_STATE_DIR), err, sizeof(err));
        if (!s.edge.oauth) {
            fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
            rc = 2;
            goto out;
        }
        sr_oauth_tokens_changed(s.edge.oauth, s.edge.tokens);
        sr_oauth_set_cimd(s.edge.oauth, s.base, (enum sr_oauth_cimd)s.cfg.oauth_cimd);
    }
    /* An external identity provider (docs/oauth.md): its JWKS is fetched from here on. */
    const char *issuer = sr_config_get(&s.cfg, SR_SET_OAUTH_ISSUER);
    if (issuer && *issuer && !run) {
        struct sr_idp_opts io = {
            .issuer = issuer,
            .jwks_url = sr_config_get(&s.cfg, SR_SET_OAUTH_JWKS_URL),
            .claim = sr_config_get(&s.cfg, SR_SET_OAUTH_CLAIM),
            .claim_map = sr_config_get(&s.cfg, SR_SET_OAUTH_CLAIM_MAP),
            .public_url = sr_config_get(&s.cfg, SR_SET_PUBLIC_URL),
            .skew = s.cfg.oauth_clock_skew,
            .builtin = s.edge.oauth != NULL,
        };
        if (!(s.edge.idp = sr_idp_new(s.base, &io, err, sizeof(err)))) {
            fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
            rc = 2;
            goto out;
        }
        sr_idp_tokens_changed(s.edge.idp, s.edge.tokens);
    } else if (issuer && *issuer) {
        sr_log_event("warn", "SERENA_REMOTE_OAUTH_ISSUER is ignored by run: the Worker "
                             "authenticates requests");
    }
    s.edge.started_us = sr_now_us();
    fill_health(&s);
    struct sr_server_opts o = {
        .listen = sr_config_get(&s.cfg, SR_SET_LISTEN),
        .tls_cert = sr_config_get(&s.cfg, SR_SET_TLS_CERT),
        .tls_key = sr_config_get(&s.cfg, SR_SET_TLS_KEY),
        .max_body = s.cfg.max_body,
        .handler = sr_edge_handle,
        .handler_arg = &s.edge,
    };
    if (sr_server_new(s.base, &o, &s.server, err, sizeof(err)) < 0) {
        fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
        goto out;
    }
    if (s.lock_fd >= 0) /* the real address (port 0 picks one) */
        lock_write(s.lock_fd, sr_server_address(s.server));
    if (admin_start(&s, err, sizeof(err)) < 0) {
        fprintf(stderr, "serena-remote %s: %s\n", s.name, err);
        rc = 2;
        goto out;
    }
    struct event *ev_term = evsignal_new(s.base, SIGTERM, on_stop, &s);
    struct event *ev_int = evsignal_new(s.base, SIGINT, on_stop, &s);
    struct event *ev_hup = evsignal_new(s.base, SIGHUP, on_hup, &s);
    struct event *ev_chld = evsignal_new(s.base, SIGCHLD, on_child, &s);
    evsignal_add(ev_chld, NULL);
    s.drain_timer = evtimer_new(s.base, drain_check, &s);
    evsignal_add(ev_term, NULL);
    evsignal_add(ev_int, NULL);
    evsignal_add(ev_hup, NULL);
    if (s.has_store)
        sr_log_event("info", "snapshots: %s store %s, prefix %s, partition mode %s", s.store.kind,
                     s.store.kind[0] == 'f' ? s.store.dir : s.store.bucket,
                     sr_config_get(&s.cfg, SR_SET_R2_PREFIX),
                     sr_config_get(&s.cfg, SR_SET_R2_PARTITION));
    sr_log_event("info",
                 "serena-remote %s %s listening on %s://%s, %s %s, %u token(s) (%s), "
                 "generation %s",
                 s.name, SR_VERSION, o.tls_cert ? "https" : "http", sr_server_address(s.server),
                 up ? "upstream" : "per-token instances of", up ? up : s.backend_cmd,
                 s.edge.tokens->count, sr_tokens_strategy(s.edge.tokens), s.edge.policy.generation);
    event_base_dispatch(s.base);
    sr_log_event("info", "stopped");
    event_free(ev_term);
    event_free(ev_int);
    event_free(ev_hup);
    event_free(ev_chld);
    event_free(s.drain_timer);
    rc = 0;
out:
    sr_server_free(s.admin_server);
    sr_server_free(s.server);
    sr_instances_free(s.instances);
    free(s.backend_cmd);
    free(s.seed);
    if (s.has_store)
        free_store(&s.store);
    sr_upstream_free(s.upstream);
    sr_sessions_free(s.sessions);
    sr_oauth_free(s.edge.oauth);
    s.edge.oauth = NULL; /* sr_edge_set_tokens below must not reach it */
    /* Before the fetch module ends: it may cancel a fetch. */
    sr_idp_free(s.edge.idp);
    s.edge.idp = NULL;
    sr_fetch_shutdown();
    if (s.base)
        event_base_free(s.base);
    sr_edge_set_tokens(&s.edge, NULL);
    sr_config_free(&s.cfg);
    /* Last: the next gateway may start only once our backends are stopped. */
    if (s.lock_fd >= 0)
        close(s.lock_fd);
    s.lock_fd = -1;
    return rc;
}

int sr_cmd_serve(int argc, char **argv)
{
    return gateway_main(false, argc, argv);
}

int sr_cmd_run(int argc, char **argv)
{
    return gateway_main(true, argc, argv);
}
