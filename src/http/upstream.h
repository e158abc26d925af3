/*
 * HTTP/1.1 client for upstream MCP servers, with a keep-alive pool.
 *
 * An upstream is one "http://host:port/path" (numeric host or localhost). A
 * request is sent as preformatted bytes; the response arrives as a head, then
 * body data as it is read (nothing is buffered beyond what one read gives),
 * then done or error. Connections that end a response cleanly go back to the
 * pool for SR_POOL_IDLE_TIMEOUT seconds. A request that fails on a reused
 * connection before any response byte arrived is retried once on a fresh
 * connection (the server closed an idle keep-alive connection under us).
 *
 * Ownership: sr_up_send takes the request buffer. The handle is valid until
 * on_done or on_error has returned, or until sr_up_cancel; no callback runs
 * after sr_up_cancel. A failed sr_up_send calls no callback.
 */
#ifndef SR_HTTP_UPSTREAM_H
#define SR_HTTP_UPSTREAM_H

#include <stddef.h>
#include <stdbool.h>

#include <event2/event.h>
#include <event2/buffer.h>

#include "http/parse.h"

struct sr_upstream;
struct sr_up_req;

struct sr_up_cbs {
    /* The response head; spans are valid only during the call. */
    void (*on_head)(void *arg, const struct sr_http_head *h);
    /* Body bytes: the callee must drain `data`. */
    void (*on_data)(void *arg, struct evbuffer *data);
    void (*on_done)(void *arg);
    /* `what` says what failed, for people ("timed out ..."). It starts with "cannot connect"
     * exactly when no connection was made, so no byte of the request was sent. */
    void (*on_error)(void *arg, const char *what, bool got_head);
};

/* url: "http://127.0.0.1:PORT/mcp". 0 or -1 with a message. */
int sr_upstream_new(struct event_base *base, const char *url, struct sr_upstream **out,
                    char *errbuf, size_t errlen);
/* Free; in-flight requests are ended as by sr_upstream_close_all. Accepts NULL. */
void sr_upstream_free(struct sr_upstream *u);
/*
 * End every exchange now (an instance goes to sleep or died): each fails
 * with `why` (on_error; got_head for responses already streaming).
 */
void sr_upstream_close_all(struct sr_upstream *u, const char *why);
/* "127.0.0.1:PORT": the Host header value the upstream expects. */
const char *sr_upstream_hostport(const struct sr_upstream *u);
/* "/mcp" */
const char *sr_upstream_path(const struct sr_upstream *u);
/* Requests in flight and idle pooled connections (for /health and tests). */
unsigned sr_upstream_inflight(const struct sr_upstream *u);
unsigned sr_upstream_idle(const struct sr_upstream *u);

/* head_request: the response has no body whatever its headers say. */
int sr_up_send(struct sr_upstream *u, struct evbuffer *request, bool head_request,
               const struct sr_up_cbs *cbs, void *arg, struct sr_up_req **out);
/* Stop/resume reading the response (backpressure). */
void sr_up_pause(struct sr_up_req *q, bool pause);
/* Abandon the exchange: the connection is closed, no callback runs. */
void sr_up_cancel(struct sr_up_req *q);

#endif
