/*
 * Outbound fetches of small documents (docs/oauth.md): a client's metadata document (CIMD) and an
 * identity provider's JWKS. Asynchronous on the gateway's event loop (libevent's DNS resolver and
 * HTTP client over OpenSSL), bounded in size and time, GET only, no redirects followed, no
 * cookies, no credentials sent.
 *
 * Rules:
 * - https only, certificate verified against the system's trust store (OpenSSL's default paths,
 *   so SSL_CERT_FILE / SSL_CERT_DIR apply) and the URL's host name; plain http only when
 *   `allow_http_loopback` is set and the host is loopback (an operator-configured local issuer).
 * - `public_only` (URLs a client chose: CIMD) refuses every address that is not a public unicast
 *   address (loopback, private, link-local, CGNAT, multicast, unspecified, documentation,
 *   benchmarking, unique local, IPv4-mapped forms of those) after resolution and connects to the
 *   address it checked, so a name cannot resolve once to a public and then to a private address
 *   (DNS rebinding). `allow_loopback` lifts the refusal for loopback addresses only (tests and
 *   local development, SERENA_REMOTE_OAUTH_CIMD=loopback).
 * - The answer must be 200 with a body of at most max_bytes; anything else is an error naming
 *   what happened (never echoing the body).
 *
 * Ownership: sr_fetch_start copies the URL; the callback runs exactly once (unless the fetch is
 * cancelled first) from the event loop, never from inside sr_fetch_start; the body passed to it is
 * valid only during the call. After the callback, the fetch is freed by the module.
 */
#ifndef SR_HTTP_FETCH_H
#define SR_HTTP_FETCH_H

#include <stddef.h>
#include <stdbool.h>

struct event_base;
struct sr_fetch;

struct sr_fetch_opts {
    size_t max_bytes;         /* body bound (e.g. 5120 for CIMD, 65536 for a JWKS) */
    unsigned timeout_ms;      /* the whole fetch: resolution, connection, TLS, answer */
    bool public_only;         /* refuse non-public addresses (client-chosen URLs) */
    bool allow_loopback;      /* with public_only: loopback addresses are allowed */
    bool allow_http_loopback; /* http:// to a loopback host is allowed */
};

struct sr_fetch_result {
    int status;       /* HTTP status, or 0 when no answer came */
    const char *body; /* NULL unless status is 200 and the body fit */
    size_t len;
    const char *error; /* NULL on success, else a short description (no secrets) */
    long max_age; /* seconds from Cache-Control max-age; -1 when absent; 0 for no-store/no-cache */
};

typedef void (*sr_fetch_cb)(void *arg, const struct sr_fetch_result *res);

/*
 * Start fetching url. Returns the fetch, or NULL with err set when the URL or the options are
 * refused outright (the callback is then never called).
 */
struct sr_fetch *sr_fetch_start(struct event_base *base, const char *url,
                                const struct sr_fetch_opts *o, sr_fetch_cb cb, void *arg, char *err,
                                size_t errlen);

/* Cancel a fetch whose callback has not run yet; its callback will not run. */
void sr_fetch_cancel(struct sr_fetch *f);

/* Tests: resolve with this resolver (not freed here) instead of the system's; NULL: the system's
 * again. */
struct evdns_base;
void sr_fetch_set_resolver(struct evdns_base *dns, struct event_base *base);

/* Free the process's resolver and TLS context (at exit, after every fetch ended). */
void sr_fetch_shutdown(void);

#endif
