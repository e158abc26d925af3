/*
 * Carries out the core's decisions for each request (see edge.h).
 *
 * The host's part is small on purpose: collect the few headers the core
 * looks at, hash the bearer token, run sr_classify, then either answer or
 * relay. Every refusal body and status comes from the core, so the Worker
 * (core.wasm) answers byte for byte the same.
 */
#include "http/edge.h"

#include "core/oauth.h"

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
#include "http/reinit.h"
#include "http/relay.h"
#include "http/util.h"
#include "metrics/metrics.h"
#include "core/route.h"

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
    if (e->oauth && t)
        sr_oauth_tokens_changed(e->oauth, t);
    if (e->idp && t)
        sr_idp_tokens_changed(e->idp, t);
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
        /* A reason the gateway gave at start (run: persistence asked for but incomplete, so it
         * runs with local state only) keeps it degraded. */
        if (e->health.reason && *e->health.reason) {
            e->health.status = "degraded";
            if (strcmp(e->health.p_state, "disabled") == 0)
                e->health.p_state = "degraded";
        }
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
    char doc[SR_STATUS_DOC_MAX];
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

static void reject(struct sr_edge *e, struct sr_req *r, const struct sr_decision *d)
{
    char extra[1024];
    size_t off = 0;
    extra[0] = '\0';
    if (d->allow)
        off += (size_t)snprintf(extra + off, sizeof(extra) - off, "Allow: %s\r\n", d->allow);
    if (d->www_authenticate && (e->oauth || e->idp)) { /* RFC 9728 section 5.1: where to sign in */
        size_t an = 0;
        bool sent = sr_req_header(r, "authorization", &an) != NULL;
        snprintf(extra + off, sizeof(extra) - off, "%s",
                 e->idp ? sr_idp_www_authenticate(e->idp, sent)
                        : sr_oauth_www_authenticate(e->oauth, sent));
    } else if (d->www_authenticate)
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
    q->protocol_version = sr_req_header(r, "mcp-protocol-version", &q->protocol_version_len);
    q->mcp_method = sr_req_header(r, "mcp-method", &q->mcp_method_len);
    q->mcp_name = sr_req_header(r, "mcp-name", &q->mcp_name_len);
    /* The core refuses a routing header given twice (the spans above are the first copy, and
     * the backend might read another), so count the copies. Names are RFC 9110 tokens. */
    static const char *const routing[] = {"mcp-protocol-version", "mcp-method", "mcp-name"};
    unsigned copies[3] = {0, 0, 0};
    for (uint32_t i = 0; i < h->nh; i++) {
        const struct sr_span *nm = &h->h[i].name;
        for (size_t k = 0; k < 3; k++) {
            size_t len = strlen(routing[k]), j;
            if (nm->n != len)
                continue;
            for (j = 0; j < len; j++) {
                char c = nm->p[j];
                if (c >= 'A' && c <= 'Z')
                    c = (char)(c - 'A' + 'a');
                if (c != routing[k][j])
                    break;
            }
            if (j == len && ++copies[k] > 1)
                q->mcp_header_repeated = true;
        }
    }
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

/* ---- forwarding with edge sessions --------------------------------------- */

/*
 * A forwarded POST or DELETE from classification until its relay ends. With
 * an edge session it carries the client's id, from which a re-initialization
 * of the backend session takes the recorded initialize (decrypted only then),
 * so the request can wait for an instance, a re-initialization and one retry.
 */
struct pending {
    struct sr_edge *e;
    struct sr_req *r;
    struct sr_instance *inst; /* NULL in --upstream mode */
    struct sr_upstream *up;
    struct sr_inst_wait *wait;
    struct sr_reinit *ri;
    bool is_post, is_delete, fix_accept, initialize, session, retried, counted, stateless, resent;
    struct event *retry; /* pending_unsent: the moment before the request goes through again */
    enum sr_shim shim;
    char rpc_id[SR_RPC_ID_MAX + 1];
    char route[SR_ROUTE_MAX + 1];
    char name[SR_TOKEN_NAME_MAX + 1];
    char proto[64];
    char backend[SR_SESSION_BACKEND_ID_MAX + 1];
    char sid[SR_SESSION_ID_MAX];
    size_t sid_len;
    char *reinit; /* heap: the initialize body of a re-initialization */
    size_t reinit_len;
    char *project; /* heap: activate_project's argument, remembered when it succeeds */
};

/* Ends the request's accounting on its instance, if it was counted, and frees it. */
static void pending_free(struct pending *p)
{
    if (p->counted)
        sr_instance_request_end(p->inst, p->is_post);
    if (p->retry)
        event_free(p->retry);
    free(p->reinit);
    free(p->project);
    free(p);
}

static uint64_t target_inc(const struct pending *p)
{
    return p->inst ? sr_instance_incarnation(p->inst) : 0;
}

static void pending_end(void *arg)
{
    pending_free(arg);
}

/* The upstream's session id on an initialize answer: bind it to a new edge id, which the
 * client gets instead. On any other answer it is dropped: the client already holds its id
 * (clients keep theirs when an answer has none, and MCP asks for the header only with the
 * InitializeResult), and echoing a sealed id of a few hundred bytes on every answer cost about
 * 3 us of gateway CPU a request (bench/results.md). */
static const char *pending_session(void *arg, const char *v, size_t n)
{
    struct pending *p = arg;
    if (!p->initialize)
        return NULL;
    struct evbuffer *body = sr_req_body(p->r);
    size_t bl = evbuffer_get_length(body);
    const char *b = bl ? (const char *)evbuffer_pullup(body, -1) : "";
    int len = sr_sessions_issue(p->e->sessions, p->name, b, bl, p->sid, sizeof(p->sid));
    if (len < 0) {
        sr_log_event("error", "route=%s cannot issue a session id; the client gets none", p->route);
        return NULL;
    }
    p->sid_len = (size_t)len;
    sr_sessions_bind(p->e->sessions, p->sid, p->sid_len, v, n, target_inc(p));
    return p->sid;
}

/* activate_project answered: remember the project when it succeeded. */
static void pending_tap(void *arg, int status, const char *body, size_t n)
{
    struct pending *p = arg;
    bool is_error = true;
    if (status == 200 && p->inst && p->project && sr_rpc_result_in(body, n, &is_error) && !is_error)
        sr_instance_set_project(p->inst, p->project, strlen(p->project));
}

static void pending_send(struct pending *p);
static void pending_unsent(void *arg);

static void pending_reinit_done(void *arg, const char *backend, const char *err)
{
    struct pending *p = arg;
    p->ri = NULL;
    sr_req_set_hooks(p->r, NULL, NULL, NULL);
    if (!backend) {
        sr_log_event("warn", "route=%s %s", p->route, err);
        char msg[400];
        snprintf(msg, sizeof(msg), "the session could not be resumed on the backend (%s)", err);
        sr_relay_fail(p->r, 502, 0, p->rpc_id, msg);
        pending_free(p);
        return;
    }
    sr_sessions_bind(p->e->sessions, p->sid, p->sid_len, backend, strlen(backend), target_inc(p));
    snprintf(p->backend, sizeof(p->backend), "%s", backend);
    sr_log_event("info", "route=%s resumed a client session on a new backend session", p->route);
    pending_send(p);
}

static void pending_abort(struct sr_req *r, void *arg)
{
    struct pending *p = arg;
    (void)r;
    sr_instances_cancel_wait(p->wait);
    sr_reinit_cancel(p->ri);
    pending_free(p);
}

/*
 * The initialize body that resumes an opened session on a new backend session (heap; NULL when it
 * cannot be had), and the recorded protocol version into proto when proto is empty. The id is
 * decrypted again only here: a request on a live mapping never needs it.
 */
static char *reinit_body(struct sr_edge *e, const char *sid, size_t n, size_t *len, char *proto,
                         size_t proto_cap)
{
    static char buf[SR_SESSION_PLAIN_MAX + 128];
    char recorded[64];
    int l = sr_sessions_reinit(e->sessions, sid, n, buf, sizeof(buf), recorded, sizeof(recorded));
    if (l < 0)
        return NULL;
    char *out = malloc((size_t)l + 1);
    if (!out)
        return NULL;
    memcpy(out, buf, (size_t)l + 1);
    *len = (size_t)l;
    if (!proto[0])
        snprintf(proto, proto_cap, "%s", recorded);
    return out;
}

/* Re-initialize the backend session, then send. */
static void pending_reinit(struct pending *p)
{
    if (!p->reinit)
        p->reinit =
            reinit_body(p->e, p->sid, p->sid_len, &p->reinit_len, p->proto, sizeof(p->proto));
    if (!p->reinit || sr_reinit_start(p->up, p->reinit, p->reinit_len, p->proto,
                                      pending_reinit_done, p, &p->ri) < 0) {
        sr_relay_fail(p->r, 502, 0, p->rpc_id, "cannot re-initialize the backend session");
        pending_free(p);
        return;
    }
    sr_req_set_hooks(p->r, pending_abort, NULL, p);
}

/* The backend answered 404 to a mapped session: it lost it (and got nothing). Resume once. */
static void pending_lost(void *arg)
{
    struct pending *p = arg;
    sr_sessions_unbind(p->e->sessions, p->sid, p->sid_len);
    if (p->retried) {
        char body[SR_ERROR_BODY_MAX];
        int n = sr_session_error_body(SR_SESSION_E_FORGED, p->rpc_id, strlen(p->rpc_id), body,
                                      sizeof(body));
        sr_resp_json(p->r, 404, NULL, body, n < 0 ? 0 : (size_t)n);
        pending_free(p);
        return;
    }
    p->retried = true;
    sr_log_event("info", "route=%s backend lost a session: re-initializing it", p->route);
    pending_reinit(p);
}

static void pending_send(struct pending *p)
{
    if (p->shim == SR_SHIM_INITIALIZED) {
        sr_relay_background(p->r, p->up, p->fix_accept, p->route, p->session ? p->backend : NULL);
        sr_resp_simple(p->r, 202, NULL, NULL, NULL, 0);
        pending_free(p);
        return;
    }
    struct sr_relay_opts ro = {
        .fix_accept = p->fix_accept,
        .rpc_id = p->rpc_id,
        .on_end = pending_end,
        .end_arg = p,
        /* The edge's id never reaches a backend: a mapped session sends the backend's own, an
         * initialize or a stateless (2026-07-28) request sends none. */
        .session_up = p->session ? p->backend : (p->initialize || p->stateless ? "" : NULL),
        .protocol = p->session ? p->proto : NULL,
        .on_session = p->session || p->initialize ? pending_session : NULL,
        .on_lost = p->session ? pending_lost : NULL,
        .on_unsent = p->inst ? pending_unsent : NULL,
        .on_tap = p->project ? pending_tap : NULL,
    };
    /* A GET relayed as it is (--upstream mode) is a server-to-client stream: no work to drain. */
    if (!p->is_post && !p->is_delete)
        sr_req_set_idle_stream(p->r, true);
    sr_relay_forward(p->r, p->up, &ro);
}

/* The route's backend is ready: find the backend session, or make one, then send. */
static void pending_go(struct pending *p, struct sr_upstream *up, struct sr_instance *inst)
{
    p->up = up;
    p->inst = inst;
    /* Counted from here, re-initialization included: a busy instance is never evicted or put
     * to sleep under a request. */
    if (inst && !p->counted && p->shim != SR_SHIM_INITIALIZED) {
        sr_instance_request_begin(inst, p->is_post);
        p->counted = true;
    }
    if (!p->session) {
        pending_send(p);
        return;
    }
    const char *b = sr_sessions_backend(p->e->sessions, p->sid, p->sid_len, target_inc(p));
    if (b) {
        snprintf(p->backend, sizeof(p->backend), "%s", b);
        pending_send(p);
        return;
    }
    if (p->shim == SR_SHIM_INITIALIZED) {
        /* The re-initialization of the next request sends its own notification. */
        sr_resp_simple(p->r, 202, NULL, NULL, NULL, 0);
        pending_free(p);
        return;
    }
    pending_reinit(p);
}

static void pending_ready(void *arg, struct sr_upstream *up, struct sr_instance *inst, int status,
                          const char *msg)
{
    struct pending *p = arg;
    p->wait = NULL;
    sr_req_set_hooks(p->r, NULL, NULL, NULL);
    if (!up) {
        sr_relay_fail(p->r, status, 0, p->rpc_id, msg);
        pending_free(p);
        return;
    }
    pending_go(p, up, inst);
}

/* tools/call of activate_project: its project argument (a path or a registered name). */
static char *activate_project_arg(struct sr_req *r)
{
    struct evbuffer *body = sr_req_body(r);
    size_t n = evbuffer_get_length(body);
    struct sr_json_doc doc;
    if (!n ||
        sr_json_parse(&doc, (const char *)evbuffer_pullup(body, -1), n, g_scratch,
                      SR_JSON_MAX_TOKENS, NULL) != 0 ||
        doc.toks[0].type != SR_JSON_OBJECT)
        return NULL;
    int32_t params = sr_json_obj_get(&doc, 0, "params", 6);
    if (params < 0 || doc.toks[params].type != SR_JSON_OBJECT)
        return NULL;
    int32_t name = sr_json_obj_get(&doc, (uint32_t)params, "name", 4);
    int32_t args = sr_json_obj_get(&doc, (uint32_t)params, "arguments", 9);
    if (name < 0 || !sr_json_str_eq(&doc, (uint32_t)name, "activate_project", 16) || args < 0 ||
        doc.toks[args].type != SR_JSON_OBJECT)
        return NULL;
    int32_t proj = sr_json_obj_get(&doc, (uint32_t)args, "project", 7);
    char buf[SR_PROJECT_MAX + 1];
    size_t len = 0;
    if (proj < 0 || doc.toks[proj].type != SR_JSON_STRING ||
        sr_json_str_decode(&doc, (uint32_t)proj, buf, sizeof(buf) - 1, &len) != 0 || len == 0)
        return NULL;
    buf[len] = '\0';
    return strdup(buf);
}

/* The access log's audit field: the tool a tools/call names (params.name), when it is one. */
static void log_tool_name(struct sr_req *r)
{
    struct evbuffer *body = sr_req_body(r);
    size_t n = evbuffer_get_length(body);
    struct sr_json_doc doc;
    if (!n ||
        sr_json_parse(&doc, (const char *)evbuffer_pullup(body, -1), n, g_scratch,
                      SR_JSON_MAX_TOKENS, NULL) != 0 ||
        doc.toks[0].type != SR_JSON_OBJECT)
        return;
    int32_t params = sr_json_obj_get(&doc, 0, "params", 6);
    int32_t name = params >= 0 && doc.toks[params].type == SR_JSON_OBJECT
                       ? sr_json_obj_get(&doc, (uint32_t)params, "name", 4)
                       : -1;
    char buf[SR_TOOL_NAME_MAX + 1];
    size_t len = 0;
    if (name < 0 || doc.toks[name].type != SR_JSON_STRING ||
        sr_json_str_decode(&doc, (uint32_t)name, buf, sizeof(buf) - 1, &len) != 0)
        return;
    buf[len] = '\0';
    sr_req_set_tool(r, buf);
}

/* Get the route's instance (starting it when it sleeps), then go on with the request. */
static void pending_acquire(struct pending *p)
{
    struct sr_edge *e = p->e;
    struct sr_upstream *up = NULL;
    struct sr_instance *inst = NULL;
    int status = 503;
    unsigned retry_after = 0;
    char msg[640];
    int rc =
        sr_instances_acquire(e->instances, p->route, p->name, e->policy.generation, pending_ready,
                             p, &up, &inst, &p->wait, &status, &retry_after, msg, sizeof(msg));
    if (rc == SR_INST_READY_NOW) {
        pending_go(p, up, inst);
    } else if (rc == SR_INST_QUEUED) {
        /* Held until the instance is ready; a client that leaves drops its place. */
        sr_req_set_hooks(p->r, pending_abort, NULL, p);
    } else {
        sr_relay_fail(p->r, status, retry_after, p->rpc_id, msg);
        pending_free(p);
    }
}

static void pending_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    (void)fd;
    (void)what;
    pending_acquire(p);
}

/*
 * Nothing answered on the backend's port: it died a moment ago, before the manager saw it exit.
 * The request was not sent, so it waits a moment (the manager learns of the exit from the
 * process's pidfd) and goes through the instance again, which restarts the backend; once.
 */
static void pending_unsent(void *arg)
{
    struct pending *p = arg;
    if (p->counted)
        sr_instance_request_end(p->inst, p->is_post);
    p->counted = false;
    if (p->resent || !p->e->instances ||
        !(p->retry = evtimer_new(p->e->base, pending_retry_cb, p))) {
        sr_relay_fail(p->r, 502, 0, p->rpc_id, "cannot connect to the backend");
        pending_free(p);
        return;
    }
    p->resent = true;
    sr_log_event("info",
                 "route=%s backend gone before the request reached it: sending it again "
                 "once the instance runs",
                 p->route);
    struct timeval tv = {0, SR_RESEND_DELAY_MS * 1000};
    evtimer_add(p->retry, &tv);
    sr_req_set_hooks(p->r, pending_abort, NULL, p);
}

static const char *token_name(const struct sr_edge *e, const struct sr_decision *d)
{
    return d->token_index >= 0 ? e->tokens->e[d->token_index].name : "run";
}

static void answer_session_error(struct sr_req *r, int err, const struct sr_decision *d)
{
    char body[SR_ERROR_BODY_MAX];
    int n = sr_session_error_body(err, d->rpc_id, strlen(d->rpc_id), body, sizeof(body));
    sr_resp_json(r, 404, NULL, body, n < 0 ? 0 : (size_t)n);
}

static void stream_open(struct sr_edge *e, struct sr_req *r, const struct sr_decision *d,
                        const char *sid, size_t sid_len);

static void forward(struct sr_edge *e, struct sr_req *r, const struct sr_decision *d)
{
    const struct sr_http_head *h = sr_req_head(r);
    bool is_get = h->method.n == 3 && memcmp(h->method.p, "GET", 3) == 0;
    bool is_delete = h->method.n == 6 && memcmp(h->method.p, "DELETE", 6) == 0;
    bool is_post = h->method.n == 4 && memcmp(h->method.p, "POST", 4) == 0;
    const char *name = token_name(e, d);
    size_t sid_len = 0;
    const char *sid = sr_req_header(r, "mcp-session-id", &sid_len);
    /* An initialize opens a new session, even from a client that sent an id of its own. */
    bool initialize = is_post && (d->is_initialize || strcmp(d->rpc_method, "initialize") == 0);
    bool session = e->sessions && !d->stateless && !initialize && sid && sid_len;
    if (session) {
        if (sid_len >= SR_SESSION_ID_MAX) {
            answer_session_error(r, SR_SESSION_E_FORMAT, d);
            return;
        }
        int rc = sr_sessions_open(e->sessions, sid, sid_len, name);
        if (rc != SR_SESSION_OK) {
            sr_log_event("info", "route=%s refused a session id: %s", d->route,
                         rc == SR_SESSION_E_FOREIGN   ? "another token's"
                         : rc == SR_SESSION_E_EXPIRED ? "expired"
                         : rc == SR_SESSION_E_ENDED   ? "ended by DELETE"
                         : rc == SR_SESSION_E_FORGED  ? "does not verify"
                                                      : "not one of ours");
            answer_session_error(r, rc, d);
            return;
        }
    }
    if (is_get && session && e->instances) {
        stream_open(e, r, d, sid, sid_len);
        return;
    }
    if (is_delete && session) {
        /* The edge session ends here; the backend's, if one serves it now, is ended too. */
        const char *b = NULL;
        struct sr_instance *inst = e->instances ? sr_instances_ready(e->instances, d->route) : NULL;
        if (inst || e->upstream)
            b = sr_sessions_backend(e->sessions, sid, sid_len,
                                    inst ? sr_instance_incarnation(inst) : 0);
        char backend[SR_SESSION_BACKEND_ID_MAX + 1];
        snprintf(backend, sizeof(backend), "%s", b ? b : "");
        sr_sessions_end(e->sessions, sid, sid_len);
        if (!b) {
            sr_resp_simple(r, 200, NULL, NULL, NULL, 0);
            return;
        }
        struct sr_relay_opts ro = {
            .fix_accept = d->fix_accept, .rpc_id = d->rpc_id, .session_up = backend};
        sr_relay_forward(r, inst ? sr_instance_upstream(inst) : e->upstream, &ro);
        return;
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (!p) {
        sr_relay_fail(r, 503, 0, d->rpc_id, "The gateway is out of memory.");
        return;
    }
    p->e = e;
    p->r = r;
    p->is_post = is_post;
    p->is_delete = is_delete;
    p->fix_accept = d->fix_accept;
    p->shim = d->shim;
    p->initialize = initialize && e->sessions;
    p->stateless = d->stateless;
    p->session = session;
    snprintf(p->rpc_id, sizeof(p->rpc_id), "%s", d->rpc_id);
    snprintf(p->route, sizeof(p->route), "%s", d->route);
    snprintf(p->name, sizeof(p->name), "%s", name);
    if (session) {
        memcpy(p->sid, sid, sid_len);
        p->sid[sid_len] = '\0';
        p->sid_len = sid_len;
        size_t pn = 0;
        const char *pv = sr_req_header(r, "mcp-protocol-version", &pn);
        if (pv && pn < sizeof(p->proto)) {
            memcpy(p->proto, pv, pn);
            p->proto[pn] = '\0';
        }
    }
    if (is_post && e->instances && strcmp(d->rpc_method, "tools/call") == 0)
        p->project = activate_project_arg(r);
    if (!e->instances) {
        pending_go(p, e->upstream, NULL);
        return;
    }
    pending_acquire(p);
}

/* ---- GET streams that outlive their backend ------------------------------ */

/*
 * A client's standing GET /mcp stream in a session. The edge answers it
 * itself (200, an event stream) and attaches it to the route's backend only
 * while that backend runs: a stream never starts or keeps up a backend. When
 * the backend goes (sleep, crash, a new generation), the stream is parked:
 * it stays open with a comment every SR_STREAM_KEEPALIVE seconds, and is
 * attached again when the route's backend is next ready.
 */
struct gstream {
    struct sr_edge *e;
    struct sr_req *r;
    struct gstream *prev, *next;
    struct sr_up_req *q;
    struct sr_reinit *ri;
    struct event *keepalive;
    struct sr_upstream *up;
    uint64_t inc;
    bool head_sent, retried, paused;
    int status;
    char name[SR_TOKEN_NAME_MAX + 1];
    char sid[SR_SESSION_ID_MAX];
    size_t sid_len;
    char proto[64];
    char backend[SR_SESSION_BACKEND_ID_MAX + 1];
    char *reinit;
    size_t reinit_len;
};

static void stream_attach(struct gstream *g, struct sr_instance *inst);

static void stream_head(struct gstream *g)
{
    if (g->head_sent)
        return;
    g->head_sent = true;
    struct evbuffer *hl = evbuffer_new();
    if (hl)
        evbuffer_add_printf(hl,
                            "content-type: text/event-stream\r\n"
                            "cache-control: no-cache, no-transform\r\n"
                            "x-accel-buffering: no\r\nmcp-session-id: %s\r\n",
                            g->sid);
    sr_resp_start(g->r, 200, "OK", 2, hl, -1);
    if (hl)
        evbuffer_free(hl);
}

static void stream_free(struct gstream *g)
{
    struct sr_edge *e = g->e;
    if (g->prev)
        g->prev->next = g->next;
    else if (e->streams == g)
        e->streams = g->next;
    if (g->next)
        g->next->prev = g->prev;
    if (g->q)
        sr_up_cancel(g->q);
    sr_reinit_cancel(g->ri);
    if (g->keepalive)
        event_free(g->keepalive);
    free(g->reinit);
    free(g);
}

static void stream_keepalive(evutil_socket_t fd, short what, void *arg)
{
    struct gstream *g = arg;
    (void)fd;
    (void)what;
    struct evbuffer *b = evbuffer_new();
    if (b) {
        evbuffer_add(b, ": serena-remote keep-alive\r\n\r\n", 30);
        sr_resp_body(g->r, b);
        evbuffer_free(b);
    }
    struct timeval tv = {SR_STREAM_KEEPALIVE, 0};
    evtimer_add(g->keepalive, &tv);
}

/* No backend behind the stream now: keep the client's side open and wait for the next one. */
static void stream_park(struct gstream *g)
{
    g->q = NULL;
    g->up = NULL;
    stream_head(g);
    struct timeval tv = {SR_STREAM_KEEPALIVE, 0};
    evtimer_add(g->keepalive, &tv);
}

static void gs_head(void *arg, const struct sr_http_head *h)
{
    struct gstream *g = arg;
    g->status = h->status;
    if (h->status == 200)
        stream_head(g);
}

static void gs_data(void *arg, struct evbuffer *data)
{
    struct gstream *g = arg;
    if (g->status != 200) {
        evbuffer_drain(data, evbuffer_get_length(data));
        return;
    }
    sr_resp_body(g->r, data);
    if (sr_resp_pending(g->r) > SR_RELAY_HIGH_WATER && g->q) {
        g->paused = true;
        sr_up_pause(g->q, true);
    }
}

static void gs_ended(struct gstream *g)
{
    g->q = NULL;
    if (g->status == 404 && !g->retried && g->up) {
        /* The backend lost the session: resume it once on this backend. */
        g->retried = true;
        sr_sessions_unbind(g->e->sessions, g->sid, g->sid_len);
        g->backend[0] = '\0';
        stream_attach(g, NULL);
        return;
    }
    if (g->status != 200 && g->status != 0 && !g->head_sent) {
        /* The backend refused the stream (405: it offers none; 409: one is open already). */
        char msg[200], body[SR_ERROR_BODY_MAX];
        snprintf(msg, sizeof(msg), "The MCP server refused the GET stream (HTTP %d).", g->status);
        int n = sr_error_body(body, sizeof(body), SR_RPC_SERVER_ERROR, msg, NULL, 0);
        struct sr_req *r = g->r;
        int status = g->status;
        sr_req_set_hooks(r, NULL, NULL, NULL);
        stream_free(g);
        sr_resp_json(r, status, NULL, body, n < 0 ? 0 : (size_t)n);
        return;
    }
    stream_park(g);
}

static void gs_done(void *arg)
{
    gs_ended(arg);
}

static void gs_error(void *arg, const char *what, bool got_head)
{
    struct gstream *g = arg;
    (void)what;
    if (!got_head)
        g->status = 0;
    gs_ended(g);
}

static const struct sr_up_cbs gstream_cbs = {gs_head, gs_data, gs_done, gs_error};

static void stream_get(struct gstream *g)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        stream_park(g);
        return;
    }
    evbuffer_add_printf(b,
                        "GET %s HTTP/1.1\r\nHost: %s\r\naccept: text/event-stream\r\n"
                        "mcp-session-id: %s\r\n",
                        sr_upstream_path(g->up), sr_upstream_hostport(g->up), g->backend);
    if (g->proto[0])
        evbuffer_add_printf(b, "mcp-protocol-version: %s\r\n", g->proto);
    evbuffer_add(b, "\r\n", 2);
    g->status = 0;
    if (sr_up_send(g->up, b, false, &gstream_cbs, g, &g->q) < 0) {
        evbuffer_free(b);
        stream_park(g);
    }
}

static void gs_reinit_done(void *arg, const char *backend, const char *err)
{
    struct gstream *g = arg;
    g->ri = NULL;
    if (!backend) {
        sr_log_event("warn", "GET stream not attached: %s", err);
        stream_park(g);
        return;
    }
    sr_sessions_bind(g->e->sessions, g->sid, g->sid_len, backend, strlen(backend), g->inc);
    snprintf(g->backend, sizeof(g->backend), "%s", backend);
    stream_get(g);
}

/* Attach to the route's running backend (inst, or the one g was on): its session, then GET. */
static void stream_attach(struct gstream *g, struct sr_instance *inst)
{
    if (g->q || g->ri)
        return;
    if (inst) {
        g->up = sr_instance_upstream(inst);
        g->inc = sr_instance_incarnation(inst);
        g->retried = false;
    }
    if (!g->up) {
        stream_park(g);
        return;
    }
    evtimer_del(g->keepalive);
    const char *b = sr_sessions_backend(g->e->sessions, g->sid, g->sid_len, g->inc);
    if (b) {
        snprintf(g->backend, sizeof(g->backend), "%s", b);
        stream_get(g);
        return;
    }
    if (!g->reinit)
        g->reinit =
            reinit_body(g->e, g->sid, g->sid_len, &g->reinit_len, g->proto, sizeof(g->proto));
    if (!g->reinit ||
        sr_reinit_start(g->up, g->reinit, g->reinit_len, g->proto, gs_reinit_done, g, &g->ri) < 0)
        stream_park(g);
}

static void gs_abort(struct sr_req *r, void *arg)
{
    (void)r;
    stream_free(arg);
}

static void gs_drain(struct sr_req *r, void *arg)
{
    struct gstream *g = arg;
    if (g->paused && g->q && sr_resp_pending(r) <= SR_RELAY_LOW_WATER) {
        g->paused = false;
        sr_up_pause(g->q, false);
    }
}

static void stream_open(struct sr_edge *e, struct sr_req *r, const struct sr_decision *d,
                        const char *sid, size_t sid_len)
{
    struct gstream *g = calloc(1, sizeof(*g));
    if (g)
        g->keepalive = evtimer_new(e->base, stream_keepalive, g);
    if (!g || !g->keepalive) {
        free(g);
        sr_relay_fail(r, 503, 0, d->rpc_id, "The gateway is out of memory.");
        return;
    }
    g->e = e;
    g->r = r;
    memcpy(g->sid, sid, sid_len);
    g->sid[sid_len] = '\0';
    g->sid_len = sid_len;
    snprintf(g->name, sizeof(g->name), "%s", token_name(e, d));
    size_t pn = 0;
    const char *pv = sr_req_header(r, "mcp-protocol-version", &pn);
    if (pv && pn < sizeof(g->proto)) {
        memcpy(g->proto, pv, pn);
        g->proto[pn] = '\0';
    }
    g->next = e->streams;
    if (e->streams)
        e->streams->prev = g;
    e->streams = g;
    sr_req_set_hooks(r, gs_abort, gs_drain, g);
    sr_req_set_idle_stream(r, true);
    struct sr_instance *inst = sr_instances_ready(e->instances, d->route);
    if (inst)
        stream_attach(g, inst);
    else
        stream_park(g);
}

void sr_edge_instance_state(void *arg, const char *route, struct sr_instance *inst, bool ready)
{
    struct sr_edge *e = arg;
    if (!ready)
        return; /* the streams' own exchanges end and park them */
    char want[SR_ROUTE_MAX + 1];
    for (struct gstream *g = e->streams, *next; g; g = next) {
        next = g->next;
        /* Streams follow their token to the current generation's route. */
        if (sr_route_name(e->policy.generation, g->name, want, sizeof(want)) == 0 &&
            strcmp(want, route) == 0)
            stream_attach(g, inst);
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

static bool query_has_access_token(const struct sr_req *r)
{
    const struct sr_http_head *h = sr_req_head(r);
    const char *q = memchr(h->target.p, '?', h->target.n);
    if (!q)
        return false;
    q++;
    return sr_form_has(q, h->target.n - (size_t)(q - h->target.p), "access_token");
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
    /* OAuth (http/oauth.h, http/idp.h): tokens in the query string are refused, even valid
     * ones (MCP authorization; URLs end up in logs and histories). */
    if ((e->oauth || e->idp) && query_has_access_token(r)) {
        char body[SR_ERROR_BODY_MAX];
        int n = sr_error_body(body, sizeof(body), SR_RPC_INVALID_REQUEST,
                              "Access tokens in the URL are refused (URLs end up in logs and "
                              "histories): send them as 'Authorization: Bearer <token>'.",
                              NULL, 0);
        sr_resp_json(r, 400, "Cache-Control: no-store\r\n", body, n < 0 ? 0 : (size_t)n);
        return;
    }
    /* Their own endpoints, and a Bearer that is not a static token may be an access token,
     * which then stands for the static token its grant is bound to. */
    if (e->idp && sr_idp_owns(r)) { /* the resource metadata names the external issuer */
        sr_idp_handle(e->idp, r);
        return;
    }
    if (e->oauth && sr_oauth_owns(r)) {
        sr_oauth_handle(e->oauth, r, e->tokens);
        return;
    }
    fill_request(r, &q);
    if ((e->oauth || e->idp) && q.has_bearer &&
        (!e->tokens || sr_tokens_match(e->tokens, q.digest) < 0)) {
        /* A JWT from the external issuer (http/idp.h); held while its kid's keys are fetched,
         * then this handler runs again. Anything else may be a built-in access token. */
        enum sr_idp_verdict v =
            e->idp ? sr_idp_bearer(e->idp, r, e->tokens, q.digest, sr_edge_handle, e)
                   : SR_IDP_NOT_JWT;
        if (v == SR_IDP_HELD)
            return;
        if (v == SR_IDP_OK)
            sr_metrics_oauth(SR_MO_JWT_ACCEPTED);
        else if (v == SR_IDP_REFUSED)
            sr_metrics_oauth(SR_MO_JWT_REFUSED);
        if (v == SR_IDP_NOT_JWT && e->oauth)
            sr_oauth_bearer(e->oauth, e->tokens, q.digest);
    }
    sr_classify(&e->policy, &q, g_scratch, SR_JSON_MAX_TOKENS, &d);
    if (d.route[0])
        sr_req_set_route(r, d.route);
    if (d.rpc_method[0])
        sr_req_set_rpc_method(r, d.rpc_method);
    if (strcmp(d.rpc_method, "tools/call") == 0)
        log_tool_name(r);
    switch (d.action) {
    case SR_ACT_HEALTH:
        answer_health(e, r);
        return;
    case SR_ACT_STATUS:
        answer_status(e, r, &d);
        return;
    case SR_ACT_REJECT:
        reject(e, r, &d);
        return;
    case SR_ACT_FORWARD:
        break;
    }
    if (!e->instances && !e->upstream) {
        sr_relay_fail(r, 503, 0, d.rpc_id, "No backend is configured for this route.");
        return;
    }
    forward(e, r, &d);
}
