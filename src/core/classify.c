/*
 * Request classification (see classify.h).
 *
 * Every answer the edge gives by itself is decided here, so the C gateway
 * and the Cloudflare Worker (through core.wasm) refuse, shim and route
 * requests identically. The checks for /mcp run in a fixed order, cheapest
 * and least revealing first: a request from a foreign browser origin learns
 * nothing about tokens, and a request without a valid token never has its
 * body parsed.
 *
 * Error messages say what happened, why and what to do. They never quote a
 * token, a token name or the Authorization header.
 */
#include "core/classify.h"

#include "core/errors.h"
#include "core/mem.h"
#include "core/route.h"
#include "core/text.h"

/*
 * In `run` (a container behind the Worker) the Worker has authenticated the
 * caller and the container serves exactly one token, so the route is named
 * after the role rather than after a token entry.
 */
#define SR_RUN_ROUTE_NAME "run"

#define ALLOW_HEALTH    "GET, HEAD"
#define ALLOW_STATUS    "GET"
#define ALLOW_MCP       "GET, POST, DELETE"
#define ALLOW_MCP_NOGET "POST, DELETE"

static bool span_is(const char *s, size_t n, const char *lit)
{
    size_t ln = sr_str_len(lit);

    return s != NULL && n == ln && sr_mem_eq(s, lit, ln);
}

static bool span_starts(const char *s, size_t n, const char *lit)
{
    size_t ln = sr_str_len(lit);

    return s != NULL && n >= ln && sr_mem_eq(s, lit, ln);
}

void sr_policy_init(struct sr_policy *p, const struct sr_tokens *tokens)
{
    if (p == NULL)
        return;
    sr_mem_set(p, 0, sizeof(*p));
    p->tokens = tokens;
    sr_mem_copy(p->generation, SR_GENERATION_DEFAULT, sizeof(SR_GENERATION_DEFAULT));
    p->max_body = SR_MAX_BODY_DEFAULT;
    p->check_bearer = true;
    p->bare_get_405 = false;
}

int sr_policy_set_generation(struct sr_policy *p, const char *s, size_t n, struct sr_core_err *err)
{
    struct sr_text t;

    if (p == NULL || (s == NULL && n > 0))
        return -1;
    if (n == 0) {
        sr_mem_copy(p->generation, SR_GENERATION_DEFAULT, sizeof(SR_GENERATION_DEFAULT));
        return 0;
    }
    if (!sr_route_valid_name(s, n, SR_GENERATION_MAX)) {
        if (err != NULL) {
            sr_text_init(&t, err->msg, sizeof(err->msg));
            sr_text_put(&t, "MCP_CONTAINER_ROUTE_GENERATION must match [A-Za-z0-9._-]{1,64} "
                            "(for example gen-2), because it becomes part of every route name");
        }
        return -1;
    }
    sr_mem_copy(p->generation, s, n);
    p->generation[n] = '\0';
    return 0;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Trim optional whitespace around s[*a..*b). */
static void trim(const char *s, size_t *a, size_t *b)
{
    while (*a < *b && is_ows(s[*a]))
        (*a)++;
    while (*b > *a && is_ows(s[*b - 1]))
        (*b)--;
}

/* "*" or scheme://host[:port]: printable, no path, no comma, no whitespace. */
static bool origin_valid(const char *s, size_t n)
{
    size_t i = 0, j;

    if (n == 1 && s[0] == '*')
        return true;
    while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                     (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    if (i == 0 || n - i < 4 || !sr_mem_eq(s + i, "://", 3))
        return false;
    i += 3;
    for (j = i; j < n; j++) {
        if (s[j] <= 0x20 || s[j] >= 0x7f || s[j] == '/' || s[j] == ',' || s[j] == '"' ||
            s[j] == '\\')
            return false;
    }
    return j > i;
}

static void origin_error(struct sr_core_err *err, uint32_t index, const char *why)
{
    struct sr_text t;

    if (err == NULL)
        return;
    sr_text_init(&t, err->msg, sizeof(err->msg));
    sr_text_put(&t, "ALLOWED_ORIGINS entry ");
    sr_text_u64(&t, index + 1);
    sr_text_put(&t, " (counting from 1): ");
    sr_text_put(&t, why);
}

int sr_policy_set_origins(struct sr_policy *p, const char *list, size_t n, struct sr_core_err *err)
{
    size_t a, b, pos;
    uint32_t count = 0, pass;

    if (p == NULL || (list == NULL && n > 0)) {
        origin_error(err, 0, "missing argument");
        return -1;
    }
    /* A list of only whitespace means "no origins": browsers are refused. */
    a = 0;
    b = n;
    if (list != NULL)
        trim(list, &a, &b);
    if (a == b) {
        p->origin_count = 0;
        return 0;
    }
    /* Pass 0 validates everything, pass 1 stores: on error p is unchanged. */
    for (pass = 0; pass < 2; pass++) {
        count = 0;
        pos = 0;
        while (pos <= n) {
            size_t end = pos;

            while (end < n && list[end] != ',')
                end++;
            a = pos;
            b = end;
            trim(list, &a, &b);
            if (pass == 0) {
                if (a == b) {
                    origin_error(err, count, "is empty (remove the extra comma)");
                    return -1;
                }
                if (count >= SR_ORIGINS_MAX) {
                    origin_error(err, count, "too many origins (at most 32)");
                    return -1;
                }
                if (b - a > SR_ORIGIN_LEN_MAX) {
                    origin_error(err, count, "is longer than 256 characters");
                    return -1;
                }
                if (!origin_valid(list + a, b - a)) {
                    origin_error(err, count,
                                 "is not an origin like https://app.example or "
                                 "http://localhost:6274 (scheme://host[:port], no path or "
                                 "trailing slash), nor \"*\"");
                    return -1;
                }
            } else {
                sr_mem_copy(p->origins[count], list + a, b - a);
                p->origins[count][b - a] = '\0';
            }
            count++;
            pos = end + 1;
        }
    }
    p->origin_count = count;
    return 0;
}

/* Fill a REJECT decision with its JSON-RPC error body. */
static void reject(struct sr_decision *d, int status, int code, const char *msg)
{
    int len;

    d->action = SR_ACT_REJECT;
    d->status = status;
    len = sr_error_body(d->body, sizeof(d->body), code, msg, d->rpc_id, sr_str_len(d->rpc_id));
    if (len < 0) {
        /* Only a pathological id could overflow; retry without it. */
        len = sr_error_body(d->body, sizeof(d->body), code, msg, NULL, 0);
    }
    d->body_len = len < 0 ? 0 : (size_t)len;
}

static bool origin_allowed(const struct sr_policy *p, const char *o, size_t n)
{
    uint32_t i;

    for (i = 0; i < p->origin_count && i < SR_ORIGINS_MAX; i++) {
        const char *c = p->origins[i];
        size_t cl = sr_str_len(c);

        if ((cl == 1 && c[0] == '*') || sr_ascii_ieq(c, cl, o, n))
            return true;
    }
    return false;
}

/* True when the Accept header lists media range `want` (parameters and case ignored). */
static bool accept_has(const char *s, size_t n, const char *want)
{
    size_t pos = 0, wl = sr_str_len(want);

    while (pos <= n) {
        size_t end = pos, a, b;

        while (end < n && s[end] != ',')
            end++;
        a = pos;
        b = a;
        while (b < end && s[b] != ';')
            b++;
        trim(s, &a, &b);
        if (sr_ascii_ieq(s + a, b - a, want, wl))
            return true;
        pos = end + 1;
    }
    return false;
}

/*
 * Check the bearer credential. Returns the matched index, or -1 after
 * filling a 401 rejection that explains which part was wrong.
 */
static int32_t authenticate(const struct sr_policy *p, const struct sr_request *req,
                            struct sr_decision *d)
{
    int32_t idx;

    if (!req->has_authorization) {
        d->www_authenticate = true;
        reject(d, 401, SR_RPC_UNAUTHORIZED,
               "Unauthorized: this gateway requires an 'Authorization: Bearer <token>' header "
               "and the request had none. Configure your MCP client to send the token the "
               "gateway operator gave you (with mcp-remote: --header \"Authorization: Bearer "
               "${TOKEN}\").");
        return -1;
    }
    if (!req->has_bearer) {
        d->www_authenticate = true;
        reject(d, 401, SR_RPC_UNAUTHORIZED,
               "Unauthorized: the Authorization header is not a usable Bearer credential. "
               "Send exactly 'Authorization: Bearer <token>': one token, no other scheme, no "
               "quotes or commas.");
        return -1;
    }
    idx = p->tokens != NULL ? sr_tokens_match(p->tokens, req->digest) : -1;
    if (idx < 0) {
        d->www_authenticate = true;
        reject(d, 401, SR_RPC_UNAUTHORIZED,
               "Unauthorized: the Bearer token is not valid for this gateway (it matches no "
               "configured token). Check that the client sends the current token, or ask the "
               "operator for a new one.");
        return -1;
    }
    return idx;
}

/* Route for an authenticated request; -1 after a 500 rejection. */
static int set_route(const struct sr_policy *p, int32_t idx, struct sr_decision *d)
{
    const char *name = SR_RUN_ROUTE_NAME;

    if (idx >= 0)
        name = p->tokens->e[idx].name;
    if (sr_route_name(p->generation, name, d->route, sizeof(d->route)) < 0) {
        d->route[0] = '\0';
        reject(d, 500, SR_RPC_SERVER_ERROR,
               "Internal error: no route name could be built from the route generation. Check "
               "that MCP_CONTAINER_ROUTE_GENERATION matches [A-Za-z0-9._-]{1,64}.");
        return -1;
    }
    return 0;
}

/* Copy the raw JSON of value idx into out when it fits; strings keep their quotes. */
static void copy_raw(const struct sr_json_doc *doc, uint32_t idx, char *out, size_t cap)
{
    const struct sr_json_tok *t = &doc->toks[idx];
    size_t start = t->start, len = t->len;

    if (t->type == SR_JSON_STRING) {
        start -= 1;
        len += 2;
    }
    if (len + 1 > cap)
        return;
    sr_mem_copy(out, doc->buf + start, len);
    out[len] = '\0';
}

struct peek {
    bool single;      /* the body is one JSON object */
    bool initialize;  /* ... an `initialize` request (method + id) */
    bool initialized; /* ... exactly the notifications/initialized notification */
};

/* Peek the JSON-RPC method and id of a parsed body; trust nothing else. */
static void peek_body(const struct sr_json_doc *doc, struct sr_decision *d, struct peek *pk)
{
    int32_t mi, ii, ji, pi;
    size_t mlen = 0;
    uint32_t expected;

    pk->single = false;
    pk->initialize = false;
    pk->initialized = false;
    if (doc->toks[0].type == SR_JSON_ARRAY) {
        sr_mem_copy(d->rpc_method, "(batch)", sizeof("(batch)"));
        return;
    }
    pk->single = true;
    mi = sr_json_obj_get(doc, 0, "method", 6);
    ii = sr_json_obj_get(doc, 0, "id", 2);
    if (mi >= 0 && doc->toks[mi].type == SR_JSON_STRING) {
        if (sr_json_str_decode(doc, (uint32_t)mi, d->rpc_method, sizeof(d->rpc_method) - 1,
                               &mlen) != 0)
            mlen = 0;
        d->rpc_method[mlen] = '\0';
    }
    if (ii >= 0 && (doc->toks[ii].type == SR_JSON_STRING || doc->toks[ii].type == SR_JSON_NUMBER ||
                    doc->toks[ii].type == SR_JSON_NULL))
        copy_raw(doc, (uint32_t)ii, d->rpc_id, sizeof(d->rpc_id));
    if (mi < 0 || doc->toks[mi].type != SR_JSON_STRING)
        return;
    if (sr_json_str_eq(doc, (uint32_t)mi, "initialize", 10) && ii >= 0 &&
        (doc->toks[ii].type == SR_JSON_STRING || doc->toks[ii].type == SR_JSON_NUMBER))
        pk->initialize = true;
    /*
     * The initialized shim answers 202 on the server's behalf, so it only
     * applies to the exact notification: jsonrpc "2.0", the method, optional
     * object params, no id and nothing else.
     */
    ji = sr_json_obj_get(doc, 0, "jsonrpc", 7);
    pi = sr_json_obj_get(doc, 0, "params", 6);
    expected = 2 + (pi >= 0 ? 1u : 0u);
    if (sr_json_str_eq(doc, (uint32_t)mi, "notifications/initialized", 25) && ii < 0 && ji >= 0 &&
        doc->toks[ji].type == SR_JSON_STRING && sr_json_str_eq(doc, (uint32_t)ji, "2.0", 3) &&
        (pi < 0 || doc->toks[pi].type == SR_JSON_OBJECT) && doc->toks[0].count == expected)
        pk->initialized = true;
}

static void parse_error(struct sr_decision *d, const struct sr_json_error *je, uint32_t cap)
{
    char msg[SR_ERRMSG_MAX];
    struct sr_text t;

    sr_text_init(&t, msg, sizeof(msg));
    if (je->code == SR_JSON_E_LIMIT) {
        sr_text_put(&t, "Invalid Request: the body holds more JSON values than the gateway "
                        "parses in one request (");
        sr_text_u64(&t, cap);
        sr_text_put(&t, "). Send smaller messages or split the batch.");
        reject(d, 400, SR_RPC_INVALID_REQUEST, msg);
        return;
    }
    sr_text_put(&t, "Parse error: ");
    sr_text_put(&t, je->msg != NULL ? je->msg : "invalid JSON");
    sr_text_put(&t, " at byte ");
    sr_text_u64(&t, je->offset);
    sr_text_put(&t, ". A POST to /mcp must carry one JSON-RPC message (an object) or a batch (an "
                    "array) as strict JSON (RFC 8259).");
    reject(d, 400, SR_RPC_PARSE_ERROR, msg);
}

static void classify_mcp(const struct sr_policy *p, const struct sr_request *req,
                         struct sr_json_tok *scratch, uint32_t scratch_cap, struct sr_decision *d)
{
    bool is_get = span_is(req->method, req->method_len, "GET");
    bool is_post = span_is(req->method, req->method_len, "POST");
    bool is_delete = span_is(req->method, req->method_len, "DELETE");
    bool has_session = req->session_id != NULL && req->session_id_len > 0;
    struct peek pk = {false, false, false};
    int32_t idx = -1;

    if (req->origin != NULL && !origin_allowed(p, req->origin, req->origin_len)) {
        reject(d, 403, SR_RPC_SERVER_ERROR,
               p->origin_count == 0
                   ? "Forbidden: the request carries an Origin header and this gateway accepts "
                     "no browser origins (ALLOWED_ORIGINS is not set). MCP clients outside a "
                     "browser send no Origin; to allow a web app, add its origin to "
                     "ALLOWED_ORIGINS."
                   : "Forbidden: the request's Origin is not in ALLOWED_ORIGINS. If this web "
                     "app should reach the gateway, add its exact origin (scheme://host[:port]) "
                     "to ALLOWED_ORIGINS.");
        return;
    }
    /*
     * In Worker mode GET is simply not one of the methods /mcp offers, so it
     * is refused together with the other methods, with a matching Allow.
     */
    if (!(is_post || is_delete || (is_get && !p->bare_get_405))) {
        if (p->bare_get_405) {
            d->allow = ALLOW_MCP_NOGET;
            reject(d, 405, SR_RPC_SERVER_ERROR,
                   "Method not allowed: /mcp accepts POST and DELETE on this deployment. The "
                   "server-to-client GET stream is not offered here because an open stream "
                   "would keep the instance awake; clients fall back to POST responses.");
        } else {
            d->allow = ALLOW_MCP;
            reject(d, 405, SR_RPC_SERVER_ERROR,
                   "Method not allowed: /mcp accepts GET, POST and DELETE (MCP Streamable "
                   "HTTP).");
        }
        return;
    }
    if (p->check_bearer) {
        idx = authenticate(p, req, d);
        if (idx < 0)
            return;
    }
    if (req->body_too_large || req->body_len > p->max_body) {
        char msg[SR_ERRMSG_MAX];
        struct sr_text t;

        sr_text_init(&t, msg, sizeof(msg));
        sr_text_put(&t, "Payload too large: the request body is over the gateway's limit of ");
        sr_text_u64(&t, p->max_body);
        sr_text_put(&t, " bytes. Send smaller requests, or ask the operator to raise the body "
                        "limit.");
        reject(d, 413, SR_RPC_SERVER_ERROR, msg);
        return;
    }
    if (is_post) {
        struct sr_json_doc doc;
        struct sr_json_error je;

        je.code = SR_JSON_E_LIMIT;
        je.offset = 0;
        je.msg = "token limit";
        if (scratch == NULL || scratch_cap == 0 ||
            sr_json_parse(&doc, req->body != NULL ? req->body : "", req->body_len, scratch,
                          scratch_cap, &je) != 0) {
            parse_error(d, &je, scratch_cap);
            return;
        }
        if (!(doc.toks[0].type == SR_JSON_OBJECT ||
              (doc.toks[0].type == SR_JSON_ARRAY && doc.toks[0].count > 0))) {
            reject(d, 400, SR_RPC_INVALID_REQUEST,
                   "Invalid Request: a POST to /mcp must carry a JSON-RPC message (an object) or "
                   "a non-empty batch (an array).");
            return;
        }
        peek_body(&doc, d, &pk);
    }
    /*
     * Serena's SDK creates (and never frees) a server session for every
     * session-less request that is not initialize, so those stop here.
     */
    if (!has_session && !(is_post && pk.initialize)) {
        reject(d, 400, SR_RPC_SERVER_ERROR,
               "Bad Request: the request has no mcp-session-id header and is not an initialize "
               "request. An MCP session starts with a POST of a single initialize request; send "
               "that first, then send the mcp-session-id from its response with every other "
               "request.");
        return;
    }
    if (set_route(p, idx, d) != 0)
        return;
    d->action = SR_ACT_FORWARD;
    d->token_index = idx;
    d->is_initialize = is_post && pk.initialize && !has_session;
    d->fix_accept = req->accept == NULL ||
                    !accept_has(req->accept, req->accept_len, "application/json") ||
                    !accept_has(req->accept, req->accept_len, "text/event-stream");
    if (is_post && has_session && pk.initialized) {
        d->shim = SR_SHIM_INITIALIZED;
        d->status = 202;
    }
}

int sr_classify(const struct sr_policy *p, const struct sr_request *req,
                struct sr_json_tok *scratch, uint32_t scratch_cap, struct sr_decision *d)
{
    const char *path;
    size_t plen;

    if (p == NULL || req == NULL || d == NULL)
        return -1;
    d->action = SR_ACT_REJECT;
    d->status = 0;
    d->allow = NULL;
    d->www_authenticate = false;
    d->token_index = -1;
    d->route[0] = '\0';
    d->shim = SR_SHIM_NONE;
    d->fix_accept = false;
    d->is_initialize = false;
    d->rpc_method[0] = '\0';
    d->rpc_id[0] = '\0';
    d->body[0] = '\0';
    d->body_len = 0;

    path = req->path;
    plen = req->path_len;
    if (span_is(path, plen, "/health")) {
        if (span_is(req->method, req->method_len, "GET") ||
            span_is(req->method, req->method_len, "HEAD")) {
            d->action = SR_ACT_HEALTH;
            d->status = 200;
        } else {
            d->allow = ALLOW_HEALTH;
            reject(d, 405, SR_RPC_SERVER_ERROR,
                   "Method not allowed: /health answers GET and HEAD only.");
        }
        return 0;
    }
    if (span_starts(path, plen, "/.well-known/") || span_is(path, plen, "/.well-known")) {
        reject(d, 404, SR_RPC_SERVER_ERROR,
               "Not found: this gateway does not offer OAuth discovery (/.well-known/*). "
               "Authenticate with a static token instead: send 'Authorization: Bearer <token>' "
               "to /mcp (with mcp-remote, pass it with --header).");
        return 0;
    }
    if (span_is(path, plen, "/status")) {
        int32_t idx = -1;

        if (!span_is(req->method, req->method_len, "GET")) {
            d->allow = ALLOW_STATUS;
            reject(d, 405, SR_RPC_SERVER_ERROR, "Method not allowed: /status answers GET only.");
            return 0;
        }
        if (p->check_bearer) {
            idx = authenticate(p, req, d);
            if (idx < 0)
                return 0;
        }
        if (set_route(p, idx, d) != 0)
            return 0;
        d->action = SR_ACT_STATUS;
        d->status = 200;
        d->token_index = idx;
        return 0;
    }
    if (span_is(path, plen, "/mcp")) {
        classify_mcp(p, req, scratch, scratch_cap, d);
        return 0;
    }
    reject(d, 404, SR_RPC_SERVER_ERROR,
           "Not found: this gateway serves MCP at /mcp (plus /health and /status). Point your "
           "MCP client at https://<this host>/mcp.");
    return 0;
}
