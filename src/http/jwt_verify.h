/*
 * Signature checks for JWT access tokens (docs/oauth.md, "External identity provider"), with
 * OpenSSL 3: a JWKS key (core/jwt.h) becomes an EVP_PKEY through EVP_PKEY_fromdata, and a
 * JWS signature is checked with EVP_DigestVerify. RS256 is RSASSA-PKCS1-v1_5 with SHA-256 over
 * a modulus of 2048 to 4096 bits; ES256 is ECDSA over P-256 with SHA-256, its raw r || s (64
 * bytes, RFC 7518 section 3.4) converted to the DER form OpenSSL verifies.
 */
#ifndef SR_HTTP_JWT_VERIFY_H
#define SR_HTTP_JWT_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/jwt.h"

/* The public key of k, or NULL when it is not a usable key (an EC point off the curve, an RSA
 * modulus out of range). The caller frees it with EVP_PKEY_free. */
EVP_PKEY *sr_jwk_pkey(const struct sr_jwk *k);

/* 0 when sig[0..sl) is a valid alg signature of in[0..n) under pk, else -1. */
int sr_jws_verify(EVP_PKEY *pk, int alg, const char *in, size_t n, const uint8_t *sig, size_t sl);

#endif
