/*
 * The token table: who may call, and under which name.
 *
 * Built once at start (and again on SIGHUP) from API_TOKEN (the singleton
 * route, named "singleton") and/or API_TOKENS_JSON / API_TOKENS_FILE: an
 * object {"name": "token"} or an array ["token", ...] whose entries are named
 * "t-" + the first 16 hex digits of the token's SHA-256. A value may be
 * "sha256:<64 hex>" instead of the plaintext. Only digests are kept.
 *
 * In the object form an entry may also be an object with the token's
 * settings: {"name": {"token": "<token or sha256:...>", "project": "<spec>",
 * "context": "<Serena context>", "read_only": true}}. "token" is required,
 * the rest optional; any other member is refused. "project" is a project
 * spec (project.h: a git URL cloned into the route's workspace, or an
 * absolute path); "context" a name of [A-Za-z0-9._-]{1,64}; "read_only"
 * leaves the backend without its editing tools.
 *
 * Errors name the entry ("API_TOKENS_JSON entry \"ci\"", "API_TOKENS_JSON[3]")
 * and never the value. Matching compares the presented token's digest with
 * every entry in constant time, without an early exit.
 */
#ifndef SR_CORE_TOKENS_H
#define SR_CORE_TOKENS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/limits.h"
#include "core/json.h"
#include "core/sha256.h"

#define SR_SINGLETON_NAME "singleton"
/* JSON tokens a table needs at most: the document, and per entry its name, an object, four
 * members and their values. */
#define SR_TOKENS_SCRATCH (SR_TOKENS_MAX * 10u + 1u)

struct sr_token_entry {
    char name[SR_TOKEN_NAME_MAX + 1]; /* NUL-terminated, [A-Za-z0-9._-]{1,64} */
    uint8_t digest[SR_SHA256_LEN];
    uint8_t singleton;                   /* 1 for the API_TOKEN entry */
    uint8_t read_only;                   /* 1: the backend runs without editing tools */
    uint32_t project_off;                /* the project spec, in sr_tokens.projects */
    uint32_t project_len;                /* 0: none */
    char context[SR_TOKEN_NAME_MAX + 1]; /* "" when none */
};

struct sr_tokens {
    struct sr_token_entry e[SR_TOKENS_MAX];
    uint32_t count;
    /* The entries' project specs, back to back (not NUL-terminated). */
    char projects[SR_TOKENS_PROJECTS_MAX];
    uint32_t projects_len;
};

/* Error text for the person configuring the gateway; never holds a token. */
struct sr_core_err {
    char msg[SR_ERRMSG_MAX];
};

void sr_tokens_init(struct sr_tokens *t);

/* Add API_TOKEN (plaintext or sha256:<hex>) as the singleton entry. */
int sr_tokens_add_singleton(struct sr_tokens *t, const char *value, size_t n,
                            struct sr_core_err *err);

/*
 * Add every entry of a JSON object or array (the text of API_TOKENS_JSON or
 * of API_TOKENS_FILE; `source` names it in errors). `scratch` (caller
 * memory, SR_TOKENS_SCRATCH tokens are enough for any valid table) holds
 * the parse. All-or-nothing: on error t is unchanged.
 */
int sr_tokens_add_json(struct sr_tokens *t, const char *json, size_t n, const char *source,
                       struct sr_json_tok *scratch, uint32_t scratch_cap, struct sr_core_err *err);

/*
 * Index of the entry whose digest equals `digest`, or -1. Constant time in
 * the number of entries: every entry is compared, no early exit.
 */
int32_t sr_tokens_match(const struct sr_tokens *t, const uint8_t digest[SR_SHA256_LEN]);

/* Index of the entry named `name` (NUL-terminated), or -1 (NULL table: -1). Names are not
 * secrets: an ordinary comparison. */
int32_t sr_tokens_find(const struct sr_tokens *t, const char *name);

/* Entry i's project spec (*n bytes, not NUL-terminated), or NULL when it has none. */
const char *sr_tokens_project(const struct sr_tokens *t, uint32_t i, size_t *n);

/* "singleton" when only API_TOKEN, "per-token" when only named entries, "mixed", or "none". */
const char *sr_tokens_strategy(const struct sr_tokens *t);

#endif
