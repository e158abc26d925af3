/*
 * Forwarding of client requests to an upstream MCP server (see relay.h for
 * the contract). The relay object lives from sr_relay_forward until the
 * response ends or either side fails; it is the only thing holding both the
 * client request and the upstream exchange, so the two can never outlive
 * each other's callbacks.
 */
#include "http/relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/limits.h"
#include "http/log.h"

struct relay {
    struct sr_req *r;
    struct sr_up_req *q;
    char rpc_id[SR_RPC_ID_MAX + 1];
    void (*on_end)(void *arg);
    void *end_arg;
    const char *(*on_session)(void *arg, const char *v, size_t n);
    void (*on_lost)(void *arg);
    void (*on_tap)(void *arg, int status, const char *body, size_t n);
    bool lost;   /* the upstream answered 404: nothing is relayed, on_lost runs at the end */
    bool unsent; /* no connection was made: on_unsent runs at the end */
    void (*on_unsent)(void *arg);
    bool sse;     /* the response is an event stream */
    bool chunked; /* ... framed in chunks, so an error event can still be appended */
    int status;
    struct evbuffer *tap;
};

/* The MCP headers that go upstream (the session id and version by their index, below). */
static const char *const forward_headers[] = {
    "content-type",  "mcp-session-id", "mcp-protocol-version",
    "last-event-id", "mcp-method",     "mcp-name",
};

/* "name: value\r\n" without printf: this runs once per relayed request. */
static void add_header(struct evbuffer *b, const char *name, size_t name_len, const char *v,
                       size_t n)
{
    evbuffer_add(b, name, name_len);
    evbuffer_add(b, ": ", 2);
    evbuffer_add(b, v, n);
    evbuffer_add(b, "\r\n", 2);
}

static struct evbuffer *build_request(struct sr_req *r, struct sr_upstream *u, bool fix_accept,
                                      const char *session_up, const char *protocol)
{
    const struct sr_http_head *h = sr_req_head(r);
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return NULL;
    const char *query = memchr(h->target.p, '?', h->target.n);
    size_t qlen = query ? h->target.n - (size_t)(query - h->target.p) : 0;
    const char *path = sr_upstream_path(u);
    const char *hostport = sr_upstream_hostport(u);
    evbuffer_add(b, h->method.p, h->method.n);
    evbuffer_add(b, " ", 1);
    evbuffer_add(b, path, strlen(path));
    if (qlen)
        evbuffer_add(b, query, qlen);
    evbuffer_add(b, " HTTP/1.1\r\nHost: ", 17);
    evbuffer_add(b, hostport, strlen(hostport));
    evbuffer_add(b, "\r\n", 2);
    for (size_t i = 0; i < sizeof(forward_headers) / sizeof(forward_headers[0]); i++) {
        size_t n;
        if (session_up && i == 1)
            continue; /* the edge's session id stays at the edge */
        const char *v = sr_http_header_get(h, forward_headers[i], &n);
        if (v)
            add_header(b, forward_headers[i], strlen(forward_headers[i]), v, n);
        else if (i == 2 && protocol && *protocol)
            add_header(b, "mcp-protocol-version", 20, protocol, strlen(protocol));
    }
    if (session_up && *session_up)
        add_header(b, "mcp-session-id", 14, session_up, strlen(session_up));
    /* 2026-07-28: Mcp-Param-<name> headers mirror tool arguments; only the backend knows the
     * tool's schema to check them against, so they go up as they are. */
    for (uint32_t i = 0; i < h->nh; i++) {
        const struct sr_http_header *e = &h->h[i];
        if (e->name.n > 10 && strncasecmp(e->name.p, "mcp-param-", 10) == 0)
            add_header(b, e->name.p, e->name.n, e->value.p, e->value.n);
    }
    size_t an;
    const char *accept = sr_http_header_get(h, "accept", &an);
    if (fix_accept || !accept)
        evbuffer_add(b, "accept: application/json, text/event-stream\r\n", 45);
    else
        add_header(b, "accept", 6, accept, an);
    size_t blen = evbuffer_get_length(sr_req_body(r));
    bool is_get = h->method.n == 3 && memcmp(h->method.p, "GET", 3) == 0;
    if (blen > 0 || !is_get) {
        char num[24];
        size_t i = sizeof(num);
        size_t v = blen;
        do {
            num[--i] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        add_header(b, "content-length", 14, num + i, sizeof(num) - i);
    }
    evbuffer_add(b, "\r\n", 2);
    /* The body is copied: the client request may end before the upstream
     * exchange does (the shim), and a retry needs it intact. */
    if (blen)
        evbuffer_add(b, evbuffer_pullup(sr_req_body(r), -1), blen);
    return b;
}

static void relay_free(struct relay *x)
{
    /* Whatever arrived is read, however the exchange ended: a client may hang up as soon as it
     * has its answer (the Python SDK does), before the stream's end. */
    if (x->tap && x->on_tap && !x->lost && x->status)
        x->on_tap(x->end_arg, x->status, (const char *)evbuffer_pullup(x->tap, -1),
                  evbuffer_get_length(x->tap));
    if (x->tap)
        evbuffer_free(x->tap);
    if (x->lost && x->on_lost)
        x->on_lost(x->end_arg);
    else if (x->unsent)
        x->on_unsent(x->end_arg);
    else if (x->on_end)
        x->on_end(x->end_arg);
    free(x);
}

void sr_relay_fail(struct sr_req *r, int status, unsigned retry_after, const char *rpc_id,
                   const char *what)
{
    char msg[512], body[SR_ERROR_BODY_MAX];
    if (status == 502)
        snprintf(msg, sizeof(msg),
                 "Bad gateway: %s. The MCP server behind serena-remote is not reachable; retry, "
                 "and if it persists check the gateway's log.",
                 what);
    else
        snprintf(msg, sizeof(msg), "%s", what);
    int n = sr_error_body(body, sizeof(body), SR_RPC_SERVER_ERROR, msg, rpc_id, strlen(rpc_id));
    char retry[48];
    snprintf(retry, sizeof(retry), "Retry-After: %u\r\n", retry_after ? retry_after : 5);
    sr_resp_json(r, status, status == 503 ? retry : NULL, body, n < 0 ? 0 : (size_t)n);
}

static void fail_502(struct sr_req *r, const char *rpc_id, const char *what)
{
    sr_relay_fail(r, 502, 0, rpc_id, what);
}

/* Header lines of the response being started; sr_resp_start moves them out, so one
 * buffer serves every response (single-threaded loop) without an allocation each. */
static struct evbuffer *g_head_lines;

static bool is_event_stream(const struct sr_http_head *h)
{
    size_t n;
    const char *ct = sr_http_header_get(h, "content-type", &n);
    return ct && n >= 17 && strncasecmp(ct, "text/event-stream", 17) == 0;
}

static void on_head(void *arg, const struct sr_http_head *h)
{
    struct relay *x = arg;
    x->status = h->status;
    if (h->status == 404 && x->on_lost) {
        /* The backend does not know the session: nothing reaches the client; the body is
         * read and dropped, and on_lost takes over once the exchange is over. */
        x->lost = true;
        return;
    }
    x->sse = is_event_stream(h);
    x->chunked = h->chunked;
    if (!g_head_lines)
        g_head_lines = evbuffer_new();
    struct evbuffer *hl = g_head_lines;
    if (hl) {
        for (uint32_t i = 0; i < h->nh; i++) {
            const struct sr_http_header *e = &h->h[i];
            if (sr_http_is_hop_header(e->name.p, e->name.n))
                continue;
            if (e->name.n == 14 && strncasecmp(e->name.p, "content-length", 14) == 0)
                continue;
            if (x->on_session && e->name.n == 14 &&
                strncasecmp(e->name.p, "mcp-session-id", 14) == 0) {
                const char *mine = x->on_session(x->end_arg, e->value.p, e->value.n);
                if (mine)
                    add_header(hl, "mcp-session-id", 14, mine, strlen(mine));
                continue;
            }
            evbuffer_add(hl, e->name.p, e->name.n);
            evbuffer_add(hl, ": ", 2);
            evbuffer_add(hl, e->value.p, e->value.n);
            evbuffer_add(hl, "\r\n", 2);
        }
    }
    int64_t cl = h->chunked ? -1 : h->content_length;
    sr_resp_start(x->r, h->status, h->reason.p, h->reason.n, hl, cl);
    if (hl) /* empty unless the client was gone (nothing was moved out) */
        evbuffer_drain(hl, evbuffer_get_length(hl));
}

static void on_data(void *arg, struct evbuffer *data)
{
    struct relay *x = arg;
    if (x->lost) {
        evbuffer_drain(data, evbuffer_get_length(data));
        return;
    }
    if (x->tap && evbuffer_get_length(x->tap) < SR_RELAY_TAP_MAX) {
        size_t room = SR_RELAY_TAP_MAX - evbuffer_get_length(x->tap);
        size_t n = evbuffer_get_length(data);
        size_t take = n < room ? n : room;
        evbuffer_add(x->tap, evbuffer_pullup(data, (ev_ssize_t)take), take);
    }
    sr_resp_body(x->r, data);
    if (sr_resp_pending(x->r) > SR_RELAY_HIGH_WATER)
        sr_up_pause(x->q, true);
}

static void on_done(void *arg)
{
    struct relay *x = arg;
    struct sr_req *r = x->r;
    bool lost = x->lost;
    relay_free(x);
    if (!lost)
        sr_resp_end(r);
}

/* The JSON-RPC error event that ends a response stream whose upstream failed. */
static void stream_error_event(struct sr_req *r, const char *rpc_id, const char *what)
{
    char msg[512], body[SR_ERROR_BODY_MAX];
    snprintf(msg, sizeof(msg),
             "The MCP server behind serena-remote stopped while answering this request (%s). "
             "The request was not sent again, because it may have had effects; retry it if it "
             "is safe to.",
             what);
    int n = sr_error_body(body, sizeof(body), SR_RPC_SERVER_ERROR, msg, rpc_id, strlen(rpc_id));
    struct evbuffer *ev = evbuffer_new();
    if (!ev || n < 0) {
        if (ev)
            evbuffer_free(ev);
        sr_resp_abort(r);
        return;
    }
    evbuffer_add(ev, "event: message\r\ndata: ", 22);
    evbuffer_add(ev, body, (size_t)n);
    evbuffer_add(ev, "\r\n\r\n", 4);
    sr_resp_body(r, ev);
    evbuffer_free(ev);
    sr_resp_end(r);
}

static void on_error(void *arg, const char *what, bool got_head)
{
    struct relay *x = arg;
    struct sr_req *r = x->r;
    char id[SR_RPC_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", x->rpc_id);
    bool lost = x->lost, event = x->sse && x->chunked && id[0] && strcmp(id, "null") != 0;
    if (!got_head && x->on_unsent && strncmp(what, "cannot connect", 14) == 0)
        x->unsent = true;
    bool unsent = x->unsent;
    relay_free(x);
    if (lost || unsent)
        return; /* on_lost or on_unsent has the request */
    sr_log_event("warn", "upstream request failed: %s", what);
    if (got_head && event)
        stream_error_event(r, id, what);
    else if (got_head)
        sr_resp_abort(r); /* the status is sent; cutting the stream tells the client */
    else
        fail_502(r, id, what);
}

static void on_client_abort(struct sr_req *r, void *arg)
{
    struct relay *x = arg;
    (void)r;
    sr_up_cancel(x->q);
    relay_free(x);
}

static void on_client_drain(struct sr_req *r, void *arg)
{
    struct relay *x = arg;
    if (sr_resp_pending(r) <= SR_RELAY_LOW_WATER)
        sr_up_pause(x->q, false);
}

static const struct sr_up_cbs relay_cbs = {on_head, on_data, on_done, on_error};

void sr_relay_forward(struct sr_req *r, struct sr_upstream *u, const struct sr_relay_opts *o)
{
    const char *rpc_id = o->rpc_id;
    struct relay *x = calloc(1, sizeof(*x));
    struct evbuffer *b = x ? build_request(r, u, o->fix_accept, o->session_up, o->protocol) : NULL;
    if (!x || !b) {
        free(x);
        if (b)
            evbuffer_free(b);
        if (o->on_end)
            o->on_end(o->end_arg);
        fail_502(r, rpc_id ? rpc_id : "", "the gateway is out of memory");
        return;
    }
    x->r = r;
    x->on_end = o->on_end;
    x->end_arg = o->end_arg;
    x->on_session = o->on_session;
    x->on_lost = o->on_lost;
    x->on_unsent = o->on_unsent;
    x->on_tap = o->on_tap;
    if (o->on_tap && !(x->tap = evbuffer_new())) {
        evbuffer_free(b);
        free(x);
        if (o->on_end)
            o->on_end(o->end_arg);
        fail_502(r, rpc_id ? rpc_id : "", "the gateway is out of memory");
        return;
    }
    size_t idn = rpc_id ? strnlen(rpc_id, sizeof(x->rpc_id) - 1) : 0;
    memcpy(x->rpc_id, rpc_id ? rpc_id : "", idn);
    x->rpc_id[idn] = '\0';
    const struct sr_http_head *h = sr_req_head(r);
    bool head = h->method.n == 4 && memcmp(h->method.p, "HEAD", 4) == 0;
    if (sr_up_send(u, b, head, &relay_cbs, x, &x->q) < 0) {
        evbuffer_free(b);
        x->unsent = x->on_unsent != NULL;
        bool unsent = x->unsent;
        relay_free(x);
        if (!unsent)
            fail_502(r, rpc_id ? rpc_id : "", "cannot open a connection to the upstream");
        return;
    }
    sr_req_set_hooks(r, on_client_abort, on_client_drain, x);
}

/* ---- background delivery (shims) ---------------------------------------- */

struct background {
    char route[SR_ROUTE_MAX + 1];
    int status;
};

static unsigned g_background;

static void bg_head(void *arg, const struct sr_http_head *h)
{
    ((struct background *)arg)->status = h->status;
}

static void bg_data(void *arg, struct evbuffer *data)
{
    (void)arg;
    evbuffer_drain(data, evbuffer_get_length(data));
}

static void bg_done(void *arg)
{
    struct background *b = arg;
    if (b->status >= 300)
        sr_log_event("warn", "route=%s background notifications/initialized got status %d",
                     b->route, b->status);
    g_background--;
    free(b);
}

static void bg_error(void *arg, const char *what, bool got_head)
{
    struct background *b = arg;
    (void)got_head;
    sr_log_event("warn", "route=%s background notifications/initialized failed: %s", b->route,
                 what);
    g_background--;
    free(b);
}

static const struct sr_up_cbs bg_cbs = {bg_head, bg_data, bg_done, bg_error};

int sr_relay_background(struct sr_req *r, struct sr_upstream *u, bool fix_accept, const char *route,
                        const char *session_up)
{
    if (g_background >= SR_BACKGROUND_MAX) {
        sr_log_event("warn", "route=%s too many background deliveries; notification dropped",
                     route);
        return -1;
    }
    struct background *bg = calloc(1, sizeof(*bg));
    struct evbuffer *b = bg ? build_request(r, u, fix_accept, session_up, NULL) : NULL;
    struct sr_up_req *q;
    if (!bg || !b || sr_up_send(u, b, false, &bg_cbs, bg, &q) < 0) {
        if (b)
            evbuffer_free(b);
        free(bg);
        sr_log_event("warn", "route=%s cannot deliver notifications/initialized upstream", route);
        return -1;
    }
    snprintf(bg->route, sizeof(bg->route), "%s", route);
    g_background++;
    return 0;
}
