/*
 * The relay: one client request forwarded to one upstream, the response
 * streamed back with backpressure.
 *
 * Upstream request: the client's method and query on the upstream's path,
 * Host rewritten to the upstream's host:port, and only the headers MCP needs
 * (Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID,
 * and 2026-07-28's Mcp-Method, Mcp-Name and Mcp-Param-*);
 * Authorization and Origin never leave the edge. Response: status, headers
 * (hop-by-hop ones excepted) and bytes exactly as the upstream sent them,
 * each read forwarded at once, reading paused while the client's output is
 * above SR_RELAY_HIGH_WATER. A client that hangs up cancels the upstream
 * request; an upstream that fails before its head gives 502 with a JSON-RPC
 * error naming what failed. An upstream that fails in the middle of an SSE
 * response to a request ends the stream with a JSON-RPC error event for that
 * request id (the client fails at once instead of at its timeout); the
 * request is never sent again.
 */
#ifndef SR_HTTP_RELAY_H
#define SR_HTTP_RELAY_H

#include <stdbool.h>

#include "http/server.h"
#include "http/upstream.h"

struct sr_relay_opts {
    bool fix_accept;    /* send "Accept: application/json, text/event-stream" */
    const char *rpc_id; /* raw JSON id for error bodies, "" when none */
    /* Called once when the exchange is over, however it ended (instance accounting). */
    void (*on_end)(void *arg);
    void *end_arg;
    /*
     * Edge sessions (all optional; the callbacks get end_arg):
     * session_up: the mcp-session-id sent upstream instead of the client's
     * ("" sends none). protocol: an mcp-protocol-version to send when the
     * client sent none. on_session: the upstream's mcp-session-id response
     * header (an initialize answer) is handed over, and the returned string
     * is what the client gets instead (NULL: the header is dropped).
     * on_lost: when the upstream answers 404 before anything reached the
     * client (its session is gone, the request was not delivered), the relay
     * stops without touching the client request and calls on_lost instead of
     * on_end, so the caller can re-initialize and send the request again.
     */
    const char *session_up;
    /* The upstream could not be connected to (it was gone: a backend that died a moment ago): the
     * request was not sent; the relay stops without touching the client request and calls
     * on_unsent instead of on_end, so the caller may send it again once a backend runs. */
    void (*on_unsent)(void *arg);
    const char *protocol;
    const char *(*on_session)(void *arg, const char *v, size_t n);
    void (*on_lost)(void *arg);
    /* A copy of the first SR_RELAY_TAP_MAX body bytes, handed over before on_end however the
     * exchange ended once a response head came (the edge reads activate_project's result). */
    void (*on_tap)(void *arg, int status, const char *body, size_t n);
};

/* Relay r to u. Ends r one way or another. */
void sr_relay_forward(struct sr_req *r, struct sr_upstream *u, const struct sr_relay_opts *o);

/*
 * An error answer (502, or 503 with Retry-After: retry_after seconds, 5 when
 * 0) with a JSON-RPC body saying what failed. Ends r.
 */
void sr_relay_fail(struct sr_req *r, int status, unsigned retry_after, const char *rpc_id,
                   const char *what);

/*
 * Deliver r's request to u in the background (the initialized shim): the
 * client has already been answered, so the response is read and dropped and
 * its status logged. Call before ending r. 0, or -1 when too many are in
 * flight or memory ran out (logged). session_up: as in sr_relay_opts (NULL:
 * the client's header).
 */
int sr_relay_background(struct sr_req *r, struct sr_upstream *u, bool fix_accept, const char *route,
                        const char *session_up);

#endif
