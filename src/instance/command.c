/*
 * The backend's start: its command line (the template's placeholders
 * expanded, each value shell-quoted), the bwrap sandbox around it, its
 * environment (without the gateway's secrets), and the route's remembered
 * project that {project_args} passes to Serena (see manager.h).
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
#include "instance/program.h"

extern char **environ;

/* Append s to the buffer as one single-quoted shell word. */
static void shell_quote(char *out, size_t cap, size_t *len, const char *s)
{
    size_t n = *len;
#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (n + 1 < cap)                                                                           \
            out[n++] = (ch);                                                                       \
    } while (0)
    PUT('\'');
    for (; *s; s++) {
        if (*s == '\'') {
            PUT('\'');
            PUT('\\');
            PUT('\'');
            PUT('\'');
        } else {
            PUT(*s);
        }
    }
    PUT('\'');
#undef PUT
    out[n] = '\0';
    *len = n;
}

static bool project_valid(const char *p, size_t n)
{
    if (n == 0 || n > SR_PROJECT_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return false;
    return true;
}

/* <state-dir>/projects/<16 hex of SHA-256 of the token name>: the token's project across route
 * generations (a new generation starts with a fresh home/). */
static void token_project_path(const struct sr_instance *inst, char *out, size_t cap)
{
    uint8_t d[SR_SHA256_LEN];
    char hex[SR_SHA256_LEN * 2 + 1];
    sr_sha256(inst->token_name, strlen(inst->token_name), d);
    sr_hex_encode(d, sizeof(d), hex);
    hex[16] = '\0';
    snprintf(out, cap, "%s/projects/%s", inst->m->state_dir, hex);
}

/* A project file's one line into inst->project; false when absent or not valid. */
static bool read_project(struct sr_instance *inst, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    char buf[SR_PROJECT_MAX + 2];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    while (n > 0 && buf[n - 1] == '\n')
        n--;
    if (!project_valid(buf, n)) {
        sr_log_event("warn", "route=%s ignoring %s: not a project path or name", inst->route, path);
        return false;
    }
    memcpy(inst->project, buf, n);
    inst->project[n] = '\0';
    return true;
}

/* Atomically: a snapshot or a crash sees the old name or the new one, never half of one. */
static int write_project(const char *path, const char *project)
{
    char tmp[PATH_MAX + 80];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    bool ok = f && fprintf(f, "%s\n", project) >= 0;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The remembered project (read once per instance record): the route's own, kept in home/ so that
 * snapshots carry it, else the token's from an earlier generation. */
static void load_project(struct sr_instance *inst)
{
    if (inst->project_loaded)
        return;
    inst->project_loaded = true;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/home/%s", inst->dir, PROJECT_FILE);
    if (read_project(inst, path))
        return;
    token_project_path(inst, path, sizeof(path));
    read_project(inst, path);
}

/*
 * What {project_args} becomes, if it still exists: the project the route last activated, else its
 * token's project, else SERENA_PROJECT (a git URL among them: its clone in the route's work/).
 */
static const char *start_project(struct sr_instance *inst, char *buf, size_t cap)
{
    load_project(inst);
    const char *p = inst->project;
    if (!p[0] && sr_inst_spec_path(inst, sr_inst_spec(inst), buf, cap) == 0)
        p = buf;
    if (!p || !*p)
        return NULL;
    struct stat st;
    if (p[0] == '/' && stat(p, &st) < 0) {
        sr_log_event("warn", "route=%s project %s no longer exists: starting without it",
                     inst->route, p);
        return NULL;
    }
    return p;
}

/* Serena's tools that can change files or memories (ToolMarkerCanEdit in Serena 2.1): a read-only
 * token's backend runs with a mode that excludes them. */
static const char read_only_mode[] =
    "description: serena-remote read-only token (no tool that edits files or memories)\n"
    "prompt: null\n"
    "excluded_tools:\n"
    "  - create_text_file\n  - delete_lines\n  - delete_memory\n  - edit_memory\n"
    "  - execute_shell_command\n  - insert_after_symbol\n  - insert_at_line\n"
    "  - insert_before_symbol\n  - jet_brains_inline_symbol\n  - jet_brains_move\n"
    "  - jet_brains_rename\n  - jet_brains_safe_delete\n  - onboarding\n  - rename_memory\n"
    "  - rename_symbol\n  - replace_content\n  - replace_in_files\n  - replace_lines\n"
    "  - replace_symbol_body\n  - safe_delete_symbol\n  - serena_repl\n  - write_memory\n";

/* {mode_args}: the read-only mode (written into home/ each start) for a read-only route. */
static const char *mode_file(const struct sr_instance *inst, char *path, size_t cap)
{
    const struct sr_inst_token *tc = sr_inst_token(inst);
    if (!inst->m->o.read_only && !(tc && tc->read_only))
        return NULL;
    snprintf(path, cap, "%s/home/serena-remote-read-only.yml", inst->dir);
    FILE *f = fopen(path, "we");
    if (!f || fputs(read_only_mode, f) < 0) {
        if (f)
            fclose(f);
        return path; /* Serena then refuses to start, which is safer than an editing backend */
    }
    fclose(f);
    return path;
}

/* Expand {port} {home} {workdir} {route} {context} {project_args} {mode_args} in the template,
 * each value quoted. */
int sr_inst_expand_cmd(struct sr_instance *inst, char *out, size_t cap)
{
    const char *t = inst->m->o.backend_cmd;
    char pbuf[PATH_MAX + 80], mbuf[PATH_MAX + 64];
    const char *project = start_project(inst, pbuf, sizeof(pbuf));
    const char *mode = NULL;
    const struct sr_inst_token *tc = sr_inst_token(inst);
    const char *context = tc && tc->context[0]         ? tc->context
                          : inst->m->o.default_context ? inst->m->o.default_context
                                                       : "agent";
    char port[8], home[PATH_MAX + 8], work[PATH_MAX + 8];
    snprintf(port, sizeof(port), "%u", (unsigned)inst->port);
    snprintf(home, sizeof(home), "%s/home", inst->dir);
    snprintf(work, sizeof(work), "%s/work", inst->dir);
    size_t n = 0;
    out[0] = '\0';
    while (*t && n + 1 < cap) {
        const char *val = NULL;
        size_t skip = 0;
        if (strncmp(t, "{port}", 6) == 0)
            val = port, skip = 6;
        else if (strncmp(t, "{home}", 6) == 0)
            val = home, skip = 6;
        else if (strncmp(t, "{workdir}", 9) == 0)
            val = work, skip = 9;
        else if (strncmp(t, "{route}", 7) == 0)
            val = inst->route, skip = 7;
        else if (strncmp(t, "{context}", 9) == 0)
            val = context, skip = 9;
        else if (strncmp(t, "{mode_args}", 11) == 0) {
            t += 11;
            if ((mode = mode_file(inst, mbuf, sizeof(mbuf))) != NULL) {
                static const char flag[] = "--add-mode ";
                for (const char *q = flag; *q && n + 1 < cap; q++)
                    out[n++] = *q;
                out[n] = '\0';
                shell_quote(out, cap, &n, mode);
            }
            continue;
        } else if (strncmp(t, "{project_args}", 14) == 0) {
            t += 14;
            if (project) {
                static const char flag[] = "--project ";
                for (const char *q = flag; *q && n + 1 < cap; q++)
                    out[n++] = *q;
                out[n] = '\0';
                shell_quote(out, cap, &n, project);
            }
            continue;
        }
        if (val) {
            shell_quote(out, cap, &n, val);
            t += skip;
        } else {
            out[n++] = *t++;
            out[n] = '\0';
        }
    }
    return *t ? -1 : 0;
}

/*
 * --sandbox bwrap: the backend runs in a mount namespace where the whole
 * state directory (every route, the token file) is replaced by an empty
 * tmpfs, and only this route's home/, work/ and tmp/ are bound back,
 * writable. The rest of the file system is read-only; the network is shared
 * (the backend listens on 127.0.0.1 for the gateway). /tmp is not replaced:
 * the backend's TMPDIR is its own tmp/, and a tmpfs over /tmp would hide
 * installations that live there (a checkout under /tmp, its venv).
 */
int sr_inst_sandbox_wrap(const struct sr_instance *inst, char *cmd, size_t cap)
{
    const char *sd = inst->m->state_dir;
    char sub[4][PATH_MAX + 8];
    int nsub = 3;
    snprintf(sub[0], sizeof(sub[0]), "%s/home", inst->dir);
    snprintf(sub[1], sizeof(sub[1]), "%s/work", inst->dir);
    snprintf(sub[2], sizeof(sub[2]), "%s/tmp", inst->dir);
    /* The route's project given as a path on this machine (its token's, else SERENA_PROJECT) is
     * writable in its sandbox (Serena keeps .serena/ in it); any other path stays read-only. */
    const char *spec = sr_inst_spec(inst);
    struct stat pst;
    if (spec && spec[0] == '/' && strncmp(spec, sd, strlen(sd)) != 0 && stat(spec, &pst) == 0 &&
        S_ISDIR(pst.st_mode) && strlen(spec) < sizeof(sub[3])) {
        snprintf(sub[3], sizeof(sub[3]), "%s", spec);
        nsub = 4;
    }
    char *out = malloc(cap);
    if (!out)
        return -1;
    size_t n = (size_t)snprintf(out, cap,
                                "bwrap --die-with-parent --ro-bind / / --dev /dev --proc /proc "
                                "--tmpfs /dev/shm --tmpfs ");
    shell_quote(out, cap, &n, sd);
    for (int i = 0; i < nsub; i++) {
        if (n + 9 >= cap)
            goto toolong;
        memcpy(out + n, " --bind ", 8);
        n += 8;
        shell_quote(out, cap, &n, sub[i]);
        out[n++] = ' ';
        shell_quote(out, cap, &n, sub[i]);
    }
    if (n + 16 >= cap)
        goto toolong;
    memcpy(out + n, " --chdir ", 9);
    n += 9;
    shell_quote(out, cap, &n, sub[1]);
    const char *tail = " -- /bin/sh -c ";
    if (n + strlen(tail) + 1 >= cap)
        goto toolong;
    memcpy(out + n, tail, strlen(tail));
    n += strlen(tail);
    char quoted_src[8192];
    snprintf(quoted_src, sizeof(quoted_src), "exec %s", cmd);
    shell_quote(out, cap, &n, quoted_src);
    if (n + 2 >= cap)
        goto toolong;
    memcpy(cmd, out, n + 1);
    free(out);
    return 0;
toolong:
    free(out);
    return -1;
}

/* The gateway's secrets never reach a backend (server-everything's get-env tool would print them).
 */
static bool secret_env(const char *kv)
{
    static const char *const prefixes[] = {"API_TOKEN",
                                           "AWS_",
                                           "R2_",
                                           "S3_",
                                           "SERENA_REMOTE_",
                                           "SERENA_R2_",
                                           "SERENA_HOME=",
                                           "HOME=",
                                           "TMPDIR=",
                                           "SERENA_INTERNAL_SECRET",
                                           "SERENA_SNAPSHOT_KEY",
                                           "SERENA_SESSION_KEY",
                                           "ADMIN_TOKEN=",
                                           "GIT_CEILING_DIRECTORIES="};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(kv, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/*
 * GIT_CEILING_DIRECTORIES for the backend: git run by the backend must not
 * find a repository the backend happens to sit inside. Serena computes its
 * version with `git rev-parse HEAD` in its own installation directory, so a
 * venv inside this project's checkout (.venv-serena, as `make run` installs
 * it) made Serena report the gateway's commit as its own version; and a
 * state directory inside a checkout let git commands in a route's work/
 * (a project that is not a repository of its own) see the gateway's files.
 * The ceilings: the route's own directory, and the venv of the backend's
 * program (bin/<program> next to a pyvenv.cfg). An inherited value is kept.
 */
static char *git_ceilings(const struct sr_instance *inst)
{
    char prog[256], path[PATH_MAX], real[PATH_MAX], venv[PATH_MAX + 16];
    const char *cmd = inst->m->o.backend_cmd;
    const char *inherited = getenv("GIT_CEILING_DIRECTORIES");
    venv[0] = '\0';
    if (sr_program_of(cmd, strlen(cmd), prog, sizeof(prog)) == 0 &&
        sr_program_find(prog, NULL, path, sizeof(path)) == 0 && realpath(path, real)) {
        /* .../venv/bin/python -> .../venv: pyvenv.cfg marks a venv's root. */
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(real, '/');
            if (slash)
                *slash = '\0';
        }
        struct stat st;
        snprintf(venv, sizeof(venv), "%s/pyvenv.cfg", real);
        if (real[0] && stat(venv, &st) == 0)
            snprintf(venv, sizeof(venv), ":%s", real);
        else
            venv[0] = '\0';
    }
    size_t cap = strlen(inst->dir) + strlen(venv) + (inherited ? strlen(inherited) : 0) + 32;
    char *v = malloc(cap);
    if (v)
        snprintf(v, cap, "GIT_CEILING_DIRECTORIES=%s%s%s%s", inst->dir, venv,
                 inherited && *inherited ? ":" : "", inherited ? inherited : "");
    return v;
}

char **sr_inst_build_env(const struct sr_instance *inst)
{
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    char **env = calloc(n + 8, sizeof(char *));
    if (!env)
        return NULL;
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (!secret_env(*e))
            env[k++] = strdup(*e);
    char buf[PATH_MAX + 32];
    snprintf(buf, sizeof(buf), "SERENA_HOME=%s/home", inst->dir);
    env[k++] = strdup(buf);
    snprintf(buf, sizeof(buf), "HOME=%s/home", inst->dir);
    env[k++] = strdup(buf);
    snprintf(buf, sizeof(buf), "TMPDIR=%s/tmp", inst->dir);
    env[k++] = strdup(buf);
    env[k++] = strdup("SERENA_USAGE_REPORTING=false");
    env[k++] = git_ceilings(inst);
    env[k] = NULL;
    return env;
}

void sr_inst_free_env(char **env)
{
    if (!env)
        return;
    for (char **e = env; *e; e++)
        free(*e);
    free(env);
}

int sr_instance_set_project(struct sr_instance *inst, const char *project, size_t n)
{
    if (!project_valid(project, n))
        return -1;
    load_project(inst);
    if (strlen(inst->project) == n && memcmp(inst->project, project, n) == 0)
        return 0;
    memcpy(inst->project, project, n);
    inst->project[n] = '\0';
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/home/%s", inst->dir, PROJECT_FILE);
    int rc = write_project(path, inst->project);
    if (rc < 0)
        sr_log_event("warn", "route=%s cannot remember the project in %s: %s", inst->route, path,
                     strerror(errno));
    char tpath[PATH_MAX + 64];
    snprintf(tpath, sizeof(tpath), "%s/projects", inst->m->state_dir);
    mkdir(tpath, 0700);
    token_project_path(inst, tpath, sizeof(tpath));
    if (write_project(tpath, inst->project) < 0)
        sr_log_event("warn", "route=%s cannot remember the project in %s: %s", inst->route, tpath,
                     strerror(errno));
    if (rc == 0)
        sr_log_event("info", "route=%s remembers project %s for its next starts", inst->route,
                     inst->project);
    return rc;
}

const char *sr_instance_project(const struct sr_instance *inst)
{
    return inst->project[0] ? inst->project : NULL;
}
