/*
 * Freestanding memory and string helpers for the core.
 *
 * The core is compiled with no libc (natively with -ffreestanding and to
 * core.wasm with -nostdlib), so the handful of byte primitives it needs are
 * written here as plain loops. The compiler may still turn a loop into a call
 * to memcpy or memset, which libc provides natively and src/core/wasm/libc.c
 * provides in core.wasm. sr_mem_eq_ct is the only comparison allowed on
 * secrets: it reads every byte whatever the contents.
 */
#include "core/mem.h"

void sr_mem_copy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;

    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
}

void sr_mem_set(void *dst, int c, size_t n)
{
    uint8_t *d = dst;

    for (size_t i = 0; i < n; i++)
        d[i] = (uint8_t)c;
}

bool sr_mem_eq(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a;
    const uint8_t *y = b;

    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i])
            return false;
    }
    return true;
}

bool sr_mem_eq_ct(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a;
    const uint8_t *y = b;
    /*
     * The accumulator is volatile so that the compiler cannot prove the
     * result early and leave the loop: the running time must depend on n
     * only, never on where the first difference is.
     */
    volatile uint8_t acc = 0;

    for (size_t i = 0; i < n; i++)
        acc |= (uint8_t)(x[i] ^ y[i]);
    return acc == 0;
}

size_t sr_str_len(const char *s)
{
    size_t n = 0;

    while (s[n] != '\0')
        n++;
    return n;
}

static char ascii_lower(char c)
{
    if (c >= 'A' && c <= 'Z')
        return (char)(c - 'A' + 'a');
    return c;
}

bool sr_ascii_ieq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++) {
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    }
    return true;
}

void sr_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[16] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
}

/* Value of one hex digit of either case, or -1. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sr_hex_decode(const char *in, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(in[2 * i]);
        int lo = hex_value(in[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

size_t sr_base64url_encode(const uint8_t *in, size_t n, char *out)
{
    static const char alphabet[64] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    /* The tail of one or two bytes becomes two or three characters: no padding. */
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;

        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
    }
    return o;
}

int sr_base64_digit(char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

int sr_base64url_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t need = n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
    uint32_t v = 0;
    size_t o = 0;

    if (n % 4 == 1 || need > cap)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int d = sr_base64_digit(in[i], true);

        if (d < 0)
            return -1;
        v = v << 6 | (uint32_t)d;
        if (i % 4 == 3) {
            out[o++] = (uint8_t)(v >> 16);
            out[o++] = (uint8_t)(v >> 8);
            out[o++] = (uint8_t)v;
            v = 0;
        }
    }
    /* A tail of two or three characters carries one or two bytes; the bits
     * left over must be zero so that every value has exactly one encoding. */
    if (n % 4 == 2) {
        if (v & 0xf)
            return -1;
        out[o++] = (uint8_t)(v >> 4);
    } else if (n % 4 == 3) {
        if (v & 0x3)
            return -1;
        out[o++] = (uint8_t)(v >> 10);
        out[o++] = (uint8_t)(v >> 2);
    }
    *outlen = o;
    return 0;
}
