/*
 * OAuth rules without I/O (see oauth.h): forms, redirect URIs, PKCE inputs,
 * the public URL and the metadata documents. Everything here reads only the
 * bytes it is given and writes only into the caller's buffers.
 */
#include "core/oauth.h"

#include "core/mem.h"
#include "core/text.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode one form component; -1 on a bad escape, a NUL, or when it does not fit in cap - 1. */
int sr_form_decode(const char *s, size_t n, char *out, size_t cap, size_t *outlen)
{
    size_t i, o = 0;

    if (cap == 0)
        return -1;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi, lo;
            if (i + 2 >= n)
                return -1;
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    if (outlen)
        *outlen = o;
    return 0;
}

int sr_form_get(const char *s, size_t n, const char *key, char *out, size_t cap, size_t *outlen)
{
    size_t pos = 0, kl = sr_str_len(key);
    int found = 0;
    char kbuf[64];

    while (pos < n) {
        size_t end = pos, eq, klen;
        while (end < n && s[end] != '&')
            end++;
        eq = pos;
        while (eq < end && s[eq] != '=')
            eq++;
        if (end > pos) {
            if (sr_form_decode(s + pos, eq - pos, kbuf, sizeof(kbuf), &klen) == 0 && klen == kl &&
                sr_mem_eq(kbuf, key, kl)) {
                if (found)
                    return -1;
                found = 1;
                if (sr_form_decode(s + (eq < end ? eq + 1 : end), eq < end ? end - eq - 1 : 0, out,
                                   cap, outlen) != 0)
                    return -1;
            }
        }
        pos = end + 1;
    }
    return found;
}

bool sr_form_has(const char *s, size_t n, const char *key)
{
    size_t pos = 0, kl = sr_str_len(key);
    char kbuf[64];

    while (pos < n) {
        size_t end = pos, eq, klen;
        while (end < n && s[end] != '&')
            end++;
        eq = pos;
        while (eq < end && s[eq] != '=')
            eq++;
        if (sr_form_decode(s + pos, eq - pos, kbuf, sizeof(kbuf), &klen) == 0 && klen == kl &&
            sr_ascii_ieq(kbuf, klen, key, kl))
            return true;
        pos = end + 1;
    }
    return false;
}

static bool unreserved(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int sr_form_encode(const char *s, size_t n, char *out, size_t cap, size_t *outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved((char)c)) {
            if (o + 1 >= cap)
                return -1;
            out[o++] = (char)c;
        } else {
            if (o + 3 >= cap)
                return -1;
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (o >= cap)
        return -1;
    out[o] = '\0';
    if (outlen)
        *outlen = o;
    return 0;
}

/* ---- URIs ------------------------------------------------------------------ */

struct uri {
    bool https;
    size_t auth, auth_len; /* authority: host[:port] */
    size_t host, host_len; /* without brackets' content changes: "[::1]" stays bracketed */
    size_t rest;           /* path, query: everything after the authority */
    bool loopback;
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Split an absolute http(s) URI; -1 with why on anything this server will not use. */
static int uri_split(const char *s, size_t n, struct uri *u, const char **why)
{
    size_t i, p;

    if (n == 0 || n > SR_OAUTH_URI_MAX) {
        *why = "the URI is empty or longer than the gateway accepts";
        return -1;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '`' ||
            c == '^' || c == '{' || c == '}' || c == '|') {
            *why = "the URI holds a space, a control, a non-ASCII or an unsafe character";
            return -1;
        }
        if (c == '#') {
            *why = "the URI has a fragment (RFC 6749 section 3.1.2 forbids one)";
            return -1;
        }
    }
    if (n > 8 && sr_ascii_ieq(s, 8, "https://", 8)) {
        u->https = true;
        p = 8;
    } else if (n > 7 && sr_ascii_ieq(s, 7, "http://", 7)) {
        u->https = false;
        p = 7;
    } else {
        *why = "the URI is not https (or http on a loopback address)";
        return -1;
    }
    u->auth = p;
    while (p < n && s[p] != '/' && s[p] != '?')
        p++;
    u->auth_len = p - u->auth;
    u->rest = p;
    if (u->auth_len == 0) {
        *why = "the URI has no host";
        return -1;
    }
    for (i = u->auth; i < p; i++)
        if (s[i] == '@') {
            *why = "the URI carries user information";
            return -1;
        }
    u->host = u->auth;
    if (s[u->auth] == '[') {
        i = u->auth;
        while (i < p && s[i] != ']')
            i++;
        if (i == p) {
            *why = "the URI's IPv6 host is not closed with ']'";
            return -1;
        }
        u->host_len = i + 1 - u->auth;
    } else {
        i = u->auth;
        while (i < p && s[i] != ':')
            i++;
        u->host_len = i - u->auth;
    }
    if (u->host_len == 0) {
        *why = "the URI has no host";
        return -1;
    }
    i = u->host + u->host_len;
    if (i < p) {
        size_t d = 0;
        uint32_t port = 0;
        if (s[i] != ':') {
            *why = "the URI's host is malformed";
            return -1;
        }
        for (i++; i < p; i++, d++) {
            if (!is_digit(s[i]) || d >= 5) {
                *why = "the URI's port is not a number from 1 to 65535";
                return -1;
            }
            port = port * 10 + (uint32_t)(s[i] - '0');
        }
        if (d == 0 || port == 0 || port > 65535) {
            *why = "the URI's port is not a number from 1 to 65535";
            return -1;
        }
    }
    u->loopback = sr_ascii_ieq(s + u->host, u->host_len, "localhost", 9) ||
                  sr_ascii_ieq(s + u->host, u->host_len, "127.0.0.1", 9) ||
                  sr_ascii_ieq(s + u->host, u->host_len, "[::1]", 5);
    if (!u->https && !u->loopback) {
        *why = "http is allowed only on a loopback host (localhost, 127.0.0.1, [::1]); use https";
        return -1;
    }
    return 0;
}

int sr_oauth_redirect_check(const char *uri, size_t n, const char **why)
{
    struct uri u;
    const char *w = "";
    int rc = uri_split(uri, n, &u, &w);
    if (why)
        *why = w;
    return rc;
}

bool sr_oauth_redirect_match(const char *registered, size_t rn, const char *presented, size_t pn)
{
    struct uri a, b;
    const char *why;

    if (rn == pn && sr_mem_eq(registered, presented, rn))
        return true;
    /* RFC 8252 section 7.3: a native app's loopback listener gets a port at run time. */
    if (uri_split(registered, rn, &a, &why) != 0 || uri_split(presented, pn, &b, &why) != 0)
        return false;
    if (a.https || b.https || !a.loopback || !b.loopback)
        return false;
    if (!sr_ascii_ieq(registered + a.host, a.host_len, presented + b.host, b.host_len))
        return false;
    return rn - a.rest == pn - b.rest &&
           sr_mem_eq(registered + a.rest, presented + b.rest, rn - a.rest);
}

int sr_oauth_uri_host(const char *uri, size_t n, const char **host, size_t *hlen)
{
    struct uri u;
    const char *why;

    if (uri_split(uri, n, &u, &why) != 0)
        return -1;
    *host = uri + u.auth;
    *hlen = u.auth_len;
    return 0;
}

bool sr_oauth_verifier_ok(const char *v, size_t n)
{
    size_t i;

    if (n < 43 || n > 128)
        return false;
    for (i = 0; i < n; i++)
        if (!unreserved(v[i]))
            return false;
    return true;
}

bool sr_oauth_challenge_ok(const char *c, size_t n)
{
    uint8_t d[SR_SHA256_LEN + 2];
    size_t dl = 0;

    return n == 43 && sr_base64url_decode(c, n, d, sizeof(d), &dl) == 0 && dl == SR_SHA256_LEN;
}

bool sr_oauth_challenge_match(const uint8_t digest[SR_SHA256_LEN], const char *c, size_t n)
{
    char enc[44];
    size_t el = sr_base64url_encode(digest, SR_SHA256_LEN, enc);

    if (n != el || el != 43)
        return false;
    return sr_mem_eq_ct(enc, c, el);
}

int sr_oauth_public_url_check(const char *url, size_t n, const char **why)
{
    struct uri u;
    const char *w = "";

    if (n > SR_OAUTH_PUBLIC_URL_MAX) {
        if (why)
            *why = "it is longer than the gateway accepts";
        return -1;
    }
    if (uri_split(url, n, &u, &w) != 0) {
        if (why)
            *why = w;
        return -1;
    }
    if (u.rest != n) {
        if (why)
            *why = "it must be the origin only (scheme, host, optional port), without a path, "
                   "query or trailing '/'";
        return -1;
    }
    return 0;
}

/* ---- metadata -------------------------------------------------------------- */

static void jw_url(struct sr_jw *w, const char *pub, const char *path)
{
    char buf[SR_OAUTH_PUBLIC_URL_MAX + 64];
    struct sr_text t;

    sr_text_init(&t, buf, sizeof(buf));
    sr_text_put(&t, pub);
    sr_text_put(&t, path);
    sr_jw_cstr(w, buf);
}

static int jw_done(struct sr_jw *w)
{
    size_t n = 0;

    if (sr_jw_finish(w, &n) != 0)
        return -1;
    return (int)n;
}

int sr_oauth_resource_metadata(const char *pub, char *out, size_t cap)
{
    return sr_oauth_resource_metadata_with(pub, NULL, true, out, cap);
}

int sr_oauth_resource_metadata_with(const char *pub, const char *issuer, bool builtin, char *out,
                                    size_t cap)
{
    struct sr_jw w;

    sr_jw_init(&w, out, cap);
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "resource");
    jw_url(&w, pub, "/mcp");
    sr_jw_key(&w, "authorization_servers");
    sr_jw_arr_begin(&w);
    if (issuer)
        sr_jw_cstr(&w, issuer);
    if (builtin || !issuer)
        sr_jw_cstr(&w, pub);
    sr_jw_arr_end(&w);
    sr_jw_key(&w, "bearer_methods_supported");
    sr_jw_arr_begin(&w);
    sr_jw_cstr(&w, "header");
    sr_jw_arr_end(&w);
    sr_jw_key(&w, "scopes_supported");
    sr_jw_arr_begin(&w);
    sr_jw_arr_end(&w);
    sr_jw_key(&w, "resource_name");
    sr_jw_cstr(&w, "serena-remote");
    sr_jw_obj_end(&w);
    return jw_done(&w);
}

static void jw_strs(struct sr_jw *w, const char *key, const char *const *v, size_t n)
{
    size_t i;

    sr_jw_key(w, key);
    sr_jw_arr_begin(w);
    for (i = 0; i < n; i++)
        sr_jw_cstr(w, v[i]);
    sr_jw_arr_end(w);
}

int sr_oauth_server_metadata(const char *pub, bool cimd, char *out, size_t cap)
{
    static const char *const code[] = {"code"};
    static const char *const grants[] = {"authorization_code", "refresh_token"};
    static const char *const s256[] = {"S256"};
    static const char *const none[] = {"none"};
    static const char *const query[] = {"query"};
    struct sr_jw w;

    sr_jw_init(&w, out, cap);
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "issuer");
    sr_jw_cstr(&w, pub);
    sr_jw_key(&w, "authorization_endpoint");
    jw_url(&w, pub, "/oauth/authorize");
    sr_jw_key(&w, "token_endpoint");
    jw_url(&w, pub, "/oauth/token");
    sr_jw_key(&w, "registration_endpoint");
    jw_url(&w, pub, "/oauth/register");
    sr_jw_key(&w, "revocation_endpoint");
    jw_url(&w, pub, "/oauth/revoke");
    jw_strs(&w, "response_types_supported", code, 1);
    jw_strs(&w, "response_modes_supported", query, 1);
    jw_strs(&w, "grant_types_supported", grants, 2);
    jw_strs(&w, "code_challenge_methods_supported", s256, 1);
    jw_strs(&w, "token_endpoint_auth_methods_supported", none, 1);
    jw_strs(&w, "revocation_endpoint_auth_methods_supported", none, 1);
    sr_jw_key(&w, "scopes_supported");
    sr_jw_arr_begin(&w);
    sr_jw_arr_end(&w);
    sr_jw_key(&w, "authorization_response_iss_parameter_supported");
    sr_jw_bool(&w, true);
    sr_jw_key(&w, "client_id_metadata_document_supported");
    sr_jw_bool(&w, cimd);
    sr_jw_obj_end(&w);
    return jw_done(&w);
}

/* ---- registration ---------------------------------------------------------- */

/* Every element of array idx is a string from allowed[]; false for other types. */
static bool strs_subset(const struct sr_json_doc *d, int32_t idx, const char *const *allowed,
                        size_t na)
{
    uint32_t i, t;

    if (d->toks[idx].type != SR_JSON_ARRAY)
        return false;
    for (i = 0, t = (uint32_t)idx + 1; i < d->toks[idx].count; i++, t = d->toks[t].end) {
        size_t k;
        bool ok = false;
        if (d->toks[t].type != SR_JSON_STRING)
            return false;
        for (k = 0; k < na; k++)
            if (sr_json_str_eq(d, t, allowed[k], sr_str_len(allowed[k])))
                ok = true;
        if (!ok)
            return false;
    }
    return true;
}

/* The registration rules over a parsed JSON object (a registration body or a metadata document). */
static int registration_from(const struct sr_json_doc *d, struct sr_oauth_reg *out,
                             const char **error, const char **why)
{
    static const char *const grants[] = {"authorization_code", "refresh_token"};
    static const char *const code[] = {"code"};
    int32_t v;
    uint32_t i, t;
    size_t len;

    sr_mem_set(out, 0, sizeof(*out));
    *error = "invalid_client_metadata";
    v = sr_json_obj_get(d, 0, "client_name", 11);
    if (v >= 0) {
        if (d->toks[v].type != SR_JSON_STRING ||
            sr_json_str_decode(d, (uint32_t)v, out->name, sizeof(out->name) - 1, &len) != 0) {
            *why = "client_name must be a string of at most 128 bytes.";
            return -1;
        }
        out->name[len] = '\0';
        for (i = 0; i < len; i++) {
            unsigned char c = (unsigned char)out->name[i];
            if (c < 0x20 || c == 0x7f) {
                *why = "client_name must not hold control characters.";
                return -1;
            }
        }
    }
    v = sr_json_obj_get(d, 0, "grant_types", 11);
    if (v >= 0 && !strs_subset(d, v, grants, 2)) {
        *why = "grant_types may only list authorization_code and refresh_token.";
        return -1;
    }
    v = sr_json_obj_get(d, 0, "response_types", 14);
    if (v >= 0 && !strs_subset(d, v, code, 1)) {
        *why = "response_types may only list code.";
        return -1;
    }
    *error = "invalid_redirect_uri";
    v = sr_json_obj_get(d, 0, "redirect_uris", 13);
    if (v < 0 || d->toks[v].type != SR_JSON_ARRAY || d->toks[v].count == 0) {
        *why = "redirect_uris must be a non-empty array.";
        return -1;
    }
    if (d->toks[v].count > SR_OAUTH_REDIRECTS_MAX) {
        *why = "redirect_uris lists more than 4 URIs.";
        return -1;
    }
    for (i = 0, t = (uint32_t)v + 1; i < d->toks[v].count; i++, t = d->toks[t].end) {
        const char *w = "";
        if (d->toks[t].type != SR_JSON_STRING ||
            sr_json_str_decode(d, t, out->redirect[i], sizeof(out->redirect[i]) - 1, &len) != 0) {
            *why = "each redirect URI must be a string of at most 512 bytes.";
            return -1;
        }
        out->redirect[i][len] = '\0';
        if (sr_mem_eq(out->redirect[i], "", 1) ||
            sr_oauth_redirect_check(out->redirect[i], len, &w) != 0) {
            *why = "a redirect URI must be https, or http on a loopback host (localhost, "
                   "127.0.0.1, [::1]), without a fragment or user information.";
            return -1;
        }
        out->nredirect++;
    }
    *error = "";
    *why = "";
    return 0;
}

int sr_oauth_registration_parse(const char *body, size_t n, struct sr_json_tok *toks, uint32_t cap,
                                struct sr_oauth_reg *out, const char **error, const char **why)
{
    struct sr_json_doc d;
    sr_mem_set(out, 0, sizeof(*out));
    *error = "invalid_client_metadata";
    if (n > SR_OAUTH_REGISTER_MAX) {
        *why = "The registration request is larger than the gateway accepts.";
        return -1;
    }
    if (sr_json_parse(&d, body, n, toks, cap, NULL) != 0 || toks[0].type != SR_JSON_OBJECT) {
        *why = "The registration request is not a JSON object.";
        return -1;
    }
    return registration_from(&d, out, error, why);
}

bool sr_oauth_is_url_client(const char *id, size_t n)
{
    return n >= 8 && sr_mem_eq(id, "https://", 8);
}

int sr_oauth_cimd_url_check(const char *url, size_t n, const char **why)
{
    const char *dummy;
    size_t i, seg;
    if (!why)
        why = &dummy;
    if (!sr_oauth_is_url_client(url, n) || n > SR_OAUTH_URI_MAX) {
        *why = "a client_id URL must be an https URL of at most 512 bytes";
        return -1;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f || c == '#' || c == '\\') {
            *why = "a client_id URL must be printable ASCII without a fragment";
            return -1;
        }
    }
    size_t a = 8, p = a;
    while (p < n && url[p] != '/' && url[p] != '?')
        p++;
    if (p == a) {
        *why = "a client_id URL needs a host";
        return -1;
    }
    for (i = a; i < p; i++)
        if (url[i] == '@') {
            *why = "a client_id URL must not carry user information";
            return -1;
        }
    /* A path other than "/" (CIMD section 3), without "." or ".." segments. */
    size_t q = p;
    while (q < n && url[q] != '?')
        q++;
    if (q - p < 2 || url[p] != '/') {
        *why = "a client_id URL must have a path, e.g. https://app.example.com/client.json";
        return -1;
    }
    for (i = p; i < q; i = seg) {
        size_t s0 = i + 1;
        for (seg = s0; seg < q && url[seg] != '/'; seg++)
            ;
        if ((seg - s0 == 1 && url[s0] == '.') ||
            (seg - s0 == 2 && url[s0] == '.' && url[s0 + 1] == '.')) {
            *why = "a client_id URL must not have '.' or '..' path segments";
            return -1;
        }
    }
    return 0;
}

int sr_oauth_cimd_parse(const char *body, size_t n, const char *url, size_t un,
                        struct sr_json_tok *toks, uint32_t cap, struct sr_oauth_reg *out,
                        const char **why)
{
    struct sr_json_doc d;
    const char *error = "";
    int32_t v;
    if (n > SR_OAUTH_CIMD_MAX) {
        *why = "the client metadata document is larger than 5120 bytes";
        return -1;
    }
    if (sr_json_parse(&d, body, n, toks, cap, NULL) != 0 || toks[0].type != SR_JSON_OBJECT) {
        *why = "the client metadata document is not a JSON object";
        return -1;
    }
    if (registration_from(&d, out, &error, why) != 0)
        return -1;
    v = sr_json_obj_get(&d, 0, "client_id", 9);
    if (v < 0 || d.toks[v].type != SR_JSON_STRING || !sr_json_str_eq(&d, (uint32_t)v, url, un)) {
        *why = "the document's client_id is not exactly the URL it was fetched from";
        return -1;
    }
    if (sr_json_obj_get(&d, 0, "client_secret", 13) >= 0 ||
        sr_json_obj_get(&d, 0, "client_secret_expires_at", 24) >= 0) {
        *why = "a client metadata document must not hold a client_secret";
        return -1;
    }
    v = sr_json_obj_get(&d, 0, "token_endpoint_auth_method", 26);
    if (v >= 0 && !sr_json_str_eq(&d, (uint32_t)v, "none", 4)) {
        *why = "only public clients (token_endpoint_auth_method \"none\", with PKCE) are "
               "supported";
        return -1;
    }
    return 0;
}
