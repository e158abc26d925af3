/*
 * Child processes for backend instances: spawn, watch, signal, capture.
 *
 * A child is started with posix_spawn in its own process group, through the
 * gateway's own binary (`serena-remote __exec`), which sets
 * PR_SET_PDEATHSIG=SIGKILL, forks a watchdog into the group and execs
 * `/bin/sh -c "exec <cmd>"`: if the gateway dies, even by SIGKILL, the
 * backend dies, and the watchdog (waiting on a pidfd of the gateway) kills
 * the whole group, so what the backend started (language servers) goes too. Exit is noticed
 * through a pidfd watched by the event loop (no SIGCHLD races, no PID reuse:
 * the PID stays reserved until we reap it through the pidfd). Output goes
 * through a pipe into a size-capped log file (rotated once to "<log>.1").
 */
#ifndef SR_INSTANCE_SPAWN_H
#define SR_INSTANCE_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

#include <event2/event.h>

struct sr_child;

#define SR_CHILD_ECHO_LINE 600

/* code: exit status when signo == 0, else the signal that killed it. */
typedef void (*sr_child_exit_cb)(void *arg, int code, int signo);

struct sr_child_opts {
    const char *self_exe; /* path of the serena-remote binary (for __exec) */
    const char *cmd;      /* shell command line, already substituted and quoted */
    const char *cwd;
    char *const *envp;
    const char *log_path;
    size_t log_cap; /* bytes before the log rotates */
    /* Non-NULL: each output line also goes to the gateway's own log after this prefix (control
     * and non-ASCII bytes as '?', lines cut at SR_CHILD_ECHO_LINE bytes), until echo_cap bytes
     * were echoed for this child; then one line says the rest is only in log_path. */
    const char *echo_prefix;
    size_t echo_cap;
    sr_child_exit_cb on_exit;
    void *arg;
};

/* 0 or -1 with a message; on failure no callback runs. */
int sr_child_spawn(struct event_base *base, const struct sr_child_opts *o, struct sr_child **out,
                   char *err, size_t errlen);
pid_t sr_child_pid(const struct sr_child *c);
/* The last non-empty line the child wrote, a line it is still writing included (cut, cleaned as
 * for the echo), or "". */
const char *sr_child_last_line(struct sr_child *c);
/* Signal the child's whole process group. */
int sr_child_signal(struct sr_child *c, int sig);
/* Free: only after the exit callback ran, or kills the group first. Accepts NULL. */
void sr_child_free(struct sr_child *c);

/*
 * PID 1 duty (run in a container): processes orphaned inside a backend's
 * tree are re-parented to us and must be reaped. Children we watch through a
 * pidfd (backends, snapshot workers) are registered so the reaper leaves
 * them to their owner; sr_reap_strays reaps every other exited child.
 */
void sr_child_track(pid_t pid);
void sr_child_untrack(pid_t pid);
/* Reap exited children that nobody tracks; returns how many. Call on SIGCHLD. */
int sr_reap_strays(void);

/* 0 when `bwrap` can create a sandbox here; -1 with the reason (not installed, no user
 * namespaces) in err. Blocks for the few milliseconds bwrap takes. */
int sr_sandbox_probe(char *err, size_t errlen);

/*
 * A path relative to the directory of the running binary ("" for the binary
 * itself), e.g. "serena-remote-snapshot" or "../.serena-tools". 0, or -1
 * when /proc/self/exe cannot be read or out is too small.
 */
int sr_self_path(const char *rel, char *out, size_t cap);

/* `serena-remote __exec <parent pid> <cmd>`: the wrapper's main. */
int sr_child_exec_main(int argc, char **argv);

/* True when the process is a zombie (or gone): nothing left to kill. */
bool sr_proc_exited(pid_t pid);

/* Start time of a process in clock ticks since boot (/proc/PID/stat field 22), or 0. */
uint64_t sr_proc_starttime(pid_t pid);

#endif
