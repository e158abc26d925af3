/*
 * The built-in authorization server's endpoints and consent page (see
 * oauth.h, docs/oauth.md). Policy that needs no I/O (form parsing, redirect
 * URI rules, PKCE inputs, metadata) is in core/oauth.c; this file does the
 * randomness and hashing (OpenSSL), the records (oauth_store.c) and HTTP.
 *
 * Secrets handled here (the person's static token on the consent page, codes,
 * access and refresh tokens) are never logged, never echoed in a page or an
 * error, and stored only as SHA-256 digests. Buffers that held them are
 * cleansed before they go out of scope.
 */
#include "http/oauth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "core/errors.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/oauth.h"
#include "http/fetch.h"
#include "http/log.h"
#include "http/oauth_store.h"

struct fail_count {
    char addr[64];
    int64_t start;
    uint32_t n;
};

struct sr_oauth {
    char pub[SR_OAUTH_PUBLIC_URL_MAX + 1];
    char resource[SR_OAUTH_PUBLIC_URL_MAX + 8];
    bool https;
    char www[2 * SR_OAUTH_PUBLIC_URL_MAX + 128];
    char www_invalid[2 * SR_OAUTH_PUBLIC_URL_MAX + 160];
    struct sr_oauth_store *st;
    struct fail_count fails[SR_OAUTH_FAIL_ADDRS]; /* wrong tokens on the consent page */
    struct fail_count total;
    struct fail_count regs[SR_OAUTH_FAIL_ADDRS]; /* registrations and metadata fetches */
    struct fail_count regs_total;
    struct event_base *base; /* metadata documents are fetched on it */
    enum sr_oauth_cimd cimd; /* client_id URLs: off, on, or on with loopback hosts too */
    struct cimd_wait *waits; /* authorization requests waiting for a metadata document */
};

/* An authorization request whose client_id URL's document is being fetched. */
struct cimd_wait {
    struct cimd_wait *next;
    struct sr_oauth *o;
    struct sr_req *r;
    struct sr_fetch *f;
    char url[SR_OAUTH_URI_MAX + 1];
};

/*
 * Browser-based clients (the MCP Inspector) call metadata, registration, token and revocation
 * with fetch. Those endpoints use no cookie or other ambient credential (clients are public and
 * codes are bound by PKCE), so any origin may read their answers. The consent page is not one
 * of them: it sets a cookie and is never answered cross-origin.
 */
#define CORS "Access-Control-Allow-Origin: *\r\n"

/* Registration bodies are small; their JSON tokens fit in this. */
static struct sr_json_tok g_reg_toks[2048];

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

struct sr_oauth *sr_oauth_new(const char *public_url, const char *state_dir, char *err,
                              size_t errlen)
{
    const char *why = "";
    if (!public_url || !*public_url) {
        snprintf(err, errlen,
                 "OAUTH_ENABLED=1 needs the gateway's public URL: set --public-url or "
                 "SERENA_REMOTE_PUBLIC_URL (e.g. https://mcp.example.com), the address clients "
                 "reach it at");
        return NULL;
    }
    if (sr_oauth_public_url_check(public_url, strlen(public_url), &why) != 0) {
        snprintf(err, errlen, "SERENA_REMOTE_PUBLIC_URL is not usable as the OAuth issuer: %s",
                 why);
        return NULL;
    }
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the state directory %s for OAuth: %s", state_dir,
                 strerror(errno));
        return NULL;
    }
    struct sr_oauth *o = calloc(1, sizeof(*o));
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    o->st = sr_oauth_store_open(state_dir, err, errlen);
    if (!o->st) {
        free(o);
        return NULL;
    }
    snprintf(o->pub, sizeof(o->pub), "%s", public_url);
    snprintf(o->resource, sizeof(o->resource), "%s/mcp", public_url);
    o->https = strncmp(public_url, "https://", 8) == 0;
    snprintf(o->www, sizeof(o->www),
             "WWW-Authenticate: Bearer realm=\"serena-remote\", "
             "resource_metadata=\"%s/.well-known/oauth-protected-resource/mcp\"\r\n",
             public_url);
    snprintf(o->www_invalid, sizeof(o->www_invalid),
             "WWW-Authenticate: Bearer realm=\"serena-remote\", error=\"invalid_token\", "
             "resource_metadata=\"%s/.well-known/oauth-protected-resource/mcp\"\r\n",
             public_url);
    return o;
}

void sr_oauth_free(struct sr_oauth *o)
{
    if (!o)
        return;
    while (o->waits) {
        struct cimd_wait *w = o->waits;
        o->waits = w->next;
        sr_req_set_hooks(w->r, NULL, NULL, NULL);
        sr_fetch_cancel(w->f);
        free(w);
    }
    sr_oauth_store_free(o->st);
    free(o);
}

void sr_oauth_set_cimd(struct sr_oauth *o, struct event_base *base, enum sr_oauth_cimd mode)
{
    o->base = base;
    o->cimd = base ? mode : SR_OAUTH_CIMD_OFF;
}

const char *sr_oauth_www_authenticate(const struct sr_oauth *o, bool credential_sent)
{
    return credential_sent ? o->www_invalid : o->www;
}

void sr_oauth_tokens_changed(struct sr_oauth *o, const struct sr_tokens *t)
{
    uint32_t n = sr_oauth_store_prune(o->st, t);
    if (n) {
        sr_log_event("info",
                     "OAuth: %u code(s) and token(s) ended: their static token was "
                     "removed or changed",
                     n);
        sr_oauth_store_save(o->st, now_s());
    }
}

/* ---- small helpers ----------------------------------------------------------- */

static bool span_is(const struct sr_span *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->n == n && memcmp(s->p, lit, n) == 0;
}

static bool span_starts(const struct sr_span *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->n >= n && memcmp(s->p, lit, n) == 0;
}

/* The query string of the request target ("" when none). */
static const char *query_of(const struct sr_req *r, size_t *n)
{
    const struct sr_http_head *h = sr_req_head(r);
    const char *q = memchr(h->target.p, '?', h->target.n);
    if (!q) {
        *n = 0;
        return "";
    }
    *n = h->target.n - (size_t)(q + 1 - h->target.p);
    return q + 1;
}

/* prefix + base64url of 32 random bytes, NUL-terminated; -1 when the generator fails. */
static int random_token(const char *prefix, char *out, size_t cap)
{
    uint8_t b[32];
    size_t pl = strlen(prefix);
    if (cap < pl + 44 || RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    memcpy(out, prefix, pl);
    size_t n = sr_base64url_encode(b, sizeof(b), out + pl);
    out[pl + n] = '\0';
    OPENSSL_cleanse(b, sizeof(b));
    return 0;
}

static void digest_of(const char *s, size_t n, uint8_t out[32])
{
    SHA256((const unsigned char *)s, n, out);
}

/* An OAuth error document (RFC 6749 section 5.2); never holds a secret. */
static void oauth_error(struct sr_req *r, int status, const char *error, const char *desc)
{
    char body[1024];
    struct sr_jw w;
    size_t n = 0;
    sr_jw_init(&w, body, sizeof(body));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "error");
    sr_jw_cstr(&w, error);
    sr_jw_key(&w, "error_description");
    sr_jw_cstr(&w, desc);
    sr_jw_obj_end(&w);
    if (sr_jw_finish(&w, &n) != 0)
        n = 0;
    sr_resp_simple(r, status, "application/json",
                   status == 401 ? "Cache-Control: no-store\r\nWWW-Authenticate: Bearer\r\n" CORS
                                 : "Cache-Control: no-store\r\n" CORS,
                   body, n);
}

/* The request body as a NUL-free span, or NULL (answered) when it is too large. */
static const char *form_body(struct sr_req *r, size_t *n)
{
    struct evbuffer *b = sr_req_body(r);
    *n = evbuffer_get_length(b);
    if (*n > SR_OAUTH_FORM_MAX) {
        oauth_error(r, 413, "invalid_request", "The form is larger than the gateway accepts.");
        return NULL;
    }
    return *n ? (const char *)evbuffer_pullup(b, -1) : "";
}

/* Read a form field; false (answered 400) when the form is malformed. */
static bool field(struct sr_req *r, const char *f, size_t n, const char *key, char *out, size_t cap,
                  bool *present)
{
    int rc = sr_form_get(f, n, key, out, cap, NULL);
    if (rc < 0) {
        char desc[160];
        snprintf(desc, sizeof(desc),
                 "The parameter %s is malformed, too long or given more than once.", key);
        oauth_error(r, 400, "invalid_request", desc);
        return false;
    }
    if (rc == 0)
        out[0] = '\0';
    if (present)
        *present = rc == 1;
    return true;
}

/* ---- metadata ------------------------------------------------------------------ */

static void answer_metadata(struct sr_oauth *o, struct sr_req *r, bool server)
{
    char doc[4096];
    int n = server
                ? sr_oauth_server_metadata(o->pub, o->cimd != SR_OAUTH_CIMD_OFF, doc, sizeof(doc))
                : sr_oauth_resource_metadata(o->pub, doc, sizeof(doc));
    if (n < 0) {
        oauth_error(r, 500, "server_error", "The metadata document does not fit.");
        return;
    }
    /* Browser-based clients (the MCP Inspector) read metadata cross-origin. */
    sr_resp_simple(r, 200, "application/json", "Cache-Control: max-age=300\r\n" CORS, doc,
                   (size_t)n);
}

/* ---- registration (RFC 7591) ----------------------------------------------------- */

static void peer_host(struct sr_req *r, char *out, size_t cap);
static bool window_full(struct fail_count *f, int64_t now, uint32_t max);
static struct fail_count *fails_for(struct fail_count *table, const char *addr, int64_t now);

/*
 * Registrations and metadata fetches are open to anyone: bounded per client address and in
 * total, so a flood cannot churn the registrations of clients people use (the store also evicts
 * those without grants first) nor make the gateway fetch without end. Counts this one.
 */
static bool new_client_allowed(struct sr_oauth *o, struct sr_req *r)
{
    char addr[64];
    int64_t now = now_s();
    peer_host(r, addr, sizeof(addr));
    struct fail_count *rc = fails_for(o->regs, addr, now);
    if (window_full(rc, now, SR_OAUTH_REGISTER_PER_ADDR) ||
        window_full(&o->regs_total, now, SR_OAUTH_REGISTER_TOTAL))
        return false;
    rc->n++;
    o->regs_total.n++;
    return true;
}

static void answer_register(struct sr_oauth *o, struct sr_req *r)
{
    struct evbuffer *b = sr_req_body(r);
    size_t n = evbuffer_get_length(b);
    static struct sr_oauth_reg reg;
    const char *error = "", *why = "";
    const char *body = n ? (const char *)evbuffer_pullup(b, -1) : "";
    if (!new_client_allowed(o, r)) {
        char doc[256];
        int dn = snprintf(doc, sizeof(doc), "%s",
                          "{\"error\":\"invalid_request\",\"error_description\":\"Too many "
                          "registrations; try again in a minute.\"}");
        sr_resp_simple(r, 429, "application/json",
                       "Cache-Control: no-store\r\nRetry-After: 60\r\n" CORS, doc,
                       dn < 0 ? 0 : (size_t)dn);
        return;
    }
    if (sr_oauth_registration_parse(body, n, g_reg_toks, sizeof(g_reg_toks) / sizeof(g_reg_toks[0]),
                                    &reg, &error, &why) != 0) {
        oauth_error(r, 400, error, why);
        return;
    }
    struct sr_oauth_client *c = sr_oauth_store_new_client(o->st);
    uint8_t id[16];
    if (RAND_bytes(id, sizeof(id)) != 1) {
        memset(c, 0, sizeof(*c));
        oauth_error(r, 500, "server_error", "The random generator failed; try again.");
        return;
    }
    sr_base64url_encode(id, sizeof(id), c->id);
    c->id[SR_OAUTH_CLIENT_ID_LEN] = '\0';
    memcpy(c->name, reg.name, sizeof(c->name));
    memcpy(c->redirect, reg.redirect, sizeof(c->redirect));
    c->nredirect = reg.nredirect;
    c->created = c->last_used = now_s();
    c->used = true;
    sr_oauth_store_save(o->st, now_s());
    sr_log_event("info", "OAuth: registered client %s", c->id);

    char doc[4096];
    struct sr_jw w;
    size_t len = 0;
    sr_jw_init(&w, doc, sizeof(doc));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "client_id");
    sr_jw_cstr(&w, c->id);
    sr_jw_key(&w, "client_id_issued_at");
    sr_jw_int(&w, c->created);
    if (c->name[0]) {
        sr_jw_key(&w, "client_name");
        sr_jw_cstr(&w, c->name);
    }
    sr_jw_key(&w, "redirect_uris");
    sr_jw_arr_begin(&w);
    for (uint32_t i = 0; i < c->nredirect; i++)
        sr_jw_cstr(&w, c->redirect[i]);
    sr_jw_arr_end(&w);
    sr_jw_key(&w, "grant_types");
    sr_jw_arr_begin(&w);
    sr_jw_cstr(&w, "authorization_code");
    sr_jw_cstr(&w, "refresh_token");
    sr_jw_arr_end(&w);
    sr_jw_key(&w, "response_types");
    sr_jw_arr_begin(&w);
    sr_jw_cstr(&w, "code");
    sr_jw_arr_end(&w);
    sr_jw_key(&w, "token_endpoint_auth_method");
    sr_jw_cstr(&w, "none");
    sr_jw_obj_end(&w);
    if (sr_jw_finish(&w, &len) != 0)
        len = 0;
    sr_resp_simple(r, 201, "application/json", "Cache-Control: no-store\r\n" CORS, doc, len);
}

/* ---- authorization request ------------------------------------------------------- */

/* The client a client_id names: a registration, or a client_id URL's record (CIMD). */
static struct sr_oauth_client *client_for(struct sr_oauth *o, const char *client_id)
{
    if (!sr_oauth_is_url_client(client_id, strlen(client_id)))
        return sr_oauth_store_client(o->st, client_id);
    char id[SR_OAUTH_CLIENT_ID_LEN + 1];
    sr_oauth_store_url_id(client_id, id);
    struct sr_oauth_client *c = sr_oauth_store_client(o->st, id);
    return c && strcmp(c->url, client_id) == 0 ? c : NULL;
}

struct authz {
    char client_id[SR_OAUTH_URI_MAX + 1]; /* a registered id or a client_id URL (CIMD) */
    char redirect[SR_OAUTH_URI_MAX + 1];
    char state[SR_OAUTH_PARAM_MAX + 1];
    bool has_state;
    char challenge[64];
    char method[16];
    char resource[SR_OAUTH_PARAM_MAX + 1];
    bool has_resource;
    char response_type[32];
    char scope[SR_OAUTH_PARAM_MAX + 1];
    bool has_scope;
    struct sr_oauth_client *c;
};

enum authz_result {
    AUTHZ_OK = 0,
    AUTHZ_PAGE,     /* no trustworthy redirect: show an error page */
    AUTHZ_REDIRECT, /* send the error to the client's redirect URI */
};

/* Validate an authorization request (query or consent form). */
static enum authz_result authz_parse(struct sr_oauth *o, const char *f, size_t n, struct authz *a,
                                     const char **error, const char **desc)
{
    memset(a, 0, sizeof(*a));
    *error = "invalid_request";
    bool has_redirect = false;
    if (sr_form_get(f, n, "client_id", a->client_id, sizeof(a->client_id), NULL) != 1) {
        *desc = "The sign-in link has no valid client_id. Start the sign-in again from the "
                "application.";
        return AUTHZ_PAGE;
    }
    a->c = client_for(o, a->client_id);
    if (!a->c && sr_oauth_is_url_client(a->client_id, strlen(a->client_id)) &&
        o->cimd == SR_OAUTH_CIMD_OFF) {
        *desc = "The application identifies itself with a URL (a client metadata document), "
                "which this gateway does not accept (SERENA_REMOTE_OAUTH_CIMD=off). It may "
                "offer dynamic registration instead.";
        return AUTHZ_PAGE;
    }
    if (!a->c) {
        *desc = "The sign-in link names an application this gateway does not know (its "
                "registration expired or was dropped). Start the sign-in again from the "
                "application; it registers anew.";
        return AUTHZ_PAGE;
    }
    int rc = sr_form_get(f, n, "redirect_uri", a->redirect, sizeof(a->redirect), NULL);
    if (rc < 0) {
        *desc = "The sign-in link's redirect_uri is malformed or too long.";
        return AUTHZ_PAGE;
    }
    has_redirect = rc == 1;
    if (!has_redirect) {
        if (a->c->nredirect != 1) {
            *desc = "The sign-in link has no redirect_uri and the application registered "
                    "several.";
            return AUTHZ_PAGE;
        }
        snprintf(a->redirect, sizeof(a->redirect), "%s", a->c->redirect[0]);
    } else {
        bool ok = false;
        for (uint32_t i = 0; i < a->c->nredirect; i++)
            if (sr_oauth_redirect_match(a->c->redirect[i], strlen(a->c->redirect[i]), a->redirect,
                                        strlen(a->redirect)))
                ok = true;
        if (!ok) {
            *desc = "The sign-in link's redirect_uri is not one the application registered, so "
                    "the gateway will not send anything there.";
            return AUTHZ_PAGE;
        }
    }
    /* From here on the redirect URI is trusted: errors go back to the client. */
    if ((rc = sr_form_get(f, n, "state", a->state, sizeof(a->state), NULL)) < 0) {
        *desc = "The state parameter is malformed, too long or repeated.";
        return AUTHZ_PAGE;
    }
    a->has_state = rc == 1;
    if (sr_form_get(f, n, "response_type", a->response_type, sizeof(a->response_type), NULL) != 1 ||
        strcmp(a->response_type, "code") != 0) {
        *error = "unsupported_response_type";
        *desc = "Only response_type=code is supported.";
        return AUTHZ_REDIRECT;
    }
    if (sr_form_get(f, n, "code_challenge", a->challenge, sizeof(a->challenge), NULL) != 1 ||
        !sr_oauth_challenge_ok(a->challenge, strlen(a->challenge))) {
        *desc = "PKCE is required: send code_challenge (S256, 43 base64url characters).";
        return AUTHZ_REDIRECT;
    }
    if (sr_form_get(f, n, "code_challenge_method", a->method, sizeof(a->method), NULL) != 1 ||
        strcmp(a->method, "S256") != 0) {
        *desc = "Only code_challenge_method=S256 is supported.";
        return AUTHZ_REDIRECT;
    }
    if ((rc = sr_form_get(f, n, "resource", a->resource, sizeof(a->resource), NULL)) < 0) {
        *desc = "The resource parameter is malformed or repeated.";
        return AUTHZ_REDIRECT;
    }
    a->has_resource = rc == 1;
    if (a->has_resource && strcmp(a->resource, o->resource) != 0) {
        *error = "invalid_target";
        *desc = "This authorization server only issues tokens for its own MCP endpoint "
                "(<public URL>/mcp).";
        return AUTHZ_REDIRECT;
    }
    if ((rc = sr_form_get(f, n, "scope", a->scope, sizeof(a->scope), NULL)) < 0) {
        *desc = "The scope parameter is malformed or repeated.";
        return AUTHZ_REDIRECT;
    }
    /* Unknown scopes are accepted and none is granted: access is all of the token's route. */
    a->has_scope = rc == 1;
    *error = "";
    *desc = "";
    return AUTHZ_OK;
}

/* Append "name=value" (value percent-encoded) to a redirect URI being built. */
static void url_param(char *url, size_t cap, const char *name, const char *value)
{
    size_t len = strlen(url);
    char enc[3 * SR_OAUTH_PARAM_MAX + 1];
    if (sr_form_encode(value, strlen(value), enc, sizeof(enc), NULL) != 0)
        enc[0] = '\0';
    snprintf(url + len, cap - len, "%c%s=%s", strchr(url, '?') ? '&' : '?', name, enc);
}

static void redirect_to(struct sr_req *r, const char *url)
{
    char hdr[8 * SR_OAUTH_PARAM_MAX];
    snprintf(hdr, sizeof(hdr),
             "Location: %s\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n", url);
    sr_resp_simple(r, 302, NULL, hdr, "", 0);
}

static void redirect_error(struct sr_oauth *o, struct sr_req *r, const struct authz *a,
                           const char *error, const char *desc)
{
    static char url[7 * SR_OAUTH_PARAM_MAX];
    snprintf(url, sizeof(url), "%s", a->redirect);
    url_param(url, sizeof(url), "error", error);
    url_param(url, sizeof(url), "error_description", desc);
    if (a->has_state)
        url_param(url, sizeof(url), "state", a->state);
    url_param(url, sizeof(url), "iss", o->pub);
    redirect_to(r, url);
}

/* ---- pages ------------------------------------------------------------------------ */

struct html {
    char buf[24 * 1024];
    size_t n;
};

static void h_put(struct html *h, const char *s)
{
    size_t n = strlen(s);
    if (h->n + n < sizeof(h->buf)) {
        memcpy(h->buf + h->n, s, n);
        h->n += n;
    }
}

/* Text escaped for both element content and double-quoted attributes. */
static void h_esc(struct html *h, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            h_put(h, "&lt;");
            break;
        case '>':
            h_put(h, "&gt;");
            break;
        case '&':
            h_put(h, "&amp;");
            break;
        case '"':
            h_put(h, "&quot;");
            break;
        case '\'':
            h_put(h, "&#39;");
            break;
        default: {
            char c[2] = {*s, '\0'};
            h_put(h, c);
        }
        }
    }
}

static void h_hidden(struct html *h, const char *name, const char *value)
{
    h_put(h, "<input type=\"hidden\" name=\"");
    h_put(h, name);
    h_put(h, "\" value=\"");
    h_esc(h, value);
    h_put(h, "\">\n");
}

#define PAGE_HEADERS                                                                               \
    "Cache-Control: no-store\r\n"                                                                  \
    "X-Frame-Options: DENY\r\n"                                                                    \
    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "                     \
    "frame-ancestors 'none'\r\n"                                                                   \
    "Referrer-Policy: no-referrer\r\n"                                                             \
    "X-Content-Type-Options: nosniff\r\n"

static const char PAGE_HEAD[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<title>Sign in to serena-remote</title><style>"
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;"
    "line-height:1.5}.u{color:#666;font-size:.9em}.err{color:#b00020;font-weight:600}"
    "input[type=password]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}"
    "button{padding:.5rem 1.2rem;font-size:1rem;margin:1rem .5rem 0 0}</style></head><body>\n";

static void error_page(struct sr_req *r, int status, const char *desc)
{
    static struct html h;
    h.n = 0;
    h_put(&h, PAGE_HEAD);
    h_put(&h, "<h1>This sign-in cannot go on</h1>\n<p>");
    h_esc(&h, desc);
    h_put(&h, "</p>\n</body></html>\n");
    sr_resp_simple(r, status, "text/html; charset=utf-8", PAGE_HEADERS, h.buf, h.n);
}

static void consent_page(struct sr_oauth *o, struct sr_req *r, int status, const struct authz *a,
                         const char *problem)
{
    static struct html h;
    char csrf[64];
    if (random_token("", csrf, sizeof(csrf)) != 0) {
        error_page(r, 500, "The random generator failed; reload the page.");
        return;
    }
    const char *host = "";
    size_t hl = 0;
    char hostbuf[SR_OAUTH_URI_MAX + 1] = "";
    if (sr_oauth_uri_host(a->redirect, strlen(a->redirect), &host, &hl) == 0)
        snprintf(hostbuf, sizeof(hostbuf), "%.*s", (int)hl, host);
    h.n = 0;
    h_put(&h, PAGE_HEAD);
    h_put(&h, "<h1>Allow access to serena-remote?</h1>\n<p>The application <strong>");
    h_esc(&h, a->c->name[0] ? a->c->name : "(unnamed)");
    h_put(&h, "</strong> <span class=\"u\">(the name it gave itself: unverified)</span> asks to "
              "use this gateway's MCP tools as you.</p>\n");
    const char *ch = "";
    size_t chl = 0;
    if (a->c->url[0] && sr_oauth_uri_host(a->c->url, strlen(a->c->url), &ch, &chl) == 0) {
        /* CIMD: the document came from this host, which is the one thing known about it. */
        char chost[SR_OAUTH_URI_MAX + 1];
        snprintf(chost, sizeof(chost), "%.*s", (int)chl, ch);
        h_put(&h, "<p>It identifies itself by a document published at <strong>");
        h_esc(&h, chost);
        h_put(&h, "</strong>.");
        if (strcmp(chost, hostbuf) != 0)
            h_put(&h, " <span class=\"err\">It sends you back to a different host than the one "
                      "that published it.</span>");
        h_put(&h, "</p>\n");
    }
    h_put(&h, "<p>After you allow it, your browser goes back to <strong>");
    h_esc(&h, hostbuf);
    h_put(&h, "</strong>. Only go on if you started this sign-in there.</p>\n");
    if (problem) {
        h_put(&h, "<p class=\"err\">");
        h_esc(&h, problem);
        h_put(&h, "</p>\n");
    }
    h_put(&h, "<form method=\"post\" action=\"/oauth/authorize\">\n");
    h_hidden(&h, "csrf", csrf);
    h_hidden(&h, "client_id", a->client_id);
    h_hidden(&h, "redirect_uri", a->redirect);
    h_hidden(&h, "response_type", "code");
    h_hidden(&h, "code_challenge", a->challenge);
    h_hidden(&h, "code_challenge_method", a->method);
    if (a->has_state)
        h_hidden(&h, "state", a->state);
    if (a->has_resource)
        h_hidden(&h, "resource", a->resource);
    if (a->has_scope)
        h_hidden(&h, "scope", a->scope);
    h_put(&h,
          "<label for=\"token\">Your serena-remote token (proves who you are; the "
          "application never sees it)</label>\n"
          "<input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" "
          "required autofocus>\n"
          "<button type=\"submit\" name=\"action\" value=\"allow\">Allow</button>"
          "<button type=\"submit\" name=\"action\" value=\"deny\" formnovalidate>Deny</button>\n"
          "</form>\n</body></html>\n");
    char hdr[1024];
    snprintf(hdr, sizeof(hdr),
             PAGE_HEADERS "Set-Cookie: sr_oauth_csrf=%s; Path=/oauth/authorize; HttpOnly; "
                          "SameSite=Strict%s\r\n",
             csrf, o->https ? "; Secure" : "");
    sr_resp_simple(r, status, "text/html; charset=utf-8", hdr, h.buf, h.n);
}

/* ---- consent ------------------------------------------------------------------------ */

/* The client address without its port: what wrong-token attempts are counted by. */
static void peer_host(struct sr_req *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s", sr_req_peer(r));
    char *colon = strrchr(out, ':');
    if (colon && (out[0] != '[' || (colon > out && colon[-1] == ']')))
        *colon = '\0';
}

static bool window_full(struct fail_count *f, int64_t now, uint32_t max)
{
    if (now - f->start >= SR_OAUTH_FAIL_WINDOW) {
        f->start = now;
        f->n = 0;
    }
    return f->n >= max;
}

/* table: SR_OAUTH_FAIL_ADDRS counters, one per client address. */
static struct fail_count *fails_for(struct fail_count *table, const char *addr, int64_t now)
{
    struct fail_count *oldest = &table[0];
    for (uint32_t i = 0; i < SR_OAUTH_FAIL_ADDRS; i++) {
        if (strcmp(table[i].addr, addr) == 0)
            return &table[i];
        if (table[i].start < oldest->start)
            oldest = &table[i];
    }
    /* Reuse the slot whose window started longest ago (it has most likely expired). */
    snprintf(oldest->addr, sizeof(oldest->addr), "%s", addr);
    oldest->start = now;
    oldest->n = 0;
    return oldest;
}

/* The csrf cookie's value, or NULL. */
static const char *cookie_csrf(struct sr_req *r, size_t *n)
{
    size_t cn;
    const char *c = sr_req_header(r, "cookie", &cn);
    static const char key[] = "sr_oauth_csrf=";
    for (size_t i = 0; c && i + sizeof(key) - 1 <= cn; i++) {
        if ((i == 0 || c[i - 1] == ' ' || c[i - 1] == ';') &&
            memcmp(c + i, key, sizeof(key) - 1) == 0) {
            size_t s = i + sizeof(key) - 1, e = s;
            while (e < cn && c[e] != ';')
                e++;
            *n = e - s;
            return c + s;
        }
    }
    return NULL;
}

static void consent(struct sr_oauth *o, struct sr_req *r, const struct sr_tokens *t)
{
    size_t n;
    const char *f = form_body(r, &n);
    if (!f)
        return;
    static struct authz a;
    const char *error, *desc;
    enum authz_result ar = authz_parse(o, f, n, &a, &error, &desc);
    if (ar == AUTHZ_PAGE) {
        error_page(r, 400, desc);
        return;
    }
    if (ar == AUTHZ_REDIRECT) {
        redirect_error(o, r, &a, error, desc);
        return;
    }
    /* CSRF: the page's hidden value must equal its cookie (only our page can read both), and
     * a browser's Origin, when sent, must be this gateway. */
    size_t on, cn = 0;
    const char *origin = sr_req_header(r, "origin", &on);
    if (origin && !(on == strlen(o->pub) && sr_ascii_ieq(origin, on, o->pub, on))) {
        error_page(r, 403, "The form was sent from another site. Open the sign-in link again.");
        return;
    }
    char csrf[64];
    const char *cookie = cookie_csrf(r, &cn);
    if (sr_form_get(f, n, "csrf", csrf, sizeof(csrf), NULL) != 1 || !cookie || cn != strlen(csrf) ||
        cn == 0 || CRYPTO_memcmp(cookie, csrf, cn) != 0) {
        error_page(r, 403,
                   "The form's security check failed (cookies blocked, or the page is stale). "
                   "Open the sign-in link again, with cookies allowed for this site.");
        return;
    }
    char action[16];
    if (sr_form_get(f, n, "action", action, sizeof(action), NULL) == 1 &&
        strcmp(action, "deny") == 0) {
        redirect_error(o, r, &a, "access_denied", "The person declined the sign-in.");
        return;
    }
    int64_t now = now_s();
    char addr[64];
    peer_host(r, addr, sizeof(addr));
    struct fail_count *fc = fails_for(o->fails, addr, now);
    if (window_full(fc, now, SR_OAUTH_FAILS_PER_ADDR) ||
        window_full(&o->total, now, SR_OAUTH_FAILS_TOTAL)) {
        error_page(r, 429,
                   "Too many wrong tokens were entered; wait a minute before you try again.");
        return;
    }
    static char token[SR_TOKEN_MAX_LEN + 1];
    size_t tl = 0;
    int rc = sr_form_get(f, n, "token", token, sizeof(token), &tl);
    uint8_t d[32];
    digest_of(token, rc == 1 ? tl : 0, d);
    OPENSSL_cleanse(token, sizeof(token));
    int32_t idx = rc == 1 && tl > 0 && t ? sr_tokens_match(t, d) : -1;
    OPENSSL_cleanse(d, sizeof(d));
    if (idx < 0) {
        fc->n++;
        o->total.n++;
        sr_log_event("info", "OAuth: a wrong token on the consent page from %s (client %s)", addr,
                     a.client_id);
        consent_page(o, r, 401, &a,
                     "That is not one of this gateway's tokens. Enter the token you use with "
                     "serena-remote (as in Authorization: Bearer ...).");
        return;
    }

    char code[64];
    if (random_token("sr_c_", code, sizeof(code)) != 0) {
        error_page(r, 500, "The random generator failed; try again.");
        return;
    }
    struct sr_oauth_code *c = sr_oauth_store_new_code(o->st);
    digest_of(code, strlen(code), c->digest);
    snprintf(c->b.client_id, sizeof(c->b.client_id), "%s", a.c->id);
    snprintf(c->b.name, sizeof(c->b.name), "%s", t->e[idx].name);
    sr_oauth_bind_of(t->e[idx].digest, c->b.bind);
    snprintf(c->redirect, sizeof(c->redirect), "%s", a.redirect);
    snprintf(c->challenge, sizeof(c->challenge), "%s", a.challenge);
    c->expires = now + SR_OAUTH_CODE_TTL;
    c->used = true;
    a.c->last_used = now;
    sr_oauth_store_save(o->st, now);
    sr_log_event("info", "OAuth: client %s authorized for token %s", a.client_id, c->b.name);

    static char url[7 * SR_OAUTH_PARAM_MAX];
    snprintf(url, sizeof(url), "%s", a.redirect);
    url_param(url, sizeof(url), "code", code);
    if (a.has_state)
        url_param(url, sizeof(url), "state", a.state);
    url_param(url, sizeof(url), "iss", o->pub);
    OPENSSL_cleanse(code, sizeof(code));
    redirect_to(r, url);
    OPENSSL_cleanse(url, sizeof(url));
}

static void authorize_get(struct sr_oauth *o, struct sr_req *r, bool fetched);

/* The client went away while its document was being fetched. */
static void cimd_abort(struct sr_req *r, void *arg)
{
    (void)r;
    struct cimd_wait *w = arg;
    struct cimd_wait **p = &w->o->waits;
    while (*p && *p != w)
        p = &(*p)->next;
    if (*p)
        *p = w->next;
    sr_fetch_cancel(w->f);
    free(w);
}

static void cimd_done(void *arg, const struct sr_fetch_result *res)
{
    struct cimd_wait *w = arg;
    struct sr_oauth *o = w->o;
    struct sr_req *r = w->r;
    struct cimd_wait **p = &o->waits;
    while (*p && *p != w)
        p = &(*p)->next;
    if (*p)
        *p = w->next;
    sr_req_set_hooks(r, NULL, NULL, NULL);
    const char *why = res->error;
    static struct sr_oauth_reg reg;
    if (!why && sr_oauth_cimd_parse(res->body, res->len, w->url, strlen(w->url), g_reg_toks,
                                    sizeof(g_reg_toks) / sizeof(g_reg_toks[0]), &reg, &why) == 0) {
        int64_t now = now_s();
        struct sr_oauth_client *c = client_for(o, w->url);
        if (!c) {
            c = sr_oauth_store_new_client(o->st);
            sr_oauth_store_url_id(w->url, c->id);
            snprintf(c->url, sizeof(c->url), "%s", w->url);
            c->created = now;
            c->used = true;
        }
        memcpy(c->name, reg.name, sizeof(c->name));
        memcpy(c->redirect, reg.redirect, sizeof(c->redirect));
        c->nredirect = reg.nredirect;
        c->last_used = now;
        long ttl = res->max_age < 0 ? 3600 : res->max_age;
        c->fresh_until = now + (ttl > SR_OAUTH_CIMD_TTL_MAX ? SR_OAUTH_CIMD_TTL_MAX : ttl);
        sr_oauth_store_save(o->st, now);
        sr_log_event("info",
                     "OAuth: client metadata document %s read (%zu bytes, %u redirect URI(s))",
                     w->url, res->len, c->nredirect);
        free(w);
        authorize_get(o, r, true);
        return;
    }
    sr_log_event("info", "OAuth: client metadata document %s refused: %s", w->url, why);
    char desc[768];
    snprintf(desc, sizeof(desc),
             "The application identifies itself with %s, but its client metadata document "
             "could not be used: %s.",
             w->url, why);
    free(w);
    error_page(r, 400, desc);
}

/* Fetch a client_id URL's document, then answer the authorization request. */
static void cimd_fetch(struct sr_oauth *o, struct sr_req *r, const char *url)
{
    if (!new_client_allowed(o, r)) {
        error_page(r, 429, "Too many new applications are signing in; try again in a minute.");
        return;
    }
    struct cimd_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        error_page(r, 500, "Out of memory; try again.");
        return;
    }
    struct sr_fetch_opts fo = {
        .max_bytes = SR_OAUTH_CIMD_MAX,
        .timeout_ms = 5000,
        .public_only = true,
        .allow_loopback = o->cimd == SR_OAUTH_CIMD_LOOPBACK,
    };
    char err[256];
    w->o = o;
    w->r = r;
    snprintf(w->url, sizeof(w->url), "%s", url);
    w->f = sr_fetch_start(o->base, url, &fo, cimd_done, w, err, sizeof(err));
    if (!w->f) {
        char desc[768];
        snprintf(desc, sizeof(desc), "The application's client_id %s cannot be fetched: %s.", url,
                 err);
        free(w);
        error_page(r, 400, desc);
        return;
    }
    w->next = o->waits;
    o->waits = w;
    sr_req_set_hooks(r, cimd_abort, NULL, w);
}

static void authorize_get(struct sr_oauth *o, struct sr_req *r, bool fetched)
{
    size_t n;
    const char *q = query_of(r, &n);
    static struct authz a;
    const char *error, *desc;
    if (n > SR_OAUTH_FORM_MAX) {
        error_page(r, 400, "The sign-in link is longer than the gateway accepts.");
        return;
    }
    /* A client_id URL (CIMD): its document is read when unknown or no longer fresh. */
    static char id[SR_OAUTH_URI_MAX + 1];
    if (!fetched && o->cimd != SR_OAUTH_CIMD_OFF &&
        sr_form_get(q, n, "client_id", id, sizeof(id), NULL) == 1 &&
        sr_oauth_is_url_client(id, strlen(id))) {
        const char *why = "";
        if (sr_oauth_cimd_url_check(id, strlen(id), &why) != 0) {
            char d[256];
            snprintf(d, sizeof(d), "The sign-in link's client_id is not usable: %s.", why);
            error_page(r, 400, d);
            return;
        }
        const struct sr_oauth_client *c = client_for(o, id);
        if (!c || c->fresh_until <= now_s()) {
            cimd_fetch(o, r, id);
            return;
        }
    }
    enum authz_result ar = authz_parse(o, q, n, &a, &error, &desc);
    if (ar == AUTHZ_PAGE)
        error_page(r, 400, desc);
    else if (ar == AUTHZ_REDIRECT)
        redirect_error(o, r, &a, error, desc);
    else
        consent_page(o, r, 200, &a, NULL);
}

/* ---- token endpoint ---------------------------------------------------------------- */

static void issue(struct sr_oauth *o, struct sr_req *r, const struct sr_oauth_binding *b,
                  const uint8_t family[16])
{
    char at[64], rt[64];
    if (random_token("sr_at_", at, sizeof(at)) != 0 ||
        random_token("sr_rt_", rt, sizeof(rt)) != 0) {
        oauth_error(r, 500, "server_error", "The random generator failed; try again.");
        return;
    }
    int64_t now = now_s();
    struct sr_oauth_grant *g = sr_oauth_store_new_grant(o->st);
    g->kind = SR_OAUTH_ACCESS;
    digest_of(at, strlen(at), g->digest);
    memcpy(g->family, family, 16);
    g->b = *b;
    g->expires = now + SR_OAUTH_ACCESS_TTL;
    g = sr_oauth_store_new_grant(o->st);
    g->kind = SR_OAUTH_REFRESH;
    digest_of(rt, strlen(rt), g->digest);
    memcpy(g->family, family, 16);
    g->b = *b;
    g->expires = now + SR_OAUTH_REFRESH_TTL;
    struct sr_oauth_client *c = sr_oauth_store_client(o->st, b->client_id);
    if (c)
        c->last_used = now;
    sr_oauth_store_save(o->st, now);

    char doc[512];
    struct sr_jw w;
    size_t n = 0;
    sr_jw_init(&w, doc, sizeof(doc));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "access_token");
    sr_jw_cstr(&w, at);
    sr_jw_key(&w, "token_type");
    sr_jw_cstr(&w, "Bearer");
    sr_jw_key(&w, "expires_in");
    sr_jw_int(&w, SR_OAUTH_ACCESS_TTL);
    sr_jw_key(&w, "refresh_token");
    sr_jw_cstr(&w, rt);
    sr_jw_key(&w, "scope");
    sr_jw_cstr(&w, "");
    sr_jw_obj_end(&w);
    if (sr_jw_finish(&w, &n) != 0)
        n = 0;
    sr_resp_simple(r, 200, "application/json",
                   "Cache-Control: no-store\r\nPragma: no-cache\r\n" CORS, doc, n);
    OPENSSL_cleanse(at, sizeof(at));
    OPENSSL_cleanse(rt, sizeof(rt));
    OPENSSL_cleanse(doc, sizeof(doc));
}

static void token_code(struct sr_oauth *o, struct sr_req *r, const struct sr_tokens *t,
                       const char *f, size_t n, const char *client_id)
{
    static char code[SR_OAUTH_PARAM_MAX + 1], redirect[SR_OAUTH_URI_MAX + 1],
        verifier[SR_OAUTH_PARAM_MAX + 1], resource[SR_OAUTH_PARAM_MAX + 1];
    bool has_resource = false, has_redirect = false;
    if (!field(r, f, n, "code", code, sizeof(code), NULL) ||
        !field(r, f, n, "redirect_uri", redirect, sizeof(redirect), &has_redirect) ||
        !field(r, f, n, "code_verifier", verifier, sizeof(verifier), NULL) ||
        !field(r, f, n, "resource", resource, sizeof(resource), &has_resource))
        return;
    if (!sr_oauth_verifier_ok(verifier, strlen(verifier))) {
        oauth_error(r, 400, "invalid_request",
                    "code_verifier is required (PKCE): 43 to 128 unreserved characters.");
        return;
    }
    if (has_resource && strcmp(resource, o->resource) != 0) {
        oauth_error(r, 400, "invalid_target",
                    "This server only issues tokens for its own MCP endpoint.");
        return;
    }
    uint8_t d[32];
    digest_of(code, strlen(code), d);
    OPENSSL_cleanse(code, sizeof(code));
    struct sr_oauth_code *c = sr_oauth_store_code(o->st, d);
    if (!c) {
        oauth_error(r, 400, "invalid_grant",
                    "The authorization code is unknown, was already used, or expired. Sign in "
                    "again.");
        return;
    }
    /* One use only, whatever the outcome. A redeemed code is kept, with the family its tokens
     * got, until it expires: presented again, someone else holds a copy (OAuth 2.1 section
     * 4.1.3), and every token it produced is revoked. */
    if (c->redeemed) {
        uint32_t k = sr_oauth_store_revoke_family(o->st, c->family);
        memset(c, 0, sizeof(*c));
        sr_oauth_store_save(o->st, now_s());
        sr_log_event("warn",
                     "OAuth: an authorization code of client %s was presented again; %u token(s) "
                     "it produced revoked",
                     client_id, k);
        oauth_error(r, 400, "invalid_grant",
                    "The authorization code was already used; the tokens it produced are now "
                    "revoked. Sign in again.");
        return;
    }
    uint8_t family[16];
    if (RAND_bytes(family, sizeof(family)) != 1) {
        oauth_error(r, 500, "server_error", "The random generator failed; try again.");
        return;
    }
    struct sr_oauth_code cc = *c;
    c->redeemed = true;
    memcpy(c->family, family, sizeof(family));
    sr_oauth_store_save(o->st, now_s());
    uint8_t vd[32];
    digest_of(verifier, strlen(verifier), vd);
    bool pkce = sr_oauth_challenge_match(vd, cc.challenge, strlen(cc.challenge));
    if (cc.expires <= now_s() || strcmp(cc.b.client_id, client_id) != 0 ||
        (has_redirect && strcmp(cc.redirect, redirect) != 0) || !has_redirect || !pkce ||
        !sr_oauth_binding_live(&cc.b, t, NULL)) {
        oauth_error(r, 400, "invalid_grant",
                    "The authorization code does not match this client, redirect_uri or "
                    "code_verifier, expired, or its token was removed. Sign in again.");
        return;
    }
    issue(o, r, &cc.b, family);
}

static void token_refresh(struct sr_oauth *o, struct sr_req *r, const struct sr_tokens *t,
                          const char *f, size_t n, const char *client_id)
{
    static char rt[SR_OAUTH_PARAM_MAX + 1], resource[SR_OAUTH_PARAM_MAX + 1];
    bool has_resource = false;
    if (!field(r, f, n, "refresh_token", rt, sizeof(rt), NULL) ||
        !field(r, f, n, "resource", resource, sizeof(resource), &has_resource))
        return;
    if (has_resource && strcmp(resource, o->resource) != 0) {
        oauth_error(r, 400, "invalid_target",
                    "This server only issues tokens for its own MCP endpoint.");
        return;
    }
    uint8_t d[32];
    digest_of(rt, strlen(rt), d);
    OPENSSL_cleanse(rt, sizeof(rt));
    struct sr_oauth_grant *g = sr_oauth_store_grant(o->st, d);
    if (!g || g->kind != SR_OAUTH_REFRESH || g->expires <= now_s() ||
        strcmp(g->b.client_id, client_id) != 0) {
        oauth_error(r, 400, "invalid_grant",
                    "The refresh token is unknown, expired or another client's. Sign in again.");
        return;
    }
    if (g->rotated) {
        /* A rotated refresh token came back: someone holds a copy. End the whole family. */
        uint8_t fam[16];
        memcpy(fam, g->family, 16);
        uint32_t k = sr_oauth_store_revoke_family(o->st, fam);
        sr_oauth_store_save(o->st, now_s());
        sr_log_event("warn",
                     "OAuth: a used refresh token of client %s was presented again; %u token(s) "
                     "of its sign-in revoked",
                     client_id, k);
        oauth_error(r, 400, "invalid_grant",
                    "This refresh token was already used; every token of this sign-in is now "
                    "revoked. Sign in again.");
        return;
    }
    if (!sr_oauth_binding_live(&g->b, t, NULL)) {
        sr_oauth_store_revoke_family(o->st, g->family);
        sr_oauth_store_save(o->st, now_s());
        oauth_error(r, 400, "invalid_grant",
                    "The token this sign-in was made with is no longer accepted. Sign in again.");
        return;
    }
    g->rotated = true;
    struct sr_oauth_binding b = g->b;
    uint8_t fam[16];
    memcpy(fam, g->family, 16);
    issue(o, r, &b, fam);
}

static void answer_token(struct sr_oauth *o, struct sr_req *r, const struct sr_tokens *t)
{
    size_t n;
    const char *f = form_body(r, &n);
    if (!f)
        return;
    static char client_id[SR_OAUTH_URI_MAX + 1];
    char grant[32];
    if (!field(r, f, n, "grant_type", grant, sizeof(grant), NULL) ||
        !field(r, f, n, "client_id", client_id, sizeof(client_id), NULL))
        return;
    const struct sr_oauth_client *c = client_id[0] ? client_for(o, client_id) : NULL;
    if (!c) {
        oauth_error(r, 401, "invalid_client",
                    "client_id is missing or unknown (registrations expire when unused); "
                    "register again.");
        return;
    }
    /* Bindings name clients by their internal id (a client_id URL's is derived from it). */
    if (strcmp(grant, "authorization_code") == 0)
        token_code(o, r, t, f, n, c->id);
    else if (strcmp(grant, "refresh_token") == 0)
        token_refresh(o, r, t, f, n, c->id);
    else
        oauth_error(r, 400, "unsupported_grant_type",
                    "Only authorization_code and refresh_token are supported.");
}

/* RFC 7009: always 200, whether or not the token was known. */
static void answer_revoke(struct sr_oauth *o, struct sr_req *r)
{
    size_t n;
    const char *f = form_body(r, &n);
    if (!f)
        return;
    static char tok[SR_OAUTH_PARAM_MAX + 1];
    static char client_id[SR_OAUTH_URI_MAX + 1];
    bool has_client = false;
    if (!field(r, f, n, "token", tok, sizeof(tok), NULL) ||
        !field(r, f, n, "client_id", client_id, sizeof(client_id), &has_client))
        return;
    if (has_client && sr_oauth_is_url_client(client_id, strlen(client_id)))
        sr_oauth_store_url_id(client_id, client_id);
    uint8_t d[32];
    digest_of(tok, strlen(tok), d);
    OPENSSL_cleanse(tok, sizeof(tok));
    struct sr_oauth_grant *g = sr_oauth_store_grant(o->st, d);
    if (g && (!has_client || strcmp(g->b.client_id, client_id) == 0)) {
        if (g->kind == SR_OAUTH_REFRESH)
            sr_oauth_store_revoke_family(o->st, g->family);
        else
            memset(g, 0, sizeof(*g));
        sr_oauth_store_save(o->st, now_s());
    }
    sr_resp_simple(r, 200, "application/json", "Cache-Control: no-store\r\n" CORS, "{}", 2);
}

/* ---- dispatch ------------------------------------------------------------------------ */

bool sr_oauth_owns(const struct sr_req *r)
{
    const struct sr_http_head *h = sr_req_head(r);
    return span_starts(&h->path, "/.well-known/oauth-") || span_starts(&h->path, "/oauth/");
}

void sr_oauth_handle(struct sr_oauth *o, struct sr_req *r, const struct sr_tokens *t)
{
    const struct sr_http_head *h = sr_req_head(r);
    const struct sr_span *p = &h->path;
    bool get = span_is(&h->method, "GET") || span_is(&h->method, "HEAD");
    bool post = span_is(&h->method, "POST");

    sr_oauth_store_sweep(o->st, now_s());
    if (span_is(&h->method, "OPTIONS") && !span_is(p, "/oauth/authorize")) {
        /* CORS preflight (see CORS above); a JSON registration body needs one. */
        sr_resp_simple(r, 204, NULL,
                       CORS "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
                            "Access-Control-Allow-Headers: Content-Type, Authorization, "
                            "MCP-Protocol-Version\r\n"
                            "Access-Control-Max-Age: 86400\r\n",
                       "", 0);
        return;
    }
    if (span_is(p, "/.well-known/oauth-protected-resource") ||
        span_is(p, "/.well-known/oauth-protected-resource/mcp")) {
        if (get)
            answer_metadata(o, r, false);
        else
            oauth_error(r, 405, "invalid_request", "Metadata is read with GET.");
        return;
    }
    if (span_is(p, "/.well-known/oauth-authorization-server")) {
        if (get)
            answer_metadata(o, r, true);
        else
            oauth_error(r, 405, "invalid_request", "Metadata is read with GET.");
        return;
    }
    if (span_is(p, "/oauth/authorize")) {
        if (get)
            authorize_get(o, r, false);
        else if (post)
            consent(o, r, t);
        else
            error_page(r, 405, "The authorization endpoint takes GET or POST.");
        return;
    }
    if (span_is(p, "/oauth/register") || span_is(p, "/oauth/token") ||
        span_is(p, "/oauth/revoke")) {
        if (!post) {
            oauth_error(r, 405, "invalid_request", "This endpoint takes POST.");
            return;
        }
        if (span_is(p, "/oauth/register"))
            answer_register(o, r);
        else if (span_is(p, "/oauth/token"))
            answer_token(o, r, t);
        else
            answer_revoke(o, r);
        return;
    }
    oauth_error(r, 404, "invalid_request",
                "Not found: the OAuth endpoints are listed in "
                "/.well-known/oauth-authorization-server.");
}

bool sr_oauth_bearer(struct sr_oauth *o, const struct sr_tokens *t, uint8_t digest[32])
{
    struct sr_oauth_grant *g = sr_oauth_store_grant(o->st, digest);
    int32_t idx = -1;
    if (!g || g->kind != SR_OAUTH_ACCESS || g->expires <= now_s() ||
        !sr_oauth_binding_live(&g->b, t, &idx))
        return false;
    memcpy(digest, t->e[idx].digest, 32);
    return true;
}
