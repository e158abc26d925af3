/*
 * JWT access tokens from an external identity provider (docs/oauth.md, "External identity
 * provider"): the parsing and the rules, without I/O or crypto. Freestanding like the rest of the
 * core; the host (http/idp.c) fetches the JWKS, builds keys and verifies signatures with OpenSSL.
 *
 * - A token is a compact JWS (RFC 7515): three base64url parts, no padding, at most SR_JWT_MAX
 *   bytes. The header's alg must be RS256 or ES256: "none", HS* and everything else are refused,
 *   as is a header with "crit" (no extension is understood), "jku"/"jwk"/"x5u"/"x5c" (keys come
 *   only from the configured JWKS), or a typ other than at+jwt, application/at+jwt or JWT.
 * - Claims: iss (string), aud (string or array of strings), exp (required), nbf and iat
 *   (honoured when present), all NumericDate as integers; and the configured claim (a string,
 *   or an array whose string elements are kept).
 * - A JWKS (RFC 7517) keeps its RSA keys (n of 2048 to 4096 bits) and its P-256 EC keys; other
 *   key types, curves, keys for use other than "sig" and malformed keys are skipped and counted.
 * - Claim values name a token: through the map when one is configured (only the map), else the
 *   value itself. An array claim must name exactly one token: elements that name none are
 *   ignored, two elements naming different tokens are refused as ambiguous.
 */
#ifndef SR_CORE_JWT_H
#define SR_CORE_JWT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/json.h"
#include "core/limits.h"
#include "core/tokens.h"

enum sr_jwt_alg { SR_JWT_ALG_NONE = 0, SR_JWT_RS256 = 1, SR_JWT_ES256 = 2 };
enum sr_jwk_kty { SR_JWK_RSA = 1, SR_JWK_EC = 2 };

struct sr_jwt {
    const char *signing_input; /* header "." payload, a span of the token */
    size_t signing_len;
    uint8_t sig[SR_JWT_SIG_MAX];
    size_t sig_len;
    int alg; /* enum sr_jwt_alg */
    bool has_kid;
    char kid[SR_JWT_KID_MAX + 1];
    char iss[SR_JWT_CLAIM_MAX + 1];
    char aud[SR_JWT_AUD_MAX][SR_JWT_CLAIM_MAX + 1];
    uint32_t naud;
    bool has_exp, has_nbf, has_iat;
    int64_t exp, nbf, iat;
    bool has_claim;   /* the configured claim is present (string or array) */
    bool claim_array; /* it was an array */
    char values[SR_JWT_CLAIM_VALUES][SR_JWT_CLAIM_MAX + 1];
    uint32_t nvalues;
};

/* True when t[0..n) has the shape of a compact JWS (three base64url parts, the last may be empty).
 */
bool sr_jwt_shaped(const char *t, size_t n);

/*
 * Parse token t[0..n): split, decode, read the header and the claims (claim: the configured
 * claim's name). toks/cap: scratch for the JSON reader (SR_JWT_TOKS is enough). 0, or -1 with
 * *why set to a reason fit for a log (never quoting the token).
 */
int sr_jwt_parse(const char *t, size_t n, const char *claim, struct sr_json_tok *toks, uint32_t cap,
                 struct sr_jwt *out, const char **why);

/*
 * The time and identity rules: iss equals issuer; aud contains audience; exp required and
 * now < exp + skew; now >= nbf - skew when nbf is present; iat <= now + skew when present.
 */
int sr_jwt_check(const struct sr_jwt *j, const char *issuer, const char *audience, int64_t now,
                 uint32_t skew, const char **why);

struct sr_jwk {
    int kty; /* enum sr_jwk_kty */
    int alg; /* enum sr_jwt_alg; SR_JWT_ALG_NONE when the key names none */
    bool has_kid;
    char kid[SR_JWT_KID_MAX + 1];
    uint8_t n[SR_JWK_RSA_N_MAX];
    size_t n_len;
    uint8_t e[8];
    size_t e_len;
    uint8_t x[32], y[32];
};

struct sr_jwks {
    struct sr_jwk k[SR_JWKS_KEYS_MAX];
    uint32_t n;
    uint32_t skipped; /* keys left out (other types, malformed, beyond SR_JWKS_KEYS_MAX) */
};

/* Parse a JWKS document; 0 (possibly with no usable key), or -1 with *why when it is not one. */
int sr_jwks_parse(const char *s, size_t n, struct sr_json_tok *toks, uint32_t cap,
                  struct sr_jwks *out, const char **why);

/* Whether key k may verify a token signed with alg (kty and the key's own alg must fit). */
bool sr_jwk_fits(const struct sr_jwk *k, int alg);

/* value -> token name (SERENA_REMOTE_OAUTH_CLAIM_MAP). */
struct sr_claim_map {
    struct {
        char value[SR_JWT_CLAIM_MAX + 1];
        char name[SR_TOKEN_NAME_MAX + 1];
    } e[SR_CLAIM_MAP_MAX];
    uint32_t n;
};

/* Parse {"value":"token name",...}; -1 with *why (names must be valid token names). */
int sr_claim_map_parse(const char *s, size_t n, struct sr_json_tok *toks, uint32_t cap,
                       struct sr_claim_map *out, const char **why);

/*
 * The token the claim stands for (index into t), by the rules above (map: NULL or empty for
 * none); -1 with *why.
 */
int32_t sr_jwt_resolve(const struct sr_jwt *j, const struct sr_claim_map *map,
                       const struct sr_tokens *t, const char **why);

/* An issuer URL: https, or http on a loopback host; a path is allowed, no query or fragment. */
int sr_idp_issuer_check(const char *s, size_t n, const char **why);

#endif
