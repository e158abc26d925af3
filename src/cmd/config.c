/*
 * Configuration loading (see config.h): one table of settings, four layers
 * (default, environment, --env-file, flag), validation with messages that
 * name the setting and say what is expected.
 *
 * Secrets (tokens, the S3 secret) are accepted from the environment or the
 * env file only, never as flags, because flags are visible to every user in
 * the process list.
 */
#include "cmd/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/duration.h"
#include "core/keylist.h"
#include "core/project.h"
#include "core/limits.h"
#include "http/util.h"
#include "core/jwt.h"
#include "core/oauth.h"
#include "core/route.h"
#include "core/runcfg.h"
#include "store/store.h"

#define ENV_FILE_MAX (256u * 1024u)

const struct sr_setting_def sr_settings[SR_SET_COUNT] = {
    [SR_SET_LISTEN] = {"--listen", "SERENA_REMOTE_LISTEN", "127.0.0.1:8787", false,
                       "address to listen on (host:port)"},
    [SR_SET_UPSTREAM] = {"--upstream", "SERENA_REMOTE_UPSTREAM", NULL, false,
                         "send every route to this MCP server (http://127.0.0.1:PORT/mcp)"},
    [SR_SET_TLS_CERT] = {"--tls-cert", "SERENA_REMOTE_TLS_CERT", NULL, false,
                         "PEM certificate chain: serve HTTPS"},
    [SR_SET_TLS_KEY] = {"--tls-key", "SERENA_REMOTE_TLS_KEY", NULL, false, "PEM private key"},
    [SR_SET_LOG_FORMAT] = {"--log-format", "SERENA_REMOTE_LOG_FORMAT", "text", false,
                           "text or json"},
    [SR_SET_MAX_BODY] = {"--max-body", "MAX_BODY_BYTES", "4194304", false,
                         "largest request body in bytes (413 above)"},
    [SR_SET_GENERATION] = {"--generation", "MCP_CONTAINER_ROUTE_GENERATION", "gen-1", false,
                           "route generation; a new one means fresh instances"},
    [SR_SET_ALLOWED_ORIGINS] = {"--allowed-origins", "ALLOWED_ORIGINS", "", false,
                                "browser origins allowed on /mcp (comma list, or *)"},
    [SR_SET_API_TOKEN] = {NULL, "API_TOKEN", NULL, true, "single token (the singleton route)"},
    [SR_SET_API_TOKENS_JSON] = {NULL, "API_TOKENS_JSON", NULL, true,
                                "{\"name\":\"token\"} or [\"token\",...]: one route per token"},
    [SR_SET_API_TOKENS_FILE] = {"--tokens-file", "API_TOKENS_FILE", NULL, false,
                                "file with the same JSON, re-read on SIGHUP"},
    [SR_SET_ENV_FILE] = {"--env-file", "SERENA_REMOTE_ENV_FILE", NULL, false,
                         "KEY=VALUE file over the environment, re-read on SIGHUP"},
    [SR_SET_DRAIN_TIMEOUT] = {"--drain-timeout", "SERENA_REMOTE_DRAIN_TIMEOUT", "10s", false,
                              "on SIGTERM, how long in-flight requests may finish"},
    [SR_SET_MAX_INSTANCES] = {"--max-instances", "MAX_INSTANCES", "8", false,
                              "most per-token instances running at once"},
    [SR_SET_SLEEP_AFTER] = {"--sleep-after", "SLEEP_AFTER", "15m", false,
                            "idle time before an instance sleeps (s, m, h)"},
    [SR_SET_STATE_DIR] = {"--state-dir", "SERENA_REMOTE_STATE_DIR", "./.serena-remote", false,
                          "per-route state directories"},
    [SR_SET_BACKEND_CMD] = {"--backend-cmd", "SERENA_BACKEND_CMD", NULL, false,
                            "backend command template ({port} {home} {workdir} {route}); "
                            "default: Serena"},
    [SR_SET_START_TIMEOUT] = {"--start-timeout", "SERENA_START_TIMEOUT", "120s", false,
                              "how long a backend may take to answer after its start"},
    [SR_SET_STOP_GRACE] = {"--stop-grace", "SERENA_STOP_GRACE", "10s", false,
                           "SIGTERM to SIGKILL delay when an instance stops"},
    [SR_SET_SERENA_CONTEXT] = {NULL, "SERENA_CONTEXT", "desktop-app", false,
                               "Serena --context for the default backend (desktop-app keeps "
                               "initial_instructions, which Serena tells clients to call)"},
    [SR_SET_SERENA_PROJECT] = {NULL, "SERENA_PROJECT", NULL, false,
                               "project of every route whose token names none: a path, a "
                               "registered name, or a git URL (https://, ssh://, file:///, "
                               "#ref) cloned into the route's work/"},
    [SR_SET_ALLOW_SHELL] = {NULL, "SERENA_ALLOW_SHELL", "0", false,
                            "1: leave Serena's execute_shell_command enabled"},
    [SR_SET_READ_ONLY] = {NULL, "SERENA_READ_ONLY", "0", false,
                          "1: every backend runs without Serena's editing tools (a token entry's "
                          "read_only does it for one token)"},
    [SR_SET_TOOLS_DIR] = {NULL, "SERENA_TOOLS_DIR", NULL, false,
                          "where scripts/serena.sh put pyright (default: .serena-tools next to "
                          "the build directory)"},
    [SR_SET_INTERNAL_SECRET] = {NULL, "SERENA_INTERNAL_SECRET", NULL, true,
                                "run: shared secret the Worker sends in X-Serena-Internal-Secret"},
    [SR_SET_SANDBOX] = {"--sandbox", "SERENA_SANDBOX", "none", false,
                        "none or bwrap: each instance sees only its own home/ and work/ "
                        "writable, no other route's files"},
    [SR_SET_STORE] = {"--store", "SERENA_REMOTE_STORE", NULL, false,
                      "snapshot store: file:/abs/dir or none (default: file:<state-dir>/snapshots;"
                      " SERENA_R2_STATE_ENABLED=1 selects S3/R2)"},
    [SR_SET_SNAPSHOT_EXCLUDE] = {NULL, "SERENA_SNAPSHOT_EXCLUDE",
                                 "home/language_servers,home/logs,home/.cache,node_modules,.venv,"
                                 "__pycache__",
                                 false,
                                 "left out of snapshots: a path from the route's directory "
                                 "(home/logs) or a name at any depth (node_modules), comma "
                                 "separated"},
    [SR_SET_SNAPSHOT_KEY] = {NULL, "SERENA_SNAPSHOT_KEY", NULL, true,
                             "base64 key(s) of 32 bytes encrypting every stored object, comma "
                             "separated, the first encrypts (`serena-remote token --snapshot-key`)"
                             "; unset: stored unencrypted"},
    [SR_SET_INSTANCE_ID] = {NULL, "SERENA_INSTANCE_ID", NULL, false,
                            "run: the snapshot partition (the Worker sets the Durable Object id)"},
    [SR_SET_R2_ENABLED] = {NULL, "SERENA_R2_STATE_ENABLED", "0", false,
                           "1: snapshot state to S3/R2"},
    [SR_SET_R2_PREFIX] = {NULL, "SERENA_R2_STATE_PREFIX",
                          "serena-mcp/default/serena-home-snapshots-v1", false,
                          "key prefix inside the bucket"},
    [SR_SET_R2_PARTITION] = {NULL, "SERENA_R2_STATE_PARTITION_MODE", "durable-object", false,
                             "durable-object, token or shared"},
    [SR_SET_R2_STRICT] = {NULL, "SERENA_R2_STATE_STRICT", "0", false,
                          "1: refuse to start an instance when restore fails"},
    [SR_SET_R2_INTERVAL] = {NULL, "SERENA_R2_SNAPSHOT_INTERVAL_SECONDS", "180", false,
                            "seconds between snapshots (0: off)"},
    [SR_SET_R2_RETENTION] = {NULL, "SERENA_R2_SNAPSHOT_RETENTION_COUNT", "5", false,
                             "snapshots kept"},
    [SR_SET_R2_BUCKET] = {NULL, "R2_BUCKET_NAME", "serena-mcp-state-prod", false, "bucket"},
    [SR_SET_R2_ACCOUNT] = {NULL, "R2_ACCOUNT_ID", "", false, "Cloudflare account id"},
    [SR_SET_S3_ENDPOINT] = {NULL, "S3_ENDPOINT", NULL, false, "any S3-compatible endpoint"},
    [SR_SET_S3_REGION] = {NULL, "S3_REGION", NULL, false, "its region (R2: auto)"},
    [SR_SET_AWS_KEY_ID] = {NULL, "AWS_ACCESS_KEY_ID", NULL, true, "S3/R2 access key id"},
    [SR_SET_AWS_SECRET] = {NULL, "AWS_SECRET_ACCESS_KEY", NULL, true, "S3/R2 secret key"},
    [SR_SET_SESSION_KEY] = {NULL, "SERENA_SESSION_KEY", NULL, true,
                            "base64 key(s) sealing client session ids, comma separated, the first "
                            "seals (default: <state-dir>/session.key, made on first start)"},
    [SR_SET_SESSION_MAX_AGE] = {"--session-max-age", "SERENA_SESSION_MAX_AGE", "720h", false,
                                "how long a client session id stays valid"},
    [SR_SET_ADMIN_LISTEN] = {"--admin-listen", "SERENA_REMOTE_ADMIN_LISTEN", "127.0.0.1:8788",
                             false,
                             "admin listener: /metrics, /instances, status page (host:port, or "
                             "off: no admin listener and no metrics collected; run: off)"},
    [SR_SET_ADMIN_TOKEN] = {NULL, "ADMIN_TOKEN", NULL, true,
                            "Bearer token the admin listener requires (plaintext or sha256:<hex>; "
                            "needed when it listens beyond loopback)"},
    [SR_SET_OAUTH_ENABLED] = {"--oauth-enabled", "OAUTH_ENABLED", "0", false,
                              "1: built-in OAuth authorization server, so clients sign in on a "
                              "consent page with a token instead of sending it (docs/oauth.md)"},
    [SR_SET_PUBLIC_URL] = {"--public-url", "SERENA_REMOTE_PUBLIC_URL", "", false,
                           "the URL clients reach the gateway at (https://host, no path): the "
                           "OAuth issuer; the resource is <public-url>/mcp"},
    [SR_SET_OAUTH_CIMD] = {"--oauth-cimd", "SERENA_REMOTE_OAUTH_CIMD", "on", false,
                           "OAuth clients that identify themselves by a metadata document URL: "
                           "on (fetched from public addresses only), off, or loopback (also from "
                           "loopback hosts: local development)"},
    [SR_SET_BACKEND_OUTPUT] = {"--backend-output", "SERENA_BACKEND_OUTPUT", "auto", false,
                               "file: backend output only in <route>/backend.log; log: each line "
                               "also in this log (route-prefixed, 600 bytes a line, 256 KiB a "
                               "start) and errors quote its last line; auto: log for run, file "
                               "for serve"},
    [SR_SET_OAUTH_ISSUER] = {"--oauth-issuer", "SERENA_REMOTE_OAUTH_ISSUER", "", false,
                             "an external identity provider's issuer URL: JWT access tokens it "
                             "signs (RS256, ES256) for <public-url>/mcp are accepted "
                             "(docs/oauth.md)"},
    [SR_SET_OAUTH_JWKS_URL] = {"--oauth-jwks-url", "SERENA_REMOTE_OAUTH_JWKS_URL", "", false,
                               "the issuer's JWKS (default: the jwks_uri of its "
                               "/.well-known/openid-configuration or oauth-authorization-server)"},
    [SR_SET_OAUTH_CLAIM] = {"--oauth-claim", "SERENA_REMOTE_OAUTH_CLAIM", "sub", false,
                            "the JWT claim naming the token whose route a JWT takes (a string, "
                            "or an array such as groups: it must name exactly one token)"},
    [SR_SET_OAUTH_CLAIM_MAP] = {"--oauth-claim-map", "SERENA_REMOTE_OAUTH_CLAIM_MAP", "", false,
                                "JSON {\"claim value\":\"token name\",...}; unset: the claim value "
                                "itself is the token name"},
    [SR_SET_OAUTH_CLOCK_SKEW] = {"--oauth-clock-skew", "SERENA_REMOTE_OAUTH_CLOCK_SKEW", "60s",
                                 false,
                                 "clock skew tolerated on a JWT's exp, nbf and iat (at "
                                 "most 5m)"},
};

static void set_value(struct sr_config *c, enum sr_setting s, const char *v, enum sr_source src)
{
    free(c->value[s]);
    c->value[s] = v ? strdup(v) : NULL;
    c->source[s] = src;
}

const char *sr_config_get(const struct sr_config *c, enum sr_setting s)
{
    return c->value[s];
}

/* KEY=VALUE lines; '#' comments; optional single or double quotes around VALUE. */
static int apply_env_file(struct sr_config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "cannot read --env-file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[8192];
    unsigned lineno = 0;
    size_t total = 0;
    int rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t n = strlen(line);
        total += n;
        if (total > ENV_FILE_MAX) {
            snprintf(err, errlen, "--env-file %s is larger than %u bytes", path, ENV_FILE_MAX);
            rc = -1;
            break;
        }
        if (n && line[n - 1] != '\n' && !feof(f)) {
            snprintf(err, errlen, "--env-file %s line %u is longer than %zu bytes", path, lineno,
                     sizeof(line) - 1);
            rc = -1;
            break;
        }
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (strncmp(p, "export ", 7) == 0)
            p += 7;
        char *eq = strchr(p, '=');
        if (!eq) {
            snprintf(err, errlen, "--env-file %s line %u: expected KEY=VALUE", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *v = eq + 1;
        size_t vn = strlen(v);
        if (vn >= 2 && ((v[0] == '"' && v[vn - 1] == '"') || (v[0] == '\'' && v[vn - 1] == '\''))) {
            v[vn - 1] = '\0';
            v++;
        }
        for (int s = 0; s < SR_SET_COUNT; s++)
            if (strcmp(sr_settings[s].env, p) == 0)
                set_value(c, (enum sr_setting)s, v, SR_SRC_ENV_FILE);
        /* Unknown keys are ignored: the file may be shared with other tools. */
    }
    fclose(f);
    return rc;
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_flag01(const char *s, bool *out)
{
    if (!s || strcmp(s, "0") == 0 || strcmp(s, "false") == 0 || strcmp(s, "") == 0) {
        *out = false;
        return 0;
    }
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0) {
        *out = true;
        return 0;
    }
    return -1;
}

/* An external identity provider (docs/oauth.md): its settings make sense together. */
static int validate_idp(struct sr_config *c, char *err, size_t errlen)
{
    static struct sr_json_tok toks[2 * SR_CLAIM_MAP_MAX + 2];
    static struct sr_claim_map map;
    const char *iss = c->value[SR_SET_OAUTH_ISSUER], *why = "";
    const char *jwks = c->value[SR_SET_OAUTH_JWKS_URL], *claim = c->value[SR_SET_OAUTH_CLAIM];
    const char *m = c->value[SR_SET_OAUTH_CLAIM_MAP], *v = c->value[SR_SET_OAUTH_CLOCK_SKEW];
    if (sr_duration_parse(v, strlen(v), &c->oauth_clock_skew) < 0 ||
        c->oauth_clock_skew > SR_IDP_SKEW_MAX) {
        snprintf(err, errlen,
                 "--oauth-clock-skew / SERENA_REMOTE_OAUTH_CLOCK_SKEW=%s is invalid: "
                 "expected a duration from 0s to 5m",
                 v);
        return -1;
    }
    if (!iss || !*iss)
        return 0;
    if (sr_idp_issuer_check(iss, strlen(iss), &why) < 0) {
        snprintf(err, errlen, "--oauth-issuer / SERENA_REMOTE_OAUTH_ISSUER=%s is invalid: %s", iss,
                 why);
        return -1;
    }
    if (jwks && *jwks && sr_idp_issuer_check(jwks, strlen(jwks), &why) < 0) {
        snprintf(err, errlen, "--oauth-jwks-url / SERENA_REMOTE_OAUTH_JWKS_URL=%s is invalid: %s",
                 jwks, why);
        return -1;
    }
    if (!claim || !*claim || strlen(claim) > SR_JWT_CLAIM_MAX) {
        snprintf(err, errlen,
                 "--oauth-claim / SERENA_REMOTE_OAUTH_CLAIM is invalid: expected a "
                 "claim name such as sub, email or groups");
        return -1;
    }
    if (m && *m &&
        sr_claim_map_parse(m, strlen(m), toks, sizeof(toks) / sizeof(toks[0]), &map, &why) < 0) {
        snprintf(err, errlen, "--oauth-claim-map / SERENA_REMOTE_OAUTH_CLAIM_MAP is invalid: %s",
                 why);
        return -1;
    }
    v = c->value[SR_SET_PUBLIC_URL];
    if (!v || !*v) {
        snprintf(err, errlen,
                 "SERENA_REMOTE_OAUTH_ISSUER needs SERENA_REMOTE_PUBLIC_URL (--public-url): JWT "
                 "access tokens must name <public-url>/mcp in aud");
        return -1;
    }
    return 0;
}

static int validate(struct sr_config *c, char *err, size_t errlen)
{
    const char *v;
    /* The rules `run` and the Worker share (core/runcfg.c) come first, so both refuse a value
     * with the same message; the checks below parse what they need. */
    for (int s = 0; s < SR_SET_COUNT; s++) {
        struct sr_core_err ce;
        v = c->value[s];
        if (v &&
            sr_rc_check(sr_settings[s].env, strlen(sr_settings[s].env), v, strlen(v), &ce) < 0) {
            snprintf(err, errlen, "%s%s%s", sr_settings[s].flag ? sr_settings[s].flag : "",
                     sr_settings[s].flag ? " / " : "", ce.msg);
            return -1;
        }
    }
#define BAD(setting, expect)                                                                       \
    do {                                                                                           \
        snprintf(err, errlen, "%s%s%s=%s is invalid: expected %s",                                 \
                 sr_settings[setting].flag ? sr_settings[setting].flag : "",                       \
                 sr_settings[setting].flag ? " / " : "", sr_settings[setting].env,                 \
                 sr_settings[setting].secret ? "(hidden)" : c->value[setting], expect);            \
        return -1;                                                                                 \
    } while (0)
    if (parse_u32(c->value[SR_SET_MAX_BODY], 1024u * 1024u * 1024u, &c->max_body) < 0 ||
        c->max_body == 0)
        BAD(SR_SET_MAX_BODY, "a number of bytes between 1 and 1073741824");
    v = c->value[SR_SET_DRAIN_TIMEOUT];
    if (sr_duration_parse(v, strlen(v), &c->drain_timeout) < 0)
        BAD(SR_SET_DRAIN_TIMEOUT, "a duration like 10s, 2m or 1h");
    v = c->value[SR_SET_SLEEP_AFTER];
    if (sr_duration_parse(v, strlen(v), &c->sleep_after) < 0 || c->sleep_after == 0)
        BAD(SR_SET_SLEEP_AFTER, "a duration like 90s, 15m or 1h");
    v = c->value[SR_SET_SESSION_MAX_AGE];
    if (sr_duration_parse(v, strlen(v), &c->session_max_age) < 0 || c->session_max_age == 0)
        BAD(SR_SET_SESSION_MAX_AGE, "a duration like 720h or 24h");
    v = c->value[SR_SET_START_TIMEOUT];
    if (sr_duration_parse(v, strlen(v), &c->start_timeout) < 0 || c->start_timeout == 0)
        BAD(SR_SET_START_TIMEOUT, "a duration like 120s or 5m");
    v = c->value[SR_SET_STOP_GRACE];
    if (sr_duration_parse(v, strlen(v), &c->stop_grace) < 0)
        BAD(SR_SET_STOP_GRACE, "a duration like 10s");
    if (parse_flag01(c->value[SR_SET_ALLOW_SHELL], &c->allow_shell) < 0)
        BAD(SR_SET_ALLOW_SHELL, "0 or 1");
    if (parse_flag01(c->value[SR_SET_READ_ONLY], &c->read_only) < 0)
        BAD(SR_SET_READ_ONLY, "0 or 1");
    v = c->value[SR_SET_SERENA_PROJECT];
    if (v && strstr(v, "://")) {
        /* A git URL: held to the same rules as a token's project (core/project.h). */
        struct sr_project_spec ps;
        const char *why = NULL;
        if (sr_project_spec_parse(v, strlen(v), &ps, &why) < 0) {
            snprintf(err, errlen, "SERENA_PROJECT: %s", why);
            return -1;
        }
    }
    if (parse_flag01(c->value[SR_SET_OAUTH_ENABLED], &c->oauth_enabled) < 0)
        BAD(SR_SET_OAUTH_ENABLED, "0 or 1");
    v = c->value[SR_SET_PUBLIC_URL];
    if (v && *v && sr_oauth_public_url_check(v, strlen(v), NULL) < 0)
        BAD(SR_SET_PUBLIC_URL, "https://host[:port] (http only on localhost, 127.0.0.1 or [::1]), "
                               "without a path or trailing '/'");
    v = c->value[SR_SET_OAUTH_CIMD];
    if (strcmp(v, "off") == 0)
        c->oauth_cimd = 0;
    else if (strcmp(v, "on") == 0)
        c->oauth_cimd = 1;
    else if (strcmp(v, "loopback") == 0)
        c->oauth_cimd = 2;
    else
        BAD(SR_SET_OAUTH_CIMD, "on, off or loopback");
    v = c->value[SR_SET_PUBLIC_URL];
    if (c->oauth_enabled && (!v || !*v)) {
        snprintf(err, errlen,
                 "OAUTH_ENABLED=1 needs SERENA_REMOTE_PUBLIC_URL (--public-url), the https URL "
                 "clients reach this gateway at, e.g. https://mcp.example.com");
        return -1;
    }
    if (validate_idp(c, err, errlen) < 0)
        return -1;
    v = c->value[SR_SET_SERENA_CONTEXT];
    if (!sr_route_valid_name(v, strlen(v), 64))
        BAD(SR_SET_SERENA_CONTEXT, "a context name such as agent or desktop-app");
    if (parse_u32(c->value[SR_SET_MAX_INSTANCES], 1024, &c->max_instances) < 0 ||
        c->max_instances == 0)
        BAD(SR_SET_MAX_INSTANCES, "a number from 1 to 1024");
    v = c->value[SR_SET_LOG_FORMAT];
    if (strcmp(v, "text") == 0)
        c->log_json = 0;
    else if (strcmp(v, "json") == 0)
        c->log_json = 1;
    else
        BAD(SR_SET_LOG_FORMAT, "text or json");
    v = c->value[SR_SET_GENERATION];
    if (!sr_route_valid_name(v, strlen(v), SR_GENERATION_MAX))
        BAD(SR_SET_GENERATION, "1 to 64 characters from A-Z a-z 0-9 . _ -");
    if (parse_flag01(c->value[SR_SET_R2_ENABLED], &c->r2_enabled) < 0)
        BAD(SR_SET_R2_ENABLED, "0 or 1");
    if (parse_flag01(c->value[SR_SET_R2_STRICT], &c->r2_strict) < 0)
        BAD(SR_SET_R2_STRICT, "0 or 1");
    if (parse_u32(c->value[SR_SET_R2_INTERVAL], 7u * 86400u, &c->r2_interval) < 0)
        BAD(SR_SET_R2_INTERVAL, "seconds from 0 to 604800");
    if (parse_u32(c->value[SR_SET_R2_RETENTION], 1000, &c->r2_retention) < 0 ||
        c->r2_retention == 0)
        BAD(SR_SET_R2_RETENTION, "a count from 1 to 1000");
    v = c->value[SR_SET_SANDBOX];
    if (strcmp(v, "none") && strcmp(v, "bwrap"))
        BAD(SR_SET_SANDBOX, "none or bwrap");
    v = c->value[SR_SET_SNAPSHOT_KEY];
    if (v && *v) {
        struct sr_keylist kl;
        int bad = sr_keylist_parse(&kl, v, strlen(v), "SERENA_SNAPSHOT_KEY", err, errlen);
        sr_keylist_wipe(&kl);
        if (bad < 0)
            return -1;
    }
    v = c->value[SR_SET_R2_PARTITION];
    if (strcmp(v, "durable-object") && strcmp(v, "token") && strcmp(v, "shared"))
        BAD(SR_SET_R2_PARTITION, "durable-object, token or shared");
    if ((c->value[SR_SET_TLS_CERT] == NULL) != (c->value[SR_SET_TLS_KEY] == NULL)) {
        snprintf(err, errlen, "--tls-cert and --tls-key must be given together");
        return -1;
    }
    /* Incomplete persistence settings (no endpoint, no credentials) are not refused here:
     * sr_config_store names what is missing, and `run` starts local-only with it. */
#undef BAD
    return 0;
}

static int load_layers(struct sr_config *c, char *err, size_t errlen)
{
    for (int s = 0; s < SR_SET_COUNT; s++) {
        const char *e = getenv(sr_settings[s].env);
        if (c->flag_value[s])
            set_value(c, (enum sr_setting)s, c->flag_value[s], SR_SRC_FLAG);
        else if (e)
            set_value(c, (enum sr_setting)s, e, SR_SRC_ENV);
        else
            set_value(c, (enum sr_setting)s, sr_settings[s].def, SR_SRC_DEFAULT);
    }
    if (c->value[SR_SET_ENV_FILE]) {
        char *path = strdup(c->value[SR_SET_ENV_FILE]);
        if (!path)
            return -1;
        int rc = apply_env_file(c, path, err, errlen);
        free(path);
        if (rc < 0)
            return -1;
        /* Flags still win over the file. */
        for (int s = 0; s < SR_SET_COUNT; s++)
            if (c->flag_value[s])
                set_value(c, (enum sr_setting)s, c->flag_value[s], SR_SRC_FLAG);
    }
    return validate(c, err, errlen);
}

int sr_config_load(struct sr_config *c, int argc, char **argv, bool *help, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    *help = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            return 0;
        }
        const char *eq = strchr(a, '=');
        size_t alen = eq ? (size_t)(eq - a) : strlen(a);
        int found = -1;
        for (int s = 0; s < SR_SET_COUNT; s++)
            if (sr_settings[s].flag && strlen(sr_settings[s].flag) == alen &&
                strncmp(sr_settings[s].flag, a, alen) == 0)
                found = s;
        if (found < 0) {
            snprintf(err, errlen, "unknown option %s (see --help)", a);
            return -1;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            snprintf(err, errlen, "option %s needs a value", a);
            return -1;
        }
        free(c->flag_value[found]);
        c->flag_value[found] = strdup(v);
    }
    return load_layers(c, err, errlen);
}

int sr_config_reload(struct sr_config *c, char *err, size_t errlen)
{
    struct sr_config n;
    memset(&n, 0, sizeof(n));
    for (int s = 0; s < SR_SET_COUNT; s++)
        n.flag_value[s] = c->flag_value[s] ? strdup(c->flag_value[s]) : NULL;
    if (load_layers(&n, err, errlen) < 0) {
        sr_config_free(&n);
        return -1;
    }
    sr_config_free(c);
    *c = n;
    return 0;
}

void sr_config_free(struct sr_config *c)
{
    for (int s = 0; s < SR_SET_COUNT; s++) {
        free(c->value[s]);
        free(c->flag_value[s]);
        c->value[s] = c->flag_value[s] = NULL;
    }
}

static char *read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "cannot read API_TOKENS_FILE %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    fclose(f);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (n > max) {
        snprintf(err, errlen, "API_TOKENS_FILE %s is larger than %zu bytes", path, max);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

struct sr_tokens *sr_config_tokens(const struct sr_config *c, char *err, size_t errlen)
{
    static struct sr_json_tok scratch[SR_TOKENS_SCRATCH];
    struct sr_core_err ce;
    struct sr_tokens *t = malloc(sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sr_tokens_init(t);
    const char *single = c->value[SR_SET_API_TOKEN];
    const char *json = c->value[SR_SET_API_TOKENS_JSON];
    const char *file = c->value[SR_SET_API_TOKENS_FILE];
    if (single && *single && sr_tokens_add_singleton(t, single, strlen(single), &ce) < 0)
        goto fail;
    if (json && *json &&
        sr_tokens_add_json(t, json, strlen(json), "API_TOKENS_JSON", scratch,
                           sizeof(scratch) / sizeof(scratch[0]), &ce) < 0)
        goto fail;
    if (file && *file) {
        size_t n;
        char *text = read_file(file, SR_TOKENS_JSON_MAX, &n, err, errlen);
        if (!text) {
            free(t);
            return NULL;
        }
        int rc = sr_tokens_add_json(t, text, n, "API_TOKENS_FILE", scratch,
                                    sizeof(scratch) / sizeof(scratch[0]), &ce);
        memset(text, 0, n);
        free(text);
        if (rc < 0)
            goto fail;
    }
    if (t->count == 0) {
        snprintf(err, errlen,
                 "no tokens configured: set API_TOKEN, API_TOKENS_JSON or API_TOKENS_FILE "
                 "(`serena-remote token` makes one)");
        free(t);
        return NULL;
    }
    return t;
fail:
    snprintf(err, errlen, "%s", ce.msg);
    free(t);
    return NULL;
}

int sr_config_policy(const struct sr_config *c, struct sr_policy *p, char *err, size_t errlen)
{
    struct sr_core_err ce;
    const char *o = c->value[SR_SET_ALLOWED_ORIGINS];
    snprintf(p->generation, sizeof(p->generation), "%s", c->value[SR_SET_GENERATION]);
    p->max_body = c->max_body;
    /* Local pages (http://localhost:port) may call a gateway that only this machine can reach;
     * the listen address is the one the server binds (role defaults are applied before). */
    p->loopback_listener = sr_hostport_is_loopback(c->value[SR_SET_LISTEN]);
    if (sr_policy_set_origins(p, o ? o : "", o ? strlen(o) : 0, &ce) < 0) {
        snprintf(err, errlen, "ALLOWED_ORIGINS: %s", ce.msg);
        return -1;
    }
    return 0;
}

char *sr_config_backend_cmd(const struct sr_config *c)
{
    const char *t = c->value[SR_SET_BACKEND_CMD];
    if (t && *t)
        return strdup(t);
    /* The instance manager expands these at each start, quoted: {context} the token's context,
     * else SERENA_CONTEXT; {project_args} the route's remembered project, else its token's, else
     * SERENA_PROJECT; {mode_args} the read-only mode of a read-only token (or SERENA_READ_ONLY). */
    (void)c;
    return strdup("serena start-mcp-server --transport streamable-http --host 127.0.0.1 "
                  "--port {port} --context {context} --enable-web-dashboard false "
                  "--open-web-dashboard false {project_args} {mode_args}");
}

int sr_config_store(const struct sr_config *c, struct sr_store_config *sc, char *buf, size_t buflen,
                    char *err, size_t errlen)
{
    memset(sc, 0, sizeof(*sc));
    sc->keys = c->value[SR_SET_SNAPSHOT_KEY];
    if (c->r2_enabled) {
        sc->kind = "s3";
        const char *ep = c->value[SR_SET_S3_ENDPOINT];
        const char *acct = c->value[SR_SET_R2_ACCOUNT];
        if (ep && *ep) {
            sc->endpoint = ep;
            sc->region = c->value[SR_SET_S3_REGION] && *c->value[SR_SET_S3_REGION]
                             ? c->value[SR_SET_S3_REGION]
                             : "us-east-1";
        } else if (acct && *acct) {
            snprintf(buf, buflen, "https://%s.r2.cloudflarestorage.com", acct);
            sc->endpoint = buf;
            sc->region = "auto";
        }
        sc->bucket = c->value[SR_SET_R2_BUCKET];
        sc->access_key = c->value[SR_SET_AWS_KEY_ID];
        sc->secret_key = c->value[SR_SET_AWS_SECRET];
        const char *missing = !sc->endpoint                         ? "R2_ACCOUNT_ID or S3_ENDPOINT"
                              : !sc->bucket || !*sc->bucket         ? "R2_BUCKET_NAME"
                              : !sc->access_key || !*sc->access_key ? "AWS_ACCESS_KEY_ID"
                              : !sc->secret_key || !*sc->secret_key ? "AWS_SECRET_ACCESS_KEY"
                                                                    : NULL;
        if (missing) {
            snprintf(err, errlen, "SERENA_R2_STATE_ENABLED=1 but %s is not set", missing);
            return -1;
        }
        return 1;
    }
    const char *st = c->value[SR_SET_STORE];
    if (st && strcmp(st, "none") == 0)
        return 0;
    if (st && *st) {
        if (strncmp(st, "file:/", 6) != 0) {
            snprintf(err, errlen,
                     "--store %s is invalid: expected file:/absolute/dir or none (S3/R2 is "
                     "selected with SERENA_R2_STATE_ENABLED=1)",
                     st);
            return -1;
        }
        sc->kind = "file";
        sc->dir = st + 5;
        return 1;
    }
    /* The embedded default: a local directory next to the instances. */
    const char *sd = c->value[SR_SET_STATE_DIR];
    char cwd[PATH_MAX];
    if (sd[0] == '/')
        snprintf(buf, buflen, "%s/snapshots", sd);
    else if (getcwd(cwd, sizeof(cwd)))
        snprintf(buf, buflen, "%s/%s/snapshots", cwd, sd);
    else {
        snprintf(err, errlen, "cannot resolve the state directory %s", sd);
        return -1;
    }
    sc->kind = "file";
    sc->dir = buf;
    return 1;
}

void sr_config_role_defaults(struct sr_config *c, const char *listen, const char *state_dir,
                             const char *admin_listen)
{
    if (c->source[SR_SET_LISTEN] == SR_SRC_DEFAULT)
        set_value(c, SR_SET_LISTEN, listen, SR_SRC_DEFAULT);
    if (c->source[SR_SET_STATE_DIR] == SR_SRC_DEFAULT)
        set_value(c, SR_SET_STATE_DIR, state_dir, SR_SRC_DEFAULT);
    if (c->source[SR_SET_ADMIN_LISTEN] == SR_SRC_DEFAULT)
        set_value(c, SR_SET_ADMIN_LISTEN, admin_listen, SR_SRC_DEFAULT);
}

int sr_config_load_values(struct sr_config *c, const char *const values[SR_SET_COUNT], char *err,
                          size_t errlen)
{
    memset(c, 0, sizeof(*c));
    for (int s = 0; s < SR_SET_COUNT; s++)
        if (values[s] && !(c->flag_value[s] = strdup(values[s]))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    return load_layers(c, err, errlen);
}

const char *sr_config_instance_id(const struct sr_config *c)
{
    const char *iid = c->value[SR_SET_INSTANCE_ID];
    if (iid && *iid)
        return iid;
    const char *dobj = getenv("CLOUDFLARE_DURABLE_OBJECT_ID");
    /* Locally the platform sets a 64-'x' placeholder: not an identity. */
    if (dobj && *dobj && strspn(dobj, "x") != strlen(dobj))
        return dobj;
    return NULL;
}

void sr_config_print_help_role(const char *listen, const char *state_dir, const char *admin_listen)
{
    printf("Settings (flag / environment, default). Flags win over --env-file, which wins "
           "over the environment:\n");
    for (int s = 0; s < SR_SET_COUNT; s++) {
        const struct sr_setting_def *d = &sr_settings[s];
        const char *def = d->def;
        if (s == SR_SET_LISTEN && listen)
            def = listen;
        else if (s == SR_SET_STATE_DIR && state_dir)
            def = state_dir;
        else if (s == SR_SET_ADMIN_LISTEN && admin_listen)
            def = admin_listen;
        char left[96];
        snprintf(left, sizeof(left), "%s%s%s", d->flag ? d->flag : "", d->flag ? " / " : "",
                 d->env);
        printf("  %-52s %s%s%s%s\n", left, d->help, def && *def ? " [" : "", def && *def ? def : "",
               def && *def ? "]" : "");
    }
}

void sr_config_print_help(void)
{
    sr_config_print_help_role(NULL, NULL, NULL);
}

static const char *source_name(enum sr_source s)
{
    switch (s) {
    case SR_SRC_ENV:
        return "environment";
    case SR_SRC_ENV_FILE:
        return "env file";
    case SR_SRC_FLAG:
        return "flag";
    default:
        return "default";
    }
}

void sr_config_print(const struct sr_config *c)
{
    for (int s = 0; s < SR_SET_COUNT; s++) {
        const struct sr_setting_def *d = &sr_settings[s];
        const char *v = c->value[s];
        char shown[160];
        if (!v)
            snprintf(shown, sizeof(shown), "(unset)");
        else if (d->secret)
            snprintf(shown, sizeof(shown), "(set, %zu characters, hidden)", strlen(v));
        else
            snprintf(shown, sizeof(shown), "%s", v);
        printf("%-38s %-48s (%s)\n", d->env, shown, source_name(c->source[s]));
    }
}
