/* The settings of `serena-remote run` and their rules (see runcfg.h). */
#include "core/runcfg.h"

#include "core/duration.h"
#include "core/keylist.h"
#include "core/mem.h"
#include "core/route.h"
#include "core/text.h"

/* Keep in step with cmd/config.c's table (its environment names and defaults). */
const struct sr_rc_setting sr_rc_settings[] = {
    {"MAX_BODY_BYTES", SR_RC_UINT, 1, 1024u * 1024u * 1024u, NULL,
     "a number of bytes between 1 and 1073741824", false, false},
    {"SERENA_REMOTE_LOG_FORMAT", SR_RC_CHOICE, 0, 0, "text|json", "text or json", false, false},
    {"MCP_CONTAINER_ROUTE_GENERATION", SR_RC_NAME, 0, 64, NULL,
     "1 to 64 characters from A-Z a-z 0-9 . _ -", false, false},
    {"SERENA_REMOTE_DRAIN_TIMEOUT", SR_RC_DURATION, 0, 30u * 86400u, NULL,
     "a duration like 10s, 2m or 1h", false, false},
    {"SERENA_BACKEND_CMD", SR_RC_TEXT, 0, 0, NULL, NULL, false, false},
    {"SERENA_BACKEND_OUTPUT", SR_RC_CHOICE, 0, 0, "auto|file|log", "auto, file or log", false,
     false},
    {"SERENA_START_TIMEOUT", SR_RC_DURATION, 1, 30u * 86400u, NULL, "a duration like 120s or 5m",
     false, false},
    {"SERENA_STOP_GRACE", SR_RC_DURATION, 0, 30u * 86400u, NULL, "a duration like 10s", false,
     false},
    {"SERENA_CONTEXT", SR_RC_NAME, 0, 64, NULL, "a context name such as agent or desktop-app",
     false, false},
    {"SERENA_PROJECT", SR_RC_TEXT, 0, 0, NULL, NULL, false, false},
    {"SERENA_ALLOW_SHELL", SR_RC_FLAG01, 0, 0, NULL, "0 or 1", false, false},
    {"SERENA_READ_ONLY", SR_RC_FLAG01, 0, 0, NULL, "0 or 1", false, false},
    {"SERENA_TOOLS_DIR", SR_RC_TEXT, 0, 0, NULL, NULL, false, false},
    {"SERENA_INTERNAL_SECRET", SR_RC_TEXT, 0, 0, NULL, NULL, true, false},
    {"SERENA_SANDBOX", SR_RC_CHOICE, 0, 0, "none|bwrap", "none or bwrap", false, false},
    {"SERENA_REMOTE_STORE", SR_RC_TEXT, 0, 0, NULL, NULL, false, false},
    {"SERENA_SNAPSHOT_EXCLUDE", SR_RC_TEXT, 0, 0, NULL, NULL, false, false},
    {"SERENA_SNAPSHOT_KEY", SR_RC_KEYS, 0, 0, NULL, NULL, true, false},
    {"SERENA_INSTANCE_ID", SR_RC_TEXT, 0, 0, NULL, NULL, false, true},
    {"SERENA_R2_STATE_ENABLED", SR_RC_FLAG01, 0, 0, NULL, "0 or 1", false, false},
    {"SERENA_R2_STATE_PREFIX", SR_RC_TEXT, 0, 0, NULL, NULL, false, false},
    {"SERENA_R2_STATE_PARTITION_MODE", SR_RC_CHOICE, 0, 0, "durable-object|token|shared",
     "durable-object, token or shared", false, false},
    {"SERENA_R2_STATE_STRICT", SR_RC_FLAG01, 0, 0, NULL, "0 or 1", false, false},
    {"SERENA_R2_SNAPSHOT_INTERVAL_SECONDS", SR_RC_UINT, 0, 7u * 86400u, NULL,
     "seconds from 0 to 604800", false, false},
    {"SERENA_R2_SNAPSHOT_RETENTION_COUNT", SR_RC_UINT, 1, 1000, NULL, "a count from 1 to 1000",
     false, false},
    {"R2_BUCKET_NAME", SR_RC_TEXT, 0, 0, NULL, NULL, false, false},
    {"R2_ACCOUNT_ID", SR_RC_TEXT, 0, 0, NULL, NULL, false, false},
    {"S3_ENDPOINT", SR_RC_TEXT, 0, 0, NULL, NULL, false, false},
    {"S3_REGION", SR_RC_TEXT, 0, 0, NULL, NULL, false, false},
    {"AWS_ACCESS_KEY_ID", SR_RC_TEXT, 0, 0, NULL, NULL, true, false},
    {"AWS_SECRET_ACCESS_KEY", SR_RC_TEXT, 0, 0, NULL, NULL, true, false},
    {"SERENA_SESSION_KEY", SR_RC_KEYS, 0, 0, NULL, NULL, true, true},
    {"SERENA_SESSION_MAX_AGE", SR_RC_DURATION, 1, 30u * 86400u, NULL, "a duration like 720h or 24h",
     false, false},
};
const uint32_t sr_rc_count = sizeof(sr_rc_settings) / sizeof(sr_rc_settings[0]);

static size_t cstrlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static bool eq(const char *a, size_t an, const char *b)
{
    size_t bn = cstrlen(b);
    return an == bn && sr_mem_eq(a, b, an);
}

const struct sr_rc_setting *sr_rc_find(const char *name, size_t n)
{
    for (uint32_t i = 0; i < sr_rc_count; i++)
        if (eq(name, n, sr_rc_settings[i].env))
            return &sr_rc_settings[i];
    return NULL;
}

static bool parse_uint(const char *v, size_t n, uint32_t *out)
{
    uint64_t x = 0;
    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (x > 0xffffffffu)
        return false;
    *out = (uint32_t)x;
    return true;
}

static bool in_choices(const char *choices, const char *v, size_t n)
{
    const char *p = choices;
    while (*p) {
        size_t k = 0;
        while (p[k] && p[k] != '|')
            k++;
        if (k == n && sr_mem_eq(p, v, n))
            return true;
        p += k;
        if (*p == '|')
            p++;
    }
    return false;
}

static int bad(const struct sr_rc_setting *s, const char *v, size_t vlen, const char *expect,
               struct sr_core_err *err)
{
    struct sr_text t;
    sr_text_init(&t, err->msg, sizeof(err->msg));
    sr_text_put(&t, s->env);
    sr_text_put(&t, "=");
    if (s->secret)
        sr_text_put(&t, "(hidden)");
    else
        sr_text_putn(&t, v, vlen > 120 ? 120 : vlen);
    sr_text_put(&t, " is invalid: expected ");
    sr_text_put(&t, expect);
    return -1;
}

int sr_rc_check(const char *name, size_t nlen, const char *v, size_t vlen, struct sr_core_err *err)
{
    const struct sr_rc_setting *s = sr_rc_find(name, nlen);
    uint32_t x;
    /* Empty is unset: the setting's default applies (the Worker never passes one). */
    if (s == NULL || vlen == 0)
        return 0;
    switch (s->kind) {
    case SR_RC_TEXT:
        return 0;
    case SR_RC_FLAG01:
        if (eq(v, vlen, "0") || eq(v, vlen, "1") || eq(v, vlen, "false") || eq(v, vlen, "true"))
            return 0;
        return bad(s, v, vlen, s->expect, err);
    case SR_RC_UINT:
        if (parse_uint(v, vlen, &x) && x >= s->min && x <= s->max)
            return 0;
        return bad(s, v, vlen, s->expect, err);
    case SR_RC_DURATION:
        if (sr_duration_parse(v, vlen, &x) == 0 && x >= s->min && x <= s->max)
            return 0;
        return bad(s, v, vlen, s->expect, err);
    case SR_RC_NAME:
        if (sr_route_valid_name(v, vlen, s->max))
            return 0;
        return bad(s, v, vlen, s->expect, err);
    case SR_RC_CHOICE:
        if (in_choices(s->choices, v, vlen))
            return 0;
        return bad(s, v, vlen, s->expect, err);
    case SR_RC_KEYS: {
        struct sr_keylist kl;
        int rc = sr_keylist_parse(&kl, v, vlen, s->env, err->msg, sizeof(err->msg));
        sr_keylist_wipe(&kl);
        return rc < 0 ? -1 : 0;
    }
    }
    return 0;
}

/* A flag that is on, as `run` reads it. */
static bool is_on(const char *v)
{
    return v != NULL && (eq(v, cstrlen(v), "1") || eq(v, cstrlen(v), "true"));
}

static bool missing(const char *(*get)(void *, const char *), void *arg, const char *name)
{
    const char *v = get(arg, name);
    return v == NULL || v[0] == '\0';
}

const char *sr_rc_persistence_missing(const char *(*get)(void *arg, const char *name), void *arg)
{
    /* Each value is used before the next get: a lookup may reuse one buffer. */
    const char *v = get(arg, "SERENA_R2_STATE_ENABLED");
    if (!is_on(v))
        return NULL;
    if (missing(get, arg, "S3_ENDPOINT") && missing(get, arg, "R2_ACCOUNT_ID"))
        return "R2_ACCOUNT_ID or S3_ENDPOINT";
    v = get(arg, "R2_BUCKET_NAME");
    if (v != NULL && v[0] == '\0')
        return "R2_BUCKET_NAME";
    if (missing(get, arg, "AWS_ACCESS_KEY_ID"))
        return "AWS_ACCESS_KEY_ID";
    if (missing(get, arg, "AWS_SECRET_ACCESS_KEY"))
        return "AWS_SECRET_ACCESS_KEY";
    return NULL;
}

/* Lookup over the parsed object of sr_rc_check_json: decodes into the scratch buffer. */
struct json_env {
    const struct sr_json_doc *doc;
    char *scratch;
    size_t cap;
};

static const char *json_get(void *arg, const char *name)
{
    struct json_env *e = arg;
    size_t len = 0;
    int32_t v = sr_json_obj_get(e->doc, 0, name, cstrlen(name));
    if (v < 0 || e->doc->toks[v].type != SR_JSON_STRING ||
        sr_json_str_decode(e->doc, (uint32_t)v, e->scratch, e->cap, &len) != 0 || len >= e->cap)
        return NULL;
    e->scratch[len] = '\0';
    return e->scratch;
}

int sr_rc_check_json(const char *json, size_t n, struct sr_json_tok *toks, uint32_t cap,
                     char *scratch, size_t scratch_cap, char *out, size_t out_cap,
                     struct sr_core_err *err)
{
    struct sr_json_doc doc;
    struct sr_json_error je;
    struct sr_jw w;
    struct json_env env;
    const char *miss, *on;
    size_t len = 0;

    if (sr_json_parse(&doc, json, n, toks, cap, &je) != 0 || doc.toks[0].type != SR_JSON_OBJECT) {
        struct sr_text t;
        sr_text_init(&t, err->msg, sizeof(err->msg));
        sr_text_put(&t, "run settings: not a JSON object of strings");
        return -1;
    }
    env.doc = &doc;
    env.scratch = scratch;
    env.cap = scratch_cap;
    sr_jw_init(&w, out, out_cap);
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "forward");
    sr_jw_arr_begin(&w);
    for (uint32_t i = 0; i < sr_rc_count; i++) {
        const char *v =
            sr_rc_settings[i].worker_sets ? NULL : json_get(&env, sr_rc_settings[i].env);
        if (v != NULL && v[0] != '\0')
            sr_jw_cstr(&w, sr_rc_settings[i].env);
    }
    sr_jw_arr_end(&w);
    sr_jw_key(&w, "errors");
    sr_jw_arr_begin(&w);
    for (uint32_t i = 0; i < sr_rc_count; i++) {
        struct sr_core_err e;
        const char *v = json_get(&env, sr_rc_settings[i].env);
        if (v == NULL || v[0] == '\0')
            continue;
        e.msg[0] = '\0';
        if (sr_rc_check(sr_rc_settings[i].env, cstrlen(sr_rc_settings[i].env), v, cstrlen(v), &e) <
            0)
            sr_jw_cstr(&w, e.msg);
    }
    sr_jw_arr_end(&w);
    miss = sr_rc_persistence_missing(json_get, &env);
    on = json_get(&env, "SERENA_R2_STATE_ENABLED");
    sr_jw_key(&w, "persistence");
    sr_jw_cstr(&w, !is_on(on) ? "disabled" : miss != NULL ? "degraded" : "ok");
    sr_jw_key(&w, "persistence_missing");
    sr_jw_cstr(&w, miss != NULL ? miss : "");
    sr_jw_obj_end(&w);
    sr_mem_set(scratch, 0, scratch_cap);
    if (sr_jw_finish(&w, &len) != 0 || len >= out_cap) {
        struct sr_text t;
        sr_text_init(&t, err->msg, sizeof(err->msg));
        sr_text_put(&t, "run settings: answer larger than the output buffer");
        return -1;
    }
    out[len] = '\0';
    return (int)len;
}
