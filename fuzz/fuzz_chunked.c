/*
 * libFuzzer harness for the chunked body decoder: the input is fed in two
 * pieces (split at a position taken from the first byte) so the incremental
 * paths run, and the decoded total must never pass the limit.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <event2/buffer.h>

#include "http/chunked.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t split = data[0] % (size);
    data++;
    size--;
    if (split > size)
        split = size;
    struct evbuffer *in = evbuffer_new();
    struct evbuffer *out = evbuffer_new();
    struct sr_chunked c;
    sr_chunked_init(&c);
    const uint64_t limit = 4096;
    evbuffer_add(in, data, split);
    int rc = sr_chunked_decode(&c, in, out, limit);
    if (rc < SR_CHUNKED_TOOLARGE || rc > SR_CHUNKED_DONE)
        abort();
    if (rc == SR_CHUNKED_MORE) {
        evbuffer_add(in, data + split, size - split);
        rc = sr_chunked_decode(&c, in, out, limit);
    }
    /* Explicit checks: the fuzz build defines NDEBUG, so assert() would vanish. */
    if (evbuffer_get_length(out) > limit || c.total != evbuffer_get_length(out))
        abort();
    evbuffer_free(in);
    evbuffer_free(out);
    return 0;
}
