/*
 * The HTTP/1.1 server side of the edge: listening sockets, optional TLS,
 * client connections and the request/response life cycle.
 *
 * One request is handled at a time per connection (pipelined requests wait
 * in the input buffer). A request is handed to the handler once its head and
 * body are complete; the handler answers with sr_resp_* calls, at once or
 * later (relay). Limits answer with their own statuses and JSON-RPC bodies:
 * 431 for heads over SR_MAX_HEADERS, 413 for bodies over max_body, 400 for
 * malformed input, 505 for other HTTP versions.
 *
 * Ownership: the server owns every struct sr_req. A handler may keep the
 * pointer until it calls sr_resp_end/sr_resp_abort or until the server calls
 * its abort hook (the client went away, or sr_server_close_idle_streams);
 * after either it must not touch it. An abort hook only frees its owner's
 * state: it must not call sr_resp_* (the server ends the request itself).
 */
#ifndef SR_HTTP_SERVER_H
#define SR_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include <event2/event.h>
#include <event2/buffer.h>

#include "core/limits.h"
#include "http/parse.h"

struct sr_server;
struct sr_req;

typedef void (*sr_req_handler_cb)(struct sr_req *r, void *arg);
typedef void (*sr_req_hook_cb)(struct sr_req *r, void *arg);

struct sr_server_opts {
    const char *listen;   /* "host:port"; IPv6 as "[::1]:8787" */
    const char *tls_cert; /* PEM paths, both or neither */
    const char *tls_key;
    uint32_t max_body;
    sr_req_handler_cb handler;
    void *handler_arg;
    bool no_metrics; /* the admin listener: its requests are not the clients' traffic */
};

/* Creates the listener; 0 or -1 with a message in errbuf. */
int sr_server_new(struct event_base *base, const struct sr_server_opts *o, struct sr_server **out,
                  char *errbuf, size_t errlen);
/* Stop accepting; existing connections go on. */
void sr_server_stop_accepting(struct sr_server *s);
/* Requests being handled right now: not idle keep-alive connections, and not
 * requests marked with sr_req_set_idle_stream (they hold no work to drain). */
uint32_t sr_server_active_requests(const struct sr_server *s);
/* Bytes of responses queued to clients and not yet written (a drain waits for them too: a
 * response that ended is not delivered until its last bytes left). */
size_t sr_server_unsent(const struct sr_server *s);
/*
 * Ends every request marked with sr_req_set_idle_stream, now (SIGTERM: idle
 * streams are closed at once, real requests are drained). For each one, in
 * this order: its abort hook runs exactly once (its owner frees its state;
 * the request is still valid during the call, and its hooks are cleared
 * before, so they never run again); then the server ends the response: if
 * the head was sent, cleanly (a chunked stream gets its last chunk), else
 * with 503 and Retry-After; the connection closes after the flush. The owner
 * must not touch the request after its hook returned.
 */
void sr_server_close_idle_streams(struct sr_server *s);
uint32_t sr_server_connections(const struct sr_server *s);
/* Requests marked with sr_req_set_idle_stream that are still open. */
uint32_t sr_server_idle_streams(const struct sr_server *s);
/* Close every connection (after a drain) and free the server. Accepts NULL. */
void sr_server_free(struct sr_server *s);
/* Bound address, e.g. "127.0.0.1:8787" (useful with port 0). */
const char *sr_server_address(const struct sr_server *s);

/* Request accessors: spans stay valid until the response ends. */
const struct sr_http_head *sr_req_head(const struct sr_req *r);
struct evbuffer *sr_req_body(struct sr_req *r);
const char *sr_req_header(const struct sr_req *r, const char *name, size_t *n);
bool sr_req_client_alive(const struct sr_req *r);
/* The client's address as the access log prints it ("127.0.0.1:54321", "[::1]:54321"). */
const char *sr_req_peer(const struct sr_req *r);

/*
 * out = SHA-256 of tok[0..n), a bearer token this request carries. The last
 * digest is cached per connection (tokens up to SR_TOKEN_CACHE_MAX bytes): a
 * keep-alive client sends the same token with every request. The cached
 * token is compared in constant time and wiped when the connection closes.
 */
void sr_req_token_digest(struct sr_req *r, const char *tok, size_t n, uint8_t out[32]);

/* What the access log prints for this request (copied). */
void sr_req_set_route(struct sr_req *r, const char *route);
void sr_req_set_rpc_method(struct sr_req *r, const char *m);
/* The tool a tools/call names (params.name), for the audit field tool= (copied, cut at
 * SR_TOOL_NAME_MAX bytes). */
void sr_req_set_tool(struct sr_req *r, const char *tool);

/* Hooks: abort fires if the client disconnects before the response ends, or
 * when sr_server_close_idle_streams ends an idle stream; drain fires when
 * buffered output falls below SR_RELAY_LOW_WATER. */
void sr_req_set_hooks(struct sr_req *r, sr_req_hook_cb on_abort, sr_req_hook_cb on_drain,
                      void *arg);

/*
 * Marks (idle true) a request the handler owns as a long-lived stream that
 * holds no work, e.g. a GET /mcp server-to-client SSE stream: it is not
 * counted by sr_server_active_requests, and sr_server_close_idle_streams ends
 * it. false counts it again (the stream started real work, e.g. it carries a
 * resumed response). Set the abort hook that frees the owner's state before
 * or together with marking. Either call may come at any time between the
 * dispatch and the end of the response, before or after sr_resp_start; the
 * mark ends with the request (a keep-alive connection's next request starts
 * unmarked).
 */
void sr_req_set_idle_stream(struct sr_req *r, bool idle);

/*
 * A whole response in one call. extra_headers: preformatted "Name: value\r\n"
 * lines or NULL. Ends the request.
 */
void sr_resp_simple(struct sr_req *r, int status, const char *ctype, const char *extra_headers,
                    const char *body, size_t n);
/* A JSON-RPC error body (application/json) with optional extra header lines. */
void sr_resp_json(struct sr_req *r, int status, const char *extra_headers, const char *body,
                  size_t n);
/*
 * Streaming: start with the status line and header lines (preformatted,
 * without Content-Length/Transfer-Encoding); content_length -1 means unknown
 * (chunked to HTTP/1.1 clients, close-delimited to HTTP/1.0 ones).
 */
void sr_resp_start(struct sr_req *r, int status, const char *reason, size_t reason_len,
                   struct evbuffer *header_lines, int64_t content_length);
/* Moves all of data to the client (framed as needed). */
void sr_resp_body(struct sr_req *r, struct evbuffer *data);
/* Bytes waiting in the client's output buffer. */
size_t sr_resp_pending(const struct sr_req *r);
void sr_resp_end(struct sr_req *r);
/* Cut the response off (e.g. the upstream failed mid-stream): closes the connection. */
void sr_resp_abort(struct sr_req *r);

#endif
