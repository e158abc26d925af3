/*
 * The /health document: what an operator needs to see about a gateway,
 * without a secret or a token name in it.
 */
#ifndef SR_CORE_HEALTH_H
#define SR_CORE_HEALTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

struct sr_health {
    const char *status;     /* "ok" | "degraded" */
    const char *reason;     /* why it is degraded, for an operator ("" or NULL: none) */
    const char *version;    /* serena-remote version */
    const char *role;       /* "serve" | "run" | "worker" */
    const char *generation; /* route generation */
    const char *strategy;   /* sr_tokens_strategy() */
    uint32_t token_count;
    const char *upstream_mode; /* "upstream" (one server for every route) | "instances" */
    /* Instances summary. */
    uint32_t max_instances;
    /* False where the counts cannot be known (the Worker: each container reports only itself);
     * the counts are then written as null. */
    bool inst_unknown;
    uint32_t inst_starting, inst_ready, inst_idle, inst_stopping, inst_failed;
    /* Persistence summary. */
    bool p_enabled;
    const char *p_store;  /* "none" | "file" | "s3" */
    const char *p_bucket; /* "" when not applicable */
    const char *p_prefix;
    const char *p_partition; /* "durable-object" | "token" | "shared" */
    uint32_t p_interval;     /* seconds */
    uint32_t p_retention;
    bool p_strict;
    bool p_encrypted;    /* SERENA_SNAPSHOT_KEY is set: every stored object is encrypted */
    const char *p_state; /* "ok" | "degraded" | "disabled" */
    uint64_t uptime_seconds;
};

/* Writes the document NUL-terminated into out; returns its length or -1 when cap is too small. */
int sr_health_write(const struct sr_health *h, char *out, size_t cap);

#endif
