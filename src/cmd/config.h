/*
 * Effective configuration: built-in defaults, then the process environment,
 * then --env-file (re-read on SIGHUP, so it can change the generation and
 * tokens of a running gateway), then command-line flags. Flags win.
 *
 * Every setting has one row in config.c's table: its flag, its environment
 * name, its default and whether it is secret. `check` prints the table with
 * secrets masked; nothing else ever prints a secret.
 */
#ifndef SR_CMD_CONFIG_H
#define SR_CMD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/classify.h"
#include "core/tokens.h"

enum sr_setting {
    SR_SET_LISTEN,
    SR_SET_UPSTREAM,
    SR_SET_TLS_CERT,
    SR_SET_TLS_KEY,
    SR_SET_LOG_FORMAT,
    SR_SET_MAX_BODY,
    SR_SET_GENERATION,
    SR_SET_ALLOWED_ORIGINS,
    SR_SET_API_TOKEN,
    SR_SET_API_TOKENS_JSON,
    SR_SET_API_TOKENS_FILE,
    SR_SET_ENV_FILE,
    SR_SET_DRAIN_TIMEOUT,
    SR_SET_MAX_INSTANCES,
    SR_SET_SLEEP_AFTER,
    SR_SET_STATE_DIR,
    SR_SET_BACKEND_CMD,
    SR_SET_START_TIMEOUT,
    SR_SET_STOP_GRACE,
    SR_SET_SERENA_CONTEXT,
    SR_SET_SERENA_PROJECT,
    SR_SET_ALLOW_SHELL,
    SR_SET_READ_ONLY,
    SR_SET_TOOLS_DIR,
    SR_SET_INTERNAL_SECRET,
    SR_SET_SANDBOX,
    SR_SET_STORE,
    SR_SET_SNAPSHOT_EXCLUDE,
    SR_SET_SNAPSHOT_KEY,
    SR_SET_INSTANCE_ID,
    SR_SET_R2_ENABLED,
    SR_SET_R2_PREFIX,
    SR_SET_R2_PARTITION,
    SR_SET_R2_STRICT,
    SR_SET_R2_INTERVAL,
    SR_SET_R2_RETENTION,
    SR_SET_R2_BUCKET,
    SR_SET_R2_ACCOUNT,
    SR_SET_S3_ENDPOINT,
    SR_SET_S3_REGION,
    SR_SET_AWS_KEY_ID,
    SR_SET_AWS_SECRET,
    SR_SET_SESSION_KEY,
    SR_SET_SESSION_MAX_AGE,
    SR_SET_ADMIN_LISTEN,
    SR_SET_ADMIN_TOKEN,
    SR_SET_OAUTH_ENABLED,
    SR_SET_PUBLIC_URL,
    SR_SET_OAUTH_CIMD,
    SR_SET_BACKEND_OUTPUT,
    SR_SET_OAUTH_ISSUER,
    SR_SET_OAUTH_JWKS_URL,
    SR_SET_OAUTH_CLAIM,
    SR_SET_OAUTH_CLAIM_MAP,
    SR_SET_OAUTH_CLOCK_SKEW,
    SR_SET_COUNT
};

struct sr_setting_def {
    const char *flag; /* "--listen", or NULL for environment-only secrets */
    const char *env;
    const char *def;
    bool secret;
    const char *help;
};

extern const struct sr_setting_def sr_settings[SR_SET_COUNT];

/* Where a value came from, for `check`. */
enum sr_source { SR_SRC_DEFAULT, SR_SRC_ENV, SR_SRC_ENV_FILE, SR_SRC_FLAG };

struct sr_config {
    char *value[SR_SET_COUNT]; /* owned strings; NULL = unset */
    enum sr_source source[SR_SET_COUNT];
    char *flag_value[SR_SET_COUNT]; /* remembered so a reload re-applies flags */
    /* Parsed values. */
    uint32_t max_body;
    uint32_t drain_timeout;
    uint32_t max_instances;
    uint32_t sleep_after;
    uint32_t session_max_age; /* seconds */
    uint32_t start_timeout;
    uint32_t stop_grace;
    bool allow_shell;
    bool read_only;     /* SERENA_READ_ONLY: backends without editing tools */
    bool oauth_enabled; /* OAUTH_ENABLED: the built-in authorization server (docs/oauth.md) */
    int oauth_cimd;     /* SERENA_REMOTE_OAUTH_CIMD: 0 off, 1 on, 2 loopback (enum sr_oauth_cimd) */
    bool r2_enabled, r2_strict;
    uint32_t r2_interval, r2_retention;
    int log_json;
    uint32_t oauth_clock_skew; /* seconds: SERENA_REMOTE_OAUTH_CLOCK_SKEW */
};

/*
 * Parse flags (argv from the subcommand on) and load everything. Unknown
 * flags and invalid values fail with a message in err. `*help` is set when
 * --help was given.
 */
int sr_config_load(struct sr_config *c, int argc, char **argv, bool *help, char *err,
                   size_t errlen);
/* Re-read the environment and --env-file, keeping the flags. */
int sr_config_reload(struct sr_config *c, char *err, size_t errlen);
void sr_config_free(struct sr_config *c);
const char *sr_config_get(const struct sr_config *c, enum sr_setting s);

/* Build the token table (heap) from the configuration; NULL with err on any invalid entry. */
struct sr_tokens *sr_config_tokens(const struct sr_config *c, char *err, size_t errlen);
/* Fill the policy (generation, origins, max body, loopback listener) from the configuration. */
int sr_config_policy(const struct sr_config *c, struct sr_policy *p, char *err, size_t errlen);
/*
 * The backend command template: --backend-cmd when set, else Serena's
 * command line built from SERENA_CONTEXT / SERENA_PROJECT. Caller frees.
 */
char *sr_config_backend_cmd(const struct sr_config *c);

struct sr_store_config;

/*
 * The snapshot store: S3/R2 when SERENA_R2_STATE_ENABLED=1, else --store
 * ("file:/abs/dir", "none"), else the embedded default file:<state-dir>/snapshots.
 * Returns 1 and fills sc (strings point into c or into buf), 0 when
 * persistence is off, -1 with err when settings are incomplete.
 */
int sr_config_store(const struct sr_config *c, struct sr_store_config *sc, char *buf, size_t buflen,
                    char *err, size_t errlen);

/* Role defaults (run: listen, state dir, admin listener) for settings still at their built-in
 * default. */
void sr_config_role_defaults(struct sr_config *c, const char *listen, const char *state_dir,
                             const char *admin_listen);

/*
 * Load like sr_config_load, with values[s] (non-NULL entries) taking a
 * flag's place: how the snapshot commands give their own options
 * (--store, --prefix, ...) the settings' names, layers and validation.
 */
int sr_config_load_values(struct sr_config *c, const char *const values[SR_SET_COUNT], char *err,
                          size_t errlen);

/*
 * The snapshot partition's instance id: SERENA_INSTANCE_ID, else the
 * platform's CLOUDFLARE_DURABLE_OBJECT_ID (unless it is the 64-'x'
 * placeholder of local runs), else NULL.
 */
const char *sr_config_instance_id(const struct sr_config *c);

/* Print the settings help block (flags, environment names, defaults). */
void sr_config_print_help(void);
/* The same with a role's own defaults of --listen, --state-dir and --admin-listen (run). */
void sr_config_print_help_role(const char *listen, const char *state_dir, const char *admin_listen);
/* Print the effective configuration, secrets masked. */
void sr_config_print(const struct sr_config *c);

#endif
