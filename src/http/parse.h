/*
 * HTTP/1.1 message heads and chunked framing, parsed without I/O.
 *
 * The edge owns its HTTP codec (instead of evhttp's) so that every limit has
 * the status the issue asks for (431, 413 with a JSON-RPC body), no timeout
 * cuts a quiet SSE stream, and the parser can be fuzzed on its own. These
 * functions only look at bytes the caller hands in; spans in the results
 * point into that buffer.
 *
 * Strictness: CRLF line endings only; tokens per RFC 9110 (method, header
 * names); no whitespace before the colon; obs-fold refused; header values
 * with CTLs other than HTAB refused; Content-Length must be digits only and
 * repeated copies must agree; Transfer-Encoding must be exactly "chunked"
 * (case-insensitive) and may not come with Content-Length (request smuggling).
 */
#ifndef SR_HTTP_PARSE_H
#define SR_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SR_HTTP_MAX_HEADER_COUNT 128

enum sr_http_err {
    SR_HTTP_E_MORE = 0,      /* not an error: the head is not complete yet */
    SR_HTTP_E_BAD = -1,      /* malformed: answer 400 and close */
    SR_HTTP_E_TOOLARGE = -2, /* head bigger than the limit: 431 */
    SR_HTTP_E_VERSION = -3,  /* not HTTP/1.0 or HTTP/1.1: 505 */
    SR_HTTP_E_FRAMING = -4,  /* conflicting or unsupported body framing: 400 */
    SR_HTTP_E_COUNT = -5,    /* more than SR_HTTP_MAX_HEADER_COUNT headers: 431 */
};

struct sr_span {
    const char *p;
    size_t n;
};

struct sr_http_header {
    struct sr_span name;
    struct sr_span value; /* leading/trailing OWS removed */
};

struct sr_http_head {
    /* Requests. */
    struct sr_span method;
    struct sr_span target; /* request-target as sent, e.g. "/mcp?x=1" */
    struct sr_span path;   /* target up to '?' */
    /* Responses. */
    int status;
    struct sr_span reason;
    /* Both. */
    int minor; /* 0 or 1 */
    struct sr_http_header h[SR_HTTP_MAX_HEADER_COUNT];
    uint32_t nh;
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* from version and Connection tokens */
    bool expect_continue;   /* Expect: 100-continue */
    size_t head_len;        /* bytes of the head including the final CRLFCRLF */
};

/*
 * Parse a request head from buf[0..len). Returns head_len (> 0) when a whole
 * head was parsed, SR_HTTP_E_MORE (0) when more bytes are needed and len is
 * still under max_head, or a negative enum sr_http_err.
 */
int sr_http_parse_request(const char *buf, size_t len, size_t max_head, struct sr_http_head *h);

/* Same for a response head ("HTTP/1.1 200 OK"). */
int sr_http_parse_response(const char *buf, size_t len, size_t max_head, struct sr_http_head *h);

/* Value of the first header named `name` (case-insensitive), or NULL (and *n = 0). */
const char *sr_http_header_get(const struct sr_http_head *h, const char *name, size_t *n);

/*
 * A chunk-size line (without its CRLF): hex digits, optional ";ext" ignored.
 * 0 and *size, or -1 when malformed or above 2^40.
 */
int sr_http_parse_chunk_size(const char *line, size_t n, uint64_t *size);

/* True when `name` is a hop-by-hop header that a proxy must not forward. */
bool sr_http_is_hop_header(const char *name, size_t n);

#endif
