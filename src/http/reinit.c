/*
 * Backend session re-initialization (see reinit.h).
 *
 * The answer to initialize may be JSON or an SSE stream (Serena answers with
 * one event); either way it must hold a JSON-RPC result, not an error,
 * before the session counts. Responses are read up to SR_RELAY_TAP_MAX.
 */
#include "http/reinit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/json.h"
#include "core/limits.h"
#include "core/session.h"
#include "http/log.h"

#define REINIT_TOKENS 4096u

struct sr_reinit {
    struct sr_upstream *u;
    struct sr_up_req *q;
    sr_reinit_cb cb;
    void *arg;
    int step; /* 0: initialize, 1: notifications/initialized */
    int status;
    char sid[SR_SESSION_BACKEND_ID_MAX + 1];
    char proto[64];
    struct evbuffer *body;
};

static struct sr_json_tok g_toks[REINIT_TOKENS];

static void finish(struct sr_reinit *x, const char *err)
{
    sr_reinit_cb cb = x->cb;
    void *arg = x->arg;
    char sid[sizeof(x->sid)];
    memcpy(sid, x->sid, sizeof(sid));
    evbuffer_free(x->body);
    free(x);
    cb(arg, err ? NULL : sid, err);
}

/* Whether one JSON-RPC message text is a result (not an error); its isError. */
static bool is_result(const char *p, size_t n, bool *is_error)
{
    struct sr_json_doc doc;
    if (sr_json_parse(&doc, p, n, g_toks, REINIT_TOKENS, NULL) != 0 ||
        doc.toks[0].type != SR_JSON_OBJECT)
        return false;
    int32_t r = sr_json_obj_get(&doc, 0, "result", 6);
    if (r < 0 || doc.toks[r].type != SR_JSON_OBJECT)
        return false;
    int32_t ie = sr_json_obj_get(&doc, (uint32_t)r, "isError", 7);
    *is_error = ie >= 0 && doc.toks[ie].type == SR_JSON_TRUE;
    return true;
}

bool sr_rpc_result_in(const char *b, size_t n, bool *is_error)
{
    size_t i = 0;
    while (i < n && (b[i] == ' ' || b[i] == '\r' || b[i] == '\n' || b[i] == '\t'))
        i++;
    if (i < n && b[i] == '{')
        return is_result(b + i, n - i, is_error);
    while (i < n) {
        size_t e = i;
        while (e < n && b[e] != '\n')
            e++;
        size_t le = e > i && b[e - 1] == '\r' ? e - 1 : e;
        if (le - i > 5 && memcmp(b + i, "data:", 5) == 0) {
            size_t s = i + 5;
            while (s < le && b[s] == ' ')
                s++;
            if (is_result(b + s, le - s, is_error))
                return true;
        }
        i = e + 1;
    }
    return false;
}

static int send_step(struct sr_reinit *x, const char *body, size_t n);

static void on_head(void *arg, const struct sr_http_head *h)
{
    struct sr_reinit *x = arg;
    x->status = h->status;
    if (x->step == 0) {
        size_t vn;
        const char *v = sr_http_header_get(h, "mcp-session-id", &vn);
        if (v && vn > 0 && vn <= SR_SESSION_BACKEND_ID_MAX) {
            memcpy(x->sid, v, vn);
            x->sid[vn] = '\0';
        }
    }
}

static void on_data(void *arg, struct evbuffer *data)
{
    struct sr_reinit *x = arg;
    size_t have = evbuffer_get_length(x->body), n = evbuffer_get_length(data);
    if (have < SR_RELAY_TAP_MAX) {
        size_t take = n < SR_RELAY_TAP_MAX - have ? n : SR_RELAY_TAP_MAX - have;
        evbuffer_add(x->body, evbuffer_pullup(data, (ev_ssize_t)take), take);
    }
    evbuffer_drain(data, n);
}

static void on_done(void *arg)
{
    struct sr_reinit *x = arg;
    char err[160];
    x->q = NULL;
    if (x->step == 0) {
        size_t n = evbuffer_get_length(x->body);
        const char *b = n ? (const char *)evbuffer_pullup(x->body, -1) : "";
        bool is_error = false;
        if (x->status != 200 || !x->sid[0] || !sr_rpc_result_in(b, n, &is_error)) {
            snprintf(err, sizeof(err),
                     "the backend refused to re-initialize the session (HTTP %d%s)", x->status,
                     x->status == 200 && !x->sid[0] ? ", no mcp-session-id" : "");
            finish(x, err);
            return;
        }
        static const char note[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
        x->step = 1;
        evbuffer_drain(x->body, n);
        if (send_step(x, note, sizeof(note) - 1) < 0)
            finish(x, "cannot send notifications/initialized to the backend");
        return;
    }
    if (x->status < 200 || x->status >= 300) {
        snprintf(err, sizeof(err),
                 "the backend refused notifications/initialized on a re-initialized session "
                 "(HTTP %d)",
                 x->status);
        finish(x, err);
        return;
    }
    finish(x, NULL);
}

static void on_error(void *arg, const char *what, bool got_head)
{
    struct sr_reinit *x = arg;
    char err[200];
    (void)got_head;
    x->q = NULL;
    snprintf(err, sizeof(err), "re-initializing the backend session failed: %s", what);
    finish(x, err);
}

static const struct sr_up_cbs reinit_cbs = {on_head, on_data, on_done, on_error};

static int send_step(struct sr_reinit *x, const char *body, size_t n)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return -1;
    evbuffer_add_printf(b,
                        "POST %s HTTP/1.1\r\nHost: %s\r\ncontent-type: application/json\r\n"
                        "accept: application/json, text/event-stream\r\ncontent-length: %zu\r\n",
                        sr_upstream_path(x->u), sr_upstream_hostport(x->u), n);
    if (x->step == 1) {
        evbuffer_add_printf(b, "mcp-session-id: %s\r\n", x->sid);
        if (x->proto[0])
            evbuffer_add_printf(b, "mcp-protocol-version: %s\r\n", x->proto);
    }
    evbuffer_add(b, "\r\n", 2);
    evbuffer_add(b, body, n);
    x->status = 0;
    if (sr_up_send(x->u, b, false, &reinit_cbs, x, &x->q) < 0) {
        evbuffer_free(b);
        return -1;
    }
    return 0;
}

int sr_reinit_start(struct sr_upstream *u, const char *body, size_t n, const char *proto,
                    sr_reinit_cb cb, void *arg, struct sr_reinit **out)
{
    struct sr_reinit *x = calloc(1, sizeof(*x));
    if (!x || !(x->body = evbuffer_new())) {
        free(x);
        return -1;
    }
    x->u = u;
    x->cb = cb;
    x->arg = arg;
    snprintf(x->proto, sizeof(x->proto), "%s", proto ? proto : "");
    if (send_step(x, body, n) < 0) {
        evbuffer_free(x->body);
        free(x);
        return -1;
    }
    *out = x;
    return 0;
}

void sr_reinit_cancel(struct sr_reinit *x)
{
    if (!x)
        return;
    if (x->q)
        sr_up_cancel(x->q);
    evbuffer_free(x->body);
    free(x);
}
