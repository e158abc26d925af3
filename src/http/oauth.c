/*
 * The built-in authorization server (see oauth.h, docs/oauth.md): its life
 * cycle, metadata, registration, token and revocation endpoints, and the
 * dispatch; the authorization endpoint and consent page are in
 * oauth_authorize.c. Policy that needs no I/O (form parsing, redirect
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
#include "metrics/metrics.h"
#include "http/oauth_store.h"

#include "http/oauth_internal.h"

/* Registration bodies are small; their JSON tokens fit in this. */
struct sr_json_tok sr_oa_reg_toks[2048];

int64_t sr_oa_now(void)
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
        sr_oauth_store_save(o->st, sr_oa_now());
    }
}

/* ---- small helpers ----------------------------------------------------------- */

bool sr_oa_span_is(const struct sr_span *s, const char *lit)
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
const char *sr_oa_query(const struct sr_req *r, size_t *n)
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
int sr_oa_random_token(const char *prefix, char *out, size_t cap)
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

void sr_oa_digest(const char *s, size_t n, uint8_t out[32])
{
    SHA256((const unsigned char *)s, n, out);
}

/* An OAuth error document (RFC 6749 section 5.2); never holds a secret. */
void sr_oa_error(struct sr_req *r, int status, const char *error, const char *desc)
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
const char *sr_oa_form_body(struct sr_req *r, size_t *n)
{
    struct evbuffer *b = sr_req_body(r);
    *n = evbuffer_get_length(b);
    if (*n > SR_OAUTH_FORM_MAX) {
        sr_oa_error(r, 413, "invalid_request", "The form is larger than the gateway accepts.");
        return NULL;
    }
    return *n ? (const char *)evbuffer_pullup(b, -1) : "";
}

/* Read a form field; false (answered 400) when the form is malformed. */
bool sr_oa_field(struct sr_req *r, const char *f, size_t n, const char *key, char *out, size_t cap,
                 bool *present)
{
    int rc = sr_form_get(f, n, key, out, cap, NULL);
    if (rc < 0) {
        char desc[160];
        snprintf(desc, sizeof(desc),
                 "The parameter %s is malformed, too long or given more than once.", key);
        sr_oa_error(r, 400, "invalid_request", desc);
        return false;
    }
    if (rc == 0)
        out[0] = '\0';
    if (present)
        *present = rc == 1;
    return true;
}

/* The client address without its port: what wrong-token attempts are counted by. */
void sr_oa_peer_host(struct sr_req *r, char *out, size_t cap)
{
    snprintf(out, cap, "%s", sr_req_peer(r));
    char *colon = strrchr(out, ':');
    if (colon && (out[0] != '[' || (colon > out && colon[-1] == ']')))
        *colon = '\0';
}

bool sr_oa_window_full(struct fail_count *f, int64_t now, uint32_t max)
{
    if (now - f->start >= SR_OAUTH_FAIL_WINDOW) {
        f->start = now;
        f->n = 0;
    }
    return f->n >= max;
}

/* table: SR_OAUTH_FAIL_ADDRS counters, one per client address. */
struct fail_count *sr_oa_fails_for(struct fail_count *table, const char *addr, int64_t now)
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

/*
 * Registrations and metadata fetches are open to anyone: bounded per client address and in
 * total, so a flood cannot churn the registrations of clients people use (the store also evicts
 * those without grants first) nor make the gateway fetch without end. Counts this one.
 */
bool sr_oa_new_client_allowed(struct sr_oauth *o, struct sr_req *r)
{
    char addr[64];
    int64_t now = sr_oa_now();
    sr_oa_peer_host(r, addr, sizeof(addr));
    struct fail_count *rc = sr_oa_fails_for(o->regs, addr, now);
    if (sr_oa_window_full(rc, now, SR_OAUTH_REGISTER_PER_ADDR) ||
        sr_oa_window_full(&o->regs_total, now, SR_OAUTH_REGISTER_TOTAL))
        return false;
    rc->n++;
    o->regs_total.n++;
    return true;
}

/* The client a client_id names: a registration, or a client_id URL's record (CIMD). */
struct sr_oauth_client *sr_oa_client_for(struct sr_oauth *o, const char *client_id)
{
    if (!sr_oauth_is_url_client(client_id, strlen(client_id)))
        return sr_oauth_store_client(o->st, client_id);
    char id[SR_OAUTH_CLIENT_ID_LEN + 1];
    sr_oauth_store_url_id(client_id, id);
    struct sr_oauth_client *c = sr_oauth_store_client(o->st, id);
    return c && strcmp(c->url, client_id) == 0 ? c : NULL;
}

/* ---- metadata ------------------------------------------------------------------ */

static void answer_metadata(struct sr_oauth *o, struct sr_req *r, bool server)
{
    char doc[4096];
    int n = server
                ? sr_oauth_server_metadata(o->pub, o->cimd != SR_OAUTH_CIMD_OFF, doc, sizeof(doc))
                : sr_oauth_resource_metadata(o->pub, doc, sizeof(doc));
    if (n < 0) {
        sr_oa_error(r, 500, "server_error", "The metadata document does not fit.");
        return;
    }
    /* Browser-based clients (the MCP Inspector) read metadata cross-origin. */
    sr_resp_simple(r, 200, "application/json", "Cache-Control: max-age=300\r\n" CORS, doc,
                   (size_t)n);
}

/* ---- registration (RFC 7591) ----------------------------------------------------- */

static void answer_register(struct sr_oauth *o, struct sr_req *r)
{
    struct evbuffer *b = sr_req_body(r);
    size_t n = evbuffer_get_length(b);
    static struct sr_oauth_reg reg;
    const char *error = "", *why = "";
    const char *body = n ? (const char *)evbuffer_pullup(b, -1) : "";
    if (!sr_oa_new_client_allowed(o, r)) {
        sr_metrics_oauth(SR_MO_RATE_LIMITED);
        char doc[256];
        int dn = snprintf(doc, sizeof(doc), "%s",
                          "{\"error\":\"invalid_request\",\"error_description\":\"Too many "
                          "registrations; try again in a minute.\"}");
        sr_resp_simple(r, 429, "application/json",
                       "Cache-Control: no-store\r\nRetry-After: 60\r\n" CORS, doc,
                       dn < 0 ? 0 : (size_t)dn);
        return;
    }
    if (sr_oauth_registration_parse(body, n, sr_oa_reg_toks,
                                    sizeof(sr_oa_reg_toks) / sizeof(sr_oa_reg_toks[0]), &reg,
                                    &error, &why) != 0) {
        sr_oa_error(r, 400, error, why);
        return;
    }
    struct sr_oauth_client *c = sr_oauth_store_new_client(o->st);
    uint8_t id[16];
    if (RAND_bytes(id, sizeof(id)) != 1) {
        memset(c, 0, sizeof(*c));
        sr_oa_error(r, 500, "server_error", "The random generator failed; try again.");
        return;
    }
    sr_base64url_encode(id, sizeof(id), c->id);
    c->id[SR_OAUTH_CLIENT_ID_LEN] = '\0';
    memcpy(c->name, reg.name, sizeof(c->name));
    memcpy(c->redirect, reg.redirect, sizeof(c->redirect));
    c->nredirect = reg.nredirect;
    c->created = c->last_used = sr_oa_now();
    c->used = true;
    sr_oauth_store_save(o->st, sr_oa_now());
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
    sr_metrics_oauth(SR_MO_REGISTERED);
    sr_resp_simple(r, 201, "application/json", "Cache-Control: no-store\r\n" CORS, doc, len);
}

/* ---- token endpoint ---------------------------------------------------------------- */

static void issue(struct sr_oauth *o, struct sr_req *r, const struct sr_oauth_binding *b,
                  const uint8_t family[16])
{
    char at[64], rt[64];
    if (sr_oa_random_token("sr_at_", at, sizeof(at)) != 0 ||
        sr_oa_random_token("sr_rt_", rt, sizeof(rt)) != 0) {
        sr_oa_error(r, 500, "server_error", "The random generator failed; try again.");
        return;
    }
    int64_t now = sr_oa_now();
    struct sr_oauth_grant *g = sr_oauth_store_new_grant(o->st);
    g->kind = SR_OAUTH_ACCESS;
    sr_oa_digest(at, strlen(at), g->digest);
    memcpy(g->family, family, 16);
    g->b = *b;
    g->expires = now + SR_OAUTH_ACCESS_TTL;
    g = sr_oauth_store_new_grant(o->st);
    g->kind = SR_OAUTH_REFRESH;
    sr_oa_digest(rt, strlen(rt), g->digest);
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
    if (!sr_oa_field(r, f, n, "code", code, sizeof(code), NULL) ||
        !sr_oa_field(r, f, n, "redirect_uri", redirect, sizeof(redirect), &has_redirect) ||
        !sr_oa_field(r, f, n, "code_verifier", verifier, sizeof(verifier), NULL) ||
        !sr_oa_field(r, f, n, "resource", resource, sizeof(resource), &has_resource))
        return;
    if (!sr_oauth_verifier_ok(verifier, strlen(verifier))) {
        sr_oa_error(r, 400, "invalid_request",
                    "code_verifier is required (PKCE): 43 to 128 unreserved characters.");
        return;
    }
    if (has_resource && strcmp(resource, o->resource) != 0) {
        sr_oa_error(r, 400, "invalid_target",
                    "This server only issues tokens for its own MCP endpoint.");
        return;
    }
    uint8_t d[32];
    sr_oa_digest(code, strlen(code), d);
    OPENSSL_cleanse(code, sizeof(code));
    struct sr_oauth_code *c = sr_oauth_store_code(o->st, d);
    if (!c) {
        sr_metrics_oauth(SR_MO_GRANT_REFUSED);
        sr_oa_error(r, 400, "invalid_grant",
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
        sr_oauth_store_save(o->st, sr_oa_now());
        sr_log_event("warn",
                     "OAuth: an authorization code of client %s was presented again; %u token(s) "
                     "it produced revoked",
                     client_id, k);
        sr_metrics_oauth(SR_MO_REUSE_REVOKED);
        sr_oa_error(r, 400, "invalid_grant",
                    "The authorization code was already used; the tokens it produced are now "
                    "revoked. Sign in again.");
        return;
    }
    uint8_t family[16];
    if (RAND_bytes(family, sizeof(family)) != 1) {
        sr_oa_error(r, 500, "server_error", "The random generator failed; try again.");
        return;
    }
    struct sr_oauth_code cc = *c;
    c->redeemed = true;
    memcpy(c->family, family, sizeof(family));
    sr_oauth_store_save(o->st, sr_oa_now());
    uint8_t vd[32];
    sr_oa_digest(verifier, strlen(verifier), vd);
    bool pkce = sr_oauth_challenge_match(vd, cc.challenge, strlen(cc.challenge));
    if (cc.expires <= sr_oa_now() || strcmp(cc.b.client_id, client_id) != 0 ||
        (has_redirect && strcmp(cc.redirect, redirect) != 0) || !has_redirect || !pkce ||
        !sr_oauth_binding_live(&cc.b, t, NULL)) {
        sr_metrics_oauth(SR_MO_GRANT_REFUSED);
        sr_oa_error(r, 400, "invalid_grant",
                    "The authorization code does not match this client, redirect_uri or "
                    "code_verifier, expired, or its token was removed. Sign in again.");
        return;
    }
    sr_metrics_oauth(SR_MO_TOKENS_ISSUED);
    issue(o, r, &cc.b, family);
}

static void token_refresh(struct sr_oauth *o, struct sr_req *r, const struct sr_tokens *t,
                          const char *f, size_t n, const char *client_id)
{
    static char rt[SR_OAUTH_PARAM_MAX + 1], resource[SR_OAUTH_PARAM_MAX + 1];
    bool has_resource = false;
    if (!sr_oa_field(r, f, n, "refresh_token", rt, sizeof(rt), NULL) ||
        !sr_oa_field(r, f, n, "resource", resource, sizeof(resource), &has_resource))
        return;
    if (has_resource && strcmp(resource, o->resource) != 0) {
        sr_oa_error(r, 400, "invalid_target",
                    "This server only issues tokens for its own MCP endpoint.");
        return;
    }
    uint8_t d[32];
    sr_oa_digest(rt, strlen(rt), d);
    OPENSSL_cleanse(rt, sizeof(rt));
    struct sr_oauth_grant *g = sr_oauth_store_grant(o->st, d);
    if (!g || g->kind != SR_OAUTH_REFRESH || g->expires <= sr_oa_now() ||
        strcmp(g->b.client_id, client_id) != 0) {
        sr_metrics_oauth(SR_MO_GRANT_REFUSED);
        sr_oa_error(r, 400, "invalid_grant",
                    "The refresh token is unknown, expired or another client's. Sign in again.");
        return;
    }
    if (g->rotated) {
        /* A rotated refresh token came back: someone holds a copy. End the whole family. */
        uint8_t fam[16];
        memcpy(fam, g->family, 16);
        uint32_t k = sr_oauth_store_revoke_family(o->st, fam);
        sr_oauth_store_save(o->st, sr_oa_now());
        sr_log_event("warn",
                     "OAuth: a used refresh token of client %s was presented again; %u token(s) "
                     "of its sign-in revoked",
                     client_id, k);
        sr_metrics_oauth(SR_MO_REUSE_REVOKED);
        sr_oa_error(r, 400, "invalid_grant",
                    "This refresh token was already used; every token of this sign-in is now "
                    "revoked. Sign in again.");
        return;
    }
    if (!sr_oauth_binding_live(&g->b, t, NULL)) {
        sr_oauth_store_revoke_family(o->st, g->family);
        sr_oauth_store_save(o->st, sr_oa_now());
        sr_metrics_oauth(SR_MO_GRANT_REFUSED);
        sr_oa_error(r, 400, "invalid_grant",
                    "The token this sign-in was made with is no longer accepted. Sign in again.");
        return;
    }
    g->rotated = true;
    struct sr_oauth_binding b = g->b;
    uint8_t fam[16];
    memcpy(fam, g->family, 16);
    sr_metrics_oauth(SR_MO_REFRESHED);
    issue(o, r, &b, fam);
}

static void answer_token(struct sr_oauth *o, struct sr_req *r, const struct sr_tokens *t)
{
    size_t n;
    const char *f = sr_oa_form_body(r, &n);
    if (!f)
        return;
    static char client_id[SR_OAUTH_URI_MAX + 1];
    char grant[32];
    if (!sr_oa_field(r, f, n, "grant_type", grant, sizeof(grant), NULL) ||
        !sr_oa_field(r, f, n, "client_id", client_id, sizeof(client_id), NULL))
        return;
    const struct sr_oauth_client *c = client_id[0] ? sr_oa_client_for(o, client_id) : NULL;
    if (!c) {
        sr_oa_error(r, 401, "invalid_client",
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
        sr_oa_error(r, 400, "unsupported_grant_type",
                    "Only authorization_code and refresh_token are supported.");
}

/* RFC 7009: always 200, whether or not the token was known. */
static void answer_revoke(struct sr_oauth *o, struct sr_req *r)
{
    size_t n;
    const char *f = sr_oa_form_body(r, &n);
    if (!f)
        return;
    static char tok[SR_OAUTH_PARAM_MAX + 1];
    static char client_id[SR_OAUTH_URI_MAX + 1];
    bool has_client = false;
    if (!sr_oa_field(r, f, n, "token", tok, sizeof(tok), NULL) ||
        !sr_oa_field(r, f, n, "client_id", client_id, sizeof(client_id), &has_client))
        return;
    if (has_client && sr_oauth_is_url_client(client_id, strlen(client_id)))
        sr_oauth_store_url_id(client_id, client_id);
    uint8_t d[32];
    sr_oa_digest(tok, strlen(tok), d);
    OPENSSL_cleanse(tok, sizeof(tok));
    struct sr_oauth_grant *g = sr_oauth_store_grant(o->st, d);
    if (g && (!has_client || strcmp(g->b.client_id, client_id) == 0)) {
        if (g->kind == SR_OAUTH_REFRESH)
            sr_oauth_store_revoke_family(o->st, g->family);
        else
            memset(g, 0, sizeof(*g));
        sr_oauth_store_save(o->st, sr_oa_now());
        sr_metrics_oauth(SR_MO_REVOKED);
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
    bool get = sr_oa_span_is(&h->method, "GET") || sr_oa_span_is(&h->method, "HEAD");
    bool post = sr_oa_span_is(&h->method, "POST");

    sr_oauth_store_sweep(o->st, sr_oa_now());
    if (sr_oa_span_is(&h->method, "OPTIONS") && !sr_oa_span_is(p, "/oauth/authorize")) {
        /* CORS preflight (see CORS above); a JSON registration body needs one. */
        sr_resp_simple(r, 204, NULL,
                       CORS "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
                            "Access-Control-Allow-Headers: Content-Type, Authorization, "
                            "MCP-Protocol-Version\r\n"
                            "Access-Control-Max-Age: 86400\r\n",
                       "", 0);
        return;
    }
    if (sr_oa_span_is(p, "/.well-known/oauth-protected-resource") ||
        sr_oa_span_is(p, "/.well-known/oauth-protected-resource/mcp")) {
        if (get)
            answer_metadata(o, r, false);
        else
            sr_oa_error(r, 405, "invalid_request", "Metadata is read with GET.");
        return;
    }
    if (sr_oa_span_is(p, "/.well-known/oauth-authorization-server")) {
        if (get)
            answer_metadata(o, r, true);
        else
            sr_oa_error(r, 405, "invalid_request", "Metadata is read with GET.");
        return;
    }
    if (sr_oa_span_is(p, "/oauth/authorize")) {
        if (get)
            sr_oa_authorize(o, r, false);
        else if (post)
            sr_oa_consent(o, r, t);
        else
            sr_oa_error_page(r, 405, "The authorization endpoint takes GET or POST.");
        return;
    }
    if (sr_oa_span_is(p, "/oauth/register") || sr_oa_span_is(p, "/oauth/token") ||
        sr_oa_span_is(p, "/oauth/revoke")) {
        if (!post) {
            sr_oa_error(r, 405, "invalid_request", "This endpoint takes POST.");
            return;
        }
        if (sr_oa_span_is(p, "/oauth/register"))
            answer_register(o, r);
        else if (sr_oa_span_is(p, "/oauth/token"))
            answer_token(o, r, t);
        else
            answer_revoke(o, r);
        return;
    }
    sr_oa_error(r, 404, "invalid_request",
                "Not found: the OAuth endpoints are listed in "
                "/.well-known/oauth-authorization-server.");
}

bool sr_oauth_bearer(struct sr_oauth *o, const struct sr_tokens *t, uint8_t digest[32])
{
    struct sr_oauth_grant *g = sr_oauth_store_grant(o->st, digest);
    int32_t idx = -1;
    if (!g || g->kind != SR_OAUTH_ACCESS || g->expires <= sr_oa_now() ||
        !sr_oauth_binding_live(&g->b, t, &idx))
        return false;
    memcpy(digest, t->e[idx].digest, 32);
    return true;
}
