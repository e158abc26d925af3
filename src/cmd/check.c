/*
 * `serena-remote check`: load the configuration exactly as `serve` would,
 * print it with secrets masked, and fail with the first problem found,
 * including what only shows at run time otherwise: a backend command whose
 * program is not on PATH, an admin listener serve would refuse.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cmd/cmd.h"
#include "cmd/config.h"
#include "core/jwt.h"
#include "core/mem.h"
#include "core/project.h"
#include "core/route.h"
#include "core/sha256.h"
#include "http/admin.h"
#include "http/util.h"
#include "instance/program.h"
#include "instance/spawn.h"
#include <limits.h>
#include <string.h>

/* A backend command whose program is not on PATH would fail at every start (exit 127). */
static int check_backend(const struct sr_config *c)
{
    char *cmd = sr_config_backend_cmd(c);
    char prog[256], where[PATH_MAX];
    int rc = 0;
    if (!cmd || sr_program_of(cmd, strlen(cmd), prog, sizeof(prog)) < 0) {
        fprintf(stderr,
                "serena-remote check: the backend command names no program to run: %s (check "
                "SERENA_BACKEND_CMD)\n",
                cmd ? cmd : "(out of memory)");
        rc = -1;
    } else if (sr_program_find(prog, NULL, where, sizeof(where)) < 0) {
        fprintf(stderr,
                "serena-remote check: the backend command's program `%s` is not on PATH, so no "
                "instance could start (each would exit 127): %s\n",
                prog,
                strcmp(prog, "serena") == 0
                    ? "run scripts/serena.sh and put .venv-serena/bin on PATH (make run does "
                      "both), or set SERENA_BACKEND_CMD"
                    : "install it, or give its full path in SERENA_BACKEND_CMD");
        rc = -1;
    } else {
        printf("backend: %s (%s)\n", prog, where);
    }
    free(cmd);
    return rc;
}

/*
 * Each route's project, context and mode, as its backend will start (unless the route has since
 * activated another project itself): a token's own settings, else SERENA_PROJECT and friends.
 */
/* What signs clients in besides static tokens (docs/oauth.md), and claim-map entries that name
 * no configured token (warned of, as serve does at start: such JWTs would be refused). */
static void print_oauth(const struct sr_config *c, const struct sr_tokens *t)
{
    const char *pub = sr_config_get(c, SR_SET_PUBLIC_URL);
    const char *issuer = sr_config_get(c, SR_SET_OAUTH_ISSUER);
    if (c->oauth_enabled)
        printf("oauth: built-in authorization server, issuer %s, resource %s/mcp; client metadata "
               "documents %s\n",
               pub, pub, sr_config_get(c, SR_SET_OAUTH_CIMD));
    if (!issuer || !*issuer)
        return;
    const char *m = sr_config_get(c, SR_SET_OAUTH_CLAIM_MAP);
    static struct sr_claim_map map;
    static struct sr_json_tok toks[2 * SR_CLAIM_MAP_MAX + 2];
    const char *why = NULL;
    map.n = 0;
    if (m && *m)
        sr_claim_map_parse(m, strlen(m), toks, sizeof(toks) / sizeof(toks[0]), &map, &why);
    printf("oauth: JWT access tokens from %s for %s/mcp; claim %s %s\n", issuer, pub,
           sr_config_get(c, SR_SET_OAUTH_CLAIM),
           map.n ? "through the claim map" : "names the token itself");
    for (uint32_t i = 0; i < map.n; i++) {
        if (sr_tokens_find(t, map.e[i].name) < 0)
            printf("warning: the claim map names token %s, which is not configured: JWTs mapped "
                   "to it are refused\n",
                   map.e[i].name);
    }
}

static void print_projects(const struct sr_config *c, const struct sr_tokens *t)
{
    const char *dflt = sr_config_get(c, SR_SET_SERENA_PROJECT);
    const char *sd = sr_config_get(c, SR_SET_STATE_DIR);
    for (uint32_t i = 0; i < t->count; i++) {
        const struct sr_token_entry *e = &t->e[i];
        size_t n = 0;
        const char *p = sr_tokens_project(t, i, &n);
        char spec[SR_PROJECT_MAX + 1], route[SR_ROUTE_MAX + 1], hex[65];
        uint8_t d[SR_SHA256_LEN];
        snprintf(spec, sizeof(spec), "%.*s", (int)n, p ? p : "");
        if (!p && dflt && *dflt)
            snprintf(spec, sizeof(spec), "%s", dflt);
        sr_route_name(sr_config_get(c, SR_SET_GENERATION), e->name, route, sizeof(route));
        sr_sha256(route, strlen(route), d);
        sr_hex_encode(d, sizeof(d), hex);
        hex[16] = '\0';
        printf("  route %s: ", route);
        struct sr_project_spec ps;
        const char *why;
        if (!spec[0])
            printf("no project (the client activates one)");
        else if (sr_project_spec_parse(spec, strlen(spec), &ps, &why) == 0 &&
                 ps.kind == SR_PROJECT_GIT)
            printf("project %s, cloned into %s/routes/%s/work/%s", spec, sd, hex, ps.name);
        else
            printf("project %s", spec);
        printf("%s; context %s%s\n", p ? "" : (spec[0] ? " (SERENA_PROJECT)" : ""),
               e->context[0] ? e->context : sr_config_get(c, SR_SET_SERENA_CONTEXT),
               e->read_only || c->read_only ? "; read-only (no editing tools)" : "");
    }
}

/* The admin listener's address and token, as serve checks them before it starts. */
static int check_admin(const struct sr_config *c)
{
    const char *listen = sr_config_get(c, SR_SET_ADMIN_LISTEN);
    const char *token = sr_config_get(c, SR_SET_ADMIN_TOKEN);
    struct sr_admin a;
    char err[512];
    memset(&a, 0, sizeof(a));
    if (!listen || !*listen || strcmp(listen, "off") == 0) {
        printf("admin listener: off (no metrics are collected)\n");
        return 0;
    }
    if (token && *token && sr_admin_set_token(&a, token, err, sizeof(err)) < 0) {
        fprintf(stderr, "serena-remote check: %s\n", err);
        return -1;
    }
    if (!sr_hostport_is_loopback(listen) && !a.has_token) {
        fprintf(stderr,
                "serena-remote check: --admin-listen %s is not a loopback address and "
                "ADMIN_TOKEN is not set: serve would refuse to start (set ADMIN_TOKEN, or listen "
                "on 127.0.0.1)\n",
                listen);
        return -1;
    }
    printf("admin listener: http://%s (/metrics, /instances, /)%s\n", listen,
           a.has_token ? ", ADMIN_TOKEN required" : "");
    return 0;
}

int sr_cmd_check(int argc, char **argv)
{
    struct sr_config c;
    struct sr_policy p;
    bool help;
    char err[512];
    if (sr_config_load(&c, argc, argv, &help, err, sizeof(err)) < 0) {
        fprintf(stderr, "serena-remote check: %s\n", err);
        sr_config_free(&c);
        return 2;
    }
    if (help) {
        printf("Usage: serena-remote check [serve options]\n\n"
               "Prints the effective configuration (secrets masked) and exits non-zero with\n"
               "a message on the first invalid setting.\n\n");
        sr_config_print_help();
        sr_config_free(&c);
        return 0;
    }
    sr_config_print(&c);
    struct sr_tokens *t = sr_config_tokens(&c, err, sizeof(err));
    int rc = 0;
    if (!t) {
        fprintf(stderr, "serena-remote check: %s\n", err);
        rc = 2;
    } else {
        printf("\ntokens: %u (%s):", t->count, sr_tokens_strategy(t));
        for (uint32_t i = 0; i < t->count; i++)
            printf(" %s", t->e[i].name);
        printf("\n");
        print_projects(&c, t);
        print_oauth(&c, t);
        sr_policy_init(&p, t);
        if (sr_config_policy(&c, &p, err, sizeof(err)) < 0) {
            fprintf(stderr, "serena-remote check: %s\n", err);
            rc = 2;
        }
    }
    if (rc == 0 && strcmp(sr_config_get(&c, SR_SET_SANDBOX), "bwrap") == 0) {
        if (sr_sandbox_probe(err, sizeof(err)) < 0) {
            fprintf(stderr, "serena-remote check: %s\n", err);
            rc = 2;
        } else {
            printf("sandbox: bwrap works here\n");
        }
    }
    if (rc == 0) {
        const char *sk = sr_config_get(&c, SR_SET_SNAPSHOT_KEY);
        if (sk && *sk)
            printf("snapshots: encrypted at rest (AES-256-GCM, SERENA_SNAPSHOT_KEY)\n");
        else
            printf("snapshots: NOT encrypted at rest: anyone who can read the store can read "
                   "them; set SERENA_SNAPSHOT_KEY (`serena-remote token --snapshot-key`)\n");
    }
    if (rc == 0 && !sr_config_get(&c, SR_SET_UPSTREAM) && check_backend(&c) < 0)
        rc = 2;
    if (rc == 0 && check_admin(&c) < 0)
        rc = 2;
    if (rc == 0)
        printf("configuration OK\n");
    free(t);
    sr_config_free(&c);
    return rc;
}
