/*
 * JWT access tokens and JWKS documents, parsed without I/O (see jwt.h). Everything here reads
 * only the bytes it is given and writes only into the caller's structures; reasons are static
 * strings that never quote the input.
 */
#include "core/jwt.h"

#include "core/mem.h"
#include "core/route.h"

static bool str_is(const char *s, size_t n, const char *lit)
{
    size_t ln = sr_str_len(lit);
    return n == ln && sr_mem_eq(s, lit, n);
}

static bool b64url_char(char c)
{
    return sr_base64_digit(c, true) >= 0;
}

bool sr_jwt_shaped(const char *t, size_t n)
{
    size_t parts = 1, len = 0;

    if (n == 0 || n > SR_JWT_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '.') {
            if (len == 0 || parts == 3)
                return false;
            parts++;
            len = 0;
        } else if (!b64url_char(t[i])) {
            return false;
        } else {
            len++;
        }
    }
    /* An empty signature is still a JWT's shape (alg none), so it is refused as one. */
    return parts == 3;
}

/* A string member into out (NUL-terminated); 1 found, 0 absent, -1 wrong type or too long. */
static int get_str(const struct sr_json_doc *d, uint32_t obj, const char *key, char *out,
                   size_t cap)
{
    int32_t v = sr_json_obj_get(d, obj, key, sr_str_len(key));
    size_t len = 0;

    if (v < 0)
        return 0;
    if (d->toks[v].type != SR_JSON_STRING ||
        sr_json_str_decode(d, (uint32_t)v, out, cap - 1, &len) != 0)
        return -1;
    out[len] = '\0';
    if (sr_str_len(out) != len) /* an escaped NUL */
        return -1;
    return 1;
}

/* A NumericDate member (an integer); 1 found, 0 absent, -1 wrong type. */
static int get_time(const struct sr_json_doc *d, uint32_t obj, const char *key, int64_t *out)
{
    int32_t v = sr_json_obj_get(d, obj, key, sr_str_len(key));

    if (v < 0)
        return 0;
    if (d->toks[v].type != SR_JSON_NUMBER || sr_json_int64(d, (uint32_t)v, out) != 0)
        return -1;
    return 1;
}

/* Decode base64url part s[0..n) and parse it as a JSON object. */
static int part_json(const char *s, size_t n, uint8_t *buf, size_t cap, struct sr_json_tok *toks,
                     uint32_t tcap, struct sr_json_doc *d)
{
    size_t len = 0;

    if (sr_base64url_decode(s, n, buf, cap, &len) != 0)
        return -1;
    if (sr_json_parse(d, (const char *)buf, len, toks, tcap, NULL) != 0 ||
        d->toks[0].type != SR_JSON_OBJECT)
        return -2;
    return 0;
}

static int parse_header(struct sr_jwt *out, const struct sr_json_doc *d, const char **why)
{
    char v[SR_JWT_CLAIM_MAX + 1];
    int rc = get_str(d, 0, "alg", v, sizeof(v));
    size_t vn;

    if (rc <= 0) {
        *why = "the header has no alg";
        return -1;
    }
    vn = sr_str_len(v);
    if (str_is(v, vn, "RS256"))
        out->alg = SR_JWT_RS256;
    else if (str_is(v, vn, "ES256"))
        out->alg = SR_JWT_ES256;
    else if (sr_ascii_ieq(v, vn, "none", 4)) {
        *why = "alg none (unsigned) is refused";
        return -1;
    } else if (vn >= 2 && v[0] == 'H' && v[1] == 'S') {
        *why = "alg HS* (a shared secret) is refused: RS256 or ES256 only";
        return -1;
    } else {
        *why = "the alg is not RS256 or ES256";
        return -1;
    }
    static const char *const refused[] = {"crit", "jku", "jwk", "x5u", "x5c"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (sr_json_obj_get(d, 0, refused[i], sr_str_len(refused[i])) >= 0) {
            *why = "the header carries crit, jku, jwk, x5u or x5c, which are refused";
            return -1;
        }
    rc = get_str(d, 0, "typ", v, sizeof(v));
    if (rc < 0) {
        *why = "the header's typ is not a string";
        return -1;
    }
    vn = sr_str_len(v);
    if (rc == 1 && !sr_ascii_ieq(v, vn, "at+jwt", 6) &&
        !sr_ascii_ieq(v, vn, "application/at+jwt", 18) && !sr_ascii_ieq(v, vn, "JWT", 3)) {
        *why = "the header's typ is not at+jwt or JWT";
        return -1;
    }
    rc = get_str(d, 0, "kid", out->kid, sizeof(out->kid));
    if (rc < 0) {
        *why = "the header's kid is not a string or is too long";
        return -1;
    }
    out->has_kid = rc == 1;
    return 0;
}

/* The configured claim: a string, or the string elements of an array. */
static int parse_claim(struct sr_jwt *out, const struct sr_json_doc *d, const char *claim,
                       const char **why)
{
    int32_t v = sr_json_obj_get(d, 0, claim, sr_str_len(claim));
    size_t len = 0;

    if (v < 0)
        return 0;
    if (d->toks[v].type == SR_JSON_STRING) {
        if (get_str(d, 0, claim, out->values[0], sizeof(out->values[0])) != 1) {
            *why = "the mapped claim is too long";
            return -1;
        }
        out->nvalues = 1;
        out->has_claim = true;
        return 0;
    }
    if (d->toks[v].type != SR_JSON_ARRAY) {
        *why = "the mapped claim is neither a string nor an array";
        return -1;
    }
    out->has_claim = out->claim_array = true;
    for (uint32_t i = (uint32_t)v + 1; i < d->toks[v].end; i = d->toks[i].end) {
        if (d->toks[i].type != SR_JSON_STRING)
            continue;
        if (out->nvalues == SR_JWT_CLAIM_VALUES) {
            *why = "the mapped claim has too many values";
            return -1;
        }
        char *dst = out->values[out->nvalues];
        if (sr_json_str_decode(d, i, dst, SR_JWT_CLAIM_MAX, &len) != 0)
            continue; /* longer than any map value or token name: names nothing */
        dst[len] = '\0';
        if (sr_str_len(dst) == len)
            out->nvalues++;
    }
    return 0;
}

static int parse_claims(struct sr_jwt *out, const struct sr_json_doc *d, const char *claim,
                        const char **why)
{
    int rc = get_str(d, 0, "iss", out->iss, sizeof(out->iss));
    int32_t aud;

    if (rc != 1) {
        *why = rc == 0 ? "no iss claim" : "the iss claim is not a string or is too long";
        return -1;
    }
    aud = sr_json_obj_get(d, 0, "aud", 3);
    if (aud < 0) {
        *why = "no aud claim";
        return -1;
    }
    if (d->toks[aud].type == SR_JSON_STRING) {
        if (get_str(d, 0, "aud", out->aud[0], sizeof(out->aud[0])) != 1) {
            *why = "the aud claim is too long";
            return -1;
        }
        out->naud = 1;
    } else if (d->toks[aud].type == SR_JSON_ARRAY) {
        for (uint32_t i = (uint32_t)aud + 1; i < d->toks[aud].end; i = d->toks[i].end) {
            size_t len = 0;
            if (out->naud == SR_JWT_AUD_MAX || d->toks[i].type != SR_JSON_STRING ||
                sr_json_str_decode(d, i, out->aud[out->naud], SR_JWT_CLAIM_MAX, &len) != 0) {
                *why = "the aud array holds too many values, a non-string or a long one";
                return -1;
            }
            out->aud[out->naud][len] = '\0';
            out->naud++;
        }
    } else {
        *why = "the aud claim is neither a string nor an array";
        return -1;
    }
    int e = get_time(d, 0, "exp", &out->exp);
    int nb = get_time(d, 0, "nbf", &out->nbf);
    int ia = get_time(d, 0, "iat", &out->iat);
    if (e < 0 || nb < 0 || ia < 0) {
        *why = "exp, nbf or iat is not an integer";
        return -1;
    }
    out->has_exp = e == 1;
    out->has_nbf = nb == 1;
    out->has_iat = ia == 1;
    return parse_claim(out, d, claim, why);
}

int sr_jwt_parse(const char *t, size_t n, const char *claim, struct sr_json_tok *toks, uint32_t cap,
                 struct sr_jwt *out, const char **why)
{
    static uint8_t buf[SR_JWT_MAX];
    struct sr_json_doc d;
    size_t d1 = 0, d2 = 0;

    sr_mem_set(out, 0, sizeof(*out));
    if (!sr_jwt_shaped(t, n)) {
        *why = "not a compact JWS (three base64url parts)";
        return -1;
    }
    while (t[d1] != '.')
        d1++;
    d2 = d1 + 1;
    while (t[d2] != '.')
        d2++;
    out->signing_input = t;
    out->signing_len = d2;
    int rc = part_json(t, d1, buf, sizeof(buf), toks, cap, &d);
    if (rc < 0) {
        *why = rc == -1 ? "the header is not base64url" : "the header is not a JSON object";
        return -1;
    }
    if (parse_header(out, &d, why) < 0)
        return -1;
    rc = part_json(t + d1 + 1, d2 - d1 - 1, buf, sizeof(buf), toks, cap, &d);
    if (rc < 0) {
        *why = rc == -1 ? "the payload is not base64url" : "the payload is not a JSON object";
        return -1;
    }
    if (parse_claims(out, &d, claim, why) < 0)
        return -1;
    if (sr_base64url_decode(t + d2 + 1, n - d2 - 1, out->sig, sizeof(out->sig), &out->sig_len) !=
        0) {
        *why = "the signature is not base64url or is too long";
        return -1;
    }
    return 0;
}

int sr_jwt_check(const struct sr_jwt *j, const char *issuer, const char *audience, int64_t now,
                 uint32_t skew, const char **why)
{
    bool aud = false;

    if (!str_is(j->iss, sr_str_len(j->iss), issuer)) {
        *why = "iss is not the configured issuer";
        return -1;
    }
    for (uint32_t i = 0; i < j->naud; i++)
        if (str_is(j->aud[i], sr_str_len(j->aud[i]), audience))
            aud = true;
    if (!aud) {
        *why = "aud does not name this gateway's resource (<public-url>/mcp)";
        return -1;
    }
    if (!j->has_exp) {
        *why = "no exp claim";
        return -1;
    }
    /* Differences in uint64_t: the claims may be any int64, and a - b of two ordered int64
     * always fits. Valid while now < exp + skew. */
    if (now >= j->exp && (uint64_t)now - (uint64_t)j->exp >= skew) {
        *why = "expired (exp)";
        return -1;
    }
    if (j->has_nbf && j->nbf > now && (uint64_t)j->nbf - (uint64_t)now > skew) {
        *why = "not yet valid (nbf)";
        return -1;
    }
    if (j->has_iat && j->iat > now && (uint64_t)j->iat - (uint64_t)now > skew) {
        *why = "issued in the future (iat)";
        return -1;
    }
    return 0;
}

/* ---- JWKS ------------------------------------------------------------------------------------ */

static int get_b64(const struct sr_json_doc *d, uint32_t obj, const char *key, uint8_t *out,
                   size_t cap, size_t *len)
{
    int32_t v = sr_json_obj_get(d, obj, key, sr_str_len(key));

    if (v < 0 || d->toks[v].type != SR_JSON_STRING)
        return -1;
    /* base64url has no escapes: the raw span is the value (an escaped one is refused). */
    return sr_base64url_decode(d->buf + d->toks[v].start, d->toks[v].len, out, cap, len);
}

static int parse_key(const struct sr_json_doc *d, uint32_t obj, struct sr_jwk *k)
{
    char v[SR_JWT_CLAIM_MAX + 1];
    size_t vn;
    int rc;

    sr_mem_set(k, 0, sizeof(*k));
    if (get_str(d, obj, "kty", v, sizeof(v)) != 1)
        return -1;
    vn = sr_str_len(v);
    if (str_is(v, vn, "RSA"))
        k->kty = SR_JWK_RSA;
    else if (str_is(v, vn, "EC"))
        k->kty = SR_JWK_EC;
    else
        return -1;
    rc = get_str(d, obj, "use", v, sizeof(v));
    if (rc < 0 || (rc == 1 && !str_is(v, sr_str_len(v), "sig")))
        return -1;
    rc = get_str(d, obj, "alg", v, sizeof(v));
    if (rc < 0)
        return -1;
    if (rc == 1) {
        vn = sr_str_len(v);
        if (str_is(v, vn, "RS256"))
            k->alg = SR_JWT_RS256;
        else if (str_is(v, vn, "ES256"))
            k->alg = SR_JWT_ES256;
        else
            return -1; /* a key for another algorithm is never used */
    }
    rc = get_str(d, obj, "kid", k->kid, sizeof(k->kid));
    if (rc < 0)
        return -1;
    k->has_kid = rc == 1;
    if (k->kty == SR_JWK_RSA) {
        if (get_b64(d, obj, "n", k->n, sizeof(k->n), &k->n_len) != 0 ||
            get_b64(d, obj, "e", k->e, sizeof(k->e), &k->e_len) != 0 || k->e_len == 0)
            return -1;
        /* A modulus of 2048 to 4096 bits, without a leading zero byte. */
        if (k->n_len < 256 || k->n[0] == 0)
            return -1;
        return 0;
    }
    if (get_str(d, obj, "crv", v, sizeof(v)) != 1 || !str_is(v, sr_str_len(v), "P-256"))
        return -1;
    size_t xl = 0, yl = 0;
    if (get_b64(d, obj, "x", k->x, sizeof(k->x), &xl) != 0 ||
        get_b64(d, obj, "y", k->y, sizeof(k->y), &yl) != 0 || xl != 32 || yl != 32)
        return -1;
    return 0;
}

int sr_jwks_parse(const char *s, size_t n, struct sr_json_tok *toks, uint32_t cap,
                  struct sr_jwks *out, const char **why)
{
    struct sr_json_doc d;
    int32_t keys;

    sr_mem_set(out, 0, sizeof(*out));
    if (n > SR_JWKS_MAX || sr_json_parse(&d, s, n, toks, cap, NULL) != 0 ||
        d.toks[0].type != SR_JSON_OBJECT) {
        *why = "the JWKS is not a JSON object (or is too large)";
        return -1;
    }
    keys = sr_json_obj_get(&d, 0, "keys", 4);
    if (keys < 0 || d.toks[keys].type != SR_JSON_ARRAY) {
        *why = "the JWKS has no keys array";
        return -1;
    }
    for (uint32_t i = (uint32_t)keys + 1; i < d.toks[keys].end; i = d.toks[i].end) {
        if (d.toks[i].type != SR_JSON_OBJECT || out->n == SR_JWKS_KEYS_MAX ||
            parse_key(&d, i, &out->k[out->n]) != 0) {
            out->skipped++;
            continue;
        }
        out->n++;
    }
    return 0;
}

bool sr_jwk_fits(const struct sr_jwk *k, int alg)
{
    if (k->alg != SR_JWT_ALG_NONE && k->alg != alg)
        return false;
    return (alg == SR_JWT_RS256 && k->kty == SR_JWK_RSA) ||
           (alg == SR_JWT_ES256 && k->kty == SR_JWK_EC);
}

/* ---- claim -> token name --------------------------------------------------------------------- */

int sr_claim_map_parse(const char *s, size_t n, struct sr_json_tok *toks, uint32_t cap,
                       struct sr_claim_map *out, const char **why)
{
    struct sr_json_doc d;

    sr_mem_set(out, 0, sizeof(*out));
    if (sr_json_parse(&d, s, n, toks, cap, NULL) != 0 || d.toks[0].type != SR_JSON_OBJECT) {
        *why = "expected a JSON object {\"claim value\": \"token name\", ...}";
        return -1;
    }
    for (uint32_t i = 1; i < d.toks[0].end; i = d.toks[i + 1].end) {
        size_t kl = 0, vl = 0;
        if (out->n == SR_CLAIM_MAP_MAX) {
            *why = "too many entries";
            return -1;
        }
        if (sr_json_str_decode(&d, i, out->e[out->n].value, SR_JWT_CLAIM_MAX, &kl) != 0 ||
            kl == 0) {
            *why = "a claim value is empty or too long";
            return -1;
        }
        out->e[out->n].value[kl] = '\0';
        if (d.toks[i + 1].type != SR_JSON_STRING ||
            sr_json_str_decode(&d, i + 1, out->e[out->n].name, SR_TOKEN_NAME_MAX, &vl) != 0 ||
            !sr_route_valid_name(out->e[out->n].name, vl, SR_TOKEN_NAME_MAX)) {
            *why = "a token name is not a string of 1 to 64 characters from A-Z a-z 0-9 . _ -";
            return -1;
        }
        out->e[out->n].name[vl] = '\0';
        if (sr_str_len(out->e[out->n].value) != kl) {
            *why = "a claim value holds a NUL";
            return -1;
        }
        out->n++;
    }
    return 0;
}

int32_t sr_jwt_resolve(const struct sr_jwt *j, const struct sr_claim_map *map,
                       const struct sr_tokens *t, const char **why)
{
    int32_t found = -1;

    if (!j->has_claim) {
        *why = "the token lacks the mapped claim";
        return -1;
    }
    for (uint32_t i = 0; i < j->nvalues; i++) {
        const char *name = NULL;
        if (map && map->n) {
            for (uint32_t m = 0; m < map->n; m++)
                if (str_is(map->e[m].value, sr_str_len(map->e[m].value), j->values[i]))
                    name = map->e[m].name;
        } else {
            name = j->values[i];
        }
        int32_t idx = name ? sr_tokens_find(t, name) : -1;
        if (idx < 0)
            continue;
        if (found >= 0 && found != idx) {
            *why = "the mapped claim names more than one token (ambiguous)";
            return -1;
        }
        found = idx;
    }
    if (found < 0)
        *why = "the mapped claim names no configured token";
    return found;
}

/* ---- the issuer ------------------------------------------------------------------------------ */

int sr_idp_issuer_check(const char *s, size_t n, const char **why)
{
    size_t h, i;
    const char *dummy;

    if (!why)
        why = &dummy;
    if (n == 0 || n > SR_OAUTH_URI_MAX) {
        *why = "empty or too long";
        return -1;
    }
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '?' ||
            s[i] == '#' || s[i] == '"' || s[i] == '\\') {
            *why = "it holds a space, a control or non-ASCII character, a query or a fragment";
            return -1;
        }
    if (n > 8 && sr_mem_eq(s, "https://", 8)) {
        h = 8;
    } else if (n > 7 && sr_mem_eq(s, "http://", 7)) {
        h = 7;
        /* http only on a loopback host (a local provider for development and tests). */
        static const char *const loop[] = {"127.0.0.1", "localhost", "[::1]"};
        bool ok = false;
        for (size_t k = 0; k < 3; k++) {
            size_t ln = sr_str_len(loop[k]);
            if (n - h >= ln && sr_mem_eq(s + h, loop[k], ln) &&
                (n - h == ln || s[h + ln] == ':' || s[h + ln] == '/'))
                ok = true;
        }
        if (!ok) {
            *why = "http is allowed only on a loopback host (localhost, 127.0.0.1, [::1])";
            return -1;
        }
    } else {
        *why = "it must start with https://";
        return -1;
    }
    if (s[h] == '/' || s[h] == ':' || s[h] == '@') {
        *why = "it has no host";
        return -1;
    }
    for (i = h; i < n && s[i] != '/'; i++)
        if (s[i] == '@') {
            *why = "it holds user information";
            return -1;
        }
    return 0;
}
