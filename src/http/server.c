/*
 * HTTP/1.1 server: accepts connections (plain or TLS), reads one request at a
 * time with the limits of core/limits.h, hands complete requests to the
 * handler and writes responses, streaming when asked.
 *
 * Why our own codec on bufferevents rather than evhttp: evhttp answers
 * oversized heads with 400 and bodies with an HTML 413, applies its timeouts
 * to quiet SSE streams, and its parser cannot be fuzzed on its own. Here each
 * connection is a small state machine:
 *
 *   HEAD -> BODY -> HANDLING (handler owns the response) -> HEAD (keep-alive)
 *                                                        -> CLOSING (flush, free)
 *
 * While a response is in progress, reading stays enabled so that a client
 * that hangs up is noticed at once (its upstream request is cancelled), and
 * read-ahead is capped at SR_PIPELINE_MAX.
 *
 * Writing on plain sockets: a socket bufferevent adds its write event when
 * output is queued and deletes it once drained, two epoll_ctl calls and a
 * loop turn per response. Instead, output queued during a loop iteration is
 * written by a flush callback activated for the end of that iteration (no
 * system call to schedule it), with EV_WRITE left disabled; only output the
 * kernel does not take enables EV_WRITE, and the bufferevent then drives the
 * rest exactly as before (write-stall timeout, drain and close-after-flush
 * callbacks). TLS connections keep the bufferevent's own writing. The flush
 * callback also writes the waiting access-log lines first, so a client that
 * has its response finds its line in the log.
 *
 * Reading on plain sockets uses our own persistent read event and
 * sr_sockio_read instead of the bufferevent's EV_READ, which asks the kernel
 * for the readable byte count (an ioctl) before every read.
 */
#include "http/server.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "core/errors.h"
#include "core/mem.h"
#include "http/chunked.h"
#include "http/log.h"
#include "http/sockio.h"
#include "http/util.h"
#include "metrics/metrics.h"

enum conn_state { ST_HEAD, ST_BODY, ST_HANDLING, ST_CLOSING };

struct sr_conn;

/* Request storage is kept by its connection for the next request (see req_get). */
struct sr_req {
    /* Kept from one request to the next. */
    char *head_buf; /* copy of the head bytes; spans in `head` point into it */
    size_t head_cap;
    struct evbuffer *body;
    /* Cleared for every request: everything from `conn` up to `head`. */
    struct sr_conn *conn;
    uint64_t t_start;
    /* Response. */
    int status;
    bool started;
    bool chunked_out;
    bool close_delimited;
    bool dispatched; /* the handler owns it (counted in srv->active) */
    bool ended;
    bool idle_stream; /* sr_req_set_idle_stream: also counted in srv->idle */
    uint64_t bytes_out;
    char peer[64];
    char route[SR_ROUTE_MAX + 1];
    char rpc_method[SR_RPC_METHOD_MAX + 1];
    char tool[SR_TOOL_NAME_MAX + 1];
    uint64_t bytes_in; /* the request body, for the metrics */
    bool no_metrics;   /* the server's option, kept: the connection may be gone at the end */
    sr_req_hook_cb on_abort;
    sr_req_hook_cb on_drain;
    void *hook_arg;
    /* Written by the parser (which resets every field it reports). */
    struct sr_http_head head;
};

/* A kept head copy larger than this is dropped rather than kept for the next request. */
#define REQ_HEAD_KEEP 4096

struct sr_conn {
    struct sr_server *srv;
    struct bufferevent *bev;
    struct event *deadline; /* head/body must complete in SR_HEAD_TIMEOUT */
    struct event *flush;    /* activated when output was queued; runs at the end of the turn */
    struct event *rd; /* plain sockets: our read event (the bufferevent's EV_READ stays off) */
    bool plain;       /* not TLS: conn_flush_cb writes, conn_recv_cb reads */
    enum conn_state state;
    struct sr_req *req;
    struct sr_req *spare; /* storage for the next request, parsed into before it starts */
    /* Body reading. */
    int64_t body_left; /* content-length mode: bytes still to read */
    bool body_chunked;
    struct sr_chunked chunked;
    bool keep_alive;
    bool lingering;
    char peer[64];
    /* The last bearer token and its SHA-256 (sr_req_token_digest); tok_len 0: none. */
    size_t tok_len;
    char tok[SR_TOKEN_CACHE_MAX];
    uint8_t tok_digest[SHA256_DIGEST_LENGTH];
    struct sr_conn *prev, *next;
};

struct sr_server {
    struct event_base *base;
    struct evconnlistener *listener;
    SSL_CTX *ssl;
    struct sr_server_opts o;
    struct sr_conn *conns;
    uint32_t nconns;
    uint32_t active; /* dispatched requests not yet ended */
    uint32_t idle;   /* of those, the ones marked as idle streams (never more than active) */
    char addr[80];
};

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_recv_cb(evutil_socket_t fd, short what, void *arg);
static void conn_process(struct sr_conn *c);

/* Reading on or off, through our read event (plain) or the bufferevent (TLS). */
static void conn_reading(struct sr_conn *c, bool on)
{
    if (!c->plain) {
        if (on)
            bufferevent_enable(c->bev, EV_READ);
        else
            bufferevent_disable(c->bev, EV_READ);
        return;
    }
    if (on)
        event_add(c->rd, NULL);
    else
        event_del(c->rd);
}

static const char *status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Status";
    }
}

/* ---- connection life cycle ---------------------------------------------- */

static void req_free(struct sr_req *r)
{
    if (!r)
        return;
    if (r->body)
        evbuffer_free(r->body);
    free(r->head_buf);
    free(r);
}

/*
 * Storage for the connection's next request: its spare, else a new one (NULL
 * when out of memory). Why kept: a request's struct (4.5 KiB, most of it
 * header spans), head copy and body buffer were allocated, cleared and freed
 * for every request of a keep-alive connection.
 */
static struct sr_req *req_get(struct sr_conn *c)
{
    if (c->spare)
        return c->spare;
    struct sr_req *r = malloc(sizeof(*r));
    if (!r)
        return NULL;
    r->head_buf = NULL;
    r->head_cap = 0;
    r->body = evbuffer_new();
    if (!r->body) {
        free(r);
        return NULL;
    }
    c->spare = r;
    return r;
}

/* A finished request's storage goes back to its connection, or is freed. */
static void req_release(struct sr_conn *c, struct sr_req *r)
{
    if (!c || c->spare) {
        req_free(r);
        return;
    }
    evbuffer_drain(r->body, evbuffer_get_length(r->body));
    if (r->head_cap > REQ_HEAD_KEEP) {
        free(r->head_buf);
        r->head_buf = NULL;
        r->head_cap = 0;
    }
    c->spare = r;
}

static void span_move(struct sr_span *sp, const char *from, char *to)
{
    if (sp->p)
        sp->p = to + (sp->p - from);
}

/* The parser's spans point into `from`; make them point into the copy `to`. */
static void head_move(struct sr_http_head *h, const char *from, char *to)
{
    span_move(&h->method, from, to);
    span_move(&h->target, from, to);
    span_move(&h->path, from, to);
    span_move(&h->reason, from, to);
    for (uint32_t i = 0; i < h->nh; i++) {
        span_move(&h->h[i].name, from, to);
        span_move(&h->h[i].value, from, to);
    }
}

static void req_finish_log(struct sr_req *r)
{
    const struct sr_http_head *h = &r->head;
    struct sr_log_entry e = {
        .peer = r->peer,
        .route = r->route[0] ? r->route : "-",
        .method = h->method.p,
        .method_len = h->method.n,
        .path = h->path.p,
        .path_len = h->path.n,
        .rpc_method = r->rpc_method[0] ? r->rpc_method : "-",
        .tool = r->tool[0] ? r->tool : NULL,
        .status = r->status,
        .bytes = r->bytes_out,
        .duration_us = (sr_now_us() - r->t_start),
    };
    sr_log_request(&e);
    if (r->no_metrics)
        return;
    size_t an = 0;
    const char *authz = r->status == 401 ? sr_req_header(r, "authorization", &an) : NULL;
    sr_metrics_request(r->route, r->rpc_method, r->status, r->bytes_in, r->bytes_out, e.duration_us,
                       authz, an);
}

static void conn_free(struct sr_conn *c)
{
    struct sr_server *s = c->srv;
    struct sr_req *r = c->req;
    if (r) {
        /* The client went away (or we are shutting down) mid-request: tell the
         * handler first so it can cancel its upstream work, then forget. */
        c->req = NULL;
        r->conn = NULL;
        if (r->dispatched && !r->ended) {
            if (r->status == 0)
                r->status = 499; /* nginx's "client closed request" */
            req_finish_log(r);
            s->active--;
            if (r->idle_stream)
                s->idle--;
            if (r->on_abort)
                r->on_abort(r, r->hook_arg);
        }
        req_free(r);
    }
    req_free(c->spare);
    if (c->deadline)
        event_free(c->deadline);
    if (c->flush)
        event_free(c->flush);
    if (c->rd)
        event_free(c->rd); /* before the bufferevent closes the descriptor */
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    OPENSSL_cleanse(c->tok, sizeof(c->tok));
    free(c);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sr_conn *c = arg;
    (void)fd;
    (void)what;
    /* A head or body that dribbles in for longer than SR_HEAD_TIMEOUT (or an
     * idle keep-alive connection) is dropped: slowloris protection. */
    if (c->state == ST_HEAD || c->state == ST_BODY || c->state == ST_CLOSING)
        conn_free(c);
}

static void arm_deadline(struct sr_conn *c, int seconds)
{
    struct timeval tv = {seconds, 0};
    evtimer_add(c->deadline, &tv);
}

/*
 * Lingering close (RFC 9112 section 9.6): once the last response is out,
 * half-close and read and discard what the client still sends, for at most
 * SR_LINGER_TIMEOUT. Closing with unread input makes the kernel send a
 * reset, and a client that writes its whole request before reading (Python's
 * http.client) would lose the 413 or 431 it was sent.
 */
static void linger_start(struct sr_conn *c)
{
    c->lingering = true;
    if (!c->srv->ssl)
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    arm_deadline(c, SR_LINGER_TIMEOUT);
}

static void conn_close_after_flush(struct sr_conn *c)
{
    c->state = ST_CLOSING;
    evtimer_del(c->deadline);
    conn_reading(c, true);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        linger_start(c);
}

/* What the bufferevent's write callback does once output has drained. */
static void conn_written(struct sr_conn *c)
{
    if (c->state == ST_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 && !c->lingering)
            linger_start(c);
        return;
    }
    if (c->state == ST_HANDLING && c->req && c->req->on_drain)
        c->req->on_drain(c->req, c->req->hook_arg);
}

static void conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sr_conn *c = arg;
    (void)fd;
    (void)what;
    sr_log_flush();
    /* TLS: the bufferevent writes. Plain: at once; only a remainder enables EV_WRITE. */
    if (!c->plain || sr_sockio_write(c->bev) > 0)
        return;
    conn_written(c);
}

/* Output was queued: write it at the end of this loop turn (batched with what follows). */
static void conn_schedule_flush(struct sr_conn *c)
{
    event_active(c->flush, EV_WRITE, 0);
}

/* An error the server answers itself, before a handler saw the request. */
static void conn_fail(struct sr_conn *c, int status, const char *msg)
{
    char body[SR_ERROR_BODY_MAX];
    if (c->req && !c->req->dispatched) {
        req_release(c, c->req);
        c->req = NULL;
    }
    int n = sr_error_body(body, sizeof(body), SR_RPC_INVALID_REQUEST, msg, NULL, 0);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\nConnection: close\r\n\r\n",
                        status, status_reason(status), n < 0 ? 0 : n);
    if (n > 0)
        evbuffer_add(out, body, (size_t)n);
    struct sr_log_entry e = {.peer = c->peer,
                             .route = "-",
                             .method = "-",
                             .method_len = 1,
                             .path = "-",
                             .path_len = 1,
                             .rpc_method = "-",
                             .status = status,
                             .bytes = (uint64_t)(n < 0 ? 0 : n),
                             .duration_us = 0};
    sr_log_request(&e);
    if (!c->srv->o.no_metrics)
        sr_metrics_request("-", "-", status, 0, e.bytes, 0, NULL, 0);
    conn_schedule_flush(c);
    conn_close_after_flush(c);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct sr_server *s = arg;
    (void)l;
    (void)salen;
    if (s->nconns >= SR_MAX_CONNECTIONS) {
        evutil_closesocket(fd);
        return;
    }
    struct sr_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sr_format_peer(sa, c->peer, sizeof(c->peer));
    c->srv = s;
    if (s->ssl) {
        SSL *ssl = SSL_new(s->ssl);
        if (!ssl) {
            evutil_closesocket(fd);
            free(c);
            return;
        }
        c->bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (c->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    c->deadline = evtimer_new(s->base, deadline_cb, c);
    c->flush = event_new(s->base, -1, 0, conn_flush_cb, c);
    if (!c->bev || !c->deadline || !c->flush) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->deadline)
            event_free(c->deadline);
        if (c->flush)
            event_free(c->flush);
        free(c);
        return;
    }
    c->plain = s->ssl == NULL;
    if (c->plain && !(c->rd = event_new(s->base, fd, EV_READ | EV_PERSIST, conn_recv_cb, c))) {
        bufferevent_free(c->bev);
        event_free(c->deadline);
        event_free(c->flush);
        free(c);
        return;
    }
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    c->state = ST_HEAD;
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    struct timeval wt = {SR_WRITE_STALL, 0};
    bufferevent_set_timeouts(c->bev, NULL, &wt);
    if (c->plain) {
        /* Socket bufferevents start with EV_WRITE enabled; conn_flush_cb writes instead. */
        bufferevent_disable(c->bev, EV_WRITE);
        conn_reading(c, true);
    } else {
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    }
    arm_deadline(c, SR_KEEPALIVE_TIMEOUT);
}

/* ---- reading requests ---------------------------------------------------- */

/* c->spare holds a request head parsed from `head`: start it. */
static void start_request(struct sr_conn *c, const char *head, size_t head_len)
{
    struct sr_req *r = c->spare;
    if (r->head_cap < head_len) {
        size_t cap = head_len < 1024 ? 1024 : head_len;
        char *nb = malloc(cap);
        if (!nb) {
            conn_fail(c, 500, "The gateway is out of memory.");
            return;
        }
        free(r->head_buf);
        r->head_buf = nb;
        r->head_cap = cap;
    }
    memcpy(r->head_buf, head, head_len);
    /* Our own copy (the input buffer is drained next): move every span into it. */
    head_move(&r->head, head, r->head_buf);
    c->spare = NULL;
    memset(&r->conn, 0, offsetof(struct sr_req, head) - offsetof(struct sr_req, conn));
    r->conn = c;
    r->no_metrics = c->srv->o.no_metrics;
    memcpy(r->peer, c->peer, sizeof(r->peer));
    r->t_start = sr_now_us();
    c->req = r;
    c->keep_alive = r->head.keep_alive;
    c->body_chunked = r->head.chunked;
    sr_chunked_init(&c->chunked);
    c->body_left = r->head.content_length > 0 ? r->head.content_length : 0;
}

static void dispatch(struct sr_conn *c)
{
    struct sr_server *s = c->srv;
    c->state = ST_HANDLING;
    evtimer_del(c->deadline);
    s->active++;
    c->req->dispatched = true;
    c->req->bytes_in = evbuffer_get_length(c->req->body);
    /* Reading stays on to notice a hang-up; read-ahead is capped in conn_read_cb. */
    bufferevent_setwatermark(c->bev, EV_WRITE, SR_RELAY_LOW_WATER, 0);
    s->o.handler(c->req, s->o.handler_arg);
}

static void body_too_large(struct sr_conn *c)
{
    conn_fail(c, 413,
              "The request body is larger than the gateway's limit (--max-body); send a "
              "smaller request.");
}

/* Returns 1 when the body is complete, 0 when more is needed, -1 after failing the connection. */
static int read_body(struct sr_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct sr_req *r = c->req;
    if (!c->body_chunked) {
        size_t avail = evbuffer_get_length(in);
        size_t take = (size_t)c->body_left < avail ? (size_t)c->body_left : avail;
        if (take) {
            evbuffer_remove_buffer(in, r->body, take);
            c->body_left -= (int64_t)take;
        }
        return c->body_left == 0 ? 1 : 0;
    }
    int rc = sr_chunked_decode(&c->chunked, in, r->body, c->srv->o.max_body);
    if (rc == SR_CHUNKED_TOOLARGE) {
        body_too_large(c);
        return -1;
    }
    if (rc == SR_CHUNKED_BAD) {
        conn_fail(c, 400, "The request body's chunked encoding is malformed.");
        return -1;
    }
    return rc == SR_CHUNKED_DONE ? 1 : 0;
}

static void conn_process(struct sr_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (c->state == ST_HEAD) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return;
        /* Contiguous view of at most the head limit (+4 to see the terminator). */
        size_t look = avail < SR_MAX_HEADERS + 4 ? avail : SR_MAX_HEADERS + 4;
        const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
        struct sr_req *next = req_get(c);
        if (!next) {
            conn_fail(c, 500, "The gateway is out of memory.");
            return;
        }
        int rc = sr_http_parse_request(buf, look, SR_MAX_HEADERS, &next->head);
        if (rc == SR_HTTP_E_MORE) {
            if (c->req == NULL)
                arm_deadline(c, SR_HEAD_TIMEOUT);
            return;
        }
        if (rc < 0) {
            if (rc == SR_HTTP_E_TOOLARGE || rc == SR_HTTP_E_COUNT)
                conn_fail(c, 431,
                          "The request headers are larger than 16 KiB (or more than 128 "
                          "headers); send fewer or smaller headers.");
            else if (rc == SR_HTTP_E_VERSION)
                conn_fail(c, 505, "Only HTTP/1.0 and HTTP/1.1 are supported.");
            else if (rc == SR_HTTP_E_FRAMING)
                conn_fail(c, 400,
                          "The request's body framing is invalid (Transfer-Encoding other "
                          "than chunked, or together with Content-Length).");
            else
                conn_fail(c, 400, "The request is not valid HTTP/1.1.");
            return;
        }
        if (next->head.content_length > 0 &&
            (uint64_t)next->head.content_length > c->srv->o.max_body) {
            body_too_large(c);
            return;
        }
        start_request(c, buf, (size_t)rc);
        if (!c->req)
            return;
        evbuffer_drain(in, (size_t)rc);
        c->state = ST_BODY;
        arm_deadline(c, SR_HEAD_TIMEOUT);
        if (c->req->head.expect_continue && (c->body_left > 0 || c->body_chunked)) {
            evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
            conn_schedule_flush(c);
        }
    }
    if (c->state == ST_BODY) {
        int rc = read_body(c);
        if (rc <= 0)
            return;
        dispatch(c);
        return;
    }
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct sr_conn *c = arg;
    (void)bev;
    if (c->state == ST_HANDLING) {
        /* Read-ahead during a response: keep it bounded. */
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) > SR_PIPELINE_MAX)
            conn_reading(c, false);
        return;
    }
    if (c->state == ST_CLOSING) {
        evbuffer_drain(bufferevent_get_input(c->bev),
                       evbuffer_get_length(bufferevent_get_input(c->bev)));
        return;
    }
    conn_process(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct sr_conn *c = arg;
    /* Drained: plain sockets go back to writing from conn_flush_cb. */
    if (c->plain && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
    conn_written(c);
}

/* Plain sockets: our read event. End of stream and errors go where the bufferevent sends them. */
static void conn_recv_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sr_conn *c = arg;
    (void)fd;
    (void)what;
    ssize_t n = sr_sockio_read(c->bev);
    if (n > 0)
        conn_read_cb(c->bev, c);
    else if (n == 0)
        conn_event_cb(c->bev, BEV_EVENT_READING | BEV_EVENT_EOF, c);
    else if (errno != EAGAIN && errno != EWOULDBLOCK)
        conn_event_cb(c->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct sr_conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        return;
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && c->state == ST_CLOSING &&
        evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
        /* The client half-closed while we still flush the last response. */
        conn_reading(c, false);
        return;
    }
    conn_free(c);
}

/* ---- responses ----------------------------------------------------------- */

const struct sr_http_head *sr_req_head(const struct sr_req *r)
{
    return &r->head;
}

struct evbuffer *sr_req_body(struct sr_req *r)
{
    return r->body;
}

const char *sr_req_header(const struct sr_req *r, const char *name, size_t *n)
{
    return sr_http_header_get(&r->head, name, n);
}

const char *sr_req_peer(const struct sr_req *r)
{
    return r->peer;
}

bool sr_req_client_alive(const struct sr_req *r)
{
    return r->conn != NULL;
}

void sr_req_token_digest(struct sr_req *r, const char *tok, size_t n, uint8_t out[32])
{
    struct sr_conn *c = r->conn;
    if (c && n > 0 && n == c->tok_len && CRYPTO_memcmp(tok, c->tok, n) == 0) {
        memcpy(out, c->tok_digest, SHA256_DIGEST_LENGTH);
        return;
    }
    SHA256((const unsigned char *)tok, n, out);
    if (c && n > 0 && n <= sizeof(c->tok)) {
        memcpy(c->tok, tok, n);
        c->tok_len = n;
        memcpy(c->tok_digest, out, SHA256_DIGEST_LENGTH);
    }
}

/* Bounded copy with truncation, as snprintf("%s") but without its cost per request. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void sr_req_set_route(struct sr_req *r, const char *route)
{
    copy_str(r->route, sizeof(r->route), route);
}

void sr_req_set_rpc_method(struct sr_req *r, const char *m)
{
    copy_str(r->rpc_method, sizeof(r->rpc_method), m);
}

void sr_req_set_tool(struct sr_req *r, const char *tool)
{
    copy_str(r->tool, sizeof(r->tool), tool);
}

void sr_req_set_hooks(struct sr_req *r, sr_req_hook_cb on_abort, sr_req_hook_cb on_drain, void *arg)
{
    r->on_abort = on_abort;
    r->on_drain = on_drain;
    r->hook_arg = arg;
}

static bool head_request(const struct sr_req *r)
{
    return r->head.method.n == 4 && memcmp(r->head.method.p, "HEAD", 4) == 0;
}

/* Digits of v in base 10 or 16 at the end of buf[24]; returns where they start. */
static char *fmt_u64(char *buf, uint64_t v, unsigned base)
{
    char *p = buf + 24;
    do {
        *--p = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    return p;
}

/* Appends to a small fixed buffer; the caller sized it for everything it appends. */
struct piece_buf {
    char *p;
    size_t n;
};

static void piece(struct piece_buf *b, const char *s, size_t n)
{
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* Response heads are built from pieces rather than with printf: this runs for every request. */
/* A response head this long or shorter goes out with one evbuffer_add (one output callback). */
#define RESP_HEAD_STACK 2048

void sr_resp_start(struct sr_req *r, int status, const char *reason, size_t reason_len,
                   struct evbuffer *header_lines, int64_t content_length)
{
    struct sr_conn *c = r->conn;
    r->status = status;
    r->started = true;
    if (!c)
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    bool bodiless = head_request(r) || status == 204 || status == 304 || status < 200;
    if (!reason || reason_len == 0) {
        reason = status_reason(status);
        reason_len = strlen(reason);
    }
    /* Framing lines first (they decide chunked_out / close_delimited), at most
     * 16 + 20 + 2 + 24 + 2 bytes. */
    char fr_mem[96], num[24];
    struct piece_buf fr = {fr_mem, 0};
    if ((bodiless && content_length >= 0 && head_request(r)) ||
        (!bodiless && content_length >= 0)) {
        char *d = fmt_u64(num, (uint64_t)content_length, 10);
        piece(&fr, "Content-Length: ", 16);
        piece(&fr, d, (size_t)(num + sizeof(num) - d));
        piece(&fr, "\r\n", 2);
    } else if (!bodiless && r->head.minor >= 1) {
        r->chunked_out = true;
        piece(&fr, "Transfer-Encoding: chunked\r\n", 28);
    } else if (!bodiless) {
        r->close_delimited = true;
        c->keep_alive = false;
    }
    if (!c->keep_alive)
        piece(&fr, "Connection: close\r\n", 19);
    else if (r->head.minor == 0)
        piece(&fr, "Connection: keep-alive\r\n", 24);
    piece(&fr, "\r\n", 2);
    /* "HTTP/1.1 200 " then the reason: the status is clamped to three digits as a
     * parsed or chosen status always is. */
    unsigned st = status < 0 ? 0u : status > 999 ? 999u : (unsigned)status;
    char line[13] = {'H',
                     'T',
                     'T',
                     'P',
                     '/',
                     '1',
                     '.',
                     r->head.minor ? '1' : '0',
                     ' ',
                     (char)('0' + st / 100),
                     (char)('0' + st / 10 % 10),
                     (char)('0' + st % 10),
                     ' '};
    size_t hl_len = header_lines ? evbuffer_get_length(header_lines) : 0;
    if (sizeof(line) + reason_len + 2 + hl_len + fr.n <= RESP_HEAD_STACK) {
        char mem[RESP_HEAD_STACK];
        struct piece_buf b = {mem, 0};
        piece(&b, line, sizeof(line));
        piece(&b, reason, reason_len);
        piece(&b, "\r\n", 2);
        int got = hl_len ? evbuffer_remove(header_lines, b.p + b.n, hl_len) : 0;
        b.n += got > 0 ? (size_t)got : 0;
        piece(&b, fr.p, fr.n);
        evbuffer_add(out, b.p, b.n);
    } else {
        evbuffer_add(out, line, sizeof(line));
        evbuffer_add(out, reason, reason_len);
        evbuffer_add(out, "\r\n", 2);
        if (header_lines)
            evbuffer_add_buffer(out, header_lines);
        evbuffer_add(out, fr.p, fr.n);
    }
    conn_schedule_flush(c);
}

void sr_resp_body(struct sr_req *r, struct evbuffer *data)
{
    size_t n = evbuffer_get_length(data);
    if (!r->conn || n == 0 || head_request(r)) {
        evbuffer_drain(data, n);
        return;
    }
    struct evbuffer *out = bufferevent_get_output(r->conn->bev);
    if (r->chunked_out) {
        char num[26];
        char *p = fmt_u64(num, n, 16);
        num[24] = '\r';
        num[25] = '\n';
        evbuffer_add(out, p, (size_t)(num + sizeof(num) - p));
    }
    evbuffer_add_buffer(out, data);
    if (r->chunked_out)
        evbuffer_add(out, "\r\n", 2);
    r->bytes_out += n;
    conn_schedule_flush(r->conn);
}

size_t sr_resp_pending(const struct sr_req *r)
{
    if (!r->conn)
        return 0;
    return evbuffer_get_length(bufferevent_get_output(r->conn->bev));
}

static void req_done(struct sr_req *r, bool abort_conn)
{
    struct sr_conn *c = r->conn;
    r->ended = true;
    req_finish_log(r);
    if (!c) {
        req_free(r);
        return;
    }
    struct sr_server *s = c->srv;
    s->active--;
    if (r->idle_stream)
        s->idle--;
    r->idle_stream = false;
    c->req = NULL;
    req_release(c, r);
    conn_schedule_flush(c);
    if (abort_conn) {
        conn_free(c);
        return;
    }
    if (!c->keep_alive || s->listener == NULL) {
        conn_close_after_flush(c);
        return;
    }
    c->state = ST_HEAD;
    conn_reading(c, true);
    arm_deadline(c, SR_KEEPALIVE_TIMEOUT);
    /* A pipelined request may already be waiting. */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        conn_process(c);
}

void sr_resp_end(struct sr_req *r)
{
    if (r->conn && r->chunked_out && !head_request(r))
        evbuffer_add(bufferevent_get_output(r->conn->bev), "0\r\n\r\n", 5);
    if (r->close_delimited && r->conn)
        r->conn->keep_alive = false;
    req_done(r, false);
}

void sr_resp_abort(struct sr_req *r)
{
    req_done(r, true);
}

void sr_resp_simple(struct sr_req *r, int status, const char *ctype, const char *extra_headers,
                    const char *body, size_t n)
{
    struct evbuffer *hl = evbuffer_new();
    if (hl) {
        if (ctype) {
            evbuffer_add(hl, "Content-Type: ", 14);
            evbuffer_add(hl, ctype, strlen(ctype));
            evbuffer_add(hl, "\r\n", 2);
        }
        if (extra_headers)
            evbuffer_add(hl, extra_headers, strlen(extra_headers));
    }
    sr_resp_start(r, status, NULL, 0, hl, (int64_t)n);
    if (hl)
        evbuffer_free(hl);
    if (r->conn && n && !head_request(r)) {
        evbuffer_add(bufferevent_get_output(r->conn->bev), body, n);
        r->bytes_out += n;
    }
    sr_resp_end(r);
}

void sr_resp_json(struct sr_req *r, int status, const char *extra_headers, const char *body,
                  size_t n)
{
    sr_resp_simple(r, status, "application/json", extra_headers, body, n);
}

/* ---- server -------------------------------------------------------------- */

static void listener_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    /* EMFILE and friends: keep running; the accept is retried by libevent. */
    fprintf(stderr, "serena-remote: accept failed: %s\n", strerror(errno));
}

static SSL_CTX *tls_ctx(const char *cert, const char *key, char *errbuf, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(errbuf, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(errbuf, errlen,
                 "cannot load the TLS certificate %s: %s (check the path and that it is PEM)", cert,
                 ERR_reason_error_string(ERR_get_error()));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(errbuf, errlen,
                 "cannot load the TLS key %s or it does not match the certificate: %s", key,
                 ERR_reason_error_string(ERR_get_error()));
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int sr_server_new(struct event_base *base, const struct sr_server_opts *o, struct sr_server **out,
                  char *errbuf, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    *out = NULL;
    if (sr_parse_hostport(o->listen, &ss, &sslen) < 0) {
        snprintf(errbuf, errlen,
                 "--listen %s is not a valid address: use host:port, e.g. 127.0.0.1:8787",
                 o->listen);
        return -1;
    }
    if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
        snprintf(errbuf, errlen, "--tls-cert and --tls-key must be given together");
        return -1;
    }
    struct sr_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    s->base = base;
    s->o = *o;
    if (o->tls_cert) {
        s->ssl = tls_ctx(o->tls_cert, o->tls_key, errbuf, errlen);
        if (!s->ssl) {
            free(s);
            return -1;
        }
    }
    s->listener = evconnlistener_new_bind(
        base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
        (struct sockaddr *)&ss, (int)sslen);
    if (!s->listener) {
        snprintf(errbuf, errlen, "cannot listen on %s: %s (is another process using the port?)",
                 o->listen, strerror(errno));
        if (s->ssl)
            SSL_CTX_free(s->ssl);
        free(s);
        return -1;
    }
    evconnlistener_set_error_cb(s->listener, listener_error_cb);
    sr_log_attach(base);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&bound, &blen) == 0)
        sr_format_peer((struct sockaddr *)&bound, s->addr, sizeof(s->addr));
    *out = s;
    return 0;
}

void sr_server_stop_accepting(struct sr_server *s)
{
    if (!s || !s->listener)
        return;
    evconnlistener_free(s->listener);
    s->listener = NULL;
    /* Idle keep-alive connections are closed now; busy ones close after their response. */
    struct sr_conn *c = s->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->state == ST_HEAD && c->req == NULL &&
            evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
            conn_free(c);
    }
}

uint32_t sr_server_active_requests(const struct sr_server *s)
{
    return s ? s->active - s->idle : 0;
}

size_t sr_server_unsent(const struct sr_server *s)
{
    size_t n = 0;
    for (const struct sr_conn *c = s ? s->conns : NULL; c; c = c->next)
        n += evbuffer_get_length(bufferevent_get_output(c->bev));
    return n;
}

void sr_req_set_idle_stream(struct sr_req *r, bool idle)
{
    struct sr_conn *c = r->conn;
    /* Only a request the handler owns is counted; an ended or abandoned one is not. */
    if (!c || !r->dispatched || r->ended || r->idle_stream == idle)
        return;
    r->idle_stream = idle;
    if (idle)
        c->srv->idle++;
    else
        c->srv->idle--;
}

/*
 * Why the abort hook runs first and the response is ended after it: the
 * owner is told once, while the request is still valid, and gives up its
 * state (an upstream GET is cancelled, so no more data arrives for it); the
 * hooks are cleared before, so nothing can call them again. Ending with
 * sr_resp_end then frees the request like any finished one: a chunked stream
 * gets its last chunk, and keep_alive is off so the connection closes after
 * the flush (a close-delimited stream ends by that close).
 */
static void close_idle_stream(struct sr_conn *c, struct sr_req *r)
{
    sr_req_hook_cb on_abort = r->on_abort;
    void *arg = r->hook_arg;
    r->on_abort = NULL;
    r->on_drain = NULL;
    r->hook_arg = NULL;
    if (on_abort)
        on_abort(r, arg);
    c->keep_alive = false;
    if (r->started) {
        sr_resp_end(r);
        return;
    }
    /* Marked idle before its head went out (still waiting for its backend): the
     * client gets an answer rather than a cut connection. */
    char body[SR_ERROR_BODY_MAX];
    int n = sr_error_body(body, sizeof(body), SR_RPC_SERVER_ERROR,
                          "The gateway is shutting down; reconnect in a moment.", NULL, 0);
    sr_resp_json(r, 503, "Retry-After: 5\r\n", body, n < 0 ? 0 : (size_t)n);
}

void sr_server_close_idle_streams(struct sr_server *s)
{
    if (!s)
        return;
    /* From the head again after each one: an abort hook runs its owner's code, which
     * might end other connections; a closed stream's connection no longer matches. */
    bool again = true;
    while (again) {
        again = false;
        for (struct sr_conn *c = s->conns; c; c = c->next) {
            struct sr_req *r = c->req;
            if (r && c->state == ST_HANDLING && r->dispatched && !r->ended && r->idle_stream) {
                close_idle_stream(c, r);
                again = true;
                break;
            }
        }
    }
}

uint32_t sr_server_connections(const struct sr_server *s)
{
    return s ? s->nconns : 0;
}

uint32_t sr_server_idle_streams(const struct sr_server *s)
{
    return s ? s->idle : 0;
}

const char *sr_server_address(const struct sr_server *s)
{
    return s->addr;
}

void sr_server_free(struct sr_server *s)
{
    if (!s)
        return;
    if (s->listener)
        evconnlistener_free(s->listener);
    while (s->conns)
        conn_free(s->conns);
    sr_log_detach();
    if (s->ssl)
        SSL_CTX_free(s->ssl);
    free(s);
}
