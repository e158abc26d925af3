/*
 * An external identity provider (SERENA_REMOTE_OAUTH_ISSUER, docs/oauth.md): `serve` accepts
 * JWT access tokens the issuer signed, checked against its JWKS, and lets each stand for the
 * static token its configured claim names (so the request is routed exactly as that token's).
 *
 * Keys: the JWKS (SERENA_REMOTE_OAUTH_JWKS_URL, else the jwks_uri of the issuer's
 * /.well-known/openid-configuration or /.well-known/oauth-authorization-server) is fetched at
 * start, every SR_IDP_JWKS_REFRESH seconds, and when a token names a kid it does not hold; the
 * last at most once per SR_IDP_UNKNOWN_KID_INTERVAL, so a flood of made-up kids costs the
 * issuer one request. A request whose kid is unknown is held until that refresh answers (at
 * most SR_IDP_FETCH_TIMEOUT_MS), then judged again; when a refresh is not allowed yet, it is
 * refused at once.
 *
 * Ownership: sr_idp_new returns a heap object freed with sr_idp_free (which cancels a fetch in
 * flight and answers nothing for held requests: the server has ended them by then).
 */
#ifndef SR_HTTP_IDP_H
#define SR_HTTP_IDP_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/tokens.h"
#include "http/server.h"

struct event_base;
struct sr_idp;

struct sr_idp_opts {
    const char *issuer;     /* SERENA_REMOTE_OAUTH_ISSUER */
    const char *jwks_url;   /* NULL or "": discovered from the issuer's metadata */
    const char *claim;      /* claim naming the token ("sub") */
    const char *claim_map;  /* NULL or "": the claim value is the token name */
    const char *public_url; /* the resource is <public_url>/mcp */
    uint32_t skew;          /* seconds of clock skew tolerated */
    bool builtin;           /* the built-in authorization server runs too (OAUTH_ENABLED=1) */
};

struct sr_idp *sr_idp_new(struct event_base *base, const struct sr_idp_opts *o, char *err,
                          size_t errlen);
void sr_idp_free(struct sr_idp *p);

/* Requests the module answers itself: the protected resource metadata. (A token in the query
 * string is refused by the edge before, http/edge.c.) */
bool sr_idp_owns(const struct sr_req *r);
void sr_idp_handle(struct sr_idp *p, struct sr_req *r);

/* The token table changed (start, SIGHUP): warn about map entries that name no token. */
void sr_idp_tokens_changed(const struct sr_idp *p, const struct sr_tokens *t);

/* The WWW-Authenticate line (with CRLF) of a 401, as sr_oauth_www_authenticate. */
const char *sr_idp_www_authenticate(const struct sr_idp *p, bool credential_sent);

enum sr_idp_verdict {
    SR_IDP_NOT_JWT, /* the Bearer is not shaped like a JWT: look it up elsewhere */
    SR_IDP_OK,      /* digest now holds the mapped static token's digest */
    SR_IDP_REFUSED, /* an invalid JWT (the reason is logged); digest unchanged */
    SR_IDP_HELD,    /* waiting for the JWKS: resume(r, arg) will run the request again */
};

typedef void (*sr_idp_resume_cb)(struct sr_req *r, void *arg);

/* Judge the request's Bearer (not a static token) as a JWT access token. */
enum sr_idp_verdict sr_idp_bearer(struct sr_idp *p, struct sr_req *r, const struct sr_tokens *t,
                                  uint8_t digest[32], sr_idp_resume_cb resume, void *arg);

#endif
