/*
 * JWS signatures with OpenSSL 3 (see jwt_verify.h). No key material is secret here: these are
 * an identity provider's public keys.
 */
#include "http/jwt_verify.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *b)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    EVP_PKEY *pk = NULL;

    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

EVP_PKEY *sr_jwk_pkey(const struct sr_jwk *k)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    BIGNUM *n = NULL, *e = NULL;

    if (!b)
        return NULL;
    if (k->kty == SR_JWK_RSA) {
        n = BN_bin2bn(k->n, (int)k->n_len, NULL);
        e = BN_bin2bn(k->e, (int)k->e_len, NULL);
        if (n && e && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
            OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, e) == 1)
            pk = from_params("RSA", b);
        if (pk && (EVP_PKEY_get_bits(pk) < 2048 || EVP_PKEY_get_bits(pk) > 4096 || BN_is_one(e) ||
                   !BN_is_odd(e))) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
    } else if (k->kty == SR_JWK_EC) {
        uint8_t point[65];
        point[0] = 0x04; /* uncompressed: x || y */
        memcpy(point + 1, k->x, 32);
        memcpy(point + 33, k->y, 32);
        if (OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
            OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) == 1)
            pk = from_params("EC", b);
        /* The point must be on the curve (fromdata alone does not promise it). */
        EVP_PKEY_CTX *c = pk ? EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL) : NULL;
        if (pk && (!c || EVP_PKEY_public_check(c) != 1)) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
        EVP_PKEY_CTX_free(c);
    }
    BN_free(n);
    BN_free(e);
    OSSL_PARAM_BLD_free(b);
    return pk;
}

/* r || s (32 bytes each) as a DER ECDSA-Sig-Value; its length, or -1. */
static int es256_der(const uint8_t *sig, uint8_t *out, size_t cap)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *sv = BN_bin2bn(sig + 32, 32, NULL);
    int len = -1;

    if (s && r && sv && ECDSA_SIG_set0(s, r, sv) == 1) {
        r = sv = NULL; /* owned by s now */
        if (i2d_ECDSA_SIG(s, NULL) <= (int)cap) {
            unsigned char *p = out;
            len = i2d_ECDSA_SIG(s, &p);
        }
    }
    BN_free(r);
    BN_free(sv);
    ECDSA_SIG_free(s);
    return len;
}

int sr_jws_verify(EVP_PKEY *pk, int alg, const char *in, size_t n, const uint8_t *sig, size_t sl)
{
    uint8_t der[80];
    const uint8_t *s = sig;
    int ok = 0;

    if (!pk)
        return -1;
    if (alg == SR_JWT_RS256) {
        if (!EVP_PKEY_is_a(pk, "RSA") || sl != (size_t)EVP_PKEY_get_size(pk))
            return -1;
    } else if (alg == SR_JWT_ES256) {
        int dl;
        if (!EVP_PKEY_is_a(pk, "EC") || sl != 64 || (dl = es256_der(sig, der, sizeof(der))) < 0)
            return -1;
        s = der;
        sl = (size_t)dl;
    } else {
        return -1;
    }
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    if (m && EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, pk) == 1)
        ok = EVP_DigestVerify(m, s, sl, (const unsigned char *)in, n) == 1;
    EVP_MD_CTX_free(m);
    return ok ? 0 : -1;
}
