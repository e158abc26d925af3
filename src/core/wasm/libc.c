/*
 * The four mem* functions clang may call on its own, for core.wasm only.
 *
 * core.wasm links no libc, yet clang emits calls to memcpy, memset, memmove
 * and memcmp for struct copies, zero-initialisation and recognised loops.
 * These byte loops satisfy those calls. The no_builtin attribute stops clang
 * from recognising each loop as the very function it implements, which would
 * otherwise compile memcpy into a call to itself. This directory is built
 * into core.wasm only; natively the real libc provides these symbols.
 */
#include <stddef.h>
#include <stdint.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#define SR_WASM_LIBC __attribute__((no_builtin, visibility("hidden")))

SR_WASM_LIBC void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;

    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
    return dst;
}

SR_WASM_LIBC void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;

    for (size_t i = 0; i < n; i++)
        d[i] = (uint8_t)c;
    return dst;
}

SR_WASM_LIBC void *memmove(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;

    /* Copy backwards when the destination overlaps the end of the source. */
    if ((uintptr_t)d - (uintptr_t)s >= n) {
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
    } else {
        for (size_t i = n; i > 0; i--)
            d[i - 1] = s[i - 1];
    }
    return dst;
}

SR_WASM_LIBC int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a;
    const uint8_t *y = b;

    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    }
    return 0;
}
