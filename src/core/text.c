/*
 * Bounded text building (see text.h).
 *
 * Messages are assembled from static English fragments, entry names and
 * numbers. Truncation is preferred to failure: a cut-off error message is
 * still more useful than none, and the buffers are sized so that it does
 * not happen in practice.
 */
#include "core/text.h"

#include "core/mem.h"

void sr_text_init(struct sr_text *t, char *buf, size_t cap)
{
    t->buf = buf;
    t->cap = cap;
    t->len = 0;
    t->truncated = false;
    if (cap > 0)
        buf[0] = '\0';
}

void sr_text_putn(struct sr_text *t, const char *s, size_t n)
{
    size_t room;

    if (t->cap == 0)
        return;
    room = t->cap - 1 - t->len;
    if (n > room) {
        n = room;
        t->truncated = true;
    }
    sr_mem_copy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

void sr_text_put(struct sr_text *t, const char *s)
{
    sr_text_putn(t, s, sr_str_len(s));
}

void sr_text_u64(struct sr_text *t, uint64_t v)
{
    char digits[20];
    size_t n = 0;

    /* Digits come out least significant first; write them reversed. */
    do {
        digits[sizeof(digits) - 1 - n] = (char)('0' + (v % 10));
        v /= 10;
        n++;
    } while (v != 0);
    sr_text_putn(t, digits + sizeof(digits) - n, n);
}
