/*
 * JWT access tokens from an external identity provider (see idp.h, docs/oauth.md): the key
 * cache and its fetches (http/fetch.h), the requests held for an unknown kid, and the
 * protected resource metadata naming the issuer. Parsing and rules are in core/jwt.c,
 * signatures in jwt_verify.c.
 *
 * Tokens are never logged: a refusal logs its reason only.
 */
#include "http/idp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "core/auth.h"
#include "core/errors.h"
#include "core/jwt.h"
#include "core/oauth.h"
#include "http/fetch.h"
#include "http/jwt_verify.h"
#include "http/log.h"
#include "http/util.h"

struct waiter {
    struct sr_idp *p;
    struct sr_req *r;
    sr_idp_resume_cb cb;
    void *arg;
    struct waiter *prev, *next;
};

enum stage { ST_IDLE, ST_OPENID, ST_RFC8414, ST_JWKS };

struct sr_idp {
    struct event_base *base;
    char issuer[SR_OAUTH_URI_MAX + 1];
    char jwks_url[SR_OAUTH_URI_MAX + 1]; /* configured or discovered; "" until known */
    bool jwks_configured;
    char claim[SR_JWT_CLAIM_MAX + 1];
    struct sr_claim_map map;
    char pub[SR_OAUTH_PUBLIC_URL_MAX + 1];
    char resource[SR_OAUTH_PUBLIC_URL_MAX + 8];
    uint32_t skew;
    bool builtin;
    char www[2 * SR_OAUTH_PUBLIC_URL_MAX + 128];
    char www_invalid[2 * SR_OAUTH_PUBLIC_URL_MAX + 160];
    struct sr_jwks keys;
    EVP_PKEY *pk[SR_JWKS_KEYS_MAX];
    bool loaded;
    struct sr_fetch *f;
    enum stage stage;
    bool unknown_ever;
    uint64_t unknown_us; /* when an unknown kid last caused a refresh (monotonic) */
    struct waiter *waiters;
    uint32_t nwaiters;
    struct event *timer;
};

/* Scratch for the JSON reader: single-threaded, one document at a time. */
static struct sr_json_tok g_toks[SR_JWKS_TOKS];
static struct sr_jwks g_jwks;
static struct sr_jwt g_jwt;

#define CORS "Access-Control-Allow-Origin: *\r\n"

static void refresh(struct sr_idp *p);

static void keys_clear(struct sr_idp *p)
{
    for (uint32_t i = 0; i < SR_JWKS_KEYS_MAX; i++) {
        EVP_PKEY_free(p->pk[i]);
        p->pk[i] = NULL;
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    refresh(arg);
}

/* The fetch is over (keys replaced or not): schedule the next one, resume held requests. */
static void finish(struct sr_idp *p)
{
    p->f = NULL;
    p->stage = ST_IDLE;
    struct timeval tv = {p->loaded ? SR_IDP_JWKS_REFRESH : SR_IDP_UNKNOWN_KID_INTERVAL, 0};
    evtimer_add(p->timer, &tv);
    struct waiter *w = p->waiters;
    p->waiters = NULL;
    p->nwaiters = 0;
    while (w) {
        struct waiter *next = w->next;
        sr_req_set_hooks(w->r, NULL, NULL, NULL);
        w->cb(w->r, w->arg);
        free(w);
        w = next;
    }
}

static void fetch_cb(void *arg, const struct sr_fetch_result *res);

static void start(struct sr_idp *p, enum stage st, const char *url)
{
    struct sr_fetch_opts o = {.max_bytes = SR_JWKS_MAX,
                              .timeout_ms = SR_IDP_FETCH_TIMEOUT_MS,
                              .public_only = false,
                              .allow_loopback = true,
                              .allow_http_loopback = true};
    char err[256] = "";
    p->stage = st;
    p->f = sr_fetch_start(p->base, url, &o, fetch_cb, p, err, sizeof(err));
    if (!p->f) {
        sr_log_event("error", "OAuth issuer: cannot fetch %s: %s", url, err);
        finish(p);
    }
}

/* The issuer's metadata URL: OpenID Connect Discovery appends to the issuer; RFC 8414 puts the
 * well-known segment between the host and the issuer's path. */
static void metadata_url(const struct sr_idp *p, bool openid, char *out, size_t cap)
{
    size_t n = strlen(p->issuer);
    if (n && p->issuer[n - 1] == '/')
        n--;
    if (openid) {
        snprintf(out, cap, "%.*s/.well-known/openid-configuration", (int)n, p->issuer);
        return;
    }
    const char *host = strstr(p->issuer, "://") + 3;
    const char *path = memchr(host, '/', n - (size_t)(host - p->issuer));
    size_t hn = path ? (size_t)(path - p->issuer) : n;
    snprintf(out, cap, "%.*s/.well-known/oauth-authorization-server%.*s", (int)hn, p->issuer,
             (int)(n - hn), p->issuer + hn);
}

/* jwks_uri from a metadata document whose issuer is ours; -1 with a reason. */
static int discovered(struct sr_idp *p, const char *body, size_t n, const char **why)
{
    struct sr_json_doc d;
    char v[SR_OAUTH_URI_MAX + 1];
    size_t len = 0;
    if (sr_json_parse(&d, body, n, g_toks, SR_JWKS_TOKS, NULL) != 0 ||
        d.toks[0].type != SR_JSON_OBJECT) {
        *why = "not a JSON object";
        return -1;
    }
    int32_t iss = sr_json_obj_get(&d, 0, "issuer", 6);
    if (iss < 0 || d.toks[iss].type != SR_JSON_STRING ||
        !sr_json_str_eq(&d, (uint32_t)iss, p->issuer, strlen(p->issuer))) {
        *why = "its issuer is not the configured issuer";
        return -1;
    }
    int32_t ju = sr_json_obj_get(&d, 0, "jwks_uri", 8);
    if (ju < 0 || d.toks[ju].type != SR_JSON_STRING ||
        sr_json_str_decode(&d, (uint32_t)ju, v, sizeof(v) - 1, &len) != 0) {
        *why = "it has no jwks_uri";
        return -1;
    }
    v[len] = '\0';
    if (strlen(v) != len || sr_idp_issuer_check(v, len, why) != 0)
        return -1;
    snprintf(p->jwks_url, sizeof(p->jwks_url), "%s", v);
    return 0;
}

static void jwks_loaded(struct sr_idp *p, const char *body, size_t n)
{
    const char *why = "";
    if (sr_jwks_parse(body, n, g_toks, SR_JWKS_TOKS, &g_jwks, &why) != 0) {
        sr_log_event("error", "OAuth issuer: the JWKS at %s is refused: %s (keys kept: %u)",
                     p->jwks_url, why, p->keys.n);
        return;
    }
    keys_clear(p);
    p->keys = g_jwks;
    uint32_t usable = 0, bad = 0;
    for (uint32_t i = 0; i < p->keys.n; i++) {
        p->pk[i] = sr_jwk_pkey(&p->keys.k[i]);
        if (p->pk[i])
            usable++;
        else
            bad++;
    }
    p->loaded = true;
    sr_log_event("info", "OAuth issuer: JWKS from %s: %u usable key(s), %u left out", p->jwks_url,
                 usable, p->keys.skipped + bad);
}

static void fetch_cb(void *arg, const struct sr_fetch_result *res)
{
    struct sr_idp *p = arg;
    const char *why = "";
    char url[SR_OAUTH_URI_MAX + 64];
    p->f = NULL;
    switch (p->stage) {
    case ST_OPENID:
    case ST_RFC8414:
        if (res->body && discovered(p, res->body, res->len, &why) == 0) {
            sr_log_event("info", "OAuth issuer: jwks_uri %s (from the issuer's metadata)",
                         p->jwks_url);
            start(p, ST_JWKS, p->jwks_url);
            return;
        }
        metadata_url(p, p->stage == ST_OPENID, url, sizeof(url));
        sr_log_event("warn", "OAuth issuer: no jwks_uri from %s: %s", url,
                     res->body ? why : (res->error ? res->error : "no answer"));
        if (p->stage == ST_OPENID) {
            metadata_url(p, false, url, sizeof(url));
            start(p, ST_RFC8414, url);
            return;
        }
        break;
    case ST_JWKS:
        if (res->body)
            jwks_loaded(p, res->body, res->len);
        else
            sr_log_event("error", "OAuth issuer: cannot fetch the JWKS %s: %s (keys kept: %u)",
                         p->jwks_url, res->error ? res->error : "no answer", p->keys.n);
        break;
    case ST_IDLE:
        break;
    }
    finish(p);
}

static void refresh(struct sr_idp *p)
{
    char url[SR_OAUTH_URI_MAX + 64];
    if (p->f)
        return;
    evtimer_del(p->timer);
    if (p->jwks_url[0]) {
        start(p, ST_JWKS, p->jwks_url);
        return;
    }
    metadata_url(p, true, url, sizeof(url));
    start(p, ST_OPENID, url);
}

struct sr_idp *sr_idp_new(struct event_base *base, const struct sr_idp_opts *o, char *err,
                          size_t errlen)
{
    const char *why = "";
    if (sr_idp_issuer_check(o->issuer, strlen(o->issuer), &why) != 0) {
        snprintf(err, errlen, "SERENA_REMOTE_OAUTH_ISSUER is not usable: %s", why);
        return NULL;
    }
    if (o->jwks_url && *o->jwks_url &&
        sr_idp_issuer_check(o->jwks_url, strlen(o->jwks_url), &why)) {
        snprintf(err, errlen, "SERENA_REMOTE_OAUTH_JWKS_URL is not usable: %s", why);
        return NULL;
    }
    if (!o->public_url || !*o->public_url ||
        sr_oauth_public_url_check(o->public_url, strlen(o->public_url), &why) != 0) {
        snprintf(err, errlen,
                 "SERENA_REMOTE_OAUTH_ISSUER needs SERENA_REMOTE_PUBLIC_URL (--public-url): the "
                 "resource tokens must be issued for is <public-url>/mcp");
        return NULL;
    }
    struct sr_idp *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (o->claim_map && *o->claim_map &&
        sr_claim_map_parse(o->claim_map, strlen(o->claim_map), g_toks, SR_JWKS_TOKS, &p->map,
                           &why) != 0) {
        snprintf(err, errlen, "SERENA_REMOTE_OAUTH_CLAIM_MAP: %s", why);
        free(p);
        return NULL;
    }
    p->timer = evtimer_new(base, timer_cb, p);
    if (!p->timer) {
        snprintf(err, errlen, "out of memory");
        free(p);
        return NULL;
    }
    p->base = base;
    snprintf(p->issuer, sizeof(p->issuer), "%s", o->issuer);
    if (o->jwks_url && *o->jwks_url) {
        snprintf(p->jwks_url, sizeof(p->jwks_url), "%s", o->jwks_url);
        p->jwks_configured = true;
    }
    snprintf(p->claim, sizeof(p->claim), "%s", o->claim && *o->claim ? o->claim : "sub");
    snprintf(p->pub, sizeof(p->pub), "%s", o->public_url);
    snprintf(p->resource, sizeof(p->resource), "%s/mcp", o->public_url);
    p->skew = o->skew;
    p->builtin = o->builtin;
    snprintf(p->www, sizeof(p->www),
             "WWW-Authenticate: Bearer realm=\"serena-remote\", "
             "resource_metadata=\"%s/.well-known/oauth-protected-resource/mcp\"\r\n",
             o->public_url);
    snprintf(p->www_invalid, sizeof(p->www_invalid),
             "WWW-Authenticate: Bearer realm=\"serena-remote\", error=\"invalid_token\", "
             "resource_metadata=\"%s/.well-known/oauth-protected-resource/mcp\"\r\n",
             o->public_url);
    refresh(p);
    return p;
}

void sr_idp_free(struct sr_idp *p)
{
    if (!p)
        return;
    if (p->f)
        sr_fetch_cancel(p->f);
    while (p->waiters) {
        struct waiter *w = p->waiters;
        p->waiters = w->next;
        free(w);
    }
    keys_clear(p);
    event_free(p->timer);
    free(p);
}

static bool path_is(const struct sr_span *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->n == n && memcmp(s->p, lit, n) == 0;
}

bool sr_idp_owns(const struct sr_req *r)
{
    const struct sr_http_head *h = sr_req_head(r);
    return path_is(&h->path, "/.well-known/oauth-protected-resource") ||
           path_is(&h->path, "/.well-known/oauth-protected-resource/mcp");
}

void sr_idp_handle(struct sr_idp *p, struct sr_req *r)
{
    const struct sr_http_head *h = sr_req_head(r);
    char doc[4096];
    if (path_is(&h->method, "OPTIONS")) {
        sr_resp_simple(r, 204, NULL,
                       CORS "Access-Control-Allow-Methods: GET, OPTIONS\r\n"
                            "Access-Control-Allow-Headers: MCP-Protocol-Version\r\n"
                            "Access-Control-Max-Age: 86400\r\n",
                       "", 0);
        return;
    }
    if (!path_is(&h->method, "GET") && !path_is(&h->method, "HEAD")) {
        sr_resp_simple(r, 405, "application/json", "Allow: GET, OPTIONS\r\n" CORS,
                       "{\"error\":\"invalid_request\"}", 27);
        return;
    }
    int n = sr_oauth_resource_metadata_with(p->pub, p->issuer, p->builtin, doc, sizeof(doc));
    if (n < 0) {
        sr_resp_simple(r, 500, "application/json", NULL, "{\"error\":\"server_error\"}", 25);
        return;
    }
    sr_resp_simple(r, 200, "application/json", "Cache-Control: max-age=300\r\n" CORS, doc,
                   (size_t)n);
}

void sr_idp_tokens_changed(const struct sr_idp *p, const struct sr_tokens *t)
{
    char names[512] = "";
    size_t off = 0;
    uint32_t missing = 0;
    for (uint32_t m = 0; m < p->map.n; m++) {
        if (sr_tokens_find(t, p->map.e[m].name) >= 0)
            continue;
        if (missing++ < 8 && off < sizeof(names))
            off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", off ? ", " : "",
                                    p->map.e[m].name);
    }
    if (missing)
        sr_log_event("warn",
                     "OAuth issuer: SERENA_REMOTE_OAUTH_CLAIM_MAP names %u token(s) that are not "
                     "configured (%s%s): JWTs mapped to them are refused",
                     missing, names, missing > 8 ? ", ..." : "");
}

const char *sr_idp_www_authenticate(const struct sr_idp *p, bool credential_sent)
{
    return credential_sent ? p->www_invalid : p->www;
}

static void waiter_abort(struct sr_req *r, void *arg)
{
    struct waiter *w = arg;
    struct sr_idp *p = w->p;
    (void)r;
    if (w->prev)
        w->prev->next = w->next;
    else
        p->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    p->nwaiters--;
    free(w);
}

static enum sr_idp_verdict hold(struct sr_idp *p, struct sr_req *r, sr_idp_resume_cb resume,
                                void *arg)
{
    struct waiter *w = p->nwaiters < SR_IDP_WAITERS_MAX ? calloc(1, sizeof(*w)) : NULL;
    if (!w) {
        sr_log_event("warn", "OAuth issuer: JWT refused: %u requests wait for the JWKS already",
                     p->nwaiters);
        return SR_IDP_REFUSED;
    }
    w->p = p;
    w->r = r;
    w->cb = resume;
    w->arg = arg;
    w->next = p->waiters;
    if (p->waiters)
        p->waiters->prev = w;
    p->waiters = w;
    p->nwaiters++;
    sr_req_set_hooks(r, waiter_abort, NULL, w);
    return SR_IDP_HELD;
}

static enum sr_idp_verdict refuse(const char *why)
{
    sr_log_event("info", "OAuth issuer: JWT refused: %s", why);
    return SR_IDP_REFUSED;
}

enum sr_idp_verdict sr_idp_bearer(struct sr_idp *p, struct sr_req *r, const struct sr_tokens *t,
                                  uint8_t digest[32], sr_idp_resume_cb resume, void *arg)
{
    size_t an = 0, n = 0;
    const char *auth = sr_req_header(r, "authorization", &an), *tok = NULL, *why = "";
    if (!auth || sr_auth_parse_bearer(auth, an, &tok, &n) != 0 || !sr_jwt_shaped(tok, n))
        return SR_IDP_NOT_JWT;
    struct sr_jwt *j = &g_jwt;
    if (sr_jwt_parse(tok, n, p->claim, g_toks, SR_JWT_TOKS, j, &why) != 0 ||
        sr_jwt_check(j, p->issuer, p->resource, (int64_t)time(NULL), p->skew, &why) != 0)
        return refuse(why);
    bool any = false, ok = false;
    for (uint32_t i = 0; i < p->keys.n && !ok; i++) {
        const struct sr_jwk *k = &p->keys.k[i];
        if (!p->pk[i] || !sr_jwk_fits(k, j->alg) ||
            (j->has_kid && (!k->has_kid || strcmp(k->kid, j->kid) != 0)))
            continue;
        any = true;
        ok = sr_jws_verify(p->pk[i], j->alg, j->signing_input, j->signing_len, j->sig,
                           j->sig_len) == 0;
    }
    if (!any) {
        if (p->f)
            return hold(p, r, resume, arg); /* a refresh is under way: its keys may fit */
        uint64_t now = sr_now_us();
        if (p->unknown_ever && now - p->unknown_us < SR_IDP_UNKNOWN_KID_INTERVAL * 1000000ull)
            return refuse("no key of the JWKS fits its kid and alg (refreshed for an unknown "
                          "kid less than 30 s ago)");
        p->unknown_ever = true;
        p->unknown_us = now;
        sr_log_event("info", "OAuth issuer: a JWT names a key the JWKS lacks: refreshing it");
        refresh(p);
        if (p->f)
            return hold(p, r, resume, arg);
        return refuse("no key of the JWKS fits its kid and alg");
    }
    if (!ok)
        return refuse("the signature does not verify");
    int32_t idx = sr_jwt_resolve(j, &p->map, t, &why);
    if (idx < 0)
        return refuse(why);
    memcpy(digest, t->e[idx].digest, 32);
    return SR_IDP_OK;
}
