/*
 * Spawning and supervising backend processes (see spawn.h).
 *
 * Why a wrapper exec: posix_spawn cannot set PR_SET_PDEATHSIG, and a
 * gateway killed by SIGKILL would otherwise leave its Serenas (and their
 * language servers) running. The wrapper is our own binary, so nothing
 * outside the project is trusted; it leaves a watchdog in the backend's
 * process group (sr_child_exec_main).
 */
#include "instance/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/pidfd.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "http/log.h"

extern char **environ;

#define SR_P_PIDFD 3 /* linux/wait.h; glibc's idtype_t does not name it */

struct sr_child {
    pid_t pid;
    int pidfd;
    int out_fd; /* read end of the output pipe */
    int log_fd;
    size_t log_size;
    size_t log_cap;
    char *log_path;
    /* The line being read (cleaned, cut at SR_CHILD_ECHO_LINE), the last complete one, and the
     * echo into the gateway's log (NULL prefix: off). */
    char line[SR_CHILD_ECHO_LINE + 1];
    size_t line_len;
    bool line_cut;
    char last[SR_CHILD_ECHO_LINE + 1];
    char *echo_prefix;
    size_t echo_cap, echo_sent;
    struct event *ev_exit;
    struct event *ev_out;
    bool exited;
    sr_child_exit_cb on_exit;
    void *arg;
};

#define TRACK_MAX 2048

static pid_t g_tracked[TRACK_MAX];
static unsigned g_ntracked;

void sr_child_track(pid_t pid)
{
    if (g_ntracked < TRACK_MAX)
        g_tracked[g_ntracked++] = pid;
}

void sr_child_untrack(pid_t pid)
{
    for (unsigned i = 0; i < g_ntracked; i++)
        if (g_tracked[i] == pid) {
            g_tracked[i] = g_tracked[--g_ntracked];
            return;
        }
}

static bool tracked(pid_t pid)
{
    for (unsigned i = 0; i < g_ntracked; i++)
        if (g_tracked[i] == pid)
            return true;
    return false;
}

int sr_reap_strays(void)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    int reaped = 0;
    char *p = buf;
    while (*p) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        p = end;
        while (*p == ' ' || *p == '\n')
            p++;
        if (pid > 0 && !tracked((pid_t)pid) && waitpid((pid_t)pid, NULL, WNOHANG) == pid)
            reaped++;
    }
    return reaped;
}

int sr_self_path(const char *rel, char *out, size_t cap)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    if (!*rel)
        return snprintf(out, cap, "%s", self) < (int)cap ? 0 : -1;
    char *slash = strrchr(self, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    return snprintf(out, cap, "%s/%s", self, rel) < (int)cap ? 0 : -1;
}

int sr_sandbox_probe(char *err, size_t errlen)
{
    char *argv[] = {"bwrap", "--ro-bind", "/",     "/",         "--dev",
                    "/dev",  "--proc",    "/proc", "/bin/true", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, "bwrap", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        snprintf(err, errlen,
                 "--sandbox bwrap: bwrap is not installed (Debian: apt-get install "
                 "bubblewrap)");
        return -1;
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(err, errlen,
                 "--sandbox bwrap: bwrap cannot create a sandbox here (user namespaces are "
                 "disabled or restricted: check kernel.unprivileged_userns_clone or run without "
                 "--sandbox)");
        return -1;
    }
    return 0;
}

/* The text of /proc/PID/stat after the command name's closing parenthesis, or NULL. */
static char *proc_stat_fields(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    return p ? p + 1 : NULL;
}

bool sr_proc_exited(pid_t pid)
{
    char buf[1024];
    const char *p = proc_stat_fields(pid, buf, sizeof(buf));
    if (!p)
        return true;
    while (*p == ' ')
        p++;
    return *p == 'Z' || *p == 'X' || *p == 'x';
}

uint64_t sr_proc_starttime(pid_t pid)
{
    char buf[1024];
    char *p = proc_stat_fields(pid, buf, sizeof(buf));
    /* After ')' come fields 3.. ; starttime is field 22. */
    for (int field = 3; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

static void log_open(struct sr_child *c)
{
    c->log_fd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    struct stat st;
    c->log_size = (c->log_fd >= 0 && fstat(c->log_fd, &st) == 0) ? (size_t)st.st_size : 0;
}

static void log_write(struct sr_child *c, const char *buf, size_t n)
{
    if (c->log_fd < 0)
        return;
    if (c->log_size + n > c->log_cap) {
        /* Rotate once: the newest output and the previous cap's worth are kept. */
        char old[4096];
        snprintf(old, sizeof(old), "%s.1", c->log_path);
        close(c->log_fd);
        rename(c->log_path, old);
        log_open(c);
        if (c->log_fd < 0)
            return;
    }
    ssize_t w = write(c->log_fd, buf, n);
    if (w > 0)
        c->log_size += (size_t)w;
}

/* A complete line of output: remembered as the last one, and echoed when asked. */
static void line_done(struct sr_child *c)
{
    size_t n = c->line_len;
    while (n && (c->line[n - 1] == ' ' || c->line[n - 1] == '\t'))
        n--;
    c->line[n] = '\0';
    c->line_len = 0;
    bool cut = c->line_cut;
    c->line_cut = false;
    if (n == 0)
        return;
    memcpy(c->last, c->line, n + 1);
    if (!c->echo_prefix || c->echo_sent > c->echo_cap)
        return;
    c->echo_sent += n;
    if (c->echo_sent > c->echo_cap) {
        sr_log_event("info", "%soutput past %zu KiB is only in %s", c->echo_prefix,
                     c->echo_cap / 1024, c->log_path);
        return;
    }
    sr_log_event("info", "%s%s%s", c->echo_prefix, c->line, cut ? " [line cut]" : "");
}

static void line_feed(struct sr_child *c, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\n' || ch == '\r') {
            line_done(c);
            continue;
        }
        if (c->line_len >= SR_CHILD_ECHO_LINE) {
            c->line_cut = true;
            continue;
        }
        c->line[c->line_len++] = (ch == '\t' || (ch >= 0x20 && ch < 0x7f)) ? (char)ch : '?';
    }
}

const char *sr_child_last_line(struct sr_child *c)
{
    if (!c)
        return "";
    if (c->line_len) {
        c->line[c->line_len] = '\0';
        return c->line;
    }
    return c->last;
}

static void out_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sr_child *c = arg;
    char buf[8192];
    (void)what;
    for (int i = 0; i < 8; i++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            log_write(c, buf, (size_t)n);
            line_feed(c, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        /* EOF: every writer (the child and anything it left behind) is gone. */
        if (c->line_len)
            line_done(c);
        event_del(c->ev_out);
        return;
    }
}

static void exit_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sr_child *c = arg;
    siginfo_t si;
    (void)what;
    memset(&si, 0, sizeof(si));
    if (waitid((idtype_t)SR_P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
        return;
    c->exited = true;
    event_del(c->ev_exit);
    /* Pick up the last words before reporting the exit. */
    out_cb(c->out_fd, EV_READ, c);
    int code = si.si_code == CLD_EXITED ? si.si_status : 0;
    int signo = si.si_code == CLD_EXITED ? 0 : si.si_status;
    c->on_exit(c->arg, code, signo);
}

/* argv for the wrapper: serena-remote __exec <parent-pid> <cmd> */
int sr_child_spawn(struct event_base *base, const struct sr_child_opts *o, struct sr_child **out,
                   char *err, size_t errlen)
{
    int pipefd[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    struct sr_child *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c || pipe2(pipefd, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "cannot create a pipe: %s", strerror(errno));
        free(c);
        return -1;
    }
    c->log_cap = o->log_cap;
    c->log_path = strdup(o->log_path);
    c->echo_prefix = o->echo_prefix ? strdup(o->echo_prefix) : NULL;
    c->echo_cap = o->echo_cap;
    c->pidfd = -1;
    log_open(c);
    char ppid[24];
    snprintf(ppid, sizeof(ppid), "%d", (int)getpid());
    char *argv[] = {(char *)o->self_exe, "__exec", ppid, (char *)o->cmd, NULL};
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(&c->pid, o->self_exe, &fa, &at, argv, o->envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(pipefd[1]);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the backend: %s", strerror(rc));
        goto fail;
    }
    sr_child_track(c->pid);
    c->pidfd = pidfd_open(c->pid, 0);
    if (c->pidfd < 0) {
        snprintf(err, errlen, "pidfd_open failed (Linux 5.3+ needed): %s", strerror(errno));
        kill(-c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
        sr_child_untrack(c->pid);
        goto fail;
    }
    c->out_fd = pipefd[0];
    fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
    c->on_exit = o->on_exit;
    c->arg = o->arg;
    c->ev_exit = event_new(base, c->pidfd, EV_READ | EV_PERSIST, exit_cb, c);
    c->ev_out = event_new(base, c->out_fd, EV_READ | EV_PERSIST, out_cb, c);
    event_add(c->ev_exit, NULL);
    event_add(c->ev_out, NULL);
    *out = c;
    return 0;
fail:
    close(pipefd[0]);
    if (c->log_fd >= 0)
        close(c->log_fd);
    free(c->log_path);
    free(c->echo_prefix);
    free(c);
    return -1;
}

pid_t sr_child_pid(const struct sr_child *c)
{
    return c->pid;
}

int sr_child_signal(struct sr_child *c, int sig)
{
    if (!c || c->exited)
        return -1;
    /* The group id is the child's pid (setpgroup 0); the pid cannot be reused
     * while it is unreaped, and only our pidfd reaps it. */
    if (kill(-c->pid, sig) < 0)
        return pidfd_send_signal(c->pidfd, sig, NULL, 0);
    return 0;
}

void sr_child_free(struct sr_child *c)
{
    if (!c)
        return;
    if (!c->exited) {
        kill(-c->pid, SIGKILL);
        siginfo_t si;
        waitid((idtype_t)SR_P_PIDFD, (id_t)c->pidfd, &si, WEXITED);
    } else {
        /* Stragglers in the group (a backend's own children) go too. */
        kill(-c->pid, SIGKILL);
    }
    sr_child_untrack(c->pid);
    if (c->ev_exit)
        event_free(c->ev_exit);
    if (c->ev_out)
        event_free(c->ev_out);
    if (c->pidfd >= 0)
        close(c->pidfd);
    close(c->out_fd);
    if (c->log_fd >= 0)
        close(c->log_fd);
    free(c->log_path);
    free(c->echo_prefix);
    free(c);
}

/*
 * The wrapper execs the backend (its pid stays the backend's), after forking a watchdog into
 * the backend's process group: the watchdog waits on a pidfd of the gateway and, when the
 * gateway is gone (even killed by SIGKILL), kills the whole group, so the backend's own children
 * (language servers) go too; PR_SET_PDEATHSIG alone reaches only the direct child. The watchdog
 * ignores the signals the gateway sends to the group, holds none of the backend's output, and
 * goes with the group's stragglers after the backend exits.
 */
static void watchdog(int gateway_fd, pid_t backend)
{
    /* No death signal of its own: the backend dies at the same moment as the gateway and
     * would take the watchdog along before it acts. A watchdog that outlives its backend is a
     * straggler in the group, which the gateway kills after the backend's exit. */
    if (getppid() != backend)
        _exit(0);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
    }
    struct pollfd p = {.fd = gateway_fd, .events = POLLIN};
    while (poll(&p, 1, -1) < 0 && errno == EINTR)
        ;
    kill(0, SIGKILL);
    _exit(0);
}

int sr_child_exec_main(int argc, char **argv)
{
    if (argc != 4)
        return 127;
    /* Die with the gateway, even if it is killed with SIGKILL. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char *end;
    long parent = strtol(argv[2], &end, 10);
    if (*end || getppid() != (pid_t)parent)
        return 127; /* the gateway died before we set the death signal */
    int gw = pidfd_open((pid_t)parent, 0);
    if (gw >= 0) {
        sigset_t all, old;
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, &old);
        pid_t self = getpid();
        pid_t w = fork();
        if (w == 0)
            watchdog(gw, self); /* signals stay blocked there: group signals are not for it */
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(gw);
    }
    size_t n = strlen(argv[3]) + 6;
    char *line = malloc(n);
    if (!line)
        return 127;
    snprintf(line, n, "exec %s", argv[3]);
    char *sh[] = {"/bin/sh", "-c", line, NULL};
    execv("/bin/sh", sh);
    fprintf(stderr, "serena-remote: cannot run /bin/sh: %s\n", strerror(errno));
    return 127;
}
