/*
 * Unit tests for the strict JSON reader and the writer.
 *
 * The reader is a security boundary (the edge and Serena must read a message
 * the same way), so these tests pin both what it accepts and, mostly, what it
 * refuses: cases in the spirit of JSONTestSuite's y_ and n_ files, duplicate
 * keys in every escaped spelling, UTF-8 edge cases, depth limits, the token
 * layout, and the cost of duplicate detection on very large objects. The
 * writer is checked for escaping, sticky errors and a round trip through
 * the reader.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "core/json.h"

#define NTOKS 4096

static struct sr_json_tok toks[NTOKS];

static int parse_n(const char *s, size_t n, struct sr_json_doc *doc, struct sr_json_error *err)
{
    return sr_json_parse(doc, s, n, toks, NTOKS, err);
}

static int parse(const char *s)
{
    struct sr_json_doc doc;
    struct sr_json_error err;

    return parse_n(s, strlen(s), &doc, &err);
}

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_accepts(void **state)
{
    static const char *const ok[] = {
        "[]",
        "{}",
        " [1] ",
        " \t\r\n[ \t\r\n1 \t\r\n, 2 ] \t\r\n",
        "\"a\"",
        "\"\"",
        "0",
        "-0",
        "123",
        "-123",
        "1.5",
        "-0.0",
        "0e0",
        "1E-2",
        "1e+2",
        "-0.0e0",
        "1.5e10",
        "123456789012345678901234567890",
        "1e999999",
        "true",
        "false",
        "null",
        "[null,true,false]",
        "[[]]",
        "[{}]",
        "{\"a\":{\"b\":[1,2,{\"c\":null}]}}",
        "{\"a\":1,\"A\":1}",
        "{\"\":0}",
        "{\"a\":1,\"a \":2}",
        "{\"a\":1,\"a\\u0000\":2}",
        "[\"\\u0000\"]",
        "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
        "[\"\\uD83D\\uDE00\"]",
        "[\"\\ud83d\\ude00\"]",
        "[\"\\uDBFF\\uDFFF\"]",
        "[\"\\uFFFF\"]",
        "[\"\\u00e9\"]",
        "[\"\xc3\xa9\"]",         /* U+00E9 */
        "[\"\xe2\x82\xac\"]",     /* U+20AC */
        "[\"\xef\xbf\xbf\"]",     /* U+FFFF, a noncharacter but valid UTF-8 */
        "[\"\xf0\x9f\x98\x80\"]", /* U+1F600 */
        "[\"\xf4\x8f\xbf\xbf\"]", /* U+10FFFF, the last code point */
        "[\"\xed\x9f\xbf\"]",     /* U+D7FF, just below the surrogates */
        "[\"\xee\x80\x80\"]",     /* U+E000, just above them */
        "[\"\x7f\"]",             /* DEL needs no escape */
        "[\"/\"]",
        ("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
         "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"c\",\"version\":\"1\"}}}"),
        "[1,-1,0.5,1e1,1E1,1e-1,1.0e+1]",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int rc = parse(ok[i]);

        if (rc != 0)
            fail_msg("rejected valid document %zu: %s (rc %d)", i, ok[i], rc);
    }
}

struct reject_case {
    const char *doc;
    size_t len; /* 0: strlen */
    int code;
};

static void test_rejects(void **state)
{
    static const struct reject_case bad[] = {
        {"", 0, SR_JSON_E_SYNTAX},
        {" ", 0, SR_JSON_E_SYNTAX},
        {"[", 0, SR_JSON_E_SYNTAX},
        {"]", 0, SR_JSON_E_SYNTAX},
        {"{", 0, SR_JSON_E_SYNTAX},
        {"[1,]", 0, SR_JSON_E_SYNTAX},
        {"[,1]", 0, SR_JSON_E_SYNTAX},
        {"[1,,2]", 0, SR_JSON_E_SYNTAX},
        {"[1 2]", 0, SR_JSON_E_SYNTAX},
        {"[]]", 0, SR_JSON_E_SYNTAX},
        {"[[]", 0, SR_JSON_E_SYNTAX},
        {"[}", 0, SR_JSON_E_SYNTAX},
        {"{]", 0, SR_JSON_E_SYNTAX},
        {"{\"a\":1,}", 0, SR_JSON_E_SYNTAX},
        {"{,}", 0, SR_JSON_E_SYNTAX},
        {"{\"a\"}", 0, SR_JSON_E_SYNTAX},
        {"{\"a\":}", 0, SR_JSON_E_SYNTAX},
        {"{\"a\" 1}", 0, SR_JSON_E_SYNTAX},
        {"{\"a\":1 \"b\":2}", 0, SR_JSON_E_SYNTAX},
        {"{\"a\"::1}", 0, SR_JSON_E_SYNTAX},
        {"{a:1}", 0, SR_JSON_E_SYNTAX},
        {"{'a':1}", 0, SR_JSON_E_SYNTAX},
        {"{1:1}", 0, SR_JSON_E_SYNTAX},
        {"{null:1}", 0, SR_JSON_E_SYNTAX},
        {"['a']", 0, SR_JSON_E_SYNTAX},
        /* Numbers. */
        {"01", 0, SR_JSON_E_SYNTAX},
        {"[01]", 0, SR_JSON_E_SYNTAX},
        {"[-01]", 0, SR_JSON_E_SYNTAX},
        {"[00]", 0, SR_JSON_E_SYNTAX},
        {"[+1]", 0, SR_JSON_E_SYNTAX},
        {"[.5]", 0, SR_JSON_E_SYNTAX},
        {"[1.]", 0, SR_JSON_E_SYNTAX},
        {"[1.e1]", 0, SR_JSON_E_SYNTAX},
        {"[1e]", 0, SR_JSON_E_SYNTAX},
        {"[1e+]", 0, SR_JSON_E_SYNTAX},
        {"[1E-]", 0, SR_JSON_E_SYNTAX},
        {"[1e1.5]", 0, SR_JSON_E_SYNTAX},
        {"[-]", 0, SR_JSON_E_SYNTAX},
        {"-", 0, SR_JSON_E_SYNTAX},
        {"[- 1]", 0, SR_JSON_E_SYNTAX},
        {"[--1]", 0, SR_JSON_E_SYNTAX},
        {"[0x1]", 0, SR_JSON_E_SYNTAX},
        {"[1_000]", 0, SR_JSON_E_SYNTAX},
        {"[Infinity]", 0, SR_JSON_E_SYNTAX},
        {"[-Infinity]", 0, SR_JSON_E_SYNTAX},
        {"[NaN]", 0, SR_JSON_E_SYNTAX},
        {"1.5.", 0, SR_JSON_E_SYNTAX},
        /* Literals. */
        {"[tru]", 0, SR_JSON_E_SYNTAX},
        {"tru", 0, SR_JSON_E_SYNTAX},
        {"[True]", 0, SR_JSON_E_SYNTAX},
        {"[nul]", 0, SR_JSON_E_SYNTAX},
        {"[NULL]", 0, SR_JSON_E_SYNTAX},
        {"[fals]", 0, SR_JSON_E_SYNTAX},
        {"truex", 0, SR_JSON_E_SYNTAX},
        {"[undefined]", 0, SR_JSON_E_SYNTAX},
        /* Trailing data and comments. */
        {"[1] [2]", 0, SR_JSON_E_SYNTAX},
        {"[1]x", 0, SR_JSON_E_SYNTAX},
        {"1 2", 0, SR_JSON_E_SYNTAX},
        {"{}{}", 0, SR_JSON_E_SYNTAX},
        {"[]\0", 3, SR_JSON_E_SYNTAX},
        {"/* c */[]", 0, SR_JSON_E_SYNTAX},
        {"[]// c", 0, SR_JSON_E_SYNTAX},
        /* Whitespace other than space, tab, CR and LF. */
        {"\f[]", 0, SR_JSON_E_SYNTAX},
        {"[\v]", 0, SR_JSON_E_SYNTAX},
        {"\xc2\xa0[]", 0, SR_JSON_E_SYNTAX},
        {"\xef\xbb\xbf[]", 0, SR_JSON_E_SYNTAX},
        {"[\xc3\xa9]", 0, SR_JSON_E_SYNTAX},
        /* Strings. */
        {"\"a", 0, SR_JSON_E_SYNTAX},
        {"[\"a]", 0, SR_JSON_E_SYNTAX},
        {"\"\\", 0, SR_JSON_E_SYNTAX},
        {"[\"\\x\"]", 0, SR_JSON_E_SYNTAX},
        {"[\"\\a\"]", 0, SR_JSON_E_SYNTAX},
        {"[\"\\'\"]", 0, SR_JSON_E_SYNTAX},
        {"[\"\\U0041\"]", 0, SR_JSON_E_SYNTAX},
        {"[\"\\u12\"]", 0, SR_JSON_E_SYNTAX},
        {"[\"\\u12G4\"]", 0, SR_JSON_E_SYNTAX},
        {"[\"\\u\"]", 0, SR_JSON_E_SYNTAX},
        {"\"\\u00", 0, SR_JSON_E_SYNTAX},
        {"[\"\x01\"]", 0, SR_JSON_E_SYNTAX},
        {"[\"\x1f\"]", 0, SR_JSON_E_SYNTAX},
        {"[\"\t\"]", 0, SR_JSON_E_SYNTAX},
        {"[\"\n\"]", 0, SR_JSON_E_SYNTAX},
        {"[\"\0\"]", 5, SR_JSON_E_SYNTAX},
        /* Lone and mismatched surrogate escapes. */
        {"[\"\\uD800\"]", 0, SR_JSON_E_UTF8},
        {"[\"\\uDBFF\"]", 0, SR_JSON_E_UTF8},
        {"[\"\\uDC00\"]", 0, SR_JSON_E_UTF8},
        {"[\"\\uDFFF\\uD800\"]", 0, SR_JSON_E_UTF8},
        {"[\"\\uD800\\u0041\"]", 0, SR_JSON_E_UTF8},
        {"[\"\\uD800\\uD800\"]", 0, SR_JSON_E_UTF8},
        {"[\"\\uD800\\n\"]", 0, SR_JSON_E_UTF8},
        {"[\"\\uD800x\"]", 0, SR_JSON_E_UTF8},
        {"[\"\\uD800\\uDC0\"]", 0, SR_JSON_E_SYNTAX},
        /* Invalid UTF-8 inside strings. */
        {"[\"\x80\"]", 0, SR_JSON_E_UTF8},
        {"[\"\xbf\"]", 0, SR_JSON_E_UTF8},
        {"[\"\xc0\x80\"]", 0, SR_JSON_E_UTF8},         /* overlong NUL */
        {"[\"\xc1\xbf\"]", 0, SR_JSON_E_UTF8},         /* overlong U+007F */
        {"[\"\xe0\x80\x80\"]", 0, SR_JSON_E_UTF8},     /* overlong */
        {"[\"\xe0\x9f\xbf\"]", 0, SR_JSON_E_UTF8},     /* overlong U+07FF */
        {"[\"\xed\xa0\x80\"]", 0, SR_JSON_E_UTF8},     /* encoded U+D800 */
        {"[\"\xed\xbf\xbf\"]", 0, SR_JSON_E_UTF8},     /* encoded U+DFFF */
        {"[\"\xf0\x80\x80\x80\"]", 0, SR_JSON_E_UTF8}, /* overlong */
        {"[\"\xf0\x8f\xbf\xbf\"]", 0, SR_JSON_E_UTF8}, /* overlong U+FFFF */
        {"[\"\xf4\x90\x80\x80\"]", 0, SR_JSON_E_UTF8}, /* U+110000 */
        {"[\"\xf5\x80\x80\x80\"]", 0, SR_JSON_E_UTF8},
        {"[\"\xf8\x88\x80\x80\x80\"]", 0, SR_JSON_E_UTF8},
        {"[\"\xfe\"]", 0, SR_JSON_E_UTF8},
        {"[\"\xff\"]", 0, SR_JSON_E_UTF8},
        {"[\"\xe2\x82\"]", 0, SR_JSON_E_UTF8}, /* truncated */
        {"[\"\xc3\"]", 0, SR_JSON_E_UTF8},
        {"[\"\xc3\x28\"]", 0, SR_JSON_E_UTF8},
        {"[\"\xe2\x28\xa1\"]", 0, SR_JSON_E_UTF8},
        {"[\"\xf0\x9f\x98\"]", 0, SR_JSON_E_UTF8},
        {"\"\xf0\x9f\x98", 0, SR_JSON_E_UTF8},
        /* Duplicate keys. */
        {"{\"a\":1,\"a\":2}", 0, SR_JSON_E_DUPKEY},
        {"{\"a\":1,\"b\":2,\"a\":3}", 0, SR_JSON_E_DUPKEY},
        {"{\"\":1,\"\":2}", 0, SR_JSON_E_DUPKEY},
        {"{\"a\":1,\"\\u0061\":2}", 0, SR_JSON_E_DUPKEY},
        {"{\"\\u0061\":1,\"a\":2}", 0, SR_JSON_E_DUPKEY},
        {"{\"\\u00e9\":1,\"\xc3\xa9\":2}", 0, SR_JSON_E_DUPKEY},
        {"{\"\\u00E9\":1,\"\\u00e9\":2}", 0, SR_JSON_E_DUPKEY},
        {"{\"\\uD83D\\uDE00\":1,\"\xf0\x9f\x98\x80\":2}", 0, SR_JSON_E_DUPKEY},
        {"{\"\\/\":1,\"/\":2}", 0, SR_JSON_E_DUPKEY},
        {"{\"\\n\":1,\"\\u000a\":2}", 0, SR_JSON_E_DUPKEY},
        {"{\"\\\"\":1,\"\\u0022\":2}", 0, SR_JSON_E_DUPKEY},
        {"{\"method\":\"a\",\"params\":{},\"method\":\"b\"}", 0, SR_JSON_E_DUPKEY},
        {"{\"x\":{\"a\":1,\"a\":2}}", 0, SR_JSON_E_DUPKEY},
        {"[{\"a\":[{\"b\":1,\"b\":1}]}]", 0, SR_JSON_E_DUPKEY},
        {"{\"x\":{},\"x\":{}}", 0, SR_JSON_E_DUPKEY},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sr_json_doc doc;
        struct sr_json_error err = {0, 0, NULL};
        size_t n = bad[i].len ? bad[i].len : strlen(bad[i].doc);
        int rc = parse_n(bad[i].doc, n, &doc, &err);

        if (rc != bad[i].code)
            fail_msg("case %zu (%s): rc %d, want %d", i, bad[i].doc, rc, bad[i].code);
        assert_int_equal(err.code, rc);
        assert_non_null(err.msg);
        assert_true(err.offset <= n);
        assert_int_equal(doc.ntoks, 0);
    }
}

static void test_error_offsets(void **state)
{
    struct sr_json_doc doc;
    struct sr_json_error err;

    (void)state;
    assert_int_equal(parse_n("{\"a\":1,\"a\":2}", 13, &doc, &err), SR_JSON_E_DUPKEY);
    assert_int_equal(err.offset, 7);
    assert_string_equal(err.msg, "duplicate object key");
    assert_int_equal(parse_n("[1,2,x]", 7, &doc, &err), SR_JSON_E_SYNTAX);
    assert_int_equal(err.offset, 5);
    assert_int_equal(parse_n("[\"ab\x80\"]", 7, &doc, &err), SR_JSON_E_UTF8);
    assert_int_equal(err.offset, 4);
    assert_int_equal(parse_n("[1]  x", 6, &doc, &err), SR_JSON_E_SYNTAX);
    assert_int_equal(err.offset, 5);
    assert_int_equal(parse_n("[\"\\uD800\"]", 10, &doc, &err), SR_JSON_E_UTF8);
    assert_int_equal(err.offset, 2);
    assert_int_equal(parse_n("[1]", 3, &doc, &err), 0);
    assert_int_equal(err.code, 0);
    /* The error argument is optional. */
    assert_int_equal(parse_n("[", 1, &doc, NULL), SR_JSON_E_SYNTAX);
}

/* Duplicates that only the sorted path (objects of more than eight members) sees. */
static void test_dup_sorted_path(void **state)
{
    char buf[2048];
    size_t n;

    (void)state;
    for (int members = 9; members <= 40; members += 31) {
        for (int dup_at = 0; dup_at < members; dup_at++) {
            n = 0;
            buf[n++] = '{';
            for (int i = 0; i < members; i++) {
                if (i == dup_at)
                    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"\\u006b%d\":%d",
                                          i ? "," : "", 0, i);
                else
                    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"k%d\":%d", i ? "," : "", i,
                                          i);
            }
            buf[n++] = '}';
            buf[n] = '\0';
            /* Member dup_at spells "k0" with an escape; it duplicates member 0 unless it is 0. */
            assert_int_equal(parse(buf), dup_at == 0 ? 0 : SR_JSON_E_DUPKEY);
        }
    }
    /* Keys that share long prefixes and differ only in the last byte are distinct. */
    n = 0;
    buf[n++] = '{';
    for (int i = 0; i < 20; i++)
        n +=
            (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"%s%c\":0", i ? "," : "",
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 'A' + i);
    buf[n++] = '}';
    buf[n] = '\0';
    assert_int_equal(parse(buf), 0);
    /* Prefix keys: "a" < "a\u0000" < "aa" are all distinct, in either order. */
    assert_int_equal(parse("{\"aa\":0,\"a\\u0000\":0,\"a\":0,\"b\":0,\"c\":0,\"d\":0,\"e\":0,\"f\":"
                           "0,\"g\":0,\"h\":0}"),
                     0);
    /* Same keys in sibling and nested objects are fine. */
    assert_int_equal(parse("[{\"a\":1},{\"a\":2}]"), 0);
    assert_int_equal(parse("{\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":1}}"), 0);
}

/* Builds {"k0000000":0,...} with `members` distinct keys; optionally repeats the first at the end.
 */
static char *build_big_object(uint32_t members, bool dup_at_end, size_t *len)
{
    size_t cap = (size_t)members * 16 + 64;
    char *buf = malloc(cap);
    size_t n = 0;

    assert_non_null(buf);
    buf[n++] = '{';
    for (uint32_t i = 0; i < members; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s\"%x\":0", i ? "," : "", i * 2654435761u);
    if (dup_at_end)
        n += (size_t)snprintf(buf + n, cap - n, ",\"%x\":1", 0u);
    buf[n++] = '}';
    *len = n;
    return buf;
}

static void big_object_case(uint32_t members, bool dup, int want, double max_seconds)
{
    size_t len;
    char *buf = build_big_object(members, dup, &len);
    uint32_t cap = members * 2 + 2 + members; /* members, plus room for the sort */
    struct sr_json_tok *t = malloc((size_t)cap * sizeof(*t));
    struct sr_json_doc doc;
    struct sr_json_error err;
    double t0;
    double dt;
    int rc;

    assert_non_null(t);
    t0 = now_seconds();
    rc = sr_json_parse(&doc, buf, len, t, cap, &err);
    dt = now_seconds() - t0;
    fprintf(stderr, "# %u keys, %zu bytes%s: rc %d in %.3f s\n", members, len,
            dup ? " (duplicate at end)" : "", rc, dt);
    assert_int_equal(rc, want);
    if (want == 0) {
        assert_int_equal(doc.toks[0].count, members);
        assert_int_equal(doc.ntoks, 2 * members + 1);
    } else {
        assert_int_equal(err.offset, len - 6); /* the quote of the repeated key */
    }
    assert_true(dt < max_seconds);
    free(t);
    free(buf);
}

static void test_big_object(void **state)
{
    (void)state;
    big_object_case(200000, false, 0, 5.0);
    big_object_case(200000, true, SR_JSON_E_DUPKEY, 5.0);
}

/* About 4 MiB with half a million keys: must stay far from quadratic. */
static void test_huge_object(void **state)
{
    (void)state;
    big_object_case(500000, false, 0, 10.0);
    big_object_case(500000, true, SR_JSON_E_DUPKEY, 10.0);
}

static void test_sort_needs_room(void **state)
{
    /* 20 members: 41 tokens, and the sort needs 2 * 20 indices = 8 spare tokens. */
    char buf[512];
    size_t n = 0;
    struct sr_json_tok t[64];
    struct sr_json_doc doc;
    struct sr_json_error err;

    (void)state;
    buf[n++] = '{';
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"k%d\":%d", i ? "," : "", i, i);
    buf[n++] = '}';
    assert_int_equal(sr_json_parse(&doc, buf, n, t, 41, &err), SR_JSON_E_LIMIT);
    assert_int_equal(sr_json_parse(&doc, buf, n, t, 48, &err), SR_JSON_E_LIMIT);
    assert_int_equal(sr_json_parse(&doc, buf, n, t, 49, &err), 0);
    assert_int_equal(doc.ntoks, 41);
    /* Small objects need no spare room at all. */
    assert_int_equal(sr_json_parse(&doc, "{\"a\":1,\"b\":2}", 13, t, 5, &err), 0);
    assert_int_equal(sr_json_parse(&doc, "{\"a\":1,\"b\":2}", 13, t, 4, &err), SR_JSON_E_LIMIT);
    assert_int_equal(sr_json_parse(&doc, "1", 1, t, 0, &err), SR_JSON_E_LIMIT);
    assert_int_equal(sr_json_parse(&doc, "1", 1, NULL, 0, &err), SR_JSON_E_LIMIT);
}

static void test_depth(void **state)
{
    char buf[512];
    struct sr_json_doc doc;
    struct sr_json_error err;
    size_t n;

    (void)state;
    /* Exactly SR_JSON_MAX_DEPTH nested arrays: accepted. */
    n = 0;
    for (int i = 0; i < SR_JSON_MAX_DEPTH; i++)
        buf[n++] = '[';
    for (int i = 0; i < SR_JSON_MAX_DEPTH; i++)
        buf[n++] = ']';
    assert_int_equal(parse_n(buf, n, &doc, &err), 0);
    assert_int_equal(doc.ntoks, SR_JSON_MAX_DEPTH);
    /* One more: refused at the innermost bracket. */
    n = 0;
    for (int i = 0; i <= SR_JSON_MAX_DEPTH; i++)
        buf[n++] = '[';
    for (int i = 0; i <= SR_JSON_MAX_DEPTH; i++)
        buf[n++] = ']';
    assert_int_equal(parse_n(buf, n, &doc, &err), SR_JSON_E_DEPTH);
    assert_int_equal(err.offset, SR_JSON_MAX_DEPTH);
    /* Objects count the same way; scalars at the deepest level are fine. */
    n = 0;
    for (int i = 0; i < SR_JSON_MAX_DEPTH; i++) {
        memcpy(buf + n, "{\"a\":", 5);
        n += 5;
    }
    buf[n++] = '1';
    for (int i = 0; i < SR_JSON_MAX_DEPTH; i++)
        buf[n++] = '}';
    assert_int_equal(parse_n(buf, n, &doc, &err), 0);
    n = 0;
    for (int i = 0; i < SR_JSON_MAX_DEPTH; i++) {
        memcpy(buf + n, "{\"a\":", 5);
        n += 5;
    }
    buf[n++] = '[';
    buf[n++] = ']';
    for (int i = 0; i < SR_JSON_MAX_DEPTH; i++)
        buf[n++] = '}';
    assert_int_equal(parse_n(buf, n, &doc, &err), SR_JSON_E_DEPTH);
    /* Deep but unterminated input is a syntax error, not a crash. */
    memset(buf, '[', sizeof(buf));
    assert_int_equal(parse_n(buf, 40, &doc, &err), SR_JSON_E_SYNTAX);
    assert_int_equal(parse_n(buf, sizeof(buf), &doc, &err), SR_JSON_E_DEPTH);
}

static void test_token_layout(void **state)
{
    static const char s[] = "{\"a\":[1,2],\"b\":{\"c\":null},\"d\":\"x\\ny\"}";
    struct sr_json_doc doc;
    struct sr_json_error err;
    static const uint32_t type[] = {SR_JSON_OBJECT, SR_JSON_STRING, SR_JSON_ARRAY,  SR_JSON_NUMBER,
                                    SR_JSON_NUMBER, SR_JSON_STRING, SR_JSON_OBJECT, SR_JSON_STRING,
                                    SR_JSON_NULL,   SR_JSON_STRING, SR_JSON_STRING};
    static const uint32_t end[] = {11, 2, 5, 4, 5, 6, 9, 8, 9, 10, 11};
    static const uint32_t count[] = {3, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0};

    (void)state;
    assert_int_equal(parse_n(s, sizeof(s) - 1, &doc, &err), 0);
    assert_int_equal(doc.ntoks, 11);
    assert_ptr_equal(doc.buf, s);
    assert_int_equal(doc.len, sizeof(s) - 1);
    for (uint32_t i = 0; i < 11; i++) {
        assert_int_equal(doc.toks[i].type, type[i]);
        assert_int_equal(doc.toks[i].end, end[i]);
        assert_int_equal(doc.toks[i].count, count[i]);
    }
    /* Containers span their brackets; strings exclude their quotes. */
    assert_int_equal(doc.toks[0].start, 0);
    assert_int_equal(doc.toks[0].len, sizeof(s) - 1);
    assert_int_equal(doc.toks[1].start, 2);
    assert_int_equal(doc.toks[1].len, 1);
    assert_int_equal(doc.toks[2].start, 5);
    assert_int_equal(doc.toks[2].len, 5);
    assert_memory_equal(s + doc.toks[4].start, "2", doc.toks[4].len);
    assert_int_equal(doc.toks[8].len, 4);
    assert_memory_equal(s + doc.toks[10].start, "x\\ny", doc.toks[10].len);
    /* Walking siblings by end. */
    {
        uint32_t k = 1;
        int members = 0;

        while (k < doc.toks[0].end) {
            assert_int_equal(doc.toks[k].type, SR_JSON_STRING);
            k = doc.toks[k + 1].end;
            members++;
        }
        assert_int_equal(members, 3);
    }
    /* Scalars and empty containers at the root. */
    assert_int_equal(parse_n(" 42 ", 4, &doc, &err), 0);
    assert_int_equal(doc.ntoks, 1);
    assert_int_equal(doc.toks[0].start, 1);
    assert_int_equal(doc.toks[0].len, 2);
    assert_int_equal(doc.toks[0].end, 1);
    assert_int_equal(parse_n("[ ]", 3, &doc, &err), 0);
    assert_int_equal(doc.toks[0].count, 0);
    assert_int_equal(doc.toks[0].len, 3);
    /* A token array exactly the right size is enough; one less is not. */
    {
        struct sr_json_tok t[11];

        assert_int_equal(sr_json_parse(&doc, s, sizeof(s) - 1, t, 11, &err), 0);
        assert_int_equal(sr_json_parse(&doc, s, sizeof(s) - 1, t, 10, &err), SR_JSON_E_LIMIT);
        assert_int_equal(doc.ntoks, 0);
    }
}

static void test_accessors(void **state)
{
    static const char s[] =
        "{\"jsonrpc\":\"2.0\",\"id\":-42,\"m\\u0065thod\":\"tools/call\",\"params\":{\"name\":"
        "\"x\",\"arguments\":{\"t\":\"a\\\"b\\\\c\\/d\\u00e9\\uD83D\\uDE00\\n\\u0000z\"}},"
        "\"big\":9223372036854775807,\"small\":-9223372036854775808,\"over\":"
        "9223372036854775808,\"under\":-9223372036854775809,\"frac\":1.0,\"exp\":1e2,\"zero\":-0}";
    struct sr_json_doc doc;
    struct sr_json_error err;
    char out[64];
    size_t n;
    int64_t v;
    int32_t i;
    int32_t params;
    int32_t args;

    (void)state;
    assert_int_equal(parse_n(s, sizeof(s) - 1, &doc, &err), 0);
    i = sr_json_obj_get(&doc, 0, "method", 6);
    assert_true(i > 0);
    assert_true(sr_json_str_eq(&doc, (uint32_t)i, "tools/call", 10));
    assert_false(sr_json_str_eq(&doc, (uint32_t)i, "tools/cal", 9));
    assert_false(sr_json_str_eq(&doc, (uint32_t)i, "tools/calls", 11));
    assert_int_equal(sr_json_obj_get(&doc, 0, "meth", 4), -1);
    assert_int_equal(sr_json_obj_get(&doc, 0, "m\\u0065thod", 11), -1);
    assert_int_equal(sr_json_obj_get(&doc, 0, "nothing", 7), -1);
    /* Not an object, and out of range. */
    assert_int_equal(sr_json_obj_get(&doc, (uint32_t)i, "x", 1), -1);
    assert_int_equal(sr_json_obj_get(&doc, 100000, "x", 1), -1);

    i = sr_json_obj_get(&doc, 0, "id", 2);
    assert_int_equal(sr_json_int64(&doc, (uint32_t)i, &v), 0);
    assert_int_equal(v, -42);
    assert_false(sr_json_str_eq(&doc, (uint32_t)i, "-42", 3));
    assert_int_equal(sr_json_str_decode(&doc, (uint32_t)i, out, sizeof(out), &n), SR_JSON_E_TYPE);

    params = sr_json_obj_get(&doc, 0, "params", 6);
    assert_true(params > 0);
    args = sr_json_obj_get(&doc, (uint32_t)params, "arguments", 9);
    assert_true(args > 0);
    i = sr_json_obj_get(&doc, (uint32_t)args, "t", 1);
    assert_true(i > 0);
    {
        static const char want[] = "a\"b\\c/d\xc3\xa9\xf0\x9f\x98\x80\n\0z";
        size_t wl = sizeof(want) - 1;

        assert_int_equal(sr_json_str_decode(&doc, (uint32_t)i, out, sizeof(out), &n), 0);
        assert_int_equal(n, wl);
        assert_memory_equal(out, want, wl);
        assert_int_equal(out[n], '\0');
        assert_true(sr_json_str_eq(&doc, (uint32_t)i, want, wl));
        assert_false(sr_json_str_eq(&doc, (uint32_t)i, want, wl - 1));
        /* Exact fit: no NUL appended, still success; one byte less: NOSPACE. */
        memset(out, 'Q', sizeof(out));
        assert_int_equal(sr_json_str_decode(&doc, (uint32_t)i, out, wl, &n), 0);
        assert_int_equal(n, wl);
        assert_int_equal(out[wl], 'Q');
        assert_int_equal(sr_json_str_decode(&doc, (uint32_t)i, out, wl - 1, &n), SR_JSON_E_NOSPACE);
        assert_int_equal(sr_json_str_decode(&doc, (uint32_t)i, NULL, 0, &n), SR_JSON_E_NOSPACE);
    }

    i = sr_json_obj_get(&doc, 0, "big", 3);
    assert_int_equal(sr_json_int64(&doc, (uint32_t)i, &v), 0);
    assert_true(v == INT64_MAX);
    i = sr_json_obj_get(&doc, 0, "small", 5);
    assert_int_equal(sr_json_int64(&doc, (uint32_t)i, &v), 0);
    assert_true(v == INT64_MIN);
    i = sr_json_obj_get(&doc, 0, "over", 4);
    assert_int_equal(sr_json_int64(&doc, (uint32_t)i, &v), SR_JSON_E_TYPE);
    i = sr_json_obj_get(&doc, 0, "under", 5);
    assert_int_equal(sr_json_int64(&doc, (uint32_t)i, &v), SR_JSON_E_TYPE);
    i = sr_json_obj_get(&doc, 0, "frac", 4);
    assert_int_equal(sr_json_int64(&doc, (uint32_t)i, &v), SR_JSON_E_TYPE);
    i = sr_json_obj_get(&doc, 0, "exp", 3);
    assert_int_equal(sr_json_int64(&doc, (uint32_t)i, &v), SR_JSON_E_TYPE);
    i = sr_json_obj_get(&doc, 0, "zero", 4);
    assert_int_equal(sr_json_int64(&doc, (uint32_t)i, &v), 0);
    assert_true(v == 0);
    i = sr_json_obj_get(&doc, 0, "jsonrpc", 7);
    assert_int_equal(sr_json_int64(&doc, (uint32_t)i, &v), SR_JSON_E_TYPE);
    assert_int_equal(sr_json_int64(&doc, 0, &v), SR_JSON_E_TYPE);
    assert_int_equal(sr_json_int64(&doc, 100000, &v), SR_JSON_E_TYPE);
    assert_false(sr_json_str_eq(&doc, 100000, "", 0));

    /* Empty keys and values. */
    assert_int_equal(parse_n("{\"\":\"\"}", 7, &doc, &err), 0);
    i = sr_json_obj_get(&doc, 0, "", 0);
    assert_int_equal(i, 2);
    assert_true(sr_json_str_eq(&doc, 2, "", 0));
    assert_int_equal(sr_json_str_decode(&doc, 2, out, 1, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(out[0], '\0');
}

/* Writer. */

static void test_writer_basic(void **state)
{
    char buf[256];
    struct sr_jw w;
    size_t n;

    (void)state;
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "jsonrpc");
    sr_jw_cstr(&w, "2.0");
    sr_jw_key(&w, "id");
    sr_jw_int(&w, INT64_MIN);
    sr_jw_key(&w, "n");
    sr_jw_int(&w, 0);
    sr_jw_key(&w, "m");
    sr_jw_int(&w, INT64_MAX);
    sr_jw_key(&w, "a");
    sr_jw_arr_begin(&w);
    sr_jw_bool(&w, true);
    sr_jw_bool(&w, false);
    sr_jw_null(&w);
    sr_jw_arr_begin(&w);
    sr_jw_arr_end(&w);
    sr_jw_obj_begin(&w);
    sr_jw_obj_end(&w);
    sr_jw_raw(&w, "{\"x\":1}", 7);
    sr_jw_int(&w, -7);
    sr_jw_arr_end(&w);
    sr_jw_key(&w, "e");
    sr_jw_str(&w, "", 0);
    sr_jw_obj_end(&w);
    assert_int_equal(sr_jw_finish(&w, &n), 0);
    assert_string_equal(buf, "{\"jsonrpc\":\"2.0\",\"id\":-9223372036854775808,\"n\":0,\"m\":"
                             "9223372036854775807,\"a\":[true,false,null,[],{},{\"x\":1},-7],"
                             "\"e\":\"\"}");
    assert_int_equal(n, strlen(buf));
    assert_int_equal(parse(buf), 0);

    /* Scalars at the root. */
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_cstr(&w, "x");
    assert_int_equal(sr_jw_finish(&w, NULL), 0);
    assert_string_equal(buf, "\"x\"");
}

static void test_writer_escaping(void **state)
{
    char in[40];
    char buf[512];
    struct sr_jw w;
    size_t n;

    (void)state;
    for (int i = 0; i < 32; i++)
        in[i] = (char)i;
    memcpy(in + 32, "\"\\/\x7f\xc3\xa9", 6);
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_str(&w, in, 38);
    assert_int_equal(sr_jw_finish(&w, &n), 0);
    assert_string_equal(buf, "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n"
                             "\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015"
                             "\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e"
                             "\\u001f\\\"\\\\/\x7f\xc3\xa9\"");
    /* Keys are escaped too. */
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "a\"b\n");
    sr_jw_null(&w);
    sr_jw_obj_end(&w);
    assert_int_equal(sr_jw_finish(&w, &n), 0);
    assert_string_equal(buf, "{\"a\\\"b\\n\":null}");
}

static void test_writer_utf8(void **state)
{
    static const char *const bad[] = {
        "\x80", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "a\xff", "\xc3",
    };
    char buf[128];
    struct sr_jw w;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sr_jw_init(&w, buf, sizeof(buf));
        sr_jw_arr_begin(&w);
        sr_jw_str(&w, bad[i], strlen(bad[i]));
        assert_int_equal(w.err, SR_JSON_E_UTF8);
        /* Sticky: later calls change nothing. */
        size_t len = w.len;
        sr_jw_cstr(&w, "ok");
        sr_jw_arr_end(&w);
        assert_int_equal(w.len, len);
        assert_int_equal(sr_jw_finish(&w, NULL), SR_JSON_E_UTF8);
    }
    /* Bad UTF-8 in a key is refused the same way. */
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "\xc0\xaf");
    assert_int_equal(sr_jw_finish(&w, NULL), SR_JSON_E_UTF8);
    /* Valid edge code points pass. */
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_cstr(&w, "\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80");
    assert_int_equal(sr_jw_finish(&w, NULL), 0);
}

static void test_writer_nospace(void **state)
{
    char buf[64];
    struct sr_jw w;
    size_t n;

    (void)state;
    /* Exactly fitting output succeeds without a NUL; one byte less fails. */
    memset(buf, 'Q', sizeof(buf));
    sr_jw_init(&w, buf, 7);
    sr_jw_arr_begin(&w);
    sr_jw_int(&w, 12);
    sr_jw_int(&w, 3);
    sr_jw_arr_end(&w);
    assert_int_equal(sr_jw_finish(&w, &n), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(buf, "[12,3]", 6);
    assert_int_equal(buf[6], '\0');
    memset(buf, 'Q', sizeof(buf));
    sr_jw_init(&w, buf, 6);
    sr_jw_arr_begin(&w);
    sr_jw_int(&w, 12);
    sr_jw_int(&w, 3);
    sr_jw_arr_end(&w);
    assert_int_equal(sr_jw_finish(&w, &n), 0);
    assert_int_equal(buf[6], 'Q');
    sr_jw_init(&w, buf, 5);
    sr_jw_arr_begin(&w);
    sr_jw_int(&w, 12);
    sr_jw_int(&w, 3);
    assert_int_equal(w.err, 0);
    sr_jw_arr_end(&w);
    assert_int_equal(w.err, SR_JSON_E_NOSPACE);
    assert_true(w.len <= 5);
    /* Sticky: a later small write does not succeed into the remaining space. */
    sr_jw_init(&w, buf, 4);
    sr_jw_cstr(&w, "abcdef");
    assert_int_equal(w.err, SR_JSON_E_NOSPACE);
    assert_int_equal(sr_jw_finish(&w, NULL), SR_JSON_E_NOSPACE);
    sr_jw_init(&w, NULL, 0);
    sr_jw_null(&w);
    assert_int_equal(sr_jw_finish(&w, NULL), SR_JSON_E_NOSPACE);
}

static void test_writer_misuse(void **state)
{
    char buf[1024];
    struct sr_jw w;

    (void)state;
    /* Open containers at finish. */
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_obj_begin(&w);
    assert_int_equal(sr_jw_finish(&w, NULL), SR_JSON_E_SYNTAX);
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_arr_begin(&w);
    sr_jw_arr_begin(&w);
    sr_jw_arr_end(&w);
    assert_int_equal(sr_jw_finish(&w, NULL), SR_JSON_E_SYNTAX);
    /* Nothing written. */
    sr_jw_init(&w, buf, sizeof(buf));
    assert_int_equal(sr_jw_finish(&w, NULL), SR_JSON_E_SYNTAX);
    /* A key with no value. */
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "a");
    sr_jw_obj_end(&w);
    assert_int_equal(sr_jw_finish(&w, NULL), SR_JSON_E_SYNTAX);
    /* A value with no key. */
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_obj_begin(&w);
    sr_jw_int(&w, 1);
    assert_int_equal(w.err, SR_JSON_E_SYNTAX);
    /* Two keys in a row, a key in an array, a key at the root. */
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "a");
    sr_jw_key(&w, "b");
    assert_int_equal(w.err, SR_JSON_E_SYNTAX);
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_arr_begin(&w);
    sr_jw_key(&w, "a");
    assert_int_equal(w.err, SR_JSON_E_SYNTAX);
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_key(&w, "a");
    assert_int_equal(w.err, SR_JSON_E_SYNTAX);
    /* Mismatched closers and closing too much. */
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_arr_begin(&w);
    sr_jw_obj_end(&w);
    assert_int_equal(w.err, SR_JSON_E_SYNTAX);
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_arr_end(&w);
    assert_int_equal(w.err, SR_JSON_E_SYNTAX);
    /* Two roots. */
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_int(&w, 1);
    sr_jw_int(&w, 2);
    assert_int_equal(sr_jw_finish(&w, NULL), SR_JSON_E_SYNTAX);
    /* NULL strings. */
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_cstr(&w, NULL);
    assert_int_equal(sr_jw_finish(&w, NULL), SR_JSON_E_SYNTAX);
    /* Depth: SR_JSON_MAX_DEPTH containers fit, one more does not. */
    sr_jw_init(&w, buf, sizeof(buf));
    for (int i = 0; i < SR_JSON_MAX_DEPTH; i++)
        sr_jw_arr_begin(&w);
    for (int i = 0; i < SR_JSON_MAX_DEPTH; i++)
        sr_jw_arr_end(&w);
    assert_int_equal(sr_jw_finish(&w, NULL), 0);
    assert_int_equal(parse(buf), 0);
    sr_jw_init(&w, buf, sizeof(buf));
    for (int i = 0; i <= SR_JSON_MAX_DEPTH; i++) {
        sr_jw_obj_begin(&w);
        sr_jw_key(&w, "k");
    }
    assert_int_equal(w.err, SR_JSON_E_DEPTH);
    assert_int_equal(sr_jw_finish(&w, NULL), SR_JSON_E_DEPTH);
}

/* Every string the writer produces reads back, decoded, as the original bytes. */
static void test_writer_round_trip(void **state)
{
    static const char *const strs[] = {
        "",
        "plain",
        "\"quoted\" and \\backslashed\\",
        "line\nbreak\r\ttab\b\f",
        "\x01\x1f\x7f",
        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf",
        "</script>",
    };
    char buf[1024];
    char out[256];
    struct sr_jw w;
    struct sr_json_doc doc;
    struct sr_json_error err;
    size_t n;
    size_t nstr = sizeof(strs) / sizeof(strs[0]);

    (void)state;
    sr_jw_init(&w, buf, sizeof(buf));
    sr_jw_obj_begin(&w);
    sr_jw_key(&w, "list");
    sr_jw_arr_begin(&w);
    for (size_t i = 0; i < nstr; i++)
        sr_jw_cstr(&w, strs[i]);
    /* With an embedded NUL, which only the length-taking call can write. */
    sr_jw_str(&w, "a\0b", 3);
    sr_jw_arr_end(&w);
    sr_jw_key(&w, "\xe2\x82\xac\n");
    sr_jw_int(&w, -5);
    sr_jw_obj_end(&w);
    assert_int_equal(sr_jw_finish(&w, &n), 0);

    assert_int_equal(parse_n(buf, n, &doc, &err), 0);
    {
        int32_t list = sr_json_obj_get(&doc, 0, "list", 4);
        int32_t euro = sr_json_obj_get(&doc, 0, "\xe2\x82\xac\n", 4);
        uint32_t k;
        int64_t v;
        size_t len;

        assert_true(list > 0);
        assert_int_equal(doc.toks[list].count, nstr + 1);
        k = (uint32_t)list + 1;
        for (size_t i = 0; i < nstr; i++) {
            assert_int_equal(sr_json_str_decode(&doc, k, out, sizeof(out), &len), 0);
            assert_int_equal(len, strlen(strs[i]));
            assert_memory_equal(out, strs[i], len);
            assert_true(sr_json_str_eq(&doc, k, strs[i], strlen(strs[i])));
            k = doc.toks[k].end;
        }
        assert_true(sr_json_str_eq(&doc, k, "a\0b", 3));
        assert_true(euro > 0);
        assert_int_equal(sr_json_int64(&doc, (uint32_t)euro, &v), 0);
        assert_true(v == -5);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),         cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_error_offsets),   cmocka_unit_test(test_dup_sorted_path),
        cmocka_unit_test(test_big_object),      cmocka_unit_test(test_huge_object),
        cmocka_unit_test(test_sort_needs_room), cmocka_unit_test(test_depth),
        cmocka_unit_test(test_token_layout),    cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_writer_basic),    cmocka_unit_test(test_writer_escaping),
        cmocka_unit_test(test_writer_utf8),     cmocka_unit_test(test_writer_nospace),
        cmocka_unit_test(test_writer_misuse),   cmocka_unit_test(test_writer_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
