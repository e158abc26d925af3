/*
 * What the built-in authorization server's two files share (oauth.c: life cycle, metadata,
 * registration, token and revocation endpoints, dispatch; oauth_authorize.c: the authorization
 * endpoint, its consent page and client ID metadata documents). Not a public interface.
 */
#ifndef SR_HTTP_OAUTH_INTERNAL_H
#define SR_HTTP_OAUTH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/json.h"
#include "core/limits.h"
#include "core/tokens.h"
#include "http/oauth.h"
#include "http/oauth_store.h"
#include "http/parse.h"
#include "http/server.h"

struct fail_count {
    char addr[64];
    int64_t start;
    uint32_t n;
};

struct sr_oauth {
    char pub[SR_OAUTH_PUBLIC_URL_MAX + 1];
    char resource[SR_OAUTH_PUBLIC_URL_MAX + 8];
    bool https;
    char www[2 * SR_OAUTH_PUBLIC_URL_MAX + 128];
    char www_invalid[2 * SR_OAUTH_PUBLIC_URL_MAX + 160];
    struct sr_oauth_store *st;
    struct fail_count fails[SR_OAUTH_FAIL_ADDRS]; /* wrong tokens on the consent page */
    struct fail_count total;
    struct fail_count regs[SR_OAUTH_FAIL_ADDRS]; /* registrations and metadata fetches */
    struct fail_count regs_total;
    struct event_base *base; /* metadata documents are fetched on it */
    enum sr_oauth_cimd cimd; /* client_id URLs: off, on, or on with loopback hosts too */
    struct cimd_wait *waits; /* authorization requests waiting for a metadata document */
};

/* An authorization request whose client_id URL's document is being fetched. */
struct cimd_wait {
    struct cimd_wait *next;
    struct sr_oauth *o;
    struct sr_req *r;
    struct sr_fetch *f;
    char url[SR_OAUTH_URI_MAX + 1];
};

/*
 * Browser-based clients (the MCP Inspector) call metadata, registration, token and revocation
 * with fetch. Those endpoints use no cookie or other ambient credential (clients are public and
 * codes are bound by PKCE), so any origin may read their answers. The consent page is not one
 * of them: it sets a cookie and is never answered cross-origin.
 */
#define CORS "Access-Control-Allow-Origin: *\r\n"

/* Registration bodies and metadata documents are small; their JSON tokens fit in this. */
extern struct sr_json_tok sr_oa_reg_toks[2048];

int64_t sr_oa_now(void);
bool sr_oa_span_is(const struct sr_span *s, const char *lit);
/* The query string of the request target ("" when none). */
const char *sr_oa_query(const struct sr_req *r, size_t *n);
/* prefix + base64url of 32 random bytes, NUL-terminated; -1 when the generator fails. */
int sr_oa_random_token(const char *prefix, char *out, size_t cap);
void sr_oa_digest(const char *s, size_t n, uint8_t out[32]);
/* An OAuth error document (RFC 6749 section 5.2); never holds a secret. */
void sr_oa_error(struct sr_req *r, int status, const char *error, const char *desc);
/* The request body as a NUL-free span, or NULL (answered) when it is too large. */
const char *sr_oa_form_body(struct sr_req *r, size_t *n);
/* Read a form field; false (answered 400) when the form is malformed. */
bool sr_oa_field(struct sr_req *r, const char *f, size_t n, const char *key, char *out, size_t cap,
                 bool *present);
/* The client address without its port: what attempts are counted by. */
void sr_oa_peer_host(struct sr_req *r, char *out, size_t cap);
/* Whether a counter's window (SR_OAUTH_FAIL_WINDOW) already holds max; starts a new window when
 * the last one is over. */
bool sr_oa_window_full(struct fail_count *f, int64_t now, uint32_t max);
/* The counter of addr in table (reusing the oldest slot for a new address). */
struct fail_count *sr_oa_fails_for(struct fail_count *table, const char *addr, int64_t now);
/* Registrations and metadata fetches: false when the rate limit is reached; counts this one. */
bool sr_oa_new_client_allowed(struct sr_oauth *o, struct sr_req *r);
/* The client a client_id names: a registration, or a client_id URL's record (CIMD). */
struct sr_oauth_client *sr_oa_client_for(struct sr_oauth *o, const char *client_id);

/* An HTML page saying why a sign-in cannot go on (desc escaped). */
void sr_oa_error_page(struct sr_req *r, int status, const char *desc);

/* GET /oauth/authorize (fetched: a client_id URL's document was just read). */
void sr_oa_authorize(struct sr_oauth *o, struct sr_req *r, bool fetched);
/* POST /oauth/authorize: the consent form. */
void sr_oa_consent(struct sr_oauth *o, struct sr_req *r, const struct sr_tokens *t);

#endif
