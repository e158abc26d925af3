/*
 * Strict JSON (RFC 8259) reader and writer.
 *
 * The edge decides what a request is from its JSON, and Serena then reads the
 * same bytes with another parser. Any leniency here (duplicate keys, invalid
 * UTF-8, lone surrogates, odd numbers) would let the two parsers disagree
 * about a message, so the reader accepts exactly the RFC grammar and nothing
 * else. It runs without libc and without allocation, so it works unchanged in
 * core.wasm: the document is recorded as a flat token array the caller owns.
 *
 * The reader is iterative (an explicit stack of SR_JSON_MAX_DEPTH open
 * containers) so hostile nesting cannot exhaust the small wasm stack.
 * Duplicate keys are checked when an object closes: small objects compare
 * their keys pairwise, larger ones sort key indices with a bottom-up merge
 * sort in the unused tail of the caller's token array. Each comparison in a
 * merge costs at most the length of the key it emits, so the whole check is
 * O(len log len) even for a 4 MiB object with half a million keys.
 *
 * The writer appends to a caller buffer with a sticky error and inserts
 * commas and colons itself, so callers write straight-line code and check
 * once in sr_jw_finish.
 */
#include "core/json.h"
#include "core/mem.h"

/* The merge sort packs five uint32_t indices into each spare token. */
_Static_assert(sizeof(struct sr_json_tok) == 5 * sizeof(uint32_t), "token has padding");

/* Objects with at most this many members compare keys pairwise. */
#define JSON_PAIRWISE_MAX 8

/* Writer state bits kept in sr_jw.first[]: first item pending, container is an object. */
#define JW_FIRST 1u
#define JW_OBJ   2u

struct json_parser {
    const uint8_t *b;
    uint32_t n;
    uint32_t pos;
    struct sr_json_tok *toks;
    uint32_t cap;
    uint32_t ntoks;
    struct sr_json_error *err;
};

enum json_state {
    JSON_VALUE,
    JSON_AFTER,
    JSON_KEY,
};

static int json_fail(struct json_parser *p, int code, size_t offset, const char *msg)
{
    if (p->err != NULL) {
        p->err->code = code;
        p->err->offset = offset;
        p->err->msg = msg;
    }
    return code;
}

static bool json_is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void json_skip_ws(struct json_parser *p)
{
    while (p->pos < p->n && json_is_ws(p->b[p->pos]))
        p->pos++;
}

static bool json_is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* Value of one hex digit, or -1. */
static int json_hex_digit(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at s into *out; false when any is not a hex digit. */
static bool json_hex4(const uint8_t *s, uint32_t *out)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++) {
        int d = json_hex_digit(s[i]);

        if (d < 0)
            return false;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return true;
}

/*
 * Length (2 to 4) of the well-formed multi-byte UTF-8 sequence at s, which
 * has avail bytes, or 0 when it is not well-formed. The ranges are those of
 * Unicode table 3-7, which excludes overlong forms, encoded surrogates and
 * code points above U+10FFFF in one place.
 */
static uint32_t json_utf8_seq(const uint8_t *s, size_t avail)
{
    uint8_t c = s[0];
    uint8_t lo = 0x80;
    uint8_t hi = 0xbf;
    uint32_t len;

    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (avail < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (uint32_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    }
    return len;
}

/* Encode code point cp (valid, not a surrogate) as UTF-8 into out; returns its length. */
static uint32_t json_utf8_put(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* Append a token; E_LIMIT when the caller's array is full. */
static int json_tok_new(struct json_parser *p, uint32_t type, uint32_t start, uint32_t *idx)
{
    struct sr_json_tok *t;

    if (p->ntoks >= p->cap)
        return json_fail(p, SR_JSON_E_LIMIT, start,
                         "document has more values than the token array holds");
    t = &p->toks[p->ntoks];
    t->type = type;
    t->start = start;
    t->len = 0;
    t->end = p->ntoks + 1;
    t->count = 0;
    *idx = p->ntoks++;
    return 0;
}

/* One backslash escape at p->b[i]; advances *i past it. */
static int json_escape(struct json_parser *p, uint32_t *i)
{
    const uint8_t *b = p->b;
    uint32_t at = *i;
    uint32_t cp;
    uint32_t lo;

    if (p->n - at < 2)
        return json_fail(p, SR_JSON_E_SYNTAX, at, "unterminated string");
    switch (b[at + 1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        *i = at + 2;
        return 0;
    case 'u':
        break;
    default:
        return json_fail(p, SR_JSON_E_SYNTAX, at, "invalid escape in string");
    }
    if (p->n - at < 6 || !json_hex4(b + at + 2, &cp))
        return json_fail(p, SR_JSON_E_SYNTAX, at, "invalid \\u escape in string");
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return json_fail(p, SR_JSON_E_UTF8, at, "lone low surrogate escape in string");
    if (cp < 0xd800 || cp > 0xdbff) {
        *i = at + 6;
        return 0;
    }
    /* A high surrogate must be followed at once by an escaped low surrogate. */
    if (p->n - at < 12 || b[at + 6] != '\\' || b[at + 7] != 'u')
        return json_fail(p, SR_JSON_E_UTF8, at, "lone high surrogate escape in string");
    if (!json_hex4(b + at + 8, &lo))
        return json_fail(p, SR_JSON_E_SYNTAX, at + 6, "invalid \\u escape in string");
    if (lo < 0xdc00 || lo > 0xdfff)
        return json_fail(p, SR_JSON_E_UTF8, at, "lone high surrogate escape in string");
    *i = at + 12;
    return 0;
}

/* A string starting at the quote at p->pos; records a string token. */
static int json_string(struct json_parser *p, uint32_t *idx)
{
    const uint8_t *b = p->b;
    uint32_t start = p->pos + 1;
    uint32_t i = start;
    int rc;

    for (;;) {
        uint8_t c;

        /* The common case first: printable ASCII other than quote and backslash. */
        while (i < p->n && b[i] >= 0x20 && b[i] < 0x80 && b[i] != '"' && b[i] != '\\')
            i++;
        if (i >= p->n)
            return json_fail(p, SR_JSON_E_SYNTAX, p->pos, "unterminated string");
        c = b[i];
        if (c == '"')
            break;
        if (c == '\\') {
            rc = json_escape(p, &i);
            if (rc < 0)
                return rc;
        } else if (c < 0x20) {
            return json_fail(p, SR_JSON_E_SYNTAX, i, "unescaped control character in string");
        } else {
            uint32_t len = json_utf8_seq(b + i, p->n - i);

            if (len == 0)
                return json_fail(p, SR_JSON_E_UTF8, i, "invalid UTF-8 in string");
            i += len;
        }
    }
    rc = json_tok_new(p, SR_JSON_STRING, start, idx);
    if (rc < 0)
        return rc;
    p->toks[*idx].len = i - start;
    p->pos = i + 1;
    return 0;
}

/* A number per the RFC grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number(struct json_parser *p, uint32_t *idx)
{
    const uint8_t *b = p->b;
    uint32_t start = p->pos;
    uint32_t i = start;
    int rc;

    if (b[i] == '-')
        i++;
    if (i >= p->n || !json_is_digit(b[i]))
        return json_fail(p, SR_JSON_E_SYNTAX, i, "invalid number: expected a digit");
    if (b[i] == '0') {
        i++;
    } else {
        while (i < p->n && json_is_digit(b[i]))
            i++;
    }
    if (i < p->n && b[i] == '.') {
        i++;
        if (i >= p->n || !json_is_digit(b[i]))
            return json_fail(p, SR_JSON_E_SYNTAX, i, "invalid number: expected a digit after '.'");
        while (i < p->n && json_is_digit(b[i]))
            i++;
    }
    if (i < p->n && (b[i] == 'e' || b[i] == 'E')) {
        i++;
        if (i < p->n && (b[i] == '+' || b[i] == '-'))
            i++;
        if (i >= p->n || !json_is_digit(b[i]))
            return json_fail(p, SR_JSON_E_SYNTAX, i, "invalid number: expected exponent digits");
        while (i < p->n && json_is_digit(b[i]))
            i++;
    }
    rc = json_tok_new(p, SR_JSON_NUMBER, start, idx);
    if (rc < 0)
        return rc;
    p->toks[*idx].len = i - start;
    p->pos = i;
    return 0;
}

static int json_literal(struct json_parser *p, uint32_t *idx)
{
    static const char *const words[3] = {"null", "false", "true"};
    static const uint32_t types[3] = {SR_JSON_NULL, SR_JSON_FALSE, SR_JSON_TRUE};
    uint32_t w = p->b[p->pos] == 'n' ? 0 : p->b[p->pos] == 'f' ? 1 : 2;
    uint32_t len = (uint32_t)sr_str_len(words[w]);
    int rc;

    if (p->n - p->pos < len || !sr_mem_eq(p->b + p->pos, words[w], len))
        return json_fail(p, SR_JSON_E_SYNTAX, p->pos,
                         "invalid literal: expected true, false or null");
    rc = json_tok_new(p, types[w], p->pos, idx);
    if (rc < 0)
        return rc;
    p->toks[*idx].len = len;
    p->pos += len;
    return 0;
}

/*
 * Decoding cursor over the escaped bytes of a string token: yields the
 * unescaped UTF-8 bytes one at a time. It trusts its input, which the reader
 * has already validated.
 */
struct json_cur {
    const uint8_t *p;
    const uint8_t *end;
    uint8_t pend[4];
    uint32_t npend;
    uint32_t ipend;
};

static void json_cur_init(struct json_cur *c, const struct sr_json_doc *doc, uint32_t idx)
{
    const struct sr_json_tok *t = &doc->toks[idx];

    c->p = (const uint8_t *)doc->buf + t->start;
    c->end = c->p + t->len;
    c->npend = 0;
    c->ipend = 0;
}

/* Next unescaped byte, or -1 at the end. */
static int json_cur_next(struct json_cur *c)
{
    uint32_t cp = 0;
    uint32_t lo = 0xdc00;

    if (c->ipend < c->npend)
        return c->pend[c->ipend++];
    if (c->p >= c->end)
        return -1;
    if (*c->p != '\\')
        return *c->p++;
    c->p += 2;
    switch (c->p[-1]) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'u':
        break;
    default:
        return c->p[-1];
    }
    json_hex4(c->p, &cp);
    c->p += 4;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        json_hex4(c->p + 2, &lo);
        c->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    c->npend = json_utf8_put(cp, c->pend);
    c->ipend = 1;
    return c->pend[0];
}

/* Byte-wise order of two string tokens after unescaping: <0, 0 or >0. */
static int json_key_cmp(const struct sr_json_doc *doc, uint32_t a, uint32_t b)
{
    struct json_cur ca;
    struct json_cur cb;

    json_cur_init(&ca, doc, a);
    json_cur_init(&cb, doc, b);
    for (;;) {
        int x = json_cur_next(&ca);
        int y = json_cur_next(&cb);

        if (x != y)
            return x < y ? -1 : 1;
        if (x < 0)
            return 0;
    }
}

static int json_dup(struct json_parser *p, uint32_t a, uint32_t b)
{
    uint32_t later = a > b ? a : b;

    return json_fail(p, SR_JSON_E_DUPKEY, p->toks[later].start - 1, "duplicate object key");
}

/*
 * Reject an object that repeats a key. Called when the object at index obj
 * has closed, so its member values all have their end set.
 */
static int json_check_keys(struct json_parser *p, uint32_t obj)
{
    struct sr_json_doc doc = {(const char *)p->b, p->n, p->toks, p->ntoks};
    uint32_t m = p->toks[obj].count;
    uint32_t *src;
    uint32_t *dst;
    uint32_t k;

    if (m < 2)
        return 0;
    if (m <= JSON_PAIRWISE_MAX) {
        uint32_t keys[JSON_PAIRWISE_MAX];

        k = obj + 1;
        for (uint32_t i = 0; i < m; i++) {
            keys[i] = k;
            k = p->toks[k + 1].end;
        }
        for (uint32_t i = 1; i < m; i++) {
            for (uint32_t j = 0; j < i; j++) {
                if (json_key_cmp(&doc, keys[j], keys[i]) == 0)
                    return json_dup(p, keys[j], keys[i]);
            }
        }
        return 0;
    }

    /*
     * Larger objects: merge sort the key indices in the unused tail of the
     * token array (two runs of m indices), then any duplicate pair is met as
     * an equal comparison. No room means the caller's array is too small for
     * this document, the same answer as running out of tokens.
     */
    if ((uint64_t)(p->cap - p->ntoks) * 5 < (uint64_t)m * 2)
        return json_fail(p, SR_JSON_E_LIMIT, p->toks[obj].start,
                         "token array has no room left to check duplicate keys");
    src = (uint32_t *)(void *)(p->toks + p->ntoks);
    dst = src + m;
    k = obj + 1;
    for (uint32_t i = 0; i < m; i++) {
        src[i] = k;
        k = p->toks[k + 1].end;
    }
    for (uint64_t w = 1; w < m; w *= 2) {
        uint32_t *t;

        for (uint64_t lo = 0; lo < m; lo += 2 * w) {
            uint32_t mid = (uint32_t)(lo + w < m ? lo + w : m);
            uint32_t hi = (uint32_t)(lo + 2 * w < m ? lo + 2 * w : m);
            uint32_t i = (uint32_t)lo;
            uint32_t j = mid;
            uint32_t o = (uint32_t)lo;

            while (i < mid && j < hi) {
                int c = json_key_cmp(&doc, src[i], src[j]);

                if (c == 0)
                    return json_dup(p, src[i], src[j]);
                dst[o++] = c < 0 ? src[i++] : src[j++];
            }
            while (i < mid)
                dst[o++] = src[i++];
            while (j < hi)
                dst[o++] = src[j++];
        }
        t = src;
        src = dst;
        dst = t;
    }
    return 0;
}

/* Close the container on top of the stack at the bracket at p->pos. */
static int json_close(struct json_parser *p, uint32_t idx)
{
    struct sr_json_tok *t = &p->toks[idx];

    t->end = p->ntoks;
    t->len = p->pos + 1 - t->start;
    p->pos++;
    if (t->type == SR_JSON_OBJECT)
        return json_check_keys(p, idx);
    return 0;
}

static int json_run(struct json_parser *p)
{
    uint32_t stack[SR_JSON_MAX_DEPTH];
    uint32_t depth = 0;
    enum json_state state = JSON_VALUE;
    uint32_t idx;
    int rc;

    for (;;) {
        uint8_t c;

        json_skip_ws(p);
        if (state == JSON_VALUE) {
            if (p->pos >= p->n)
                return json_fail(p, SR_JSON_E_SYNTAX, p->pos, "unexpected end: expected a value");
            c = p->b[p->pos];
            if (c == '{' || c == '[') {
                if (depth >= SR_JSON_MAX_DEPTH)
                    return json_fail(p, SR_JSON_E_DEPTH, p->pos, "nesting is too deep");
                rc = json_tok_new(p, c == '{' ? SR_JSON_OBJECT : SR_JSON_ARRAY, p->pos, &idx);
                if (rc < 0)
                    return rc;
                stack[depth++] = idx;
                p->pos++;
                json_skip_ws(p);
                if (p->pos < p->n && p->b[p->pos] == (c == '{' ? '}' : ']')) {
                    depth--;
                    rc = json_close(p, idx);
                    if (rc < 0)
                        return rc;
                    state = JSON_AFTER;
                } else if (c == '{') {
                    state = JSON_KEY;
                } else {
                    p->toks[idx].count = 1;
                }
                continue;
            }
            if (c == '"')
                rc = json_string(p, &idx);
            else if (c == '-' || json_is_digit(c))
                rc = json_number(p, &idx);
            else if (c == 't' || c == 'f' || c == 'n')
                rc = json_literal(p, &idx);
            else
                return json_fail(p, SR_JSON_E_SYNTAX, p->pos,
                                 "unexpected character: expected a value");
            if (rc < 0)
                return rc;
            state = JSON_AFTER;
            continue;
        }
        if (state == JSON_KEY) {
            if (p->pos >= p->n || p->b[p->pos] != '"')
                return json_fail(p, SR_JSON_E_SYNTAX, p->pos, "expected a string object key");
            rc = json_string(p, &idx);
            if (rc < 0)
                return rc;
            p->toks[stack[depth - 1]].count++;
            json_skip_ws(p);
            if (p->pos >= p->n || p->b[p->pos] != ':')
                return json_fail(p, SR_JSON_E_SYNTAX, p->pos, "expected ':' after object key");
            p->pos++;
            state = JSON_VALUE;
            continue;
        }
        /* JSON_AFTER: a value is complete. */
        if (depth == 0) {
            if (p->pos != p->n)
                return json_fail(p, SR_JSON_E_SYNTAX, p->pos,
                                 "unexpected data after the JSON value");
            return 0;
        }
        idx = stack[depth - 1];
        if (p->pos >= p->n)
            return json_fail(p, SR_JSON_E_SYNTAX, p->pos,
                             p->toks[idx].type == SR_JSON_OBJECT
                                 ? "unexpected end: unclosed object"
                                 : "unexpected end: unclosed array");
        c = p->b[p->pos];
        if (p->toks[idx].type == SR_JSON_ARRAY) {
            if (c == ',') {
                p->pos++;
                p->toks[idx].count++;
                state = JSON_VALUE;
            } else if (c == ']') {
                depth--;
                rc = json_close(p, idx);
                if (rc < 0)
                    return rc;
            } else {
                return json_fail(p, SR_JSON_E_SYNTAX, p->pos, "expected ',' or ']' in array");
            }
        } else {
            if (c == ',') {
                p->pos++;
                state = JSON_KEY;
            } else if (c == '}') {
                depth--;
                rc = json_close(p, idx);
                if (rc < 0)
                    return rc;
            } else {
                return json_fail(p, SR_JSON_E_SYNTAX, p->pos, "expected ',' or '}' in object");
            }
        }
    }
}

int sr_json_parse(struct sr_json_doc *doc, const char *buf, size_t len, struct sr_json_tok *toks,
                  uint32_t cap, struct sr_json_error *err)
{
    struct json_parser p;
    int rc;

    doc->buf = buf;
    doc->len = len;
    doc->toks = toks;
    doc->ntoks = 0;
    p.b = (const uint8_t *)buf;
    p.n = (uint32_t)len;
    p.pos = 0;
    p.toks = toks;
    p.cap = toks == NULL ? 0 : cap;
    p.ntoks = 0;
    p.err = err;
    /* Offsets and lengths are 32-bit, which bounds the document. */
    if (len > UINT32_MAX)
        return json_fail(&p, SR_JSON_E_LIMIT, 0, "document is larger than 4 GiB");
    if (buf == NULL && len > 0)
        return json_fail(&p, SR_JSON_E_SYNTAX, 0, "no document");
    rc = json_run(&p);
    if (rc < 0)
        return rc;
    doc->ntoks = p.ntoks;
    if (err != NULL) {
        err->code = SR_JSON_OK;
        err->offset = 0;
        err->msg = "ok";
    }
    return 0;
}

/* Accessors. */

static bool json_is(const struct sr_json_doc *doc, uint32_t idx, uint32_t type)
{
    return doc != NULL && idx < doc->ntoks && doc->toks[idx].type == type;
}

bool sr_json_str_eq(const struct sr_json_doc *doc, uint32_t idx, const char *s, size_t n)
{
    struct json_cur c;
    const uint8_t *u = (const uint8_t *)s;

    if (!json_is(doc, idx, SR_JSON_STRING))
        return false;
    json_cur_init(&c, doc, idx);
    /* Unescaping never lengthens a string, so a longer s cannot match. */
    if ((size_t)(c.end - c.p) < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (json_cur_next(&c) != u[i])
            return false;
    }
    return json_cur_next(&c) < 0;
}

int32_t sr_json_obj_get(const struct sr_json_doc *doc, uint32_t obj, const char *key, size_t keylen)
{
    uint32_t k;
    uint32_t m;

    if (!json_is(doc, obj, SR_JSON_OBJECT))
        return -1;
    m = doc->toks[obj].count;
    k = obj + 1;
    for (uint32_t i = 0; i < m; i++) {
        if (sr_json_str_eq(doc, k, key, keylen))
            return k + 1 <= (uint32_t)INT32_MAX ? (int32_t)(k + 1) : -1;
        k = doc->toks[k + 1].end;
    }
    return -1;
}

int sr_json_str_decode(const struct sr_json_doc *doc, uint32_t idx, char *out, size_t cap,
                       size_t *outlen)
{
    struct json_cur c;
    size_t n = 0;
    int x;

    if (outlen != NULL)
        *outlen = 0;
    if (!json_is(doc, idx, SR_JSON_STRING))
        return SR_JSON_E_TYPE;
    json_cur_init(&c, doc, idx);
    while ((x = json_cur_next(&c)) >= 0) {
        if (n >= cap)
            return SR_JSON_E_NOSPACE;
        out[n++] = (char)x;
    }
    if (n < cap)
        out[n] = '\0';
    if (outlen != NULL)
        *outlen = n;
    return 0;
}

int sr_json_int64(const struct sr_json_doc *doc, uint32_t idx, int64_t *out)
{
    const struct sr_json_tok *t;
    const uint8_t *s;
    uint64_t mag = 0;
    uint64_t limit = (uint64_t)INT64_MAX;
    uint32_t i = 0;
    bool neg = false;

    if (!json_is(doc, idx, SR_JSON_NUMBER))
        return SR_JSON_E_TYPE;
    t = &doc->toks[idx];
    s = (const uint8_t *)doc->buf + t->start;
    if (s[0] == '-') {
        neg = true;
        limit = (uint64_t)INT64_MAX + 1;
        i = 1;
    }
    for (; i < t->len; i++) {
        uint32_t d;

        if (!json_is_digit(s[i]))
            return SR_JSON_E_TYPE; /* a fraction or an exponent */
        d = (uint32_t)(s[i] - '0');
        if (mag > (limit - d) / 10)
            return SR_JSON_E_TYPE;
        mag = mag * 10 + d;
    }
    if (neg)
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    return 0;
}

/* Writer. */

static void jw_fail(struct sr_jw *w, int code)
{
    if (w->err == 0)
        w->err = code;
}

static void jw_put(struct sr_jw *w, const char *s, size_t n)
{
    if (w->err != 0)
        return;
    if (n > w->cap - w->len) {
        jw_fail(w, SR_JSON_E_NOSPACE);
        return;
    }
    sr_mem_copy(w->buf + w->len, s, n);
    w->len += n;
}

static void jw_putc(struct sr_jw *w, char c)
{
    jw_put(w, &c, 1);
}

/*
 * Bookkeeping before a value: a second root, or a value in an object that
 * has no key, is a caller bug and makes the document fail. Returns false
 * when nothing should be written.
 */
static bool jw_value_prefix(struct sr_jw *w)
{
    uint8_t *f;

    if (w->err != 0)
        return false;
    f = &w->first[w->depth];
    if (*f & JW_OBJ) {
        if (!w->after_key) {
            jw_fail(w, SR_JSON_E_SYNTAX);
            return false;
        }
        w->after_key = 0;
        return true;
    }
    if (w->depth == 0) {
        if (!(*f & JW_FIRST)) {
            jw_fail(w, SR_JSON_E_SYNTAX);
            return false;
        }
    } else if (!(*f & JW_FIRST)) {
        jw_putc(w, ',');
    }
    *f &= (uint8_t)~JW_FIRST;
    return w->err == 0;
}

/* Write s[0..n) as a quoted, escaped JSON string; the whole of s must be valid UTF-8. */
static void jw_string(struct sr_jw *w, const char *s, size_t n)
{
    static const char hex[16] = "0123456789abcdef";
    const uint8_t *u = (const uint8_t *)s;
    size_t run = 0;

    if (w->err != 0)
        return;
    /* Validate first so that a bad string leaves no partial output behind. */
    for (size_t i = 0; i < n;) {
        uint32_t len = 1;

        if (u[i] >= 0x80) {
            len = json_utf8_seq(u + i, n - i);
            if (len == 0) {
                jw_fail(w, SR_JSON_E_UTF8);
                return;
            }
        }
        i += len;
    }
    jw_putc(w, '"');
    for (size_t i = 0; i < n; i++) {
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;

        switch (u[i]) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            if (u[i] >= 0x20)
                continue;
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[u[i] >> 4];
            esc[5] = hex[u[i] & 0x0f];
            elen = 6;
            break;
        }
        /* Flush the run of bytes that needed no escape, then the escape. */
        jw_put(w, s + run, i - run);
        jw_put(w, esc, elen);
        run = i + 1;
    }
    jw_put(w, s + run, n - run);
    jw_putc(w, '"');
}

void sr_jw_init(struct sr_jw *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = buf == NULL ? 0 : cap;
    w->len = 0;
    w->err = 0;
    w->depth = 0;
    sr_mem_set(w->first, 0, sizeof(w->first));
    w->first[0] = JW_FIRST;
    w->after_key = 0;
}

static void jw_begin(struct sr_jw *w, char open, uint8_t kind)
{
    if (!jw_value_prefix(w))
        return;
    if (w->depth >= SR_JSON_MAX_DEPTH) {
        jw_fail(w, SR_JSON_E_DEPTH);
        return;
    }
    jw_putc(w, open);
    w->depth++;
    w->first[w->depth] = (uint8_t)(JW_FIRST | kind);
}

static void jw_end(struct sr_jw *w, char close, uint8_t kind)
{
    if (w->err != 0)
        return;
    if (w->depth == 0 || (w->first[w->depth] & JW_OBJ) != kind || w->after_key) {
        jw_fail(w, SR_JSON_E_SYNTAX);
        return;
    }
    jw_putc(w, close);
    w->depth--;
}

void sr_jw_obj_begin(struct sr_jw *w)
{
    jw_begin(w, '{', JW_OBJ);
}

void sr_jw_obj_end(struct sr_jw *w)
{
    jw_end(w, '}', JW_OBJ);
}

void sr_jw_arr_begin(struct sr_jw *w)
{
    jw_begin(w, '[', 0);
}

void sr_jw_arr_end(struct sr_jw *w)
{
    jw_end(w, ']', 0);
}

void sr_jw_key(struct sr_jw *w, const char *k)
{
    uint8_t *f;

    if (w->err != 0)
        return;
    f = &w->first[w->depth];
    if (k == NULL || !(*f & JW_OBJ) || w->after_key) {
        jw_fail(w, SR_JSON_E_SYNTAX);
        return;
    }
    if (!(*f & JW_FIRST))
        jw_putc(w, ',');
    *f &= (uint8_t)~JW_FIRST;
    jw_string(w, k, sr_str_len(k));
    jw_putc(w, ':');
    w->after_key = 1;
}

void sr_jw_str(struct sr_jw *w, const char *s, size_t n)
{
    if (s == NULL && n > 0) {
        jw_fail(w, SR_JSON_E_SYNTAX);
        return;
    }
    if (jw_value_prefix(w))
        jw_string(w, s == NULL ? "" : s, n);
}

void sr_jw_cstr(struct sr_jw *w, const char *s)
{
    if (s == NULL) {
        jw_fail(w, SR_JSON_E_SYNTAX);
        return;
    }
    sr_jw_str(w, s, sr_str_len(s));
}

void sr_jw_int(struct sr_jw *w, int64_t v)
{
    char digits[20];
    size_t n = 0;
    /* The magnitude as unsigned, so INT64_MIN needs no special case. */
    uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    if (!jw_value_prefix(w))
        return;
    do {
        digits[sizeof(digits) - 1 - n++] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag > 0);
    if (v < 0)
        jw_putc(w, '-');
    jw_put(w, digits + sizeof(digits) - n, n);
}

void sr_jw_bool(struct sr_jw *w, bool v)
{
    if (jw_value_prefix(w))
        jw_put(w, v ? "true" : "false", v ? 4 : 5);
}

void sr_jw_null(struct sr_jw *w)
{
    if (jw_value_prefix(w))
        jw_put(w, "null", 4);
}

void sr_jw_raw(struct sr_jw *w, const char *json, size_t n)
{
    if (json == NULL || n == 0) {
        jw_fail(w, SR_JSON_E_SYNTAX);
        return;
    }
    if (jw_value_prefix(w))
        jw_put(w, json, n);
}

int sr_jw_finish(struct sr_jw *w, size_t *len)
{
    /* Open containers, a dangling key or no value at all: not a document. */
    if (w->err == 0 && (w->depth != 0 || w->after_key || (w->first[0] & JW_FIRST)))
        jw_fail(w, SR_JSON_E_SYNTAX);
    if (w->err != 0)
        return w->err;
    if (w->len < w->cap)
        w->buf[w->len] = '\0';
    if (len != NULL)
        *len = w->len;
    return 0;
}
