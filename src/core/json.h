/*
 * Strict JSON (RFC 8259) reader and writer: the only JSON code in the project.
 *
 * Reader: sr_json_parse() validates a whole document and records it as a flat
 * array of tokens in caller-owned memory (no allocation). It rejects what a
 * lenient parser would accept and a peer might read differently: duplicate
 * object keys (compared after unescaping), invalid UTF-8 (overlongs,
 * surrogates, > U+10FFFF), lone \u surrogates, leading zeros, trailing
 * commas, control characters in strings, trailing bytes after the value
 * (whitespace excepted), nesting deeper than SR_JSON_MAX_DEPTH. A token array
 * too small for the document gives SR_JSON_E_LIMIT, never a partial result.
 *
 * Token layout: a value's subtree occupies [i, toks[i].end). An object's
 * members follow it as (key string token, value subtree) pairs; an array's
 * elements follow it. First child: i + 1; next sibling: toks[i].end.
 *
 * Writer: struct sr_jw appends to a caller buffer with a sticky error, so a
 * sequence of calls needs one check at the end (sr_jw_finish).
 */
#ifndef SR_CORE_JSON_H
#define SR_CORE_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/limits.h"

enum sr_json_type {
    SR_JSON_NULL = 1,
    SR_JSON_FALSE,
    SR_JSON_TRUE,
    SR_JSON_NUMBER,
    SR_JSON_STRING,
    SR_JSON_ARRAY,
    SR_JSON_OBJECT,
};

enum sr_json_err {
    SR_JSON_OK = 0,
    SR_JSON_E_SYNTAX = -1,  /* not JSON */
    SR_JSON_E_UTF8 = -2,    /* invalid UTF-8 or lone surrogate escape */
    SR_JSON_E_DEPTH = -3,   /* nested deeper than SR_JSON_MAX_DEPTH */
    SR_JSON_E_LIMIT = -4,   /* more tokens than the caller's array holds */
    SR_JSON_E_DUPKEY = -5,  /* an object repeats a key */
    SR_JSON_E_NOSPACE = -6, /* writer or decoder: output buffer too small */
    SR_JSON_E_TYPE = -7,    /* accessor: value has another type / out of range */
};

struct sr_json_tok {
    uint32_t type;  /* enum sr_json_type */
    uint32_t start; /* byte offset; strings: first byte after the opening quote */
    uint32_t len;   /* raw byte length; strings: escaped content without quotes */
    uint32_t end;   /* index one past the last token of this value's subtree */
    uint32_t count; /* arrays: elements; objects: members; otherwise 0 */
};

struct sr_json_doc {
    const char *buf; /* borrowed: the parsed text, must outlive the doc */
    size_t len;
    struct sr_json_tok *toks; /* borrowed: caller's token array */
    uint32_t ntoks;           /* tokens in use; toks[0] is the root */
};

struct sr_json_error {
    int code;        /* enum sr_json_err */
    size_t offset;   /* byte offset where the problem was found */
    const char *msg; /* static English text, e.g. "duplicate object key" */
};

/*
 * Parse buf[0..len) into toks[0..cap). On success returns 0 and fills doc;
 * on failure returns a negative enum sr_json_err and fills *err (err may be
 * NULL). Documents larger than UINT32_MAX bytes are refused (E_LIMIT).
 * Work is O(len log len) in the worst case, including duplicate detection.
 */
int sr_json_parse(struct sr_json_doc *doc, const char *buf, size_t len, struct sr_json_tok *toks,
                  uint32_t cap, struct sr_json_error *err);

/* Value index of member `key` (key given unescaped) in object `obj`, or -1. */
int32_t sr_json_obj_get(const struct sr_json_doc *doc, uint32_t obj, const char *key,
                        size_t keylen);

/* True when string token idx, unescaped, equals s[0..n). */
bool sr_json_str_eq(const struct sr_json_doc *doc, uint32_t idx, const char *s, size_t n);

/*
 * Unescape string token idx into out[0..cap) as UTF-8 (not NUL-terminated,
 * though a NUL is appended when room remains). *outlen gets the length.
 * Returns 0, SR_JSON_E_TYPE for a non-string, SR_JSON_E_NOSPACE if too small.
 */
int sr_json_str_decode(const struct sr_json_doc *doc, uint32_t idx, char *out, size_t cap,
                       size_t *outlen);

/* Integer value of number token idx (no fraction/exponent, fits int64). */
int sr_json_int64(const struct sr_json_doc *doc, uint32_t idx, int64_t *out);

/* Writer. */
struct sr_jw {
    char *buf;
    size_t cap;
    size_t len;
    int err;                              /* sticky: 0 or SR_JSON_E_* */
    uint32_t depth;                       /* open containers */
    uint8_t first[SR_JSON_MAX_DEPTH + 1]; /* next item is the first in its container */
    uint8_t after_key;                    /* a key was just written */
};

void sr_jw_init(struct sr_jw *w, char *buf, size_t cap);
void sr_jw_obj_begin(struct sr_jw *w);
void sr_jw_obj_end(struct sr_jw *w);
void sr_jw_arr_begin(struct sr_jw *w);
void sr_jw_arr_end(struct sr_jw *w);
/* Member key; the next call writes its value. Keys are escaped like strings. */
void sr_jw_key(struct sr_jw *w, const char *k);
/* String value from s[0..n): escaped; invalid UTF-8 sets err (E_UTF8). */
void sr_jw_str(struct sr_jw *w, const char *s, size_t n);
void sr_jw_cstr(struct sr_jw *w, const char *s);
void sr_jw_int(struct sr_jw *w, int64_t v);
void sr_jw_bool(struct sr_jw *w, bool v);
void sr_jw_null(struct sr_jw *w);
/* Already-valid JSON text inserted as one value (caller guarantees validity). */
void sr_jw_raw(struct sr_jw *w, const char *json, size_t n);
/* 0 and *len (may be NULL) when the document is complete and fit; else the error. Appends a NUL
 * when room remains. */
int sr_jw_finish(struct sr_jw *w, size_t *len);

#endif
