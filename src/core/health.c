/*
 * The /health document (see health.h).
 *
 * The shape is fixed and every field is always present, so monitoring can
 * rely on it; NULL strings are written as "" rather than dropped. Nothing
 * here can hold a secret: the struct carries only counts, kinds and names of
 * places (bucket, prefix), never credentials or token names.
 */
#include "core/health.h"

#include "core/json.h"

static void put_str(struct sr_jw *w, const char *key, const char *v)
{
    sr_jw_key(w, key);
    sr_jw_cstr(w, v != NULL ? v : "");
}

static void put_u64(struct sr_jw *w, const char *key, uint64_t v)
{
    sr_jw_key(w, key);
    sr_jw_int(w, (int64_t)v);
}

/* A count, or null when it cannot be known. */
static void put_count(struct sr_jw *w, const char *key, uint64_t v, bool unknown)
{
    sr_jw_key(w, key);
    if (unknown)
        sr_jw_null(w);
    else
        sr_jw_int(w, (int64_t)v);
}

static void put_bool(struct sr_jw *w, const char *key, bool v)
{
    sr_jw_key(w, key);
    sr_jw_bool(w, v);
}

int sr_health_write(const struct sr_health *h, char *out, size_t cap)
{
    struct sr_jw w;
    size_t len = 0;
    uint64_t running;

    if (h == NULL || out == NULL)
        return -1;
    running = (uint64_t)h->inst_starting + h->inst_ready + h->inst_idle + h->inst_stopping;
    sr_jw_init(&w, out, cap);
    sr_jw_obj_begin(&w);
    put_str(&w, "status", h->status);
    put_str(&w, "reason", h->reason);
    put_str(&w, "version", h->version);
    put_str(&w, "role", h->role);
    put_str(&w, "route_generation", h->generation);
    put_str(&w, "route_strategy", h->strategy);
    put_u64(&w, "token_count", h->token_count);
    put_str(&w, "mode", h->upstream_mode);

    sr_jw_key(&w, "instances");
    sr_jw_obj_begin(&w);
    put_u64(&w, "max", h->max_instances);
    put_bool(&w, "counts_known", !h->inst_unknown);
    put_count(&w, "starting", h->inst_starting, h->inst_unknown);
    put_count(&w, "ready", h->inst_ready, h->inst_unknown);
    put_count(&w, "idle", h->inst_idle, h->inst_unknown);
    put_count(&w, "stopping", h->inst_stopping, h->inst_unknown);
    put_count(&w, "failed", h->inst_failed, h->inst_unknown);
    put_count(&w, "running", running, h->inst_unknown);
    sr_jw_obj_end(&w);

    sr_jw_key(&w, "persistence");
    sr_jw_obj_begin(&w);
    put_bool(&w, "enabled", h->p_enabled);
    put_str(&w, "store", h->p_store);
    put_str(&w, "bucket", h->p_bucket);
    put_str(&w, "prefix", h->p_prefix);
    put_str(&w, "partition_mode", h->p_partition);
    put_u64(&w, "interval_seconds", h->p_interval);
    put_u64(&w, "retention_count", h->p_retention);
    put_bool(&w, "strict", h->p_strict);
    put_bool(&w, "encrypted", h->p_encrypted);
    put_str(&w, "state", h->p_state);
    sr_jw_obj_end(&w);

    put_u64(&w, "uptime_seconds", h->uptime_seconds);
    sr_jw_obj_end(&w);
    if (sr_jw_finish(&w, &len) != 0 || len >= cap)
        return -1;
    out[len] = '\0';
    return (int)len;
}
