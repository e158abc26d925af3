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
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "state");
    sr_jw_cstr(&w, "external");
    sr_jw_key(&w, "upstream_inflight");
    sr_jw_int(&w, e->upstream ? sr_upstream_inflight(e->upstream) : 0);
    sr_jw_obj_end(&w);
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
        SHA256((const unsigned char *)tok, toklen, q->digest);
    }
    struct evbuffer *body = sr_req_body(r);
    q->body_len = evbuffer_get_length(body);
    q->body = q->body_len ? (const char *)evbuffer_pullup(body, -1) : "";
}

void sr_edge_handle(struct sr_req *r, void *arg)
{
    struct sr_edge *e = arg;
    struct sr_request q;
    static struct sr_decision d; /* large; single-threaded loop */
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
    if (!e->upstream) {
        char body[SR_ERROR_BODY_MAX];
        int n = sr_error_body(body, sizeof(body), SR_RPC_SERVER_ERROR,
                              "No backend is configured for this route: start the gateway with "
                              "--upstream URL.",
                              d.rpc_id, strlen(d.rpc_id));
        sr_resp_json(r, 503, "Retry-After: 5\r\n", body, n < 0 ? 0 : (size_t)n);
        return;
    }
    if (d.shim == SR_SHIM_INITIALIZED) {
        /* Deliver first (the request is copied), then answer at once. */
        sr_relay_background(r, e->upstream, d.fix_accept, d.route);
        sr_resp_simple(r, 202, NULL, NULL, NULL, 0);
        return;
    }
    sr_relay_forward(r, e->upstream, d.fix_accept, d.rpc_id);
}
