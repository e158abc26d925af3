/*
 * The settings `serena-remote run` (the container's PID 1) reads from its environment, and the
 * rule each value must follow: one table for both sides of the Cloudflare path. `run` checks every
 * value with it before anything starts (cmd/config.c), and the Worker, through core.wasm, checks
 * the same settings before it passes them to a container and passes exactly the ones of this
 * table that are set (worker/src/container.ts): a value the container would refuse is refused at
 * the edge, loudly, instead of in a container that exits.
 *
 * Messages name the setting and what is expected; a secret's value is never quoted.
 */
#ifndef SR_CORE_RUNCFG_H
#define SR_CORE_RUNCFG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/json.h"
#include "core/tokens.h"

enum sr_rc_kind {
    SR_RC_TEXT,     /* any text */
    SR_RC_FLAG01,   /* "0" or "1" */
    SR_RC_UINT,     /* decimal, min..max */
    SR_RC_DURATION, /* core/duration.h, min..max seconds */
    SR_RC_NAME,     /* sr_route_valid_name, at most max characters */
    SR_RC_CHOICE,   /* one of choices ("a|b|c") */
    SR_RC_KEYS,     /* core/keylist.h */
};

struct sr_rc_setting {
    const char *env;
    enum sr_rc_kind kind;
    uint32_t min, max;
    const char *choices;
    const char *expect; /* "expected ..." in the message */
    bool secret;
    bool worker_sets; /* the Worker computes it per container (instance id, session key) */
};

extern const struct sr_rc_setting sr_rc_settings[];
extern const uint32_t sr_rc_count;

/* The row of setting name[0..n), or NULL when it is not one `run` reads. */
const struct sr_rc_setting *sr_rc_find(const char *name, size_t n);

/*
 * Check one value. 0 when valid, empty (unset) or when name is not a run setting; -1 with
 * "NAME=value is invalid: expected ..." in err (the value shown as (hidden) for a secret).
 */
int sr_rc_check(const char *name, size_t nlen, const char *v, size_t vlen, struct sr_core_err *err);

/*
 * Snapshot persistence settings that are incomplete: with SERENA_R2_STATE_ENABLED=1, the first
 * of R2_ACCOUNT_ID or S3_ENDPOINT, R2_BUCKET_NAME, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY that
 * is missing (get(name) returns the value or NULL, valid until its next call; an empty value
 * counts as missing), else NULL.
 * R2_BUCKET_NAME has a default, so only an explicitly empty one is missing.
 */
const char *sr_rc_persistence_missing(const char *(*get)(void *arg, const char *name), void *arg);

/*
 * The Worker's check (core.wasm): json is an object {"NAME": "value", ...} (strings; other
 * names are ignored). Writes {"forward":[names of run settings that are set and not
 * worker_sets],"errors":["message", ...],"persistence":"disabled"|"ok"|"degraded",
 * "persistence_missing":"NAME"|""} into out. scratch holds one decoded value at a time.
 * Returns the length, or -1 with err.
 */
int sr_rc_check_json(const char *json, size_t n, struct sr_json_tok *toks, uint32_t cap,
                     char *scratch, size_t scratch_cap, char *out, size_t out_cap,
                     struct sr_core_err *err);

#endif
