/*
 * Unit tests for the HTTP/1.1 head parser (src/http/parse.c).
 *
 * Most cases are tables of raw heads with the result each must give, so
 * that adding a regression is one line. Every accepted head is also fed in
 * all its shorter prefixes, which must ask for more bytes: the edge re-parses
 * as bytes trickle in and must never act on half a head.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/parse.h"

#define MAX_HEAD 16384

struct row {
    const char *in;
    int want; /* > 0: expect success with head_len == strlen(in); else the error */
};

static struct sr_http_head head;

static int parse_req(const char *s, size_t n, size_t max)
{
    return sr_http_parse_request(s, n, max, &head);
}

static int parse_resp(const char *s, size_t n, size_t max)
{
    return sr_http_parse_response(s, n, max, &head);
}

static bool span_is(struct sr_span s, const char *want)
{
    return s.n == strlen(want) && memcmp(s.p, want, s.n) == 0;
}

static bool header_is(const char *name, const char *want)
{
    size_t n;
    const char *v = sr_http_header_get(&head, name, &n);

    return v != NULL && n == strlen(want) && memcmp(v, want, n) == 0;
}

/*
 * Run a table through one of the two parsers. Heads that must parse are
 * also checked in every prefix; heads that must fail may ask for more in a
 * prefix but never report a different error.
 */
static void run_table(const struct row *rows, size_t count,
                      int (*parse)(const char *, size_t, size_t))
{
    size_t i;

    for (i = 0; i < count; i++) {
        const char *in = rows[i].in;
        size_t n = strlen(in);
        int want = rows[i].want > 0 ? (int)n : rows[i].want;
        int got = parse(in, n, MAX_HEAD);
        size_t k;

        if (got != want)
            fail_msg("row %zu: \"%s\": got %d, want %d", i, in, got, want);
        for (k = 0; k < n; k++) {
            int part = parse(in, k, MAX_HEAD);

            if (part != SR_HTTP_E_MORE && part != want)
                fail_msg("row %zu prefix %zu: got %d, want 0 or %d", i, k, part, want);
            if (want > 0 && part != SR_HTTP_E_MORE)
                fail_msg("row %zu prefix %zu of a good head: got %d", i, k, part);
        }
    }
}

#define OK      1
#define MORE    SR_HTTP_E_MORE
#define BAD     SR_HTTP_E_BAD
#define LARGE   SR_HTTP_E_TOOLARGE
#define VERSION SR_HTTP_E_VERSION
#define FRAMING SR_HTTP_E_FRAMING
#define COUNT   SR_HTTP_E_COUNT

static const struct row request_rows[] = {
    /* Accepted request lines. */
    {"GET / HTTP/1.1\r\n\r\n", OK},
    {"GET / HTTP/1.0\r\n\r\n", OK},
    {"POST /mcp HTTP/1.1\r\nHost: x\r\n\r\n", OK},
    /* Two Host headers (RFC 9112 section 3.2); other names ending in "host" are not Host. */
    {"POST /mcp HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", BAD},
    {"POST /mcp HTTP/1.1\r\nHost: a\r\nHOST: a\r\n\r\n", BAD},
    {"POST /mcp HTTP/1.1\r\nHost: a\r\nX-Host: b\r\nGhost: c\r\n\r\n", OK},
    {"GET /mcp?a=1&b=2 HTTP/1.1\r\n\r\n", OK},
    {"OPTIONS * HTTP/1.1\r\n\r\n", OK},
    {"DELETE /mcp HTTP/1.1\r\n\r\n", OK},
    {"M-SEARCH /x HTTP/1.1\r\n\r\n", OK},
    {"!#$%&'*+-.^_`|~09azAZ /x HTTP/1.1\r\n\r\n", OK},
    {"GET /a%20b/c;p=1?q=\"x\"#f HTTP/1.1\r\n\r\n", OK},
    {"GET /\xc3\xa9t\xc3\xa9 HTTP/1.1\r\n\r\n", OK},
    {"GET //double HTTP/1.1\r\n\r\n", OK},
    {"GET /a-very-long-path-that-spans-several-words-of-eight-bytes/x HTTP/1.1\r\n\r\n", OK},
    /* Malformed request lines. */
    {"\r\nGET / HTTP/1.1\r\n\r\n", BAD},
    {" GET / HTTP/1.1\r\n\r\n", BAD},
    {"GET  / HTTP/1.1\r\n\r\n", BAD},
    {"GET / HTTP/1.1 \r\n\r\n", BAD},
    {"GET /  HTTP/1.1\r\n\r\n", BAD},
    {"GET\t/ HTTP/1.1\r\n\r\n", BAD},
    {"GET /\tx HTTP/1.1\r\n\r\n", BAD},
    {"GET /\x01 HTTP/1.1\r\n\r\n", BAD},
    {"GET /\x7f HTTP/1.1\r\n\r\n", BAD},
    {"GET /a\rb HTTP/1.1\r\n\r\n", BAD},
    {"GET /\r\n\r\n", BAD},
    {"GET / \r\n\r\n", BAD},
    {"GET\r\n\r\n", BAD},
    {"G(T / HTTP/1.1\r\n\r\n", BAD},
    {"GET@ / HTTP/1.1\r\n\r\n", BAD},
    {"GET http://example.com/ HTTP/1.1\r\n\r\n", BAD},
    {"CONNECT example.com:443 HTTP/1.1\r\n\r\n", BAD},
    {"GET mcp HTTP/1.1\r\n\r\n", BAD},
    {"GET * HTTP/1.1\r\n\r\n", BAD},
    {"OPTIONS *x HTTP/1.1\r\n\r\n", BAD},
    {"options * HTTP/1.1\r\n\r\n", BAD},
    {"GET / HTTP/1.1\n\r\n", BAD},
    {"GET / HTTP/1.1\r\r\n", BAD},
    {"GET / HTTP/1.1\r\n\n", BAD},
    {"GET / http/1.1\r\n\r\n", BAD},
    {"GET / HTTP/1\r\n\r\n", BAD},
    {"GET / HTTP/1.\r\n\r\n", BAD},
    {"GET / HTTP/11.1\r\n\r\n", BAD},
    {"GET / HTTP/1.10\r\n\r\n", BAD},
    {"GET / HTTP/1,1\r\n\r\n", BAD},
    {"GET / HTTX/1.1\r\n\r\n", BAD},
    /* Well-formed versions we do not speak. */
    {"GET / HTTP/2.0\r\n\r\n", VERSION},
    {"GET / HTTP/1.2\r\n\r\n", VERSION},
    {"GET / HTTP/0.9\r\n\r\n", VERSION},
    {"GET / HTTP/3.0\r\nHost: x\r\n\r\n", VERSION},
    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", BAD},
    /* Headers. */
    {"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n", OK},
    {"GET / HTTP/1.1\r\nX-Empty:\r\n\r\n", OK},
    {"GET / HTTP/1.1\r\nX-Empty: \t \r\n\r\n", OK},
    {"GET / HTTP/1.1\r\nX: a\tb c\r\n\r\n", OK},
    {"GET / HTTP/1.1\r\nX: \x80\xff\xc3\xa9\r\n\r\n", OK},
    {"GET / HTTP/1.1\r\nX: \"quoted, list\"; q=0.5\r\n\r\n", OK},
    {"GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~: x\r\n\r\n", OK},
    {"GET / HTTP/1.1\r\nX:y\r\n\r\n", OK},
    {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\n: a\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\nHost a\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\nHo\x80st: a\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", BAD},
    {"GET / HTTP/1.1\r\nX: a\r\n\n", BAD},
    {"GET / HTTP/1.1\r\nX: a\r\n\r\r", BAD},
    {"GET / HTTP/1.1\r\nX: a\n\r\n", BAD},
    {"GET / HTTP/1.1\r\nX: a long value with an error after several words\x0b\r\n\r\n", BAD},
    /* Framing. */
    {"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", OK},
    {"POST / HTTP/1.1\r\nContent-Length: 0005\r\n\r\n", OK},
    {"POST / HTTP/1.1\r\nContent-Length:  5 \t\r\n\r\n", OK},
    {"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 005\r\n\r\n", OK},
    {"POST / HTTP/1.1\r\nContent-Length: 9007199254740992\r\n\r\n", OK},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", OK},
    {"POST / HTTP/1.1\r\ntransfer-encoding: ChUnKeD \r\n\r\n", OK},
    {"POST / HTTP/1.1\r\nContent-Length: 9007199254740993\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nContent-Length: 5,5\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nContent-Length: 5.0\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: \r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     FRAMING},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunkedx\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", FRAMING},
    {"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n", BAD},
    {"POST / HTTP/1.1\r\nContent-Length\t: 5\r\n\r\n", BAD},
    {"POST / HTTP/1.1\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n", OK},
};

static const struct row response_rows[] = {
    {"HTTP/1.1 200 OK\r\n\r\n", OK},
    {"HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\n\r\n", OK}, /* only requests are held to it */
    {"HTTP/1.0 200 OK\r\n\r\n", OK},
    {"HTTP/1.1 200 \r\n\r\n", OK},
    {"HTTP/1.1 200\r\n\r\n", OK},
    {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", OK},
    {"HTTP/1.1 100 Continue\r\n\r\n", OK},
    {"HTTP/1.1 599 Whatever \t it \x80 says\r\n\r\n", OK},
    {"HTTP/1.1 202 Accepted\r\nmcp-session-id: abc\r\n\r\n", OK},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", OK},
    {"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\r\n", OK},
    {"HTTP/2.0 200 OK\r\n\r\n", VERSION},
    {"HTTP/1.2 200 OK\r\n\r\n", VERSION},
    {"HTTP/2 200 OK\r\n\r\n", BAD},
    {"HTTP/1.1  200 OK\r\n\r\n", BAD},
    {"HTTP/1.1 20 OK\r\n\r\n", BAD},
    {"HTTP/1.1 2000 OK\r\n\r\n", BAD},
    {"HTTP/1.1 099 Low\r\n\r\n", BAD},
    {"HTTP/1.1 600 High\r\n\r\n", BAD},
    {"HTTP/1.1 2x0 OK\r\n\r\n", BAD},
    {"HTTP/1.1 200 O\x01K\r\n\r\n", BAD},
    {"HTTP/1.1 200 OK\n\r\n", BAD},
    {"HTTP/1.1 200 OK\r\n\n", BAD},
    {"HTTP/1.1\r\n\r\n", BAD},
    {"http/1.1 200 OK\r\n\r\n", BAD},
    {"ICY 200 OK\r\n\r\n", BAD},
    {"\r\nHTTP/1.1 200 OK\r\n\r\n", BAD},
    {"HTTP/1.1 200 OK\r\nX : y\r\n\r\n", BAD},
    {"HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", BAD},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", FRAMING},
    {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", FRAMING},
    {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", FRAMING},
};

static void test_request_table(void **state)
{
    (void)state;
    run_table(request_rows, sizeof(request_rows) / sizeof(request_rows[0]), parse_req);
}

static void test_response_table(void **state)
{
    (void)state;
    run_table(response_rows, sizeof(response_rows) / sizeof(response_rows[0]), parse_resp);
}

/* A bare NUL in the middle is a CTL even though strlen-based tables cannot carry it. */
static void test_embedded_nul(void **state)
{
    static const char req[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
    static const char tgt[] = "GET /a\0b HTTP/1.1\r\n\r\n";
    static const char name[] = "GET / HTTP/1.1\r\nX\0: a\r\n\r\n";
    static const char ver[] = "GET / HTTP/1.1\0\r\n\r\n";
    static const char resp[] = "HTTP/1.1 200 O\0K\r\n\r\n";

    (void)state;
    assert_int_equal(parse_req(req, sizeof(req) - 1, MAX_HEAD), SR_HTTP_E_BAD);
    assert_int_equal(parse_req(tgt, sizeof(tgt) - 1, MAX_HEAD), SR_HTTP_E_BAD);
    assert_int_equal(parse_req(name, sizeof(name) - 1, MAX_HEAD), SR_HTTP_E_BAD);
    assert_int_equal(parse_req(ver, sizeof(ver) - 1, MAX_HEAD), SR_HTTP_E_BAD);
    assert_int_equal(parse_resp(resp, sizeof(resp) - 1, MAX_HEAD), SR_HTTP_E_BAD);
}

static void test_request_fields(void **state)
{
    static const char req[] = "POST /mcp?session=1&x=2 HTTP/1.1\r\n"
                              "Host: 127.0.0.1:9121\r\n"
                              "Authorization:   Bearer abc \t\r\n"
                              "Accept: application/json, text/event-stream\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: 42\r\n"
                              "X-Empty:\r\n"
                              "\r\n";
    size_t n;

    (void)state;
    assert_int_equal(parse_req(req, sizeof(req) - 1, MAX_HEAD), (int)(sizeof(req) - 1));
    assert_true(span_is(head.method, "POST"));
    assert_true(span_is(head.target, "/mcp?session=1&x=2"));
    assert_true(span_is(head.path, "/mcp"));
    assert_int_equal(head.minor, 1);
    assert_int_equal(head.nh, 6);
    assert_int_equal(head.content_length, 42);
    assert_false(head.chunked);
    assert_true(head.keep_alive);
    assert_false(head.expect_continue);
    assert_int_equal(head.head_len, sizeof(req) - 1);
    assert_true(span_is(head.h[0].name, "Host"));
    assert_true(span_is(head.h[0].value, "127.0.0.1:9121"));
    assert_true(span_is(head.h[1].value, "Bearer abc"));
    assert_true(header_is("authorization", "Bearer abc"));
    assert_true(header_is("AUTHORIZATION", "Bearer abc"));
    assert_true(header_is("content-type", "application/json"));
    assert_true(header_is("x-empty", ""));
    assert_non_null(sr_http_header_get(&head, "X-Empty", &n));
    assert_int_equal(n, 0);
    n = 99;
    assert_null(sr_http_header_get(&head, "X-Missing", &n));
    assert_int_equal(n, 0);
    assert_null(sr_http_header_get(&head, "Host2", &n));
    assert_null(sr_http_header_get(&head, "Hos", &n));
    assert_null(sr_http_header_get(&head, "", &n));
}

static void test_request_path_forms(void **state)
{
    static const char a[] = "GET /mcp HTTP/1.1\r\n\r\n";
    static const char b[] = "GET /? HTTP/1.1\r\n\r\n";
    static const char c[] = "GET /a?b?c HTTP/1.1\r\n\r\n";
    static const char d[] = "OPTIONS * HTTP/1.0\r\n\r\n";

    (void)state;
    assert_true(parse_req(a, sizeof(a) - 1, MAX_HEAD) > 0);
    assert_true(span_is(head.path, "/mcp"));
    assert_true(span_is(head.target, "/mcp"));
    assert_true(parse_req(b, sizeof(b) - 1, MAX_HEAD) > 0);
    assert_true(span_is(head.path, "/"));
    assert_true(span_is(head.target, "/?"));
    assert_true(parse_req(c, sizeof(c) - 1, MAX_HEAD) > 0);
    assert_true(span_is(head.path, "/a"));
    assert_true(parse_req(d, sizeof(d) - 1, MAX_HEAD) > 0);
    assert_true(span_is(head.target, "*"));
    assert_true(span_is(head.path, "*"));
    assert_int_equal(head.minor, 0);
}

static void test_first_duplicate_wins(void **state)
{
    static const char req[] = "GET / HTTP/1.1\r\nX-A: one\r\nx-a: two\r\n\r\n";

    (void)state;
    assert_true(parse_req(req, sizeof(req) - 1, MAX_HEAD) > 0);
    assert_true(header_is("X-A", "one"));
    assert_int_equal(head.nh, 2);
}

static void test_response_fields(void **state)
{
    static const char resp[] = "HTTP/1.1 200 OK\r\n"
                               "content-type: text/event-stream\r\n"
                               "cache-control: no-cache\r\n"
                               "mcp-session-id: 6d1b\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "\r\n"
                               "e\r\nevent: message\r\n";
    static const char bare[] = "HTTP/1.0 204\r\n\r\n";
    size_t n = strstr(resp, "\r\n\r\n") - resp + 4;

    (void)state;
    assert_int_equal(parse_resp(resp, sizeof(resp) - 1, MAX_HEAD), (int)n);
    assert_int_equal(head.status, 200);
    assert_true(span_is(head.reason, "OK"));
    assert_int_equal(head.minor, 1);
    assert_true(head.chunked);
    assert_int_equal(head.content_length, -1);
    assert_true(head.keep_alive);
    assert_true(header_is("Mcp-Session-Id", "6d1b"));
    assert_null(head.method.p);

    assert_int_equal(parse_resp(bare, sizeof(bare) - 1, MAX_HEAD), (int)(sizeof(bare) - 1));
    assert_int_equal(head.status, 204);
    assert_int_equal(head.reason.n, 0);
    assert_int_equal(head.minor, 0);
    assert_false(head.keep_alive);
}

static void test_content_length_values(void **state)
{
    static const struct {
        const char *in;
        int64_t want;
        bool chunked;
    } rows[] = {
        {"POST / HTTP/1.1\r\n\r\n", -1, false},
        {"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0, false},
        {"POST / HTTP/1.1\r\nContent-Length: 000\r\n\r\n", 0, false},
        {"POST / HTTP/1.1\r\nCONTENT-LENGTH: 1234567\r\n\r\n", 1234567, false},
        {"POST / HTTP/1.1\r\nContent-Length: 9007199254740992\r\n\r\n", INT64_C(9007199254740992),
         false},
        {"POST / HTTP/1.1\r\nContent-Length: 00000000000000000000000000017\r\n\r\n", 17, false},
        {"POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 07\r\n\r\n", 7, false},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", -1, true},
        {"POST / HTTP/1.1\r\nTransfer-Encoding:\tCHUNKED\t\r\n\r\n", -1, true},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(parse_req(rows[i].in, strlen(rows[i].in), MAX_HEAD),
                         (int)strlen(rows[i].in));
        assert_int_equal(head.content_length, rows[i].want);
        assert_int_equal(head.chunked, rows[i].chunked);
    }
}

static void test_keep_alive(void **state)
{
    static const struct {
        const char *in;
        bool want;
    } rows[] = {
        {"GET / HTTP/1.1\r\n\r\n", true},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: keep-alive, CLOSE\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: Upgrade ,  close  , x\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: ,,close,,\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: upgrade\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnection: not-close\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnection: \"close\"\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnectio: close\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: te, keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keepalive\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", false},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(parse_req(rows[i].in, strlen(rows[i].in), MAX_HEAD),
                         (int)strlen(rows[i].in));
        if (head.keep_alive != rows[i].want)
            fail_msg("row %zu: \"%s\": keep_alive %d", i, rows[i].in, head.keep_alive);
    }
}

static void test_expect_continue(void **state)
{
    static const struct {
        const char *in;
        bool want;
    } rows[] = {
        {"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", true},
        {"POST / HTTP/1.1\r\nexpect:100-CONTINUE \r\n\r\n", true},
        {"POST / HTTP/1.1\r\nExpect: 100-continue, x\r\n\r\n", false},
        {"POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", false},
        {"POST / HTTP/1.1\r\nExpects: 100-continue\r\n\r\n", false},
        {"POST / HTTP/1.1\r\n\r\n", false},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(parse_req(rows[i].in, strlen(rows[i].in), MAX_HEAD),
                         (int)strlen(rows[i].in));
        assert_int_equal(head.expect_continue, rows[i].want);
    }
}

/* Build "GET / HTTP/1.1\r\n" + count headers + "\r\n" into buf; returns the length. */
static size_t build_headers(char *buf, size_t cap, unsigned count)
{
    size_t n;
    unsigned i;

    n = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n");
    for (i = 0; i < count; i++)
        n += (size_t)snprintf(buf + n, cap - n, "X-H%u: v\r\n", i);
    n += (size_t)snprintf(buf + n, cap - n, "\r\n");
    assert_true(n < cap);
    return n;
}

static void test_header_count(void **state)
{
    static char buf[32768];
    size_t n;

    (void)state;
    n = build_headers(buf, sizeof(buf), SR_HTTP_MAX_HEADER_COUNT);
    assert_int_equal(parse_req(buf, n, MAX_HEAD), (int)n);
    assert_int_equal(head.nh, SR_HTTP_MAX_HEADER_COUNT);
    assert_true(header_is("x-h127", "v"));

    n = build_headers(buf, sizeof(buf), SR_HTTP_MAX_HEADER_COUNT + 1);
    assert_int_equal(parse_req(buf, n, MAX_HEAD), SR_HTTP_E_COUNT);

    n = build_headers(buf, sizeof(buf), 1000);
    assert_int_equal(parse_req(buf, n, MAX_HEAD), SR_HTTP_E_COUNT);
}

/* A head of exactly `total` bytes: request line, one padded header, blank line. */
static size_t build_sized(char *buf, size_t total)
{
    static const char start[] = "GET / HTTP/1.1\r\nX: ";
    size_t fixed = sizeof(start) - 1 + 4;

    assert_true(total >= fixed && total < 70000);
    memcpy(buf, start, sizeof(start) - 1);
    memset(buf + sizeof(start) - 1, 'a', total - fixed);
    memcpy(buf + total - 4, "\r\n\r\n", 4);
    return total;
}

static void test_limits(void **state)
{
    static char buf[70000];
    size_t n;

    (void)state;
    /* Exactly at the limit parses. */
    n = build_sized(buf, 1000);
    assert_int_equal(parse_req(buf, n, 1000), 1000);
    /* One over is too large, whether or not more bytes follow. */
    n = build_sized(buf, 1001);
    assert_int_equal(parse_req(buf, n, 1000), SR_HTTP_E_TOOLARGE);
    assert_int_equal(parse_req(buf, 1000, 1000), SR_HTTP_E_TOOLARGE);
    assert_int_equal(parse_req(buf, 999, 1000), SR_HTTP_E_MORE);
    /* Incomplete: more below the limit, too large at or above it. */
    n = build_sized(buf, 5000);
    assert_int_equal(parse_req(buf, 999, 1000), SR_HTTP_E_MORE);
    assert_int_equal(parse_req(buf, 1000, 1000), SR_HTTP_E_TOOLARGE);
    assert_int_equal(parse_req(buf, 4000, 1000), SR_HTTP_E_TOOLARGE);
    assert_int_equal(parse_req(buf, 4000, MAX_HEAD), SR_HTTP_E_MORE);
    assert_int_equal(parse_req(buf, n, MAX_HEAD), 5000);
    /* Each of the four final bytes, cut at the limit. */
    n = build_sized(buf, 1000);
    assert_int_equal(parse_req(buf, n, 999), SR_HTTP_E_TOOLARGE);
    assert_int_equal(parse_req(buf, n, 998), SR_HTTP_E_TOOLARGE);
    assert_int_equal(parse_req(buf, n, 997), SR_HTTP_E_TOOLARGE);
    assert_int_equal(parse_req(buf, n, 996), SR_HTTP_E_TOOLARGE);
    /* An error inside the limit wins over the size. */
    n = build_sized(buf, 5000);
    buf[30] = '\x01';
    assert_int_equal(parse_req(buf, n, 1000), SR_HTTP_E_BAD);
    /* 64 KiB heads, the practical maximum. */
    n = build_sized(buf, 65536);
    assert_int_equal(parse_req(buf, n, 65536), 65536);
    assert_int_equal(parse_req(buf, n, 65535), SR_HTTP_E_TOOLARGE);
    /* Empty input and a zero limit. */
    assert_int_equal(parse_req("", 0, 1000), SR_HTTP_E_MORE);
    assert_int_equal(parse_resp("", 0, 1000), SR_HTTP_E_MORE);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\n\r\n", 18, 0), SR_HTTP_E_TOOLARGE);
    /* Responses have the same limit. */
    n = (size_t)snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nX: yyyy\r\n\r\n");
    assert_int_equal(parse_resp(buf, n, n), (int)n);
    assert_int_equal(parse_resp(buf, n, n - 1), SR_HTTP_E_TOOLARGE);
    assert_int_equal(parse_resp(buf, n - 1, n), SR_HTTP_E_MORE);
}

/* Errors in the request line are reported before the head is complete. */
static void test_early_errors(void **state)
{
    static const struct {
        const char *in;
        int want;
    } rows[] = {
        {"GET / HTTP/1.1\n", SR_HTTP_E_BAD},
        {"GET /\r\n", SR_HTTP_E_BAD},
        {"GET / HTTP/2.0\r\n", SR_HTTP_E_VERSION},
        {"GET / HTTP/1.1 \r\n", SR_HTTP_E_BAD},
        {"GET http://x/", SR_HTTP_E_BAD},
        {"GE T", SR_HTTP_E_BAD},
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", SR_HTTP_E_BAD},
        {"GET / HTTP/1.1\r\nHost : x", SR_HTTP_E_BAD},
        {"GET / HTTP/1.1\r\n folded", SR_HTTP_E_BAD},
        {"GET / HTTP/1.1\r\nX: \x01", SR_HTTP_E_BAD},
        {"GET / HTTP/1.1\r\nContent-Length: x\r\n", SR_HTTP_E_FRAMING},
        {"HTTP/1.1 200 OK\n", SR_HTTP_E_BAD},
        {"HTTP/2.0 ", SR_HTTP_E_VERSION},
        {"HTTP/1.1 999", SR_HTTP_E_BAD},
        {"SSH-2.0-OpenSSH_9.2\r\n", SR_HTTP_E_BAD},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *in = rows[i].in;
        int got = in[0] == 'H' || in[0] == 'S' ? parse_resp(in, strlen(in), MAX_HEAD)
                                               : parse_req(in, strlen(in), MAX_HEAD);

        if (got != rows[i].want)
            fail_msg("row %zu: \"%s\": got %d, want %d", i, in, got, rows[i].want);
    }
    /* Correct but incomplete heads ask for more. */
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: x", 23, MAX_HEAD), SR_HTTP_E_MORE);
    assert_int_equal(parse_req("GET / HTTP/1.", 13, MAX_HEAD), SR_HTTP_E_MORE);
    assert_int_equal(parse_resp("HTTP/1.1 20", 11, MAX_HEAD), SR_HTTP_E_MORE);
}

/* Only the first head of pipelined input is parsed, and its body is not touched. */
static void test_pipelined(void **state)
{
    static const char two[] = "POST /mcp HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                              "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n";
    static const char garbage_after[] = "GET / HTTP/1.1\r\n\r\n\x01\x02 not http\r\n";
    size_t first = strstr(two, "hello") - two;
    size_t off;

    (void)state;
    assert_int_equal(parse_req(two, sizeof(two) - 1, MAX_HEAD), (int)first);
    assert_true(span_is(head.path, "/mcp"));
    assert_int_equal(head.content_length, 5);
    assert_true(head.keep_alive);
    off = first + 5;
    assert_int_equal(parse_req(two + off, sizeof(two) - 1 - off, MAX_HEAD),
                     (int)(sizeof(two) - 1 - off));
    assert_true(span_is(head.path, "/health"));
    assert_false(head.keep_alive);
    assert_int_equal(parse_req(garbage_after, sizeof(garbage_after) - 1, MAX_HEAD), 18);
    /* A limit that only the trailing bytes exceed does not matter. */
    assert_int_equal(parse_req(two, sizeof(two) - 1, first), (int)first);
}

static void test_chunk_size(void **state)
{
    static const struct {
        const char *in;
        int rc;
        uint64_t want;
    } rows[] = {
        {"0", 0, 0},
        {"1", 0, 1},
        {"a", 0, 10},
        {"F", 0, 15},
        {"1aF", 0, 0x1af},
        {"00", 0, 0},
        {"ffffffffff", 0, UINT64_C(0xffffffffff)},
        {"FFFFFFFFFF", 0, UINT64_C(0xffffffffff)},
        {"0000000010", 0, 16},
        {"10;name=value", 0, 16},
        {"10;name=\"quoted value\"", 0, 16},
        {"10 ;ext", 0, 16},
        {"10\t ;ext", 0, 16},
        {"10;", 0, 16},
        {"10;a;b=c", 0, 16},
        {"10;\x80\xff", 0, 16},
        {"", -1, 0},
        {";ext", -1, 0},
        {" 10", -1, 0},
        {"10 ", -1, 0},
        {"10\t", -1, 0},
        {"10 x", -1, 0},
        {"1 0", -1, 0},
        {"-1", -1, 0},
        {"+1", -1, 0},
        {"0x10", -1, 0},
        {"1g", -1, 0},
        {"10000000000", -1, 0},
        {"00000000000", -1, 0},
        {"ffffffffffffffffff", -1, 0},
        {"10\r", -1, 0},
        {"10;ext\r", -1, 0},
        {"10;e\x01", -1, 0},
        {"10;e\x7f", -1, 0},
        {"10;e\n", -1, 0},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t got = 12345;
        int rc = sr_http_parse_chunk_size(rows[i].in, strlen(rows[i].in), &got);

        if (rc != rows[i].rc)
            fail_msg("row %zu: \"%s\": rc %d", i, rows[i].in, rc);
        if (rc == 0 && got != rows[i].want)
            fail_msg("row %zu: \"%s\": size %llu", i, rows[i].in, (unsigned long long)got);
    }
    /* A length that stops short of a NUL byte does not read it. */
    {
        uint64_t got;
        static const char withnul[] = "1\0";

        assert_int_equal(sr_http_parse_chunk_size(withnul, 1, &got), 0);
        assert_int_equal(got, 1);
        assert_int_equal(sr_http_parse_chunk_size(withnul, 2, &got), -1);
        assert_int_equal(sr_http_parse_chunk_size("12", 1, &got), 0);
        assert_int_equal(got, 1);
    }
}

static void test_hop_headers(void **state)
{
    static const char *const hop[] = {
        "connection",
        "Connection",
        "keep-alive",
        "Keep-Alive",
        "proxy-connection",
        "Proxy-Connection",
        "transfer-encoding",
        "Transfer-Encoding",
        "te",
        "TE",
        "trailer",
        "Trailer",
        "upgrade",
        "UPGRADE",
        "proxy-authenticate",
        "Proxy-Authenticate",
        "proxy-authorization",
        "Proxy-Authorization",
    };
    static const char *const end_to_end[] = {
        "",
        "t",
        "tf",
        "host",
        "content-length",
        "trailers",
        "upgrades",
        "connections",
        "authorization",
        "proxy",
        "keep_alive",
        "mcp-session-id",
        "content-type",
        "x-connection",
        "proxy-authorizatio",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        if (!sr_http_is_hop_header(hop[i], strlen(hop[i])))
            fail_msg("%s should be hop-by-hop", hop[i]);
    }
    for (i = 0; i < sizeof(end_to_end) / sizeof(end_to_end[0]); i++) {
        if (sr_http_is_hop_header(end_to_end[i], strlen(end_to_end[i])))
            fail_msg("%s should be end-to-end", end_to_end[i]);
    }
    /* Only the first n bytes count. */
    assert_true(sr_http_is_hop_header("tex", 2));
    assert_false(sr_http_is_hop_header("te", 1));
}

/* Values that straddle the eight-byte fast path at every alignment. */
static void test_alignment(void **state)
{
    static char buf[256];
    size_t pad;

    (void)state;
    for (pad = 0; pad < 24; pad++) {
        size_t bad;

        for (bad = 0; bad <= pad; bad++) {
            size_t n = (size_t)snprintf(buf, sizeof(buf), "GET /%.*s HTTP/1.1\r\nX: %.*s\r\n\r\n",
                                        (int)pad, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", (int)pad,
                                        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
            size_t vpos = 5 + pad + 11 + 3;
            int rc;

            assert_int_equal(parse_req(buf, n, MAX_HEAD), (int)n);
            assert_int_equal(head.h[0].value.n, pad);
            if (bad == pad)
                continue;
            buf[5 + bad] = '\x7f';
            assert_int_equal(parse_req(buf, n, MAX_HEAD), SR_HTTP_E_BAD);
            buf[5 + bad] = 'a';
            buf[vpos + bad] = '\x1f';
            assert_int_equal(parse_req(buf, n, MAX_HEAD), SR_HTTP_E_BAD);
            buf[vpos + bad] = '\t';
            rc = parse_req(buf, n, MAX_HEAD);
            assert_int_equal(rc, (int)n);
            buf[vpos + bad] = ' ';
            assert_int_equal(parse_req(buf, n, MAX_HEAD), (int)n);
        }
    }
}

/* A typical MCP request: every prefix asks for more, the whole parses. */
static void test_mcp_post(void **state)
{
    static const char req[] = "POST /mcp HTTP/1.1\r\n"
                              "Host: serena.example.com\r\n"
                              "User-Agent: claude-code/1.0.61 (cli)\r\n"
                              "Accept: application/json, text/event-stream\r\n"
                              "Content-Type: application/json\r\n"
                              "Authorization: Bearer 3f9c2b7e1d8a4c6f0e5b9a7d2c4e6f8a\r\n"
                              "mcp-session-id: 1c8e0f4b2a7d4e6c9b3a5f7d1e2c4b6a\r\n"
                              "mcp-protocol-version: 2025-06-18\r\n"
                              "Content-Length: 142\r\n"
                              "Connection: keep-alive\r\n"
                              "\r\n";
    size_t k;

    (void)state;
    assert_int_equal(parse_req(req, sizeof(req) - 1, MAX_HEAD), (int)(sizeof(req) - 1));
    assert_int_equal(head.nh, 9);
    assert_int_equal(head.content_length, 142);
    assert_true(header_is("MCP-Session-Id", "1c8e0f4b2a7d4e6c9b3a5f7d1e2c4b6a"));
    for (k = 0; k < sizeof(req) - 1; k++)
        assert_int_equal(parse_req(req, k, MAX_HEAD), SR_HTTP_E_MORE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_table),      cmocka_unit_test(test_response_table),
        cmocka_unit_test(test_embedded_nul),       cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_request_path_forms), cmocka_unit_test(test_first_duplicate_wins),
        cmocka_unit_test(test_response_fields),    cmocka_unit_test(test_content_length_values),
        cmocka_unit_test(test_keep_alive),         cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_header_count),       cmocka_unit_test(test_limits),
        cmocka_unit_test(test_early_errors),       cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_chunk_size),         cmocka_unit_test(test_hop_headers),
        cmocka_unit_test(test_alignment),          cmocka_unit_test(test_mcp_post),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
