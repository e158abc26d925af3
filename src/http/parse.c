/*
 * HTTP/1.1 head parser and chunk-size reader (see parse.h).
 *
 * The edge re-parses the whole buffered head each time bytes arrive, so the
 * parser is a single forward pass with no state between calls: every byte is
 * classified once through a 256-entry table, and the two long fields (the
 * request-target and header values) are skipped eight bytes at a time with
 * word-sized arithmetic. Bytes are checked as they are met, so a malformed
 * head is refused as soon as the offending byte is buffered rather than when
 * the blank line finally arrives; only judgements that need a whole field
 * (the HTTP version, the framing headers) wait for that field's end. This
 * keeps the results of a prefix consistent with the whole: a prefix of a
 * good head always asks for more, and a prefix of a bad head asks for more
 * or reports the same error.
 *
 * Anything wrong with the framing headers (a Content-Length that is not
 * plain digits or above 2^53, copies that disagree, a Transfer-Encoding other
 * than "chunked", or both headers together) is SR_HTTP_E_FRAMING, because a
 * proxy that guesses body boundaries differently from its peer is open to
 * request smuggling. A request with two Host headers is SR_HTTP_E_BAD.
 */
#include "http/parse.h"

#include <limits.h>
#include <string.h>

/* Largest Content-Length accepted: the largest integer a double (and so the
 * Worker's JavaScript) represents exactly. */
#define SR_HTTP_CL_MAX (UINT64_C(1) << 53)

/* Most hex digits a chunk size may have; ten keep it below 2^40. */
#define SR_HTTP_CHUNK_DIGITS_MAX 10

#define SR_HTTP_C_TCHAR  1 /* RFC 9110 tchar: methods and header names */
#define SR_HTTP_C_VALUE  2 /* field-value byte: VCHAR, obs-text, SP, HTAB */
#define SR_HTTP_C_TARGET 4 /* request-target byte: anything but CTL and SP */

/* clang-format off */
static const unsigned char sr_http_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    2, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6, /* 0x20 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6, /* 0x30 */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x40 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7, /* 0x50 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x60 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0, /* 0x70 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0x80 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0x90 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0xa0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0xb0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0xc0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0xd0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0xe0 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, /* 0xf0 */
};
/* clang-format on */

#define SR_HTTP_ONES  UINT64_C(0x0101010101010101)
#define SR_HTTP_HIGHS UINT64_C(0x8080808080808080)

/* Framing and connection facts gathered while the headers go by. */
struct sr_http_seen {
    bool host;
    bool content_length;
    bool transfer_encoding;
    bool close;
    bool keep_alive;
};

static bool sr_http_is(unsigned char c, unsigned cls)
{
    return (sr_http_class[c] & cls) != 0;
}

static unsigned char sr_http_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Case-insensitive comparison of s[0..n) with a lowercase literal. */
static bool sr_http_ieq(const char *s, size_t n, const char *lit, size_t litn)
{
    size_t i;

    if (n != litn)
        return false;
    for (i = 0; i < n; i++) {
        if (sr_http_lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return false;
    }
    return true;
}

#define SR_HTTP_IEQ(s, n, lit) sr_http_ieq((s), (n), (lit), sizeof(lit) - 1)

/*
 * True when some byte of the word is below `below` (at most 0x80) or is DEL.
 * The classic "has a byte less than n" trick; bytes of 0x80 and above never
 * match, which is what obs-text needs.
 */
static bool sr_http_word_stops(uint64_t x, uint64_t below)
{
    uint64_t del = x ^ (SR_HTTP_ONES * 0x7f);
    uint64_t lt = (x - SR_HTTP_ONES * below) & ~x;
    uint64_t eq = (del - SR_HTTP_ONES) & ~del;

    return ((lt | eq) & SR_HTTP_HIGHS) != 0;
}

/*
 * Skip bytes of class `cls` from p, eight at a time while whole words are
 * plainly inside the class. `below` is the smallest byte value every member
 * of the class has except HTAB (which sends a word down the byte path).
 */
static const char *sr_http_skip(const char *p, const char *end, unsigned cls, uint64_t below)
{
    for (;;) {
        const char *stop;

        if (end - p >= 8) {
            uint64_t x;

            memcpy(&x, p, sizeof(x));
            if (!sr_http_word_stops(x, below)) {
                p += 8;
                continue;
            }
            stop = p + 8;
        } else {
            stop = end;
        }
        for (; p < stop; p++) {
            if (!sr_http_is((unsigned char)*p, cls))
                return p;
        }
        if (p == end)
            return p;
    }
}

/*
 * Skip tchar bytes from p. Names are short and irregular, so instead of word
 * arithmetic eight table lookups are combined and tested with one branch.
 */
static const char *sr_http_token(const char *p, const char *end)
{
    const unsigned char *u = (const unsigned char *)p;

    while (end - p >= 8 && (sr_http_class[u[0]] & sr_http_class[u[1]] & sr_http_class[u[2]] &
                            sr_http_class[u[3]] & sr_http_class[u[4]] & sr_http_class[u[5]] &
                            sr_http_class[u[6]] & sr_http_class[u[7]] & SR_HTTP_C_TCHAR)) {
        p += 8;
        u += 8;
    }
    while (p < end && sr_http_is((unsigned char)*p, SR_HTTP_C_TCHAR))
        p++;
    return p;
}

/*
 * What running out of bytes means: more are needed, unless the limit is what
 * stopped the scan, in which case the head can only end beyond it.
 */
static int sr_http_short(size_t len, size_t max_head)
{
    return len >= max_head ? SR_HTTP_E_TOOLARGE : SR_HTTP_E_MORE;
}

/*
 * Match "HTTP/" DIGIT "." DIGIT at *pp. On success *pp moves past it and
 * *major and *minor are set; whether the version is one we speak is the
 * caller's call, made only once the field is known to end there.
 */
static int sr_http_version(const char **pp, const char *end, size_t len, size_t max_head,
                           int *major, int *minor)
{
    static const char pattern[] = "HTTP/0.0";
    const char *p = *pp;
    size_t i;

    for (i = 0; i < sizeof(pattern) - 1; i++) {
        unsigned char c;

        if (p + i == end)
            return sr_http_short(len, max_head);
        c = (unsigned char)p[i];
        if (pattern[i] == '0') {
            if (c < '0' || c > '9')
                return SR_HTTP_E_BAD;
        } else if (c != (unsigned char)pattern[i]) {
            return SR_HTTP_E_BAD;
        }
    }
    *major = p[5] - '0';
    *minor = p[7] - '0';
    *pp = p + sizeof(pattern) - 1;
    return 1;
}

/* Expect CRLF at *pp and step over it. */
static int sr_http_crlf(const char **pp, const char *end, size_t len, size_t max_head)
{
    const char *p = *pp;

    if (p == end)
        return sr_http_short(len, max_head);
    if (*p != '\r')
        return SR_HTTP_E_BAD;
    if (p + 1 == end)
        return sr_http_short(len, max_head);
    if (p[1] != '\n')
        return SR_HTTP_E_BAD;
    *pp = p + 2;
    return 1;
}

static struct sr_span sr_http_trim(const char *p, size_t n)
{
    struct sr_span s;

    while (n > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    s.p = p;
    s.n = n;
    return s;
}

/* Content-Length: digits only, leading zeros allowed, at most 2^53. */
static int sr_http_content_length(struct sr_span v, int64_t *out)
{
    uint64_t x = 0;
    size_t i;

    if (v.n == 0)
        return SR_HTTP_E_FRAMING;
    for (i = 0; i < v.n; i++) {
        unsigned char c = (unsigned char)v.p[i];

        if (c < '0' || c > '9')
            return SR_HTTP_E_FRAMING;
        x = x * 10 + (uint64_t)(c - '0');
        if (x > SR_HTTP_CL_MAX)
            return SR_HTTP_E_FRAMING;
    }
    *out = (int64_t)x;
    return 0;
}

/* Note the "close" and "keep-alive" options of a Connection list. */
static void sr_http_connection(struct sr_span v, struct sr_http_seen *seen)
{
    const char *p = v.p;
    const char *end = v.p + v.n;

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        struct sr_span t = sr_http_trim(p, (size_t)(stop - p));

        if (SR_HTTP_IEQ(t.p, t.n, "close"))
            seen->close = true;
        else if (SR_HTTP_IEQ(t.p, t.n, "keep-alive"))
            seen->keep_alive = true;
        p = comma ? comma + 1 : end;
    }
}

/* Look at one header for framing, connection and expectation facts. */
static int sr_http_note(struct sr_http_head *h, const struct sr_http_header *f,
                        struct sr_http_seen *seen)
{
    const char *n = f->name.p;
    int64_t cl;
    int rc;

    switch (f->name.n) {
    case 4:
        /* RFC 9112 section 3.2: a request with more than one Host is answered 400 (each
         * reader taking a different copy is how host-based checks are bypassed). */
        if (h->method.n && SR_HTTP_IEQ(n, 4, "host")) {
            if (seen->host)
                return SR_HTTP_E_BAD;
            seen->host = true;
        }
        break;
    case 6:
        if (SR_HTTP_IEQ(n, 6, "expect") && SR_HTTP_IEQ(f->value.p, f->value.n, "100-continue"))
            h->expect_continue = true;
        break;
    case 10:
        if (SR_HTTP_IEQ(n, 10, "connection"))
            sr_http_connection(f->value, seen);
        break;
    case 14:
        if (!SR_HTTP_IEQ(n, 14, "content-length"))
            break;
        rc = sr_http_content_length(f->value, &cl);
        if (rc < 0)
            return rc;
        if (seen->transfer_encoding || (seen->content_length && cl != h->content_length))
            return SR_HTTP_E_FRAMING;
        seen->content_length = true;
        h->content_length = cl;
        break;
    case 17:
        if (!SR_HTTP_IEQ(n, 17, "transfer-encoding"))
            break;
        /* A second copy amounts to "chunked, chunked", which is refused. */
        if (seen->transfer_encoding || seen->content_length ||
            !SR_HTTP_IEQ(f->value.p, f->value.n, "chunked"))
            return SR_HTTP_E_FRAMING;
        seen->transfer_encoding = true;
        h->chunked = true;
        break;
    default:
        break;
    }
    return 0;
}

static void sr_http_reset(struct sr_http_head *h)
{
    h->method.p = NULL;
    h->method.n = 0;
    h->target = h->method;
    h->path = h->method;
    h->status = 0;
    h->reason = h->method;
    h->minor = 0;
    h->nh = 0;
    h->content_length = -1;
    h->chunked = false;
    h->keep_alive = false;
    h->expect_continue = false;
    h->head_len = 0;
}

/*
 * Header lines from p up to and including the blank line that ends the
 * head, then the facts that depend on all of them.
 */
static int sr_http_headers(const char *buf, const char *p, const char *end, size_t len,
                           size_t max_head, struct sr_http_head *h)
{
    struct sr_http_seen seen = {false, false, false, false, false};
    int rc;

    for (;;) {
        struct sr_http_header *f;
        const char *name;
        const char *value;

        if (p == end)
            return sr_http_short(len, max_head);
        if (*p == '\r') {
            rc = sr_http_crlf(&p, end, len, max_head);
            if (rc <= 0)
                return rc;
            break;
        }
        if (h->nh == SR_HTTP_MAX_HEADER_COUNT)
            return SR_HTTP_E_COUNT;

        /* An empty name also catches obs-fold (a line opening with SP or HTAB). */
        name = p;
        p = sr_http_token(p, end);
        if (p == end)
            return sr_http_short(len, max_head);
        if (*p != ':' || p == name)
            return SR_HTTP_E_BAD;
        f = &h->h[h->nh];
        f->name.p = name;
        f->name.n = (size_t)(p - name);
        p++;

        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        value = p;
        p = sr_http_skip(p, end, SR_HTTP_C_VALUE, 0x20);
        rc = sr_http_crlf(&p, end, len, max_head);
        if (rc <= 0)
            return rc;
        f->value = sr_http_trim(value, (size_t)(p - 2 - value));
        h->nh++;

        rc = sr_http_note(h, f, &seen);
        if (rc < 0)
            return rc;
    }

    if (seen.close)
        h->keep_alive = false;
    else
        h->keep_alive = h->minor == 1 || seen.keep_alive;
    h->head_len = (size_t)(p - buf);
    return (int)h->head_len;
}

/* Heads are at most INT_MAX bytes so that their length fits the return value. */
static const char *sr_http_end(const char *buf, size_t len, size_t *max_head)
{
    if (*max_head > INT_MAX)
        *max_head = INT_MAX;
    return buf + (len < *max_head ? len : *max_head);
}

int sr_http_parse_request(const char *buf, size_t len, size_t max_head, struct sr_http_head *h)
{
    const char *end = sr_http_end(buf, len, &max_head);
    const char *p = buf;
    const char *t;
    const char *q;
    int major;
    int minor;
    int rc;

    sr_http_reset(h);

    p = sr_http_token(p, end);
    if (p == end)
        return sr_http_short(len, max_head);
    if (*p != ' ' || p == buf)
        return SR_HTTP_E_BAD;
    h->method.p = buf;
    h->method.n = (size_t)(p - buf);
    p++;

    /* Origin-form only, plus "*" for OPTIONS: this is not a forward proxy. */
    t = p;
    if (p == end)
        return sr_http_short(len, max_head);
    if (*p != '/' && *p != '*')
        return SR_HTTP_E_BAD;
    p = sr_http_skip(p, end, SR_HTTP_C_TARGET, 0x21);
    if (p == end)
        return sr_http_short(len, max_head);
    if (*p != ' ')
        return SR_HTTP_E_BAD;
    h->target.p = t;
    h->target.n = (size_t)(p - t);
    if (*t == '*' && (h->target.n != 1 || !(h->method.n == 7 && memcmp(buf, "OPTIONS", 7) == 0)))
        return SR_HTTP_E_BAD;
    q = memchr(t, '?', h->target.n);
    h->path.p = t;
    h->path.n = q ? (size_t)(q - t) : h->target.n;
    p++;

    rc = sr_http_version(&p, end, len, max_head, &major, &minor);
    if (rc <= 0)
        return rc;
    rc = sr_http_crlf(&p, end, len, max_head);
    if (rc <= 0)
        return rc;
    if (major != 1 || minor > 1)
        return SR_HTTP_E_VERSION;
    h->minor = minor;

    return sr_http_headers(buf, p, end, len, max_head, h);
}

int sr_http_parse_response(const char *buf, size_t len, size_t max_head, struct sr_http_head *h)
{
    const char *end = sr_http_end(buf, len, &max_head);
    const char *p = buf;
    int major;
    int minor;
    int status = 0;
    int rc;
    int i;

    sr_http_reset(h);

    rc = sr_http_version(&p, end, len, max_head, &major, &minor);
    if (rc <= 0)
        return rc;
    if (p == end)
        return sr_http_short(len, max_head);
    if (*p != ' ')
        return SR_HTTP_E_BAD;
    if (major != 1 || minor > 1)
        return SR_HTTP_E_VERSION;
    h->minor = minor;
    p++;

    for (i = 0; i < 3; i++, p++) {
        if (p == end)
            return sr_http_short(len, max_head);
        if (*p < '0' || *p > '9')
            return SR_HTTP_E_BAD;
        status = status * 10 + (*p - '0');
    }
    if (status < 100 || status > 599)
        return SR_HTTP_E_BAD;
    h->status = status;

    /* The reason phrase, SP included, may be missing altogether. */
    if (p == end)
        return sr_http_short(len, max_head);
    if (*p == ' ') {
        const char *r = ++p;

        p = sr_http_skip(p, end, SR_HTTP_C_VALUE, 0x20);
        h->reason.p = r;
        h->reason.n = (size_t)(p - r);
    } else {
        h->reason.p = p;
    }
    rc = sr_http_crlf(&p, end, len, max_head);
    if (rc <= 0)
        return rc;

    return sr_http_headers(buf, p, end, len, max_head, h);
}

const char *sr_http_header_get(const struct sr_http_head *h, const char *name, size_t *n)
{
    size_t len = strlen(name);
    uint32_t i;

    for (i = 0; i < h->nh; i++) {
        const struct sr_http_header *f = &h->h[i];
        size_t j;

        if (f->name.n != len)
            continue;
        for (j = 0; j < len; j++) {
            if (sr_http_lower((unsigned char)f->name.p[j]) != sr_http_lower((unsigned char)name[j]))
                break;
        }
        if (j == len) {
            *n = f->value.n;
            return f->value.p;
        }
    }
    *n = 0;
    return NULL;
}

static int sr_http_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = sr_http_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int sr_http_parse_chunk_size(const char *line, size_t n, uint64_t *size)
{
    uint64_t x = 0;
    size_t i;

    for (i = 0; i < n && i <= SR_HTTP_CHUNK_DIGITS_MAX; i++) {
        int d = sr_http_hex((unsigned char)line[i]);

        if (d < 0)
            break;
        x = (x << 4) | (uint64_t)d;
    }
    if (i == 0 || i > SR_HTTP_CHUNK_DIGITS_MAX)
        return -1;

    /* Extensions are skipped, not parsed, but may not smuggle in CTLs. */
    if (i < n) {
        while (i < n && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == n || line[i] != ';')
            return -1;
        for (; i < n; i++) {
            if (!sr_http_is((unsigned char)line[i], SR_HTTP_C_VALUE))
                return -1;
        }
    }
    *size = x;
    return 0;
}

bool sr_http_is_hop_header(const char *name, size_t n)
{
    switch (n) {
    case 2:
        return SR_HTTP_IEQ(name, n, "te");
    case 7:
        return SR_HTTP_IEQ(name, n, "trailer") || SR_HTTP_IEQ(name, n, "upgrade");
    case 10:
        return SR_HTTP_IEQ(name, n, "connection") || SR_HTTP_IEQ(name, n, "keep-alive");
    case 16:
        return SR_HTTP_IEQ(name, n, "proxy-connection");
    case 17:
        return SR_HTTP_IEQ(name, n, "transfer-encoding");
    case 18:
        return SR_HTTP_IEQ(name, n, "proxy-authenticate");
    case 19:
        return SR_HTTP_IEQ(name, n, "proxy-authorization");
    default:
        return false;
    }
}
