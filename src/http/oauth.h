/*
 * The built-in OAuth 2.1 authorization server of `serve` (OAUTH_ENABLED=1,
 * docs/oauth.md). It lets a client that cannot be given a static token
 * (Claude.ai and ChatGPT connectors, mcp-remote without --header) sign in:
 * the person proves who they are on the consent page by entering one of the
 * gateway's static tokens, and the grant is bound to that token's NAME, so
 * the OAuth client reaches the same route, instance and sessions.
 *
 * Endpoints (all under the public URL, the issuer):
 *   GET  /.well-known/oauth-protected-resource[/mcp]   RFC 9728
 *   GET  /.well-known/oauth-authorization-server       RFC 8414
 *   POST /oauth/register                               RFC 7591 (public clients)
 *   GET  /oauth/authorize, POST /oauth/authorize       consent page, code + PKCE S256
 *   POST /oauth/token                                  authorization_code, refresh_token
 *   POST /oauth/revoke                                 RFC 7009
 *
 * Ownership: sr_oauth_new returns a heap object the caller frees with
 * sr_oauth_free; the token table passed to each call is borrowed.
 */
#ifndef SR_HTTP_OAUTH_H
#define SR_HTTP_OAUTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/tokens.h"
#include "http/server.h"

struct sr_oauth;

/*
 * public_url: the issuer (checked: https, or http on loopback; no path);
 * state_dir: where oauth.state lives (created 0700 when missing). NULL with
 * err on a bad URL or an unreadable state file.
 */
struct sr_oauth *sr_oauth_new(const char *public_url, const char *state_dir, char *err,
                              size_t errlen);
void sr_oauth_free(struct sr_oauth *o);

/* Client ID metadata documents: off; on (public hosts only); on with loopback hosts allowed
 * too (tests and local development). */
enum sr_oauth_cimd { SR_OAUTH_CIMD_OFF = 0, SR_OAUTH_CIMD_ON, SR_OAUTH_CIMD_LOOPBACK };

/* Accept client_id URLs, fetching their documents on base (off until this is called). */
struct event_base;
void sr_oauth_set_cimd(struct sr_oauth *o, struct event_base *base, enum sr_oauth_cimd mode);

/* True when the request is the authorization server's (its paths). A token in the query string
 * is refused by the edge before (http/edge.c). */
bool sr_oauth_owns(const struct sr_req *r);

/* Answer a request sr_oauth_owns accepted; t: the static tokens (the consent page checks them). */
void sr_oauth_handle(struct sr_oauth *o, struct sr_req *r, const struct sr_tokens *t);

/*
 * A Bearer that is not a static token: when digest is a live access token
 * whose grant is still bound to a token of t, overwrite digest with that
 * static token's digest (so classification routes it as that token) and
 * return true; otherwise leave it and return false.
 */
bool sr_oauth_bearer(struct sr_oauth *o, const struct sr_tokens *t, uint8_t digest[32]);

/*
 * The WWW-Authenticate line (with CRLF) every 401 carries, naming the resource metadata; with
 * error="invalid_token" when a credential was sent (RFC 6750 section 3.1: a client then knows
 * its access token expired or was revoked, and refreshes or signs in again).
 */
const char *sr_oauth_www_authenticate(const struct sr_oauth *o, bool credential_sent);

/* The token table changed (start, SIGHUP): end every code and grant whose token is gone. */
void sr_oauth_tokens_changed(struct sr_oauth *o, const struct sr_tokens *t);

#endif
