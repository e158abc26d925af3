/*
 * The gateway's metrics registry: counters and histograms that the server,
 * the instance manager and the persistence code bump with one-line calls,
 * written out in the Prometheus text format by sr_metrics_write.
 *
 * Fixed size, no allocation: every label set is bounded. Routes are token
 * names (the token table holds at most SR_TOKENS_MAX, and SIGHUP may bring
 * new ones): at most SR_METRICS_ROUTES_MAX distinct names are kept, later
 * ones are counted under the route "_other". JSON-RPC methods are the MCP
 * methods the gateway knows plus "other", statuses the HTTP codes it can
 * answer plus "other". So a client cannot grow the registry by sending odd
 * method names, and a token (never passed in) cannot reach a label.
 *
 * Off switch: with the admin listener off nothing reads the registry, so
 * nothing is collected: every hook is an inline test of sr_metrics_on.
 *
 * Single-threaded: the gateway's event loop is the only caller.
 */
#ifndef SR_METRICS_METRICS_H
#define SR_METRICS_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include <event2/buffer.h>

extern bool sr_metrics_on;

/* Start (or stop) collecting; `run`: the container role, whose 401s are internal-secret
 * refusals (it checks no Bearer token). Clears nothing. */
void sr_metrics_enable(bool on, bool run);
/* Forget every value (tests). */
void sr_metrics_reset(void);

/* ---- hooks ---------------------------------------------------------------- */

/*
 * A finished request: route is "<generation>:<token name>" or "" / "-" when
 * none was found; rpc_method is the peeked JSON-RPC method or "" / "-".
 * authorization (may be NULL) is the request's Authorization header, read
 * only to tell why a 401 was given (missing, malformed, unknown token).
 */
void sr_metrics_request_(const char *route, const char *rpc_method, int status, uint64_t bytes_in,
                         uint64_t bytes_out, uint64_t duration_us, const char *authorization,
                         size_t authorization_len);
static inline void sr_metrics_request(const char *route, const char *rpc_method, int status,
                                      uint64_t bytes_in, uint64_t bytes_out, uint64_t duration_us,
                                      const char *authorization, size_t authorization_len)
{
    if (sr_metrics_on)
        sr_metrics_request_(route, rpc_method, status, bytes_in, bytes_out, duration_us,
                            authorization, authorization_len);
}

enum sr_metrics_inst_event {
    SR_MI_START,    /* a backend process was started */
    SR_MI_CRASH,    /* it exited without being asked to (or did not start in time) */
    SR_MI_EVICTION, /* stopped to make room (MAX_INSTANCES) */
    SR_MI_SLEEP,    /* stopped after SLEEP_AFTER without a POST */
    SR_MI_EVENT_COUNT
};

void sr_metrics_instance_(const char *token_name, enum sr_metrics_inst_event ev);
static inline void sr_metrics_instance(const char *token_name, enum sr_metrics_inst_event ev)
{
    if (sr_metrics_on)
        sr_metrics_instance_(token_name, ev);
}

/* A start became ready, start_us microseconds after it began (restore included). */
void sr_metrics_instance_ready_(uint64_t start_us);
static inline void sr_metrics_instance_ready(uint64_t start_us)
{
    if (sr_metrics_on)
        sr_metrics_instance_ready_(start_us);
}

enum sr_metrics_snap_op { SR_MS_SNAPSHOT, SR_MS_RESTORE, SR_MS_OP_COUNT };
enum sr_metrics_snap_result {
    SR_MS_OK,      /* archived and uploaded, or restored */
    SR_MS_SKIPPED, /* unchanged: nothing uploaded */
    SR_MS_NOTHING, /* restore: no snapshot in the store */
    SR_MS_FAILED,
    SR_MS_RESULT_COUNT
};

/* A snapshot job ended: its duration, and the archive's size when one moved. */
void sr_metrics_snapshot_(enum sr_metrics_snap_op op, enum sr_metrics_snap_result result,
                          uint64_t bytes, uint64_t duration_us);
static inline void sr_metrics_snapshot(enum sr_metrics_snap_op op,
                                       enum sr_metrics_snap_result result, uint64_t bytes,
                                       uint64_t duration_us)
{
    if (sr_metrics_on)
        sr_metrics_snapshot_(op, result, bytes, duration_us);
}

/* Sign-in (docs/oauth.md): what the built-in authorization server and the external issuer did. */
enum sr_metrics_oauth_event {
    SR_MO_REGISTERED,    /* a client registered (RFC 7591) */
    SR_MO_CIMD_READ,     /* a client metadata document was fetched and accepted */
    SR_MO_CIMD_REFUSED,  /* one could not be fetched, or was refused */
    SR_MO_WRONG_TOKEN,   /* the consent page was given a token that matches none */
    SR_MO_RATE_LIMITED,  /* consent, registration or a document fetch answered 429 */
    SR_MO_AUTHORIZED,    /* the person allowed: a code was issued */
    SR_MO_DENIED,        /* the person chose Deny */
    SR_MO_TOKENS_ISSUED, /* a code was exchanged for tokens */
    SR_MO_REFRESHED,     /* a refresh token was exchanged */
    SR_MO_REUSE_REVOKED, /* a used code or refresh token came back: its sign-in was revoked */
    SR_MO_GRANT_REFUSED, /* the token endpoint refused a code or refresh token otherwise */
    SR_MO_REVOKED,       /* a known token was revoked (RFC 7009) */
    SR_MO_JWT_ACCEPTED,  /* a request carried a valid JWT of the external issuer */
    SR_MO_JWT_REFUSED,   /* ... an invalid one */
    SR_MO_EVENT_COUNT
};

void sr_metrics_oauth_(enum sr_metrics_oauth_event ev);
static inline void sr_metrics_oauth(enum sr_metrics_oauth_event ev)
{
    if (sr_metrics_on)
        sr_metrics_oauth_(ev);
}

/* ---- exposition ------------------------------------------------------------ */

/* What only the caller knows at scrape time (the registry holds no pointers into the gateway). */
struct sr_metrics_gauges {
    const char *version;
    const char *role; /* "serve" or "run" */
    /* Instances by state; have_instances false in --upstream mode (no instance families). */
    bool have_instances;
    uint32_t starting, ready, idle, stopping, failed, asleep;
    uint32_t held;         /* requests waiting for a backend to start */
    uint32_t open_streams; /* idle GET /mcp streams */
    uint32_t in_flight;    /* requests being handled, streams excluded */
    uint32_t connections;  /* client connections */
    uint32_t tokens;       /* entries in the token table */
    bool oauth;            /* sign-in configured: the oauth events family is written */
    /* Per running backend: its route's token name and the RSS of its process tree. */
    uint32_t nbackends;
    const char *const *backend_name;
    const uint64_t *backend_rss;
};

/* Appends the whole exposition (text format 0.0.4) to out. */
void sr_metrics_write(struct evbuffer *out, const struct sr_metrics_gauges *g);

#endif
