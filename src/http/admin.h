/*
 * The admin listener's handler: the operator's view of a running gateway,
 * on its own socket (--admin-listen), never on the client listener.
 *
 *   GET /metrics    Prometheus text exposition (metrics/metrics.h)
 *   GET /instances  JSON: the gateway, and one entry per route (every token
 *                   of the current generation, plus records of older ones)
 *   GET /           the same as a small HTML page that reloads itself
 *
 * Access: with ADMIN_TOKEN set, every request must carry it as a Bearer
 * token (its SHA-256 compared in constant time). Without it the listener
 * must be on loopback (the gateway refuses to start otherwise), and then a
 * request's Host must name a loopback address too: a web page that gets a
 * browser to resolve its own name to 127.0.0.1 (DNS rebinding) gets 403.
 *
 * Nothing here ever holds a token: the token table keeps digests, and
 * routes are shown by name.
 */
#ifndef SR_HTTP_ADMIN_H
#define SR_HTTP_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/edge.h"
#include "http/server.h"

struct sr_admin {
    struct sr_edge *edge;     /* tokens, generation, instances, health */
    struct sr_server *client; /* the client listener: connections, streams */
    const char *role;         /* "serve" or "run" */
    const char *listen;       /* the client listener's address, for the page */
    bool has_token;
    uint8_t token_digest[32];
};

/*
 * Sets the token the listener requires: a plaintext token (16+ characters
 * of the Bearer alphabet) or "sha256:<64 hex>". 0, or -1 with a message
 * that never quotes the value.
 */
int sr_admin_set_token(struct sr_admin *a, const char *value, char *err, size_t errlen);

/* The sr_server handler; arg is the struct sr_admin. */
void sr_admin_handle(struct sr_req *r, void *arg);

#endif
