/*
 * The built-in authorization server's records (docs/oauth.md): registered
 * clients, pending authorization codes, and issued access and refresh
 * tokens. Codes and tokens are kept only as SHA-256 digests; a grant is bound
 * to a static token's NAME plus a fingerprint of that token's digest, so
 * removing or changing the token ends the grant.
 *
 * Everything lives in fixed arrays (limits.h: SR_OAUTH_*), is saved after each
 * change to <state-dir>/oauth.state (mode 0600, written to a temporary file
 * and renamed) and read back at start, so grants survive restarts. Expired
 * records are swept on every save; when an array is full the record closest
 * to its end (or least recently used client) makes room.
 *
 * Ownership: the store owns its arrays; callers edit records in place and
 * call sr_oauth_store_save.
 */
#ifndef SR_HTTP_OAUTH_STORE_H
#define SR_HTTP_OAUTH_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/limits.h"
#include "core/tokens.h"

#define SR_OAUTH_CLIENT_ID_LEN 22 /* base64url of 16 random bytes */
#define SR_OAUTH_CHALLENGE_LEN 43

struct sr_oauth_client {
    bool used;
    /* Registered: random. From a metadata document: derived from its URL (oauth_store_url_id). */
    char id[SR_OAUTH_CLIENT_ID_LEN + 1];
    char url[SR_OAUTH_URI_MAX + 1]; /* "" for a registration, else the client_id URL (CIMD) */
    int64_t fresh_until;            /* CIMD: fetch the document again from then on */
    char name[SR_OAUTH_CLIENT_NAME_MAX + 1];
    char redirect[SR_OAUTH_REDIRECTS_MAX][SR_OAUTH_URI_MAX + 1];
    uint32_t nredirect;
    int64_t created, last_used; /* unix seconds */
};

enum sr_oauth_kind { SR_OAUTH_ACCESS = 1, SR_OAUTH_REFRESH = 2 };

/* What a code or token is bound to: the client, the static token's name and fingerprint. */
struct sr_oauth_binding {
    char client_id[SR_OAUTH_CLIENT_ID_LEN + 1];
    char name[SR_TOKEN_NAME_MAX + 1];
    uint8_t bind[32];
};

struct sr_oauth_code {
    bool used;
    uint8_t digest[32];
    struct sr_oauth_binding b;
    char redirect[SR_OAUTH_URI_MAX + 1];
    char challenge[SR_OAUTH_CHALLENGE_LEN + 1];
    int64_t expires;
    bool redeemed;      /* exchanged once; kept until it expires to catch a second exchange */
    uint8_t family[16]; /* redeemed: the family of the tokens it produced */
};

struct sr_oauth_grant {
    uint8_t kind; /* enum sr_oauth_kind; 0 = free slot */
    bool rotated; /* refresh: already exchanged; presenting it again revokes the family */
    uint8_t digest[32];
    uint8_t family[16]; /* every token descending from one authorization */
    struct sr_oauth_binding b;
    int64_t expires;
};

struct sr_oauth_store {
    char path[4096];
    struct sr_oauth_client clients[SR_OAUTH_CLIENTS_MAX];
    struct sr_oauth_code codes[SR_OAUTH_CODES_MAX];
    struct sr_oauth_grant grants[SR_OAUTH_GRANTS_MAX];
};

/* Open <state_dir>/oauth.state (created on first save); NULL with err on an unreadable file. */
struct sr_oauth_store *sr_oauth_store_open(const char *state_dir, char *err, size_t errlen);
void sr_oauth_store_free(struct sr_oauth_store *s);
/* Sweep what expired before now, then write the file; -1 (logged) when it cannot be written. */
int sr_oauth_store_save(struct sr_oauth_store *s, int64_t now);
/* Remove expired records (also done by save). */
void sr_oauth_store_sweep(struct sr_oauth_store *s, int64_t now);

/* Slots: a free (or reclaimed) one; never NULL. A full client table gives up the least
 * recently used registration that no code or token refers to, else the least recently used. */
struct sr_oauth_client *sr_oauth_store_new_client(struct sr_oauth_store *s);
struct sr_oauth_code *sr_oauth_store_new_code(struct sr_oauth_store *s);
struct sr_oauth_grant *sr_oauth_store_new_grant(struct sr_oauth_store *s);

/* The internal id of a client_id URL: base64url of the first 16 bytes of its SHA-256. */
void sr_oauth_store_url_id(const char *url, char out[SR_OAUTH_CLIENT_ID_LEN + 1]);

/* Lookups (digests compared in constant time); NULL when absent. */
struct sr_oauth_client *sr_oauth_store_client(struct sr_oauth_store *s, const char *id);
struct sr_oauth_code *sr_oauth_store_code(struct sr_oauth_store *s, const uint8_t digest[32]);
struct sr_oauth_grant *sr_oauth_store_grant(struct sr_oauth_store *s, const uint8_t digest[32]);

/* End every token of a family. Returns how many were removed. */
uint32_t sr_oauth_store_revoke_family(struct sr_oauth_store *s, const uint8_t family[16]);

/* The binding fingerprint of a static token's digest (not the digest itself). */
void sr_oauth_bind_of(const uint8_t token_digest[32], uint8_t out[32]);

/* True when b still names a token of t with the same value; *index gets its entry. */
bool sr_oauth_binding_live(const struct sr_oauth_binding *b, const struct sr_tokens *t,
                           int32_t *index);

/* Drop every code and grant whose binding is no longer live (SIGHUP); returns how many. */
uint32_t sr_oauth_store_prune(struct sr_oauth_store *s, const struct sr_tokens *t);

#endif
