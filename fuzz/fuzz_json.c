/*
 * libFuzzer harness for the strict JSON reader and the writer (src/core/json.c).
 *
 * Each input is parsed from an exact-size copy, so AddressSanitizer sees any
 * read past the end. A rejected input must carry a coherent error. An
 * accepted one must have a well-formed token tree; every string is decoded,
 * compared with sr_json_str_eq, written alone through the writer and read
 * back unchanged; every key must be found by sr_json_obj_get at its own
 * value (the reader refused duplicates); and the whole document, re-written
 * through the writer, must parse again to the same tree.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

#define FUZZ_TOKS 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sr_json_tok toks[FUZZ_TOKS];
static struct sr_json_tok toks2[FUZZ_TOKS];

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* The tree invariants of the token layout documented in json.h. */
static void check_tree(const struct sr_json_doc *doc)
{
    check(doc->ntoks >= 1 && doc->toks[0].end == doc->ntoks);
    for (uint32_t i = 0; i < doc->ntoks; i++) {
        const struct sr_json_tok *t = &doc->toks[i];
        uint32_t n = 0;

        check(t->end > i && t->end <= doc->ntoks);
        check((size_t)t->start + t->len <= doc->len);
        check(t->type >= SR_JSON_NULL && t->type <= SR_JSON_OBJECT);
        if (t->type != SR_JSON_ARRAY && t->type != SR_JSON_OBJECT) {
            check(t->end == i + 1 && t->count == 0);
            continue;
        }
        /* Children tile the subtree exactly. */
        for (uint32_t k = i + 1; k < t->end; k = doc->toks[k].end) {
            check(doc->toks[k].end <= t->end);
            if (t->type == SR_JSON_OBJECT) {
                check(doc->toks[k].type == SR_JSON_STRING);
                k = doc->toks[k].end;
                check(k < t->end);
            }
            n++;
        }
        check(n == t->count);
    }
}

/* Decode string token idx into a fresh buffer and store its length in *len. */
static char *decode(const struct sr_json_doc *doc, uint32_t idx, size_t *len)
{
    size_t cap = doc->toks[idx].len + 1;
    char *out = malloc(cap);

    check(out != NULL);
    check(sr_json_str_decode(doc, idx, out, cap, len) == 0);
    check(*len <= doc->toks[idx].len);
    if (*len > 0)
        check(sr_json_str_decode(doc, idx, out, *len - 1, len) == SR_JSON_E_NOSPACE);
    check(sr_json_str_decode(doc, idx, out, cap, len) == 0);
    return out;
}

/* One string through the writer and back through the reader. */
static void check_string(const struct sr_json_doc *doc, uint32_t idx)
{
    size_t len;
    char *s = decode(doc, idx, &len);
    size_t cap = len * 6 + 8;
    char *w = malloc(cap);
    struct sr_jw jw;
    struct sr_json_doc back;
    size_t wl;
    size_t bl;
    char *b;

    check(w != NULL);
    check(sr_json_str_eq(doc, idx, s, len));
    if (len > 0)
        check(!sr_json_str_eq(doc, idx, s, len - 1));
    sr_jw_init(&jw, w, cap);
    sr_jw_str(&jw, s, len);
    check(sr_jw_finish(&jw, &wl) == 0);
    check(sr_json_parse(&back, w, wl, toks2, FUZZ_TOKS, NULL) == 0);
    check(back.ntoks == 1 && back.toks[0].type == SR_JSON_STRING);
    b = decode(&back, 0, &bl);
    check(bl == len && memcmp(b, s, len) == 0);
    free(b);
    free(w);
    free(s);
}

/*
 * Re-write the document through the writer. Returns false (and writes
 * nothing useful) when a key holds a NUL byte, which sr_jw_key cannot take.
 */
static bool rewrite(const struct sr_json_doc *doc, struct sr_jw *w)
{
    struct frame {
        uint32_t end;
        bool obj;
        bool key_next;
    } st[SR_JSON_MAX_DEPTH + 1];
    int d = 0;

    for (uint32_t i = 0; i < doc->ntoks; i++) {
        const struct sr_json_tok *t = &doc->toks[i];
        bool is_key;
        size_t len;
        char *s;

        while (d > 0 && i == st[d - 1].end) {
            d--;
            if (st[d].obj)
                sr_jw_obj_end(w);
            else
                sr_jw_arr_end(w);
        }
        is_key = d > 0 && st[d - 1].obj && st[d - 1].key_next;
        if (d > 0 && st[d - 1].obj)
            st[d - 1].key_next = !st[d - 1].key_next;
        if (is_key) {
            s = decode(doc, i, &len);
            if (memchr(s, '\0', len) != NULL) {
                free(s);
                return false;
            }
            sr_jw_key(w, s);
            free(s);
            continue;
        }
        switch (t->type) {
        case SR_JSON_OBJECT:
        case SR_JSON_ARRAY:
            check(d <= SR_JSON_MAX_DEPTH);
            st[d].end = t->end;
            st[d].obj = t->type == SR_JSON_OBJECT;
            st[d].key_next = true;
            d++;
            if (t->type == SR_JSON_OBJECT)
                sr_jw_obj_begin(w);
            else
                sr_jw_arr_begin(w);
            break;
        case SR_JSON_STRING:
            s = decode(doc, i, &len);
            sr_jw_str(w, s, len);
            free(s);
            break;
        case SR_JSON_NUMBER:
            sr_jw_raw(w, doc->buf + t->start, t->len);
            break;
        case SR_JSON_TRUE:
            sr_jw_bool(w, true);
            break;
        case SR_JSON_FALSE:
            sr_jw_bool(w, false);
            break;
        default:
            sr_jw_null(w);
            break;
        }
    }
    while (d > 0) {
        d--;
        if (st[d].obj)
            sr_jw_obj_end(w);
        else
            sr_jw_arr_end(w);
    }
    return true;
}

static void check_same(const struct sr_json_doc *a, const struct sr_json_doc *b)
{
    check(a->ntoks == b->ntoks);
    for (uint32_t i = 0; i < a->ntoks; i++) {
        const struct sr_json_tok *x = &a->toks[i];
        const struct sr_json_tok *y = &b->toks[i];

        check(x->type == y->type && x->end == y->end && x->count == y->count);
        if (x->type == SR_JSON_NUMBER) {
            check(x->len == y->len && memcmp(a->buf + x->start, b->buf + y->start, x->len) == 0);
        } else if (x->type == SR_JSON_STRING) {
            size_t xl;
            size_t yl;
            char *xs = decode(a, i, &xl);
            char *ys = decode(b, i, &yl);

            check(xl == yl && memcmp(xs, ys, xl) == 0);
            free(xs);
            free(ys);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    struct sr_json_doc doc;
    struct sr_json_error err = {0, 0, NULL};
    int rc;

    check(buf != NULL);
    memcpy(buf, data, size);
    rc = sr_json_parse(&doc, buf, size, toks, FUZZ_TOKS, &err);
    if (rc != 0) {
        check(rc < 0 && rc >= SR_JSON_E_DUPKEY && err.code == rc);
        check(err.msg != NULL && err.offset <= size && doc.ntoks == 0);
        free(buf);
        return 0;
    }
    check_tree(&doc);

    for (uint32_t i = 0; i < doc.ntoks; i++) {
        const struct sr_json_tok *t = &doc.toks[i];
        int64_t v;

        if (t->type == SR_JSON_STRING) {
            check_string(&doc, i);
        } else if (t->type == SR_JSON_NUMBER) {
            rc = sr_json_int64(&doc, i, &v);
            check(rc == 0 || rc == SR_JSON_E_TYPE);
        } else if (t->type == SR_JSON_OBJECT) {
            /* Keys are unique, so looking each one up finds its own value. */
            for (uint32_t k = i + 1; k < t->end; k = doc.toks[k + 1].end) {
                size_t len;
                char *key = decode(&doc, k, &len);

                check(sr_json_obj_get(&doc, i, key, len) == (int32_t)(k + 1));
                free(key);
            }
        } else {
            check(sr_json_int64(&doc, i, &v) == SR_JSON_E_TYPE);
        }
    }

    {
        size_t cap = 2 * size + 64;
        char *out = malloc(cap);
        struct sr_jw w;
        struct sr_json_doc back;
        size_t n;

        check(out != NULL);
        sr_jw_init(&w, out, cap);
        if (rewrite(&doc, &w)) {
            check(sr_jw_finish(&w, &n) == 0);
            check(n <= size);
            check(sr_json_parse(&back, out, n, toks2, FUZZ_TOKS, NULL) == 0);
            check_same(&doc, &back);
        }
        free(out);
    }
    free(buf);
    return 0;
}
