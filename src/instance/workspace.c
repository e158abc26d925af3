/*
 * A route's project: which one (the token's, else SERENA_PROJECT), where it
 * is on disk, and its clone before the backend's first start.
 *
 * Order of precedence for what a backend starts with (command.c): the
 * project the route last activated itself (remembered) wins until the next
 * explicit activation; then its token's project; then SERENA_PROJECT. A
 * project spec that is a git URL lives in the route's workspace,
 * <route>/work/<name>, where it is cloned the first time it is missing (a
 * restored workspace already has it, with every change the user made). The
 * clone runs in a worker process (clone.h); a failure answers the waiting
 * requests 503 with git's reason, and the next request tries again.
 */
#include "instance/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/project.h"
#include "core/tokens.h"
#include "http/log.h"

static void free_cfg(struct sr_instances *m)
{
    for (uint32_t i = 0; i < m->ntok; i++)
        free(m->tok[i].project);
    free(m->tok);
    m->tok = NULL;
    m->ntok = 0;
}

void sr_instances_set_tokens(struct sr_instances *m, const struct sr_tokens *t)
{
    free_cfg(m);
    if (!t || t->count == 0)
        return;
    m->tok = calloc(t->count, sizeof(*m->tok));
    if (!m->tok)
        return;
    for (uint32_t i = 0; i < t->count; i++) {
        struct sr_inst_token *c = &m->tok[m->ntok];
        const struct sr_token_entry *e = &t->e[i];
        size_t n = 0;
        const char *p = sr_tokens_project(t, i, &n);
        snprintf(c->name, sizeof(c->name), "%s", e->name);
        snprintf(c->context, sizeof(c->context), "%s", e->context);
        c->read_only = e->read_only;
        c->project = p ? strndup(p, n) : NULL;
        m->ntok++;
    }
}

void sr_inst_tokens_free(struct sr_instances *m)
{
    free_cfg(m);
}

const struct sr_inst_token *sr_inst_token(const struct sr_instance *inst)
{
    const struct sr_instances *m = inst->m;
    for (uint32_t i = 0; i < m->ntok; i++)
        if (strcmp(m->tok[i].name, inst->token_name) == 0)
            return &m->tok[i];
    return NULL;
}

const char *sr_inst_spec(const struct sr_instance *inst)
{
    const struct sr_inst_token *tc = sr_inst_token(inst);
    if (tc && tc->project)
        return tc->project;
    const char *d = inst->m->o.default_project;
    return d && *d ? d : NULL;
}

int sr_inst_spec_path(const struct sr_instance *inst, const char *spec, char *out, size_t cap)
{
    struct sr_project_spec ps;
    const char *why;
    if (!spec)
        return -1;
    if (sr_project_spec_parse(spec, strlen(spec), &ps, &why) != 0) {
        /* SERENA_PROJECT may also name a project Serena has registered: passed as it is. */
        snprintf(out, cap, "%s", spec);
        return 0;
    }
    if (ps.kind == SR_PROJECT_PATH)
        snprintf(out, cap, "%s", spec);
    else
        snprintf(out, cap, "%s/work/%s", inst->dir, ps.name);
    return 0;
}

static void clone_done(void *arg, int status, const struct sr_snapshot_result *r, const char *err)
{
    struct sr_instance *inst = arg;
    struct sr_instances *m = inst->m;
    inst->job = NULL;
    if (status < 0) {
        snprintf(inst->last_error, sizeof(inst->last_error), "project not cloned: %.400s", err);
        sr_log_event("error", "route=%s %s", inst->route, inst->last_error);
        inst->state = ST_ASLEEP;
        char msg[640];
        snprintf(msg, sizeof(msg),
                 "The project of this token could not be cloned into its workspace (%.450s). "
                 "The next request tries again.",
                 err);
        sr_inst_release_waiters(inst, 503, msg);
        if (m->shutting_down)
            sr_inst_check_shutdown(m);
        return;
    }
    sr_log_event("info", "route=%s project cloned at %.40s", inst->route, r->key);
    if (m->shutting_down) {
        inst->state = ST_ASLEEP;
        sr_inst_release_waiters(inst, 503, "The gateway is shutting down; retry in a moment.");
        sr_inst_check_shutdown(m);
        return;
    }
    sr_inst_spawn(inst);
}

void sr_inst_prepare(struct sr_instance *inst)
{
    struct sr_instances *m = inst->m;
    const char *spec = sr_inst_spec(inst);
    struct sr_project_spec ps;
    const char *why;
    char dest[PATH_MAX + 80], work[PATH_MAX + 8];
    struct stat st;
    if (!spec || sr_project_spec_parse(spec, strlen(spec), &ps, &why) != 0 ||
        ps.kind != SR_PROJECT_GIT) {
        sr_inst_spawn(inst);
        return;
    }
    snprintf(dest, sizeof(dest), "%s/work/%s", inst->dir, ps.name);
    if (lstat(dest, &st) == 0) {
        sr_inst_spawn(inst); /* cloned before, or restored with the workspace */
        return;
    }
    snprintf(work, sizeof(work), "%s/work", inst->dir);
    if (sr_inst_mkdir_p(work, 0700) < 0) {
        clone_done(inst, SR_STORE_E_IO, NULL, strerror(errno));
        return;
    }
    struct sr_snapshot_opts o = {.spec = spec};
    inst->state = ST_STARTING;
    inst->started_at = time(NULL);
    sr_log_event("info", "route=%s cloning its project into %s", inst->route, dest);
    if (sr_snapshot_job_start(m->base, SR_SNAP_CLONE, NULL, &o, dest, clone_done, inst,
                              &inst->job) < 0) {
        inst->job = NULL;
        clone_done(inst, SR_STORE_E_IO, NULL, "cannot start a worker process for the clone");
    }
}
