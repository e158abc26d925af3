/*
 * Re-initializing a backend session for an edge session whose backend
 * session is gone (the instance slept, crashed or was replaced, the gateway
 * restarted, or the backend dropped an idle session).
 *
 * Two exchanges, as a client would make them: POST the recorded initialize
 * request (no session id), take the mcp-session-id of a successful answer,
 * then POST notifications/initialized with it (and the recorded protocol
 * version). Only then is the backend session ready for the client's request.
 *
 * Ownership: the callback runs exactly once, from the loop, unless the
 * exchange is cancelled first; never from inside sr_reinit_start. The
 * handle is invalid once the callback has been called.
 */
#ifndef SR_HTTP_REINIT_H
#define SR_HTTP_REINIT_H

#include <stddef.h>
#include <stdbool.h>

#include "http/upstream.h"

struct sr_reinit;

/* ok: backend_sid is the new session (valid during the call); else err says what failed. */
typedef void (*sr_reinit_cb)(void *arg, const char *backend_sid, const char *err);

/* body: the initialize request (sr_session_reinit_body); proto: "" when unknown. 0 or -1. */
int sr_reinit_start(struct sr_upstream *u, const char *body, size_t n, const char *proto,
                    sr_reinit_cb cb, void *arg, struct sr_reinit **out);
/* Abandon it; the callback will not run. Accepts NULL. */
void sr_reinit_cancel(struct sr_reinit *x);

/*
 * Whether a response body (JSON, or an event stream's data lines) holds a
 * JSON-RPC result; *is_error then says whether it is a tool result with
 * "isError": true.
 */
bool sr_rpc_result_in(const char *body, size_t n, bool *is_error);

#endif
