/*
 * Unit tests for JWT access tokens from an external identity provider: the parsing and rules of
 * src/core/jwt.c (compact JWS, header, claims, time and audience, JWKS, claim -> token name,
 * issuer URLs), the resource metadata naming the issuer (src/core/oauth.c), and the signatures
 * of src/http/jwt_verify.c with keys OpenSSL makes here: RS256 and ES256 tokens verify, and a
 * changed header, payload or signature, another key, or a key of the wrong type does not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "core/jwt.h"
#include "core/mem.h"
#include "core/oauth.h"
#include "http/jwt_verify.h"

static struct sr_json_tok toks[SR_JWKS_TOKS];
static struct sr_jwt jwt;
static struct sr_jwks jwks;

#define ISS "https://idp.example.com"
#define AUD "https://mcp.example.com/mcp"

static void b64(const void *in, size_t n, char *out)
{
    out[sr_base64url_encode(in, n, out)] = '\0';
}

/* Append s to the NUL-terminated t (8192 bytes at most, as every token buffer here). */
static void append(char *t, const char *s)
{
    size_t n = strlen(t);
    snprintf(t + n, 8192 - n, "%s", s);
}

/* header.payload from two JSON texts, into out; the signature is appended by the caller. */
static void compose(const char *hdr, const char *payload, char *out)
{
    char a[2048], b[4096];
    b64(hdr, strlen(hdr), a);
    b64(payload, strlen(payload), b);
    snprintf(out, 8192, "%s.%s", a, b);
}

static int parse(const char *t, const char *claim, const char **why)
{
    return sr_jwt_parse(t, strlen(t), claim, toks, SR_JWT_TOKS, &jwt, why);
}

static const char *payload_at(int64_t exp)
{
    static char p[512];
    snprintf(p, sizeof(p),
             "{\"iss\":\"" ISS "\",\"aud\":[\"other\",\"" AUD "\"],\"exp\":%lld,\"iat\":1000,"
             "\"sub\":\"alice\",\"groups\":[\"x\",7,\"team-a\"]}",
             (long long)exp);
    return p;
}

static void test_shape_and_header(void **state)
{
    char t[8192];
    const char *why = "";
    (void)state;
    assert_true(sr_jwt_shaped("a.b.c", 5));
    assert_true(sr_jwt_shaped("a.b.", 4)); /* alg none's empty signature */
    assert_false(sr_jwt_shaped("a.b", 3));
    assert_false(sr_jwt_shaped("a..c", 4));
    assert_false(sr_jwt_shaped("a.b.c.d", 7));
    assert_false(sr_jwt_shaped("a.b=.c", 6));
    assert_false(sr_jwt_shaped("sr_at_abc", 9) && false);

    compose("{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"k1\"}", payload_at(2000), t);
    append(t, ".AAAA");
    assert_int_equal(parse(t, "sub", &why), 0);
    assert_int_equal(jwt.alg, SR_JWT_RS256);
    assert_true(jwt.has_kid);
    assert_string_equal(jwt.kid, "k1");
    assert_string_equal(jwt.iss, ISS);
    assert_int_equal(jwt.naud, 2);
    assert_int_equal(jwt.exp, 2000);
    assert_int_equal(jwt.sig_len, 3);
    assert_int_equal(jwt.signing_len, strrchr(t, '.') - t);
    assert_true(jwt.has_claim);
    assert_string_equal(jwt.values[0], "alice");

    static const struct {
        const char *hdr;
        const char *why;
    } refused[] = {
        {"{\"alg\":\"none\"}", "alg none"},
        {"{\"alg\":\"NONE\"}", "alg none"},
        {"{\"alg\":\"HS256\"}", "HS*"},
        {"{\"alg\":\"PS256\"}", "not RS256"},
        {"{\"typ\":\"JWT\"}", "no alg"},
        {"{\"alg\":\"RS256\",\"crit\":[\"exp\"]}", "crit"},
        {"{\"alg\":\"RS256\",\"jku\":\"https://evil\"}", "jku"},
        {"{\"alg\":\"ES256\",\"jwk\":{}}", "jwk"},
        {"{\"alg\":\"RS256\",\"typ\":\"dpop+jwt\"}", "typ"},
        {"{\"alg\":\"RS256\",\"kid\":7}", "kid"},
        {"[\"alg\"]", "not a JSON object"},
        {"{\"alg\":\"RS256\",\"alg\":\"none\"}", "not a JSON object"}, /* duplicate key */
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        compose(refused[i].hdr, payload_at(2000), t);
        append(t, ".AAAA");
        assert_int_equal(parse(t, "sub", &why), -1);
        assert_non_null(strstr(why, refused[i].why));
    }
    compose("{\"alg\":\"ES256\",\"typ\":\"JWT\"}", payload_at(2000), t);
    append(t, ".");
    assert_int_equal(parse(t, "sub", &why), 0);
    assert_false(jwt.has_kid);
    assert_int_equal(jwt.sig_len, 0);
    assert_int_equal(parse("e30.e30.e30", "sub", &why), -1); /* {} has no alg */
    assert_int_equal(parse("!!.e30.e30", "sub", &why), -1);
}

static void test_claims_and_time(void **state)
{
    char t[8192];
    const char *why = "";
    (void)state;
    compose("{\"alg\":\"RS256\"}", payload_at(2000), t);
    append(t, ".AA");
    assert_int_equal(parse(t, "sub", &why), 0);
    assert_int_equal(sr_jwt_check(&jwt, ISS, AUD, 1500, 60, &why), 0);
    assert_int_equal(sr_jwt_check(&jwt, ISS, AUD, 2059, 60, &why), 0);
    assert_int_equal(sr_jwt_check(&jwt, ISS, AUD, 2060, 60, &why), -1);
    assert_non_null(strstr(why, "expired"));
    assert_int_equal(sr_jwt_check(&jwt, ISS, AUD, 2000, 0, &why), -1);
    assert_int_equal(sr_jwt_check(&jwt, ISS "/", AUD, 1500, 60, &why), -1);
    assert_non_null(strstr(why, "iss"));
    assert_int_equal(sr_jwt_check(&jwt, ISS, AUD "/", 1500, 60, &why), -1);
    assert_non_null(strstr(why, "aud"));
    /* iat in the future beyond the skew. */
    assert_int_equal(sr_jwt_check(&jwt, ISS, AUD, 939, 60, &why), -1);
    assert_non_null(strstr(why, "iat"));
    assert_int_equal(sr_jwt_check(&jwt, ISS, AUD, 940, 60, &why), 0);

    compose("{\"alg\":\"RS256\"}",
            "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":9000,\"nbf\":5000}", t);
    append(t, ".AA");
    assert_int_equal(parse(t, "sub", &why), 0);
    assert_false(jwt.has_claim);
    assert_int_equal(sr_jwt_check(&jwt, ISS, AUD, 4939, 60, &why), -1);
    assert_non_null(strstr(why, "nbf"));
    assert_int_equal(sr_jwt_check(&jwt, ISS, AUD, 4940, 60, &why), 0);
    /* Extreme values do not overflow. */
    compose("{\"alg\":\"RS256\"}",
            "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":-9223372036854775808,"
            "\"nbf\":9223372036854775807}",
            t);
    append(t, ".AA");
    assert_int_equal(parse(t, "sub", &why), 0);
    assert_int_equal(sr_jwt_check(&jwt, ISS, AUD, 9223372036854775807LL, 300, &why), -1);
    assert_int_equal(sr_jwt_check(&jwt, ISS, AUD, 0, 300, &why), -1);

    static const char *const bad[] = {
        "{\"aud\":\"" AUD "\",\"exp\":1}",                                /* no iss */
        "{\"iss\":7,\"aud\":\"" AUD "\",\"exp\":1}",                      /* iss not a string */
        "{\"iss\":\"" ISS "\",\"exp\":1}",                                /* no aud */
        "{\"iss\":\"" ISS "\",\"aud\":{},\"exp\":1}",                     /* aud an object */
        "{\"iss\":\"" ISS "\",\"aud\":[1],\"exp\":1}",                    /* aud holds a number */
        "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1.5}",          /* not an integer */
        "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":\"1\"}",        /* a string */
        "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1,\"sub\":{}}", /* claim type */
        "{\"iss\":\"a\\u0000b\",\"aud\":\"" AUD "\",\"exp\":1}",          /* NUL in iss */
        "[]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        compose("{\"alg\":\"RS256\"}", bad[i], t);
        append(t, ".AA");
        assert_int_equal(parse(t, "sub", &why), -1);
    }
    /* No exp: parsed, refused by the check. */
    compose("{\"alg\":\"RS256\"}", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}", t);
    append(t, ".AA");
    assert_int_equal(parse(t, "sub", &why), 0);
    assert_int_equal(sr_jwt_check(&jwt, ISS, AUD, 0, 60, &why), -1);
    assert_non_null(strstr(why, "exp"));
}

static void add_token(struct sr_tokens *t, const char *name, uint8_t fill)
{
    struct sr_token_entry *e = &t->e[t->count++];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    memset(e->digest, fill, sizeof(e->digest));
}

static void test_resolve(void **state)
{
    static struct sr_tokens tt;
    static struct sr_claim_map map;
    char t[8192];
    const char *why = "";
    (void)state;
    sr_tokens_init(&tt);
    add_token(&tt, "alice", 1);
    add_token(&tt, "shared", 2);
    add_token(&tt, "x", 3);

    compose("{\"alg\":\"RS256\"}", payload_at(2000), t);
    append(t, ".AA");
    assert_int_equal(parse(t, "sub", &why), 0);
    assert_int_equal(sr_jwt_resolve(&jwt, NULL, &tt, &why), 0); /* sub itself: alice */
    const char *m = "{\"alice\":\"shared\",\"team-a\":\"alice\"}";
    assert_int_equal(sr_claim_map_parse(m, strlen(m), toks, 64, &map, &why), 0);
    assert_int_equal(map.n, 2);
    assert_int_equal(sr_jwt_resolve(&jwt, &map, &tt, &why), 1); /* mapped */

    /* groups ["x", 7, "team-a"]: without a map, "x" names a token; with it, only team-a. */
    assert_int_equal(parse(t, "groups", &why), 0);
    assert_true(jwt.claim_array);
    assert_int_equal(jwt.nvalues, 2);
    assert_int_equal(sr_jwt_resolve(&jwt, NULL, &tt, &why), 2);
    assert_int_equal(sr_jwt_resolve(&jwt, &map, &tt, &why), 0);
    /* Two elements naming different tokens: ambiguous. */
    add_token(&tt, "team-a", 4);
    assert_int_equal(sr_jwt_resolve(&jwt, NULL, &tt, &why), -1);
    assert_non_null(strstr(why, "ambiguous"));
    /* The same token twice is fine. */
    m = "{\"x\":\"alice\",\"team-a\":\"alice\"}";
    assert_int_equal(sr_claim_map_parse(m, strlen(m), toks, 64, &map, &why), 0);
    assert_int_equal(sr_jwt_resolve(&jwt, &map, &tt, &why), 0);
    /* A claim that names nothing, and a missing claim. */
    assert_int_equal(parse(t, "email", &why), 0);
    assert_int_equal(sr_jwt_resolve(&jwt, NULL, &tt, &why), -1);
    assert_non_null(strstr(why, "lacks"));
    m = "{\"bob\":\"bob\"}";
    assert_int_equal(sr_claim_map_parse(m, strlen(m), toks, 64, &map, &why), 0);
    assert_int_equal(parse(t, "sub", &why), 0);
    assert_int_equal(sr_jwt_resolve(&jwt, &map, &tt, &why), -1); /* map only: alice unmapped */
    assert_non_null(strstr(why, "no configured token"));

    static const char *const bad[] = {"[]",
                                      "{\"a\":1}",
                                      "{\"a\":\"bad name\"}",
                                      "{\"\":\"a\"}",
                                      "{\"a\":\"b\",\"a\":\"c\"}",
                                      "{\"a\\u0000\":\"b\"}",
                                      "x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sr_claim_map_parse(bad[i], strlen(bad[i]), toks, 64, &map, &why), -1);
}

static void test_issuer_and_metadata(void **state)
{
    char doc[1024];
    const char *why = "";
    (void)state;
    static const char *const ok[] = {"https://idp.example.com", "https://idp.example.com/realms/a",
                                     "http://127.0.0.1:9000", "http://localhost/x",
                                     "http://[::1]:80"};
    static const char *const bad[] = {"http://idp.example.com",
                                      "ftp://a",
                                      "https://",
                                      "https://a?x",
                                      "https://a#f",
                                      "https://u@a",
                                      "http://127.0.0.1.evil.com",
                                      "https://a b",
                                      ""};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        assert_int_equal(sr_idp_issuer_check(ok[i], strlen(ok[i]), &why), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(sr_idp_issuer_check(bad[i], strlen(bad[i]), &why), -1);
    assert_true(sr_oauth_resource_metadata_with("https://m", "https://i", false, doc, sizeof(doc)) >
                0);
    assert_non_null(strstr(doc, "\"resource\":\"https://m/mcp\""));
    assert_non_null(strstr(doc, "\"authorization_servers\":[\"https://i\"]"));
    assert_true(sr_oauth_resource_metadata_with("https://m", "https://i", true, doc, sizeof(doc)) >
                0);
    assert_non_null(strstr(doc, "\"authorization_servers\":[\"https://i\",\"https://m\"]"));
    assert_int_equal(sr_oauth_resource_metadata_with("https://m", "https://i", true, doc, 20), -1);
}

/* ---- signatures with OpenSSL keys ---------------------------------------------------------- */

static EVP_PKEY *gen(const char *type)
{
    return strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
                                    : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static void bn_b64(EVP_PKEY *k, const char *param, size_t pad, char *out)
{
    BIGNUM *bn = NULL;
    uint8_t buf[600];
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    int n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
    assert_true(n > 0);
    b64(buf, (size_t)n, out);
    BN_free(bn);
}

/* A JWK for k's public key, as an issuer publishes it. */
static void jwk_of(EVP_PKEY *k, const char *kid, const char *alg, char *out)
{
    char a[800], b[800];
    if (EVP_PKEY_is_a(k, "RSA")) {
        bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0, a);
        bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0, b);
        snprintf(out, 1200,
                 "{\"kty\":\"RSA\",\"kid\":\"%s\",\"alg\":\"%s\",\"use\":\"sig\",\"n\":\"%s\","
                 "\"e\":\"%s\"}",
                 kid, alg, a, b);
    } else {
        bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, 32, a);
        bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32, b);
        snprintf(out, 1200,
                 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}", kid,
                 a, b);
    }
}

/* Sign header.payload in t with k (RS256, or ES256 as raw r || s) and append the signature. */
static void sign(EVP_PKEY *k, char *t)
{
    uint8_t sig[600], raw[64];
    size_t sl = sizeof(sig);
    char enc[900];
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(m, sig, &sl, (const uint8_t *)t, strlen(t)), 1);
    EVP_MD_CTX_free(m);
    if (EVP_PKEY_is_a(k, "EC")) {
        const uint8_t *p = sig;
        ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)sl);
        assert_non_null(s);
        BN_bn2binpad(ECDSA_SIG_get0_r(s), raw, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(s), raw + 32, 32);
        ECDSA_SIG_free(s);
        memcpy(sig, raw, 64);
        sl = 64;
    }
    b64(sig, sl, enc);
    append(t, ".");
    append(t, enc);
}

static int verify_with(const struct sr_jwk *k, const char *t)
{
    const char *why = "";
    if (parse(t, "sub", &why) != 0)
        return -2;
    EVP_PKEY *pk = sr_jwk_pkey(k);
    if (!pk)
        return -3;
    int rc = sr_jwk_fits(k, jwt.alg) ? sr_jws_verify(pk, jwt.alg, jwt.signing_input,
                                                     jwt.signing_len, jwt.sig, jwt.sig_len)
                                     : -4;
    EVP_PKEY_free(pk);
    return rc;
}

static void test_signatures(void **state)
{
    static char t[8192], t2[8192], doc[4096], j1[1200], j2[1200], j3[1200];
    const char *why = "";
    (void)state;
    EVP_PKEY *rsa = gen("RSA"), *ec = gen("EC"), *other = gen("RSA");
    assert_non_null(rsa);
    assert_non_null(ec);
    jwk_of(rsa, "r1", "RS256", j1);
    jwk_of(ec, "e1", "ES256", j2);
    jwk_of(other, "r2", "RS256", j3);
    snprintf(doc, sizeof(doc),
             "{\"keys\":[%s,%s,{\"kty\":\"oct\",\"k\":\"AAAA\"},{\"kty\":\"OKP\",\"crv\":"
             "\"Ed25519\",\"x\":\"AA\"},{\"kty\":\"RSA\",\"n\":\"AA\",\"e\":\"AQAB\"},"
             "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"},"
             "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AA\",\"e\":\"AQAB\"}]}",
             j1, j2);
    assert_int_equal(sr_jwks_parse(doc, strlen(doc), toks, SR_JWKS_TOKS, &jwks, &why), 0);
    assert_int_equal(jwks.n, 2);
    assert_int_equal(jwks.skipped, 5);
    assert_int_equal(jwks.k[0].kty, SR_JWK_RSA);
    assert_int_equal(jwks.k[0].n_len, 256);
    assert_string_equal(jwks.k[1].kid, "e1");
    assert_int_equal(jwks.k[1].alg, SR_JWT_ALG_NONE);

    /* RS256 */
    compose("{\"alg\":\"RS256\",\"kid\":\"r1\"}", payload_at(2000), t);
    sign(rsa, t);
    assert_int_equal(verify_with(&jwks.k[0], t), 0);
    /* ...not with the EC key (wrong type), and not after any change. */
    assert_int_equal(verify_with(&jwks.k[1], t), -4);
    snprintf(t2, sizeof(t2), "%s", t);
    t2[strlen(t2) - 5] ^= 1; /* the signature */
    assert_true(verify_with(&jwks.k[0], t2) < 0);
    snprintf(t2, sizeof(t2), "%s", t);
    char *dot = strchr(t2, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A'; /* the payload */
    assert_true(verify_with(&jwks.k[0], t2) < 0);

    /* ES256 */
    compose("{\"alg\":\"ES256\",\"kid\":\"e1\"}", payload_at(2000), t);
    sign(ec, t);
    assert_int_equal(verify_with(&jwks.k[1], t), 0);
    assert_int_equal(verify_with(&jwks.k[0], t), -4);
    snprintf(t2, sizeof(t2), "%s", t);
    t2[strlen(t2) - 10] ^= 1;
    assert_true(verify_with(&jwks.k[1], t2) < 0);
    /* A DER signature (not raw r || s) is refused. */
    assert_int_equal(parse(t, "sub", &why), 0);
    {
        EVP_PKEY *pk = sr_jwk_pkey(&jwks.k[1]);
        uint8_t der[80];
        size_t dl = sizeof(der);
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, ec);
        EVP_DigestSign(m, der, &dl, (const uint8_t *)jwt.signing_input, jwt.signing_len);
        EVP_MD_CTX_free(m);
        assert_int_equal(
            sr_jws_verify(pk, SR_JWT_ES256, jwt.signing_input, jwt.signing_len, der, dl), -1);
        /* ...and alg RS256 on an EC key. */
        assert_int_equal(sr_jws_verify(pk, SR_JWT_RS256, jwt.signing_input, jwt.signing_len,
                                       jwt.sig, jwt.sig_len),
                         -1);
        EVP_PKEY_free(pk);
    }

    /* Another RSA key's signature does not verify under r1. */
    compose("{\"alg\":\"RS256\",\"kid\":\"r1\"}", payload_at(2000), t);
    sign(other, t);
    assert_true(verify_with(&jwks.k[0], t) < 0);

    /* An EC point off the curve and a small RSA modulus give no key. */
    struct sr_jwk bad = jwks.k[1];
    bad.y[31] ^= 1;
    assert_null(sr_jwk_pkey(&bad));
    bad = jwks.k[0];
    bad.e[0] = 2; /* even exponent */
    bad.e_len = 1;
    assert_null(sr_jwk_pkey(&bad));
    /* A key whose alg is RS256 does not fit ES256 even if its type would. */
    bad = jwks.k[1];
    bad.alg = SR_JWT_RS256;
    assert_false(sr_jwk_fits(&bad, SR_JWT_ES256));
    assert_int_equal(sr_jws_verify(NULL, SR_JWT_RS256, "a", 1, (const uint8_t *)"", 0), -1);

    /* Not a JWKS. */
    static const char *const notjwks[] = {"[]", "{}", "{\"keys\":{}}", "{\"keys\":[1]}x"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(
            sr_jwks_parse(notjwks[i], strlen(notjwks[i]), toks, SR_JWKS_TOKS, &jwks, &why), -1);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_and_header), cmocka_unit_test(test_claims_and_time),
        cmocka_unit_test(test_resolve),          cmocka_unit_test(test_issuer_and_metadata),
        cmocka_unit_test(test_signatures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
