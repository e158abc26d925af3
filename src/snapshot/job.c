/*
 * Snapshot jobs: sr_snapshot_take / sr_snapshot_restore in a forked worker,
 * reported to the gateway's event loop (see snapshot.h).
 *
 * Why fork and not a thread: archive extraction changes the working
 * directory (process-wide), and compression, hashing and store transfers
 * block for seconds. A worker process isolates all of that, and a kill -9
 * of the worker at any moment is just another failure the snapshot order
 * already survives.
 *
 * The worker is a separate binary, serena-remote-snapshot (next to
 * serena-remote, or SERENA_REMOTE_SNAPSHOT_BIN): only it links libcurl and
 * libarchive, whose dependency trees (GnuTLS, Kerberos, ICU, ...) would
 * otherwise more than double the gateway's resident memory. The request
 * (store settings, options, home) goes to the worker as one JSON document
 * on fd 4; see job_worker.c.
 *
 * Protocol: the worker writes exactly one line of JSON to a pipe and exits:
 *   {"status":0,"err":"","skipped":false,"fell_back":false,"nothing":false,
 *    "key":"..","sha256":"..","size":N,"files":N,"created":N,"note":".."}
 * The parent waits for both the pipe's EOF and the worker's exit (through a
 * pidfd, so the PID cannot be reused under us), then parses the line with
 * the core's JSON reader. No line, or a bad one, means the worker died: the
 * callback gets SR_STORE_E_IO and says how it ended.
 */
#include "snapshot/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "core/json.h"
#include "instance/spawn.h"

#define SR_P_PIDFD 3 /* linux/wait.h; glibc's idtype_t does not name it */
#define RESULT_FD  SR_SNAPSHOT_JOB_RESULT_FD
#define REQUEST_FD SR_SNAPSHOT_JOB_REQUEST_FD

struct sr_snapshot_job {
    pid_t pid;
    int pidfd;
    int rfd;
    struct event *ev_pipe;
    struct event *ev_exit;
    bool eof;
    bool exited;
    bool reaped; /* we got the status (someone else may have reaped it) */
    int wstatus;
    size_t len;
    bool overflow;
    sr_snapshot_job_cb cb;
    void *arg;
    char line[SR_SNAPSHOT_JOB_LINE_MAX];
};

/* -------------------------------------------------------------- the parent */

static void job_free(struct sr_snapshot_job *j)
{
    if (!j)
        return;
    if (j->ev_pipe)
        event_free(j->ev_pipe);
    if (j->ev_exit)
        event_free(j->ev_exit);
    if (j->rfd >= 0)
        close(j->rfd);
    if (j->pidfd >= 0)
        close(j->pidfd);
    if (j->pid > 0)
        sr_child_untrack(j->pid);
    free(j);
}

static bool get_bool(const struct sr_json_doc *d, const char *k)
{
    int32_t v = sr_json_obj_get(d, 0, k, strlen(k));
    return v >= 0 && d->toks[v].type == SR_JSON_TRUE;
}

static int64_t get_i64(const struct sr_json_doc *d, const char *k)
{
    int64_t x = 0;
    int32_t v = sr_json_obj_get(d, 0, k, strlen(k));
    if (v < 0 || sr_json_int64(d, (uint32_t)v, &x) != 0)
        return 0;
    return x;
}

static void get_s(const struct sr_json_doc *d, const char *k, char *out, size_t cap)
{
    size_t n = 0;
    int32_t v = sr_json_obj_get(d, 0, k, strlen(k));
    out[0] = '\0';
    if (v >= 0 && sr_json_str_decode(d, (uint32_t)v, out, cap, &n) == 0 && n < cap)
        out[n] = '\0';
    else
        out[0] = '\0';
}

/* Parse the worker's line; false when it is missing or malformed. */
static bool parse_line(struct sr_snapshot_job *j, int *status, struct sr_snapshot_result *r,
                       char *err, size_t errlen)
{
    struct sr_json_tok toks[64];
    struct sr_json_doc d;
    char *nl = memchr(j->line, '\n', j->len);
    if (j->overflow || !nl)
        return false;
    if (sr_json_parse(&d, j->line, (size_t)(nl - j->line), toks, 64, NULL) != 0 ||
        toks[0].type != SR_JSON_OBJECT || sr_json_obj_get(&d, 0, "status", 6) < 0)
        return false;
    *status = (int)get_i64(&d, "status");
    if (*status > 0 || (*status < SR_STORE_E_CORRUPT && *status != SR_STORE_E_KEY))
        *status = SR_STORE_E_IO;
    r->skipped = get_bool(&d, "skipped");
    r->fell_back = get_bool(&d, "fell_back");
    r->nothing = get_bool(&d, "nothing");
    get_s(&d, "key", r->key, sizeof(r->key));
    get_s(&d, "sha256", r->sha256, sizeof(r->sha256));
    r->size = (uint64_t)get_i64(&d, "size");
    r->added = (uint64_t)get_i64(&d, "added");
    r->total = (uint64_t)get_i64(&d, "total");
    r->files = (uint64_t)get_i64(&d, "files");
    r->created = get_i64(&d, "created");
    get_s(&d, "note", r->note, sizeof(r->note));
    get_s(&d, "err", err, errlen);
    return true;
}

static void maybe_finish(struct sr_snapshot_job *j)
{
    struct sr_snapshot_result r;
    char err[512] = "";
    int status = 0;
    if (!j->eof || !j->exited)
        return;
    memset(&r, 0, sizeof(r));
    if (!parse_line(j, &status, &r, err, sizeof(err))) {
        memset(&r, 0, sizeof(r));
        status = SR_STORE_E_IO;
        if (j->reaped && WIFSIGNALED(j->wstatus))
            snprintf(err, sizeof(err),
                     "the snapshot worker (pid %d) was killed by signal %d before it reported; "
                     "the previous snapshot is intact",
                     (int)j->pid, WTERMSIG(j->wstatus));
        else if (j->reaped && WIFEXITED(j->wstatus))
            snprintf(err, sizeof(err),
                     "the snapshot worker (pid %d) exited with status %d without a result; the "
                     "previous snapshot is intact",
                     (int)j->pid, WEXITSTATUS(j->wstatus));
        else
            snprintf(err, sizeof(err),
                     "the snapshot worker (pid %d) ended without a result; the previous "
                     "snapshot is intact",
                     (int)j->pid);
    }
    sr_snapshot_job_cb cb = j->cb;
    void *arg = j->arg;
    job_free(j);
    cb(arg, status, &r, status ? err : "");
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
    struct sr_snapshot_job *j = arg;
    char tmp[1024];
    (void)what;
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            j->eof = true;
            event_del(j->ev_pipe);
            maybe_finish(j);
            return;
        }
        if (j->len + (size_t)n > sizeof(j->line)) {
            j->overflow = true; /* keep draining so the worker never blocks on a full pipe */
            continue;
        }
        memcpy(j->line + j->len, tmp, (size_t)n);
        j->len += (size_t)n;
    }
}

static void on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
    struct sr_snapshot_job *j = arg;
    siginfo_t si;
    (void)what;
    memset(&si, 0, sizeof(si));
    int rc = waitid((idtype_t)SR_P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG);
    if (rc == 0 && si.si_pid == 0)
        return; /* spurious wake-up: still running */
    if (rc == 0) {
        j->reaped = true;
        j->wstatus = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status;
    }
    /* rc < 0 (ECHILD): someone else reaped it; the pipe still tells us the result. */
    j->exited = true;
    event_del(j->ev_exit);
    maybe_finish(j);
}

/* The request document for the worker (see job_worker.c). Holds the store secret and the
 * snapshot keys: they only ever travel through a pipe to our own child. */
static int build_request(char *buf, size_t cap, enum sr_snapshot_op op,
                         const struct sr_store_config *c, const struct sr_snapshot_opts *o,
                         const char *home, size_t *len)
{
    struct sr_jw w;
    sr_jw_init(&w, buf, cap);
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "op");
    sr_jw_cstr(&w, op == SR_SNAP_TAKE ? "take" : op == SR_SNAP_RESTORE ? "restore" : "clone");
    sr_jw_key(&w, "home");
    sr_jw_cstr(&w, home);
    sr_jw_key(&w, "store");
    sr_jw_obj_begin(&w);
    const char *keys[] = {"kind",   "dir",        "endpoint",   "region",
                          "bucket", "access_key", "secret_key", "keys"};
    static const struct sr_store_config none;
    if (!c)
        c = &none; /* a clone opens no store */
    const char *vals[] = {c->kind,   c->dir,        c->endpoint,   c->region,
                          c->bucket, c->access_key, c->secret_key, c->keys};
    for (size_t i = 0; c && i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (!vals[i])
            continue;
        sr_jw_key(&w, keys[i]);
        sr_jw_cstr(&w, vals[i]);
    }
    sr_jw_key(&w, "timeout");
    sr_jw_int(&w, c->timeout);
    sr_jw_key(&w, "retries");
    sr_jw_int(&w, c->retries);
    sr_jw_obj_end(&w);
    sr_jw_key(&w, "opts");
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "prefix");
    sr_jw_cstr(&w, o->prefix ? o->prefix : "");
    sr_jw_key(&w, "partition");
    sr_jw_cstr(&w, o->partition ? o->partition : "");
    if (o->work) {
        sr_jw_key(&w, "work");
        sr_jw_cstr(&w, o->work);
    }
    if (o->cache) {
        sr_jw_key(&w, "cache");
        sr_jw_cstr(&w, o->cache);
    }
    if (o->spec) {
        sr_jw_key(&w, "spec");
        sr_jw_cstr(&w, o->spec);
    }
    if (o->excludes) {
        sr_jw_key(&w, "excludes");
        sr_jw_cstr(&w, o->excludes);
    }
    sr_jw_key(&w, "retention");
    sr_jw_int(&w, o->retention);
    sr_jw_key(&w, "force");
    sr_jw_bool(&w, o->force);
    sr_jw_obj_end(&w);
    sr_jw_obj_end(&w);
    return sr_jw_finish(&w, len);
}

int sr_snapshot_bin(char *out, size_t cap)
{
    const char *env = getenv("SERENA_REMOTE_SNAPSHOT_BIN");
    if (env && *env)
        return snprintf(out, cap, "%s", env) < (int)cap ? 0 : -1;
    return sr_self_path("serena-remote-snapshot", out, cap);
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child_exec(int result_fd, int req_fd, pid_t parent, const char *helper)
{
    static const char fail[] = "{\"status\":-4,\"err\":\"cannot run the snapshot helper "
                               "serena-remote-snapshot: install it beside serena-remote or "
                               "set SERENA_REMOTE_SNAPSHOT_BIN\"}\n";
    sigset_t none;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    /* Handlers are reset by exec; the mask is not. */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(result_fd, RESULT_FD) < 0 || dup2(req_fd, REQUEST_FD) < 0)
        _exit(1);
    /* Only stdio and the two pipes: never the gateway's listening sockets or clients. */
    close_range(REQUEST_FD + 1, ~0u, 0);
    char *argv[] = {"serena-remote-snapshot", "__job", NULL};
    execv(helper, argv);
    ssize_t w = write(RESULT_FD, fail, sizeof(fail) - 1);
    (void)w;
    _exit(127);
}

int sr_snapshot_job_start(struct event_base *base, enum sr_snapshot_op op,
                          const struct sr_store_config *c, const struct sr_snapshot_opts *o,
                          const char *home, sr_snapshot_job_cb cb, void *arg,
                          struct sr_snapshot_job **out)
{
    int p[2] = {-1, -1}, q[2] = {-1, -1};
    static char req[SR_SNAPSHOT_JOB_REQUEST_MAX];
    char helper[4096];
    size_t reqlen = 0;
    struct sr_snapshot_job *j = calloc(1, sizeof(*j));
    if (!j || !cb)
        goto fail;
    j->pidfd = -1;
    j->rfd = -1;
    j->cb = cb;
    j->arg = arg;
    /* The request fits a pipe's buffer, so it is written before the worker runs. */
    if (build_request(req, sizeof(req), op, c, o, home, &reqlen) != 0 ||
        sr_snapshot_bin(helper, sizeof(helper)) < 0)
        goto fail;
    if (pipe2(p, O_CLOEXEC) < 0 || pipe2(q, O_CLOEXEC) < 0)
        goto fail;
    if (write(q[1], req, reqlen) != (ssize_t)reqlen)
        goto fail;
    close(q[1]);
    q[1] = -1;
    memset(req, 0, reqlen);
    pid_t parent = getpid();
    fflush(NULL);
    j->pid = fork();
    if (j->pid < 0)
        goto fail;
    if (j->pid == 0)
        child_exec(p[1], q[0], parent, helper);
    sr_child_track(j->pid);
    close(p[1]);
    p[1] = -1;
    close(q[0]);
    q[0] = -1;
    j->rfd = p[0];
    p[0] = -1;
    fcntl(j->rfd, F_SETFL, fcntl(j->rfd, F_GETFL) | O_NONBLOCK);
    j->pidfd = pidfd_open(j->pid, 0);
    if (j->pidfd < 0) {
        kill(j->pid, SIGKILL);
        waitpid(j->pid, NULL, 0);
        goto fail;
    }
    j->ev_pipe = event_new(base, j->rfd, EV_READ | EV_PERSIST, on_pipe, j);
    j->ev_exit = event_new(base, j->pidfd, EV_READ | EV_PERSIST, on_exit_ev, j);
    if (!j->ev_pipe || !j->ev_exit || event_add(j->ev_pipe, NULL) < 0 ||
        event_add(j->ev_exit, NULL) < 0) {
        pidfd_send_signal(j->pidfd, SIGKILL, NULL, 0);
        siginfo_t si;
        waitid((idtype_t)SR_P_PIDFD, (id_t)j->pidfd, &si, WEXITED);
        goto fail;
    }
    *out = j;
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (p[i] >= 0)
            close(p[i]);
        if (q[i] >= 0)
            close(q[i]);
    }
    if (reqlen)
        memset(req, 0, reqlen);
    job_free(j);
    return SR_STORE_E_IO;
}

void sr_snapshot_job_cancel(struct sr_snapshot_job *j)
{
    if (!j)
        return;
    if (!j->exited) {
        siginfo_t si;
        pidfd_send_signal(j->pidfd, SIGKILL, NULL, 0);
        /* Exits promptly after SIGKILL: reaping here keeps no zombie behind. */
        while (waitid((idtype_t)SR_P_PIDFD, (id_t)j->pidfd, &si, WEXITED) < 0 && errno == EINTR)
            ;
    }
    job_free(j);
}

int sr_snapshot_job_pid(const struct sr_snapshot_job *j)
{
    return j ? (int)j->pid : -1;
}
