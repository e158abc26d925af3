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
/* A 2026-07-28 request has neither a GET stream nor a session to DELETE. */
#define ALLOW_MCP_STATELESS "POST"

/* params._meta key of the 2026-07-28 request envelope that names the protocol version. */
#define META_PROTOCOL_VERSION "io.modelcontextprotocol/protocolVersion"

/*
 * The session-era revisions (initialize handshake, Mcp-Session-Id). A request
 * naming one of these goes the 2025 way; the backend negotiates among them.
 */
static const char *const legacy_versions[] = {"2024-11-05", "2025-03-26", "2025-06-18",
                                              "2025-11-25"};

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
    p->loopback_listener = false;
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

/*
 * An Origin a local page sends: http://localhost, http://127.0.0.1 or
 * http://[::1], optionally followed by ":" and a port of 1 to 5 digits (at
 * most 65535), and nothing else. Scheme and host compare without case, as
 * URL hosts do; https, other loopback spellings, a path, user info or a
 * trailing dot are all foreign. Only consulted when the gateway itself
 * listens on loopback: then such a page is on the same machine as the
 * gateway, which is what DNS-rebinding protection is about.
 */
static bool loopback_origin(const char *s, size_t n)
{
    static const char *const hosts[] = {"http://localhost", "http://127.0.0.1", "http://[::1]"};
    size_t i, j;

    for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        size_t hl = sr_str_len(hosts[i]);
        uint32_t port = 0;

        if (n < hl || !sr_ascii_ieq(s, hl, hosts[i], hl))
            continue;
        if (n == hl)
            return true;
        if (s[hl] != ':' || n - hl - 1 < 1 || n - hl - 1 > 5)
            continue;
        for (j = hl + 1; j < n && s[j] >= '0' && s[j] <= '9'; j++)
            port = port * 10 + (uint32_t)(s[j] - '0');
        if (j == n && port <= 65535)
            return true;
    }
    return false;
}

/* Fill a REJECT decision whose error carries a "data" member (valid JSON, data_len bytes). */
static void reject_data(struct sr_decision *d, int status, int code, const char *msg,
                        const char *data, size_t data_len)
{
    int len;

    d->action = SR_ACT_REJECT;
    d->status = status;
    len = sr_error_body_data(d->body, sizeof(d->body), code, msg, data, data_len, d->rpc_id,
                             sr_str_len(d->rpc_id));
    if (len < 0)
        len = sr_error_body_data(d->body, sizeof(d->body), code, msg, NULL, 0, NULL, 0);
    d->body_len = len < 0 ? 0 : (size_t)len;
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

/* ---- MCP 2026-07-28: era and request headers (docs/mcp-2026-07-28.md) ---- */

/* Header value without the optional whitespace around it (RFC 9110 section 5.5). */
static void trim_span(const char **s, size_t *n)
{
    size_t a = 0, b = *n;

    trim(*s, &a, &b);
    *s += a;
    *n = b - a;
}

/* A header value the spec allows to be compared as is: visible ASCII, space and tab. */
static bool header_chars_ok(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!(c == '\t' || (c >= 0x20 && c <= 0x7e)))
            return false;
    }
    return true;
}

static bool is_legacy_version(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < sizeof(legacy_versions) / sizeof(legacy_versions[0]); i++) {
        if (span_is(s, n, legacy_versions[i]))
            return true;
    }
    return false;
}

/* Value index of params._meta["io.modelcontextprotocol/protocolVersion"] in an object body, or -1.
 */
static int32_t envelope_version(const struct sr_json_doc *doc)
{
    int32_t pi, mi;

    if (doc == NULL || doc->toks[0].type != SR_JSON_OBJECT)
        return -1;
    pi = sr_json_obj_get(doc, 0, "params", 6);
    if (pi < 0 || doc->toks[pi].type != SR_JSON_OBJECT)
        return -1;
    mi = sr_json_obj_get(doc, (uint32_t)pi, "_meta", 5);
    if (mi < 0 || doc->toks[mi].type != SR_JSON_OBJECT)
        return -1;
    return sr_json_obj_get(doc, (uint32_t)mi, META_PROTOCOL_VERSION,
                           sizeof(META_PROTOCOL_VERSION) - 1);
}

/*
 * Strict standard Base64 (RFC 4648 section 4), the form of the spec's
 * "=?base64?...?=" sentinel: whole groups of four, "=" only as the last one
 * or two characters, and zero unused bits, so that a value has exactly one
 * encoding (the SDKs refuse non-canonical input too). 0 and *outlen, or -1.
 */
static int b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t i, o = 0;

    if (n % 4 != 0)
        return -1;
    for (i = 0; i < n; i += 4) {
        int v[4], k, pad = 0;
        uint32_t g;

        for (k = 0; k < 4; k++) {
            if (in[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad > 0 || (v[k] = sr_base64_digit(in[i + k], false)) < 0) {
                return -1;
            }
        }
        g = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) |
            (uint32_t)v[3];
        if ((pad == 1 && (g & 0xffu) != 0) || (pad == 2 && (g & 0xffffu) != 0))
            return -1;
        if (o + 3u - (size_t)pad > cap)
            return -1;
        out[o++] = (uint8_t)(g >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(g >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)g;
    }
    *outlen = o;
    return 0;
}

enum name_check { NAME_MATCH, NAME_MISMATCH, NAME_MALFORMED, NAME_TOO_LONG };

/*
 * Compare an Mcp-Name value (OWS trimmed) with the body's string token vi.
 * A value in the "=?base64?...?=" sentinel (markers exactly, in lower case)
 * is decoded first; any other value is compared literally, and then may only
 * hold visible ASCII, space and tab.
 */
static enum name_check name_matches(const struct sr_json_doc *doc, uint32_t vi, const char *h,
                                    size_t n)
{
    uint8_t buf[SR_MCP_NAME_MAX];
    size_t len = 0;

    if (n >= 11 && sr_mem_eq(h, "=?base64?", 9) && sr_mem_eq(h + n - 2, "?=", 2)) {
        const char *b = h + 9;
        size_t bn = n - 11, want = bn / 4 * 3;

        /* The decoded length, counting the padding off, decides "too long" exactly. */
        if (bn >= 4 && b[bn - 1] == '=')
            want--;
        if (bn >= 4 && b[bn - 2] == '=')
            want--;
        if (want > sizeof(buf))
            return NAME_TOO_LONG;
        if (b64_decode(b, bn, buf, sizeof(buf), &len) != 0)
            return NAME_MALFORMED;
        return sr_json_str_eq(doc, vi, (const char *)buf, len) ? NAME_MATCH : NAME_MISMATCH;
    }
    if (!header_chars_ok(h, n))
        return NAME_MALFORMED;
    return sr_json_str_eq(doc, vi, h, n) ? NAME_MATCH : NAME_MISMATCH;
}

/* 400 UnsupportedProtocolVersionError: data lists what is served and echoes what was asked. */
static void unsupported_version(struct sr_decision *d, const char *pv, size_t n)
{
    char data[SR_PROTOCOL_VERSION_MAX * 2 + 64];
    struct sr_jw w;
    size_t len = 0;

    sr_jw_init(&w, data, sizeof(data));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "supported");
    sr_jw_arr_begin(&w);
    sr_jw_cstr(&w, SR_MCP_STATELESS_VERSION);
    sr_jw_arr_end(&w);
    /* A value too long or too odd to echo safely is left out rather than cut. */
    if (n <= SR_PROTOCOL_VERSION_MAX && header_chars_ok(pv, n)) {
        sr_jw_key(&w, "requested");
        sr_jw_str(&w, pv, n);
    }
    sr_jw_obj_end(&w);
    if (sr_jw_finish(&w, &len) != 0)
        len = 0;
    reject_data(d, 400, SR_RPC_UNSUPPORTED_VERSION,
                "Unsupported protocol version: the MCP-Protocol-Version header names a version "
                "this gateway does not serve. Send 2026-07-28 (stateless requests), or one of "
                "2025-11-25, 2025-06-18, 2025-03-26 and 2024-11-05 after an initialize "
                "handshake.",
                len > 0 ? data : NULL, len);
}

static void header_mismatch(struct sr_decision *d, const char *msg)
{
    reject(d, 400, SR_RPC_HEADER_MISMATCH, msg);
}

/*
 * The checks a 2026-07-28 request passes at the edge: it is one POSTed
 * JSON-RPC message whose headers agree with its body. The edge parses the
 * body anyway, so it is the component the spec obliges to refuse a request
 * whose mirrored headers (which proxies, load balancers and logs trust)
 * contradict what the server will execute. The envelope itself (_meta
 * fields, capabilities) is the backend's to judge. -1 after a rejection.
 */
static int check_stateless(const struct sr_request *req, const struct sr_json_doc *doc,
                           const struct peek *pk, bool is_post, const char *pv, size_t pvn,
                           struct sr_decision *d)
{
    int32_t mi, ii, env, pi, vi = -1;
    const char *h, *key = NULL;
    size_t hn;
    bool is_request;

    if (!is_post) {
        d->allow = ALLOW_MCP_STATELESS;
        reject(d, 405, SR_RPC_SERVER_ERROR,
               "Method not allowed: a 2026-07-28 request is a POST to /mcp; that revision has no "
               "GET stream and no session to DELETE. Send requests as POSTs (change "
               "notifications come from a subscriptions/listen request).");
        return -1;
    }
    if (!pk->single) {
        reject(d, 400, SR_RPC_INVALID_REQUEST,
               "Invalid Request: a 2026-07-28 POST carries exactly one JSON-RPC request or "
               "notification (an object), not a batch. Send each message as its own POST.");
        return -1;
    }
    mi = sr_json_obj_get(doc, 0, "method", 6);
    if (mi < 0 || doc->toks[mi].type != SR_JSON_STRING) {
        reject(d, 400, SR_RPC_INVALID_REQUEST,
               "Invalid Request: the body has no string \"method\" member. A 2026-07-28 POST "
               "carries one JSON-RPC request or notification; clients never POST responses.");
        return -1;
    }
    ii = sr_json_obj_get(doc, 0, "id", 2);
    is_request = ii >= 0;
    /* The same order as the MCP SDKs: version, then method, then name. */
    env = envelope_version(doc);
    if (env >= 0 &&
        (doc->toks[env].type != SR_JSON_STRING || !sr_json_str_eq(doc, (uint32_t)env, pv, pvn))) {
        header_mismatch(d, "Header mismatch: the MCP-Protocol-Version header does not match "
                           "params._meta[\"io.modelcontextprotocol/protocolVersion\"] in the "
                           "body. Send the same protocol version in both.");
        return -1;
    }
    h = req->mcp_method;
    hn = req->mcp_method_len;
    if (h == NULL) {
        /* Header rules for notification POSTs are not defined by 2026-07-28. */
        if (is_request) {
            header_mismatch(d, "Header mismatch: the request has no Mcp-Method header. A "
                               "2026-07-28 request repeats its JSON-RPC method in Mcp-Method; "
                               "send it, or use an MCP client that speaks 2026-07-28.");
            return -1;
        }
    } else {
        trim_span(&h, &hn);
        if (!header_chars_ok(h, hn) || !sr_json_str_eq(doc, (uint32_t)mi, h, hn)) {
            header_mismatch(d, "Header mismatch: the Mcp-Method header does not match the "
                               "JSON-RPC method in the body. Send Mcp-Method equal to the "
                               "body's \"method\", byte for byte (values are case-sensitive).");
            return -1;
        }
    }
    if (!is_request)
        return 0;
    if (sr_json_str_eq(doc, (uint32_t)mi, "tools/call", 10) ||
        sr_json_str_eq(doc, (uint32_t)mi, "prompts/get", 11))
        key = "name";
    else if (sr_json_str_eq(doc, (uint32_t)mi, "resources/read", 14))
        key = "uri";
    if (key == NULL)
        return 0;
    pi = sr_json_obj_get(doc, 0, "params", 6);
    if (pi >= 0 && doc->toks[pi].type == SR_JSON_OBJECT)
        vi = sr_json_obj_get(doc, (uint32_t)pi, key, sr_str_len(key));
    /* Without the value there is nothing to mirror; the backend refuses the missing param. */
    if (vi < 0 || doc->toks[vi].type == SR_JSON_NULL)
        return 0;
    h = req->mcp_name;
    hn = req->mcp_name_len;
    if (h == NULL) {
        header_mismatch(d, key[0] == 'u'
                               ? "Header mismatch: a resources/read request needs an Mcp-Name "
                                 "header equal to params.uri (Base64 in =?base64?...?= when it "
                                 "is not plain ASCII); the request had none."
                               : "Header mismatch: a tools/call or prompts/get request needs an "
                                 "Mcp-Name header equal to params.name (Base64 in "
                                 "=?base64?...?= when it is not plain ASCII); the request had "
                                 "none.");
        return -1;
    }
    trim_span(&h, &hn);
    switch (doc->toks[vi].type == SR_JSON_STRING ? name_matches(doc, (uint32_t)vi, h, hn)
                                                 : NAME_MISMATCH) {
    case NAME_MATCH:
        return 0;
    case NAME_TOO_LONG:
        header_mismatch(d, "Header mismatch: the Base64 Mcp-Name header decodes to more than "
                           "4096 bytes, more than this gateway compares with the body. Use a "
                           "shorter tool, prompt or resource name.");
        return -1;
    case NAME_MALFORMED:
        header_mismatch(d, "Header mismatch: the Mcp-Name header is malformed: a plain value "
                           "may hold only visible ASCII, space and tab, and an encoded one must "
                           "be =?base64?<canonical padded Base64>?=.");
        return -1;
    case NAME_MISMATCH:
    default:
        header_mismatch(d, "Header mismatch: the Mcp-Name header does not match the body's "
                           "params.name (tools/call, prompts/get) or params.uri "
                           "(resources/read). Send the same value, Base64-encoded in "
                           "=?base64?...?= when it is not plain ASCII.");
        return -1;
    }
}

/*
 * The era step: decide from MCP-Protocol-Version whether the request is of
 * the stateless 2026-07-28 revision (then check its headers and set
 * d->stateless) or of the session era, whose rules follow. `doc` is the
 * parsed body of a POST, else NULL. -1 after a rejection.
 */
static int check_era(const struct sr_request *req, const struct sr_json_doc *doc,
                     const struct peek *pk, bool is_post, struct sr_decision *d)
{
    const char *pv = req->protocol_version;
    size_t pvn = req->protocol_version_len;
    int32_t env = pk->single ? envelope_version(doc) : -1;

    if (req->mcp_header_repeated) {
        header_mismatch(d, "Header mismatch: MCP-Protocol-Version, Mcp-Method or Mcp-Name appears "
                           "more than once. Send each at most once: components that read "
                           "different copies would disagree about the request.");
        return -1;
    }
    if (pv == NULL) {
        /*
         * No header: a session-era client (2025-03-26 clients send none). A
         * body with the 2026-07-28 envelope is a modern request missing a
         * header the spec requires; passing it on would let the header-less
         * request reach the backend's session path instead of being refused.
         */
        if (env >= 0) {
            header_mismatch(d, "Header mismatch: the body carries the 2026-07-28 request "
                               "envelope (params._meta) but the request has no "
                               "MCP-Protocol-Version header. Send MCP-Protocol-Version: "
                               "2026-07-28 with Mcp-Method (and Mcp-Name) on every request.");
            return -1;
        }
        return 0;
    }
    trim_span(&pv, &pvn);
    if (span_is(pv, pvn, SR_MCP_STATELESS_VERSION)) {
        if (check_stateless(req, doc, pk, is_post, pv, pvn, d) != 0)
            return -1;
        sr_mem_copy(d->protocol_version, pv, pvn);
        d->protocol_version[pvn] = '\0';
        d->stateless = true;
        return 0;
    }
    if (is_legacy_version(pv, pvn)) {
        sr_mem_copy(d->protocol_version, pv, pvn);
        d->protocol_version[pvn] = '\0';
        return 0;
    }
    /* A header and envelope that disagree are reported as such first, as the SDKs do. */
    if (env >= 0 &&
        (doc->toks[env].type != SR_JSON_STRING || !sr_json_str_eq(doc, (uint32_t)env, pv, pvn))) {
        header_mismatch(d, "Header mismatch: the MCP-Protocol-Version header does not match "
                           "params._meta[\"io.modelcontextprotocol/protocolVersion\"] in the "
                           "body. Send the same protocol version in both.");
        return -1;
    }
    unsupported_version(d, pv, pvn);
    return -1;
}

static void classify_mcp(const struct sr_policy *p, const struct sr_request *req,
                         struct sr_json_tok *scratch, uint32_t scratch_cap, struct sr_decision *d)
{
    bool is_get = span_is(req->method, req->method_len, "GET");
    bool is_post = span_is(req->method, req->method_len, "POST");
    bool is_delete = span_is(req->method, req->method_len, "DELETE");
    bool has_session = req->session_id != NULL && req->session_id_len > 0;
    struct peek pk = {false, false, false};
    struct sr_json_doc doc;
    int32_t idx = -1;

    if (req->origin != NULL && !origin_allowed(p, req->origin, req->origin_len) &&
        !(p->loopback_listener && loopback_origin(req->origin, req->origin_len))) {
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
    if (check_era(req, is_post ? &doc : NULL, &pk, is_post, d) != 0)
        return;
    /*
     * Serena's SDK creates (and never frees) a server session for every
     * session-less request of the session era that is not initialize, so
     * those stop here.
     */
    if (!d->stateless && !has_session && !(is_post && pk.initialize)) {
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
    d->is_initialize = !d->stateless && is_post && pk.initialize && !has_session;
    d->fix_accept = req->accept == NULL ||
                    !accept_has(req->accept, req->accept_len, "application/json") ||
                    !accept_has(req->accept, req->accept_len, "text/event-stream");
    if (!d->stateless && is_post && has_session && pk.initialized) {
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
    d->stateless = false;
    d->protocol_version[0] = '\0';
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
           "MCP client at <this gateway's URL>/mcp.");
    return 0;
}
