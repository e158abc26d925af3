/*
 * Cloning a project (see clone.h).
 */
#include "snapshot/clone.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/project.h"
#include "snapshot/archive.h"

extern char **environ;

#define OUT_MAX 4096

/* The last non-empty line of git's output, reduced to printable ASCII. */
static void last_line(const char *out, size_t n, char *line, size_t cap)
{
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        n--;
    size_t b = n;
    while (b && out[b - 1] != '\n')
        b--;
    size_t k = 0;
    for (size_t i = b; i < n && k + 1 < cap; i++)
        line[k++] = out[i] >= 0x20 && out[i] < 0x7f ? out[i] : '?';
    line[k] = '\0';
}

/*
 * Run git with argv (NULL-terminated) and the clone's environment; its output (both streams)
 * goes to out. Returns the exit status (-1 when it could not run or ran out of time).
 */
static int run_git(char *const argv[], time_t deadline, char *out, size_t *outlen)
{
    int pfd[2];
    *outlen = 0;
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        setenv("GIT_TERMINAL_PROMPT", "0", 1);
        setenv("GIT_SSH_COMMAND", "ssh -o BatchMode=yes", 1);
        setenv("GIT_ASKPASS", "/bin/false", 1);
        setenv("SSH_ASKPASS", "/bin/false", 1);
        unsetenv("GIT_DIR");
        unsetenv("GIT_WORK_TREE");
        unsetenv("GIT_CONFIG_PARAMETERS");
        execvp("git", argv);
        _exit(127);
    }
    close(pfd[1]);
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    int status = -1;
    bool timed_out = false;
    for (;;) {
        char buf[1024];
        ssize_t r = read(pfd[0], buf, sizeof(buf));
        if (r > 0) {
            size_t keep = (size_t)r;
            if (*outlen + keep > OUT_MAX - 1) {
                /* Keep the end: the last line says why. */
                size_t drop = *outlen + keep - (OUT_MAX - 1);
                if (drop > *outlen)
                    drop = *outlen;
                memmove(out, out + drop, *outlen - drop);
                *outlen -= drop;
                if (keep > OUT_MAX - 1)
                    keep = OUT_MAX - 1;
            }
            memcpy(out + *outlen, buf + r - keep, keep);
            *outlen += keep;
            continue;
        }
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            break;
        if (time(NULL) > deadline) {
            timed_out = true;
            kill(pid, SIGKILL);
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    close(pfd[0]);
    int ws;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    if (!timed_out && WIFEXITED(ws))
        status = WEXITSTATUS(ws);
    out[*outlen] = '\0';
    return status;
}

/* Remove "<dest>.clone-*" left by a clone that was killed. */
static void clean_leftovers(const char *dest)
{
    char parent[4096], prefix[512];
    const char *slash = strrchr(dest, '/');
    if (!slash)
        return;
    snprintf(parent, sizeof(parent), "%.*s", (int)(slash - dest), dest);
    snprintf(prefix, sizeof(prefix), ".%s.clone-", slash + 1);
    DIR *d = opendir(parent);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
            char p[4600];
            snprintf(p, sizeof(p), "%s/%s", parent, de->d_name);
            sr_archive_rmtree(p);
        }
    }
    closedir(d);
}

int sr_clone_run(const char *spec, const char *dest, char commit[41], char *err, size_t errlen)
{
    struct sr_project_spec ps;
    const char *why = NULL;
    char url[SR_PROJECT_MAX + 1], ref[SR_PROJECT_MAX + 1], tmp[4200], proto[64];
    char *out = malloc(OUT_MAX + 1);
    size_t outlen = 0;
    int rc = -1;
    commit[0] = '\0';
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (sr_project_spec_parse(spec, strlen(spec), &ps, &why) != 0 || ps.kind != SR_PROJECT_GIT) {
        snprintf(err, errlen, "the project is not a git URL this gateway clones: %s",
                 why ? why : "a path");
        goto out;
    }
    snprintf(url, sizeof(url), "%.*s", (int)ps.url_len, spec);
    snprintf(ref, sizeof(ref), "%.*s", (int)ps.ref_len, spec + ps.ref_off);
    /* Only the spec's own protocol. */
    const char *scheme = strncmp(url, "https://", 8) == 0 ? "https"
                         : strncmp(url, "ssh://", 6) == 0 ? "ssh"
                                                          : "file";
    snprintf(proto, sizeof(proto), "protocol.%s.allow=always", scheme);
    struct stat st;
    if (lstat(dest, &st) == 0) {
        snprintf(err, errlen, "%s already exists", dest);
        goto out;
    }
    clean_leftovers(dest);
    const char *slash = strrchr(dest, '/');
    snprintf(tmp, sizeof(tmp), "%.*s/.%s.clone-XXXXXX", (int)(slash - dest), dest, slash + 1);
    if (!mkdtemp(tmp)) {
        snprintf(err, errlen, "cannot create a directory beside %s: %s", dest, strerror(errno));
        goto out;
    }
    time_t deadline = time(NULL) + SR_CLONE_TIMEOUT;
    char into[4300];
    snprintf(into, sizeof(into), "%s/tree", tmp);
    char *clone[] = {"git",
                     "-c",
                     "protocol.allow=never",
                     "-c",
                     proto,
                     "-c",
                     "core.hooksPath=/dev/null",
                     "-c",
                     "http.lowSpeedLimit=1000",
                     "-c",
                     "http.lowSpeedTime=60",
                     "clone",
                     "--quiet",
                     "--no-recurse-submodules",
                     "--",
                     url,
                     into,
                     NULL};
    int st1 = run_git(clone, deadline, out, &outlen);
    if (st1 != 0) {
        char line[400];
        last_line(out, outlen, line, sizeof(line));
        snprintf(err, errlen, "git clone of %s %s%s%s", url,
                 st1 < 0 ? "did not finish within 600 s or could not run git" : "failed: ",
                 st1 < 0 ? "" : line, st1 == 127 ? " (is git installed?)" : "");
        goto rm;
    }
    if (ref[0]) {
        char *co[] = {"git",      "-C",      into, "-c", "core.hooksPath=/dev/null",
                      "checkout", "--quiet", ref,  "--", NULL};
        if (run_git(co, deadline, out, &outlen) != 0) {
            char line[400];
            last_line(out, outlen, line, sizeof(line));
            snprintf(err, errlen, "%s has no ref %s: %s", url, ref, line);
            goto rm;
        }
    }
    char *head[] = {"git", "-C", into, "rev-parse", "HEAD", NULL};
    if (run_git(head, deadline, out, &outlen) == 0 && outlen >= 40)
        snprintf(commit, 41, "%.40s", out);
    if (rename(into, dest) < 0) {
        snprintf(err, errlen, "cannot move the clone to %s: %s", dest, strerror(errno));
        goto rm;
    }
    rc = 0;
rm:
    sr_archive_rmtree(tmp);
out:
    free(out);
    return rc;
}
