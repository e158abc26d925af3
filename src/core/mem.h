/*
 * Freestanding memory and string helpers for the core.
 *
 * The core links against no libc (it also builds to core.wasm with -nostdlib),
 * so the few primitives it needs live here. sr_mem_eq_ct is the only
 * comparison allowed on secrets: it always reads all n bytes.
 */
#ifndef SR_CORE_MEM_H
#define SR_CORE_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

void sr_mem_copy(void *dst, const void *src, size_t n);
void sr_mem_set(void *dst, int c, size_t n);
/* Plain equality, for non-secret data. */
bool sr_mem_eq(const void *a, const void *b, size_t n);
/* Constant-time equality: no early exit, time depends only on n. */
bool sr_mem_eq_ct(const void *a, const void *b, size_t n);
size_t sr_str_len(const char *s);
/* ASCII case-insensitive equality of two spans. */
bool sr_ascii_ieq(const char *a, size_t an, const char *b, size_t bn);
/* Lower-case hex of n bytes into out (2n bytes, no NUL written). */
void sr_hex_encode(const uint8_t *in, size_t n, char *out);
/* Decode exactly 2n hex digits (either case) into out; -1 on a bad digit. */
int sr_hex_decode(const char *in, size_t n, uint8_t *out);
/* Base64url without padding of n bytes; out needs ((n + 2) / 3) * 4 bytes; returns length. */
size_t sr_base64url_encode(const uint8_t *in, size_t n, char *out);
/* The value of one Base64 digit (RFC 4648: url selects the URL-safe alphabet), or -1. */
int sr_base64_digit(char c, bool url);
/*
 * Decode unpadded base64url in[0..n) into out[0..cap); *outlen gets the length. -1 on a character
 * outside the alphabet, a length of 1 mod 4, non-zero trailing bits (one text, one value), or
 * when cap is too small.
 */
int sr_base64url_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen);

#endif
