/*
 * The edge's request handler: asks the core what to do with each request
 * (sr_classify) and carries the decision out: health and status documents,
 * refusals, the initialized shim, and relays to the route's upstream.
 *
 * The token table can be replaced at any time (SIGHUP); requests already
 * classified are unaffected because nothing refers to the table afterwards.
 */
#ifndef SR_HTTP_EDGE_H
#define SR_HTTP_EDGE_H

#include <stdint.h>

#include "core/classify.h"
#include "core/health.h"
#include "core/tokens.h"
#include "http/idp.h"
#include "http/oauth.h"
#include "http/server.h"
#include "http/session.h"
#include "http/upstream.h"
#include "instance/manager.h"

struct gstream;

struct sr_edge {
    struct sr_policy policy;        /* policy.tokens points at `tokens` */
    struct sr_tokens *tokens;       /* owned; swapped by sr_edge_set_tokens */
    struct sr_upstream *upstream;   /* borrowed: every route goes here (legacy singleton mode) */
    struct sr_instances *instances; /* borrowed: one backend per route (when no upstream) */
    struct sr_health health;        /* static fields filled by the caller */
    uint64_t started_us;
    bool has_secret; /* run: requests must carry X-Serena-Internal-Secret */
    uint8_t secret_digest[32];
    struct event_base *base;
    struct sr_sessions *sessions; /* owned by the caller; NULL: sessions pass through */
    struct gstream *streams;      /* clients' GET streams (instances mode) */
    struct sr_oauth *oauth;       /* borrowed; NULL unless OAUTH_ENABLED (http/oauth.h) */
    struct sr_idp *idp; /* borrowed; NULL unless SERENA_REMOTE_OAUTH_ISSUER (http/idp.h) */
};

/* run: require the Worker's shared secret on every request but /health. */
void sr_edge_set_internal_secret(struct sr_edge *e, const char *secret);

/* The server's handler callback; arg is the struct sr_edge. */
void sr_edge_handle(struct sr_req *r, void *arg);

/* Take ownership of t (heap), freeing the previous table; OAuth grants bound to a token that
 * is gone end with it. */
void sr_edge_set_tokens(struct sr_edge *e, struct sr_tokens *t);

/* sr_inst_opts.on_state (arg: the edge): attach parked GET streams to a ready backend. */
void sr_edge_instance_state(void *arg, const char *route, struct sr_instance *inst, bool ready);

/* Write the /health document; returns its length or -1. */
int sr_edge_health(struct sr_edge *e, char *out, size_t cap);

#endif
