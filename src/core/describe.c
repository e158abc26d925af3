/*
 * JSON descriptions of requests, decisions and health inputs (see describe.h).
 *
 * core.wasm cannot share C structs with JavaScript, and the test vectors
 * should be readable by people, so both speak these small JSON documents.
 * Keeping the conversion here, in the core, means the native vector runner
 * exercises exactly the code the Worker runs.
 */
#include "core/describe.h"

#include "core/auth.h"
#include "core/mem.h"
#include "core/sha256.h"
#include "core/text.h"

static void set_err(struct sr_core_err *err, const char *what, const char *why)
{
    struct sr_text t;

    if (err == NULL)
        return;
    sr_text_init(&t, err->msg, sizeof(err->msg));
    sr_text_put(&t, what);
    sr_text_put(&t, ": ");
    sr_text_put(&t, why);
}

/* Decode string token idx into store; *s and *n then describe the NUL-terminated copy. */
static int take_str(const struct sr_json_doc *doc, uint32_t idx, char *store, size_t cap,
                    size_t *used, const char **s, size_t *n)
{
    size_t len = 0;

    if (doc->toks[idx].type != SR_JSON_STRING || *used >= cap)
        return -1;
    if (sr_json_str_decode(doc, idx, store + *used, cap - *used - 1, &len) != 0)
        return -1;
    store[*used + len] = '\0';
    *s = store + *used;
    *n = len;
    *used += len + 1;
    return 0;
}

/* Optional header `name`: absent leaves *s NULL. */
static int take_header(const struct sr_json_doc *doc, int32_t hdrs, const char *name,
                       struct sr_request_desc *rd, const char **s, size_t *n,
                       struct sr_core_err *err)
{
    int32_t vi;

    *s = NULL;
    *n = 0;
    if (hdrs < 0)
        return 0;
    vi = sr_json_obj_get(doc, (uint32_t)hdrs, name, sr_str_len(name));
    if (vi < 0)
        return 0;
    if (take_str(doc, (uint32_t)vi, rd->store, sizeof(rd->store), &rd->used, s, n) != 0) {
        set_err(err, name, "header value must be a string that fits the header limit");
        return -1;
    }
    return 0;
}

int sr_describe_request(struct sr_request_desc *rd, const char *json, size_t n,
                        struct sr_json_tok *toks, uint32_t cap, struct sr_core_err *err)
{
    struct sr_json_doc doc;
    struct sr_json_error je;
    struct sr_request *r;
    int32_t mi, pi, hi, di, bi;
    const char *auth = NULL, *hex = NULL;
    size_t auth_len = 0, hex_len = 0;

    if (rd == NULL || json == NULL || toks == NULL) {
        set_err(err, "request", "missing argument");
        return -1;
    }
    r = &rd->req;
    sr_mem_set(r, 0, sizeof(*r));
    rd->used = 0;
    r->body = "";
    if (sr_json_parse(&doc, json, n, toks, cap, &je) != 0) {
        set_err(err, "request", je.msg != NULL ? je.msg : "not valid JSON");
        return -1;
    }
    if (doc.toks[0].type != SR_JSON_OBJECT) {
        set_err(err, "request", "must be a JSON object");
        return -1;
    }
    mi = sr_json_obj_get(&doc, 0, "method", 6);
    pi = sr_json_obj_get(&doc, 0, "path", 4);
    if (mi < 0 || take_str(&doc, (uint32_t)mi, rd->store, sizeof(rd->store), &rd->used, &r->method,
                           &r->method_len) != 0) {
        set_err(err, "method", "must be a string");
        return -1;
    }
    if (pi < 0 || take_str(&doc, (uint32_t)pi, rd->store, sizeof(rd->store), &rd->used, &r->path,
                           &r->path_len) != 0) {
        set_err(err, "path", "must be a string");
        return -1;
    }
    hi = sr_json_obj_get(&doc, 0, "headers", 7);
    if (hi >= 0 && doc.toks[hi].type != SR_JSON_OBJECT) {
        set_err(err, "headers", "must be an object of lower-case names to strings");
        return -1;
    }
    if (take_header(&doc, hi, "origin", rd, &r->origin, &r->origin_len, err) != 0 ||
        take_header(&doc, hi, "accept", rd, &r->accept, &r->accept_len, err) != 0 ||
        take_header(&doc, hi, "mcp-session-id", rd, &r->session_id, &r->session_id_len, err) != 0 ||
        take_header(&doc, hi, "mcp-protocol-version", rd, &r->protocol_version,
                    &r->protocol_version_len, err) != 0 ||
        take_header(&doc, hi, "mcp-method", rd, &r->mcp_method, &r->mcp_method_len, err) != 0 ||
        take_header(&doc, hi, "mcp-name", rd, &r->mcp_name, &r->mcp_name_len, err) != 0 ||
        take_header(&doc, hi, "authorization", rd, &auth, &auth_len, err) != 0)
        return -1;
    bi = sr_json_obj_get(&doc, 0, "mcp_header_repeated", 19);
    if (bi >= 0) {
        if (doc.toks[bi].type != SR_JSON_TRUE && doc.toks[bi].type != SR_JSON_FALSE) {
            set_err(err, "mcp_header_repeated", "must be true or false");
            return -1;
        }
        r->mcp_header_repeated = doc.toks[bi].type == SR_JSON_TRUE;
    }
    bi = sr_json_obj_get(&doc, 0, "body_too_large", 14);
    if (bi >= 0) {
        if (doc.toks[bi].type != SR_JSON_TRUE && doc.toks[bi].type != SR_JSON_FALSE) {
            set_err(err, "body_too_large", "must be true or false");
            return -1;
        }
        r->body_too_large = doc.toks[bi].type == SR_JSON_TRUE;
    }
    di = sr_json_obj_get(&doc, 0, "digest", 6);
    if (di >= 0) {
        if (take_str(&doc, (uint32_t)di, rd->store, sizeof(rd->store), &rd->used, &hex, &hex_len) !=
                0 ||
            hex_len != 2 * SR_SHA256_LEN) {
            set_err(err, "digest", "must be 64 hex digits");
            return -1;
        }
    }
    if (auth != NULL) {
        const char *tok = NULL;
        size_t tl = 0;

        r->has_authorization = true;
        if (sr_auth_parse_bearer(auth, auth_len, &tok, &tl) == 0) {
            r->has_bearer = true;
            if (hex != NULL) {
                if (sr_hex_decode(hex, SR_SHA256_LEN, r->digest) != 0) {
                    set_err(err, "digest", "must be 64 hex digits");
                    return -1;
                }
            } else {
                sr_sha256(tok, tl, r->digest);
            }
        }
        /* The header holds a secret: do not leave it in the store. */
        sr_mem_set((char *)auth, 0, auth_len);
    }
    return 0;
}

static const char *action_name(enum sr_action a)
{
    switch (a) {
    case SR_ACT_HEALTH:
        return "health";
    case SR_ACT_STATUS:
        return "status";
    case SR_ACT_FORWARD:
        return "forward";
    case SR_ACT_REJECT:
    default:
        return "reject";
    }
}

int sr_describe_decision(const struct sr_decision *d, char *out, size_t cap)
{
    struct sr_jw w;
    size_t len = 0;

    if (d == NULL || out == NULL)
        return -1;
    sr_jw_init(&w, out, cap);
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "action");
    sr_jw_cstr(&w, action_name(d->action));
    sr_jw_key(&w, "status");
    sr_jw_int(&w, d->status);
    sr_jw_key(&w, "allow");
    if (d->allow != NULL)
        sr_jw_cstr(&w, d->allow);
    else
        sr_jw_null(&w);
    sr_jw_key(&w, "www_authenticate");
    sr_jw_bool(&w, d->www_authenticate);
    sr_jw_key(&w, "token_index");
    sr_jw_int(&w, d->token_index);
    sr_jw_key(&w, "route");
    sr_jw_cstr(&w, d->route);
    sr_jw_key(&w, "shim");
    if (d->shim == SR_SHIM_INITIALIZED)
        sr_jw_cstr(&w, "initialized");
    else
        sr_jw_null(&w);
    sr_jw_key(&w, "fix_accept");
    sr_jw_bool(&w, d->fix_accept);
    sr_jw_key(&w, "is_initialize");
    sr_jw_bool(&w, d->is_initialize);
    sr_jw_key(&w, "stateless");
    sr_jw_bool(&w, d->stateless);
    sr_jw_key(&w, "protocol_version");
    /* Only a recognised version (plain ASCII from a fixed list) is ever stored here. */
    sr_jw_cstr(&w, d->protocol_version);
    sr_jw_key(&w, "rpc_method");
    /* The peeked method came from the strict reader, so it is valid UTF-8. */
    sr_jw_cstr(&w, d->rpc_method);
    sr_jw_key(&w, "rpc_id");
    sr_jw_cstr(&w, d->rpc_id);
    sr_jw_key(&w, "body");
    sr_jw_str(&w, d->body, d->body_len);
    sr_jw_obj_end(&w);
    if (sr_jw_finish(&w, &len) != 0 || len >= cap)
        return -1;
    out[len] = '\0';
    return (int)len;
}

/* Health input helpers: each leaves the default when the key is absent. */
static int h_str(const struct sr_json_doc *doc, int32_t obj, const char *key,
                 struct sr_health_desc *hd, const char **out, struct sr_core_err *err)
{
    int32_t vi;
    size_t n = 0;

    if (obj < 0)
        return 0;
    vi = sr_json_obj_get(doc, (uint32_t)obj, key, sr_str_len(key));
    if (vi < 0)
        return 0;
    if (take_str(doc, (uint32_t)vi, hd->store, sizeof(hd->store), &hd->used, out, &n) != 0) {
        set_err(err, key, "must be a short string");
        return -1;
    }
    return 0;
}

static int h_u64(const struct sr_json_doc *doc, int32_t obj, const char *key, uint64_t max,
                 uint64_t *out, struct sr_core_err *err)
{
    int32_t vi;
    int64_t v = 0;

    if (obj < 0)
        return 0;
    vi = sr_json_obj_get(doc, (uint32_t)obj, key, sr_str_len(key));
    if (vi < 0)
        return 0;
    if (sr_json_int64(doc, (uint32_t)vi, &v) != 0 || v < 0 || (uint64_t)v > max) {
        set_err(err, key, "must be a non-negative integer in range");
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int h_u32(const struct sr_json_doc *doc, int32_t obj, const char *key, uint32_t *out,
                 struct sr_core_err *err)
{
    uint64_t v = *out;

    if (h_u64(doc, obj, key, UINT32_MAX, &v, err) != 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int h_bool(const struct sr_json_doc *doc, int32_t obj, const char *key, bool *out,
                  struct sr_core_err *err)
{
    int32_t vi;

    if (obj < 0)
        return 0;
    vi = sr_json_obj_get(doc, (uint32_t)obj, key, sr_str_len(key));
    if (vi < 0)
        return 0;
    if (doc->toks[vi].type != SR_JSON_TRUE && doc->toks[vi].type != SR_JSON_FALSE) {
        set_err(err, key, "must be true or false");
        return -1;
    }
    *out = doc->toks[vi].type == SR_JSON_TRUE;
    return 0;
}

static int32_t h_obj(const struct sr_json_doc *doc, const char *key)
{
    int32_t vi = sr_json_obj_get(doc, 0, key, sr_str_len(key));

    return vi >= 0 && doc->toks[vi].type == SR_JSON_OBJECT ? vi : -1;
}

int sr_describe_health(struct sr_health_desc *hd, const char *json, size_t n,
                       struct sr_json_tok *toks, uint32_t cap, struct sr_core_err *err)
{
    struct sr_json_doc doc;
    struct sr_json_error je;
    struct sr_health *h;
    int32_t in, pe;

    if (hd == NULL || json == NULL || toks == NULL) {
        set_err(err, "health", "missing argument");
        return -1;
    }
    h = &hd->h;
    sr_mem_set(h, 0, sizeof(*h));
    hd->used = 0;
    h->status = "ok";
    h->role = "worker";
    h->upstream_mode = "instances";
    h->p_store = "none";
    h->p_bucket = "";
    h->p_prefix = "";
    h->p_partition = "durable-object";
    h->p_state = "disabled";
    if (sr_json_parse(&doc, json, n, toks, cap, &je) != 0) {
        set_err(err, "health", je.msg != NULL ? je.msg : "not valid JSON");
        return -1;
    }
    if (doc.toks[0].type != SR_JSON_OBJECT) {
        set_err(err, "health", "must be a JSON object");
        return -1;
    }
    in = h_obj(&doc, "instances");
    pe = h_obj(&doc, "persistence");
    if (h_str(&doc, 0, "status", hd, &h->status, err) != 0 ||
        h_str(&doc, 0, "reason", hd, &h->reason, err) != 0 ||
        h_bool(&doc, in, "unknown", &h->inst_unknown, err) != 0 ||
        h_str(&doc, 0, "role", hd, &h->role, err) != 0 ||
        h_str(&doc, 0, "mode", hd, &h->upstream_mode, err) != 0 ||
        h_u64(&doc, 0, "uptime_seconds", UINT64_MAX / 2, &h->uptime_seconds, err) != 0 ||
        h_u32(&doc, in, "max", &h->max_instances, err) != 0 ||
        h_u32(&doc, in, "starting", &h->inst_starting, err) != 0 ||
        h_u32(&doc, in, "ready", &h->inst_ready, err) != 0 ||
        h_u32(&doc, in, "idle", &h->inst_idle, err) != 0 ||
        h_u32(&doc, in, "stopping", &h->inst_stopping, err) != 0 ||
        h_u32(&doc, in, "failed", &h->inst_failed, err) != 0 ||
        h_bool(&doc, pe, "enabled", &h->p_enabled, err) != 0 ||
        h_str(&doc, pe, "store", hd, &h->p_store, err) != 0 ||
        h_str(&doc, pe, "bucket", hd, &h->p_bucket, err) != 0 ||
        h_str(&doc, pe, "prefix", hd, &h->p_prefix, err) != 0 ||
        h_str(&doc, pe, "partition_mode", hd, &h->p_partition, err) != 0 ||
        h_u32(&doc, pe, "interval_seconds", &h->p_interval, err) != 0 ||
        h_u32(&doc, pe, "retention_count", &h->p_retention, err) != 0 ||
        h_bool(&doc, pe, "strict", &h->p_strict, err) != 0 ||
        h_bool(&doc, pe, "encrypted", &h->p_encrypted, err) != 0 ||
        h_str(&doc, pe, "state", hd, &h->p_state, err) != 0)
        return -1;
    return 0;
}
