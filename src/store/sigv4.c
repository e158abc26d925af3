/*
 * AWS Signature Version 4: canonical request, string to sign, derived key.
 *
 * We sign requests ourselves instead of using CURLOPT_AWS_SIGV4 because
 * curl 7.88 signs the raw, unsorted query and never sends
 * x-amz-content-sha256, which strict stores (Swift's s3api, R2) reject; the
 * canonical form has changed in six curl releases since. Here the canonical
 * request is built from structured inputs with one encoder, and the same
 * encoder produces the URL the store sends. S3 paths are encoded once (S3
 * does not double-encode, unlike other AWS services) and not normalised.
 */
#include "store/sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* An encoded parameter or a lowercased header, ready to sort. */
struct sigv4_item {
    char *name;
    char *value;
};

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

int sr_sigv4_encode(const char *in, bool keep_slash, char *out, size_t outlen, size_t *len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = *len;

    for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
        if (unreserved(*p) || (keep_slash && *p == '/')) {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = (char)*p;
        } else {
            if (o + 3 >= outlen)
                return -1;
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (o >= outlen)
        return -1;
    out[o] = '\0';
    *len = o;
    return 0;
}

static int append(char *out, size_t outlen, size_t *len, const char *s, size_t n)
{
    if (*len + n >= outlen)
        return -1;
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
    return 0;
}

static int appends(char *out, size_t outlen, size_t *len, const char *s)
{
    return append(out, outlen, len, s, strlen(s));
}

static int item_cmp(const void *a, const void *b)
{
    const struct sigv4_item *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c != 0 ? c : strcmp(x->value, y->value);
}

static void items_free(struct sigv4_item *it, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(it[i].name);
        free(it[i].value);
    }
}

static char *encode_dup(const char *s)
{
    size_t cap = strlen(s) * 3 + 1, len = 0;
    char *out = malloc(cap);

    if (out != NULL && sr_sigv4_encode(s, false, out, cap, &len) != 0) {
        free(out);
        out = NULL;
    }
    return out;
}

int sr_sigv4_canonical_query(const struct sr_sigv4_param *q, size_t n, char *out, size_t outlen)
{
    struct sigv4_item it[SR_SIGV4_PARAMS_MAX];
    size_t len = 0, made = 0;
    int rc = -1;

    if (outlen == 0 || n > SR_SIGV4_PARAMS_MAX)
        return -1;
    out[0] = '\0';
    for (; made < n; made++) {
        it[made].name = encode_dup(q[made].name != NULL ? q[made].name : "");
        it[made].value = encode_dup(q[made].value != NULL ? q[made].value : "");
        if (it[made].name == NULL || it[made].value == NULL) {
            made++;
            goto out;
        }
    }
    qsort(it, n, sizeof(it[0]), item_cmp);
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && appends(out, outlen, &len, "&") != 0) ||
            appends(out, outlen, &len, it[i].name) != 0 || appends(out, outlen, &len, "=") != 0 ||
            appends(out, outlen, &len, it[i].value) != 0)
            goto out;
    }
    rc = 0;
out:
    items_free(it, made);
    return rc;
}

/* Lowercases a header name and trims and collapses the spaces of its value (SigV4's rules). */
static int header_item(const struct sr_sigv4_header *h, struct sigv4_item *it)
{
    size_t nl = strlen(h->name), vl = strlen(h->value), o = 0;
    const char *v = h->value;

    it->name = malloc(nl + 1);
    it->value = malloc(vl + 1);
    if (it->name == NULL || it->value == NULL)
        return -1;
    for (size_t i = 0; i <= nl; i++) {
        char c = h->name[i];

        it->name[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    while (*v == ' ' || *v == '\t')
        v++;
    for (; *v != '\0'; v++) {
        bool space = *v == ' ' || *v == '\t';

        if (space && (o == 0 || it->value[o - 1] == ' '))
            continue;
        it->value[o++] = space ? ' ' : *v;
    }
    while (o > 0 && it->value[o - 1] == ' ')
        o--;
    it->value[o] = '\0';
    return 0;
}

static void to_hex(const unsigned char *md, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hmac(const void *key, size_t keylen, const char *msg, unsigned char out[32])
{
    unsigned int n = 32;

    return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &n) ==
                   NULL
               ? -1
               : 0;
}

int sr_sigv4_sign(const struct sr_sigv4_request *r, char *auth, size_t authlen, char *canon,
                  size_t canonlen, char *sts, size_t stslen)
{
    struct sigv4_item hs[SR_SIGV4_HEADERS_MAX];
    char *cr = NULL;
    char query[SR_SIGV4_CANON_MAX];
    char names[1024];
    char scope[256];
    char tosign[512];
    char datestamp[9];
    char crhash[65], sig[65];
    unsigned char md[32], k1[32], k2[32];
    unsigned char *secret = NULL;
    size_t len = 0, nlen = 0, made = 0, slen;
    unsigned int mdlen = 0;
    int rc = -1;

    if (r->method == NULL || r->path == NULL || r->payload_hash == NULL || r->access_key == NULL ||
        r->secret_key == NULL || r->region == NULL || r->service == NULL || r->amz_date == NULL ||
        strlen(r->amz_date) != 16 || r->nheaders > SR_SIGV4_HEADERS_MAX || r->path[0] != '/')
        return -1;
    memset(hs, 0, sizeof(hs));
    cr = malloc(SR_SIGV4_CANON_MAX);
    if (cr == NULL)
        return -1;
    cr[0] = '\0';
    names[0] = '\0';
    for (; made < r->nheaders; made++) {
        if (r->headers[made].name == NULL || r->headers[made].value == NULL ||
            header_item(&r->headers[made], &hs[made]) != 0) {
            made++;
            goto out;
        }
    }
    qsort(hs, made, sizeof(hs[0]), item_cmp);

    /* 1. The canonical request. */
    if (appends(cr, SR_SIGV4_CANON_MAX, &len, r->method) != 0 ||
        appends(cr, SR_SIGV4_CANON_MAX, &len, "\n") != 0 ||
        sr_sigv4_encode(r->path, true, cr, SR_SIGV4_CANON_MAX, &len) != 0 ||
        appends(cr, SR_SIGV4_CANON_MAX, &len, "\n") != 0 ||
        sr_sigv4_canonical_query(r->query, r->nquery, query, sizeof(query)) != 0 ||
        appends(cr, SR_SIGV4_CANON_MAX, &len, query) != 0 ||
        appends(cr, SR_SIGV4_CANON_MAX, &len, "\n") != 0)
        goto out;
    for (size_t i = 0; i < made; i++) {
        if (appends(cr, SR_SIGV4_CANON_MAX, &len, hs[i].name) != 0 ||
            appends(cr, SR_SIGV4_CANON_MAX, &len, ":") != 0 ||
            appends(cr, SR_SIGV4_CANON_MAX, &len, hs[i].value) != 0 ||
            appends(cr, SR_SIGV4_CANON_MAX, &len, "\n") != 0 ||
            (i > 0 && appends(names, sizeof(names), &nlen, ";") != 0) ||
            appends(names, sizeof(names), &nlen, hs[i].name) != 0)
            goto out;
    }
    if (appends(cr, SR_SIGV4_CANON_MAX, &len, "\n") != 0 ||
        appends(cr, SR_SIGV4_CANON_MAX, &len, names) != 0 ||
        appends(cr, SR_SIGV4_CANON_MAX, &len, "\n") != 0 ||
        appends(cr, SR_SIGV4_CANON_MAX, &len, r->payload_hash) != 0)
        goto out;
    if (EVP_Digest(cr, len, md, &mdlen, EVP_sha256(), NULL) != 1)
        goto out;
    to_hex(md, 32, crhash);

    /* 2. The string to sign. */
    memcpy(datestamp, r->amz_date, 8);
    datestamp[8] = '\0';
    if (snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", datestamp, r->region, r->service) >=
            (int)sizeof(scope) ||
        snprintf(tosign, sizeof(tosign), "AWS4-HMAC-SHA256\n%s\n%s\n%s", r->amz_date, scope,
                 crhash) >= (int)sizeof(tosign))
        goto out;

    /* 3. The derived key: HMAC chain over date, region, service, "aws4_request". */
    slen = strlen(r->secret_key) + 4;
    secret = malloc(slen + 1);
    if (secret == NULL)
        goto out;
    memcpy(secret, "AWS4", 4);
    memcpy(secret + 4, r->secret_key, slen - 4);
    if (hmac(secret, slen, datestamp, k1) != 0 || hmac(k1, 32, r->region, k2) != 0 ||
        hmac(k2, 32, r->service, k1) != 0 || hmac(k1, 32, "aws4_request", k2) != 0 ||
        hmac(k2, 32, tosign, md) != 0)
        goto out;
    to_hex(md, 32, sig);

    /* 4. The Authorization header. */
    if (snprintf(auth, authlen, "AWS4-HMAC-SHA256 Credential=%s/%s,SignedHeaders=%s,Signature=%s",
                 r->access_key, scope, names, sig) >= (int)authlen)
        goto out;
    if (canon != NULL && snprintf(canon, canonlen, "%s", cr) >= (int)canonlen)
        goto out;
    if (sts != NULL && snprintf(sts, stslen, "%s", tosign) >= (int)stslen)
        goto out;
    rc = 0;
out:
    if (secret != NULL) {
        OPENSSL_cleanse(secret, slen);
        free(secret);
    }
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));
    items_free(hs, made);
    free(cr);
    return rc;
}

void sr_sigv4_date(time_t t, char out[SR_SIGV4_DATE_LEN])
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, SR_SIGV4_DATE_LEN, "%Y%m%dT%H%M%SZ", &tm);
}
