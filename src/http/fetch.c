/*
 * Outbound fetches of small documents (see fetch.h).
 *
 * Steps: parse the URL (scheme, host, port, path), resolve the host with libevent's resolver
 * (which reads /etc/hosts and /etc/resolv.conf), pick the first address the options allow, and
 * send one GET with libevent's HTTP client to that address literally (the Host header and, for
 * https, the TLS server name and certificate check carry the name). One timer bounds the whole.
 */
#include "http/fetch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http/fetch_url.h"

struct sr_fetch {
    struct event_base *base;
    struct sr_fetch_url u;
    struct sr_fetch_opts o;
    sr_fetch_cb cb;
    void *arg;
    struct evdns_getaddrinfo_request *dns;
    struct evhttp_connection *conn;
    struct evhttp_request *req;
    SSL *ssl;
    struct event *timer;    /* the whole fetch */
    struct event *finisher; /* runs the callback and frees, outside libevent's callbacks */
    enum evhttp_request_error http_error;
    bool http_failed;
    bool cancelled;
    bool done;
    bool orphan; /* released while resolving: resolved_cb frees it when the cancel lands */
    struct sr_fetch_result res;
    char error[256];
    char *body;
};

static struct evdns_base *g_dns;
static struct event_base *g_dns_base;
static SSL_CTX *g_tls;

static bool g_dns_given; /* set by sr_fetch_set_resolver: not ours to free */

void sr_fetch_set_resolver(struct evdns_base *dns, struct event_base *base)
{
    if (g_dns && !g_dns_given)
        evdns_base_free(g_dns, 1);
    g_dns = dns;
    g_dns_base = dns ? base : NULL;
    g_dns_given = dns != NULL;
}

static struct evdns_base *dns_for(struct event_base *base)
{
    if (g_dns && g_dns_base == base)
        return g_dns;
    if (g_dns && !g_dns_given)
        evdns_base_free(g_dns, 1);
    g_dns_given = false;
    g_dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    g_dns_base = g_dns ? base : NULL;
    return g_dns;
}

static SSL_CTX *tls_ctx(void)
{
    if (g_tls)
        return g_tls;
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (!c)
        return NULL;
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(c) != 1) {
        SSL_CTX_free(c);
        return NULL;
    }
    g_tls = c;
    return c;
}

void sr_fetch_shutdown(void)
{
    if (g_dns && !g_dns_given)
        evdns_base_free(g_dns, 1);
    g_dns = NULL;
    g_dns_base = NULL;
    g_dns_given = false;
    if (g_tls)
        SSL_CTX_free(g_tls);
    g_tls = NULL;
}

static void release(struct sr_fetch *f)
{
    if (f->req)
        evhttp_cancel_request(f->req);
    if (f->conn)
        evhttp_connection_free(f->conn); /* frees the bufferevent and with it the SSL */
    else if (f->ssl)
        SSL_free(f->ssl);
    if (f->timer)
        event_free(f->timer);
    if (f->finisher)
        event_free(f->finisher);
    free(f->body);
    f->body = NULL;
    f->req = NULL;
    f->conn = NULL;
    f->ssl = NULL;
    f->timer = f->finisher = NULL;
    if (f->dns) {
        /* The resolver calls resolved_cb once more (EVUTIL_EAI_CANCEL), possibly later from the
         * loop: the struct must outlive that call, which frees it. */
        struct evdns_getaddrinfo_request *d = f->dns;
        f->dns = NULL;
        f->orphan = true;
        evdns_getaddrinfo_cancel(d);
        return;
    }
    free(f);
}

static void finish_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_fetch *f = arg;
    if (!f->cancelled && f->cb)
        f->cb(f->arg, &f->res);
    release(f);
}

/* Record the outcome once and schedule the callback on the next loop turn. */
static void finish(struct sr_fetch *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void finish(struct sr_fetch *f, const char *fmt, ...)
{
    if (f->done)
        return;
    f->done = true;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->error, sizeof(f->error), fmt, ap);
        va_end(ap);
        f->res.error = f->error;
    }
    event_active(f->finisher, EV_TIMEOUT, 0);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sr_fetch *f = arg;
    finish(f, "no answer within %u ms", f->o.timeout_ms);
}

static long cache_max_age(const char *cc)
{
    if (!cc)
        return -1;
    if (strcasestr(cc, "no-store") || strcasestr(cc, "no-cache"))
        return 0;
    const char *m = strcasestr(cc, "max-age=");
    if (!m)
        return -1;
    m += 8;
    if (*m == '"')
        m++;
    long v = 0;
    if (*m < '0' || *m > '9')
        return -1;
    for (; *m >= '0' && *m <= '9'; m++)
        v = v > 100000000 ? v : v * 10 + (*m - '0');
    return v;
}

static const char *http_error_text(enum evhttp_request_error e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        return "timed out";
    case EVREQ_HTTP_EOF:
        return "the connection closed before a whole answer";
    case EVREQ_HTTP_INVALID_HEADER:
        return "the answer's head is malformed or too large";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "the connection failed";
    case EVREQ_HTTP_REQUEST_CANCEL:
        return "cancelled";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "the document is larger than allowed";
    }
    return "the request failed";
}

static void error_cb(enum evhttp_request_error e, void *arg)
{
    struct sr_fetch *f = arg;
    f->http_error = e;
    f->http_failed = true;
}

/* What went wrong on the connection: a certificate verdict or an OpenSSL error, else errno. */
static void connection_error(struct sr_fetch *f)
{
    if (f->ssl) {
        long v = SSL_get_verify_result(f->ssl);
        if (v != X509_V_OK) {
            finish(f, "the TLS certificate of %s was refused: %s", f->u.host,
                   X509_verify_cert_error_string(v));
            return;
        }
    }
    struct bufferevent *bev = f->conn ? evhttp_connection_get_bufferevent(f->conn) : NULL;
    unsigned long e = bev && f->ssl ? bufferevent_get_openssl_error(bev) : 0;
    if (e) {
        char buf[160];
        ERR_error_string_n(e, buf, sizeof(buf));
        finish(f, "TLS with %s failed: %s", f->u.host, buf);
        return;
    }
    finish(f, "%s", f->http_failed ? http_error_text(f->http_error) : "the request failed");
}

static void done_cb(struct evhttp_request *req, void *arg)
{
    struct sr_fetch *f = arg;
    f->req = NULL; /* libevent frees it after this returns */
    if (f->done)
        return;
    if (!req || evhttp_request_get_response_code(req) == 0) {
        connection_error(f);
        return;
    }
    int code = evhttp_request_get_response_code(req);
    f->res.status = code;
    if (code != 200) {
        if (code >= 300 && code < 400)
            finish(f, "answered %d (redirects are not followed)", code);
        else
            finish(f, "answered %d", code);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n > f->o.max_bytes) {
        finish(f, "the document is larger than %zu bytes", f->o.max_bytes);
        return;
    }
    f->body = malloc(n + 1);
    if (!f->body) {
        finish(f, "out of memory");
        return;
    }
    evbuffer_remove(in, f->body, n);
    f->body[n] = '\0';
    f->res.body = f->body;
    f->res.len = n;
    f->res.max_age =
        cache_max_age(evhttp_find_header(evhttp_request_get_input_headers(req), "Cache-Control"));
    finish(f, NULL);
}

static void send_request(struct sr_fetch *f, const struct sockaddr *sa)
{
    char ip[INET6_ADDRSTRLEN];
    const void *a = sa->sa_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (!inet_ntop(sa->sa_family, a, ip, sizeof(ip))) {
        finish(f, "cannot format the address of %s", f->u.host);
        return;
    }
    struct bufferevent *bev;
    if (f->u.https) {
        SSL_CTX *ctx = tls_ctx();
        f->ssl = ctx ? SSL_new(ctx) : NULL;
        if (!f->ssl) {
            finish(f, "cannot set up TLS (no trust store?)");
            return;
        }
        bool literal = f->u.host_is_ip;
        X509_VERIFY_PARAM *vp = SSL_get0_param(f->ssl);
        if ((literal ? X509_VERIFY_PARAM_set1_ip_asc(vp, f->u.host)
                     : SSL_set1_host(f->ssl, f->u.host)) != 1 ||
            (!literal && SSL_set_tlsext_host_name(f->ssl, f->u.host) != 1)) {
            finish(f, "cannot set up TLS for %s", f->u.host);
            return;
        }
        bev = bufferevent_openssl_socket_new(f->base, -1, f->ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (bev)
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(f->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    }
    if (!bev) {
        finish(f, "out of memory");
        return;
    }
    f->conn = evhttp_connection_base_bufferevent_new(f->base, NULL, bev, ip, f->u.port);
    if (!f->conn) {
        bufferevent_free(bev); /* with it the SSL */
        f->ssl = NULL;
        finish(f, "out of memory");
        return;
    }
    struct timeval tv = {f->o.timeout_ms / 1000, (f->o.timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(f->conn, &tv);
    evhttp_connection_set_retries(f->conn, 0);
    evhttp_connection_set_max_body_size(f->conn, (ev_ssize_t)f->o.max_bytes);
    evhttp_connection_set_max_headers_size(f->conn, 16384);
    f->req = evhttp_request_new(done_cb, f);
    if (!f->req) {
        finish(f, "out of memory");
        return;
    }
    evhttp_request_set_error_cb(f->req, error_cb);
    struct evkeyvalq *h = evhttp_request_get_output_headers(f->req);
    evhttp_add_header(h, "Host", f->u.host_header);
    evhttp_add_header(h, "Accept", "application/json");
    evhttp_add_header(h, "User-Agent", "serena-remote");
    evhttp_add_header(h, "Connection", "close");
    if (evhttp_make_request(f->conn, f->req, EVHTTP_REQ_GET, f->u.path) != 0) {
        f->req = NULL; /* freed by libevent on failure */
        finish(f, "cannot send the request to %s", f->u.host);
    }
}

static bool address_allowed(const struct sr_fetch *f, const struct sockaddr *sa)
{
    if (!f->o.public_only)
        return true;
    enum sr_addr_kind k = sr_fetch_addr_kind(sa);
    return k == SR_ADDR_PUBLIC || (k == SR_ADDR_LOOPBACK && f->o.allow_loopback);
}

static void resolved_cb(int rc, struct evutil_addrinfo *ai, void *arg)
{
    struct sr_fetch *f = arg;
    if (f->orphan) { /* released while resolving (see release) */
        if (ai)
            evutil_freeaddrinfo(ai);
        free(f);
        return;
    }
    f->dns = NULL;
    if (rc == EVUTIL_EAI_CANCEL || f->done) {
        if (ai)
            evutil_freeaddrinfo(ai);
        return;
    }
    if (rc != 0) {
        finish(f, "cannot resolve %s: %s", f->u.host, evutil_gai_strerror(rc));
        return;
    }
    const struct sockaddr *pick = NULL;
    for (struct evutil_addrinfo *p = ai; p && !pick; p = p->ai_next)
        if ((p->ai_family == AF_INET || p->ai_family == AF_INET6) && address_allowed(f, p->ai_addr))
            pick = p->ai_addr;
    if (!pick)
        finish(f,
               "%s resolves only to addresses that are not public (loopback, private, "
               "link-local...), which the gateway does not fetch from",
               f->u.host);
    else
        send_request(f, pick);
    evutil_freeaddrinfo(ai);
}

struct sr_fetch *sr_fetch_start(struct event_base *base, const char *url,
                                const struct sr_fetch_opts *o, sr_fetch_cb cb, void *arg, char *err,
                                size_t errlen)
{
    struct sr_fetch *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *why = NULL;
    if (sr_fetch_url_parse(url, &f->u, &why) != 0) {
        snprintf(err, errlen, "%s", why);
        free(f);
        return NULL;
    }
    if (!f->u.https && !(o->allow_http_loopback && f->u.host_is_loopback)) {
        snprintf(err, errlen, "only https URLs are fetched (http only to a loopback host)");
        free(f);
        return NULL;
    }
    f->base = base;
    f->o = *o;
    if (!f->o.timeout_ms)
        f->o.timeout_ms = 5000;
    f->cb = cb;
    f->arg = arg;
    f->res.max_age = -1;
    f->timer = evtimer_new(base, timeout_cb, f);
    f->finisher = event_new(base, -1, 0, finish_cb, f);
    if (!f->timer || !f->finisher) {
        snprintf(err, errlen, "out of memory");
        release(f);
        return NULL;
    }
    struct timeval tv = {f->o.timeout_ms / 1000, (f->o.timeout_ms % 1000) * 1000};
    evtimer_add(f->timer, &tv);

    struct sockaddr_storage ss;
    if (f->u.host_is_ip) { /* a literal: no resolution */
        memset(&ss, 0, sizeof(ss));
        struct sockaddr *sa = (struct sockaddr *)&ss;
        if (inet_pton(AF_INET, f->u.host, &((struct sockaddr_in *)sa)->sin_addr) == 1)
            sa->sa_family = AF_INET;
        else if (inet_pton(AF_INET6, f->u.host, &((struct sockaddr_in6 *)sa)->sin6_addr) == 1)
            sa->sa_family = AF_INET6;
        if (!address_allowed(f, sa))
            finish(f, "%s is not a public address, which the gateway does not fetch from",
                   f->u.host);
        else
            send_request(f, sa);
        return f;
    }
    struct evdns_base *dns = dns_for(base);
    if (!dns) {
        finish(f, "no DNS resolver (is /etc/resolv.conf readable?)");
        return f;
    }
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    f->dns = evdns_getaddrinfo(dns, f->u.host, NULL, &hints, resolved_cb, f);
    /* NULL: answered at once (from /etc/hosts or an error), resolved_cb already ran. */
    return f;
}

void sr_fetch_cancel(struct sr_fetch *f)
{
    if (!f)
        return;
    f->cancelled = true;
    if (!f->done) {
        f->done = true;
        event_active(f->finisher, EV_TIMEOUT, 0);
    }
}
