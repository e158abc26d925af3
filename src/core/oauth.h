/*
 * OAuth policy that needs no I/O (docs/oauth.md): the parsers and rules the
 * built-in authorization server applies to what clients send, and the two
 * metadata documents it publishes. Freestanding, so the Worker can use the
 * same rules later; the host does the randomness, hashing and storage.
 *
 * - Form bodies and query strings (application/x-www-form-urlencoded):
 *   a parameter given twice is malformed (RFC 6749 section 3.1).
 * - Redirect URIs: https with a host, or http on a loopback host (RFC 8252
 *   section 7.3); no fragment, no user info, printable ASCII only. A
 *   loopback redirect matches its registration with any port.
 * - PKCE: S256 only; verifiers 43..128 unreserved characters.
 * - Public URL (the issuer): https, or http on a loopback host; no path,
 *   query or fragment.
 */
#ifndef SR_CORE_OAUTH_H
#define SR_CORE_OAUTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/json.h"
#include "core/limits.h"
#include "core/sha256.h"

/*
 * Find `key` in the form s[0..n) and decode its value (%XX and '+') into
 * out[0..cap) NUL-terminated. Returns 1 when found, 0 when absent, -1 when
 * the form is malformed (bad escape, the key repeated, a NUL or the value
 * longer than cap - 1).
 */
int sr_form_get(const char *s, size_t n, const char *key, char *out, size_t cap, size_t *outlen);

/* Decode one form component s[0..n) (%XX and '+'), NUL-terminated; -1 as for sr_form_get. */
int sr_form_decode(const char *s, size_t n, char *out, size_t cap, size_t *outlen);

/* Percent-encode s[0..n) (everything but unreserved characters) into out; -1 when cap is short. */
int sr_form_encode(const char *s, size_t n, char *out, size_t cap, size_t *outlen);

/* True when the form or query s[0..n) carries `key` at all (even empty, even twice). */
bool sr_form_has(const char *s, size_t n, const char *key);

/* 0 when uri[0..n) may be registered as a redirect URI, -1 with a reason in *why. */
int sr_oauth_redirect_check(const char *uri, size_t n, const char **why);

/* True when `presented` is `registered`, or both are loopback URIs differing only in port. */
bool sr_oauth_redirect_match(const char *registered, size_t rn, const char *presented, size_t pn);

/* The host (with port) of an absolute http(s) URI, for the consent page; -1 when there is none. */
int sr_oauth_uri_host(const char *uri, size_t n, const char **host, size_t *hlen);

/* A PKCE code_verifier (RFC 7636 section 4.1) or an S256 code_challenge (43 base64url chars). */
bool sr_oauth_verifier_ok(const char *v, size_t n);
bool sr_oauth_challenge_ok(const char *c, size_t n);
/* Constant time: does base64url(digest) equal challenge? (The host hashes the verifier.) */
bool sr_oauth_challenge_match(const uint8_t digest[SR_SHA256_LEN], const char *c, size_t n);

/* 0 when url[0..n) can be the issuer (see above; a trailing '/' is not allowed), else -1. */
int sr_oauth_public_url_check(const char *url, size_t n, const char **why);

/* The RFC 9728 protected resource document for <public>/mcp; length or -1. */
int sr_oauth_resource_metadata(const char *pub, char *out, size_t cap);
/* The same naming an external identity provider (core/jwt.h) first, then the built-in server
 * (pub) only when builtin is set; issuer NULL: as sr_oauth_resource_metadata. */
int sr_oauth_resource_metadata_with(const char *pub, const char *issuer, bool builtin, char *out,
                                    size_t cap);
/* The RFC 8414 authorization server document (cimd: client_id URLs accepted); length or -1. */
int sr_oauth_server_metadata(const char *pub, bool cimd, char *out, size_t cap);

/* A dynamic client registration (RFC 7591) as far as serena-remote keeps it. */
struct sr_oauth_reg {
    char name[SR_OAUTH_CLIENT_NAME_MAX + 1]; /* "" when none was given */
    char redirect[SR_OAUTH_REDIRECTS_MAX][SR_OAUTH_URI_MAX + 1];
    uint32_t nredirect;
};

/*
 * Parse a registration request body. Returns 0, or -1 with *error set to
 * "invalid_redirect_uri" or "invalid_client_metadata" and *why to a
 * description. Only public clients with the authorization code grant (plus
 * refresh_token) and response type code are registered; a requested
 * token_endpoint_auth_method is answered with "none" (RFC 7591 section 3.2.1
 * lets the server replace it). A client_name with control characters is
 * refused; it is shown on the consent page as unverified.
 */
int sr_oauth_registration_parse(const char *body, size_t n, struct sr_json_tok *toks, uint32_t cap,
                                struct sr_oauth_reg *out, const char **error, const char **why);

/*
 * Client ID metadata documents (CIMD, draft-ietf-oauth-client-id-metadata-document): a client_id
 * that is an https URL names a JSON document with the client's metadata.
 */
/* True when a client_id is a URL (starts with https://); registered ids never do. */
bool sr_oauth_is_url_client(const char *id, size_t n);
/* 0 when url may be a client_id URL: https, a host without user information, a path other than
 * "/" without "." or ".." segments, no fragment, at most SR_OAUTH_URI_MAX bytes; else -1, *why. */
int sr_oauth_cimd_url_check(const char *url, size_t n, const char **why);
/*
 * A fetched document for url: the registration rules (name, redirect URIs, grant and response
 * types), plus client_id equal to url byte for byte, no client_secret, and no client
 * authentication method but "none". 0, or -1 with *why.
 */
int sr_oauth_cimd_parse(const char *body, size_t n, const char *url, size_t un,
                        struct sr_json_tok *toks, uint32_t cap, struct sr_oauth_reg *out,
                        const char **why);

#endif
