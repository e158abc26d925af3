/*
 * The built-in authorization server's authorization endpoint (see oauth.h,
 * docs/oauth.md): the request's checks, the consent page where the person
 * proves who they are with a static token, the code it issues, and client ID
 * metadata documents (a client_id that is an https URL, fetched before the
 * page is shown).
 *
 * Secrets handled here (the person's static token, codes) are never logged,
 * never echoed in a page, and stored only as SHA-256 digests; buffers that
 * held them are cleansed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/mem.h"
#include "core/oauth.h"
#include "http/fetch.h"
#include "http/log.h"
#include "metrics/metrics.h"
#include "http/oauth_internal.h"

/* ---- authorization request ------------------------------------------------------- */

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
    a->c = sr_oa_client_for(o, a->client_id);
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

void sr_oa_error_page(struct sr_req *r, int status, const char *desc)
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
    if (sr_oa_random_token("", csrf, sizeof(csrf)) != 0) {
        sr_oa_error_page(r, 500, "The random generator failed; reload the page.");
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

void sr_oa_consent(struct sr_oauth *o, struct sr_req *r, const struct sr_tokens *t)
{
    size_t n;
    const char *f = sr_oa_form_body(r, &n);
    if (!f)
        return;
    static struct authz a;
    const char *error, *desc;
    enum authz_result ar = authz_parse(o, f, n, &a, &error, &desc);
    if (ar == AUTHZ_PAGE) {
        sr_oa_error_page(r, 400, desc);
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
        sr_oa_error_page(r, 403,
                         "The form was sent from another site. Open the sign-in link again.");
        return;
    }
    char csrf[64];
    const char *cookie = cookie_csrf(r, &cn);
    if (sr_form_get(f, n, "csrf", csrf, sizeof(csrf), NULL) != 1 || !cookie || cn != strlen(csrf) ||
        cn == 0 || CRYPTO_memcmp(cookie, csrf, cn) != 0) {
        sr_oa_error_page(
            r, 403,
            "The form's security check failed (cookies blocked, or the page is stale). "
            "Open the sign-in link again, with cookies allowed for this site.");
        return;
    }
    char action[16];
    if (sr_form_get(f, n, "action", action, sizeof(action), NULL) == 1 &&
        strcmp(action, "deny") == 0) {
        sr_metrics_oauth(SR_MO_DENIED);
        redirect_error(o, r, &a, "access_denied", "The person declined the sign-in.");
        return;
    }
    int64_t now = sr_oa_now();
    char addr[64];
    sr_oa_peer_host(r, addr, sizeof(addr));
    struct fail_count *fc = sr_oa_fails_for(o->fails, addr, now);
    if (sr_oa_window_full(fc, now, SR_OAUTH_FAILS_PER_ADDR) ||
        sr_oa_window_full(&o->total, now, SR_OAUTH_FAILS_TOTAL)) {
        sr_metrics_oauth(SR_MO_RATE_LIMITED);
        sr_oa_error_page(r, 429,
                         "Too many wrong tokens were entered; wait a minute before you try again.");
        return;
    }
    static char token[SR_TOKEN_MAX_LEN + 1];
    size_t tl = 0;
    int rc = sr_form_get(f, n, "token", token, sizeof(token), &tl);
    uint8_t d[32];
    sr_oa_digest(token, rc == 1 ? tl : 0, d);
    OPENSSL_cleanse(token, sizeof(token));
    int32_t idx = rc == 1 && tl > 0 && t ? sr_tokens_match(t, d) : -1;
    OPENSSL_cleanse(d, sizeof(d));
    if (idx < 0) {
        sr_metrics_oauth(SR_MO_WRONG_TOKEN);
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
    if (sr_oa_random_token("sr_c_", code, sizeof(code)) != 0) {
        sr_oa_error_page(r, 500, "The random generator failed; try again.");
        return;
    }
    struct sr_oauth_code *c = sr_oauth_store_new_code(o->st);
    sr_oa_digest(code, strlen(code), c->digest);
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
    sr_metrics_oauth(SR_MO_AUTHORIZED);

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

/* Take w off its server's list of requests waiting for a document. */
static void waits_unlink(struct cimd_wait *w)
{
    struct cimd_wait **p = &w->o->waits;
    while (*p && *p != w)
        p = &(*p)->next;
    if (*p)
        *p = w->next;
}

/* The client went away while its document was being fetched. */
static void cimd_abort(struct sr_req *r, void *arg)
{
    (void)r;
    struct cimd_wait *w = arg;
    waits_unlink(w);
    sr_fetch_cancel(w->f);
    free(w);
}

static void cimd_done(void *arg, const struct sr_fetch_result *res)
{
    struct cimd_wait *w = arg;
    struct sr_oauth *o = w->o;
    struct sr_req *r = w->r;
    waits_unlink(w);
    sr_req_set_hooks(r, NULL, NULL, NULL);
    const char *why = res->error;
    static struct sr_oauth_reg reg;
    if (!why &&
        sr_oauth_cimd_parse(res->body, res->len, w->url, strlen(w->url), sr_oa_reg_toks,
                            sizeof(sr_oa_reg_toks) / sizeof(sr_oa_reg_toks[0]), &reg, &why) == 0) {
        int64_t now = sr_oa_now();
        struct sr_oauth_client *c = sr_oa_client_for(o, w->url);
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
        sr_metrics_oauth(SR_MO_CIMD_READ);
        free(w);
        sr_oa_authorize(o, r, true);
        return;
    }
    sr_log_event("info", "OAuth: client metadata document %s refused: %s", w->url, why);
    sr_metrics_oauth(SR_MO_CIMD_REFUSED);
    char desc[768];
    snprintf(desc, sizeof(desc),
             "The application identifies itself with %s, but its client metadata document "
             "could not be used: %s.",
             w->url, why);
    free(w);
    sr_oa_error_page(r, 400, desc);
}

/* Fetch a client_id URL's document, then answer the authorization request. */
static void cimd_fetch(struct sr_oauth *o, struct sr_req *r, const char *url)
{
    if (!sr_oa_new_client_allowed(o, r)) {
        sr_metrics_oauth(SR_MO_RATE_LIMITED);
        sr_oa_error_page(r, 429,
                         "Too many new applications are signing in; try again in a minute.");
        return;
    }
    struct cimd_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        sr_oa_error_page(r, 500, "Out of memory; try again.");
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
        sr_oa_error_page(r, 400, desc);
        return;
    }
    w->next = o->waits;
    o->waits = w;
    sr_req_set_hooks(r, cimd_abort, NULL, w);
}

void sr_oa_authorize(struct sr_oauth *o, struct sr_req *r, bool fetched)
{
    size_t n;
    const char *q = sr_oa_query(r, &n);
    static struct authz a;
    const char *error, *desc;
    if (n > SR_OAUTH_FORM_MAX) {
        sr_oa_error_page(r, 400, "The sign-in link is longer than the gateway accepts.");
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
            sr_oa_error_page(r, 400, d);
            return;
        }
        const struct sr_oauth_client *c = sr_oa_client_for(o, id);
        if (!c || c->fresh_until <= sr_oa_now()) {
            cimd_fetch(o, r, id);
            return;
        }
    }
    enum authz_result ar = authz_parse(o, q, n, &a, &error, &desc);
    if (ar == AUTHZ_PAGE)
        sr_oa_error_page(r, 400, desc);
    else if (ar == AUTHZ_REDIRECT)
        redirect_error(o, r, &a, error, desc);
    else
        consent_page(o, r, 200, &a, NULL);
}
