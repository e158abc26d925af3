/*
 * Per-route instance manager (see manager.h for the life cycle).
 *
 * Design notes:
 * - Readiness is a real HTTP answer that creates no server session: a GET
 *   /mcp carrying a random, unknown mcp-session-id. Serena answers 404,
 *   other SDK servers 400; any complete response head means "serving".
 *   Polled every 25 ms for the first 10 s, then every 200 ms, until
 *   start_timeout.
 * - Activity is a POST: an open GET stream (which an MCP client keeps open
 *   for server notifications) does not keep an instance awake.
 * - Instances that sleep keep their record (restarts, last error, times) so
 *   /status can tell a user what happened; the process and port are gone.
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
#include "core/route.h"
#include "core/sha256.h"
#include "http/log.h"
#include "instance/lstools.h"
#include "instance/program.h"

/* ---- small helpers ------------------------------------------------------- */

int sr_inst_mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
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

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level > 0)
        remove(path);
    return 0;
}

/* Empty a directory's contents (not the directory), never following symlinks. */
static void empty_dir(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static void set_timer(struct sr_instance *inst, unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(inst->timer, &tv);
}

/* A free port on 127.0.0.1 (the kernel picks; a race with another process is possible but rare). */
static int free_port(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int rc = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        *port = ntohs(a.sin_port);
        rc = 0;
    }
    close(fd);
    return rc;
}

static void write_pidfile(const struct sr_instance *inst)
{
    char path[PATH_MAX + 8], tmp[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/pid", inst->dir);
    snprintf(tmp, sizeof(tmp), "%s/pid.tmp", inst->dir);
    pid_t pid = sr_child_pid(inst->child);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return;
    fprintf(f, "%d %llu\n", (int)pid, (unsigned long long)sr_proc_starttime(pid));
    fclose(f);
    rename(tmp, path);
}

static void remove_pidfile(const struct sr_instance *inst)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/pid", inst->dir);
    unlink(path);
}

/* ---- waiters ------------------------------------------------------------- */

static void wait_unlink(struct sr_inst_wait *w)
{
    struct sr_instance *inst = w->inst;
    if (w->prev)
        w->prev->next = w->next;
    else
        inst->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    inst->nwait--;
}

/* Release every held request: with the upstream when ready, else with an error. */
void sr_inst_release_waiters(struct sr_instance *inst, int status, const char *msg)
{
    while (inst->waiters) {
        struct sr_inst_wait *w = inst->waiters;
        wait_unlink(w);
        sr_inst_cb cb = w->cb;
        void *arg = w->arg;
        free(w);
        if (status == 0)
            cb(arg, inst->up, inst, 0, NULL);
        else
            cb(arg, NULL, NULL, status, msg);
    }
}

void sr_instances_cancel_wait(struct sr_inst_wait *w)
{
    if (!w)
        return;
    wait_unlink(w);
    free(w);
}

/* ---- life cycle ---------------------------------------------------------- */

static void inst_free(struct sr_instance *inst)
{
    struct sr_instances *m = inst->m;
    struct sr_instance **pp = &m->list;
    while (*pp && *pp != inst)
        pp = &(*pp)->next;
    if (*pp)
        *pp = inst->next;
    if (inst->probe)
        sr_up_cancel(inst->probe);
    sr_snapshot_job_cancel(inst->job);
    if (inst->snap_timer)
        event_free(inst->snap_timer);
    sr_upstream_free(inst->up);
    sr_child_free(inst->child);
    event_free(inst->timer);
    event_free(inst->start_deadline);
    free(inst);
}

void sr_inst_check_shutdown(struct sr_instances *m)
{
    if (!m->shutting_down || !m->shutdown_done)
        return;
    for (struct sr_instance *i = m->list; i; i = i->next)
        if (i->child || i->job)
            return;
    void (*done)(void *) = m->shutdown_done;
    m->shutdown_done = NULL;
    done(m->shutdown_arg);
}

static void probe_head(void *arg, const struct sr_http_head *h)
{
    struct sr_instance *inst = arg;
    (void)h;
    /* Any complete answer means the server is up. */
    inst->probe_ms = 0;
}

static void probe_data(void *arg, struct evbuffer *data)
{
    (void)arg;
    evbuffer_drain(data, evbuffer_get_length(data));
}

static void inst_ready(struct sr_instance *inst)
{
    inst->state = ST_READY;
    inst->ready_at = time(NULL);
    inst->last_activity = inst->ready_at;
    evtimer_del(inst->start_deadline);
    sr_metrics_instance_ready(sr_now_us() - inst->start_us);
    sr_log_event("info", "route=%s instance ready on 127.0.0.1:%u after %lds (pid %d)", inst->route,
                 (unsigned)inst->port, (long)(inst->ready_at - inst->started_at),
                 (int)sr_child_pid(inst->child));
    if (inst->m->o.sleep_after)
        set_timer(inst, inst->m->o.sleep_after * 1000u);
    if (inst->m->o.store && inst->m->o.snap_interval) {
        struct timeval tv = {(time_t)inst->m->o.snap_interval, 0};
        evtimer_add(inst->snap_timer, &tv);
    }
    sr_inst_release_waiters(inst, 0, NULL);
    if (inst->m->o.on_state && inst->state == ST_READY)
        inst->m->o.on_state(inst->m->o.state_arg, inst->route, inst, true);
}

static void probe_done(void *arg)
{
    struct sr_instance *inst = arg;
    inst->probe = NULL;
    if (inst->state == ST_STARTING)
        inst_ready(inst);
}

static void probe_error(void *arg, const char *what, bool got_head)
{
    struct sr_instance *inst = arg;
    (void)what;
    inst->probe = NULL;
    if (inst->state != ST_STARTING)
        return;
    if (got_head) {
        /* It answered, then cut the body: still an answer. */
        inst_ready(inst);
        return;
    }
    /* A flat, short interval while a start is young: a doubling backoff noticed a
     * Serena that was ready at 1.6 s only at 2.6 s (bench/cold_start.md). */
    inst->probe_ms = time(NULL) - inst->started_at < PROBE_FAST_S ? PROBE_FIRST_MS : PROBE_MAX_MS;
    set_timer(inst, inst->probe_ms);
}

static const struct sr_up_cbs probe_cbs = {probe_head, probe_data, probe_done, probe_error};

static void send_probe(struct sr_instance *inst)
{
    uint8_t rnd[16];
    char sid[33];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        memset(rnd, 0x5a, sizeof(rnd));
    sr_hex_encode(rnd, sizeof(rnd), sid);
    sid[32] = '\0';
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        set_timer(inst, PROBE_MAX_MS);
        return;
    }
    evbuffer_add_printf(b,
                        "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
                        "mcp-session-id: %s\r\nConnection: close\r\n\r\n",
                        sr_upstream_path(inst->up), sr_upstream_hostport(inst->up), sid);
    if (sr_up_send(inst->up, b, false, &probe_cbs, inst, &inst->probe) < 0) {
        evbuffer_free(b);
        set_timer(inst, PROBE_MAX_MS);
    }
}

/*
 * Where the backend's own words are, for last_error and client messages: its last output line,
 * then backend.log on the gateway host (serve), or the gateway's own log, where each of its lines
 * went (run: backend.log is inside the container, no use to anyone reading the message).
 */
static void output_hint(const struct sr_instance *inst, char *out, size_t cap)
{
    const char *last = inst->last_output;
    int n = last[0] ? snprintf(out, cap, "its last output: \"%.200s\"; ", last) : 0;
    if (n < 0 || (size_t)n >= cap)
        n = 0;
    if (inst->m->o.output_to_log)
        snprintf(out + n, cap - (size_t)n,
                 "all of it is in the gateway's log (a container's: wrangler tail)");
    else
        snprintf(out + n, cap - (size_t)n, "see %.200s", inst->log_path);
}

static void start_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sr_instance *inst = arg;
    char hint[512];
    (void)fd;
    (void)what;
    if (inst->state != ST_STARTING)
        return;
    snprintf(inst->last_output, sizeof(inst->last_output), "%s", sr_child_last_line(inst->child));
    output_hint(inst, hint, sizeof(hint));
    snprintf(inst->last_error, sizeof(inst->last_error), "did not start within %us; %s",
             inst->m->o.start_timeout, hint);
    sr_log_event("error", "route=%s instance %s", inst->route, inst->last_error);
    inst->timed_out = true;
    char msg[768];
    snprintf(msg, sizeof(msg),
             "The backend for this token did not start within %u seconds (%s). Retry later; if it "
             "persists, that output says why.",
             inst->m->o.start_timeout, hint);
    sr_inst_release_waiters(inst, 503, msg);
    sr_inst_stop(inst, "start timeout");
}

/*
 * last_error for a backend whose shell could not find (127) or run (126) its
 * program: name the program, say where it was looked for and what to do.
 */
static void missing_program_error(struct sr_instance *inst, int code)
{
    const char *cmd = inst->m->o.backend_cmd;
    char prog[256], where[PATH_MAX], hint[512];
    output_hint(inst, hint, sizeof(hint));
    if (sr_program_of(cmd, strlen(cmd), prog, sizeof(prog)) < 0)
        snprintf(prog, sizeof(prog), "(unknown)");
    bool serena = strcmp(prog, "serena") == 0;
    if (code == 127 && sr_program_find(prog, NULL, where, sizeof(where)) < 0)
        snprintf(inst->last_error, sizeof(inst->last_error),
                 "the backend command's program `%.100s` was not found on the gateway's PATH "
                 "(exit code 127); %s; %.511s",
                 prog,
                 serena ? "run scripts/serena.sh and put .venv-serena/bin on PATH (make run "
                          "does both), or set SERENA_BACKEND_CMD"
                        : "install it, or give its full path in SERENA_BACKEND_CMD",
                 hint);
    else
        snprintf(inst->last_error, sizeof(inst->last_error),
                 "the backend command could not be run (exit code %d: a program it names was "
                 "not found or is not executable); check SERENA_BACKEND_CMD; %.511s",
                 code, hint);
}

static void on_child_exit(void *arg, int code, int signo)
{
    struct sr_instance *inst = arg;
    struct sr_instances *m = inst->m;
    time_t now = time(NULL);
    bool expected = inst->state == ST_STOPPING;
    if (inst->probe) {
        sr_up_cancel(inst->probe);
        inst->probe = NULL;
    }
    /* In-flight relays see the connection drop: clients get 502 or a cut stream. */
    sr_upstream_close_all(inst->up, "the backend process exited");
    sr_upstream_free(inst->up);
    inst->up = NULL;
    snprintf(inst->last_output, sizeof(inst->last_output), "%s", sr_child_last_line(inst->child));
    sr_child_free(inst->child);
    inst->child = NULL;
    remove_pidfile(inst);
    evtimer_del(inst->timer);
    evtimer_del(inst->start_deadline);
    inst->stopped_at = now;
    inst->port = 0;
    if (expected && !inst->timed_out) {
        sr_log_event("info", "route=%s instance stopped (%s %d)", inst->route,
                     signo ? "signal" : "exit code", signo ? signo : code);
        inst->state = ST_ASLEEP;
    } else {
        /* A crash (or a start timeout): count it, and cool down on a loop. The shell that runs
         * the command exits 127 when it cannot find the program, 126 when it cannot run it:
         * before the backend ever answered, that is what happened, and no retry will help. */
        bool not_found = !inst->timed_out && !signo && (code == 127 || code == 126) &&
                         inst->state == ST_STARTING;
        if (not_found)
            missing_program_error(inst, code);
        else if (!inst->timed_out) {
            char hint[512];
            output_hint(inst, hint, sizeof(hint));
            snprintf(inst->last_error, sizeof(inst->last_error),
                     "exited unexpectedly (%s %d); %.400s", signo ? "signal" : "exit code",
                     signo ? signo : code, hint);
        }
        sr_log_event("warn", "route=%s instance %s", inst->route, inst->last_error);
        sr_metrics_instance(inst->token_name, SR_MI_CRASH);
        inst->restarts++;
        memmove(inst->crash_times + 1, inst->crash_times,
                sizeof(inst->crash_times) - sizeof(inst->crash_times[0]));
        inst->crash_times[0] = now;
        bool loop = inst->crash_times[CRASH_LIMIT - 1] != 0 &&
                    now - inst->crash_times[CRASH_LIMIT - 1] <= CRASH_WINDOW;
        if (loop) {
            inst->state = ST_FAILED;
            inst->cooldown_until = now + CRASH_COOLDOWN;
            sr_log_event("error", "route=%s crash loop (%d exits in %ds): refusing for %ds",
                         inst->route, CRASH_LIMIT, CRASH_WINDOW, CRASH_COOLDOWN);
        } else {
            inst->state = ST_ASLEEP;
        }
        char msg[640];
        if (not_found) {
            snprintf(msg, sizeof(msg),
                     "The gateway could not start the backend for this token: %s.",
                     inst->last_error);
            sr_inst_release_waiters(inst, 500, msg);
        } else {
            snprintf(msg, sizeof(msg),
                     "The backend for this token %s; the next request starts it again",
                     inst->last_error);
            sr_inst_release_waiters(inst, loop ? 503 : 502, msg);
        }
    }
    inst->timed_out = false;
    inst->term_sent = false;
    inst->draining = false;
    evtimer_del(inst->snap_timer);
    if (m->o.on_state)
        m->o.on_state(m->o.state_arg, inst->route, inst, false);
    /* The backend is gone, its files are quiet: the best moment for a snapshot. */
    if (m->o.store && !inst->job)
        sr_inst_snapshot(inst, expected ? "stop" : "crash");
    else if (m->o.store)
        /* An interval snapshot may have read the tree before the last writes: take one more
         * when it ends, so the final state is never lost. */
        inst->snap_pending = true;
    if (m->shutting_down) {
        sr_inst_check_shutdown(m);
        return;
    }
    /* Requests arrived while it was stopping: start it again for them (after the snapshot). */
    if (inst->waiters && inst->state == ST_ASLEEP && !inst->job)
        sr_inst_start(inst);
}

void sr_inst_spawn(struct sr_instance *inst)
{
    struct sr_instances *m = inst->m;
    char err[512], home[PATH_MAX + 8], work[PATH_MAX + 8], tmp[PATH_MAX + 8], url[64];
    char cmd[8192];
    inst->timed_out = false;
    snprintf(home, sizeof(home), "%s/home", inst->dir);
    snprintf(work, sizeof(work), "%s/work", inst->dir);
    snprintf(tmp, sizeof(tmp), "%s/tmp", inst->dir);
    /* A killed language server leaves its temporary files behind: start clean. */
    empty_dir(tmp);
    if (sr_inst_mkdir_p(home, 0700) < 0 || sr_inst_mkdir_p(work, 0700) < 0 ||
        sr_inst_mkdir_p(tmp, 0700) < 0) {
        snprintf(err, sizeof(err), "cannot create %.300s: %s", inst->dir, strerror(errno));
        goto fail;
    }
    if (m->o.seed_config && m->o.seed_name) {
        char seed[PATH_MAX + 64];
        snprintf(seed, sizeof(seed), "%s/%s", home, m->o.seed_name);
        int fd = open(seed, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            ssize_t w = write(fd, m->o.seed_config, strlen(m->o.seed_config));
            (void)w;
            close(fd);
        }
    }
    /* Every start: a restored home has no language_servers/ (snapshots leave it out). */
    if (sr_inst_link_tools(home, m->o.tools_dir, err, sizeof(err)) < 0)
        sr_log_event("warn", "route=%s preinstalled language servers not linked: %s", inst->route,
                     err);
    if (free_port(&inst->port) < 0) {
        snprintf(err, sizeof(err), "no free port on 127.0.0.1: %s", strerror(errno));
        goto fail;
    }
    if (sr_inst_expand_cmd(inst, cmd, sizeof(cmd)) < 0 ||
        (m->o.sandbox && sr_inst_sandbox_wrap(inst, cmd, sizeof(cmd)) < 0)) {
        snprintf(err, sizeof(err), "the backend command is too long");
        goto fail;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/mcp", (unsigned)inst->port);
    if (sr_upstream_new(m->base, url, &inst->up, err, sizeof(err)) < 0)
        goto fail;
    char **env = sr_inst_build_env(inst);
    char echo[SR_ROUTE_MAX + 32];
    snprintf(echo, sizeof(echo), "route=%s backend: ", inst->route);
    inst->last_output[0] = '\0';
    struct sr_child_opts co = {
        .self_exe = m->o.self_exe,
        .cmd = cmd,
        .cwd = work,
        .envp = env,
        .log_path = inst->log_path,
        .log_cap = LOG_CAP,
        .echo_prefix = m->o.output_to_log ? echo : NULL,
        .echo_cap = ECHO_CAP,
        .on_exit = on_child_exit,
        .arg = inst,
    };
    int rc = env ? sr_child_spawn(m->base, &co, &inst->child, err, sizeof(err)) : -1;
    sr_inst_free_env(env);
    if (rc < 0) {
        sr_upstream_free(inst->up);
        inst->up = NULL;
        goto fail;
    }
    write_pidfile(inst);
    inst->incarnation = ++m->incarnations;
    inst->state = ST_STARTING;
    inst->started_at = time(NULL);
    inst->ready_at = 0; /* the last start's: this one is not ready yet */
    sr_metrics_instance(inst->token_name, SR_MI_START);
    inst->probe_ms = 0;
    struct timeval dl = {(time_t)m->o.start_timeout, 0};
    evtimer_add(inst->start_deadline, &dl);
    set_timer(inst, PROBE_FIRST_MS);
    sr_log_event("info", "route=%s starting instance on 127.0.0.1:%u (pid %d, log %s)", inst->route,
                 (unsigned)inst->port, (int)sr_child_pid(inst->child), inst->log_path);
    return;
fail:
    snprintf(inst->last_error, sizeof(inst->last_error), "could not start: %.230s", err);
    sr_log_event("error", "route=%s instance %s", inst->route, inst->last_error);
    inst->state = ST_ASLEEP;
    char msg[640];
    snprintf(msg, sizeof(msg), "The gateway could not start the backend for this token: %s.", err);
    sr_inst_release_waiters(inst, 503, msg);
}

/* Sleep or stop: close streams, (snapshot hook), SIGTERM, then SIGKILL after the grace. */
void sr_inst_stop(struct sr_instance *inst, const char *why)
{
    if (!inst->child || inst->state == ST_STOPPING)
        return;
    sr_log_event("info", "route=%s instance stopping: %s", inst->route, why);
    inst->state = ST_STOPPING;
    evtimer_del(inst->start_deadline);
    if (inst->probe) {
        sr_up_cancel(inst->probe);
        inst->probe = NULL;
    }
    if (inst->up)
        sr_upstream_close_all(inst->up, "the instance is going to sleep");
    inst->term_sent = true;
    sr_child_signal(inst->child, SIGTERM);
    set_timer(inst, inst->m->o.stop_grace * 1000u);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sr_instance *inst = arg;
    (void)fd;
    (void)what;
    switch (inst->state) {
    case ST_STARTING:
        send_probe(inst);
        break;
    case ST_READY:
        if (inst->draining && inst->inflight_posts == 0) {
            sr_inst_stop(inst, "generation changed");
            break;
        }
        if (inst->inflight_posts == 0 && inst->m->o.sleep_after) {
            time_t idle = time(NULL) - inst->last_activity;
            if (idle + 1 >= (time_t)inst->m->o.sleep_after) {
                sr_metrics_instance(inst->token_name, SR_MI_SLEEP);
                sr_inst_stop(inst, "idle");
            } else {
                set_timer(inst, (unsigned)(inst->m->o.sleep_after - (uint32_t)idle) * 1000u);
            }
        }
        break;
    case ST_STOPPING:
        sr_log_event("warn", "route=%s instance ignored SIGTERM for %us: SIGKILL", inst->route,
                     inst->m->o.stop_grace);
        sr_child_signal(inst->child, SIGKILL);
        break;
    default:
        break;
    }
}

/* ---- public -------------------------------------------------------------- */

int sr_instances_new(struct event_base *base, const struct sr_inst_opts *o,
                     struct sr_instances **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sr_instances *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char routes[PATH_MAX];
    if (o->state_dir[0] == '/')
        snprintf(m->state_dir, sizeof(m->state_dir), "%s", o->state_dir);
    else if (!realpath(".", routes) || snprintf(m->state_dir, sizeof(m->state_dir), "%s/%s", routes,
                                                o->state_dir) >= (int)sizeof(m->state_dir)) {
        snprintf(err, errlen, "the state directory path is too long");
        free(m);
        return -1;
    }
    snprintf(routes, sizeof(routes), "%s/routes", m->state_dir);
    if (sr_inst_mkdir_p(routes, 0700) < 0) {
        snprintf(err, errlen, "cannot create the state directory %s: %s", routes, strerror(errno));
        free(m);
        return -1;
    }
    m->base = base;
    m->o = *o;
    m->o.state_dir = m->state_dir;
    /* Own copies: the caller's configuration is replaced on SIGHUP. */
    const char **strs[] = {&m->o.backend_cmd,     &m->o.self_exe,       &m->o.seed_config,
                           &m->o.seed_name,       &m->o.sandbox,        &m->o.snap_prefix,
                           &m->o.snap_excludes,   &m->o.partition_mode, &m->o.instance_id,
                           &m->o.default_project, &m->o.tools_dir,      &m->o.default_context};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        *strs[i] = *strs[i] ? strdup(*strs[i]) : NULL;
    if (o->store) {
        struct sr_store_config *sc = calloc(1, sizeof(*sc));
        if (sc) {
            *sc = *o->store;
            const char **ss[] = {&sc->kind,   &sc->dir,        &sc->endpoint,   &sc->region,
                                 &sc->bucket, &sc->access_key, &sc->secret_key, &sc->keys};
            for (size_t i = 0; i < sizeof(ss) / sizeof(ss[0]); i++)
                *ss[i] = *ss[i] ? strdup(*ss[i]) : NULL;
        }
        m->o.store = sc;
    }
    *out = m;
    return 0;
}

static void free_opts(struct sr_inst_opts *o)
{
    const char **strs[] = {&o->backend_cmd,     &o->self_exe,       &o->seed_config,
                           &o->seed_name,       &o->sandbox,        &o->snap_prefix,
                           &o->snap_excludes,   &o->partition_mode, &o->instance_id,
                           &o->default_project, &o->tools_dir,      &o->default_context};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free((char *)*strs[i]);
    if (o->store) {
        struct sr_store_config *sc = (struct sr_store_config *)o->store;
        const char **ss[] = {&sc->kind,   &sc->dir,        &sc->endpoint,   &sc->region,
                             &sc->bucket, &sc->access_key, &sc->secret_key, &sc->keys};
        for (size_t i = 0; i < sizeof(ss) / sizeof(ss[0]); i++) {
            if (*ss[i])
                memset((char *)*ss[i], 0, strlen(*ss[i]));
            free((char *)*ss[i]);
        }
        free(sc);
    }
}

void sr_instances_free(struct sr_instances *m)
{
    if (!m)
        return;
    while (m->list) {
        struct sr_instance *inst = m->list;
        sr_inst_release_waiters(inst, 503, "The gateway is shutting down.");
        if (inst->child)
            remove_pidfile(inst);
        inst_free(inst);
    }
    free_opts(&m->o);
    sr_inst_tokens_free(m);
    free(m);
}

struct sr_instance *sr_inst_find(const struct sr_instances *m, const char *route)
{
    for (struct sr_instance *i = m->list; i; i = i->next)
        if (strcmp(i->route, route) == 0)
            return i;
    return NULL;
}

static uint32_t running(const struct sr_instances *m)
{
    uint32_t n = 0;
    for (struct sr_instance *i = m->list; i; i = i->next)
        if (i->state == ST_STARTING || i->state == ST_READY)
            n++;
    return n;
}

/* The least recently used instance with no POST in flight, or NULL. */
static struct sr_instance *lru_idle(const struct sr_instances *m)
{
    struct sr_instance *best = NULL;
    for (struct sr_instance *i = m->list; i; i = i->next)
        if (i->state == ST_READY && i->inflight_posts == 0 &&
            (!best || i->last_activity < best->last_activity))
            best = i;
    return best;
}

static struct sr_instance *inst_new(struct sr_instances *m, const char *route,
                                    const char *token_name, const char *generation)
{
    struct sr_instance *inst = calloc(1, sizeof(*inst));
    if (!inst)
        return NULL;
    inst->m = m;
    snprintf(inst->route, sizeof(inst->route), "%s", route);
    snprintf(inst->generation, sizeof(inst->generation), "%s", generation);
    char hex[SR_ROUTE_HASH_HEX + 1];
    sr_route_hash_hex(route, hex);
    snprintf(inst->dir, sizeof(inst->dir), "%s/routes/%s", m->state_dir, hex);
    snprintf(inst->log_path, sizeof(inst->log_path), "%s/backend.log", inst->dir);
    snprintf(inst->token_name, sizeof(inst->token_name), "%s", token_name);
    /* Where this route's snapshots live: per Durable Object (the container's id, or a
     * route hash when self-hosted), per token name (stable across generations), or one
     * shared partition; the snapshot commands find them with the same rule. */
    if (sr_route_partition(m->o.partition_mode, m->o.instance_id, route, token_name,
                           inst->partition, sizeof(inst->partition)) < 0)
        snprintf(inst->partition, sizeof(inst->partition), "r-%s", hex);
    inst->snap_timer = evtimer_new(m->base, sr_inst_snap_timer_cb, inst);
    inst->timer = evtimer_new(m->base, timer_cb, inst);
    inst->start_deadline = evtimer_new(m->base, start_deadline_cb, inst);
    if (!inst->timer || !inst->start_deadline || !inst->snap_timer) {
        if (inst->timer)
            event_free(inst->timer);
        if (inst->start_deadline)
            event_free(inst->start_deadline);
        if (inst->snap_timer)
            event_free(inst->snap_timer);
        free(inst);
        return NULL;
    }
    inst->state = ST_ASLEEP;
    inst->next = m->list;
    m->list = inst;
    return inst;
}

int sr_instances_acquire(struct sr_instances *m, const char *route, const char *token_name,
                         const char *generation, sr_inst_cb cb, void *arg, struct sr_upstream **up,
                         struct sr_instance **out_inst, struct sr_inst_wait **wait, int *status,
                         unsigned *retry_after, char *msg, size_t msglen)
{
    *retry_after = 0;
    time_t now = time(NULL);
    *status = 503;
    if (m->shutting_down) {
        snprintf(msg, msglen, "The gateway is shutting down; retry in a moment.");
        return -1;
    }
    struct sr_instance *inst = sr_inst_find(m, route);
    if (inst && inst->state == ST_READY && !inst->draining) {
        *up = inst->up;
        *out_inst = inst;
        return SR_INST_READY_NOW;
    }
    if (inst && inst->state == ST_FAILED) {
        if (now < inst->cooldown_until) {
            snprintf(msg, msglen,
                     "The backend for this token keeps crashing (%d exits within %d seconds; last: "
                     "%s). The gateway waits %ld more seconds before starting it again.",
                     CRASH_LIMIT, CRASH_WINDOW, inst->last_error,
                     (long)(inst->cooldown_until - now));
            *retry_after = (unsigned)(inst->cooldown_until - now);
            return -1;
        }
        inst->state = ST_ASLEEP;
        memset(inst->crash_times, 0, sizeof(inst->crash_times));
    }
    bool needs_start = !inst || inst->state == ST_ASLEEP;
    if (needs_start && running(m) >= m->o.max_instances) {
        struct sr_instance *victim = lru_idle(m);
        if (!victim) {
            snprintf(msg, msglen,
                     "The gateway is at capacity: %u instances are running and all are busy "
                     "(MAX_INSTANCES). Retry shortly.",
                     m->o.max_instances);
            return -1;
        }
        sr_metrics_instance(victim->token_name, SR_MI_EVICTION);
        sr_inst_stop(victim, "evicted for a new route (MAX_INSTANCES reached)");
    }
    if (!inst) {
        inst = inst_new(m, route, token_name, generation);
        if (!inst) {
            snprintf(msg, msglen, "The gateway is out of memory.");
            return -1;
        }
    }
    if (inst->state == ST_ASLEEP && !inst->job) {
        /* Start first: a failed start must not call back into our caller. */
        sr_inst_start(inst);
        if (inst->state == ST_ASLEEP) {
            snprintf(msg, msglen, "The gateway could not start the backend for this token: %s.",
                     inst->last_error);
            return -1;
        }
    }
    if (inst->nwait >= HOLD_MAX) {
        snprintf(msg, msglen,
                 "Too many requests are waiting for this token's backend to start; retry "
                 "shortly.");
        return -1;
    }
    struct sr_inst_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(msg, msglen, "The gateway is out of memory.");
        return -1;
    }
    w->inst = inst;
    w->cb = cb;
    w->arg = arg;
    w->next = inst->waiters;
    if (inst->waiters)
        inst->waiters->prev = w;
    inst->waiters = w;
    inst->nwait++;
    *wait = w;
    return SR_INST_QUEUED;
}

void sr_instances_prestart(struct sr_instances *m, const char *route, const char *token_name,
                           const char *generation)
{
    struct sr_instance *inst = sr_inst_find(m, route);
    if (!inst)
        inst = inst_new(m, route, token_name, generation);
    if (inst && inst->state == ST_ASLEEP && !inst->job)
        sr_inst_start(inst);
}

void sr_instance_request_begin(struct sr_instance *inst, bool is_post)
{
    inst->inflight++;
    if (is_post) {
        inst->inflight_posts++;
        inst->last_activity = time(NULL);
    }
}

void sr_instance_request_end(struct sr_instance *inst, bool is_post)
{
    inst->inflight--;
    if (!is_post)
        return;
    inst->inflight_posts--;
    inst->last_activity = time(NULL);
    if (inst->inflight_posts > 0 || inst->state != ST_READY)
        return;
    /* Never stop from here: we are inside the relay's completion, and stopping
     * ends the instance's other exchanges. The timer decides, from the loop. */
    if (inst->draining)
        set_timer(inst, 0);
    else if (inst->m->o.sleep_after)
        set_timer(inst, inst->m->o.sleep_after * 1000u);
}

uint64_t sr_instance_incarnation(const struct sr_instance *inst)
{
    return inst->incarnation;
}

struct sr_instance *sr_instances_ready(struct sr_instances *m, const char *route)
{
    struct sr_instance *i = sr_inst_find(m, route);
    return i && i->state == ST_READY && !i->draining ? i : NULL;
}

struct sr_upstream *sr_instance_upstream(const struct sr_instance *inst)
{
    return inst->up;
}

void sr_instances_set_generation(struct sr_instances *m, const char *generation)
{
    struct sr_instance *i = m->list, *next;
    for (; i; i = next) {
        next = i->next;
        if (strcmp(i->generation, generation) == 0)
            continue;
        if (i->child) {
            i->draining = true;
            if (i->inflight_posts == 0)
                sr_inst_stop(i, "generation changed");
        } else if (!i->waiters) {
            inst_free(i); /* an old generation's record is of no further use */
        }
    }
}

void sr_instances_shutdown(struct sr_instances *m, void (*done)(void *arg), void *arg)
{
    m->shutting_down = true;
    m->shutdown_done = done;
    m->shutdown_arg = arg;
    for (struct sr_instance *i = m->list; i; i = i->next) {
        sr_inst_release_waiters(i, 503, "The gateway is shutting down; retry in a moment.");
        if (i->child)
            sr_inst_stop(i, "gateway shutting down");
    }
    sr_inst_check_shutdown(m);
}
