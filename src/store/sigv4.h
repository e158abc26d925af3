/*
 * AWS Signature Version 4 for S3-compatible stores, on OpenSSL.
 *
 * A pure function of its inputs (the date is passed in), so it is unit-tested
 * against AWS's published examples. The store builds its URLs with the same
 * encoder and canonical query as the signer, so the bytes sent are the bytes
 * signed, whatever libcurl version carries them.
 *
 * Ownership: every input is borrowed for the duration of the call; outputs go
 * into caller buffers. The secret is only read, and the derived keys are wiped.
 */
#ifndef SR_STORE_SIGV4_H
#define SR_STORE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Bounds: parameters and headers per request, and the canonical request's size. */
#define SR_SIGV4_PARAMS_MAX  16
#define SR_SIGV4_HEADERS_MAX 16
#define SR_SIGV4_CANON_MAX   16384
/* An Authorization header: algorithm, credential scope, header names, signature. */
#define SR_SIGV4_AUTH_MAX 1024
/* "YYYYMMDDTHHMMSSZ" and its NUL. */
#define SR_SIGV4_DATE_LEN 17

struct sr_sigv4_param {
    const char *name;  /* unencoded */
    const char *value; /* unencoded; NULL or "" is signed as "name=" */
};

struct sr_sigv4_header {
    const char *name; /* any case; signed in lowercase */
    const char *value;
};

struct sr_sigv4_request {
    const char *method;
    const char *path; /* unencoded; each segment is RFC 3986-encoded, '/' is kept */
    const struct sr_sigv4_param *query;
    size_t nquery;
    const struct sr_sigv4_header *headers; /* every header to sign, host and x-amz-date included */
    size_t nheaders;
    const char *payload_hash; /* hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
    const char *access_key;
    const char *secret_key;
    const char *region;
    const char *service;  /* "s3" */
    const char *amz_date; /* "YYYYMMDDTHHMMSSZ", the same value as the x-amz-date header */
};

/*
 * Signs r: writes the Authorization header value into auth and, when the
 * buffers are non-NULL, the canonical request and the string to sign (for
 * debugging a SignatureDoesNotMatch). 0, or -1 when an input is missing or
 * too large for the bounds above.
 */
int sr_sigv4_sign(const struct sr_sigv4_request *r, char *auth, size_t authlen, char *canon,
                  size_t canonlen, char *sts, size_t stslen);

/*
 * RFC 3986 percent-encoding (only A-Z a-z 0-9 - _ . ~ literal, uppercase hex),
 * keeping '/' when keep_slash. Appends to out at *len (NUL-terminated); -1 if
 * it does not fit.
 */
int sr_sigv4_encode(const char *in, bool keep_slash, char *out, size_t outlen, size_t *len);

/* The canonical query: parameters encoded, sorted by name then value, "name=value" joined by
 * '&'. The store sends exactly this string as the URL's query. 0 or -1 (too large). */
int sr_sigv4_canonical_query(const struct sr_sigv4_param *q, size_t n, char *out, size_t outlen);

/* Formats t (UTC) as "YYYYMMDDTHHMMSSZ". */
void sr_sigv4_date(time_t t, char out[SR_SIGV4_DATE_LEN]);

#endif
