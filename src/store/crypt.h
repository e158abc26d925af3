/*
 * Encryption at rest for every object a store holds (SERENA_SNAPSHOT_KEY).
 *
 * A sealed object is a header and a sequence of AES-256-GCM segments:
 *
 *   header   "srenc-v1" | key id (8) | salt (32)                  48 bytes
 *   segment  AES-256-GCM(subkey, nonce_i, aad, plaintext_i) | tag 16 bytes
 *
 * - subkey = HKDF-SHA256(key, salt, "serena-remote object v1"): the salt is
 *   32 fresh random bytes per object (its nonce), so no two objects ever share
 *   a subkey, and the per-segment nonces can be a simple counter.
 * - nonce_i = 00 00 00 | i (8 bytes, big endian) | last (1 byte: 1 for the
 *   final segment), so segments cannot be reordered, dropped or cut short.
 * - aad = "serena-remote object v1" NUL | the object's store key: an object
 *   copied or renamed to another key does not open (pieces cannot be
 *   swapped).
 * - Segments hold SR_CRYPT_SEG bytes of plaintext (the last one fewer, or
 *   none for an empty object), so a byte range can be read and verified
 *   without the rest of the object.
 * - key id = the first 8 bytes of SHA-256("serena-remote key id v1" NUL |
 *   key): it picks the key among the rotation list, and tells a wrong key
 *   ("not in SERENA_SNAPSHOT_KEY") from a damaged object.
 *
 * Sizes: sealed = 48 + n + 16 * max(1, ceil(n / SR_CRYPT_SEG)).
 *
 * Ownership: struct sr_crypt owns a copy of the keys and one cipher context;
 * it is not shared between threads (each store handle has its own).
 */
#ifndef SR_STORE_CRYPT_H
#define SR_STORE_CRYPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SR_CRYPT_MAGIC      "srenc-v1"
#define SR_CRYPT_MAGIC_LEN  8
#define SR_CRYPT_KEYID_LEN  8
#define SR_CRYPT_SALT_LEN   32
#define SR_CRYPT_HEADER     (SR_CRYPT_MAGIC_LEN + SR_CRYPT_KEYID_LEN + SR_CRYPT_SALT_LEN)
#define SR_CRYPT_SEG        (64u * 1024u)
#define SR_CRYPT_TAG        16
#define SR_CRYPT_SEG_STORED (SR_CRYPT_SEG + SR_CRYPT_TAG)

struct sr_crypt;

/*
 * keys: the text of SERENA_SNAPSHOT_KEY, or NULL/"" for none (objects are
 * then written in the clear, and a sealed one refuses to open with a message
 * that says to set the key). 0, or SR_STORE_E_CONFIG with err.
 */
int sr_crypt_new(const char *keys, struct sr_crypt **out, char *err, size_t errlen);
void sr_crypt_free(struct sr_crypt *c);

/* True when new objects are sealed (a key is configured). */
bool sr_crypt_enabled(const struct sr_crypt *c);
/* True when unsealed objects may be read ("plaintext" listed, or no key at all). */
bool sr_crypt_plaintext_ok(const struct sr_crypt *c);
/* The id of the key new objects are sealed with (zeros when none). */
void sr_crypt_primary_id(const struct sr_crypt *c, uint8_t id[SR_CRYPT_KEYID_LEN]);

uint64_t sr_crypt_sealed_size(uint64_t n);
/* The plaintext size of a sealed object of `stored` bytes; -1 when no object has that size. */
int sr_crypt_plain_size(uint64_t stored, uint64_t *n);
/* True when the bytes start with the sealed header's magic. */
bool sr_crypt_is_sealed(const void *p, size_t n);

/* Seal in[0..n) for store key `key` into out (sr_crypt_sealed_size(n) bytes). 0 or -1. */
int sr_crypt_seal(struct sr_crypt *c, const char *key, const void *in, size_t n, uint8_t *out);

/*
 * Open a whole sealed object held in memory into out (at least n bytes);
 * *outlen gets the plaintext length. 0, SR_STORE_E_KEY (no key, or a key
 * that is not listed) or SR_STORE_E_CORRUPT (damaged, truncated, or not the
 * object stored under `key`), with err.
 */
int sr_crypt_open(struct sr_crypt *c, const char *key, const uint8_t *in, size_t n, uint8_t *out,
                  size_t *outlen, char *err, size_t errlen);

/* The same, file to file: seal (the output's SHA-256 in hex and its size) and open. */
int sr_crypt_seal_fd(struct sr_crypt *c, const char *key, int in, int out, char sha256_hex[65],
                     uint64_t *size, char *err, size_t errlen);
int sr_crypt_open_fd(struct sr_crypt *c, const char *key, int in, int out, char *err,
                     size_t errlen);

/* The stored byte range [*soff, *soff + *slen) holding plaintext [off, off + len) (len > 0). */
void sr_crypt_range(uint64_t off, uint64_t len, uint64_t *soff, uint64_t *slen);

/*
 * Open part of an object: hdr is its first SR_CRYPT_HEADER bytes, seg the
 * stored bytes read at the offset sr_crypt_range gave for (off, len) (fewer
 * at the object's end). Writes the plaintext [off, off + len) to out and its
 * length (less than len at the end of the object) to *got. Same errors as
 * sr_crypt_open.
 */
int sr_crypt_open_range(struct sr_crypt *c, const char *key, const uint8_t *hdr, const uint8_t *seg,
                        size_t seglen, uint64_t off, size_t len, uint8_t *out, size_t *got,
                        char *err, size_t errlen);

/* Check a header: 0 when one of our keys opens it, else SR_STORE_E_KEY/CORRUPT with err. */
int sr_crypt_check_header(struct sr_crypt *c, const char *key, const uint8_t *hdr, size_t n,
                          char *err, size_t errlen);

#endif
