/*
 * Bounded text building for messages the core writes (configuration errors,
 * JSON-RPC error messages). The core has no snprintf; this is the small
 * subset it needs: append strings and unsigned numbers, always NUL-terminated,
 * silently truncated at the caller's capacity (truncated is then set).
 */
#ifndef SR_CORE_TEXT_H
#define SR_CORE_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

struct sr_text {
    char *buf; /* borrowed; cap >= 1 */
    size_t cap;
    size_t len;
    bool truncated;
};

/* Start an empty text in buf[0..cap); cap must be at least 1. */
void sr_text_init(struct sr_text *t, char *buf, size_t cap);
/* Append a NUL-terminated string. */
void sr_text_put(struct sr_text *t, const char *s);
/* Append s[0..n). */
void sr_text_putn(struct sr_text *t, const char *s, size_t n);
/* Append v in decimal. */
void sr_text_u64(struct sr_text *t, uint64_t v);

#endif
