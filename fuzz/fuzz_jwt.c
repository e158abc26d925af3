/*
 * libFuzzer harness for the JWT and JWKS parsers (src/core/jwt.c): compact JWS tokens with their
 * header and claims, JWKS documents, the claim map, issuer URLs, and the claim -> token rule.
 *
 * The first byte picks the parser; the rest is an exact-size copy, so AddressSanitizer sees any
 * read past the end. Invariants: what a parse accepts is NUL-terminated within its bounds; a
 * token's signing input is its first two parts; a JWKS keeps at most SR_JWKS_KEYS_MAX keys, each
 * RSA (2048 to 4096 bits) or P-256; a resolved token is one of the table's.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sr_json_tok toks[SR_JWKS_TOKS];
static struct sr_jwt jwt;
static struct sr_jwks jwks;
static struct sr_claim_map map;
static struct sr_tokens table;

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_str(const char *s, size_t cap)
{
    check(memchr(s, '\0', cap) != NULL);
}

static void fuzz_token(const char *in, size_t n, const char *claim)
{
    const char *why = NULL;
    if (sr_jwt_parse(in, n, claim, toks, SR_JWT_TOKS, &jwt, &why) != 0) {
        check(why != NULL);
        return;
    }
    check(sr_jwt_shaped(in, n));
    check(jwt.alg == SR_JWT_RS256 || jwt.alg == SR_JWT_ES256);
    check(jwt.signing_input == in && jwt.signing_len < n && in[jwt.signing_len] == '.');
    check(memchr(in, '.', jwt.signing_len) != NULL);
    check(jwt.sig_len <= SR_JWT_SIG_MAX);
    check_str(jwt.kid, sizeof(jwt.kid));
    check_str(jwt.iss, sizeof(jwt.iss));
    check(jwt.naud <= SR_JWT_AUD_MAX && jwt.nvalues <= SR_JWT_CLAIM_VALUES);
    for (uint32_t i = 0; i < jwt.nvalues; i++)
        check_str(jwt.values[i], sizeof(jwt.values[i]));
    (void)sr_jwt_check(&jwt, "https://i", "https://m/mcp", 1000, 60, &why);
    int32_t idx = sr_jwt_resolve(&jwt, map.n ? &map : NULL, &table, &why);
    check(idx >= -1 && idx < (int32_t)table.count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL;
    if (size < 1)
        return 0;
    char *in = malloc(size - 1 ? size - 1 : 1);
    size_t n = size - 1;
    if (!in)
        return 0;
    memcpy(in, data + 1, n);
    if (table.count == 0) {
        static const char *const names[] = {"alice", "team-a", "x"};
        for (uint32_t i = 0; i < 3; i++) {
            memcpy(table.e[i].name, names[i], strlen(names[i]) + 1);
            table.e[i].digest[0] = (uint8_t)i;
        }
        table.count = 3;
    }
    switch (data[0] % 5) {
    case 0:
        map.n = 0;
        fuzz_token(in, n, "sub");
        break;
    case 1:
        fuzz_token(in, n, "groups");
        break;
    case 2:
        if (sr_jwks_parse(in, n, toks, SR_JWKS_TOKS, &jwks, &why) == 0) {
            check(jwks.n <= SR_JWKS_KEYS_MAX);
            for (uint32_t i = 0; i < jwks.n; i++) {
                const struct sr_jwk *k = &jwks.k[i];
                check_str(k->kid, sizeof(k->kid));
                check(k->kty == SR_JWK_EC ||
                      (k->kty == SR_JWK_RSA && k->n_len >= 256 && k->n_len <= SR_JWK_RSA_N_MAX));
                check(!sr_jwk_fits(k, SR_JWT_RS256) || k->kty == SR_JWK_RSA);
                check(!sr_jwk_fits(k, SR_JWT_ES256) || k->kty == SR_JWK_EC);
            }
        }
        break;
    case 3:
        if (sr_claim_map_parse(in, n, toks, SR_JWKS_TOKS, &map, &why) == 0) {
            check(map.n <= SR_CLAIM_MAP_MAX);
            for (uint32_t i = 0; i < map.n; i++) {
                check_str(map.e[i].value, sizeof(map.e[i].value));
                check_str(map.e[i].name, sizeof(map.e[i].name));
            }
        } else {
            map.n = 0;
        }
        break;
    default:
        if (sr_idp_issuer_check(in, n, &why) == 0)
            check(n > 8 && memchr(in, '?', n) == NULL && memchr(in, '#', n) == NULL);
        break;
    }
    free(in);
    return 0;
}
