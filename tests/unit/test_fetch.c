/*
 * Unit tests for outbound fetches (src/http/fetch.c, src/http/fetch_url.c): the URL rules, the
 * address kinds of the SSRF rule, and real fetches over loopback from an in-process libevent
 * HTTP server (a 200 with its Cache-Control, a non-200, a body over the bound, a server that
 * never answers, a refused connection, a public-only fetch refusing loopback, cancellation), and
 * a fetch that ends while its name is still being resolved (a resolver on loopback that never
 * answers): a timeout or a cancellation then, with the resolver's late callback, touches no
 * freed memory (ASan).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>

#include "http/fetch.h"
#include "http/fetch_url.h"

static void test_url_rules(void **state)
{
    (void)state;
    struct sr_fetch_url u;
    const char *why;
    assert_int_equal(sr_fetch_url_parse("https://Client.Example.com/meta.json?v=1", &u, &why), 0);
    assert_true(u.https);
    assert_string_equal(u.host, "client.example.com");
    assert_string_equal(u.host_header, "client.example.com");
    assert_int_equal(u.port, 443);
    assert_string_equal(u.path, "/meta.json?v=1");
    assert_false(u.host_is_ip);
    assert_int_equal(sr_fetch_url_parse("http://127.0.0.1:8080", &u, &why), 0);
    assert_true(u.host_is_ip && u.host_is_loopback);
    assert_string_equal(u.path, "/");
    assert_string_equal(u.host_header, "127.0.0.1:8080");
    assert_int_equal(sr_fetch_url_parse("https://[::1]:9/x", &u, &why), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.host_header, "[::1]:9");
    assert_true(u.host_is_loopback);
    assert_int_equal(sr_fetch_url_parse("http://localhost/j", &u, &why), 0);
    assert_true(u.host_is_loopback && !u.host_is_ip);

    const char *bad[] = {"ftp://x/y",       "https://user@x/y",       "https://x/y#f",
                         "https:///y",      "https://x:0/",           "https://x:65536/",
                         "https://x:/",     "https://x y/",           "https://[::1/",
                         "https://[zz]/",   "https://ex%41mple.com/", "https://x:1a/",
                         "https://[::1]x/", "https://\xc3\xa9.com/",  "//x/y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(sr_fetch_url_parse(bad[i], &u, &why), -1);
        assert_non_null(why);
    }
}

static enum sr_addr_kind kind4(const char *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, s, &a.sin_addr), 1);
    return sr_fetch_addr_kind((struct sockaddr *)&a);
}

static enum sr_addr_kind kind6(const char *s)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, s, &a.sin6_addr), 1);
    return sr_fetch_addr_kind((struct sockaddr *)&a);
}

static void test_address_kinds(void **state)
{
    (void)state;
    const char *pub4[] = {"1.1.1.1",    "8.8.8.8",   "100.128.0.1",
                          "172.32.0.1", "192.0.1.1", "198.20.0.1"};
    const char *other4[] = {"0.0.0.0",    "10.1.2.3",       "100.64.0.1",  "169.254.169.254",
                            "172.16.0.1", "172.31.255.1",   "192.168.1.1", "192.0.2.5",
                            "198.18.0.1", "198.51.100.1",   "203.0.113.9", "224.0.0.1",
                            "240.0.0.1",  "255.255.255.255"};
    for (size_t i = 0; i < sizeof(pub4) / sizeof(pub4[0]); i++)
        assert_int_equal(kind4(pub4[i]), SR_ADDR_PUBLIC);
    for (size_t i = 0; i < sizeof(other4) / sizeof(other4[0]); i++)
        assert_int_equal(kind4(other4[i]), SR_ADDR_OTHER);
    assert_int_equal(kind4("127.0.0.1"), SR_ADDR_LOOPBACK);
    assert_int_equal(kind4("127.8.9.10"), SR_ADDR_LOOPBACK);
    assert_int_equal(kind6("::1"), SR_ADDR_LOOPBACK);
    assert_int_equal(kind6("::ffff:127.0.0.1"), SR_ADDR_LOOPBACK);
    assert_int_equal(kind6("::ffff:10.0.0.1"), SR_ADDR_OTHER);
    assert_int_equal(kind6("::ffff:8.8.8.8"), SR_ADDR_PUBLIC);
    assert_int_equal(kind6("64:ff9b::a9fe:a9fe"), SR_ADDR_OTHER); /* NAT64 of 169.254.169.254 */
    assert_int_equal(kind6("2606:4700::1111"), SR_ADDR_PUBLIC);
    const char *other6[] = {"::",          "fe80::1", "fc00::1",       "fd12::1", "ff02::1",
                            "2001:db8::1", "2001::1", "2002:a00:1::1", "100::1",  "fec0::1"};
    for (size_t i = 0; i < sizeof(other6) / sizeof(other6[0]); i++)
        assert_int_equal(kind6(other6[i]), SR_ADDR_OTHER);
}

/* ---- real fetches over loopback ---- */

struct outcome {
    bool called;
    int status;
    char body[256];
    size_t len;
    char error[256];
    long max_age;
    struct event_base *base;
};

static void on_done(void *arg, const struct sr_fetch_result *res)
{
    struct outcome *o = arg;
    o->called = true;
    o->status = res->status;
    o->max_age = res->max_age;
    o->len = res->len;
    if (res->body)
        snprintf(o->body, sizeof(o->body), "%.*s", (int)res->len, res->body);
    if (res->error)
        snprintf(o->error, sizeof(o->error), "%s", res->error);
    event_base_loopbreak(o->base);
}

static struct evhttp_request *g_held; /* the "never answers" request */

static void serve(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evbuffer *b = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (strcmp(uri, "/doc") == 0) {
        evhttp_add_header(h, "Cache-Control", "public, max-age=120");
        evbuffer_add_printf(b, "{\"ok\":true,\"host\":\"%s\"}",
                            evhttp_find_header(evhttp_request_get_input_headers(req), "Host"));
        evhttp_send_reply(req, 200, "OK", b);
    } else if (strcmp(uri, "/big") == 0) {
        for (int i = 0; i < 2000; i++)
            evbuffer_add(b, "0123456789", 10);
        evhttp_send_reply(req, 200, "OK", b);
    } else if (strcmp(uri, "/moved") == 0) {
        evhttp_add_header(h, "Location", "http://169.254.169.254/");
        evhttp_send_reply(req, 302, "Found", b);
    } else if (strcmp(uri, "/hang") == 0) {
        g_held = req;
    } else {
        evhttp_send_reply(req, 404, "Not Found", b);
    }
    evbuffer_free(b);
}

static struct event_base *g_base;
static struct evhttp *g_http;
static unsigned g_port;

static int setup_server(void **state)
{
    (void)state;
    g_base = event_base_new();
    g_http = evhttp_new(g_base);
    evhttp_set_gencb(g_http, serve, NULL);
    struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(g_http, "127.0.0.1", 0);
    if (!s)
        return -1;
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&a, &al);
    g_port = ntohs(a.sin_port);
    return 0;
}

static int teardown_server(void **state)
{
    (void)state;
    evhttp_free(g_http);
    sr_fetch_shutdown();
    event_base_free(g_base);
    return 0;
}

static void run(const char *path, const struct sr_fetch_opts *o, struct outcome *out)
{
    char url[128], err[256] = "";
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", g_port, path);
    memset(out, 0, sizeof(*out));
    out->base = g_base;
    struct sr_fetch *f = sr_fetch_start(g_base, url, o, on_done, out, err, sizeof(err));
    assert_non_null(f);
    assert_false(out->called); /* never from inside sr_fetch_start */
    event_base_dispatch(g_base);
    assert_true(out->called);
}

static void test_fetches(void **state)
{
    (void)state;
    struct sr_fetch_opts o = {.max_bytes = 4096, .timeout_ms = 3000, .allow_http_loopback = true};
    struct outcome r;
    run("/doc", &o, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.error, "");
    assert_int_equal(r.max_age, 120);
    char want[128];
    snprintf(want, sizeof(want), "{\"ok\":true,\"host\":\"127.0.0.1:%u\"}", g_port);
    assert_string_equal(r.body, want);

    run("/nope", &o, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.error, "answered 404");
    assert_int_equal(r.len, 0);

    run("/moved", &o, &r);
    assert_int_equal(r.status, 302);
    assert_non_null(strstr(r.error, "redirects are not followed"));

    run("/big", &o, &r);
    assert_int_equal(r.len, 0);
    assert_non_null(strstr(r.error, "larger"));

    o.timeout_ms = 300; /* a hang guard, not a timing claim: only that it ends with an error */
    run("/hang", &o, &r);
    assert_non_null(strstr(r.error, "no answer within"));
    if (g_held) {
        evhttp_send_reply(g_held, 500, "Late", NULL);
        g_held = NULL;
    }
    o.timeout_ms = 3000;

    /* The SSRF rule: a client-chosen URL may not reach loopback unless allowed. */
    o.public_only = true;
    run("/doc", &o, &r);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.error, "not a public address"));
    o.allow_loopback = true;
    run("/doc", &o, &r);
    assert_int_equal(r.status, 200);
    o.public_only = o.allow_loopback = false;

    /* Refused outright: the callback never runs. */
    char err[256] = "";
    o.allow_http_loopback = false;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/doc", g_port);
    assert_null(sr_fetch_start(g_base, url, &o, on_done, &r, err, sizeof(err)));
    assert_non_null(strstr(err, "only https"));
    assert_null(sr_fetch_start(g_base, "https://u@x/", &o, on_done, &r, err, sizeof(err)));
    assert_non_null(strstr(err, "user information"));
}

static void test_refused_and_cancelled(void **state)
{
    (void)state;
    struct sr_fetch_opts o = {.max_bytes = 4096, .timeout_ms = 3000, .allow_http_loopback = true};
    struct outcome r = {.base = g_base};
    char err[256];
    /* A port nothing listens on (bind, read the port, close). */
    struct evhttp *tmp = evhttp_new(g_base);
    struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(tmp, "127.0.0.1", 0);
    struct sockaddr_in a;
    socklen_t al = sizeof(a);
    getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&a, &al);
    evhttp_free(tmp);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/doc", ntohs(a.sin_port));
    assert_non_null(sr_fetch_start(g_base, url, &o, on_done, &r, err, sizeof(err)));
    event_base_dispatch(g_base);
    assert_true(r.called);
    assert_int_equal(r.status, 0);
    assert_true(r.error[0] != '\0');

    /* Cancelled: its callback never runs, and nothing leaks (ASan). */
    memset(&r, 0, sizeof(r));
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/doc", g_port);
    struct sr_fetch *f = sr_fetch_start(g_base, url, &o, on_done, &r, err, sizeof(err));
    assert_non_null(f);
    sr_fetch_cancel(f);
    event_base_loop(g_base, EVLOOP_NONBLOCK);
    event_base_loop(g_base, EVLOOP_NONBLOCK);
    assert_false(r.called);
}

static void test_ends_while_resolving(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    /* A "name server" that never answers. */
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(udp, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    getsockname(udp, (struct sockaddr *)&a, &al);
    struct evdns_base *dns = evdns_base_new(base, 0);
    assert_non_null(dns);
    char ns[64];
    snprintf(ns, sizeof(ns), "127.0.0.1:%u", ntohs(a.sin_port));
    assert_int_equal(evdns_base_nameserver_ip_add(dns, ns), 0);
    sr_fetch_set_resolver(dns, base);

    struct sr_fetch_opts o = {.max_bytes = 4096, .timeout_ms = 300};
    struct outcome r = {.base = base};
    char err[256];
    /* Timed out while resolving: the callback says so; the resolver answers the cancel later. */
    assert_non_null(
        sr_fetch_start(base, "https://never.example/doc", &o, on_done, &r, err, sizeof(err)));
    event_base_dispatch(base);
    assert_true(r.called);
    assert_non_null(strstr(r.error, "no answer within"));
    /* Cancelled while resolving: no callback. */
    memset(&r, 0, sizeof(r));
    r.base = base;
    o.timeout_ms = 5000;
    struct sr_fetch *f =
        sr_fetch_start(base, "https://never.example/doc", &o, on_done, &r, err, sizeof(err));
    assert_non_null(f);
    sr_fetch_cancel(f);
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    assert_false(r.called);
    /* Failing what is still pending runs the late callbacks, which free the fetches. */
    sr_fetch_set_resolver(NULL, NULL);
    evdns_base_free(dns, 1);
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    assert_false(r.called);
    close(udp);
    sr_fetch_shutdown();
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_rules),
        cmocka_unit_test(test_address_kinds),
        cmocka_unit_test_setup_teardown(test_fetches, setup_server, teardown_server),
        cmocka_unit_test_setup_teardown(test_refused_and_cancelled, setup_server, teardown_server),
        cmocka_unit_test(test_ends_while_resolving),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
