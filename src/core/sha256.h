/*
 * SHA-256 (FIPS 180-4), freestanding.
 *
 * The core needs digests to name array tokens ("t-" + 16 hex digits) and to
 * compare presented tokens in constant time. Hosts may compute request
 * digests with their own primitives (OpenSSL, WebCrypto); the results are
 * identical by definition, and the unit tests pin the NIST vectors.
 */
#ifndef SR_CORE_SHA256_H
#define SR_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SR_SHA256_LEN 32

struct sr_sha256 {
    uint32_t h[8];
    uint64_t total;
    uint8_t block[64];
    size_t used;
};

void sr_sha256_init(struct sr_sha256 *c);
void sr_sha256_update(struct sr_sha256 *c, const void *data, size_t n);
void sr_sha256_final(struct sr_sha256 *c, uint8_t out[SR_SHA256_LEN]);
/* One-shot convenience. */
void sr_sha256(const void *data, size_t n, uint8_t out[SR_SHA256_LEN]);

#endif
