/*
 * Carries out the core's decisions for each request (see edge.h).
 *
 * The host's part is small on purpose: collect the few headers the core
 * looks at, hash the bearer token, run sr_classify, then either answer or
 * relay. Every refusal body and status comes from the core, so the Worker
 * (core.wasm) answers byte for byte the same.
 */
#include "http/edge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/auth.h"
#include "core/errors.h"
#include "core/json.h"
#include "core/limits.h"
#include "http/log.h"
#include "http/relay.h"
#include "http/util.h"

/* Tokens for parsing request bodies. Single-threaded, so one array serves
 * every request; pages are touched only by bodies that need them. */
static struct sr_json_tok g_scratch[SR_JSON_MAX_TOKENS];

void sr_edge_set_tokens(struct sr_edge *e, struct sr_tokens *t)
{
    free(e->tokens);
    e->tokens = t;
    e->policy.tokens = t;
    e->health.token_count = t ? t->count : 0;
    e->health.strategy = sr_tokens_strategy(t);
}

int sr_edge_health(struct sr_edge *e, char *out, size_t cap)
{
    if (e->instances) {
        struct sr_inst_counts c;
        sr_instances_counts(e->instances, &c);
        e->health.inst_starting = c.starting;
        e->health.inst_ready = c.ready;
        e->health.inst_idle = c.idle;
        e->health.inst_stopping = c.stopping;
        e->health.inst_failed = c.failed;
        e->health.p_state = sr_instances_store_state(e->instances);
        e->health.status =
            c.failed || strcmp(e->health.p_state, "degraded") == 0 ? "degraded" : "ok";
    }
    e->health.uptime_seconds = (sr_now_us() - e->started_us) / 1000000u;
    e->health.generation = e->policy.generation;
    return sr_health_write(&e->health, out, cap);
}

static void answer_health(struct sr_edge *e, struct sr_req *r)
{
    char doc[SR_HEALTH_MAX];
    int n = sr_edge_health(e, doc, sizeof(doc));
    if (n < 0) {
        sr_resp_json(r, 500, NULL, "{}", 2);
        return;
    }
    sr_resp_simple(r, 200, "application/json", "Cache-Control: no-store\r\n", doc, (size_t)n);
}

/* The caller's own route and what backs it; nothing about other tokens. */
static void answer_status(struct sr_edge *e, struct sr_req *r, const struct sr_decision *d)
{
    char doc[1024];
    struct sr_jw w;
    sr_jw_init(&w, doc, sizeof(doc));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "route");
    sr_jw_cstr(&w, d->route);
    sr_jw_key(&w, "mode");
    sr_jw_cstr(&w, e->upstream ? "upstream" : "instances");
    sr_jw_key(&w, "instance");
    if (e->instances) {
        sr_instances_status(e->instances, d->route, &w);
    } else {
        sr_jw_obj_begin(&w);
        sr_jw_key(&w, "state");
        sr_jw_cstr(&w, "external");
        sr_jw_key(&w, "requests_in_flight");
        sr_jw_int(&w, e->upstream ? sr_upstream_inflight(e->upstream) : 0);
        sr_jw_obj_end(&w);
    }
    sr_jw_obj_end(&w);
    size_t n = 0;
    if (sr_jw_finish(&w, &n) < 0) {
        sr_resp_json(r, 500, NULL, "{}", 2);
        return;
    }
    sr_resp_simple(r, 200, "application/json", "Cache-Control: no-store\r\n", doc, n);
}

static void reject(struct sr_req *r, const struct sr_decision *d)
{
    char extra[256];
    size_t off = 0;
    extra[0] = '\0';
    if (d->allow)
        off += (size_t)snprintf(extra + off, sizeof(extra) - off, "Allow: %s\r\n", d->allow);
    if (d->www_authenticate)
        snprintf(extra + off, sizeof(extra) - off,
                 "WWW-Authenticate: Bearer realm=\"serena-remote\"\r\n");
    sr_resp_json(r, d->status, extra[0] ? extra : NULL, d->body, d->body_len);
}

static void fill_request(struct sr_req *r, struct sr_request *q)
{
    const struct sr_http_head *h = sr_req_head(r);
    memset(q, 0, sizeof(*q));
    q->method = h->method.p;
    q->method_len = h->method.n;
    q->path = h->path.p;
    q->path_len = h->path.n;
    q->origin = sr_req_header(r, "origin", &q->origin_len);
    q->accept = sr_req_header(r, "accept", &q->accept_len);
    q->session_id = sr_req_header(r, "mcp-session-id", &q->session_id_len);
    size_t an;
    const char *auth = sr_req_header(r, "authorization", &an);
    q->has_authorization = auth != NULL;
    const char *tok;
    size_t toklen;
    if (auth && sr_auth_parse_bearer(auth, an, &tok, &toklen) == 0) {
        q->has_bearer = true;
        sr_req_token_digest(r, tok, toklen, q->digest);
    }
    struct evbuffer *body = sr_req_body(r);
    q->body_len = evbuffer_get_length(body);
    q->body = q->body_len ? (const char *)evbuffer_pullup(body, -1) : "";
}

/* ---- per-route instances ------------------------------------------------ */

/* A forwarded request from classification until its relay ends. */
struct pending {
    struct sr_req *r;
    struct sr_instance *inst;
    struct sr_inst_wait *wait;
    bool is_post;
    bool fix_accept;
    enum sr_shim shim;
    char rpc_id[SR_RPC_ID_MAX + 1];
    char route[SR_ROUTE_MAX + 1];
};

static void pending_end(void *arg)
{
    struct pending *p = arg;
    sr_instance_request_end(p->inst, p->is_post);
    free(p);
}

static void pending_go(struct pending *p, struct sr_upstream *up, struct sr_instance *inst)
{
    p->inst = inst;
    if (p->shim == SR_SHIM_INITIALIZED) {
        sr_relay_background(p->r, up, p->fix_accept, p->route);
        sr_resp_simple(p->r, 202, NULL, NULL, NULL, 0);
        free(p);
        return;
    }
    sr_instance_request_begin(inst, p->is_post);
    struct sr_relay_opts ro = {
        .fix_accept = p->fix_accept, .rpc_id = p->rpc_id, .on_end = pending_end, .end_arg = p};
    sr_relay_forward(p->r, up, &ro);
}

static void pending_ready(void *arg, struct sr_upstream *up, struct sr_instance *inst, int status,
                          const char *msg)
{
    struct pending *p = arg;
    p->wait = NULL;
    sr_req_set_hooks(p->r, NULL, NULL, NULL);
    if (!up) {
        sr_relay_fail(p->r, status, 0, p->rpc_id, msg);
        free(p);
        return;
    }
    pending_go(p, up, inst);
}

static void pending_abort(struct sr_req *r, void *arg)
{
    struct pending *p = arg;
    (void)r;
    sr_instances_cancel_wait(p->wait);
    free(p);
}

static void forward_to_instance(struct sr_edge *e, struct sr_req *r, const struct sr_decision *d)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (!p) {
        sr_relay_fail(r, 503, 0, d->rpc_id, "The gateway is out of memory.");
        return;
    }
    const struct sr_http_head *h = sr_req_head(r);
    p->r = r;
    p->is_post = h->method.n == 4 && memcmp(h->method.p, "POST", 4) == 0;
    p->fix_accept = d->fix_accept;
    p->shim = d->shim;
    snprintf(p->rpc_id, sizeof(p->rpc_id), "%s", d->rpc_id);
    snprintf(p->route, sizeof(p->route), "%s", d->route);
    const char *name = d->token_index >= 0 ? e->tokens->e[d->token_index].name : "run";
    struct sr_upstream *up = NULL;
    struct sr_instance *inst = NULL;
    int status = 503;
    unsigned retry_after = 0;
    char msg[640];
    int rc = sr_instances_acquire(e->instances, d->route, name, e->policy.generation, pending_ready,
                                  p, &up, &inst, &p->wait, &status, &retry_after, msg, sizeof(msg));
    if (rc == SR_INST_READY_NOW) {
        pending_go(p, up, inst);
    } else if (rc == SR_INST_QUEUED) {
        /* Held until the instance is ready; a client that leaves drops its place. */
        sr_req_set_hooks(r, pending_abort, NULL, p);
    } else {
        sr_relay_fail(r, status, retry_after, p->rpc_id, msg);
        free(p);
    }
}

void sr_edge_set_internal_secret(struct sr_edge *e, const char *secret)
{
    e->has_secret = true;
    SHA256((const unsigned char *)secret, strlen(secret), e->secret_digest);
}

/* Digests of equal length compared in constant time: the secret's length does not leak. */
static bool internal_secret_ok(struct sr_edge *e, struct sr_req *r)
{
    const struct sr_http_head *h = sr_req_head(r);
    if (h->path.n == 7 && memcmp(h->path.p, "/health", 7) == 0)
        return true;
    size_t n;
    const char *v = sr_req_header(r, "x-serena-internal-secret", &n);
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)(v ? v : ""), v ? n : 0, d);
    return v && CRYPTO_memcmp(d, e->secret_digest, sizeof(d)) == 0;
}

void sr_edge_handle(struct sr_req *r, void *arg)
{
    struct sr_edge *e = arg;
    struct sr_request q;
    static struct sr_decision d; /* large; single-threaded loop */
    if (e->has_secret && !internal_secret_ok(e, r)) {
        char body[SR_ERROR_BODY_MAX];
        int n = sr_error_body(body, sizeof(body), SR_RPC_UNAUTHORIZED,
                              "This container only accepts requests relayed by its Worker "
                              "(X-Serena-Internal-Secret missing or wrong).",
                              NULL, 0);
        sr_resp_json(r, 401, NULL, body, n < 0 ? 0 : (size_t)n);
        return;
    }
    fill_request(r, &q);
    sr_classify(&e->policy, &q, g_scratch, SR_JSON_MAX_TOKENS, &d);
    if (d.route[0])
        sr_req_set_route(r, d.route);
    if (d.rpc_method[0])
        sr_req_set_rpc_method(r, d.rpc_method);
    switch (d.action) {
    case SR_ACT_HEALTH:
        answer_health(e, r);
        return;
    case SR_ACT_STATUS:
        answer_status(e, r, &d);
        return;
    case SR_ACT_REJECT:
        reject(r, &d);
        return;
    case SR_ACT_FORWARD:
        break;
    }
    if (e->instances) {
        forward_to_instance(e, r, &d);
        return;
    }
    if (!e->upstream) {
        sr_relay_fail(r, 503, 0, d.rpc_id, "No backend is configured for this route.");
        return;
    }
    if (d.shim == SR_SHIM_INITIALIZED) {
        /* Deliver first (the request is copied), then answer at once. */
        sr_relay_background(r, e->upstream, d.fix_accept, d.route);
        sr_resp_simple(r, 202, NULL, NULL, NULL, 0);
        return;
    }
    struct sr_relay_opts ro = {.fix_accept = d.fix_accept, .rpc_id = d.rpc_id};
    sr_relay_forward(r, e->upstream, &ro);
}
